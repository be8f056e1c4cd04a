//! Per-core counters, merged only when `/metrics` is scraped.
//!
//! Each core owns one `CoreStats` and is its only writer; the admin thread
//! only reads. A counter is an `AtomicU64` so the read is sound, but the
//! write is a plain load + store (no `lock` prefix, no cache-line ping-pong):
//! with a single writer no increment can be lost. This keeps the request
//! path free of contended atomics, as the architecture requires.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::config::Config;

mod endpoint;
pub use endpoint::EndpointStats;

/// A single-writer counter or gauge.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn dec(&self) {
        self.0.store(self.0.load(Relaxed).wrapping_sub(1), Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    /// For a gauge with one writer.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
}

/// Requests by status class: 1xx .. 5xx.
#[derive(Debug, Default)]
pub struct ByClass([Counter; 5]);

impl ByClass {
    #[inline]
    pub fn record(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.0[class].inc();
    }

    fn get(&self, class: usize) -> u64 {
        self.0[class].get()
    }
}

/// Upper bounds of the latency buckets, in microseconds: 0.25 ms to 10 s
/// in 1-2.5-5 steps (Prometheus' default spacing, shifted down: a sidecar
/// hop is sub-millisecond). Fixed, so a histogram is an array of counters
/// and merging cores is adding them.
pub const LATENCY_BOUNDS_US: [u64; 15] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// A latency histogram of one core: a counter per bucket (the last is
/// +Inf) and the sum, written only by its core (single-writer counters,
/// like every counter here), read when `/metrics` is scraped.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [Counter; LATENCY_BOUNDS_US.len() + 1],
    sum_us: Counter,
}

impl Histogram {
    #[inline]
    pub fn record(&self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].inc();
        self.sum_us.add(us);
    }

    /// Add this core's counts into `into`: per bucket (not cumulative),
    /// then the sum in microseconds.
    fn add_to(&self, into: &mut [u64; HIST]) {
        for (i, b) in self.buckets.iter().enumerate() {
            into[i] += b.get();
        }
        into[LATENCY_BOUNDS_US.len() + 1] += self.sum_us.get();
    }
}

/// Which of a cluster's histograms to render.
type PickHistogram = fn(&ClusterStats) -> &Histogram;

/// A merged histogram: bucket counts, +Inf, sum in microseconds.
const HIST: usize = LATENCY_BOUNDS_US.len() + 2;

