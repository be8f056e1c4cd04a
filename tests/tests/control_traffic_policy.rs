//! TrafficPolicy and HTTPRoute filters end to end, all real processes:
//! `ringmeshctl apply` of a TrafficPolicy reconfigures the running
//! sidecars without a restart (the caller's cluster shows the policy's
//! balancer and outlier detection in `/config_dump`; the callee's
//! sidecar answers 429 past the policy's rate limit), and an HTTPRoute's
//! RequestRedirect, URLRewrite and RequestHeaderModifier act through a
//! sidecar. Also: what the control plane accepts, the proxy accepts.

use std::time::Duration;

use ringmesh_control::compile::{compile, Workloads};
use ringmesh_control::resources;
use ringmesh_proto::v1 as pb;
use ringmesh_proxy::config;
use ringmesh_tests::control::{ctl, sidecar, ControlPlane};
use ringmesh_tests::{closed_port, eventually, Client, Proxy, Upstream};
use serde_json::Value;

const MESH: &str = "apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
---
apiVersion: v1
kind: Service
metadata: { name: orders, namespace: shop }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: orders, namespace: shop }
spec:
  parentRefs: [ { kind: Service, name: orders } ]
  rules:
    - matches: [ { path: { type: PathPrefix, value: /old } } ]
      filters:
        - type: RequestRedirect
          requestRedirect: { hostname: shop.example, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new }, statusCode: 301 }
    - matches: [ { path: { type: PathPrefix, value: /api } } ]
      backendRefs: [ { name: orders } ]
      filters:
        - type: URLRewrite
          urlRewrite: { hostname: orders.internal, path: { type: ReplacePrefixMatch, replacePrefixMatch: / } }
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [ { name: x-tier, value: gold } ], remove: [ x-debug ] }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [ { name: x-served-by, value: mesh } ] }
";

const POLICY: &str = "apiVersion: ringmesh.io/v1alpha1
kind: TrafficPolicy
metadata: { name: orders, namespace: shop }
spec:
  targetRefs: [ { kind: Service, name: orders } ]
  loadBalancer: { simple: LEAST_REQUEST }
  outlierDetection: { consecutive5xxErrors: 3, baseEjectionTime: 15s }
  circuitBreaker: { maxRequests: 64 }
  rateLimit: { requestsPerSecond: 0.1, burst: 1 }
";

/// The cluster named `name` in a proxy's `/config_dump`.
fn dumped_cluster(p: &Proxy, name: &str) -> Option<Value> {
    fn find(v: &Value, name: &str) -> Option<Value> {
        match v {
            Value::Object(m) => {
                if let Some(Value::Array(list)) = m.get("clusters") {
                    if let Some(c) = list.iter().find(|c| c["name"] == name) {
                        return Some(c.clone());
                    }
                }
                m.values().find_map(|x| find(x, name))
            }
            Value::Array(a) => a.iter().find_map(|x| find(x, name)),
            _ => None,
        }
    }
    let (status, dump) = p.admin_get("/config_dump");
    assert_eq!(status, 200);
    find(&serde_json::from_str(&dump).expect("JSON dump"), name)
}

