//! HTTPRoute filters and `retry.backoff` as the proxy routes carry them.

use super::fixtures::*;
use super::*;

const WEB: &str = "kind: Service
metadata: { name: web }
spec: { endpoints: ['127.0.0.1:81'] }
---
kind: HTTPRoute
metadata: { name: r }
spec:
  parentRefs: [ { name: web } ]
  rules:
    - matches: [ { path: { value: /old } } ]
      filters:
        - type: RequestRedirect
          requestRedirect: { scheme: https, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new }, statusCode: 301 }
    - matches: [ { path: { value: /api } } ]
      backendRefs: [ { name: web } ]
      retry: { attempts: 2, backoff: 50ms }
      filters:
        - type: URLRewrite
          urlRewrite: { hostname: internal, path: { type: ReplacePrefixMatch, replacePrefixMatch: / } }
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [ { name: x-a, value: '1' } ], remove: [ x-b ] }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [ { name: x-c, value: '2' } ] }
    - backendRefs: [ { name: web } ]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /v1 } }
";

fn route<'a>(c: &'a pb::ProxyConfig, name: &str) -> &'a pb::Route {
    listener(c, "outbound")
        .routes
        .iter()
        .find(|r| r.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no route {name}"))
}

#[test]
fn filters_compile_onto_the_proxy_routes() {
    let c = compile(&resources(WEB), &sidecar_of("web"), &Workloads::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let prefix = |p: &str| pb::PathModifier {
        kind: Some(pb::path_modifier::Kind::Prefix(p.into())),
    };
    assert_eq!(
        route(&c, "r.0.0").action,
        Some(pb::route::Action::Redirect(pb::Redirect {
            scheme: Some("https".into()),
            hostname: None,
            port: None,
            path: Some(prefix("/new")),
            status: 301,
        }))
    );
    let api = route(&c, "r.1.0");
    assert_eq!(
        api.rewrite,
        Some(pb::Rewrite {
            hostname: Some("internal".into()),
            path: Some(prefix("/")),
        })
    );
    // `set` replaces: the proxy removes, then adds.
    assert_eq!(
        api.request_headers,
        Some(pb::HeaderEdits {
            add: vec![pb::Header {
                name: "x-a".into(),
                value: "1".into()
            }],
            remove: vec!["x-a".into(), "x-b".into()],
        })
    );
    assert_eq!(api.response_headers.as_ref().map(|e| e.add.len()), Some(1));
    let backoff = api.retries.as_ref().and_then(|r| r.backoff.as_ref());
    assert_eq!(
        backoff.and_then(|b| b.base.as_ref()).map(|d| d.nanos),
        Some(50_000_000)
    );
    assert!(backoff.is_some_and(|b| b.max.is_none()), "the proxy's 10x");
    // A rule without matches matches the prefix `/`, which its route says
    // when it replaces a prefix; routes without filters stay as before.
    let all = route(&c, "r.2");
    assert_eq!(
        all.r#match.as_ref().and_then(|m| m.path.clone()),
        Some(pb::PathMatch {
            kind: Some(pb::path_match::Kind::Prefix("/".into()))
        })
    );
    let default = route(&c, "web.default");
    assert!(default.rewrite.is_none() && default.request_headers.is_none());
}
