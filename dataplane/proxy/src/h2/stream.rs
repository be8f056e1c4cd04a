//! One HTTP/2 request stream as the pipeline's `Downstream`: the request
//! from h2's decoded parts and body, forwarded in the cluster's protocol
//! (HTTP/1.1 bytes, or HTTP/2 frames on a shared upstream connection),
//! the response back as HTTP/2 frames.
//!
//! Body bytes are copied once between protocols (h2 hands DATA over as
//! `Bytes` it owns and takes `Bytes` to send; HTTP/1.1 upstreams take
//! bytes from the proxy's buffers); from one HTTP/2 side to the other
//! they are passed on as they are.
//!
//! With an HTTP/2 upstream the exchange is full duplex: the response head
//! may arrive while the client still sends its body, and both directions
//! then move at once (gRPC bidi streaming). With an HTTP/1.1 upstream the
//! body is sent before the response head is read. Flow control is
//! explicit both ways (`body`), each wait towards the client bounded by
//! the stall limit; a client's RST_STREAM while the proxy waits for the
//! upstream ends the exchange at once and resets the upstream's stream.

use std::future::poll_fn;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{select, Either};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use monoio::io::AsyncWriteRentExt;
use ringmesh_http1::chunked::write_chunk_header;
use ringmesh_http1::rewrite::HeaderEdits;
use ringmesh_http1::{BodyFraming, ChunkedDecoder, ResponseHead};

use super::body::{send_down, ClientBody, Piece};
use super::encode;
use super::view::H2Request;
use crate::buf::ReadBuf;
use crate::error::ProxyError;
use crate::h1::client::read_head;
use crate::h1::view::H1Response;
use crate::pipeline::{
    Aborted, After, Downstream, H2HeadError, HeadRead, Local, RequestEdits, ResponseEnd, SendError,
};
use crate::router::is_grpc;
use crate::timer::Timer;
use crate::transport::Stream;
use crate::upstream::h2::{head_result, H2Exchange};
use crate::upstream::UpstreamConn;
use crate::view::{RequestView, ResponseView};
use crate::worker::Core;

/// Most response bytes read from an HTTP/1.1 upstream at once.
const BODY_READ: usize = 64 * 1024;

pub struct H2Stream {
    req: H2Request,
    body: ClientBody,
    respond: SendResponse<Bytes>,
    core: Rc<Core>,
    /// An HTTP/1.1 upstream's response.
    up: H1Response,
    /// The request encoded for an HTTP/1.1 upstream: head and held body.
    wbuf: Vec<u8>,
    /// The request was encoded into `wbuf` (`prepare_request`).
    encoded: bool,
    scratch: Vec<u8>,
    timer: Timer,
    /// An HTTP/1.1 upstream gets the body chunked (no content-length).
    chunked: bool,
    grpc: bool,
    stall: Duration,
    /// A response head left for the client.
    answered: bool,
    /// The grpc-status the client got.
    grpc_status: Option<u8>,
    /// DATA bytes sent to the client, for the access log.
    sent: u64,
}

impl H2Stream {
    pub fn new(
        req: H2Request,
        recv: RecvStream,
        respond: SendResponse<Bytes>,
        core: Rc<Core>,
        stall: Duration,
    ) -> Self {
        let grpc = is_grpc(&req);
        H2Stream {
            req,
            body: ClientBody::new(recv),
            respond,
            up: H1Response {
                ubuf: ReadBuf::with_capacity(0),
                head: ResponseHead::default(),
            },
            core,
            wbuf: Vec::new(),
            encoded: false,
            scratch: Vec::new(),
            timer: Timer::new(),
            chunked: false,
            grpc,
            stall,
            answered: false,
            grpc_status: None,
            sent: 0,
        }
    }

    /// Give the pooled buffers back; `true` when the stream ended without
    /// a response (the client reset it first).
    pub fn finish(self) -> bool {
        let pool = &self.core.pool;
        if self.up.ubuf.capacity() > 0 {
            pool.put_buf(self.up.ubuf.into_vec());
        }
        if self.wbuf.capacity() > 0 {
            pool.put_buf(self.wbuf);
        }
        !self.answered
    }

