//! Automatic mTLS compiled: which clusters are meshed (only registered
//! sidecars as endpoints) and with which SPIFFE ID, what happens to their
//! `tls` and `protocol`, `ProxyConfig.mesh` with the trust bundle, and the
//! inbound listener's `mesh`.

use super::fixtures::*;
use super::*;

fn registered(pairs: &[(&str, &str)]) -> Workloads {
    let mut w = Workloads::new();
    for (service, inbound) in pairs {
        w.entry(service.to_string())
            .or_default()
            .insert(inbound.to_string());
    }
    w
}

fn identity(c: &pb::Cluster) -> Option<&str> {
    c.mesh.as_ref().map(|m| m.identity.as_str())
}

const SERVICES: &str = r#"kind: Service
metadata: { name: web }
---
kind: Service
metadata: { name: api }
spec: { endpoints: [127.0.0.1:9001] }
---
apiVersion: v1
kind: Service
metadata: { name: orders, namespace: shop }
---
kind: Service
metadata: { name: idle }
"#;

#[test]
fn a_service_served_only_by_sidecars_is_meshed_with_its_identity() {
    let w = registered(&[
        ("web", "127.0.0.1:7101"),
        ("web", "127.0.0.1:7201"),
        ("api", "127.0.0.1:7301"),
        ("orders.shop", "127.0.0.1:7401"),
    ]);
    let c = compile(&resources(SERVICES), &sidecar_of("web"), &w).unwrap_or_else(|e| panic!("{e}"));
    let web = cluster(&c, "web");
    assert_eq!(
        *web,
        pb::Cluster {
            name: "web".into(),
            endpoints: vec!["127.0.0.1:7101".into(), "127.0.0.1:7201".into()],
            mesh: Some(pb::MeshUpstream {
                identity: "spiffe://cluster.local/ns/default/sa/web".into()
            }),
            ..Default::default()
        }
    );
    assert_eq!(
        identity(cluster(&c, "orders.shop")),
        Some("spiffe://cluster.local/ns/shop/sa/orders"),
        "the namespace is the Service's, as the CA issues it"
    );
    assert_eq!(
        cluster(&c, "orders.shop")
            .mesh
            .as_ref()
            .map(|m| &m.identity),
        Some(
            &identity_of("cluster.local", "orders.shop")
                .unwrap_or_else(|e| panic!("{e}"))
                .to_string()
        ),
        "the same function as Identity/Sign"
    );
    // A static endpoint keeps the cluster plaintext, sidecars or not: the
    // proxy has one transport per cluster.
    let api = cluster(&c, "api");
    assert_eq!(api.endpoints, ["127.0.0.1:7301", "127.0.0.1:9001"]);
    assert_eq!(api.mesh, None);
    // No endpoint at all: nothing to prove an identity.
    assert_eq!(cluster(&c, "idle").mesh, None);
    assert!(cluster(&c, "idle").endpoints.is_empty());
    // The sidecar's own workload is local plaintext.
    assert_eq!(cluster(&c, INBOUND_CLUSTER).mesh, None);
}

#[test]
fn the_trust_domain_comes_from_the_mesh_context() {
    let w = registered(&[("web", "127.0.0.1:7101")]);
    let mesh = MeshContext {
        trust_domain: "prod.example".into(),
        bundle_pem: String::new(),
    };
    let c = compile_with(&resources(SERVICES), &sidecar_of("api"), &w, &mesh)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        identity(cluster(&c, "web")),
        Some("spiffe://prod.example/ns/default/sa/web")
    );
    // A trust domain no SPIFFE ID can have: a typed error, no config.
    let bad = MeshContext {
        trust_domain: "Prod".into(),
        bundle_pem: String::new(),
    };
    let err = compile_with(&resources(SERVICES), &sidecar_of("api"), &w, &bad).unwrap_err();
    assert!(
        matches!(&err, CompileError::Identity { service, .. } if service == "web"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("Service `web` has no SPIFFE ID in trust domain `Prod`: "),
        "{err}"
    );
}

#[test]
fn per_port_clusters_are_meshed_where_no_static_endpoint_is() {
    let text = r#"apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  endpoints: ["10.0.0.8:9443"]
  ports:
    - { name: http, port: 80, targetPort: 8080, appProtocol: http }
    - { name: grpc, port: 9090, appProtocol: kubernetes.io/h2c }
    - { name: admin, port: 9443 }
    - { name: pg, port: 5432, appProtocol: tcp }
"#;
    let w = registered(&[("web.shop", "127.0.0.1:7101")]);
    let c =
        compile(&resources(text), &sidecar_of("web.shop"), &w).unwrap_or_else(|e| panic!("{e}"));
    let id = Some("spiffe://cluster.local/ns/shop/sa/web");
    for name in ["web.shop_80", "web.shop_9090"] {
        let p = cluster(&c, name);
        assert_eq!(identity(p), id, "{name}");
        assert_eq!(p.endpoints, ["127.0.0.1:7101"], "{name}");
        assert_eq!(
            p.protocol(),
            pb::UpstreamProtocol::Unspecified,
            "{name}: HTTP/2 over mTLS whatever appProtocol says"
        );
    }
    let admin = cluster(&c, "web.shop_9443");
    assert_eq!(admin.endpoints, ["10.0.0.8:9443", "127.0.0.1:7101"]);
    assert_eq!(admin.mesh, None, "a static endpoint on this port");
    let pg = cluster(&c, "web.shop_5432");
    assert_eq!(
        (pg.mesh.as_ref(), pg.endpoints.len()),
        (None, 0),
        "a TCP port has no sidecars"
    );
    // The sidecar's own workload still speaks what its first port says.
    assert_eq!(
        cluster(&c, INBOUND_CLUSTER).protocol(),
        pb::UpstreamProtocol::Http1
    );
}