/// Prometheus lines of a merged histogram: cumulative buckets with `le`,
/// `_sum` in seconds and `_count`. `labels` is `a="x",b="y"`.
fn write_histogram(out: &mut String, name: &str, labels: &str, merged: &[u64; HIST]) {
    let mut cumulative = 0;
    for (i, bound) in LATENCY_BOUNDS_US.iter().enumerate() {
        cumulative += merged[i];
        let le = *bound as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    cumulative += merged[LATENCY_BOUNDS_US.len()];
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
    let sum = merged[LATENCY_BOUNDS_US.len() + 1] as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
}

/// Config updates, applied and rejected, whatever their source (a file
/// reload, a control plane's snapshot, a renewed workload certificate).
/// Written by the main and agent threads, never by a request core.
pub mod config_updates {
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

    static APPLIED: AtomicU64 = AtomicU64::new(0);
    static REJECTED: AtomicU64 = AtomicU64::new(0);
    static LAST_REJECTED: AtomicI64 = AtomicI64::new(0);

    pub fn applied() {
        APPLIED.fetch_add(1, Relaxed);
    }

    pub fn rejected() {
        REJECTED.fetch_add(1, Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        LAST_REJECTED.store(now, Relaxed);
    }

    /// The `/metrics` lines, with the version in force.
    pub fn render(out: &mut String, version: &str) {
        use std::fmt::Write;
        super::header(
            out,
            "ringmesh_config_info",
            "gauge",
            "The config in force, by version (a control plane's snapshot, or reload-N).",
        );
        let _ = writeln!(
            out,
            "ringmesh_config_info{{version=\"{}\"}} 1",
            super::escape_label(version)
        );
        let name = "ringmesh_config_updates_total";
        super::header(
            out,
            name,
            "counter",
            "Config updates applied on every core, and rejected (invalid, or refused: the config in force stays).",
        );
        let _ = writeln!(
            out,
            "{name}{{result=\"applied\"}} {}",
            APPLIED.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "{name}{{result=\"rejected\"}} {}",
            REJECTED.load(Relaxed)
        );
        let name = "ringmesh_config_last_rejected_timestamp_seconds";
        super::header(
            out,
            name,
            "gauge",
            "When a config update was last rejected (0: never).",
        );
        let _ = writeln!(out, "{name} {}", LAST_REJECTED.load(Relaxed));
    }
}

/// Distinct status codes counted per route (and per listener for
/// unrouted requests) per core; codes past them count as `other`. A
/// route answers with a handful of codes; the label must stay bounded.
pub const CODES: usize = 16;

/// Responses by exact status code. Single writer: a slot's code is
/// claimed the first time the core sees it (0: free), found by comparing
/// `u16`s; the admin thread reads code, then count.
#[derive(Debug, Default)]
pub struct Codes {
    slots: [(std::sync::atomic::AtomicU16, Counter); CODES],
    other: Counter,
}

impl Codes {
    #[inline]
    pub fn record(&self, status: u16) {
        for (code, n) in &self.slots {
            match code.load(Relaxed) {
                c if c == status => {}
                0 => code.store(status, Relaxed),
                _ => continue,
            }
            n.inc();
            return;
        }
        self.other.inc();
    }

    /// Add (code, count) of every code seen into `into`; `other` as 0.
    fn add_to(&self, into: &mut std::collections::BTreeMap<u16, u64>) {
        for (code, n) in &self.slots {
            match code.load(Relaxed) {
                0 => break,
                c => *into.entry(c).or_default() += n.get(),
            }
        }
        if self.other.get() > 0 {
            *into.entry(0).or_default() += self.other.get();
        }
    }
}

/// gRPC status codes counted one by one (0 OK to 16 UNAUTHENTICATED);
/// any other code counts as 2 (UNKNOWN), as gRPC clients read it.
pub const GRPC_CODES: usize = 17;

/// A route's counters.
#[derive(Debug, Default)]
pub struct RouteStats {
    pub requests: ByClass,
    /// By exact status code.
    codes: Codes,
    /// From the complete request head to the end of the response, by
    /// status class (`CLASSES`): errors are usually fast or slow, not
    /// like successes.
    duration: [Histogram; 5],
    /// Faults injected: delays, aborts.
    faults: [Counter; 2],
    /// Requests answered 429 by the route's rate limit.
    pub rate_limited: Counter,
    /// gRPC calls by the grpc-status their client got.
    grpc: [Counter; GRPC_CODES],
    /// Mirrors by outcome (`mirror::Outcome::index`).
    mirrors: [Counter; 5],
}

impl RouteStats {
    #[inline]
    pub fn record(&self, status: u16) {
        self.requests.record(status);
        self.codes.record(status);
    }

    /// A request's duration, under its status class.
    #[inline]
    pub fn record_duration(&self, status: u16, d: std::time::Duration) {
        self.duration[(status / 100).clamp(1, 5) as usize - 1].record(d);
    }

    #[inline]
    pub fn record_grpc(&self, code: u8) {
        let i = usize::from(code);
        self.grpc[if i < GRPC_CODES { i } else { 2 }].inc();
    }

    pub fn fault(&self, kind: crate::filter::Injected) {
        let i = match kind {
            crate::filter::Injected::Delay => 0,
            crate::filter::Injected::Abort => 1,
        };
        self.faults[i].inc();
    }

    /// What became of one mirror. Written by its core only: the request
    /// that decided it or the mirror task, both on that core.
    pub fn mirror(&self, outcome: crate::mirror::Outcome) {
        self.mirrors[outcome.index()].inc();
    }
}

#[derive(Debug, Default)]
pub struct ListenerStats {
    pub connections_active: Counter,
    pub connections_total: Counter,
    /// Idle keep-alive connections parked (no buffers, no task state).
    pub connections_parked: Counter,
    /// Connections closed at accept: over the listener's `max_connections`.
    pub connections_rejected: Counter,
    /// Requests that matched no route, or were refused before routing.
    pub unrouted: ByClass,
    pub unrouted_codes: Codes,
    /// TLS handshakes completed on the listener.
    pub tls_handshakes: Counter,
    /// Bytes relayed by tunnels (upgraded connections, TCP proxying),
    /// client to upstream and back.
    pub tunnel_up: Counter,
    pub tunnel_down: Counter,
    /// TLS handshakes that failed, by reason (`TLS_FAILURES`).
    pub tls_failures: [Counter; TLS_FAILURES.len()],
    /// New connections by detected protocol (`detect::Detected::LABELS`).
    pub detected: [Counter; crate::detect::Detected::LABELS.len()],
    /// Requests the authorization policies allowed and denied.
    pub authz_allowed: Counter,
    pub authz_denied: Counter,
    /// Requests on a mesh listener, by the caller's workload identity.
    pub sources: Sources,
}

/// Distinct callers counted per listener and core; past them, callers
/// count together as `other` (a mesh's workloads number in the tens, and
/// a label per caller must stay bounded).
pub const SOURCES: usize = 32;

/// Requests by the caller's workload identity (Istio's
/// `source_principal`), by status class. Written by its core only: a
/// caller's slot is claimed once (one allocation per new caller), found
/// by comparing bytes (no allocation, no lock); the admin thread reads
/// the slots.
#[derive(Debug, Default)]
pub struct Sources {
    slots: [SourceSlot; SOURCES],
    other: ByClass,
    other_duration: Histogram,
}

#[derive(Debug, Default)]
struct SourceSlot {
    /// The principal (`td/ns/x/sa/y`); empty: unauthenticated.
    principal: std::sync::OnceLock<Box<[u8]>>,
    requests: ByClass,
    /// The callee's view of the caller's latency: request head to the
    /// end of the response.
    duration: Histogram,
}

impl Sources {
    pub fn record(&self, principal: Option<&[u8]>, status: u16, took: std::time::Duration) {
        let p = principal.unwrap_or(b"");
        for slot in &self.slots {
            match slot.principal.get() {
                Some(name) if **name == *p => {}
                Some(_) => continue,
                None => {
                    // Only this core writes: the slot is free.
                    let _ = slot.principal.set(p.into());
                }
            }
            slot.requests.record(status);
            slot.duration.record(took);
            return;
        }
        self.other.record(status);
        self.other_duration.record(took);
    }

    /// (label, counts by class, durations) of every caller seen;
    /// `\0other` for the callers past `SOURCES`.
    fn each_caller(&self, mut f: impl FnMut(&[u8], &ByClass, &Histogram)) {
        for slot in &self.slots {
            match slot.principal.get() {
                Some(name) => f(name, &slot.requests, &slot.duration),
                None => break,
            }
        }
        f(b"\0other", &self.other, &self.other_duration);
    }

    /// (label, counts by class) of every caller seen.
    fn each(&self, mut f: impl FnMut(&[u8], &ByClass)) {
        self.each_caller(|p, counts, _| f(p, counts));
    }
}

/// Why a downstream TLS handshake failed: the label values of
/// `ringmesh_tls_handshake_failures_total` (`tls::reason::label`, plus
/// `timeout`, and `no_identity`: a `mesh` listener refused a connection
/// because the proxy holds no workload certificate).
pub const TLS_FAILURES: [&str; 10] = [
    "timeout",
    "peer_closed",
    "io",
    "incompatible",
    "no_alpn",
    "no_client_certificate",
    "bad_certificate",
    "alert_received",
    "protocol_error",
    "no_identity",
];

impl ListenerStats {
    /// Count a failed handshake under `reason` (one of `TLS_FAILURES`).
    pub fn tls_failed(&self, reason: &str) {
        // A reason missing from the list is a protocol error, never
        // `no_identity` (which says the proxy holds no certificate).
        let i = TLS_FAILURES
            .iter()
            .position(|r| *r == reason)
            .or_else(|| TLS_FAILURES.iter().position(|r| *r == "protocol_error"))
            .unwrap_or(0);
        self.tls_failures[i].inc();
    }
}

#[derive(Debug, Default)]
pub struct ClusterStats {
    pub requests: ByClass,
    pub connections_active: Counter,
    pub connections_total: Counter,
    pub connect_failures: Counter,
    /// Requests (and retries) refused by a circuit breaker, by
    /// `circuit_breaker::Breaker` in `Breaker::ALL` order.
    pub overflow: [Counter; 4],
    /// Requests sent again under the route's retry policy.
    pub retries: Counter,
    /// Retries the cluster's retry budget refused (the request got the
    /// failure of its last try).
    pub retries_budget_exhausted: Counter,
    /// Tries that got no response head within their timeout.
    pub timeouts: Counter,
    /// Per try: from taking a connection (or opening one) to the
    /// upstream's response head.
    pub upstream_time: Histogram,
    /// New connections: TCP connect and, for TLS, the handshake.
    pub connect_time: Histogram,
    /// Picks made among all endpoints because too few were healthy.
    pub panic: Counter,
    /// Each endpoint's counters, while it exists.
    pub endpoints: endpoint::Registry,
}

/// All counters of one core, shaped after the config it was built from.
#[derive(Debug)]
pub struct CoreStats {
    pub listeners: Box<[ListenerStats]>,
    /// Access-log lines and spans this core had to drop.
    pub telemetry: crate::telemetry::TelemetryStats,
    /// Route and cluster counters by name. They outlive config swaps, so a
    /// counter never goes back when a config is reloaded; each snapshot
    /// holds `Arc`s into them. The lock is taken when a snapshot is built
    /// and when metrics are scraped, never on the request path.
    named: Mutex<Named>,
}

/// How many requests (or TCP connections) an authorization policy decided.
#[derive(Debug, Default)]
pub struct PolicyStats {
    pub decided: Counter,
}

#[derive(Debug, Default)]
struct Named {
    /// (listener index, route name).
    routes: HashMap<(usize, String), Arc<RouteStats>>,
    /// (listener index, policy name).
    policies: HashMap<(usize, String), Arc<PolicyStats>>,
    clusters: HashMap<String, Arc<ClusterStats>>,
}

impl CoreStats {
    pub fn for_config(config: &Config) -> Self {
        CoreStats {
            listeners: config
                .listeners
                .iter()
                .map(|_| ListenerStats::default())
                .collect(),
            telemetry: Default::default(),
            named: Mutex::default(),
        }
    }

    fn named(&self) -> std::sync::MutexGuard<'_, Named> {
        self.named.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters of route `name` on listener `listener`, created at 0.
    pub fn route(&self, listener: usize, name: &str) -> Arc<RouteStats> {
        self.named()
            .routes
            .entry((listener, name.to_string()))
            .or_default()
            .clone()
    }

    /// The counter of authorization policy `name` on listener `listener`,
    /// created at 0.
    pub fn policy(&self, listener: usize, name: &str) -> Arc<PolicyStats> {
        self.named()
            .policies
            .entry((listener, name.to_string()))
            .or_default()
            .clone()
    }

    fn policy_get(&self, listener: usize, name: &str) -> u64 {
        self.named()
            .policies
            .get(&(listener, name.to_string()))
            .map_or(0, |p| p.decided.get())
    }

    /// The counters of cluster `name`, created at 0.
    pub fn cluster(&self, name: &str) -> Arc<ClusterStats> {
        self.named()
            .clusters
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    fn route_get(&self, listener: usize, name: &str, f: impl Fn(&RouteStats) -> u64) -> u64 {
        self.named()
            .routes
            .get(&(listener, name.to_string()))
            .map_or(0, |b| f(b))
    }

    fn cluster_get(&self, name: &str, f: impl Fn(&ClusterStats) -> u64) -> u64 {
        self.named().clusters.get(name).map_or(0, |c| f(c))
    }

    /// Add a route's or a cluster's histogram into `into`, when this core
    /// has its counters.
    fn route_histogram(&self, listener: usize, name: &str, class: usize, into: &mut [u64; HIST]) {
        if let Some(r) = self.named().routes.get(&(listener, name.to_string())) {
            r.duration[class].add_to(into);
        }
    }

    fn cluster_histogram(&self, name: &str, which: PickHistogram, into: &mut [u64; HIST]) {
        if let Some(c) = self.named().clusters.get(name) {
            which(c).add_to(into);
        }
    }
}

/// What a worker reports about itself, for `ringmesh_worker_info`.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    pub id: usize,
    pub cpu: Option<usize>,
    pub driver: &'static str,
}

/// Name, type, help text and reader of one per-cluster metric.
type MetricDef<T> = (&'static str, &'static str, &'static str, fn(&T) -> u64);

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Authorization decisions by listener, and by policy.
fn render_authz(out: &mut String, config: &Config, cores: &[Arc<CoreStats>]) {
    let with: Vec<(usize, &str)> = config
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.authorization.is_some())
        .map(|(i, l)| (i, l.name.as_str()))
        .collect();
    if with.is_empty() {
        return;
    }
    let name = "ringmesh_authz_decisions_total";
    header(
        out,
        name,
        "counter",
        "Requests a listener's authorization policies allowed or denied.",
    );
    for &(li, l) in &with {
        for (decision, get) in [
            (
                "allow",
                (|s: &ListenerStats| s.authz_allowed.get()) as fn(&ListenerStats) -> u64,
            ),
            ("deny", |s: &ListenerStats| s.authz_denied.get()),
        ] {
            let v: u64 = cores.iter().map(|c| get(&c.listeners[li])).sum();
            let _ = writeln!(
                out,
                "{name}{{listener=\"{}\",decision=\"{decision}\"}} {v}",
                Label(l)
            );
        }
    }
    let name = "ringmesh_authz_policy_decisions_total";
    header(
        out,
        name,
        "counter",
        "Requests and TCP connections each authorization policy decided (allowed for ALLOW policies, denied for DENY ones).",
    );
    for &(li, l) in &with {
        let Some(a) = &config.listeners[li].authorization else {
            continue;
        };
        for p in a.policies() {
            let v: u64 = cores.iter().map(|c| c.policy_get(li, &p.name)).sum();
            let _ = writeln!(
                out,
                "{name}{{listener=\"{}\",policy=\"{}\"}} {v}",
                Label(l),
                Label(&p.name)
            );
        }
    }
}

fn render_detected(out: &mut String, config: &Config, cores: &[Arc<CoreStats>]) {
    let detecting: Vec<(usize, &str)> = config
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.detect.is_some())
        .map(|(i, l)| (i, l.name.as_str()))
        .collect();
    if detecting.is_empty() {
        return;
    }
    let name = "ringmesh_protocol_detected_total";
    header(
        out,
        name,
        "counter",
        "New connections on detecting listeners, by what their first bytes were (timeout: none in time, relayed as TCP).",
    );
    for &(li, l) in &detecting {
        for (pi, protocol) in crate::detect::Detected::LABELS.iter().enumerate() {
            let v: u64 = cores
                .iter()
                .map(|c| c.listeners[li].detected[pi].get())
                .sum();
            let _ = writeln!(
                out,
                "{name}{{listener=\"{}\",protocol=\"{protocol}\"}} {v}",
                Label(l)
            );
        }
    }
}

/// `ringmesh_source_requests_total`: a mesh listener's requests by caller.
fn render_sources(out: &mut String, config: &Config, cores: &[Arc<CoreStats>]) {
    use std::collections::BTreeMap;
    let name = "ringmesh_source_requests_total";
    let mut wrote_header = false;
    for (li, l) in config.listeners.iter().enumerate() {
        if l.mesh.is_none() {
            continue;
        }
        let mut by: BTreeMap<Vec<u8>, [u64; 5]> = BTreeMap::new();
        for c in cores {
            c.listeners[li].sources.each(|p, counts| {
                let row = by.entry(p.to_vec()).or_default();
                for (ci, v) in row.iter_mut().enumerate() {
                    *v += counts.get(ci);
                }
            });
        }
        if !wrote_header {
            header(
                out,
                name,
                "counter",
                "Requests on a mesh listener by the caller's workload identity (unknown: no certificate) and status class.",
            );
            wrote_header = true;
        }
        for (p, counts) in by {
            let label = match p.as_slice() {
                b"" => "unknown".to_string(),
                b"\0other" => "other".to_string(),
                p => format!("spiffe://{}", String::from_utf8_lossy(p)),
            };
            if counts.iter().all(|v| *v == 0) {
                continue;
            }
            for (ci, class) in CLASSES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{listener=\"{}\",source_principal=\"{}\",class=\"{class}\"}} {}",
                    Label(&l.name),
                    Label(&label),
                    counts[ci]
                );
            }
        }
    }
}

