//! One worker: a thread pinned to a CPU running its own monoio runtime.
//!
//! A worker shares nothing with the others on the request path. It gets its
//! pre-bound listener sockets, builds its own cluster state (pools,
//! balancers) from the config snapshot, accepts on its own `SO_REUSEPORT`
//! sockets, and hears from the rest of the process only through its control
//! channel (drain, endpoint updates, config stage/commit/abort).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::StreamExt;
use monoio::net::TcpListener;
use tracing::{info, warn};

use crate::cluster::ClusterState;
use crate::config::model::{IoMode, Resolved};
use crate::config::Config;
use crate::drain::Drain;
use crate::handler::{Handlers, Job};
use crate::loglimit::LogLimit;
use crate::metrics::{ClusterStats, CoreStats, RouteStats};
use crate::park::{ConnSlot, Parker};
use crate::transport::Stream;

/// Messages from the main thread to a worker.
#[derive(Debug)]
pub enum WorkerMsg {
    /// Stop taking new work: keep serving for `delay` (responses close
    /// their connections), then close listeners and give in-flight requests
    /// `timeout` before exiting.
    Drain { delay: Duration, timeout: Duration },
    /// A cluster's endpoints changed (DNS refresh) in config `generation`.
    Endpoints {
        generation: u64,
        cluster: usize,
        endpoints: Arc<[Resolved]>,
    },
    /// Build this core's state for a new config and keep it ready; reply
    /// `Staged`.
    Stage(Arc<Reload>),
    /// Switch to the staged config of `generation`; reply `Committed`.
    Commit(u64),
    /// Forget the staged config of `generation`.
    Abort(u64),
}

/// A worker's answer to `Stage` and `Commit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Staged { core: usize, generation: u64 },
    Committed { core: usize, generation: u64 },
}

/// A config to swap to, with everything a core needs to build its state
/// for it without locks or lookups by name.
#[derive(Debug)]
pub struct Reload {
    pub config: Arc<Config>,
    pub endpoints: Vec<Arc<[Resolved]>>,
    /// Increases with every reload; endpoint updates name the generation
    /// whose cluster indices they use.
    pub generation: u64,
    /// Per core: the counters of each route and cluster of `config`, found
    /// by name on the main thread (so a core takes no lock to stage).
    pub stats: Vec<SnapshotStats>,
    pub replies: mpsc::Sender<Reply>,
}

/// One core's counters for one config: `routes[listener][route]`,
/// `clusters[cluster]`.
#[derive(Debug, Clone)]
pub struct SnapshotStats {
    pub routes: Vec<Vec<Arc<RouteStats>>>,
    pub clusters: Vec<Arc<ClusterStats>>,
    /// Per listener, per authorization policy (DENY ones first).
    pub policies: Vec<Vec<Arc<crate::metrics::PolicyStats>>>,
}

impl SnapshotStats {
    /// Look up (or create) `config`'s counters in one core's stats.
    pub fn for_config(stats: &CoreStats, config: &Config) -> Self {
        SnapshotStats {
            routes: config
                .listeners
                .iter()
                .enumerate()
                .map(|(li, l)| l.routes.iter().map(|r| stats.route(li, &r.name)).collect())
                .collect(),
            clusters: config
                .clusters
                .iter()
                .map(|c| stats.cluster(&c.name))
                .collect(),
            policies: config
                .listeners
                .iter()
                .enumerate()
                .map(|(li, l)| {
                    l.authorization
                        .iter()
                        .flat_map(|a| a.policies())
                        .map(|p| stats.policy(li, &p.name))
                        .collect()
                })
                .collect(),
        }
    }
}

/// The config a request runs on, with this core's state built from it. A
/// request holds an `Rc` of the snapshot taken when its head was complete,
/// so a request in flight during a swap finishes on the config it started
/// with.
pub struct Snapshot {
    pub config: Arc<Config>,
    /// Per cluster of `config`, in order. A cluster whose settings did not
    /// change across a swap is the same `Rc`: its pools carry over.
    pub clusters: Vec<Rc<ClusterState>>,
    /// `route_stats[listener][route]`.
    pub route_stats: Vec<Vec<Arc<RouteStats>>>,
    /// `filter_state[listener][route][filter]`: this core's state of each
    /// route filter (rate limits' buckets).
    pub filter_state: Vec<Vec<Box<[crate::filter::FilterState]>>>,
    /// `policy_stats[listener][policy]`, DENY policies first.
    pub policy_stats: Vec<Vec<Arc<crate::metrics::PolicyStats>>>,
    pub generation: u64,
}

