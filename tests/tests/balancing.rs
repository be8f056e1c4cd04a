//! Load balancing through the real proxy: Peak-EWMA against round robin
//! with one slow endpoint, consistent hashing's affinity and its bound on
//! moved keys, weights, zones, and the per-endpoint series in `/metrics`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use ringmesh_bench::upstream::{self, AddedLatency, UpstreamOptions};
use ringmesh_tests::{eventually, Client, Proxy, Upstream};

fn proxy_yaml(cluster: &str, extra: &str) -> String {
    format!(
        "runtime: {{ workers: 2 }}\nadmin: {{ address: '127.0.0.1:0' }}\n{extra}listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes: [ {{ name: r, cluster: c }} ]\nclusters:\n  - {cluster}\n"
    )
}

fn endpoint_requests(p: &Proxy, addr: SocketAddr) -> u64 {
    p.metric(&format!(
        "ringmesh_endpoint_requests_total{{cluster=\"c\",endpoint=\"{addr}\"}}"
    ))
    .unwrap_or(0)
}

fn slow_upstream(latency: Duration) -> SocketAddr {
    let up = upstream::start(UpstreamOptions {
        latency: Some(AddedLatency {
            min: latency,
            max: latency,
        }),
        ..Default::default()
    })
    .expect("bench upstream");
    up.addrs[0]
}

