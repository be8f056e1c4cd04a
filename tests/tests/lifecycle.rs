//! Start-up, shutdown, the CLI, the admin API and the epoll fallback.

use std::time::Duration;

use ringmesh_tests::{config, eventually, run_cli, with_runtime, Client, Proxy, Upstream};

fn app_routes() -> &'static str {
    "      - { match: { path: { prefix: / } }, cluster: app }\n"
}

#[test]
fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    let up = Upstream::start("up");
    let yaml = with_runtime(
        &config(app_routes(), &[("app", &[&up])], ""),
        "{ workers: 2, drain_delay: 0s }",
    );
    let mut proxy = Proxy::start(&yaml);
    let addr = proxy.addr("main");
    let in_flight = std::thread::spawn(move || {
        let r = Client::connect(addr).get("/delay/1000", "a");
        (
            r.status,
            r.text(),
            r.header("connection").map(str::to_string),
        )
    });
    eventually(
        "the slow request reached the upstream",
        Duration::from_secs(5),
        || up.requests() == 1,
    );
    let mut idle = Client::connect(addr);
    assert_eq!(idle.get("/", "a").status, 200);

    proxy.signal_term();
    assert!(
        idle.is_closed(),
        "idle keep-alive connection closed at drain"
    );
    let (status, body, connection) = in_flight.join().expect("in-flight request");
    assert_eq!(
        (status, body.as_str()),
        (200, "late"),
        "in-flight request completed"
    );
    assert_eq!(
        connection.as_deref(),
        Some("close"),
        "draining responses close the connection"
    );
    let exit = proxy.wait(Duration::from_secs(10)).expect("proxy exited");
    assert!(exit.success(), "exit status {exit:?}\n{}", proxy.log_text());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer accepting"
    );
}

#[test]
fn drain_timeout_bounds_the_shutdown() {
    let up = Upstream::start("up");
    let yaml = with_runtime(
        &config(app_routes(), &[("app", &[&up])], ""),
        "{ workers: 2, drain_timeout: 300ms, drain_delay: 0s }",
    );
    let mut proxy = Proxy::start(&yaml);
    let addr = proxy.addr("main");
    let _stuck = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.send(b"GET /delay/20000 HTTP/1.1\r\nHost: a\r\n\r\n");
        c.read_to_close()
    });
    eventually(
        "the slow request reached the upstream",
        Duration::from_secs(5),
        || up.requests() == 1,
    );
    let started = std::time::Instant::now();
    proxy.signal_term();
    let exit = proxy.wait(Duration::from_secs(10)).expect("proxy exited");
    assert!(exit.success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        proxy.log_text().contains("drain timeout"),
        "{}",
        proxy.log_text()
    );
}

#[test]
fn validate_reports_every_error_with_its_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    routes:\n      - cluster: nope\n  - name: a\n    address: 127.0.0.1:2\n",
    )
    .expect("write");
    let (code, _, stderr) = run_cli(&["validate", "--config", bad.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{stderr}");
    let file = bad.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{file}:5:18: listeners[0].routes[0].cluster: unknown cluster `nope`"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}:6:11: listeners[1].name: duplicate listener name `a`"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("2 error(s)"), "{stderr}");

    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "listeners: [ { name: a, address: '127.0.0.1:1' } ]\n",
    )
    .expect("write");
    let (code, stdout, _) = run_cli(&["validate", "--config", good.to_str().expect("utf8")]);
    assert_eq!(code, 0);
    assert!(stdout.contains(": ok"));

    let (code, _, stderr) = run_cli(&["--config", bad.to_str().expect("utf8")]);
    assert_eq!(code, 1, "a bad config does not start");
    assert!(stderr.contains("not started"), "{stderr}");

    let (code, stdout, _) = run_cli(&["example"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("direct_response"),
        "prints the built-in example: {stdout}"
    );

    let (code, _, stderr) = run_cli(&["--config", "/nonexistent/proxy.yaml"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("/nonexistent/proxy.yaml: cannot read"),
        "{stderr}"
    );

    let (code, stdout, _) = run_cli(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--config"));
    let (code, _, _) = run_cli(&["--no-such-flag"]);
    assert_eq!(code, 2);
}

#[test]
fn address_in_use_fails_start_with_the_listener_named() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        format!("listeners: [ {{ name: busy, address: '{addr}' }} ]\n"),
    )
    .expect("write");
    let (code, _, stderr) = run_cli(&["--config", file.to_str().expect("utf8")]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("cannot bind listener `busy` to {addr}")),
        "{stderr}"
    );
}

