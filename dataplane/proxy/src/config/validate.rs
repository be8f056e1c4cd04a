//! Raw config -> validated model, reporting every error with its place.
//!
//! Validation never stops at the first problem: each check records an error
//! (line, column, field path, message) and carries on with a placeholder, so
//! a user fixes a file in one round trip. Only YAML that does not match the
//! schema at all stops early, because then there is nothing to walk.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringmesh_http1::rewrite::HeaderEdits;
use ringmesh_http1::Limits;
use serde_saphyr::{Location, Spanned};

use super::model::*;
use super::raw::*;
use super::{ConfigError, ConfigErrors};

mod authz;
mod balance;
mod fault;
mod health;
mod http2;
mod mesh;
mod mirror;
mod rate_limit;
mod redirect;
mod resilience;
mod telemetry;
mod tls;

pub(super) use health::status_range;

use crate::tls::mesh::{IdentitySource, Svid};
use tls::Offers;

/// Parse and validate YAML text; `file` names it in errors.
pub fn parse(text: &str, file: &str, base: Option<&Path>) -> Result<Config, ConfigErrors> {
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| ConfigErrors {
        file: file.to_string(),
        errors: vec![schema_error(&e)],
    })?;
    validate(&raw, file, base, IdentitySource::Files)
}

/// Validate a raw config, from a file or converted from a pushed snapshot;
/// `file` names its source in errors; relative paths in it (certificates)
/// are relative to `base`, or to the working directory.
pub fn validate(
    raw: &RawConfig,
    file: &str,
    base: Option<&Path>,
    identity: IdentitySource,
) -> Result<Config, ConfigErrors> {
    let mut v = Validator {
        errors: Vec::new(),
        base: base.map(Path::to_path_buf),
        identity,
    };
    let config = v.config(raw);
    if v.errors.is_empty() {
        Ok(config)
    } else {
        v.errors.sort_by_key(|e| (e.line, e.column));
        Err(ConfigErrors {
            file: file.to_string(),
            errors: v.errors,
        })
    }
}

/// A route's name as metrics and logs show it: `route<index>` when unset.
fn route_name(r: &RawRoute, index: usize) -> String {
    r.name
        .as_ref()
        .map(|n| n.value.clone())
        .unwrap_or_else(|| format!("route{index}"))
}

fn schema_error(e: &serde_saphyr::Error) -> ConfigError {
    let loc = e.location().unwrap_or(Location::UNKNOWN);
    let text = e.without_snippet().to_string();
    let message = text
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_string();
    ConfigError {
        line: loc.line(),
        column: loc.column(),
        path: String::new(),
        message: with_suggestion(message),
    }
}

/// serde reports an unknown field with the list of expected ones; add the
/// closest as a "did you mean". The location suffix is dropped: the error
/// already starts with `file:line:column`.
fn with_suggestion(message: String) -> String {
    let message = match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    let Some(rest) = message.split("unknown field `").nth(1) else {
        return message;
    };
    let Some((unknown, rest)) = rest.split_once('`') else {
        return message;
    };
    let Some((_, expected)) = rest.split_once("expected one of ") else {
        return message;
    };
    let best = expected
        .split(',')
        .map(|cand| cand.trim().trim_matches('`'))
        .map(|cand| (strsim::jaro_winkler(unknown, cand), cand))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, cand)) => format!("{message} (did you mean `{cand}`?)"),
        None => message,
    }
}

/// The gRPC statuses a route may retry on, by the names Envoy's
/// `retry_on` and the Gateway API use, as their codes.
fn grpc_retry_code(name: &str) -> Option<u8> {
    Some(match name {
        "cancelled" => 1,
        "deadline-exceeded" => 4,
        "resource-exhausted" => 8,
        "internal" => 13,
        "unavailable" => 14,
        _ => return None,
    })
}

struct Validator {
    errors: Vec<ConfigError>,
    /// Directory relative file paths are resolved against.
    base: Option<PathBuf>,
    /// Where the workload identity comes from.
    identity: IdentitySource,
}

/// Whether a duration setting may be zero (every duration is also at most
/// `defaults::MAX_DURATION`: a longer one is a typo, and would overflow the
/// timer at the first request that arms it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bounds {
    /// Zero would fail every request or connection (a timeout), or spin (a
    /// refresh period).
    NonZero,
    /// Zero has a meaning of its own, documented with the setting.
    ZeroAllowed,
}