/// `threads` clients, each with its own connection, `each` GETs apiece.
fn load(p: &Proxy, threads: usize, each: usize) {
    let addr = p.addr("main");
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for _ in 0..each {
                    assert_eq!(c.get("/", "svc").status, 200);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
}

/// How many of 240 requests (4 connections × 60) the endpoint that adds
/// 50 ms got, under `lb`.
fn slow_share(lb: &str) -> (u64, u64) {
    let fast = [Upstream::start("a"), Upstream::start("b")];
    let slow = slow_upstream(Duration::from_millis(50));
    let cluster = format!(
        "{{ name: c, lb: {lb}, endpoints: ['{}', '{}', '{slow}'] }}",
        fast[0].addr, fast[1].addr
    );
    let p = Proxy::start(&proxy_yaml(&cluster, ""));
    load(&p, 4, 60);
    let total = 240;
    eventually("every try counted", Duration::from_secs(5), || {
        let counted: u64 = fast
            .iter()
            .map(|u| endpoint_requests(&p, u.addr))
            .sum::<u64>()
            + endpoint_requests(&p, slow);
        counted == total
    });
    (endpoint_requests(&p, slow), total)
}

#[test]
fn peak_ewma_starves_a_slow_endpoint_and_round_robin_does_not() {
    let (slow, total) = slow_share("peak_ewma");
    // Each core learns the endpoint is slow from its first try to it (or
    // from the other core's estimate 5 ms later): a handful of requests,
    // not a share.
    assert!(
        slow <= 8,
        "peak_ewma sent {slow} of {total} to the slow endpoint"
    );
    let (slow, total) = slow_share("round_robin");
    assert!(
        slow >= total / 4,
        "round robin sent {slow} of {total} to the slow endpoint"
    );
}

/// Which upstream answered each of `users`, by the `x-user` header.
fn owners(p: &Proxy, users: std::ops::Range<usize>) -> HashMap<usize, String> {
    let mut c = Client::connect(p.addr("main"));
    users
        .map(|u| {
            let r = c.request(
                format!("GET / HTTP/1.1\r\nHost: svc\r\nx-user: user-{u}\r\n\r\n").as_bytes(),
            );
            assert_eq!(r.status, 200);
            (u, r.text())
        })
        .collect()
}

/// `strict`: every moved key went to the new endpoint (ring hash); Maglev
/// moves a few between the old ones too (its paper's trade for balance).
fn hashing_keeps_affinity_and_moves_few_keys(lb: &str, settings: &str, strict: bool) {
    let ups: Vec<Upstream> = (0..5).map(|i| Upstream::start(&format!("u{i}"))).collect();
    let cluster = |n: usize| {
        let eps: Vec<String> = ups[..n].iter().map(|u| format!("'{}'", u.addr)).collect();
        format!(
            "{{ name: c, lb: {lb}, hash: {{ on: {{ header: x-user }}{settings} }}, endpoints: [{}] }}",
            eps.join(", ")
        )
    };
    let p = Proxy::start(&proxy_yaml(&cluster(4), ""));
    let users = 0..400;
    let before = owners(&p, users.clone());
    // The same user always lands on the same endpoint, whichever core
    // serves the connection.
    for _ in 0..3 {
        assert_eq!(owners(&p, users.clone()), before);
    }
    let used: std::collections::HashSet<&String> = before.values().collect();
    assert_eq!(used.len(), 4, "keys spread over every endpoint");
    p.reload(&proxy_yaml(&cluster(5), ""));
    eventually("the fifth endpoint in use", Duration::from_secs(10), || {
        p.log_count("config reloaded") >= 1
    });
    let after = owners(&p, users.clone());
    let moved: Vec<usize> = users.filter(|u| before[u] != after[u]).collect();
    // Ideally 1/5 of the keys, every one of them to the new endpoint.
    let share = moved.len() as f64 / 400.0;
    assert!(
        (0.10..=0.32).contains(&share),
        "{lb}: {share} of keys moved"
    );
    // The new endpoint is the one most moved keys went to.
    let mut to: HashMap<&String, usize> = HashMap::new();
    for u in &moved {
        *to.entry(&after[u]).or_default() += 1;
    }
    let (_, most) = to.iter().max_by_key(|(_, n)| **n).expect("keys moved");
    let between_old = moved.len() - most;
    if strict {
        assert_eq!(
            between_old, 0,
            "{lb}: keys moved between endpoints that stayed"
        );
    } else {
        assert!(
            between_old * 5 <= moved.len(),
            "{lb}: {between_old} of {} moved keys went between endpoints that stayed",
            moved.len()
        );
    }
}

#[test]
fn ring_hash_keeps_affinity_and_moves_about_one_key_in_n() {
    hashing_keeps_affinity_and_moves_few_keys("ring_hash", "", true);
}

#[test]
fn maglev_keeps_affinity_and_moves_about_one_key_in_n() {
    hashing_keeps_affinity_and_moves_few_keys("maglev", ", table_size: 65537", false);
}

#[test]
fn weights_split_round_robin_traffic() {
    let heavy = Upstream::start("heavy");
    let light = Upstream::start("light");
    let cluster = format!(
        "{{ name: c, endpoints: [{{ address: '{}', weight: 3 }}, '{}'] }}",
        heavy.addr, light.addr
    );
    let p = Proxy::start(&proxy_yaml(&cluster, ""));
    load(&p, 4, 100);
    // Smooth weighted round robin is exact per core: 3 of every 4 picks,
    // give or take the last partial round on each core.
    let (h, l) = (heavy.requests(), light.requests());
    assert_eq!(h + l, 400);
    assert!((296..=304).contains(&h), "heavy {h}, light {l}");
}

#[test]
fn the_proxys_zone_gets_the_traffic_and_fails_over_when_it_is_gone() {
    let near = [Upstream::start("near-1"), Upstream::start("near-2")];
    let far = Upstream::start("far");
    let cluster = |near_eps: &str| {
        format!(
            "{{ name: c, lb: least_request, endpoints: [{near_eps}{{ address: '{}', zone: zone-b }}] }}",
            far.addr
        )
    };
    let both = format!(
        "{{ address: '{}', zone: zone-a }}, {{ address: '{}', zone: zone-a }}, ",
        near[0].addr, near[1].addr
    );
    let p = Proxy::start(&proxy_yaml(&cluster(&both), "zone: zone-a\n"));
    load(&p, 2, 50);
    assert_eq!(far.requests(), 0, "the other zone got traffic");
    assert_eq!(near[0].requests() + near[1].requests(), 100);
    // No endpoint left in the proxy's zone: all of it goes to the other.
    p.reload(&proxy_yaml(&cluster(""), "zone: zone-a\n"));
    eventually("reloaded", Duration::from_secs(10), || {
        p.log_count("config reloaded") >= 1
    });
    load(&p, 2, 10);
    assert_eq!(far.requests(), 20);
}

#[test]
fn an_endpoints_series_leave_metrics_with_it() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let cluster = |eps: &str| format!("{{ name: c, endpoints: [{eps}] }}");
    let p = Proxy::start(&proxy_yaml(
        &cluster(&format!("'{}', '{}'", a.addr, b.addr)),
        "",
    ));
    load(&p, 2, 10);
    eventually("both endpoints counted", Duration::from_secs(5), || {
        endpoint_requests(&p, a.addr) + endpoint_requests(&p, b.addr) == 20
    });
    assert_eq!(
        p.metric(&format!(
            "ringmesh_endpoint_errors_total{{cluster=\"c\",endpoint=\"{}\"}}",
            a.addr
        )),
        Some(0)
    );
    p.reload(&proxy_yaml(&cluster(&format!("'{}'", a.addr)), ""));
    eventually("b's series gone", Duration::from_secs(10), || {
        let (_, text) = p.admin_get("/metrics");
        !text.contains(&format!("endpoint=\"{}\"", b.addr))
            && text.contains(&format!("endpoint=\"{}\"", a.addr))
    });
}

