//! `TrafficPolicy` (`ringmesh.io/v1alpha1`): how the proxies call a
//! Service (balancing, circuit breaking, outlier detection, retry budget,
//! panic threshold) and how its sidecars limit the calls they take (a
//! local rate limit). Attached by `targetRefs` (Services of the policy's
//! own namespace, as AuthorizationPolicy's), shaped after Istio's
//! DestinationRule `trafficPolicy`, with the proxy's own names where
//! Istio has none. Every value is checked here as the proxy checks it,
//! so a policy the proxies would NACK is refused at apply time.
//!
//! One policy per Service: a second one targeting it is an error at its
//! `targetRefs` entry (there are no creation times to pick the older, as
//! Istio does for DestinationRules). `healthCheck` is the proxy's active
//! health checks (`health_check.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::super::model::*;
use super::super::raw::*;
use super::{did_you_mean, Checker, Doc};

const SIMPLE: [&str; 5] = [
    "ROUND_ROBIN",
    "LEAST_REQUEST",
    "PEAK_EWMA",
    "RING_HASH",
    "MAGLEV",
];

impl Checker {
    /// A checked TrafficPolicy, or `None` after reporting why not.
    /// `taken`: Service -> the policy (and where) that targets it.
    pub(super) fn traffic_policy(
        &mut self,
        doc: &Doc,
        p: &RawTrafficPolicy,
        at: &str,
        name: String,
        known: &Resources,
        taken: &mut BTreeMap<String, String>,
    ) -> Option<TrafficPolicy> {
        let errors = self.errors.len();
        let spec = &p.spec;
        for (field, value, why) in [
            (
                "tls",
                &spec.tls,
                ": a BackendTLSPolicy originates TLS to a Service",
            ),
            (
                "portLevelSettings",
                &spec.port_level_settings,
                ": a policy applies to every port of its Services",
            ),
            ("tunnel", &spec.tunnel, ""),
            ("proxyProtocol", &spec.proxy_protocol, ""),
        ] {
            self.unsupported(doc, value, &format!("{at}.spec.{field}"), why);
        }
        let mut targets = Vec::new();
        match &spec.target_refs {
            None => self.err(
                doc,
                &p.kind.referenced,
                format!("{at}.spec.targetRefs"),
                "missing: the Services this policy applies to (`- { kind: Service, name: ... }`)",
            ),
            Some(refs) if refs.is_empty() => self.err(
                doc,
                &p.kind.referenced,
                format!("{at}.spec.targetRefs"),
                "empty: name the Services this policy applies to",
            ),
            Some(refs) => {
                for (i, r) in refs.iter().enumerate() {
                    let path = format!("{at}.spec.targetRefs[{i}]");
                    let Some(q) = self.service_target(
                        doc,
                        r,
                        &path,
                        known,
                        "a TrafficPolicy applies to Services",
                        &[],
                        None,
                    ) else {
                        continue;
                    };
                    let here =
                        format!("{name} ({}:{})", doc.file, doc.offset + r.referenced.line());
                    if let Some(first) = taken.get(&q) {
                        self.err(
                            doc,
                            &r.value.name.referenced,
                            format!("{path}.name"),
                            format!("Service `{q}` already has a TrafficPolicy: {first}; a Service takes one (merge them)"),
                        );
                        continue;
                    }
                    taken.insert(q.clone(), here);
                    if !targets.contains(&q) {
                        targets.push(q);
                    }
                }
            }
        }
        let load_balancer = spec
            .load_balancer
            .as_ref()
            .and_then(|lb| self.load_balancer(doc, lb, &format!("{at}.spec.loadBalancer")));
        let (breakers, connect_timeout, idle_timeout) = self.pool_limits(doc, spec, at);
        let outlier = spec
            .outlier_detection
            .as_ref()
            .map(|o| self.outlier(doc, o, &format!("{at}.spec.outlierDetection")));
        let retry_budget = spec.retry_budget.as_ref().map(|b| {
            let path = format!("{at}.spec.retryBudget");
            RetryBudget {
                percent: b
                    .value
                    .percent
                    .as_ref()
                    .and_then(|p| self.share(doc, p, &format!("{path}.percent"))),
                min_per_second: b.value.min_retries_per_second.as_ref().map(|m| m.value),
            }
        });
        let rate_limit = spec
            .rate_limit
            .as_ref()
            .and_then(|r| self.tp_rate_limit(doc, r, &format!("{at}.spec.rateLimit")));
        let panic_threshold = spec
            .panic_threshold
            .as_ref()
            .and_then(|p| self.share(doc, p, &format!("{at}.spec.panicThreshold")));
        let health_check = spec
            .health_check
            .as_ref()
            .and_then(|h| self.health_check(doc, h, &format!("{at}.spec.healthCheck")));
        (self.errors.len() == errors).then(|| TrafficPolicy {
            name,
            targets,
            load_balancer,
            breakers,
            connect_timeout,
            idle_timeout,
            outlier,
            retry_budget,
            rate_limit,
            panic_threshold,
            health_check,
            source: Source {
                file: doc.file.clone(),
                line: doc.offset + p.kind.referenced.line(),
            },
        })
    }