    /// Append `piece` for an HTTP/1.1 upstream, framed as the head said.
    fn encode_piece(out: &mut Vec<u8>, chunked: bool, piece: &Piece) {
        match piece {
            Piece::Data(d) if d.is_empty() => {}
            Piece::Data(d) => {
                if chunked {
                    write_chunk_header(out, d.len());
                }
                out.extend_from_slice(d);
                if chunked {
                    out.extend_from_slice(b"\r\n");
                }
            }
            Piece::Trailers(t) if chunked => encode::write_h1_trailers(out, t),
            Piece::End if chunked => out.extend_from_slice(b"0\r\n\r\n"),
            Piece::Trailers(_) | Piece::End => {}
        }
    }

    /// The response body from an HTTP/1.1 upstream to the client.
    async fn relay_h1_response(
        &mut self,
        up: &mut Stream,
        send: &mut SendStream<Bytes>,
        framing: BodyFraming,
    ) -> Result<(), Aborted> {
        let stall = self.stall;
        let ubuf = &mut self.up.ubuf;
        let mut remaining = match framing {
            BodyFraming::Length(n) => n,
            _ => u64::MAX,
        };
        let mut decoder = ChunkedDecoder::new();
        ubuf.reserve_for_body();
        loop {
            if ubuf.is_empty() {
                let n = match self.timer.within(stall, ubuf.fill(up, BODY_READ)).await {
                    Err(_) => return Err(aborted("response body stalled")),
                    Ok(Err(_)) => return Err(aborted("upstream failed during the response body")),
                    Ok(Ok(n)) => n,
                };
                if n == 0 {
                    return match framing {
                        BodyFraming::UntilClose => {
                            send_down(send, Bytes::new(), true, &mut self.timer, stall)
                                .await
                                .map_err(aborted)
                        }
                        _ => Err(aborted("upstream closed during the response body")),
                    };
                }
            }
            let (data, done) = match framing {
                BodyFraming::Length(_) => {
                    let n = remaining.min(ubuf.len() as u64) as usize;
                    let data = Bytes::copy_from_slice(&ubuf.data()[..n]);
                    ubuf.consume(n);
                    remaining -= n as u64;
                    (data, remaining == 0)
                }
                BodyFraming::Chunked => {
                    let scratch = &mut self.scratch;
                    scratch.clear();
                    let data = ubuf.data();
                    let n = decoder
                        .advance(data, |s, e| scratch.extend_from_slice(&data[s..e]))
                        .map_err(|_| aborted("upstream sent a malformed chunked body"))?;
                    ubuf.consume(n);
                    (Bytes::copy_from_slice(scratch), decoder.is_done())
                }
                _ => {
                    let data = Bytes::copy_from_slice(ubuf.data());
                    ubuf.consume(ubuf.len());
                    (data, false)
                }
            };
            self.sent += data.len() as u64;
            send_down(send, data, done, &mut self.timer, stall)
                .await
                .map_err(aborted)?;
            if done {
                return Ok(());
            }
        }
    }
}

fn aborted(why: &'static str) -> Aborted {
    Aborted { why }
}

/// Resolves when the client resets its stream.
async fn client_reset(respond: &mut SendResponse<Bytes>) {
    let _ = poll_fn(|cx| respond.poll_reset(cx)).await;
}

