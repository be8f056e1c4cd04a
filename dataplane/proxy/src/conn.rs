//! The life of a downstream connection and of each request on it.
//!
//! Read this file top to bottom to follow a request:
//!
//! 1. `read_head`: wait for the next request (idle timeout, drain), then for
//!    a complete head (header timeout, size limits), parse and check framing.
//! 2. `route`: first matching route of the listener.
//! 3. the route's action: `direct` answers from config; `forward` picks an
//!    endpoint, takes a pooled connection or opens one, sends the rewritten
//!    head and streams the body, reads the response head, rewrites it, and
//!    streams the response body back.
//! 4. keep-alive, close, or hand both sockets to `tunnel` after a 101.
//!
//! Failures before the response head reaches the client become an error
//! response (`error::write_error_response`); failures after it close the
//! connection, since the status line has already been sent.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::{AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;
use ringmesh_http1::rewrite::{self, ConnectionHeader, RequestContext, ResponseFraming};
use ringmesh_http1::{
    parse_request, parse_response, BodyFraming, RequestHead, ResponseHead, Version,
};
use tracing::{debug, warn};

use crate::cluster::{ClusterState, InFlight};
use crate::config::model::{Action, Listener, Route};
use crate::error::{write_error_response, ProxyError};
use crate::io::{coalesce, relay, write_vec, BodyMode, ReadBuf, Relay, RelayError};
use crate::park::{park, ConnSlot, PARK_AFTER};
use crate::router;
use crate::timer::Timer;
use crate::worker::{Core, Snapshot};
use futures_util::future::{select, Either};
use monoio::io::Canceller;

/// Client read buffer each connection keeps, idle or not: room for a
/// typical request head (browsers send 0.5-1.5 KiB). It grows for large
/// heads and bodies and shrinks back when the connection goes idle. Every
/// other buffer comes from the core's pool only while a request is active.
const READ_BUFFER: usize = 2 * 1024;

/// What happens to the connection after a request.
enum Next {
    KeepAlive,
    Close,
    /// 101 Switching Protocols: relay bytes both ways until either closes.
    Tunnel(TcpStream),
    /// Quiet past `PARK_AFTER`: hand the socket to `park` until bytes
    /// arrive or the idle deadline passes.
    Park(std::time::Instant),
}

/// What waiting for the next request ended with.
enum Arrival {
    /// A complete head is parsed in `Conn::head`.
    Head,
    /// The client closed, the idle timeout passed, or the core drains.
    Closed,
    /// Quiet past `PARK_AFTER`; the idle deadline is still ahead.
    Park(std::time::Instant),
}

/// Per-connection state, reused by every request on the connection so the
/// steady state allocates nothing.
struct Conn {
    core: Rc<Core>,
    listener: usize,
    peer_ip: Box<[u8]>,
    /// Bytes from the client not yet consumed.
    rbuf: ReadBuf,
    /// Bytes from the upstream not yet consumed.
    ubuf: ReadBuf,
    /// Outgoing heads are assembled here.
    wbuf: Vec<u8>,
    /// Scratch for re-framed body pieces.
    scratch: Vec<u8>,
    /// Re-armed for every timed wait: idle, head, response, body stalls.
    timer: Timer,
    /// Cancels the idle read before parking; kept so waiting for each
    /// request does not allocate one.
    canceller: Canceller,
    head: RequestHead,
    resp: ResponseHead,
    /// The current request's body has not been read yet; an early error
    /// response must then close the connection.
    request_body_pending: bool,
    /// The current request's head bytes are still at the front of `rbuf`.
    /// Consumed exactly once (`consume_head`), whichever path answers.
    head_pending: bool,
    /// The current request's body did not fit in the first write and was
    /// streamed: it cannot be sent again.
    body_streamed: bool,
    /// Tries of the current request already made (retries).
    tries: u32,
}

