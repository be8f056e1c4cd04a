//! HTTP/2 from clients, end to end: curl and h2load against the real
//! proxy, HTTP/1.1 upstreams behind it (translation both ways).

use std::time::Duration;

use ringmesh_tests::h2::{curl, frame, h2load, RawH2};
use ringmesh_tests::h2up::H2Upstream;
use ringmesh_tests::tls::{yaml_path, Pki};
use ringmesh_tests::upstream::pattern_byte;
use ringmesh_tests::{config, Client, Proxy, Upstream};

fn proxy(up: &Upstream, extra_listener: &str) -> Proxy {
    let routes = "
      - { name: direct, match: { path: { exact: /hello } }, direct_response: { status: 200, body: hi } }
      - name: api
        match: { path: { prefix: / } }
        cluster: app
        request_headers: { add: [ { name: x-route, value: api } ], remove: [ x-secret ] }
        response_headers: { add: [ { name: x-via, value: ringmesh } ] }
";
    Proxy::start(&config(routes, &[("app", &[up])], extra_listener))
}

fn url(p: &Proxy, path: &str) -> String {
    format!("http://{}{path}", p.addr("main"))
}

#[test]
fn an_h2c_client_reaches_an_http1_upstream_with_headers_mapped() {
    let up = Upstream::start("app");
    let p = proxy(&up, "");
    let r = curl(
        &[
            "--http2-prior-knowledge",
            "-H",
            "cookie: a=1",
            "-H",
            "cookie: b=2",
            "-H",
            "x-secret: s",
            "-H",
            "te: trailers",
            &url(&p, "/headers?q=1"),
        ],
        b"",
    )
    .expect("curl");
    assert_eq!((r.version.as_str(), r.status), ("2", 200));
    assert_eq!(r.header("x-via"), Some("ringmesh"));
    let head = r.text().to_ascii_lowercase();
    assert!(head.starts_with("get /headers?q=1 http/1.1\r\n"), "{head}");
    let port = p.addr("main").port();
    assert!(
        head.contains(&format!("host: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    assert!(
        head.contains("cookie: a=1; b=2\r\n"),
        "crumbs joined: {head}"
    );
    assert!(head.contains("x-route: api\r\n"), "{head}");
    assert!(head.contains("x-forwarded-for: 127.0.0.1\r\n"), "{head}");
    assert!(head.contains("x-forwarded-proto: http\r\n"), "{head}");
    assert!(!head.contains("x-secret"), "{head}");
    assert!(
        !head.contains("\r\nte:"),
        "te does not cross to HTTP/1.1: {head}"
    );

    // HTTP/1.1 on the same listener is unchanged.
    let mut c = Client::connect(p.addr("main"));
    assert_eq!(c.get("/hello", "a").status, 200);
}

#[test]
fn request_and_response_bodies_cross_byte_exact_both_framings() {
    let up = Upstream::start("app");
    let p = proxy(&up, "");
    let body: Vec<u8> = (0..300_000u64).map(pattern_byte).collect();
    // Known length: content-length goes upstream as is.
    let r = curl(
        &[
            "--http2-prior-knowledge",
            "--data-binary",
            "@-",
            &url(&p, "/echo"),
        ],
        &body,
    )
    .expect("curl");
    assert_eq!(r.status, 200);
    assert!(r.body == body, "echoed {} bytes", r.body.len());
    // Unknown length (stdin upload): chunked upstream.
    let r = curl(
        &["--http2-prior-knowledge", "-T", "-", &url(&p, "/count")],
        &body,
    )
    .expect("curl");
    assert_eq!(r.text(), "bytes=300000");
    // A chunked response, and a large streamed one.
    let r = curl(&["--http2-prior-knowledge", &url(&p, "/chunked")], b"").expect("curl");
    assert_eq!(r.status, 200);
    assert!(!r.body.is_empty());
    let r = curl(
        &["--http2-prior-knowledge", &url(&p, "/download/2000000")],
        b"",
    )
    .expect("curl");
    let want: Vec<u8> = (0..2_000_000u64).map(pattern_byte).collect();
    assert!(r.body == want, "download of {} bytes", r.body.len());
    let r = curl(
        &["--http2-prior-knowledge", &url(&p, "/close-delimited")],
        b"",
    )
    .expect("curl");
    assert_eq!(r.status, 200);
    assert!(!r.body.is_empty());
}

#[test]
fn streams_of_one_connection_are_served_concurrently() {
    let up = Upstream::start("app");
    let p = proxy(&up, "");
    // 4 connections, 20 streams each in flight, 2000 requests.
    let run = h2load(&["-n", "2000", "-c", "4", "-m", "20", &url(&p, "/x")]);
    assert_eq!(
        (run.succeeded, run.failed, run.errored, run.status_2xx),
        (2000, 0, 0, 2000),
        "{}",
        run.output
    );
    // Slow upstream answers overlap on one connection: 20 requests that
    // each take 300 ms finish well under 20 * 300 ms.
    let started = std::time::Instant::now();
    let run = h2load(&["-n", "20", "-c", "1", "-m", "20", &url(&p, "/delay/300")]);
    assert_eq!(run.status_2xx, 20, "{}", run.output);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "streams ran one after another: {:?}",
        started.elapsed()
    );
}

#[test]
fn proxy_errors_are_http_for_http_and_grpc_for_grpc() {
    let p = Proxy::start(
        &config(
            "      - { match: { path: { prefix: /down } }, cluster: gone }\n",
            &[],
            "",
        )
        .replace(
            "listeners:",
            "clusters:\n  - { name: gone, endpoints: ['127.0.0.1:1'] }\nlisteners:",
        ),
    );
    let r = curl(&["--http2-prior-knowledge", &url(&p, "/nowhere")], b"").expect("curl");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("ringmesh-error"), Some("no_route"));
    let grpc = [
        "--http2-prior-knowledge",
        "-X",
        "POST",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
    ];
    let r = curl(&[&grpc[..], &[&url(&p, "/nowhere")]].concat(), b"").expect("curl");
    assert_eq!(r.status, 200, "gRPC errors are Trailers-Only");
    assert_eq!(r.header("grpc-status"), Some("12"), "UNIMPLEMENTED");
    let r = curl(&[&grpc[..], &[&url(&p, "/down/x")]].concat(), b"").expect("curl");
    assert_eq!(r.header("grpc-status"), Some("14"), "UNAVAILABLE");
    assert_eq!(r.header("grpc-message"), Some("upstream_connect_failed"));
}

