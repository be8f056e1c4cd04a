//! A cluster's balancing between the wire and the raw config: endpoints
//! with weights and zones, `lb` and its settings, the panic threshold.

use ringmesh_proto::v1 as pb;

use super::{duration, s, wire_duration, ToProtoError};
use crate::config::raw::*;

/// `endpoints` and `endpoint_details` as one list.
pub(super) fn endpoints(c: &pb::Cluster) -> Vec<S<RawEndpoint>> {
    let plain = c.endpoints.iter().map(|e| RawEndpoint::Address(e.clone()));
    let detailed = c.endpoint_details.iter().map(|e| {
        RawEndpoint::Detailed(RawEndpointDetail {
            address: e.address.clone(),
            weight: (e.weight != 0).then_some(u64::from(e.weight)),
            zone: (!e.zone.is_empty()).then(|| e.zone.clone()),
        })
    });
    plain.chain(detailed).map(s).collect()
}

/// Plain endpoints go to `endpoints`, the rest to `endpoint_details`.
pub(super) fn wire_endpoints(
    c: &RawCluster,
    path: &str,
) -> Result<(Vec<String>, Vec<pb::Endpoint>), ToProtoError> {
    let mut plain = Vec::new();
    let mut detailed = Vec::new();
    for (i, e) in c.endpoints.iter().enumerate() {
        match &e.value {
            RawEndpoint::Address(a) => plain.push(a.clone()),
            RawEndpoint::Detailed(d) => detailed.push(pb::Endpoint {
                address: d.address.clone(),
                weight: match d.weight {
                    None => 0,
                    Some(w) => u32::try_from(w).map_err(|_| ToProtoError {
                        path: format!("{path}.endpoints[{i}].weight"),
                        message: format!("`{w}` is too large"),
                    })?,
                },
                zone: d.zone.clone().unwrap_or_default(),
            }),
        }
    }
    Ok((plain, detailed))
}

pub(super) fn lb(c: &pb::Cluster) -> Option<S<String>> {
    let name = match pb::LbPolicy::try_from(c.lb) {
        Ok(pb::LbPolicy::Unspecified) => return None,
        Ok(pb::LbPolicy::RoundRobin) => "round_robin",
        Ok(pb::LbPolicy::LeastRequest) => "least_request",
        Ok(pb::LbPolicy::PeakEwma) => "peak_ewma",
        Ok(pb::LbPolicy::RingHash) => "ring_hash",
        Ok(pb::LbPolicy::Maglev) => "maglev",
        // Kept, so validation rejects it at its field.
        Err(_) => return Some(s(c.lb.to_string())),
    };
    Some(s(name.to_string()))
}

pub(super) fn wire_lb(c: &RawCluster, path: &str) -> Result<i32, ToProtoError> {
    let policy = match c.lb.as_ref().map(|v| v.value.as_str()) {
        None => pb::LbPolicy::Unspecified,
        Some("round_robin") => pb::LbPolicy::RoundRobin,
        Some("least_request") => pb::LbPolicy::LeastRequest,
        Some("peak_ewma") => pb::LbPolicy::PeakEwma,
        Some("ring_hash") => pb::LbPolicy::RingHash,
        Some("maglev") => pb::LbPolicy::Maglev,
        Some(other) => {
            return Err(ToProtoError {
                path: format!("{path}.lb"),
                message: format!("unknown lb policy `{other}`"),
            })
        }
    };
    Ok(policy as i32)
}

pub(super) fn peak_ewma(p: &pb::PeakEwma) -> RawPeakEwma {
    RawPeakEwma {
        half_life: duration(&p.half_life),
        default_rtt: duration(&p.default_rtt),
    }
}

pub(super) fn wire_peak_ewma(p: &RawPeakEwma, path: &str) -> Result<pb::PeakEwma, ToProtoError> {
    Ok(pb::PeakEwma {
        half_life: wire_duration(&p.half_life, &format!("{path}.half_life"))?,
        default_rtt: wire_duration(&p.default_rtt, &format!("{path}.default_rtt"))?,
    })
}

pub(super) fn hash(h: &pb::Hash) -> RawHash {
    use pb::hash::On;
    RawHash {
        on: h.on.as_ref().map(|on| {
            s(match on {
                On::SourceIp(_) => RawHashOn::SourceIp,
                On::Header(n) => RawHashOn::Header(s(n.clone())),
                On::Cookie(n) => RawHashOn::Cookie(s(n.clone())),
            })
        }),
        ring_points: h.ring_points.map(s),
        table_size: h.table_size.map(s),
    }
}

pub(super) fn wire_hash(h: &RawHash) -> pb::Hash {
    use pb::hash::On;
    pb::Hash {
        on: h.on.as_ref().map(|on| match &on.value {
            RawHashOn::SourceIp => On::SourceIp(true),
            RawHashOn::Header(n) => On::Header(n.value.clone()),
            RawHashOn::Cookie(n) => On::Cookie(n.value.clone()),
        }),
        ring_points: h.ring_points.as_ref().map(|t| t.value),
        table_size: h.table_size.as_ref().map(|t| t.value),
    }
}
