//! Gateway API documents compiled: namespaced names, a cluster per
//! Service port with the protocol it speaks, gRPC matches and retries, and
//! a Gateway TCP listener relaying to its TCPRoute's backend.

use super::fixtures::*;
use super::*;

fn api() -> Resources {
    resources(crate::resources::validate_api_mesh())
}

fn web_sidecar() -> pb::Node {
    pb::Node {
        id: "web-1".into(),
        service: "web.shop".into(),
        role: pb::Role::Sidecar as i32,
        workload_address: "127.0.0.1:7000".into(),
        inbound_address: "127.0.0.1:7001".into(),
        outbound_address: "127.0.0.1:7002".into(),
    }
}

fn route<'a>(routes: &'a [pb::Route], name: &str) -> &'a pb::Route {
    routes
        .iter()
        .find(|r| r.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no route {name} in {routes:?}"))
}

#[test]
fn a_service_with_ports_gets_a_cluster_per_port_speaking_its_protocol() {
    let mut w = Workloads::new();
    w.entry("web.shop".into())
        .or_default()
        .insert("127.0.0.1:7101".into());
    w.entry("db.shop".into())
        .or_default()
        .insert("127.0.0.1:7201".into());
    let c = compile(&api(), &web_sidecar(), &w).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = c.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "db.shop_5432",
            "web.shop_80",
            "web.shop_9090",
            "web.shop_9443",
            INBOUND_CLUSTER
        ]
    );
    let db = cluster(&c, "db.shop_5432");
    assert_eq!(
        db.endpoints,
        ["10.0.0.5:5432"],
        "a bare host on the target port; no sidecar on a TCP port"
    );
    assert_eq!(db.protocol(), pb::UpstreamProtocol::Unspecified);
    let http = cluster(&c, "web.shop_80");
    assert_eq!(http.endpoints, ["127.0.0.1:7101", "127.0.0.1:8080"]);
    assert_eq!(
        http.protocol(),
        pb::UpstreamProtocol::Http1,
        "appProtocol: http"
    );
    let h2c = cluster(&c, "web.shop_9090");
    assert_eq!(h2c.endpoints, ["127.0.0.1:7101", "127.0.0.1:9090"]);
    assert_eq!(
        h2c.protocol(),
        pb::UpstreamProtocol::Http2,
        "kubernetes.io/h2c"
    );
    let admin = cluster(&c, "web.shop_9443");
    assert_eq!(admin.endpoints, ["127.0.0.1:7101", "127.0.0.1:9443"]);
    assert_eq!(admin.protocol(), pb::UpstreamProtocol::Unspecified);
    // The workload speaks what its Service's first HTTP port says.
    assert_eq!(
        cluster(&c, INBOUND_CLUSTER).protocol(),
        pb::UpstreamProtocol::Http1
    );
}

#[test]
fn mesh_routes_by_namespaced_host_and_grpc_method() {
    let c = compile(&api(), &web_sidecar(), &Workloads::new()).unwrap_or_else(|e| panic!("{e}"));
    let out = &c.listeners[1].routes;
    let names: Vec<&str> = out
        .iter()
        .map(|r| r.name.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        [
            "web-canary.shop.0.0",
            "greeter.shop.0.0",
            "greeter.shop.0.1",
            "web.shop.default"
        ],
        "db has only a TCP port: no HTTP catch-all for it"
    );
    let canary = route(out, "web-canary.shop.0.0");
    let m = canary.r#match.clone().unwrap_or_default();
    assert_eq!(m.host.as_deref(), Some("web.shop"));
    assert_eq!(
        m.path.and_then(|p| p.kind),
        Some(pb::path_match::Kind::Prefix("/cart".into()))
    );
    assert_eq!(
        m.headers,
        [pb::HeaderMatch {
            name: "x-canary".into(),
            kind: Some(pb::header_match::Kind::Exact("1".into()))
        }]
    );
    assert_eq!(
        canary.action,
        Some(pb::route::Action::Cluster("web.shop_9443".into()))
    );
    let greeter = route(out, "greeter.shop.0.0");
    let m = greeter.r#match.clone().unwrap_or_default();
    assert_eq!(m.host.as_deref(), Some("web.shop"));
    assert_eq!(m.path, None, "the proxy makes the path from the method");
    assert_eq!(
        m.grpc,
        Some(pb::GrpcMatch {
            service: "helloworld.Greeter".into(),
            method: "SayHello".into()
        })
    );
    assert_eq!(m.headers.len(), 1);
    assert_eq!(
        greeter.action,
        Some(pb::route::Action::Cluster("web.shop_9090".into()))
    );
    assert_eq!(
        greeter.retries,
        Some(pb::RetryPolicy {
            attempts: 2,
            on: vec![
                "connect-failure".into(),
                "reset".into(),
                "unavailable".into(),
                "deadline-exceeded".into(),
                "resource-exhausted".into()
            ],
            ..Default::default()
        })
    );
    assert_eq!(
        greeter.timeout,
        Some(prost_types::Duration {
            seconds: 3,
            nanos: 0
        })
    );
    let any_method = route(out, "greeter.shop.0.1").r#match.clone();
    assert_eq!(
        any_method.and_then(|m| m.grpc),
        Some(pb::GrpcMatch {
            service: "helloworld.Admin".into(),
            method: String::new()
        })
    );
    assert_eq!(
        route(out, "web.shop.default").action,
        Some(pb::route::Action::Cluster("web.shop_80".into())),
        "the catch-all goes to the first HTTP port"
    );
}

