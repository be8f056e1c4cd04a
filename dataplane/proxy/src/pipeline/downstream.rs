//! What the phases need from the protocol a request arrived with.
//!
//! The phases (`pipeline::phases`) decide: which route, which filters,
//! which endpoint, how many tries, how long to wait, which headers to
//! edit, whether a connection goes back to the pool. A `Downstream` does
//! what only the protocol knows: exposes the request as a `RequestView`,
//! encodes it for the upstream, moves bodies, writes responses. HTTP/1.1
//! implements it (`h1::server`), and so does an HTTP/2 stream
//! (`h2::stream`), each with its own encoding of the same calls.
//!
//! The upstream's protocol picks the calls: an HTTP/1.1 upstream gets
//! bytes the downstream encodes itself (`prepare_request`,
//! `send_request`, `read_response_head`, `send_response`: for an
//! HTTP/1.1 client that is a zero-copy rewrite of its own head); an
//! HTTP/2 upstream gets an `http::Request` and frames (`h2_request`,
//! `h2_exchange`, `send_response_h2`).

use std::time::Duration;

use monoio::time::Instant;
use ringmesh_http1::rewrite::HeaderEdits;

use crate::config::model::ForwardedProto;
use crate::error::ProxyError;
use crate::timer::Timer;
use crate::transport::Stream;
use crate::upstream::h2::H2Exchange;
use crate::upstream::UpstreamConn;
use crate::view::{RequestView, ResponseView};

/// A response the proxy makes itself: a direct response, an error, an
/// injected fault.
#[derive(Debug, Clone, Copy)]
pub enum Local<'a> {
    /// A route's `direct_response`.
    Direct { status: u16, body: &'a [u8] },
    /// A failure, with its reason in `ringmesh-error` and the body.
    Error(ProxyError),
    /// A route's `redirect`: this status, `location`, no body.
    Redirect { status: u16, location: &'a [u8] },
}

/// How the upstream request differs from the client's.
pub struct RequestEdits<'a> {
    /// The route's `request_headers`.
    pub headers: &'a HeaderEdits,
    /// The route's `rewrite`: a new path and/or Host.
    pub rewrite: Option<&'a ringmesh_http1::target::TargetRewrite>,
    /// The client's address as text, appended to X-Forwarded-For.
    pub client_ip: &'a [u8],
    /// The listener's scheme, for X-Forwarded-Proto.
    pub scheme: &'a [u8],
    pub forwarded_proto: ForwardedProto,
    /// Host to send when the client sent none (HTTP/1.0): the endpoint.
    pub fallback_host: &'a [u8],
    /// The request may go to an HTTP/1.1 upstream: `prepare_request`
    /// encodes it (an HTTP/2-only cluster skips that work).
    pub h1_upstream: bool,
    /// On a mesh listener: `x-forwarded-client-cert` (the client's proven
    /// identity to the workload; forged ones dropped).
    pub client_cert: Option<ringmesh_http1::rewrite::ClientCert<'a>>,
    /// Trace context and a request id the proxy made, replacing the
    /// client's.
    pub propagated: ringmesh_http1::rewrite::Propagated<'a>,
}

/// How sending the request failed.
#[derive(Debug)]
pub enum SendError {
    /// Writing to the upstream failed before the whole request was sent;
    /// `early` when the upstream may have answered already (it stopped
    /// reading the body and closed).
    Upstream { early: bool },
    /// The client's body broke its framing (chunked syntax): 400, and the
    /// upstream connection, holding a partial request, must be closed.
    BadBody(ProxyError),
    /// The client stopped sending its body or went away.
    Client,
    /// A write or read stalled past the limit.
    Stalled,
}

/// How reading the response head failed.
#[derive(Debug)]
pub enum HeadRead {
    /// The upstream closed before sending a byte: on a reused connection,
    /// it was closed while idle.
    ClosedEarly,
    Failed(ProxyError),
    /// The client went away while interim responses were forwarded.
    ClientGone,
}

/// How an exchange with an HTTP/2 upstream failed before its response
/// head.
#[derive(Debug)]
pub enum H2HeadError {
    /// The upstream refused the stream (`REFUSED_STREAM`) or it was above
    /// a GOAWAY's last stream id: never processed, safe to send again.
    NeverProcessed,
    /// The upstream reset the stream, or its connection failed.
    Reset,
    /// No response head by the deadline.
    Timeout,
    /// Sending the request body failed.
    Send(SendError),
    /// The client went away (reset its stream).
    ClientGone,
}

/// How a forwarded response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseEnd {
    /// Cleanly delimited and nothing followed: the upstream connection may
    /// be reused.
    Reusable,
    /// Delimited by close, or the upstream asked to close.
    NotReusable,
}

/// The head of a response has reached the client, or never will: what the
/// connection does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    KeepAlive,
    Close,
}

