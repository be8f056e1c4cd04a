//! Telemetry end to end, all real processes: ringmesh-control compiles an
//! Istio-shaped Telemetry onto the sidecars of a Service; a call from
//! `web` to `orders` through both sidecars (mTLS between them) lands as a
//! JSON line in `orders`' access log and as one span from each sidecar,
//! named after its Service, at an OTLP receiver. `ringmeshctl apply` of
//! a changed Telemetry (`minStatus: 500`) reconfigures the running proxy:
//! the next 200 is not logged, a 503 is. Also: what the control plane
//! accepts, the proxy accepts.

use std::path::Path;
use std::time::Duration;

use ringmesh_control::compile::{compile, Workloads};
use ringmesh_control::resources;
use ringmesh_proto::v1 as pb;
use ringmesh_proxy::config;
use ringmesh_tests::control::{ctl, sidecar, ControlPlane};
use ringmesh_tests::otlp::Collector;
use ringmesh_tests::{closed_port, eventually, Client, Upstream};
use serde_json::Value;

/// Two Services in `shop`; every workload of `shop` traces to
/// `collector`, every request.
fn mesh(collector: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{ name: web, namespace: shop }}
---
apiVersion: v1
kind: Service
metadata: {{ name: orders, namespace: shop }}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{ name: mesh-default, namespace: shop }}
spec:
  tracing: [ {{ collector: '{collector}', randomSamplingPercentage: 100 }} ]
"
    )
}

/// orders' sidecars log to `log`, with the filter given.
fn orders_telemetry(log: &Path, filter: &str) -> String {
    format!(
        "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{ name: orders-logs, namespace: shop }}
spec:
  selector: {{ matchLabels: {{ app: orders }} }}
  accessLogging:
    - file: {{ path: {}, format: json }}
{filter}",
        log.display()
    )
}

fn lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn logged(log: &Path, path: &str) -> Option<Value> {
    lines(log).into_iter().find(|v| v["path"] == path)
}

fn status(outbound: std::net::SocketAddr, path: &str) -> u16 {
    Client::connect(outbound).get(path, "orders.shop").status
}

#[test]
fn a_telemetry_logs_and_traces_a_services_sidecars_and_changes_without_restart() {
    let collector = Collector::start();
    let resources_dir = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("orders.log");
    std::fs::write(
        resources_dir.path().join("mesh.yaml"),
        mesh(&collector.addr.to_string()),
    )
    .expect("write");
    let cp = ControlPlane::start(resources_dir.path(), "127.0.0.1:0".parse().expect("addr"));
    cp.apply(work.path(), "telemetry.yaml", &orders_telemetry(&log, ""));
    let app = Upstream::start("orders-app");
    let (orders, _, _) = sidecar(cp.addr, "orders-1", "orders.shop", app.addr);
    let (web, _, web_outbound) = sidecar(cp.addr, "web-1", "web.shop", closed_port());

    // A call crosses the mesh and is logged by orders' inbound listener.
    eventually("a logged call", Duration::from_secs(20), || {
        status(web_outbound, "/first") == 200 && {
            std::thread::sleep(Duration::from_millis(1200));
            logged(&log, "/first").is_some()
        }
    });
    let first = logged(&log, "/first").expect("logged");
    assert_eq!(first["listener"], "inbound", "{first}");
    assert_eq!(first["response_code"], 200, "{first}");
    assert_eq!(first["method"], "GET", "{first}");
    assert_eq!(first["authority"], "orders.shop", "{first}");
    assert_eq!(
        first["downstream_peer_uri_san"], "spiffe://cluster.local/ns/shop/sa/web",
        "web called over mTLS: {first}"
    );
    assert!(first["trace_id"].is_string(), "traced: {first}");

    // One trace: web's client span and orders' server span, each named
    // after its sidecar's Service.
    let trace = first["trace_id"].as_str().unwrap_or_default().to_string();
    eventually("both sidecars' spans", Duration::from_secs(10), || {
        let spans = collector.spans();
        ["web.shop", "orders.shop"].iter().all(|s| {
            spans.iter().any(|r| {
                r.service == *s
                    && r.span
                        .trace_id
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                        == trace
            })
        })
    });
    let spans = collector.spans();
    let of = |service: &str| {
        spans
            .iter()
            .find(|r| r.service == service && r.attr("url.path").as_deref() == Some("/first"))
            .unwrap_or_else(|| panic!("no span of {service}: {spans:#?}"))
    };
    assert_eq!(
        of("web.shop").attr("ringmesh.listener").as_deref(),
        Some("outbound")
    );
    assert_eq!(
        of("orders.shop").attr("ringmesh.listener").as_deref(),
        Some("inbound")
    );

    // Failures only, from now on: applied to the running proxy.
    let (before, lines_before) = (orders.applied(), lines(&log).len());
    cp.apply(
        work.path(),
        "telemetry.yaml",
        &orders_telemetry(&log, "      filter: { minStatus: 500 }\n"),
    );
    eventually(
        "orders takes the new config",
        Duration::from_secs(10),
        || orders.applied() > before,
    );
    assert_eq!(status(web_outbound, "/after-ok"), 200);
    assert_eq!(status(web_outbound, "/status/503"), 503);
    eventually("the 503 logged", Duration::from_secs(10), || {
        logged(&log, "/status/503").is_some()
    });
    // Both lines would have been handed over together (one sweep).
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        logged(&log, "/after-ok").is_none(),
        "a 200 is no longer logged: {:#?}",
        lines(&log)
    );
    assert_eq!(
        logged(&log, "/status/503").map(|v| v["response_code"].clone()),
        Some(Value::from(503))
    );
    assert!(lines(&log).len() > lines_before);
    // The same process all along, and still running (a proxy that
    // restarted would be another process with fresh counters).
    assert!(
        orders
            .metric("ringmesh_access_log_lines_total")
            .is_some_and(|n| n >= 2),
        "orders' sidecar counted every line it wrote"
    );

    // ringmeshctl lists it.
    let (code, out, err) = ctl(cp.addr, &["get", "telemetries"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("orders-logs.shop") && out.contains("status >= 500"),
        "{out}"
    );
    assert!(out.contains("every workload in shop"), "{out}");
    // And deletes it: orders stops logging.
    let before = orders.applied();
    let (code, out, err) = ctl(cp.addr, &["delete", "telemetry", "orders-logs.shop"]);
    assert_eq!(code, 0, "{out}{err}");
    eventually(
        "orders takes the config without a log",
        Duration::from_secs(10),
        || orders.applied() > before,
    );
    assert_eq!(status(web_outbound, "/status/500"), 500);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(logged(&log, "/status/500").is_none(), "{:#?}", lines(&log));
    drop(web);
}

