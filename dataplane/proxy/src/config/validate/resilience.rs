//! A cluster's `circuit_breaker` and `outlier_detection`.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::{Bounds, Validator};
use crate::config::model::{defaults, Breakers, OutlierDetection, SuccessRate};
use crate::config::raw::{RawCluster, RawOutlierDetection, RawSuccessRate};

impl Validator {
    /// The thresholds, Envoy's defaults for those not given.
    pub(super) fn breakers(&mut self, c: &RawCluster, path: &str) -> Breakers {
        let d = Breakers::default();
        let Some(b) = &c.circuit_breaker else {
            return d;
        };
        let path = format!("{path}.circuit_breaker");
        let mut limit = |v: &Option<Spanned<u64>>, name: &str, default: u32| {
            self.count(v, &format!("{path}.{name}"), default as usize, 1) as u32
        };
        Breakers {
            max_pending_requests: limit(
                &b.value.max_pending_requests,
                "max_pending_requests",
                d.max_pending_requests,
            ),
            max_requests: limit(&b.value.max_requests, "max_requests", d.max_requests),
            max_retries: limit(&b.value.max_retries, "max_retries", d.max_retries),
        }
    }

    /// `circuit_breaker.max_connections` or `pool.max_connections` (the
    /// same limit: either place, not both).
    pub(super) fn max_connections(&mut self, c: &RawCluster, path: &str) -> usize {
        let breaker = c
            .circuit_breaker
            .as_ref()
            .and_then(|b| b.value.max_connections.as_ref());
        match (breaker, &c.pool.max_connections) {
            (Some(b), Some(_)) => {
                self.err(
                    &b.referenced,
                    format!("{path}.circuit_breaker.max_connections"),
                    "also set as pool.max_connections: set it in one place",
                );
                defaults::MAX_CONNECTIONS
            }
            (Some(b), None) => self
                .given_count(b, &format!("{path}.circuit_breaker.max_connections"), 1)
                .unwrap_or(defaults::MAX_CONNECTIONS),
            (None, pool) => self.count(
                pool,
                &format!("{path}.pool.max_connections"),
                defaults::MAX_CONNECTIONS,
                1,
            ),
        }
    }

    pub(super) fn outlier(&mut self, c: &RawCluster, path: &str) -> Option<OutlierDetection> {
        let o = c.outlier_detection.as_ref()?;
        let path = format!("{path}.outlier_detection");
        let raw: &RawOutlierDetection = &o.value;
        let consecutive = |v: &Option<Spanned<u64>>, default: u32| {
            v.as_ref()
                .map_or(default, |n| n.value.min(u64::from(u32::MAX)) as u32)
        };
        let base = self.duration(
            &raw.base_ejection_time,
            &format!("{path}.base_ejection_time"),
            Duration::from_secs(30),
            Bounds::NonZero,
        );
        let max = self.duration(
            &raw.max_ejection_time,
            &format!("{path}.max_ejection_time"),
            Duration::from_secs(300).max(base),
            Bounds::NonZero,
        );
        if max < base {
            if let Some(m) = &raw.max_ejection_time {
                self.err(
                    &m.referenced,
                    format!("{path}.max_ejection_time"),
                    format!(
                        "`{}` is shorter than base_ejection_time ({base:?})",
                        m.value
                    ),
                );
            }
        }
        let max_ejection = match &raw.max_ejection_percent {
            None => 0.1,
            Some(p) => self
                .percent_value(p, &format!("{path}.max_ejection_percent"))
                .map_or(0.1, |m| f64::from(m) / 1e6),
        };
        Some(OutlierDetection {
            consecutive_5xx: consecutive(&raw.consecutive_5xx, 5),
            consecutive_gateway_errors: consecutive(&raw.consecutive_gateway_errors, 0),
            interval: self.duration(
                &raw.interval,
                &format!("{path}.interval"),
                Duration::from_secs(10),
                Bounds::NonZero,
            ),
            base_ejection_time: base,
            max_ejection_time: max,
            max_ejection,
            success_rate: raw
                .success_rate
                .as_ref()
                .map(|s| self.success_rate(s, &format!("{path}.success_rate"))),
        })
    }

    /// Envoy's defaults: 5 hosts, 100 requests, 1.9 standard deviations.
    fn success_rate(&mut self, s: &Spanned<RawSuccessRate>, path: &str) -> SuccessRate {
        let stdev_factor = match &s.value.stdev_factor {
            None => 1.9,
            Some(f) if f.value.is_finite() && f.value > 0.0 && f.value <= 100.0 => f.value,
            Some(f) => {
                self.err(
                    &f.referenced,
                    format!("{path}.stdev_factor"),
                    format!("`{}`: must be more than 0 and at most 100", f.value),
                );
                1.9
            }
        };
        SuccessRate {
            minimum_hosts: self.count(
                &s.value.minimum_hosts,
                &format!("{path}.minimum_hosts"),
                5,
                1,
            ) as u32,
            request_volume: self.count(
                &s.value.request_volume,
                &format!("{path}.request_volume"),
                100,
                1,
            ) as u32,
            stdev_factor,
        }
    }
}
