//! Every refusal and every failure status, through the real binary.

use std::io::Read;
use std::time::{Duration, Instant};

use ringmesh_tests::{config, Client, Proxy, Upstream};

fn simple_proxy(up: &Upstream, listener_extra: &str) -> Proxy {
    Proxy::start(&config(
        "      - { match: { path: { prefix: / } }, cluster: app }\n",
        &[("app", &[up])],
        listener_extra,
    ))
}

/// Send `raw`, expect `status` and then a closed connection.
fn assert_refused(proxy: &Proxy, raw: &str, status: u16, reason: &str) {
    let mut c = Client::connect(proxy.addr("main"));
    let r = c.request(raw.as_bytes());
    assert_eq!(r.status, status, "for {raw:?}: {}", r.text());
    assert_eq!(r.header("ringmesh-error"), Some(reason), "for {raw:?}");
    assert_eq!(r.header("connection"), Some("close"), "for {raw:?}");
    assert!(c.is_closed(), "connection closed after {raw:?}");
}

#[test]
fn smuggling_framings_get_400_and_a_closed_connection() {
    let up = Upstream::start("up");
    let proxy = simple_proxy(&up, "");
    let cases = [
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "content_length_and_transfer_encoding"),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", "invalid_content_length"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "unsupported_transfer_encoding"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", "unsupported_transfer_encoding"),
        ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", "invalid_header_name"),
        ("GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n", "invalid_header_name"),
        ("GET / HTTP/1.1\r\n\r\n", "invalid_host"),
    ];
    for (raw, reason) in cases {
        assert_refused(&proxy, raw, 400, reason);
    }
    assert_eq!(up.requests(), 0, "no refused request reached the upstream");
}

#[test]
fn invalid_chunk_size_gets_400() {
    let up = Upstream::start("up");
    let proxy = simple_proxy(&up, "");
    for bad in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "5 x\r\nhello\r\n0\r\n\r\n",
        "11111111111111111\r\n",
    ] {
        let raw =
            format!("POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{bad}");
        let mut c = Client::connect(proxy.addr("main"));
        let r = c.request(raw.as_bytes());
        assert_eq!(r.status, 400, "for {bad:?}");
        assert_eq!(r.header("ringmesh-error"), Some("invalid_chunked_body"));
        assert!(c.is_closed());
    }
}

#[test]
fn header_limits_give_431() {
    let up = Upstream::start("up");
    let proxy = simple_proxy(&up, "    max_headers: 20\n    max_header_bytes: 2048\n");
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_refused(
        &proxy,
        &format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n"),
        431,
        "header_count_over_limit",
    );
    let big = "a".repeat(4000);
    assert_refused(
        &proxy,
        &format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n"),
        431,
        "header_bytes_over_limit",
    );
    // Never completed: the limit applies to a partial head too.
    let mut c = Client::connect(proxy.addr("main"));
    c.send(format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}").as_bytes());
    assert_eq!(c.read_response(false).status, 431);
}

#[test]
fn slow_headers_get_408() {
    let up = Upstream::start("up");
    let proxy = simple_proxy(&up, "    header_read_timeout: 300ms\n");
    let mut c = Client::connect(proxy.addr("main"));
    let start = Instant::now();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 408);
    assert_eq!(r.header("ringmesh-error"), Some("request_header_timeout"));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(c.is_closed());
}

#[test]
fn idle_keep_alive_connections_are_closed_after_idle_timeout() {
    let up = Upstream::start("up");
    let proxy = simple_proxy(&up, "    idle_timeout: 200ms\n");
    let mut c = Client::connect(proxy.addr("main"));
    assert_eq!(c.get("/", "a").status, 200);
    let mut byte = [0u8; 1];
    let n = c.stream.read(&mut byte).expect("closed, not timed out");
    assert_eq!(n, 0, "proxy closed the idle connection");
}