#[test]
fn what_the_control_plane_accepts_the_proxy_accepts() {
    let logs = tempfile::tempdir().expect("tempdir");
    let path = logs.path().join("a.log").display().to_string();
    let text = format!(
        r#"apiVersion: v1
kind: Service
metadata: {{ name: orders, namespace: shop }}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{ name: wide, namespace: shop }}
spec:
  accessLogging:
    - file: {{ path: "{path}", format: "%START_TIME% %REQ(:METHOD)% %RESPONSE_CODE% %DOWNSTREAM_PEER_URI_SAN%" }}
      filter: {{ expression: "response.code >= 400" }}
      samplePercent: 12.5
  tracing: [ {{ collector: "http://[::1]", randomSamplingPercentage: 0.5 }} ]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{ name: orders, namespace: shop }}
spec:
  selector: {{ matchLabels: {{ app: orders }} }}
  accessLogging: [ {{ providers: [ {{ name: envoy }} ], filter: {{ minStatus: 599 }} }} ]
  tracing: [ {{ collector: otel-collector.observability:4317 }} ]
"#
    );
    let node = |service: &str| pb::Node {
        id: "n-1".into(),
        service: service.into(),
        role: pb::Role::Sidecar as i32,
        workload_address: "127.0.0.1:7000".into(),
        inbound_address: "127.0.0.1:7001".into(),
        outbound_address: "127.0.0.1:7002".into(),
    };
    for (label, text) in [
        ("selecting", text.clone()),
        // Without the Service's own: the namespace's template and file.
        (
            "namespace-wide",
            text.split(
                "---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: { name: orders",
            )
            .next()
            .unwrap_or_default()
            .to_string(),
        ),
    ] {
        let res = resources::parse(&[("t.yaml".into(), text)]).unwrap_or_else(|e| panic!("{e}"));
        let wire = compile(&res, &node("orders.shop"), &Workloads::new())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(wire.tracing.is_some() && wire.listeners.iter().all(|l| l.access_log.is_some()));
        config::validate(
            &config::proto::to_raw(&wire),
            "snapshot",
            ringmesh_proxy::tls::mesh::IdentitySource::Issued(None),
        )
        .unwrap_or_else(|e| {
            panic!("{label}: the proxy rejected a Telemetry the control plane accepted:\n{e}")
        });
    }
}
