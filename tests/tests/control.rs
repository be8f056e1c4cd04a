//! The control plane's output is valid input for the proxy: configs
//! compiled from mesh resources pass the proxy's own validation, the
//! path every pushed snapshot takes.

use ringmesh_control::compile::{compile, Workloads};
use ringmesh_control::resources;
use ringmesh_proto::v1 as pb;
use ringmesh_proxy::config;
use ringmesh_proxy::filter::{Fault, FaultAbort, FaultDelay, Filter};
use std::time::Duration;

const MESH: &str = r#"
kind: Service
metadata: { name: checkout }
---
kind: Service
metadata: { name: checkout-v1 }
spec: { endpoints: [127.0.0.1:9001] }
---
kind: Service
metadata: { name: checkout-v2 }
spec: { endpoints: [localhost:9002] }
---
kind: HTTPRoute
metadata: { name: checkout-split }
spec:
  parentRefs: [ { name: checkout } ]
  rules:
    - matches: [ { path: { value: /cart }, method: POST, headers: [ { name: x-canary, value: "1" } ] } ]
      backendRefs: [ { name: checkout-v2 } ]
      fault: { delay: { fixedDelay: 1s, percent: 10 }, abort: { httpStatus: 503, percent: 5 } }
    - backendRefs: [ { name: checkout-v1, weight: 90 }, { name: checkout-v2, weight: 10 } ]
      timeouts: { request: 1500ms }
      retry: { attempts: 2, codes: [503] }
      filters: [ { type: RequestMirror, requestMirror: { backendRef: { name: checkout-v2 }, percent: 10 } } ]
---
kind: Gateway
metadata: { name: edge }
spec: { listeners: [ { name: http, address: "127.0.0.1:8080" }, { name: alt, address: "127.0.0.1:8081" } ] }
---
kind: HTTPRoute
metadata: { name: shop }
spec:
  parentRefs: [ { kind: Gateway, name: edge } ]
  hostnames: [ shop.example.com, "*.shop.example.com", shop.example.org ]
  rules:
    - matches: [ { path: { value: /cart } }, { path: { value: /pay } } ]
      backendRefs: [ { name: checkout } ]
      fault: { delay: { fixedDelay: 1s, percent: 10 }, abort: { httpStatus: 503, percent: 5 } }
    - backendRefs: [ { name: checkout } ]
"#;

/// The fault the rules above carry, as the proxy compiles it.
fn rule_fault() -> Filter {
    Filter::Fault(Fault {
        delay: Some(FaultDelay {
            duration: Duration::from_secs(1),
            per_million: 100_000,
        }),
        abort: Some(FaultAbort {
            status: 503,
            per_million: 50_000,
        }),
    })
}