/// `ringmesh_responses_total`: requests by exact status code (the codes
/// seen; `other` past `CODES` a route per core).
fn render_codes(out: &mut String, config: &Config, cores: &[Arc<CoreStats>]) {
    use std::collections::BTreeMap;
    let name = "ringmesh_responses_total";
    header(
        out,
        name,
        "counter",
        "Downstream responses by listener, route and exact status code (codes seen so far; `other` past 16 a route per worker).",
    );
    let mut write = |l: &crate::config::model::Listener, route: &str, codes: BTreeMap<u16, u64>| {
        for (code, v) in codes {
            let code = if code == 0 {
                "other".to_string()
            } else {
                code.to_string()
            };
            let _ = writeln!(
                out,
                "{name}{{listener=\"{}\",direction=\"{}\",route=\"{}\",code=\"{code}\"}} {v}",
                Label(&l.name),
                l.direction.label(),
                Label(route)
            );
        }
    };
    for (li, l) in config.listeners.iter().enumerate() {
        for r in &l.routes {
            let mut codes = BTreeMap::new();
            for c in cores {
                if let Some(stats) = c.named().routes.get(&(li, r.name.clone())) {
                    stats.codes.add_to(&mut codes);
                }
            }
            write(l, &r.name, codes);
        }
        let mut codes = BTreeMap::new();
        for c in cores {
            c.listeners[li].unrouted_codes.add_to(&mut codes);
        }
        write(l, "", codes);
    }
}

