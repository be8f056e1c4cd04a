//! Route fault injection: delays and aborts before a request is
//! forwarded, counted in `/metrics`.

use std::time::{Duration, Instant};

use ringmesh_tests::{config, Client, Proxy, Upstream};

fn start(up: &Upstream, routes: &str) -> Proxy {
    Proxy::start(&config(routes, &[("app", &[up])], ""))
}

/// `ringmesh_faults_injected_total` for a route of listener `main`.
fn injected(proxy: &Proxy, route: &str, fault: &str) -> Option<u64> {
    let series = format!(
        "ringmesh_faults_injected_total{{listener=\"main\",route=\"{route}\",fault=\"{fault}\"}} "
    );
    proxy
        .admin_get("/metrics")
        .1
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn an_abort_answers_without_forwarding() {
    let up = Upstream::start("up");
    let proxy = start(
        &up,
        "      - { name: broken, cluster: app, fault: { abort: { status: 503, percent: 100 } } }\n",
    );
    let mut c = Client::connect(proxy.addr("main"));
    for _ in 0..3 {
        let r = c.get("/", "a");
        assert_eq!(
            (r.status, r.header("ringmesh-error")),
            (503, Some("fault_abort"))
        );
    }
    assert_eq!(up.requests(), 0, "no aborted request was forwarded");
    ringmesh_tests::eventually("aborts counted", Duration::from_secs(5), || {
        injected(&proxy, "broken", "abort") == Some(3)
    });
}

#[test]
fn a_delay_holds_the_request_then_forwards_it() {
    let up = Upstream::start("up");
    let proxy = start(
        &up,
        "      - { name: slow, cluster: app, fault: { delay: { duration: 300ms, percent: 100 } } }\n",
    );
    let mut c = Client::connect(proxy.addr("main"));
    let started = Instant::now();
    let r = c.get("/", "a");
    let took = started.elapsed();
    assert_eq!((r.status, r.text().as_str()), (200, "up"));
    assert!(took >= Duration::from_millis(300), "took {took:?}");
    assert_eq!(up.requests(), 1);
    ringmesh_tests::eventually("the delay counted", Duration::from_secs(5), || {
        injected(&proxy, "slow", "delay") == Some(1) && injected(&proxy, "slow", "abort") == Some(0)
    });
}

#[test]
fn a_delay_does_not_count_against_the_route_timeout() {
    let up = Upstream::start("up");
    let proxy = start(
        &up,
        "      - { name: slow, cluster: app, timeout: 100ms, fault: { delay: { duration: 300ms, percent: 100 } } }\n",
    );
    let r = Client::connect(proxy.addr("main")).get("/", "a");
    assert_eq!(
        (r.status, r.header("ringmesh-error")),
        (200, None),
        "the 100 ms timeout starts when the request is forwarded: {}",
        r.text()
    );
}

#[test]
fn a_share_of_requests_is_aborted_and_counted() {
    let up = Upstream::start("up");
    let proxy = start(
        &up,
        "      - { name: half, cluster: app, fault: { abort: { status: 503, percent: 50 } } }\n",
    );
    let mut c = Client::connect(proxy.addr("main"));
    let n = 200;
    let mut aborted = 0;
    for _ in 0..n {
        let r = c.get("/", "a");
        match (r.status, r.header("ringmesh-error")) {
            (503, Some("fault_abort")) => aborted += 1,
            (200, None) => {}
            other => panic!("neither aborted nor forwarded: {other:?}"),
        }
    }
    // Binomial(200, 0.5): mean 100, sd about 7; 60..=140 is over 5 sd.
    assert!((60..=140).contains(&aborted), "{aborted} of {n} aborted");
    assert_eq!(up.requests(), n - aborted, "the rest were forwarded");
    ringmesh_tests::eventually(
        "the metric counts every abort",
        Duration::from_secs(5),
        || injected(&proxy, "half", "abort") == Some(aborted as u64),
    );
}
