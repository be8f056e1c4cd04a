//! Traffic statistics from the proxies' reports, for `ringmeshctl stat`.
//!
//! Each proxy sends its cumulative counters every few seconds
//! (`Telemetry/Report`). Per node, [`Store`] keeps the reports of the last
//! window, newest last; [`Store::window`] turns the first and last of
//! them into differences (requests by status class, latency buckets) over
//! the time between them, and [`aggregate`] sums those per Service (its
//! proxies' inbound side) and per caller -> callee edge (the caller's
//! proxies' cluster toward the callee). Rates are each proxy's count over
//! its own clock's interval, summed; percentiles interpolate within the
//! merged histogram buckets, as Prometheus' `histogram_quantile` does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ringmesh_proto::v1 as pb;

mod endpoints;
pub use endpoints::{aggregate_endpoints, EndpointDelta, EndpointTraffic};

/// Status classes a report counts (1xx .. 5xx).
const CLASSES: usize = 5;

/// At most this many reports are kept per node, whatever the window and
/// the proxy's interval: a proxy reporting very often keeps a shorter
/// history, not more memory.
const MAX_REPORTS: usize = 512;

/// Requests by class and latency buckets of one listener or cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub mesh: bool,
    pub by_class: [u64; CLASSES],
    /// Per bucket of the report's bounds, then +Inf.
    pub buckets: Vec<u64>,
    /// Requests that came over mTLS (listeners only).
    pub mtls: u64,
}

impl Counts {
    fn from_pb(mesh: bool, c: Option<&pb::RequestCounts>, mtls: u64) -> Counts {
        let mut by_class = [0; CLASSES];
        let mut buckets = Vec::new();
        if let Some(c) = c {
            for (to, from) in by_class.iter_mut().zip(&c.by_class) {
                *to = *from;
            }
            buckets = c.latency_buckets.clone();
        }
        Counts {
            mesh,
            by_class,
            buckets,
            mtls,
        }
    }

    pub fn requests(&self) -> u64 {
        self.by_class.iter().sum()
    }

    /// Whether any counter is below the one in `earlier`: a restart.
    fn went_back_from(&self, earlier: &Counts) -> bool {
        self.by_class
            .iter()
            .zip(&earlier.by_class)
            .any(|(n, e)| n < e)
            || self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .any(|(n, e)| n < e)
            || self.mtls < earlier.mtls
    }

    /// `self - earlier`, counter by counter (`earlier` None: since 0).
    fn since(&self, earlier: Option<&Counts>) -> Counts {
        let Some(e) = earlier else {
            return self.clone();
        };
        let mut d = self.clone();
        for (n, e) in d.by_class.iter_mut().zip(&e.by_class) {
            *n = n.saturating_sub(*e);
        }
        for (n, e) in d.buckets.iter_mut().zip(&e.buckets) {
            *n = n.saturating_sub(*e);
        }
        d.mtls = d.mtls.saturating_sub(e.mtls);
        d
    }

    fn add(&mut self, o: &Counts) {
        for (n, x) in self.by_class.iter_mut().zip(&o.by_class) {
            *n += x;
        }
        if self.buckets.len() < o.buckets.len() {
            self.buckets.resize(o.buckets.len(), 0);
        }
        for (n, x) in self.buckets.iter_mut().zip(&o.buckets) {
            *n += x;
        }
        self.mtls += o.mtls;
    }
}

/// One report, as kept.
#[derive(Debug, Clone)]
struct Reading {
    /// When the control plane received it (what the window is measured in).
    at: Instant,
    instance: u64,
    uptime_ms: u64,
    bounds: Vec<u64>,
    listeners: BTreeMap<String, Counts>,
    clusters: BTreeMap<String, Counts>,
    /// By (cluster, address).
    endpoints: BTreeMap<(String, String), pb::EndpointReport>,
}

