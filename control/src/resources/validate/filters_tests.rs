//! HTTPRoute filters: header modifiers, RequestRedirect, URLRewrite and
//! `retry.backoff`, as read, and every error at its file:line:column.

use std::time::Duration;

use super::super::model::{HeaderEdits, PathModifier, Redirect, Rewrite};
use super::parse;

const ROUTE: &str = "kind: Service
metadata: { name: s }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r }
spec:
  parentRefs: [ { kind: Service, name: s } ]
  rules:
";

fn with(rules: &str) -> Vec<(String, String)> {
    vec![("f.yaml".to_string(), format!("{ROUTE}{rules}"))]
}

fn errors(rules: &str) -> Vec<String> {
    match parse(&with(rules)) {
        Ok(_) => panic!("accepted:\n{rules}"),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

#[test]
fn header_modifiers_map_set_to_remove_and_add() {
    let r = parse(&with(
        "    - backendRefs: [ { name: s } ]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [ { name: X-Tenant, value: a } ]
            add: [ { name: x-extra, value: '1' } ]
            remove: [ X-Debug ]
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [ { name: x-served-by, value: mesh } ] }
",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let rule = &r.routes["r"].rules[0];
    assert_eq!(
        rule.request_headers,
        HeaderEdits {
            add: vec![
                ("x-tenant".into(), "a".into()),
                ("x-extra".into(), "1".into())
            ],
            remove: vec!["x-tenant".into(), "x-debug".into()],
        }
    );
    assert_eq!(
        rule.response_headers,
        HeaderEdits {
            add: vec![("x-served-by".into(), "mesh".into())],
            remove: vec![],
        }
    );
}

#[test]
fn redirects_rewrites_and_backoff_are_read() {
    let r = parse(&with(
        "    - matches: [ { path: { type: PathPrefix, value: /old } } ]
      filters:
        - type: RequestRedirect
          requestRedirect: { scheme: https, hostname: New.Example, port: 8443, statusCode: 301, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new } }
    - matches: [ { path: { value: /api } } ]
      backendRefs: [ { name: s } ]
      retry: { attempts: 2, backoff: 100ms }
      filters:
        - type: URLRewrite
          urlRewrite: { hostname: internal, path: { type: ReplaceFullPath, replaceFullPath: /v2 } }
",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let rules = &r.routes["r"].rules;
    assert_eq!(
        rules[0].redirect,
        Some(Redirect {
            scheme: Some("https".into()),
            hostname: Some("new.example".into()),
            port: Some(8443),
            path: Some(PathModifier::Prefix("/new".into())),
            status: Some(301),
        })
    );
    assert!(rules[0].backends.is_empty());
    assert_eq!(
        rules[1].rewrite,
        Some(Rewrite {
            hostname: Some("internal".into()),
            path: Some(PathModifier::Full("/v2".into())),
        })
    );
    assert_eq!(
        rules[1].retry.as_ref().and_then(|r| r.backoff),
        Some(Duration::from_millis(100))
    );
}

#[test]
fn every_filter_error_at_its_field() {
    let cases = [
        (
            "    - backendRefs: [ { name: s } ]
      filters: [ { type: RequestHeaderModifier, requestHeaderModifier: { set: [ { name: 'a b', value: x }, { name: host, value: y } ], add: [ { name: x-a, value: \"x\\ny\" } ], remove: [ x-r, X-R, connection ] } } ]
",
            vec![
                "f.yaml:11:89: HTTPRoute/r.spec.rules[0].filters[0].requestHeaderModifier.set[0].name: `a b` is not a header name",
                "f.yaml:11:116: HTTPRoute/r.spec.rules[0].filters[0].requestHeaderModifier.set[1].name: `host` is not edited here: use a URLRewrite filter's `hostname`",
                "f.yaml:11:163: HTTPRoute/r.spec.rules[0].filters[0].requestHeaderModifier.add[0].value: a header value must not contain CR, LF or NUL",
                "f.yaml:11:190: HTTPRoute/r.spec.rules[0].filters[0].requestHeaderModifier.remove[1]: `X-R` is given twice: header names are case-insensitive",
                "f.yaml:11:195: HTTPRoute/r.spec.rules[0].filters[0].requestHeaderModifier.remove[2]: `connection` frames the message: the proxy sets it",
            ],
        ),
        (
            "    - matches: [ { path: { type: Exact, value: /x } } ]
      backendRefs: [ { name: s } ]
      filters:
        - type: RequestRedirect
          requestRedirect: { scheme: ftp, hostname: 'a:1', port: 70000, statusCode: 200, path: { type: ReplacePrefixMatch, replacePrefixMatch: /y } }
        - type: URLRewrite
          urlRewrite: { path: { type: ReplaceFullPath, replacePrefixMatch: /z } }
        - type: RequestRedirect
",
            vec![
                "f.yaml:11:22: HTTPRoute/r.spec.rules[0].backendRefs: a rule with a RequestRedirect filter answers every request itself: its backendRefs would never get one; remove them",
                "f.yaml:14:38: HTTPRoute/r.spec.rules[0].filters[0].requestRedirect.scheme: `ftp`: a redirect's scheme is `http` or `https`",
                "f.yaml:14:53: HTTPRoute/r.spec.rules[0].filters[0].requestRedirect.hostname: `a:1` is not a host name: no port here (a redirect has `port`)",
                "f.yaml:14:66: HTTPRoute/r.spec.rules[0].filters[0].requestRedirect.port: 70000 is not a port: 1 to 65535",
                "f.yaml:14:85: HTTPRoute/r.spec.rules[0].filters[0].requestRedirect.statusCode: 200 is not a redirect status: 301, 302, 303, 307 or 308",
                "f.yaml:14:104: HTTPRoute/r.spec.rules[0].filters[0].requestRedirect.path.type: ReplacePrefixMatch replaces the prefix a PathPrefix match matched, and matches[0] is Exact: use ReplaceFullPath, or a PathPrefix match",
                "f.yaml:16:39: HTTPRoute/r.spec.rules[0].filters[1].urlRewrite.path.replaceFullPath: missing: `type: ReplaceFullPath` needs `replaceFullPath`",
                "f.yaml:16:76: HTTPRoute/r.spec.rules[0].filters[1].urlRewrite.path.replacePrefixMatch: goes with `type: ReplacePrefixMatch`",
                "f.yaml:17:17: HTTPRoute/r.spec.rules[0].filters[2].type: one RequestRedirect per rule: as the Gateway API allows",
            ],
        ),
        (
            "    - backendRefs: [ { name: s } ]
      retry: { attempts: 1, backoff: soon }
      filters:
        - { type: URLRewrite, requestMirror: { backendRef: { name: s } } }
        - { type: ResponseHeaderModifier, responseHeaderModifier: { set: [ { name: host, value: h } ] } }
        - { type: URLRewrite, urlRewrite: { hostname: '*.a' } }
",
            vec![
                "f.yaml:11:38: HTTPRoute/r.spec.rules[0].retry.backoff: `soon` is not a duration (expected number at 0); write e.g. 100ms",
                "f.yaml:13:11: HTTPRoute/r.spec.rules[0].filters[0].urlRewrite: missing: `hostname`, `path` or both",
                "f.yaml:13:46: HTTPRoute/r.spec.rules[0].filters[0].requestMirror: goes with `type: RequestMirror`",
                "f.yaml:15:19: HTTPRoute/r.spec.rules[0].filters[2].type: one URLRewrite per rule: as the Gateway API allows",
            ],
        ),
        (
            "    - backendRefs: [ { name: s } ]
      filters: [ { type: URLRewrite, urlRewrite: { hostname: '*.a', path: { type: ReplacePrefixMatch, replacePrefixMatch: v2 } } } ]
",
            vec![
                "f.yaml:11:62: HTTPRoute/r.spec.rules[0].filters[0].urlRewrite.hostname: `*.a` is not a host name: no wildcard, it is where requests go",
                "f.yaml:11:123: HTTPRoute/r.spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch: `v2` must start with `/`",
            ],
        ),
    ];
    for (rules, want) in cases {
        assert_eq!(errors(rules), want, "{rules}");
    }
}
