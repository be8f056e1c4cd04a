//! The in-memory harness: a core with no sockets, clients and upstreams
//! over memory pipes, so the connection loop and the pipeline's phases are
//! unit-tested byte for byte, with the timing under the test's control.
//!
//! `Harness::new(yaml)` builds a core (`worker::Core::new`) for a config;
//! `Harness::connect` gives a client end whose server end a handler
//! serves, as an accepted TCP connection would be. Upstreams are scripted
//! per address (`upstream`): the connector asks this registry before
//! dialling (`dial`), and a registered address gets a memory pipe whose far
//! end the script serves. Tests run in a single-threaded runtime (`run`).
//!
//! Test-only code (compiled only for this crate's unit tests): a failed
//! setup step panics with what failed, as a test should.

#![cfg(test)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

use crate::handler::Job;
use crate::metrics::CoreStats;
use crate::park::ConnSlot;
use crate::transport::memory::{duplex, MemStream};
use crate::transport::Stream;
use crate::upstream::ConnectError;
use crate::worker::Core;

type Script = Rc<dyn Fn(MemStream) -> Pin<Box<dyn Future<Output = ()>>>>;

enum Peer {
    Serve(Script),
    Refuse,
}

thread_local! {
    static UPSTREAMS: RefCell<HashMap<SocketAddr, Peer>> = RefCell::new(HashMap::new());
}

/// Bytes each direction of a test pipe buffers.
pub const PIPE: usize = 64 * 1024;

/// Run `f` in a single-threaded runtime with timers (the legacy driver:
/// memory pipes need no io_uring).
pub fn run<F: Future>(f: F) -> F::Output {
    UPSTREAMS.with(|u| u.borrow_mut().clear());
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("test runtime")
        .block_on(f)
}

/// Serve connections to `addr` with `script`, each on its own task.
pub fn upstream<F, Fut>(addr: &str, script: F)
where
    F: Fn(MemStream) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let addr: SocketAddr = addr.parse().expect("address");
    let script: Script = Rc::new(move |s| Box::pin(script(s)));
    UPSTREAMS.with(|u| u.borrow_mut().insert(addr, Peer::Serve(script)));
}

/// Connections to `addr` are refused.
pub fn refuse(addr: &str) {
    let addr: SocketAddr = addr.parse().expect("address");
    UPSTREAMS.with(|u| u.borrow_mut().insert(addr, Peer::Refuse));
}

/// The connector's test hook: a memory connection to a scripted upstream,
/// a refusal, or `None` for an address the test did not register.
pub fn dial(addr: SocketAddr) -> Option<Result<Stream, ConnectError>> {
    UPSTREAMS.with(|u| match u.borrow().get(&addr) {
        Some(Peer::Serve(script)) => {
            let (ours, theirs) = duplex(PIPE);
            monoio::spawn(script(theirs));
            Some(Ok(Stream::Memory(ours)))
        }
        Some(Peer::Refuse) => Some(Err(ConnectError::Refused)),
        None => None,
    })
}

/// A core serving `yaml`'s first listener from memory pipes.
pub struct Harness {
    pub core: Rc<Core>,
}

impl Harness {
    pub fn new(yaml: &str) -> Harness {
        let config = Arc::new(crate::config::parse(yaml, "test").unwrap_or_else(|e| panic!("{e}")));
        let stats = Arc::new(CoreStats::for_config(&config));
        let endpoints = crate::dns::resolve_all(&config);
        let ports: Vec<u16> = config.listeners.iter().map(|l| l.address.port()).collect();
        let core = Core::new(
            0,
            1,
            &config,
            &endpoints,
            stats,
            &ports,
            crate::telemetry::CoreTelemetry::detached(),
        )
        .expect("core");
        *core.rng.borrow_mut() = fastrand::Rng::with_seed(7);
        Harness { core }
    }

    /// A new client connection with pipes of `PIPE` bytes.
    pub fn connect(&self) -> MemStream {
        self.connect_with(PIPE)
    }