#[test]
fn upstream_failures_map_to_5xx_with_reasons() {
    let up = Upstream::start("up");
    let dead_addr = ringmesh_tests::closed_port();
    let yaml = format!(
        r"runtime: {{ workers: 1 }}
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - {{ match: {{ path: {{ prefix: /dead }} }}, cluster: dead }}
      - {{ match: {{ path: {{ prefix: /nodns }} }}, cluster: nodns }}
      - {{ match: {{ path: {{ prefix: /delay }} }}, cluster: app, timeout: 200ms }}
      - {{ match: {{ path: {{ prefix: /only }} }}, direct_response: {{ status: 200, body: ok }} }}
      - {{ match: {{ path: {{ prefix: / }}, headers: [ {{ name: x-go, present: true }} ] }}, cluster: app }}
clusters:
  - {{ name: app, endpoints: ['{}'] }}
  - {{ name: dead, endpoints: ['{dead_addr}'] }}
  - {{ name: nodns, endpoints: ['no-such-host.invalid:80'] }}
",
        up.addr
    );
    let proxy = Proxy::start(&yaml);
    let mut c = Client::connect(proxy.addr("main"));
    let cases: [(&str, u16, &str); 6] = [
        ("GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n", 404, "no_route"),
        (
            "GET /dead HTTP/1.1\r\nHost: a\r\n\r\n",
            502,
            "upstream_connect_failed",
        ),
        (
            "GET /nodns HTTP/1.1\r\nHost: a\r\n\r\n",
            503,
            "no_healthy_endpoints",
        ),
        (
            "GET /delay/3000 HTTP/1.1\r\nHost: a\r\n\r\n",
            504,
            "upstream_response_timeout",
        ),
        (
            "GET /reset HTTP/1.1\r\nHost: a\r\nX-Go: 1\r\n\r\n",
            502,
            "upstream_reset_before_response",
        ),
        (
            "GET /bad-framing HTTP/1.1\r\nHost: a\r\nX-Go: 1\r\n\r\n",
            502,
            "upstream_invalid_response",
        ),
    ];
    for (raw, status, reason) in cases {
        let r = c.request(raw.as_bytes());
        assert_eq!(
            (r.status, r.header("ringmesh-error")),
            (status, Some(reason)),
            "for {raw:?}"
        );
        assert!(r.text().contains(reason), "body says why: {}", r.text());
    }
    assert_eq!(
        c.get("/only", "a").text(),
        "ok",
        "client connection survives upstream failures"
    );
    let log = proxy.log_text();
    assert!(
        log.contains("reason=upstream_connect_failed"),
        "failures are logged with their reason:\n{log}"
    );
}

#[test]
fn a_pipelined_request_after_an_upstream_failure_is_intact() {
    let up = Upstream::start("up");
    let dead_addr = ringmesh_tests::closed_port();
    let yaml = format!(
        "runtime: {{ workers: 1 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - {{ match: {{ path: {{ prefix: /dead }} }}, cluster: dead }}\n      - {{ cluster: app }}\nclusters:\n  - {{ name: app, endpoints: ['{}'] }}\n  - {{ name: dead, endpoints: ['{dead_addr}'] }}\n",
        up.addr
    );
    let proxy = Proxy::start(&yaml);
    let mut c = Client::connect(proxy.addr("main"));
    c.send(b"GET /dead HTTP/1.1\r\nHost: a\r\n\r\nGET /conn HTTP/1.1\r\nHost: a\r\n\r\n");
    let first = c.read_response(false);
    assert_eq!(first.status, 502);
    let second = c.read_response(false);
    assert_eq!(
        (second.status, second.text().as_str()),
        (200, "conn=1"),
        "the second request reached the upstream whole"
    );
}

