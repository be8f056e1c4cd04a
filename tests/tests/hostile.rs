//! Hostile peers: clients that try to smuggle a request past the proxy,
//! break chunked framing, or stop reading and hold the proxy's resources.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringmesh_tests::{config, eventually, with_runtime, Client, Proxy, Upstream};

fn simple_proxy(up: &Upstream, listener_extra: &str) -> Proxy {
    Proxy::start(&config(
        "      - { match: { path: { prefix: / } }, cluster: app }\n",
        &[("app", &[up])],
        listener_extra,
    ))
}

/// The status line a GET on a new connection gets, or why there is none.
fn status_line(addr: SocketAddr) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return "connect failed".into();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if let Err(e) = s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") {
        return format!("write failed: {e}");
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") && head.len() < 200 {
        match s.read(&mut byte) {
            Ok(0) => return format!("closed after {:?}", String::from_utf8_lossy(&head)),
            Ok(_) => head.push(byte[0]),
            Err(e) => return format!("read failed: {e}"),
        }
    }
    String::from_utf8_lossy(&head).trim_end().to_string()
}

/// Wait until a GET on a new connection gets a 200; the panic says what
/// the last try got instead.
fn wait_until_served(addr: SocketAddr, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let got = status_line(addr);
        if got.starts_with("HTTP/1.1 200") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}; the last try got {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn content_length_named_in_connection_still_frames_the_body() {
    // Connection may list hop-by-hop headers to drop; dropping
    // Content-Length would leave the upstream reading the body as the next
    // request: a request smuggled past the proxy's routing.
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    for connection in ["Content-Length", "close, Content-Length"] {
        let up = Upstream::start("up");
        let proxy = simple_proxy(&up, "");
        let mut c = Client::connect(proxy.addr("main"));
        let raw = format!(
            "POST /echo HTTP/1.1\r\nHost: a\r\nConnection: {connection}\r\nContent-Length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        );
        let r = c.request(raw.as_bytes());
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, smuggled),
            "Connection: {connection}: the body is echoed as a body"
        );
        // A request after it, on the same upstream connection if it was
        // pooled: anything the upstream read as a request in between shows.
        let next = Client::connect(proxy.addr("main")).get("/", "a");
        assert_eq!(next.text(), "up");
        assert_eq!(
            up.requests(),
            2,
            "Connection: {connection}: the upstream saw the POST and the next request only"
        );
    }
}

#[test]
fn an_invalid_first_chunk_size_line_never_reaches_the_upstream() {
    let up = Upstream::start("up");
    let proxy = simple_proxy(&up, "");
    for bad in [
        "0x5\r\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        // 17 hex digits: past u64.
        "10000000000000005\r\nhello\r\n0\r\n\r\n",
        // A chunk extension ended by a bare LF.
        "5;ext\nhello\r\n0\r\n\r\n",
    ] {
        let raw =
            format!("POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{bad}");
        let mut c = Client::connect(proxy.addr("main"));
        let r = c.request(raw.as_bytes());
        assert_eq!(
            (r.status, r.header("ringmesh-error")),
            (400, Some("invalid_chunked_body")),
            "for {bad:?}: {}",
            r.text()
        );
        assert!(c.is_closed(), "connection closed after {bad:?}");
    }
    assert_eq!(
        up.connections(),
        0,
        "the proxy checked the body that came with the head before connecting"
    );
}

#[test]
fn a_later_invalid_chunk_closes_the_upstream_connection() {
    let up = Upstream::start("up");
    let proxy = simple_proxy(&up, "");
    let mut c = Client::connect(proxy.addr("main"));
    c.send(b"POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    eventually(
        "the upstream has the request head",
        Duration::from_secs(5),
        || up.requests() == 1,
    );
    c.send(b"zz\r\n");
    let r = c.read_response(false);
    assert_eq!(
        (r.status, r.header("ringmesh-error")),
        (400, Some("invalid_chunked_body")),
        "no response head was sent yet: {}",
        r.text()
    );
    assert!(c.is_closed());
    // The upstream connection holds half a request: never reused.
    let next = Client::connect(proxy.addr("main")).get("/conn", "a");
    assert_eq!(
        (next.status, next.text().as_str()),
        (200, "conn=2"),
        "a new upstream connection"
    );
}

