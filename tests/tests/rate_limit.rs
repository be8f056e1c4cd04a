//! Route rate limits: a token bucket per route and core; requests over it
//! are answered 429 with a `retry-after` (RESOURCE_EXHAUSTED for gRPC) and
//! counted in `/metrics`. The route's rate and burst are split across the
//! two workers (10/s and 5 each here), so the bounds below allow for the
//! kernel putting connections on either core.

use std::time::{Duration, Instant};

use ringmesh_proto::testing::EchoRequest;
use ringmesh_tests::grpc::{GrpcClient, GrpcServer};
use ringmesh_tests::{config, eventually, Client, Proxy, Upstream};

const LIMITED: &str =
    "      - { name: limited, cluster: app, rate_limit: { requests_per_second: 20, burst: 10 } }\n";

fn limited(proxy: &Proxy) -> Option<u64> {
    proxy.metric("ringmesh_rate_limited_total{listener=\"main\",route=\"limited\"}")
}

#[test]
fn a_burst_past_the_limit_is_answered_429_with_retry_after() {
    let up = Upstream::start("up");
    let proxy = Proxy::start(&config(LIMITED, &[("app", &[&up])], ""));
    // Several connections, so both cores are likely to see some.
    let mut clients: Vec<Client> = (0..8)
        .map(|_| Client::connect(proxy.addr("main")))
        .collect();
    let (mut accepted, mut refused) = (0u64, 0u64);
    let started = Instant::now();
    for _ in 0..5 {
        for c in &mut clients {
            let r = c.get("/", "a");
            match r.status {
                200 => accepted += 1,
                429 => {
                    refused += 1;
                    assert_eq!(r.header("ringmesh-error"), Some("rate_limited"));
                    // A token is back in 100 ms at most: one whole second.
                    assert_eq!(r.header("retry-after"), Some("1"));
                }
                s => panic!("unexpected status {s}: {}", r.text()),
            }
        }
    }
    let took = started.elapsed().as_secs_f64();
    assert_eq!(accepted + refused, 40);
    // The burst (5 a core, 10 in all), plus what refilled meanwhile.
    let bound = 10 + (20.0 * took).ceil() as u64;
    assert!(
        (5..=bound).contains(&accepted),
        "accepted {accepted} of 40 in {took:.3}s (bound {bound})"
    );
    assert_eq!(
        up.requests() as u64,
        accepted,
        "refused requests were not forwarded"
    );
    eventually("the 429s counted", Duration::from_secs(5), || {
        limited(&proxy) == Some(refused)
    });
}

