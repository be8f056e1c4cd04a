//! `ringmesh.v1.ProxyConfig` <-> the raw config.
//!
//! A pushed snapshot is turned into the same `RawConfig` that `proxy.yaml`
//! parses into, then validated by the same code, so the two can never
//! accept different things. The mapping is field for field; the only
//! translations are types the wire has and YAML does not (durations as
//! `google.protobuf.Duration`, enums for `io`, `lb` and
//! `x_forwarded_proto`). The one thing the wire cannot say is "unset" for
//! a plain double: a fault's `percent`, required in YAML, reads as 0 when a
//! snapshot leaves it out. Values that came from a snapshot have no line
//! and column: errors name the snapshot and the field path instead.

use std::time::Duration;

use ringmesh_proto::v1 as pb;
use serde_saphyr::{Location, Spanned};

use super::raw::*;

mod balance;
mod health;
mod resilience;
mod telemetry;
mod tls;

fn s<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}

/// A wire duration as the text YAML would hold. A negative one is kept
/// negative so validation rejects it at its field like any bad duration.
/// Whole seconds are written in seconds: humantime counts smaller units in
/// u64 nanoseconds, so a long duration written in `ms` would be reported as
/// unparseable instead of as too long.
fn duration(d: &Option<prost_types::Duration>) -> Option<Spanned<String>> {
    let d = d.as_ref()?;
    let ns = i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos);
    if ns < 0 {
        return Some(s(format!("-{}ns", -ns)));
    }
    let (secs, nanos) = (ns / 1_000_000_000, ns % 1_000_000_000);
    let sub = match nanos {
        0 => None,
        n if n % 1_000_000 == 0 => Some(format!("{}ms", n / 1_000_000)),
        n => Some(format!("{n}ns")),
    };
    let text = match (secs, sub) {
        (secs, None) => format!("{secs}s"),
        (0, Some(sub)) => sub,
        (secs, Some(sub)) => format!("{secs}s {sub}"),
    };
    Some(s(text))
}

/// Convert a pushed config into the raw form `validate` takes.
pub fn to_raw(c: &pb::ProxyConfig) -> RawConfig {
    RawConfig {
        runtime: c.runtime.as_ref().map(runtime).unwrap_or_default(),
        admin: c.admin.as_ref().map(|a| RawAdmin {
            address: s(a.address.clone()),
        }),
        listeners: c.listeners.iter().map(|l| s(listener(l))).collect(),
        clusters: c.clusters.iter().map(|cl| s(cluster(cl))).collect(),
        mesh: c.mesh.as_ref().map(|m| s(tls::mesh(m))),
        tracing: c.tracing.as_ref().map(|t| s(telemetry::tracing(t))),
        zone: (!c.zone.is_empty()).then(|| s(c.zone.clone())),
    }
}

fn runtime(r: &pb::Runtime) -> RawRuntime {
    let workers = r.workers.as_ref().map(|w| match w.parse::<u64>() {
        Ok(n) => s(StringOrNumber::Number(n)),
        Err(_) => s(StringOrNumber::String(w.clone())),
    });
    let io = match r.io() {
        pb::IoMode::Unspecified => None,
        pb::IoMode::Auto => Some("auto"),
        pb::IoMode::Uring => Some("uring"),
        pb::IoMode::Epoll => Some("epoll"),
    };
    RawRuntime {
        workers,
        cpu_affinity: (!r.cpu_affinity.is_empty())
            .then(|| s(r.cpu_affinity.iter().map(|&c| c as usize).collect())),
        io: io.map(|v| s(v.to_string())),
        drain_timeout: duration(&r.drain_timeout),
        drain_delay: duration(&r.drain_delay),
    }
}

fn listener(l: &pb::Listener) -> RawListener {
    RawListener {
        name: s(l.name.clone()),
        address: s(l.address.clone()),
        max_header_bytes: l.max_header_bytes.map(s),
        max_headers: l.max_headers.map(s),
        header_read_timeout: duration(&l.header_read_timeout),
        idle_timeout: duration(&l.idle_timeout),
        routes: l.routes.iter().map(|r| s(route(r))).collect(),
        max_connections: l.max_connections.map(s),
        x_forwarded_proto: forwarded_proto(l.x_forwarded_proto),
        tunnel_idle_timeout: duration(&l.tunnel_idle_timeout),
        tls: l.tls.as_ref().map(|t| s(tls::downstream(t))),
        tcp: l.tcp.as_ref().map(|t| {
            s(RawTcp {
                cluster: (!t.cluster.is_empty()).then(|| s(t.cluster.clone())),
                idle_timeout: duration(&t.idle_timeout),
            })
        }),
        detect: l.detect.as_ref().map(|d| {
            s(RawDetect {
                timeout: duration(&d.timeout),
            })
        }),
        authorization: l.authorization.iter().map(|p| s(policy(p))).collect(),
        mesh: l.mesh.as_ref().map(|m| {
            let mode = match pb::MeshMode::try_from(m.mode) {
                Ok(pb::MeshMode::Unspecified) => None,
                Ok(pb::MeshMode::Permissive) => Some("permissive".to_string()),
                Ok(pb::MeshMode::Strict) => Some("strict".to_string()),
                // Kept, so validation names the unknown value at its field.
                Err(_) => Some(m.mode.to_string()),
            };
            s(RawMeshInbound { mode: mode.map(s) })
        }),
        access_log: l.access_log.as_ref().map(|a| s(telemetry::access_log(a))),
        direction: telemetry::direction(l.direction),
        http2: l.http2.as_ref().map(|h| {
            let n = |v: Option<u32>| v.map(|v| s(u64::from(v)));
            s(RawHttp2 {
                enabled: h.enabled.map(s),
                max_concurrent_streams: n(h.max_concurrent_streams),
                initial_stream_window: n(h.initial_stream_window),
                initial_connection_window: n(h.initial_connection_window),
                max_header_list_size: n(h.max_header_list_size),
                max_frame_size: n(h.max_frame_size),
                max_pending_accept_reset_streams: n(h.max_pending_accept_reset_streams),
                max_local_error_reset_streams: n(h.max_local_error_reset_streams),
            })
        }),
    }
}

fn policy(p: &pb::AuthorizationPolicy) -> RawPolicy {
    let list = |v: &[String]| v.iter().cloned().map(s).collect::<Vec<_>>();
    RawPolicy {
        name: (!p.name.is_empty()).then(|| s(p.name.clone())),
        action: match pb::AuthzAction::try_from(p.action) {
            Ok(pb::AuthzAction::Unspecified) => None,
            Ok(pb::AuthzAction::Allow) => Some(s("allow".into())),
            Ok(pb::AuthzAction::Deny) => Some(s("deny".into())),
            // Kept, so validation rejects it at its field.
            Err(_) => Some(s(p.action.to_string())),
        },
        rules: p
            .rules
            .iter()
            .map(|r| {
                s(RawAuthzRule {
                    from: r
                        .from
                        .iter()
                        .map(|f| {
                            s(RawAuthzSource {
                                principals: list(&f.principals),
                                not_principals: list(&f.not_principals),
                                namespaces: list(&f.namespaces),
                                not_namespaces: list(&f.not_namespaces),
                            })
                        })
                        .collect(),
                    to: r
                        .to
                        .iter()
                        .map(|t| {
                            s(RawAuthzOperation {
                                methods: list(&t.methods),
                                not_methods: list(&t.not_methods),
                                paths: list(&t.paths),
                                not_paths: list(&t.not_paths),
                                ports: list(&t.ports),
                                not_ports: list(&t.not_ports),
                            })
                        })
                        .collect(),
                    when: r
                        .when
                        .iter()
                        .map(|c| {
                            s(RawAuthzCondition {
                                header: s(c.header.clone()),
                                values: list(&c.values),
                                not_values: list(&c.not_values),
                            })
                        })
                        .collect(),
                })
            })
            .collect(),
    }
}

