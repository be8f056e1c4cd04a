//! The perf harness end to end: `ringmesh-bench` upstream and load (as a
//! library) through the real proxy, and `compare` as a real process on a
//! tiny scenario.

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use ringmesh_bench::http::RequestSpec;
use ringmesh_bench::load::{self, LoadOptions, LoadReport};
use ringmesh_bench::runtime::IoMode;
use ringmesh_bench::upstream::{self, UpstreamOptions};
use ringmesh_tests::{bench_bin, proxy_bin, Proxy};

fn proxy_to(upstream: std::net::SocketAddr) -> Proxy {
    Proxy::start(&format!(
        "runtime: {{ workers: 1 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes: [ {{ cluster: up }} ]\nclusters:\n  - {{ name: up, endpoints: ['{upstream}'] }}\n"
    ))
}

fn load(addr: std::net::SocketAddr, f: impl FnOnce(&mut LoadOptions)) -> LoadReport {
    let mut o = LoadOptions {
        addr,
        request: RequestSpec {
            method: "GET".into(),
            host: "bench".into(),
            path: "/".into(),
            headers: vec![("x-test".into(), "1".into())],
            body_size: 0,
            close: false,
        },
        connections: 4,
        threads: 1,
        cpus: vec![],
        duration: Duration::from_millis(700),
        warmup: Duration::from_millis(200),
        rate: None,
        pipeline: 1,
        new_connection: false,
        timeout: Duration::from_secs(5),
        io: IoMode::Auto,
        h2: None,
    };
    f(&mut o);
    load::run(&o, Arc::new(AtomicBool::new(false)), &mut ()).expect("load runs")
}

fn assert_clean(r: &LoadReport, what: &str) {
    assert!(r.requests > 50, "{what}: too few responses: {r}");
    assert_eq!(r.ok, r.requests, "{what}: {r}");
    assert_eq!(r.errors.total(), 0, "{what}: {r}");
    assert!(
        r.latency.p50_us > 0.0 && r.latency.p99_us >= r.latency.p50_us,
        "{what}: {r}"
    );
}

#[test]
fn load_through_the_proxy_to_the_bench_upstream() {
    let up = upstream::start(UpstreamOptions {
        body_size: 100,
        ..Default::default()
    })
    .unwrap();
    let proxy = proxy_to(up.addrs[0]);
    let addr = proxy.addr("main");

    let closed = load(addr, |_| {});
    assert_clean(&closed, "closed loop");
    assert_eq!(
        closed.response_body_bytes,
        closed.requests * 100,
        "every body is 100 bytes"
    );

    let piped = load(addr, |o| o.pipeline = 8);
    assert_clean(&piped, "pipelined");

    let fresh = load(addr, |o| {
        o.new_connection = true;
        o.request.close = true;
    });
    assert_clean(&fresh, "new connection per request");

    let uploads = load(addr, |o| {
        o.request.method = "POST".into();
        o.request.body_size = 200_000;
        o.request.path = "/size/3".into();
    });
    assert_clean(&uploads, "200 kB uploads");
    assert_eq!(
        uploads.response_body_bytes,
        uploads.requests * 3,
        "/size/3 answers 3 bytes"
    );
}

/// HTTP/2 load options: `streams` per connection, gRPC with `grpc`.
fn h2(streams: usize, grpc: Option<usize>) -> Option<load::H2Load> {
    Some(load::H2Load { streams, grpc })
}

