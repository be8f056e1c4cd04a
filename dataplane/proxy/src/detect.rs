//! Protocol detection: what a new connection speaks, from its first bytes.
//!
//! A listener with `detect` looks at the first bytes without consuming
//! them (`recv(MSG_PEEK)`), so whichever path takes the connection (TLS
//! handshake, HTTP/1.1, h2c, opaque TCP relay) reads it from its start.
//! A TLS ClientHello starts with a handshake record header; the HTTP/2
//! client preface with `PRI * HTTP/2.0`; an HTTP/1.x request with a method
//! token and a space. Anything else is opaque TCP.
//!
//! A client that sends nothing within the detection timeout is waiting
//! for the server to speak first (MySQL, SMTP, ...): the connection is
//! relayed as opaque TCP at once, so the server's greeting arrives after
//! the timeout (default 100 ms), not after a long wait (Linkerd's
//! detection waits 10 s by default, a known complaint).

use std::time::Duration;

use monoio::net::TcpStream;

use crate::timer::Timer;
use crate::transport::borrow_fd;

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    Tls,
    Http1,
    H2c,
    /// Bytes that are none of the above.
    Tcp,
    /// Nothing arrived within the timeout: the server speaks first.
    Timeout,
    /// The client closed (or the socket failed) before a byte.
    Closed,
}

impl Detected {
    /// The `protocol` label of `ringmesh_protocol_detected_total`.
    pub const LABELS: [&'static str; 6] = ["tls", "http1", "h2c", "tcp", "timeout", "closed"];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Methods an HTTP/1.x request may start with (RFC 9110 and WebDAV's
/// common ones); a method the proxy does not know is not HTTP to it.
const METHODS: [&[u8]; 14] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"PATCH ",
    b"PROPFIND ",
    b"PROPPATCH ",
    b"MKCOL ",
    b"COPY ",
    b"MOVE ",
];

/// The verdict on `data`, or `None` when more bytes are needed to tell.
pub fn classify(data: &[u8]) -> Option<Detected> {
    if data.is_empty() {
        return None;
    }
    // A TLS record: handshake (22), then major version 3.
    if data[0] == 0x16 {
        return match data.get(1) {
            None => None,
            Some(3) => Some(Detected::Tls),
            Some(_) => Some(Detected::Tcp),
        };
    }
    let preface = crate::h2::PREFACE_START;
    let candidates = METHODS.iter().copied().chain(std::iter::once(preface));
    let mut undecided = false;
    for want in candidates {
        let n = data.len().min(want.len());
        if data[..n] != want[..n] {
            continue;
        }
        if n < want.len() {
            undecided = true;
            continue;
        }
        return Some(if want == preface {
            Detected::H2c
        } else {
            Detected::Http1
        });
    }
    if undecided {
        None
    } else {
        Some(Detected::Tcp)
    }
}

/// How long to wait for more bytes when the first ones do not decide.
const MORE_BYTES: Duration = Duration::from_millis(1);

/// Wait up to `timeout` for the connection's first bytes and say what
/// they are, consuming nothing.
pub async fn sniff(tcp: &TcpStream, timeout: Duration, timer: &mut Timer) -> Detected {
    use std::os::fd::AsRawFd;
    let deadline = monoio::time::Instant::now() + timeout;
    let mut seen = 0;
    loop {
        let mut buf = [0u8; 24];
        if seen == 0 {
            match timer.until(deadline, tcp.readable(false)).await {
                Err(_) => return Detected::Timeout,
                Ok(Err(_)) => return Detected::Closed,
                Ok(Ok(())) => {}
            }
        } else {
            // Some bytes are here but do not decide yet: they do not make
            // the socket newly readable, so look again shortly.
            if timer
                .until(deadline, monoio::time::sleep(MORE_BYTES))
                .await
                .is_err()
            {
                return Detected::Tcp;
            }
        }
        let fd = borrow_fd(tcp.as_raw_fd());
        let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
        let n = match rustix::net::recv(fd, &mut buf, flags) {
            Ok((0, _)) => return Detected::Closed,
            Ok((n, _)) => n.min(buf.len()),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => continue,
            Err(_) => return Detected::Closed,
        };
        if let Some(verdict) = classify(&buf[..n]) {
            return verdict;
        }
        seen = n;
        if n == buf.len() {
            return Detected::Tcp;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_tell_the_protocol() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Detected::Http1));
        assert_eq!(classify(b"POST /x"), Some(Detected::Http1));
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n\r\nSM"), Some(Detected::H2c));
        assert_eq!(
            classify(&[0x16, 0x03, 0x01, 0x02, 0x00]),
            Some(Detected::Tls)
        );
        assert_eq!(classify(&[0x16, 0x09]), Some(Detected::Tcp));
        // A MySQL client packet, a Redis command, binary.
        assert_eq!(classify(b"\x20\x00\x00\x01\x85"), Some(Detected::Tcp));
        assert_eq!(classify(b"*1\r\n$4\r\nPING\r\n"), Some(Detected::Tcp));
        assert_eq!(classify(b"GETX"), Some(Detected::Tcp), "not a method");
        assert_eq!(
            classify(b"get / HTTP/1.1"),
            Some(Detected::Tcp),
            "case matters"
        );
    }

    #[test]
    fn a_prefix_of_a_method_or_the_preface_waits_for_more() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"G"), None);
        assert_eq!(classify(b"PO"), None);
        assert_eq!(classify(b"PRI * HT"), None);
        assert_eq!(classify(&[0x16]), None);
        assert_eq!(classify(b"OPTIONS"), None);
    }
}