/// An HTTP/2 upstream's response body and trailers, to the client. A
/// failure of the upstream's stream after the head is passed on: a gRPC
/// call gets UNAVAILABLE in trailers (its status must arrive somehow), any
/// other stream a reset.
async fn relay_h2_response(
    recv: &mut RecvStream,
    send: &mut SendStream<Bytes>,
    timer: &mut Timer,
    stall: Duration,
    grpc: bool,
    status: &mut Option<u8>,
    sent: &mut u64,
) -> Result<(), Aborted> {
    enum Event {
        Data(Option<Result<Bytes, h2::Error>>),
        ClientReset,
    }
    loop {
        let next = poll_fn(|cx| {
            if send.poll_reset(cx).is_ready() {
                return Poll::Ready(Event::ClientReset);
            }
            recv.poll_data(cx).map(Event::Data)
        });
        match timer.within(stall, next).await {
            Err(_) => return Err(fail_after_head(send, grpc, status, "response body stalled")),
            Ok(Event::ClientReset) => return Err(aborted("client reset the stream")),
            Ok(Event::Data(Some(Ok(d)))) => {
                let n = d.len();
                *sent += n as u64;
                send_down(send, d, false, timer, stall)
                    .await
                    .map_err(aborted)?;
                let _ = recv.flow_control().release_capacity(n);
            }
            Ok(Event::Data(Some(Err(_)))) => {
                return Err(fail_after_head(
                    send,
                    grpc,
                    status,
                    "upstream reset during the response body",
                ))
            }
            Ok(Event::Data(None)) => break,
        }
    }
    match poll_fn(|cx| recv.poll_trailers(cx)).await {
        Ok(Some(t)) => {
            if let Some(code) = crate::grpc::status_in(&t) {
                *status = Some(code);
            }
            send.send_trailers(t)
        }
        Ok(None) => send.send_data(Bytes::new(), true),
        Err(_) => {
            return Err(fail_after_head(
                send,
                grpc,
                status,
                "upstream reset before its trailers",
            ))
        }
    }
    .map_err(|_| aborted("client reset the stream"))
}

fn fail_after_head(
    send: &mut SendStream<Bytes>,
    grpc: bool,
    status: &mut Option<u8>,
    why: &'static str,
) -> Aborted {
    if grpc {
        *status = Some(14);
        let mut t = http::HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static("14"));
        if let Ok(v) = http::HeaderValue::from_str(&encode::grpc_message(why)) {
            t.insert("grpc-message", v);
        }
        let _ = send.send_trailers(t);
    } else {
        send.send_reset(h2::Reason::INTERNAL_ERROR);
    }
    aborted(why)
}

impl Downstream for H2Stream {
    fn request(&self) -> &dyn RequestView {
        &self.req
    }

    fn response(&self) -> &dyn ResponseView {
        &self.up
    }

    fn wants_upgrade(&self) -> bool {
        false
    }

    fn grpc_status(&self) -> Option<u8> {
        self.grpc_status
    }

    fn body_bytes(&self) -> (u64, u64) {
        (self.body.received, self.sent)
    }

    fn replayable(&self) -> bool {
        if self.encoded {
            // For an HTTP/1.1 upstream the request is sent from `wbuf`,
            // which holds only what was held when it was encoded.
            !self.body.relay_started && !self.wbuf.is_empty()
        } else {
            self.body.replayable()
        }
    }

    fn body_unread(&self) -> bool {
        self.body.pending
    }

    fn copy_body(&mut self, limit: u64) {
        self.body.copy = Some(crate::mirror::BodyCopy::h2(limit));
    }

    fn body_copy(&mut self) -> Option<&mut crate::mirror::BodyCopy> {
        self.body.copy.as_deref_mut()
    }

    fn timer(&mut self) -> &mut Timer {
        &mut self.timer
    }

    async fn respond(&mut self, local: Local<'_>, _close: bool) -> After {
        let is_head = self.req.parts.method == http::Method::HEAD;
        if let (true, Local::Error(err)) = (self.grpc, local) {
            self.grpc_status = Some(err.grpc_status());
        }
        let (resp, body) = encode::local_response(local, self.grpc, is_head);
        let end = body.is_empty();
        let sent = self.respond.send_response(resp, end);
        self.answered = sent.is_ok();
        match sent {
            Ok(mut send) if !end => {
                let stall = self.stall;
                self.sent += body.len() as u64;
                let _ = send_down(&mut send, body, true, &mut self.timer, stall).await;
            }
            _ => {}
        }
        After::KeepAlive
    }

