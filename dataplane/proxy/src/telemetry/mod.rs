//! Access logs and distributed tracing, kept off the request cores' cost.
//!
//! - `access_log`: a listener's line format (JSON, or Envoy's operators)
//!   and writing one line; `writer`: the thread that writes log buffers to
//!   files or stdout (SIGUSR1 reopens them).
//! - `trace`: W3C `traceparent` and `x-request-id`, parsed and made
//!   without allocation; `span`: a core's compact span record; `otlp`:
//!   the thread that exports spans to an OTLP/gRPC collector, encoded by
//!   `otlp_wire` straight into protobuf.
//! - `batch`: the per-core buffers both use, handed to those threads a
//!   batch at a time and dropped (counted) when the threads fall behind.
//! - `clock`: RFC 3339 start times.
//!
//! On the request path a core formats a line or a span record into its
//! own buffer: no lock, no channel send per item, no allocation in steady
//! state. Everything slow (file IO, protobuf, gRPC) happens on the two
//! threads, which never hold up a request.

pub mod access_log;
pub mod batch;
pub mod clock;
pub mod otlp;
pub mod otlp_wire;
pub mod span;
pub mod trace;
pub mod writer;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use batch::Outbox;
use otlp::Collector;
use writer::LogFile;

use crate::config::model::{Direction, Listener, Tracing};
use crate::metrics::Counter;

/// A core's ends of both pipes.
pub struct CoreTelemetry {
    logs: RefCell<Outbox<LogFile>>,
    spans: RefCell<Outbox<Collector>>,
}

impl CoreTelemetry {
    /// Ends whose consumers are gone (unit tests, tools): every batch is
    /// freed when shipped.
    pub fn detached() -> Self {
        let (_, mut logs) = batch::channels(1);
        let (_, mut spans) = batch::channels(1);
        CoreTelemetry {
            logs: RefCell::new(logs.remove(0)),
            spans: RefCell::new(spans.remove(0)),
        }
    }

    /// Hand every partly filled buffer to its thread (the core's sweep,
    /// and before the core stops).
    pub fn flush(&self) {
        self.logs.borrow_mut().flush();
        self.spans.borrow_mut().flush();
    }
}

/// The two threads.
pub struct Threads {
    logs: std::thread::JoinHandle<()>,
    spans: std::thread::JoinHandle<()>,
}

/// Start the writer and the exporter, with an end per core.
pub fn start(cores: usize) -> std::io::Result<(Threads, Vec<CoreTelemetry>)> {
    let (log_inbox, logs) = batch::channels(cores);
    let (span_inbox, spans) = batch::channels(cores);
    let threads = Threads {
        logs: writer::spawn(log_inbox)?,
        spans: otlp::spawn(span_inbox)?,
    };
    let ends = logs
        .into_iter()
        .zip(spans)
        .map(|(logs, spans)| CoreTelemetry {
            logs: RefCell::new(logs),
            spans: RefCell::new(spans),
        })
        .collect();
    Ok((threads, ends))
}

impl Threads {
    /// Once the cores have stopped (and flushed): give the threads up to
    /// `within` to write and export what is left. A writer stuck on a pipe
    /// nobody reads is left behind; the process is exiting.
    pub fn finish(self, within: Duration) {
        let until = Instant::now() + within;
        while Instant::now() < until && !(self.logs.is_finished() && self.spans.is_finished()) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The writer's and the exporter's scheduling priority (nice value): when
/// they share a CPU with a worker (a pinned sidecar), the worker's
/// requests come first and these catch up in its idle time; a worker
/// that never idles leaves them behind, and the cores drop lines and
/// spans (counted) rather than wait.
const THREAD_NICE: i32 = 10;

/// Lower the calling thread's priority to `THREAD_NICE`.
pub(crate) fn lower_priority(thread: &str) {
    let me = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(me), THREAD_NICE) {
        tracing::debug!(thread, error = %e, "cannot lower the thread's priority");
    }
}

/// Per-core counts of what the core could not hand over.
#[derive(Debug, Default)]
pub struct TelemetryStats {
    /// Log lines dropped because every buffer of the core was in flight.
    pub log_dropped: Counter,
    /// Spans dropped for the same reason.
    pub spans_dropped: Counter,
}

/// A finished request's (or TCP connection's) log line and span, as the
/// listener and the config ask. `trace` is the request's trace context,
/// when tracing is on.
pub fn record(
    core: &crate::worker::Core,
    listener: &Listener,
    tracing: Option<&Tracing>,
    trace: Option<&trace::TraceContext>,
    e: &access_log::Entry<'_>,
) {
    let stats = &core.stats.telemetry;
    if let Some(log) = &listener.access_log {
        let status = e.status.unwrap_or(0);
        let sampled = log.per_million >= 1_000_000
            || core.rng.borrow_mut().u32(..1_000_000) < log.per_million;
        if status >= log.min_status && sampled {
            let pushed = core
                .telemetry
                .logs
                .borrow_mut()
                .push(&log.file, |buf| access_log::write(&log.format, e, buf));
            if !pushed {
                stats.log_dropped.inc();
            }
        }
    }
    if let (Some(t), Some(ctx)) = (tracing, trace.filter(|c| c.sampled)) {
        let kind = match listener.direction {
            Direction::Inbound => span::Kind::Server,
            Direction::Outbound => span::Kind::Client,
        };
        let pushed = core
            .telemetry
            .spans
            .borrow_mut()
            .push(&t.collector, |buf| span::encode(ctx, kind, e, buf));
        if !pushed {
            stats.spans_dropped.inc();
        }
    }
}

/// The `/metrics` lines of access logs and spans: what was written or
/// exported, and what was dropped and why (cores' drops summed; the
/// threads' own are process-wide).
pub fn render_metrics(out: &mut String, cores: &[std::sync::Arc<crate::metrics::CoreStats>]) {
    use std::sync::atomic::Ordering::Relaxed;
    let sum = |f: fn(&TelemetryStats) -> &Counter| -> u64 {
        cores.iter().map(|c| f(&c.telemetry).get()).sum()
    };
    render_pair(
        out,
        ("ringmesh_access_log_lines_total", "Access log lines written."),
        "ringmesh_access_log_dropped_total",
        "Access log lines dropped: every buffer of a core in flight (buffer_full: the writer is behind), or a failed write.",
        [
            ("buffer_full", sum(|t| &t.log_dropped)),
            ("write_failed", writer::WRITE_FAILED.load(Relaxed)),
        ],
        writer::WRITTEN.load(Relaxed),
    );
    render_pair(
        out,
        ("ringmesh_spans_exported_total", "Spans the OTLP collector accepted."),
        "ringmesh_spans_dropped_total",
        "Sampled spans dropped: every buffer of a core in flight (buffer_full: the exporter is behind), or a failed export.",
        [
            ("buffer_full", sum(|t| &t.spans_dropped)),
            ("export_failed", otlp::EXPORT_FAILED.load(Relaxed)),
        ],
        otlp::EXPORTED.load(Relaxed),
    );
}

/// A counter of what got through, and one of what was dropped, by reason.
fn render_pair(
    out: &mut String,
    (name, help): (&str, &str),
    dropped_name: &str,
    dropped_help: &str,
    dropped: [(&str, u64); 2],
    through: u64,
) {
    use std::fmt::Write;
    crate::metrics::header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {through}");
    let name = dropped_name;
    crate::metrics::header(out, name, "counter", dropped_help);
    for (reason, n) in dropped {
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {n}");
    }
}
