//! `ringmesh-bench upstream`: the server behind the proxy under test.
//!
//! It has to cost less CPU per request than any proxy it is paired with,
//! or it, not the proxy, sets the pace. Thread per core like the proxy
//! (monoio, io_uring, SO_REUSEPORT), the response is built once at start,
//! and pipelined requests get their responses in one write.
//!
//! Behaviour per request:
//! - the configured status and a body of `body_size` bytes;
//! - `/size/N` answers with N body bytes instead (lets one upstream serve
//!   scenarios with different response sizes);
//! - with `echo`, the request body comes back (chunked stays chunked);
//! - with `latency`, the response waits a fixed or uniformly random time.
//!
//! With `tls` it serves HTTPS instead (rustls; the handshake runs as the
//! first request is read), for scenarios where the proxy originates TLS.
//!
//! With `h2` it serves HTTP/2 as well ([`crate::http2::server`]): on
//! plaintext, a connection that starts with the HTTP/2 preface (h2c with
//! prior knowledge) gets HTTP/2 and any other HTTP/1.1 as before; over TLS,
//! ALPN offers `h2` then `http/1.1` and the handshake runs first so the
//! choice is known. Without `h2` nothing is sniffed: the HTTP/1.1 path is
//! the same as ever.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringmesh_http1::ChunkedDecoder;
use socket2::{Domain, Protocol, Socket, Type};

use monoio::net::TcpStream;

use crate::http::{Fill, ReadBuf};
use crate::http2::{self, io::H2Io, server::H2Responder};
use crate::pace::Pacer;
use crate::runtime::{self, IoMode};
use crate::stream::Stream;
use crate::tls::{ServerTls, TlsStream};

#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    pub listen: Vec<SocketAddr>,
    pub workers: usize,
    pub cpus: Vec<usize>,
    pub status: u16,
    pub body_size: usize,
    pub latency: Option<AddedLatency>,
    pub echo: bool,
    pub io: IoMode,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    pub tls: Option<ServerTls>,
    /// Serve HTTP/2 too: h2c with prior knowledge, h2 by ALPN over TLS.
    pub h2: bool,
    /// HTTP/2 only: answer every gRPC call with this status (0: succeed).
    pub grpc_status: i32,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            workers: 1,
            cpus: Vec::new(),
            status: 200,
            body_size: 0,
            latency: None,
            echo: false,
            io: IoMode::Auto,
            tls: None,
            h2: false,
            grpc_status: 0,
        }
    }
}

/// Time added before each response: fixed (`min == max`) or uniform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddedLatency {
    pub min: Duration,
    pub max: Duration,
}

impl std::str::FromStr for AddedLatency {
    type Err = String;
    /// `2ms` (fixed) or `1ms..5ms` (uniform).
    fn from_str(s: &str) -> Result<Self, String> {
        let d = |x: &str| {
            humantime::parse_duration(x.trim()).map_err(|e| format!("bad latency {x:?}: {e}"))
        };
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (d(a)?, d(b)?),
            None => (d(s)?, d(s)?),
        };
        if min > max {
            return Err(format!("bad latency {s:?}: lower bound above upper bound"));
        }
        Ok(AddedLatency { min, max })
    }
}

impl AddedLatency {
    pub(crate) fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        if self.min == self.max {
            return self.min;
        }
        let span = (self.max - self.min).as_nanos() as u64;
        self.min + Duration::from_nanos(rng.u64(0..=span))
    }
}

/// A running upstream; its threads live until the process exits.
pub struct Upstream {
    pub addrs: Vec<SocketAddr>,
    pub driver: &'static str,
}