#[test]
fn epoll_driver_can_be_forced() {
    let up = Upstream::start("up");
    let yaml = with_runtime(
        &config(app_routes(), &[("app", &[&up])], ""),
        "{ workers: 2, io: epoll }",
    );
    let proxy = Proxy::start(&yaml);
    assert!(
        proxy.log_text().contains("driver=\"epoll\""),
        "{}",
        proxy.log_text()
    );
    let mut c = Client::connect(proxy.addr("main"));
    for _ in 0..3 {
        assert_eq!(c.get("/", "a").text(), "up");
    }
    let r = c.request(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(r.text(), "abc");
    let (_, metrics) = proxy.admin_get("/metrics");
    assert!(metrics.contains("driver=\"epoll\""), "{metrics}");
}

#[test]
fn io_uring_is_the_default_driver() {
    let up = Upstream::start("up");
    let proxy = Proxy::start(&config(app_routes(), &[("app", &[&up])], ""));
    let log = proxy.log_text();
    // Where io_uring is unavailable (seccomp, old kernels) auto falls back,
    // and says so; on this project's machines it must be io_uring.
    assert!(log.contains("driver=\"io_uring\""), "{log}");
}

#[test]
fn admin_serves_ready_metrics_and_config_dump() {
    let up = Upstream::start("up");
    let proxy = Proxy::start(&config(app_routes(), &[("app", &[&up])], ""));
    assert_eq!(proxy.admin_get("/ready"), (200, "ready\n".to_string()));
    let mut c = Client::connect(proxy.addr("main"));
    for _ in 0..3 {
        c.get("/", "a");
    }
    c.get("/status/503", "a");
    drop(c);
    // Counters are bumped after the response is written, so a scrape can
    // race the last request by a moment.
    let wanted = [
        "ringmesh_requests_total{listener=\"main\",direction=\"inbound\",route=\"route0\",class=\"2xx\"} 3",
        "ringmesh_requests_total{listener=\"main\",direction=\"inbound\",route=\"route0\",class=\"5xx\"} 1",
        "ringmesh_upstream_requests_total{cluster=\"app\",class=\"2xx\"} 3",
        "ringmesh_upstream_connections_active{cluster=\"app\"} 1",
    ];
    eventually(
        "request counters and the pooled connection show up",
        Duration::from_secs(5),
        || {
            let (status, metrics) = proxy.admin_get("/metrics");
            status == 200 && wanted.iter().all(|w| metrics.contains(w))
        },
    );
    eventually(
        "downstream connection closed",
        Duration::from_secs(5),
        || {
            proxy
                .admin_get("/metrics")
                .1
                .contains("ringmesh_downstream_connections_active{listener=\"main\"} 0")
        },
    );
    let (status, dump) = proxy.admin_get("/config_dump");
    assert_eq!(status, 200);
    assert!(dump.contains("\"name\": \"main\""), "{dump}");
    assert!(dump.contains("\"driver\""), "{dump}");
    assert_eq!(proxy.admin_get("/nope").0, 404);
}

#[test]
fn example_config_runs_and_answers_hello() {
    // The README's quick start, minus its fixed ports.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/proxy.yaml"
    ))
    .expect("example");
    let yaml = example
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9901", "127.0.0.1:0");
    let proxy = Proxy::start(&yaml);
    let r = Client::connect(proxy.addr("main")).get("/hello", "localhost");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello from ringmesh\n")
    );
}