/// `ringmesh_source_request_duration_seconds`: latency by caller, on mesh
/// listeners (the callers `ringmesh_source_requests_total` names).
fn render_source_durations(out: &mut String, config: &Config, cores: &[Arc<CoreStats>]) {
    use std::collections::BTreeMap;
    let name = "ringmesh_source_request_duration_seconds";
    let mut wrote_header = false;
    for (li, l) in config.listeners.iter().enumerate() {
        if l.mesh.is_none() {
            continue;
        }
        let mut by: BTreeMap<Vec<u8>, [u64; HIST]> = BTreeMap::new();
        for c in cores {
            c.listeners[li]
                .sources
                .each_caller(|p, _, h| h.add_to(by.entry(p.to_vec()).or_insert([0; HIST])));
        }
        if !wrote_header {
            header(
                out,
                name,
                "histogram",
                "Requests on a mesh listener by the caller's workload identity: from the complete head to the end of the response.",
            );
            wrote_header = true;
        }
        for (p, merged) in by {
            if merged[..=LATENCY_BOUNDS_US.len()].iter().all(|n| *n == 0) {
                continue;
            }
            let label = match p.as_slice() {
                b"" => "unknown".to_string(),
                b"\0other" => "other".to_string(),
                p => format!("spiffe://{}", String::from_utf8_lossy(p)),
            };
            let labels = format!(
                "listener=\"{}\",source_principal=\"{}\"",
                Label(&l.name),
                Label(&label)
            );
            write_histogram(out, name, &labels, &merged);
        }
    }
}