#[test]
fn a_traffic_policy_and_route_filters_reach_running_sidecars() {
    let resources_dir = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::write(resources_dir.path().join("mesh.yaml"), MESH).expect("write");
    let cp = ControlPlane::start(resources_dir.path(), "127.0.0.1:0".parse().expect("addr"));
    let app = Upstream::start("orders-app");
    let (orders, _, _) = sidecar(cp.addr, "orders-1", "orders.shop", app.addr);
    let (web, _, web_outbound) = sidecar(cp.addr, "web-1", "web.shop", closed_port());
    eventually("web reaches orders", Duration::from_secs(20), || {
        Client::connect(web_outbound).get("/", "orders.shop").status == 200
    });

    // The route's filters, through web's sidecar (and orders' behind it).
    let mut c = Client::connect(web_outbound);
    let r = c.get("/old/cart?id=7", "orders.shop");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("http://shop.example/new/cart?id=7")
    );
    let r = c.request(
        b"GET /api/headers?x=1 HTTP/1.1\r\nHost: orders.shop\r\nX-Tier: bronze\r\nX-Debug: 1\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-served-by"), Some("mesh"));
    let head = r.text().to_ascii_lowercase();
    assert!(head.starts_with("get /headers?x=1 http/1.1\r\n"), "{head}");
    assert!(head.contains("host: orders.internal\r\n"), "{head}");
    assert!(
        head.contains("x-tier: gold\r\n") && !head.contains("bronze"),
        "{head}"
    );
    assert!(!head.contains("x-debug"), "{head}");

    // No policy yet: the proxy's defaults.
    let before = dumped_cluster(&web, "orders.shop").expect("orders' cluster");
    assert!(
        before.get("outlier_detection").is_none_or(Value::is_null),
        "{before}"
    );
    let (web_before, orders_before) = (web.applied(), orders.applied());
    cp.apply(work.path(), "policy.yaml", POLICY);
    eventually(
        "both sidecars take the policy",
        Duration::from_secs(10),
        || web.applied() > web_before && orders.applied() > orders_before,
    );
    let after = dumped_cluster(&web, "orders.shop").expect("orders' cluster");
    assert_eq!(after["lb"], "least_request", "{after}");
    assert_eq!(after["outlier_detection"]["consecutive_5xx"], 3, "{after}");
    assert_eq!(after["circuit_breaker"]["max_requests"], 64, "{after}");
    assert!(
        dumped_cluster(&web, "web.shop").is_some_and(|w| w.get("lb").is_none_or(Value::is_null)),
        "other Services keep their defaults"
    );

    // orders' sidecar limits the calls it takes: 0.1/s, one token per
    // worker. One connection lands on one worker of web's sidecar, whose
    // mTLS connection lands on one of orders': the second call is refused.
    let mut c = Client::connect(web_outbound);
    let codes: Vec<u16> = (0..4).map(|_| c.get("/", "orders.shop").status).collect();
    assert!(codes.contains(&429), "{codes:?}");
    let refused = c.get("/", "orders.shop");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("ringmesh-error"), Some("rate_limited"));
    assert!(
        orders
            .metric(r#"ringmesh_rate_limited_total{listener="inbound",route="inbound"}"#)
            .is_some_and(|n| n >= 1),
        "orders' inbound route counted the refusals"
    );

    let (code, out, err) = ctl(cp.addr, &["get", "trafficpolicies"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("orders.shop") && out.contains("Service/orders.shop"),
        "{out}"
    );
    assert!(out.contains("rateLimit 0.1/s burst 1"), "{out}");

    // Deleted: the limit goes, without a restart.
    let before = orders.applied();
    let (code, out, err) = ctl(cp.addr, &["delete", "trafficpolicy", "orders.shop"]);
    assert_eq!(code, 0, "{out}{err}");
    eventually(
        "orders takes the config without it",
        Duration::from_secs(10),
        || orders.applied() > before,
    );
    let mut c = Client::connect(web_outbound);
    for _ in 0..4 {
        assert_eq!(c.get("/", "orders.shop").status, 200);
    }
}

#[test]
fn what_the_control_plane_accepts_the_proxy_accepts() {
    let text = format!(
        "{MESH}---
apiVersion: ringmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {{ name: web, namespace: shop }}
spec:
  targetRefs: [ {{ kind: Service, name: web }} ]
  loadBalancer: {{ consistentHash: {{ httpCookie: {{ name: sid }}, maglev: {{ tableSize: 17 }} }} }}
  connectionPool:
    tcp: {{ maxConnections: 7, connectTimeout: 100ms }}
    http: {{ http1MaxPendingRequests: 1, http2MaxRequests: 2, maxRetries: 1, idleTimeout: 1s }}
  outlierDetection: {{ consecutive5xxErrors: 0, consecutiveGatewayErrors: 1, interval: 1s, baseEjectionTime: 1s, maxEjectionTime: 2s, maxEjectionPercent: 100, successRate: {{ minimumHosts: 1, requestVolume: 1, stdevFactor: 0.5 }} }}
  retryBudget: {{ percent: 0, minRetriesPerSecond: 0 }}
  rateLimit: {{ requestsPerSecond: 1000, burst: 1, per: source }}
  panicThreshold: 0
---
{POLICY}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: web, namespace: shop }}
spec:
  parentRefs: [ {{ kind: Service, name: web }} ]
  rules:
    - filters: [ {{ type: RequestRedirect, requestRedirect: {{ scheme: https, port: 443, path: {{ type: ReplacePrefixMatch, replacePrefixMatch: '' }} }} }} ]
    - matches: [ {{ path: {{ type: Exact, value: /x }} }} ]
      backendRefs: [ {{ name: web }} ]
      retry: {{ attempts: 2, backoff: 0s }}
      filters: [ {{ type: URLRewrite, urlRewrite: {{ hostname: '[::1]', path: {{ type: ReplaceFullPath, replaceFullPath: /y }} }} }} ]
"
    );
    let res = resources::parse(&[("all.yaml".into(), text)]).unwrap_or_else(|e| panic!("{e}"));
    for service in ["web.shop", "orders.shop"] {
        let node = pb::Node {
            id: "n-1".into(),
            service: service.into(),
            role: pb::Role::Sidecar as i32,
            workload_address: "127.0.0.1:7000".into(),
            inbound_address: "127.0.0.1:7001".into(),
            outbound_address: "127.0.0.1:7002".into(),
        };
        let wire = compile(&res, &node, &Workloads::new()).unwrap_or_else(|e| panic!("{e}"));
        config::validate(
            &config::proto::to_raw(&wire),
            "snapshot",
            ringmesh_proxy::tls::mesh::IdentitySource::Issued(None),
        )
        .unwrap_or_else(|e| {
            panic!("{service}: the proxy refuses what the control plane sent: {e}")
        });
    }
}
