//! `compare --targets direct,ringmesh,ringmesh-telemetry`, end to end and
//! short: the telemetry target really logs and exports a span per request
//! to the harness's sink, the run's JSON says how many beside the requests
//! served, and the report has the cost table.
//!
//! It needs a ringmesh-proxy: `RINGMESH_PROXY_BIN`, else one built next to
//! this test's `ringmesh-bench` (this crate cannot build it). Without one
//! the test says so and checks only the scenario.

use std::path::Path;
use std::process::Command;

mod common;
use common::{proxy_bin, BENCH};

/// Run `compare` on `scenario` (written to `dir`) with `--targets`; the
/// result's JSON and Markdown.
fn compare(dir: &Path, name: &str, scenario: &str, proxy: &Path) -> (serde_json::Value, String) {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, scenario).expect("write the scenario");
    let out_dir = dir.join("out");
    let out = Command::new(BENCH)
        .arg("compare")
        .arg(&file)
        .args(["--targets", "direct,ringmesh,ringmesh-telemetry"])
        .arg("--out")
        .arg(&out_dir)
        .arg("--ringmesh-bin")
        .arg(proxy)
        .output()
        .expect("run compare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "compare failed: {stderr}");
    let date = ringmesh_bench::compare::today();
    let json =
        std::fs::read_to_string(out_dir.join(format!("{name}-{date}.json"))).expect("the JSON");
    let md =
        std::fs::read_to_string(out_dir.join(format!("{name}-{date}.md"))).expect("the Markdown");
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    for t in v["targets"].as_array().expect("targets") {
        assert_eq!(t["status"], "ok", "{t}\n{stderr}");
    }
    (v, md)
}

fn scenario(cpus: &str, mode: &str) -> String {
    format!(
        r#"
# the scenario does not list ringmesh-telemetry: --targets adds it
targets = ["direct", "ringmesh"]
mode = "{mode}"
repetitions = 1
warmup = "200ms"
duration = "1s"
cpus = {cpus}

[[step]]
name = "rate"
kind = "rate"
connections = 4
rate = 500
"#
    )
}

fn cpus() -> String {
    let all = ringmesh_bench::runtime::available_cpus();
    let (first, last) = (all[0], all[all.len() - 1]);
    format!("{{ proxy = [{last}], upstream = [{first}], load = [{first}] }}")
}

#[test]
fn telemetry_at_100_percent_is_counted_and_costed() {
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(&cpus(), "http");
    let file = dir.path().join("check.toml");
    std::fs::write(&file, &text).unwrap();
    let check = Command::new(BENCH)
        .args(["compare", "--check", "--targets", "ringmesh-telemetry"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let Some(proxy) = proxy_bin() else {
        eprintln!("SKIPPED the run: no ringmesh-proxy here (build it or set RINGMESH_PROXY_BIN)");
        return;
    };

    let (v, md) = compare(dir.path(), "telemetry", &text, &proxy);
    let runs = v["runs"].as_array().unwrap();
    let targets: Vec<&str> = runs.iter().filter_map(|r| r["target"].as_str()).collect();
    assert_eq!(targets, ["direct", "ringmesh", "ringmesh-telemetry"], "{v}");
    for r in runs {
        assert_eq!(r["metrics"]["errors"], 0, "{r}");
    }
    let counts = v["telemetry"].as_array().unwrap();
    assert_eq!(counts.len(), 1, "one per telemetry run: {v}");
    let c = &counts[0];
    assert_eq!(c["target"], "ringmesh-telemetry");
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k}: {c}"));
    let served = n("proxy_requests");
    assert!(n("load_requests") >= 400, "{c}");
    assert!(served >= n("load_requests"), "{c}");
    // 100%: a span and a line for every request it served, none dropped.
    assert!(n("spans_received") > 0 && n("access_log_lines") > 0, "{c}");
    assert_eq!(n("spans_received"), served, "{c}");
    assert_eq!(n("access_log_lines"), served, "{c}");
    assert_eq!(n("spans_exported"), served, "{c}");
    assert_eq!(n("spans_dropped"), 0, "{c}");
    assert_eq!(n("access_log_dropped"), 0, "{c}");
    assert!(md.contains("## Telemetry cost"), "{md}");
    assert!(md.contains("| rate | "), "{md}");
}

#[test]
fn telemetry_over_tcp_is_an_access_log_without_spans() {
    let Some(proxy) = proxy_bin() else {
        eprintln!("SKIPPED: no ringmesh-proxy here (build it or set RINGMESH_PROXY_BIN)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (v, md) = compare(
        dir.path(),
        "telemetry-tcp",
        &scenario(&cpus(), "tcp"),
        &proxy,
    );
    let c = &v["telemetry"][0];
    assert!(c["spans_received"].is_null(), "no tracing over TCP: {c}");
    let lines = c["access_log_lines"].as_u64().unwrap();
    // A line per relayed connection (the load's, the readiness probes').
    assert!(lines > 0, "{c}");
    assert_eq!(Some(lines), c["proxy_connections"].as_u64(), "{c}");
    assert!(
        md.contains("an access log per relayed connection (TCP: no spans)"),
        "{md}"
    );
}
