//! HTTP/1.1 proxying through the real binary: keep-alive, pipelining,
//! framing, hop-by-hop headers, upgrades.

use ringmesh_tests::{config, Client, Proxy, Upstream};

fn proxy_to(up: &Upstream) -> Proxy {
    let routes = r"
      - name: app
        match: { path: { prefix: / } }
        cluster: app
        request_headers: { add: [ { name: x-route, value: app } ], remove: [ x-secret ] }
        response_headers: { add: [ { name: x-served-by, value: ringmesh } ] }
";
    Proxy::start(&config(routes, &[("app", &[up])], ""))
}

#[test]
fn keep_alive_reuses_client_and_upstream_connections() {
    let up = Upstream::start("up");
    let proxy = proxy_to(&up);
    let mut c = Client::connect(proxy.addr("main"));
    let mut seen = Vec::new();
    for _ in 0..10 {
        let r = c.get("/conn", "svc");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-served-by"), Some("ringmesh"));
        seen.push(r.text());
    }
    assert!(
        seen.iter().all(|s| s == &seen[0]),
        "one upstream connection served all: {seen:?}"
    );
    assert_eq!(up.connections(), 1);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let up = Upstream::start("up");
    let proxy = proxy_to(&up);
    let mut c = Client::connect(proxy.addr("main"));
    c.send(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nfirstGET /status/201 HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nthird!\r\n0\r\n\r\n",
    );
    let a = c.read_response(false);
    let b = c.read_response(false);
    let d = c.read_response(false);
    assert_eq!((a.status, a.text().as_str()), (200, "first"));
    assert_eq!(b.status, 201);
    assert_eq!((d.status, d.text().as_str()), (200, "third!"));
}

#[test]
fn chunked_bodies_flow_both_ways() {
    let up = Upstream::start("up");
    let proxy = proxy_to(&up);
    let mut c = Client::connect(proxy.addr("main"));
    let r = c.request(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n");
    assert_eq!(r.text(), "hello world");
    let r = c.get("/chunked", "a");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "hello chunked world");
    assert_eq!(c.get("/", "a").text(), "up", "connection still usable");
}

#[test]
fn close_delimited_response_is_rechunked_for_http11_clients() {
    let up = Upstream::start("up");
    let proxy = proxy_to(&up);
    let mut c = Client::connect(proxy.addr("main"));
    let r = c.get("/close-delimited", "a");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "body until close");
    assert_eq!(c.get("/", "a").text(), "up", "client connection survives");
}

#[test]
fn http10_clients_get_close_or_keep_alive_as_asked() {
    let up = Upstream::start("up");
    let proxy = proxy_to(&up);
    let mut c = Client::connect(proxy.addr("main"));
    let r = c.request(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.text(), "up");
    assert!(c.is_closed(), "HTTP/1.0 without keep-alive closes");

    let mut c = Client::connect(proxy.addr("main"));
    let r = c.request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(r.header("connection"), Some("keep-alive"));
    let r = c.request(b"GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(
        r.header("transfer-encoding"),
        None,
        "no chunking for HTTP/1.0"
    );
    assert_eq!(r.text(), "hello chunked world");
}

