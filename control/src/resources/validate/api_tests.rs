//! Gateway API documents as users write them: apiVersion, namespaces,
//! Service ports, parent and backend references in full, GRPCRoute,
//! TCPRoute, and every field ringmesh does not implement refused at its
//! place as "not supported", never as "unknown field".

use super::super::model::*;
use super::super::parse;

/// A set as it would be pasted from a Kubernetes cluster.
pub const API: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  labels: { app: web }
  annotations: { note: "pasted from kubectl" }
spec:
  type: ClusterIP
  selector: { app: web }
  endpoints: [127.0.0.1, "127.0.0.1:9443"]
  ports:
    - { name: http, port: 80, targetPort: 8080, protocol: TCP, appProtocol: http }
    - { name: grpc, port: 9090, appProtocol: kubernetes.io/h2c }
    - { name: admin, port: 9443 }
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: shop }
spec:
  endpoints: ["10.0.0.5"]
  ports: [ { name: pg, port: 5432, appProtocol: tcp } ]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web-canary, namespace: shop }
spec:
  parentRefs: [ { group: "", kind: Service, name: web, port: 80 } ]
  rules:
    - name: canary
      matches:
        - path: { type: PathPrefix, value: /cart }
          headers: [ { type: Exact, name: x-canary, value: "1" } ]
      backendRefs: [ { group: "", kind: Service, name: web, port: 9443, weight: 1 } ]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: infra }
spec:
  gatewayClassName: ringmesh
  listeners:
    - name: http
      port: 8080
      protocol: HTTP
      allowedRoutes: { namespaces: { from: All } }
    - name: pg
      address: "127.0.0.1:15432"
      port: 15432
      protocol: TCP
      allowedRoutes:
        namespaces: { from: All }
        kinds: [ { group: gateway.networking.k8s.io, kind: TCPRoute } ]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: shop }
spec:
  parentRefs: [ { name: edge, namespace: infra, sectionName: http } ]
  hostnames: [ shop.example.com ]
  rules:
    - matches: [ { path: { type: Exact, value: / } } ]
      backendRefs: [ { name: web, port: 80 } ]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: pg, namespace: shop }
spec:
  parentRefs: [ { name: edge, namespace: infra, sectionName: pg } ]
  rules: [ { backendRefs: [ { name: db, port: 5432 } ] } ]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: greeter, namespace: shop }
spec:
  parentRefs: [ { kind: Service, name: web } ]
  rules:
    - matches:
        - method: { type: Exact, service: helloworld.Greeter, method: SayHello }
          headers: [ { name: x-tenant, value: a } ]
        - method: { service: helloworld.Admin }
      backendRefs: [ { name: web, port: 9090 } ]
      timeouts: { request: 3s }
      retry: { attempts: 2, codes: [UNAVAILABLE, 4, resource-exhausted] }
"#;

fn files(text: &str) -> Vec<(String, String)> {
    vec![("api.yaml".to_string(), text.to_string())]
}

