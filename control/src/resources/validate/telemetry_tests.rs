//! Telemetry: Istio's documents read as written (with ringmesh's `file`
//! and `collector`), every bad field refused at its file:line:column and
//! path, Istio's unbuilt fields "not supported yet", and resolution
//! field by field, the workload's Telemetry over its namespace's.

use super::super::model::*;
use super::super::parse;

pub const TELEMETRY: &str = r#"apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
---
apiVersion: v1
kind: Service
metadata: { name: orders, namespace: shop }
---
apiVersion: v1
kind: Service
metadata: { name: cart, namespace: shop }
---
apiVersion: v1
kind: Service
metadata: { name: lone, namespace: quiet }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: shop }
spec:
  listeners: [ { name: web, address: "127.0.0.1:8080" } ]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh-default, namespace: shop }
spec:
  accessLogging:
    - file: { path: /var/log/ringmesh/access.log }
      filter: { expression: "response.code >= 400" }
  tracing:
    - collector: otel.observability:4317
      randomSamplingPercentage: 10
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: web, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  accessLogging:
    - filter: {}
      samplePercent: 50
  tracing:
    - randomSamplingPercentage: 100
---
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: { name: orders-quiet, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  accessLogging: [ { disabled: true } ]
  tracing: []
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: edge-stdout, namespace: shop }
spec:
  targetRefs: [ { kind: Gateway, group: gateway.networking.k8s.io, name: edge } ]
  accessLogging: [ { providers: [ { name: envoy } ] } ]
  tracing: [ { disabled: true } ]
"#;

fn files(text: &str) -> Vec<(String, String)> {
    vec![("tel.yaml".to_string(), text.to_string())]
}

