//! The control loop end to end, all real processes: ringmesh-control over
//! a resource directory, two sidecars that take their config from it, and
//! upstreams behind them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmesh_tests::control::{sidecar, ControlPlane};
use ringmesh_tests::{closed_port, eventually, Client, Upstream};

fn services(v2: &Upstream) -> String {
    format!(
        "kind: Service\nmetadata: {{ name: a }}\n---\nkind: Service\nmetadata: {{ name: b }}\n---\nkind: Service\nmetadata: {{ name: b-v1 }}\n---\nkind: Service\nmetadata: {{ name: b-v2 }}\nspec: {{ endpoints: ['{}'] }}\n",
        v2.addr
    )
}

fn split(v1: u64, v2: u64) -> String {
    format!(
        "kind: HTTPRoute\nmetadata: {{ name: b-split }}\nspec:\n  parentRefs: [ {{ name: b }} ]\n  rules: [ {{ backendRefs: [ {{ name: b-v1, weight: {v1} }}, {{ name: b-v2, weight: {v2} }} ] }} ]\n"
    )
}

fn write(dir: &Path, file: &str, text: &str) {
    // Write then rename, as editors and config tools do: the control plane
    // never reads half a file.
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join(file)).expect("rename");
}

/// `n` requests to `b`, counted by upstream, or `None` at the first
/// answer that is not a 200.
fn try_sample(outbound: std::net::SocketAddr, n: usize) -> Option<HashMap<String, usize>> {
    let mut c = Client::connect(outbound);
    let mut seen = HashMap::new();
    for _ in 0..n {
        let r = c.get("/", "b");
        if r.status != 200 {
            return None;
        }
        *seen.entry(r.text()).or_insert(0) += 1;
    }
    Some(seen)
}

/// `n` requests from A's sidecar to service `b`, counted by upstream name.
fn sample(outbound: std::net::SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut c = Client::connect(outbound);
    let mut seen = HashMap::new();
    for _ in 0..n {
        let r = c.get("/", "b");
        assert_eq!(r.status, 200, "{}", r.text());
        *seen.entry(r.text()).or_insert(0) += 1;
    }
    seen
}

struct Mesh {
    dir: tempfile::TempDir,
    cp: ControlPlane,
    v1: Upstream,
    v2: Upstream,
    a: ringmesh_tests::Proxy,
    a_out: std::net::SocketAddr,
    _b: ringmesh_tests::Proxy,
}

fn mesh(v1_weight: u64, v2_weight: u64) -> Mesh {
    let (v1, v2) = (Upstream::start("v1"), Upstream::start("v2"));
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "services.yaml", &services(&v2));
    write(dir.path(), "routes.yaml", &split(v1_weight, v2_weight));
    let cp = ControlPlane::start(dir.path(), "127.0.0.1:0".parse().expect("addr"));
    // B's sidecar fronts v1: it registers as b-v1's endpoint.
    let (b, _, _) = sidecar(cp.addr, "b-1", "b-v1", v1.addr);
    let (a, _, a_out) = sidecar(cp.addr, "a-1", "a", closed_port());
    Mesh {
        dir,
        cp,
        v1,
        v2,
        a,
        a_out,
        _b: b,
    }
}

fn in_force(m: &Mesh) -> usize {
    m.a.log_count("snapshot in force on every core")
}

#[test]
fn a_sidecar_reaches_a_service_by_name_and_follows_a_weight_change() {
    let m = mesh(50, 50);
    // B registers after A may have its first config: wait until A routes
    // to B's sidecar too.
    eventually("both versions reachable", Duration::from_secs(15), || {
        sample(m.a_out, 40).len() == 2
    });
    let before = sample(m.a_out, 2000);
    let share = before["v1"] as f64 / 2000.0;
    assert!((share - 0.5).abs() < 0.05, "50/50 split: {before:?}");
    assert!(
        m.v1.requests() > 0,
        "v1 reached through B's sidecar (its inbound listener)"
    );

    let applied = in_force(&m);
    write(m.dir.path(), "routes.yaml", &split(90, 10));
    eventually("the new weights in force", Duration::from_secs(10), || {
        in_force(&m) > applied
    });
    let after = sample(m.a_out, 2000);
    let share = after["v1"] as f64 / 2000.0;
    assert!((share - 0.9).abs() < 0.03, "90/10 split: {after:?}");
    let _ = &m.v2;
}

