//! A scriptable HTTP/1.1 upstream for end-to-end tests.
//!
//! Blocking, one thread per connection: simple enough to trust as a test
//! oracle. The request path (without its query) picks the behaviour:
//!
//! | path                 | response                                          |
//! |----------------------|---------------------------------------------------|
//! | `/headers`           | the request head as received, as the body         |
//! | `/echo`              | the request body                                  |
//! | `/count`             | `bytes=N`: request body length, read streaming    |
//! | `/chunked`           | a chunked body with a trailer                     |
//! | `/close-delimited`   | no Content-Length or chunking; body ends at close |
//! | `/download/N`        | N bytes of a repeating pattern, streamed          |
//! | `/delay/MS`          | waits MS milliseconds, then 200                   |
//! | `/status/CODE`       | that status                                       |
//! | `/reset`             | closes without answering                          |
//! | `/ws`                | 101 after an Upgrade request, then echoes bytes   |
//! | `/conn`              | `conn=N`: which accepted connection served it     |
//! | `/then-close`        | a normal keep-alive response, then a silent close |
//! | `/reject`            | 413 and a close, without reading the body         |
//! | `/bad-framing`       | both Content-Length and Transfer-Encoding         |
//! | `/switch`            | 101 `Upgrade: foo` to any request, then more HTTP |
//! | anything else        | the upstream's name                               |
//!
//! Its own chunked decoder is independent of the proxy's, so a framing bug
//! in the proxy cannot hide behind the same bug here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

/// Byte `i` of every generated download body.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

impl Upstream {
    pub fn start(name: &str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (conns, reqs, label) = (connections.clone(), requests.clone(), name.to_string());
        let done = closed.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let id = conns.fetch_add(1, Ordering::SeqCst) + 1;
                let (reqs, label, done) = (reqs.clone(), label.clone(), done.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, id, &reqs, &label);
                    // `serve` owned both halves of the socket: it is closed.
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Upstream {
            addr,
            name: name.to_string(),
            connections,
            requests,
            closed,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections this upstream has closed (or seen closed) so far.
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

struct Req {
    method: String,
    path: String,
    head: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn serve(stream: TcpStream, id: usize, requests: &AtomicUsize, name: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let Some(req) = read_head(&mut reader)? else {
            return Ok(());
        };
        requests.fetch_add(1, Ordering::SeqCst);
        let head_only = req.method == "HEAD";
        // The query string does not pick the behaviour.
        let path = req.path.split('?').next().unwrap_or_default();
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let (first, arg) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if first == "reset" {
            return Ok(());
        }
        if first == "reject" {
            out.write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n")?;
            return Ok(());
        }
        if first == "count" {
            let n = count_body(&mut reader, &req)?;
            respond(
                &mut out,
                200,
                &[],
                format!("bytes={n}").as_bytes(),
                head_only,
            )?;
            continue;
        }
        let body = read_body(&mut reader, &req)?;
        match first {
            "headers" => respond(&mut out, 200, &[], req.head.as_bytes(), head_only)?,
            "echo" => respond(&mut out, 200, &[], &body, head_only)?,
            "conn" => respond(
                &mut out,
                200,
                &[],
                format!("conn={id}").as_bytes(),
                head_only,
            )?,
            "status" => {
                let code: u16 = arg.parse().unwrap_or(500);
                respond(
                    &mut out,
                    code,
                    &[],
                    format!("status {code}").as_bytes(),
                    head_only,
                )?
            }
            "delay" => {
                std::thread::sleep(Duration::from_millis(arg.parse().unwrap_or(0)));
                respond(&mut out, 200, &[], b"late", head_only)?
            }
            "chunked" => {
                out.write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-trailer\r\n\r\n",
                )?;
                for piece in ["hello ", "chunked ", "world"] {
                    write!(out, "{:x}\r\n{piece}\r\n", piece.len())?;
                }
                out.write_all(b"0\r\nx-trailer: t\r\n\r\n")?;
            }
            "close-delimited" => {
                out.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until close",
                )?;
                return Ok(());
            }
            "then-close" => {
                respond(&mut out, 200, &[], b"closing", head_only)?;
                return Ok(());
            }
            "bad-framing" => {
                out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")?;
                return Ok(());
            }
            "download" => download(&mut out, arg.parse().unwrap_or(0), head_only)?,
            // Then it goes on reading HTTP requests: a proxy that pooled
            // this connection would have its next request answered here.
            "switch" => out.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n",
            )?,
            "ws" if req.header("upgrade").is_some() => {
                out.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")?;
                return echo_bytes(reader, out);
            }
            _ => respond(&mut out, 200, &[], name.as_bytes(), head_only)?,
        }
        if req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            return Ok(());
        }
    }
}

fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Req>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        head.push_str(&line);
        if line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Some(Req {
        method,
        path,
        head,
        headers,
    }))
}

fn is_chunked(req: &Req) -> bool {
    req.header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
}

fn read_body(reader: &mut BufReader<TcpStream>, req: &Req) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if is_chunked(req) {
        read_chunked(reader, |piece| body.extend_from_slice(piece))?;
    } else if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        reader.take(n).read_to_end(&mut body)?;
    }
    Ok(body)
}

/// Read and count a body without keeping it (1 GiB uploads).
fn count_body(reader: &mut BufReader<TcpStream>, req: &Req) -> std::io::Result<u64> {
    let mut total = 0u64;
    if is_chunked(req) {
        read_chunked(reader, |piece| total += piece.len() as u64)?;
    } else if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        total = std::io::copy(&mut reader.take(n), &mut std::io::sink())?;
    }
    Ok(total)
}

fn read_chunked(
    reader: &mut BufReader<TcpStream>,
    mut sink: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let size_text = line
            .trim_end_matches("\r\n")
            .split(';')
            .next()
            .unwrap_or("");
        let mut left = u64::from_str_radix(size_text, 16).map_err(|_| bad("chunk size"))?;
        if left == 0 {
            loop {
                let mut trailer = String::new();
                reader.read_line(&mut trailer)?;
                if trailer == "\r\n" {
                    return Ok(());
                }
                if trailer.is_empty() {
                    return Err(bad("eof in trailers"));
                }
            }
        }
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = reader.read(&mut buf[..want])?;
            if n == 0 {
                return Err(bad("eof in chunk"));
            }
            sink(&buf[..n]);
            left -= n as u64;
        }
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(bad("missing CRLF after chunk"));
        }
    }
}

fn respond(
    out: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} X\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if status != 204 && status != 304 {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut msg = head.into_bytes();
    if !head_only && status != 204 && status != 304 {
        msg.extend_from_slice(body);
    }
    out.write_all(&msg)
}

fn download(out: &mut TcpStream, n: u64, head_only: bool) -> std::io::Result<()> {
    let mut msg = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes();
    if head_only {
        return out.write_all(&msg);
    }
    // A block whose length is a multiple of 251 repeats the pattern exactly.
    let block: Vec<u8> = (0..251 * 256).map(pattern_byte).collect();
    // The head leaves with the first block: a small head written alone
    // would hold the body back behind Nagle and the proxy's delayed ACK
    // (40 ms a response).
    let mut left = n;
    loop {
        let take = left.min(block.len() as u64) as usize;
        msg.extend_from_slice(&block[..take]);
        out.write_all(&msg)?;
        msg.clear();
        left -= take as u64;
        if left == 0 {
            return Ok(());
        }
    }
}

fn echo_bytes(mut reader: BufReader<TcpStream>, mut out: TcpStream) -> std::io::Result<()> {
    let pending = reader.buffer().to_vec();
    out.write_all(&pending)?;
    reader.consume(pending.len());
    let mut inner = reader.into_inner();
    std::io::copy(&mut inner, &mut out)?;
    out.shutdown(std::net::Shutdown::Write)
}