/// Serve one accepted connection until it closes.
pub async fn serve(slot: ConnSlot, mut io: TcpStream, peer: SocketAddr) {
    let _ = io.set_nodelay(true);
    let core = slot.core.clone();
    let mut conn = Conn {
        core: core.clone(),
        listener: slot.listener,
        peer_ip: peer.ip().to_string().into_bytes().into(),
        rbuf: ReadBuf::with_capacity(READ_BUFFER),
        ubuf: ReadBuf::with_capacity(0),
        wbuf: Vec::new(),
        scratch: Vec::new(),
        timer: Timer::new(),
        canceller: Canceller::new(),
        head: RequestHead {
            headers: Vec::new(),
            ..RequestHead::default()
        },
        resp: ResponseHead {
            headers: Vec::new(),
            ..ResponseHead::default()
        },
        request_body_pending: false,
        head_pending: false,
        body_streamed: false,
        tries: 0,
    };
    loop {
        let snapshot = core.snapshot();
        match conn.request(&snapshot, &mut io).await {
            Next::KeepAlive if !core.drain.is_draining() => continue,
            Next::KeepAlive | Next::Close => {
                if conn.request_body_pending {
                    linger(&mut io, &mut conn.rbuf, &mut conn.timer).await;
                }
                conn.release_buffers();
                break;
            }
            Next::Park(until) => {
                // This task ends here and frees its state; the socket waits
                // in a small task of its own.
                conn.release_buffers();
                drop(conn);
                core.freed.set(true);
                monoio::spawn(park(slot, io, peer, until));
                return;
            }
            Next::Tunnel(upstream) => {
                // Boxed: upgrades are rare, and inline the tunnel's state
                // would make every connection's task larger.
                Box::pin(tunnel(io, upstream, conn.rbuf, conn.ubuf)).await;
                break;
            }
        }
    }
}

impl Conn {
    /// Drop the current request's head from the read buffer, once: the
    /// bytes after it are the body or the next pipelined request.
    fn consume_head(&mut self) {
        if self.head_pending {
            self.rbuf.consume(self.head.head_len);
            self.head_pending = false;
        }
    }

    /// Borrow this request's working buffers from the core's pool.
    fn take_buffers(&mut self) {
        let pool = &self.core.pool;
        if self.ubuf.capacity() == 0 {
            self.ubuf = ReadBuf::from_vec(pool.take_buf());
        }
        if self.wbuf.capacity() == 0 {
            self.wbuf = pool.take_buf();
        }
        if self.head.headers.capacity() == 0 {
            self.head.headers = pool.take_headers();
        }
        if self.resp.headers.capacity() == 0 {
            self.resp.headers = pool.take_headers();
        }
    }

    /// Going idle: give the working buffers back, keep only the small
    /// client read buffer.
    fn release_buffers(&mut self) {
        let pool = &self.core.pool;
        let ubuf = std::mem::replace(&mut self.ubuf, ReadBuf::with_capacity(0));
        pool.put_buf(ubuf.into_vec());
        pool.put_buf(std::mem::take(&mut self.wbuf));
        pool.put_headers(std::mem::take(&mut self.head.headers));
        pool.put_headers(std::mem::take(&mut self.resp.headers));
        self.scratch = Vec::new();
    }

