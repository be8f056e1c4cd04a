//! `ringmesh-bench load`: drives HTTP/1.1 requests at a server.
//!
//! Closed loop: each connection sends its next request (or pipelined
//! batch) when the last response ends; the server's speed sets the rate,
//! which gives peak throughput. Open loop (`rate`): each connection sends
//! on a fixed schedule (see [`crate::schedule`]) and latency is measured
//! from the intended send time, so stalls are not hidden.
//!
//! Threads are monoio runtimes, each with its own connections and its own
//! histogram; nothing is shared on the request path but a stop flag and a
//! per-thread progress counter. Histograms are merged at the end.
//!
//! Over HTTP/2 (`h2`) each connection carries `streams` concurrent
//! streams, each looping like an HTTP/1.1 connection would: closed loop,
//! or its own share of the open loop's schedule (so the N × M streams'
//! arrivals are evenly spread and latency still counts from each due
//! time). A connection that gets a GOAWAY or breaks is opened again, and
//! the requests it did not send go on the new one, late but timed from
//! when they were due. RST_STREAM, GOAWAY and (with gRPC) a non-zero
//! `grpc-status` are errors of their own kinds. The connection's
//! handshake happens before its streams' first requests.
//!
//! Over TLS ([`run_with_tls`]) each connection's handshake is part of its
//! first request: measured in that request's latency (so with
//! `new_connection` every sample includes a full handshake), and counted
//! as a `handshake` error when it fails.

mod conn;
mod h2conn;
pub mod report;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use report::{ErrorCounts, LoadReport};

use crate::hist::Latency;
use crate::http::RequestSpec;
use crate::runtime::{self, IoMode};
use crate::tls::{ClientTls, TlsSummary};

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub addr: SocketAddr,
    pub request: RequestSpec,
    pub connections: usize,
    pub threads: usize,
    pub cpus: Vec<usize>,
    pub duration: Duration,
    pub warmup: Duration,
    /// Open loop at this many requests/s in total; closed loop when None.
    pub rate: Option<f64>,
    /// Requests written back to back per connection (closed loop,
    /// HTTP/1.1).
    pub pipeline: usize,
    /// A new connection for every request.
    pub new_connection: bool,
    /// Longest wait for a connection or a response.
    pub timeout: Duration,
    pub io: IoMode,
    /// Speak HTTP/2 (None: HTTP/1.1).
    pub h2: Option<H2Load>,
}

/// How the load speaks HTTP/2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Load {
    /// Concurrent streams per connection: each is a client of its own,
    /// closed loop or on its own share of the open loop's schedule.
    pub streams: usize,
    /// Send gRPC Echo.Unary calls with this many payload bytes instead of
    /// the request spec's method and body.
    pub grpc: Option<usize>,
}

impl Default for H2Load {
    fn default() -> Self {
        H2Load {
            streams: 1,
            grpc: None,
        }
    }
}

impl LoadOptions {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(h2) = &self.h2 {
            if h2.streams == 0 {
                return Err("--streams must be at least 1".into());
            }
            if self.pipeline > 1 {
                return Err(
                    "--pipeline is HTTP/1.1's; over HTTP/2 use --streams for requests in flight per connection"
                        .into(),
                );
            }
            if self.new_connection {
                return Err("--new-connection is not supported with --h2 yet".into());
            }
            if h2.grpc.is_some() && self.request.body_size > 0 {
                return Err("--body-size does not apply to --grpc; use --grpc-payload".into());
            }
            h2conn::check(&self.request)?;
        }
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be above 0".into());
        }
        if let Some(r) = self.rate {
            if !(r > 0.0 && r.is_finite()) {
                return Err(format!("--rate must be a positive number, got {r}"));
            }
            if self.pipeline > 1 {
                return Err("--pipeline applies to the closed loop only; drop it or --rate".into());
            }
        }
        if self.pipeline > 1 && self.new_connection {
            return Err("--pipeline and --new-connection exclude each other".into());
        }
        if self.pipeline == 0 {
            return Err("--pipeline must be at least 1".into());
        }
        Ok(())
    }
}

/// Shared between the load threads and whoever watches them.
pub struct Control {
    /// Set by Ctrl-C (or the caller) to end the run early.
    pub stop: Arc<AtomicBool>,
    progress: Vec<Slot>,
}

/// One thread's completed-request count, on its own cache line.
#[repr(align(128))]
#[derive(Default)]
struct Slot(AtomicU64);

impl Control {
    fn new(threads: usize, stop: Arc<AtomicBool>) -> Arc<Control> {
        Arc::new(Control {
            stop,
            progress: (0..threads).map(|_| Slot::default()).collect(),
        })
    }