    fn prepare_request(&mut self, edits: &RequestEdits<'_>) -> Result<(), ProxyError> {
        self.body.hold_ready();
        if !edits.h1_upstream {
            return Ok(());
        }
        self.chunked = matches!(self.req.body(), crate::view::BodyKind::Streamed);
        if self.wbuf.capacity() == 0 {
            self.wbuf = self.core.pool.take_buf();
        }
        self.wbuf.clear();
        encode::write_h1_request(&mut self.wbuf, &self.req, edits, self.chunked);
        for d in &self.body.held {
            Self::encode_piece(&mut self.wbuf, self.chunked, &Piece::Data(d.clone()));
        }
        if !self.body.pending {
            let last = match &self.body.held_trailers {
                Some(t) => Piece::Trailers(t.clone()),
                None => Piece::End,
            };
            Self::encode_piece(&mut self.wbuf, self.chunked, &last);
        }
        self.encoded = true;
        Ok(())
    }

    async fn continue_body(&mut self) -> Result<(), Aborted> {
        Ok(())
    }

    async fn send_request(
        &mut self,
        up: &mut Stream,
        write_by: monoio::time::Instant,
        stall: Duration,
    ) -> Result<bool, SendError> {
        let head = std::mem::take(&mut self.wbuf);
        let sent = match self.timer.until(write_by, up.write_all(head)).await {
            Ok((res, head)) => {
                self.wbuf = head;
                res
            }
            Err(_) => return Err(SendError::Stalled),
        };
        if sent.is_err() {
            return Err(SendError::Upstream { early: false });
        }
        if !self.body.pending {
            return Ok(false);
        }
        while self.body.pending {
            let piece = match self.timer.within(stall, self.body.next()).await {
                Err(_) => return Err(SendError::Stalled),
                Ok(piece) => piece?,
            };
            self.scratch.clear();
            Self::encode_piece(&mut self.scratch, self.chunked, &piece);
            if !self.scratch.is_empty() {
                let out = std::mem::take(&mut self.scratch);
                let (res, out) = match self.timer.within(stall, up.write_all(out)).await {
                    Ok(r) => r,
                    Err(_) => return Err(SendError::Stalled),
                };
                self.scratch = out;
                if res.is_err() {
                    return Err(SendError::Upstream { early: true });
                }
            }
            self.body.release();
        }
        Ok(true)
    }

    async fn read_response_head(
        &mut self,
        up: &mut Stream,
        deadline: Option<monoio::time::Instant>,
    ) -> Result<(), HeadRead> {
        let is_head = self.req.parts.method == http::Method::HEAD;
        if self.up.ubuf.capacity() == 0 {
            self.up.ubuf = ReadBuf::from_vec(self.core.pool.take_buf());
        }
        let mut received = false;
        loop {
            let read = read_head(
                up,
                &mut self.up,
                &mut self.timer,
                deadline,
                is_head,
                &mut received,
            );
            match select(pin!(read), pin!(client_reset(&mut self.respond))).await {
                Either::Left((r, _)) => r?,
                Either::Right(_) => return Err(HeadRead::ClientGone),
            }
            if !self.up.head.is_interim() {
                return Ok(());
            }
            // Interim responses are not forwarded over HTTP/2.
            self.up.ubuf.consume(self.up.head.head_len);
        }
    }

    fn discard_response(&mut self) {
        self.up.ubuf.clear();
    }

    async fn send_response(
        &mut self,
        up: &mut UpstreamConn,
        edits: &HeaderEdits,
        _close: bool,
    ) -> Result<(ResponseEnd, After), Aborted> {
        // One copy of the head and, when the body came whole with it (the
        // common small response), of the body: the head's values and the
        // body are slices of it.
        let framing = self.up.head.framing;
        let head_len = self.up.head.head_len;
        let here = self.up.ubuf.len().saturating_sub(head_len) as u64;
        let whole = match framing {
            BodyFraming::Length(n) if here >= n => Some(n as usize),
            _ => None,
        };
        let arrived = Bytes::copy_from_slice(&self.up.ubuf.data()[..head_len + whole.unwrap_or(0)]);
        let resp = encode::h2_response(&arrived, &self.up.head, edits);
        self.grpc_status = crate::grpc::status(&self.up);
        self.up.ubuf.consume(head_len);
        let empty = framing == BodyFraming::Empty || whole == Some(0);
        let mut send = self
            .respond
            .send_response(resp, empty)
            .map_err(|_| aborted("client reset the stream"))?;
        self.answered = true;
        match whole {
            _ if empty => {}
            Some(n) => {
                self.up.ubuf.consume(n);
                let body = arrived.slice(head_len..head_len + n);
                self.sent += n as u64;
                send_down(&mut send, body, true, &mut self.timer, self.stall)
                    .await
                    .map_err(aborted)?;
            }
            None => {
                self.relay_h1_response(&mut up.stream, &mut send, framing)
                    .await?
            }
        }
        let delimited = framing != BodyFraming::UntilClose;
        let end = if self.up.head.keep_alive && delimited && self.up.ubuf.is_empty() {
            ResponseEnd::Reusable
        } else {
            ResponseEnd::NotReusable
        };
        Ok((end, After::KeepAlive))
    }

