//! A cluster's circuit breaker and outlier detection between the wire and
//! the raw config.

use ringmesh_proto::v1 as pb;

use super::{duration, s, wire_duration, ToProtoError};
use crate::config::raw::*;

pub(super) fn circuit_breaker(b: &pb::CircuitBreaker) -> RawCircuitBreaker {
    RawCircuitBreaker {
        max_connections: b.max_connections.map(s),
        max_pending_requests: b.max_pending_requests.map(s),
        max_requests: b.max_requests.map(s),
        max_retries: b.max_retries.map(s),
    }
}

pub(super) fn wire_circuit_breaker(b: &RawCircuitBreaker) -> pb::CircuitBreaker {
    pb::CircuitBreaker {
        max_connections: b.max_connections.as_ref().map(|v| v.value),
        max_pending_requests: b.max_pending_requests.as_ref().map(|v| v.value),
        max_requests: b.max_requests.as_ref().map(|v| v.value),
        max_retries: b.max_retries.as_ref().map(|v| v.value),
    }
}

pub(super) fn outlier(o: &pb::OutlierDetection) -> RawOutlierDetection {
    RawOutlierDetection {
        consecutive_5xx: o.consecutive_5xx.map(s),
        consecutive_gateway_errors: o.consecutive_gateway_errors.map(s),
        interval: duration(&o.interval),
        base_ejection_time: duration(&o.base_ejection_time),
        max_ejection_time: duration(&o.max_ejection_time),
        max_ejection_percent: o.max_ejection_percent.map(s),
        success_rate: o.success_rate.as_ref().map(|r| {
            s(RawSuccessRate {
                minimum_hosts: r.minimum_hosts.map(s),
                request_volume: r.request_volume.map(s),
                stdev_factor: r.stdev_factor.map(s),
            })
        }),
    }
}

pub(super) fn wire_outlier(
    o: &RawOutlierDetection,
    path: &str,
) -> Result<pb::OutlierDetection, ToProtoError> {
    Ok(pb::OutlierDetection {
        consecutive_5xx: o.consecutive_5xx.as_ref().map(|v| v.value),
        consecutive_gateway_errors: o.consecutive_gateway_errors.as_ref().map(|v| v.value),
        interval: wire_duration(&o.interval, &format!("{path}.interval"))?,
        base_ejection_time: wire_duration(
            &o.base_ejection_time,
            &format!("{path}.base_ejection_time"),
        )?,
        max_ejection_time: wire_duration(
            &o.max_ejection_time,
            &format!("{path}.max_ejection_time"),
        )?,
        max_ejection_percent: o.max_ejection_percent.as_ref().map(|v| v.value),
        success_rate: o.success_rate.as_ref().map(|r| pb::SuccessRate {
            minimum_hosts: r.value.minimum_hosts.as_ref().map(|v| v.value),
            request_volume: r.value.request_volume.as_ref().map(|v| v.value),
            stdev_factor: r.value.stdev_factor.as_ref().map(|v| v.value),
        }),
    })
}