    fn load_balancer(
        &mut self,
        doc: &Doc,
        lb: &Spanned<RawLoadBalancer>,
        path: &str,
    ) -> Option<LoadBalancer> {
        let errors = self.errors.len();
        let raw = &lb.value;
        for (field, value) in [
            ("localityLbSetting", &raw.locality_lb_setting),
            ("warmupDurationSecs", &raw.warmup_duration_secs),
            ("warmup", &raw.warmup),
        ] {
            self.unsupported(doc, value, &format!("{path}.{field}"), "");
        }
        let hashing = raw.consistent_hash.is_some();
        let kind = match raw.simple.as_ref() {
            None if hashing => match &raw.consistent_hash {
                Some(h) if h.value.maglev.is_some() => LbKind::Maglev,
                _ => LbKind::RingHash,
            },
            None => LbKind::RoundRobin,
            Some(s) => match s.value.as_str() {
                "ROUND_ROBIN" => LbKind::RoundRobin,
                "LEAST_REQUEST" => LbKind::LeastRequest,
                "PEAK_EWMA" => LbKind::PeakEwma,
                "RING_HASH" => LbKind::RingHash,
                "MAGLEV" => LbKind::Maglev,
                other @ ("RANDOM" | "PASSTHROUGH" | "UNSPECIFIED" | "LEAST_CONN") => {
                    self.err(
                        doc,
                        &s.referenced,
                        format!("{path}.simple"),
                        format!("`{other}` is not supported yet: use {}", SIMPLE.join(", ")),
                    );
                    LbKind::RoundRobin
                }
                other => {
                    self.err(
                        doc,
                        &s.referenced,
                        format!("{path}.simple"),
                        format!(
                            "unknown load balancer `{other}`{}: use {}",
                            did_you_mean(other, &SIMPLE),
                            SIMPLE.join(", ")
                        ),
                    );
                    LbKind::RoundRobin
                }
            },
        };
        let hashes = matches!(kind, LbKind::RingHash | LbKind::Maglev);
        let mut out = LoadBalancer {
            kind,
            hash: None,
            ring_points: None,
            table_size: None,
            half_life: None,
            default_rtt: None,
        };
        match (&raw.consistent_hash, hashes) {
            (Some(h), true) => self.consistent_hash(doc, h, &format!("{path}.consistentHash"), &mut out),
            (Some(h), false) => self.err(
                doc,
                &h.referenced,
                format!("{path}.consistentHash"),
                "goes with `simple: RING_HASH` or `MAGLEV` (or no `simple`)",
            ),
            (None, true) => self.err(
                doc,
                &lb.referenced,
                format!("{path}.consistentHash"),
                "missing: what RING_HASH and MAGLEV hash (`httpHeaderName`, `httpCookie` or `useSourceIp`)",
            ),
            (None, false) => {}
        }
        if let Some(e) = &raw.peak_ewma {
            if kind != LbKind::PeakEwma {
                self.err(
                    doc,
                    &e.referenced,
                    format!("{path}.peakEwma"),
                    "goes with `simple: PEAK_EWMA`",
                );
            }
            let d = |c: &mut Checker, v: &Option<Spanned<String>>, field: &str| {
                v.as_ref().and_then(|v| {
                    c.duration(
                        doc,
                        v,
                        &format!("{path}.peakEwma.{field}"),
                        "must be more than 0",
                    )
                })
            };
            out.half_life = d(self, &e.value.half_life, "halfLife");
            out.default_rtt = d(self, &e.value.default_rtt, "defaultRtt");
        }
        (self.errors.len() == errors).then_some(out)
    }

