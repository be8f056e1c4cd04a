//! Traffic summaries for the control plane (`Telemetry/Report`), behind
//! `ringmeshctl stat`.
//!
//! The agent thread reads the cores' counters every `--stats-interval`
//! (single-writer counters, summed over the cores as `/metrics` does; no
//! core is asked anything) and sends them, cumulative since the proxy
//! started, on a report stream of its own beside the discovery stream:
//!
//! - per listener: requests by status class (routed and not), the routed
//!   requests' durations in the fixed buckets of
//!   [`metrics::LATENCY_BOUNDS_US`], and how many came over mTLS (callers
//!   with a workload certificate, from the listener's per-caller counts);
//! - per cluster: requests by status class, the upstream time histogram,
//!   and whether the cluster is meshed (mTLS) in the config in force.
//!
//! The control plane takes differences between reports; nothing here is
//! ever reset.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ringmesh_proto::v1 as pb;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

use crate::agent::{Backoff, ControlPlane};
use crate::config::Config;
use crate::metrics::{self, CoreStats, LatencyBuckets};

/// What a report is read from: the cores' counters (once the server has
/// built them) and the config in force (listener names, meshed clusters).
#[derive(Default)]
pub struct StatsSource {
    cores: OnceLock<Vec<Arc<CoreStats>>>,
    config: Mutex<Option<Arc<Config>>>,
}

impl StatsSource {
    /// The server built the cores' counters.
    pub fn set_cores(&self, cores: Vec<Arc<CoreStats>>) {
        let _ = self.cores.set(cores);
    }

    /// A config is in force on every core.
    pub fn set_config(&self, config: Arc<Config>) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = Some(config);
    }

    fn config(&self) -> Option<Arc<Config>> {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The counters now, or None before the proxy serves.
    pub fn read(&self, node_id: &str, instance: u64, uptime: Duration) -> Option<pb::StatsReport> {
        let cores = self.cores.get()?;
        let config = self.config()?;
        Some(summarize(&config, cores, node_id, instance, uptime))
    }
}

fn counts(by_class: [u64; 5], buckets: &LatencyBuckets) -> Option<pb::RequestCounts> {
    Some(pb::RequestCounts {
        by_class: by_class.to_vec(),
        latency_buckets: buckets.to_vec(),
    })
}

fn add(into: &mut [u64; 5], from: [u64; 5]) {
    for (n, x) in into.iter_mut().zip(from) {
        *n += x;
    }
}

/// One report of `cores`' counters, shaped by `config`.
pub fn summarize(
    config: &Config,
    cores: &[Arc<CoreStats>],
    node_id: &str,
    instance: u64,
    uptime: Duration,
) -> pb::StatsReport {
    let n = config.listeners.len();
    let mut by_class = vec![[0u64; 5]; n];
    let mut buckets = vec![LatencyBuckets::default(); n];
    let mut mtls = vec![0u64; n];
    let mut clusters: std::collections::BTreeMap<String, ([u64; 5], LatencyBuckets)> =
        Default::default();
    let mut endpoints: std::collections::BTreeMap<(String, SocketAddr), pb::EndpointReport> =
        Default::default();
    for core in cores {
        // Routes of earlier configs too: a listener's totals never go back.
        core.for_each_route(|li, r| {
            if li < n {
                add(&mut by_class[li], r.requests.counts());
                r.add_durations(&mut buckets[li]);
            }
        });
        for (li, l) in core.listeners.iter().enumerate().take(n) {
            add(&mut by_class[li], l.unrouted.counts());
            // Callers past the tracked ones count as mTLS only when the
            // unauthenticated have a slot of their own.
            let (mut with_cert, mut anonymous, mut others) = (0, false, 0);
            l.sources.for_each(|p, c| {
                let all: u64 = c.counts().iter().sum();
                match p {
                    Some([]) => anonymous = true,
                    Some(_) => with_cert += all,
                    None => others += all,
                }
            });
            mtls[li] += with_cert + if anonymous { others } else { 0 };
        }
        core.for_each_cluster(|name, c| {
            let entry = clusters.entry(name.to_string()).or_default();
            add(&mut entry.0, c.requests.counts());
            c.upstream_time.add_buckets(&mut entry.1);
            c.endpoints.each(|addr, e| {
                let r = endpoints
                    .entry((name.to_string(), addr))
                    .or_insert_with(|| pb::EndpointReport {
                        address: addr.to_string(),
                        healthy: true,
                        ..Default::default()
                    });
                r.requests += e.requests.get();
                r.errors += e.errors.get();
                r.ejections += e.ejections.get();
                r.ejected_workers += u32::from(e.ejected.get() > 0);
                r.healthy &= e.unhealthy.get() == 0;
            });
        });
    }
    pb::StatsReport {
        node_id: node_id.to_string(),
        instance,
        uptime_ms: u64::try_from(uptime.as_millis()).unwrap_or(u64::MAX),
        latency_bounds_us: metrics::LATENCY_BOUNDS_US.to_vec(),
        listeners: config
            .listeners
            .iter()
            .enumerate()
            .map(|(li, l)| pb::ListenerReport {
                name: l.name.clone(),
                mesh: l.mesh.is_some(),
                counts: counts(by_class[li], &buckets[li]),
                mtls_requests: mtls[li],
            })
            .collect(),
        clusters: clusters
            .into_iter()
            .map(|(name, (by_class, buckets))| pb::ClusterReport {
                mesh: config
                    .clusters
                    .iter()
                    .any(|c| c.name == name && c.mesh.is_some()),
                counts: counts(by_class, &buckets),
                endpoints: endpoints
                    .range((name.clone(), SocketAddr::from(([0, 0, 0, 0], 0)))..)
                    .take_while(|((c, _), _)| *c == name)
                    .map(|(_, r)| r.clone())
                    .collect(),
                name,
            })
            .collect(),
    }
}