/// Handshakes and their failures, for listeners that terminate TLS.
fn render_tls(out: &mut String, config: &Config, cores: &[Arc<CoreStats>]) {
    let sum = |f: &dyn Fn(&CoreStats) -> u64| cores.iter().map(|c| f(c)).sum::<u64>();
    let tls: Vec<(usize, &str)> = config
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.tls.is_some() || l.mesh.is_some())
        .map(|(i, l)| (i, l.name.as_str()))
        .collect();
    if tls.is_empty() {
        return;
    }
    let name = "ringmesh_tls_handshakes_total";
    header(
        out,
        name,
        "counter",
        "TLS handshakes completed by a listener.",
    );
    for &(li, l) in &tls {
        let v = sum(&|c| c.listeners[li].tls_handshakes.get());
        let _ = writeln!(out, "{name}{{listener=\"{}\"}} {v}", Label(l));
    }
    let name = "ringmesh_tls_handshake_failures_total";
    header(
        out,
        name,
        "counter",
        "TLS handshakes a listener refused or lost, by reason.",
    );
    for &(li, l) in &tls {
        for (ri, reason) in TLS_FAILURES.iter().enumerate() {
            let v = sum(&|c| c.listeners[li].tls_failures[ri].get());
            let _ = writeln!(
                out,
                "{name}{{listener=\"{}\",reason=\"{reason}\"}} {v}",
                Label(l)
            );
        }
    }
}