#[test]
fn http2_can_be_turned_off_per_listener() {
    let up = Upstream::start("app");
    let p = proxy(&up, "    http2: { enabled: false }\n");
    assert!(
        curl(&["--http2-prior-knowledge", &url(&p, "/hello")], b"").is_err(),
        "the preface is not HTTP/1.1"
    );
    let r = curl(&[&url(&p, "/hello")], b"").expect("curl");
    assert_eq!((r.version.as_str(), r.status), ("1.1", 200));
}

#[test]
fn idle_h2_connections_get_goaway_and_close() {
    let up = Upstream::start("app");
    let p = proxy(&up, "    idle_timeout: 500ms\n");
    let mut c = RawH2::connect(p.addr("main"));
    assert!(c.get(1, "/hello"));
    let started = std::time::Instant::now();
    let frames = c.read_to_end();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );
    assert!(
        frames
            .iter()
            .any(|f| f.kind == frame::HEADERS && f.stream == 1),
        "the request was answered first: {frames:?}"
    );
    let goaway = frames.iter().find(|f| f.kind == frame::GOAWAY);
    assert_eq!(
        goaway.and_then(|g| g.error_code()),
        Some(0),
        "GOAWAY NO_ERROR: {frames:?}"
    );
}

/// A TLS listener (default ALPN: h2, then http/1.1) in front of `up`.
fn tls_proxy(pki: &Pki, up: &Upstream, tls_extra: &str, listener_extra: &str) -> Proxy {
    let leaf = pki.leaf("a", &["a.test"]);
    let tls = format!(
        "    tls:\n{tls_extra}      certificates: [ {{ cert: {}, key: {} }} ]\n{listener_extra}",
        yaml_path(&leaf.cert),
        yaml_path(&leaf.key)
    );
    let routes = "      - { name: api, cluster: app }\n";
    Proxy::start(&config(routes, &[("app", &[up])], &tls))
}