impl Reading {
    fn from_pb(r: &pb::StatsReport, at: Instant) -> Reading {
        Reading {
            at,
            instance: r.instance,
            uptime_ms: r.uptime_ms,
            bounds: r.latency_bounds_us.clone(),
            listeners: r
                .listeners
                .iter()
                .map(|l| {
                    let c = Counts::from_pb(l.mesh, l.counts.as_ref(), l.mtls_requests);
                    (l.name.clone(), c)
                })
                .collect(),
            clusters: r
                .clusters
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        Counts::from_pb(c.mesh, c.counts.as_ref(), 0),
                    )
                })
                .collect(),
            endpoints: r
                .clusters
                .iter()
                .flat_map(|c| {
                    c.endpoints
                        .iter()
                        .map(|e| ((c.name.clone(), e.address.clone()), e.clone()))
                })
                .collect(),
        }
    }

    /// Whether this reading cannot follow `prev` in one series: another
    /// process, a clock or bucket layout that changed, a counter that went
    /// back.
    fn restarts_after(&self, prev: &Reading) -> bool {
        let back = |now: &BTreeMap<String, Counts>, then: &BTreeMap<String, Counts>| {
            now.iter()
                .any(|(k, n)| then.get(k).is_some_and(|e| n.went_back_from(e)))
        };
        self.instance != prev.instance
            || self.uptime_ms < prev.uptime_ms
            || self.bounds != prev.bounds
            || back(&self.listeners, &prev.listeners)
            || back(&self.clusters, &prev.clusters)
    }
}

/// A node's traffic over the window: differences between its first and
/// last report in it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDelta {
    /// Between the two reports, by the proxy's clock.
    pub seconds: f64,
    pub bounds: Vec<u64>,
    pub listeners: BTreeMap<String, Counts>,
    pub clusters: BTreeMap<String, Counts>,
    /// By (cluster, address): the endpoints of the last report.
    pub endpoints: BTreeMap<(String, String), EndpointDelta>,
}

#[derive(Debug, Default)]
struct Series {
    readings: VecDeque<Reading>,
    /// The stream that reports now; a reconnect supersedes the older.
    stream: u64,
    /// When its stream ended, if it did.
    ended: Option<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    nodes: BTreeMap<String, Series>,
    next_stream: u64,
}

/// The recent reports of every node.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    /// What `stat` looks back over.
    pub window: Duration,
    /// How long a node's data outlives its stream.
    grace: Duration,
}

