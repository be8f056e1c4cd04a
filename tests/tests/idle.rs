//! Idle keep-alive connections are parked after a quiet second (no task
//! state, no buffers) and come back when they speak, close at their idle
//! timeout, and close on drain.

use std::io::Read;
use std::time::{Duration, Instant};

use ringmesh_tests::{config, eventually, Client, Proxy, Upstream};

fn parked(proxy: &Proxy) -> u64 {
    let (_, metrics) = proxy.admin_get("/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("ringmesh_downstream_connections_parked{listener=\"main\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

fn start(up: &Upstream, listener_extra: &str) -> Proxy {
    Proxy::start(&config(
        "      - { match: { path: { prefix: / } }, cluster: app }\n",
        &[("app", &[up])],
        listener_extra,
    ))
}

#[test]
fn a_parked_connection_is_served_when_it_speaks_again() {
    let up = Upstream::start("up");
    let proxy = start(&up, "");
    let mut c = Client::connect(proxy.addr("main"));
    assert_eq!(c.get("/", "a").text(), "up");
    eventually(
        "the quiet connection is parked",
        Duration::from_secs(5),
        || parked(&proxy) == 1,
    );
    // Pipelined requests, sent in two pieces, wake it.
    c.send(b"GET /conn HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHo");
    std::thread::sleep(Duration::from_millis(50));
    c.send(b"st: a\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(c.read_response(false).status, 200);
    assert_eq!(c.read_response(false).text(), "hi");
    assert_eq!(parked(&proxy), 0, "back to being served");
    assert_eq!(c.get("/", "a").text(), "up");
}

#[test]
fn a_parked_connection_closes_at_its_idle_timeout() {
    let up = Upstream::start("up");
    let proxy = start(&up, "    idle_timeout: 2s\n");
    let mut c = Client::connect(proxy.addr("main"));
    let since = Instant::now();
    assert_eq!(c.get("/", "a").status, 200);
    eventually(
        "the quiet connection is parked",
        Duration::from_secs(5),
        || parked(&proxy) == 1,
    );
    let mut byte = [0u8; 1];
    assert_eq!(c.stream.read(&mut byte).expect("closed, not reset"), 0);
    let waited = since.elapsed();
    // The sweep that expires parked connections runs once a second.
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    eventually("no parked connection left", Duration::from_secs(5), || {
        parked(&proxy) == 0
    });
}

#[test]
fn drain_closes_parked_connections() {
    let up = Upstream::start("up");
    let yaml = ringmesh_tests::with_runtime(
        &config(
            "      - { match: { path: { prefix: / } }, cluster: app }\n",
            &[("app", &[&up])],
            "",
        ),
        "{ workers: 2, drain_delay: 0s }",
    );
    let mut proxy = Proxy::start(&yaml);
    let mut c = Client::connect(proxy.addr("main"));
    assert_eq!(c.get("/", "a").status, 200);
    eventually(
        "the quiet connection is parked",
        Duration::from_secs(5),
        || parked(&proxy) == 1,
    );
    proxy.signal_term();
    assert!(c.is_closed());
    let exit = proxy.wait(Duration::from_secs(10)).expect("exited");
    assert!(exit.success(), "{}", proxy.log_text());
}
