//! The mirror task's exchange: connect (or reuse a pooled connection) to
//! the endpoint picked when the mirror was decided, send the copy in the
//! mirror cluster's protocol, read the response and drop it.
//!
//! Every wait is bounded by one deadline (the route's timeout, or
//! `DEFAULT_TIMEOUT`), on the task's own timer. An HTTP/1.1 connection
//! goes back to the cluster's pool only after a response read to its
//! clean end; an HTTP/2 one is shared in the pool like any other.

use bytes::Bytes;
use monoio::io::AsyncWriteRentExt;
use monoio::time::Instant;
use ringmesh_http1::{BodyFraming, ChunkedDecoder, ResponseHead};
use tracing::debug;

use super::{Outcome, Pending};
use crate::buf::ReadBuf;
use crate::config::model::UpstreamProtocol;
use crate::error::ProxyError;
use crate::h1::client::read_head;
use crate::h1::view::H1Response;
use crate::timer::Timer;
use crate::upstream::h2::Opened;
use crate::upstream::UpstreamConn;

/// Read size while a response is dropped.
const DISCARD_READ: usize = 16 * 1024;

/// Send one mirror; what became of it.
pub(super) async fn send(p: &Pending, body: Vec<Bytes>) -> Outcome {
    let mut timer = Timer::new();
    let deadline = Instant::now() + p.timeout;
    let result = match p.cluster.protocol {
        UpstreamProtocol::Http2 => h2(p, body, &mut timer, deadline).await,
        UpstreamProtocol::Http1 | UpstreamProtocol::Auto => h1(p, body, &mut timer, deadline).await,
    };
    match result {
        Ok(()) => Outcome::Sent,
        Err(e) => {
            debug!(cluster = %p.cluster.name, error = %e, "mirror failed");
            Outcome::Failed
        }
    }
}

/// Over HTTP/1.1: a pooled connection the upstream has not closed, or a
/// new one; a reused one that turns out closed is replaced once.
async fn h1(
    p: &Pending,
    body: Vec<Bytes>,
    timer: &mut Timer,
    deadline: Instant,
) -> Result<(), ProxyError> {
    let mut encoded = encode_h1(&p.head, p.has_body, &body);
    let is_head = p.head.method() == http::Method::HEAD;
    let mut again = true;
    loop {
        let conn = loop {
            match p.cluster.checkout(&p.endpoint, std::time::Instant::now()) {
                Some(c) if c.stream.has_pending_input() => continue,
                Some(c) => break c,
                None => break p.cluster.connect(&p.endpoint, timer).await?,
            }
        };
        if p.cluster.protocol == UpstreamProtocol::Auto && conn.stream.alpn() == Some(b"h2") {
            let client = p.cluster.adopt_h2(&p.endpoint, conn, timer).await?;
            return Box::pin(h2_on(p, client, body, timer, deadline)).await;
        }
        let reused = conn.reused;
        match exchange_h1(p, conn, encoded, is_head, timer, deadline).await {
            Err(Attempt::Closed(back)) if reused && again => {
                again = false;
                encoded = back;
            }
            Err(Attempt::Closed(_)) => return Err(ProxyError::UpstreamReset),
            Err(Attempt::Failed(e)) => return Err(e),
            Ok(()) => return Ok(()),
        }
    }
}

/// How one HTTP/1.1 attempt failed.
enum Attempt {
    /// The connection was closed before a response byte: a pooled one
    /// the upstream closed while idle. The request comes back for the
    /// next attempt (sent once, not copied per attempt).
    Closed(Vec<u8>),
    Failed(ProxyError),
}

async fn exchange_h1(
    p: &Pending,
    mut conn: UpstreamConn,
    encoded: Vec<u8>,
    is_head: bool,
    timer: &mut Timer,
    deadline: Instant,
) -> Result<(), Attempt> {
    let encoded = match timer.until(deadline, conn.stream.write_all(encoded)).await {
        Ok((Ok(_), back)) => back,
        Ok((Err(_), back)) => return Err(Attempt::Closed(back)),
        Err(_) => return Err(Attempt::Failed(ProxyError::UpstreamTimeout)),
    };
    let mut resp = H1Response {
        ubuf: ReadBuf::with_capacity(DISCARD_READ),
        head: ResponseHead::default(),
    };
    let mut received = false;
    loop {
        match read_head(
            &mut conn.stream,
            &mut resp,
            timer,
            Some(deadline),
            is_head,
            &mut received,
        )
        .await
        {
            Ok(()) => {}
            Err(crate::pipeline::HeadRead::ClosedEarly) => return Err(Attempt::Closed(encoded)),
            Err(crate::pipeline::HeadRead::Failed(e)) => return Err(Attempt::Failed(e)),
            Err(crate::pipeline::HeadRead::ClientGone) => {
                return Err(Attempt::Failed(ProxyError::UpstreamReset))
            }
        }
        let n = resp.head.head_len;
        let interim = resp.head.is_interim();
        resp.ubuf.consume(n);
        if !interim {
            break;
        }
    }
    // The mirror answered: that is all it is counted for. Its body is
    // read only to keep the connection; a failure here loses just that.
    if discard_h1(&mut conn, &mut resp, timer, deadline).await && resp.head.keep_alive {
        p.cluster
            .release(&p.endpoint, conn, std::time::Instant::now());
    }
    Ok(())
}