fn https(
    p: &Proxy,
    pki: &Pki,
    path: &str,
    extra: &[&str],
) -> Result<ringmesh_tests::h2::Reply, String> {
    let port = p.addr("main").port();
    let resolve = format!("a.test:{port}:127.0.0.1");
    let ca = pki.ca_file();
    let url = format!("https://a.test:{port}{path}");
    let mut args = vec![
        "--cacert",
        ca.to_str().expect("path"),
        "--resolve",
        &resolve,
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args, b"")
}

#[test]
fn alpn_picks_h2_over_tls_and_http1_stays_the_fallback() {
    let pki = Pki::new("h2 ca");
    let up = Upstream::start("app");
    let p = tls_proxy(&pki, &up, "", "");
    let r = https(&p, &pki, "/headers", &[]).expect("curl");
    assert_eq!((r.version.as_str(), r.status), ("2", 200));
    assert!(
        r.text()
            .to_ascii_lowercase()
            .contains("x-forwarded-proto: https\r\n"),
        "{}",
        r.text()
    );
    let r = https(&p, &pki, "/download/3000000", &[]).expect("curl");
    let want: Vec<u8> = (0..3_000_000u64).map(pattern_byte).collect();
    assert!(
        r.body == want,
        "3 MB over h2 and TLS: {} bytes",
        r.body.len()
    );
    let r = https(&p, &pki, "/hello", &["--http1.1"]).expect("curl");
    assert_eq!((r.version.as_str(), r.status), ("1.1", 200));
    // Many streams on few TLS connections.
    let port = p.addr("main").port();
    let run = h2load(&[
        "-n",
        "2000",
        "-c",
        "2",
        "-m",
        "50",
        &format!("https://127.0.0.1:{port}/x"),
    ]);
    assert_eq!(
        (run.succeeded, run.status_2xx),
        (2000, 2000),
        "{}",
        run.output
    );
    assert!(
        run.output.contains("Application protocol: h2"),
        "{}",
        run.output
    );
}

#[test]
fn a_tls_listener_without_http2_offers_only_http1() {
    let pki = Pki::new("h2 ca");
    let up = Upstream::start("app");
    let p = tls_proxy(&pki, &up, "", "    http2: { enabled: false }\n");
    let r = https(&p, &pki, "/hello", &[]).expect("curl");
    assert_eq!((r.version.as_str(), r.status), ("1.1", 200));
}

fn h2_upstream_proxy(up: &H2Upstream) -> Proxy {
    Proxy::start(&format!(
        "runtime: {{ workers: 2 }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - {{ name: up, cluster: h2, request_headers: {{ add: [ {{ name: x-route, value: r }} ] }}, response_headers: {{ add: [ {{ name: x-via, value: ringmesh }} ] }} }}\nclusters:\n  - {{ name: h2, protocol: http2, endpoints: ['{}'] }}\n",
        up.addr
    ))
}

#[test]
fn an_http1_client_reaches_an_http2_upstream() {
    let up = H2Upstream::start();
    let p = h2_upstream_proxy(&up);
    let mut c = Client::connect(p.addr("main"));
    let r = c.request(b"GET /headers?x=1 HTTP/1.1\r\nHost: svc.test\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-via"), Some("ringmesh"));
    let seen = r.text();
    assert!(seen.contains(":authority: svc.test\n"), "{seen}");
    assert!(seen.contains("x-route: r\n"), "{seen}");
    assert!(
        seen.contains("te: trailers\n"),
        "te: trailers crosses to HTTP/2: {seen}"
    );
    assert!(seen.contains("x-forwarded-for: 127.0.0.1\n"), "{seen}");
    for hop in ["connection:", "keep-alive:", "host:"] {
        assert!(!seen.contains(hop), "{hop} must not cross: {seen}");
    }

    // Bodies both framings, byte-exact; the response is chunked (no
    // length from the upstream) and keeps the connection.
    let body: Vec<u8> = (0..300_000u64).map(pattern_byte).collect();
    let mut req = format!(
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let r = c.request(&req);
    assert!(r.body == body, "echoed {} bytes", r.body.len());
    let mut req = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in body.chunks(70_000) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = c.request(&req);
    assert!(r.body == body, "echoed {} bytes", r.body.len());

    // HTTP/2 trailers reach an HTTP/1.1 client in the chunked trailer
    // section.
    let r = c.get("/trailers", "a");
    assert_eq!(r.text(), "ok");
    assert_eq!(r.trailers, vec![("x-trailer".to_string(), "t".to_string())]);
    let r = c.get("/status/204", "a");
    assert_eq!(r.status, 204);
    assert!(up.connections() <= 2, "one shared connection per core");
}

