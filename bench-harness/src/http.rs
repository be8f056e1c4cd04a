//! HTTP/1.1 for the load generator: requests built once, responses read
//! and discarded with just enough parsing to find where each one ends.

use std::io;

use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;
use ringmesh_http1::ChunkedDecoder;

/// What each request looks like.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: String,
    pub host: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body_size: usize,
    /// Ask the server to close after the response (new connection per
    /// request).
    pub close: bool,
}

impl RequestSpec {
    /// The request's bytes, `copies` times back to back (pipelining).
    pub fn encode(&self, copies: usize) -> Vec<u8> {
        let mut one = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            self.method, self.path, self.host
        );
        for (k, v) in &self.headers {
            one.push_str(&format!("{k}: {v}\r\n"));
        }
        if self.body_size > 0
            || !matches!(self.method.as_str(), "GET" | "HEAD" | "DELETE" | "OPTIONS")
        {
            one.push_str(&format!("Content-Length: {}\r\n", self.body_size));
        }
        if self.close {
            one.push_str("Connection: close\r\n");
        }
        one.push_str("\r\n");
        let mut bytes = one.into_bytes();
        bytes.resize(bytes.len() + self.body_size, b'x');
        bytes.repeat(copies.max(1))
    }

    pub fn is_head(&self) -> bool {
        self.method.eq_ignore_ascii_case("HEAD")
    }
}

/// Why reading a response failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed before the response ended")]
    Closed,
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

/// One response read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Body bytes (de-chunked sizes not computed: chunked bodies count
    /// their wire bytes).
    pub body_bytes: u64,
    /// The connection can carry another request.
    pub reusable: bool,
}

/// A connection's read buffer: `buf[start..]` is not yet consumed.
pub struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
}

impl ReadBuf {
    pub fn new(capacity: usize) -> ReadBuf {
        ReadBuf {
            buf: Vec::with_capacity(capacity),
            start: 0,
        }
    }

    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.buf.len() - self.start);
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Compact (or grow, when a head is larger than the buffer) so at
    /// least one more byte fits; how many do.
    fn make_room(&mut self) -> usize {
        if self.buf.len() == self.buf.capacity() {
            if self.start > 0 {
                self.buf.copy_within(self.start.., 0);
                self.buf.truncate(self.buf.len() - self.start);
                self.start = 0;
            } else {
                self.buf.reserve(self.buf.capacity().max(4096));
            }
        }
        self.buf.capacity() - self.buf.len()
    }

    /// Copy in what fits of `bytes` (plaintext a TLS connection has
    /// decrypted); how many were taken.
    pub fn append(&mut self, bytes: &[u8]) -> usize {
        if bytes.is_empty() {
            return 0;
        }
        let n = bytes.len().min(self.make_room());
        self.buf.extend_from_slice(&bytes[..n]);
        n
    }

    /// Read more; Ok(0) at EOF. Compacts (or grows, when a head is larger
    /// than the buffer) to make room first.
    pub async fn fill<R: AsyncReadRent>(&mut self, io: &mut R) -> io::Result<usize> {
        self.make_room();
        let buf = std::mem::take(&mut self.buf);
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = io.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        res
    }
}

/// Something a [`ReadBuf`] is filled from: a plain socket, or a TLS
/// stream that decrypts into it.
pub trait Fill {
    /// Read more into `rb`; Ok(0) at the end of the stream.
    fn fill(&mut self, rb: &mut ReadBuf) -> impl std::future::Future<Output = io::Result<usize>>;
}

impl Fill for monoio::net::TcpStream {
    async fn fill(&mut self, rb: &mut ReadBuf) -> io::Result<usize> {
        rb.fill(self).await
    }
}

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Read one response (skipping 1xx) and discard its body.
pub async fn read_response<R: Fill>(
    io: &mut R,
    rb: &mut ReadBuf,
    head_request: bool,
) -> Result<Response, ReadError> {
    loop {
        let (status, framing, mut reusable, head_len) = loop {
            match parse_head(rb.data())? {
                Some(h) => break h,
                None if rb.data().len() >= MAX_HEAD => {
                    return Err(ReadError::Malformed("head too large"))
                }
                None => {
                    if io.fill(rb).await? == 0 {
                        return Err(ReadError::Closed);
                    }
                }
            }
        };
        rb.consume(head_len);
        if (100..200).contains(&status) {
            continue;
        }
        let framing = if head_request || status == 204 || status == 304 {
            Framing::Length(0)
        } else {
            framing
        };
        let body_bytes = match framing {
            Framing::Length(n) => skip_length(io, rb, n).await?,
            Framing::Chunked => skip_chunked(io, rb).await?,
            Framing::Close => {
                reusable = false;
                skip_to_close(io, rb).await?
            }
        };
        return Ok(Response {
            status,
            body_bytes,
            reusable,
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    Close,
}

type Head = (u16, Framing, bool, usize);

fn parse_head(buf: &[u8]) -> Result<Option<Head>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ReadError::Malformed("invalid response head")),
    };
    let status = resp.code.ok_or(ReadError::Malformed("no status"))?;
    let mut reusable = resp.version == Some(1);
    let mut framing = Framing::Close;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(ReadError::Malformed("bad content-length"))?;
            if framing == Framing::Close {
                framing = Framing::Length(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if h.value.eq_ignore_ascii_case(b"chunked") {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                reusable = false;
            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                reusable = true;
            }
        }
    }
    Ok(Some((status, framing, reusable, len)))
}