/// The enum as YAML spells it. A number this build does not know (from a
/// newer control plane) is kept, so validation rejects it at its field
/// instead of silently trusting or overwriting the header.
fn forwarded_proto(v: i32) -> Option<Spanned<String>> {
    match pb::ForwardedProto::try_from(v) {
        Ok(pb::ForwardedProto::Unspecified) => None,
        Ok(pb::ForwardedProto::Overwrite) => Some(s("overwrite".into())),
        Ok(pb::ForwardedProto::Trust) => Some(s("trust".into())),
        Err(_) => Some(s(v.to_string())),
    }
}

fn route(r: &pb::Route) -> RawRoute {
    use pb::route::Action;
    let m = r.r#match.clone().unwrap_or_default();
    RawRoute {
        name: r.name.clone().map(s),
        matcher: RawMatch {
            host: m.host.map(s),
            path: m.path.map(|p| {
                let (exact, prefix) = match p.kind {
                    Some(pb::path_match::Kind::Exact(e)) => (Some(e), None),
                    Some(pb::path_match::Kind::Prefix(p)) => (None, Some(p)),
                    None => (None, None),
                };
                s(RawPath { exact, prefix })
            }),
            method: m.method.map(s),
            grpc: m.grpc.map(|g| {
                s(RawGrpcMatch {
                    service: (!g.service.is_empty()).then_some(g.service),
                    method: (!g.method.is_empty()).then_some(g.method),
                })
            }),
            source: m.source.as_ref().map(|f| {
                let list = |v: &[String]| v.iter().cloned().map(s).collect::<Vec<_>>();
                s(RawAuthzSource {
                    principals: list(&f.principals),
                    not_principals: list(&f.not_principals),
                    namespaces: list(&f.namespaces),
                    not_namespaces: list(&f.not_namespaces),
                })
            }),
            headers: m
                .headers
                .into_iter()
                .map(|h| {
                    let (exact, present) = match h.kind {
                        Some(pb::header_match::Kind::Exact(e)) => (Some(e), None),
                        Some(pb::header_match::Kind::Present(p)) => (None, Some(p)),
                        None => (None, None),
                    };
                    s(RawHeaderMatch {
                        name: s(h.name),
                        exact,
                        present,
                    })
                })
                .collect(),
        },
        cluster: match &r.action {
            Some(Action::Cluster(c)) => Some(s(c.clone())),
            _ => None,
        },
        weighted_clusters: match &r.action {
            Some(Action::WeightedClusters(w)) => Some(
                w.clusters
                    .iter()
                    .map(|c| {
                        s(RawWeighted {
                            cluster: s(c.cluster.clone()),
                            weight: s(c.weight),
                        })
                    })
                    .collect(),
            ),
            _ => None,
        },
        direct_response: match &r.action {
            Some(Action::DirectResponse(d)) => Some(s(RawDirect {
                status: s(d.status),
                body: d.body.clone(),
            })),
            _ => None,
        },
        timeout: duration(&r.timeout),
        request_headers: r.request_headers.as_ref().map(edits),
        response_headers: r.response_headers.as_ref().map(edits),
        retries: r.retries.as_ref().map(|p| {
            s(RawRetries {
                attempts: s(p.attempts),
                on: (!p.on.is_empty()).then(|| {
                    p.on.iter()
                        .map(|c| match c.parse::<u64>() {
                            Ok(n) => s(StringOrNumber::Number(n)),
                            Err(_) => s(StringOrNumber::String(c.clone())),
                        })
                        .collect()
                }),
                backoff: p.backoff.as_ref().map(|b| {
                    s(RawBackoff {
                        base: duration(&b.base),
                        max: duration(&b.max),
                    })
                }),
                per_try_timeout: duration(&p.per_try_timeout),
            })
        }),
        fault: r.fault.as_ref().map(fault),
        rate_limit: r.rate_limit.as_ref().map(|l| {
            s(RawRateLimit {
                requests_per_second: Some(s(l.requests_per_second)),
                burst: (l.burst != 0).then(|| s(l.burst)),
                per: match &l.per {
                    Some(pb::rate_limit::Per::PerSource(true)) => Some(s(RawRateLimitPer::Source)),
                    Some(pb::rate_limit::Per::PerHeader(h)) => {
                        Some(s(RawRateLimitPer::Header(s(h.clone()))))
                    }
                    Some(pb::rate_limit::Per::PerSource(false)) | None => None,
                },
            })
        }),
        mirror: r.mirror.as_ref().map(|m| {
            s(RawMirror {
                // An empty name is an unset one: reported as missing.
                cluster: (!m.cluster.is_empty()).then(|| s(m.cluster.clone())),
                percent: m.percent.map(s),
                max_body_bytes: m.max_body_bytes.map(s),
            })
        }),
        redirect: match &r.action {
            Some(Action::Redirect(d)) => Some(s(RawRedirect {
                scheme: d.scheme.clone().map(s),
                hostname: d.hostname.clone().map(s),
                port: d.port.map(|p| s(u64::from(p))),
                path: d.path.as_ref().map(path_modifier),
                // 0 is an unset status: the default.
                status: (d.status != 0).then(|| s(u64::from(d.status))),
            })),
            _ => None,
        },
        rewrite: r.rewrite.as_ref().map(|w| {
            s(RawRewrite {
                hostname: w.hostname.clone().map(s),
                path: w.path.as_ref().map(path_modifier),
            })
        }),
    }
}

/// An empty modifier reads as one with neither field: reported.
fn path_modifier(p: &pb::PathModifier) -> Spanned<RawPathModifier> {
    use pb::path_modifier::Kind;
    s(RawPathModifier {
        full: match &p.kind {
            Some(Kind::Full(f)) => Some(s(f.clone())),
            _ => None,
        },
        prefix: match &p.kind {
            Some(Kind::Prefix(f)) => Some(s(f.clone())),
            _ => None,
        },
    })
}

fn wire_path_modifier(p: &RawPathModifier, path: &str) -> Result<pb::PathModifier, ToProtoError> {
    use pb::path_modifier::Kind;
    let kind = match (&p.full, &p.prefix) {
        (Some(_), Some(_)) => {
            return Err(ToProtoError {
                path: path.into(),
                message: "give `full` or `prefix`, not both".into(),
            })
        }
        (Some(f), None) => Some(Kind::Full(f.value.clone())),
        (None, Some(f)) => Some(Kind::Prefix(f.value.clone())),
        (None, None) => None,
    };
    Ok(pb::PathModifier { kind })
}