#[test]
fn a_backend_tls_policy_and_a_grpc_route_do_not_apply_to_a_meshed_cluster() {
    let text = format!(
        "{SERVICES}---\n{}",
        r#"kind: BackendTLSPolicy
metadata: { name: web-tls }
spec:
  targetRefs: [ { name: web }, { name: api } ]
  validation: { wellKnownCACertificates: System, hostname: web.internal }
---
kind: GRPCRoute
apiVersion: gateway.networking.k8s.io/v1
metadata: { name: greeter }
spec:
  parentRefs: [ { kind: Service, name: api } ]
  rules: [ { backendRefs: [ { name: web } ] } ]
"#
    );
    let w = registered(&[("web", "127.0.0.1:7101"), ("api", "127.0.0.1:7301")]);
    let c = compile(&resources(&text), &sidecar_of("api"), &w).unwrap_or_else(|e| panic!("{e}"));
    let web = cluster(&c, "web");
    assert!(web.mesh.is_some());
    assert_eq!(web.tls, None, "the mesh's mTLS, not the policy's TLS");
    assert_eq!(web.protocol(), pb::UpstreamProtocol::Unspecified);
    // api has a static endpoint: the policy applies as before.
    let api = cluster(&c, "api");
    assert_eq!(api.mesh, None);
    assert_eq!(
        api.tls.as_ref().and_then(|t| t.sni.as_deref()),
        Some("web.internal")
    );
    // Without a sidecar, web is a plain cluster again, policy and all.
    let c = compile(&resources(&text), &sidecar_of("api"), &Workloads::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let web = cluster(&c, "web");
    assert_eq!(web.mesh, None);
    assert!(web.tls.is_some());
    assert_eq!(web.protocol(), pb::UpstreamProtocol::Http2, "GRPCRoute");
}

#[test]
fn every_proxy_gets_the_trust_bundle_and_no_identity() {
    let text = format!(
        "{SERVICES}---\n{}",
        "kind: Gateway\nmetadata: { name: edge }\nspec:\n  listeners: [ { name: web, address: \"127.0.0.1:8080\" } ]\n"
    );
    let res = resources(&text);
    let bundle = "-----BEGIN CERTIFICATE-----\nnew\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nold\n-----END CERTIFICATE-----\n";
    let mesh = MeshContext {
        trust_domain: "cluster.local".into(),
        bundle_pem: bundle.into(),
    };
    let w = registered(&[("web", "127.0.0.1:7101")]);
    let mut client_only = sidecar_of("api");
    client_only.inbound_address.clear();
    client_only.workload_address.clear();
    for node in [sidecar_of("web"), client_only, gateway_of("edge")] {
        let c = compile_with(&res, &node, &w, &mesh).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.mesh,
            Some(pb::Mesh {
                identity: None,
                trust_bundle: Some(pb::DataSource {
                    source: Some(pb::data_source::Source::InlinePem(bundle.into())),
                }),
            }),
            "{}",
            node.id
        );
        // A gateway sends to meshed clusters too (with its own identity).
        assert!(cluster(&c, "web").mesh.is_some(), "{}", node.id);
    }
    // Compiled without a CA: the mesh, but no bundle to send.
    let c = compile(&res, &gateway_of("edge"), &w).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.mesh, Some(pb::Mesh::default()));
}

#[test]
fn only_a_sidecars_inbound_listener_accepts_the_mesh() {
    let text = format!(
        "{SERVICES}---\n{}",
        "kind: Gateway\nmetadata: { name: edge }\nspec:\n  listeners: [ { name: web, address: \"127.0.0.1:8080\" } ]\n"
    );
    let res = resources(&text);
    let c = compile(&res, &sidecar_of("web"), &Workloads::new()).unwrap_or_else(|e| panic!("{e}"));
    let modes: Vec<(&str, Option<pb::MeshMode>)> = c
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.mesh.as_ref().map(|m| m.mode())))
        .collect();
    assert_eq!(
        modes,
        [
            ("inbound", Some(pb::MeshMode::Permissive)),
            ("outbound", None)
        ],
        "PERMISSIVE without a PeerAuthentication: mTLS and plaintext"
    );
    let c = compile(&res, &gateway_of("edge"), &Workloads::new()).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.listeners.iter().all(|l| l.mesh.is_none()));
}

#[test]
fn the_inbound_mode_is_the_peer_authentication_that_applies() {
    let res = resources(crate::resources::validate_peer_authn_mesh());
    for (service, want) in [
        ("orders.shop", pb::MeshMode::Strict),  // namespace-wide STRICT
        ("web.shop", pb::MeshMode::Permissive), // its own PERMISSIVE wins
        ("cart.shop", pb::MeshMode::Strict),    // its own UNSET inherits
        ("orders", pb::MeshMode::Strict),       // its own, in `default`
    ] {
        let c = compile(&res, &sidecar_of(service), &Workloads::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let inbound = c.listeners.iter().find(|l| l.name == "inbound");
        assert_eq!(
            inbound.and_then(|l| l.mesh.as_ref()).map(|m| m.mode()),
            Some(want),
            "{service}"
        );
        let outbound = c.listeners.iter().find(|l| l.name == "outbound");
        assert_eq!(outbound.and_then(|l| l.mesh.as_ref()), None, "{service}");
    }
}
