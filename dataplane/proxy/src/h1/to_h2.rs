//! An HTTP/1.x client's request to an HTTP/2 upstream, and the response
//! back: the translation both ways.
//!
//! The request head becomes an `http::Request` (`h2::encode`); its body,
//! whatever its HTTP/1.1 framing, becomes DATA (de-chunked; chunked
//! trailers are not forwarded), sent before the response head is awaited:
//! an HTTP/1.1 connection cannot read and write at once here. The response
//! head becomes an HTTP/1.1 head: its content-length kept, else chunked
//! for an HTTP/1.1 client (trailers in the trailer section, so gRPC-style
//! trailers survive) or close-delimited for HTTP/1.0; DATA is written as
//! it arrives.

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use ringmesh_http1::chunked::write_chunk_header;
use ringmesh_http1::rewrite::{write_pair, write_status_line, HeaderEdits};
use ringmesh_http1::{BodyFraming, ChunkedDecoder, Version};

use super::server::{connection_header, H1Conn};
use crate::buf::write_vec;
use crate::error::reason_phrase;
use crate::h2::body::send_up;
use crate::pipeline::{Aborted, After, H2HeadError, SendError};
use crate::upstream::h2::{head_result, H2Exchange};
use crate::view::RequestView;

/// Most body bytes read from the client at once.
const BODY_READ: usize = 64 * 1024;

/// How the response body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    None,
    /// The upstream's content-length, as is.
    Sized,
    Chunked,
    /// Until the proxy closes (HTTP/1.0 client, length unknown).
    UntilClose,
}