impl Store {
    /// A node's data is dropped `window` after its stream ends: by then
    /// no reading of it is in the window anyway.
    pub fn new(window: Duration) -> Store {
        Store {
            inner: Mutex::default(),
            window,
            grace: window,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A report stream opened for `node`; its id. Nodes gone longer
    /// than the grace are forgotten here too, so that they do not pile up
    /// while nobody asks for stats.
    pub fn open(&self, node: &str) -> u64 {
        let mut i = self.lock();
        forget_gone(&mut i, Instant::now(), self.grace);
        i.next_stream += 1;
        let id = i.next_stream;
        let s = i.nodes.entry(node.to_string()).or_default();
        s.stream = id;
        s.ended = None;
        id
    }

    /// A report on stream `stream` of `node`, received at `now`.
    pub fn record(&self, node: &str, stream: u64, r: &pb::StatsReport, now: Instant) {
        let reading = Reading::from_pb(r, now);
        let mut i = self.lock();
        let Some(s) = i.nodes.get_mut(node) else {
            return;
        };
        if s.stream != stream {
            return;
        }
        if s.readings.back().is_some_and(|p| reading.restarts_after(p)) {
            s.readings.clear();
        }
        s.readings.push_back(reading);
        let oldest = now.checked_sub(self.window);
        while s.readings.len() > MAX_REPORTS
            || s.readings
                .front()
                .is_some_and(|f| oldest.is_some_and(|o| f.at < o))
        {
            s.readings.pop_front();
        }
    }

    /// Stream `stream` of `node` ended at `now` (unless a newer took over).
    pub fn close(&self, node: &str, stream: u64, now: Instant) {
        if let Some(s) = self.lock().nodes.get_mut(node) {
            if s.stream == stream {
                s.ended = Some(now);
            }
        }
    }

    /// Each node's traffic over the window ending at `now`; a node needs
    /// two reports in the window, and time between them.
    pub fn window(&self, now: Instant) -> BTreeMap<String, NodeDelta> {
        let mut i = self.lock();
        forget_gone(&mut i, now, self.grace);
        let oldest = now.checked_sub(self.window);
        let mut out = BTreeMap::new();
        for (node, s) in &i.nodes {
            let mut inside = s
                .readings
                .iter()
                .filter(|r| oldest.is_none_or(|o| r.at >= o));
            let (Some(first), Some(last)) = (inside.next(), s.readings.back()) else {
                continue;
            };
            if last.uptime_ms <= first.uptime_ms {
                continue;
            }
            let side = |now: &BTreeMap<String, Counts>, then: &BTreeMap<String, Counts>| {
                now.iter()
                    .map(|(k, c)| (k.clone(), c.since(then.get(k))))
                    .collect()
            };
            out.insert(
                node.clone(),
                NodeDelta {
                    seconds: (last.uptime_ms - first.uptime_ms) as f64 / 1000.0,
                    bounds: last.bounds.clone(),
                    listeners: side(&last.listeners, &first.listeners),
                    clusters: side(&last.clusters, &first.clusters),
                    endpoints: last
                        .endpoints
                        .iter()
                        .map(|(k, e)| (k.clone(), EndpointDelta::since(e, first.endpoints.get(k))))
                        .collect(),
                },
            );
        }
        out
    }
}

/// Drop the nodes whose stream ended more than `grace` before `now`.
fn forget_gone(i: &mut Inner, now: Instant, grace: Duration) {
    i.nodes.retain(|_, s| {
        s.ended
            .is_none_or(|e| now.saturating_duration_since(e) <= grace)
    });
}

/// The `q` quantile (0..=1) of a histogram: `counts` per bucket of
/// `bounds` (upper bounds), then +Inf. Linear within the bucket the rank
/// falls in, from the previous bound (0 for the first); in +Inf, the
/// highest bound. None without samples.
pub fn quantile(q: f64, bounds: &[u64], counts: &[u64]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || bounds.is_empty() {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, n) in counts.iter().enumerate() {
        let upto = below + n;
        if *n > 0 && upto as f64 >= rank {
            let Some(upper) = bounds.get(i) else {
                return bounds.last().map(|b| *b as f64);
            };
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] as f64 };
            let into = (rank - below as f64) / *n as f64;
            return Some(lower + (*upper as f64 - lower) * into);
        }
        below = upto;
    }
    bounds.last().map(|b| *b as f64)
}

/// Summed traffic of a Service or an edge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    pub counts: Counts,
    pub rps: f64,
    pub seconds: f64,
    /// The proxies summed (all: mesh / mTLS).
    pub proxies: u32,
    pub all_mesh: bool,
    pub bounds: Vec<u64>,
}

impl Traffic {
    fn add(&mut self, d: &NodeDelta, c: &Counts) {
        if self.proxies == 0 {
            self.bounds = d.bounds.clone();
            self.all_mesh = true;
        }
        let mut c = c.clone();
        if d.bounds != self.bounds {
            // Another bucket layout cannot be merged: counted, not timed.
            c.buckets.clear();
        }
        self.counts.add(&c);
        self.rps += c.requests() as f64 / d.seconds;
        self.seconds = self.seconds.max(d.seconds);
        self.proxies += 1;
        self.all_mesh &= c.mesh;
    }

    pub fn failures(&self) -> u64 {
        self.counts.by_class[4]
    }

