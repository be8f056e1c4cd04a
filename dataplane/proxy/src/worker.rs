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
use crate::metrics::CoreStats;

/// Messages from the main thread to a worker.
#[derive(Debug)]
pub enum WorkerMsg {
    /// Stop accepting, finish in-flight requests, exit by the deadline.
    Drain { deadline: Duration },
    /// A cluster's endpoints changed (DNS refresh).
    Endpoints {
        cluster: usize,
        addrs: Arc<[SocketAddr]>,
    },
}

/// The config a request runs on, with this core's state built from it. A
/// request holds an `Rc` of the snapshot it started with.
pub struct Snapshot {
    pub config: Arc<Config>,
    pub clusters: Vec<ClusterState>,
}

/// Per-core context shared by every connection task on the core.
pub struct Core {
    pub id: usize,
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
    let clusters = config
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let stats = Arc::new(StatsRef {
                core: stats.clone(),
                index: i,
            });
            ClusterState::new(c, &endpoints[i], id, workers, stats)
        })
        .collect();
    let core = Rc::new(Core {
        id,
        snapshot: RefCell::new(Rc::new(Snapshot {
            config: config.clone(),
            clusters,
        })),
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
            Some(WorkerMsg::Endpoints { cluster, addrs }) => {
                if let Some(c) = core.snapshot().clusters.get(cluster) {
                    c.set_endpoints(&addrs);
                }
            }
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
