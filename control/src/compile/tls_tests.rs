//! HTTPS listeners and BackendTLSPolicies as the proxy's `tls` settings.

use ringmesh_proto::v1 as pb;

use super::{compile, Workloads};
use crate::resources::certs::testing::{Leaf, TestCa};
use crate::resources::parse;

fn block(pem: &str) -> String {
    let mut out = String::from("|\n");
    for line in pem.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn secret(name: &str, leaf: &Leaf) -> String {
    format!(
        "kind: Secret\nmetadata: {{ name: {name} }}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}  tls.key: {}---\n",
        block(&leaf.cert_pem),
        block(&leaf.key_pem)
    )
}

struct Fixture {
    text: String,
    shop: Leaf,
    api: Leaf,
    fallback: Leaf,
    upstream_ca: TestCa,
}

fn fixture() -> Fixture {
    let ca = TestCa::new("edge ca").unwrap();
    let (shop, api) = (
        ca.leaf(&["shop.example.com"]).unwrap(),
        ca.leaf(&["api.example.com", "*.api.example.com"]).unwrap(),
    );
    // The catch-all's certificate also names shop.example.com, which the
    // `shop` listener serves with its own.
    let fallback = ca.leaf(&["example.com", "shop.example.com"]).unwrap();
    let upstream_ca = TestCa::new("payments ca").unwrap();
    let mut text = String::new();
    text.push_str(&secret("shop-cert", &shop));
    text.push_str(&secret("api-cert", &api));
    text.push_str(&secret("fallback-cert", &fallback));
    text.push_str(&format!(
        "kind: ConfigMap\nmetadata: {{ name: payments-ca }}\ndata:\n  ca.crt: {}---\n",
        block(&upstream_ca.cert_pem)
    ));
    text.push_str(
        r#"kind: Service
metadata: { name: shop }
---
kind: Service
metadata: { name: payments }
spec: { endpoints: [payments.internal:443] }
---
kind: BackendTLSPolicy
metadata: { name: payments }
spec:
  targetRefs: [ { kind: Service, name: payments } ]
  validation: { caCertificateRefs: [ { kind: ConfigMap, name: payments-ca } ], hostname: payments.internal }
  options: { ringmesh.io/client-certificate: shop-cert }
---
kind: Gateway
metadata: { name: edge }
spec:
  listeners:
    - { name: http, address: "127.0.0.1:8080" }
    - { name: shop, address: "127.0.0.1:8443", protocol: HTTPS, hostname: shop.example.com, tls: { certificateRefs: [ { name: shop-cert } ] } }
    - { name: api, address: "127.0.0.1:8443", protocol: HTTPS, hostname: "*.api.example.com", tls: { certificateRefs: [ { name: api-cert } ] } }
    - { name: fallback, address: "127.0.0.1:8443", protocol: HTTPS, tls: { certificateRefs: [ { name: fallback-cert } ] } }
---
kind: HTTPRoute
metadata: { name: any }
spec: { parentRefs: [ { kind: Gateway, name: edge } ], rules: [ { backendRefs: [ { name: shop } ] } ] }
---
kind: HTTPRoute
metadata: { name: store }
spec:
  parentRefs: [ { kind: Gateway, name: edge } ]
  hostnames: [ shop.example.com ]
  rules: [ { backendRefs: [ { name: payments } ] } ]
"#,
    );
    Fixture {
        text,
        shop,
        api,
        fallback,
        upstream_ca,
    }
}

fn gateway_node() -> pb::Node {
    pb::Node {
        id: "gw-1".into(),
        service: "edge".into(),
        role: pb::Role::Gateway as i32,
        ..Default::default()
    }
}

fn inline(pem: &str) -> Option<pb::DataSource> {
    Some(pb::DataSource {
        source: Some(pb::data_source::Source::InlinePem(pem.to_string())),
    })
}

/// The PEM a compiled source carries.
fn pem(d: &Option<pb::DataSource>) -> &str {
    match d.as_ref().and_then(|d| d.source.as_ref()) {
        Some(pb::data_source::Source::InlinePem(p)) => p,
        other => panic!("not inline PEM: {other:?}"),
    }
}

#[test]
fn listeners_on_one_address_share_a_proxy_listener_and_answer_by_sni() {
    let f = fixture();
    let res = parse(&[("mesh.yaml".into(), f.text.clone())]).unwrap_or_else(|e| panic!("{e}"));
    let c = compile(&res, &gateway_node(), &Workloads::new()).unwrap();
    let names: Vec<(&str, &str)> = c
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.address.as_str()))
        .collect();
    assert_eq!(
        names,
        [("http", "127.0.0.1:8080"), ("shop", "127.0.0.1:8443")],
        "one proxy listener per address, named after the first Gateway listener on it"
    );
    assert_eq!(c.listeners[0].tls, None, "HTTP stays plaintext");
    let tls = c.listeners[1]
        .tls
        .as_ref()
        .expect("TLS on the HTTPS listener");
    let certs: Vec<(&str, &str, Vec<&str>)> = tls
        .certificates
        .iter()
        .map(|c| {
            (
                pem(&c.cert),
                pem(&c.key),
                c.server_names.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let same_pem = |a: &str, b: &str| a.trim() == b.trim();
    assert_eq!(certs.len(), 3);
    // The catch-all's first: the default; shop.example.com left to `shop`.
    assert!(same_pem(certs[0].0, &f.fallback.cert_pem));
    assert_eq!(certs[0].2, ["example.com"]);
    assert!(same_pem(certs[1].0, &f.shop.cert_pem));
    assert_eq!(certs[1].2, ["shop.example.com"]);
    assert!(same_pem(certs[2].0, &f.api.cert_pem));
    assert_eq!(certs[2].2, ["*.api.example.com"]);
    assert!(
        certs.iter().all(|c| c.1.contains("PRIVATE KEY")),
        "keys inline"
    );

    let routes: Vec<(&str, Option<&str>)> = c.listeners[1]
        .routes
        .iter()
        .map(|r| {
            (
                r.name.as_deref().unwrap_or(""),
                r.r#match.as_ref().and_then(|m| m.host.as_deref()),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            // `shop` (exact hostname) first, then `api` (wildcard), then the catch-all.
            ("any.0", Some("shop.example.com")),
            ("store.0", Some("shop.example.com")),
            ("any.0-2", Some("*.api.example.com")),
            ("any.0-3", None),
            ("store.0-2", Some("shop.example.com")),
        ]
    );
    // The plaintext listener has no hostname: routes as before.
    let plain: Vec<Option<&str>> = c.listeners[0]
        .routes
        .iter()
        .map(|r| r.r#match.as_ref().and_then(|m| m.host.as_deref()))
        .collect();
    assert_eq!(plain, [None, Some("shop.example.com")]);
}

#[test]
fn a_backend_tls_policy_makes_its_services_cluster_speak_tls() {
    let f = fixture();
    let res = parse(&[("mesh.yaml".into(), f.text.clone())]).unwrap_or_else(|e| panic!("{e}"));
    let sidecar = pb::Node {
        id: "s-1".into(),
        service: "shop".into(),
        role: pb::Role::Sidecar as i32,
        outbound_address: "127.0.0.1:7002".into(),
        ..Default::default()
    };
    for node in [gateway_node(), sidecar] {
        let c = compile(&res, &node, &Workloads::new()).unwrap();
        let by_name = |n: &str| c.clusters.iter().find(|c| c.name == n).expect("cluster");
        assert_eq!(by_name("shop").tls, None, "{}", node.id);
        let tls = by_name("payments").tls.clone().expect("TLS to payments");
        assert_eq!(tls.sni.as_deref(), Some("payments.internal"));
        assert_eq!(pem(&tls.ca).trim(), f.upstream_ca.cert_pem.trim());
        assert!(tls.alpn.is_empty());
        let client = tls.client_certificate.expect("client certificate");
        assert_eq!(pem(&client.cert).trim(), f.shop.cert_pem.trim());
        assert!(client.server_names.is_empty());
    }
    // wellKnownCACertificates: System leaves `ca` unset (the proxy's roots).
    let system = f.text.replace(
        "caCertificateRefs: [ { kind: ConfigMap, name: payments-ca } ]",
        "wellKnownCACertificates: System",
    );
    let res = parse(&[("mesh.yaml".into(), system)]).unwrap_or_else(|e| panic!("{e}"));
    let c = compile(&res, &gateway_node(), &Workloads::new()).unwrap();
    let tls = c
        .clusters
        .iter()
        .find(|c| c.name == "payments")
        .and_then(|c| c.tls.clone());
    assert_eq!(tls.map(|t| t.ca), Some(None));
}

#[test]
fn a_rotated_secret_is_a_new_version() {
    let f = fixture();
    let res = parse(&[("mesh.yaml".into(), f.text.clone())]).unwrap_or_else(|e| panic!("{e}"));
    let before = compile(&res, &gateway_node(), &Workloads::new()).unwrap();
    let next = TestCa::new("edge ca 2")
        .unwrap()
        .leaf(&["shop.example.com"])
        .unwrap();
    let rotated = f
        .text
        .replace(&block(&f.shop.cert_pem), &block(&next.cert_pem))
        .replace(&block(&f.shop.key_pem), &block(&next.key_pem));
    let res = parse(&[("mesh.yaml".into(), rotated)]).unwrap_or_else(|e| panic!("{e}"));
    let after = compile(&res, &gateway_node(), &Workloads::new()).unwrap();
    assert_ne!(
        crate::server::discovery::version_of(&before),
        crate::server::discovery::version_of(&after)
    );
    let cert = &after.listeners[1].tls.as_ref().expect("tls").certificates[1];
    assert_eq!(pem(&cert.cert).trim(), next.cert_pem.trim());
    assert_eq!(
        inline(pem(&cert.key)),
        cert.key,
        "the key is inline, as the proxy takes it"
    );
}