/// `family{core="N",cluster="c",endpoint="addr"}` from `/metrics?per_core=1`.
fn per_core(p: &Proxy, family: &str, core: usize, addr: SocketAddr) -> u64 {
    let (_, text) = p.admin_get("/metrics?per_core=1");
    let series = format!("{family}{{core=\"{core}\",cluster=\"c\",endpoint=\"{addr}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Requests core `core` sent to any of `eps`.
fn core_total(p: &Proxy, core: usize, eps: &[SocketAddr]) -> u64 {
    eps.iter()
        .map(|e| per_core(p, "ringmesh_endpoint_requests_total", core, *e))
        .sum()
}

#[test]
fn a_worker_avoids_an_endpoint_another_worker_found_slow() {
    let fast = [Upstream::start("a"), Upstream::start("b")];
    let slow = slow_upstream(Duration::from_millis(50));
    let eps = [fast[0].addr, fast[1].addr, slow];
    // An unmeasured endpoint looks the fastest: each worker tries every
    // endpoint it has no estimate of, unless another worker's estimate
    // reached it first.
    let cluster = format!(
        "{{ name: c, lb: peak_ewma, peak_ewma: {{ default_rtt: 1us }}, endpoints: ['{}', '{}', '{slow}'] }}",
        eps[0], eps[1]
    );
    let p = Proxy::start(&proxy_yaml(&cluster, ""));
    // One connection teaches its worker which endpoint is slow.
    let mut first = Client::connect(p.addr("main"));
    for _ in 0..30 {
        assert_eq!(first.get("/", "svc").status, 200);
    }
    let taught = if core_total(&p, 0, &eps) > 0 { 0 } else { 1 };
    let other = 1 - taught;
    assert!(per_core(&p, "ringmesh_endpoint_requests_total", taught, slow) >= 1);
    // The other worker has sent nothing yet; it hears within a few ms.
    assert_eq!(core_total(&p, other, &eps), 0);
    std::thread::sleep(Duration::from_millis(50));
    // New connections until one lands on the other worker; then more
    // requests on it. Its very first picks already avoid the slow one.
    let mut on_other = None;
    for probe in 1..=40 {
        let mut c = Client::connect(p.addr("main"));
        let before = core_total(&p, other, &eps);
        assert_eq!(c.get("/", "svc").status, 200);
        eventually("the probe counted", Duration::from_secs(5), || {
            core_total(&p, 0, &eps) + core_total(&p, 1, &eps) >= 30 + probe
        });
        if core_total(&p, other, &eps) > before {
            on_other = Some(c);
            break;
        }
    }
    let mut c = on_other.expect("a connection on the other worker");
    for _ in 0..20 {
        assert_eq!(c.get("/", "svc").status, 200);
    }
    assert_eq!(
        per_core(&p, "ringmesh_endpoint_requests_total", other, slow),
        0,
        "the worker that never measured the slow endpoint sent it requests"
    );
}
