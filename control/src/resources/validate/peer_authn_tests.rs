//! PeerAuthentication: Istio's documents read as written; selectors other
//! than `app: <Service>`, DISABLE, port-level modes and ambiguous pairs
//! refused at their fields with file:line:column; modes resolved as Istio
//! resolves them.

use super::super::model::*;
use super::super::parse;

pub const PEER_AUTHN: &str = r#"apiVersion: v1
kind: Service
metadata: { name: orders, namespace: shop }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
---
apiVersion: v1
kind: Service
metadata: { name: cart, namespace: shop }
---
kind: Service
metadata: { name: orders }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: shop }
spec:
  mtls: { mode: STRICT }
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: { name: web-permissive, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  mtls: { mode: PERMISSIVE }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: cart-inherits, namespace: shop }
spec:
  selector: { matchLabels: { app: cart } }
  mtls: { mode: UNSET }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: orders-strict }
spec:
  selector:
    matchLabels:
      app: orders
  mtls:
    mode: STRICT
"#;

fn files(text: &str) -> Vec<(String, String)> {
    vec![("peer.yaml".to_string(), text.to_string())]
}

fn errors(text: &str) -> String {
    match parse(&files(text)) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_istio_peer_authentication_reads_as_written() {
    let r = parse(&files(PEER_AUTHN)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.peer_authn.keys().collect::<Vec<_>>(),
        [
            "cart-inherits.shop",
            "default.shop",
            "orders-strict",
            "web-permissive.shop"
        ]
    );
    assert_eq!(
        r.peer_authn["default.shop"],
        PeerAuthn {
            name: "default.shop".into(),
            namespace: "shop".into(),
            service: None,
            mode: Some(MtlsMode::Strict),
            source: Source {
                file: "peer.yaml".into(),
                line: 17,
            },
        }
    );
    let web = &r.peer_authn["web-permissive.shop"];
    assert_eq!(
        (web.service.as_deref(), web.mode),
        (Some("web.shop"), Some(MtlsMode::Permissive))
    );
    assert_eq!(r.peer_authn["cart-inherits.shop"].mode, None, "UNSET");
    assert_eq!(
        r.peer_authn["orders-strict"].service.as_deref(),
        Some("orders"),
        "app: resolves in the policy's namespace"
    );
}

#[test]
fn the_workload_policy_wins_unset_inherits_and_the_default_is_permissive() {
    let r = parse(&files(PEER_AUTHN)).unwrap_or_else(|e| panic!("{e}"));
    for (service, want) in [
        ("orders.shop", MtlsMode::Strict),  // namespace-wide
        ("web.shop", MtlsMode::Permissive), // its own over the namespace's
        ("cart.shop", MtlsMode::Strict),    // its own is UNSET: the namespace's
        ("orders", MtlsMode::Strict),       // its own, in `default`
    ] {
        assert_eq!(r.mtls_mode(service), want, "{service}");
    }
    // No policy at all: PERMISSIVE, as in Istio.
    let none =
        parse(&files("kind: Service\nmetadata: { name: a }\n")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(none.mtls_mode("a"), MtlsMode::Permissive);
    // A namespace-wide UNSET (or `spec: {}`) inherits the default.
    let unset = parse(&files(
        "kind: Service\nmetadata: { name: a }\n---\nkind: PeerAuthentication\nmetadata: { name: d }\nspec: {}\n---\nkind: PeerAuthentication\nmetadata: { name: a }\nspec: { selector: { matchLabels: { app: a } }, mtls: {} }\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(unset.mtls_mode("a"), MtlsMode::Permissive);
    // A policy of another namespace does not reach it.
    assert_eq!(r.mtls_mode("nope.other"), MtlsMode::Permissive);
}

/// A policy `p` in `shop` (where `orders` is), with `spec` as given.
fn policy(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{ name: orders, namespace: shop }}\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{ name: p, namespace: shop }}\nspec:\n{spec}")
}

#[test]
fn bad_peer_authentications_are_refused_at_their_fields() {
    let cases = [
        (
            "  mtls: { mode: DISABLE }\n",
            "peer.yaml:9:17: PeerAuthentication/shop/p.spec.mtls.mode: `DISABLE` is not supported yet: a sidecar's inbound listener always accepts the mesh's mTLS; PERMISSIVE also accepts plaintext",
        ),
        (
            "  mtls: { mode: strict }\n",
            "peer.yaml:9:17: PeerAuthentication/shop/p.spec.mtls.mode: unknown mode `strict` (did you mean `STRICT`?): use STRICT, PERMISSIVE or UNSET",
        ),
        (
            "  selector: { matchLabels: { app: order } }\n",
            "peer.yaml:9:35: PeerAuthentication/shop/p.spec.selector.matchLabels[\"app\"]: no Service named `order` in namespace `shop` (did you mean `orders.shop`?)",
        ),
        (
            "  selector: { matchLabels: { app: orders, version: v1 } }\n",
            "peer.yaml:9:52: PeerAuthentication/shop/p.spec.selector.matchLabels[\"version\"]: label `version` is not supported yet: ringmesh has no workload labels; `app: <Service name>` selects the sidecars registered for that Service",
        ),
        (
            "  selector: { matchLabels: {} }\n",
            "peer.yaml:9:13: PeerAuthentication/shop/p.spec.selector.matchLabels: empty: write `matchLabels: { app: <Service name> }`",
        ),
        (
            "  selector: {}\n",
            "peer.yaml:9:13: PeerAuthentication/shop/p.spec.selector.matchLabels: empty",
        ),
        (
            "  portLevelMtls: { 8080: { mode: DISABLE } }\n",
            "peer.yaml:9:18: PeerAuthentication/shop/p.spec.portLevelMtls: not supported yet: a sidecar's inbound listener has one mode for all its traffic",
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
    // Unknown fields stay unknown; a wrong apiVersion is one.
    let e = errors(&policy("  mtls: { mode: STRICT, level: 2 }\n"));
    assert!(e.contains("unknown field `level`"), "{e}");
    let e = errors(&policy("  mtls: { mode: STRICT }\n").replace(
        "security.istio.io/v1\nkind: PeerAuthentication",
        "security.istio.io/v2\nkind: PeerAuthentication",
    ));
    assert!(
        e.contains("peer.yaml:5:13: apiVersion: `security.istio.io/v2` is not an apiVersion of PeerAuthentication"),
        "{e}"
    );
}

#[test]
fn two_policies_for_one_service_or_namespace_are_refused() {
    let twice = format!(
        "{}---\nkind: PeerAuthentication\nmetadata: {{ name: q, namespace: shop }}\nspec: {{ selector: {{ matchLabels: {{ app: orders }} }} }}\n",
        policy("  selector: { matchLabels: { app: orders } }\n  mtls: { mode: STRICT }\n")
    );
    assert_eq!(
        errors(&twice),
        "peer.yaml:13:19: PeerAuthentication/shop/q.metadata.name: Service `orders.shop` is already selected by a PeerAuthentication, at peer.yaml:7: Istio would apply the older one; ringmesh has no creation times, so keep one"
    );
    let wide = format!(
        "{}---\nkind: PeerAuthentication\nmetadata: {{ name: q, namespace: shop }}\n",
        policy("  mtls: { mode: STRICT }\n")
    );
    assert_eq!(
        errors(&wide),
        "peer.yaml:12:19: PeerAuthentication/shop/q.metadata.name: namespace `shop` already has a namespace-wide PeerAuthentication, at peer.yaml:7: Istio would apply the older one; ringmesh has no creation times, so keep one"
    );
    // One of each, and one per namespace, is fine.
    let fine = format!(
        "{}---\nkind: PeerAuthentication\nmetadata: {{ name: q, namespace: shop }}\n---\nkind: PeerAuthentication\nmetadata: {{ name: q }}\n",
        policy("  selector: { matchLabels: { app: orders } }\n")
    );
    parse(&files(&fine)).unwrap_or_else(|e| panic!("{e}"));
}