#[test]
fn a_hundred_route_changes_under_load_fail_no_request() {
    let m = mesh(100, 0);
    eventually("v1 reachable", Duration::from_secs(15), || {
        sample(m.a_out, 5).contains_key("v1")
    });
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(std::sync::Mutex::new(Vec::new())),
    );
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed, out) = (stop.clone(), ok.clone(), failed.clone(), m.a_out);
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut c = Client::connect(out);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let r = c.get("/", "b");
                    if r.status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed
                            .lock()
                            .expect("lock")
                            .push(format!("{} {}", r.status, r.text()));
                    }
                }
            })
        })
        .collect();
    let start = in_force(&m);
    for i in 1..=100 {
        let (w1, w2) = if i % 2 == 1 { (0, 100) } else { (100, 0) };
        write(m.dir.path(), "routes.yaml", &split(w1, w2));
        eventually("change in force", Duration::from_secs(10), || {
            in_force(&m) >= start + i
        });
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    let failed = failed.lock().expect("lock");
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        ok.load(Ordering::Relaxed) > 1000,
        "load ran: {}",
        ok.load(Ordering::Relaxed)
    );
    // The last change (i = 100) sent everything to v1.
    assert_eq!(sample(m.a_out, 50).get("v1"), Some(&50));
}

#[test]
fn proxies_keep_serving_without_the_control_plane_and_resync() {
    let m = mesh(100, 0);
    eventually("v1 reachable", Duration::from_secs(15), || {
        sample(m.a_out, 5).contains_key("v1")
    });
    let addr = m.cp.addr;
    let Mesh {
        dir,
        cp,
        a,
        a_out,
        _b,
        v1,
        v2,
    } = m;
    cp.kill();
    // The config in force stays.
    assert_eq!(sample(a_out, 200).get("v1"), Some(&200));
    // A change made while the control plane is away reaches the proxies
    // once it is back.
    write(dir.path(), "routes.yaml", &split(0, 100));
    let cp = ControlPlane::start(dir.path(), addr);
    // A restarted control plane knows no sidecar until each reconnects:
    // for a moment A may be sent `b` without B's endpoint (503s; a gap
    // in docs/status.md), so this waits for the resync, not for an
    // unbroken run.
    eventually("resync after restart", Duration::from_secs(20), || {
        try_sample(a_out, 5).is_some_and(|s| s.get("v2") == Some(&5))
    });
    assert!(
        a.log_text().contains("control plane unreachable"),
        "the agent noticed"
    );
    let _ = (cp, v1, v2);
}

