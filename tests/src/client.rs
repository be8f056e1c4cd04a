//! A deliberately simple blocking HTTP/1.1 client over raw sockets.
//!
//! Tests need to send exact bytes (malformed framing, pipelined requests)
//! and see exactly what comes back, which a full client library would hide.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Generous bound for any single read in tests; a hang fails the test
/// instead of hanging CI.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// A chunked body's trailer lines, names lowercase.
    pub trailers: Vec<(String, String)>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("set timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send request");
    }

    pub fn get(&mut self, path: &str, host: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        self.read_response(false)
    }

    /// Send `raw` and read one final response (interim 1xx skipped).
    pub fn request(&mut self, raw: &[u8]) -> Response {
        self.send(raw);
        loop {
            let r = self.read_response(false);
            if !(100..200).contains(&r.status) || r.status == 101 {
                return r;
            }
        }
    }

    /// Read one response; a 1xx is returned as such, with no body.
    pub fn read_response(&mut self, head_request: bool) -> Response {
        let (status, headers, head_len) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 128];
            let mut resp = httparse::Response::new(&mut fields);
            match resp.parse(&self.buf).expect("valid response head") {
                httparse::Status::Complete(n) => {
                    let headers = resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect::<Vec<_>>();
                    break (resp.code.unwrap_or(0), headers, n);
                }
                httparse::Status::Partial => {
                    assert!(
                        self.fill() > 0,
                        "connection closed before a response head; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                }
            }
        };
        self.buf.drain(..head_len);
        let mut r = Response {
            status,
            headers,
            body: Vec::new(),
            trailers: Vec::new(),
        };
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return r;
        }
        if r.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            (r.body, r.trailers) = self.read_chunked();
        } else if let Some(len) = r
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            r.body = self.read_exact_body(len);
        } else {
            while self.fill() > 0 {}
            r.body = std::mem::take(&mut self.buf);
        }
        r
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("read failed: {e}"),
        }
    }

    fn read_exact_body(&mut self, len: usize) -> Vec<u8> {
        while self.buf.len() < len {
            assert!(
                self.fill() > 0,
                "closed after {} of {len} body bytes",
                self.buf.len()
            );
        }
        self.buf.drain(..len).collect()
    }

    fn read_chunked(&mut self) -> (Vec<u8>, Vec<(String, String)>) {
        let mut body = Vec::new();
        loop {
            let line = self.read_line();
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            if size == 0 {
                // Trailers up to the empty line.
                let mut trailers = Vec::new();
                loop {
                    let line = self.read_line();
                    let Some((n, v)) = line.split_once(':') else {
                        return (body, trailers);
                    };
                    trailers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            body.extend(self.read_exact_body(size));
            assert_eq!(self.read_line(), "", "CRLF after chunk data");
        }
    }

    fn read_line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return line;
            }
            assert!(self.fill() > 0, "closed inside a chunked body");
        }
    }

    /// True when the peer has closed: a read returns EOF (or a reset) with
    /// no bytes pending.
    pub fn is_closed(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        self.fill() == 0
    }

    /// Everything until the peer closes.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        while self.fill() > 0 {}
        std::mem::take(&mut self.buf)
    }
}
