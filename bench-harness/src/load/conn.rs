//! The load's connections: one task each, looping request by request.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use super::{Control, LoadOptions, ThreadStats};
use crate::http::{read_response, ReadBuf, ReadError, Response};
use crate::pace::Pacer;
use crate::schedule::Schedule;
use crate::stream::Stream;
use crate::tls::{ClientTls, TlsStream, TlsSummary};

/// Everything every thread needs, fixed before the run.
pub struct Plan {
    pub opts: LoadOptions,
    /// Over HTTP/2: each request's head and body, made once.
    pub h2: Option<super::h2conn::H2Plan>,
    /// Connect over TLS with this (each thread takes its own copy).
    pub tls: Option<ClientTls>,
    /// The request bytes (pipeline copies), leaked once per run so io_uring
    /// can own a `&'static` view with no copy per request.
    pub wire: &'static [u8],
    pub start: Instant,
    pub measure_from: Instant,
    pub end: Instant,
    pub threads: usize,
}

impl Plan {
    pub fn new(opts: &LoadOptions, tls: Option<ClientTls>, start: Instant, threads: usize) -> Plan {
        let wire = Box::leak(opts.request.encode(opts.pipeline).into_boxed_slice());
        let measure_from = start + opts.warmup;
        // Over HTTP/2 the client offers only `h2` in ALPN.
        let tls = match opts.h2 {
            Some(_) => tls.map(|t| t.for_h2()),
            None => tls,
        };
        let h2 = opts
            .h2
            .as_ref()
            .map(|h| super::h2conn::H2Plan::new(&opts.request, h, tls.is_some()));
        Plan {
            opts: opts.clone(),
            h2,
            tls,
            wire,
            start,
            measure_from,
            end: measure_from + opts.duration,
            threads,
        }
    }
}

pub(super) struct Thread {
    pub(super) plan: Arc<Plan>,
    control: Arc<Control>,
    index: usize,
    pub(super) uring: bool,
    /// This thread's TLS client (its own session cache).
    tls: Option<ClientTls>,
    stats: RefCell<ThreadStats>,
}

impl Thread {
    pub(super) fn stopping(&self) -> bool {
        self.control.stop.load(Ordering::Relaxed)
    }

    /// Whether what started (or was due) at `t0` is in the measured window.
    fn in_window(&self, t0: Instant) -> bool {
        t0 >= self.plan.measure_from && t0 < self.plan.end
    }