    async fn switch_protocols(&mut self, _edits: &HeaderEdits) -> Result<(), Aborted> {
        Err(aborted("protocol switch over HTTP/2"))
    }

    fn h2_request(&self, edits: &RequestEdits<'_>) -> Option<(http::Request<()>, bool)> {
        let req = encode::h2_upstream_request(&self.req, edits)?;
        let has_body =
            !self.body.held.is_empty() || self.body.pending || self.body.held_trailers.is_some();
        Some((req, has_body))
    }

    async fn h2_exchange(
        &mut self,
        body: &mut SendStream<Bytes>,
        response: h2::client::ResponseFuture,
        deadline: monoio::time::Instant,
        _stall: Duration,
    ) -> Result<(http::Response<RecvStream>, bool), H2HeadError> {
        let has_body =
            !self.body.held.is_empty() || self.body.pending || self.body.held_trailers.is_some();
        if has_body {
            self.body.send_held(body).await.map_err(H2HeadError::Send)?;
        }
        let mut head = pin!(self.timer.until(deadline, response));
        // Full duplex: the client's body moves while the head is awaited;
        // an upstream that stopped taking it may still answer.
        while self.body.pending {
            let raced = {
                let pump = pin!(self.body.pump_one(body));
                match select(pump, head.as_mut()).await {
                    Either::Left((pumped, _)) => Either::Left(pumped),
                    Either::Right((r, _)) => Either::Right(r),
                }
            };
            match raced {
                Either::Left(Ok(())) => {}
                Either::Left(Err(SendError::Upstream { .. })) => break,
                Either::Left(Err(e)) => return Err(H2HeadError::Send(e)),
                Either::Right(r) => return head_result(r, !self.body.pending),
            }
        }
        match select(head, pin!(client_reset(&mut self.respond))).await {
            Either::Left((r, _)) => head_result(r, true),
            Either::Right(_) => Err(H2HeadError::ClientGone),
        }
    }

    async fn send_response_h2(
        &mut self,
        up: &mut H2Exchange,
        edits: &HeaderEdits,
        _close: bool,
    ) -> Result<After, Aborted> {
        let head = encode::h2_response_from_h2(&up.head, edits);
        self.grpc_status = crate::grpc::status(&*up);
        let end = up.body.is_end_stream();
        let mut send = self
            .respond
            .send_response(head, end)
            .map_err(|_| aborted("client reset the stream"))?;
        self.answered = true;
        if end {
            return Ok(After::KeepAlive);
        }
        let stall = self.stall;
        let relay = pin!(relay_h2_response(
            &mut up.body,
            &mut send,
            &mut self.timer,
            stall,
            self.grpc,
            &mut self.grpc_status,
            &mut self.sent,
        ));
        let Some(request) = up.request.as_mut() else {
            relay.await?;
            return Ok(After::KeepAlive);
        };
        // The rest of the client's body goes on while the response flows;
        // the exchange is over when the response is.
        match select(relay, pin!(self.body.pump_all(request))).await {
            Either::Left((done, _)) => done?,
            Either::Right((Ok(()), relay)) => relay.await?,
            Either::Right((Err(SendError::Upstream { .. }), relay)) => relay.await?,
            Either::Right((Err(_), _)) => return Err(aborted("client reset the stream")),
        }
        Ok(After::KeepAlive)
    }
}