impl Snapshot {
    /// Build this core's state for `config` in time linear in the number
    /// of clusters, reusing what `old` has for clusters whose settings are
    /// unchanged.
    pub fn build(
        core: usize,
        workers: usize,
        config: &Arc<Config>,
        endpoints: &[Arc<[Resolved]>],
        stats: SnapshotStats,
        generation: u64,
        old: Option<&Snapshot>,
    ) -> Snapshot {
        let by_name: HashMap<&str, usize> = old
            .map(|o| {
                o.config
                    .clusters
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name.as_str(), i))
                    .collect()
            })
            .unwrap_or_default();
        let clusters = config
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let kept = old.and_then(|o| {
                    let j = *by_name.get(c.name.as_str())?;
                    let same = o.config.clusters[j].same_settings(c)
                        && o.clusters[j].reusable_for(config.zone.as_ref());
                    same.then(|| o.clusters[j].clone())
                });
                match kept {
                    Some(state) => {
                        // Endpoints that stay keep their idle connections.
                        state.set_endpoints(&endpoints[i]);
                        // A mesh cluster's TLS carries the workload
                        // certificate, which a renewal replaces.
                        if c.mesh.is_some() {
                            state.connector.refresh(c.tls.clone(), true);
                            if let Some(tcp) = &state.tcp_connector {
                                tcp.refresh(c.mesh_tcp_tls.clone(), true);
                            }
                        }
                        state
                    }
                    None => Rc::new(ClusterState::new(
                        c,
                        &endpoints[i],
                        config.zone.clone(),
                        core,
                        workers,
                        stats.clusters[i].clone(),
                    )),
                }
            })
            .collect();
        Snapshot {
            config: config.clone(),
            clusters,
            filter_state: filter_state(workers, config, old),
            route_stats: stats.routes,
            policy_stats: stats.policies,
            generation,
        }
    }
}

/// Each route filter's state on this core. A route whose filters are the
/// same as before a reload (same listener and route name) keeps its state:
/// a reload does not refill a rate limit's bucket.
fn filter_state(
    workers: usize,
    config: &Config,
    old: Option<&Snapshot>,
) -> Vec<Vec<Box<[crate::filter::FilterState]>>> {
    let now = std::time::Instant::now();
    use crate::filter::{Filter, FilterState};
    /// A route's filters and their state, by listener and route name.
    type Kept<'a> = HashMap<(&'a str, &'a str), (&'a [Filter], &'a [FilterState])>;
    let kept: Kept<'_> = old.map_or_else(HashMap::new, |o| {
        o.config
            .listeners
            .iter()
            .zip(&o.filter_state)
            .flat_map(|(l, states)| {
                l.routes
                    .iter()
                    .zip(states)
                    .filter(|(r, _)| !r.filters.is_empty())
                    .map(|(r, st)| {
                        (
                            (l.name.as_str(), r.name.as_str()),
                            (&r.filters[..], &st[..]),
                        )
                    })
            })
            .collect()
    });
    config
        .listeners
        .iter()
        .map(|l| {
            l.routes
                .iter()
                .map(|r| match kept.get(&(l.name.as_str(), r.name.as_str())) {
                    Some((filters, states)) if *filters == &r.filters[..] => states.to_vec().into(),
                    _ => r.filters.iter().map(|f| f.state(workers, now)).collect(),
                })
                .collect()
        })
        .collect()
}