#[test]
fn a_gateway_tcp_listener_relays_to_its_tcp_route() {
    let node = pb::Node {
        id: "edge-1".into(),
        service: "edge.infra".into(),
        role: pb::Role::Gateway as i32,
        ..Default::default()
    };
    let c = compile(&api(), &node, &Workloads::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listeners.len(), 2);
    let http = &c.listeners[0];
    assert_eq!(
        (http.name.as_str(), http.address.as_str()),
        ("http", "0.0.0.0:8080")
    );
    assert_eq!(http.tcp, None);
    let names: Vec<&str> = http
        .routes
        .iter()
        .map(|r| r.name.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["web.shop.0.0"],
        "a route from another namespace, allowed by `from: All`"
    );
    let r = &http.routes[0];
    assert_eq!(
        r.r#match.as_ref().and_then(|m| m.host.as_deref()),
        Some("shop.example.com")
    );
    assert_eq!(
        r.action,
        Some(pb::route::Action::Cluster("web.shop_80".into()))
    );
    let pg = &c.listeners[1];
    assert_eq!(
        (pg.name.as_str(), pg.address.as_str()),
        ("pg", "127.0.0.1:15432")
    );
    assert!(pg.routes.is_empty());
    assert_eq!(
        pg.tcp,
        Some(pb::TcpProxy {
            cluster: "db.shop_5432".into(),
            idle_timeout: None
        })
    );
}

#[test]
fn a_grpc_backend_without_app_protocol_speaks_http2() {
    // No ports, and a port without appProtocol: HTTP/2 because a
    // GRPCRoute sends to them; the other port keeps the default.
    let text = "kind: Service\nmetadata: { name: plain }\nspec: { endpoints: [\"127.0.0.1:1\"] }\n---\nkind: Service\nmetadata: { name: ported }\nspec: { endpoints: [127.0.0.1], ports: [ { name: g, port: 2 }, { name: h, port: 3 } ] }\n---\nkind: GRPCRoute\nmetadata: { name: r }\nspec:\n  parentRefs: [ { name: plain } ]\n  rules: [ { backendRefs: [ { name: plain, weight: 1 }, { name: ported, port: 2, weight: 3 } ] } ]\n";
    let node = pb::Node {
        id: "a".into(),
        service: "plain".into(),
        role: pb::Role::Sidecar as i32,
        outbound_address: "127.0.0.1:7002".into(),
        ..Default::default()
    };
    let c = compile(&resources(text), &node, &Workloads::new()).unwrap_or_else(|e| panic!("{e}"));
    let protocols: Vec<(&str, pb::UpstreamProtocol)> = c
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.protocol()))
        .collect();
    assert_eq!(
        protocols,
        [
            ("plain", pb::UpstreamProtocol::Http2),
            ("ported_2", pb::UpstreamProtocol::Http2),
            ("ported_3", pb::UpstreamProtocol::Unspecified),
        ]
    );
    let r = route(&c.listeners[0].routes, "r.0.0");
    assert_eq!(
        r.r#match.clone().and_then(|m| m.grpc),
        Some(pb::GrpcMatch::default()),
        "a rule without matches takes every gRPC request, and only those"
    );
    let Some(pb::route::Action::WeightedClusters(w)) = &r.action else {
        panic!("{r:?}")
    };
    let split: Vec<(&str, u64)> = w
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c.weight))
        .collect();
    assert_eq!(split, [("plain", 1), ("ported_2", 3)]);
    assert_eq!(
        r.retries, None,
        "no retry written, none compiled (the default applies when `retry` is)"
    );
}

#[test]
fn a_request_mirror_compiles_onto_the_proxy_route() {
    let text = "kind: Service\nmetadata: { name: web }\nspec: { endpoints: ['127.0.0.1:81'] }\n---\nkind: Service\nmetadata: { name: next }\nspec: { endpoints: ['127.0.0.1:82'] }\n---\nkind: HTTPRoute\nmetadata: { name: r }\nspec:\n  parentRefs: [ { name: web } ]\n  rules:\n    - backendRefs: [ { name: web } ]\n      filters: [ { type: RequestMirror, requestMirror: { backendRef: { name: next }, fraction: { numerator: 1, denominator: 4 } } } ]\n";
    let c = compile(&resources(text), &sidecar_of("web"), &Workloads::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let routes: Vec<&pb::Route> = c
        .listeners
        .iter()
        .flat_map(|l| l.routes.iter())
        .filter(|r| r.mirror.is_some())
        .collect();
    assert!(!routes.is_empty(), "{c:?}");
    for r in routes {
        assert_eq!(
            r.mirror,
            Some(pb::Mirror {
                cluster: "next".into(),
                percent: Some(25.0),
                max_body_bytes: None,
            })
        );
    }
    assert!(c.clusters.iter().any(|c| c.name == "next"));
}