#[test]
fn an_h2_client_reaches_an_h2_upstream_with_trailers() {
    let up = H2Upstream::start();
    let p = h2_upstream_proxy(&up);
    let r = curl(&["--http2-prior-knowledge", &url(&p, "/trailers")], b"").expect("curl");
    assert_eq!(
        (r.version.as_str(), r.status, r.text().as_str()),
        ("2", 200, "ok")
    );
    assert_eq!(
        r.header("x-trailer"),
        Some("t"),
        "trailers: {:?}",
        r.headers
    );
    let run = h2load(&["-n", "3000", "-c", "2", "-m", "50", &url(&p, "/x")]);
    assert_eq!(
        (run.succeeded, run.status_2xx),
        (3000, 3000),
        "{}",
        run.output
    );
    assert!(
        up.connections() <= 2,
        "shared upstream connections: {}",
        up.connections()
    );
}

#[test]
fn upstream_goaway_under_load_fails_no_request() {
    // Every upstream connection says GOAWAY after 50 requests: streams
    // it never processed go to a new connection, none reaches the client
    // as an error.
    let up = H2Upstream::with_goaway(50);
    let p = h2_upstream_proxy(&up);
    let run = h2load(&["-n", "3000", "-c", "4", "-m", "10", &url(&p, "/x")]);
    assert_eq!(
        (run.succeeded, run.failed, run.errored, run.status_2xx),
        (3000, 0, 0, 3000),
        "{}",
        run.output
    );
    assert!(
        up.connections() >= 3000 / 50 / 2,
        "GOAWAYs happened: {} connections",
        up.connections()
    );
}

#[test]
fn route_features_work_the_same_for_h2_clients() {
    let good = Upstream::start("good");
    let refused = ringmesh_tests::closed_port();
    let routes = "
      - { name: fault, match: { path: { prefix: /fault } }, cluster: app, fault: { abort: { status: 418, percent: 100 } } }
      - { name: slow, match: { path: { prefix: /delay } }, cluster: app, timeout: 200ms }
      - { name: retry, match: { path: { prefix: /retry } }, cluster: flaky, retries: { attempts: 2, on: [connect-failure] } }
      - { name: canary, match: { headers: [ { name: x-canary, exact: '1' } ] }, weighted_clusters: [ { cluster: app, weight: 1 } ] }
      - { name: rest, cluster: app }
";
    let yaml = config(routes, &[("app", &[&good])], "").replace(
        "clusters:\n",
        &format!(
            "clusters:\n  - {{ name: flaky, lb: round_robin, endpoints: ['{refused}', '{}'] }}\n",
            good.addr
        ),
    );
    let p = Proxy::start(&yaml);
    let get = |path: &str, extra: &[&str]| {
        let mut args = vec!["--http2-prior-knowledge"];
        args.extend_from_slice(extra);
        let u = url(&p, path);
        args.push(&u);
        curl(&args, b"").expect("curl")
    };
    assert_eq!(get("/fault", &[]).status, 418, "fault injection");
    let r = get("/delay/2000", &[]);
    assert_eq!(
        (r.status, r.header("ringmesh-error")),
        (504, Some("upstream_response_timeout"))
    );
    for _ in 0..4 {
        assert_eq!(
            get("/retry", &[]).text(),
            "good",
            "a refused endpoint is retried"
        );
    }
    assert_eq!(get("/x", &["-H", "x-canary: 1"]).text(), "good");
    for (route, status) in [
        ("fault", "4xx"),
        ("slow", "5xx"),
        ("retry", "2xx"),
        ("canary", "2xx"),
    ] {
        let series = format!(
            "ringmesh_requests_total{{listener=\"main\",direction=\"inbound\",route=\"{route}\",class=\"{status}\"}}"
        );
        assert!(p.metric(&series).unwrap_or(0) >= 1, "{series}");
    }
}
