//! Route retry policies: a failed try goes to another endpoint, for
//! idempotent requests whose body the proxy still holds.

use ringmesh_bench::upstream::{self, UpstreamOptions};
use ringmesh_tests::{closed_port, Client, Proxy, Upstream};

fn proxy(endpoints: &[String], retries: &str) -> Proxy {
    let eps = endpoints
        .iter()
        .map(|e| format!("'{e}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Proxy::start(&format!(
        "runtime: {{ workers: 1 }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - {{ name: retried, match: {{ path: {{ prefix: /retry }} }}, cluster: c{retries} }}\n      - {{ name: plain, cluster: c }}\nclusters:\n  - {{ name: c, lb: round_robin, endpoints: [{eps}] }}\n"
    ))
}

fn statuses(p: &Proxy, method: &str, path: &str, n: usize) -> (usize, usize) {
    let mut c = Client::connect(p.addr("main"));
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..n {
        let r = c.request(
            format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        );
        if r.status == 200 {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    (ok, failed)
}

fn retries_metric(p: &Proxy) -> u64 {
    let (_, text) = p.admin_get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("ringmesh_upstream_retries_total{cluster=\"c\"} "))
        .and_then(|v| v.trim().parse().ok())
        .expect("retries metric")
}

#[test]
fn a_503_is_retried_on_another_endpoint() {
    let bad = upstream::start(UpstreamOptions {
        status: 503,
        ..Default::default()
    })
    .expect("bench upstream");
    let good = Upstream::start("good");
    let p = proxy(
        &[bad.addrs[0].to_string(), good.addr.to_string()],
        ", retries: { attempts: 1, on: [503] }",
    );
    // Round robin over one bad and one good endpoint: without retries half
    // the requests fail; with them none does.
    let (_, failed_plain) = statuses(&p, "GET", "/plain", 40);
    assert_eq!(failed_plain, 20, "no retry policy on this route");
    let (ok, failed) = statuses(&p, "GET", "/retry", 40);
    assert_eq!((ok, failed), (40, 0));
    // Every first try that hit the bad endpoint was retried (the retry's
    // pick also moves the round robin, so that can be every request).
    let retried = retries_metric(&p);
    assert!((20..=40).contains(&retried), "{retried} retries");
    // POST is not idempotent: never sent twice.
    let (_, failed_post) = statuses(&p, "POST", "/retry", 40);
    assert_eq!(failed_post, 20, "POST is not retried");
}

#[test]
fn a_refused_connection_is_retried_by_default() {
    let good = Upstream::start("good");
    let p = proxy(
        &[closed_port().to_string(), good.addr.to_string()],
        ", retries: { attempts: 2 }",
    );
    let (ok, failed) = statuses(&p, "GET", "/retry", 30);
    assert_eq!((ok, failed), (30, 0));
    let (_, failed_plain) = statuses(&p, "GET", "/plain", 30);
    assert!(
        failed_plain > 0,
        "without the policy the dead endpoint shows"
    );
}

#[test]
fn a_bad_retry_policy_is_a_config_error() {
    let err = Proxy::try_start(
        "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - { cluster: c, retries: { attempts: 9, on: [sometimes, 404] } }\nclusters:\n  - { name: c, endpoints: ['127.0.0.1:1'] }\n",
    )
    .err()
    .expect("refused");
    assert!(
        err.contains("listeners[0].routes[0].retries.attempts: must be from 1 to 5"),
        "{err}"
    );
    assert!(
        err.contains("listeners[0].routes[0].retries.on[0]: `sometimes` is not a retry condition"),
        "{err}"
    );
    assert!(
        err.contains("listeners[0].routes[0].retries.on[1]: `404` is not a retry condition"),
        "{err}"
    );
}

/// A keep-alive client whose first request (`GET /conn`) left one idle
/// connection in the proxy's pool.
fn pooled(up: &Upstream) -> (Proxy, Client) {
    let p = proxy(&[up.addr.to_string()], "");
    let mut c = Client::connect(p.addr("main"));
    assert_eq!(c.get("/conn", "t").text(), "conn=1");
    (p, c)
}

#[test]
fn a_post_the_upstream_dropped_on_a_pooled_connection_is_not_sent_again() {
    let up = Upstream::start("up");
    let (_p, mut c) = pooled(&up);
    // The upstream reads the POST on the pooled connection and closes
    // without answering: it may have acted on it, so no second try.
    let r = c.request(b"POST /reset HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(
        (r.status, r.header("ringmesh-error")),
        (502, Some("upstream_reset_before_response"))
    );
    assert_eq!(up.requests(), 2, "GET /conn and the POST, once");
    assert_eq!(up.connections(), 1);
}

#[test]
fn a_get_the_upstream_dropped_on_a_pooled_connection_is_sent_once_more() {
    let up = Upstream::start("up");
    let (_p, mut c) = pooled(&up);
    let r = c.get("/reset", "t");
    assert_eq!(
        (r.status, r.header("ringmesh-error")),
        (502, Some("upstream_reset_before_response")),
        "the second try, on a new connection, was dropped too"
    );
    assert_eq!(
        (up.requests(), up.connections()),
        (3, 2),
        "GET /conn, then GET /reset twice: pooled, then new"
    );
}

#[test]
fn a_post_skips_a_pooled_connection_the_upstream_already_closed() {
    let up = Upstream::start("up");
    let p = proxy(&[up.addr.to_string()], "");
    let mut c = Client::connect(p.addr("main"));
    // Answered keep-alive, then closed by the upstream while idle in the
    // proxy's pool.
    assert_eq!(c.get("/then-close", "t").text(), "closing");
    ringmesh_tests::eventually(
        "the upstream closed the pooled connection",
        std::time::Duration::from_secs(5),
        || up.closed() == 1,
    );
    let r = c.request(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    assert_eq!(
        (up.requests(), up.connections()),
        (2, 2),
        "the closed connection was seen before the POST was written to it"
    );
}
