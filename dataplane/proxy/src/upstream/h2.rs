//! HTTP/2 connections to upstreams, shared by concurrent requests.
//!
//! A connection is an h2 client: its `Connection` future runs in a task of
//! its own (it moves every stream's frames), and `H2Client` keeps the
//! handle that opens streams. Requests on a core share it while it is
//! below the upstream's `SETTINGS_MAX_CONCURRENT_STREAMS`; a new one is
//! opened within the cluster's `max_connections` only when every
//! connection is full. A connection that got GOAWAY or ended is retired
//! from the pool at the next checkout; its streams in flight finish.
//!
//! Which failures are safe to retry, whatever the method (RFC 9113
//! section 8.7): a stream the upstream refused (`REFUSED_STREAM`) or
//! above a GOAWAY's last stream id never reached the application.

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::SendStream;
use tracing::debug;

use super::pool::{OpenSlot, SharedConn};
use super::TransportKey;
use crate::transport::h2io::H2Io;
use crate::transport::Stream;

/// Streams the proxy assumes an upstream allows before its SETTINGS say
/// (h2's default is unlimited, which would pile every request onto a new
/// connection's first round trip); RFC 9113 recommends at least 100.
pub const INITIAL_STREAMS: usize = 100;
/// Flow-control windows the proxy gives upstreams: a response body may
/// run this far ahead of the client reading it.
const STREAM_WINDOW: u32 = 1024 * 1024;
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// Bytes h2 may queue per stream before `poll_capacity` waits.
const SEND_BUFFER: usize = 64 * 1024;
/// Largest response header list accepted (HTTP/1.1 upstreams get the
/// same 64 KiB).
const MAX_HEADER_LIST: u32 = 64 * 1024;

/// One HTTP/2 connection to an upstream.
pub struct H2Client {
    send: SendRequest<Bytes>,
    transport: TransportKey,
    /// Set by the connection task when the connection ended.
    ended: Rc<Cell<bool>>,
    /// A stream failed in a way that says the connection takes no more
    /// (GOAWAY): retired at the next checkout.
    draining: Cell<bool>,
    /// Streams open from this core (h2 counts them too, behind an
    /// unstable feature).
    streams: Cell<usize>,
    _slot: OpenSlot,
}

/// A stream counted against its connection while it lives.
pub struct StreamSlot(Rc<H2Client>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let c = &self.0;
        c.streams.set(c.streams.get().saturating_sub(1));
    }
}

/// An open stream: the response to wait for, the body to send, its slot.
pub struct Opened {
    pub response: ResponseFuture,
    pub body: SendStream<Bytes>,
    pub slot: StreamSlot,
}

/// How opening a stream failed.
#[derive(Debug)]
pub enum OpenError {
    /// The connection takes no new streams (GOAWAY, closed): the request
    /// was not sent; another connection may take it.
    Gone,
    /// The request head could not be sent (refused by h2 itself).
    Rejected(h2::Error),
}

impl H2Client {
    /// Run the HTTP/2 handshake on a new connection and start its
    /// connection task. The caller bounds it in time.
    pub async fn handshake(
        stream: Stream,
        transport: TransportKey,
        slot: OpenSlot,
    ) -> std::io::Result<Rc<H2Client>> {
        let io = match stream {
            Stream::Plain(tcp) => H2Io::plain(tcp, &[])?,
            Stream::Tls(tls) => H2Io::tls(*tls)?,
            #[cfg(test)]
            Stream::Memory(_) => return Err(std::io::Error::other("no HTTP/2 over memory pipes")),
        };
        let (send, conn) = h2::client::Builder::new()
            .initial_max_send_streams(INITIAL_STREAMS)
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .max_send_buffer_size(SEND_BUFFER)
            .enable_push(false)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(std::io::Error::other)?;
        let ended = Rc::new(Cell::new(false));
        let flag = ended.clone();
        monoio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "upstream h2 connection ended");
            }
            flag.set(true);
        });
        Ok(Rc::new(H2Client {
            send,
            transport,
            ended,
            draining: Cell::new(false),
            streams: Cell::new(0),
            _slot: slot,
        }))
    }

    /// Open a stream for `req`; `end` when it has no body.
    pub async fn open(
        self: &Rc<Self>,
        req: http::Request<()>,
        end: bool,
    ) -> Result<Opened, OpenError> {
        self.streams.set(self.streams.get() + 1);
        let slot = StreamSlot(self.clone());
        let mut send = self.send.clone();
        if let Err(e) = poll_fn(|cx| send.poll_ready(cx)).await {
            self.draining.set(true);
            debug!(error = %e, "upstream h2 connection takes no new streams");
            return Err(OpenError::Gone);
        }
        match send.send_request(req, end) {
            Ok((response, body)) => Ok(Opened {
                response,
                body,
                slot,
            }),
            Err(e) if e.is_go_away() || e.is_io() => {
                self.draining.set(true);
                Err(OpenError::Gone)
            }
            Err(e) => Err(OpenError::Rejected(e)),
        }
    }

    /// The connection failed under a stream (a connection-level error or
    /// GOAWAY seen on a stream): open no more streams on it.
    pub fn retire(&self) {
        self.draining.set(true);
    }
}

impl SharedConn for H2Client {
    fn transport(&self) -> TransportKey {
        self.transport
    }

    fn has_capacity(&self) -> bool {
        self.streams.get() < self.send.current_max_send_streams()
    }

    fn is_usable(&self) -> bool {
        !self.ended.get() && !self.draining.get()
    }
}

/// Whether a stream's failure means the upstream never processed the
/// request: it may be sent again, whatever its method.
pub fn never_processed(e: &h2::Error) -> bool {
    e.reason() == Some(h2::Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote())
}

/// A response head from an HTTP/2 upstream (awaited by a deadline), or
/// why there is none.
pub fn head_result(
    r: Result<Result<http::Response<h2::RecvStream>, h2::Error>, crate::timer::Elapsed>,
    body_done: bool,
) -> Result<(http::Response<h2::RecvStream>, bool), crate::pipeline::H2HeadError> {
    use crate::pipeline::H2HeadError;
    match r {
        Err(_) => Err(H2HeadError::Timeout),
        Ok(Ok(resp)) => Ok((resp, body_done)),
        Ok(Err(e)) if never_processed(&e) => Err(H2HeadError::NeverProcessed),
        Ok(Err(_)) => Err(H2HeadError::Reset),
    }
}

/// A response head from an HTTP/2 upstream, its body still arriving,
/// and the request body still being sent when the client streams it
/// (full duplex: a gRPC bidi call).
pub struct H2Exchange {
    pub head: http::response::Parts,
    pub body: h2::RecvStream,
    /// The request's stream, while its body is still being sent.
    pub request: Option<SendStream<Bytes>>,
    pub client: Rc<H2Client>,
    pub _slot: StreamSlot,
}

impl crate::view::ResponseView for H2Exchange {
    fn status(&self) -> u16 {
        self.head.status.as_u16()
    }

    fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.head
            .headers
            .iter()
            .find(|(n, _)| n.as_str().as_bytes().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }

    fn for_each_header(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        for (n, v) in &self.head.headers {
            f(n.as_str().as_bytes(), v.as_bytes());
        }
    }

    fn body(&self) -> crate::view::BodyKind {
        use crate::view::BodyKind;
        if self.body.is_end_stream() {
            return BodyKind::Empty;
        }
        let len = self
            .head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        len.map_or(BodyKind::Streamed, BodyKind::Sized)
    }

    fn protocol(&self) -> crate::view::Protocol {
        crate::view::Protocol::Http2
    }
}