fn errors(text: &str) -> String {
    match parse(&files(text)) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn service(s: &str) -> TelemetryTarget {
    TelemetryTarget::Service(s.into())
}

#[test]
fn an_istio_telemetry_reads_as_written() {
    let r = parse(&files(TELEMETRY)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.telemetry.keys().collect::<Vec<_>>(),
        [
            "edge-stdout.shop",
            "mesh-default.shop",
            "orders-quiet.shop",
            "web.shop"
        ]
    );
    assert_eq!(
        r.telemetry["mesh-default.shop"],
        Telemetry {
            name: "mesh-default.shop".into(),
            namespace: "shop".into(),
            targets: vec![],
            access_logging: Some(AccessLogging {
                disabled: None,
                sink: Some(LogSink {
                    path: "/var/log/ringmesh/access.log".into(),
                    format: "json".into(),
                }),
                min_status: Some(Some(400)),
                sample_percent: None,
            }),
            tracing: Some(TracingPolicy {
                disabled: None,
                collector: Some("otel.observability:4317".into()),
                sampling_percent: Some(10.0),
            }),
            source: Source {
                file: "tel.yaml".into(),
                line: 24,
            },
        }
    );
    let web = &r.telemetry["web.shop"];
    assert_eq!(web.targets, [service("web.shop")]);
    assert_eq!(
        web.access_logging,
        Some(AccessLogging {
            min_status: Some(None),
            sample_percent: Some(50.0),
            ..Default::default()
        }),
        "`filter: {{}}` is a filter that lets everything through"
    );
    let quiet = &r.telemetry["orders-quiet.shop"];
    assert_eq!(quiet.tracing, None, "an empty list is as if not written");
    assert_eq!(
        r.telemetry["edge-stdout.shop"].targets,
        [TelemetryTarget::Gateway("edge.shop".into())]
    );
}

#[test]
fn the_workload_telemetry_overrides_its_namespace_field_by_field() {
    let r = parse(&files(TELEMETRY)).unwrap_or_else(|e| panic!("{e}"));
    let file = LogSink {
        path: "/var/log/ringmesh/access.log".into(),
        format: "json".into(),
    };
    // cart has no Telemetry of its own: the namespace's.
    assert_eq!(
        r.access_log_for(&service("cart.shop")),
        Some(AccessLogSettings {
            sink: file.clone(),
            min_status: Some(400),
            sample_percent: None,
        })
    );
    assert_eq!(
        r.tracing_for(&service("cart.shop")),
        Some(TracingSettings {
            collector: "otel.observability:4317".into(),
            sampling_percent: Some(10.0),
        })
    );
    // web: the namespace's file, its own filter (none) and sampling.
    assert_eq!(
        r.access_log_for(&service("web.shop")),
        Some(AccessLogSettings {
            sink: file,
            min_status: None,
            sample_percent: Some(50.0),
        })
    );
    assert_eq!(
        r.tracing_for(&service("web.shop")),
        Some(TracingSettings {
            collector: "otel.observability:4317".into(),
            sampling_percent: Some(100.0),
        })
    );
    // orders: logging disabled; `tracing: []` inherits the namespace's.
    assert_eq!(r.access_log_for(&service("orders.shop")), None);
    assert!(r.tracing_for(&service("orders.shop")).is_some());
    // The Gateway: stdout in Envoy's text format, tracing disabled.
    let edge = TelemetryTarget::Gateway("edge.shop".into());
    assert_eq!(
        r.access_log_for(&edge),
        Some(AccessLogSettings {
            sink: LogSink {
                path: "-".into(),
                format: "text".into(),
            },
            min_status: Some(400),
            sample_percent: None,
        })
    );
    assert_eq!(r.tracing_for(&edge), None);
    // Another namespace is not reached.
    assert_eq!(r.access_log_for(&service("lone.quiet")), None);
    assert_eq!(r.tracing_for(&service("lone.quiet")), None);
}

/// A Telemetry `t` in `shop` (where Service `orders` and Gateway `edge`
/// are), with `spec` as given: spec starts on line 12.
fn telemetry(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{ name: orders, namespace: shop }}\n---\nkind: Gateway\nmetadata: {{ name: edge, namespace: shop }}\nspec: {{ listeners: [ {{ name: web, address: \"127.0.0.1:8080\" }} ] }}\n---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{ name: t, namespace: shop }}\nspec:\n{spec}")
}

#[test]
fn bad_telemetries_are_refused_at_their_fields() {
    let cases = [
        (
            "  accessLogging: [ { file: { path: logs/access.log } } ]\n",
            "tel.yaml:13:36: Telemetry/shop/t.spec.accessLogging[0].file.path: `logs/access.log` is not absolute",
        ),
        (
            "  accessLogging: [ { file: { format: json } } ]\n",
            "tel.yaml:13:28: Telemetry/shop/t.spec.accessLogging[0].file.path: missing: an absolute path",
        ),
        (
            "  accessLogging: [ { file: { path: /a.log, format: jsn } } ]\n",
            "tel.yaml:13:52: Telemetry/shop/t.spec.accessLogging[0].file.format: `jsn` is not a format (did you mean `json`?)",
        ),
        (
            "  accessLogging: [ { file: { path: /a.log }, filter: { minStatus: 600 } } ]\n",
            "tel.yaml:13:67: Telemetry/shop/t.spec.accessLogging[0].filter.minStatus: `600` is not a status code (100 to 599)",
        ),
        (
            "  accessLogging: [ { file: { path: /a.log }, filter: { expression: \"response.code == 500\" } } ]\n",
            "tel.yaml:13:68: Telemetry/shop/t.spec.accessLogging[0].filter.expression: `response.code == 500` is not supported yet: the proxy filters by a minimum status",
        ),
        (
            "  accessLogging: [ { file: { path: /a.log }, samplePercent: 101 } ]\n",
            "tel.yaml:13:61: Telemetry/shop/t.spec.accessLogging[0].samplePercent: `101` is not a percentage from 0 to 100",
        ),
        (
            "  accessLogging: [ { providers: [ { name: otel-file } ] } ]\n",
            "tel.yaml:13:43: Telemetry/shop/t.spec.accessLogging[0].providers[0].name: unknown provider `otel-file`: ringmesh has no MeshConfig",
        ),
        (
            "  accessLogging: [ { providers: [ { name: envoy } ], file: { path: /a.log } } ]\n",
            "tel.yaml:13:60: Telemetry/shop/t.spec.accessLogging[0].file: give `file` (ringmesh's) or `providers`, not both",
        ),
        (
            "  accessLogging:\n    - file: { path: /a.log }\n    - file: { path: /b.log }\n",
            "tel.yaml:15:7: Telemetry/shop/t.spec.accessLogging[1]: one entry only",
        ),
        (
            "  accessLogging: [ { file: { path: /a.log }, match: { mode: SERVER } } ]\n",
            "tel.yaml:13:53: Telemetry/shop/t.spec.accessLogging[0].match: not supported yet",
        ),
        (
            "  accessLogging: [ { samplePercent: 5 } ]\n",
            "tel.yaml:13:20: Telemetry/shop/t.spec.accessLogging[0]: no file: a namespace-wide Telemetry has nothing to inherit one from",
        ),
        (
            "  tracing: [ { collector: \"https://otel:4317\" } ]\n",
            "tel.yaml:13:27: Telemetry/shop/t.spec.tracing[0].collector: collectors over TLS are not supported yet",
        ),
        (
            "  tracing: [ { collector: otel:x } ]\n",
            "tel.yaml:13:27: Telemetry/shop/t.spec.tracing[0].collector: `otel:x` is not a collector address",
        ),
        (
            "  tracing: [ { collector: otel, randomSamplingPercentage: -1 } ]\n",
            "tel.yaml:13:59: Telemetry/shop/t.spec.tracing[0].randomSamplingPercentage: `-1` is not a percentage from 0 to 100",
        ),
        (
            "  tracing: [ { providers: [ { name: otel } ] } ]\n",
            "tel.yaml:13:37: Telemetry/shop/t.spec.tracing[0].providers[0].name: provider `otel` is not defined: ringmesh has no MeshConfig",
        ),
        (
            "  tracing: [ { collector: otel, customTags: { a: { literal: { value: b } } } } ]\n",
            "tel.yaml:13:45: Telemetry/shop/t.spec.tracing[0].customTags: not supported yet",
        ),
        (
            "  tracing: [ { randomSamplingPercentage: 5 } ]\n",
            "tel.yaml:13:14: Telemetry/shop/t.spec.tracing[0]: no collector: a namespace-wide Telemetry has nothing to inherit one from",
        ),
        (
            "  metrics: [ { providers: [ { name: prometheus } ] } ]\n",
            "tel.yaml:13:12: Telemetry/shop/t.spec.metrics: not supported yet: a proxy's metrics are always on",
        ),
        (
            "  selector: { matchLabels: { app: order } }\n",
            "tel.yaml:13:35: Telemetry/shop/t.spec.selector.matchLabels[\"app\"]: no Service named `order` in namespace `shop` (did you mean `orders.shop`?)",
        ),
        (
            "  selector: { matchLabels: { app: orders } }\n  targetRefs: [ { kind: Gateway, name: edge } ]\n",
            "tel.yaml:13:13: Telemetry/shop/t.spec.selector: give `selector` (a Service's sidecars) or `targetRefs` (Gateways), not both",
        ),
        (
            "  targetRefs: [ { kind: Service, name: orders } ]\n",
            "tel.yaml:13:25: Telemetry/shop/t.spec.targetRefs[0].kind: `Service`: select a Service's sidecars with `selector",
        ),
        (
            "  targetRefs: [ { kind: Gateway, name: edg } ]\n",
            "tel.yaml:13:40: Telemetry/shop/t.spec.targetRefs[0].name: no Gateway named `edg` in namespace `shop` (did you mean `edge.shop`?)",
        ),
        (
            "  targetRefs: [ { kind: Gateway, name: edge, namespace: other } ]\n",
            "tel.yaml:13:57: Telemetry/shop/t.spec.targetRefs[0].namespace: `other`: a Telemetry targets Gateways of its own namespace (`shop`)",
        ),
    ];
    let mut wrong = Vec::new();
    for (spec, want) in cases {
        let e = errors(&telemetry(spec));
        if !e.contains(want) {
            wrong.push(format!("{spec}want {want}\ngot  {e}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    // Unknown fields stay unknown; a wrong apiVersion is one.
    let e = errors(&telemetry(
        "  accessLogging: [ { file: { path: /a.log, rotate: daily } } ]\n",
    ));
    assert!(e.contains("unknown field `rotate`"), "{e}");
    let e = errors(&telemetry("  tracing: [ { collector: otel } ]\n").replace(
        "telemetry.istio.io/v1\nkind: Telemetry",
        "telemetry.istio.io/v2\nkind: Telemetry",
    ));
    assert!(
        e.contains(
            "tel.yaml:9:13: apiVersion: `telemetry.istio.io/v2` is not an apiVersion of Telemetry"
        ),
        "{e}"
    );
}

#[test]
fn a_destination_left_out_must_come_from_the_namespace() {
    // A Service's Telemetry with a filter but no file, and no
    // namespace-wide one to inherit the file from.
    let lone = telemetry(
        "  selector: { matchLabels: { app: orders } }\n  accessLogging: [ { filter: { minStatus: 500 } } ]\n  tracing: [ { randomSamplingPercentage: 1 } ]\n",
    );
    assert_eq!(
        errors(&lone),
        "tel.yaml:14:20: Telemetry/shop/t.spec.accessLogging[0]: no file: namespace `shop` has no namespace-wide Telemetry to inherit one from; write `file: { path: ... }` here or in it\n\
         tel.yaml:15:14: Telemetry/shop/t.spec.tracing[0]: no collector: namespace `shop` has no namespace-wide Telemetry to inherit one from; write `collector: host:port` here or in it"
    );
    // With one that gives them (written after it: order does not matter).
    let fine = format!(
        "{lone}---\nkind: Telemetry\nmetadata: {{ name: wide, namespace: shop }}\nspec:\n  accessLogging: [ {{ file: {{ path: /a.log }} }} ]\n  tracing: [ {{ collector: otel }} ]\n"
    );
    let r = parse(&files(&fine)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.access_log_for(&service("orders.shop"))
            .and_then(|a| a.min_status),
        Some(500)
    );
    // One that gives none: said so, naming it.
    let empty = format!(
        "{lone}---\nkind: Telemetry\nmetadata: {{ name: wide, namespace: shop }}\nspec:\n  accessLogging: [ {{ disabled: false }} ]\n  tracing: [ {{ disabled: true }} ]\n"
    );
    let e = errors(&empty);
    assert!(
        e.contains("tel.yaml:20:20: Telemetry/shop/wide.spec.accessLogging[0]: no file: a namespace-wide Telemetry has nothing to inherit one from"),
        "{e}"
    );
    // Its own errors are not repeated as the Service's.
    assert_eq!(e.lines().count(), 1, "{e}");
    // The namespace disables tracing: nothing to inherit, nothing needed.
    let off = format!(
        "{lone}---\nkind: Telemetry\nmetadata: {{ name: wide, namespace: shop }}\nspec:\n  accessLogging: [ {{ file: {{ path: /a.log }} }} ]\n  tracing: [ {{ disabled: true }} ]\n"
    );
    let r = parse(&files(&off)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.tracing_for(&service("orders.shop")), None);
}

#[test]
fn two_telemetries_for_one_workload_or_namespace_are_refused() {
    let twice = format!(
        "{}---\nkind: Telemetry\nmetadata: {{ name: q, namespace: shop }}\nspec: {{ selector: {{ matchLabels: {{ app: orders }} }} }}\n",
        telemetry("  selector: { matchLabels: { app: orders } }\n")
    );
    assert_eq!(
        errors(&twice),
        "tel.yaml:16:19: Telemetry/shop/q.metadata.name: Service `orders.shop` is already selected by a Telemetry, at tel.yaml:11: Istio would apply the older one; ringmesh has no creation times, so keep one"
    );
    let gateways = format!(
        "{}---\nkind: Telemetry\nmetadata: {{ name: q, namespace: shop }}\nspec: {{ targetRefs: [ {{ kind: Gateway, name: edge }} ] }}\n",
        telemetry("  targetRefs: [ { kind: Gateway, name: edge } ]\n")
    );
    assert!(errors(&gateways)
        .contains("Gateway `edge.shop` is already targeted by a Telemetry, at tel.yaml:11"));
    let wide = format!(
        "{}---\nkind: Telemetry\nmetadata: {{ name: q, namespace: shop }}\n",
        telemetry("  tracing: [ { collector: otel } ]\n")
    );
    let e = errors(&wide);
    assert!(
        e.contains("tel.yaml:16:19: Telemetry/shop/q.metadata.name: namespace `shop` already has a namespace-wide Telemetry, at tel.yaml:11"),
        "{e}"
    );
    // One of each, and one per namespace, is fine; so is `spec: {}`.
    let fine = format!(
        "{}---\nkind: Telemetry\nmetadata: {{ name: q, namespace: shop }}\n---\nkind: Telemetry\nmetadata: {{ name: q }}\nspec: {{}}\n---\nkind: Telemetry\nmetadata: {{ name: g, namespace: shop }}\nspec: {{ targetRefs: [ {{ kind: Gateway, name: edge }} ] }}\n",
        telemetry("  selector: { matchLabels: { app: orders } }\n")
    );
    parse(&files(&fine)).unwrap_or_else(|e| panic!("{e}"));
}