/// `validate` on `yaml`: (exit code, stderr, the file's path).
fn validate(yaml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, yaml).expect("write");
    let path = file.to_str().expect("utf8").to_string();
    let (code, stdout, stderr) = run_cli(&["validate", "--config", &path]);
    (code, format!("{stdout}{stderr}"), path)
}

#[test]
fn validate_rejects_a_duration_too_long_for_the_timer() {
    // A billion years used to pass validation and overflow the timer at
    // the first idle connection.
    let (code, out, file) = validate(
        "listeners:\n  - name: main\n    address: 127.0.0.1:1\n    idle_timeout: 1000000000y\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{file}:4:19: listeners[0].idle_timeout:")),
        "{out}"
    );
}

#[test]
fn validate_rejects_a_route_name_that_would_break_metrics_labels() {
    let (code, out, file) = validate(
        "listeners:\n  - name: main\n    address: 127.0.0.1:1\n    routes:\n      - { name: 'a\"b', direct_response: { status: 200, body: ok } }\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{file}:5:17: listeners[0].routes[0].name: `a\"b` is not a valid name"
        )),
        "{out}"
    );
}

fn parked(proxy: &Proxy) -> Option<u64> {
    proxy
        .admin_get("/metrics")
        .1
        .lines()
        .find_map(|l| l.strip_prefix("ringmesh_downstream_connections_parked{listener=\"main\"} "))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn sigterm_keeps_serving_with_connection_close_for_the_drain_delay() {
    let up = Upstream::start("up");
    let yaml = with_runtime(
        &config(app_routes(), &[("app", &[&up])], ""),
        "{ workers: 2, drain_delay: 2s }",
    );
    let mut proxy = Proxy::start(&yaml);
    let addr = proxy.addr("main");
    let mut parked_client = Client::connect(addr);
    assert_eq!(parked_client.get("/", "a").status, 200);
    eventually(
        "the quiet connection is parked",
        Duration::from_secs(5),
        || parked(&proxy) == Some(1),
    );

    proxy.signal_term();
    eventually("/ready turns 503", Duration::from_secs(1), || {
        proxy.admin_get("/ready").0 == 503
    });
    // During the delay: the parked connection is answered, and told to
    // go; a new connection is still accepted and served.
    let r = parked_client.get("/", "a");
    assert_eq!(
        (r.status, r.header("connection")),
        (200, Some("close")),
        "the parked connection's next request"
    );
    let r = Client::connect(addr).get("/", "a");
    assert_eq!(
        (r.status, r.header("connection")),
        (200, Some("close")),
        "a new connection during the delay"
    );
    // Then the listeners close and the proxy exits.
    eventually(
        "the listener refuses connections",
        Duration::from_secs(10),
        || std::net::TcpStream::connect(addr).is_err(),
    );
    let exit = proxy.wait(Duration::from_secs(10)).expect("proxy exited");
    assert!(exit.success(), "exit status {exit:?}\n{}", proxy.log_text());
}

#[test]
fn sigint_skips_the_drain_delay() {
    let up = Upstream::start("up");
    let yaml = with_runtime(
        &config(app_routes(), &[("app", &[&up])], ""),
        "{ workers: 2, drain_delay: 5s }",
    );
    let mut proxy = Proxy::start(&yaml);
    assert_eq!(
        Client::connect(proxy.addr("main")).get("/", "a").status,
        200
    );
    let started = std::time::Instant::now();
    proxy.signal_int();
    let exit = proxy.wait(Duration::from_secs(10)).expect("proxy exited");
    assert!(exit.success(), "exit status {exit:?}\n{}", proxy.log_text());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "SIGINT took {:?}: the 5 s delay was not skipped",
        started.elapsed()
    );
}