/// A client that sends `requests` pipelined and never reads a byte; the
/// stream is kept open until dropped.
fn stalled_client(addr: SocketAddr, request: &'static str, requests: usize) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    let mut writer = stream.try_clone().expect("clone");
    writer
        .set_write_timeout(Some(Duration::from_secs(20)))
        .expect("write timeout");
    // In a thread: if the proxy stops reading, the writes block, and the
    // proxy closing the connection ends them.
    std::thread::spawn(move || {
        let all = request.repeat(requests);
        let _ = writer.write_all(all.as_bytes());
    });
    stream
}

#[test]
fn a_client_that_stops_reading_is_closed_and_frees_its_upstream_connection() {
    let up = Upstream::start("up");
    let yaml = format!(
        "runtime: {{ workers: 1 }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners: [ {{ name: main, address: '127.0.0.1:0', idle_timeout: 1s, routes: [ {{ cluster: app }} ] }} ]\nclusters: [ {{ name: app, endpoints: ['{}'], pool: {{ max_connections: 1 }} }} ]\n",
        up.addr
    );
    let proxy = Proxy::start(&yaml);
    let addr = proxy.addr("main");
    // Small responses (the proxy writes each in one piece, head and body),
    // 20 MB in all: more than the client's receive buffer and the proxy's
    // send buffer (which the kernel may grow to 4 MB) hold.
    let _a = stalled_client(
        addr,
        "GET /download/10000 HTTP/1.1\r\nHost: a\r\n\r\n",
        2000,
    );
    eventually(
        "the stalled client holds the only upstream connection",
        Duration::from_secs(5),
        || up.requests() > 0,
    );
    // Until the proxy gives up on A, B gets 503 overflow.
    wait_until_served(
        addr,
        "a second client is served once the stalled one is dropped",
        Duration::from_secs(10),
    );
}

#[test]
fn a_client_that_stops_reading_direct_responses_is_closed() {
    let body = "x".repeat(20 * 1024);
    let routes = format!("      - {{ direct_response: {{ status: 200, body: '{body}' }} }}\n");
    let yaml = config(&routes, &[], "    idle_timeout: 1s\n");
    let proxy = Proxy::start(&with_runtime(&yaml, "{ workers: 1 }"));
    let active = "ringmesh_downstream_connections_active{listener=\"main\"}";
    let a = stalled_client(
        proxy.addr("main"),
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        2000,
    );
    eventually(
        "the stalled client is counted",
        Duration::from_secs(5),
        || proxy.metric(active) == Some(1),
    );
    eventually(
        "the stalled client is closed",
        Duration::from_secs(10),
        || proxy.metric(active) == Some(0),
    );
    drop(a);
}

#[test]
fn connections_over_the_listener_limit_are_closed_at_once() {
    let up = Upstream::start("up");
    let yaml = config(
        "      - { cluster: app }\n",
        &[("app", &[&up])],
        "    max_connections: 2\n",
    );
    let proxy = Proxy::start(&with_runtime(&yaml, "{ workers: 1 }"));
    let addr = proxy.addr("main");
    let mut first = Client::connect(addr);
    let mut second = Client::connect(addr);
    assert_eq!(first.get("/", "a").status, 200);
    assert_eq!(second.get("/", "a").status, 200);

    let mut third = std::net::TcpStream::connect(addr).expect("the kernel accepts");
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut buf = [0u8; 64];
    match third.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "the third connection was answered: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("the third connection was not closed: {e}"),
    }
    eventually("the rejection is counted", Duration::from_secs(5), || {
        proxy.metric("ringmesh_downstream_connections_rejected_total{listener=\"main\"}") == Some(1)
    });
    assert_eq!(up.requests(), 2, "the rejected request went nowhere");

    drop(first);
    wait_until_served(
        addr,
        "a new client is served once one of the two has gone",
        Duration::from_secs(5),
    );
    assert_eq!(second.get("/", "a").status, 200, "the other one stayed");
}
