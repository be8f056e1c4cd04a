//! An HTTP/1.x client connection: wait for a request, read its head, hand
//! it to the pipeline, and do what it decides; repeat until the connection
//! closes, goes idle (parked) or becomes a tunnel.
//!
//! This file reads requests and writes responses; `h1::client` sends
//! requests upstream and reads their responses; the decisions (route,
//! filters, endpoint, retries, timeouts, header edits, pooling) are all in
//! `pipeline`. Failures before a response head reaches the client become
//! an error response; after it, only closing is left.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use monoio::io::Canceller;
use ringmesh_http1::rewrite::{self, ConnectionHeader, HeaderEdits, ResponseFraming};
use ringmesh_http1::{parse_request, BodyFraming, RequestHead, ResponseHead, Version};

use super::relay::BodyMode;
use super::view::{H1Request, H1Response};
use crate::buf::{write_vec, ReadBuf};
use crate::error::{write_error_response, ProxyError};
use crate::pipeline::{self, Aborted, After, Downstream, Local, Next};
use crate::timer::Timer;
use crate::transport::Stream;
use crate::upstream::UpstreamConn;
use crate::view::{RequestView, ResponseView};
use crate::worker::Core;

/// Client read buffer a handler keeps: room for a typical request head
/// (browsers send 0.5-1.5 KiB). It grows for large heads and bodies and
/// shrinks back between requests. Every other buffer comes from the
/// core's pool only while a request is active.
pub const READ_BUFFER: usize = 2 * 1024;

/// Quiet time after which a keep-alive connection is parked. Clients that
/// reuse connections (pools, browsers) send their next request within
/// milliseconds; one quiet for a second is likely to stay quiet, and waking
/// it again costs a few microseconds once.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// What a connection handler keeps from one connection to the next: the
/// buffers, parsed heads and timer a request needs, so serving a
/// connection (new or woken from parking) allocates nothing.
pub struct Workspace {
    pub req: H1Request,
    pub up: H1Response,
    /// Outgoing heads are assembled here (pooled while a request runs).
    pub wbuf: Vec<u8>,
    /// Re-framed body pieces (de-chunking, re-chunking).
    pub scratch: Vec<u8>,
    /// Re-armed for every timed wait: idle, head, response, stalls.
    pub timer: Timer,
    /// Cancels the idle read before parking.
    pub canceller: Canceller,
}

impl Default for Workspace {
    /// Must be called inside a monoio runtime with the timer enabled.
    fn default() -> Self {
        Workspace {
            req: H1Request {
                rbuf: ReadBuf::with_capacity(READ_BUFFER),
                head: RequestHead::default(),
                scheme: b"http",
            },
            up: H1Response {
                ubuf: ReadBuf::with_capacity(0),
                head: ResponseHead::default(),
            },
            wbuf: Vec::new(),
            scratch: Vec::new(),
            timer: Timer::new(),
            canceller: Canceller::new(),
        }
    }
}

/// The client's address as text, kept on the stack (X-Forwarded-For).
#[derive(Clone, Copy)]
pub struct IpText {
    bytes: [u8; 48],
    len: usize,
}