#[test]
fn compiled_configs_pass_the_proxys_validation() {
    let res =
        resources::parse(&[("mesh.yaml".into(), MESH.into())]).unwrap_or_else(|e| panic!("{e}"));
    let mut workloads = Workloads::new();
    workloads
        .entry("checkout".into())
        .or_default()
        .insert("127.0.0.1:7101".into());
    let nodes = [
        pb::Node {
            id: "a".into(),
            service: "checkout".into(),
            role: pb::Role::Sidecar as i32,
            workload_address: "127.0.0.1:7000".into(),
            inbound_address: "127.0.0.1:7001".into(),
            outbound_address: "127.0.0.1:7002".into(),
        },
        pb::Node {
            id: "gw".into(),
            service: "edge".into(),
            role: pb::Role::Gateway as i32,
            ..Default::default()
        },
    ];
    for node in nodes {
        let wire = compile(&res, &node, &workloads).unwrap_or_else(|e| panic!("{e}"));
        let cfg = config::validate(
            &config::proto::to_raw(&wire),
            "snapshot",
            ringmesh_proxy::tls::mesh::IdentitySource::Issued(None),
        )
        .unwrap_or_else(|e| panic!("{} rejected its config:\n{e}", node.id));
        assert!(!cfg.listeners.is_empty(), "{}", node.id);
        if node.id == "a" {
            let split = cfg.listeners[1]
                .routes
                .iter()
                .find(|r| r.name == "checkout-split.1")
                .expect("split route");
            let retry = split.retry.as_ref().expect("retry policy compiled");
            assert_eq!(
                (
                    retry.attempts,
                    retry.on_connect_failure,
                    retry.on_reset,
                    retry.statuses.clone()
                ),
                (2, true, true, vec![503])
            );
            let v2 = cfg
                .clusters
                .iter()
                .position(|c| c.name == "checkout-v2")
                .expect("mirror cluster");
            assert_eq!(
                split.mirror,
                Some(ringmesh_proxy::mirror::Policy {
                    cluster: v2,
                    per_million: 100_000,
                    max_body_bytes: ringmesh_proxy::mirror::Policy::DEFAULT_MAX_BODY,
                }),
                "HTTPRoute RequestMirror as the proxy's route mirror"
            );
        }
        let faulty = |l: &config::model::Listener| {
            l.routes
                .iter()
                .filter(|r| !r.filters.is_empty())
                .inspect(|r| assert_eq!(r.filters, [rule_fault()], "{}", r.name))
                .count()
        };
        if node.id == "a" {
            assert_eq!(faulty(&cfg.listeners[1]), 1, "one match of one rule");
        }
        if node.id == "gw" {
            for l in &cfg.listeners {
                // Fanned out: 3 hostnames x 2 matches, names still unique.
                assert_eq!(faulty(l), 6, "{}", l.name);
                let names: std::collections::HashSet<_> =
                    l.routes.iter().map(|r| &r.name).collect();
                assert_eq!(names.len(), l.routes.len(), "{}", l.name);
            }
        }
        assert_eq!(cfg.clusters.len(), wire.clusters.len());
    }
}

#[test]
fn ringmeshctl_validate_reports_like_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("mesh.yaml");
    std::fs::write(&good, MESH).expect("write");
    let out = std::process::Command::new(ringmesh_tests::ctl_bin())
        .args(["validate", "-f"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "valid: 3 services, 2 HTTP routes, 1 gateways in 1 files\n"
    );

    std::fs::write(
        &good,
        MESH.replace("name: checkout-v2 } ]\n", "name: checkout-v3 } ]\n"),
    )
    .expect("write");
    let out = std::process::Command::new(ringmesh_tests::ctl_bin())
        .args(["validate", "-f"])
        .arg(&good)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:19:30: HTTPRoute/checkout-split.spec.rules[0].backendRefs[0].name: no Service named `checkout-v3`", good.display());
    assert!(err.contains(&want), "{err}");
    // The server refuses to start on the same file, with the same message.
    let out = std::process::Command::new(ringmesh_tests::control_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token",
            "0123456789abcdef",
            "--resources",
        ])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&want));
}

/// A "control plane" that accepts connections and never says a word (a
/// hung process, or something else on the port) must not hold the
/// proxy's agent forever: the stream's opening times out, is logged, and
/// the agent retries.
#[test]
fn a_control_plane_that_never_answers_is_given_up_on_and_retried() {
    use std::io::Read;
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for mut s in silent.incoming().map_while(Result::ok) {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Read (so the client's writes never block) and answer nothing.
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    let config = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp");
    std::fs::write(config.path(), "runtime: { workers: 1 }\n").expect("write");
    let mut child = std::process::Command::new(ringmesh_tests::proxy_bin())
        .arg("--config")
        .arg(config.path())
        .args(["--control-plane", &format!("http://{addr}"), "--node", "n1"])
        .args(["--service", "web", "--token", "t", "--log", "info"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn proxy");
    let (log, lines) = ringmesh_tests::proxy::read_log(child.stderr.take().expect("stderr"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut timed_out = false;
    while let Ok(line) =
        lines.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        if line.contains("no answer to the discovery stream") {
            timed_out = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        timed_out,
        "the agent waited on a silent control plane:\n{}",
        log.lock().map(|l| l.join("\n")).unwrap_or_default()
    );
    assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}
