//! `ringmeshctl stat` end to end: ringmesh-control, two sidecars (web
//! calling orders through the mesh, mTLS), an upstream that answers
//! after 30 ms, and a paced load at a fixed rate. The control plane's
//! numbers, from the proxies' reports, must match what the load did.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmesh_tests::control::{ctl, ctl_at, sidecar_with, ControlPlane};
use ringmesh_tests::{eventually, Client, Upstream};
use serde_json::Value;

const MESH: &str = "\
kind: Service
metadata: { name: web }
---
kind: Service
metadata: { name: orders }
";

/// The upstream's added latency, and the bucket it falls in
/// (`LATENCY_BOUNDS_US`: 25 ms to 50 ms): an interpolated percentile is
/// exact to the bucket.
const DELAY_MS: u64 = 30;
const BUCKET_MS: (f64, f64) = (25.0, 50.0);
/// Per client thread; two threads.
const RATE_PER_THREAD: u32 = 20;
const WINDOW: &str = "3s";

fn stat(cp: SocketAddr, what: &str) -> Vec<Value> {
    let (code, out, err) = ctl(cp, &["stat", what, "-o", "json"]);
    assert_eq!(code, 0, "stat {what}: {err}");
    match serde_json::from_str(&out) {
        Ok(Value::Array(rows)) => rows,
        other => panic!("stat {what} -o json: {other:?} from {out}"),
    }
}

fn row<'a>(rows: &'a [Value], key: &str, name: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r[key] == name)
}