    /// A new client connection whose pipes hold `capacity` bytes each way
    /// (a small one stands for a client that does not read).
    pub fn connect_with(&self, capacity: usize) -> MemStream {
        let (client, server) = duplex(capacity);
        let job = Job {
            io: Stream::Memory(server),
            peer: SocketAddr::from(([10, 0, 0, 9], 40000)),
            slot: ConnSlot::open(self.core.clone(), 0),
            ready: false,
            tls: None,
            fresh: true,
        };
        self.core.handlers.dispatch(&self.core, job);
        client
    }
}

/// A response as a test reads it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Bytes read from a peer and not consumed yet, per stream.
#[derive(Default)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// Read more into the buffer; false at EOF.
    async fn more(&mut self, s: &mut MemStream) -> bool {
        let (n, chunk) = s.read(Vec::with_capacity(16 * 1024)).await;
        match n {
            Ok(n) if n > 0 => {
                self.buf.extend_from_slice(&chunk);
                true
            }
            _ => false,
        }
    }

    /// The next complete message head (request or response) as text, or
    /// `None` at EOF.
    pub async fn head(&mut self, s: &mut MemStream) -> Option<String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..i + 4]).into_owned();
                self.buf.drain(..i + 4);
                return Some(head);
            }
            if !self.more(s).await {
                return None;
            }
        }
    }

    /// Exactly `n` more bytes, or `None` at EOF.
    pub async fn bytes(&mut self, s: &mut MemStream, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.more(s).await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// The next response (content-length or no body; chunked bodies are
    /// read raw to the final CRLF), or `None` at EOF.
    pub async fn response(&mut self, s: &mut MemStream, head_request: bool) -> Option<Response> {
        let head = self.head(s).await?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut r = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
            return Some(r);
        }
        if let Some(n) = r.header("content-length") {
            let n: usize = n.parse().ok()?;
            r.body = self.bytes(s, n).await?;
        }
        Some(r)
    }

    /// True once the peer closed and everything it sent was read.
    pub async fn eof(&mut self, s: &mut MemStream) -> bool {
        self.buf.is_empty() && !self.more(s).await
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Write all of `bytes`.
pub async fn send(s: &mut MemStream, bytes: &[u8]) {
    let (res, _) = s.write_all(bytes.to_vec()).await;
    res.expect("send");
}

/// An upstream script: answer every request with `status` and `body`,
/// keeping the connection open; counts requests in `seen`.
pub fn answering(
    status: u16,
    body: &'static str,
    seen: Rc<std::cell::Cell<usize>>,
) -> impl Fn(MemStream) -> Pin<Box<dyn Future<Output = ()>>> {
    move |mut s| {
        let seen = seen.clone();
        Box::pin(async move {
            let mut r = Reader::default();
            while let Some(head) = r.head(&mut s).await {
                seen.set(seen.get() + 1);
                if let Some(n) = content_length(&head) {
                    let _ = r.bytes(&mut s, n).await;
                }
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                send(&mut s, resp.as_bytes()).await;
            }
        })
    }
}

/// The Content-Length of a head, if any.
pub fn content_length(head: &str) -> Option<usize> {
    head.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// A request view with fixed parts, for unit tests of what reads one
/// (filters, access logs, balancers).
#[derive(Debug, Clone, Copy)]
pub struct FakeRequest {
    pub method: &'static [u8],
    pub authority: &'static [u8],
    pub path: &'static [u8],
    pub query: Option<&'static [u8]>,
    /// (lowercase name, value).
    pub headers: &'static [(&'static [u8], &'static [u8])],
}

impl Default for FakeRequest {
    fn default() -> Self {
        FakeRequest {
            method: b"GET",
            authority: b"a",
            path: b"/",
            query: None,
            headers: &[],
        }
    }
}

impl crate::view::RequestView for FakeRequest {
    fn method(&self) -> &[u8] {
        self.method
    }
    fn scheme(&self) -> &[u8] {
        b"http"
    }
    fn authority(&self) -> &[u8] {
        self.authority
    }
    fn path(&self) -> &[u8] {
        self.path
    }
    fn query(&self) -> Option<&[u8]> {
        self.query
    }
    fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
    fn for_each_header(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        for (n, v) in self.headers {
            f(n, v);
        }
    }
    fn body(&self) -> crate::view::BodyKind {
        crate::view::BodyKind::Empty
    }
    fn protocol(&self) -> crate::view::Protocol {
        crate::view::Protocol::Http11
    }
}