    /// Requests completed so far, warm-up included.
    pub fn completed(&self) -> u64 {
        self.progress
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// What one thread measured.
#[derive(Default)]
pub struct ThreadStats {
    pub latency: Latency,
    pub requests: u64,
    pub ok: u64,
    pub statuses: [u64; 6],
    pub bytes_read: u64,
    pub errors: ErrorCounts,
    /// Handshakes (None: plain TCP).
    pub tls: Option<TlsSummary>,
}

impl ThreadStats {
    fn merge(&mut self, o: &ThreadStats) {
        self.latency.merge(&o.latency);
        self.requests += o.requests;
        self.ok += o.ok;
        for (a, b) in self.statuses.iter_mut().zip(o.statuses) {
            *a += b;
        }
        self.bytes_read += o.bytes_read;
        self.errors.add(&o.errors);
        match (&mut self.tls, &o.tls) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, Some(theirs)) => *mine = Some(theirs.clone()),
            (_, None) => {}
        }
    }
}

/// Observer of a run in progress (progress bar, phase markers).
pub trait Watch {
    /// Called about every 100 ms with the time since start.
    fn tick(&mut self, _elapsed: Duration, _completed: u64) {}
    /// Warm-up is over; measurement starts.
    fn measuring(&mut self) {}
    /// The measured window is over (in-flight requests still finish).
    fn measured(&mut self) {}
}

impl Watch for () {}

/// Run the load over plain TCP; blocks until it ends (duration, or `stop`).
pub fn run(
    opts: &LoadOptions,
    stop: Arc<AtomicBool>,
    watch: &mut dyn Watch,
) -> std::io::Result<LoadReport> {
    run_with_tls(opts, None, stop, watch)
}

/// Run the load, over TLS when `tls` is given; blocks until it ends.
pub fn run_with_tls(
    opts: &LoadOptions,
    tls: Option<&ClientTls>,
    stop: Arc<AtomicBool>,
    watch: &mut dyn Watch,
) -> std::io::Result<LoadReport> {
    opts.validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let threads = opts.threads.clamp(1, opts.connections);
    let control = Control::new(threads, stop.clone());
    let start = Instant::now();
    let plan = Arc::new(conn::Plan::new(opts, tls.cloned(), start, threads));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut handles = Vec::new();
    for t in 0..threads {
        let (plan, control, ready_tx) = (plan.clone(), control.clone(), ready_tx.clone());
        let cpu = runtime::cpu_for(&opts.cpus, t);
        let io = opts.io;
        handles.push(
            std::thread::Builder::new()
                .name(format!("load-{t}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        let _ = runtime::pin_current(&[cpu]);
                    }
                    runtime::block_on(io, |uring| {
                        let _ = ready_tx.send(uring);
                        conn::thread_main(plan, control, t, uring)
                    })
                })?,
        );
    }
    drop(ready_tx);
    // One message per thread (a thread that failed to start sends none and
    // drops its sender; its error comes out of join below).
    let started: Vec<bool> = (0..threads).map_while(|_| ready_rx.recv().ok()).collect();
    let uring = started.iter().all(|u| *u);

    let measure_from = plan.measure_from;
    let mut cpu_at_measure = None;
    let mut stopped_at = None;
    loop {
        let now = Instant::now();
        if cpu_at_measure.is_none() && now >= measure_from {
            cpu_at_measure = Some(process_cpu());
            watch.measuring();
        }
        if stopped_at.is_none() && (now >= plan.end || stop.load(Ordering::Relaxed)) {
            stopped_at = Some(now.min(plan.end));
            stop.store(true, Ordering::Relaxed);
            watch.measured();
        }
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
        watch.tick(now - start, control.completed());
        std::thread::sleep(
            Duration::from_millis(100).min(
                plan.end
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
            ),
        );
    }
    let cpu_end = process_cpu();
    let mut total = ThreadStats::default();
    for h in handles {
        match h.join() {
            Ok(Ok(Ok(stats))) => total.merge(&stats),
            Ok(Ok(Err(e)) | Err(e)) => return Err(e),
            Err(_) => return Err(std::io::Error::other("a load thread panicked")),
        }
    }
    let stopped_at = stopped_at.unwrap_or(plan.end);
    let window = stopped_at.saturating_duration_since(measure_from);
    let cpu = cpu_at_measure.map_or(0.0, |c| (cpu_end - c).max(0.0));
    Ok(LoadReport::new(
        opts,
        threads,
        uring,
        window,
        stopped_at < plan.end,
        cpu,
        &total,
    ))
}

/// CPU seconds this process has used (all threads).
pub fn process_cpu() -> f64 {
    crate::procfs::cpu_seconds(std::process::id()).unwrap_or(0.0)
}