    /// One request, from head to the end of the response.
    async fn request(&mut self, snap: &Snapshot, io: &mut TcpStream) -> Next {
        let listener = &snap.config.listeners[self.listener];
        match self.read_head(listener, io).await {
            Ok(Arrival::Head) => {
                self.head_pending = true;
                self.request_body_pending = self.head.framing != BodyFraming::Empty;
            }
            Ok(Arrival::Closed) => return Next::Close,
            Ok(Arrival::Park(until)) => return Next::Park(until),
            Err(err) => {
                // Framing unknown: the client may still be sending.
                self.request_body_pending = true;
                self.core.stats.listeners[self.listener]
                    .unrouted
                    .record(err.status());
                return self.respond_error(io, err, true).await;
            }
        }
        let Some(ri) = router::route(listener, self.rbuf.data(), &self.head) else {
            self.core.stats.listeners[self.listener]
                .unrouted
                .record(404);
            let close = self.head.framing != BodyFraming::Empty || !self.head.keep_alive;
            return self.respond_error(io, ProxyError::NoRoute, close).await;
        };
        let route = &listener.routes[ri];
        let (status, next) = match &route.action {
            Action::Direct { status, body } => (*status, self.direct(io, *status, body).await),
            Action::Cluster(id) => self.forward(snap, listener, route, *id, io).await,
            Action::Weighted { choices, total } => {
                let roll = self.core.rng.borrow_mut().u64(..*total);
                match router::pick_weighted(choices, roll) {
                    Some(id) => self.forward(snap, listener, route, id, io).await,
                    None => (500, Next::Close),
                }
            }
        };
        snap.route_stats[self.listener][ri].record(status);
        next
    }

