//! Active health checks through the real proxy with two workers: a dead
//! endpoint found by TCP checks gets no traffic from either worker; an
//! endpoint failing HTTP checks (503 on /healthz) leaves both workers'
//! picks and comes back when it recovers; a reload that removes the
//! checks gives it back its traffic.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmesh_tests::{closed_port, eventually, Client, Proxy, Upstream};

fn proxy_yaml(endpoints: &[SocketAddr], health_check: &str) -> String {
    let eps: Vec<String> = endpoints.iter().map(|a| format!("'{a}'")).collect();
    format!(
        "runtime: {{ workers: 2 }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes: [ {{ name: r, cluster: c }} ]\nclusters:\n  - {{ name: c, endpoints: [{}]{health_check} }}\n",
        eps.join(", ")
    )
}

/// A series of endpoint `addr` of cluster `c`.
fn series(family: &str, addr: SocketAddr) -> String {
    format!("{family}{{cluster=\"c\",endpoint=\"{addr}\"}}")
}

/// Each worker's value of `series` (from `/metrics?per_core=1`).
fn per_core(p: &Proxy, series: &str) -> [u64; 2] {
    let (status, text) = p.admin_get("/metrics?per_core=1");
    assert_eq!(status, 200);
    std::array::from_fn(|core| {
        let labelled = series.replacen('{', &format!("{{core=\"{core}\","), 1);
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{labelled} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    })
}

/// Whether every worker sees `addr` as `healthy`.
fn healthy_everywhere(p: &Proxy, addr: SocketAddr, healthy: bool) -> bool {
    per_core(p, &series("ringmesh_endpoint_healthy", addr)) == [u64::from(healthy); 2]
}

