//! Telemetry compiled: a sidecar's `inbound` and `outbound` listeners
//! carry its Service's access log (and say their direction), its proxy
//! the tracing with the Service's name; a gateway's listeners carry its
//! Gateway's; no Telemetry, neither.

use super::fixtures::*;
use super::*;

fn logs(c: &pb::ProxyConfig) -> Vec<(&str, i32, Option<&pb::AccessLog>)> {
    c.listeners
        .iter()
        .map(|l| (l.name.as_str(), l.direction, l.access_log.as_ref()))
        .collect()
}

#[test]
fn a_sidecar_logs_on_both_listeners_and_traces_as_its_service() {
    let res = resources(crate::resources::validate_telemetry_mesh());
    let c = compile(&res, &sidecar_of("web.shop"), &Workloads::new()).unwrap();
    // The namespace's file, web's own filter (none) and sampling.
    let want = pb::AccessLog {
        path: "/var/log/ringmesh/access.log".into(),
        format: "json".into(),
        min_status: None,
        sample_percent: Some(50.0),
    };
    assert_eq!(
        logs(&c),
        [
            ("inbound", pb::Direction::Inbound as i32, Some(&want)),
            ("outbound", pb::Direction::Outbound as i32, Some(&want)),
        ]
    );
    assert_eq!(
        c.tracing,
        Some(pb::Tracing {
            collector: "otel.observability:4317".into(),
            sampling_percent: Some(100.0),
            service_name: "web.shop".into(),
        })
    );
    // cart: the namespace's Telemetry as it is.
    let c = compile(&res, &sidecar_of("cart.shop"), &Workloads::new()).unwrap();
    assert_eq!(
        c.listeners[0]
            .access_log
            .as_ref()
            .and_then(|a| a.min_status),
        Some(400)
    );
    assert_eq!(
        c.tracing
            .as_ref()
            .map(|t| (t.service_name.as_str(), t.sampling_percent)),
        Some(("cart.shop", Some(10.0)))
    );
    // orders: its logging disabled, its tracing inherited.
    let c = compile(&res, &sidecar_of("orders.shop"), &Workloads::new()).unwrap();
    assert!(c.listeners.iter().all(|l| l.access_log.is_none()));
    assert!(c.tracing.is_some());
    // Another namespace has no Telemetry: neither.
    let c = compile(&res, &sidecar_of("lone.quiet"), &Workloads::new()).unwrap();
    assert!(c.listeners.iter().all(|l| l.access_log.is_none()));
    assert_eq!(c.tracing, None);
    assert_eq!(
        logs(&c)
            .iter()
            .map(|(n, d, _)| (*n, *d))
            .collect::<Vec<_>>(),
        [
            ("inbound", pb::Direction::Inbound as i32),
            ("outbound", pb::Direction::Outbound as i32)
        ],
        "directions are set with or without telemetry"
    );
}

#[test]
fn a_gateway_logs_on_its_listeners() {
    let res = resources(crate::resources::validate_telemetry_mesh());
    let c = compile(&res, &gateway_of("edge.shop"), &Workloads::new()).unwrap();
    let stdout = pb::AccessLog {
        path: "-".into(),
        format: "text".into(),
        min_status: Some(400),
        sample_percent: None,
    };
    assert_eq!(
        logs(&c),
        [("web", pb::Direction::Unspecified as i32, Some(&stdout))]
    );
    assert_eq!(c.tracing, None, "its Telemetry disables tracing");
    // A Gateway without a Telemetry of its own takes its namespace's,
    // and traces as the Gateway.
    let text = format!(
        "{}---\nkind: Gateway\nmetadata: {{ name: side, namespace: shop }}\nspec: {{ listeners: [ {{ name: a, address: \"127.0.0.1:8081\" }}, {{ name: b, address: \"127.0.0.1:8082\", protocol: TCP }} ] }}\n---\napiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {{ name: t, namespace: shop }}\nspec: {{ parentRefs: [ {{ name: side, sectionName: b }} ], rules: [ {{ backendRefs: [ {{ name: cart }} ] }} ] }}\n",
        crate::resources::validate_telemetry_mesh()
    );
    let res = resources(&text);
    let c = compile(&res, &gateway_of("side.shop"), &Workloads::new()).unwrap();
    assert_eq!(c.listeners.len(), 2);
    assert!(c.listeners.iter().all(|l| l
        .access_log
        .as_ref()
        .is_some_and(|a| a.path == "/var/log/ringmesh/access.log")));
    assert_eq!(
        c.tracing.map(|t| t.service_name),
        Some("side.shop".to_string())
    );
}
