//! Endpoints as the callers' proxies see them, for `ringmeshctl stat
//! endpoints`: where a Service's traffic went, how much of it failed, and
//! which proxies have an endpoint ejected (outlier detection) or failing
//! health checks now.

use std::collections::BTreeMap;

use ringmesh_proto::v1 as pb;

use super::{NodeDelta, NodeInfo};

/// One endpoint of one proxy's cluster over the window: counters as
/// differences, gauges as last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointDelta {
    pub requests: u64,
    pub errors: u64,
    pub ejections: u64,
    pub ejected_workers: u32,
    pub healthy: bool,
}

impl EndpointDelta {
    /// `last` less `first` (an endpoint new in the window: since 0; one
    /// that left and came back, with counters that went back: since 0).
    pub fn since(last: &pb::EndpointReport, first: Option<&pb::EndpointReport>) -> Self {
        let went_back = first.is_some_and(|f| {
            last.requests < f.requests || last.errors < f.errors || last.ejections < f.ejections
        });
        let base = first.filter(|_| !went_back);
        let minus = |now: u64, then: fn(&pb::EndpointReport) -> u64| {
            now.saturating_sub(base.map_or(0, then))
        };
        EndpointDelta {
            requests: minus(last.requests, |f| f.requests),
            errors: minus(last.errors, |f| f.errors),
            ejections: minus(last.ejections, |f| f.ejections),
            ejected_workers: last.ejected_workers,
            healthy: last.healthy,
        }
    }
}

/// An endpoint summed over the proxies that call it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointTraffic {
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub proxies: u32,
    pub ejected_by: u32,
    pub ejections: u64,
    pub unhealthy_by: u32,
}

/// Per (Service, address), over every proxy whose cluster toward the
/// Service has that endpoint; `callee` maps a cluster name to its Service.
pub fn aggregate_endpoints(
    deltas: &BTreeMap<String, NodeDelta>,
    nodes: &BTreeMap<String, NodeInfo>,
    callee: impl Fn(&str) -> Option<String>,
) -> BTreeMap<(String, String), EndpointTraffic> {
    let mut out: BTreeMap<(String, String), EndpointTraffic> = BTreeMap::new();
    for (id, d) in deltas {
        if !nodes.contains_key(id) {
            continue;
        }
        for ((cluster, address), e) in &d.endpoints {
            let Some(service) = callee(cluster) else {
                continue;
            };
            let t = out.entry((service, address.clone())).or_default();
            t.requests += e.requests;
            t.errors += e.errors;
            t.rps += e.requests as f64 / d.seconds;
            t.proxies += 1;
            t.ejected_by += u32::from(e.ejected_workers > 0);
            t.ejections += e.ejections;
            t.unhealthy_by += u32::from(!e.healthy);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(requests: u64, errors: u64, ejections: u64, ejected: u32) -> pb::EndpointReport {
        pb::EndpointReport {
            address: "10.0.0.1:80".into(),
            requests,
            errors,
            ejections,
            ejected_workers: ejected,
            healthy: true,
        }
    }

    fn delta(seconds: f64, e: EndpointDelta) -> NodeDelta {
        NodeDelta {
            seconds,
            bounds: vec![],
            listeners: BTreeMap::new(),
            clusters: BTreeMap::new(),
            endpoints: [(("api".to_string(), "10.0.0.1:80".to_string()), e)].into(),
        }
    }

    #[test]
    fn counters_are_differences_and_gauges_the_latest() {
        let d = EndpointDelta::since(&report(150, 20, 3, 2), Some(&report(100, 10, 1, 0)));
        assert_eq!(
            d,
            EndpointDelta {
                requests: 50,
                errors: 10,
                ejections: 2,
                ejected_workers: 2,
                healthy: true
            }
        );
        // It left and came back: its counters started again.
        let back = EndpointDelta::since(&report(5, 0, 0, 0), Some(&report(100, 10, 1, 0)));
        assert_eq!(back.requests, 5);
    }

    #[test]
    fn proxies_that_call_a_service_are_summed_per_endpoint() {
        let info = NodeInfo {
            service: "web".into(),
            gateway: false,
        };
        let nodes: BTreeMap<String, NodeInfo> =
            [("a".to_string(), info.clone()), ("b".to_string(), info)].into();
        let ejecting = EndpointDelta {
            requests: 10,
            errors: 5,
            ejections: 1,
            ejected_workers: 1,
            healthy: true,
        };
        let fine = EndpointDelta {
            requests: 40,
            errors: 0,
            ejections: 0,
            ejected_workers: 0,
            healthy: false,
        };
        let deltas: BTreeMap<String, NodeDelta> = [
            ("a".to_string(), delta(10.0, ejecting)),
            ("b".to_string(), delta(5.0, fine)),
            ("gone".to_string(), delta(5.0, EndpointDelta::default())),
        ]
        .into();
        let out = aggregate_endpoints(&deltas, &nodes, |c| (c == "api").then(|| "api".to_string()));
        let t = &out[&("api".to_string(), "10.0.0.1:80".to_string())];
        assert_eq!((t.requests, t.errors, t.proxies), (50, 5, 2));
        assert!((t.rps - 9.0).abs() < 1e-9, "1/s + 8/s: {}", t.rps);
        assert_eq!((t.ejected_by, t.ejections, t.unhealthy_by), (1, 1, 1));
    }
}
