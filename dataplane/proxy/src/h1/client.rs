//! The upstream side of an HTTP/1.1 exchange, for a client connection
//! (`h1::server`): encode the request once, send it (head and the part of
//! the body that arrived with it in one write, then the rest streamed),
//! read the response head, and forward the response.

use std::time::Duration;

use monoio::io::AsyncWriteRentExt;
use ringmesh_http1::rewrite::{
    self, ConnectionHeader, HeaderEdits, RequestContext, ResponseFraming,
};
use ringmesh_http1::{parse_response, BodyFraming, ChunkedDecoder, Limits, ResponseHead, Version};

use super::relay::{coalesce, relay, BodyMode, Relay, RelayError};
use super::server::{H1Conn, READ_BUFFER};
use super::view::H1Response;
use crate::config::model::ForwardedProto;
use crate::error::ProxyError;
use crate::pipeline::{Aborted, After, HeadRead, RequestEdits, ResponseEnd, SendError};
use crate::timer::Timer;
use crate::transport::Stream;
use crate::upstream::UpstreamConn;
use crate::view::RequestView;

/// Most body bytes sent in the same write as their head: one TCP segment
/// and one wakeup of the peer instead of two costs far more than copying
/// up to this much.
const SMALL_BODY: usize = 16 * 1024;

/// Upstream response heads get the default 64 KiB limit plus read slack.
const HEAD_LIMIT: usize = 64 * 1024 + READ_BUFFER;