    /// Wait for and parse the next request head into `self.head`.
    async fn read_head(
        &mut self,
        listener: &Listener,
        io: &mut TcpStream,
    ) -> Result<Arrival, ProxyError> {
        let limits = listener.limits;
        let limit = limits.max_header_bytes + READ_BUFFER;
        if self.rbuf.is_empty() {
            self.release_buffers();
            self.rbuf.shrink();
            let idle_since = std::time::Instant::now();
            let grace = listener.idle_timeout.min(PARK_AFTER);
            match self.first_byte(io, grace, limit).await {
                FirstByte::Arrived => {}
                FirstByte::Closed => return Ok(Arrival::Closed),
                FirstByte::Quiet if grace < listener.idle_timeout => {
                    return Ok(Arrival::Park(idle_since + listener.idle_timeout))
                }
                FirstByte::Quiet => return Ok(Arrival::Closed),
            }
        }
        self.take_buffers();
        let deadline = monoio::time::Instant::now() + listener.header_read_timeout;
        loop {
            match parse_request(self.rbuf.data(), &limits, &mut self.head) {
                Ok(true) => return Ok(Arrival::Head),
                Ok(false) => {}
                Err(e) => return Err(ProxyError::BadRequest(e)),
            }
            match self.timer.until(deadline, self.rbuf.fill(io, limit)).await {
                Err(_) => return Err(ProxyError::HeaderTimeout),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(Arrival::Closed),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Wait up to `grace` for the first byte of the next request. On quiet
    /// or drain the read is cancelled and awaited, so a byte that raced the
    /// cancel is kept, never lost.
    async fn first_byte(&mut self, io: &mut TcpStream, grace: Duration, limit: usize) -> FirstByte {
        let read = self
            .rbuf
            .fill_cancelable(io, limit, self.canceller.handle());
        let mut read = std::pin::pin!(read);
        let stop = select(self.timer.after(grace), self.core.drain.wait());
        if let Either::Left((got, _)) = select(read.as_mut(), stop).await {
            return match got {
                Ok(n) if n > 0 => FirstByte::Arrived,
                _ => FirstByte::Closed,
            };
        }
        self.canceller = std::mem::take(&mut self.canceller).cancel();
        match read.await {
            Ok(n) if n > 0 => FirstByte::Arrived,
            _ if self.core.drain.is_draining() => FirstByte::Closed,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted || is_canceled(&e) => {
                FirstByte::Quiet
            }
            _ => FirstByte::Closed,
        }
    }

    /// Answer from config. The request body, if any, is not read, so the
    /// connection closes after such a request.
    async fn direct(&mut self, io: &mut TcpStream, status: u16, body: &[u8]) -> Next {
        let keep = self.head.keep_alive && self.head.framing == BodyFraming::Empty;
        let is_head = self.head.is_head_method(self.rbuf.data());
        self.consume_head();
        self.wbuf.clear();
        rewrite::write_status_line(
            &mut self.wbuf,
            status,
            crate::error::reason_phrase(status).as_bytes(),
        );
        self.wbuf.extend_from_slice(b"content-length: ");
        self.wbuf
            .extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        self.wbuf.extend_from_slice(b"\r\n");
        self.wbuf
            .extend_from_slice(connection_header(keep, self.head.version));
        self.wbuf.extend_from_slice(b"\r\n");
        if !is_head {
            self.wbuf.extend_from_slice(body);
        }
        match write_vec(io, &mut self.wbuf).await {
            Ok(()) if keep => Next::KeepAlive,
            _ => Next::Close,
        }
    }

    /// Proxy the request to cluster `id`; returns the status the client got.
    async fn forward(
        &mut self,
        snap: &Snapshot,
        listener: &Listener,
        route: &Route,
        id: usize,
        io: &mut TcpStream,
    ) -> (u16, Next) {
        let cluster = &snap.clusters[id];
        let result = self.exchange(cluster, listener, route, io).await;
        let (status, next) = match result {
            Ok(done) => done,
            Err(Failure::Respond(err)) => {
                warn!(cluster = %cluster.name, route = %route.name, reason = %err, status = err.status(), "request failed");
                let close =
                    err.closes_connection() || !self.head.keep_alive || self.request_body_pending;
                (err.status(), self.respond_error(io, err, close).await)
            }
            Err(Failure::Abort { why, sent }) => {
                debug!(cluster = %cluster.name, route = %route.name, why, "connection aborted");
                // 499 (as nginx logs it): the client went away before a
                // response head reached it.
                (sent.unwrap_or(499), Next::Close)
            }
        };
        cluster.stats.get().requests.record(status);
        (status, next)
    }
}

/// How an exchange failed: before the client saw a response (send an error
/// response) or after (only closing is left).
enum Failure {
    Respond(ProxyError),
    Abort {
        why: &'static str,
        /// The status already sent to the client, if its head got out.
        sent: Option<u16>,
    },
}

impl Failure {
    /// The connection is unusable and no response reached the client.
    fn abort(why: &'static str) -> Self {
        Failure::Abort { why, sent: None }
    }
}

impl Conn {
    async fn exchange(
        &mut self,
        cluster: &ClusterState,
        listener: &Listener,
        route: &Route,
        io: &mut TcpStream,
    ) -> Result<(u16, Next), Failure> {
        // Facts about the request, taken before its head bytes are consumed.
        let buf = self.rbuf.data();
        let req = RequestFacts {
            is_head: self.head.is_head_method(buf),
            idempotent: crate::config::model::is_idempotent(self.head.method(buf)),
            version: self.head.version,
            keep_alive: self.head.keep_alive,
            upgrade: self.head.upgrade.is_some(),
            body: self.head.framing,
            expect_continue: self.head.expect_continue,
        };
        let ep = cluster
            .pick(&mut self.core.rng.borrow_mut())
            .ok_or(Failure::Respond(ProxyError::NoEndpoints))?;
        let mut in_flight = InFlight::new(ep);
        self.wbuf.clear();
        let ctx = RequestContext {
            client_ip: &self.peer_ip,
            proto: b"http",
            fallback_host: &in_flight.endpoint().authority,
        };
        rewrite::write_request_head(
            &mut self.wbuf,
            buf,
            &self.head,
            &ctx,
            &route.request_headers,
        );
        self.consume_head();
        self.request_body_pending = req.body != BodyFraming::Empty;

        if req.expect_continue && self.request_body_pending {
            let sent = io
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n" as &'static [u8])
                .await
                .0;
            sent.map_err(|_| Failure::abort("client closed before 100-continue"))?;
        }

        let retry = route.retry.as_ref().filter(|_| req.idempotent);
        self.tries = 0;
        let mut upstream = loop {
            let idle = listener.idle_timeout;
            let result = self
                .send_request(cluster, &in_flight, &req, route, idle, io)
                .await;
            let again = retry
                .filter(|p| self.tries < p.attempts && !self.body_streamed)
                .is_some_and(|p| match &result {
                    Ok(_) => p.retries_status(self.resp.status),
                    Err(Failure::Respond(
                        ProxyError::ConnectFailed | ProxyError::ConnectTimeout,
                    )) => p.on_connect_failure,
                    Err(Failure::Respond(ProxyError::UpstreamReset)) => p.on_reset,
                    Err(_) => false,
                });
            if !again {
                break result?;
            }
            // The failed try's connection is closed with its response
            // unread; the request (head and body, still in `wbuf`) goes to
            // the next endpoint the balancer picks.
            drop(result);
            self.ubuf.clear();
            self.tries += 1;
            cluster.stats.get().retries.inc();
            debug!(cluster = %cluster.name, route = %route.name, tries = self.tries, "retrying");
            let ep = cluster
                .pick(&mut self.core.rng.borrow_mut())
                .ok_or(Failure::Respond(ProxyError::NoEndpoints))?;
            in_flight = InFlight::new(ep);
        };
        let status = self.resp.status;

        if status == 101 && req.upgrade {
            self.wbuf.clear();
            rewrite::write_response_head(
                &mut self.wbuf,
                self.ubuf.data(),
                &self.resp,
                ResponseFraming::AsIs,
                ConnectionHeader::Upgrade,
                &route.response_headers,
            );
            self.ubuf.consume(self.resp.head_len);
            write_vec(io, &mut self.wbuf)
                .await
                .map_err(|_| Failure::abort("client closed"))?;
            return Ok((status, Next::Tunnel(upstream.detach())));
        }

        // A body the client is still sending (the upstream answered early)
        // ends the connection after the response.
        let must_close = self.core.drain.is_draining() || self.request_body_pending;
        let plan = response_plan(&self.resp, &req, must_close);
        self.wbuf.clear();
        rewrite::write_response_head(
            &mut self.wbuf,
            self.ubuf.data(),
            &self.resp,
            plan.framing,
            plan.connection,
            &route.response_headers,
        );
        self.ubuf.consume(self.resp.head_len);
        let rest = plan
            .body
            .and_then(|mode| coalesce(&mut self.ubuf, &mut self.wbuf, mode, SMALL_BODY));
        write_vec(io, &mut self.wbuf)
            .await
            .map_err(|_| Failure::abort("client closed during response head"))?;

        if let Some(mode) = rest {
            let ctx = Relay {
                scratch: &mut self.scratch,
                timer: &mut self.timer,
                idle: listener.idle_timeout,
            };
            relay(upstream.stream(), &mut self.ubuf, io, mode, ctx)
                .await
                .map_err(|_| Failure::Abort {
                    why: "response body relay failed",
                    sent: Some(status),
                })?;
        }
        // Reuse the upstream connection only after a cleanly delimited
        // response with nothing unexpected behind it.
        let delimited = !matches!(plan.body, Some(BodyMode::UntilClose | BodyMode::Rechunk));
        if self.resp.keep_alive && delimited && self.ubuf.is_empty() {
            upstream.release(in_flight.endpoint());
        }
        // Bytes left behind belong to a connection that was not reused.
        self.ubuf.clear();
        self.ubuf.shrink();
        Ok((
            status,
            if plan.client_keep_alive {
                Next::KeepAlive
            } else {
                Next::Close
            },
        ))
    }

    /// Send the request head and body and read the response head. A pooled
    /// connection the upstream closed while idle shows up as a failed write
    /// or an EOF before any response byte; the request is then sent once
    /// more on a new connection, if no streamed body was consumed.
    async fn send_request<'c>(
        &mut self,
        cluster: &'c ClusterState,
        in_flight: &InFlight,
        req: &RequestFacts,
        route: &Route,
        idle: Duration,
        io: &mut TcpStream,
    ) -> Result<Upstream<'c>, Failure> {
        let first = self.tries == 0;
        // The part of the body that has already arrived goes out in the same
        // write as the head. A retry resends `wbuf` as it is: the body went
        // into it on the first try.
        let mut body = match req.body {
            BodyFraming::Length(n) if first => Some(BodyMode::Length(n)),
            BodyFraming::Chunked if first => Some(BodyMode::Chunked),
            _ => None,
        };
        if let Some(mode) = body {
            body = coalesce(&mut self.rbuf, &mut self.wbuf, mode, SMALL_BODY);
            self.request_body_pending = body.is_some();
        }
        if first {
            // A body streamed after the head is gone once sent: no retry.
            self.body_streamed = body.is_some();
        }
        let ep = in_flight.endpoint();
        let mut pooled = cluster.take_idle(ep, Instant::now());
        loop {
            let reused = pooled.is_some();
            let retry_ok = reused && !self.request_body_pending;
            let stream = match pooled.take() {
                Some(s) => s,
                None => connect(cluster, ep.addr, &mut self.timer)
                    .await
                    .map_err(Failure::Respond)?,
            };
            let mut upstream = Upstream {
                io: stream,
                slot: OpenSlot(cluster),
            };
            // The head stays in `wbuf` until a response arrives, for a retry.
            let head = std::mem::take(&mut self.wbuf);
            let (sent, head) = upstream.stream().write_all(head).await;
            self.wbuf = head;
            if sent.is_err() {
                if retry_ok {
                    continue;
                }
                return Err(Failure::Respond(ProxyError::UpstreamReset));
            }
            if let Some(mode) = body.filter(|_| self.request_body_pending) {
                let ctx = Relay {
                    scratch: &mut self.scratch,
                    timer: &mut self.timer,
                    idle,
                };
                match relay(io, &mut self.rbuf, upstream.stream(), mode, ctx).await {
                    Ok(()) => self.request_body_pending = false,
                    Err(RelayError::Framing(c)) => {
                        return Err(Failure::Respond(ProxyError::BadRequestBody(c)))
                    }
                    Err(RelayError::Write(_)) => {
                        // The upstream stopped reading the body: it may
                        // have answered early (413, 401) and closed. That
                        // answer is what the client should get.
                        let early = Some(EARLY_RESPONSE_WAIT);
                        return match self.read_response_head(&mut upstream, req, early, io).await {
                            Ok(()) => Ok(upstream),
                            Err(HeadRead::Failed(f)) => Err(f),
                            Err(HeadRead::ClosedEarly) => {
                                Err(Failure::Respond(ProxyError::UpstreamReset))
                            }
                        };
                    }
                    Err(_) => {
                        return Err(Failure::abort("client stopped sending the request body"))
                    }
                }
            }
            // Without a route timeout the listener's idle timeout bounds the
            // wait, so a hung upstream cannot pin a client connection.
            let wait = Some(route.timeout.unwrap_or(idle));
            match self.read_response_head(&mut upstream, req, wait, io).await {
                Err(HeadRead::ClosedEarly) if retry_ok => continue,
                Err(HeadRead::ClosedEarly) => {
                    return Err(Failure::Respond(ProxyError::UpstreamReset))
                }
                Err(HeadRead::Failed(f)) => return Err(f),
                // `wbuf` keeps the request until the caller writes the
                // response head into it: a retry on the status resends it.
                Ok(()) => return Ok(upstream),
            }
        }
    }

    /// Read the final response head into `self.resp`, forwarding interim
    /// 1xx responses to the client on the way.
    async fn read_response_head(
        &mut self,
        upstream: &mut Upstream<'_>,
        req: &RequestFacts,
        timeout: Option<Duration>,
        io: &mut TcpStream,
    ) -> Result<(), HeadRead> {
        let limits = ringmesh_http1::Limits::default();
        let deadline = timeout.map(|t| monoio::time::Instant::now() + t);
        let mut received = false;
        loop {
            match parse_response(self.ubuf.data(), &limits, req.is_head, &mut self.resp) {
                Ok(true) if self.resp.is_interim() => {
                    // Our own 100 Continue was already sent; others (103)
                    // go to the client as they are.
                    let n = self.resp.head_len;
                    if self.resp.status == 100 {
                        self.ubuf.consume(n);
                    } else {
                        self.ubuf
                            .write_to(io, n)
                            .await
                            .map_err(|_| HeadRead::Failed(Failure::abort("client closed")))?;
                    }
                    continue;
                }
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    return Err(HeadRead::Failed(Failure::Respond(
                        ProxyError::BadUpstreamResponse(e),
                    )))
                }
            }
            let fill = self.ubuf.fill(upstream.stream(), HEAD_LIMIT);
            let read = match deadline {
                Some(d) => self.timer.until(d, fill).await,
                None => Ok(fill.await),
            };
            match read {
                Err(_) => {
                    return Err(HeadRead::Failed(Failure::Respond(
                        ProxyError::UpstreamTimeout,
                    )))
                }
                Ok(Ok(0)) | Ok(Err(_)) if !received => return Err(HeadRead::ClosedEarly),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    return Err(HeadRead::Failed(Failure::Respond(
                        ProxyError::UpstreamReset,
                    )))
                }
                Ok(Ok(_)) => received = true,
            }
        }
    }

    async fn respond_error(&mut self, io: &mut TcpStream, err: ProxyError, close: bool) -> Next {
        self.wbuf.clear();
        write_error_response(&mut self.wbuf, err, close);
        let sent = write_vec(io, &mut self.wbuf).await;
        if close || sent.is_err() {
            return Next::Close;
        }
        self.consume_head();
        Next::KeepAlive
    }
}