impl Validator {
    fn err(&mut self, at: &Location, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            line: at.line(),
            column: at.column(),
            path: path.into(),
            message: message.into(),
        });
    }

    fn config(&mut self, raw: &RawConfig) -> Config {
        let runtime = self.runtime(&raw.runtime);
        let admin = raw
            .admin
            .as_ref()
            .and_then(|a| self.socket_addr(&a.address, "admin.address"));
        let identity = self.identity(raw);
        let (clusters, by_name) = self.clusters(&raw.clusters, identity.as_ref());
        let listeners = self.listeners(&raw.listeners, &by_name, identity.as_ref());
        let tracing = raw
            .tracing
            .as_ref()
            .and_then(|t| self.tracing(t, identity.as_deref()));
        let zone = raw
            .zone
            .as_ref()
            .and_then(|z| self.zone_name(&z.value, z, "zone"));
        Config {
            tracing,
            zone,
            runtime,
            admin,
            listeners,
            clusters,
            identity,
            dump: serde_json::to_value(raw).unwrap_or(serde_json::Value::Null),
        }
    }

    fn runtime(&mut self, raw: &RawRuntime) -> Runtime {
        let workers = match &raw.workers {
            None => Workers::Auto,
            Some(s) => match &s.value {
                StringOrNumber::String(a) if a == "auto" => Workers::Auto,
                StringOrNumber::Number(n) if (1..=1024).contains(n) => Workers::Count(*n as usize),
                _ => {
                    self.err(
                        &s.referenced,
                        "runtime.workers",
                        "must be `auto` or a number from 1 to 1024",
                    );
                    Workers::Auto
                }
            },
        };
        let cpu_affinity = raw.cpu_affinity.as_ref().and_then(|s| {
            let cpus = core_affinity::get_core_ids()
                .map(|ids| ids.len())
                .unwrap_or(usize::MAX);
            if s.value.is_empty() {
                self.err(
                    &s.referenced,
                    "runtime.cpu_affinity",
                    "must list at least one CPU id",
                );
                return None;
            }
            if let Some(bad) = s.value.iter().find(|&&id| id >= 1024) {
                self.err(
                    &s.referenced,
                    "runtime.cpu_affinity",
                    format!("CPU id {bad} is not a valid CPU (this machine has {cpus})"),
                );
                return None;
            }
            Some(s.value.clone())
        });
        let io = match raw.io.as_ref().map(|s| (s.value.as_str(), s)) {
            None | Some(("auto", _)) => IoMode::Auto,
            Some(("uring", _)) => IoMode::Uring,
            Some(("epoll", _)) => IoMode::Epoll,
            Some((other, s)) => {
                self.err(
                    &s.referenced,
                    "runtime.io",
                    format!("unknown io driver `{other}`: use auto, uring or epoll"),
                );
                IoMode::Auto
            }
        };
        let drain_timeout = self.duration(
            &raw.drain_timeout,
            "runtime.drain_timeout",
            defaults::DRAIN_TIMEOUT,
            Bounds::ZeroAllowed,
        );
        let drain_delay = self.duration(
            &raw.drain_delay,
            "runtime.drain_delay",
            defaults::DRAIN_DELAY,
            Bounds::ZeroAllowed,
        );
        Runtime {
            workers,
            cpu_affinity,
            io,
            drain_timeout,
            drain_delay,
        }
    }

    fn clusters(
        &mut self,
        raw: &[Spanned<RawCluster>],
        svid: Option<&Arc<Svid>>,
    ) -> (Vec<Cluster>, HashMap<String, ClusterId>) {
        let mut by_name = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, c) in raw.iter().enumerate() {
            let path = format!("clusters[{i}]");
            let c = &c.value;
            if by_name.insert(c.name.value.clone(), out.len()).is_some() {
                self.err(
                    &c.name.referenced,
                    format!("{path}.name"),
                    format!("duplicate cluster name `{}`", c.name.value),
                );
            }
            self.name(&c.name, &format!("{path}.name"));
            out.push(self.cluster(c, &path, svid));
        }
        (out, by_name)
    }

    fn cluster(&mut self, c: &RawCluster, path: &str, svid: Option<&Arc<Svid>>) -> Cluster {
        let endpoints = self.endpoints(c, path);
        let mesh = self.cluster_mesh(c, path);
        let (protocol, tls, mesh_tcp_tls) = match (&mesh, &c.mesh) {
            (Some(expected), Some(m)) => {
                let built = self.mesh_client_tls(svid, expected, &m.referenced, path);
                let (http, tcp) = built.unzip();
                (UpstreamProtocol::Http2, http, tcp)
            }
            _ => {
                let protocol = self.protocol(&c.protocol, &format!("{path}.protocol"));
                let tls = c.tls.as_ref().and_then(|t| {
                    self.upstream_tls(t, &endpoints, protocol, &format!("{path}.tls"))
                });
                (protocol, tls, None)
            }
        };
        let lb = self.lb(c, path);
        let pool = PoolConfig {
            max_idle_per_endpoint: self.count(
                &c.pool.max_idle_per_endpoint,
                &format!("{path}.pool.max_idle_per_endpoint"),
                defaults::MAX_IDLE_PER_ENDPOINT,
                0,
            ),
            idle_timeout: self.duration(
                &c.pool.idle_timeout,
                &format!("{path}.pool.idle_timeout"),
                defaults::POOL_IDLE_TIMEOUT,
                Bounds::ZeroAllowed,
            ),
            max_connections: self.max_connections(c, path),
        };
        Cluster {
            name: c.name.value.clone(),
            endpoints,
            lb,
            connect_timeout: self.duration(
                &c.connect_timeout,
                &format!("{path}.connect_timeout"),
                defaults::CONNECT_TIMEOUT,
                Bounds::NonZero,
            ),
            dns_refresh: self.duration(
                &c.dns_refresh,
                &format!("{path}.dns_refresh"),
                defaults::DNS_REFRESH,
                Bounds::NonZero,
            ),
            pool,
            health_check: c.health_check.as_ref().and_then(|h| {
                let path = format!("{path}.health_check");
                self.health_check(h, &path, &c.name.value, protocol, mesh.is_some())
            }),
            tls,
            protocol,
            mesh,
            mesh_tcp_tls,
            retry_budget: c
                .retry_budget
                .as_ref()
                .map(|b| self.retry_budget(b, &format!("{path}.retry_budget"))),
            panic_threshold: self.panic_threshold(c, path),
            breakers: self.breakers(c, path),
            outlier: self.outlier(c, path),
        }
    }

    fn listeners(
        &mut self,
        raw: &[Spanned<RawListener>],
        clusters: &HashMap<String, ClusterId>,
        svid: Option<&Arc<Svid>>,
    ) -> Vec<Listener> {
        let mut names = HashMap::new();
        let mut addrs = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, l) in raw.iter().enumerate() {
            let path = format!("listeners[{i}]");
            let l = &l.value;
            self.name(&l.name, &format!("{path}.name"));
            if names.insert(l.name.value.clone(), i).is_some() {
                self.err(
                    &l.name.referenced,
                    format!("{path}.name"),
                    format!("duplicate listener name `{}`", l.name.value),
                );
            }
            let address = self.socket_addr(&l.address, &format!("{path}.address"));
            if let Some(a) = address.filter(|a| a.port() != 0) {
                if let Some(prev) = addrs.insert(a, l.name.value.clone()) {
                    self.err(
                        &l.address.referenced,
                        format!("{path}.address"),
                        format!("address {a} is already used by listener `{prev}`"),
                    );
                }
            }
            out.push(self.listener(l, &path, address, clusters, svid));
        }
        if raw.is_empty() {
            self.err(
                &Location::UNKNOWN,
                "listeners",
                "at least one listener is needed",
            );
        }
        out
    }

    /// One listener's own settings and routes; `address` is already parsed
    /// (and checked against the other listeners').
    fn listener(
        &mut self,
        l: &RawListener,
        path: &str,
        address: Option<SocketAddr>,
        clusters: &HashMap<String, ClusterId>,
        svid: Option<&Arc<Svid>>,
    ) -> Listener {
        let limit_defaults = Limits::default();
        let limits = Limits {
            max_header_bytes: self.count(
                &l.max_header_bytes,
                &format!("{path}.max_header_bytes"),
                limit_defaults.max_header_bytes,
                256,
            ),
            max_headers: self.count(
                &l.max_headers,
                &format!("{path}.max_headers"),
                limit_defaults.max_headers,
                1,
            ),
        };
        if limits.max_headers > ringmesh_http1::head::MAX_HEADERS_CEILING {
            if let Some(s) = &l.max_headers {
                self.err(
                    &s.referenced,
                    format!("{path}.max_headers"),
                    format!("at most {}", ringmesh_http1::head::MAX_HEADERS_CEILING),
                );
            }
        }
        let routes: Vec<Route> = l
            .routes
            .iter()
            .enumerate()
            .map(|(j, r)| {
                self.route(
                    &r.value,
                    &r.referenced,
                    &format!("{path}.routes[{j}]"),
                    j,
                    clusters,
                )
            })
            .collect();
        self.unique_route_names(&l.routes, path);
        let x_forwarded_proto = match l.x_forwarded_proto.as_ref().map(|s| (s.value.as_str(), s)) {
            None | Some(("overwrite", _)) => ForwardedProto::Overwrite,
            Some(("trust", _)) => ForwardedProto::Trust,
            Some((other, s)) => {
                self.err(
                    &s.referenced,
                    format!("{path}.x_forwarded_proto"),
                    format!("unknown x_forwarded_proto `{other}`: use overwrite or trust"),
                );
                ForwardedProto::Overwrite
            }
        };
        let http2 = self.http2(&l.http2, limits.max_header_bytes, &format!("{path}.http2"));
        let mesh = self.listener_mesh(l, path);
        let tls = match (mesh, &l.mesh) {
            (Some(_), Some(m)) => {
                self.mesh_server_tls(svid, &l.name.value, l.tcp.is_some(), &m.referenced, path)
            }
            _ => l.tls.as_ref().and_then(|t| {
                // A listener that only relays TCP claims no protocol.
                let offers = match (l.tcp.is_none() || l.detect.is_some(), http2.is_some()) {
                    (false, _) => Offers::Nothing,
                    (true, true) => Offers::H2AndHttp1,
                    (true, false) => Offers::Http1,
                };
                self.downstream_tls(t, &l.name.value, offers, &format!("{path}.tls"))
            }),
        };
        let detect = l.detect.as_ref().map(|d| {
            self.duration(
                &d.value.timeout,
                &format!("{path}.detect.timeout"),
                defaults::DETECT_TIMEOUT,
                Bounds::NonZero,
            )
        });
        // Permissive: mTLS and plaintext, told apart by their first bytes.
        let detect = match mesh {
            Some(MeshMode::Permissive) => detect.or(Some(defaults::DETECT_TIMEOUT)),
            _ => detect,
        };
        let authorization = self.authorization(&l.authorization, &format!("{path}.authorization"));
        let reads_principal = authorization.is_some()
            || mesh.is_some()
            || routes.iter().any(|r| r.matcher.source.is_some());
        Listener {
            name: l.name.value.clone(),
            address: address.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            limits,
            header_read_timeout: self.duration(
                &l.header_read_timeout,
                &format!("{path}.header_read_timeout"),
                defaults::HEADER_READ_TIMEOUT,
                Bounds::NonZero,
            ),
            idle_timeout: self.duration(
                &l.idle_timeout,
                &format!("{path}.idle_timeout"),
                defaults::IDLE_TIMEOUT,
                Bounds::NonZero,
            ),
            routes,
            max_connections: l
                .max_connections
                .as_ref()
                .and_then(|m| self.given_count(m, &format!("{path}.max_connections"), 1)),
            x_forwarded_proto,
            tunnel_idle_timeout: self.duration(
                &l.tunnel_idle_timeout,
                &format!("{path}.tunnel_idle_timeout"),
                defaults::TUNNEL_IDLE_TIMEOUT,
                Bounds::NonZero,
            ),
            tls,
            tcp: l.tcp.as_ref().and_then(|t| {
                // A mesh listener tells them apart by ALPN.
                let routes_too = !l.routes.is_empty() && l.detect.is_none() && l.mesh.is_none();
                self.tcp(t, routes_too, clusters, &format!("{path}.tcp"))
            }),
            http2,
            authorization,
            detect,
            mesh,
            reads_principal,
            access_log: l
                .access_log
                .as_ref()
                .and_then(|a| self.access_log(a, &format!("{path}.access_log"))),
            direction: self.direction(&l.direction, &format!("{path}.direction")),
        }
    }

    /// A listener's `tcp`: a cluster to relay to, and no routes beside it.
    fn tcp(
        &mut self,
        t: &Spanned<RawTcp>,
        has_routes: bool,
        clusters: &HashMap<String, ClusterId>,
        path: &str,
    ) -> Option<TcpProxy> {
        if has_routes {
            self.err(
                &t.referenced,
                path,
                "a tcp listener relays bytes and has no routes: give `tcp` or `routes`, not both (or `detect`, to tell HTTP from the rest)",
            );
        }
        let idle_timeout = self.duration(
            &t.value.idle_timeout,
            &format!("{path}.idle_timeout"),
            defaults::TCP_IDLE_TIMEOUT,
            Bounds::NonZero,
        );
        let Some(name) = &t.value.cluster else {
            self.err(
                &t.referenced,
                format!("{path}.cluster"),
                "missing: the cluster to relay to",
            );
            return None;
        };
        let cluster = self.cluster_ref(name, &format!("{path}.cluster"), clusters)?;
        Some(TcpProxy {
            cluster,
            idle_timeout,
        })
    }

    /// Route names label metrics and logs, so two routes of a listener must
    /// not share one, a default `route<index>` included.
    fn unique_route_names(&mut self, routes: &[Spanned<RawRoute>], path: &str) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (j, r) in routes.iter().enumerate() {
            let name = route_name(&r.value, j);
            let Some(&earlier) = seen.get(&name) else {
                seen.insert(name, j);
                continue;
            };
            let earlier_is = match routes[earlier].value.name {
                Some(_) => format!("routes[{earlier}]"),
                None => format!("the default name of routes[{earlier}]"),
            };
            match &r.value.name {
                Some(n) => self.err(
                    &n.referenced,
                    format!("{path}.routes[{j}].name"),
                    format!("duplicate route name `{name}`: it is also {earlier_is}"),
                ),
                None => self.err(
                    &r.referenced,
                    format!("{path}.routes[{j}]"),
                    format!(
                        "this route's default name `{name}` is also {earlier_is}: give it a `name`"
                    ),
                ),
            }
        }
    }

    fn route(
        &mut self,
        r: &RawRoute,
        at: &Location,
        path: &str,
        index: usize,
        clusters: &HashMap<String, ClusterId>,
    ) -> Route {
        if let Some(n) = &r.name {
            self.name(n, &format!("{path}.name"));
        }
        let name = route_name(r, index);
        let action = self.action(r, at, path, clusters);
        Route {
            name,
            matcher: self.matcher(&r.matcher, &format!("{path}.match")),
            action,
            timeout: r
                .timeout
                .as_ref()
                .and_then(|t| self.given_duration(t, &format!("{path}.timeout"), Bounds::NonZero)),
            request_headers: self.edits(&r.request_headers, &format!("{path}.request_headers")),
            response_headers: self.edits(&r.response_headers, &format!("{path}.response_headers")),
            retry: r
                .retries
                .as_ref()
                .map(|x| self.retries(x, &format!("{path}.retries"))),
            filters: {
                // Every problem of both is reported, then the fault runs
                // first: an injected abort is not counted against the limit.
                let fault = r
                    .fault
                    .as_ref()
                    .and_then(|f| self.fault(f, &format!("{path}.fault")));
                let limit = r
                    .rate_limit
                    .as_ref()
                    .and_then(|l| self.rate_limit(l, &format!("{path}.rate_limit")));
                fault.into_iter().chain(limit).collect()
            },
            mirror: r
                .mirror
                .as_ref()
                .and_then(|m| self.mirror(m, &format!("{path}.mirror"), clusters)),
            rewrite: r
                .rewrite
                .as_ref()
                .and_then(|w| self.rewrite(r, w, &format!("{path}.rewrite"))),
        }
    }

    fn retries(&mut self, r: &Spanned<RawRetries>, path: &str) -> RetryPolicy {
        let attempts = &r.value.attempts;
        if !(1..=5).contains(&attempts.value) {
            self.err(
                &attempts.referenced,
                format!("{path}.attempts"),
                "must be from 1 to 5",
            );
        }
        let backoff = self.backoff(&r.value.backoff, &format!("{path}.backoff"));
        let per_try_timeout = r.value.per_try_timeout.as_ref().and_then(|t| {
            self.given_duration(t, &format!("{path}.per_try_timeout"), Bounds::NonZero)
        });
        let mut policy = RetryPolicy {
            attempts: attempts.value.clamp(1, 5) as u32,
            on_connect_failure: false,
            on_reset: false,
            statuses: Vec::new(),
            grpc_statuses: Vec::new(),
            on_timeout: false,
            backoff,
            per_try_timeout,
        };
        let Some(on) = &r.value.on else {
            // Failures that say nothing reached the application, the
            // statuses of an overloaded or restarting upstream, and a try
            // its per-try timeout ended (a gateway timeout of its own).
            policy.on_connect_failure = true;
            policy.on_reset = true;
            policy.on_timeout = true;
            policy.statuses = vec![502, 503, 504];
            return policy;
        };
        for (i, cond) in on.iter().enumerate() {
            match &cond.value {
                StringOrNumber::String(s) if s == "connect-failure" => {
                    policy.on_connect_failure = true
                }
                StringOrNumber::String(s) if s == "reset" => policy.on_reset = true,
                StringOrNumber::String(s) if s == "timeout" => policy.on_timeout = true,
                StringOrNumber::String(s) if s == "5xx" => policy.statuses.extend(500..600),
                StringOrNumber::Number(n) if (500..600).contains(n) => {
                    policy.statuses.push(*n as u16)
                }
                StringOrNumber::String(s) if grpc_retry_code(s).is_some() => {
                    policy.grpc_statuses.extend(grpc_retry_code(s))
                }
                other => {
                    let shown = match other {
                        StringOrNumber::String(s) => s.clone(),
                        StringOrNumber::Number(n) => n.to_string(),
                    };
                    self.err(
                        &cond.referenced,
                        format!("{path}.on[{i}]"),
                        format!("`{shown}` is not a retry condition: use connect-failure, reset, timeout, 5xx, a status from 500 to 599, or a gRPC status (cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)"),
                    );
                }
            }
        }
        policy
    }

    /// `base` defaults to Envoy's 25 ms, `max` to ten times the base.
    fn backoff(&mut self, b: &Option<Spanned<RawBackoff>>, path: &str) -> Backoff {
        let none = RawBackoff::default();
        let (raw, at) = match b {
            Some(b) => (&b.value, Some(&b.referenced)),
            None => (&none, None),
        };
        let base = self.duration(
            &raw.base,
            &format!("{path}.base"),
            Backoff::DEFAULT_BASE,
            Bounds::ZeroAllowed,
        );
        let max = raw
            .max
            .as_ref()
            .and_then(|m| self.given_duration(m, &format!("{path}.max"), Bounds::ZeroAllowed))
            .unwrap_or(base.saturating_mul(10));
        if let (Some(at), true) = (at, max < base) {
            let at = raw.max.as_ref().map_or(at, |m| &m.referenced);
            self.err(
                at,
                format!("{path}.max"),
                format!("must be at least the base ({base:?})"),
            );
        }
        Backoff { base, max }
    }

    /// Both fields default (20 %, 10 a second) when the budget is given.
    fn retry_budget(&mut self, b: &Spanned<RawRetryBudget>, path: &str) -> RetryBudget {
        let per_million = match &b.value.percent {
            None => crate::filter::fault::per_million(RetryBudget::DEFAULT_PERCENT),
            Some(p) => self.percent_value(p, &format!("{path}.percent")),
        };
        let min_per_second = match &b.value.min_per_second {
            None => RetryBudget::DEFAULT_MIN_PER_SECOND,
            Some(m) => u32::try_from(m.value).unwrap_or_else(|_| {
                self.err(
                    &m.referenced,
                    format!("{path}.min_per_second"),
                    "must be at most 4294967295",
                );
                0
            }),
        };
        RetryBudget {
            per_million: per_million.unwrap_or(0),
            min_per_second,
        }
    }

    fn action(
        &mut self,
        r: &RawRoute,
        at: &Location,
        path: &str,
        clusters: &HashMap<String, ClusterId>,
    ) -> Action {
        let placeholder = Action::Direct {
            status: 500,
            body: Bytes::new(),
        };
        let given = [
            r.cluster.is_some(),
            r.weighted_clusters.is_some(),
            r.direct_response.is_some(),
            r.redirect.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            self.err(
                at,
                path,
                "a route needs exactly one of `cluster`, `weighted_clusters`, `direct_response` or `redirect`",
            );
            return placeholder;
        }
        if let Some(c) = &r.cluster {
            return match self.cluster_ref(c, &format!("{path}.cluster"), clusters) {
                Some(id) => Action::Cluster(id),
                None => placeholder,
            };
        }
        if let Some(list) = &r.weighted_clusters {
            let mut choices = Vec::with_capacity(list.len());
            let mut total = 0u64;
            for (k, w) in list.iter().enumerate() {
                let wpath = format!("{path}.weighted_clusters[{k}]");
                let id = self.cluster_ref(&w.value.cluster, &format!("{wpath}.cluster"), clusters);
                if w.value.weight.value > 1_000_000 {
                    self.err(
                        &w.value.weight.referenced,
                        format!("{wpath}.weight"),
                        "weight must be at most 1000000",
                    );
                }
                total += w.value.weight.value.min(1_000_000);
                if let Some(id) = id {
                    choices.push((id, total));
                }
            }
            if total == 0 {
                self.err(
                    at,
                    format!("{path}.weighted_clusters"),
                    "weights must add up to more than 0",
                );
            }
            return Action::Weighted { choices, total };
        }
        if let Some(redirect) = &r.redirect {
            return match self.redirect(r, redirect, &format!("{path}.redirect")) {
                Some(redirect) => Action::Redirect(redirect),
                None => placeholder,
            };
        }
        match &r.direct_response {
            Some(d) => {
                let status = d.value.status.value;
                if !(200..=599).contains(&status) {
                    self.err(
                        &d.value.status.referenced,
                        format!("{path}.direct_response.status"),
                        "status must be from 200 to 599",
                    );
                }
                Action::Direct {
                    status: status as u16,
                    body: Bytes::from(d.value.body.clone()),
                }
            }
            None => placeholder,
        }
    }

    fn cluster_ref(
        &mut self,
        name: &Spanned<String>,
        path: &str,
        clusters: &HashMap<String, ClusterId>,
    ) -> Option<ClusterId> {
        let found = clusters.get(&name.value).copied();
        if found.is_none() {
            let hint = clusters
                .keys()
                .map(|k| (strsim::jaro_winkler(k, &name.value), k))
                .filter(|(s, _)| *s > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, k)| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            self.err(
                &name.referenced,
                path,
                format!("unknown cluster `{}`{hint}", name.value),
            );
        }
        found
    }

    fn matcher(&mut self, m: &RawMatch, path: &str) -> RouteMatch {
        let host = m.host.as_ref().and_then(|h| {
            let v = h.value.to_ascii_lowercase();
            match v.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') && suffix.len() > 1 => {
                    Some(HostMatch::Suffix(suffix.as_bytes().into()))
                }
                Some(_) => {
                    self.err(
                        &h.referenced,
                        format!("{path}.host"),
                        "a wildcard host must look like `*.example.com`",
                    );
                    None
                }
                None if v.is_empty() || v.contains('*') => {
                    self.err(
                        &h.referenced,
                        format!("{path}.host"),
                        "host must be a name or `*.suffix`",
                    );
                    None
                }
                None => Some(HostMatch::Exact(v.as_bytes().into())),
            }
        });
        let path_match = match m.path.as_ref() {
            None => PathMatch::Any,
            Some(p) => match (&p.value.exact, &p.value.prefix) {
                (Some(e), None) if e.starts_with('/') => PathMatch::Exact(e.as_bytes().into()),
                (None, Some(pre)) if pre.starts_with('/') => {
                    PathMatch::Prefix(pre.as_bytes().into())
                }
                _ => {
                    self.err(
                        &p.referenced,
                        format!("{path}.path"),
                        "path needs exactly one of `exact` or `prefix`, starting with `/`",
                    );
                    PathMatch::Any
                }
            },
        };
        let method = m.method.as_ref().and_then(|me| {
            if me.value.is_empty() || !me.value.bytes().all(|b| b.is_ascii_alphabetic()) {
                self.err(
                    &me.referenced,
                    format!("{path}.method"),
                    "method must be a token such as GET",
                );
                return None;
            }
            Some(me.value.to_ascii_uppercase().into_bytes().into())
        });
        let headers = m
            .headers
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let rule = match (&h.value.exact, h.value.present) {
                    (Some(v), None) => HeaderRule::Exact(v.as_bytes().into()),
                    (None, Some(p)) => HeaderRule::Present(p),
                    _ => {
                        self.err(
                            &h.referenced,
                            format!("{path}.headers[{i}]"),
                            "a header match needs exactly one of `exact` or `present`",
                        );
                        return None;
                    }
                };
                self.header_name(&h.value.name, &format!("{path}.headers[{i}].name"));
                Some(HeaderMatch {
                    name: h.value.name.value.to_ascii_lowercase().into_bytes().into(),
                    rule,
                })
            })
            .collect();
        let (path_match, grpc) = match &m.grpc {
            None => (path_match, false),
            Some(g) => (self.grpc_match(g, m.path.is_some(), path), true),
        };
        RouteMatch {
            host,
            path: path_match,
            method,
            headers,
            grpc,
            source: m
                .source
                .as_ref()
                .map(|s| self.source(&s.value, &format!("{path}.source"))),
        }
    }

    /// A gRPC service and method as the path they are sent to
    /// (`/package.Service/Method`).
    fn grpc_match(&mut self, g: &Spanned<RawGrpcMatch>, has_path: bool, path: &str) -> PathMatch {
        let path = format!("{path}.grpc");
        if has_path {
            self.err(
                &g.referenced,
                &path,
                "`grpc` sets the path (/service/method): give `grpc` or `path`, not both",
            );
        }
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        };
        let service = g.value.service.as_deref().unwrap_or("");
        let method = g.value.method.as_deref().unwrap_or("");
        for (field, v) in [("service", service), ("method", method)] {
            if !v.is_empty() && (!token(v) || (field == "method" && v.contains('.'))) {
                self.err(
                    &g.referenced,
                    format!("{path}.{field}"),
                    format!("`{v}` is not a gRPC {field} name (letters, digits, `_`, and `.` between package parts)"),
                );
            }
        }
        match (service, method) {
            ("", "") => PathMatch::Any,
            ("", _) => {
                self.err(
                    &g.referenced,
                    format!("{path}.method"),
                    "a method needs its service",
                );
                PathMatch::Any
            }
            (s, "") => PathMatch::Prefix(format!("/{s}/").into_bytes().into()),
            (s, m) => PathMatch::Exact(format!("/{s}/{m}").into_bytes().into()),
        }
    }

    fn edits(&mut self, raw: &Option<RawHeaderEdits>, path: &str) -> HeaderEdits {
        let Some(raw) = raw else {
            return HeaderEdits::default();
        };
        let mut edits = HeaderEdits::default();
        for (i, h) in raw.add.iter().enumerate() {
            let name = Spanned::new(h.value.name.clone(), h.referenced, h.defined);
            self.header_name(&name, &format!("{path}.add[{i}].name"));
            if h.value
                .value
                .bytes()
                .any(|b| b == b'\r' || b == b'\n' || b == 0)
            {
                self.err(
                    &h.referenced,
                    format!("{path}.add[{i}].value"),
                    "header value must not contain CR, LF or NUL",
                );
            }
            edits.add.push((
                h.value.name.to_ascii_lowercase().into_bytes().into(),
                h.value.value.as_bytes().into(),
            ));
        }
        for (i, r) in raw.remove.iter().enumerate() {
            self.header_name(r, &format!("{path}.remove[{i}]"));
            edits
                .remove
                .push(r.value.to_ascii_lowercase().into_bytes().into());
        }
        edits
    }

    fn header_name(&mut self, name: &Spanned<String>, path: &str) {
        let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.value.is_empty() || !name.value.bytes().all(is_tchar) {
            self.err(
                &name.referenced,
                path,
                format!("`{}` is not a valid header name", name.value),
            );
        }
    }

    fn name(&mut self, name: &Spanned<String>, path: &str) {
        let ok = !name.value.is_empty()
            && name.value.len() <= 128
            && name
                .value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            self.err(
                &name.referenced,
                path,
                format!(
                    "`{}` is not a valid name (letters, digits, - _ . ; at most 128)",
                    name.value
                ),
            );
        }
    }

    fn socket_addr(&mut self, s: &Spanned<String>, path: &str) -> Option<SocketAddr> {
        let parsed = s.value.parse().ok();
        if parsed.is_none() {
            self.err(
                &s.referenced,
                path,
                format!("`{}` is not an IP:PORT address", s.value),
            );
        }
        parsed
    }

    /// A duration setting; `default` when unset. Every duration is at most
    /// `defaults::MAX_DURATION`, and `bounds` says whether zero is allowed,
    /// so no setting can forget either check.
    fn duration(
        &mut self,
        s: &Option<Spanned<String>>,
        path: &str,
        default: Duration,
        bounds: Bounds,
    ) -> Duration {
        s.as_ref()
            .and_then(|s| self.given_duration(s, path, bounds))
            .unwrap_or(default)
    }

    /// A duration that is given (an optional one, or a required one already
    /// checked for presence); `None` after reporting why it is invalid.
    fn given_duration(
        &mut self,
        s: &Spanned<String>,
        path: &str,
        bounds: Bounds,
    ) -> Option<Duration> {
        let d = match humantime::parse_duration(&s.value) {
            Ok(d) => d,
            Err(e) => {
                self.err(
                    &s.referenced,
                    path,
                    format!("`{}` is not a duration like 500ms, 10s or 1m: {e}", s.value),
                );
                return None;
            }
        };
        if d > defaults::MAX_DURATION {
            self.err(
                &s.referenced,
                path,
                format!(
                    "`{}` is longer than the {}-day maximum",
                    s.value,
                    defaults::MAX_DURATION.as_secs() / (24 * 3600)
                ),
            );
            return None;
        }
        if d.is_zero() && bounds == Bounds::NonZero {
            self.err(
                &s.referenced,
                path,
                format!("`{}`: must be more than zero", s.value),
            );
            return None;
        }
        Some(d)
    }

    /// A count from `min` to u32::MAX; `default` when unset.
    fn count(&mut self, s: &Option<Spanned<u64>>, path: &str, default: usize, min: u64) -> usize {
        s.as_ref()
            .and_then(|s| self.given_count(s, path, min))
            .unwrap_or(default)
    }

    /// A count that is given; `None` after reporting it out of range.
    fn given_count(&mut self, s: &Spanned<u64>, path: &str, min: u64) -> Option<usize> {
        if s.value < min || s.value > u64::from(u32::MAX) {
            self.err(
                &s.referenced,
                path,
                format!("must be from {min} to {}", u32::MAX),
            );
            return None;
        }
        Some(s.value as usize)
    }
}