    /// In milliseconds.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        quantile(q, &self.bounds, &self.counts.buckets).map(|us| us / 1000.0)
    }
}

/// What the control plane knows of a node it has a report from.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The Service (or Gateway) it registered for.
    pub service: String,
    pub gateway: bool,
}

/// A sidecar's Service traffic is its `inbound` listener's (the
/// compiled name); a gateway's is all of its listeners'.
pub const INBOUND_LISTENER: &str = "inbound";

/// Per Service (or Gateway), its proxies' inbound traffic; per (caller,
/// callee), the callers' proxies' requests to the callee's cluster, for
/// edges with requests in the window. `callee` maps a cluster name to
/// the Service it calls (None: not a Service's, e.g. `_inbound`).
pub fn aggregate(
    deltas: &BTreeMap<String, NodeDelta>,
    nodes: &BTreeMap<String, NodeInfo>,
    callee: impl Fn(&str) -> Option<String>,
) -> (
    BTreeMap<String, Traffic>,
    BTreeMap<(String, String), Traffic>,
) {
    let mut services: BTreeMap<String, Traffic> = BTreeMap::new();
    let mut edges: BTreeMap<(String, String), Traffic> = BTreeMap::new();
    for (id, d) in deltas {
        let Some(info) = nodes.get(id) else {
            continue;
        };
        let mut inbound: Option<Counts> = None;
        for (name, c) in &d.listeners {
            if info.gateway || name == INBOUND_LISTENER {
                match &mut inbound {
                    Some(sum) => {
                        let mesh = sum.mesh && c.mesh;
                        sum.add(c);
                        sum.mesh = mesh;
                    }
                    None => inbound = Some(c.clone()),
                }
            }
        }
        if let Some(c) = inbound {
            services.entry(info.service.clone()).or_default().add(d, &c);
        }
        for (cluster, c) in &d.clusters {
            if c.requests() == 0 {
                continue;
            }
            let Some(to) = callee(cluster) else {
                continue;
            };
            edges
                .entry((info.service.clone(), to))
                .or_default()
                .add(d, c);
        }
    }
    (services, edges)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: [u64; 3] = [1_000, 10_000, 100_000];

    fn counts(by_class: [u64; 5], buckets: [u64; 4]) -> pb::RequestCounts {
        pb::RequestCounts {
            by_class: by_class.to_vec(),
            latency_buckets: buckets.to_vec(),
        }
    }

    fn report(
        instance: u64,
        uptime_ms: u64,
        ok: u64,
        err: u64,
        buckets: [u64; 4],
    ) -> pb::StatsReport {
        pb::StatsReport {
            node_id: "n".into(),
            instance,
            uptime_ms,
            latency_bounds_us: BOUNDS.to_vec(),
            listeners: vec![pb::ListenerReport {
                name: "inbound".into(),
                mesh: true,
                counts: Some(counts([0, ok, 0, 0, err], buckets)),
                mtls_requests: ok + err,
            }],
            clusters: vec![pb::ClusterReport {
                name: "api".into(),
                mesh: true,
                counts: Some(counts([0, ok, 0, 0, err], buckets)),
                endpoints: vec![],
            }],
        }
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        // 10 samples in (1ms, 10ms]: the median is halfway through it.
        assert_eq!(quantile(0.5, &BOUNDS, &[0, 10, 0, 0]), Some(5_500.0));
        // The first bucket starts at 0.
        assert_eq!(quantile(0.5, &BOUNDS, &[4, 0, 0, 0]), Some(500.0));
        // 90 fast, 10 slow: p95 is halfway into the slow bucket.
        assert_eq!(quantile(0.95, &BOUNDS, &[90, 0, 10, 0]), Some(55_000.0));
        assert_eq!(quantile(0.9, &BOUNDS, &[90, 0, 10, 0]), Some(1_000.0));
        // In +Inf: the highest bound, as histogram_quantile answers.
        assert_eq!(quantile(0.99, &BOUNDS, &[1, 0, 0, 99]), Some(100_000.0));
        assert_eq!(quantile(0.5, &BOUNDS, &[0, 0, 0, 0]), None);
        assert_eq!(quantile(0.5, &[], &[3]), None);
    }

    #[test]
    fn rates_are_differences_over_the_proxys_clock() {
        let store = Store::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let id = store.open("n");
        assert!(store.window(t0).is_empty(), "no report yet");
        store.record("n", id, &report(7, 1_000, 100, 0, [0, 100, 0, 0]), t0);
        assert!(store.window(t0).is_empty(), "one report is no rate");
        let t1 = t0 + Duration::from_millis(2_100);
        store.record("n", id, &report(7, 3_000, 190, 10, [0, 190, 10, 0]), t1);
        let w = store.window(t1);
        let d = &w["n"];
        // 100 more requests over 2 s of the proxy's clock (not the 2.1 s
        // between receipts).
        assert_eq!(d.seconds, 2.0);
        let inbound = &d.listeners["inbound"];
        assert_eq!(inbound.by_class, [0, 90, 0, 0, 10]);
        assert_eq!(inbound.buckets, [0, 90, 10, 0]);
        assert_eq!(inbound.mtls, 100);

        let nodes = BTreeMap::from([(
            "n".to_string(),
            NodeInfo {
                service: "web".into(),
                gateway: false,
            },
        )]);
        let (services, edges) = aggregate(&w, &nodes, |c| Some(c.to_string()));
        let web = &services["web"];
        assert_eq!(web.rps, 50.0);
        assert_eq!(web.failures(), 10);
        assert_eq!(web.counts.requests(), 100);
        assert!(web.all_mesh);
        let p50 = web.latency_ms(0.5).unwrap();
        assert!((p50 - (1.0 + 9.0 * 50.0 / 90.0)).abs() < 1e-9, "{p50}");
        let edge = &edges[&("web".to_string(), "api".to_string())];
        assert_eq!(edge.rps, 50.0);
    }

    #[test]
    fn the_window_keeps_only_recent_reports() {
        let store = Store::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let id = store.open("n");
        store.record("n", id, &report(1, 0, 0, 0, [0; 4]), t0);
        store.record(
            "n",
            id,
            &report(1, 5_000, 500, 0, [500, 0, 0, 0]),
            t0 + Duration::from_secs(5),
        );
        store.record(
            "n",
            id,
            &report(1, 10_000, 600, 0, [600, 0, 0, 0]),
            t0 + Duration::from_secs(10),
        );
        let at = t0 + Duration::from_secs(12);
        let d = &store.window(at)["n"];
        // The first report is out of the window: 5 s to 10 s only.
        assert_eq!(d.seconds, 5.0);
        assert_eq!(d.listeners["inbound"].requests(), 100);
        // Later still, one report left: nothing to say.
        assert!(store.window(t0 + Duration::from_secs(16)).is_empty());
    }

    #[test]
    fn a_counter_that_goes_back_restarts_the_window() {
        let store = Store::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let id = store.open("n");
        store.record("n", id, &report(1, 0, 0, 0, [0; 4]), t0);
        store.record(
            "n",
            id,
            &report(1, 1_000, 1_000, 0, [1_000, 0, 0, 0]),
            t0 + Duration::from_secs(1),
        );
        // Same instance and a later clock, but fewer requests: a restart
        // all the same. The window starts again from it.
        store.record(
            "n",
            id,
            &report(1, 2_000, 10, 0, [10, 0, 0, 0]),
            t0 + Duration::from_secs(2),
        );
        assert!(store.window(t0 + Duration::from_secs(2)).is_empty());
        store.record(
            "n",
            id,
            &report(1, 3_000, 30, 0, [30, 0, 0, 0]),
            t0 + Duration::from_secs(3),
        );
        let d = &store.window(t0 + Duration::from_secs(3))["n"];
        assert_eq!(d.listeners["inbound"].requests(), 20);
        assert_eq!(d.seconds, 1.0);
        // A new instance with higher counts is a restart too.
        store.record(
            "n",
            id,
            &report(2, 4_000, 5_000, 0, [5_000, 0, 0, 0]),
            t0 + Duration::from_secs(4),
        );
        assert!(store.window(t0 + Duration::from_secs(4)).is_empty());
    }

    #[test]
    fn a_nodes_data_goes_a_grace_after_its_stream() {
        let store = Store::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let old = store.open("n");
        store.record("n", old, &report(1, 0, 0, 0, [0; 4]), t0);
        store.record(
            "n",
            old,
            &report(1, 1_000, 10, 0, [10, 0, 0, 0]),
            t0 + Duration::from_secs(1),
        );
        store.close("n", old, t0 + Duration::from_secs(1));
        assert!(store.window(t0 + Duration::from_secs(2)).contains_key("n"));
        assert!(store.window(t0 + Duration::from_secs(12)).is_empty());
        // A superseded stream's reports and end change nothing.
        let new = store.open("n");
        store.record(
            "n",
            old,
            &report(1, 2_000, 20, 0, [20, 0, 0, 0]),
            t0 + Duration::from_secs(13),
        );
        store.close("n", old, t0 + Duration::from_secs(13));
        store.record(
            "n",
            new,
            &report(1, 3_000, 30, 0, [30, 0, 0, 0]),
            t0 + Duration::from_secs(14),
        );
        store.record(
            "n",
            new,
            &report(1, 4_000, 40, 0, [40, 0, 0, 0]),
            t0 + Duration::from_secs(15),
        );
        let d = &store.window(t0 + Duration::from_secs(15))["n"];
        assert_eq!(d.listeners["inbound"].requests(), 10);
    }

    #[test]
    fn services_sum_their_proxies_and_edges_need_traffic() {
        let delta = |ok: u64, secs: f64, mesh: bool| NodeDelta {
            endpoints: BTreeMap::new(),
            seconds: secs,
            bounds: BOUNDS.to_vec(),
            listeners: BTreeMap::from([
                (
                    "inbound".to_string(),
                    Counts {
                        mesh,
                        by_class: [0, ok, 0, 0, 0],
                        buckets: vec![ok, 0, 0, 0],
                        mtls: 0,
                    },
                ),
                ("outbound".to_string(), Counts::default()),
            ]),
            clusters: BTreeMap::from([
                (
                    "_inbound".to_string(),
                    Counts {
                        by_class: [0, ok, 0, 0, 0],
                        ..Counts::default()
                    },
                ),
                ("idle".to_string(), Counts::default()),
            ]),
        };
        let deltas = BTreeMap::from([
            ("a".to_string(), delta(100, 10.0, true)),
            ("b".to_string(), delta(100, 5.0, false)),
            ("stranger".to_string(), delta(100, 1.0, true)),
        ]);
        let info = |s: &str| NodeInfo {
            service: s.into(),
            gateway: false,
        };
        let nodes = BTreeMap::from([
            ("a".to_string(), info("web")),
            ("b".to_string(), info("web")),
        ]);
        let (services, edges) = aggregate(&deltas, &nodes, |c| {
            (!c.starts_with('_')).then(|| c.to_string())
        });
        let web = &services["web"];
        assert_eq!(web.rps, 10.0 + 20.0);
        assert_eq!(web.seconds, 10.0);
        assert_eq!(web.proxies, 2);
        assert!(!web.all_mesh, "one of them takes plaintext only");
        assert_eq!(services.len(), 1, "an unregistered node is nobody's");
        assert!(
            edges.is_empty(),
            "no requests: no edge; _inbound: not a Service"
        );
    }
}
