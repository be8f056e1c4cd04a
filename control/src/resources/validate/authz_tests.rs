//! AuthorizationPolicy: Istio's documents read as written; everything the
//! proxy would refuse, and every Istio field not built yet, refused at
//! its field with file:line:column.

use super::super::model::*;
use super::super::parse;

pub const AUTHZ: &str = r#"apiVersion: v1
kind: Service
metadata: { name: orders, namespace: shop }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
---
kind: Service
metadata: { name: orders }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: orders-policy, namespace: shop }
spec:
  targetRefs: [ { kind: Service, group: "", name: orders } ]
  action: ALLOW
  rules:
    - from: [ { source: { principals: ["spiffe://cluster.local/ns/shop/sa/web"], notPrincipals: [x*], namespaces: [shop], notNamespaces: ["*-dev"] } } ]
      to: [ { operation: { methods: [GET, post], notMethods: [DELETE], paths: ["/orders/*", /orders], notPaths: ["*.json"] } } ]
      when: [ { key: "request.headers[X-Tenant]", values: [a], notValues: [b*] } ]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: { name: no-admin, namespace: shop }
spec:
  action: DENY
  rules: [ { to: [ { operation: { paths: ["/admin*"] } } ] } ]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-all }
spec: {}
"#;

fn files(text: &str) -> Vec<(String, String)> {
    vec![("authz.yaml".to_string(), text.to_string())]
}

fn errors(text: &str) -> String {
    match parse(&files(text)) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_istio_policy_reads_as_written() {
    let r = parse(&files(AUTHZ)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.authz.keys().collect::<Vec<_>>(),
        ["deny-all", "no-admin.shop", "orders-policy.shop"]
    );
    let p = &r.authz["orders-policy.shop"];
    assert_eq!(
        *p,
        AuthzPolicy {
            name: "orders-policy.shop".into(),
            namespace: "shop".into(),
            targets: Some(vec!["orders.shop".into()]),
            deny: false,
            rules: vec![AuthzRule {
                from: vec![AuthzSource {
                    principals: vec!["cluster.local/ns/shop/sa/web".into()],
                    not_principals: vec!["x*".into()],
                    namespaces: vec!["shop".into()],
                    not_namespaces: vec!["*-dev".into()],
                }],
                to: vec![AuthzOperation {
                    methods: vec!["GET".into(), "POST".into()],
                    not_methods: vec!["DELETE".into()],
                    paths: vec!["/orders/*".into(), "/orders".into()],
                    not_paths: vec!["*.json".into()],
                    ports: vec![],
                    not_ports: vec![],
                }],
                when: vec![AuthzCondition {
                    header: "x-tenant".into(),
                    values: vec!["a".into()],
                    not_values: vec!["b*".into()],
                }],
            }],
            source: Source {
                file: "authz.yaml".into(),
                line: 13,
            },
        }
    );
    let admin = &r.authz["no-admin.shop"];
    assert!(admin.deny);
    assert_eq!(admin.targets, None, "namespace-wide");
    assert!(admin.applies_to("orders.shop") && admin.applies_to("web.shop"));
    assert!(!admin.applies_to("orders"), "another namespace");
    assert!(p.applies_to("orders.shop") && !p.applies_to("web.shop"));
    let all = &r.authz["deny-all"];
    assert!(!all.deny && all.rules.is_empty(), "ALLOW nothing: deny all");
    assert!(all.applies_to("orders") && !all.applies_to("orders.shop"));
}

/// A policy in `shop` protecting `orders`, with `spec` as given.
fn policy(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{ name: orders, namespace: shop }}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{ name: p, namespace: shop }}\nspec:\n{spec}")
}