enum FirstByte {
    Arrived,
    Closed,
    Quiet,
}

/// monoio reports a cancelled operation as ECANCELED.
fn is_canceled(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECANCELED)
}

/// How long to wait for an early response after the upstream stopped
/// reading the request body; an upstream that answered has already sent it.
const EARLY_RESPONSE_WAIT: Duration = Duration::from_secs(1);

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
async fn linger(io: &mut TcpStream, rbuf: &mut ReadBuf, timer: &mut Timer) {
    let _ = monoio::io::AsyncWriteRent::shutdown(io).await;
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
            _ => return,
        }
    }
}

/// Most body bytes sent in the same write as their head.
const SMALL_BODY: usize = 16 * 1024;
/// Upstream response heads get the default 64 KiB limit plus read slack.
const HEAD_LIMIT: usize = 64 * 1024 + READ_BUFFER;

enum HeadRead {
    /// The upstream closed before sending a byte: a stale pooled connection.
    ClosedEarly,
    Failed(Failure),
}

/// What `exchange` needs to remember of the request head once its bytes are
/// consumed.
struct RequestFacts {
    is_head: bool,
    /// Safe to send twice (GET, HEAD, PUT, DELETE, ...).
    idempotent: bool,
    version: Version,
    keep_alive: bool,
    upgrade: bool,
    body: BodyFraming,
    expect_continue: bool,
}

