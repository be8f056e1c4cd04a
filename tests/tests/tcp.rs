//! Opaque TCP proxying: listeners with `tcp:` relay bytes to a cluster,
//! real processes and sockets, a server that speaks first (as SMTP and
//! MySQL do), TLS on the listener.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmesh_tests::tls::{yaml_path, Pki, TlsClient};
use ringmesh_tests::{closed_port, eventually, Proxy};

/// A server that greets first, then echoes; counts connections.
struct Greeter {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

const GREETING: &[u8] = b"220 greeter ready\r\n";

impl Greeter {
    fn start() -> Greeter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for s in listener.incoming().map_while(Result::ok) {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || echo(s));
            }
        });
        Greeter { addr, connections }
    }
}

fn echo(mut s: TcpStream) {
    if s.write_all(GREETING).is_err() {
        return;
    }
    ringmesh_tests::echo(s);
}

fn yaml(endpoints: &[SocketAddr], tcp_extra: &str, listener_extra: &str) -> String {
    let eps: Vec<String> = endpoints.iter().map(|a| format!("'{a}'")).collect();
    format!(
        "runtime: {{ workers: 2 }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners:\n  - name: db\n    address: 127.0.0.1:0\n{listener_extra}    tcp: {{ cluster: backend{tcp_extra} }}\nclusters:\n  - {{ name: backend, endpoints: [{}], connect_timeout: 500ms }}\n",
        eps.join(", ")
    )
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s
}

fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).expect("read");
    buf
}

#[test]
fn bytes_cross_both_ways_to_a_server_that_speaks_first() {
    let up = Greeter::start();
    let proxy = Proxy::start(&yaml(&[up.addr], "", ""));
    let mut c = connect(proxy.addr("db"));
    assert_eq!(
        read_exact(&mut c, GREETING.len()),
        GREETING,
        "the server's greeting, unprompted"
    );
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.write_all(b"HELO x\r\n").expect("write");
    assert_eq!(read_exact(&mut c, 8), b"HELO x\r\n");
    let writer = {
        let mut w = c.try_clone().expect("clone");
        let big = big.clone();
        std::thread::spawn(move || w.write_all(&big).expect("write big"))
    };
    assert!(read_exact(&mut c, big.len()) == big, "300 kB echoed intact");
    writer.join().expect("writer");
    // A half-close reaches the server, whose close comes back.
    c.shutdown(std::net::Shutdown::Write).expect("half-close");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("read to end");
    assert!(rest.is_empty());
    let up_bytes = 8 + big.len() as u64;
    let down_bytes = up_bytes + GREETING.len() as u64;
    eventually("bytes counted", Duration::from_secs(5), || {
        proxy_metric(
            &proxy,
            "ringmesh_tunnel_bytes_total{listener=\"db\",direction=\"up\"}",
        ) == up_bytes
            && proxy_metric(
                &proxy,
                "ringmesh_tunnel_bytes_total{listener=\"db\",direction=\"down\"}",
            ) == down_bytes
    });
}

#[test]
fn a_refused_endpoint_is_skipped_and_no_endpoint_closes_the_client() {
    let up = Greeter::start();
    let proxy = Proxy::start(&yaml(&[closed_port(), up.addr], "", ""));
    // Round robin hands every other connection the closed port first: each
    // moves on to the live endpoint.
    for _ in 0..6 {
        let mut c = connect(proxy.addr("db"));
        assert_eq!(read_exact(&mut c, GREETING.len()), GREETING);
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), 6);

    let proxy = Proxy::start(&yaml(&[closed_port()], "", ""));
    let mut c = connect(proxy.addr("db"));
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("closed");
    assert!(rest.is_empty(), "closed without a byte: {rest:?}");
}