    fn consistent_hash(
        &mut self,
        doc: &Doc,
        h: &Spanned<RawConsistentHash>,
        path: &str,
        out: &mut LoadBalancer,
    ) {
        let raw = &h.value;
        self.unsupported(
            doc,
            &raw.http_query_parameter_name,
            &format!("{path}.httpQueryParameterName"),
            ": hash on a header, a cookie or the source IP",
        );
        let sizes = ": the proxy sizes a ring per endpoint; write ringmesh's `ringPoints` (points per unit of weight, default 128)";
        self.unsupported(
            doc,
            &raw.minimum_ring_size,
            &format!("{path}.minimumRingSize"),
            sizes,
        );
        self.unsupported(doc, &raw.ring_hash, &format!("{path}.ringHash"), sizes);
        let mut keys = Vec::new();
        if let Some(n) = &raw.http_header_name {
            if !super::token(&n.value) {
                self.err(
                    doc,
                    &n.referenced,
                    format!("{path}.httpHeaderName"),
                    format!("`{}` is not a header name", n.value),
                );
            }
            keys.push((n.referenced, HashKey::Header(n.value.to_ascii_lowercase())));
        }
        if let Some(c) = &raw.http_cookie {
            self.unsupported(
                doc,
                &c.value.path,
                &format!("{path}.httpCookie.path"),
                ": the proxy reads the cookie, it does not set one",
            );
            self.unsupported(
                doc,
                &c.value.ttl,
                &format!("{path}.httpCookie.ttl"),
                ": the proxy reads the cookie, it does not set one",
            );
            let n = &c.value.name;
            let ok = !n.value.is_empty()
                && n.value
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
            if !ok {
                self.err(
                    doc,
                    &n.referenced,
                    format!("{path}.httpCookie.name"),
                    format!("`{}` is not a cookie name", n.value),
                );
            }
            keys.push((c.referenced, HashKey::Cookie(n.value.clone())));
        }
        if let Some(s) = &raw.use_source_ip {
            if s.value {
                keys.push((s.referenced, HashKey::SourceIp));
            }
        }
        match keys.len() {
            0 => self.err(
                doc,
                &h.referenced,
                path.to_string(),
                "give `httpHeaderName`, `httpCookie` or `useSourceIp: true`",
            ),
            1 => out.hash = keys.pop().map(|(_, k)| k),
            _ => self.err(
                doc,
                &keys[1].0,
                path.to_string(),
                "one key: `httpHeaderName`, `httpCookie` or `useSourceIp`",
            ),
        }
        if let Some(p) = &raw.ring_points {
            if out.kind != LbKind::RingHash {
                self.err(
                    doc,
                    &p.referenced,
                    format!("{path}.ringPoints"),
                    "goes with RING_HASH",
                );
            } else if !(1..=4096).contains(&p.value) {
                self.err(
                    doc,
                    &p.referenced,
                    format!("{path}.ringPoints"),
                    format!("{}: must be from 1 to 4096", p.value),
                );
            }
            out.ring_points = Some(p.value);
        }
        if let Some(m) = &raw.maglev {
            if out.kind != LbKind::Maglev {
                self.err(
                    doc,
                    &m.referenced,
                    format!("{path}.maglev"),
                    "goes with MAGLEV",
                );
            }
            if let Some(t) = &m.value.table_size {
                let prime = (2..)
                    .take_while(|d| d * d <= t.value)
                    .all(|d| t.value % d != 0);
                if !(17..=5_000_011).contains(&t.value) || !prime {
                    self.err(
                        doc,
                        &t.referenced,
                        format!("{path}.maglev.tableSize"),
                        format!(
                            "{}: Maglev needs a prime from 17 to 5000011 (65537 is the default)",
                            t.value
                        ),
                    );
                }
                out.table_size = Some(t.value);
            }
        }
    }

