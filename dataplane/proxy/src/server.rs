//! Process bootstrap: bind, start workers, wait for a signal, drain.
//!
//! Every socket (each worker's `SO_REUSEPORT` listener for every listener,
//! and the admin socket) is bound here, before any worker starts, so an
//! address in use or not available fails the start with a message naming the
//! listener, and nothing half-starts.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_channel::mpsc::{unbounded, UnboundedSender};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{error, info, warn};

use crate::admin::{self, AdminState};
use crate::config::model::Workers;
use crate::config::Config;
use crate::metrics::{CoreStats, WorkerInfo};
use crate::worker::{self, Reload, Reply, SnapshotStats, WorkerMsg, WorkerSetup};
use crate::{agent, dns, StartError};

/// Backlog per listener socket; the kernel caps it at somaxconn.
const BACKLOG: i32 = 4096;

/// What the main thread waits for once the proxy serves.
pub enum Event {
    Signal(i32),
    /// A validated snapshot from the control agent.
    Snapshot(agent::Snapshot),
}

impl From<agent::Snapshot> for Event {
    fn from(s: agent::Snapshot) -> Event {
        Event::Snapshot(s)
    }
}

/// Where the config comes from, and so what may replace it.
pub enum Source {
    /// A file (`None`: the built-in example); SIGHUP re-reads it.
    File(Option<PathBuf>),
    /// The control plane: the agent sends snapshots as events, and
    /// reports traffic read from `stats` (given the cores' counters here).
    ControlPlane {
        version: String,
        stats: Arc<crate::report::StatsSource>,
    },
}

/// The channel the main thread waits on: signals and snapshots.
pub type Events = (mpsc::Sender<Event>, mpsc::Receiver<Event>);