#[test]
fn a_bad_resource_file_is_rejected_and_never_reaches_a_proxy() {
    let m = mesh(100, 0);
    eventually("v1 reachable", Duration::from_secs(15), || {
        sample(m.a_out, 5).contains_key("v1")
    });
    let applied = in_force(&m);
    write(
        m.dir.path(),
        "routes.yaml",
        &split(0, 100).replace("name: b-v2", "name: b-v3"),
    );
    eventually("rejection logged", Duration::from_secs(10), || {
        m.cp.log_count("resource change rejected") == 1
    });
    let log = m.cp.log_text();
    assert!(
        log.contains("routes.yaml:5:64: HTTPRoute/b-split.spec.rules[0].backendRefs[1].name")
            && log.contains("no Service named `b-v3`"),
        "{log}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(in_force(&m), applied, "the proxy saw nothing");
    assert_eq!(
        sample(m.a_out, 50).get("v1"),
        Some(&50),
        "the old config still serves"
    );
}

fn gateway_yaml(addr: std::net::SocketAddr) -> String {
    format!(
        "kind: Gateway\nmetadata: {{ name: edge }}\nspec: {{ listeners: [ {{ name: web, address: '{addr}' }} ] }}\n---\nkind: HTTPRoute\nmetadata: {{ name: edge-to-b }}\nspec: {{ parentRefs: [ {{ kind: Gateway, name: edge }} ], rules: [ {{ backendRefs: [ {{ name: b-v2 }} ] }} ] }}\n"
    )
}

#[test]
fn ringmeshctl_applies_shows_status_and_a_nacked_snapshot() {
    use ringmesh_tests::control::{ctl, free_addr, gateway};
    let m = mesh(100, 0);
    let edge = free_addr();
    let files = tempfile::tempdir().expect("tempdir");
    let gw_file = files.path().join("edge.yaml");
    std::fs::write(&gw_file, gateway_yaml(edge)).expect("write");
    let gw_path = gw_file.to_str().expect("utf-8 path");
    let (code, out, err) = ctl(m.cp.addr, &["apply", "-f", gw_path]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Gateway/edge created\nHTTPRoute/edge-to-b created\n");
    let gw = gateway(m.cp.addr, "gw-1", "edge");
    let mut c = Client::connect(edge);
    assert_eq!(
        c.get("/", "shop.example").text(),
        "v2",
        "the gateway serves its Gateway's route"
    );

    // Every proxy connected, ACKed what it was sent.
    eventually("all ACKed", Duration::from_secs(10), || {
        let (_, out, _) = ctl(m.cp.addr, &["get", "proxies", "-o", "json"]);
        let rows: serde_json::Value = serde_json::from_str(&out).expect("json");
        rows.as_array().expect("list").len() == 3
            && rows
                .as_array()
                .expect("list")
                .iter()
                .all(|r| r["connected"] == true && r["sent"] == r["acked"] && r["last_error"] == "")
    });

    // Moving the Gateway's listener cannot be applied live: the gateway
    // NACKs it, keeps serving, and status says why.
    std::fs::write(&gw_file, gateway_yaml(free_addr())).expect("write");
    let (code, out, _) = ctl(m.cp.addr, &["apply", "-f", gw_path]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "Gateway/edge configured\nHTTPRoute/edge-to-b unchanged\n"
        )
    );
    eventually("NACK in status", Duration::from_secs(10), || {
        let (_, out, _) = ctl(m.cp.addr, &["status"]);
        out.lines()
            .any(|l| l.starts_with("gw-1") && l.contains("NACK") && l.contains("needs a restart"))
    });
    assert_eq!(
        Client::connect(edge).get("/", "shop.example").text(),
        "v2",
        "the old config still serves"
    );
    assert!(gw.log_text().contains("NACK"), "{}", gw.log_text());
    assert!(
        gw.metric("ringmesh_config_updates_total{result=\"rejected\"}")
            .is_some_and(|n| n >= 1),
        "a NACK counts as a rejected update"
    );

    // A bad apply: refused with file and line, exit 1, nothing changes.
    let bad = files.path().join("bad.yaml");
    std::fs::write(&bad, "kind: HTTPRoute\nmetadata: { name: r }\nspec: { parentRefs: [ { name: nope } ], rules: [ { backendRefs: [ { name: b } ] } ] }\n").expect("write");
    let (code, _, err) = ctl(m.cp.addr, &["apply", "-f", bad.to_str().expect("utf-8")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.yaml:3:") && err.contains("no Service named `nope`"),
        "{err}"
    );
    // Wrong token: refused.
    let out = std::process::Command::new(ringmesh_tests::ctl_bin())
        .args([
            "--server",
            &m.cp.addr.to_string(),
            "--token",
            "wrong",
            "status",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bootstrap token"));
}

/// `ringmeshctl apply` to the new route in force on every core of a
/// sidecar, 20 times; prints the median. Run with
/// `cargo test --release -p ringmesh-tests --test mesh apply_latency -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check; see docs/control-plane.md"]
fn apply_latency() {
    use ringmesh_tests::control::ctl;
    let m = mesh(100, 0);
    eventually("v1 reachable", Duration::from_secs(15), || {
        sample(m.a_out, 5).contains_key("v1")
    });
    let files = tempfile::tempdir().expect("tempdir");
    let mut took = Vec::new();
    for i in 0..21 {
        let (w1, w2) = if i % 2 == 0 { (10, 90) } else { (90, 10) };
        let f = files.path().join("split.yaml");
        std::fs::write(&f, split(w1, w2).replace("b-split", "b-split-ctl")).expect("write");
        let before = in_force(&m);
        let t0 = Instant::now();
        let (code, _, err) = ctl(m.cp.addr, &["apply", "-f", f.to_str().expect("utf-8")]);
        assert_eq!(code, 0, "{err}");
        while in_force(&m) == before {
            assert!(t0.elapsed() < Duration::from_secs(10), "not applied");
            std::thread::sleep(Duration::from_micros(200));
        }
        if i > 0 {
            took.push(t0.elapsed()); // the first apply also creates the route
        }
    }
    took.sort();
    println!(
        "apply -> in force on every core, 20 runs: median {:?}, min {:?}, max {:?}",
        took[10], took[0], took[19]
    );
}
