//! Outlier detection through the real proxy: an endpoint answering 503 is
//! ejected on every worker after a few failures, gets nothing while out,
//! and comes back after its ejection time.

use std::net::SocketAddr;
use std::time::Duration;

use ringmesh_bench::upstream::{self, UpstreamOptions};
use ringmesh_tests::{eventually, Client, Proxy, Upstream};

fn failing_upstream() -> SocketAddr {
    upstream::start(UpstreamOptions {
        status: 503,
        ..Default::default()
    })
    .expect("bench upstream")
    .addrs[0]
}

fn series(p: &Proxy, family: &str, ep: SocketAddr) -> u64 {
    p.metric(&format!("{family}{{cluster=\"c\",endpoint=\"{ep}\"}}"))
        .unwrap_or(0)
}

/// `n` GETs over 4 connections; how many were not 200.
fn failures(p: &Proxy, n: usize) -> usize {
    let mut clients: Vec<Client> = (0..4).map(|_| Client::connect(p.addr("main"))).collect();
    (0..n)
        .filter(|i| clients[i % 4].get("/", "svc").status != 200)
        .count()
}

#[test]
fn a_503ing_endpoint_is_ejected_and_returns_after_its_ejection_time() {
    let good = [Upstream::start("a"), Upstream::start("b")];
    let bad = failing_upstream();
    let p = Proxy::start(&format!(
        "runtime: {{ workers: 2 }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes: [ {{ name: r, cluster: c }} ]\nclusters:\n  - {{ name: c, endpoints: ['{}', '{}', '{bad}'], outlier_detection: {{ consecutive_5xx: 3, interval: 1s, base_ejection_time: 2s, max_ejection_percent: 50 }} }}\n",
        good[0].addr, good[1].addr
    ));
    // Round robin: a third of the tries go to the bad endpoint until each
    // worker has seen it fail 3 times in a row.
    let failed = failures(&p, 90);
    assert!(
        (3..=6).contains(&failed),
        "{failed} failures: 3 a worker before ejection"
    );
    let sent = series(&p, "ringmesh_endpoint_requests_total", bad);
    assert_eq!(
        sent as usize, failed,
        "every failure was the bad endpoint's"
    );
    assert!(series(&p, "ringmesh_endpoint_ejected", bad) >= 1);
    assert_eq!(series(&p, "ringmesh_endpoint_ejected", good[0].addr), 0);
    // While out it gets nothing.
    assert_eq!(failures(&p, 40), 0);
    assert_eq!(series(&p, "ringmesh_endpoint_requests_total", bad), sent);
    // Back after 2 s (and the 1 s sweep): it is tried, and ejected again.
    eventually("the ejection ended", Duration::from_secs(6), || {
        series(&p, "ringmesh_endpoint_ejected", bad) == 0
    });
    assert!(failures(&p, 60) >= 1, "the endpoint is back in rotation");
    assert!(series(&p, "ringmesh_endpoint_requests_total", bad) > sent);
    eventually("ejected again", Duration::from_secs(5), || {
        series(&p, "ringmesh_endpoint_ejected", bad) >= 1
    });
    assert!(series(&p, "ringmesh_endpoint_ejections_total", bad) >= 2);
}

#[test]
fn no_more_than_max_ejection_percent_are_out_at_once() {
    let bad = [failing_upstream(), failing_upstream()];
    let good = Upstream::start("good");
    let p = Proxy::start(&format!(
        "runtime: {{ workers: 1 }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes: [ {{ name: r, cluster: c }} ]\nclusters:\n  - {{ name: c, endpoints: ['{}', '{}', '{}'], panic_threshold: 0, outlier_detection: {{ consecutive_5xx: 2, base_ejection_time: 30s, max_ejection_percent: 10 }} }}\n",
        bad[0], bad[1], good.addr
    ));
    failures(&p, 60);
    // 10% of 3 is 0, but one may always be out: exactly one is.
    let out: u64 = bad
        .iter()
        .map(|b| series(&p, "ringmesh_endpoint_ejected", *b))
        .sum();
    assert_eq!(out, 1);
}