/// Per-core context shared by every connection task on the core.
pub struct Core {
    pub id: usize,
    pub workers: usize,
    snapshot: RefCell<Rc<Snapshot>>,
    /// A config built and waiting for `Commit`, and where to confirm it.
    staged: RefCell<Option<(Snapshot, mpsc::Sender<Reply>)>>,
    pub stats: Arc<CoreStats>,
    pub drain: Drain,
    pub rng: RefCell<fastrand::Rng>,
    /// Open downstream connections on this core.
    pub connections: Cell<usize>,
    /// Buffers requests borrow while active.
    pub pool: crate::pool::Pool,
    /// Idle connections, waiting for their next request.
    pub parker: Parker,
    /// Tasks that serve connections, reused from one to the next.
    pub handlers: Handlers,
    /// Failure log lines allowed per second.
    pub log_limit: LogLimit,
    /// Memory was freed since the last sweep (handlers ended, the pool
    /// shrank): worth returning pages to the OS.
    pub freed: Cell<bool>,
    /// A request's normalised path while its authorization is decided.
    pub path_buf: RefCell<Vec<u8>>,
    /// Each listener's bound port as decimal text (what authorization
    /// policies' `ports` match), in config order.
    pub listener_ports: Vec<Box<[u8]>>,
    /// This core's access-log and span buffers.
    pub telemetry: crate::telemetry::CoreTelemetry,
    /// Active health checks: run here on core 0, reported to the others.
    pub health: crate::health::Checks,
}

impl Core {
    /// This core's state for `config`. Must be called inside the core's
    /// monoio runtime (the parker registers its epoll set with it).
    pub fn new(
        id: usize,
        workers: usize,
        config: &Arc<Config>,
        endpoints: &[Arc<[Resolved]>],
        stats: Arc<CoreStats>,
        ports: &[u16],
        telemetry: crate::telemetry::CoreTelemetry,
    ) -> std::io::Result<Rc<Core>> {
        let parker = Parker::new()?;
        let snapshot = Snapshot::build(
            id,
            workers,
            config,
            endpoints,
            SnapshotStats::for_config(&stats, config),
            0,
            None,
        );
        Ok(Rc::new(Core {
            id,
            workers,
            snapshot: RefCell::new(Rc::new(snapshot)),
            staged: RefCell::new(None),
            stats,
            drain: Drain::default(),
            rng: RefCell::new(fastrand::Rng::new()),
            connections: Cell::new(0),
            pool: crate::pool::Pool::default(),
            parker,
            handlers: Handlers::default(),
            log_limit: LogLimit::default(),
            freed: Cell::new(false),
            path_buf: RefCell::new(Vec::with_capacity(256)),
            listener_ports: ports
                .iter()
                .map(|p| p.to_string().into_bytes().into_boxed_slice())
                .collect(),
            telemetry,
            health: crate::health::Checks::default(),
        }))
    }

    pub fn snapshot(&self) -> Rc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Build the state for a new config next to the running one.
    pub(crate) fn stage(&self, reload: &Reload) {
        let old = self.snapshot();
        let new = Snapshot::build(
            self.id,
            self.workers,
            &reload.config,
            &reload.endpoints,
            reload.stats[self.id].clone(),
            reload.generation,
            Some(&old),
        );
        *self.staged.borrow_mut() = Some((new, reload.replies.clone()));
        let _ = reload.replies.send(Reply::Staged {
            core: self.id,
            generation: reload.generation,
        });
    }

    /// Swap to the staged config. Requests already running keep the
    /// snapshot they hold; every request whose head completes from now on
    /// uses the new one.
    pub(crate) fn commit(&self, generation: u64) {
        let Some((new, replies)) = self.take_staged(generation) else {
            return;
        };
        let old = self.snapshot.replace(Rc::new(new));
        // Clusters that are gone: close their idle upstream connections.
        let kept = self.snapshot();
        for c in &old.clusters {
            if !kept.clusters.iter().any(|k| Rc::ptr_eq(k, c)) {
                c.close_idle();
            }
        }
        info!(worker = self.id, generation, "config swapped");
        let _ = replies.send(Reply::Committed {
            core: self.id,
            generation,
        });
    }

    fn take_staged(&self, generation: u64) -> Option<(Snapshot, mpsc::Sender<Reply>)> {
        self.staged
            .borrow_mut()
            .take_if(|(s, _)| s.generation == generation)
    }
}

/// Everything a worker thread starts with.
pub struct WorkerSetup {
    pub id: usize,
    pub workers: usize,
    pub cpu: Option<usize>,
    pub io: IoMode,
    pub config: Arc<Config>,
    /// One pre-bound socket per listener, in config order.
    pub listeners: Vec<std::net::TcpListener>,
    /// Resolved endpoints per cluster.
    pub endpoints: Vec<Arc<[Resolved]>>,
    /// This core's inbox and the other cores' (balancers' estimates).
    pub peers: crate::balance::share::Peers,
    pub stats: Arc<CoreStats>,
    pub control: UnboundedReceiver<WorkerMsg>,
    pub telemetry: crate::telemetry::CoreTelemetry,
    /// Health check results: sent from core 0, received by the others.
    pub health: crate::health::Link,
}