/// How the response goes back to the client.
struct ResponsePlan {
    framing: ResponseFraming,
    connection: ConnectionHeader,
    /// How to relay the body; `None` when there is none.
    body: Option<BodyMode>,
    client_keep_alive: bool,
}

/// Decide response framing from both sides' versions: an HTTP/1.1 client
/// gets chunked bodies as they are and close-delimited ones re-chunked (so
/// its connection survives); an HTTP/1.0 client gets a raw body and a close.
fn response_plan(resp: &ResponseHead, req: &RequestFacts, must_close: bool) -> ResponsePlan {
    let http11 = req.version == Version::Http11;
    let (framing, body, framing_keeps) = match resp.framing {
        BodyFraming::Empty => (ResponseFraming::AsIs, None, true),
        BodyFraming::Length(n) => (ResponseFraming::AsIs, Some(BodyMode::Length(n)), true),
        BodyFraming::Chunked if http11 => (ResponseFraming::Chunked, Some(BodyMode::Chunked), true),
        BodyFraming::Chunked => (ResponseFraming::Close, Some(BodyMode::Dechunk), false),
        BodyFraming::UntilClose if http11 => {
            (ResponseFraming::Chunked, Some(BodyMode::Rechunk), true)
        }
        BodyFraming::UntilClose => (ResponseFraming::Close, Some(BodyMode::UntilClose), false),
    };
    let client_keep_alive = req.keep_alive && framing_keeps && !must_close;
    let connection = match (client_keep_alive, req.version) {
        (false, _) => ConnectionHeader::Close,
        (true, Version::Http10) => ConnectionHeader::KeepAlive,
        (true, Version::Http11) => ConnectionHeader::None,
    };
    ResponsePlan {
        framing,
        connection,
        body,
        client_keep_alive,
    }
}

