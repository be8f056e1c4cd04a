//! One worker: a thread pinned to a CPU running its own monoio runtime.
//!
//! A worker shares nothing with the others on the request path. It gets its
//! pre-bound listener sockets, builds its own cluster state (pools, balancer
//! cursors) from the config snapshot, accepts on its own `SO_REUSEPORT`
//! sockets, and hears from the rest of the process only through its control
//! channel (shutdown, endpoint updates).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::StreamExt;
use monoio::net::TcpListener;
use tracing::{info, warn};

use crate::cluster::{ClusterState, StatsRef};
use crate::config::model::IoMode;
use crate::config::Config;
use crate::drain::Drain;
use crate::metrics::{ByClass, CoreStats};

/// Messages from the main thread to a worker.
#[derive(Debug)]
pub enum WorkerMsg {
    /// Stop accepting, finish in-flight requests, exit by the deadline.
    Drain { deadline: Duration },
    /// A cluster's endpoints changed (DNS refresh) in config `generation`.
    Endpoints {
        generation: u64,
        cluster: usize,
        addrs: Arc<[SocketAddr]>,
    },
    /// A new config: swap to it between requests.
    Config(Arc<Reload>),
}

/// A config to swap to, with its clusters' resolved endpoints.
#[derive(Debug)]
pub struct Reload {
    pub config: Arc<Config>,
    pub endpoints: Vec<Arc<[SocketAddr]>>,
    /// Increases with every reload; endpoint updates name the generation
    /// whose cluster indices they use.
    pub generation: u64,
    /// Each core sends its id here once it runs on the new config.
    pub done: Option<std::sync::mpsc::Sender<usize>>,
}

/// The config a request runs on, with this core's state built from it. A
/// request holds an `Rc` of the snapshot it started with, so a request in
/// flight during a swap finishes on the config it started with.
pub struct Snapshot {
    pub config: Arc<Config>,
    /// Per cluster of `config`, in order. A cluster whose settings did not
    /// change across a swap is the same `Rc`: its pool carries over.
    pub clusters: Vec<Rc<ClusterState>>,
    /// `route_stats[listener][route]`.
    pub route_stats: Vec<Vec<Arc<ByClass>>>,
    pub generation: u64,
}

impl Snapshot {
    /// Build this core's state for `config`, reusing what `old` has for
    /// clusters whose settings are unchanged.
    pub fn build(core: &CoreContext, reload: &Reload, old: Option<&Snapshot>) -> Snapshot {
        let config = &reload.config;
        let clusters = config
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let kept = old.and_then(|o| {
                    let j = o.config.clusters.iter().position(|oc| oc.name == c.name)?;
                    (o.config.clusters[j].same_settings(c)).then(|| o.clusters[j].clone())
                });
                match kept {
                    Some(state) => {
                        // Endpoints that stay keep their idle connections.
                        state.set_endpoints(&reload.endpoints[i]);
                        state
                    }
                    None => {
                        let stats = Arc::new(StatsRef(core.stats.cluster(&c.name)));
                        Rc::new(ClusterState::new(
                            c,
                            &reload.endpoints[i],
                            core.id,
                            core.workers,
                            stats,
                        ))
                    }
                }
            })
            .collect();
        let route_stats = config
            .listeners
            .iter()
            .enumerate()
            .map(|(li, l)| {
                l.routes
                    .iter()
                    .map(|r| core.stats.route(li, &r.name))
                    .collect()
            })
            .collect();
        Snapshot {
            config: config.clone(),
            clusters,
            route_stats,
            generation: reload.generation,
        }
    }
}

/// What building a snapshot needs to know about the core.
pub struct CoreContext {
    pub id: usize,
    pub workers: usize,
    pub stats: Arc<CoreStats>,
}

/// Per-core context shared by every connection task on the core.
pub struct Core {
    pub id: usize,
    pub workers: usize,
    snapshot: RefCell<Rc<Snapshot>>,
    pub stats: Arc<CoreStats>,
    pub drain: Drain,
    pub rng: RefCell<fastrand::Rng>,
    /// Open downstream connections on this core.
    pub connections: Cell<usize>,
    /// Buffers requests borrow while active.
    pub pool: crate::pool::Pool,
    /// Idle deadlines of parked connections.
    pub parked: crate::park::Parked,
    /// Connection state was freed since the last sweep (a connection
    /// parked, the pool shrank): worth returning pages to the OS.
    pub freed: Cell<bool>,
}