#[test]
fn bad_policies_are_refused_at_their_fields() {
    let cases = [
        (
            "  targetRefs: [ { kind: Service, name: order } ]\n",
            "authz.yaml:9:40: AuthorizationPolicy/shop/p.spec.targetRefs[0].name: no Service named `order` in namespace `shop`",
        ),
        (
            "  targetRefs: [ { kind: Service, namespace: other, name: orders } ]\n",
            "authz.yaml:9:45: AuthorizationPolicy/shop/p.spec.targetRefs[0].namespace: `other`: a policy protects Services of its own namespace (`shop`), as in Istio",
        ),
        (
            "  targetRefs: [ { kind: Deployment, name: orders } ]\n",
            "authz.yaml:9:25: AuthorizationPolicy/shop/p.spec.targetRefs[0].kind: `Deployment`: a policy protects Services",
        ),
        (
            "  targetRefs: []\n",
            "AuthorizationPolicy/shop/p.spec.targetRefs: empty: name the Services",
        ),
        (
            "  action: REJECT\n",
            "authz.yaml:9:11: AuthorizationPolicy/shop/p.spec.action: unknown action `REJECT`: use ALLOW or DENY",
        ),
        (
            "  rules:\n    - to: [ { operation: { paths: [\"/a*b\"] } } ]\n",
            "authz.yaml:10:36: AuthorizationPolicy/shop/p.spec.rules[0].to[0].operation.paths[0]: `/a*b`: a value is exact, `prefix*`, `*suffix` or `*` (one `*`, first or last)",
        ),
        (
            "  rules:\n    - to: [ { operation: { paths: [/orders/../admin] } } ]\n",
            "authz.yaml:10:36: AuthorizationPolicy/shop/p.spec.rules[0].to[0].operation.paths[0]: `/orders/../admin` is not a normalised path",
        ),
        (
            "  rules:\n    - to: [ { operation: { notPaths: [\"//x*\"] } } ]\n",
            "authz.yaml:10:39: AuthorizationPolicy/shop/p.spec.rules[0].to[0].operation.notPaths[0]: `//x*` is not a normalised path",
        ),
        (
            "  rules:\n    - to: [ { operation: { paths: [orders] } } ]\n",
            "authz.yaml:10:36: AuthorizationPolicy/shop/p.spec.rules[0].to[0].operation.paths[0]: `orders`: a path starts with `/` (or `*` for a suffix)",
        ),
        (
            "  rules:\n    - to: [ { operation: { methods: [\"GE T\"] } } ]\n",
            "authz.yaml:10:38: AuthorizationPolicy/shop/p.spec.rules[0].to[0].operation.methods[0]: `GE T` is not an HTTP method",
        ),
        (
            "  rules:\n    - to: [ { operation: {} } ]\n",
            "authz.yaml:10:13: AuthorizationPolicy/shop/p.spec.rules[0].to[0].operation: empty: give methods",
        ),
        (
            "  rules:\n    - to: [ {} ]\n",
            "authz.yaml:10:13: AuthorizationPolicy/shop/p.spec.rules[0].to[0].operation: missing",
        ),
        (
            "  rules:\n    - from: [ { source: { principals: [\"\"] } } ]\n",
            "authz.yaml:10:40: AuthorizationPolicy/shop/p.spec.rules[0].from[0].source.principals[0]: ``: a value is exact",
        ),
        (
            "  rules:\n    - when: [ { key: \"request.headers[a b]\", values: [x] } ]\n",
            "authz.yaml:10:22: AuthorizationPolicy/shop/p.spec.rules[0].when[0].key: `a b` is not a header name",
        ),
        (
            "  rules:\n    - when: [ { key: \"request.headers[x]\" } ]\n",
            "authz.yaml:10:15: AuthorizationPolicy/shop/p.spec.rules[0].when[0].values: missing: give values or notValues",
        ),
        (
            "  rules:\n    - when: [ { key: request.host, values: [x] } ]\n",
            "authz.yaml:10:22: AuthorizationPolicy/shop/p.spec.rules[0].when[0].key: unknown key `request.host`",
        ),
    ];
    let mut wrong = Vec::new();
    for (spec, want) in cases {
        let e = errors(&policy(spec));
        if !e.contains(want) {
            wrong.push(format!("{spec}want {want}\ngot  {e}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    // Unknown fields stay unknown.
    let e = errors(&policy(
        "  rules:\n    - to: [ { operation: { verbs: [GET] } } ]\n",
    ));
    assert!(e.contains("unknown field `verbs`"), "{e}");
}

#[test]
fn istio_fields_not_built_are_not_supported_not_unknown() {
    let cases = [
        (
            "  selector: { matchLabels: { app: orders } }\n",
            "authz.yaml:9:13: AuthorizationPolicy/shop/p.spec.selector: not supported yet: ringmesh has no workload labels; use targetRefs (kind: Service)",
        ),
        (
            "  targetRef: { kind: Service, name: orders }\n",
            "authz.yaml:9:14: AuthorizationPolicy/shop/p.spec.targetRef: not supported yet: use targetRefs",
        ),
        (
            "  action: CUSTOM\n  provider: { name: ext }\n",
            "authz.yaml:9:11: AuthorizationPolicy/shop/p.spec.action: `CUSTOM` is not supported yet: use ALLOW or DENY",
        ),
        (
            "  action: CUSTOM\n  provider: { name: ext }\n",
            "authz.yaml:10:13: AuthorizationPolicy/shop/p.spec.provider: not supported yet",
        ),
        (
            "  action: AUDIT\n",
            "authz.yaml:9:11: AuthorizationPolicy/shop/p.spec.action: `AUDIT` is not supported yet",
        ),
        (
            "  targetRefs: [ { group: gateway.networking.k8s.io, kind: Gateway, name: edge } ]\n",
            "AuthorizationPolicy/shop/p.spec.targetRefs[0].kind: `Gateway` is not supported yet",
        ),
        (
            "  rules:\n    - from: [ { source: { requestPrincipals: [\"*\"] } } ]\n",
            "authz.yaml:10:46: AuthorizationPolicy/shop/p.spec.rules[0].from[0].source.requestPrincipals: not supported yet",
        ),
        (
            "  rules:\n    - from: [ { source: { remoteIpBlocks: [10.0.0.0/8] } } ]\n",
            "AuthorizationPolicy/shop/p.spec.rules[0].from[0].source.remoteIpBlocks: not supported yet",
        ),
        (
            "  rules:\n    - from: [ { source: { ipBlocks: [10.0.0.0/8] } } ]\n",
            "AuthorizationPolicy/shop/p.spec.rules[0].from[0].source.ipBlocks: not supported yet",
        ),
        (
            "  rules:\n    - to: [ { operation: { hosts: [a.example.com] } } ]\n",
            "AuthorizationPolicy/shop/p.spec.rules[0].to[0].operation.hosts: not supported yet",
        ),
        (
            "  rules:\n    - to: [ { operation: { notHosts: [a.example.com] } } ]\n",
            "AuthorizationPolicy/shop/p.spec.rules[0].to[0].operation.notHosts: not supported yet",
        ),
        (
            "  rules:\n    - when: [ { key: source.ip, values: [10.0.0.1] } ]\n",
            "authz.yaml:10:22: AuthorizationPolicy/shop/p.spec.rules[0].when[0].key: `source.ip` is not supported yet",
        ),
        (
            "  rules:\n    - when: [ { key: \"request.auth.claims[iss]\", values: [x] } ]\n",
            "AuthorizationPolicy/shop/p.spec.rules[0].when[0].key: `request.auth.claims[iss]` is not supported yet",
        ),
    ];
    let mut wrong = Vec::new();
    for (spec, want) in cases {
        let e = errors(&policy(spec));
        if !e.contains(want) {
            wrong.push(format!("{spec}want {want}\ngot  {e}"));
        }
        assert!(!e.contains("unknown field"), "{e}");
        // Only the unsupported field is reported: no "empty source" noise.
        assert!(!e.contains("empty:"), "{e}");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn api_versions_and_names() {
    let e = errors(
        &policy("  action: DENY\n").replace("security.istio.io/v1\n", "security.istio.io/v2\n"),
    );
    assert!(
        e.contains("`security.istio.io/v2` is not an apiVersion of AuthorizationPolicy: write `security.istio.io/v1`"),
        "{e}"
    );
    let twice = format!(
        "{}---\nkind: AuthorizationPolicy\nmetadata: {{ name: p, namespace: shop }}\n",
        policy("  action: DENY\n")
    );
    let e = errors(&twice);
    assert!(e.contains("`p` (namespace `shop`) is defined twice"), "{e}");
}

#[test]
fn ports_are_numbers() {
    let e = errors(&policy(
        "  rules:\n    - to: [ { operation: { ports: [\"http\"], notPorts: [\"0\"] } } ]\n",
    ));
    assert!(
        e.contains("operation.ports[0]: `http` is not a port (1 to 65535)")
            && e.contains("operation.notPorts[0]: `0` is not a port"),
        "{e}"
    );
    let r = parse(&files(&policy(
        "  rules:\n    - to: [ { operation: { ports: [\"8080\"] } } ]\n",
    )))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.authz["p.shop"].rules[0].to[0].ports, [8080]);
}