fn errors(text: &str) -> String {
    match parse(&files(text)) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn assert_has(text: &str, want: &[&str]) {
    for w in want {
        assert!(text.contains(w), "missing {w:?} in:\n{text}");
    }
}

#[test]
fn a_pasted_gateway_api_set_reads_as_written() {
    let r = parse(&files(API)).unwrap_or_else(|e| panic!("{e}"));
    // Names are qualified by namespace: `name.namespace`.
    assert_eq!(
        r.services.keys().collect::<Vec<_>>(),
        ["db.shop", "web.shop"]
    );
    let web = &r.services["web.shop"];
    assert_eq!(
        web.ports,
        [
            ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: 8080,
                app_protocol: AppProtocol::Http
            },
            ServicePort {
                name: Some("grpc".into()),
                port: 9090,
                target_port: 9090,
                app_protocol: AppProtocol::Http2
            },
            ServicePort {
                name: Some("admin".into()),
                port: 9443,
                target_port: 9443,
                app_protocol: AppProtocol::Unspecified
            },
        ]
    );
    // A bare host serves every port; `host:port` only the port it names.
    assert_eq!(web.port_endpoints(&web.ports[0]), ["127.0.0.1:8080"]);
    assert_eq!(
        web.port_endpoints(&web.ports[2]),
        ["127.0.0.1:9443", "127.0.0.1:9443"]
    );
    let canary = &r.routes["web-canary.shop"];
    assert_eq!(
        canary.parents,
        [Parent::Service {
            name: "web.shop".into(),
            port: Some(80)
        }]
    );
    assert_eq!(
        canary.rules[0].backends,
        [Backend {
            service: "web.shop".into(),
            port: Some(9443),
            cluster: "web.shop_9443".into(),
            weight: 1
        }]
    );
    // A parent with apiVersion is a Gateway by default, as in the API.
    assert_eq!(
        r.routes["web.shop"].parents,
        [Parent::Gateway {
            name: "edge.infra".into(),
            section: Some("http".into()),
            port: None
        }]
    );
    let edge = &r.gateways["edge.infra"];
    assert_eq!(edge.listeners[0].address.to_string(), "0.0.0.0:8080");
    assert_eq!(edge.listeners[0].allowed_namespace, None);
    assert_eq!(
        edge.listeners[0].kinds,
        [RouteKind::Http, RouteKind::Grpc],
        "what HTTP carries"
    );
    assert_eq!(edge.listeners[1].protocol, ListenerProtocol::Tcp);
    assert_eq!(edge.listeners[1].address.to_string(), "127.0.0.1:15432");
    assert_eq!(edge.listeners[1].kinds, [RouteKind::Tcp]);
    let pg = &r.tcp_routes["pg.shop"];
    assert_eq!(pg.backend.cluster, "db.shop_5432");
    let greeter = &r.grpc_routes["greeter.shop"];
    let rule = &greeter.rules[0];
    assert_eq!(
        rule.matches[0].grpc,
        Some(GrpcMethod {
            service: "helloworld.Greeter".into(),
            method: Some("SayHello".into())
        })
    );
    assert_eq!(rule.matches[0].headers, [("x-tenant".into(), "a".into())]);
    assert_eq!(
        rule.matches[1].grpc.as_ref().map(|g| g.method.clone()),
        Some(None)
    );
    assert_eq!(
        rule.retry,
        Some(Retry {
            attempts: 2,
            codes: Vec::new(),
            grpc: vec![
                "unavailable".into(),
                "deadline-exceeded".into(),
                "resource-exhausted".into()
            ],
            backoff: None,
        })
    );
    assert_eq!(rule.backends[0].cluster, "web.shop_9090");
}

#[test]
fn api_versions_are_checked_per_kind() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: Service\nmetadata: { name: s }\n";
    assert_eq!(
        errors(text),
        "api.yaml:1:13: apiVersion: `gateway.networking.k8s.io/v1` is not an apiVersion of Service: write `v1` (or leave apiVersion out)"
    );
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\nmetadata: { name: t }\nspec: { parentRefs: [], rules: [] }\n";
    assert!(
        errors(text).contains("write `gateway.networking.k8s.io/v1alpha2`"),
        "TCPRoute is v1alpha2 only"
    );
    for ok in [
        "apiVersion: v1\nkind: Service\nmetadata: { name: s }\n",
        "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: Gateway\nmetadata: { name: g }\nspec: { listeners: [ { name: l, port: 80 } ] }\n",
    ] {
        assert!(parse(&files(ok)).is_ok(), "{ok}");
    }
}