/// Bind every socket, then start the workers. Returns once all serve.
pub fn start(opts: UpstreamOptions) -> io::Result<Upstream> {
    let workers = opts.workers.max(1);
    let mut per_worker: Vec<Vec<TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    let mut addrs = Vec::new();
    for addr in &opts.listen {
        let socks = bind_reuseport(*addr, workers)?;
        addrs.push(socks[0].local_addr()?);
        for (w, s) in socks.into_iter().enumerate() {
            per_worker[w].push(s);
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    for (w, listeners) in per_worker.into_iter().enumerate() {
        let opts = opts.clone();
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("upstream-{w}"))
            .spawn(move || {
                if let Some(cpu) = runtime::cpu_for(&opts.cpus, w) {
                    let _ = runtime::pin_current(&[cpu]);
                }
                let res = runtime::block_on(opts.io, |uring| {
                    let _ = tx.send(Ok(uring));
                    let h2 = opts.h2.then(|| {
                        Rc::new(H2Responder::new(
                            opts.status,
                            opts.body_size,
                            opts.latency,
                            opts.echo,
                            opts.grpc_status,
                        ))
                    });
                    let tls = match (&opts.tls, h2.is_some()) {
                        (Some(tls), true) => Some(tls.with_h2()),
                        (tls, _) => tls.clone(),
                    };
                    serve(listeners, Rc::new(Responder::new(&opts)), tls, h2, uring)
                });
                if let Err(e) = res {
                    let _ = tx.send(Err(e));
                }
            })?;
    }
    let mut driver = "io_uring";
    for _ in 0..workers {
        match rx.recv() {
            Ok(Ok(uring)) => driver = if uring { driver } else { "epoll" },
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("upstream worker exited during start")),
        }
    }
    Ok(Upstream { addrs, driver })
}

fn bind_reuseport(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpListener>> {
    let mut out: Vec<TcpListener> = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket
            .bind(&addr.into())
            .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
        socket.listen(4096)?;
        let listener: TcpListener = socket.into();
        if addr.port() == 0 {
            addr = listener.local_addr()?;
        }
        out.push(listener);
    }
    Ok(out)
}