/// Read a response body to its end; `true` when it ended cleanly with
/// nothing behind it (the connection may be reused).
async fn discard_h1(
    conn: &mut UpstreamConn,
    resp: &mut H1Response,
    timer: &mut Timer,
    deadline: Instant,
) -> bool {
    let mut left = match resp.head.framing {
        BodyFraming::Empty => 0,
        BodyFraming::Length(n) => n,
        BodyFraming::Chunked | BodyFraming::UntilClose => u64::MAX,
    };
    let mut decoder = ChunkedDecoder::new();
    loop {
        let buf = &mut resp.ubuf;
        match resp.head.framing {
            BodyFraming::Chunked => match decoder.scan(buf.data()) {
                Ok(n) => {
                    buf.consume(n);
                    if decoder.is_done() {
                        return buf.is_empty();
                    }
                }
                Err(_) => return false,
            },
            BodyFraming::UntilClose => buf.consume(buf.len()),
            _ => {
                let n = left.min(buf.len() as u64);
                buf.consume(n as usize);
                left -= n;
                if left == 0 {
                    return buf.is_empty();
                }
            }
        }
        match timer
            .until(deadline, buf.fill(&mut conn.stream, DISCARD_READ))
            .await
        {
            Ok(Ok(n)) if n > 0 => {}
            _ => return false,
        }
    }
}

/// The HTTP/1.1 form of the mirrored request: origin-form target, Host
/// from the (shadow) authority, the body sized by content-length.
fn encode_h1(head: &http::Request<()>, has_body: bool, body: &[Bytes]) -> Vec<u8> {
    let len: usize = body.iter().map(Bytes::len).sum();
    let mut out = Vec::with_capacity(256 + len);
    out.extend_from_slice(head.method().as_str().as_bytes());
    out.push(b' ');
    let target = head.uri().path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    if let Some(a) = head.uri().authority() {
        out.extend_from_slice(a.as_str().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in head.headers() {
        if name == http::header::CONTENT_LENGTH || name == http::header::TE {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if has_body {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    for b in body {
        out.extend_from_slice(b);
    }
    out
}

/// Over HTTP/2: a stream on a shared connection to the endpoint.
async fn h2(
    p: &Pending,
    body: Vec<Bytes>,
    timer: &mut Timer,
    deadline: Instant,
) -> Result<(), ProxyError> {
    let client = p.cluster.h2_client(&p.endpoint, timer).await?;
    h2_on(p, client, body, timer, deadline).await
}

async fn h2_on(
    p: &Pending,
    client: std::rc::Rc<crate::upstream::h2::H2Client>,
    body: Vec<Bytes>,
    timer: &mut Timer,
    deadline: Instant,
) -> Result<(), ProxyError> {
    let end = !p.has_body || body.is_empty();
    let Opened {
        response,
        body: mut up,
        slot,
    } = client
        .open(p.head.clone(), end)
        .await
        .map_err(|_| ProxyError::UpstreamReset)?;
    if !end {
        let send = async {
            for chunk in body {
                crate::h2::body::send_up(&mut up, &mut Some(chunk)).await?;
            }
            up.send_data(Bytes::new(), true)
                .map_err(|_| crate::pipeline::SendError::Upstream { early: true })
        };
        match timer.until(deadline, send).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(ProxyError::UpstreamReset),
            Err(_) => return Err(ProxyError::UpstreamTimeout),
        }
    }
    let resp = match timer.until(deadline, response).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => return Err(ProxyError::UpstreamReset),
        Err(_) => return Err(ProxyError::UpstreamTimeout),
    };
    // Answered. Drain the body (and trailers) so the stream ends cleanly
    // and its window returns to the connection.
    let mut recv = resp.into_body();
    let drain = async {
        while let Some(Ok(d)) = recv.data().await {
            let _ = recv.flow_control().release_capacity(d.len());
        }
        let _ = recv.trailers().await;
    };
    let _ = timer.until(deadline, drain).await;
    drop(slot);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http1_form_has_the_shadow_host_and_a_length() {
        let head = http::Request::builder()
            .method("POST")
            .uri("http://api-shadow:81/a?b=c")
            .header("x-a", "1")
            .header("content-length", "99")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let body = [Bytes::from_static(b"he"), Bytes::from_static(b"llo")];
        let out = encode_h1(&head, true, &body);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /a?b=c HTTP/1.1\r\nhost: api-shadow:81\r\nx-a: 1\r\ncontent-length: 5\r\n\r\nhello"
        );
        let get = http::Request::builder()
            .uri("http://a-shadow/")
            .body(())
            .unwrap();
        assert_eq!(
            encode_h1(&get, false, &[]),
            b"GET / HTTP/1.1\r\nhost: a-shadow\r\n\r\n"
        );
    }
}
