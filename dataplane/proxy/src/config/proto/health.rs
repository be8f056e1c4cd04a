//! A cluster's `health_check` between the wire and the raw config.
//!
//! The wire has one oneof for `http` | `tcp` (a snapshot cannot set both;
//! one that sets neither is refused by validation, as YAML is) and ranges
//! for the expected statuses: a single status is a range with `end` 0.

use ringmesh_proto::v1 as pb;

use super::{duration, s, wire_duration, ToProtoError};
use crate::config::raw::*;

pub(super) fn health_check(h: &pb::HealthCheck) -> RawHealthCheck {
    use pb::health_check::Kind;
    RawHealthCheck {
        interval: duration(&h.interval),
        timeout: duration(&h.timeout),
        jitter: duration(&h.jitter),
        unhealthy_threshold: h.unhealthy_threshold.map(s),
        healthy_threshold: h.healthy_threshold.map(s),
        http: match &h.kind {
            Some(Kind::Http(http)) => Some(s(RawHttpCheck {
                path: http.path.clone().map(s),
                host: http.host.clone().map(s),
                expected_statuses: (!http.expected_statuses.is_empty()).then(|| {
                    s(http
                        .expected_statuses
                        .iter()
                        .map(|r| s(raw_status_range(r)))
                        .collect())
                }),
            })),
            _ => None,
        },
        tcp: matches!(h.kind, Some(Kind::Tcp(_))).then(|| s(RawTcpCheck {})),
    }
}

fn raw_status_range(r: &pb::StatusRange) -> RawStatusRange {
    if r.end == 0 || r.end == r.start {
        RawStatusRange::Code(u64::from(r.start))
    } else {
        RawStatusRange::Range(format!("{}-{}", r.start, r.end))
    }
}

pub(super) fn wire_health_check(
    h: &RawHealthCheck,
    path: &str,
) -> Result<pb::HealthCheck, ToProtoError> {
    use pb::health_check::Kind;
    let kind = match (&h.http, &h.tcp) {
        (Some(http), None) => Some(Kind::Http(wire_http(&http.value, &format!("{path}.http"))?)),
        (None, Some(_)) => Some(Kind::Tcp(pb::TcpHealthCheck {})),
        (Some(_), Some(_)) => {
            return Err(ToProtoError {
                path: path.to_string(),
                message: "both `http` and `tcp`".into(),
            })
        }
        (None, None) => None,
    };
    Ok(pb::HealthCheck {
        interval: wire_duration(&h.interval, &format!("{path}.interval"))?,
        timeout: wire_duration(&h.timeout, &format!("{path}.timeout"))?,
        jitter: wire_duration(&h.jitter, &format!("{path}.jitter"))?,
        unhealthy_threshold: h.unhealthy_threshold.as_ref().map(|v| v.value),
        healthy_threshold: h.healthy_threshold.as_ref().map(|v| v.value),
        kind,
    })
}

fn wire_http(h: &RawHttpCheck, path: &str) -> Result<pb::HttpHealthCheck, ToProtoError> {
    let expected_statuses = h
        .expected_statuses
        .iter()
        .flat_map(|list| list.value.iter().enumerate())
        .map(|(i, r)| {
            crate::config::validate::status_range(&r.value)
                .map(|(start, end)| pb::StatusRange {
                    start: u32::from(start),
                    end: if start == end { 0 } else { u32::from(end) },
                })
                .ok_or_else(|| ToProtoError {
                    path: format!("{path}.expected_statuses[{i}]"),
                    message: "not a status from 100 to 599 or a range of them".into(),
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(pb::HttpHealthCheck {
        path: h.path.as_ref().map(|p| p.value.clone()),
        host: h.host.as_ref().map(|v| v.value.clone()),
        expected_statuses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_cross_as_ranges_and_come_back_as_written() {
        let yaml =
            "interval: 2s\nhttp: { path: /healthz, expected_statuses: [204, \"300-399\"] }\n";
        let raw: RawHealthCheck = serde_saphyr::from_str(yaml).unwrap();
        let wire = wire_health_check(&raw, "h").unwrap();
        let Some(pb::health_check::Kind::Http(http)) = &wire.kind else {
            panic!("http: {wire:?}")
        };
        assert_eq!(
            http.expected_statuses,
            [
                pb::StatusRange { start: 204, end: 0 },
                pb::StatusRange {
                    start: 300,
                    end: 399
                }
            ]
        );
        let json = |r: &RawHealthCheck| serde_json::to_string(r).unwrap();
        assert_eq!(json(&health_check(&wire)), json(&raw));
        let bad: RawHealthCheck =
            serde_saphyr::from_str("http: { expected_statuses: [\"5xx\"] }").unwrap();
        let err = wire_health_check(&bad, "clusters[0].health_check").unwrap_err();
        assert_eq!(
            err.path,
            "clusters[0].health_check.http.expected_statuses[0]"
        );
    }
}