#[test]
fn an_idle_relay_is_closed() {
    let up = Greeter::start();
    let proxy = Proxy::start(&yaml(&[up.addr], ", idle_timeout: 300ms", ""));
    let mut c = connect(proxy.addr("db"));
    assert_eq!(read_exact(&mut c, GREETING.len()), GREETING);
    let start = Instant::now();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("closed");
    assert!(rest.is_empty());
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_tls_listener_relays_decrypted_bytes() {
    let pki = Pki::new("test ca");
    let a = pki.leaf("a", &["db.test"]);
    let up = Greeter::start();
    let tls = format!(
        "    tls:\n      certificates:\n        - {{ cert: {}, key: {} }}\n",
        yaml_path(&a.cert),
        yaml_path(&a.key)
    );
    let proxy = Proxy::start(&yaml(&[up.addr], "", &tls));
    let mut c =
        TlsClient::connect(proxy.addr("db"), &pki.ca_pem, "db.test", None).expect("handshake");
    assert_eq!(c.read_exact(GREETING.len()), GREETING);
    c.send(b"over tls\r\n");
    assert_eq!(c.read_exact(10), b"over tls\r\n");
}

/// A series' value, 0 while it is absent.
fn proxy_metric(proxy: &Proxy, series: &str) -> u64 {
    proxy.metric(series).unwrap_or(0)
}

/// One port for HTTP/1.1, h2c, TLS and everything else.
fn detecting(up: &Greeter, pki: &Pki, extra: &str) -> Proxy {
    let a = pki.leaf("a", &["svc.test"]);
    let listener = format!(
        "    detect: {{ timeout: 100ms }}\n    tls:\n      certificates:\n        - {{ cert: {}, key: {} }}\n{extra}    routes:\n      - {{ name: web, direct_response: {{ status: 200, body: web }} }}\n",
        yaml_path(&a.cert),
        yaml_path(&a.key)
    );
    Proxy::start(&yaml(&[up.addr], "", &listener))
}

#[test]
fn a_detecting_listener_tells_http_tls_and_tcp_apart() {
    let pki = Pki::new("detect ca");
    let up = Greeter::start();
    let proxy = detecting(&up, &pki, "");
    let addr = proxy.addr("db");

    let mut c = ringmesh_tests::Client::connect(addr);
    let r = c.get("/", "svc.test");
    assert_eq!((r.status, r.text().as_str()), (200, "web"), "HTTP/1.1");

    let r = ringmesh_tests::h2::curl(
        &["--http2-prior-knowledge", &format!("http://{addr}/")],
        b"",
    )
    .expect("h2c");
    assert_eq!((r.version.as_str(), r.text().as_str()), ("2", "web"));

    let mut t = TlsClient::connect(addr, &pki.ca_pem, "svc.test", None).expect("handshake");
    let r = t.get("/", "svc.test").expect("over TLS");
    assert_eq!(r.status, 200, "TLS terminated, then HTTP");

    // A client that speaks first, but not HTTP: relayed.
    let mut s = connect(addr);
    s.write_all(b"\x00\x01binary hello\r\n").expect("send");
    assert_eq!(read_exact(&mut s, GREETING.len()), GREETING);
    assert_eq!(read_exact(&mut s, 16), b"\x00\x01binary hello\r\n");

    // A client that waits for the server to speak first (SMTP, MySQL):
    // relayed once the detection timeout passes, not after a long wait.
    let started = Instant::now();
    let mut s = connect(addr);
    assert_eq!(read_exact(&mut s, GREETING.len()), GREETING);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(90) && waited < Duration::from_secs(1),
        "greeting after {waited:?}"
    );

    for (protocol, at_least) in [
        ("http1", 1),
        ("h2c", 1),
        ("tls", 1),
        ("tcp", 1),
        ("timeout", 1),
    ] {
        let series =
            format!("ringmesh_protocol_detected_total{{listener=\"db\",protocol=\"{protocol}\"}}");
        let n = proxy_metric(&proxy, &series);
        assert!(n >= at_least, "{series} = {n}");
    }
}

#[test]
fn tls_passes_through_when_the_listener_does_not_terminate_it() {
    let pki = Pki::new("passthrough ca");
    let leaf = pki.leaf("up", &["backend.test"]);
    let backend = ringmesh_tests::tls::TlsUpstream::start("backend", &leaf);
    let listener = "    detect: {}\n    routes:\n      - { name: web, direct_response: { status: 200, body: web } }\n";
    let proxy = Proxy::start(&yaml(&[backend.addr], "", listener));
    // The client's TLS session ends at the backend: its certificate is
    // the one the client sees.
    let mut t =
        TlsClient::connect(proxy.addr("db"), &pki.ca_pem, "backend.test", None).expect("handshake");
    assert_eq!(t.server_cert().as_ref(), leaf.der().as_ref());
    let r = t.get("/", "backend.test").expect("through");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "backend");
}

#[test]
fn a_gibibyte_crosses_byte_exact_with_bounded_memory() {
    const TOTAL: u64 = 1 << 30;
    let up = Greeter::start();
    let proxy = Proxy::start(&yaml(&[up.addr], "", ""));
    let mut s = connect(proxy.addr("db"));
    assert_eq!(read_exact(&mut s, GREETING.len()), GREETING);
    let before = proxy.rss_kib();
    // Byte i of the stream is i % 251: any block of it is a slice of
    // this, so both ends compare with memcmp.
    const BLOCK: usize = 256 * 1024;
    let pattern: Arc<Vec<u8>> = Arc::new((0..BLOCK + 251).map(|i| (i % 251) as u8).collect());
    let at = |offset: u64| (offset % 251) as usize;
    let mut writer = s.try_clone().expect("clone");
    let source = pattern.clone();
    let sender = std::thread::spawn(move || {
        let mut sent = 0u64;
        while sent < TOTAL {
            writer
                .write_all(&source[at(sent)..at(sent) + BLOCK])
                .expect("send");
            sent += BLOCK as u64;
        }
        writer
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
    });
    let mut got = 0u64;
    let mut peak = before;
    let mut buf = vec![0u8; BLOCK];
    let started = Instant::now();
    while got < TOTAL {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed after {got} bytes");
        assert!(
            buf[..n] == pattern[at(got)..at(got) + n],
            "bytes {got}..{} differ",
            got + n as u64
        );
        got += n as u64;
        if got % (64 << 20) < n as u64 {
            peak = peak.max(proxy.rss_kib());
        }
    }
    sender.join().expect("sender");
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(
        peak < before + 32 * 1024,
        "RSS went from {before} to {peak} KiB relaying 1 GiB"
    );
}