async fn serve(
    listeners: Vec<TcpListener>,
    responder: Rc<Responder>,
    tls: Option<ServerTls>,
    h2: Option<Rc<H2Responder>>,
    uring: bool,
) {
    let mut accepts = Vec::new();
    for l in listeners {
        let Ok(l) = monoio::net::TcpListener::from_std(l) else {
            continue;
        };
        let responder = responder.clone();
        let tls = tls.clone();
        let h2 = h2.clone();
        accepts.push(monoio::spawn(async move {
            loop {
                match l.accept().await {
                    Ok((io, _)) => {
                        let _ = io.set_nodelay(true);
                        let responder = responder.clone();
                        let (tls, h2) = (tls.clone(), h2.clone());
                        monoio::spawn(async move {
                            let _ = accepted(io, tls, h2, &responder, uring).await;
                        });
                    }
                    // Out of fds or a connection reset while queued: keep
                    // accepting, after a pause for the fd case.
                    Err(_) => monoio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    for a in accepts {
        a.await;
    }
}

/// Serve one accepted connection: HTTP/1.1, or with `h2` whichever the
/// client speaks.
async fn accepted(
    io: TcpStream,
    tls: Option<ServerTls>,
    h2: Option<Rc<H2Responder>>,
    r: &Responder,
    uring: bool,
) -> io::Result<()> {
    let rb = ReadBuf::new(16 * 1024);
    let Some(h2) = h2 else {
        let io = match &tls {
            None => Stream::Plain(io),
            // The handshake runs as the first request is read.
            Some(tls) => Stream::Tls(Box::new(session(io, tls)?)),
        };
        return connection(io, rb, r, uring).await;
    };
    match &tls {
        None => {
            let (mut io, mut rb) = (io, rb);
            if sniff_preface(&mut io, &mut rb).await? {
                let io = H2Io::plain(io, rb.data().to_vec())?;
                http2::server::serve(io, h2).await;
                return Ok(());
            }
            connection(Stream::Plain(io), rb, r, uring).await
        }
        Some(tls) => {
            let mut s = session(io, tls)?;
            s.handshake().await?;
            if s.is_h2() {
                http2::server::serve(H2Io::tls(s)?, h2).await;
                return Ok(());
            }
            connection(Stream::Tls(Box::new(s)), rb, r, uring).await
        }
    }
}

/// A server TLS session on `io` (nothing read yet). A new session fails
/// only on a bad config, which start-up has already loaded.
fn session(io: TcpStream, tls: &ServerTls) -> io::Result<TlsStream> {
    tls.connection()
        .map(|conn| TlsStream::new(io, conn))
        .map_err(io::Error::other)
}

/// Read until the bytes are, or cannot be, the HTTP/2 client preface;
/// whether they are. What was read stays in `rb`.
async fn sniff_preface(io: &mut TcpStream, rb: &mut ReadBuf) -> io::Result<bool> {
    loop {
        let data = rb.data();
        let n = data.len().min(http2::PREFACE.len());
        if data[..n] != http2::PREFACE[..n] {
            return Ok(false);
        }
        if n == http2::PREFACE.len() {
            return Ok(true);
        }
        if rb.fill(io).await? == 0 {
            return Ok(false);
        }
    }
}

/// Response bytes built once per worker.
struct Responder {
    status: u16,
    /// Head + body for the default size, keep-alive.
    canned: &'static [u8],
    body_size: usize,
    /// Filler bytes large bodies are written from.
    filler: &'static [u8],
    latency: Option<AddedLatency>,
    echo: bool,
}

/// Responses up to this size are copied into the connection's output
/// buffer (so pipelined ones go out in one write); larger ones are
/// written from the canned bytes directly.
const COALESCE_MAX: usize = 16 * 1024;

impl Responder {
    fn new(o: &UpstreamOptions) -> Responder {
        let mut canned = head(o.status, Some(o.body_size as u64), false);
        canned.resize(canned.len() + o.body_size, b'x');
        Responder {
            status: o.status,
            // Leaked once per worker at start: lets io_uring own `&'static`
            // slices with no copy and no reference count.
            canned: Box::leak(canned.into_boxed_slice()),
            body_size: o.body_size,
            filler: Box::leak(vec![b'x'; 64 * 1024].into_boxed_slice()),
            latency: o.latency,
            echo: o.echo,
        }
    }
}

fn head(status: u16, len: Option<u64>, close: bool) -> Vec<u8> {
    let mut h = format!(
        "HTTP/1.1 {status} {}\r\nServer: ringmesh-bench\r\n",
        reason(status)
    );
    match len {
        Some(n) => h.push_str(&format!("Content-Length: {n}\r\n")),
        None => h.push_str("Transfer-Encoding: chunked\r\n"),
    }
    if close {
        h.push_str("Connection: close\r\n");
    }
    h.push_str("\r\n");
    h.into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// What a parsed request asks for.
struct Request {
    head_len: usize,
    body: Body,
    head_method: bool,
    close: bool,
    expect_continue: bool,
    size_override: Option<usize>,
}

enum Body {
    Length(u64),
    Chunked,
}

enum Parsed {
    Request(Request),
    Partial,
    Invalid,
}

fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let mut close = req.version == Some(0);
    let (mut body, mut expect_continue) = (Body::Length(0), false);
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Some(n) => body = Body::Length(n),
                None => return Parsed::Invalid,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            body = Body::Chunked;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    let path = req.path.unwrap_or("/");
    let size_override = path.strip_prefix("/size/").and_then(|n| n.parse().ok());
    Parsed::Request(Request {
        head_len,
        body,
        head_method: req.method == Some("HEAD"),
        close,
        expect_continue,
        size_override,
    })
}

async fn connection(mut io: Stream, mut rb: ReadBuf, r: &Responder, uring: bool) -> io::Result<()> {
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut pacer = match r.latency {
        Some(_) => Some(Pacer::new(uring)?),
        None => None,
    };
    let mut rng = fastrand::Rng::new();
    loop {
        let req = match parse(rb.data()) {
            Parsed::Request(req) => req,
            Parsed::Invalid => {
                out.extend_from_slice(&head(400, Some(0), true));
                flush(&mut io, &mut out).await?;
                return io.close().await;
            }
            Parsed::Partial => {
                // Everything complete so far has been answered: send it
                // before waiting for more.
                flush(&mut io, &mut out).await?;
                if io.fill(&mut rb).await? == 0 {
                    return Ok(());
                }
                continue;
            }
        };
        rb.consume(req.head_len);
        if req.expect_continue {
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            flush(&mut io, &mut out).await?;
        }
        if let (Some(lat), Some(p)) = (&r.latency, pacer.as_mut()) {
            // Wait before reading the body, as an app that is slow to
            // start on a request would.
            p.until(Instant::now() + lat.sample(&mut rng)).await?;
        }
        if r.echo {
            echo(&mut io, &mut rb, &mut out, r.status, &req).await?;
        } else {
            skip_body(&mut io, &mut rb, &req.body).await?;
            respond(&mut io, &mut out, r, &req).await?;
        }
        if req.close {
            flush(&mut io, &mut out).await?;
            return io.close().await;
        }
    }
}

async fn respond(
    io: &mut Stream,
    out: &mut Vec<u8>,
    r: &Responder,
    req: &Request,
) -> io::Result<()> {
    let size = match req.size_override {
        Some(n) => n,
        None if !req.close => {
            let canned = if req.head_method {
                &r.canned[..r.canned.len() - r.body_size]
            } else {
                r.canned
            };
            return push(io, out, canned).await;
        }
        None => r.body_size,
    };
    out.extend_from_slice(&head(r.status, Some(size as u64), req.close));
    if req.head_method {
        return Ok(());
    }
    let mut left = size;
    while left > 0 {
        let n = left.min(r.filler.len());
        push(io, out, &r.filler[..n]).await?;
        left -= n;
    }
    Ok(())
}

/// Queue `bytes`: copied when small, written in place when large.
async fn push(io: &mut Stream, out: &mut Vec<u8>, bytes: &'static [u8]) -> io::Result<()> {
    if bytes.len() <= COALESCE_MAX {
        out.extend_from_slice(bytes);
        if out.len() < 64 * 1024 {
            return Ok(());
        }
        return flush(io, out).await;
    }
    flush(io, out).await?;
    io.write_static(bytes).await
}

async fn flush(io: &mut Stream, out: &mut Vec<u8>) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let buf = std::mem::take(out);
    let (res, mut buf) = io.write_vec(buf).await;
    buf.clear();
    *out = buf;
    res
}

async fn skip_body(io: &mut Stream, rb: &mut ReadBuf, body: &Body) -> io::Result<()> {
    match body {
        Body::Length(n) => {
            let mut left = *n;
            loop {
                let take = (rb.data().len() as u64).min(left);
                rb.consume(take as usize);
                left -= take;
                if left == 0 {
                    return Ok(());
                }
                if io.fill(rb).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
        Body::Chunked => {
            let mut dec = ChunkedDecoder::new();
            loop {
                let n = dec
                    .scan(rb.data())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                rb.consume(n);
                if dec.is_done() {
                    return Ok(());
                }
                if io.fill(rb).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
    }
}

/// Send the request body back as it arrives, in the framing it came in.
async fn echo(
    io: &mut Stream,
    rb: &mut ReadBuf,
    out: &mut Vec<u8>,
    status: u16,
    req: &Request,
) -> io::Result<()> {
    let (len, mut dec) = match req.body {
        Body::Length(n) => (Some(n), None),
        Body::Chunked => (None, Some(ChunkedDecoder::new())),
    };
    out.extend_from_slice(&head(status, len, req.close));
    if req.head_method {
        return skip_body(io, rb, &req.body).await;
    }
    let mut left = len.unwrap_or(u64::MAX);
    loop {
        let n = match dec.as_mut() {
            Some(d) => d
                .scan(rb.data())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
            None => (rb.data().len() as u64).min(left) as usize,
        };
        out.extend_from_slice(&rb.data()[..n]);
        rb.consume(n);
        left -= n as u64;
        let done = dec.as_ref().map_or(left == 0, |d| d.is_done());
        if done {
            return Ok(());
        }
        flush(io, out).await?;
        if io.fill(rb).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}