impl H1Conn<'_> {
    /// Send the body, then wait for the response head by `deadline`.
    pub(super) async fn exchange_h2(
        &mut self,
        body: &mut SendStream<Bytes>,
        response: h2::client::ResponseFuture,
        deadline: monoio::time::Instant,
        stall: Duration,
    ) -> Result<(http::Response<RecvStream>, bool), H2HeadError> {
        if self.w.req.head.framing != BodyFraming::Empty {
            self.pump_body(body, stall)
                .await
                .map_err(H2HeadError::Send)?;
        }
        let r = self.w.timer.until(deadline, response).await;
        head_result(r, true)
    }

    /// The request body as DATA: the part coalesced behind an encoded
    /// head (a cluster that tried HTTP/1.1 first), then the rest from the
    /// client, de-chunked.
    async fn pump_body(
        &mut self,
        up: &mut SendStream<Bytes>,
        stall: Duration,
    ) -> Result<(), SendError> {
        let framing = self.w.req.head.framing;
        let mut left = match framing {
            BodyFraming::Length(n) => n,
            _ => u64::MAX,
        };
        let mut decoder = ChunkedDecoder::new();
        let mut done = false;
        if self.state.encoded {
            let w = &mut *self.w;
            let part = w.wbuf.get(self.state.head_len..).unwrap_or_default();
            let (_, data, end) = take(part, framing, &mut left, &mut decoder, &mut w.scratch)?;
            done = end;
            send_up(up, &mut Some(data)).await?;
        }
        self.state.relay_started = true;
        while !done {
            let w = &mut *self.w;
            let rbuf = &mut w.req.rbuf;
            if rbuf.is_empty() {
                rbuf.reserve_for_body();
                match w
                    .timer
                    .within(stall, rbuf.fill(&mut self.io, BODY_READ))
                    .await
                {
                    Err(_) => return Err(SendError::Stalled),
                    Ok(Ok(0)) | Ok(Err(_)) => return Err(SendError::Client),
                    Ok(Ok(_)) => {}
                }
            }
            let (used, data, end) = take(
                rbuf.data(),
                framing,
                &mut left,
                &mut decoder,
                &mut w.scratch,
            )?;
            // The part encoded behind a head was copied when it was
            // encoded; live bytes are copied here, as framed on the wire.
            if let Some(c) = self.state.copy.as_deref_mut() {
                c.push_wire(&rbuf.data()[..used]);
            }
            rbuf.consume(used);
            self.state.bytes_in += used as u64;
            done = end;
            send_up(up, &mut Some(data)).await?;
        }
        self.state.body_pending = false;
        up.send_data(Bytes::new(), true)
            .map_err(|_| SendError::Upstream { early: true })
    }

    /// Write an HTTP/2 upstream's response to the client.
    pub(super) async fn forward_h2_response(
        &mut self,
        up: &mut H2Exchange,
        edits: &HeaderEdits,
        close: bool,
    ) -> Result<After, Aborted> {
        let status = up.head.status.as_u16();
        let is_head = self.w.req.method() == b"HEAD";
        let version = self.w.req.head.version;
        let has_length = up.head.headers.contains_key(http::header::CONTENT_LENGTH);
        let end = up.body.is_end_stream();
        let out = if is_head || status == 204 || status == 304 {
            Out::None
        } else if has_length {
            Out::Sized
        } else if end {
            Out::None
        } else if version == Version::Http11 {
            Out::Chunked
        } else {
            Out::UntilClose
        };
        let keep = !close
            && self.w.req.head.keep_alive
            && !self.state.body_pending
            && out != Out::UntilClose;
        self.state.grpc_status = crate::grpc::status(&*up);
        self.write_h2_head(up, edits, out, end, keep, version);
        self.write_out().await?;
        if out == Out::None || end {
            return Ok(if keep { After::KeepAlive } else { After::Close });
        }
        self.relay_h2_body(&mut up.body, out).await?;
        Ok(if keep { After::KeepAlive } else { After::Close })
    }

    fn write_h2_head(
        &mut self,
        up: &H2Exchange,
        edits: &HeaderEdits,
        out: Out,
        end: bool,
        keep: bool,
        version: Version,
    ) {
        let w = &mut *self.w;
        if w.wbuf.capacity() == 0 {
            w.wbuf = self.core.pool.take_buf();
        }
        w.wbuf.clear();
        let status = up.head.status.as_u16();
        write_status_line(&mut w.wbuf, status, reason_phrase(status).as_bytes());
        for (name, value) in &up.head.headers {
            let n = name.as_str().as_bytes();
            if edits.remove.iter().any(|r| r.eq_ignore_ascii_case(n)) {
                continue;
            }
            write_pair(&mut w.wbuf, n, value.as_bytes());
        }
        match out {
            Out::Chunked => w.wbuf.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            // A response that ended with its head and gave no length: say
            // so, or an HTTP/1.1 client would wait for a close.
            Out::None
                if end
                    && status >= 200
                    && status != 204
                    && status != 304
                    && !up.head.headers.contains_key(http::header::CONTENT_LENGTH) =>
            {
                w.wbuf.extend_from_slice(b"content-length: 0\r\n");
            }
            _ => {}
        }
        w.wbuf.extend_from_slice(connection_header(keep, version));
        for (name, value) in &edits.add {
            write_pair(&mut w.wbuf, name, value);
        }
        w.wbuf.extend_from_slice(b"\r\n");
    }

    /// DATA to the client, framed by `out`; trailers end a chunked body.
    async fn relay_h2_body(&mut self, recv: &mut RecvStream, out: Out) -> Result<(), Aborted> {
        let stall = self.stall();
        let chunked = out == Out::Chunked;
        loop {
            let w = &mut *self.w;
            let next = w
                .timer
                .within(stall, poll_fn(|cx| recv.poll_data(cx)))
                .await;
            let data = match next {
                Err(_) => return Err(aborted("response body stalled")),
                Ok(Some(Ok(d))) => d,
                Ok(Some(Err(_))) => return Err(aborted("upstream reset during the response body")),
                Ok(None) => break,
            };
            let n = data.len();
            self.state.bytes_out += n as u64;
            w.scratch.clear();
            if chunked && n > 0 {
                write_chunk_header(&mut w.scratch, n);
            }
            w.scratch.extend_from_slice(&data);
            if chunked && n > 0 {
                w.scratch.extend_from_slice(b"\r\n");
            }
            self.write_scratch(stall).await?;
            let _ = recv.flow_control().release_capacity(n);
        }
        if !chunked {
            return Ok(());
        }
        let trailers = poll_fn(|cx| recv.poll_trailers(cx))
            .await
            .map_err(|_| aborted("upstream reset before its trailers"))?;
        let w = &mut *self.w;
        w.scratch.clear();
        if let Some(code) = trailers.as_ref().and_then(crate::grpc::status_in) {
            self.state.grpc_status = Some(code);
        }
        match trailers {
            Some(t) => crate::h2::encode::write_h1_trailers(&mut w.scratch, &t),
            None => w.scratch.extend_from_slice(b"0\r\n\r\n"),
        }
        self.write_scratch(stall).await
    }

    async fn write_scratch(&mut self, stall: Duration) -> Result<(), Aborted> {
        let w = &mut *self.w;
        match w
            .timer
            .within(stall, write_vec(&mut self.io, &mut w.scratch))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(aborted("client closed during the response body")),
            Err(_) => Err(aborted("client stopped reading")),
        }
    }
}

fn aborted(why: &'static str) -> Aborted {
    Aborted { why }
}

/// The body bytes in `input` as one DATA payload: returns the input
/// consumed, the data, and whether the body ended.
fn take(
    input: &[u8],
    framing: BodyFraming,
    left: &mut u64,
    decoder: &mut ChunkedDecoder,
    scratch: &mut Vec<u8>,
) -> Result<(usize, Bytes, bool), SendError> {
    match framing {
        BodyFraming::Chunked => {
            scratch.clear();
            let n = decoder
                .advance(input, |s, e| scratch.extend_from_slice(&input[s..e]))
                .map_err(|e| SendError::BadBody(crate::error::ProxyError::BadRequestBody(e)))?;
            Ok((n, Bytes::copy_from_slice(scratch), decoder.is_done()))
        }
        BodyFraming::Length(_) => {
            let n = (*left).min(input.len() as u64) as usize;
            *left -= n as u64;
            Ok((n, Bytes::copy_from_slice(&input[..n]), *left == 0))
        }
        // Requests are never close-delimited; an empty body is done.
        _ => Ok((0, Bytes::new(), true)),
    }
}