/// Paced keep-alive clients: request n of a thread is sent at
/// start + n / rate (never earlier), until `stop`, at most 30 s.
/// Returns (requests, non-200 answers).
fn load(outbound: SocketAddr, stop: Arc<AtomicBool>, done: Arc<AtomicUsize>) -> (usize, usize) {
    let start = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(outbound);
                let (mut sent, mut failed) = (0, 0);
                for n in 0..RATE_PER_THREAD * 30 {
                    let at = start + Duration::from_secs(1) * n / RATE_PER_THREAD;
                    if let Some(wait) = at.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = c.get(&format!("/delay/{DELAY_MS}"), "orders");
                    sent += 1;
                    if r.status != 200 {
                        failed += 1;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                (sent, failed)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("load thread"))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

fn number(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

fn assert_latency(v: &Value, what: &str) {
    for p in ["latency_ms_p50", "latency_ms_p95", "latency_ms_p99"] {
        let ms = number(v, p);
        assert!(
            (BUCKET_MS.0..=BUCKET_MS.1).contains(&ms),
            "{what} {p} = {ms} ms, not in the bucket of the injected {DELAY_MS} ms: {v}"
        );
    }
}

#[test]
fn stat_reports_rate_latency_success_and_mtls_per_service_and_edge() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mesh.yaml"), MESH).expect("write");
    let cp = ControlPlane::start_with(
        dir.path(),
        "127.0.0.1:0".parse().expect("addr"),
        &["--window", WINDOW],
    );
    let app = Upstream::start("orders-app");
    let fast = ["--stats-interval", "250ms"];
    let (_orders, _, _) = sidecar_with(cp.addr, &fast, "orders-1", "orders", app.addr);
    let (_web, _, web_out) = sidecar_with(
        cp.addr,
        &fast,
        "web-1",
        "web",
        ringmesh_tests::closed_port(),
    );
    eventually("a request across the mesh", Duration::from_secs(20), || {
        Client::connect(web_out).get("/delay/0", "orders").status == 200
    });
    // Before any load, every Service is listed, without traffic.
    let idle = stat(cp.addr, "services");
    assert!(row(&idle, "name", "orders").is_some(), "{idle:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let loader = {
        let (stop, done) = (stop.clone(), done.clone());
        std::thread::spawn(move || load(web_out, stop, done))
    };
    // Once the window holds only reports read under load (its length,
    // a report interval and some slack after the start), and covers most
    // of it.
    let (mut services, mut edges) = (Vec::new(), Vec::new());
    eventually(
        "a window of reports under load",
        Duration::from_secs(20),
        || {
            if started.elapsed() < Duration::from_millis(3_600) {
                return false;
            }
            services = stat(cp.addr, "services");
            edges = stat(cp.addr, "edges");
            let covered = |rows: &[Value], key: &str, name: &str| {
                row(rows, key, name).is_some_and(|r| r["seconds"].as_f64() >= Some(2.0))
            };
            covered(&services, "name", "orders") && covered(&edges, "to", "orders")
        },
    );
    let endpoints = stat(cp.addr, "endpoints");
    let elapsed = started.elapsed().as_secs_f64();
    let completed = done.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let (sent, failed) = loader.join().expect("load");
    assert_eq!(failed, 0, "every request of the load succeeded");
    // What the load measured, while it ran at its pace.
    let measured = completed as f64 / elapsed;
    let target = f64::from(RATE_PER_THREAD * 2);
    assert!(
        (measured - target).abs() / target < 0.05,
        "the load kept its pace: {measured:.2} rps of {target} ({sent} sent)"
    );

    eprintln!("load: {measured:.2} rps ({completed} in {elapsed:.2} s)\nservices: {services:?}\nedges: {edges:?}");
    let orders = row(&services, "name", "orders").expect("orders row");
    let rps = number(orders, "rps");
    assert!(
        (rps - measured).abs() / measured < 0.05,
        "orders: {rps:.2} rps, the load {measured:.2}: {orders}"
    );
    assert_eq!(orders["success_rate"], 1.0, "{orders}");
    assert_eq!(orders["failures"], 0, "{orders}");
    assert_eq!(orders["meshed"], true, "{orders}");
    assert_eq!(
        orders["mtls_share"], 1.0,
        "web calls it with mTLS: {orders}"
    );
    assert_eq!(
        (orders["proxies"].clone(), orders["reporting"].clone()),
        (1.into(), 1.into())
    );
    assert_latency(orders, "service orders");

    let edge = row(&edges, "to", "orders").expect("web -> orders edge");
    assert_eq!(edge["from"], "web", "{edge}");
    assert_eq!(edge["mtls"], true, "{edge}");
    assert_eq!(edge["success_rate"], 1.0, "{edge}");
    let rps = number(edge, "rps");
    assert!(
        (rps - measured).abs() / measured < 0.05,
        "web -> orders: {rps:.2} rps, the load {measured:.2}: {edge}"
    );
    assert_latency(edge, "edge web -> orders");
    assert_eq!(edges.len(), 1, "only web calls anyone: {edges:?}");

    // Its one endpoint (the orders sidecar), as the callers' proxies saw
    // it: both sidecars have a cluster for orders; only web's sent.
    let ep = row(&endpoints, "service", "orders").expect("orders' endpoint");
    assert_eq!(
        endpoints
            .iter()
            .filter(|e| e["service"] == "orders")
            .count(),
        1,
        "{endpoints:?}"
    );
    let rps = number(ep, "rps");
    assert!(
        (rps - measured).abs() / measured < 0.05,
        "orders' endpoint: {rps:.2} rps, the load {measured:.2}: {ep}"
    );
    assert_eq!(ep["success_rate"], 1.0, "{ep}");
    assert_eq!(
        (
            ep["proxies"].clone(),
            ep["ejected_by"].clone(),
            ep["unhealthy_by"].clone()
        ),
        (2.into(), 0.into(), 0.into()),
        "{ep}"
    );

    // The table says the same, in linkerd's columns.
    let (code, out, err) = ctl(cp.addr, &["stat", "edges"]);
    assert_eq!(code, 0, "{err}");
    let header = out.lines().next().unwrap_or_default();
    for col in [
        "FROM",
        "TO",
        "MTLS",
        "SUCCESS",
        "RPS",
        "LATENCY_P50",
        "LATENCY_P95",
        "LATENCY_P99",
    ] {
        assert!(header.contains(col), "{out}");
    }
}

#[test]
fn stat_fails_clearly_without_a_control_plane_and_on_bad_usage() {
    let nowhere = ringmesh_tests::closed_port().to_string();
    let (code, out, err) = ctl_at(&nowhere, &["stat"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "errors go to stderr: {out}");
    assert!(err.contains("cannot reach the control plane"), "{err}");

    let (code, _, err) = ctl_at(&nowhere, &["stat", "pods"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("services") && err.contains("edges"), "{err}");
}

#[test]
fn stat_watch_prints_until_interrupted() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mesh.yaml"), MESH).expect("write");
    let cp = ControlPlane::start(dir.path(), "127.0.0.1:0".parse().expect("addr"));
    let mut child = std::process::Command::new(ringmesh_tests::ctl_bin())
        .args(["--server", &cp.addr.to_string(), "--token"])
        .arg(ringmesh_tests::control::TOKEN)
        .args(["stat", "services", "-o", "json", "--watch=1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ringmeshctl");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Two prints, a second apart, each one JSON document on a line.
    for _ in 0..2 {
        let line = rx.recv_timeout(Duration::from_secs(10)).expect("a print");
        let rows: Vec<Value> = serde_json::from_str(&line).expect("one JSON line");
        assert!(row(&rows, "name", "orders").is_some(), "{line}");
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "ringmeshctl stat --watch ignored Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "Ctrl-C ends a watch cleanly: {status:?}");
}
