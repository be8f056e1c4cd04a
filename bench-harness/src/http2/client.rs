//! The client side of HTTP/2: a connection's handshake and one exchange.

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;

use bytes::Bytes;
use h2::client::SendRequest;

use super::io::H2Io;
use super::{grpc, CONNECTION_WINDOW, MAX_HEADER_LIST, STREAM_WINDOW};
use crate::stream::Stream;

/// An HTTP/2 connection: streams are opened on clones of `send`; its
/// connection future runs in a task of its own.
pub struct H2Conn {
    pub send: SendRequest<Bytes>,
    ended: Rc<Cell<bool>>,
}

impl H2Conn {
    /// The connection's task has ended (closed, GOAWAY done, IO error).
    pub fn ended(&self) -> bool {
        self.ended.get()
    }
}

/// Why a connection could not become an HTTP/2 one.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("the server did not pick h2 in ALPN")]
    NoAlpn,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP/2 handshake: {0}")]
    H2(#[from] h2::Error),
}

/// Start HTTP/2 on a connected stream (over TLS, the handshake done):
/// the preface and SETTINGS go out, the connection task is spawned.
pub async fn handshake(stream: Stream) -> Result<H2Conn, HandshakeError> {
    let io = match stream {
        Stream::Plain(tcp) => H2Io::plain(tcp, Vec::new())?,
        Stream::Tls(tls) if tls.is_h2() => H2Io::tls(*tls)?,
        Stream::Tls(_) => return Err(HandshakeError::NoAlpn),
    };
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .enable_push(false)
        .handshake::<_, Bytes>(io)
        .await?;
    let ended = Rc::new(Cell::new(false));
    let flag = ended.clone();
    monoio::spawn(async move {
        let _ = conn.await;
        flag.set(true);
    });
    Ok(H2Conn { send, ended })
}

/// One response read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Response {
    pub status: u16,
    pub body_bytes: u64,
    /// gRPC calls: the `grpc-status` (trailers, or a Trailers-Only head).
    pub grpc_status: Option<i32>,
}

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2Failure {
    /// The connection takes no new stream (GOAWAY seen, closed) and the
    /// request was not sent: it goes on a new connection, uncounted.
    Gone,
    /// The server (or something between) reset the stream: RST_STREAM.
    RstStream,
    /// The stream failed because the connection got a GOAWAY.
    GoAway,
    /// The connection broke under the stream (IO error, closed).
    Reset,
    /// Not valid HTTP/2, or a gRPC answer that is not one message.
    Protocol,
}

impl H2Failure {
    fn of(e: &h2::Error) -> H2Failure {
        if e.is_go_away() {
            H2Failure::GoAway
        } else if e.is_reset() {
            H2Failure::RstStream
        } else if e.is_io() {
            H2Failure::Reset
        } else {
            H2Failure::Protocol
        }
    }

    /// Whether the connection can carry no more streams after this.
    pub fn breaks_connection(self) -> bool {
        matches!(self, H2Failure::GoAway | H2Failure::Reset | H2Failure::Gone)
    }
}

/// Wait until `send` may open a stream; Err(Gone) if it never will.
pub async fn ready(send: &mut SendRequest<Bytes>) -> Result<(), H2Failure> {
    poll_fn(|cx| send.poll_ready(cx))
        .await
        .map_err(|_| H2Failure::Gone)
}

/// Send `req` (with `body`, if any) on a stream `send` is ready for, and
/// read the answer to its end. With `grpc`, the answer must be one
/// length-prefixed message and carry a `grpc-status`.
pub async fn exchange(
    send: &mut SendRequest<Bytes>,
    req: http::Request<()>,
    body: Option<&Bytes>,
    grpc: bool,
) -> Result<H2Response, H2Failure> {
    let end = body.is_none_or(|b| b.is_empty());
    let (response, mut tx) = match send.send_request(req, end) {
        Ok(x) => x,
        Err(e) if e.is_go_away() || e.is_io() => return Err(H2Failure::Gone),
        Err(e) => return Err(H2Failure::of(&e)),
    };
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        send_all(&mut tx, body.clone(), true)
            .await
            .map_err(|e| H2Failure::of(&e))?;
    }
    let resp = response.await.map_err(|e| H2Failure::of(&e))?;
    let status = resp.status().as_u16();
    let head_status = grpc.then(|| grpc::status(resp.headers())).flatten();
    let mut body = resp.into_body();
    let mut total = 0u64;
    // The gRPC prefix (5 bytes), which may span DATA frames.
    let (mut prefix, mut have) = ([0u8; 5], 0usize);
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| H2Failure::of(&e))?;
        if grpc && have < 5 {
            let n = (5 - have).min(chunk.len());
            prefix[have..have + n].copy_from_slice(&chunk[..n]);
            have += n;
        }
        total += chunk.len() as u64;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let mut grpc_status = head_status;
    if grpc {
        let trailers = body.trailers().await.map_err(|e| H2Failure::of(&e))?;
        if let Some(t) = trailers {
            grpc_status = grpc_status.or(grpc::status(&t));
        }
        if grpc_status.is_none() {
            return Err(H2Failure::Protocol);
        }
        // A message must be whole: its prefix says how long it is.
        if total > 0 {
            let said = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as u64;
            if have < 5 || prefix[0] != 0 || said + 5 != total {
                return Err(H2Failure::Protocol);
            }
        }
    }
    Ok(H2Response {
        status,
        body_bytes: total,
        grpc_status,
    })
}

/// Send `data` on a stream as flow control allows; `end` ends the stream
/// with the last byte.
pub async fn send_all(
    tx: &mut h2::SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    if data.is_empty() {
        return if end {
            tx.send_data(data, true)
        } else {
            Ok(())
        };
    }
    while !data.is_empty() {
        tx.reserve_capacity(data.len());
        let cap = match poll_fn(|cx| tx.poll_capacity(cx)).await {
            Some(cap) => cap?,
            // The stream is gone; sending says why.
            None => return tx.send_data(data, end),
        };
        if cap == 0 {
            continue;
        }
        let piece = data.split_to(cap.min(data.len()));
        tx.send_data(piece, end && data.is_empty())?;
    }
    Ok(())
}