/// Run the proxy until SIGTERM or SIGINT, then drain and return. New
/// configs (SIGHUP for a file, snapshots from the control plane) are
/// swapped in on every core without dropping a request.
pub fn run(config: Arc<Config>, source: Source, events: Events) -> Result<(), StartError> {
    let placement = placement(&config);
    let workers = placement.len();

    // Catch signals from now on, so one during startup still drains cleanly.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
        .map_err(StartError::Signals)?;

    let mut sockets: Vec<Vec<TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound_addrs = Vec::with_capacity(config.listeners.len());
    for l in &config.listeners {
        let bound = bind_reuseport(l.address, workers).map_err(|e| StartError::Bind {
            what: format!("listener `{}`", l.name),
            addr: l.address,
            source: e,
        })?;
        let actual = bound[0].local_addr().unwrap_or(l.address);
        info!(listener = %l.name, address = %actual, sockets = workers, "listener bound");
        bound_addrs.push(actual);
        for (w, s) in bound.into_iter().enumerate() {
            sockets[w].push(s);
        }
    }
    let admin_socket = match config.admin {
        Some(addr) => {
            let s = TcpListener::bind(addr).map_err(|e| StartError::Bind {
                what: "admin".into(),
                addr,
                source: e,
            })?;
            info!(address = %s.local_addr().unwrap_or(addr), "admin bound");
            Some(s)
        }
        None => None,
    };

    let endpoints = dns::resolve_all(&config);
    let stats: Vec<Arc<CoreStats>> = (0..workers)
        .map(|_| Arc::new(CoreStats::for_config(&config)))
        .collect();
    let admin_state = Arc::new(AdminState::new(config.clone(), stats.clone()));
    if let Source::ControlPlane {
        version,
        stats: report,
    } = &source
    {
        admin_state.set_config(config.clone(), version.clone());
        report.set_cores(stats.clone());
    }
    let admin_thread = admin_socket
        .map(|s| admin::spawn(s, admin_state.clone()))
        .transpose()
        .map_err(StartError::Admin)?;

    let (telemetry, mut telemetry_ends) =
        crate::telemetry::start(workers).map_err(StartError::Thread)?;
    let (started_tx, started_rx) = mpsc::channel();
    let mut controls: Vec<UnboundedSender<WorkerMsg>> = Vec::with_capacity(workers);
    let mut threads: Vec<JoinHandle<()>> = Vec::with_capacity(workers);
    let mut peers = crate::balance::share::connect(workers).into_iter();
    let mut health = crate::health::connect(workers).into_iter();
    for (id, (listeners, cpu)) in sockets
        .into_iter()
        .zip(placement.iter().copied())
        .enumerate()
    {
        let (tx, rx) = unbounded();
        controls.push(tx);
        let setup = WorkerSetup {
            id,
            workers,
            cpu,
            io: config.runtime.io,
            config: config.clone(),
            listeners,
            endpoints: endpoints.clone(),
            stats: stats[id].clone(),
            control: rx,
            telemetry: telemetry_ends.remove(0),
            peers: peers
                .next()
                .ok_or_else(|| StartError::Runtime("fewer inboxes than workers".into()))?,
            health: health
                .next()
                .ok_or_else(|| StartError::Runtime("fewer health links than workers".into()))?,
        };
        let started = started_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ringmesh-w{id}"))
            .spawn(move || worker::run(setup, started))
            .map_err(StartError::Thread)?;
        threads.push(thread);
    }
    drop(started_tx);

    let mut infos = Vec::with_capacity(workers);
    for (id, cpu) in placement.iter().copied().enumerate() {
        match started_rx.recv() {
            Ok(Ok(driver)) => {
                let cpu_text = cpu.map_or_else(|| "unpinned".to_string(), |c| c.to_string());
                info!(worker = id, cpu = %cpu_text, driver, "worker started");
                infos.push(WorkerInfo { id, cpu, driver });
            }
            Ok(Err(msg)) => {
                stop(&controls, threads, Duration::ZERO, Duration::ZERO);
                return Err(StartError::Runtime(msg));
            }
            Err(_) => {
                stop(&controls, threads, Duration::ZERO, Duration::ZERO);
                return Err(StartError::Runtime("a worker exited during startup".into()));
            }
        }
    }
    infos.sort_by_key(|w| w.id);
    admin_state.set_workers(infos);
    let refresher = dns::spawn_refresher(&config, 0, endpoints, controls.clone());
    admin_state.ready.store(true, Ordering::Release);
    info!(workers, "ringmesh-proxy ready");
    if let Some(hint) = try_hint(&config, &bound_addrs) {
        info!("try: {hint}");
    }

    let (events_tx, events) = events;
    std::thread::Builder::new()
        .name("ringmesh-signals".into())
        .spawn(move || {
            for s in signals.forever() {
                if events_tx.send(Event::Signal(s)).is_err() {
                    return;
                }
            }
        })
        .map_err(StartError::Thread)?;
    let mut live = Live {
        current: config.clone(),
        generation: 0,
        controls: controls.clone(),
        stats: stats.clone(),
        refresher,
        admin: admin_state.clone(),
        confirm_within: CONFIRM_WITHIN,
    };
    let signal = loop {
        match events.recv() {
            Ok(Event::Signal(SIGHUP)) => {
                match &source {
                    Source::File(path) => {
                        match reload(path.as_deref()).and_then(|new| live.apply(new, None)) {
                            Ok(()) => info!(generation = live.generation, "config reloaded"),
                            Err(e) => {
                                crate::metrics::config_updates::rejected();
                                error!("config reload rejected; the running config stays in force:\n{e}")
                            }
                        }
                    }
                    Source::ControlPlane { .. } => {
                        warn!("SIGHUP ignored: the config comes from the control plane")
                    }
                }
            }
            Ok(Event::Signal(SIGUSR1)) => {
                info!("SIGUSR1: reopening access log files");
                crate::telemetry::writer::reopen();
            }
            Ok(Event::Signal(other)) => break Some(other),
            Ok(Event::Snapshot(snap)) => {
                let result = live.apply(snap.config, Some(snap.version.clone()));
                if result.is_ok() {
                    info!(version = %snap.version, "snapshot in force on every core");
                }
                let _ = snap.reply.send(result);
            }
            Err(_) => break None,
        }
    };
    let refresher = live.refresher.take();
    // SIGTERM is an orchestrator stopping the proxy: load balancers need
    // the drain delay to stop sending. SIGINT is a person at a terminal.
    // Runtime settings are the ones the proxy started with.
    let delay = match signal {
        Some(SIGTERM) => config.runtime.drain_delay,
        _ => Duration::ZERO,
    };
    let timeout = config.runtime.drain_timeout;
    info!(signal = ?signal, drain_delay = ?delay, drain_timeout = ?timeout, "draining");
    admin_state.ready.store(false, Ordering::Release);
    if let Some(r) = refresher {
        r.stop();
    }
    stop(&controls, threads, delay, timeout);
    // The cores flushed their last lines and spans as they stopped.
    telemetry.finish(TELEMETRY_FINISH);
    drop(admin_thread);
    info!("stopped");
    Ok(())
}