fn connection_header(keep: bool, version: Version) -> &'static [u8] {
    match (keep, version) {
        (false, _) => b"connection: close\r\n",
        (true, Version::Http10) => b"connection: keep-alive\r\n",
        (true, Version::Http11) => b"",
    }
}

/// An upstream connection in use. Dropping it closes the connection and
/// frees its slot in the cluster's limit; `release` returns it to the pool.
struct Upstream<'c> {
    io: TcpStream,
    slot: OpenSlot<'c>,
}

/// One open connection counted against its cluster's limit; dropping it
/// gives the slot back.
struct OpenSlot<'c>(&'c ClusterState);

impl Drop for OpenSlot<'_> {
    fn drop(&mut self) {
        self.0.closed();
    }
}

impl Upstream<'_> {
    fn stream(&mut self) -> &mut TcpStream {
        &mut self.io
    }

    /// Back to the pool, still counted as open.
    fn release(self, ep: &crate::cluster::Endpoint) {
        let Upstream { io, slot } = self;
        let cluster = slot.0;
        std::mem::forget(slot);
        cluster.release(ep, io, Instant::now());
    }

    /// Take the stream out for a tunnel; it leaves the pool's accounting.
    fn detach(self) -> TcpStream {
        let Upstream { io, slot } = self;
        drop(slot);
        io
    }
}