/// Which driver a runtime got, for the startup log and metrics.
pub fn driver_name(io_uring: bool) -> &'static str {
    if io_uring {
        "io_uring"
    } else {
        "epoll"
    }
}

/// Build the worker's runtime and run it until drained. `started` receives
/// the driver name once the runtime is up, or the error that stopped it.
pub fn run(setup: WorkerSetup, started: mpsc::Sender<Result<&'static str, String>>) {
    if let Some(cpu) = setup.cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            warn!(worker = setup.id, cpu, "could not pin worker to CPU");
        }
    }
    let runtime = match build_runtime(setup.io) {
        Ok(rt) => rt,
        Err(e) => {
            let _ = started.send(Err(format!(
                "worker {}: cannot start {:?} runtime: {e}",
                setup.id, setup.io
            )));
            return;
        }
    };
    match runtime {
        monoio::FusionRuntime::Uring(mut rt) => rt.block_on(serve(setup, started, true)),
        monoio::FusionRuntime::Legacy(mut rt) => rt.block_on(serve(setup, started, false)),
    }
}

type Runtime = monoio::FusionRuntime<
    monoio::time::TimeDriver<monoio::IoUringDriver>,
    monoio::time::TimeDriver<monoio::LegacyDriver>,
>;

/// io_uring entries: enough SQEs for a burst of accepts, reads and writes
/// across thousands of connections without the submission queue filling.
const URING_ENTRIES: u32 = 4096;

/// Ring flags for a thread-per-core runtime: only this thread submits
/// (SINGLE_ISSUER), so the kernel may run completion work when the thread
/// next enters the ring instead of interrupting it with an IPI
/// (COOP_TASKRUN, DEFER_TASKRUN). Kernels before 6.1 refuse them; the
/// runtime is then built without them. Measured with the interim
/// compare.py that `ringmesh-bench compare` replaced: proxy CPU per
/// request 29.7 -> 21.9 us, pipelined req/s 38k -> 63k.
fn tuned_ring() -> io_uring::Builder {
    let mut b = io_uring::IoUring::builder();
    b.setup_coop_taskrun()
        .setup_single_issuer()
        .setup_defer_taskrun();
    b
}

fn build_runtime(io: IoMode) -> std::io::Result<Runtime> {
    let uring = |tuned: bool| {
        let builder =
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().with_entries(URING_ENTRIES);
        let builder = if tuned {
            builder.uring_builder(tuned_ring())
        } else {
            builder
        };
        builder.enable_timer().build().map(Runtime::from)
    };
    let epoll = || {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(Runtime::from)
    };
    match io {
        IoMode::Uring => uring(true).or_else(|_| uring(false)),
        IoMode::Epoll => epoll(),
        IoMode::Auto => uring(true).or_else(|_| uring(false)).or_else(|e| {
            warn!(error = %e, "io_uring unavailable, falling back to epoll");
            epoll()
        }),
    }
}