#[test]
fn namespaces_scope_names_and_references() {
    // The same name in two namespaces is two Services; a reference
    // resolves in its own namespace unless it names another.
    let text = "kind: Service\nmetadata: { name: s }\n---\nkind: Service\nmetadata: { name: s, namespace: team }\n---\nkind: HTTPRoute\nmetadata: { name: r, namespace: team }\nspec:\n  parentRefs: [ { name: s } ]\n  rules: [ { backendRefs: [ { name: s }, { name: s, namespace: default } ] } ]\n";
    let r = parse(&files(text)).unwrap_or_else(|e| panic!("{e}"));
    let route = &r.routes["r.team"];
    assert!(route.parents[0].is_service("s.team"));
    let clusters: Vec<&str> = route.rules[0]
        .backends
        .iter()
        .map(|b| b.cluster.as_str())
        .collect();
    assert_eq!(clusters, ["s.team", "s"]);
    let err = errors(&text.replace("namespace: default", "namespace: other"));
    assert_eq!(
        err,
        "api.yaml:11:50: HTTPRoute/team/r.spec.rules[0].backendRefs[1].name: no Service named `s` in namespace `other`"
    );
    let err = errors(&format!(
        "{text}---\nkind: Service\nmetadata: {{ name: s, namespace: team }}\n"
    ));
    assert!(
        err.contains("api.yaml:14:19: Service/team/s.metadata.name: `s` (namespace `team`) is defined twice; first at api.yaml:5"),
        "{err}"
    );
    let err = errors("kind: Service\nmetadata: { name: s, namespace: Team_A }\n");
    assert!(
        err.contains(
            "api.yaml:2:33: Service/Team_A/s.metadata.namespace: `Team_A` is not a valid name"
        ),
        "{err}"
    );
}