async fn connect(
    cluster: &ClusterState,
    addr: SocketAddr,
    timer: &mut Timer,
) -> Result<TcpStream, ProxyError> {
    if !cluster.reserve_connection() {
        return Err(ProxyError::PoolExhausted);
    }
    let failed = |err| {
        cluster.closed();
        cluster.stats.get().connect_failures.inc();
        err
    };
    match timer
        .within(cluster.connect_timeout, TcpStream::connect_addr(addr))
        .await
    {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) => {
            debug!(%addr, error = %e, "upstream connect failed");
            Err(failed(ProxyError::ConnectFailed))
        }
        Err(_) => Err(failed(ProxyError::ConnectTimeout)),
    }
}

/// After a 101: bytes already read on each side go first, then each
/// direction is spliced (kernel-side copy) until its sender closes; the
/// other side then sees a half-close.
async fn tunnel(
    mut client: TcpStream,
    mut upstream: TcpStream,
    mut from_client: ReadBuf,
    mut from_upstream: ReadBuf,
) {
    let n = from_client.len();
    if n > 0 && from_client.write_to(&mut upstream, n).await.is_err() {
        return;
    }
    let n = from_upstream.len();
    if n > 0 && from_upstream.write_to(&mut client, n).await.is_err() {
        return;
    }
    drop((from_client, from_upstream));
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let up = async {
        let _ = monoio::io::zero_copy(&mut cr, &mut uw).await;
        let _ = monoio::io::AsyncWriteRent::shutdown(&mut uw).await;
    };
    let down = async {
        let _ = monoio::io::zero_copy(&mut ur, &mut cw).await;
        let _ = monoio::io::AsyncWriteRent::shutdown(&mut cw).await;
    };
    monoio::join!(up, down);
}