impl IpText {
    pub fn new(ip: IpAddr) -> Self {
        use std::io::Write;
        let mut bytes = [0u8; 48];
        let len = {
            let mut cursor = std::io::Cursor::new(&mut bytes[..]);
            let _ = write!(cursor, "{ip}");
            cursor.position() as usize
        };
        IpText { bytes, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// How serving a connection ended.
pub enum Exit {
    /// The connection is closed (or dropped with the returned nothing).
    Closed,
    /// Quiet past `PARK_AFTER` with nothing buffered: park the socket
    /// until bytes arrive or the idle deadline passes.
    Park { io: Stream, until: Instant },
    /// The client sent the HTTP/2 preface: an h2c connection, whose
    /// first bytes (`read`) were already taken off the socket.
    H2 { io: Stream, read: Vec<u8> },
}

/// Per-request state of the connection.
#[derive(Default)]
pub(super) struct ReqState {
    /// Body bytes the client has not finished sending (or that sit unread
    /// in the buffer). Set from the head's framing, cleared once relayed.
    pub body_pending: bool,
    /// What of the body remains to relay after the part sent with the
    /// head; `None` when the whole request is in `wbuf`.
    pub rest: Option<BodyMode>,
    /// Relaying `rest` began: the request cannot be sent again.
    pub relay_started: bool,
    /// The request was encoded for an HTTP/1.1 upstream into `wbuf`:
    /// its head is `wbuf[..head_len]`, the body part coalesced behind it.
    pub encoded: bool,
    pub head_len: usize,
    /// The grpc-status the client got from an HTTP/2 upstream.
    pub grpc_status: Option<u8>,
    /// Body bytes taken from the client and sent to it (as framed on the
    /// wire: chunk framing counts), for the access log.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// A mirrored request's body, copied as it is relayed.
    pub copy: Option<Box<crate::mirror::BodyCopy>>,
}

/// One client connection being served.
pub struct H1Conn<'w> {
    pub(super) w: &'w mut Workspace,
    pub(super) io: Stream,
    pub(super) core: Rc<Core>,
    pub(super) listener: usize,
    client: IpAddr,
    client_port: u16,
    client_ip: IpText,
    pub(super) state: ReqState,
    /// Bytes are waiting (woken from parking): the first read need not wait
    /// for them.
    ready: bool,
    /// A new plaintext connection on a listener that takes HTTP/2: its
    /// first bytes may be the h2c preface (prior knowledge).
    h2c: bool,
    /// The client's identity, read once from its certificate when the
    /// listener has authorization policies.
    principal: Option<Box<[u8]>>,
    /// How long one write to the client may stall: the listener's
    /// `idle_timeout` in the config the current request runs on.
    stall: Duration,
}

/// What waiting for the next request ended with.
enum Arrival {
    /// A complete head is parsed into the workspace.
    Head,
    /// The client closed, the idle timeout passed, or listeners closed.
    Closed,
    /// Quiet past `PARK_AFTER`; the idle deadline is still ahead.
    Park(Instant),
    /// A head that cannot be served: answer with the error and close.
    Refused(ProxyError),
    /// The HTTP/2 client preface.
    H2,
}

enum FirstByte {
    Arrived,
    Closed,
    Quiet,
}

impl<'w> H1Conn<'w> {
    pub fn new(
        w: &'w mut Workspace,
        io: Stream,
        core: Rc<Core>,
        listener: usize,
        peer: SocketAddr,
        ready: bool,
        fresh: bool,
    ) -> Self {
        w.req.rbuf.clear();
        w.up.ubuf.clear();
        // The connection's own transport, not the listener's current
        // settings: a reload does not change what a client connected over.
        w.req.scheme = match io {
            Stream::Tls(_) => b"https",
            _ => b"http",
        };
        let snap = core.snapshot();
        let l = &snap.config.listeners[listener];
        let h2c = fresh && l.http2.is_some() && matches!(io, Stream::Plain(_));
        let principal = l
            .reads_principal
            .then(|| crate::tls::principal(&io))
            .flatten();
        let stall = l.idle_timeout;
        drop(snap);
        H1Conn {
            stall,
            h2c,
            principal,
            w,
            io,
            core,
            listener,
            client: peer.ip(),
            client_port: peer.port(),
            client_ip: IpText::new(peer.ip()),
            state: ReqState::default(),
            ready,
        }
    }

    /// Serve the connection until it closes, parks or its tunnel ends.
    pub async fn serve(mut self) -> Exit {
        loop {
            match self.next_request().await {
                Arrival::Head => self.h2c = false,
                Arrival::Closed => return Exit::Closed,
                Arrival::H2 => {
                    let read = self.w.req.rbuf.data().to_vec();
                    self.release_buffers();
                    return Exit::H2 { io: self.io, read };
                }
                Arrival::Park(until) => {
                    self.release_buffers();
                    return Exit::Park { io: self.io, until };
                }
                Arrival::Refused(err) => {
                    // Framing unknown: the client may still be sending.
                    let stats = &self.core.stats.listeners[self.listener];
                    stats.unrouted.record(err.status());
                    stats.unrouted_codes.record(err.status());
                    self.state.body_pending = true;
                    let begun = std::time::Instant::now();
                    let _ = self.respond(Local::Error(err), true).await;
                    self.log_refused(err, begun.elapsed());
                    self.close().await;
                    return Exit::Closed;
                }
            }
            self.begin_request();
            // The config a request runs on is the one in force when its
            // head is complete: a swap confirmed before that applies.
            let snap = self.core.snapshot();
            self.stall = snap.config.listeners[self.listener].idle_timeout;
            let core = self.core.clone();
            let client_ip = self.client_ip;
            let principal = self.principal.take();
            let env = pipeline::Env {
                principal: principal.as_deref(),
                core: &core,
                snap: &snap,
                listener: self.listener,
                client_ip: client_ip.as_bytes(),
                client: self.client,
                client_port: self.client_port,
                scheme: self.w.req.scheme,
            };
            let next = pipeline::serve(&mut self, &env).await;
            self.principal = principal;
            self.end_request();
            match next {
                Next::KeepAlive if !self.core.drain.is_draining() && !self.w.req.rbuf.is_lost() => {
                    continue
                }
                Next::KeepAlive | Next::Close => {
                    self.close().await;
                    return Exit::Closed;
                }
                Next::Tunnel(upstream) => {
                    let idle = snap.config.listeners[self.listener].tunnel_idle_timeout;
                    let H1Conn {
                        w,
                        io,
                        core,
                        listener,
                        ..
                    } = self;
                    let stats = &core.stats.listeners[listener];
                    let meter = crate::tunnel::Meter::new(&stats.tunnel_up, &stats.tunnel_down);
                    // Boxed: upgrades are rare, and inline the tunnel's
                    // state would make every handler's task larger.
                    Box::pin(crate::tunnel::run(
                        io,
                        upstream,
                        &mut w.req.rbuf,
                        &mut w.up.ubuf,
                        idle,
                        &core.drain,
                        &meter,
                    ))
                    .await;
                    return Exit::Closed;
                }
            }
        }
    }

    /// The access log line of a request refused before its head was
    /// complete (malformed, too large, too slow): no request to show, the
    /// answer and why. Smuggling attempts and floods show up here.
    fn log_refused(&self, err: ProxyError, took: Duration) {
        let snap = self.core.snapshot();
        let listener = &snap.config.listeners[self.listener];
        if listener.access_log.is_none() {
            return;
        }
        use crate::telemetry::access_log::Entry;
        let client = SocketAddr::new(self.client, self.client_port);
        let entry = Entry {
            status: Some(err.status()),
            flags: err.response_flags(),
            details: err.reason(),
            bytes_sent: self.state.bytes_out,
            ..Entry::without_request(
                "HTTP/1.1",
                &listener.name,
                client,
                self.principal.as_deref(),
                took,
            )
        };
        crate::telemetry::record(&self.core, listener, None, None, &entry);
    }

    /// Pin the head in the read buffer for the whole exchange and reset
    /// the per-request state.
    fn begin_request(&mut self) {
        let req = &mut self.w.req;
        req.rbuf.pin(req.head.head_len);
        self.state = ReqState {
            body_pending: req.head.framing != BodyFraming::Empty,
            ..ReqState::default()
        };
    }

    fn end_request(&mut self) {
        self.w.req.rbuf.unpin();
        self.w.up.ubuf.clear();
        self.w.up.ubuf.shrink();
    }

    /// Close after a response: a client whose body was not read gets a
    /// lingering close, so the kernel does not reset the connection (and
    /// the response with it) for the unread bytes.
    async fn close(&mut self) {
        if self.state.body_pending {
            linger(&mut self.io, &mut self.w.req.rbuf, &mut self.w.timer).await;
        }
        self.release_buffers();
    }

    /// Borrow this request's working buffers from the core's pool.
    fn take_buffers(&mut self) {
        let pool = &self.core.pool;
        if self.w.up.ubuf.capacity() == 0 {
            self.w.up.ubuf = ReadBuf::from_vec(pool.take_buf());
        }
        if self.w.wbuf.capacity() == 0 {
            self.w.wbuf = pool.take_buf();
        }
    }

    /// Going idle: give the working buffers back; the handler keeps only
    /// the small client read buffer.
    fn release_buffers(&mut self) {
        let pool = &self.core.pool;
        let ubuf = std::mem::replace(&mut self.w.up.ubuf, ReadBuf::with_capacity(0));
        pool.put_buf(ubuf.into_vec());
        pool.put_buf(std::mem::take(&mut self.w.wbuf));
        self.w.scratch = Vec::new();
        self.w.req.rbuf.clear();
        self.w.req.rbuf.shrink();
    }

    /// Wait for and parse the next request head.
    async fn next_request(&mut self) -> Arrival {
        let (limits, idle, header_timeout) = {
            let snap = self.core.snapshot();
            let l = &snap.config.listeners[self.listener];
            (l.limits, l.idle_timeout, l.header_read_timeout)
        };
        // Until a head is complete (and its snapshot taken), answers such
        // as 400 and 408 stall by the config in force now.
        self.stall = idle;
        let limit = limits.max_header_bytes + READ_BUFFER;
        if std::mem::take(&mut self.ready) {
            // Woken because bytes arrived: read them now. The read needs no
            // grace and no waiting slot.
            self.take_buffers();
            return self.read_head(limits, limit, header_timeout).await;
        }
        if self.w.req.rbuf.is_empty() {
            self.release_buffers();
            let idle_since = Instant::now();
            if self.io.parkable_fd().is_none() {
                // A stream that cannot be parked waits in place.
                return match self.first_byte(idle, limit).await {
                    FirstByte::Arrived => {
                        self.take_buffers();
                        self.read_head(limits, limit, header_timeout).await
                    }
                    _ => Arrival::Closed,
                };
            }
            let core = self.core.clone();
            let Some(_waiting) = core.handlers.wait_slot() else {
                // Enough handlers wait already: this connection waits
                // parked, holding no handler.
                return Arrival::Park(idle_since + idle);
            };
            let grace = idle.min(PARK_AFTER);
            match self.first_byte(grace, limit).await {
                FirstByte::Arrived => {}
                FirstByte::Closed => return Arrival::Closed,
                FirstByte::Quiet if grace < idle => return Arrival::Park(idle_since + idle),
                FirstByte::Quiet => return Arrival::Closed,
            }
        }
        self.take_buffers();
        self.read_head(limits, limit, header_timeout).await
    }

    /// Read until the head in the buffer is complete, and parse it.
    async fn read_head(
        &mut self,
        limits: ringmesh_http1::Limits,
        limit: usize,
        header_timeout: Duration,
    ) -> Arrival {
        let deadline = monoio::time::Instant::now() + header_timeout;
        loop {
            let req = &mut self.w.req;
            let h2c = match self.h2c.then(|| preface(req.rbuf.data())) {
                Some(Preface::Complete) => return Arrival::H2,
                Some(Preface::Partial) => true,
                Some(Preface::No) | None => false,
            };
            self.h2c = h2c;
            if !h2c {
                match parse_request(req.rbuf.data(), &limits, &mut req.head) {
                    Ok(true) => return Arrival::Head,
                    Ok(false) => {}
                    Err(e) => return Arrival::Refused(ProxyError::BadRequest(e)),
                }
            }
            let fill = req.rbuf.fill(&mut self.io, limit);
            match self.w.timer.until(deadline, fill).await {
                Err(_) => return Arrival::Refused(ProxyError::HeaderTimeout),
                Ok(Ok(0)) | Ok(Err(_)) => return Arrival::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Wait up to `grace` for the first byte of the next request. On quiet
    /// or when listeners close the read is cancelled and awaited, so a byte
    /// that raced the cancel is kept, never lost: a request that arrived is
    /// served (with `connection: close` while draining).
    async fn first_byte(&mut self, grace: Duration, limit: usize) -> FirstByte {
        let cancels = self.io.cancels_reads();
        let w = &mut *self.w;
        let read = w
            .req
            .rbuf
            .fill_cancelable(&mut self.io, limit, w.canceller.handle());
        let mut read = std::pin::pin!(read);
        let stop = select(w.timer.after(grace), self.core.drain.stopped());
        if let Either::Left((got, _)) = select(read.as_mut(), stop).await {
            return match got {
                Ok(n) if n > 0 => FirstByte::Arrived,
                _ => FirstByte::Closed,
            };
        }
        if !cancels {
            // Dropping the read loses nothing but an empty buffer.
            return if self.core.drain.is_stopped() {
                FirstByte::Closed
            } else {
                FirstByte::Quiet
            };
        }
        w.canceller = std::mem::take(&mut w.canceller).cancel();
        match read.await {
            Ok(n) if n > 0 => FirstByte::Arrived,
            _ if self.core.drain.is_stopped() => FirstByte::Closed,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted || is_canceled(&e) => {
                FirstByte::Quiet
            }
            _ => FirstByte::Closed,
        }
    }

    /// How long one write to the client may stall.
    pub(super) fn stall(&self) -> Duration {
        self.stall
    }

    /// Write `wbuf` to the client within the stall limit.
    pub(super) async fn write_out(&mut self) -> Result<(), Aborted> {
        let stall = self.stall();
        let w = &mut *self.w;
        match w
            .timer
            .within(stall, write_vec(&mut self.io, &mut w.wbuf))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Aborted {
                why: "client closed",
            }),
            Err(_) => Err(Aborted {
                why: "client stopped reading",
            }),
        }
    }

    /// The status line and framing of a response the proxy makes.
    fn write_local(&mut self, local: Local<'_>, keep: bool) {
        let is_head = self.w.req.method() == b"HEAD";
        let version = self.w.req.head.version;
        if self.w.wbuf.capacity() == 0 {
            self.w.wbuf = self.core.pool.take_buf();
        }
        let out = &mut self.w.wbuf;
        out.clear();
        match local {
            Local::Error(err) => {
                self.state.bytes_out += write_error_response(out, err, !keep) as u64;
            }
            Local::Direct { status, body } => {
                self.state.bytes_out += write_made(out, status, None, body, keep, version, is_head);
            }
            Local::Redirect { status, location } => {
                write_made(out, status, Some(location), b"", keep, version, is_head);
            }
        }
    }
}

/// A response the proxy makes (a direct response, a redirect): status
/// line, `location` if any, framing, and the body unless the request was
/// a HEAD. Returns the body bytes written.
fn write_made(
    out: &mut Vec<u8>,
    status: u16,
    location: Option<&[u8]>,
    body: &[u8],
    keep: bool,
    version: ringmesh_http1::Version,
    is_head: bool,
) -> u64 {
    rewrite::write_status_line(out, status, crate::error::reason_phrase(status).as_bytes());
    if let Some(l) = location {
        rewrite::write_pair(out, b"location", l);
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(connection_header(keep, version));
    out.extend_from_slice(b"\r\n");
    if is_head {
        return 0;
    }
    out.extend_from_slice(body);
    body.len() as u64
}

enum Preface {
    Complete,
    /// What arrived so far could still be the preface.
    Partial,
    No,
}

/// Whether `data` starts with the HTTP/2 client preface's first line.
/// An HTTP/1.x request never does (`PRI` with version `HTTP/2.0`).
fn preface(data: &[u8]) -> Preface {
    let start = crate::h2::PREFACE_START;
    let n = data.len().min(start.len());
    match (data[..n] == start[..n], n == start.len()) {
        (false, _) => Preface::No,
        (true, true) => Preface::Complete,
        (true, false) => Preface::Partial,
    }
}

/// monoio reports a cancelled operation as ECANCELED.
fn is_canceled(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECANCELED)
}

pub(super) fn connection_header(keep: bool, version: Version) -> &'static [u8] {
    match (keep, version) {
        (false, _) => b"connection: close\r\n",
        (true, Version::Http10) => b"connection: keep-alive\r\n",
        (true, Version::Http11) => b"",
    }
}

/// Lingering close: how long to keep discarding what a client still sends
/// after its request was answered without reading its body, in all and
/// between reads (nginx: lingering_time 30s, lingering_timeout 5s; shorter
/// here because a sidecar's clients are local).
const LINGER_TOTAL: Duration = Duration::from_secs(5);
const LINGER_QUIET: Duration = Duration::from_secs(1);

/// Close a connection whose last request body was not read: stop sending
/// (FIN), then read and discard for a bounded time. Closing at once with
/// unread bytes makes the kernel answer them with a reset, which can
/// destroy the response before the client has read it.
async fn linger(io: &mut Stream, rbuf: &mut ReadBuf, timer: &mut Timer) {
    let _ = monoio::io::AsyncWriteRent::shutdown(io).await;
    rbuf.unpin();
    rbuf.clear();
    rbuf.reserve_for_body();
    let until = monoio::time::Instant::now() + LINGER_TOTAL;
    loop {
        rbuf.clear();
        let next = (monoio::time::Instant::now() + LINGER_QUIET).min(until);
        match timer
            .until(next, rbuf.fill(io, crate::pool::BUF_SIZE))
            .await
        {
            Ok(Ok(n)) if n > 0 => continue,
            _ => break,
        }
    }
    rbuf.clear();
    rbuf.shrink();
}

impl Downstream for H1Conn<'_> {
    fn request(&self) -> &dyn RequestView {
        &self.w.req
    }

    fn response(&self) -> &dyn ResponseView {
        &self.w.up
    }

    fn wants_upgrade(&self) -> bool {
        self.w.req.head.upgrade.is_some()
    }

    fn grpc_status(&self) -> Option<u8> {
        self.state.grpc_status
    }

    fn body_bytes(&self) -> (u64, u64) {
        (self.state.bytes_in, self.state.bytes_out)
    }

    fn replayable(&self) -> bool {
        !self.state.relay_started && (!self.state.encoded || !self.w.wbuf.is_empty())
    }

    fn body_unread(&self) -> bool {
        self.state.body_pending
    }

    fn timer(&mut self) -> &mut Timer {
        &mut self.w.timer
    }

    fn copy_body(&mut self, limit: u64) {
        let length = match self.w.req.head.framing {
            BodyFraming::Length(n) => Some(n),
            BodyFraming::Chunked => None,
            _ => return,
        };
        self.state.copy = Some(crate::mirror::BodyCopy::h1(length, limit));
    }

    fn body_copy(&mut self) -> Option<&mut crate::mirror::BodyCopy> {
        self.state.copy.as_deref_mut()
    }

    async fn respond(&mut self, local: Local<'_>, close: bool) -> After {
        let keep = !close && self.w.req.head.keep_alive && !self.state.body_pending;
        self.write_local(local, keep);
        match self.write_out().await {
            Ok(()) if keep => After::KeepAlive,
            _ => After::Close,
        }
    }

    fn prepare_request(&mut self, edits: &pipeline::RequestEdits<'_>) -> Result<(), ProxyError> {
        if edits.h1_upstream {
            self.encode_request(edits)
        } else {
            self.check_body_start()
        }
    }

    async fn continue_body(&mut self) -> Result<(), Aborted> {
        if !(self.w.req.head.expect_continue && self.state.body_pending) {
            return Ok(());
        }
        let stall = self.stall();
        let w = &mut *self.w;
        w.scratch.clear();
        w.scratch
            .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        match w
            .timer
            .within(stall, write_vec(&mut self.io, &mut w.scratch))
            .await
        {
            Ok(Ok(())) => Ok(()),
            _ => Err(Aborted {
                why: "client closed before 100-continue",
            }),
        }
    }

    async fn send_request(
        &mut self,
        up: &mut Stream,
        write_by: monoio::time::Instant,
        stall: Duration,
    ) -> Result<bool, pipeline::SendError> {
        self.send_upstream(up, write_by, stall).await
    }

    async fn read_response_head(
        &mut self,
        up: &mut Stream,
        deadline: Option<monoio::time::Instant>,
    ) -> Result<(), pipeline::HeadRead> {
        self.read_upstream_head(up, deadline).await
    }

    fn discard_response(&mut self) {
        self.w.up.ubuf.clear();
    }

    async fn send_response(
        &mut self,
        up: &mut UpstreamConn,
        edits: &HeaderEdits,
        close: bool,
    ) -> Result<(pipeline::ResponseEnd, After), Aborted> {
        self.forward_response(up, edits, close).await
    }

    fn h2_request(&self, edits: &pipeline::RequestEdits<'_>) -> Option<(http::Request<()>, bool)> {
        let req = crate::h2::encode::h2_upstream_request(&self.w.req, edits)?;
        Some((req, self.w.req.head.framing != BodyFraming::Empty))
    }

    async fn h2_exchange(
        &mut self,
        body: &mut h2::SendStream<bytes::Bytes>,
        response: h2::client::ResponseFuture,
        deadline: monoio::time::Instant,
        stall: Duration,
    ) -> Result<(http::Response<h2::RecvStream>, bool), pipeline::H2HeadError> {
        self.exchange_h2(body, response, deadline, stall).await
    }

    async fn send_response_h2(
        &mut self,
        up: &mut crate::upstream::h2::H2Exchange,
        edits: &HeaderEdits,
        close: bool,
    ) -> Result<After, Aborted> {
        self.forward_h2_response(up, edits, close).await
    }

    async fn switch_protocols(&mut self, edits: &HeaderEdits) -> Result<(), Aborted> {
        let w = &mut *self.w;
        w.wbuf.clear();
        rewrite::write_response_head(
            &mut w.wbuf,
            w.up.ubuf.data(),
            &w.up.head,
            ResponseFraming::AsIs,
            ConnectionHeader::Upgrade,
            edits,
        );
        w.up.ubuf.consume(w.up.head.head_len);
        self.write_out().await
    }
}