#[test]
fn fields_the_gateway_api_has_are_not_supported_not_unknown() {
    let route = |rule: &str| {
        format!("kind: Service\nmetadata: {{ name: s }}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{ name: r }}\nspec:\n  parentRefs: [ {{ kind: Service, name: s }} ]\n  rules:\n{rule}")
    };
    let cases = [
        (
            "    - matches: [ { path: { type: RegularExpression, value: /a.* } } ]\n      backendRefs: [ { name: s } ]\n",
            "api.yaml:10:34: HTTPRoute/r.spec.rules[0].matches[0].path.type: `RegularExpression` is not supported yet: use PathPrefix or Exact",
        ),
        (
            "    - matches: [ { headers: [ { type: RegularExpression, name: a, value: b } ] } ]\n      backendRefs: [ { name: s } ]\n",
            "api.yaml:10:39: HTTPRoute/r.spec.rules[0].matches[0].headers[0].type: `RegularExpression` is not supported yet: use Exact",
        ),
        (
            "    - matches: [ { queryParams: [ { name: a, value: b } ] } ]\n      backendRefs: [ { name: s } ]\n",
            "api.yaml:10:33: HTTPRoute/r.spec.rules[0].matches[0].queryParams: not supported yet: match on path, method and headers",
        ),
        (
            "    - filters: [ { type: CORS } ]\n      backendRefs: [ { name: s } ]\n",
            "api.yaml:10:26: HTTPRoute/r.spec.rules[0].filters[0].type: `CORS` is not supported yet: RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite and RequestMirror are",
        ),
        (
            "    - backendRefs: [ { name: s, filters: [] } ]\n",
            "api.yaml:10:42: HTTPRoute/r.spec.rules[0].backendRefs[0].filters: not supported yet",
        ),
        (
            "    - backendRefs: [ { name: s } ]\n      timeouts: { backendRequest: 1s }\n",
            "api.yaml:11:35: HTTPRoute/r.spec.rules[0].timeouts.backendRequest: not supported yet",
        ),
        (
            "    - backendRefs: [ { name: s } ]\n      sessionPersistence: { type: Cookie }\n",
            "HTTPRoute/r.spec.rules[0].sessionPersistence: not supported yet",
        ),
        // Not a Gateway API field: unknown, as before.
        (
            "    - backendRefs: [ { name: s } ]\n      mirror: { name: s }\n",
            "api.yaml:11:7: unknown field `mirror`",
        ),
    ];
    for (rule, want) in cases {
        let err = errors(&route(rule));
        assert!(err.contains(want), "{rule}: missing {want:?} in:\n{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let gateway = |spec: &str| format!("kind: Gateway\nmetadata: {{ name: g }}\nspec:\n{spec}");
    let cases = [
        (
            "  addresses: [ { value: 10.0.0.1 } ]\n  listeners: [ { name: l, port: 80 } ]\n",
            "api.yaml:4:14: Gateway/g.spec.addresses: not supported yet: a gateway proxy listens on its listeners' `address` or `port`",
        ),
        (
            "  listeners: [ { name: l, port: 80, allowedRoutes: { namespaces: { from: Selector } } } ]\n",
            "api.yaml:4:74: Gateway/g.spec.listeners[0].allowedRoutes.namespaces.from: `Selector` is not supported yet",
        ),
        (
            "  listeners: [ { name: l, port: 80, allowedRoutes: { kinds: [ { kind: TCPRoute } ] } } ]\n",
            "api.yaml:4:71: Gateway/g.spec.listeners[0].allowedRoutes.kinds[0].kind: `TCPRoute`: this listener's protocol carries HTTPRoute, GRPCRoute",
        ),
        (
            "  listeners: [ { name: l, port: 443, protocol: TLS } ]\n",
            "api.yaml:4:48: Gateway/g.spec.listeners[0].protocol: `TLS` is not supported: use HTTP, HTTPS or TCP",
        ),
        (
            "  listeners: [ { name: l } ]\n",
            "api.yaml:4:16: Gateway/g.spec.listeners[0].port: missing: the port to listen on",
        ),
        (
            "  listeners: [ { name: l, address: \"127.0.0.1:80\", port: 81 } ]\n",
            "api.yaml:4:58: Gateway/g.spec.listeners[0].port: 81 is not the port of `address` (127.0.0.1:80)",
        ),
        (
            "  listeners: [ { name: a, port: 80 }, { name: b, port: 80, protocol: TCP } ]\n",
            "Gateway/g.spec.listeners[1].protocol: listener `a` on 0.0.0.0:80 is HTTP",
        ),
    ];
    for (spec, want) in cases {
        let err = errors(&gateway(spec));
        assert!(err.contains(want), "{spec}: missing {want:?} in:\n{err}");
    }
}

#[test]
fn service_ports_and_the_ports_routes_name() {
    let svc = "kind: Service\nmetadata: { name: s }\nspec:\n  endpoints: [127.0.0.1]\n  ports: [ { name: http, port: 80 }, { name: raw, port: 81, appProtocol: tcp } ]\n---\nkind: Service\nmetadata: { name: plain }\nspec: { endpoints: [\"127.0.0.1:1\"] }\n---\n";
    let route = |backend: &str| {
        format!("{svc}kind: HTTPRoute\nmetadata: {{ name: r }}\nspec:\n  parentRefs: [ {{ name: s, sectionName: http }} ]\n  rules: [ {{ backendRefs: [ {backend} ] }} ]\n")
    };
    let r = parse(&files(&route("{ name: s, port: 80 }"))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.routes["r"].parents,
        [Parent::Service {
            name: "s".into(),
            port: Some(80)
        }],
        "sectionName names a port"
    );
    let cases = [
        (
            "{ name: s }",
            "api.yaml:15:29: HTTPRoute/r.spec.rules[0].backendRefs[0].port: missing: Service `s` has several ports; its ports: 80 (http), 81 (raw)",
        ),
        (
            "{ name: s, port: 8080 }",
            "api.yaml:15:46: HTTPRoute/r.spec.rules[0].backendRefs[0].port: Service `s` has no port 8080; its ports: 80 (http), 81 (raw)",
        ),
        (
            "{ name: s, port: 81 }",
            "HTTPRoute/r.spec.rules[0].backendRefs[0].port: port 81 of Service `s` is TCP (appProtocol: tcp): only a TCPRoute sends to it",
        ),
        (
            "{ name: plain, port: 80 }",
            "HTTPRoute/r.spec.rules[0].backendRefs[0].port: Service `plain` declares no ports: leave `port` out, or give the Service `spec.ports`",
        ),
        (
            "{ group: apps, name: s, port: 80 }",
            "HTTPRoute/r.spec.rules[0].backendRefs[0].group: `apps`: a backend is a Service (group \"\")",
        ),
        (
            "{ kind: Pod, name: s, port: 80 }",
            "HTTPRoute/r.spec.rules[0].backendRefs[0].kind: `Pod`: a backend is a Service",
        ),
        (
            "{ name: s, port: 70000 }",
            "HTTPRoute/r.spec.rules[0].backendRefs[0].port: 70000 is not a port: write 1 to 65535",
        ),
    ];
    for (backend, want) in cases {
        let err = errors(&route(backend));
        assert!(err.contains(want), "{backend}: missing {want:?} in:\n{err}");
    }
    let err =
        errors(&route("{ name: s, port: 80 }").replace("sectionName: http", "sectionName: web"));
    assert!(
        err.contains("api.yaml:14:41: HTTPRoute/r.spec.parentRefs[0].sectionName: Service `s` has no port named `web`; its ports: 80 (http), 81 (raw)"),
        "{err}"
    );
    let bad_ports = "kind: Service\nmetadata: { name: s }\nspec:\n  endpoints: [\"127.0.0.1:9\", \"h\"]\n  ports:\n    - { port: 80, targetPort: http, appProtocol: HTTP }\n    - { port: 0, protocol: UDP }\n    - { port: 80 }\n";
    let err = errors(bad_ports);
    assert_has(
        &err,
        &[
            "api.yaml:6:31: Service/s.spec.ports[0].targetPort: `http`: named target ports are not supported yet: write the number",
            "api.yaml:6:50: Service/s.spec.ports[0].appProtocol: `HTTP` is not supported (did you mean `http`?)",
            "api.yaml:7:15: Service/s.spec.ports[1].port: 0 is not a port: write 1 to 65535",
            "api.yaml:7:28: Service/s.spec.ports[1].protocol: `UDP` is not supported: the proxy carries TCP only",
        ],
    );
    let dup = "kind: Service\nmetadata: { name: s }\nspec:\n  endpoints: [\"127.0.0.1:9\"]\n  ports: [ { port: 80 }, { port: 80 } ]\n";
    assert_has(
        &errors(dup),
        &[
            "api.yaml:4:15: Service/s.spec.endpoints[0]: port 9 is the targetPort of none of this Service's ports (80)",
            "api.yaml:5:34: Service/s.spec.ports[1].port: `80` is defined twice; first at api.yaml:5",
        ],
    );
    let bare = "kind: Service\nmetadata: { name: s }\nspec: { endpoints: [a.internal] }\n";
    assert!(
        errors(bare).contains("Service/s.spec.endpoints[0]: `a.internal` has no port"),
        "a bare host needs ports to take theirs"
    );
}

#[test]
fn parent_refs_as_the_gateway_api_reads_them() {
    let base = "kind: Service\nmetadata: { name: s }\n---\nkind: Gateway\nmetadata: { name: g, namespace: infra }\nspec:\n  listeners:\n    - { name: web, port: 80 }\n    - { name: all, port: 81, allowedRoutes: { namespaces: { from: All } } }\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: r }\nspec:\n";
    let route = |parents: &str| {
        format!("{base}  parentRefs: [ {parents} ]\n  rules: [ {{ backendRefs: [ {{ name: s }} ] }} ]\n")
    };
    let r = parse(&files(&route("{ name: g, namespace: infra, port: 81 }")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.routes["r"].parents,
        [Parent::Gateway {
            name: "g.infra".into(),
            section: None,
            port: Some(81)
        }]
    );
    let cases = [
        (
            "{ name: g, namespace: infra, sectionName: web }",
            "api.yaml:15:25: HTTPRoute/r.spec.parentRefs[0].name: Gateway `g` does not take this route: its listeners here allow routes from their Gateway's namespace only (`allowedRoutes.namespaces.from: Same`, the default), not from `default`",
        ),
        (
            "{ name: g, namespace: infra, sectionName: api }",
            "api.yaml:15:59: HTTPRoute/r.spec.parentRefs[0].sectionName: Gateway `g` has no listener named `api`; its listeners: web (80), all (81)",
        ),
        (
            "{ name: g, namespace: infra, port: 82 }",
            "api.yaml:15:52: HTTPRoute/r.spec.parentRefs[0].port: Gateway `g` has no listener on port 82",
        ),
        (
            "{ name: s }",
            "api.yaml:15:25: HTTPRoute/r.spec.parentRefs[0].name: no Gateway named `s`: a parent is a Gateway unless it says otherwise (the Gateway API's default, read in a document with apiVersion); for the mesh, write `kind: Service`",
        ),
        (
            "{ group: core, name: s, port: 80 }",
            "api.yaml:15:47: HTTPRoute/r.spec.parentRefs[0].port: Service `s` has no port 80: it declares none",
        ),
        (
            "{ group: gateway.networking.k8s.io, kind: Service, name: s }",
            "api.yaml:15:26: HTTPRoute/r.spec.parentRefs[0].group: `gateway.networking.k8s.io` is not the group of a Service: write \"\" (or core)",
        ),
        (
            "{ kind: Namespace, name: s }",
            "HTTPRoute/r.spec.parentRefs[0].kind: a parent is a Service or a Gateway, not `Namespace`",
        ),
    ];
    for (parents, want) in cases {
        let err = errors(&route(parents));
        assert!(err.contains(want), "{parents}: missing {want:?} in:\n{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // Without apiVersion, ringmesh's short form: a Service.
    let short = route("{ name: s }").replace("apiVersion: gateway.networking.k8s.io/v1\n", "");
    assert!(parse(&files(&short)).is_ok());
}

#[test]
fn tcp_routes_and_tcp_listeners() {
    let base = "kind: Service\nmetadata: { name: db }\nspec: { endpoints: [\"127.0.0.1:5432\"] }\n---\nkind: Service\nmetadata: { name: db2 }\nspec: { endpoints: [\"127.0.0.1:5433\"] }\n---\nkind: Gateway\nmetadata: { name: g }\nspec:\n  listeners:\n    - { name: pg, address: \"127.0.0.1:15432\", protocol: TCP }\n    - { name: web, address: \"127.0.0.1:8080\" }\n---\n";
    let tcp = |spec: &str| format!("{base}kind: TCPRoute\nmetadata: {{ name: t }}\nspec:\n{spec}");
    let ok = tcp("  parentRefs: [ { kind: Gateway, name: g } ]\n  rules: [ { backendRefs: [ { name: db } ] } ]\n");
    let r = parse(&files(&ok)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.tcp_routes["t"].backend.cluster, "db");
    // No route: the listener has nothing to relay to.
    let err = errors(&base[..base.len() - 4]);
    assert_eq!(
        err,
        "api.yaml:13:57: Gateway/g.spec.listeners[0]: no TCPRoute attaches to this TCP listener: it would have nowhere to relay connections (a TCP listener is programmed with its route, and the proxy binds listeners at start)"
    );
    let cases = [
        (
            "  parentRefs: [ { kind: Gateway, name: g } ]\n  rules: [ { backendRefs: [ { name: db, weight: 90 }, { name: db2, weight: 10 } ] } ]\n",
            "api.yaml:20:55: TCPRoute/t.spec.rules[0].backendRefs[1]: more than one backend is not supported yet: the proxy relays a TCP listener to one Service port",
        ),
        (
            "  parentRefs: [ { kind: Gateway, name: g } ]\n  rules: [ { backendRefs: [ { name: db } ] }, { backendRefs: [ { name: db2 } ] } ]\n",
            "api.yaml:20:47: TCPRoute/t.spec.rules[1]: more than one rule is not supported yet",
        ),
        (
            "  parentRefs: [ { kind: Gateway, name: g, sectionName: web } ]\n  rules: [ { backendRefs: [ { name: db } ] } ]\n",
            "api.yaml:19:40: TCPRoute/t.spec.parentRefs[0].name: Gateway `g` does not take this route: its listeners here take HTTPRoute, GRPCRoute (by protocol or `allowedRoutes.kinds`), not TCPRoutes",
        ),
        (
            "  parentRefs: [ { kind: Service, name: db } ]\n  rules: [ { backendRefs: [ { name: db } ] } ]\n",
            "api.yaml:19:25: TCPRoute/t.spec.parentRefs[0].kind: a TCPRoute attaches to a Gateway listener: sidecars carry HTTP and gRPC only",
        ),
    ];
    for (spec, want) in cases {
        let err = errors(&tcp(spec));
        assert!(err.contains(want), "{spec}: missing {want:?} in:\n{err}");
    }
    // Two routes on one listener: the proxy relays it to one backend.
    let two = format!("{ok}---\nkind: TCPRoute\nmetadata: {{ name: u }}\nspec:\n  parentRefs: [ {{ kind: Gateway, name: g }} ]\n  rules: [ {{ backendRefs: [ {{ name: db2 }} ] }} ]\n");
    assert!(
        errors(&two).contains(
            "Gateway/g.spec.listeners[0]: 2 TCPRoutes attach to this TCP listener (t, u)"
        ),
        "{}",
        errors(&two)
    );
    // TCP listeners cannot share an address, nor take a hostname or TLS.
    let shared = ok.replace(
        "    - { name: web, address: \"127.0.0.1:8080\" }",
        "    - { name: web, address: \"127.0.0.1:15432\", protocol: TCP, hostname: a.example, tls: { certificateRefs: [] } }",
    );
    assert_has(
        &errors(&shared),
        &[
            "Gateway/g.spec.listeners[1].port: listener `pg` is on 127.0.0.1:15432 already: TCP listeners cannot share an address",
            "Gateway/g.spec.listeners[1].hostname: a TCP listener has no host name to match",
            "Gateway/g.spec.listeners[1].tls: `tls` is for `protocol: HTTPS` listeners (TLS passthrough is not supported yet)",
        ],
    );
}

#[test]
fn grpc_route_errors_at_their_fields() {
    let base = "kind: Service\nmetadata: { name: s }\nspec: { ports: [ { name: h, port: 80, appProtocol: http }, { name: g, port: 90 } ] }\n---\nkind: GRPCRoute\nmetadata: { name: r }\nspec:\n  parentRefs: [ { name: s } ]\n  rules:\n";
    let ok = format!(
        "{base}    - backendRefs: [ {{ name: s, port: 90 }} ]\n      retry: {{ attempts: 1 }}\n"
    );
    let r = parse(&files(&ok)).unwrap_or_else(|e| panic!("{e}"));
    let rule = &r.grpc_routes["r"].rules[0];
    assert_eq!(
        rule.matches[0].grpc,
        Some(GrpcMethod {
            service: String::new(),
            method: None
        }),
        "no match: every gRPC request"
    );
    assert_eq!(
        rule.retry.as_ref().map(|r| r.grpc.clone()),
        Some(vec!["unavailable".to_string()]),
        "the default retried status"
    );
    let cases = [
        (
            "    - matches: [ { method: { method: SayHello } } ]\n      backendRefs: [ { name: s, port: 90 } ]\n",
            "api.yaml:10:38: GRPCRoute/r.spec.rules[0].matches[0].method.service: a method of any service is not supported yet: name its `service` too",
        ),
        (
            "    - matches: [ { method: { type: RegularExpression, service: a.B } } ]\n      backendRefs: [ { name: s, port: 90 } ]\n",
            "api.yaml:10:36: GRPCRoute/r.spec.rules[0].matches[0].method.type: `RegularExpression` is not supported yet: use Exact",
        ),
        (
            "    - matches: [ { method: { service: a/B } } ]\n      backendRefs: [ { name: s, port: 90 } ]\n",
            "GRPCRoute/r.spec.rules[0].matches[0].method.service: `a/B` is not a gRPC service name",
        ),
        (
            "    - backendRefs: [ { name: s, port: 80 } ]\n",
            "api.yaml:10:39: GRPCRoute/r.spec.rules[0].backendRefs[0].port: port 80 of Service `s` speaks HTTP/1.1 (its appProtocol): gRPC needs HTTP/2",
        ),
        (
            "    - backendRefs: [ { name: s, port: 90 } ]\n      retry: { attempts: 2, codes: [NOT_FOUND, 2, unavailabel] }\n",
            "api.yaml:11:37: GRPCRoute/r.spec.rules[0].retry.codes[0]: `NOT_FOUND` is not a gRPC status retried: use cancelled (1), deadline-exceeded (4), resource-exhausted (8), internal (13), unavailable (14)",
        ),
        (
            "    - backendRefs: [ { name: s, port: 90 } ]\n      retry: { attempts: 2, codes: [unavailabel] }\n",
            "GRPCRoute/r.spec.rules[0].retry.codes[0]: `unavailabel` is not a gRPC status retried (did you mean `unavailable`?)",
        ),
        (
            "    - backendRefs: [ { name: s, port: 90 } ]\n      fault: { abort: { httpStatus: 503, percent: 1 } }\n",
            "api.yaml:11:7: unknown field `fault`",
        ),
    ];
    for (rule, want) in cases {
        let err = errors(&format!("{base}{rule}"));
        assert!(err.contains(want), "{rule}: missing {want:?} in:\n{err}");
    }
}
