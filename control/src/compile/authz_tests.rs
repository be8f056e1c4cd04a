//! AuthorizationPolicies compiled onto sidecars' inbound listeners: the
//! ones that target the sidecar's Service and the namespace-wide ones of
//! its namespace, in name order, field by field; nothing on outbound
//! listeners, gateways, or Services no policy protects.

use super::fixtures::*;
use super::*;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_targeted_service_gets_its_policies_and_the_namespace_wide_ones() {
    let res = resources(crate::resources::validate_authz_mesh());
    let c = compile(&res, &sidecar_of("orders.shop"), &Workloads::new()).unwrap();
    let inbound = listener(&c, "inbound");
    let names: Vec<&str> = inbound
        .authorization
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["no-admin.shop", "orders-policy.shop"]);
    assert_eq!(
        inbound.authorization[0],
        pb::AuthorizationPolicy {
            name: "no-admin.shop".into(),
            action: pb::AuthzAction::Deny as i32,
            rules: vec![pb::AuthzRule {
                from: vec![],
                to: vec![pb::AuthzOperation {
                    paths: strings(&["/admin*"]),
                    ..Default::default()
                }],
                when: vec![],
            }],
        }
    );
    assert_eq!(
        inbound.authorization[1],
        pb::AuthorizationPolicy {
            name: "orders-policy.shop".into(),
            action: pb::AuthzAction::Allow as i32,
            rules: vec![pb::AuthzRule {
                from: vec![pb::AuthzSource {
                    // `spiffe://` taken off, as the proto says principals are.
                    principals: strings(&["cluster.local/ns/shop/sa/web"]),
                    not_principals: strings(&["x*"]),
                    namespaces: strings(&["shop"]),
                    not_namespaces: strings(&["*-dev"]),
                }],
                to: vec![pb::AuthzOperation {
                    methods: strings(&["GET", "POST"]),
                    not_methods: strings(&["DELETE"]),
                    paths: strings(&["/orders/*", "/orders"]),
                    not_paths: strings(&["*.json"]),
                    ports: vec![],
                    not_ports: vec![],
                }],
                when: vec![pb::AuthzCondition {
                    header: "x-tenant".into(),
                    values: strings(&["a"]),
                    not_values: strings(&["b*"]),
                }],
            }],
        }
    );
    // Calls the sidecar makes are not judged: policies protect its Service.
    assert!(listener(&c, "outbound").authorization.is_empty());

    // web.shop: only the namespace-wide policy.
    let c = compile(&res, &sidecar_of("web.shop"), &Workloads::new()).unwrap();
    let names: Vec<&str> = listener(&c, "inbound")
        .authorization
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["no-admin.shop"]);

    // orders in `default`: the deny-all of its namespace (ALLOW, no rules).
    let c = compile(&res, &sidecar_of("orders"), &Workloads::new()).unwrap();
    assert_eq!(
        listener(&c, "inbound").authorization,
        [pb::AuthorizationPolicy {
            name: "deny-all".into(),
            action: pb::AuthzAction::Allow as i32,
            rules: vec![],
        }]
    );
}

#[test]
fn without_policies_nothing_changes() {
    let res = resources(crate::resources::validate_tests_mesh());
    let node = pb::Node {
        service: "checkout".into(),
        ..sidecar_of("checkout")
    };
    let c = compile(&res, &node, &Workloads::new()).unwrap();
    assert!(c.listeners.iter().all(|l| l.authorization.is_empty()));
}

#[test]
fn a_gateway_gets_no_service_policies() {
    let text = format!(
        "{}---\nkind: Gateway\nmetadata: {{ name: edge, namespace: shop }}\nspec: {{ listeners: [ {{ name: http, address: \"127.0.0.1:8080\" }} ] }}\n",
        crate::resources::validate_authz_mesh()
    );
    let node = pb::Node {
        id: "gw-1".into(),
        service: "edge.shop".into(),
        role: pb::Role::Gateway as i32,
        ..Default::default()
    };
    let c = compile(&resources(&text), &node, &Workloads::new()).unwrap();
    assert!(c.listeners.iter().all(|l| l.authorization.is_empty()));
}

#[test]
fn workload_ports_become_the_inbound_listeners_port() {
    // sidecar_of: workload on 7000, inbound listener on 7001.
    let res = resources(
        r#"
kind: Service
metadata: { name: orders }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ports }
spec:
  rules:
    - to: [ { operation: { ports: ["7000"], paths: [/a] } } ]
    - to: [ { operation: { ports: ["9999"] } } ]
    - to: [ { operation: { notPorts: ["7000"] } } ]
    - to: [ { operation: { notPorts: ["9999"] } } ]
"#,
    );
    let c = compile(&res, &sidecar_of("orders"), &Workloads::new()).unwrap();
    let ops: Vec<(Vec<String>, Vec<String>)> = listener(&c, "inbound").authorization[0]
        .rules
        .iter()
        .map(|r| (r.to[0].ports.clone(), r.to[0].not_ports.clone()))
        .collect();
    assert_eq!(
        ops,
        [
            (strings(&["7001"]), vec![]),
            // Another port of the workload: required and excluded, never.
            (strings(&["7001"]), strings(&["7001"])),
            (vec![], strings(&["7001"])),
            (vec![], vec![]),
        ]
    );
    // The proxy accepts what is compiled.
    let p = &listener(&c, "inbound").authorization[0];
    assert_eq!(p.rules[1].to[0].ports, p.rules[1].to[0].not_ports);
}