impl Core {
    pub fn snapshot(&self) -> Rc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Swap to a new config. Requests already running keep the snapshot
    /// they hold; the next request on every connection uses the new one.
    fn swap(&self, reload: &Reload) {
        let ctx = CoreContext {
            id: self.id,
            workers: self.workers,
            stats: self.stats.clone(),
        };
        let new = Snapshot::build(&ctx, reload, Some(&self.snapshot()));
        let old = self.snapshot.replace(Rc::new(new));
        // Clusters that are gone: close their idle upstream connections.
        let kept = self.snapshot();
        for c in &old.clusters {
            if !kept.clusters.iter().any(|k| Rc::ptr_eq(k, c)) {
                c.close_idle();
            }
        }
        info!(
            worker = self.id,
            generation = reload.generation,
            "config swapped"
        );
        if let Some(done) = &reload.done {
            let _ = done.send(self.id);
        }
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
    pub endpoints: Vec<Arc<[SocketAddr]>>,
    pub stats: Arc<CoreStats>,
    pub control: UnboundedReceiver<WorkerMsg>,
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
pub fn run(setup: WorkerSetup, started: std::sync::mpsc::Sender<Result<&'static str, String>>) {
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
        monoio::FusionRuntime::Uring(mut rt) => {
            let _ = started.send(Ok(driver_name(true)));
            rt.block_on(serve(setup));
        }
        monoio::FusionRuntime::Legacy(mut rt) => {
            let _ = started.send(Ok(driver_name(false)));
            rt.block_on(serve(setup));
        }
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

async fn serve(setup: WorkerSetup) {
    let WorkerSetup {
        id,
        workers,
        config,
        listeners,
        endpoints,
        stats,
        mut control,
        ..
    } = setup;
    let first = Reload {
        config: config.clone(),
        endpoints,
        generation: 0,
        done: None,
    };
    let ctx = CoreContext {
        id,
        workers,
        stats: stats.clone(),
    };
    let snapshot = Snapshot::build(&ctx, &first, None);
    let core = Rc::new(Core {
        id,
        workers,
        snapshot: RefCell::new(Rc::new(snapshot)),
        stats,
        drain: Drain::default(),
        rng: RefCell::new(fastrand::Rng::new()),
        connections: Cell::new(0),
        pool: crate::pool::Pool::default(),
        parked: crate::park::Parked::default(),
        freed: Cell::new(false),
    });
    for (index, std_listener) in listeners.into_iter().enumerate() {
        match TcpListener::from_std(std_listener) {
            Ok(listener) => {
                monoio::spawn(accept_loop(core.clone(), index, listener));
            }
            Err(e) => {
                warn!(worker = id, listener = %config.listeners[index].name, error = %e, "cannot register listener")
            }
        }
    }
    monoio::spawn(sweep_idle(core.clone()));

    let deadline = loop {
        match control.next().await {
            Some(WorkerMsg::Drain { deadline }) => break deadline,
            Some(WorkerMsg::Endpoints {
                generation,
                cluster,
                addrs,
            }) => {
                let snap = core.snapshot();
                // An update computed for a config this core has left
                // would name the wrong cluster.
                if snap.generation == generation {
                    if let Some(c) = snap.clusters.get(cluster) {
                        c.set_endpoints(&addrs);
                    }
                }
            }
            Some(WorkerMsg::Config(reload)) => core.swap(&reload),
            // The main thread is gone: drain with the configured timeout.
            None => break config.runtime.drain_timeout,
        }
    };
    drain(&core, deadline).await;
}

/// Stop accepting, close idle connections, and wait for busy ones to finish
/// until `deadline`.
async fn drain(core: &Core, deadline: Duration) {
    core.drain.start();
    let until = Instant::now() + deadline;
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
            let drain = core.drain.wait();
            let accept = listener.accept();
            monoio::select! {
                _ = drain => return,
                a = accept => a,
            }
        };
        match accepted {
            Ok((stream, peer)) => {
                // A new connection starts parked, as nginx does: no task
                // state and no buffer until its first byte arrives.
                let slot = crate::park::ConnSlot::open(core.clone(), index);
                let idle = core.snapshot().config.listeners[index].idle_timeout;
                let until = std::time::Instant::now() + idle;
                monoio::spawn(crate::park::park(slot, stream, peer, until));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(worker = core.id, error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// How often idle upstream connections past their timeout are closed and
/// the buffer pool is trimmed.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

async fn sweep_idle(core: Rc<Core>) {
    while !core.drain.is_draining() {
        monoio::time::sleep(SWEEP_INTERVAL).await;
        let now = Instant::now();
        for c in &core.snapshot().clusters {
            c.sweep(now);
        }
        if core.pool.trim() {
            core.freed.set(true);
        }
        core.parked.expire(now);
        if core.freed.replace(false) {
            crate::trim::release_free_memory();
        }
    }
}