/// Render all cores' counters, summed, in the Prometheus text format.
pub fn render(config: &Config, cores: &[Arc<CoreStats>], workers: &[WorkerInfo]) -> String {
    let mut out = String::with_capacity(4096);
    let sum = |f: &dyn Fn(&CoreStats) -> u64| cores.iter().map(|c| f(c)).sum::<u64>();

    header(
        &mut out,
        "ringmesh_requests_total",
        "counter",
        "Downstream requests by listener, route and status class.",
    );
    for (li, l) in config.listeners.iter().enumerate() {
        for r in &l.routes {
            for (ci, class) in CLASSES.iter().enumerate() {
                let v = sum(&|c| c.route_get(li, &r.name, |b| b.requests.get(ci)));
                let _ = writeln!(
                    out,
                    "ringmesh_requests_total{{listener=\"{}\",direction=\"{}\",route=\"{}\",class=\"{class}\"}} {v}",
                    Label(&l.name),
                    l.direction.label(),
                    Label(&r.name)
                );
            }
        }
        for (ci, class) in CLASSES.iter().enumerate() {
            let v = sum(&|c| c.listeners[li].unrouted.get(ci));
            let _ = writeln!(
                out,
                "ringmesh_requests_total{{listener=\"{}\",direction=\"{}\",route=\"\",class=\"{class}\"}} {v}",
                Label(&l.name),
                l.direction.label()
            );
        }
    }
    render_codes(&mut out, config, cores);
    header(
        &mut out,
        "ringmesh_faults_injected_total",
        "counter",
        "Faults injected by routes' fault filters, by kind (delay, abort).",
    );
    for (li, l) in config.listeners.iter().enumerate() {
        let faulty = l.routes.iter().filter(|r| {
            r.filters
                .iter()
                .any(|f| matches!(f, crate::filter::Filter::Fault(_)))
        });
        for r in faulty {
            for (fi, fault) in ["delay", "abort"].iter().enumerate() {
                let v = sum(&|c| c.route_get(li, &r.name, |b| b.faults[fi].get()));
                let _ = writeln!(
                    out,
                    "ringmesh_faults_injected_total{{listener=\"{}\",route=\"{}\",fault=\"{fault}\"}} {v}",
                    Label(&l.name),
                    Label(&r.name)
                );
            }
        }
    }
    header(
        &mut out,
        "ringmesh_rate_limited_total",
        "counter",
        "Requests refused (429, RESOURCE_EXHAUSTED) by routes' local rate limits.",
    );
    for (li, l) in config.listeners.iter().enumerate() {
        let limited = l.routes.iter().filter(|r| {
            r.filters
                .iter()
                .any(|f| matches!(f, crate::filter::Filter::RateLimit(_)))
        });
        for r in limited {
            let v = sum(&|c| c.route_get(li, &r.name, |b| b.rate_limited.get()));
            let _ = writeln!(
                out,
                "ringmesh_rate_limited_total{{listener=\"{}\",route=\"{}\"}} {v}",
                Label(&l.name),
                Label(&r.name)
            );
        }
    }
    header(
        &mut out,
        "ringmesh_mirror_requests_total",
        "counter",
        "Copies of routes' requests sent to their mirror cluster, by outcome (sent: answered; failed; dropped: over the per-core cap; body_too_large; incomplete: the body never arrived whole).",
    );
    for (li, l) in config.listeners.iter().enumerate() {
        for r in l.routes.iter().filter(|r| r.mirror.is_some()) {
            for outcome in crate::mirror::Outcome::ALL {
                let i = outcome.index();
                let v = sum(&|c| c.route_get(li, &r.name, |b| b.mirrors[i].get()));
                let _ = writeln!(
                    out,
                    "ringmesh_mirror_requests_total{{listener=\"{}\",route=\"{}\",outcome=\"{}\"}} {v}",
                    Label(&l.name),
                    Label(&r.name),
                    outcome.label()
                );
            }
        }
    }
    header(
        &mut out,
        "ringmesh_grpc_requests_total",
        "counter",
        "gRPC calls by listener, route and the grpc-status their client got (codes seen so far).",
    );
    for (li, l) in config.listeners.iter().enumerate() {
        for r in &l.routes {
            for code in 0..GRPC_CODES {
                let v = sum(&|c| c.route_get(li, &r.name, |b| b.grpc[code].get()));
                if v > 0 {
                    let _ = writeln!(
                        out,
                        "ringmesh_grpc_requests_total{{listener=\"{}\",route=\"{}\",grpc_status=\"{code}\"}} {v}",
                        Label(&l.name),
                        Label(&r.name)
                    );
                }
            }
        }
    }
    let listener_metrics: [MetricDef<ListenerStats>; 4] = [
        (
            "ringmesh_downstream_connections_active",
            "gauge",
            "Open downstream connections.",
            |s| s.connections_active.get(),
        ),
        (
            "ringmesh_downstream_connections_parked",
            "gauge",
            "Idle keep-alive connections parked without buffers.",
            |s| s.connections_parked.get(),
        ),
        (
            "ringmesh_downstream_connections_total",
            "counter",
            "Accepted downstream connections.",
            |s| s.connections_total.get(),
        ),
        (
            "ringmesh_downstream_connections_rejected_total",
            "counter",
            "Connections closed at accept because the listener's max_connections was reached.",
            |s| s.connections_rejected.get(),
        ),
    ];
    for (name, kind, help, get) in listener_metrics {
        header(&mut out, name, kind, help);
        for (li, l) in config.listeners.iter().enumerate() {
            let v = sum(&|c| get(&c.listeners[li]));
            let _ = writeln!(out, "{name}{{listener=\"{}\"}} {v}", Label(&l.name));
        }
    }
    render_tls(&mut out, config, cores);
    render_sources(&mut out, config, cores);
    render_source_durations(&mut out, config, cores);
    render_detected(&mut out, config, cores);
    render_authz(&mut out, config, cores);
    let name = "ringmesh_tunnel_bytes_total";
    header(
        &mut out,
        name,
        "counter",
        "Bytes relayed by tunnels (TCP proxying, upgraded connections): up is client to upstream.",
    );
    for (li, l) in config.listeners.iter().enumerate() {
        for (dir, get) in [
            (
                "up",
                (|s: &ListenerStats| s.tunnel_up.get()) as fn(&ListenerStats) -> u64,
            ),
            ("down", |s: &ListenerStats| s.tunnel_down.get()),
        ] {
            let v = sum(&|c| get(&c.listeners[li]));
            let _ = writeln!(
                out,
                "{name}{{listener=\"{}\",direction=\"{dir}\"}} {v}",
                Label(&l.name)
            );
        }
    }
    let name = "ringmesh_request_duration_seconds";
    header(
        &mut out,
        name,
        "histogram",
        "From a request's complete head to the end of its response, by listener, route and status class (a class appears once seen).",
    );
    for (li, l) in config.listeners.iter().enumerate() {
        for r in &l.routes {
            for (ci, class) in CLASSES.iter().enumerate() {
                let mut merged = [0u64; HIST];
                for c in cores {
                    c.route_histogram(li, &r.name, ci, &mut merged);
                }
                // 18 series a class: only the classes the route has seen.
                if merged[..=LATENCY_BOUNDS_US.len()].iter().all(|n| *n == 0) {
                    continue;
                }
                let labels = format!(
                    "listener=\"{}\",direction=\"{}\",route=\"{}\",class=\"{class}\"",
                    Label(&l.name),
                    l.direction.label(),
                    Label(&r.name)
                );
                write_histogram(&mut out, name, &labels, &merged);
            }
        }
    }
    let histograms: [(&str, &str, PickHistogram); 2] = [
        (
            "ringmesh_upstream_response_seconds",
            "Per try: from taking or opening an upstream connection to the response head, by cluster.",
            |s| &s.upstream_time,
        ),
        (
            "ringmesh_upstream_connect_seconds",
            "New upstream connections: TCP connect and, for TLS, the handshake, by cluster.",
            |s| &s.connect_time,
        ),
    ];
    for (name, help, which) in histograms {
        header(&mut out, name, "histogram", help);
        for k in &config.clusters {
            let mut merged = [0u64; HIST];
            for c in cores {
                c.cluster_histogram(&k.name, which, &mut merged);
            }
            let labels = format!("cluster=\"{}\"", Label(&k.name));
            write_histogram(&mut out, name, &labels, &merged);
        }
    }
    header(
        &mut out,
        "ringmesh_upstream_requests_total",
        "counter",
        "Requests forwarded to a cluster, by response status class.",
    );
    for k in &config.clusters {
        for (ci, class) in CLASSES.iter().enumerate() {
            let v = sum(&|c| c.cluster_get(&k.name, |s| s.requests.get(ci)));
            let _ = writeln!(
                out,
                "ringmesh_upstream_requests_total{{cluster=\"{}\",class=\"{class}\"}} {v}",
                Label(&k.name)
            );
        }
    }
    let cluster_metrics: [MetricDef<ClusterStats>; 7] = [
        (
            "ringmesh_upstream_connections_active",
            "gauge",
            "Open upstream connections, idle ones included.",
            |s| s.connections_active.get(),
        ),
        (
            "ringmesh_upstream_connections_total",
            "counter",
            "Upstream connections opened.",
            |s| s.connections_total.get(),
        ),
        (
            "ringmesh_upstream_connect_failures_total",
            "counter",
            "Upstream connection attempts that failed or timed out.",
            |s| s.connect_failures.get(),
        ),
        (
            "ringmesh_upstream_retries_total",
            "counter",
            "Requests sent again under their route's retry policy.",
            |s| s.retries.get(),
        ),
        (
            "ringmesh_upstream_retries_budget_exhausted_total",
            "counter",
            "Retries not sent because the cluster's retry budget was spent.",
            |s| s.retries_budget_exhausted.get(),
        ),
        (
            "ringmesh_upstream_timeouts_total",
            "counter",
            "Tries that got no response head within their timeout (the route's, the per-try one or the gRPC deadline).",
            |s| s.timeouts.get(),
        ),
        (
            "ringmesh_upstream_panic_total",
            "counter",
            "Endpoint picks made among all endpoints because fewer than the panic threshold were healthy.",
            |s| s.panic.get(),
        ),
    ];
    for (name, kind, help, get) in cluster_metrics {
        header(&mut out, name, kind, help);
        for k in &config.clusters {
            let v = sum(&|c| c.cluster_get(&k.name, get));
            let _ = writeln!(out, "{name}{{cluster=\"{}\"}} {v}", Label(&k.name));
        }
    }
    header(
        &mut out,
        "ringmesh_upstream_overflow_total",
        "counter",
        "Requests failed fast (503 overflow) and retries not sent because the worker's share of a circuit-breaker threshold was in use.",
    );
    for k in &config.clusters {
        for (i, b) in crate::circuit_breaker::Breaker::ALL.iter().enumerate() {
            let v = sum(&|c| c.cluster_get(&k.name, |s| s.overflow[i].get()));
            let _ = writeln!(
                out,
                "ringmesh_upstream_overflow_total{{cluster=\"{}\",limit=\"{}\"}} {v}",
                Label(&k.name),
                b.label()
            );
        }
    }
    endpoint::render(&mut out, config, cores);
    header(
        &mut out,
        "ringmesh_worker_info",
        "gauge",
        "One per worker: its CPU and IO driver.",
    );
    for w in workers {
        let cpu = w
            .cpu
            .map(|c| c.to_string())
            .unwrap_or_else(|| "none".into());
        let _ = writeln!(
            out,
            "ringmesh_worker_info{{worker=\"{}\",cpu=\"{}\",driver=\"{}\"}} 1",
            w.id,
            Label(&cpu),
            Label(w.driver)
        );
    }
    out
}

