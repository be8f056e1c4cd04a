//! A cluster's `health_check`: every setting checked and located, the
//! defaults filled in (`health::HealthCheck`'s constants, with their
//! reasons).

use serde_saphyr::Spanned;

use super::{Bounds, Validator};
use crate::config::model::UpstreamProtocol;
use crate::config::raw::{RawHealthCheck, RawHttpCheck, RawStatusRange};
use crate::health::{CheckKind, HealthCheck, HttpCheck};

impl Validator {
    /// `None` after reporting every problem of the check; `path` names the
    /// `health_check` field, `cluster` the cluster (the default Host).
    pub(super) fn health_check(
        &mut self,
        h: &Spanned<RawHealthCheck>,
        path: &str,
        cluster: &str,
        protocol: UpstreamProtocol,
        mesh: bool,
    ) -> Option<HealthCheck> {
        let raw = &h.value;
        let before = self.errors.len();
        let interval = self.duration(
            &raw.interval,
            &format!("{path}.interval"),
            HealthCheck::DEFAULT_INTERVAL,
            Bounds::NonZero,
        );
        let timeout = self.duration(
            &raw.timeout,
            &format!("{path}.timeout"),
            HealthCheck::DEFAULT_TIMEOUT,
            Bounds::NonZero,
        );
        let jitter = self.duration(
            &raw.jitter,
            &format!("{path}.jitter"),
            std::time::Duration::ZERO,
            Bounds::ZeroAllowed,
        );
        let unhealthy_threshold = self.threshold(
            &raw.unhealthy_threshold,
            &format!("{path}.unhealthy_threshold"),
            HealthCheck::DEFAULT_UNHEALTHY_THRESHOLD,
        );
        let healthy_threshold = self.threshold(
            &raw.healthy_threshold,
            &format!("{path}.healthy_threshold"),
            HealthCheck::DEFAULT_HEALTHY_THRESHOLD,
        );
        let kind = match (&raw.http, &raw.tcp) {
            (Some(http), None) => {
                if protocol == UpstreamProtocol::Http2 || mesh {
                    self.err(
                        &http.referenced,
                        format!("{path}.http"),
                        "HTTP health checks speak HTTP/1.1 and this cluster's endpoints speak \
                         HTTP/2 (`protocol: http2` or `mesh`): use `tcp: {}`",
                    );
                }
                self.http_check(&http.value, &format!("{path}.http"), cluster)
                    .map(CheckKind::Http)
            }
            (None, Some(_)) => Some(CheckKind::Tcp),
            (Some(_), Some(_)) => {
                self.err(&h.referenced, path, "set one of `http` and `tcp`, not both");
                None
            }
            (None, None) => {
                self.err(
                    &h.referenced,
                    path,
                    "missing: how to check, `http: { path: /healthz }` or `tcp: {}`",
                );
                None
            }
        };
        let kind = kind?;
        (self.errors.len() == before).then_some(HealthCheck {
            interval,
            timeout,
            jitter,
            unhealthy_threshold,
            healthy_threshold,
            kind,
        })
    }

    /// Checks in a row, 1 to u32::MAX; `default` when unset.
    fn threshold(&mut self, v: &Option<Spanned<u64>>, path: &str, default: u32) -> u32 {
        let n = self.count(v, path, default as usize, 1);
        u32::try_from(n).unwrap_or(default)
    }

    /// Every problem of an `http` check reported before `None`.
    fn http_check(&mut self, h: &RawHttpCheck, path: &str, cluster: &str) -> Option<HttpCheck> {
        // Visible ASCII: nothing that could end the request line or a
        // header, or be read two ways.
        let visible = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        let before = self.errors.len();
        let target = match &h.path {
            None => "/".to_string(),
            Some(p) => {
                if !(p.value.starts_with('/') && visible(&p.value)) {
                    self.err(
                        &p.referenced,
                        format!("{path}.path"),
                        format!(
                            "`{}`: must start with / and hold no spaces or control characters",
                            p.value
                        ),
                    );
                }
                p.value.clone()
            }
        };
        let host = match &h.host {
            None => cluster.to_string(),
            Some(v) => {
                if !visible(&v.value) {
                    self.err(
                        &v.referenced,
                        format!("{path}.host"),
                        format!(
                            "`{}`: must be a host name, with no spaces or control characters",
                            v.value
                        ),
                    );
                }
                v.value.clone()
            }
        };
        let expected = match &h.expected_statuses {
            None => vec![HttpCheck::DEFAULT_EXPECTED],
            Some(list) => {
                if list.value.is_empty() {
                    self.err(
                        &list.referenced,
                        format!("{path}.expected_statuses"),
                        "must list at least one status, e.g. [200] or [\"200-399\"]",
                    );
                }
                let mut ranges = Vec::with_capacity(list.value.len());
                for (i, r) in list.value.iter().enumerate() {
                    match status_range(&r.value) {
                        Some(range) => ranges.push(range),
                        None => self.err(
                            &r.referenced,
                            format!("{path}.expected_statuses[{i}]"),
                            format!(
                                "`{}`: must be a status from 100 to 599, or a range like \
                                 \"200-299\"",
                                describe(&r.value)
                            ),
                        ),
                    }
                }
                ranges
            }
        };
        (self.errors.len() == before).then(|| HttpCheck {
            path: target.into(),
            host: host.into(),
            expected: expected.into(),
        })
    }
}

