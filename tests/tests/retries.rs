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

/// A proxy with one route, `retries`, to one cluster on `up`; `cluster`
/// adds fields to the cluster.
fn proxy_on(up: &Upstream, workers: usize, retries: &str, cluster: &str) -> Proxy {
    Proxy::start(&format!(
        "runtime: {{ workers: {workers} }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - {{ cluster: c, retries: {retries} }}\nclusters:\n  - {{ name: c, endpoints: ['{}']{cluster} }}\n",
        up.addr
    ))
}

fn metric(p: &Proxy, name: &str) -> u64 {
    let (_, text) = p.admin_get("/metrics");
    let prefix = format!("{name}{{cluster=\"c\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in\n{text}"))
}

/// `n` sequential GETs of `path` on one connection: their statuses and
/// how long they took together.
fn timed(p: &Proxy, path: &str, n: usize) -> (Vec<u16>, std::time::Duration) {
    let mut c = Client::connect(p.addr("main"));
    let begun = std::time::Instant::now();
    let statuses = (0..n).map(|_| c.get(path, "t").status).collect();
    (statuses, begun.elapsed())
}

#[test]
fn retries_back_off_with_jitter_within_the_ceiling() {
    const N: usize = 5;
    let up = Upstream::start("up");
    let fast = proxy_on(
        &up,
        1,
        "{ attempts: 3, on: [503], backoff: { base: 0ms } }",
        "",
    );
    let (statuses, without) = timed(&fast, "/status/503", N);
    assert_eq!(statuses, vec![503; N]);
    assert_eq!(up.requests(), 4 * N, "three retries each");
    let slow = proxy_on(
        &up,
        1,
        "{ attempts: 3, on: [503], backoff: { base: 100ms, max: 100ms } }",
        "",
    );
    let (statuses, with) = timed(&slow, "/status/503", N);
    assert_eq!(statuses, vec![503; N]);
    assert_eq!(up.requests(), 8 * N, "the same four tries each");
    // Each of the 3 waits of a request is at most 100 ms: at most 300 ms
    // more per request (plus scheduling slack). The 15 waits are uniform in
    // [0, 100 ms]: that they sum to under 100 ms has odds of 1/15!.
    assert!(
        with <= without + std::time::Duration::from_millis(300 * N as u64 + 700),
        "{with:?} with backoff, {without:?} without"
    );
    assert!(
        with >= std::time::Duration::from_millis(100),
        "{with:?}: no backoff"
    );
}

/// Three tries of 200 ms and two waits of at most 10 and 20 ms, against an
/// upstream that would have taken 2 s.
fn three_tries_of_200ms(took: std::time::Duration) {
    assert!(
        took >= std::time::Duration::from_millis(600),
        "{took:?}: fewer tries"
    );
    assert!(
        took < std::time::Duration::from_millis(1500),
        "{took:?}: the upstream's 2 s showed"
    );
}

#[test]
fn a_try_past_its_per_try_timeout_is_retried_within_the_route_timeout() {
    let up = Upstream::start("up");
    let p = proxy_on(
        &up,
        1,
        "{ attempts: 2, per_try_timeout: 200ms, backoff: { base: 10ms } }",
        "",
    );
    let (statuses, took) = timed(&p, "/delay/2000", 1);
    assert_eq!(statuses, vec![504]);
    three_tries_of_200ms(took);
    assert_eq!(up.requests(), 3, "the first try and two retries");
    assert_eq!(metric(&p, "ringmesh_upstream_timeouts_total"), 3);

    // The route's timeout bounds them all: 500 ms leaves room for three
    // tries of 200 ms at most, whatever `attempts` says.
    let up = Upstream::start("up");
    let p = Proxy::start(&format!(
        "runtime: {{ workers: 1 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - {{ cluster: c, timeout: 500ms, retries: {{ attempts: 5, per_try_timeout: 200ms, backoff: {{ base: 10ms }} }} }}\nclusters:\n  - {{ name: c, endpoints: ['{}'] }}\n",
        up.addr
    ));
    let (statuses, took) = timed(&p, "/delay/2000", 1);
    assert_eq!(statuses, vec![504]);
    assert!(
        took < std::time::Duration::from_millis(1200),
        "{took:?}: past the route timeout"
    );
    assert!((2..=3).contains(&up.requests()), "{} tries", up.requests());
}

#[test]
fn a_retry_budget_caps_retries_at_a_share_of_requests() {
    const N: usize = 200;
    let up = Upstream::start("up");
    // Without a budget: every failing request is tried four times.
    let p = proxy_on(
        &up,
        2,
        "{ attempts: 3, on: [503], backoff: { base: 0ms } }",
        "",
    );
    let (statuses, _) = timed(&p, "/status/503", 20);
    assert_eq!(statuses, vec![503; 20]);
    assert_eq!(up.requests(), 80);
    drop(p);

    let up = Upstream::start("up");
    let p = proxy_on(
        &up,
        2,
        "{ attempts: 3, on: [503], backoff: { base: 0ms } }",
        ", retry_budget: { percent: 20, min_per_second: 0 }",
    );
    // Two connections: both cores may serve some of the requests.
    let (a, _) = timed(&p, "/status/503", N / 2);
    let (b, _) = timed(&p, "/status/503", N / 2);
    assert!(a.iter().chain(&b).all(|&s| s == 503));
    let retries = metric(&p, "ringmesh_upstream_retries_total") as usize;
    let refused = metric(&p, "ringmesh_upstream_retries_budget_exhausted_total") as usize;
    // Per core, retries stay within 20 % of its requests (the run is well
    // inside one 10 s window, so the estimate is exact): at most N / 5 in
    // all. The slack of 2 (one per core) covers rounding.
    assert_eq!(up.requests(), N + retries, "every retry reached it");
    assert!(retries <= N / 5 + 2, "{retries} retries for {N} requests");
    assert!(retries >= N / 10, "{retries}: the budget allows 20 %");
    // Every request the budget did not stop used all three retries.
    assert!(refused >= N - retries, "{refused} refused, {retries} sent");
    assert!(refused <= N, "{refused}: at most one refusal per request");
}

#[test]
fn an_http2_upstream_try_past_its_per_try_timeout_is_retried() {
    let up = ringmesh_tests::h2up::H2Upstream::start();
    let p = Proxy::start(&format!(
        "runtime: {{ workers: 1 }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - {{ cluster: c, retries: {{ attempts: 2, per_try_timeout: 200ms, backoff: {{ base: 10ms }} }} }}\nclusters:\n  - {{ name: c, protocol: http2, endpoints: ['{}'] }}\n",
        up.addr
    ));
    let (statuses, took) = timed(&p, "/delay/2000", 1);
    assert_eq!(statuses, vec![504]);
    three_tries_of_200ms(took);
    assert_eq!(metric(&p, "ringmesh_upstream_timeouts_total"), 3);
    assert_eq!(metric(&p, "ringmesh_upstream_retries_total"), 2);
    // The streams the timeouts ended did not break the shared connection.
    let mut c = Client::connect(p.addr("main"));
    assert_eq!(c.get("/status/200", "t").status, 200);
}