/// Percentages are plain doubles on the wire, so they are always given
/// (unset reads as 0); a status of 0 is an unset one.
fn fault(f: &pb::Fault) -> Spanned<RawFault> {
    s(RawFault {
        delay: f.delay.as_ref().map(|d| {
            s(RawFaultDelay {
                duration: duration(&d.duration),
                percent: Some(s(d.percent)),
            })
        }),
        abort: f.abort.as_ref().map(|a| {
            s(RawFaultAbort {
                status: (a.status != 0).then(|| s(a.status)),
                percent: Some(s(a.percent)),
            })
        }),
    })
}

fn edits(e: &pb::HeaderEdits) -> RawHeaderEdits {
    RawHeaderEdits {
        add: e
            .add
            .iter()
            .map(|h| {
                s(RawHeader {
                    name: h.name.clone(),
                    value: h.value.clone(),
                })
            })
            .collect(),
        remove: e.remove.iter().cloned().map(s).collect(),
    }
}

fn cluster(c: &pb::Cluster) -> RawCluster {
    let pool = c.pool.unwrap_or_default();
    RawCluster {
        name: s(c.name.clone()),
        endpoints: balance::endpoints(c),
        lb: balance::lb(c),
        peak_ewma: c.peak_ewma.as_ref().map(|p| s(balance::peak_ewma(p))),
        hash: c.hash.as_ref().map(|h| s(balance::hash(h))),
        panic_threshold: c.panic_threshold.map(s),
        circuit_breaker: c
            .circuit_breaker
            .as_ref()
            .map(|b| s(resilience::circuit_breaker(b))),
        outlier_detection: c
            .outlier_detection
            .as_ref()
            .map(|o| s(resilience::outlier(o))),
        connect_timeout: duration(&c.connect_timeout),
        dns_refresh: duration(&c.dns_refresh),
        pool: RawPool {
            max_idle_per_endpoint: pool.max_idle_per_endpoint.map(s),
            idle_timeout: duration(&pool.idle_timeout),
            max_connections: pool.max_connections.map(s),
        },
        health_check: c.health_check.as_ref().map(|h| s(health::health_check(h))),
        tls: c.tls.as_ref().map(|t| s(tls::upstream(t))),
        protocol: match pb::UpstreamProtocol::try_from(c.protocol) {
            Ok(pb::UpstreamProtocol::Unspecified) => None,
            Ok(pb::UpstreamProtocol::Http1) => Some(s("http1".into())),
            Ok(pb::UpstreamProtocol::Http2) => Some(s("http2".into())),
            Ok(pb::UpstreamProtocol::Auto) => Some(s("auto".into())),
            // Kept, so validation rejects it at its field.
            Err(_) => Some(s(c.protocol.to_string())),
        },
        mesh: c.mesh.as_ref().map(|m| {
            s(RawMeshUpstream {
                identity: (!m.identity.is_empty()).then(|| s(m.identity.clone())),
            })
        }),
        retry_budget: c.retry_budget.as_ref().map(|b| {
            s(RawRetryBudget {
                percent: b.percent.map(s),
                min_per_second: b.min_per_second.map(s),
            })
        }),
    }
}

/// Why a raw config has no wire form: a value the wire types cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ToProtoError {
    pub path: String,
    pub message: String,
}

fn wire_duration(
    v: &Option<Spanned<String>>,
    path: &str,
) -> Result<Option<prost_types::Duration>, ToProtoError> {
    let Some(v) = v else { return Ok(None) };
    let d: Duration = humantime::parse_duration(&v.value).map_err(|e| ToProtoError {
        path: path.to_string(),
        message: format!("`{}` is not a duration: {e}", v.value),
    })?;
    // Past i64 seconds the wire form would wrap to a negative duration.
    let seconds = i64::try_from(d.as_secs()).map_err(|_| ToProtoError {
        path: path.to_string(),
        message: format!("`{}` is too long for a protobuf Duration", v.value),
    })?;
    Ok(Some(prost_types::Duration {
        seconds,
        nanos: d.subsec_nanos() as i32,
    }))
}

/// The wire form of a (file) config, e.g. to serve it from a control plane.
pub fn from_raw(c: &RawConfig) -> Result<pb::ProxyConfig, ToProtoError> {
    let r = &c.runtime;
    let io = match r.io.as_ref().map(|v| v.value.as_str()) {
        None => pb::IoMode::Unspecified,
        Some("auto") => pb::IoMode::Auto,
        Some("uring") => pb::IoMode::Uring,
        Some("epoll") => pb::IoMode::Epoll,
        Some(other) => {
            return Err(ToProtoError {
                path: "runtime.io".into(),
                message: format!("unknown io driver `{other}`"),
            })
        }
    };
    let runtime = pb::Runtime {
        workers: r.workers.as_ref().map(|w| match &w.value {
            StringOrNumber::Number(n) => n.to_string(),
            StringOrNumber::String(v) => v.clone(),
        }),
        cpu_affinity: r
            .cpu_affinity
            .as_ref()
            .map(|c| c.value.iter().map(|&x| x as u32).collect())
            .unwrap_or_default(),
        io: io as i32,
        drain_timeout: wire_duration(&r.drain_timeout, "runtime.drain_timeout")?,
        drain_delay: wire_duration(&r.drain_delay, "runtime.drain_delay")?,
    };
    let mut listeners = Vec::new();
    for (i, l) in c.listeners.iter().enumerate() {
        listeners.push(wire_listener(&l.value, &format!("listeners[{i}]"))?);
    }
    let mut clusters = Vec::new();
    for (i, cl) in c.clusters.iter().enumerate() {
        clusters.push(wire_cluster(&cl.value, &format!("clusters[{i}]"))?);
    }
    Ok(pb::ProxyConfig {
        runtime: Some(runtime),
        admin: c.admin.as_ref().map(|a| pb::Admin {
            address: a.address.value.clone(),
        }),
        listeners,
        clusters,
        mesh: c.mesh.as_ref().map(|m| tls::wire_mesh(&m.value)),
        tracing: c
            .tracing
            .as_ref()
            .map(|t| telemetry::wire_tracing(&t.value)),
        zone: c.zone.as_ref().map(|z| z.value.clone()).unwrap_or_default(),
    })
}

