//! TLS for the end-to-end tests: certificates made at test time (rcgen,
//! never committed), a blocking TLS client that reports which certificate
//! it was shown, and a TLS upstream.
//!
//! The client and upstream use rustls' ordinary blocking API, not the
//! proxy's stream: the proxy's TLS is checked against an independent one
//! (and against curl and openssl in the tests themselves).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ringmesh_pki::mint::{Ca, Ymd};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::client::{Response, READ_TIMEOUT};

/// A CA whose certificates and keys are written under a temporary
/// directory, for configs to name.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    ca: Ca,
}

/// A leaf certificate's files.
#[derive(Clone)]
pub struct LeafFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let ca = Ca::new(name).expect("test CA");
        let dir = tempfile::tempdir().expect("pki dir");
        std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem).expect("write ca");
        Pki {
            dir,
            ca_pem: ca.cert_pem.clone(),
            ca,
        }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A leaf for `names` (DNS names or IPs), written as `<file>.crt/.key`.
    pub fn leaf(&self, file: &str, names: &[&str]) -> LeafFiles {
        self.leaf_dated(file, names, None)
    }

    /// A leaf valid only between two dates (year, month, day).
    pub fn leaf_dated(&self, file: &str, names: &[&str], window: Option<(Ymd, Ymd)>) -> LeafFiles {
        let issued = self.ca.leaf_dated(names, window).expect("test leaf");
        let files = LeafFiles {
            cert: self.dir.path().join(format!("{file}.crt")),
            key: self.dir.path().join(format!("{file}.key")),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        };
        files.write();
        files
    }
}

impl LeafFiles {
    /// (Re)write the files, e.g. to rotate them in place.
    pub fn write(&self) {
        std::fs::write(&self.cert, &self.cert_pem).expect("write cert");
        std::fs::write(&self.key, &self.key_pem).expect("write key");
    }

    /// The same files with another leaf's contents (a rotation).
    pub fn replaced_by(&self, other: &LeafFiles) -> LeafFiles {
        let files = LeafFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
            cert_pem: other.cert_pem.clone(),
            key_pem: other.key_pem.clone(),
        };
        files.write();
        files
    }

    pub fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).expect("cert der")
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(ca_pem: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("add root");
    }
    roots
}

/// A blocking HTTPS client on one keep-alive connection.
pub struct TlsClient {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl TlsClient {
    /// Connect and finish the handshake; the error says why it failed.
    pub fn connect(
        addr: SocketAddr,
        ca_pem: &str,
        sni: &str,
        client_cert: Option<&LeafFiles>,
    ) -> Result<TlsClient, String> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots(ca_pem));
        let mut config = match client_cert {
            Some(l) => builder
                .with_client_auth_cert(
                    vec![l.der()],
                    PrivateKeyDer::from_pem_slice(l.key_pem.as_bytes()).expect("key"),
                )
                .expect("client cert"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| e.to_string())?;
        }
        Ok(TlsClient {
            stream,
            buf: Vec::new(),
        })
    }

    /// The leaf certificate the server presented.
    pub fn server_cert(&self) -> CertificateDer<'static> {
        self.stream
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("server certificate")
            .clone()
    }

    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.conn.alpn_protocol().map(<[u8]>::to_vec)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("TLS write");
    }

    /// Read until the buffer holds `n` bytes, then take them.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let mut chunk = [0u8; 16 * 1024];
            let got = self.stream.read(&mut chunk).expect("TLS read");
            assert!(got > 0, "closed with {} of {n} bytes", self.buf.len());
            self.buf.extend_from_slice(&chunk[..got]);
        }
        self.buf.drain(..n).collect()
    }

    /// Read one response head (any framing), as text.
    pub fn read_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = self.buf.drain(..end + 4).collect::<Vec<u8>>();
                return String::from_utf8_lossy(&head).into_owned();
            }
            let mut chunk = [0u8; 4096];
            let got = self.stream.read(&mut chunk).expect("TLS read");
            assert!(got > 0, "closed before a response head");
            self.buf.extend_from_slice(&chunk[..got]);
        }
    }

    /// Close the sending side: close_notify, then a TCP half-close.
    pub fn close_write(&mut self) {
        self.stream.conn.send_close_notify();
        let _ = self.stream.flush();
        let _ = self.stream.sock.shutdown(std::net::Shutdown::Write);
    }

    /// Everything until the server closes.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.buf);
        let _ = self.stream.read_to_end(&mut rest);
        rest
    }

    /// GET `path`; the response needs a Content-Length (all the proxy's and
    /// the TLS upstream's do). `Err` when the connection failed.
    pub fn get(&mut self, path: &str, host: &str) -> Result<Response, String> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        self.stream
            .write_all(req.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        loop {
            if let Some((resp, used)) = parse(&self.buf)? {
                self.buf.drain(..used);
                return Ok(resp);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self
                .stream
                .read(&mut chunk)
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed before a full response".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// One response with a Content-Length body from the front of `buf`.
fn parse(buf: &[u8]) -> Result<Option<(Response, usize)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut fields);
    let head = match r.parse(buf).map_err(|e| e.to_string())? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .ok_or("response without content-length")?;
    if buf.len() < head + len {
        return Ok(None);
    }
    Ok(Some((
        Response {
            status: r.code.unwrap_or(0),
            headers,
            body: buf[head..head + len].to_vec(),
            trailers: Vec::new(),
        },
        head + len,
    )))
}

/// An HTTPS upstream: keep-alive, thread per connection. `/headers`
/// answers with the request head; anything else with its name.
pub struct TlsUpstream {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl TlsUpstream {
    pub fn start(name: &str, leaf: &LeafFiles) -> TlsUpstream {
        Self::start_with(name, leaf, None)
    }

    /// An upstream that requires a client certificate from `client_ca`.
    pub fn start_with(name: &str, leaf: &LeafFiles, client_ca: Option<&str>) -> TlsUpstream {
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key");
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match client_ca {
            Some(ca) => builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(ca)),
                    provider(),
                )
                .build()
                .expect("client verifier"),
            ),
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(vec![leaf.der()], key)
            .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let (count, name) = (connections.clone(), name.to_string());
        std::thread::spawn(move || {
            for tcp in listener.incoming().map_while(Result::ok) {
                count.fetch_add(1, Ordering::SeqCst);
                let (config, name) = (config.clone(), name.clone());
                std::thread::spawn(move || serve(tcp, config, &name));
            }
        });
        TlsUpstream { addr, connections }
    }

    /// TCP connections accepted so far (handshakes that failed included).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve(tcp: TcpStream, config: Arc<rustls::ServerConfig>, name: &str) {
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let _ = tcp.set_read_timeout(Some(READ_TIMEOUT));
    let stream = rustls::StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let body = if path == "/headers" {
            head.clone()
        } else {
            name.to_string()
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let s = reader.get_mut();
        if s.write_all(resp.as_bytes())
            .and_then(|_| s.flush())
            .is_err()
        {
            return;
        }
    }
}

/// Run a command, returning (success, stdout + stderr).
pub fn run(cmd: &str, args: &[&str], stdin: &[u8]) -> (bool, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (is it installed? .ci/run installs it)"));
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin);
    }
    let out = child.wait_with_output().expect("wait");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A path as a YAML string.
pub fn yaml_path(p: &Path) -> String {
    format!("'{}'", p.display())
}
