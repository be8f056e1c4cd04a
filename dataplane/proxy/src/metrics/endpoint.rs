//! Per-endpoint counters: where a cluster's traffic went, how much of it
//! failed and how long it took.
//!
//! An endpoint's counters live as long as the endpoint does on a core: the
//! core's `Endpoint` holds the only strong reference and the cluster's
//! registry a weak one, so an endpoint that leaves the cluster (and whose
//! last request has finished) leaves `/metrics` at the next scrape. The
//! series are bounded by the endpoints that exist, not by those that ever
//! did. Registering takes a lock, once per endpoint per core when the
//! endpoint set changes; counting is single-writer like every counter.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use super::{header, ClusterStats, CoreStats, Counter, Label};
use crate::config::Config;

/// One endpoint's counters on one core.
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// Tries sent to it that ended (a response head or a failure).
    pub requests: Counter,
    /// Tries that failed: no connection, a reset, a timeout, or a 5xx.
    pub errors: Counter,
    /// Sum of the tries' times to a response head, in microseconds.
    pub latency_us: Counter,
    /// 1 while this core has it ejected (outlier detection).
    pub ejected: Counter,
    /// Times this core ejected it.
    pub ejections: Counter,
    /// 1 while active health checks find it unhealthy (the same on every
    /// core; rendered from core 0's).
    pub unhealthy: Counter,
    /// Active health checks it passed and failed (core 0 runs them).
    pub checks_passed: Counter,
    pub checks_failed: Counter,
}

impl EndpointStats {
    /// A try ended after `latency_us`, failed or not.
    #[inline]
    pub fn record(&self, failed: bool, latency_us: u64) {
        self.requests.inc();
        self.latency_us.add(latency_us);
        if failed {
            self.errors.inc();
        }
    }
}

/// A cluster's endpoints' counters on one core, weakly held.
#[derive(Debug, Default)]
pub struct Registry(Mutex<Vec<(SocketAddr, Weak<EndpointStats>)>>);

impl Registry {
    /// New counters for `addr`, listed until they are dropped.
    pub fn register(&self, addr: SocketAddr) -> Arc<EndpointStats> {
        let stats = Arc::new(EndpointStats::default());
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|(_, w)| w.strong_count() > 0);
        list.push((addr, Arc::downgrade(&stats)));
        stats
    }

    /// Visit the live endpoints' counters.
    pub fn each(&self, mut f: impl FnMut(SocketAddr, &EndpointStats)) {
        let list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (addr, w) in list.iter() {
            if let Some(s) = w.upgrade() {
                f(*addr, &s);
            }
        }
    }
}

/// The sums over cores of one endpoint's counters.
#[derive(Default)]
struct Sums {
    requests: u64,
    errors: u64,
    latency_us: u64,
    ejected: u64,
    ejections: u64,
    unhealthy: u64,
    checks_passed: u64,
    checks_failed: u64,
}

/// Write the endpoint families for every cluster of `config`.
pub(super) fn render(out: &mut String, config: &Config, cores: &[Arc<CoreStats>]) {
    let mut by_cluster: Vec<(&str, BTreeMap<SocketAddr, Sums>)> = Vec::new();
    for k in &config.clusters {
        let mut sums: BTreeMap<SocketAddr, Sums> = BTreeMap::new();
        for (i, core) in cores.iter().enumerate() {
            let stats: Arc<ClusterStats> = core.cluster(&k.name);
            stats.endpoints.each(|addr, s| {
                let e = sums.entry(addr).or_default();
                e.requests += s.requests.get();
                e.errors += s.errors.get();
                e.latency_us += s.latency_us.get();
                e.ejected += s.ejected.get();
                e.ejections += s.ejections.get();
                e.checks_passed += s.checks_passed.get();
                e.checks_failed += s.checks_failed.get();
                if i == 0 {
                    e.unhealthy = s.unhealthy.get();
                }
            });
        }
        by_cluster.push((&k.name, sums));
    }
    type Get = fn(&Sums) -> String;
    let families: [(&str, &str, &str, Get); 6] = [
        (
            "ringmesh_endpoint_requests_total",
            "counter",
            "Tries sent to an endpoint that ended, by a response head or a failure.",
            |s| s.requests.to_string(),
        ),
        (
            "ringmesh_endpoint_errors_total",
            "counter",
            "Tries to an endpoint that failed: no connection, a reset, a timeout or a 5xx.",
            |s| s.errors.to_string(),
        ),
        (
            "ringmesh_endpoint_response_time_seconds_total",
            "counter",
            "Sum of the tries' times from sending to the response head (divide by requests for the mean).",
            |s| format!("{:.6}", s.latency_us as f64 / 1e6),
        ),
        (
            "ringmesh_endpoint_ejected",
            "gauge",
            "Workers that have the endpoint ejected by outlier detection.",
            |s| s.ejected.to_string(),
        ),
        (
            "ringmesh_endpoint_ejections_total",
            "counter",
            "Ejections of the endpoint by outlier detection, summed over workers.",
            |s| s.ejections.to_string(),
        ),
        (
            "ringmesh_endpoint_healthy",
            "gauge",
            "1 unless active health checks find the endpoint unhealthy.",
            |s| u64::from(s.unhealthy == 0).to_string(),
        ),
    ];
    for (name, kind, help, get) in families {
        header(out, name, kind, help);
        for (cluster, sums) in &by_cluster {
            for (addr, s) in sums {
                let _ = writeln!(
                    out,
                    "{name}{{cluster=\"{}\",endpoint=\"{addr}\"}} {}",
                    Label(cluster),
                    get(s)
                );
            }
        }
    }
    render_checks(out, &by_cluster);
}

/// `ringmesh_endpoint_health_checks_total`, for endpoints checked at least
/// once (those of clusters without health checks would show only zeros).
fn render_checks(out: &mut String, by_cluster: &[(&str, BTreeMap<SocketAddr, Sums>)]) {
    let name = "ringmesh_endpoint_health_checks_total";
    header(
        out,
        name,
        "counter",
        "Active health checks of an endpoint, by result (success or failure).",
    );
    for (cluster, sums) in by_cluster {
        for (addr, s) in sums {
            if s.checks_passed + s.checks_failed == 0 {
                continue;
            }
            for (result, n) in [("success", s.checks_passed), ("failure", s.checks_failed)] {
                let _ = writeln!(
                    out,
                    "{name}{{cluster=\"{}\",endpoint=\"{addr}\",result=\"{result}\"}} {n}",
                    Label(cluster),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_leaves_the_registry_with_its_last_holder() {
        let r = Registry::default();
        let a = r.register("10.0.0.1:80".parse().unwrap());
        let b = r.register("10.0.0.2:80".parse().unwrap());
        a.record(true, 1500);
        let mut seen = Vec::new();
        r.each(|addr, s| seen.push((addr.to_string(), s.errors.get())));
        assert_eq!(
            seen,
            [
                ("10.0.0.1:80".to_string(), 1),
                ("10.0.0.2:80".to_string(), 0)
            ]
        );
        drop(a);
        let mut seen = Vec::new();
        r.each(|addr, _| seen.push(addr.to_string()));
        assert_eq!(seen, ["10.0.0.2:80"]);
        drop(b);
    }
}