#[test]
fn head_204_and_304_have_no_body() {
    let up = Upstream::start("up");
    let proxy = proxy_to(&up);
    let mut c = Client::connect(proxy.addr("main"));
    c.send(b"HEAD /download/100 HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.read_response(true);
    assert_eq!((r.status, r.header("content-length")), (200, Some("100")));
    for code in [204, 304] {
        let r = c.get(&format!("/status/{code}"), "a");
        assert_eq!((r.status, r.body.len()), (code, 0));
    }
    assert_eq!(
        c.get("/", "a").text(),
        "up",
        "no stray body bytes on the connection"
    );
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let up = Upstream::start("up");
    let proxy = proxy_to(&up);
    let mut c = Client::connect(proxy.addr("main"));
    c.send(b"PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let interim = c.read_response(false);
    assert_eq!(interim.status, 100);
    c.send(b"hello");
    let r = c.read_response(false);
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
}

#[test]
fn hop_by_hop_headers_are_dropped_and_forwarding_headers_added() {
    let up = Upstream::start("up");
    let proxy = proxy_to(&up);
    let mut c = Client::connect(proxy.addr("main"));
    let r = c.request(
        b"GET /headers HTTP/1.1\r\nHost: svc.local:8080\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Secret: s\r\nX-Forwarded-For: 1.2.3.4\r\nX-Keep: yes\r\n\r\n",
    );
    let seen = r.text().to_ascii_lowercase();
    assert!(seen.starts_with("get /headers http/1.1\r\n"), "{seen}");
    assert!(
        seen.contains("host: svc.local:8080\r\n"),
        "host preserved: {seen}"
    );
    assert!(seen.contains("x-keep: yes\r\n"), "{seen}");
    assert!(
        seen.contains("x-forwarded-for: 1.2.3.4, 127.0.0.1\r\n"),
        "{seen}"
    );
    assert!(seen.contains("x-forwarded-proto: http\r\n"), "{seen}");
    assert!(
        seen.contains("x-route: app\r\n"),
        "route header added: {seen}"
    );
    for gone in ["x-hop:", "keep-alive:", "te:", "connection:", "x-secret:"] {
        assert!(
            !seen.contains(&format!("\r\n{gone}")),
            "{gone} must not reach the upstream: {seen}"
        );
    }
}

#[test]
fn websocket_upgrade_becomes_a_tunnel() {
    let up = Upstream::start("up");
    let proxy = proxy_to(&up);
    let mut c = Client::connect(proxy.addr("main"));
    let r = c.request(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n");
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    for msg in ["ping", "a longer frame of bytes"] {
        c.send(msg.as_bytes());
        let mut got = vec![0u8; msg.len()];
        std::io::Read::read_exact(&mut c.stream, &mut got).expect("echo through tunnel");
        assert_eq!(got, msg.as_bytes());
    }
    c.stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    assert!(
        c.read_to_close().is_empty(),
        "tunnel closes after the client's half-close"
    );
}

#[test]
fn routes_match_host_path_method_and_headers_and_split_by_weight() {
    let (v1, v2, api) = (
        Upstream::start("v1"),
        Upstream::start("v2"),
        Upstream::start("api"),
    );
    let routes = r"
      - match: { host: '*.api.test', path: { prefix: /v1/ }, method: GET }
        cluster: api
      - match: { headers: [ { name: x-canary, exact: 'on' } ] }
        cluster: v2
      - match: { path: { exact: /split } }
        weighted_clusters: [ { cluster: v1, weight: 80 }, { cluster: v2, weight: 20 } ]
      - match: { path: { prefix: / } }
        cluster: v1
";
    let proxy = Proxy::start(&config(
        routes,
        &[("v1", &[&v1]), ("v2", &[&v2]), ("api", &[&api])],
        "",
    ));
    let mut c = Client::connect(proxy.addr("main"));
    assert_eq!(c.get("/v1/users", "eu.api.test").text(), "api");
    assert_eq!(
        c.request(b"POST /v1/users HTTP/1.1\r\nHost: eu.api.test\r\nContent-Length: 0\r\n\r\n")
            .text(),
        "v1"
    );
    assert_eq!(
        c.request(b"GET / HTTP/1.1\r\nHost: a\r\nX-Canary: on\r\n\r\n")
            .text(),
        "v2"
    );
    assert_eq!(c.get("/other", "a").text(), "v1");
    let n = 400;
    let to_v2 = (0..n)
        .filter(|_| c.get("/split", "a").text() == "v2")
        .count();
    // 20% of 400 is 80; binomial sd is 8, so 40..120 is over 5 sd wide.
    assert!((40..120).contains(&to_v2), "{to_v2} of {n} went to v2");
}

#[test]
fn round_robin_spreads_over_endpoints() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let routes = "      - cluster: both\n";
    let proxy = Proxy::start(&config(routes, &[("both", &[&a, &b])], ""));
    let mut c = Client::connect(proxy.addr("main"));
    let names: Vec<String> = (0..6).map(|_| c.get("/", "x").text()).collect();
    let to_a = names.iter().filter(|n| *n == "a").count();
    assert_eq!(to_a, 3, "{names:?}");
}

#[test]
fn a_101_the_client_did_not_ask_for_is_refused_and_its_connection_dropped() {
    let up = Upstream::start("up");
    let proxy = proxy_to(&up);
    let mut c = Client::connect(proxy.addr("main"));
    let r = c.get("/switch", "a");
    assert_eq!(
        (r.status, r.header("ringmesh-error")),
        (502, Some("upstream_unexpected_upgrade"))
    );
    // The upstream switched protocols on that connection: never pooled.
    assert_eq!(
        c.get("/conn", "a").text(),
        "conn=2",
        "the client connection goes on, on a new upstream connection"
    );
}

#[test]
fn connect_is_refused_before_any_upstream() {
    let up = Upstream::start("up");
    let proxy = proxy_to(&up);
    let mut c = Client::connect(proxy.addr("main"));
    let r = c.request(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_eq!(
        (r.status, r.header("ringmesh-error")),
        (405, Some("method_not_allowed"))
    );
    assert_eq!(up.connections(), 0, "nothing reached the upstream");
}

#[test]
fn an_absolute_form_target_is_routed_by_its_path_and_sent_in_origin_form() {
    let up = Upstream::start("up");
    let proxy = Proxy::start(&config(
        "      - { match: { path: { prefix: /headers } }, cluster: app }\n",
        &[("app", &[&up])],
        "",
    ));
    let mut c = Client::connect(proxy.addr("main"));
    let r = c.request(b"GET http://any.example/headers?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(r.status, 200, "routed by the target's path: {}", r.text());
    let seen = r.text().to_ascii_lowercase();
    assert!(seen.starts_with("get /headers?x=1 http/1.1\r\n"), "{seen}");
    // RFC 9112 section 3.2.2: the target's authority replaces Host.
    assert!(seen.contains("\r\nhost: any.example\r\n"), "{seen}");
    assert_eq!(seen.matches("\r\nhost:").count(), 1, "{seen}");
}

/// The `x-forwarded-proto` lines the upstream saw for a request that
/// claimed `https`.
fn forwarded_proto_seen(listener_extra: &str) -> Vec<String> {
    let up = Upstream::start("up");
    let proxy = Proxy::start(&config(
        "      - { cluster: app }\n",
        &[("app", &[&up])],
        listener_extra,
    ));
    let r = Client::connect(proxy.addr("main"))
        .request(b"GET /headers HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n");
    assert_eq!(r.status, 200);
    r.text()
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("x-forwarded-proto:"))
        .map(|l| l.to_ascii_lowercase())
        .collect()
}

#[test]
fn x_forwarded_proto_is_the_listeners_unless_trusted() {
    assert_eq!(
        forwarded_proto_seen(""),
        ["x-forwarded-proto: http"],
        "overwrite (the default): a plain-HTTP client cannot claim https"
    );
    assert_eq!(
        forwarded_proto_seen("    x_forwarded_proto: trust\n"),
        ["x-forwarded-proto: https"],
        "trust: the client's value, once"
    );
}

/// Upgrade `c` to a tunnel to the upstream's `/ws` echo and check it.
fn open_tunnel(c: &mut Client) {
    let r = c.request(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert_eq!(r.status, 101);
    c.send(b"ping");
    let mut got = [0u8; 4];
    std::io::Read::read_exact(&mut c.stream, &mut got).expect("echo through tunnel");
    assert_eq!(&got, b"ping");
}

#[test]
fn a_quiet_tunnel_is_closed_at_its_idle_timeout() {
    let up = Upstream::start("up");
    let proxy = Proxy::start(&config(
        "      - { cluster: app }\n",
        &[("app", &[&up])],
        "    tunnel_idle_timeout: 500ms\n",
    ));
    let mut c = Client::connect(proxy.addr("main"));
    open_tunnel(&mut c);
    let quiet_since = std::time::Instant::now();
    assert!(
        c.read_to_close().is_empty(),
        "closed by the proxy, nothing sent"
    );
    let quiet = quiet_since.elapsed();
    assert!(
        quiet < std::time::Duration::from_secs(2),
        "closed after {quiet:?} of quiet"
    );
}

#[test]
fn a_tunnel_holds_its_upstream_connection_against_the_cluster_limit() {
    let up = Upstream::start("up");
    let yaml = ringmesh_tests::with_runtime(
        &config("      - { cluster: app }\n", &[], ""),
        "{ workers: 1 }",
    ) + &format!(
        "clusters: [ {{ name: app, endpoints: ['{}'], pool: {{ max_connections: 1 }} }} ]\n",
        up.addr
    );
    let proxy = Proxy::start(&yaml);
    let mut tunnel = Client::connect(proxy.addr("main"));
    open_tunnel(&mut tunnel);
    let r = Client::connect(proxy.addr("main")).get("/", "a");
    assert_eq!(
        (r.status, r.header("ringmesh-error")),
        (503, Some("overflow")),
        "the tunnel uses the only connection"
    );
    tunnel
        .stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    assert!(tunnel.read_to_close().is_empty());
    ringmesh_tests::eventually(
        "the closed tunnel's connection is free again",
        std::time::Duration::from_secs(5),
        || Client::connect(proxy.addr("main")).get("/", "a").status == 200,
    );
}