impl H1Conn<'_> {
    /// Encode the request for the upstream into `wbuf`: the rewritten head
    /// and the part of the body already buffered. A chunked body whose
    /// buffered part is already malformed is refused here, before anything
    /// is sent upstream.
    pub(super) fn encode_request(&mut self, edits: &RequestEdits<'_>) -> Result<(), ProxyError> {
        self.check_body_start()?;
        let w = &mut *self.w;
        let head = &w.req.head;
        if w.wbuf.capacity() == 0 {
            w.wbuf = self.core.pool.take_buf();
        }
        w.wbuf.clear();
        let ctx = RequestContext {
            client_ip: edits.client_ip,
            proto: edits.scheme,
            fallback_host: edits.fallback_host,
            trust_proto: edits.forwarded_proto == ForwardedProto::Trust,
            client_cert: edits.client_cert,
            propagated: edits.propagated,
            rewrite: edits.rewrite,
        };
        rewrite::write_request_head(&mut w.wbuf, w.req.rbuf.pinned(), head, &ctx, edits.headers);
        let mode = match head.framing {
            BodyFraming::Length(n) => Some(BodyMode::Length(n)),
            BodyFraming::Chunked => Some(BodyMode::Chunked),
            _ => None,
        };
        let head_len = w.wbuf.len();
        let rest = mode.and_then(|m| coalesce(&mut w.req.rbuf, &mut w.wbuf, m, SMALL_BODY));
        if let Some(copy) = self.state.copy.as_deref_mut() {
            copy.push_wire(&w.wbuf[head_len..]);
        }
        self.state.bytes_in += (w.wbuf.len() - head_len) as u64;
        self.state.body_pending = rest.is_some();
        self.state.rest = rest;
        self.state.encoded = true;
        self.state.head_len = head_len;
        Ok(())
    }

    /// For an upstream that is not HTTP/1.1: the body stays where it is,
    /// but a chunked body whose buffered part is already malformed is
    /// refused before anything is sent, as `encode_request` does.
    pub(super) fn check_body_start(&mut self) -> Result<(), ProxyError> {
        let req = &self.w.req;
        if req.head.framing == BodyFraming::Chunked {
            ChunkedDecoder::new()
                .scan(req.rbuf.data())
                .map_err(ProxyError::BadRequestBody)?;
        }
        Ok(())
    }

    /// Send the encoded request, then relay the rest of the body. `wbuf`
    /// keeps the encoding until the response head arrives, for a retry.
    pub(super) async fn send_upstream(
        &mut self,
        up: &mut Stream,
        write_by: monoio::time::Instant,
        stall: Duration,
    ) -> Result<bool, SendError> {
        let w = &mut *self.w;
        let head = std::mem::take(&mut w.wbuf);
        let sent = w.timer.until(write_by, up.write_all(head)).await;
        let sent = match sent {
            Ok((res, head)) => {
                w.wbuf = head;
                res
            }
            // The encoding went with the dropped write: not replayable.
            Err(_) => return Err(SendError::Stalled),
        };
        if sent.is_err() {
            return Err(SendError::Upstream { early: false });
        }
        let Some(mode) = self.state.rest.filter(|_| self.state.body_pending) else {
            return Ok(false);
        };
        self.state.relay_started = true;
        let ctx = Relay {
            scratch: &mut w.scratch,
            timer: &mut w.timer,
            idle: stall,
            copy: self.state.copy.as_deref_mut(),
        };
        match relay(&mut self.io, &mut w.req.rbuf, up, mode, ctx).await {
            Ok(n) => {
                self.state.bytes_in += n;
                self.state.body_pending = false;
                Ok(true)
            }
            Err(RelayError::Framing(c)) => Err(SendError::BadBody(ProxyError::BadRequestBody(c))),
            Err(RelayError::Write(_)) => Err(SendError::Upstream { early: true }),
            Err(RelayError::Timeout) => Err(SendError::Stalled),
            Err(RelayError::Read(_) | RelayError::Truncated) => Err(SendError::Client),
        }
    }

    /// Read the final response head into the workspace, forwarding interim
    /// 1xx responses to the client on the way (our own `100 Continue` was
    /// already sent and is dropped).
    pub(super) async fn read_upstream_head(
        &mut self,
        up: &mut Stream,
        deadline: Option<monoio::time::Instant>,
    ) -> Result<(), HeadRead> {
        let is_head = self.w.req.method() == b"HEAD";
        let stall = self.stall();
        let mut received = false;
        loop {
            let w = &mut *self.w;
            read_head(
                up,
                &mut w.up,
                &mut w.timer,
                deadline,
                is_head,
                &mut received,
            )
            .await?;
            let resp = &mut w.up;
            if !resp.head.is_interim() {
                return Ok(());
            }
            let n = resp.head.head_len;
            if resp.head.status == 100 {
                resp.ubuf.consume(n);
                continue;
            }
            let write = resp.ubuf.write_to(&mut self.io, n);
            match w.timer.within(stall, write).await {
                Ok(Ok(())) => {}
                _ => return Err(HeadRead::ClientGone),
            }
        }
    }

    /// Write the response head (rewritten, with the route's edits) and the
    /// part of the body that arrived with it, then relay the rest.
    pub(super) async fn forward_response(
        &mut self,
        up: &mut UpstreamConn,
        edits: &HeaderEdits,
        close: bool,
    ) -> Result<(ResponseEnd, After), Aborted> {
        // A body the client is still sending (the upstream answered early)
        // ends the connection after the response.
        let must_close = close || self.state.body_pending;
        let plan = response_plan(&self.w.up.head, &self.w.req.head, must_close);
        let w = &mut *self.w;
        w.wbuf.clear();
        rewrite::write_response_head(
            &mut w.wbuf,
            w.up.ubuf.data(),
            &w.up.head,
            plan.framing,
            plan.connection,
            edits,
        );
        w.up.ubuf.consume(w.up.head.head_len);
        let head_len = w.wbuf.len();
        let rest = plan
            .body
            .and_then(|mode| coalesce(&mut w.up.ubuf, &mut w.wbuf, mode, SMALL_BODY));
        self.state.bytes_out += (w.wbuf.len() - head_len) as u64;
        self.write_out().await?;
        if let Some(mode) = rest {
            let stall = self.stall();
            let w = &mut *self.w;
            let ctx = Relay {
                scratch: &mut w.scratch,
                timer: &mut w.timer,
                idle: stall,
                copy: None,
            };
            self.state.bytes_out += relay(&mut up.stream, &mut w.up.ubuf, &mut self.io, mode, ctx)
                .await
                .map_err(|e| Aborted {
                    why: match e {
                        RelayError::Write(_) => "client closed during the response body",
                        RelayError::Timeout => "response body stalled",
                        _ => "upstream failed during the response body",
                    },
                })?;
        }
        // Reuse the upstream connection only after a cleanly delimited
        // response with nothing unexpected behind it.
        let delimited = !matches!(plan.body, Some(BodyMode::UntilClose | BodyMode::Rechunk));
        let end = if self.w.up.head.keep_alive && delimited && self.w.up.ubuf.is_empty() {
            ResponseEnd::Reusable
        } else {
            ResponseEnd::NotReusable
        };
        let after = if plan.client_keep_alive {
            After::KeepAlive
        } else {
            After::Close
        };
        Ok((end, after))
    }
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
fn response_plan(
    resp: &ResponseHead,
    req: &ringmesh_http1::RequestHead,
    must_close: bool,
) -> ResponsePlan {
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

/// Read from `up` until `resp` holds a complete response head, interim
/// (1xx) or final, by `deadline`. `received`: a byte of this exchange
/// arrived already (a close is then a reset, not an idle close).
pub async fn read_head(
    up: &mut Stream,
    resp: &mut H1Response,
    timer: &mut Timer,
    deadline: Option<monoio::time::Instant>,
    is_head: bool,
    received: &mut bool,
) -> Result<(), HeadRead> {
    let limits = Limits::default();
    loop {
        match parse_response(resp.ubuf.data(), &limits, is_head, &mut resp.head) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(HeadRead::Failed(ProxyError::BadUpstreamResponse(e))),
        }
        let fill = resp.ubuf.fill(up, HEAD_LIMIT);
        let read = match deadline {
            Some(d) => timer.until(d, fill).await,
            None => Ok(fill.await),
        };
        match read {
            Err(_) => return Err(HeadRead::Failed(ProxyError::UpstreamTimeout)),
            Ok(Err(e)) => {
                return Err(match crate::tls::reason::of_io(&e) {
                    // A TLS alert: the upstream said why.
                    Some(why) => HeadRead::Failed(ProxyError::UpstreamTls(why)),
                    None if !*received => HeadRead::ClosedEarly,
                    None => HeadRead::Failed(ProxyError::UpstreamReset),
                });
            }
            Ok(Ok(0)) if !*received => return Err(HeadRead::ClosedEarly),
            Ok(Ok(0)) => return Err(HeadRead::Failed(ProxyError::UpstreamReset)),
            Ok(Ok(_)) => *received = true,
        }
    }
}
