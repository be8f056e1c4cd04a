//! Real HTTP/2 clients for the end-to-end tests: curl (`--http2`,
//! `--http2-prior-knowledge`) and h2load, from Debian's `curl` and
//! `nghttp2-client` (`.ci/run` installs them).

use std::io::Write;

use std::process::{Command, Stdio};

/// What curl received.
#[derive(Debug)]
pub struct Reply {
    /// `2` for HTTP/2, `1.1` for HTTP/1.1.
    pub version: String,
    pub status: u16,
    /// Every header and trailer line, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Run curl with `args` (a URL among them), `stdin` as its input; the
/// response, or curl's error output.
pub fn curl(args: &[&str], stdin: &[u8]) -> Result<Reply, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let head = dir.path().join("head");
    let body = dir.path().join("body");
    let mut child = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("curl: {e} (is it installed? .ci/run installs it)"));
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin);
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let head = std::fs::read_to_string(&head).map_err(|e| e.to_string())?;
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts
        .next()
        .unwrap_or_default()
        .trim_start_matches("HTTP/")
        .to_string();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        version,
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    })
}

/// h2load's summary of a run.
#[derive(Debug)]
pub struct Load {
    pub succeeded: u64,
    pub failed: u64,
    pub errored: u64,
    pub status_2xx: u64,
    pub output: String,
}

/// Run h2load with `args` (a URL among them).
pub fn h2load(args: &[&str]) -> Load {
    let out = Command::new("h2load")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("h2load: {e} (is nghttp2-client installed? .ci/run installs it)")
        });
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    // "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, 0 timeout"
    let count = |line: &str, what: &str| -> u64 {
        line.split(',')
            .find(|p| p.trim().ends_with(what))
            .and_then(|p| p.split_whitespace().rev().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let requests = output
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_default()
        .to_string();
    let statuses = output
        .lines()
        .find(|l| l.starts_with("status codes:"))
        .unwrap_or_default()
        .to_string();
    Load {
        succeeded: count(&requests, "succeeded"),
        failed: count(&requests, "failed"),
        errored: count(&requests, "errored"),
        status_2xx: count(&statuses.replace("status codes:", ""), "2xx"),
        output,
    }
}

/// A hand-driven HTTP/2 client: frames built byte by byte, for the
/// protocol abuse a well-behaved client library refuses to send.
pub struct RawH2 {
    pub stream: std::net::TcpStream,
}

/// Frame types (RFC 9113 section 6).
pub mod frame {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const ACK: u8 = 0x1;
}

/// A frame read back.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A GOAWAY's or RST_STREAM's error code.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            frame::GOAWAY => 4,
            frame::RST_STREAM => 0,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl RawH2 {
    /// Connect and send the preface and an empty SETTINGS frame.
    pub fn connect(addr: std::net::SocketAddr) -> RawH2 {
        let stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let mut c = RawH2 { stream };
        c.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        c.send(frame::SETTINGS, 0, 0, &[]);
        c
    }

    pub fn write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Send one frame; false once the proxy closed the connection.
    pub fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> bool {
        self.write(&frame_bytes(kind, flags, stream, payload))
    }

    /// A GET for `path` on `stream`, ending the stream.
    pub fn get(&mut self, stream: u32, path: &str) -> bool {
        let block = hpack(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "test"),
        ]);
        self.send(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            stream,
            &block,
        )
    }

    /// The next frame, or `None` at the end of the connection (or after
    /// the read timeout).
    pub fn read(&mut self) -> Option<Frame> {
        use std::io::Read;
        let mut head = [0u8; 9];
        self.stream.read_exact(&mut head).ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).ok()?;
        Some(Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload,
        })
    }

    /// Every frame until the connection ends; answers SETTINGS with ACK.
    pub fn read_to_end(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = self.read() {
            if f.kind == frame::SETTINGS && f.flags & frame::ACK == 0 {
                self.send(frame::SETTINGS, frame::ACK, 0, &[]);
            }
            frames.push(f);
        }
        frames
    }
}

pub fn frame_bytes(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK header block of literals without indexing and without
/// Huffman coding (RFC 7541 section 6.2.2): plain enough to build by
/// hand, valid for any decoder.
pub fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        string(&mut out, name.as_bytes());
        string(&mut out, value.as_bytes());
    }
    out
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    // A 7-bit prefix integer (RFC 7541 section 5.1), no Huffman flag.
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s);
}