fn wire_listener(l: &RawListener, path: &str) -> Result<pb::Listener, ToProtoError> {
    let mut routes = Vec::new();
    for (j, r) in l.routes.iter().enumerate() {
        routes.push(wire_route(&r.value, &format!("{path}.routes[{j}]"))?);
    }
    let x_forwarded_proto = match l.x_forwarded_proto.as_ref().map(|v| v.value.as_str()) {
        None => pb::ForwardedProto::Unspecified,
        Some("overwrite") => pb::ForwardedProto::Overwrite,
        Some("trust") => pb::ForwardedProto::Trust,
        Some(other) => {
            return Err(ToProtoError {
                path: format!("{path}.x_forwarded_proto"),
                message: format!("unknown x_forwarded_proto `{other}`"),
            })
        }
    };
    Ok(pb::Listener {
        name: l.name.value.clone(),
        address: l.address.value.clone(),
        max_header_bytes: l.max_header_bytes.as_ref().map(|v| v.value),
        max_headers: l.max_headers.as_ref().map(|v| v.value),
        header_read_timeout: wire_duration(
            &l.header_read_timeout,
            &format!("{path}.header_read_timeout"),
        )?,
        idle_timeout: wire_duration(&l.idle_timeout, &format!("{path}.idle_timeout"))?,
        routes,
        max_connections: l.max_connections.as_ref().map(|v| v.value),
        x_forwarded_proto: x_forwarded_proto as i32,
        tunnel_idle_timeout: wire_duration(
            &l.tunnel_idle_timeout,
            &format!("{path}.tunnel_idle_timeout"),
        )?,
        tls: match &l.tls {
            Some(t) => Some(tls::wire_downstream(&t.value, &format!("{path}.tls"))?),
            None => None,
        },
        tcp: match &l.tcp {
            Some(t) => Some(pb::TcpProxy {
                cluster: t
                    .value
                    .cluster
                    .as_ref()
                    .map(|c| c.value.clone())
                    .unwrap_or_default(),
                idle_timeout: wire_duration(
                    &t.value.idle_timeout,
                    &format!("{path}.tcp.idle_timeout"),
                )?,
            }),
            None => None,
        },
        http2: match &l.http2 {
            Some(h) => Some(wire_http2(&h.value, &format!("{path}.http2"))?),
            None => None,
        },
        detect: match &l.detect {
            Some(d) => Some(pb::ProtocolDetection {
                timeout: wire_duration(&d.value.timeout, &format!("{path}.detect.timeout"))?,
            }),
            None => None,
        },
        authorization: l
            .authorization
            .iter()
            .enumerate()
            .map(|(i, p)| wire_policy(&p.value, &format!("{path}.authorization[{i}]")))
            .collect::<Result<_, _>>()?,
        mesh: match l
            .mesh
            .as_ref()
            .map(|m| m.value.mode.as_ref().map(|v| v.value.as_str()))
        {
            None => None,
            Some(mode) => Some(pb::MeshInbound {
                mode: match mode {
                    None => pb::MeshMode::Unspecified,
                    Some("permissive") => pb::MeshMode::Permissive,
                    Some("strict") => pb::MeshMode::Strict,
                    Some(other) => {
                        return Err(ToProtoError {
                            path: format!("{path}.mesh.mode"),
                            message: format!("unknown mesh mode `{other}`"),
                        })
                    }
                } as i32,
            }),
        },
        access_log: match &l.access_log {
            Some(a) => Some(telemetry::wire_access_log(
                &a.value,
                &format!("{path}.access_log"),
            )?),
            None => None,
        },
        direction: telemetry::wire_direction(&l.direction, path)?,
    })
}

fn wire_policy(p: &RawPolicy, path: &str) -> Result<pb::AuthorizationPolicy, ToProtoError> {
    let list = |v: &[Spanned<String>]| v.iter().map(|x| x.value.clone()).collect::<Vec<_>>();
    let action = match p.action.as_ref().map(|a| a.value.as_str()) {
        None => pb::AuthzAction::Unspecified,
        Some("allow") => pb::AuthzAction::Allow,
        Some("deny") => pb::AuthzAction::Deny,
        Some(other) => {
            return Err(ToProtoError {
                path: format!("{path}.action"),
                message: format!("unknown action `{other}`"),
            })
        }
    };
    Ok(pb::AuthorizationPolicy {
        name: p.name.as_ref().map(|n| n.value.clone()).unwrap_or_default(),
        action: action as i32,
        rules: p
            .rules
            .iter()
            .map(|r| pb::AuthzRule {
                from: r
                    .value
                    .from
                    .iter()
                    .map(|f| pb::AuthzSource {
                        principals: list(&f.value.principals),
                        not_principals: list(&f.value.not_principals),
                        namespaces: list(&f.value.namespaces),
                        not_namespaces: list(&f.value.not_namespaces),
                    })
                    .collect(),
                to: r
                    .value
                    .to
                    .iter()
                    .map(|t| pb::AuthzOperation {
                        methods: list(&t.value.methods),
                        not_methods: list(&t.value.not_methods),
                        paths: list(&t.value.paths),
                        not_paths: list(&t.value.not_paths),
                        ports: list(&t.value.ports),
                        not_ports: list(&t.value.not_ports),
                    })
                    .collect(),
                when: r
                    .value
                    .when
                    .iter()
                    .map(|c| pb::AuthzCondition {
                        header: c.value.header.value.clone(),
                        values: list(&c.value.values),
                        not_values: list(&c.value.not_values),
                    })
                    .collect(),
            })
            .collect(),
    })
}

fn wire_http2(h: &RawHttp2, path: &str) -> Result<pb::Http2, ToProtoError> {
    let n = |v: &Option<Spanned<u64>>, field: &str| -> Result<Option<u32>, ToProtoError> {
        v.as_ref()
            .map(|v| {
                u32::try_from(v.value).map_err(|_| ToProtoError {
                    path: format!("{path}.{field}"),
                    message: format!("{} is more than {}", v.value, u32::MAX),
                })
            })
            .transpose()
    };
    Ok(pb::Http2 {
        enabled: h.enabled.as_ref().map(|e| e.value),
        max_concurrent_streams: n(&h.max_concurrent_streams, "max_concurrent_streams")?,
        initial_stream_window: n(&h.initial_stream_window, "initial_stream_window")?,
        initial_connection_window: n(&h.initial_connection_window, "initial_connection_window")?,
        max_header_list_size: n(&h.max_header_list_size, "max_header_list_size")?,
        max_frame_size: n(&h.max_frame_size, "max_frame_size")?,
        max_pending_accept_reset_streams: n(
            &h.max_pending_accept_reset_streams,
            "max_pending_accept_reset_streams",
        )?,
        max_local_error_reset_streams: n(
            &h.max_local_error_reset_streams,
            "max_local_error_reset_streams",
        )?,
    })
}