/// `n` GETs, each on a new connection (the kernel spreads them over both
/// workers); every one must succeed.
fn requests(p: &Proxy, n: usize) {
    for i in 0..n {
        let r = Client::connect(p.addr("main")).get("/", "svc");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
}

/// Requests served by each worker on route `r`.
fn served_per_core(p: &Proxy) -> [u64; 2] {
    per_core(
        p,
        "ringmesh_requests_total{listener=\"main\",direction=\"inbound\",route=\"r\",class=\"2xx\"}",
    )
}

#[test]
fn a_dead_endpoint_found_by_tcp_checks_gets_no_traffic_from_any_worker() {
    let live = [Upstream::start("a"), Upstream::start("b")];
    let dead = closed_port();
    let p = Proxy::start(&proxy_yaml(
        &[live[0].addr, dead, live[1].addr],
        ", health_check: { interval: 100ms, timeout: 500ms, unhealthy_threshold: 2, tcp: {} }",
    ));
    eventually(
        "both workers take the dead endpoint out",
        Duration::from_secs(5),
        || healthy_everywhere(&p, dead, false),
    );
    assert!(healthy_everywhere(&p, live[0].addr, true));
    assert_eq!(p.log_count("endpoint unhealthy"), 1, "{}", p.log_text());
    let sent_to_dead = series("ringmesh_endpoint_requests_total", dead);
    let before = p.metric(&sent_to_dead).unwrap_or(0);
    requests(&p, 60);
    let served = served_per_core(&p);
    assert!(
        served.iter().all(|&n| n > 0),
        "both workers served: {served:?}"
    );
    assert_eq!(
        p.metric(&sent_to_dead).unwrap_or(0),
        before,
        "no try went to the dead endpoint"
    );
    let failures = format!(
        "ringmesh_endpoint_health_checks_total{{cluster=\"c\",endpoint=\"{dead}\",result=\"failure\"}}"
    );
    assert!(p.metric(&failures).unwrap_or(0) >= 2);
    // One worker checks: the live endpoints see one check a round (two
    // workers checking would make it about 20 a second). The lower bound
    // is loose: a loaded machine makes rounds late, never early.
    let checks = |addr| {
        p.metric(&format!(
            "ringmesh_endpoint_health_checks_total{{cluster=\"c\",endpoint=\"{addr}\",result=\"success\"}}"
        ))
        .unwrap_or(0)
    };
    let (start, first) = (Instant::now(), checks(live[0].addr));
    std::thread::sleep(Duration::from_secs(1));
    let rounds = checks(live[0].addr) - first;
    assert!(
        (1..=12).contains(&rounds),
        "{rounds} checks in {:?} at a 100 ms interval",
        start.elapsed()
    );
}

/// An upstream whose `/healthz` answers `health` (flipped by the test)
/// and whose other paths answer 200, counted in `traffic`.
struct Flippable {
    addr: SocketAddr,
    health: Arc<AtomicU16>,
    traffic: Arc<AtomicUsize>,
    checks: Arc<AtomicUsize>,
}

impl Flippable {
    fn start(health: u16) -> Flippable {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let f = Flippable {
            addr,
            health: Arc::new(AtomicU16::new(health)),
            traffic: Arc::default(),
            checks: Arc::default(),
        };
        let (health, traffic, checks) = (f.health.clone(), f.traffic.clone(), f.checks.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (health, traffic, checks) = (health.clone(), traffic.clone(), checks.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut out = stream;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        // Skip the headers (no request here has a body).
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                        }
                        let status = if line.starts_with("GET /healthz ") {
                            checks.fetch_add(1, Ordering::SeqCst);
                            health.load(Ordering::SeqCst)
                        } else {
                            traffic.fetch_add(1, Ordering::SeqCst);
                            200
                        };
                        let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 4\r\n\r\nflip");
                        if out.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        f
    }

    fn traffic(&self) -> usize {
        self.traffic.load(Ordering::SeqCst)
    }
}

const HTTP_CHECK: &str = ", health_check: { interval: 100ms, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 2, http: { path: /healthz } }";

#[test]
fn an_endpoint_failing_http_checks_leaves_every_worker_and_comes_back() {
    let good = Upstream::start("good");
    let flip = Flippable::start(503);
    let p = Proxy::start(&proxy_yaml(&[good.addr, flip.addr], HTTP_CHECK));
    eventually(
        "both workers take the 503 endpoint out",
        Duration::from_secs(5),
        || healthy_everywhere(&p, flip.addr, false),
    );
    let before = flip.traffic();
    let served_before = served_per_core(&p);
    requests(&p, 60);
    let served = served_per_core(&p);
    assert!(
        (0..2).all(|c| served[c] > served_before[c]),
        "both workers served while it was out: {served_before:?} -> {served:?}"
    );
    assert_eq!(flip.traffic(), before, "no request reached it");

    flip.health.store(200, Ordering::SeqCst);
    eventually("both workers take it back", Duration::from_secs(5), || {
        healthy_everywhere(&p, flip.addr, true)
    });
    assert_eq!(p.log_count("endpoint healthy again"), 1, "{}", p.log_text());
    requests(&p, 40);
    assert!(
        flip.traffic() >= before + 10,
        "round robin gives it its share again: {} of 40",
        flip.traffic() - before
    );
    let sent = per_core(&p, &series("ringmesh_endpoint_requests_total", flip.addr));
    assert!(sent.iter().all(|&n| n > 0), "from both workers: {sent:?}");
    assert!(flip.checks.load(Ordering::SeqCst) > 0);
}

#[test]
fn a_reload_without_the_checks_makes_every_endpoint_healthy_again() {
    let good = Upstream::start("good");
    let flip = Flippable::start(503);
    let p = Proxy::start(&proxy_yaml(&[good.addr, flip.addr], HTTP_CHECK));
    eventually("it is taken out", Duration::from_secs(5), || {
        healthy_everywhere(&p, flip.addr, false)
    });
    // Same cluster settings with other check settings: the health stays.
    // (A TCP check passes, but one pass of the five now needed does not
    // make it healthy; a cluster rebuilt afresh would be healthy.)
    p.reload(&proxy_yaml(
        &[good.addr, flip.addr],
        ", health_check: { interval: 1h, healthy_threshold: 5, tcp: {} }",
    ));
    eventually("the reload is in force", Duration::from_secs(5), || {
        p.log_count("config reloaded") == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(healthy_everywhere(&p, flip.addr, false), "kept its health");
    p.reload(&proxy_yaml(&[good.addr, flip.addr], ""));
    eventually(
        "both workers take it back without checks",
        Duration::from_secs(5),
        || healthy_everywhere(&p, flip.addr, true),
    );
    let before = flip.traffic();
    requests(&p, 20);
    assert!(flip.traffic() > before, "it gets traffic again");
}