/// Send a report every `every` until the process ends, reconnecting
/// with backoff; reports missed while the control plane is away are not
/// made up (the counters are cumulative: the next one carries them).
pub async fn run(
    control: ControlPlane,
    token: String,
    node_id: String,
    source: Arc<StatsSource>,
    every: Duration,
) {
    let started = Instant::now();
    let instance = fastrand::u64(..);
    let mut backoff = Backoff::default();
    loop {
        let reporter = Reporter {
            token: &token,
            node_id: &node_id,
            source: &source,
            every,
            started,
            instance,
        };
        match reporter.session(&control, &mut backoff).await {
            Ok(()) => info!("control plane closed the report stream; reconnecting"),
            Err(e) => debug!(error = %e, "stats reports: control plane unreachable"),
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

struct Reporter<'a> {
    token: &'a str,
    node_id: &'a str,
    source: &'a StatsSource,
    every: Duration,
    started: Instant,
    instance: u64,
}

impl Reporter<'_> {
    async fn session(&self, control: &ControlPlane, backoff: &mut Backoff) -> Result<(), String> {
        let channel = control.connect().await?;
        let mut client = pb::telemetry_client::TelemetryClient::new(channel);
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let mut req = tonic::Request::new(ReceiverStream::new(rx));
        let auth = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| "the token is not a valid header value".to_string())?;
        req.metadata_mut().insert("authorization", auth);
        let call = client.report(req);
        tokio::pin!(call);
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sent = false;
        loop {
            tokio::select! {
                end = &mut call => {
                    return end
                        .map(|_| ())
                        .map_err(|s| format!("{}: {}", s.code(), s.message()));
                }
                _ = tick.tick() => {
                    let Some(r) = self
                        .source
                        .read(self.node_id, self.instance, self.started.elapsed())
                    else {
                        continue;
                    };
                    // A full queue means the stream is stuck: skip this
                    // one, the next carries its counts.
                    match tx.try_send(r) {
                        Ok(()) if !sent => {
                            sent = true;
                            backoff.reset();
                        }
                        Ok(()) => {}
                        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                            warn!("stats report skipped: the control plane is not reading them")
                        }
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                            return Err("the report stream closed".into())
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_sums_the_cores_routes_and_clusters() {
        let config = crate::config::parse(crate::config::EXAMPLE, "example").unwrap();
        let cores: Vec<Arc<CoreStats>> = (0..2)
            .map(|_| Arc::new(CoreStats::for_config(&config)))
            .collect();
        let ms = Duration::from_millis;
        for (i, core) in cores.iter().enumerate() {
            let app = core.route(0, "app");
            app.record(200);
            app.record_duration(200, ms(3));
            // A route no longer in the config still counts.
            let old = core.route(0, "gone");
            old.record(503);
            old.record_duration(503, ms(30));
            core.listeners[0].unrouted.record(404);
            let took = std::time::Duration::from_millis(1);
            core.listeners[0]
                .sources
                .record(Some(b"td/ns/a/sa/b"), 200, took);
            core.listeners[0].sources.record(None, 404, took);
            let c = core.cluster("local-app");
            c.requests.record(200 + 100 * i as u16);
            c.upstream_time.record(ms(2));
        }
        let r = summarize(&config, &cores, "n1", 9, ms(1_500));
        assert_eq!(
            (r.node_id.as_str(), r.instance, r.uptime_ms),
            ("n1", 9, 1_500)
        );
        assert_eq!(r.latency_bounds_us, metrics::LATENCY_BOUNDS_US);
        let main = &r.listeners[0];
        assert_eq!((main.name.as_str(), main.mesh), ("main", false));
        let counts = main.counts.as_ref().unwrap();
        assert_eq!(counts.by_class, [0, 2, 0, 2, 2]);
        // 3 ms is in (2.5, 5] ms, 30 ms in (25, 50] ms.
        let mut want = vec![0; metrics::LATENCY_BOUNDS_US.len() + 1];
        want[4] = 2;
        want[7] = 2;
        assert_eq!(counts.latency_buckets, want);
        assert_eq!(main.mtls_requests, 2, "the requests with a principal");
        let app = &r.clusters[0];
        assert_eq!((app.name.as_str(), app.mesh), ("local-app", false));
        let counts = app.counts.as_ref().unwrap();
        assert_eq!(counts.by_class, [0, 1, 1, 0, 0]);
        assert_eq!(counts.latency_buckets.iter().sum::<u64>(), 2);
    }
}
