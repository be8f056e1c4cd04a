//! Tracing, access logs and listener direction between the wire and the
//! raw config.

use ringmesh_proto::v1 as pb;

use super::{s, ToProtoError};
use crate::config::raw::*;

pub(super) fn tracing(t: &pb::Tracing) -> RawTracing {
    RawTracing {
        collector: (!t.collector.is_empty()).then(|| s(t.collector.clone())),
        sampling_percent: t.sampling_percent.map(s),
        service_name: (!t.service_name.is_empty()).then(|| s(t.service_name.clone())),
    }
}

pub(super) fn wire_tracing(t: &RawTracing) -> pb::Tracing {
    pb::Tracing {
        collector: t
            .collector
            .as_ref()
            .map(|c| c.value.clone())
            .unwrap_or_default(),
        sampling_percent: t.sampling_percent.as_ref().map(|p| p.value),
        service_name: t
            .service_name
            .as_ref()
            .map(|n| n.value.clone())
            .unwrap_or_default(),
    }
}

pub(super) fn access_log(a: &pb::AccessLog) -> RawAccessLog {
    RawAccessLog {
        path: (!a.path.is_empty()).then(|| s(a.path.clone())),
        format: (!a.format.is_empty()).then(|| s(a.format.clone())),
        min_status: a.min_status.map(|m| s(u64::from(m))),
        sample_percent: a.sample_percent.map(s),
    }
}

pub(super) fn wire_access_log(a: &RawAccessLog, path: &str) -> Result<pb::AccessLog, ToProtoError> {
    let min_status = match &a.min_status {
        Some(m) => Some(u32::try_from(m.value).map_err(|_| ToProtoError {
            path: format!("{path}.min_status"),
            message: format!("`{}` is not a status code", m.value),
        })?),
        None => None,
    };
    Ok(pb::AccessLog {
        path: a.path.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
        format: a
            .format
            .as_ref()
            .map(|f| f.value.clone())
            .unwrap_or_default(),
        min_status,
        sample_percent: a.sample_percent.as_ref().map(|p| p.value),
    })
}

pub(super) fn direction(d: i32) -> Option<serde_saphyr::Spanned<String>> {
    match pb::Direction::try_from(d) {
        Ok(pb::Direction::Unspecified) => None,
        Ok(pb::Direction::Inbound) => Some(s("inbound".to_string())),
        Ok(pb::Direction::Outbound) => Some(s("outbound".to_string())),
        // Kept, so validation names the unknown value at its field.
        Err(_) => Some(s(d.to_string())),
    }
}

pub(super) fn wire_direction(
    d: &Option<serde_saphyr::Spanned<String>>,
    path: &str,
) -> Result<i32, ToProtoError> {
    Ok(match d.as_ref().map(|v| v.value.as_str()) {
        None => pb::Direction::Unspecified,
        Some("inbound") => pb::Direction::Inbound,
        Some("outbound") => pb::Direction::Outbound,
        Some(other) => {
            return Err(ToProtoError {
                path: format!("{path}.direction"),
                message: format!("unknown direction `{other}`"),
            })
        }
    } as i32)
}