/// Read and check the config file again.
fn reload(source: Option<&Path>) -> Result<Arc<Config>, String> {
    let path = source.ok_or("started on the built-in example: no file to reload")?;
    crate::config::load(path)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// The running proxy's config state on the main thread.
struct Live {
    current: Arc<Config>,
    generation: u64,
    controls: Vec<UnboundedSender<WorkerMsg>>,
    /// Each core's counters, to find the new config's by name here rather
    /// than on the cores.
    stats: Vec<Arc<CoreStats>>,
    refresher: Option<dns::Refresher>,
    admin: Arc<AdminState>,
    /// How long every core gets to build a new config, and to switch to it.
    confirm_within: Duration,
}

/// A core finishes the step it is in first, which takes microseconds; a
/// core that takes seconds to stage or commit a config is stuck.
const CONFIRM_WITHIN: Duration = Duration::from_secs(5);

/// At exit, how long the log writer and the span exporter get to write
/// and export what the cores left them.
const TELEMETRY_FINISH: Duration = Duration::from_secs(2);

impl Live {
    /// Swap every core to `new`. Listeners are bound once, at start, so
    /// the listener set must stay as it is; runtime and admin changes are
    /// reported and wait for a restart. `version` names it in
    /// `/config_dump` (`reload-N` when None).
    fn apply(&mut self, new: Arc<Config>, version: Option<String>) -> Result<(), String> {
        let names = |c: &Config| -> Vec<(String, SocketAddr)> {
            c.listeners
                .iter()
                .map(|l| (l.name.clone(), l.address))
                .collect()
        };
        if names(&new) != names(&self.current) {
            return Err(format!(
                "listeners (names and addresses) changed; that needs a restart. Running: {:?}, new: {:?}",
                names(&self.current),
                names(&new)
            ));
        }
        if new.runtime != self.current.runtime || new.admin != self.current.admin {
            warn!("runtime and admin settings take effect at the next restart");
        }
        self.generation += 1;
        let generation = self.generation;
        let endpoints = dns::resolve_all(&new);
        let stats = self
            .stats
            .iter()
            .map(|s| SnapshotStats::for_config(s, &new))
            .collect();
        let (replies, confirmations) = mpsc::channel();
        let msg = Arc::new(Reload {
            config: new.clone(),
            endpoints: endpoints.clone(),
            generation,
            stats,
            replies,
        });
        // Stage on every core, then commit on every core: a config is
        // either in force everywhere or nowhere.
        for c in &self.controls {
            let _ = c.unbounded_send(WorkerMsg::Stage(msg.clone()));
        }
        drop(msg);
        let staged = self.confirmations(
            &confirmations,
            |r| matches!(r, Reply::Staged { generation: g, .. } if g == generation),
        );
        if let Err(missing) = staged {
            for c in &self.controls {
                let _ = c.unbounded_send(WorkerMsg::Abort(generation));
            }
            return Err(format!(
                "worker(s) {missing:?} did not stage the config within {:?}; nothing changed",
                self.confirm_within
            ));
        }
        for c in &self.controls {
            let _ = c.unbounded_send(WorkerMsg::Commit(generation));
        }
        let committed = self.confirmations(
            &confirmations,
            |r| matches!(r, Reply::Committed { generation: g, .. } if g == generation),
        );
        // From here the new config is what the cores run, or will once a
        // stuck one catches up: the rest of the process follows it.
        if let Some(r) = self.refresher.take() {
            r.stop();
        }
        self.refresher = dns::spawn_refresher(&new, generation, endpoints, self.controls.clone());
        let version = version.unwrap_or_else(|| format!("reload-{generation}"));
        self.admin.set_config(new.clone(), version);
        crate::metrics::config_updates::applied();
        self.current = new;
        committed.map_err(|missing| {
            format!(
                "worker(s) {missing:?} did not confirm the switch within {:?}; the others run the new config",
                self.confirm_within
            )
        })
    }

    /// Wait for one matching reply per core; the cores that did not answer
    /// in time, if any.
    fn confirmations(
        &self,
        replies: &mpsc::Receiver<Reply>,
        matches: impl Fn(Reply) -> bool,
    ) -> Result<(), Vec<usize>> {
        let deadline = Instant::now() + self.confirm_within;
        let mut confirmed = vec![false; self.controls.len()];
        while confirmed.iter().any(|c| !c) {
            let left = deadline.saturating_duration_since(Instant::now());
            match replies.recv_timeout(left) {
                Ok(r) if matches(r) => {
                    let (Reply::Staged { core, .. } | Reply::Committed { core, .. }) = r;
                    if let Some(c) = confirmed.get_mut(core) {
                        *c = true;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let missing: Vec<usize> = (0..confirmed.len()).filter(|&i| !confirmed[i]).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        }
    }
}

/// A `curl` command that reaches a direct-response route, so a user who
/// just started the proxy sees a request go through it.
fn try_hint(config: &Config, bound: &[SocketAddr]) -> Option<String> {
    use crate::config::model::{Action, PathMatch};
    config.listeners.iter().zip(bound).find_map(|(l, addr)| {
        l.routes.iter().find_map(|r| {
            let path = match (&r.action, &r.matcher.path, &r.matcher.host) {
                (Action::Direct { .. }, PathMatch::Exact(p) | PathMatch::Prefix(p), None) => {
                    String::from_utf8_lossy(p).into_owned()
                }
                (Action::Direct { .. }, PathMatch::Any, None) => "/".to_string(),
                _ => return None,
            };
            // `-k`: the hint shows the route answering; the certificate
            // is the user's to trust (`--cacert`).
            Some(match l.tls {
                Some(_) => format!("curl -ik https://{addr}{path}"),
                None => format!("curl -i http://{addr}{path}"),
            })
        })
    })
}

fn stop(
    controls: &[UnboundedSender<WorkerMsg>],
    threads: Vec<JoinHandle<()>>,
    delay: Duration,
    timeout: Duration,
) {
    for c in controls {
        let _ = c.unbounded_send(WorkerMsg::Drain { delay, timeout });
    }
    for t in threads {
        if t.join().is_err() {
            error!("a worker thread panicked");
        }
    }
}

/// The CPU each worker is pinned to. `workers: auto` is one worker per CPU
/// in the process's affinity mask; `cpu_affinity` lists CPUs explicitly.
fn placement(config: &Config) -> Vec<Option<usize>> {
    let available: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default();
    let rt = &config.runtime;
    let count = match rt.workers {
        Workers::Count(n) => n,
        Workers::Auto => match &rt.cpu_affinity {
            Some(cpus) => cpus.len(),
            None => available.len().max(1),
        },
    };
    (0..count)
        .map(|i| match &rt.cpu_affinity {
            Some(cpus) => Some(cpus[i % cpus.len()]),
            None if available.is_empty() => None,
            None => Some(available[i % available.len()]),
        })
        .inspect(|cpu| {
            if let Some(c) = cpu {
                if !available.is_empty() && !available.contains(c) {
                    warn!(
                        cpu = c,
                        "cpu_affinity names a CPU outside this process's affinity mask"
                    );
                }
            }
        })
        .collect()
}

/// Bind `n` sockets to `addr` with SO_REUSEPORT, so the kernel spreads
/// connections across workers with no shared accept queue. Port 0 takes the
/// port the first socket got for the others.
fn bind_reuseport(addr: SocketAddr, n: usize) -> std::io::Result<Vec<TcpListener>> {
    let mut out: Vec<TcpListener> = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        let listener: TcpListener = socket.into();
        if addr.port() == 0 {
            addr = listener.local_addr()?;
        }
        out.push(listener);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuseport_sockets_share_one_port() {
        let socks = bind_reuseport("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let port = socks[0].local_addr().unwrap().port();
        assert!(socks.iter().all(|s| s.local_addr().unwrap().port() == port));
    }

    #[test]
    fn binding_a_port_held_without_reuseport_fails() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = bind_reuseport(held.local_addr().unwrap(), 2).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    }

    /// A stand-in for a worker thread: answers stage and commit like a
    /// core (or never, when `stuck`), and records what it was told.
    fn fake_core(
        id: usize,
        stuck: bool,
    ) -> (
        UnboundedSender<WorkerMsg>,
        std::thread::JoinHandle<Vec<&'static str>>,
    ) {
        let (tx, mut rx) = unbounded::<WorkerMsg>();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut staged: Option<Arc<Reload>> = None;
            loop {
                match rx.try_recv() {
                    Ok(WorkerMsg::Stage(r)) => {
                        seen.push("stage");
                        if !stuck {
                            let _ = r.replies.send(Reply::Staged {
                                core: id,
                                generation: r.generation,
                            });
                        }
                        staged = Some(r);
                    }
                    Ok(WorkerMsg::Commit(g)) => {
                        seen.push("commit");
                        if let Some(r) = staged.take() {
                            let _ = r.replies.send(Reply::Committed {
                                core: id,
                                generation: g,
                            });
                        }
                    }
                    Ok(WorkerMsg::Abort(_)) => {
                        seen.push("abort");
                        staged = None;
                    }
                    Ok(_) => {}
                    Err(futures_channel::mpsc::TryRecvError::Closed) => return seen,
                    Err(futures_channel::mpsc::TryRecvError::Empty) => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                }
            }
        });
        (tx, thread)
    }

    fn live(cores: &[bool]) -> (Live, Vec<std::thread::JoinHandle<Vec<&'static str>>>) {
        let config = Arc::new(
            crate::config::parse("listeners: [ { name: l, address: '127.0.0.1:0' } ]\n", "t")
                .unwrap(),
        );
        let stats: Vec<Arc<CoreStats>> = cores
            .iter()
            .map(|_| Arc::new(CoreStats::for_config(&config)))
            .collect();
        let (controls, threads): (Vec<_>, Vec<_>) = cores
            .iter()
            .enumerate()
            .map(|(i, &stuck)| fake_core(i, stuck))
            .unzip();
        let live = Live {
            current: config.clone(),
            generation: 0,
            controls,
            admin: Arc::new(AdminState::new(config, stats.clone())),
            stats,
            refresher: None,
            confirm_within: Duration::from_millis(200),
        };
        (live, threads)
    }

    fn next_config() -> Arc<Config> {
        Arc::new(
            crate::config::parse(
                "listeners: [ { name: l, address: '127.0.0.1:0', routes: [ { direct_response: { status: 204 } } ] } ]\n",
                "t",
            )
            .unwrap(),
        )
    }

    #[test]
    fn a_config_is_committed_only_once_every_core_staged_it() {
        let (mut live, threads) = live(&[false, false]);
        assert_eq!(live.apply(next_config(), Some("v1".into())), Ok(()));
        assert_eq!(live.current.listeners[0].routes.len(), 1);
        drop(live);
        for t in threads {
            assert_eq!(t.join().unwrap(), ["stage", "commit"]);
        }
    }

    #[test]
    fn a_core_that_does_not_stage_in_time_aborts_the_config_everywhere() {
        // Before stage/commit, a swap was confirmed ("ok", an ACK to the
        // control plane) even when a core had not taken it.
        let (mut live, threads) = live(&[false, true]);
        let err = live.apply(next_config(), Some("v1".into())).unwrap_err();
        assert!(err.contains("worker(s) [1] did not stage"), "{err}");
        assert!(
            live.current.listeners[0].routes.is_empty(),
            "the old config stays"
        );
        drop(live);
        let seen: Vec<Vec<&str>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(seen, [vec!["stage", "abort"], vec!["stage", "abort"]]);
    }

    #[test]
    fn explicit_affinity_pins_in_order() {
        let config = crate::config::parse(
            "runtime: { workers: 3, cpu_affinity: [1, 0] }\nlisteners: [ { name: l, address: '127.0.0.1:0' } ]\n",
            "t",
        )
        .unwrap();
        assert_eq!(placement(&config), vec![Some(1), Some(0), Some(1)]);
    }
}
