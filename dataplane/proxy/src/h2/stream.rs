//! One HTTP/2 request stream as the pipeline's `Downstream`: the request
//! from h2's decoded parts and body, the upstream exchange in HTTP/1.1
//! (the cluster's protocol), the response back as HTTP/2 frames.
//!
//! Body bytes cross protocols here, so they are copied once each way: h2
//! hands DATA over as `Bytes` it owns, and takes `Bytes` to send. The
//! part of a request body that arrived with its head rides in the same
//! upstream write as the head (as for HTTP/1.1 clients), and a request
//! whose body fits there stays replayable for retries.
//!
//! Flow control is explicit: request DATA is released to the client's
//! window only once written upstream, and response DATA waits for the
//! client's window (`poll_capacity`), each wait bounded by the stall
//! limit. A client's RST_STREAM while the proxy waits for the upstream
//! ends the exchange at once (the upstream connection is dropped).

use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{select, Either};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::HeaderMap;
use monoio::io::AsyncWriteRentExt;
use ringmesh_http1::chunked::write_chunk_header;
use ringmesh_http1::rewrite::HeaderEdits;
use ringmesh_http1::{BodyFraming, ChunkedDecoder, ResponseHead};

use super::encode;
use super::view::H2Request;
use crate::buf::ReadBuf;
use crate::error::ProxyError;
use crate::h1::client::read_head;
use crate::h1::view::H1Response;
use crate::pipeline::{
    Aborted, After, Downstream, HeadRead, Local, RequestEdits, ResponseEnd, SendError,
};
use crate::router::is_grpc;
use crate::timer::Timer;
use crate::transport::Stream;
use crate::upstream::UpstreamConn;
use crate::view::{RequestView, ResponseView};
use crate::worker::Core;

/// Most request body bytes sent in the same write as the head.
const SMALL_BODY: usize = 16 * 1024;
/// Most response bytes read from the upstream at once.
const BODY_READ: usize = 64 * 1024;

/// How the rest of the request body goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// As is: the client gave its length.
    Raw,
    /// Chunked, trailers in the trailer section.
    Chunked,
}

/// What the client's request stream yields next.
enum Piece {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
}

pub struct H2Stream {
    req: H2Request,
    body: RecvStream,
    respond: SendResponse<Bytes>,
    core: Rc<Core>,
    up: H1Response,
    /// The encoded request: head and the part of the body already here.
    wbuf: Vec<u8>,
    scratch: Vec<u8>,
    timer: Timer,
    framing: Framing,
    /// The request body still has pieces to send after `wbuf`.
    pending: bool,
    /// DATA of the request ended (trailers may follow).
    data_done: bool,
    /// Relaying the rest of the body began: the request cannot be resent.
    relay_started: bool,
    grpc: bool,
    stall: Duration,
}

impl H2Stream {
    pub fn new(
        req: H2Request,
        body: RecvStream,
        respond: SendResponse<Bytes>,
        core: Rc<Core>,
        stall: Duration,
    ) -> Self {
        let grpc = is_grpc(&req);
        let pending = !req.empty;
        let ubuf = ReadBuf::from_vec(core.pool.take_buf());
        H2Stream {
            req,
            body,
            respond,
            up: H1Response {
                ubuf,
                head: ResponseHead::default(),
            },
            core,
            wbuf: Vec::new(),
            scratch: Vec::new(),
            timer: Timer::new(),
            framing: Framing::Raw,
            pending,
            data_done: false,
            relay_started: false,
            grpc,
            stall,
        }
    }

    /// Give the pooled buffers back.
    pub fn finish(self) {
        let pool = &self.core.pool;
        pool.put_buf(self.up.ubuf.into_vec());
        if self.wbuf.capacity() > 0 {
            pool.put_buf(self.wbuf);
        }
    }

    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Result<Piece, h2::Error>> {
        poll_piece(&mut self.body, &mut self.data_done, cx)
    }