/// A label value as the Prometheus text format needs it: backslash, double
/// quote and newline escaped (`\\`, `\"`, `\n`). Config names are validated
/// to need none of this, but a value that slipped through (a future label,
/// a name rule relaxed) must not be able to end the label early and corrupt
/// the whole exposition; escaping in one place makes that impossible.
pub fn escape_label(v: &str) -> String {
    Label(v).to_string()
}

struct Label<'a>(&'a str);

impl std::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['\\', '"', '\n']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// `/metrics?per_core=1`: every series of `render` once per worker, with
/// a `core` label, so imbalance between cores shows. Each family stays
/// one group (the text format requires it): the families of every core's
/// rendering are interleaved under one HELP/TYPE.
pub fn render_per_core(
    config: &Config,
    cores: &[Arc<CoreStats>],
    workers: &[WorkerInfo],
) -> String {
    let renders: Vec<Vec<(String, Vec<String>)>> = cores
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // Its own worker's info line only.
            let worker = workers.get(i).map(std::slice::from_ref).unwrap_or_default();
            families(&render(config, std::slice::from_ref(c), worker), i)
        })
        .collect();
    let mut out = String::with_capacity(renders.iter().map(Vec::len).sum::<usize>() * 128);
    let Some(first) = renders.first() else {
        return out;
    };
    for (f, (head, _)) in first.iter().enumerate() {
        out.push_str(head);
        for r in &renders {
            if let Some((_, lines)) = r.get(f) {
                for l in lines {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// A rendering split into families (their HELP/TYPE lines, their series
/// with `core="i"` added as the first label).
fn families(text: &str, core: usize) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if line.starts_with("# HELP") {
            out.push((format!("{line}\n"), Vec::new()));
        } else if line.starts_with('#') {
            if let Some((head, _)) = out.last_mut() {
                head.push_str(line);
                head.push('\n');
            }
        } else if let Some((_, lines)) = out.last_mut() {
            let with_core = match line.split_once('{') {
                Some((name, rest)) if !name.contains(' ') => match rest.strip_prefix('}') {
                    Some(after) => format!("{name}{{core=\"{core}\"}}{after}"),
                    None => format!("{name}{{core=\"{core}\",{rest}"),
                },
                _ => match line.split_once(' ') {
                    Some((name, value)) => format!("{name}{{core=\"{core}\"}} {value}"),
                    None => line.to_string(),
                },
            };
            lines.push(with_core);
        }
    }
    out
}

pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

// Read-only views for the control-plane stats report (`report.rs`): the
// same single-writer counters `/metrics` reads, read off the cores.

/// Buckets of a latency histogram: one per `LATENCY_BOUNDS_US`, then +Inf.
pub type LatencyBuckets = [u64; LATENCY_BOUNDS_US.len() + 1];

impl ByClass {
    /// Counts of 1xx .. 5xx.
    pub fn counts(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.get(i))
    }
}

impl Histogram {
    /// Add this core's bucket counts (not cumulative) into `into`.
    pub fn add_buckets(&self, into: &mut LatencyBuckets) {
        for (n, b) in into.iter_mut().zip(&self.buckets) {
            *n += b.get();
        }
    }
}

impl RouteStats {
    /// Add the request durations of every status class into `into`.
    pub fn add_durations(&self, into: &mut LatencyBuckets) {
        for h in &self.duration {
            h.add_buckets(into);
        }
    }
}

impl Sources {
    /// Each caller's requests by class: the principal (empty:
    /// unauthenticated), or None for the callers past `SOURCES`.
    pub fn for_each(&self, mut f: impl FnMut(Option<&[u8]>, &ByClass)) {
        self.each(|p, counts| f((p != b"\0other").then_some(p), counts));
    }
}

impl CoreStats {
    /// Every route's counters this core ever had: (listener index, route).
    pub fn for_each_route(&self, mut f: impl FnMut(usize, &RouteStats)) {
        for ((listener, _), r) in &self.named().routes {
            f(*listener, r);
        }
    }

    /// Every cluster's counters this core ever had, by name.
    pub fn for_each_cluster(&self, mut f: impl FnMut(&str, &ClusterStats)) {
        for (name, c) in &self.named().clusters {
            f(name, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latency_lands_in_the_first_bucket_that_holds_it() {
        use std::time::Duration;
        let h = Histogram::default();
        h.record(Duration::from_micros(250)); // on a bound: that bucket
        h.record(Duration::from_micros(251));
        h.record(Duration::from_millis(30));
        h.record(Duration::from_secs(60)); // past the last bound: +Inf
        let mut merged = [0u64; HIST];
        h.add_to(&mut merged);
        h.add_to(&mut merged); // a second core with the same counts
        assert_eq!(merged[0], 2);
        assert_eq!(merged[1], 2);
        assert_eq!(merged[7], 2, "30 ms: the 50 ms bucket");
        assert_eq!(merged[LATENCY_BOUNDS_US.len()], 2, "+Inf");
        let mut out = String::new();
        write_histogram(&mut out, "x_seconds", "a=\"b\"", &merged);
        assert!(
            out.contains("x_seconds_bucket{a=\"b\",le=\"0.00025\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{a=\"b\",le=\"0.05\"} 6\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{a=\"b\",le=\"+Inf\"} 8\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_count{a=\"b\"} 8\n"), "{out}");
        assert!(out.contains("x_seconds_sum{a=\"b\"} 120.061002\n"), "{out}");
    }

    #[test]
    fn callers_are_counted_by_identity_then_together_past_the_bound() {
        let s = Sources::default();
        let ms = std::time::Duration::from_millis(1);
        s.record(Some(b"td/ns/a/sa/web"), 200, ms);
        s.record(Some(b"td/ns/a/sa/web"), 503, ms);
        s.record(None, 200, ms);
        for i in 0..SOURCES {
            s.record(Some(format!("td/ns/a/sa/x{i}").as_bytes()), 200, ms);
        }
        let mut seen = Vec::new();
        s.each(|p, c| seen.push((p.to_vec(), c.get(1), c.get(4))));
        assert_eq!(seen[0], (b"td/ns/a/sa/web".to_vec(), 1, 1));
        assert_eq!(seen[1], (Vec::new(), 1, 0), "unauthenticated");
        assert_eq!(seen.len(), SOURCES + 1);
        let other = &seen[SOURCES];
        assert_eq!(
            (other.0.as_slice(), other.1),
            (&b"\0other"[..], 2),
            "the callers past the bound"
        );
    }

    #[test]
    fn an_unlisted_tls_failure_is_a_protocol_error() {
        let l = ListenerStats::default();
        l.tls_failed("something_new");
        l.tls_failed("no_identity");
        let at = |r: &str| TLS_FAILURES.iter().position(|x| *x == r).unwrap();
        assert_eq!(l.tls_failures[at("protocol_error")].get(), 1);
        assert_eq!(l.tls_failures[at("no_identity")].get(), 1);
    }

    #[test]
    fn status_codes_are_counted_exactly_then_together_past_the_bound() {
        let codes = Codes::default();
        for _ in 0..3 {
            codes.record(200);
        }
        codes.record(503);
        for c in 0..CODES as u16 {
            codes.record(300 + c);
        }
        let mut seen = std::collections::BTreeMap::new();
        codes.add_to(&mut seen);
        assert_eq!(seen.get(&200), Some(&3));
        assert_eq!(seen.get(&503), Some(&1));
        // 200 and 503 took two slots: 14 of the 16 new codes fit.
        assert_eq!(seen.get(&0), Some(&2), "other");
        assert_eq!(seen.len(), CODES + 1);
    }

    #[test]
    fn named_counters_outlive_the_snapshot_that_made_them() {
        let config = crate::config::parse(crate::config::EXAMPLE, "example").unwrap();
        let core = CoreStats::for_config(&config);
        core.route(0, "hello").record(200);
        // A reload builds its snapshot's counters again by name: the same
        // counter, so /metrics never goes back.
        let again = core.route(0, "hello");
        again.record(200);
        assert_eq!(core.route_get(0, "hello", |b| b.requests.get(1)), 2);
        assert!(Arc::ptr_eq(
            &core.cluster("local-app"),
            &core.cluster("local-app")
        ));
        assert_eq!(core.route_get(0, "missing", |b| b.requests.get(1)), 0);
    }

    #[test]
    fn cores_are_summed_per_label() {
        let config = crate::config::parse(crate::config::EXAMPLE, "example").unwrap();
        let a = Arc::new(CoreStats::for_config(&config));
        let b = Arc::new(CoreStats::for_config(&config));
        a.route(0, "hello").record(200);
        b.route(0, "hello").record(204);
        b.route(0, "hello").record(503);
        a.cluster("local-app").connect_failures.inc();
        a.listeners[0].unrouted.record(404);
        let text = render(
            &config,
            &[a, b],
            &[WorkerInfo {
                id: 0,
                cpu: Some(1),
                driver: "io_uring",
            }],
        );
        assert!(
            text.contains(
                "ringmesh_requests_total{listener=\"main\",direction=\"inbound\",route=\"hello\",class=\"2xx\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "ringmesh_requests_total{listener=\"main\",direction=\"inbound\",route=\"hello\",class=\"5xx\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "ringmesh_requests_total{listener=\"main\",direction=\"inbound\",route=\"\",class=\"4xx\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("ringmesh_upstream_connect_failures_total{cluster=\"local-app\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("ringmesh_worker_info{worker=\"0\",cpu=\"1\",driver=\"io_uring\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(Label("plain-name_1.0").to_string(), "plain-name_1.0");
        assert_eq!(Label("a\\b\"c\nd\"").to_string(), r#"a\\b\"c\nd\""#);
        assert_eq!(Label("").to_string(), "");
    }

    #[test]
    fn a_hostile_name_cannot_corrupt_the_exposition() {
        let mut config = crate::config::parse(crate::config::EXAMPLE, "example").unwrap();
        // Validation refuses such names; rendering must not depend on it.
        let hostile = "x\"} 1\nfake_metric{a=\"\\";
        config.listeners[0].routes[0].name = hostile.into();
        config.clusters[0].name = hostile.into();
        let core = Arc::new(CoreStats::for_config(&config));
        core.route(0, hostile).record(200);
        let text = render(&config, &[core], &[]);
        let has = |want: &str| text.lines().any(|l| l == want);
        assert!(
            has(
                r#"ringmesh_requests_total{listener="main",direction="inbound",route="x\"} 1\nfake_metric{a=\"\\",class="2xx"} 1"#
            ),
            "{text}"
        );
        assert!(
            has(r#"ringmesh_upstream_connections_total{cluster="x\"} 1\nfake_metric{a=\"\\"} 0"#),
            "{text}"
        );
        // Every sample is still one `ringmesh_...{labels} value` line.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("ringmesh_"), "{line}");
        }
    }

    #[test]
    fn gauge_goes_up_and_down() {
        let c = Counter::default();
        c.inc();
        c.inc();
        c.dec();
        assert_eq!(c.get(), 1);
    }
}