async fn serve(
    setup: WorkerSetup,
    started: mpsc::Sender<Result<&'static str, String>>,
    io_uring: bool,
) {
    let WorkerSetup {
        id,
        workers,
        config,
        listeners,
        endpoints,
        stats,
        mut control,
        telemetry,
        peers,
        health,
        ..
    } = setup;
    // Bound before the workers start: port 0 in the config is the port
    // the kernel picked here.
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().map_or(0, |a| a.port()))
        .collect();
    let core = match Core::new(id, workers, &config, &endpoints, stats, &ports, telemetry) {
        Ok(core) => core,
        Err(e) => {
            let _ = started.send(Err(format!(
                "worker {id}: cannot create its epoll set: {e}"
            )));
            return;
        }
    };
    for (index, std_listener) in listeners.into_iter().enumerate() {
        match TcpListener::from_std(std_listener) {
            Ok(listener) => {
                monoio::spawn(accept_loop(core.clone(), index, listener));
            }
            Err(e) => {
                let _ = started.send(Err(format!(
                    "worker {id}: cannot register listener `{}`: {e}",
                    config.listeners[index].name
                )));
                return;
            }
        }
    }
    monoio::spawn(crate::park::run(core.clone()));
    monoio::spawn(sweep(core.clone()));
    monoio::spawn(crate::balance::share::run(core.clone(), peers));
    crate::health::start(&core, health);
    let _ = started.send(Ok(driver_name(io_uring)));
    drop(started);

    let (delay, timeout) = loop {
        match control.next().await {
            Some(WorkerMsg::Drain { delay, timeout }) => break (delay, timeout),
            Some(WorkerMsg::Endpoints {
                generation,
                cluster,
                endpoints,
            }) => {
                let snap = core.snapshot();
                // An update computed for a config this core has left
                // would name the wrong cluster.
                if snap.generation == generation {
                    if let Some(c) = snap.clusters.get(cluster) {
                        c.set_endpoints(&endpoints);
                    }
                }
            }
            Some(WorkerMsg::Stage(reload)) => core.stage(&reload),
            // A commit or abort without a matching stage is ignored.
            Some(WorkerMsg::Commit(generation)) => {
                core.commit(generation);
                crate::health::reconfigure(&core);
            }
            Some(WorkerMsg::Abort(generation)) => drop(core.take_staged(generation)),
            // The main thread is gone: drain without delay.
            None => break (Duration::ZERO, config.runtime.drain_timeout),
        }
    };
    drain(&core, delay, timeout).await;
    core.telemetry.flush();
}

/// Drain: keep serving for `delay` with every response closing its
/// connection, then close listeners and idle connections, and wait for
/// busy ones to finish for at most `timeout`.
async fn drain(core: &Core, delay: Duration, timeout: Duration) {
    core.drain.start();
    if !delay.is_zero() {
        monoio::time::sleep(delay).await;
    }
    core.drain.stop();
    let until = Instant::now() + timeout;
    while core.connections.get() > 0 && Instant::now() < until {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = core.connections.get();
    if left > 0 {
        warn!(
            worker = core.id,
            connections = left,
            "drain timeout: closing busy connections"
        );
    }
    for c in &core.snapshot().clusters {
        c.close_idle();
    }
    info!(worker = core.id, "worker drained");
}

async fn accept_loop(core: Rc<Core>, index: usize, listener: TcpListener) {
    loop {
        let accepted = {
            let stopped = core.drain.stopped();
            let accept = listener.accept();
            monoio::select! {
                _ = stopped => return,
                a = accept => a,
            }
        };
        match accepted {
            Ok((stream, peer)) => {
                let stats = &core.stats.listeners[index];
                let snap = core.snapshot();
                let listener = &snap.config.listeners[index];
                let max = listener
                    .max_connections
                    .map(|m| m.div_ceil(core.workers.max(1)));
                if max.is_some_and(|m| stats.connections_active.get() as usize >= m) {
                    // Over the limit: close at once (the client sees the
                    // connection end and can go elsewhere) and count it.
                    stats.connections_rejected.inc();
                    drop(stream);
                    continue;
                }
                let slot = ConnSlot::open(core.clone(), index);
                let job = Job {
                    io: Stream::tcp(stream),
                    peer,
                    slot,
                    ready: false,
                    tls: listener.tls.clone(),
                    fresh: true,
                };
                core.handlers.dispatch(&core, job);
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(worker = core.id, error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// How often idle upstream connections past their timeout are closed,
/// parked connections past their idle deadline closed, and the buffer pool
/// and free handlers trimmed.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

async fn sweep(core: Rc<Core>) {
    while !core.drain.is_stopped() {
        monoio::time::sleep(SWEEP_INTERVAL).await;
        let now = Instant::now();
        for c in &core.snapshot().clusters {
            c.sweep(now);
            c.outlier_tick(now);
        }
        if core.pool.trim() {
            core.freed.set(true);
        }
        // Ending handlers free their memory when they next run, after this
        // sweep: the next sweep returns it (they set `freed`).
        core.handlers.trim();
        core.parker.expire(&core, now);
        core.log_limit.flush();
        core.telemetry.flush();
        if core.freed.replace(false) {
            crate::trim::release_free_memory();
        }
    }
}
