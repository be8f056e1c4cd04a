//! A `TrafficPolicy` onto the proxy config: its balancing, limits,
//! outlier detection, retry budget and panic threshold onto every cluster
//! of the Services it targets (each port's, on every proxy that calls
//! them: sidecars' outbound side and gateways), and its rate limit onto
//! the inbound route of those Services' own sidecars. Unset fields stay
//! unset, so the proxy's defaults apply as they do in `proxy.yaml`.

use ringmesh_proto::v1 as pb;

use super::duration;
use crate::resources::model::{HashKey, HealthCheck, LbKind, TrafficPolicy};

/// Write the policy's settings into `c`, a cluster of a target Service.
pub(super) fn cluster(c: &mut pb::Cluster, p: &TrafficPolicy) {
    if let Some(lb) = &p.load_balancer {
        c.lb = match lb.kind {
            LbKind::RoundRobin => pb::LbPolicy::RoundRobin,
            LbKind::LeastRequest => pb::LbPolicy::LeastRequest,
            LbKind::PeakEwma => pb::LbPolicy::PeakEwma,
            LbKind::RingHash => pb::LbPolicy::RingHash,
            LbKind::Maglev => pb::LbPolicy::Maglev,
        } as i32;
        if lb.half_life.is_some() || lb.default_rtt.is_some() {
            c.peak_ewma = Some(pb::PeakEwma {
                half_life: lb.half_life.map(duration),
                default_rtt: lb.default_rtt.map(duration),
            });
        }
        c.hash = lb.hash.as_ref().map(|h| pb::Hash {
            on: Some(match h {
                HashKey::Header(n) => pb::hash::On::Header(n.clone()),
                HashKey::Cookie(n) => pb::hash::On::Cookie(n.clone()),
                HashKey::SourceIp => pb::hash::On::SourceIp(true),
            }),
            table_size: lb.table_size,
            ring_points: lb.ring_points,
        });
    }
    let b = &p.breakers;
    if !b.is_empty() {
        c.circuit_breaker = Some(pb::CircuitBreaker {
            max_connections: b.max_connections,
            max_pending_requests: b.max_pending_requests,
            max_requests: b.max_requests,
            max_retries: b.max_retries,
        });
    }
    if let Some(t) = p.connect_timeout {
        c.connect_timeout = Some(duration(t));
    }
    if let Some(t) = p.idle_timeout {
        c.pool.get_or_insert_with(Default::default).idle_timeout = Some(duration(t));
    }
    c.outlier_detection = p.outlier.as_ref().map(|o| pb::OutlierDetection {
        consecutive_5xx: o.consecutive_5xx,
        consecutive_gateway_errors: o.consecutive_gateway_errors,
        interval: o.interval.map(duration),
        base_ejection_time: o.base_ejection_time.map(duration),
        max_ejection_time: o.max_ejection_time.map(duration),
        max_ejection_percent: o.max_ejection_percent,
        success_rate: o
            .success_rate
            .map(|(hosts, volume, stdev)| pb::SuccessRate {
                minimum_hosts: hosts,
                request_volume: volume,
                stdev_factor: stdev,
            }),
    });
    c.retry_budget = p.retry_budget.as_ref().map(|r| pb::RetryBudget {
        percent: r.percent,
        min_per_second: r.min_per_second,
    });
    if p.panic_threshold.is_some() {
        c.panic_threshold = p.panic_threshold;
    }
    if let Some(h) = &p.health_check {
        c.health_check = Some(health_check(c, h));
    }
}

/// The proxy's health check. An `http` check of endpoints that speak
/// HTTP/2 (a meshed Service's sidecars, a gRPC port) becomes a `tcp` one:
/// the proxy's HTTP checks speak HTTP/1.1, and a sidecar that completes
/// the mTLS handshake is up.
fn health_check(c: &pb::Cluster, h: &HealthCheck) -> pb::HealthCheck {
    let http2 = c.mesh.is_some() || c.protocol == pb::UpstreamProtocol::Http2 as i32;
    let kind = match &h.http {
        Some(http) if !http2 => pb::health_check::Kind::Http(pb::HttpHealthCheck {
            path: http.path.clone(),
            host: http.host.clone(),
            expected_statuses: http
                .expected_statuses
                .iter()
                .map(|&(start, end)| pb::StatusRange { start, end })
                .collect(),
        }),
        _ => pb::health_check::Kind::Tcp(pb::TcpHealthCheck {}),
    };
    pb::HealthCheck {
        interval: h.interval.map(duration),
        timeout: h.timeout.map(duration),
        jitter: h.jitter.map(duration),
        unhealthy_threshold: h.unhealthy_threshold,
        healthy_threshold: h.healthy_threshold,
        kind: Some(kind),
    }
}

/// The rate limit a target Service's sidecars put on their inbound route.
pub(super) fn rate_limit(p: &TrafficPolicy) -> Option<pb::RateLimit> {
    let r = p.rate_limit.as_ref()?;
    Some(pb::RateLimit {
        requests_per_second: r.requests_per_second,
        burst: r.burst,
        per: match &r.per {
            None => None,
            Some(None) => Some(pb::rate_limit::Per::PerSource(true)),
            Some(Some(h)) => Some(pb::rate_limit::Per::PerHeader(h.clone())),
        },
    })
}
