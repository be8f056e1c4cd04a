//! A cluster's balancing: its endpoints (address, weight, zone), `lb` with
//! the settings of the chosen policy, and the panic threshold.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_saphyr::Spanned;

use super::{Bounds, Validator};
use crate::config::model::{
    defaults, EndpointSpec, HashOn, HashPolicy, LbPolicy, PeakEwma, Target, MAX_WEIGHT,
};
use crate::config::raw::{RawCluster, RawEndpoint, RawHash, RawHashOn};

const POLICIES: &str = "round_robin, least_request, peak_ewma, ring_hash or maglev";

impl Validator {
    pub(super) fn endpoints(&mut self, c: &RawCluster, path: &str) -> Vec<EndpointSpec> {
        c.endpoints
            .iter()
            .enumerate()
            .filter_map(|(j, e)| self.endpoint(e, &format!("{path}.endpoints[{j}]")))
            .collect()
    }

    fn endpoint(&mut self, e: &Spanned<RawEndpoint>, path: &str) -> Option<EndpointSpec> {
        let (address, weight, zone, address_path) = match &e.value {
            RawEndpoint::Address(a) => (a, None, None, path.to_string()),
            RawEndpoint::Detailed(d) => (
                &d.address,
                d.weight,
                d.zone.as_deref(),
                format!("{path}.address"),
            ),
        };
        let target = self.target(address, e, &address_path);
        let weight = match weight {
            None => 1,
            Some(w) if (1..=u64::from(MAX_WEIGHT)).contains(&w) => w as u32,
            Some(w) => {
                self.err(
                    &e.referenced,
                    format!("{path}.weight"),
                    format!("`{w}`: must be from 1 to {MAX_WEIGHT}"),
                );
                1
            }
        };
        let zone = zone.and_then(|z| self.zone_name(z, e, &format!("{path}.zone")));
        Some(EndpointSpec {
            target: target?,
            weight,
            zone,
        })
    }

    fn target<T>(&mut self, address: &str, at: &Spanned<T>, path: &str) -> Option<Target> {
        if let Ok(addr) = address.parse::<SocketAddr>() {
            return Some(Target::Ip(addr));
        }
        let parsed = address.rsplit_once(':').and_then(|(host, port)| {
            let port: u16 = port.parse().ok()?;
            let valid = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            valid.then(|| Target::Dns {
                host: host.to_string(),
                port,
            })
        });
        if parsed.is_none() {
            self.err(
                &at.referenced,
                path,
                format!("`{address}` is not HOST:PORT or IP:PORT"),
            );
        }
        parsed
    }