#[test]
fn a_client_gone_mid_body_is_counted_by_the_status_it_got() {
    let up = Upstream::start("up");
    let proxy = simple_proxy(&up, "");
    let mut c = Client::connect(proxy.addr("main"));
    c.send(b"GET /download/104857600 HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut first = [0u8; 4096];
    let n = std::io::Read::read(&mut c.stream, &mut first).expect("response starts");
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    drop(c);
    ringmesh_tests::eventually(
        "the aborted download is counted as 2xx",
        Duration::from_secs(10),
        || {
            let (_, m) = proxy.admin_get("/metrics");
            m.contains(
                "ringmesh_requests_total{listener=\"main\",direction=\"inbound\",route=\"route0\",class=\"2xx\"} 1",
            ) && m.contains("ringmesh_upstream_requests_total{cluster=\"app\",class=\"2xx\"} 1")
        },
    );
    let (_, m) = proxy.admin_get("/metrics");
    assert!(
        m.contains("ringmesh_requests_total{listener=\"main\",direction=\"inbound\",route=\"route0\",class=\"4xx\"} 0"),
        "{m}"
    );
}

#[test]
fn without_a_route_timeout_a_hung_upstream_is_bounded_by_the_idle_timeout() {
    let up = Upstream::start("up");
    let proxy = simple_proxy(&up, "    idle_timeout: 500ms\n");
    let started = std::time::Instant::now();
    let r = Client::connect(proxy.addr("main")).get("/delay/5000", "a");
    assert_eq!(
        (r.status, r.header("ringmesh-error")),
        (504, Some("upstream_response_timeout"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn connection_limit_gives_503() {
    let up = Upstream::start("up");
    let yaml = format!(
        "runtime: {{ workers: 1 }}\nlisteners: [ {{ name: main, address: '127.0.0.1:0', routes: [ {{ cluster: app }} ] }} ]\nclusters: [ {{ name: app, endpoints: ['{}'], pool: {{ max_connections: 1 }} }} ]\n",
        up.addr
    );
    let proxy = Proxy::start(&yaml);
    let addr = proxy.addr("main");
    let slow = std::thread::spawn(move || Client::connect(addr).get("/delay/1500", "a").status);
    ringmesh_tests::eventually(
        "the slow request holds the only connection",
        Duration::from_secs(5),
        || up.connections() == 1,
    );
    std::thread::sleep(Duration::from_millis(100));
    let r = Client::connect(addr).get("/", "a");
    assert_eq!(
        (r.status, r.header("ringmesh-error")),
        (503, Some("overflow"))
    );
    assert_eq!(slow.join().expect("slow request"), 200);
}

#[test]
fn an_early_upstream_rejection_reaches_the_client() {
    let up = Upstream::start("up");
    let proxy = simple_proxy(&up, "");
    let mut c = Client::connect(proxy.addr("main"));
    let size = 64 << 20;
    c.send(
        format!("POST /reject HTTP/1.1\r\nHost: a\r\nContent-Length: {size}\r\n\r\n").as_bytes(),
    );
    // Keep uploading while the upstream has already answered and closed.
    let mut writer = c.stream.try_clone().expect("clone");
    let uploader = std::thread::spawn(move || {
        let block = vec![b'x'; 1 << 20];
        let mut sent = 0usize;
        while sent < size {
            if std::io::Write::write_all(&mut writer, &block).is_err() {
                break;
            }
            sent += block.len();
        }
    });
    let r = c.read_response(false);
    assert_eq!(
        (r.status, r.text().as_str()),
        (413, "too big\n"),
        "the upstream's answer, not a 502"
    );
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "the unread body ends the connection"
    );
    uploader.join().expect("uploader");
}

#[test]
fn a_refused_upload_is_drained_not_reset() {
    // No route: the proxy answers 404 without reading the body. It then
    // half-closes and discards the rest of the upload for a while (lingering
    // close), so a client finishing its upload sees no reset; closing at
    // once would answer the unread bytes with a reset.
    let up = Upstream::start("up");
    let proxy = Proxy::start(&config(
        "      - { match: { path: { exact: /only } }, cluster: app }\n",
        &[("app", &[&up])],
        "",
    ));
    let size: usize = 8 << 20;
    let mut c = Client::connect(proxy.addr("main"));
    c.send(
        format!("POST /elsewhere HTTP/1.1\r\nHost: a\r\nContent-Length: {size}\r\n\r\n").as_bytes(),
    );
    let r = c.read_response(false);
    assert_eq!((r.status, r.header("connection")), (404, Some("close")));
    std::thread::sleep(Duration::from_millis(100));
    let block = vec![b'x'; 64 << 10];
    for i in 0..(size / block.len()) {
        if let Err(e) = std::io::Write::write_all(&mut c.stream, &block) {
            panic!("upload block {i} failed: {e}: the proxy reset instead of draining");
        }
    }
    assert!(
        c.read_to_close().is_empty(),
        "then the proxy closes cleanly"
    );
}

#[test]
fn stale_pooled_connection_is_retried_transparently() {
    let up = Upstream::start("up");
    let proxy = Proxy::start(&format!(
        "runtime: {{ workers: 1 }}\nlisteners: [ {{ name: main, address: '127.0.0.1:0', routes: [ {{ cluster: app }} ] }} ]\nclusters: [ {{ name: app, endpoints: ['{}'] }} ]\n",
        up.addr
    ));
    let mut c = Client::connect(proxy.addr("main"));
    // The upstream answers keep-alive, then closes the connection while it
    // sits idle in the proxy's pool.
    assert_eq!(c.get("/then-close", "a").text(), "closing");
    std::thread::sleep(Duration::from_millis(100));
    let r = c.get("/", "a");
    assert_eq!(
        r.status,
        200,
        "request retried on a new connection: {}",
        r.text()
    );
    assert_eq!(up.connections(), 2);
}

#[test]
fn failure_logs_are_rate_limited_per_core() {
    let workers: u64 = 1;
    let yaml = format!(
        "runtime: {{ workers: {workers} }}\nlisteners: [ {{ name: main, address: '127.0.0.1:0', routes: [ {{ cluster: dead }} ] }} ]\nclusters: [ {{ name: dead, endpoints: ['{}'] }} ]\n",
        ringmesh_tests::closed_port()
    );
    let proxy = Proxy::start(&yaml);
    let mut c = Client::connect(proxy.addr("main"));
    let started = Instant::now();
    for _ in 0..300 {
        assert_eq!(c.get("/", "a").status, 502);
    }
    let elapsed = started.elapsed();
    // The held-back lines are counted and logged when the second is over.
    let deadline = Instant::now() + Duration::from_secs(3);
    while proxy.log_count("suppressed=") == 0 {
        assert!(
            Instant::now() < deadline,
            "no line says failures were rate-limited; {} `request failed` lines for 300 failures",
            proxy.log_count("request failed")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // 10 lines a second per core, in every second the loop touched.
    let bound = 10 * workers * (elapsed.as_secs_f64().ceil() as u64 + 1);
    let logged = proxy.log_count("request failed") as u64;
    assert!(
        logged <= bound,
        "{logged} `request failed` lines in {elapsed:?} (at most {bound})"
    );
    assert!(logged > 0, "failures are still logged");
    // And none is lost: every failure is a line or in a count.
    let accounted = || {
        let suppressed: u64 = proxy
            .log
            .lock()
            .expect("log lock")
            .iter()
            .filter_map(|l| l.split("suppressed=").nth(1))
            .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        logged + suppressed
    };
    ringmesh_tests::eventually(
        "every failure logged or counted",
        Duration::from_secs(3),
        || accounted() == 300,
    );
}