/// `(first, last)` of a status or a range, both from 100 to 599 and in
/// order.
pub(crate) fn status_range(r: &RawStatusRange) -> Option<(u16, u16)> {
    let status = |n: u64| u16::try_from(n).ok().filter(|s| (100..=599).contains(s));
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

fn describe(r: &RawStatusRange) -> String {
    match r {
        RawStatusRange::Code(n) => n.to_string(),
        RawStatusRange::Range(t) => t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::health::{CheckKind, HealthCheck, HttpCheck};

    fn config(clusters: &str) -> String {
        format!(
            "listeners: [ {{ name: l, address: '127.0.0.1:1', routes: [ {{ cluster: a }} ] }} ]\nclusters:\n{clusters}"
        )
    }

    #[test]
    fn defaults_are_filled_in() {
        let c = parse(
            &config(
                "  - { name: a, endpoints: [127.0.0.1:1], health_check: { http: {} } }
  - { name: b, endpoints: [127.0.0.1:2], health_check: { tcp: {}, interval: 10s, jitter: 1s, unhealthy_threshold: 1 } }
  - { name: c, endpoints: [127.0.0.1:3] }
",
            ),
            "t.yaml",
        )
        .unwrap();
        let a = c.clusters[0].health_check.as_ref().expect("checked");
        assert_eq!(a.interval, HealthCheck::DEFAULT_INTERVAL);
        assert_eq!(a.timeout, HealthCheck::DEFAULT_TIMEOUT);
        assert_eq!(a.jitter, std::time::Duration::ZERO);
        assert_eq!(a.unhealthy_threshold, 3);
        assert_eq!(a.healthy_threshold, 2);
        assert_eq!(
            a.kind,
            CheckKind::Http(HttpCheck {
                path: "/".into(),
                host: "a".into(),
                expected: [(200, 399)].into(),
            })
        );
        let b = c.clusters[1].health_check.as_ref().expect("checked");
        assert_eq!(b.kind, CheckKind::Tcp);
        assert_eq!(b.interval, std::time::Duration::from_secs(10));
        assert_eq!(b.jitter, std::time::Duration::from_secs(1));
        assert_eq!(b.unhealthy_threshold, 1);
        assert!(c.clusters[2].health_check.is_none());
    }

    #[test]
    fn every_error_is_reported_where_written() {
        let yaml = config(
            "  - name: a
    endpoints: [127.0.0.1:1]
    health_check:
      interval: 0s
      timeout: soon
      unhealthy_threshold: 0
      http:
        path: healthz
        expected_statuses: [200, \"300-299\", 600, \"5xx\"]
  - name: b
    endpoints: [127.0.0.1:2]
    health_check: { http: { host: 'a b' }, tcp: {} }
  - name: c
    endpoints: [127.0.0.1:3]
    health_check: { interval: 1s }
  - name: d
    endpoints: [127.0.0.1:4]
    protocol: http2
    health_check:
      http: { expected_statuses: [] }
",
        );
        let err = parse(&yaml, "t.yaml").unwrap_err().to_string();
        for want in [
            "t.yaml:6:",
            "clusters[0].health_check.interval: `0s`: must be more than zero",
            "t.yaml:7:",
            "clusters[0].health_check.timeout: `soon` is not a duration",
            "t.yaml:8:",
            "clusters[0].health_check.unhealthy_threshold: must be from 1",
            "t.yaml:10:",
            "clusters[0].health_check.http.path: `healthz`: must start with /",
            "t.yaml:11:",
            "clusters[0].health_check.http.expected_statuses[1]: `300-299`",
            "clusters[0].health_check.http.expected_statuses[2]: `600`",
            "clusters[0].health_check.http.expected_statuses[3]: `5xx`",
            "t.yaml:14:",
            "clusters[1].health_check: set one of `http` and `tcp`, not both",
            "clusters[2].health_check: missing: how to check",
            "clusters[3].health_check.http: HTTP health checks speak HTTP/1.1",
            "clusters[3].health_check.http.expected_statuses: must list at least one status",
        ] {
            assert!(err.contains(want), "{want} in\n{err}");
        }
        assert!(!err.contains("expected_statuses[0]"), "200 is fine:\n{err}");
    }
}