    /// A zone name: what Kubernetes allows in a label value.
    pub(super) fn zone_name<T>(
        &mut self,
        zone: &str,
        at: &Spanned<T>,
        path: &str,
    ) -> Option<Arc<str>> {
        let ok = !zone.is_empty()
            && zone.len() <= 63
            && zone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            self.err(
                &at.referenced,
                path,
                format!("`{zone}` is not a zone name (1-63 letters, digits, `-`, `_`, `.`)"),
            );
            return None;
        }
        Some(zone.into())
    }

    /// `lb` with the settings block of the chosen policy; a settings block
    /// of another policy is an error (it would be silently ignored).
    pub(super) fn lb(&mut self, c: &RawCluster, path: &str) -> LbPolicy {
        let name = c.lb.as_ref().map_or("round_robin", |s| s.value.as_str());
        let at = c.lb.as_ref().map(|s| &s.referenced);
        if let (Some(p), false) = (&c.peak_ewma, name == "peak_ewma") {
            self.err(
                &p.referenced,
                format!("{path}.peak_ewma"),
                format!("only used with `lb: peak_ewma` (lb is `{name}`)"),
            );
        }
        if let (Some(h), false) = (&c.hash, matches!(name, "ring_hash" | "maglev")) {
            self.err(
                &h.referenced,
                format!("{path}.hash"),
                format!("only used with `lb: ring_hash` or `lb: maglev` (lb is `{name}`)"),
            );
        }
        match name {
            "round_robin" => LbPolicy::RoundRobin,
            "least_request" => LbPolicy::LeastRequest,
            "peak_ewma" => LbPolicy::PeakEwma(self.peak_ewma(c, path)),
            "ring_hash" => LbPolicy::RingHash(self.hash(c, path, false)),
            "maglev" => LbPolicy::Maglev(self.hash(c, path, true)),
            other => {
                if let Some(at) = at {
                    self.err(
                        at,
                        format!("{path}.lb"),
                        format!("unknown lb policy `{other}`: use {POLICIES}"),
                    );
                }
                LbPolicy::RoundRobin
            }
        }
    }

    fn peak_ewma(&mut self, c: &RawCluster, path: &str) -> PeakEwma {
        let path = format!("{path}.peak_ewma");
        let raw = c.peak_ewma.as_ref().map(|p| &p.value);
        PeakEwma {
            half_life: self.duration(
                &raw.and_then(|r| r.half_life.clone()),
                &format!("{path}.half_life"),
                defaults::PEAK_EWMA_HALF_LIFE,
                Bounds::NonZero,
            ),
            default_rtt: self.duration(
                &raw.and_then(|r| r.default_rtt.clone()),
                &format!("{path}.default_rtt"),
                defaults::PEAK_EWMA_DEFAULT_RTT,
                Bounds::NonZero,
            ),
        }
    }

    /// `maglev`: with its table size; else ring hash with its points.
    fn hash(&mut self, c: &RawCluster, path: &str, maglev: bool) -> HashPolicy {
        let default_size = if maglev {
            defaults::MAGLEV_TABLE_SIZE
        } else {
            defaults::RING_POINTS
        };
        let placeholder = HashPolicy {
            on: HashOn::SourceIp,
            table_size: default_size,
        };
        let Some(h) = &c.hash else {
            let at = c.lb.as_ref().map(|l| &l.referenced);
            if let Some(at) = at {
                self.err(
                    at,
                    format!("{path}.hash"),
                    "missing: what to hash, e.g. `hash: { on: { header: x-user } }`",
                );
            }
            return placeholder;
        };
        let path = format!("{path}.hash");
        let on = self.hash_on(h, &path);
        let (size, other) = if maglev {
            (&h.value.table_size, ("ring_points", &h.value.ring_points))
        } else {
            (&h.value.ring_points, ("table_size", &h.value.table_size))
        };
        if let (name, Some(t)) = other {
            let policy = if maglev { "maglev" } else { "ring_hash" };
            self.err(
                &t.referenced,
                format!("{path}.{name}"),
                format!("not a setting of `lb: {policy}`"),
            );
        }
        let table_size = match size {
            None => default_size,
            Some(t) if maglev => self.table_size(t, &format!("{path}.table_size")),
            Some(t) => self.ring_points(t, &format!("{path}.ring_points")),
        };
        HashPolicy {
            on: on.unwrap_or(HashOn::SourceIp),
            table_size,
        }
    }

    fn hash_on(&mut self, h: &Spanned<RawHash>, path: &str) -> Option<HashOn> {
        let path = format!("{path}.on");
        let Some(on) = &h.value.on else {
            self.err(
                &h.referenced,
                path,
                "missing: `source_ip`, `{ header: NAME }` or `{ cookie: NAME }`",
            );
            return None;
        };
        match &on.value {
            RawHashOn::SourceIp => Some(HashOn::SourceIp),
            RawHashOn::Header(name) => {
                self.header_name(name, &format!("{path}.header"));
                Some(HashOn::Header(name.value.to_ascii_lowercase().into()))
            }
            RawHashOn::Cookie(name) => {
                let ok = !name.value.is_empty()
                    && name
                        .value
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
                if !ok {
                    self.err(
                        &name.referenced,
                        format!("{path}.cookie"),
                        format!("`{}` is not a cookie name", name.value),
                    );
                }
                Some(HashOn::Cookie(name.value.as_str().into()))
            }
        }
    }

    /// 1 to 4096 points per unit of weight.
    fn ring_points(&mut self, t: &Spanned<u64>, path: &str) -> u32 {
        if !(1..=4096).contains(&t.value) {
            self.err(
                &t.referenced,
                path,
                format!("`{}`: must be from 1 to 4096", t.value),
            );
            return defaults::RING_POINTS;
        }
        t.value as u32
    }

    /// A Maglev table size: 17 to 5 000 011 (Envoy's bounds are similar),
    /// prime so every endpoint's permutation covers the table.
    fn table_size(&mut self, t: &Spanned<u64>, path: &str) -> u32 {
        const MIN: u64 = 17;
        const MAX: u64 = 5_000_011;
        if !(MIN..=MAX).contains(&t.value) {
            self.err(
                &t.referenced,
                path,
                format!("`{}`: must be from {MIN} to {MAX}", t.value),
            );
            return MIN as u32;
        }
        if !is_prime(t.value) {
            self.err(
                &t.referenced,
                path,
                format!(
                    "`{}` is not prime: Maglev needs a prime table size, e.g. {}",
                    t.value,
                    next_prime(t.value)
                ),
            );
        }
        t.value as u32
    }

    pub(super) fn panic_threshold(&mut self, c: &RawCluster, path: &str) -> f64 {
        match &c.panic_threshold {
            None => defaults::PANIC_THRESHOLD,
            Some(p) => {
                let per_million = self.percent_value(p, &format!("{path}.panic_threshold"));
                per_million.map_or(defaults::PANIC_THRESHOLD, |m| f64::from(m) / 1e6)
            }
        }
    }
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

fn next_prime(n: u64) -> u64 {
    (n..).find(|&m| is_prime(m)).unwrap_or(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        assert!(is_prime(65537));
        assert!(!is_prime(65536));
        assert_eq!(next_prime(1000), 1009);
    }
}