#[test]
fn h2_load_through_the_proxy_to_h1_and_h2_upstreams() {
    // The HTTP/1.1 upstream, and one that also serves h2c and gRPC.
    let h1 = upstream::start(UpstreamOptions {
        body_size: 100,
        ..Default::default()
    })
    .unwrap();
    let h2_up = upstream::start(UpstreamOptions {
        body_size: 100,
        h2: true,
        ..Default::default()
    })
    .unwrap();
    // As `compare` routes an h2 scenario: /h2/ and gRPC to the h2
    // cluster, the rest to HTTP/1.1.
    let proxy = Proxy::start(&format!(
        "runtime: {{ workers: 1 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - {{ match: {{ path: {{ prefix: /h2/ }} }}, cluster: up2 }}\n      - {{ match: {{ path: {{ prefix: /ringmesh.testing.v1.Echo/ }} }}, cluster: up2 }}\n      - {{ cluster: up }}\nclusters:\n  - {{ name: up, endpoints: ['{}'] }}\n  - {{ name: up2, endpoints: ['{}'], protocol: http2 }}\n",
        h1.addrs[0], h2_up.addrs[0]
    ));
    let addr = proxy.addr("main");

    // The harness against itself first: h2 load, h2 upstream.
    let direct = load(h2_up.addrs[0], |o| o.h2 = h2(4, None));
    assert_clean(&direct, "h2 direct");

    let h2_h1 = load(addr, |o| o.h2 = h2(4, None));
    assert_clean(&h2_h1, "h2 in, HTTP/1.1 out");
    assert_eq!(h2_h1.protocol, "h2");
    assert_eq!(h2_h1.response_body_bytes, h2_h1.requests * 100);

    let h2_h2 = load(addr, |o| {
        o.h2 = h2(4, None);
        o.request.path = "/h2/size/7".into();
    });
    assert_clean(&h2_h2, "h2 in, h2 out");
    assert_eq!(h2_h2.response_body_bytes, h2_h2.requests * 7);

    let grpc = load(addr, |o| o.h2 = h2(2, Some(64)));
    assert_clean(&grpc, "gRPC through the proxy");
    assert_eq!(grpc.errors.grpc, 0);

    let paced = load(addr, |o| {
        o.h2 = h2(2, Some(16));
        o.rate = Some(300.0);
    });
    assert_clean(&paced, "gRPC at a fixed rate");
    assert!((paced.rps - 300.0).abs() < 45.0, "rate held: {paced}");

    // 100 streams on one connection: the proxy's default limit.
    let many = load(addr, |o| {
        o.connections = 1;
        o.h2 = h2(100, None);
    });
    assert_clean(&many, "100 streams on one connection");
}

#[test]
fn h2_grpc_failures_through_the_proxy_are_counted() {
    let up = upstream::start(UpstreamOptions {
        h2: true,
        grpc_status: 14,
        ..Default::default()
    })
    .unwrap();
    let proxy = Proxy::start(&format!(
        "runtime: {{ workers: 1 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes: [ {{ cluster: up }} ]\nclusters:\n  - {{ name: up, endpoints: ['{}'], protocol: http2 }}\n",
        up.addrs[0]
    ));
    let r = load(proxy.addr("main"), |o| o.h2 = h2(2, Some(8)));
    assert!(r.requests > 50, "{r}");
    assert_eq!(r.ok, 0, "{r}");
    assert_eq!(
        r.errors.grpc, r.requests,
        "every call failed UNAVAILABLE: {r}"
    );
}

#[test]
fn open_loop_holds_its_rate_and_counts_a_stall() {
    // The upstream adds 20-30 ms; 4 connections at 100 req/s keep up, so
    // the rate is met and latency sits in the added range.
    let up = upstream::start(UpstreamOptions {
        latency: Some("20ms..30ms".parse().unwrap()),
        ..Default::default()
    })
    .unwrap();
    let r = load(up.addrs[0], |o| {
        o.rate = Some(100.0);
        o.duration = Duration::from_secs(2);
    });
    assert_clean(&r, "paced");
    assert!((r.rps - 100.0).abs() < 10.0, "rate held: {r}");
    assert!(
        r.latency.p50_us >= 20_000.0 && r.latency.p50_us < 32_000.0,
        "{r}"
    );
    // One connection at 100 req/s against a 20-30 ms server falls behind:
    // every request waits for the ones before it, and latency measured
    // from the intended send time keeps growing instead of hiding.
    let behind = load(up.addrs[0], |o| {
        o.rate = Some(100.0);
        o.connections = 1;
        o.duration = Duration::from_secs(2);
    });
    assert!(
        behind.rps < 60.0,
        "one connection cannot keep 100 req/s: {behind}"
    );
    assert!(
        behind.latency.max_us > 300_000.0,
        "queueing shows in the tail: {behind}"
    );
}

#[test]
fn errors_are_counted_by_kind() {
    let dead = ringmesh_tests::closed_port();
    let r = load(dead, |o| o.duration = Duration::from_millis(300));
    assert_eq!(r.requests, 0);
    assert!(r.errors.connect > 0, "{r}");
    let up = upstream::start(UpstreamOptions {
        status: 503,
        ..Default::default()
    })
    .unwrap();
    let r = load(up.addrs[0], |_| {});
    assert!(
        r.errors.status > 0 && r.errors.status == r.statuses.s5xx && r.ok == 0,
        "{r}"
    );
}