    /// `connectionPool` (Istio's names) and `circuitBreaker` (the
    /// proxy's): the same limits, each given in one place.
    fn pool_limits(
        &mut self,
        doc: &Doc,
        spec: &RawTrafficPolicySpec,
        at: &str,
    ) -> (Breakers, Option<Duration>, Option<Duration>) {
        let mut b = Breakers::default();
        let (mut connect, mut idle) = (None, None);
        // (field of Breakers, where it was set)
        let mut set: BTreeMap<&str, String> = BTreeMap::new();
        let mut limit = |c: &mut Checker,
                         slot: &mut Option<u64>,
                         key: &'static str,
                         v: &Option<Spanned<u64>>,
                         path: String| {
            let Some(v) = v else { return };
            if v.value == 0 {
                c.err(doc, &v.referenced, &path, "must be at least 1");
                return;
            }
            if let Some(first) = set.get(key) {
                c.err(
                    doc,
                    &v.referenced,
                    &path,
                    format!("also set as {first}: set it in one place"),
                );
                return;
            }
            set.insert(key, path);
            *slot = Some(v.value);
        };
        if let Some(pool) = &spec.connection_pool {
            let path = format!("{at}.spec.connectionPool");
            if let Some(tcp) = &pool.value.tcp {
                let t = &tcp.value;
                limit(
                    self,
                    &mut b.max_connections,
                    "connections",
                    &t.max_connections,
                    format!("{path}.tcp.maxConnections"),
                );
                connect = t.connect_timeout.as_ref().and_then(|d| {
                    self.duration(
                        doc,
                        d,
                        &format!("{path}.tcp.connectTimeout"),
                        "must be more than 0",
                    )
                });
                for (field, value) in [
                    ("tcpKeepalive", &t.tcp_keepalive),
                    ("maxConnectionDuration", &t.max_connection_duration),
                    ("idleTimeout", &t.idle_timeout),
                ] {
                    self.unsupported(doc, value, &format!("{path}.tcp.{field}"), "");
                }
            }
            if let Some(http) = &pool.value.http {
                let h = &http.value;
                limit(
                    self,
                    &mut b.max_pending_requests,
                    "pending",
                    &h.http1_max_pending_requests,
                    format!("{path}.http.http1MaxPendingRequests"),
                );
                limit(
                    self,
                    &mut b.max_requests,
                    "requests",
                    &h.http2_max_requests,
                    format!("{path}.http.http2MaxRequests"),
                );
                limit(
                    self,
                    &mut b.max_retries,
                    "retries",
                    &h.max_retries,
                    format!("{path}.http.maxRetries"),
                );
                idle = h.idle_timeout.as_ref().and_then(|d| {
                    self.duration(
                        doc,
                        d,
                        &format!("{path}.http.idleTimeout"),
                        "must be more than 0",
                    )
                });
                for (field, value) in [
                    ("maxRequestsPerConnection", &h.max_requests_per_connection),
                    ("h2UpgradePolicy", &h.h2_upgrade_policy),
                    ("useClientProtocol", &h.use_client_protocol),
                    ("maxConcurrentStreams", &h.max_concurrent_streams),
                ] {
                    self.unsupported(doc, value, &format!("{path}.http.{field}"), "");
                }
            }
        }
        if let Some(cb) = &spec.circuit_breaker {
            let path = format!("{at}.spec.circuitBreaker");
            let c = &cb.value;
            limit(
                self,
                &mut b.max_connections,
                "connections",
                &c.max_connections,
                format!("{path}.maxConnections"),
            );
            limit(
                self,
                &mut b.max_pending_requests,
                "pending",
                &c.max_pending_requests,
                format!("{path}.maxPendingRequests"),
            );
            limit(
                self,
                &mut b.max_requests,
                "requests",
                &c.max_requests,
                format!("{path}.maxRequests"),
            );
            limit(
                self,
                &mut b.max_retries,
                "retries",
                &c.max_retries,
                format!("{path}.maxRetries"),
            );
        }
        (b, connect, idle)
    }

