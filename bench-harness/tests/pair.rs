//! `compare` with `topology = "pair"`, end to end: every proxy target
//! runs as two real processes with mTLS between them, real sockets, a
//! short run, and the report is checked for what the mesh benchmark
//! publishes (added latency over direct, CPU and memory of both).
//!
//! nginx and HAProxy join when installed. ringmesh joins when a proxy
//! binary is at hand: `RINGMESH_PROXY_BIN`, else a `ringmesh-proxy` built
//! next to this test's `ringmesh-bench` (this crate cannot build it).
//! What could not run is printed as skipped; with no proxy at all the
//! test says so and checks only the scenario.

use std::process::Command;

mod common;
use common::{proxy_bin, BENCH};

fn which(name: &str) -> bool {
    ringmesh_bench::compare::targets::which(name).is_some()
}

#[test]
fn a_pair_of_each_proxy_carries_the_load_over_mtls() {
    let all = ringmesh_bench::runtime::available_cpus();
    let (first, last) = (all[0], all[all.len() - 1]);
    let proxy = proxy_bin();
    let mut targets = vec!["direct"];
    for (name, here) in [
        ("ringmesh", proxy.is_some()),
        ("nginx", which("nginx")),
        ("haproxy", which("haproxy")),
    ] {
        match here {
            true => targets.push(name),
            false => eprintln!("SKIPPED {name}: not installed / not built here"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("pair.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"
topology = "pair"
targets = {targets:?}
repetitions = 1
warmup = "200ms"
duration = "700ms"
cpus = {{ proxy = [{last}], upstream = [{first}], load = [{first}] }}

[[step]]
name = "rate"
kind = "rate"
connections = 4
rate = 300

[[step]]
name = "fresh"
kind = "rate"
connections = 4
rate = 100
new_connection = true
"#
        ),
    )
    .unwrap();
    let check = Command::new(BENCH)
        .args(["compare", "--check"])
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    if targets.len() == 1 {
        eprintln!("SKIPPED the run: no proxy here to pair (install nginx or haproxy, or set RINGMESH_PROXY_BIN)");
        return;
    }

    let out_dir = dir.path().join("out");
    let mut cmd = Command::new(BENCH);
    cmd.arg("compare").arg(&scenario).arg("--out").arg(&out_dir);
    if let Some(p) = &proxy {
        cmd.arg("--ringmesh-bin").arg(p);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "compare failed: {stderr}");

    let date = ringmesh_bench::compare::today();
    let json = std::fs::read_to_string(out_dir.join(format!("pair-{date}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["topology"], "pair");
    for t in v["targets"].as_array().unwrap() {
        // A pair that would not start (a config its proxy refuses, a
        // failed mTLS handshake) is "failed", with the logs of both.
        assert_eq!(t["status"], "ok", "{t}\n{stderr}");
        if t["name"] != "direct" {
            assert!(!t["hop"].as_str().unwrap().is_empty(), "{t}");
        }
    }
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), targets.len() * 2, "{json}");
    for r in runs {
        let m = &r["metrics"];
        assert_eq!(m["errors"], 0, "{r}");
        assert!(m["rps"].as_f64().unwrap() > 0.0, "{r}");
        if r["target"] == "direct" {
            continue;
        }
        // Both processes accounted: their CPU (in 10 ms ticks, so maybe
        // none in so short a window) and two proxies' memory.
        assert!(m["proxy_cpu_us_per_req"].as_f64().unwrap() >= 0.0, "{r}");
        assert!(m["proxy_peak_rss_kib"].as_u64().unwrap() > 1024, "{r}");
        // A holds connections to B at the end of the window: ringmesh
        // one per core (its mesh clusters multiplex HTTP/2), the peers
        // a pool of HTTP/1.1 ones.
        let hop = m["hop_connections"].as_u64().unwrap();
        match r["target"].as_str() {
            Some("ringmesh") => assert_eq!(hop, 1, "one core, one connection: {r}"),
            _ => assert!(hop >= 1, "{r}"),
        }
        assert!(m["added_p50_us"].is_number(), "{r}");
        assert!(m["added_p99_us"].is_number(), "{r}");
    }
    let md = std::fs::read_to_string(out_dir.join(format!("pair-{date}.md"))).unwrap();
    assert!(md.contains("**Mesh hop:**"), "{md}");
    assert!(md.contains("| added p50 ms @ 300 req/s |"), "{md}");
}