fn wire_route(r: &RawRoute, path: &str) -> Result<pb::Route, ToProtoError> {
    use pb::route::Action;
    let actions = [
        r.cluster.is_some(),
        r.weighted_clusters.is_some(),
        r.direct_response.is_some(),
        r.redirect.is_some(),
    ];
    if actions.iter().filter(|a| **a).count() > 1 {
        return Err(ToProtoError {
            path: path.into(),
            message:
                "a route has one action: cluster, weighted_clusters, direct_response or redirect"
                    .into(),
        });
    }
    let action = if let Some(c) = &r.cluster {
        Some(Action::Cluster(c.value.clone()))
    } else if let Some(w) = &r.weighted_clusters {
        Some(Action::WeightedClusters(pb::WeightedClusters {
            clusters: w
                .iter()
                .map(|c| pb::WeightedCluster {
                    cluster: c.value.cluster.value.clone(),
                    weight: c.value.weight.value,
                })
                .collect(),
        }))
    } else if let Some(d) = &r.redirect {
        let d = &d.value;
        let port = match &d.port {
            Some(p) => Some(u32::try_from(p.value).map_err(|_| ToProtoError {
                path: format!("{path}.redirect.port"),
                message: format!("{} is not a port", p.value),
            })?),
            None => None,
        };
        Some(Action::Redirect(pb::Redirect {
            scheme: d.scheme.as_ref().map(|v| v.value.clone()),
            hostname: d.hostname.as_ref().map(|v| v.value.clone()),
            port,
            path: match &d.path {
                Some(p) => Some(wire_path_modifier(
                    &p.value,
                    &format!("{path}.redirect.path"),
                )?),
                None => None,
            },
            status: d
                .status
                .as_ref()
                .map_or(0, |v| v.value.min(u64::from(u32::MAX)) as u32),
        }))
    } else {
        r.direct_response.as_ref().map(|d| {
            Action::DirectResponse(pb::DirectResponse {
                status: d.value.status.value,
                body: d.value.body.clone(),
            })
        })
    };
    let m = &r.matcher;
    let path_match = m.path.as_ref().map(|p| pb::PathMatch {
        kind: match (&p.value.exact, &p.value.prefix) {
            (Some(e), _) => Some(pb::path_match::Kind::Exact(e.clone())),
            (None, Some(p)) => Some(pb::path_match::Kind::Prefix(p.clone())),
            (None, None) => None,
        },
    });
    let headers = m
        .headers
        .iter()
        .map(|h| pb::HeaderMatch {
            name: h.value.name.value.clone(),
            kind: match (&h.value.exact, h.value.present) {
                (Some(e), _) => Some(pb::header_match::Kind::Exact(e.clone())),
                (None, Some(p)) => Some(pb::header_match::Kind::Present(p)),
                (None, None) => None,
            },
        })
        .collect();
    let edits = |e: &Option<RawHeaderEdits>| {
        e.as_ref().map(|e| pb::HeaderEdits {
            add: e
                .add
                .iter()
                .map(|h| pb::Header {
                    name: h.value.name.clone(),
                    value: h.value.value.clone(),
                })
                .collect(),
            remove: e.remove.iter().map(|r| r.value.clone()).collect(),
        })
    };
    Ok(pb::Route {
        name: r.name.as_ref().map(|n| n.value.clone()),
        r#match: Some(pb::RouteMatch {
            host: m.host.as_ref().map(|h| h.value.clone()),
            path: path_match,
            method: m.method.as_ref().map(|v| v.value.clone()),
            headers,
            grpc: m.grpc.as_ref().map(|g| pb::GrpcMatch {
                service: g.value.service.clone().unwrap_or_default(),
                method: g.value.method.clone().unwrap_or_default(),
            }),
            source: m.source.as_ref().map(|f| {
                let list =
                    |v: &[Spanned<String>]| v.iter().map(|x| x.value.clone()).collect::<Vec<_>>();
                pb::AuthzSource {
                    principals: list(&f.value.principals),
                    not_principals: list(&f.value.not_principals),
                    namespaces: list(&f.value.namespaces),
                    not_namespaces: list(&f.value.not_namespaces),
                }
            }),
        }),
        action,
        timeout: wire_duration(&r.timeout, &format!("{path}.timeout"))?,
        request_headers: edits(&r.request_headers),
        response_headers: edits(&r.response_headers),
        retries: match &r.retries {
            Some(p) => Some(pb::RetryPolicy {
                attempts: p.value.attempts.value,
                on: p
                    .value
                    .on
                    .iter()
                    .flatten()
                    .map(|c| match &c.value {
                        StringOrNumber::Number(n) => n.to_string(),
                        StringOrNumber::String(v) => v.clone(),
                    })
                    .collect(),
                backoff: match &p.value.backoff {
                    Some(b) => Some(pb::RetryBackoff {
                        base: wire_duration(
                            &b.value.base,
                            &format!("{path}.retries.backoff.base"),
                        )?,
                        max: wire_duration(&b.value.max, &format!("{path}.retries.backoff.max"))?,
                    }),
                    None => None,
                },
                per_try_timeout: wire_duration(
                    &p.value.per_try_timeout,
                    &format!("{path}.retries.per_try_timeout"),
                )?,
            }),
            None => None,
        },
        fault: r
            .fault
            .as_ref()
            .map(|f| wire_fault(&f.value, &format!("{path}.fault")))
            .transpose()?,
        rate_limit: r
            .rate_limit
            .as_ref()
            .map(|l| wire_rate_limit(&l.value, &format!("{path}.rate_limit")))
            .transpose()?,
        mirror: r.mirror.as_ref().map(|m| pb::Mirror {
            cluster: m
                .value
                .cluster
                .as_ref()
                .map(|c| c.value.clone())
                .unwrap_or_default(),
            percent: m.value.percent.as_ref().map(|p| p.value),
            max_body_bytes: m.value.max_body_bytes.as_ref().map(|b| b.value),
        }),
        rewrite: match &r.rewrite {
            Some(w) => Some(pb::Rewrite {
                hostname: w.value.hostname.as_ref().map(|h| h.value.clone()),
                path: match &w.value.path {
                    Some(p) => Some(wire_path_modifier(
                        &p.value,
                        &format!("{path}.rewrite.path"),
                    )?),
                    None => None,
                },
            }),
            None => None,
        },
    })
}

fn wire_rate_limit(l: &RawRateLimit, path: &str) -> Result<pb::RateLimit, ToProtoError> {
    // The wire cannot say "unset" for a double; 0 would be reported as
    // out of range instead of missing.
    let requests_per_second = l
        .requests_per_second
        .as_ref()
        .map(|r| r.value)
        .ok_or_else(|| ToProtoError {
            path: format!("{path}.requests_per_second"),
            message: "a rate is required (unset on the wire would read as 0)".into(),
        })?;
    Ok(pb::RateLimit {
        requests_per_second,
        burst: l.burst.as_ref().map_or(0, |b| b.value),
        per: l.per.as_ref().map(|p| match &p.value {
            RawRateLimitPer::Source => pb::rate_limit::Per::PerSource(true),
            RawRateLimitPer::Header(h) => pb::rate_limit::Per::PerHeader(h.value.clone()),
        }),
    })
}

fn wire_fault(f: &RawFault, path: &str) -> Result<pb::Fault, ToProtoError> {
    // The wire cannot say "unset" for a double: it would read as 0 %.
    let percent = |p: &Option<Spanned<f64>>, path: String| {
        p.as_ref().map(|p| p.value).ok_or(ToProtoError {
            path,
            message: "a percent is required (unset on the wire would read as 0)".into(),
        })
    };
    let delay = match &f.delay {
        Some(d) => Some(pb::FaultDelay {
            duration: wire_duration(&d.value.duration, &format!("{path}.delay.duration"))?,
            percent: percent(&d.value.percent, format!("{path}.delay.percent"))?,
        }),
        None => None,
    };
    let abort = match &f.abort {
        Some(a) => Some(pb::FaultAbort {
            status: a.value.status.as_ref().map_or(0, |s| s.value),
            percent: percent(&a.value.percent, format!("{path}.abort.percent"))?,
        }),
        None => None,
    };
    Ok(pb::Fault { delay, abort })
}