    fn outlier(&mut self, doc: &Doc, o: &Spanned<RawOutlierDetection>, path: &str) -> Outlier {
        let raw = &o.value;
        for (field, value, why) in [
            (
                "minHealthPercent",
                &raw.min_health_percent,
                ": `panicThreshold` says when every endpoint gets traffic again",
            ),
            (
                "splitExternalLocalOriginErrors",
                &raw.split_external_local_origin_errors,
                "",
            ),
            (
                "consecutiveLocalOriginFailures",
                &raw.consecutive_local_origin_failures,
                "",
            ),
            (
                "consecutiveErrors",
                &raw.consecutive_errors,
                ": deprecated in Istio; use consecutive5xxErrors",
            ),
        ] {
            self.unsupported(doc, value, &format!("{path}.{field}"), why);
        }
        let d = |c: &mut Checker, v: &Option<Spanned<String>>, field: &str| {
            v.as_ref()
                .and_then(|v| c.duration(doc, v, &format!("{path}.{field}"), "must be more than 0"))
        };
        let base = d(self, &raw.base_ejection_time, "baseEjectionTime");
        let max = d(self, &raw.max_ejection_time, "maxEjectionTime");
        if let (Some(m), Some(b), Some(at)) = (max, base, &raw.max_ejection_time) {
            if m < b {
                self.err(
                    doc,
                    &at.referenced,
                    format!("{path}.maxEjectionTime"),
                    format!("`{}` is shorter than baseEjectionTime", at.value),
                );
            }
        }
        let success_rate = raw.success_rate.as_ref().map(|s| {
            let s = &s.value;
            for (field, v) in [
                ("minimumHosts", &s.minimum_hosts),
                ("requestVolume", &s.request_volume),
            ] {
                if let Some(v) = v.as_ref().filter(|v| v.value == 0) {
                    self.err(
                        doc,
                        &v.referenced,
                        format!("{path}.successRate.{field}"),
                        "must be at least 1",
                    );
                }
            }
            if let Some(f) = s
                .stdev_factor
                .as_ref()
                .filter(|f| !(f.value > 0.0 && f.value <= 100.0))
            {
                self.err(
                    doc,
                    &f.referenced,
                    format!("{path}.successRate.stdevFactor"),
                    format!("{}: must be more than 0 and at most 100", f.value),
                );
            }
            (
                s.minimum_hosts.as_ref().map(|v| v.value),
                s.request_volume.as_ref().map(|v| v.value),
                s.stdev_factor.as_ref().map(|v| v.value),
            )
        });
        Outlier {
            consecutive_5xx: raw.consecutive_5xx_errors.as_ref().map(|v| v.value),
            consecutive_gateway_errors: raw.consecutive_gateway_errors.as_ref().map(|v| v.value),
            interval: d(self, &raw.interval, "interval"),
            base_ejection_time: base,
            max_ejection_time: max,
            max_ejection_percent: raw
                .max_ejection_percent
                .as_ref()
                .and_then(|p| self.share(doc, p, &format!("{path}.maxEjectionPercent"))),
            success_rate,
        }
    }

    fn tp_rate_limit(
        &mut self,
        doc: &Doc,
        r: &Spanned<RawTpRateLimit>,
        path: &str,
    ) -> Option<RateLimit> {
        let raw = &r.value;
        let rps = match &raw.requests_per_second {
            Some(v) if v.value.is_finite() && v.value > 0.0 => Some(v.value),
            Some(v) => {
                self.err(
                    doc,
                    &v.referenced,
                    format!("{path}.requestsPerSecond"),
                    format!("{}: must be a number more than 0", v.value),
                );
                None
            }
            None => {
                self.missing_at(
                    doc,
                    &r.referenced,
                    format!("{path}.requestsPerSecond"),
                    "the long-run rate, all of a sidecar's workers together",
                );
                None
            }
        };
        let burst = match &raw.burst {
            Some(b) if (1..=u64::from(u32::MAX)).contains(&b.value) => Some(b.value),
            Some(b) => {
                self.err(
                    doc,
                    &b.referenced,
                    format!("{path}.burst"),
                    format!("{}: must be from 1 to {}", b.value, u32::MAX),
                );
                None
            }
            None => {
                self.missing_at(
                    doc,
                    &r.referenced,
                    format!("{path}.burst"),
                    "requests taken at once after a quiet spell (at least 1)",
                );
                None
            }
        };
        let per = match raw.per.as_ref().map(|p| &p.value) {
            None => None,
            Some(RawRateLimitPer::Source) => Some(None),
            Some(RawRateLimitPer::Header(h)) => {
                if !super::token(&h.value) {
                    self.err(
                        doc,
                        &h.referenced,
                        format!("{path}.per.header"),
                        format!("`{}` is not a header name", h.value),
                    );
                }
                Some(Some(h.value.to_ascii_lowercase()))
            }
        };
        Some(RateLimit {
            requests_per_second: rps?,
            burst: burst?,
            per,
        })
    }

    fn missing_at(&mut self, doc: &Doc, at: &Location, path: String, what: &str) {
        self.err(doc, at, path, format!("missing: {what}"));
    }
}
