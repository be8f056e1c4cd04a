//! The upstream's HTTP/2 side (`upstream --h2`): what its HTTP/1.1 side
//! answers, per stream, plus gRPC.
//!
//! - any path: the configured status and `body_size` bytes (`/size/N`
//!   for N bytes, also under the `/h2/` prefix `compare` routes by), the
//!   body sent from one static buffer with no copy; HEAD gets the head;
//! - with `echo`, the request body streamed back as it arrives;
//! - with `latency`, each stream waits a fixed or random time first (on
//!   monoio's millisecond timer wheel: a stream has no timerfd of its own);
//! - `POST /ringmesh.testing.v1.Echo/Unary`: the request's payload back in
//!   an `EchoReply`, `grpc-status: 0` in the trailers; a request with a
//!   `fail_code` (or an upstream started with `grpc_status`) gets that
//!   status at once, Trailers-Only.
//!
//! A connection is one task driving h2 and accepting streams; each
//! stream is a task of its own.

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Response};
use prost::Message;
use ringmesh_proto::testing::EchoRequest;

use super::client::send_all;
use super::io::H2Io;
use super::{grpc, CONNECTION_WINDOW, MAX_HEADER_LIST, MAX_STREAMS, STREAM_WINDOW};
use crate::upstream::AddedLatency;

/// A gRPC request body larger than this is refused (RESOURCE_EXHAUSTED):
/// the upstream holds a unary request whole before answering.
const MAX_GRPC_REQUEST: usize = 4 << 20;
/// The longest `delay_ms` honoured.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// How the HTTP/2 side answers, fixed at start.
pub struct H2Responder {
    pub status: u16,
    pub body_size: usize,
    pub latency: Option<AddedLatency>,
    pub echo: bool,
    /// Answer every gRPC call with this status (0: succeed).
    pub grpc_status: i32,
    /// Bodies are slices of this (one static buffer, no copy).
    filler: Bytes,
}

impl H2Responder {
    pub fn new(
        status: u16,
        body_size: usize,
        latency: Option<AddedLatency>,
        echo: bool,
        grpc_status: i32,
    ) -> H2Responder {
        H2Responder {
            status,
            body_size,
            latency,
            echo,
            grpc_status,
            filler: Bytes::from_static(Box::leak(vec![b'x'; 64 * 1024].into_boxed_slice())),
        }
    }
}

/// Serve one HTTP/2 connection until the client ends it.
pub async fn serve(io: H2Io, r: Rc<H2Responder>) {
    let Ok(mut conn) = h2::server::Builder::new()
        .max_concurrent_streams(MAX_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .handshake::<_, Bytes>(io)
        .await
    else {
        return;
    };
    while let Some(next) = conn.accept().await {
        let Ok((req, respond)) = next else {
            return;
        };
        let r = r.clone();
        monoio::spawn(async move {
            let _ = stream(req, respond, &r).await;
        });
    }
}

async fn stream(
    req: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    r: &H2Responder,
) -> Result<(), h2::Error> {
    let (parts, mut body) = req.into_parts();
    if let Some(lat) = &r.latency {
        monoio::time::sleep(lat.sample(&mut fastrand::Rng::new())).await;
    }
    let path = parts.uri.path();
    if path.starts_with(grpc::SERVICE_PREFIX) {
        return unary(path, body, respond, r).await;
    }
    let head_only = parts.method == http::Method::HEAD;
    if r.echo {
        let head = Response::builder()
            .status(r.status)
            .body(())
            .unwrap_or_default();
        let mut tx = respond.send_response(head, body.is_end_stream() || head_only)?;
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            if !head_only {
                send_all(&mut tx, chunk, false).await?;
            }
        }
        if !head_only {
            tx.send_data(Bytes::new(), true)?;
        }
        return Ok(());
    }
    drain(&mut body).await?;
    let size = size_of(path).unwrap_or(r.body_size);
    let head = Response::builder()
        .status(r.status)
        .header(http::header::CONTENT_LENGTH, size)
        .body(())
        .unwrap_or_default();
    let end = size == 0 || head_only;
    let mut tx = respond.send_response(head, end)?;
    if end {
        return Ok(());
    }
    let mut left = size;
    while left > 0 {
        let n = left.min(r.filler.len());
        left -= n;
        send_all(&mut tx, r.filler.slice(..n), left == 0).await?;
    }
    Ok(())
}

/// `/size/N` (or `/h2/size/N`): answer with N body bytes.
fn size_of(path: &str) -> Option<usize> {
    let path = path.strip_prefix("/h2").unwrap_or(path);
    path.strip_prefix("/size/")?.parse().ok()
}

/// Read a request body to its end, giving the window back as it comes.
async fn drain(body: &mut RecvStream) -> Result<(), h2::Error> {
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(())
}

/// Echo's unary method (others are UNIMPLEMENTED here).
async fn unary(
    path: &str,
    mut body: RecvStream,
    mut respond: SendResponse<Bytes>,
    r: &H2Responder,
) -> Result<(), h2::Error> {
    if path != grpc::UNARY_PATH {
        drain(&mut body).await?;
        return trailers_only(&mut respond, 12, "only Echo.Unary is served here");
    }
    let mut msg = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if msg.len() + chunk.len() > MAX_GRPC_REQUEST {
            return trailers_only(&mut respond, 8, "request too large for the test upstream");
        }
        msg.extend_from_slice(&chunk);
    }
    let req = match grpc::unframe(&msg).map(EchoRequest::decode) {
        Ok(Ok(req)) => req,
        Ok(Err(e)) => return trailers_only(&mut respond, 13, &format!("bad EchoRequest: {e}")),
        Err(e) => return trailers_only(&mut respond, 13, &e.to_string()),
    };
    if req.delay_ms > 0 {
        let delay = Duration::from_millis(req.delay_ms.into()).min(MAX_DELAY);
        monoio::time::sleep(delay).await;
    }
    let code = if req.fail_code != 0 {
        req.fail_code
    } else {
        r.grpc_status
    };
    if code != 0 {
        return trailers_only(&mut respond, code, &req.fail_message);
    }
    let head = Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, grpc::CONTENT_TYPE)
        .body(())
        .unwrap_or_default();
    let mut tx = respond.send_response(head, false)?;
    send_all(&mut tx, grpc::unary_reply(&req), false).await?;
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    // h2 sends what is queued after the handle is dropped.
    tx.send_trailers(trailers)
}

/// A gRPC failure as its only answer: the status in the head.
fn trailers_only(
    respond: &mut SendResponse<Bytes>,
    code: i32,
    message: &str,
) -> Result<(), h2::Error> {
    let mut head = Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, grpc::CONTENT_TYPE)
        .header("grpc-status", code);
    if let Ok(v) = HeaderValue::from_str(message) {
        if !message.is_empty() {
            head = head.header("grpc-message", v);
        }
    }
    respond.send_response(head.body(()).unwrap_or_default(), true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_from_paths() {
        assert_eq!(size_of("/size/10"), Some(10));
        assert_eq!(size_of("/h2/size/7"), Some(7));
        assert_eq!(size_of("/h2/"), None);
        assert_eq!(size_of("/size/x"), None);
    }
}