/// A failure after the response head reached the client (or while the
/// client went away): only closing is left.
#[derive(Debug, Clone, Copy)]
pub struct Aborted {
    pub why: &'static str,
}

/// The client side of one request.
#[allow(async_fn_in_trait)]
pub trait Downstream {
    /// The request, for routing, filters, balancers and logs; valid for
    /// the whole exchange.
    fn request(&self) -> &dyn RequestView;

    /// The upstream's response head, once `read_response_head` succeeded.
    fn response(&self) -> &dyn ResponseView;

    /// The request asked to switch protocols (`Connection: upgrade`).
    fn wants_upgrade(&self) -> bool;

    /// Body bytes received from the client and sent to it so far (Envoy's
    /// `BYTES_RECEIVED` and `BYTES_SENT`): for the access log.
    fn body_bytes(&self) -> (u64, u64);

    /// The grpc-status the client got, when it got one (a gRPC call's
    /// answer: in the head of a Trailers-Only response, or in trailers).
    fn grpc_status(&self) -> Option<u8>;

    /// The whole request is still in the proxy's hands: it can be sent
    /// again (no streamed body was consumed).
    fn replayable(&self) -> bool;

    /// The client may still be sending a body nobody read: the connection
    /// cannot be reused after an early answer.
    fn body_unread(&self) -> bool;

    /// The connection's timer, for waits the phases own (connect, fault
    /// delays).
    fn timer(&mut self) -> &mut Timer;

    /// Copy the request body as it is relayed, up to `limit` bytes, for
    /// a mirror (`mirror`). Called before `prepare_request`, only for a
    /// mirrored request with a body.
    fn copy_body(&mut self, limit: u64);

    /// The copy `copy_body` started, as far as it got.
    fn body_copy(&mut self) -> Option<&mut crate::mirror::BodyCopy>;

    /// Answer with a response the proxy makes. `close` asks for the
    /// connection to close after it.
    async fn respond(&mut self, local: Local<'_>, close: bool) -> After;

    /// Encode the request for an HTTP/1.1 upstream once (the head with the
    /// edits applied, and the part of the body already here); every try
    /// sends this encoding. A body already known to be malformed is an
    /// error here, before anything is sent anywhere.
    fn prepare_request(&mut self, edits: &RequestEdits<'_>) -> Result<(), ProxyError>;

    /// Tell a client waiting on `Expect: 100-continue` to send its body.
    async fn continue_body(&mut self) -> Result<(), Aborted>;

    /// Send the prepared request on `up` (its head by `write_by`), then
    /// stream the rest of the body (each read and write within `stall`).
    /// `Ok(true)` when a body was streamed after the head.
    async fn send_request(
        &mut self,
        up: &mut Stream,
        write_by: Instant,
        stall: Duration,
    ) -> Result<bool, SendError>;

    /// Read the response head from `up` by `deadline`, forwarding interim
    /// (1xx) responses to the client.
    async fn read_response_head(
        &mut self,
        up: &mut Stream,
        deadline: Option<Instant>,
    ) -> Result<(), HeadRead>;

    /// Drop a response that will not be used, or what arrived of it (a
    /// retried try, also one that failed): the read buffer is clean again.
    fn discard_response(&mut self);

    /// Send the response head (with `edits`) and its body from `up` to
    /// the client. `close`: the client connection closes after it.
    async fn send_response(
        &mut self,
        up: &mut UpstreamConn,
        edits: &HeaderEdits,
        close: bool,
    ) -> Result<(ResponseEnd, After), Aborted>;

    /// Send a `101 Switching Protocols` head (with `edits`); the
    /// connection becomes a tunnel.
    async fn switch_protocols(&mut self, edits: &HeaderEdits) -> Result<(), Aborted>;

    /// The request for an HTTP/2 upstream, edits applied, and whether a
    /// body follows its head (`None`: the target cannot form a URI).
    /// Built for each try.
    fn h2_request(&self, edits: &RequestEdits<'_>) -> Option<(http::Request<()>, bool)>;

    /// Send the request body on `body` (what the proxy holds, then the
    /// rest) and wait for the response head by `deadline`. Where the
    /// client's protocol allows, the head may arrive while the body still
    /// streams (`Ok((_, false))`): `send_response_h2` sends the rest, full
    /// duplex.
    async fn h2_exchange(
        &mut self,
        body: &mut h2::SendStream<bytes::Bytes>,
        response: h2::client::ResponseFuture,
        deadline: Instant,
        stall: Duration,
    ) -> Result<(http::Response<h2::RecvStream>, bool), H2HeadError>;

    /// Forward an HTTP/2 upstream's response: head (with `edits`), body
    /// and trailers, sending the rest of a still-streaming request body
    /// meanwhile when the client's protocol allows.
    async fn send_response_h2(
        &mut self,
        up: &mut H2Exchange,
        edits: &HeaderEdits,
        close: bool,
    ) -> Result<After, Aborted>;
}