async fn skip_length<R: Fill>(io: &mut R, rb: &mut ReadBuf, n: u64) -> Result<u64, ReadError> {
    let mut left = n;
    loop {
        let take = (rb.data().len() as u64).min(left);
        rb.consume(take as usize);
        left -= take;
        if left == 0 {
            return Ok(n);
        }
        if io.fill(rb).await? == 0 {
            return Err(ReadError::Closed);
        }
    }
}

async fn skip_chunked<R: Fill>(io: &mut R, rb: &mut ReadBuf) -> Result<u64, ReadError> {
    let mut dec = ChunkedDecoder::new();
    let mut total = 0u64;
    loop {
        let n = dec
            .scan(rb.data())
            .map_err(|_| ReadError::Malformed("bad chunked body"))?;
        rb.consume(n);
        total += n as u64;
        if dec.is_done() {
            return Ok(total);
        }
        if io.fill(rb).await? == 0 {
            return Err(ReadError::Closed);
        }
    }
}

async fn skip_to_close<R: Fill>(io: &mut R, rb: &mut ReadBuf) -> Result<u64, ReadError> {
    let mut total = rb.data().len() as u64;
    rb.clear();
    loop {
        let n = io.fill(rb).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        rb.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encoding() {
        let spec = RequestSpec {
            method: "POST".into(),
            host: "example".into(),
            path: "/up".into(),
            headers: vec![("x-a".into(), "1".into())],
            body_size: 3,
            close: true,
        };
        let one = "POST /up HTTP/1.1\r\nHost: example\r\nx-a: 1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxxx";
        assert_eq!(String::from_utf8(spec.encode(1)).unwrap(), one);
        assert_eq!(spec.encode(2).len(), one.len() * 2);
        let get = RequestSpec {
            method: "GET".into(),
            body_size: 0,
            close: false,
            headers: vec![],
            ..spec
        };
        assert_eq!(
            String::from_utf8(get.encode(1)).unwrap(),
            "GET /up HTTP/1.1\r\nHost: example\r\n\r\n"
        );
    }

    #[test]
    fn heads() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(h, (200, Framing::Length(5), true, 38));
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.1, h.2), (Framing::Chunked, false));
        let h = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.1, h.2), (Framing::Close, false));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le")
            .unwrap()
            .is_none());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
    }

    /// Feed `wire` over real loopback TCP in `piece`-byte writes and read
    /// every response off it.
    fn read_all(
        wire: &'static [u8],
        piece: usize,
        head_request: bool,
    ) -> Vec<Result<Response, String>> {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_nodelay(true).unwrap();
            for chunk in wire.chunks(piece) {
                s.write_all(chunk).unwrap();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        });
        let out = crate::runtime::block_on(crate::runtime::IoMode::Auto, |_| async move {
            let mut io = monoio::net::TcpStream::connect(addr).await.unwrap();
            let mut rb = ReadBuf::new(16);
            let mut out = Vec::new();
            loop {
                let r = read_response(&mut io, &mut rb, head_request).await;
                let end = !matches!(&r, Ok(resp) if resp.reusable);
                out.push(r.map_err(|e| e.to_string()));
                if end {
                    return out;
                }
            }
        })
        .unwrap();
        writer.join().unwrap();
        out
    }

    #[test]
    fn responses_split_anywhere() {
        const WIRE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n\
HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello\
HTTP/1.1 204 No Content\r\n\r\n\
HTTP/1.1 503 Busy\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n\
HTTP/1.1 200 OK\r\n\r\nuntil close";
        for piece in [1, 7, WIRE.len()] {
            let got = read_all(WIRE, piece, false);
            let want = vec![
                Ok(Response {
                    status: 200,
                    body_bytes: 5,
                    reusable: true,
                }),
                Ok(Response {
                    status: 204,
                    body_bytes: 0,
                    reusable: true,
                }),
                Ok(Response {
                    status: 503,
                    body_bytes: 21,
                    reusable: true,
                }),
                Ok(Response {
                    status: 200,
                    body_bytes: 11,
                    reusable: false,
                }),
            ];
            assert_eq!(got, want, "piece size {piece}");
        }
    }

    #[test]
    fn truncated_and_malformed() {
        let got = read_all(
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
            5,
            false,
        );
        assert_eq!(
            got,
            vec![Err(
                "connection closed before the response ended".to_string()
            )]
        );
        let got = read_all(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            100,
            false,
        );
        assert_eq!(
            got,
            vec![Err("malformed response: bad chunked body".to_string())]
        );
        // A HEAD response's content-length describes a body that is not sent.
        let got = read_all(
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\n",
            100,
            true,
        );
        assert_eq!(
            got,
            vec![Ok(Response {
                status: 200,
                body_bytes: 0,
                reusable: false
            })]
        );
    }
}
