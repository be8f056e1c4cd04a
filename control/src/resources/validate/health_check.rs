//! A TrafficPolicy's `healthCheck`: the proxy's `clusters[].health_check`
//! in the resources' camelCase, checked as the proxy checks it so a policy
//! the proxies would NACK is refused at apply time. Whether an `http`
//! check can run is known only when the policy is compiled onto a
//! cluster (a meshed Service's endpoints are sidecars speaking HTTP/2):
//! `compile::traffic` says what happens then.

use serde_saphyr::Spanned;

use super::super::model::{HealthCheck, HttpCheck};
use super::super::raw::{RawStatusRange, RawTpHealthCheck, RawTpHttpCheck};
use super::{Checker, Doc};

impl Checker {
    pub(super) fn health_check(
        &mut self,
        doc: &Doc,
        h: &Spanned<RawTpHealthCheck>,
        path: &str,
    ) -> Option<HealthCheck> {
        let raw = &h.value;
        let before = self.errors.len();
        let positive = |c: &mut Checker, v: &Option<Spanned<String>>, field: &str| {
            v.as_ref()
                .and_then(|v| c.duration(doc, v, &format!("{path}.{field}"), "must be more than 0"))
        };
        let interval = positive(self, &raw.interval, "interval");
        let timeout = positive(self, &raw.timeout, "timeout");
        let jitter = raw.jitter.as_ref().and_then(|j| {
            if humantime::parse_duration(&j.value).is_ok_and(|d| d.is_zero()) {
                return Some(std::time::Duration::ZERO);
            }
            self.duration(doc, j, &format!("{path}.jitter"), "")
        });
        for (field, v) in [
            ("unhealthyThreshold", &raw.unhealthy_threshold),
            ("healthyThreshold", &raw.healthy_threshold),
        ] {
            if let Some(v) = v
                .as_ref()
                .filter(|v| v.value == 0 || v.value > u64::from(u32::MAX))
            {
                self.err(
                    doc,
                    &v.referenced,
                    format!("{path}.{field}"),
                    format!("`{}`: must be from 1 to {}", v.value, u32::MAX),
                );
            }
        }
        let http = match (&raw.http, &raw.tcp) {
            (Some(http), None) => Some(self.http_check(doc, http, &format!("{path}.http"))),
            (None, Some(_)) => None,
            (Some(_), Some(_)) => {
                self.err(
                    doc,
                    &h.referenced,
                    path,
                    "set one of `http` and `tcp`, not both",
                );
                None
            }
            (None, None) => {
                self.err(
                    doc,
                    &h.referenced,
                    path,
                    "missing: how to check, `http: { path: /healthz }` or `tcp: {}`",
                );
                None
            }
        };
        (self.errors.len() == before).then(|| HealthCheck {
            interval,
            timeout,
            jitter,
            unhealthy_threshold: raw.unhealthy_threshold.as_ref().map(|v| v.value),
            healthy_threshold: raw.healthy_threshold.as_ref().map(|v| v.value),
            http,
        })
    }

    fn http_check(&mut self, doc: &Doc, h: &Spanned<RawTpHttpCheck>, path: &str) -> HttpCheck {
        let h = &h.value;
        // Visible ASCII: nothing that could end the request line or a
        // header, or be read two ways (the proxy's rule).
        let visible = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if let Some(p) = h
            .path
            .as_ref()
            .filter(|p| !(p.value.starts_with('/') && visible(&p.value)))
        {
            self.err(
                doc,
                &p.referenced,
                format!("{path}.path"),
                format!(
                    "`{}`: must start with / and hold no spaces or control characters",
                    p.value
                ),
            );
        }
        if let Some(v) = h.host.as_ref().filter(|v| !visible(&v.value)) {
            self.err(
                doc,
                &v.referenced,
                format!("{path}.host"),
                format!(
                    "`{}`: must be a host name, with no spaces or control characters",
                    v.value
                ),
            );
        }
        let mut expected_statuses = Vec::new();
        if let Some(list) = &h.expected_statuses {
            if list.value.is_empty() {
                self.err(
                    doc,
                    &list.referenced,
                    format!("{path}.expectedStatuses"),
                    "must list at least one status, e.g. [200] or [\"200-399\"]",
                );
            }
            for (i, r) in list.value.iter().enumerate() {
                match status_range(&r.value) {
                    Some(range) => expected_statuses.push(range),
                    None => self.err(
                        doc,
                        &r.referenced,
                        format!("{path}.expectedStatuses[{i}]"),
                        "must be a status from 100 to 599, or a range like \"200-299\"",
                    ),
                }
            }
        }
        HttpCheck {
            path: h.path.as_ref().map(|p| p.value.clone()),
            host: h.host.as_ref().map(|v| v.value.clone()),
            expected_statuses,
        }
    }
}

/// `(first, last)` of a status or a range, both from 100 to 599 and in
/// order.
fn status_range(r: &RawStatusRange) -> Option<(u32, u32)> {
    let status = |n: u64| u32::try_from(n).ok().filter(|s| (100..=599).contains(s));
    let (first, last) = match r {
        RawStatusRange::Code(n) => (status(*n)?, status(*n)?),
        RawStatusRange::Range(text) => {
            let num = |t: &str| t.trim().parse::<u64>().ok().and_then(status);
            match text.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(text)?, num(text)?),
            }
        }
    };
    (first <= last).then_some((first, last))
}