#[test]
fn paced_requests_are_accepted_at_the_configured_rate() {
    let up = Upstream::start("up");
    let proxy = Proxy::start(&config(LIMITED, &[("app", &[&up])], ""));
    let mut clients: Vec<Client> = (0..4)
        .map(|_| Client::connect(proxy.addr("main")))
        .collect();
    let (mut accepted, mut sent) = (0u64, 0u64);
    let started = Instant::now();
    // Offered at about 50/s for about 3 s: more than the limit.
    while started.elapsed() < Duration::from_secs(3) && sent < 200 {
        let i = sent as usize % clients.len();
        let r = clients[i].get("/", "a");
        sent += 1;
        match r.status {
            200 => accepted += 1,
            429 => assert!(r.header("retry-after").is_some()),
            s => panic!("unexpected status {s}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed().as_secs_f64();
    // At most the whole route's rate plus its burst; at least one core's
    // share (all connections on one core: 10/s and a burst of 5).
    let most = (20.0 * took).ceil() as u64 + 10;
    let least = (10.0 * took * 0.8) as u64;
    assert!(
        (least..=most).contains(&accepted),
        "accepted {accepted} of {sent} in {took:.2}s: not within {least}..={most}"
    );
    assert!(accepted < sent, "some were refused");
    eventually("the 429s counted", Duration::from_secs(5), || {
        limited(&proxy) == Some(sent - accepted)
    });
}

#[test]
fn a_grpc_call_over_the_limit_gets_resource_exhausted() {
    let server = GrpcServer::start();
    let proxy = Proxy::start(&format!(
        "runtime: {{ workers: 2 }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - {{ name: limited, match: {{ grpc: {{ service: ringmesh.testing.v1.Echo }} }}, cluster: echo, rate_limit: {{ requests_per_second: 0.1, burst: 1 }} }}\nclusters:\n  - {{ name: echo, protocol: http2, endpoints: ['{}'] }}\n",
        server.addr
    ));
    // One channel: one HTTP/2 connection, on one core, whose bucket holds
    // one token (burst 1 split over 2 workers rounds up to 1).
    let mut c = GrpcClient::connect(proxy.addr("main"));
    let req = || EchoRequest {
        payload: b"x".to_vec(),
        ..Default::default()
    };
    c.runtime
        .block_on(c.echo.unary(req()))
        .expect("the first call has a token");
    let status = c
        .runtime
        .block_on(c.echo.unary(req()))
        .expect_err("over the limit");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    eventually("the refusal counted", Duration::from_secs(5), || {
        limited(&proxy) == Some(1)
            && proxy.metric(
                "ringmesh_grpc_requests_total{listener=\"main\",route=\"limited\",grpc_status=\"8\"}",
            ) == Some(1)
    });
}

#[test]
fn a_reload_keeps_the_bucket_of_an_unchanged_route() {
    let up = Upstream::start("up");
    // One worker: one bucket, whatever connection the kernel picks. A
    // token every 100 s: none comes back during the test.
    let limited = |burst: u32| {
        format!("      - {{ name: limited, cluster: app, rate_limit: {{ requests_per_second: 0.01, burst: {burst} }} }}\n")
    };
    let yaml = |routes: &str| {
        ringmesh_tests::with_runtime(&config(routes, &[("app", &[&up])], ""), "{ workers: 1 }")
    };
    let proxy = Proxy::start(&yaml(&limited(2)));
    let statuses = |n: usize| -> Vec<u16> {
        let mut c = Client::connect(proxy.addr("main"));
        (0..n).map(|_| c.get("/", "a").status).collect()
    };
    assert_eq!(statuses(3), [200, 200, 429]);
    let r = Client::connect(proxy.addr("main")).get("/", "a");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("100"), "a token every 100 s");

    // Another route added: this one's bucket stays empty.
    let other = "      - { name: other, match: { path: { prefix: /other } }, cluster: app }\n";
    proxy.reload(&yaml(&format!("{other}{}", limited(2))));
    eventually("the reload", Duration::from_secs(10), || {
        proxy.log_count("config reloaded") >= 1
    });
    assert_eq!(statuses(1), [429], "the bucket was kept");

    // The route's own limit changed: a new, full bucket.
    proxy.reload(&yaml(&limited(3)));
    eventually("the second reload", Duration::from_secs(10), || {
        proxy.log_count("config reloaded") >= 2
    });
    assert_eq!(statuses(4), [200, 200, 200, 429]);
}

#[test]
fn per_header_each_caller_has_a_bucket_of_its_own() {
    let up = Upstream::start("up");
    let routes = "      - { name: limited, cluster: app, rate_limit: { requests_per_second: 0.01, burst: 2, per: { header: x-user } } }\n";
    let proxy = Proxy::start(&ringmesh_tests::with_runtime(
        &config(routes, &[("app", &[&up])], ""),
        "{ workers: 1 }",
    ));
    let mut c = Client::connect(proxy.addr("main"));
    let mut as_user = |user: &str| -> u16 {
        let raw = format!("GET / HTTP/1.1\r\nhost: a\r\nx-user: {user}\r\n\r\n");
        c.request(raw.as_bytes()).status
    };
    let alice: Vec<u16> = (0..3).map(|_| as_user("alice")).collect();
    let bob: Vec<u16> = (0..3).map(|_| as_user("bob")).collect();
    assert_eq!(alice, [200, 200, 429]);
    assert_eq!(bob, [200, 200, 429], "bob has his own burst");
    assert_eq!(as_user("alice"), 429);
    let anonymous: Vec<u16> = (0..3).map(|_| c.get("/", "a").status).collect();
    assert_eq!(
        anonymous,
        [200, 200, 429],
        "requests without the header share one"
    );
    eventually("the 429s counted", Duration::from_secs(5), || {
        limited(&proxy) == Some(4)
    });
}