#[test]
fn echo_returns_the_body_through_the_proxy() {
    let up = upstream::start(UpstreamOptions {
        echo: true,
        ..Default::default()
    })
    .unwrap();
    let proxy = proxy_to(up.addrs[0]);
    let mut c = ringmesh_tests::Client::connect(proxy.addr("main"));
    let r = c.request(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    let r = c.request(b"POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
}

#[test]
fn load_cli_interrupted_writes_a_partial_report() {
    let up = upstream::start(UpstreamOptions::default()).unwrap();
    let json = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(bench_bin())
        .args([
            "load",
            &format!("http://{}/", up.addrs[0]),
            "-c",
            "2",
            "-d",
            "60s",
            "-w",
            "100ms",
            "-q",
        ])
        .arg("--json")
        .arg(json.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    send_sigint(child.id());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "Ctrl-C exits 130");
    let r: LoadReport = serde_json::from_slice(&std::fs::read(json.path()).unwrap()).unwrap();
    assert!(r.interrupted && r.requests > 0, "{r}");
    assert!(
        r.duration_s > 0.5 && r.duration_s < 5.0,
        "window ends at the interrupt: {r}"
    );
}

fn send_sigint(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a child pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT sent");
}

fn cpus() -> (usize, usize) {
    let all = ringmesh_bench::runtime::available_cpus();
    (all[0], *all.last().expect("at least one CPU"))
}

#[test]
fn compare_runs_a_tiny_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let (first, last) = cpus();
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"
description = "e2e"
targets = ["direct", "ringmesh", "envoy"]
repetitions = 2
warmup = "200ms"
duration = "600ms"
cpus = {{ proxy = [{last}], upstream = [{first}], load = [{first}] }}
calibrate = {{ connections = 2, duration = "500ms" }}

[[step]]
name = "c2"
connections = 2

[[step]]
name = "half"
kind = "rate"
connections = 2
peak_fraction = 0.5

[[step]]
name = "idle"
kind = "idle"
connections = 100
hold = "1200ms"
"#
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    // No envoy here (Debian has no package): skipped with the reason, and
    // the run goes on with the others.
    let envoy_here = ringmesh_bench::compare::targets::which("envoy").is_some();
    let stderr = compare(&scenario, &out_dir, &[]);
    let date = ringmesh_bench::compare::today();
    let json = std::fs::read_to_string(out_dir.join(format!("tiny-{date}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets[0]["status"], "ok");
    assert_eq!(targets[1]["status"], "ok", "{stderr}");
    if !envoy_here {
        assert_eq!(targets[2]["status"], "skipped");
        assert!(
            targets[2]["detail"]
                .as_str()
                .unwrap()
                .contains("envoy not on PATH"),
            "{json}"
        );
    }
    // direct: c2 + half per repetition; ringmesh: c2 + half + idle.
    let runs = v["runs"].as_array().unwrap();
    let envoy_runs = runs.iter().filter(|r| r["target"] == "envoy").count();
    assert_eq!(runs.len() - envoy_runs, 2 * (2 + 3), "{json}");
    for r in runs {
        let m = &r["metrics"];
        assert_eq!(m["errors"], 0, "{r}");
        if r["step"] != "idle" {
            assert!(m["rps"].as_f64().unwrap() > 0.0, "{r}");
        }
    }
    let half = v["calibration"]["basis_rps"].as_f64().unwrap() * 0.5;
    let step = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "half")
        .unwrap()
        .clone();
    assert!(
        (step["rate"].as_f64().unwrap() - half).abs() <= 1.0,
        "{step}"
    );
    let summary = v["summary"].as_array().unwrap();
    let ring = |step: &str| {
        let s = summary.iter().find(|s| s["step"] == step).unwrap();
        s["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["target"] == "ringmesh")
            .unwrap()
            .clone()
    };
    assert!(
        ring("half")["median"]["proxy_cpu_us_per_req"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let kib = ring("idle")["median"]["idle_kib_per_conn"]
        .as_f64()
        .unwrap();
    assert!(kib > 0.0 && kib < 64.0, "idle KiB per connection: {kib}");
    if !envoy_here {
        assert_eq!(
            ring("c2")["ratio"].as_f64(),
            Some(1.0),
            "the only proxy is the best one"
        );
    }
    let md = std::fs::read_to_string(out_dir.join(format!("tiny-{date}.md"))).unwrap();
    assert!(
        md.contains("## Headline") && md.contains("| ringmesh |"),
        "{md}"
    );
    let svg = std::fs::read_to_string(out_dir.join(format!("tiny-{date}.svg"))).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("ringmesh") && svg.trim_end().ends_with("</svg>")
    );
}

#[test]
fn compare_rejects_a_bad_scenario_with_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "targets = [\"ringmesh\", \"envoyy\"]\ncpus = { proxy = [0], upstream = [0], load = [0] }\n[[step]]\nname = \"x\"\nconnections = 0\n").unwrap();
    let out = Command::new(bench_bin())
        .args(["compare", "--check"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml: targets[1]: unknown target \"envoyy\" (did you mean \"envoy\"?)"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml: step[0] (x).connections: must be at least 1"),
        "{err}"
    );
}

#[test]
fn compare_runs_a_baseline_build_beside_ringmesh() {
    // The same binary as both: the point is the plumbing (a second
    // ringmesh target alternating, and the ratio line), not the numbers.
    let dir = tempfile::tempdir().unwrap();
    let (first, last) = cpus();
    let scenario = dir.path().join("ab.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"
description = "e2e baseline"
targets = ["ringmesh"]
repetitions = 2
warmup = "200ms"
duration = "600ms"
cpus = {{ proxy = [{last}], upstream = [{first}], load = [{first}] }}

[[step]]
name = "c2"
connections = 2

[[step]]
name = "idle"
kind = "idle"
connections = 50
hold = "1200ms"
"#
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let baseline = proxy_bin();
    compare(
        &scenario,
        &out_dir,
        &["--baseline-bin".as_ref(), baseline.as_ref()],
    );
    let date = ringmesh_bench::compare::today();
    let json = std::fs::read_to_string(out_dir.join(format!("ab-{date}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let runs = v["runs"].as_array().unwrap();
    let order: Vec<&str> = runs.iter().map(|r| r["target"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        [
            "ringmesh", "ringmesh", "baseline", "baseline", "ringmesh", "ringmesh", "baseline",
            "baseline"
        ],
        "each target runs its steps, targets alternate"
    );
    let md = std::fs::read_to_string(out_dir.join(format!("ab-{date}.md"))).unwrap();
    assert!(md.contains("ringmesh vs baseline"), "{md}");
}

#[test]
fn compare_runs_a_resilience_scenario() {
    // Three endpoints, one slow or refusing; the point is the plumbing (a
    // proxy per step with its endpoints and policy, success rates, the
    // two tables) and that every peer starts with its generated
    // multi-endpoint config, not the numbers. nginx and HAProxy join when
    // installed (skipped otherwise, as in every compare run).
    let dir = tempfile::tempdir().unwrap();
    let (first, last) = cpus();
    let scenario = dir.path().join("res.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"
description = "e2e resilience"
targets = ["ringmesh", "nginx", "haproxy"]
repetitions = 1
warmup = "100ms"
duration = "500ms"
cpus = {{ proxy = [{last}], upstream = [{first}], load = [{first}] }}
endpoints = 3

[[step]]
name = "slow"
kind = "rate"
rate = 300
connections = 16
fault = {{ latency = "20ms" }}

[[step]]
name = "refused-retry"
kind = "rate"
rate = 300
connections = 16
fault = {{ refuse = true }}
retry = true
"#
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let stderr = compare(&scenario, &out_dir, &[]);
    assert!(stderr.contains("endpoints: healthy on"), "{stderr}");
    let date = ringmesh_bench::compare::today();
    let json = std::fs::read_to_string(out_dir.join(format!("res-{date}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["endpoints"], 3);
    let ran: Vec<&str> = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "ok")
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(ran.contains(&"ringmesh"), "{json}");
    for t in &ran {
        for step in ["slow", "refused-retry"] {
            let run = v["runs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["target"] == *t && r["step"] == step)
                .unwrap_or_else(|| panic!("{t} {step}: {json}"));
            let m = &run["metrics"];
            assert!(m["rps"].as_f64().unwrap() > 0.0, "{run}");
            assert!(m["success_rate"].as_f64().is_some(), "{run}");
            if step == "slow" {
                assert_eq!(m["errors"], 0, "{run}");
            }
        }
    }
    // Told to retry on another endpoint, ringmesh loses no request to the
    // refusing one.
    let ring = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"] == "ringmesh" && r["step"] == "refused-retry")
        .unwrap();
    assert_eq!(ring["metrics"]["success_rate"], 1.0, "{ring}");
    assert_eq!(v["steps"][1]["fault"], "refuse");
    assert_eq!(v["steps"][1]["retry"], true);
    let md = std::fs::read_to_string(out_dir.join(format!("res-{date}.md"))).unwrap();
    assert!(
        md.contains("## Latency, every endpoint healthy or one slow")
            && md.contains("## Success rate, one endpoint failing")
            && md.contains("| ringmesh |"),
        "{md}"
    );
}

/// Run `ringmesh-bench compare` on `scenario` with this build's proxy,
/// writing to `out_dir`; its stderr. Fails the test if compare fails.
fn compare(
    scenario: &std::path::Path,
    out_dir: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> String {
    let out = Command::new(bench_bin())
        .arg("compare")
        .arg(scenario)
        .arg("--out")
        .arg(out_dir)
        .arg("--ringmesh-bin")
        .arg(proxy_bin())
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ringmesh-bench: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "compare failed: {stderr}");
    stderr
}