    /// Count one finished exchange, started (or due) at `t0`.
    pub(super) fn record(&self, t0: Instant, result: &Result<Response, Failure>) {
        self.control.progress[self.index]
            .0
            .fetch_add(1, Ordering::Relaxed);
        if !self.in_window(t0) {
            return;
        }
        let mut s = self.stats.borrow_mut();
        match result {
            Ok(r) => {
                s.latency.record(t0.elapsed());
                s.requests += 1;
                s.bytes_read += r.body_bytes;
                let class = (r.status / 100).min(5) as usize;
                s.statuses[class] += 1;
                if r.status < 400 {
                    s.ok += 1;
                } else {
                    s.errors.status += 1;
                }
            }
            Err(Failure::Connect) => s.errors.connect += 1,
            Err(Failure::Timeout) => s.errors.timeout += 1,
            Err(Failure::Reset) => s.errors.reset += 1,
            Err(Failure::Protocol) => s.errors.protocol += 1,
            Err(Failure::Handshake) => s.errors.handshake += 1,
            Err(Failure::RstStream) => s.errors.rst_stream += 1,
            Err(Failure::GoAway) => s.errors.goaway += 1,
            Err(Failure::Grpc { body_bytes }) => {
                // An answer, but a failed call: timed like any response.
                s.latency.record(t0.elapsed());
                s.requests += 1;
                s.bytes_read += body_bytes;
                s.statuses[2] += 1;
                s.errors.grpc += 1;
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Failure {
    Connect,
    Timeout,
    Reset,
    Protocol,
    Handshake,
    /// HTTP/2: the stream was reset.
    RstStream,
    /// HTTP/2: the connection's GOAWAY failed the stream.
    GoAway,
    /// gRPC: a 200 whose `grpc-status` is not 0.
    Grpc {
        body_bytes: u64,
    },
}

impl From<ReadError> for Failure {
    fn from(e: ReadError) -> Failure {
        match e {
            ReadError::Malformed(_) => Failure::Protocol,
            ReadError::Io(e) if e.kind() == io::ErrorKind::TimedOut => Failure::Timeout,
            ReadError::Closed | ReadError::Io(_) => Failure::Reset,
        }
    }
}

/// Run this thread's share of the connections; returns what it measured.
pub async fn thread_main(
    plan: Arc<Plan>,
    control: Arc<Control>,
    index: usize,
    uring: bool,
) -> io::Result<ThreadStats> {
    let t = Rc::new(Thread {
        plan: plan.clone(),
        control,
        index,
        uring,
        tls: plan.tls.as_ref().map(ClientTls::for_thread),
        stats: RefCell::new(ThreadStats {
            tls: plan.tls.is_some().then(TlsSummary::default),
            ..ThreadStats::default()
        }),
    });
    let conns = plan.opts.connections;
    let mut tasks = Vec::new();
    // Connection i belongs to thread i % threads.
    for c in (index..conns).step_by(plan.threads) {
        let t = t.clone();
        tasks.push(monoio::spawn(async move {
            if t.plan.h2.is_some() {
                return super::h2conn::connection(&t, c, conns).await;
            }
            match t.plan.opts.rate {
                Some(rate) => paced(&t, Schedule::new(t.plan.start, rate, c, conns)).await,
                None => closed(&t).await,
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let stats = std::mem::take(&mut *t.stats.borrow_mut());
    Ok(stats)
}

struct Conn {
    io: Stream,
    rb: ReadBuf,
}

/// Connect, and over TLS complete the handshake, for a request started
/// (or due) at `t0`; the timeout bounds both together.
async fn connect(t: &Thread, t0: Instant) -> Result<Conn, Failure> {
    let io = match monoio::time::timeout(t.plan.opts.timeout, open(t, t0)).await {
        Ok(io) => io?,
        Err(_) => return Err(Failure::Timeout),
    };
    Ok(Conn {
        io,
        rb: ReadBuf::new(16 * 1024),
    })
}

pub(super) async fn open(t: &Thread, t0: Instant) -> Result<Stream, Failure> {
    let io = TcpStream::connect(t.plan.opts.addr)
        .await
        .map_err(|_| Failure::Connect)?;
    let _ = io.set_nodelay(true);
    let Some(tls) = &t.tls else {
        return Ok(Stream::Plain(io));
    };
    let conn = tls.connection().map_err(|_| Failure::Handshake)?;
    let mut io = TlsStream::new(io, conn);
    // Any failure before the handshake ends (bad certificate, an alert,
    // the server closing or resetting) is the handshake's.
    io.handshake().await.map_err(|_| Failure::Handshake)?;
    if let Some(summary) = &mut t.stats.borrow_mut().tls {
        summary.record(io.tls(), t.in_window(t0));
    }
    Ok(Stream::Tls(Box::new(io)))
}

/// Write the request (or pipelined batch) and read `n` responses, calling
/// `done` for each. Returns whether the connection can be reused.
async fn exchange(t: &Thread, c: &mut Conn, t0: Instant) -> bool {
    let res = c.io.write_static(t.plan.wire).await;
    if res.is_err() {
        t.record(t0, &Err(Failure::Reset));
        return false;
    }
    let head = t.plan.opts.request.is_head();
    for _ in 0..t.plan.opts.pipeline {
        let r = match monoio::time::timeout(
            t.plan.opts.timeout,
            read_response(&mut c.io, &mut c.rb, head),
        )
        .await
        {
            Ok(r) => r.map_err(Failure::from),
            Err(_) => Err(Failure::Timeout),
        };
        t.record(t0, &r);
        match r {
            Ok(resp) if resp.reusable => {}
            _ => return false,
        }
    }
    true
}

/// Closed loop: the next request goes when the last response has ended.
async fn closed(t: &Thread) -> io::Result<()> {
    let mut conn: Option<Conn> = None;
    while !t.stopping() {
        let t0 = Instant::now();
        let mut c = match conn.take() {
            Some(c) => c,
            None => match connect(t, t0).await {
                Ok(c) => c,
                Err(f) => {
                    t.record(t0, &Err(f));
                    // A refused connect returns at once: pause so a dead
                    // target is not hammered in a busy loop.
                    monoio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if exchange(t, &mut c, t0).await && !t.plan.opts.new_connection {
            conn = Some(c);
        }
    }
    Ok(())
}

/// Open loop: requests go at their scheduled times, latency counts from
/// then.
async fn paced(t: &Thread, mut schedule: Schedule) -> io::Result<()> {
    let mut pacer = Pacer::new(t.uring)?;
    let mut conn: Option<Conn> = None;
    loop {
        let due = schedule.next_due();
        if due >= t.plan.end || t.stopping() {
            return Ok(());
        }
        pacer.until(due).await?;
        if t.stopping() {
            return Ok(());
        }
        let mut c = match conn.take() {
            Some(c) => c,
            None => match connect(t, due).await {
                Ok(c) => c,
                Err(f) => {
                    t.record(due, &Err(f));
                    continue;
                }
            },
        };
        if exchange(t, &mut c, due).await && !t.plan.opts.new_connection {
            conn = Some(c);
        }
    }
}