fn wire_cluster(c: &RawCluster, path: &str) -> Result<pb::Cluster, ToProtoError> {
    let (endpoints, endpoint_details) = balance::wire_endpoints(c, path)?;
    Ok(pb::Cluster {
        name: c.name.value.clone(),
        endpoints,
        endpoint_details,
        lb: balance::wire_lb(c, path)?,
        peak_ewma: match &c.peak_ewma {
            Some(p) => Some(balance::wire_peak_ewma(
                &p.value,
                &format!("{path}.peak_ewma"),
            )?),
            None => None,
        },
        hash: c.hash.as_ref().map(|h| balance::wire_hash(&h.value)),
        panic_threshold: c.panic_threshold.as_ref().map(|p| p.value),
        circuit_breaker: c
            .circuit_breaker
            .as_ref()
            .map(|b| resilience::wire_circuit_breaker(&b.value)),
        outlier_detection: match &c.outlier_detection {
            Some(o) => Some(resilience::wire_outlier(
                &o.value,
                &format!("{path}.outlier_detection"),
            )?),
            None => None,
        },
        connect_timeout: wire_duration(&c.connect_timeout, &format!("{path}.connect_timeout"))?,
        dns_refresh: wire_duration(&c.dns_refresh, &format!("{path}.dns_refresh"))?,
        pool: Some(pb::Pool {
            max_idle_per_endpoint: c.pool.max_idle_per_endpoint.as_ref().map(|v| v.value),
            idle_timeout: wire_duration(
                &c.pool.idle_timeout,
                &format!("{path}.pool.idle_timeout"),
            )?,
            max_connections: c.pool.max_connections.as_ref().map(|v| v.value),
        }),
        health_check: match &c.health_check {
            Some(h) => Some(health::wire_health_check(
                &h.value,
                &format!("{path}.health_check"),
            )?),
            None => None,
        },
        tls: c.tls.as_ref().map(|t| tls::wire_upstream(&t.value)),
        protocol: match c.protocol.as_ref().map(|v| v.value.as_str()) {
            None => pb::UpstreamProtocol::Unspecified,
            Some("http1") => pb::UpstreamProtocol::Http1,
            Some("http2") => pb::UpstreamProtocol::Http2,
            Some("auto") => pb::UpstreamProtocol::Auto,
            Some(other) => {
                return Err(ToProtoError {
                    path: format!("{path}.protocol"),
                    message: format!("unknown protocol `{other}`"),
                })
            }
        } as i32,
        mesh: c.mesh.as_ref().map(|m| pb::MeshUpstream {
            identity: m
                .value
                .identity
                .as_ref()
                .map(|i| i.value.clone())
                .unwrap_or_default(),
        }),
        retry_budget: c.retry_budget.as_ref().map(|b| pb::RetryBudget {
            percent: b.value.percent.as_ref().map(|p| p.value),
            min_per_second: b.value.min_per_second.as_ref().map(|m| m.value),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Every field the file format has, set.
    const FULL: &str = r#"
runtime: { workers: 2, cpu_affinity: [0, 1], io: epoll, drain_timeout: 7s, drain_delay: 1500ms }
admin: { address: 127.0.0.1:9901 }
listeners:
  - name: main
    address: 127.0.0.1:8080
    max_header_bytes: 32768
    max_headers: 50
    header_read_timeout: 1500ms
    idle_timeout: 30s
    max_connections: 10000
    x_forwarded_proto: trust
    tunnel_idle_timeout: 1m
    routes:
      - name: hello
        match: { host: "*.example.com", path: { exact: /hello }, method: GET, headers: [ { name: x-a, exact: "1" }, { name: x-b, present: true } ] }
        direct_response: { status: 200, body: "hi\n" }
        fault: { abort: { status: 429, percent: 100 } }
      - name: split
        match: { path: { prefix: /api } }
        weighted_clusters: [ { cluster: a, weight: 90 }, { cluster: b, weight: 10 } ]
        timeout: 2s
        request_headers: { add: [ { name: x-r, value: split } ], remove: [ x-internal ] }
        response_headers: { add: [ { name: x-s, value: "1" } ] }
        retries: { attempts: 2, on: [connect-failure, 503, 5xx, timeout], backoff: { base: 10ms, max: 1s }, per_try_timeout: 500ms }
        fault: { delay: { duration: 2s, percent: 10 }, abort: { status: 503, percent: 5.5 } }
      - cluster: a
        retries: { attempts: 1, backoff: { base: 50ms } }
        fault: { delay: { duration: 1500ms, percent: 0.25 } }
        rate_limit: { requests_per_second: 0.5, burst: 3, per: { header: x-user } }
      - name: limited
        match: { path: { prefix: /limited } }
        cluster: b
        rate_limit: { requests_per_second: 1000, burst: 1, per: source }
        mirror: { cluster: a, percent: 12.5, max_body_bytes: 1024 }
      - name: shadowed
        match: { path: { prefix: /shadowed } }
        cluster: a
        mirror: { cluster: b }
        rewrite: { hostname: internal.a, path: { prefix: /v2 } }
      - name: renamed
        match: { path: { exact: /old } }
        weighted_clusters: [ { cluster: a, weight: 1 } ]
        rewrite: { path: { full: /new } }
      - name: moved
        match: { path: { prefix: /moved/ } }
        redirect: { scheme: https, hostname: new.example, port: 8443, path: { prefix: /here }, status: 308 }
      - name: to-https
        match: { path: { prefix: /secure } }
        redirect: { scheme: https }
      - name: elsewhere
        redirect: { hostname: "[::1]", path: { full: /x } }
  - { name: edge, address: 127.0.0.1:8081, x_forwarded_proto: overwrite, routes: [ { cluster: b } ] }
clusters:
  - name: a
    endpoints: [127.0.0.1:9000, { address: 127.0.0.1:9001, weight: 3, zone: z1 }]
    lb: peak_ewma
    peak_ewma: { half_life: 3s, default_rtt: 10ms }
    panic_threshold: 30
    circuit_breaker: { max_pending_requests: 10, max_requests: 20, max_retries: 2 }
    outlier_detection: { consecutive_5xx: 3, consecutive_gateway_errors: 2, interval: 2s, base_ejection_time: 5s, max_ejection_time: 60s, max_ejection_percent: 50, success_rate: { minimum_hosts: 3, request_volume: 20, stdev_factor: 1.5 } }
    connect_timeout: 250ms
    dns_refresh: 10s
    pool: { max_idle_per_endpoint: 8, idle_timeout: 4s, max_connections: 100 }
    health_check: { interval: 2s, timeout: 500ms, jitter: 100ms, unhealthy_threshold: 4, healthy_threshold: 1, http: { path: /healthz, host: svc.local, expected_statuses: [200, "300-399"] } }
    retry_budget: { percent: 12.5, min_per_second: 3 }
  - { name: b, endpoints: [localhost:9002], retry_budget: {}, lb: ring_hash, hash: { on: { header: x-user }, ring_points: 64 } }
  - { name: c, endpoints: [localhost:9003], lb: maglev, hash: { on: { cookie: sid }, table_size: 17 }, circuit_breaker: { max_connections: 5 }, outlier_detection: {}, health_check: { tcp: {} } }
  - { name: d, endpoints: [localhost:9004], lb: maglev, hash: { on: source_ip } }
zone: z1
"#;

    #[test]
    fn mesh_settings_cross_the_wire_both_ways() {
        let yaml = "mesh: { identity: { cert: svid.pem, key: key.pem }, trust_bundle: bundle.pem }
listeners:
  - { name: in, address: '127.0.0.1:1', mesh: { mode: strict }, routes: [ { cluster: o } ] }
  - { name: in2, address: '127.0.0.1:2', mesh: {}, routes: [ { cluster: o } ] }
clusters:
  - { name: o, endpoints: ['127.0.0.1:3'], mesh: { identity: 'spiffe://td/ns/a/sa/o' } }
";
        let raw: RawConfig = serde_saphyr::from_str(yaml).unwrap();
        let wire = from_raw(&raw).unwrap();
        let m = wire.mesh.as_ref().expect("mesh");
        assert!(m
            .identity
            .as_ref()
            .is_some_and(|i| i.cert.is_some() && i.key.is_some()));
        assert!(m.trust_bundle.is_some());
        assert_eq!(wire.listeners[0].mesh.unwrap().mode(), pb::MeshMode::Strict);
        assert_eq!(
            wire.listeners[1].mesh.unwrap().mode(),
            pb::MeshMode::Unspecified
        );
        assert_eq!(
            wire.clusters[0].mesh.as_ref().unwrap().identity,
            "spiffe://td/ns/a/sa/o"
        );
        let back = to_raw(&wire);
        let json = |r: &RawConfig| serde_json::to_string(r).unwrap();
        assert_eq!(
            json(&back),
            json(&raw),
            "the same settings after a round trip"
        );
        let mut bad = wire.clone();
        bad.listeners[0].mesh = Some(pb::MeshInbound { mode: 9 });
        let err = super::super::validate(&to_raw(&bad), "snapshot v3", Default::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("listeners[0].mesh.mode: unknown mode `9`"),
            "{err}"
        );
    }

    /// The validated model, without the dump of what was written (which
    /// keeps each source's spelling of durations).
    fn model(raw: &RawConfig, source: &str) -> String {
        let mut c = super::super::validate(raw, source, Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
        c.dump = serde_json::Value::Null;
        format!("{c:?}")
    }

    #[test]
    fn yaml_and_the_wire_form_are_the_same_config() {
        for text in [FULL, super::super::EXAMPLE] {
            let raw: RawConfig = serde_saphyr::from_str(text).unwrap();
            let wire = from_raw(&raw).unwrap();
            // Through real protobuf bytes, as the stream carries it.
            let decoded = pb::ProxyConfig::decode(wire.encode_to_vec().as_slice()).unwrap();
            assert_eq!(decoded, wire);
            assert_eq!(model(&to_raw(&decoded), "snapshot"), model(&raw, "file"));
        }
    }

    #[test]
    fn snapshot_errors_name_the_source_and_field() {
        let raw: RawConfig = serde_saphyr::from_str(FULL).unwrap();
        let mut wire = from_raw(&raw).unwrap();
        wire.listeners[0].routes[2].action = Some(pb::route::Action::Cluster("nope".into()));
        wire.clusters[0].connect_timeout = Some(prost_types::Duration {
            seconds: -1,
            nanos: 0,
        });
        let err = super::super::validate(&to_raw(&wire), "snapshot v7", Default::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("snapshot v7: listeners[0].routes[2].cluster: "),
            "{err}"
        );
        assert!(
            err.contains("snapshot v7: clusters[0].connect_timeout: "),
            "{err}"
        );
        assert_eq!(err.lines().count(), 2, "{err}");
    }

    #[test]
    fn snapshot_durations_are_bounded_like_the_files() {
        let raw: RawConfig = serde_saphyr::from_str(FULL).unwrap();
        let mut wire = from_raw(&raw).unwrap();
        let secs = |seconds| Some(prost_types::Duration { seconds, nanos: 0 });
        // A year, and the largest a wire Duration may be: both past the
        // 7-day maximum, in whatever unit the text form picks.
        wire.listeners[0].idle_timeout = secs(365 * 24 * 3600);
        wire.clusters[0].dns_refresh = secs(315_576_000_000);
        wire.clusters[0].connect_timeout = secs(0);
        // Zero is a meaning of its own here, not an error.
        wire.runtime.as_mut().unwrap().drain_timeout = secs(0);
        let err = super::super::validate(&to_raw(&wire), "snapshot v8", Default::default())
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                "snapshot v8: clusters[0].connect_timeout: `0s`: must be more than zero",
                "snapshot v8: clusters[0].dns_refresh: `315576000000s` is longer than the 7-day maximum",
                "snapshot v8: listeners[0].idle_timeout: `31536000s` is longer than the 7-day maximum",
            ]
        );
    }

    #[test]
    fn an_unknown_forwarded_proto_is_rejected_not_defaulted() {
        let raw: RawConfig = serde_saphyr::from_str(FULL).unwrap();
        let mut wire = from_raw(&raw).unwrap();
        wire.listeners[1].x_forwarded_proto = 7;
        let err = super::super::validate(&to_raw(&wire), "snapshot v9", Default::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "snapshot v9: listeners[1].x_forwarded_proto: unknown x_forwarded_proto `7`: use overwrite or trust"
        );
    }

    #[test]
    fn snapshot_faults_are_checked_like_the_files() {
        let raw: RawConfig = serde_saphyr::from_str(FULL).unwrap();
        let mut wire = from_raw(&raw).unwrap();
        let routes = &mut wire.listeners[0].routes;
        routes[0].fault = Some(pb::Fault::default());
        routes[1].fault = Some(pb::Fault {
            delay: Some(pb::FaultDelay {
                duration: None,
                percent: 10.0,
            }),
            abort: Some(pb::FaultAbort {
                status: 0,
                percent: 100.5,
            }),
        });
        let err = super::super::validate(&to_raw(&wire), "snapshot v10", Default::default())
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                "snapshot v10: listeners[0].routes[0].fault: a fault needs a `delay`, an `abort` or both",
                "snapshot v10: listeners[0].routes[1].fault.delay.duration: missing: how long to delay, e.g. 2s",
                "snapshot v10: listeners[0].routes[1].fault.abort.status: missing: the status to answer with, e.g. 503",
                "snapshot v10: listeners[0].routes[1].fault.abort.percent: `100.5` is not a percentage from 0 to 100",
            ]
        );
    }

    #[test]
    fn snapshot_rate_limits_round_trip_and_are_checked_like_the_files() {
        let raw: RawConfig = serde_saphyr::from_str(FULL).unwrap();
        let mut wire = from_raw(&raw).unwrap();
        let routes = &wire.listeners[0].routes;
        assert_eq!(routes[0].rate_limit, None);
        assert_eq!(
            routes[2].rate_limit,
            Some(pb::RateLimit {
                requests_per_second: 0.5,
                burst: 3,
                per: Some(pb::rate_limit::Per::PerHeader("x-user".into())),
            })
        );
        let back = to_raw(&wire);
        let limits = |r: &RawConfig| -> Vec<Option<(Option<f64>, Option<u64>)>> {
            r.listeners[0]
                .value
                .routes
                .iter()
                .map(|r| {
                    r.value.rate_limit.as_ref().map(|l| {
                        let l = &l.value;
                        (
                            l.requests_per_second.as_ref().map(|v| v.value),
                            l.burst.as_ref().map(|v| v.value),
                        )
                    })
                })
                .collect()
        };
        assert_eq!(limits(&back), limits(&raw));
        assert_eq!(limits(&back)[3], Some((Some(1000.0), Some(1))));
        wire.listeners[0].routes[2].rate_limit = Some(pb::RateLimit::default());
        let err = super::super::validate(&to_raw(&wire), "snapshot v11", Default::default())
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                "snapshot v11: listeners[0].routes[2].rate_limit.requests_per_second: `0`: must be a number more than 0",
                "snapshot v11: listeners[0].routes[2].rate_limit.burst: missing: the requests accepted at once, at least 1",
            ]
        );
        let no_rate: RawConfig = serde_saphyr::from_str(
            "listeners: [ { name: a, address: 127.0.0.1:1, routes: [ { cluster: c, rate_limit: { burst: 1 } } ] } ]",
        )
        .unwrap();
        let err = from_raw(&no_rate).unwrap_err();
        assert_eq!(
            err.path,
            "listeners[0].routes[0].rate_limit.requests_per_second"
        );
    }

    #[test]
    fn snapshot_mirrors_round_trip_and_are_checked_like_the_files() {
        let raw: RawConfig = serde_saphyr::from_str(FULL).unwrap();
        let mut wire = from_raw(&raw).unwrap();
        let routes = &wire.listeners[0].routes;
        assert_eq!(routes[0].mirror, None);
        assert_eq!(
            routes[3].mirror,
            Some(pb::Mirror {
                cluster: "a".into(),
                percent: Some(12.5),
                max_body_bytes: Some(1024),
            })
        );
        // Defaults stay unset on the wire, so both sides fill them alike.
        assert_eq!(
            routes[4].mirror,
            Some(pb::Mirror {
                cluster: "b".into(),
                percent: None,
                max_body_bytes: None,
            })
        );
        assert_eq!(model(&to_raw(&wire), "snapshot"), model(&raw, "file"));
        wire.listeners[0].routes[3].mirror = Some(pb::Mirror {
            cluster: String::new(),
            percent: Some(-1.0),
            max_body_bytes: None,
        });
        wire.listeners[0].routes[4].mirror = Some(pb::Mirror {
            cluster: "bb".into(),
            percent: None,
            max_body_bytes: None,
        });
        let err = super::super::validate(&to_raw(&wire), "snapshot v12", Default::default())
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                "snapshot v12: listeners[0].routes[3].mirror.cluster: missing: the cluster the copies go to",
                "snapshot v12: listeners[0].routes[3].mirror.percent: `-1` is not a percentage from 0 to 100",
                "snapshot v12: listeners[0].routes[4].mirror.cluster: unknown cluster `bb` (did you mean `b`?)",
            ]
        );
    }

    #[test]
    fn snapshot_redirects_and_rewrites_round_trip_and_are_checked_like_the_files() {
        let raw: RawConfig = serde_saphyr::from_str(FULL).unwrap();
        let mut wire = from_raw(&raw).unwrap();
        let routes = &wire.listeners[0].routes;
        let prefix = |p: &str| pb::PathModifier {
            kind: Some(pb::path_modifier::Kind::Prefix(p.into())),
        };
        assert_eq!(
            routes[4].rewrite,
            Some(pb::Rewrite {
                hostname: Some("internal.a".into()),
                path: Some(prefix("/v2")),
            })
        );
        assert_eq!(
            routes[6].action,
            Some(pb::route::Action::Redirect(pb::Redirect {
                scheme: Some("https".into()),
                hostname: Some("new.example".into()),
                port: Some(8443),
                path: Some(prefix("/here")),
                status: 308,
            }))
        );
        // An unset status stays 0 on the wire: both sides default it.
        assert!(matches!(
            &routes[7].action,
            Some(pb::route::Action::Redirect(r)) if r.status == 0 && r.port.is_none()
        ));
        let mut bad = wire.clone();
        bad.listeners[0].routes[6].action = Some(pb::route::Action::Redirect(pb::Redirect {
            scheme: Some("ftp".into()),
            status: 200,
            path: Some(pb::PathModifier { kind: None }),
            ..Default::default()
        }));
        // `renamed` matches an exact path: there is no prefix to replace.
        bad.listeners[0].routes[5].rewrite = Some(pb::Rewrite {
            hostname: Some("a b".into()),
            path: Some(prefix("/x")),
        });
        let err = super::super::validate(&to_raw(&bad), "snapshot v13", Default::default())
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                "snapshot v13: listeners[0].routes[5].rewrite.hostname: `a b` is not a host name: letters, digits, `-` and `.`, or an IPv6 address in brackets",
                "snapshot v13: listeners[0].routes[5].rewrite.path.prefix: replaces the path prefix the route matched, and this route matches none: give it `match.path.prefix`, or use `full`",
                "snapshot v13: listeners[0].routes[6].redirect.scheme: `ftp`: a redirect's scheme is `http` or `https`",
                "snapshot v13: listeners[0].routes[6].redirect.path: give `full: /path` or `prefix: /path`",
                "snapshot v13: listeners[0].routes[6].redirect.status: 200 is not a redirect status: 301, 302, 303, 307 or 308",
            ]
        );
        wire.listeners[0].routes[4].rewrite = None;
        assert_ne!(model(&to_raw(&wire), "snapshot"), model(&raw, "file"));
    }

    #[test]
    fn a_fault_without_a_percent_has_no_wire_form() {
        let raw: RawConfig = serde_saphyr::from_str(
            "listeners: [ { name: a, address: 127.0.0.1:1, routes: [ { cluster: c, fault: { delay: { duration: 1s } } } ] } ]",
        )
        .unwrap();
        let err = from_raw(&raw).unwrap_err();
        assert_eq!(err.path, "listeners[0].routes[0].fault.delay.percent");
    }

    #[test]
    fn a_duration_the_wire_cannot_hold_is_an_error() {
        let raw: RawConfig = serde_saphyr::from_str(
            "listeners: [ { name: a, address: 127.0.0.1:1, idle_timeout: 500000000000y } ]",
        )
        .unwrap();
        let err = from_raw(&raw).unwrap_err();
        assert_eq!(err.path, "listeners[0].idle_timeout");
        assert!(err.message.contains("too long"), "{err}");
    }

    #[test]
    fn durations_keep_their_precision() {
        let d = |seconds, nanos| {
            duration(&Some(prost_types::Duration { seconds, nanos }))
                .unwrap()
                .value
        };
        assert_eq!(d(15, 0), "15s");
        assert_eq!(d(0, 0), "0s");
        assert_eq!(d(0, 250_000_000), "250ms");
        assert_eq!(d(1, 500_000_000), "1s 500ms");
        assert_eq!(d(0, 1_500), "1500ns");
        assert_eq!(d(2, 1_500), "2s 1500ns");
        assert_eq!(d(-2, 0), "-2000000000ns");
        assert_eq!(duration(&None), None);
    }
}