    /// Encode `piece` for the upstream into `out`; `true` when it ended
    /// the body.
    fn encode_piece(&mut self, piece: &Piece, to_wbuf: bool) -> bool {
        let out = if to_wbuf {
            &mut self.wbuf
        } else {
            &mut self.scratch
        };
        let chunked = self.framing == Framing::Chunked;
        match piece {
            Piece::Data(d) if d.is_empty() => false,
            Piece::Data(d) => {
                if chunked {
                    write_chunk_header(out, d.len());
                }
                out.extend_from_slice(d);
                if chunked {
                    out.extend_from_slice(b"\r\n");
                }
                let _ = self.body.flow_control().release_capacity(d.len());
                false
            }
            Piece::Trailers(t) => {
                if chunked {
                    encode::write_h1_trailers(out, t);
                }
                true
            }
            Piece::End => {
                if chunked {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                true
            }
        }
    }

    /// Take the body pieces that are already here, without waiting, up to
    /// `SMALL_BODY`: they leave with the head.
    fn coalesce(&mut self) {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        while self.pending && self.wbuf.len() < SMALL_BODY {
            match self.poll_piece(&mut cx) {
                Poll::Ready(Ok(piece)) => {
                    if self.encode_piece(&piece, true) {
                        self.pending = false;
                    }
                }
                // An error is met again (and answered) by the relay.
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
        }
    }

    /// Resolves when the client resets the stream.
    async fn reset(respond: &mut SendResponse<Bytes>) {
        let _ = poll_fn(|cx| respond.poll_reset(cx)).await;
    }

    /// The response body from the upstream to the client, as DATA.
    async fn relay_response(
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
                        BodyFraming::UntilClose => Ok(()),
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
            send_data(send, data, &mut self.timer, stall).await?;
            if done {
                return Ok(());
            }
        }
    }
}

/// The next piece of a request body, if one is ready.
fn poll_piece(
    body: &mut RecvStream,
    data_done: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Result<Piece, h2::Error>> {
    if !*data_done {
        match body.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => return Poll::Ready(Ok(Piece::Data(data))),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
            Poll::Ready(None) => *data_done = true,
            Poll::Pending => return Poll::Pending,
        }
    }
    match body.poll_trailers(cx) {
        Poll::Ready(Ok(Some(t))) => Poll::Ready(Ok(Piece::Trailers(t))),
        Poll::Ready(Ok(None)) => Poll::Ready(Ok(Piece::End)),
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

fn aborted(why: &'static str) -> Aborted {
    Aborted { why }
}

/// Send `data` on `send` as the client's window allows, each wait within
/// `stall`.
async fn send_data(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    timer: &mut Timer,
    stall: Duration,
) -> Result<(), Aborted> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let capacity = timer
            .within(stall, poll_fn(|cx| send.poll_capacity(cx)))
            .await;
        let n = match capacity {
            Err(_) => return Err(aborted("client stopped reading")),
            Ok(None) | Ok(Some(Err(_))) => return Err(aborted("client reset the stream")),
            Ok(Some(Ok(n))) => n,
        };
        if n == 0 {
            continue;
        }
        let chunk = data.split_to(n.min(data.len()));
        send.send_data(chunk, false)
            .map_err(|_| aborted("client reset the stream"))?;
    }
    Ok(())
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

    fn replayable(&self) -> bool {
        !self.relay_started && !self.wbuf.is_empty()
    }

    fn body_unread(&self) -> bool {
        self.pending
    }

    fn timer(&mut self) -> &mut Timer {
        &mut self.timer
    }

    async fn respond(&mut self, local: Local<'_>, _close: bool) -> After {
        let is_head = self.req.parts.method == http::Method::HEAD;
        let (resp, body) = encode::local_response(local, self.grpc, is_head);
        let end = body.is_empty();
        match self.respond.send_response(resp, end) {
            Ok(mut send) if !end => {
                let stall = self.stall;
                let sent = send_data(&mut send, body, &mut self.timer, stall).await;
                if sent.is_ok() {
                    let _ = send.send_data(Bytes::new(), true);
                }
            }
            _ => {}
        }
        After::KeepAlive
    }

    fn prepare_request(&mut self, edits: &RequestEdits<'_>) -> Result<(), ProxyError> {
        self.framing = match self.req.body() {
            crate::view::BodyKind::Streamed => Framing::Chunked,
            _ => Framing::Raw,
        };
        if self.wbuf.capacity() == 0 {
            self.wbuf = self.core.pool.take_buf();
        }
        self.wbuf.clear();
        encode::write_h1_request(
            &mut self.wbuf,
            &self.req,
            edits,
            self.framing == Framing::Chunked,
        );
        self.coalesce();
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
        if !self.pending {
            return Ok(false);
        }
        self.relay_started = true;
        loop {
            let (body, done) = (&mut self.body, &mut self.data_done);
            let piece = match self
                .timer
                .within(stall, poll_fn(|cx| poll_piece(body, done, cx)))
                .await
            {
                Err(_) => return Err(SendError::Stalled),
                Ok(Err(_)) => return Err(SendError::Client),
                Ok(Ok(piece)) => piece,
            };
            self.scratch.clear();
            let done = self.encode_piece(&piece, false);
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
            if done {
                self.pending = false;
                return Ok(true);
            }
        }
    }

    async fn read_response_head(
        &mut self,
        up: &mut Stream,
        deadline: Option<monoio::time::Instant>,
    ) -> Result<(), HeadRead> {
        let is_head = self.req.parts.method == http::Method::HEAD;
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
            let reset = std::pin::pin!(Self::reset(&mut self.respond));
            match select(std::pin::pin!(read), reset).await {
                Either::Left((r, _)) => r?,
                Either::Right(_) => return Err(HeadRead::ClientGone),
            }
            if !self.up.head.is_interim() {
                return Ok(());
            }
            // Interim responses are not forwarded over HTTP/2 yet.
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
        let resp = encode::h2_response(self.up.ubuf.data(), &self.up.head, edits);
        let framing = self.up.head.framing;
        self.up.ubuf.consume(self.up.head.head_len);
        let empty = framing == BodyFraming::Empty;
        let mut send = self
            .respond
            .send_response(resp, empty)
            .map_err(|_| aborted("client reset the stream"))?;
        if !empty {
            self.relay_response(&mut up.stream, &mut send, framing)
                .await?;
            send.send_data(Bytes::new(), true)
                .map_err(|_| aborted("client reset the stream"))?;
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
}
