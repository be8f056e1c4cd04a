//! One check of one endpoint: connect through the cluster's connector
//! and, for `http`, send a GET and read the status line.
//!
//! Only the status line is read (a check needs nothing else), then the
//! connection is closed: the request says `Connection: close`, so the
//! upstream expects it. The buffers are the check's own, allocated per
//! check: checks run every few seconds, off the request path.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::{CheckKind, HealthCheck, HttpCheck};
use crate::timer::Timer;
use crate::upstream::{ConnectError, Connector};

/// Why a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("connection refused")]
    Refused,
    #[error("TLS handshake failed: {0}")]
    Tls(&'static str),
    #[error("timed out")]
    TimedOut,
    #[error("connection closed before a status line")]
    Closed,
    #[error("not an HTTP/1.x status line")]
    Malformed,
    /// TLS ALPN chose HTTP/2, which an HTTP check does not speak.
    #[error("the endpoint chose HTTP/2; HTTP checks speak HTTP/1.1")]
    Http2,
    #[error("status {0} is not expected")]
    Status(u16),
}

impl From<ConnectError> for Failure {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Refused => Failure::Refused,
            ConnectError::TimedOut => Failure::TimedOut,
            ConnectError::Tls(why) => Failure::Tls(why),
        }
    }
}

/// Longest status line read: `HTTP/1.1 200 ` and a reason phrase.
const MAX_STATUS_LINE: usize = 1024;

/// Check `addr` once, within `check.timeout`. `request` is the encoded
/// GET of an `http` check (`HttpCheck::request`).
pub async fn probe(
    connector: &Connector,
    addr: SocketAddr,
    check: &HealthCheck,
    request: &[u8],
) -> Result<(), Failure> {
    let run = async {
        let mut timer = Timer::new();
        let mut stream = connector.connect(addr, &mut timer).await?;
        match &check.kind {
            CheckKind::Tcp => Ok(()),
            CheckKind::Http(http) => {
                if stream.alpn() == Some(b"h2") {
                    return Err(Failure::Http2);
                }
                let (sent, _) = stream.write_all(request.to_vec()).await;
                sent.map_err(|_| Failure::Closed)?;
                stream.flush().await.map_err(|_| Failure::Closed)?;
                let status = read_status(&mut stream).await?;
                verdict(http, status)
            }
        }
    };
    match monoio::time::timeout(check.timeout.max(Duration::from_millis(1)), run).await {
        Ok(result) => result,
        Err(_) => Err(Failure::TimedOut),
    }
}

fn verdict(http: &HttpCheck, status: u16) -> Result<(), Failure> {
    if http.passes(status) {
        Ok(())
    } else {
        Err(Failure::Status(status))
    }
}

/// Read until the status line is complete; its status.
async fn read_status(stream: &mut crate::transport::Stream) -> Result<u16, Failure> {
    let mut got: Vec<u8> = Vec::with_capacity(256);
    let mut chunk: Vec<u8> = Vec::with_capacity(256);
    loop {
        if let Some(end) = got.iter().position(|&b| b == b'\n') {
            return status_of(&got[..end]).ok_or(Failure::Malformed);
        }
        if got.len() >= MAX_STATUS_LINE {
            return Err(Failure::Malformed);
        }
        chunk.clear();
        let (n, buf) = stream.read(chunk).await;
        chunk = buf;
        match n {
            Ok(0) | Err(_) => return Err(Failure::Closed),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The status of `HTTP/1.x NNN[ reason]` (the line without its `\n`).
pub(super) fn status_of(line: &[u8]) -> Option<u16> {
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
    let code = rest.get(..3)?;
    let after = rest.get(3).copied();
    if !code.iter().all(u8::is_ascii_digit) || !matches!(after, None | Some(b' ' | b'\r')) {
        return None;
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    (100..=999).contains(&status).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_line_gives_its_status_and_anything_else_none() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(status_of(b"HTTP/1.1 204\r"), Some(204));
        assert_eq!(status_of(b"HTTP/1.1 204"), Some(204));
        assert_eq!(status_of(b"HTTP/1.1 2000 OK"), None);
        assert_eq!(status_of(b"HTTP/1.1 20x OK"), None);
        assert_eq!(status_of(b"HTTP/2 200"), None);
        assert_eq!(status_of(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(status_of(b"HTTP/1.1 099 x"), None);
    }
}
