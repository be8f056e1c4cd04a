//! TrafficPolicy documents as read, and every error at its
//! file:line:column and path.

use std::time::Duration;

use super::super::model::*;
use super::parse;

/// Two Services in `shop`, one policy using every field.
pub(crate) const POLICY: &str = "apiVersion: v1
kind: Service
metadata: { name: orders, namespace: shop }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
---
apiVersion: ringmesh.io/v1alpha1
kind: TrafficPolicy
metadata: { name: orders, namespace: shop }
spec:
  targetRefs: [ { kind: Service, name: orders } ]
  loadBalancer:
    simple: RING_HASH
    consistentHash: { httpHeaderName: X-User, ringPoints: 64 }
  connectionPool:
    tcp: { maxConnections: 100, connectTimeout: 250ms }
    http: { http1MaxPendingRequests: 10, http2MaxRequests: 50, maxRetries: 2, idleTimeout: 3s }
  outlierDetection:
    consecutive5xxErrors: 3
    consecutiveGatewayErrors: 2
    interval: 5s
    baseEjectionTime: 15s
    maxEjectionPercent: 50
    successRate: { minimumHosts: 3 }
  retryBudget: { percent: 25, minRetriesPerSecond: 5 }
  rateLimit: { requestsPerSecond: 100, burst: 20, per: { header: x-api-key } }
  panicThreshold: 30
";

fn files(text: &str) -> Vec<(String, String)> {
    vec![("tp.yaml".to_string(), text.to_string())]
}

fn errors(text: &str) -> Vec<String> {
    match parse(&files(text)) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

#[test]
fn a_traffic_policy_reads_as_written() {
    let r = parse(&files(POLICY)).unwrap_or_else(|e| panic!("{e}"));
    let p = &r.traffic_policies["orders.shop"];
    assert_eq!(p.targets, ["orders.shop"]);
    assert_eq!(
        p.load_balancer,
        Some(LoadBalancer {
            kind: LbKind::RingHash,
            hash: Some(HashKey::Header("x-user".into())),
            ring_points: Some(64),
            table_size: None,
            half_life: None,
            default_rtt: None,
        })
    );
    assert_eq!(
        p.breakers,
        Breakers {
            max_connections: Some(100),
            max_pending_requests: Some(10),
            max_requests: Some(50),
            max_retries: Some(2),
        }
    );
    assert_eq!(p.connect_timeout, Some(Duration::from_millis(250)));
    assert_eq!(p.idle_timeout, Some(Duration::from_secs(3)));
    let o = p.outlier.as_ref().unwrap();
    assert_eq!(
        (o.consecutive_5xx, o.consecutive_gateway_errors),
        (Some(3), Some(2))
    );
    assert_eq!(o.base_ejection_time, Some(Duration::from_secs(15)));
    assert_eq!(o.success_rate, Some((Some(3), None, None)));
    assert_eq!(
        p.rate_limit,
        Some(RateLimit {
            requests_per_second: 100.0,
            burst: 20,
            per: Some(Some("x-api-key".into())),
        })
    );
    assert_eq!(p.panic_threshold, Some(30.0));
    assert!(r.traffic_policy_for("orders.shop").is_some());
    assert!(r.traffic_policy_for("web.shop").is_none());
    // Istio's consistentHash alone picks ring hash, or Maglev.
    let maglev = POLICY.replace(
        "simple: RING_HASH\n    consistentHash: { httpHeaderName: X-User, ringPoints: 64 }",
        "consistentHash: { useSourceIp: true, maglev: { tableSize: 65537 } }",
    );
    let r = parse(&files(&maglev)).unwrap_or_else(|e| panic!("{e}"));
    let lb = r.traffic_policies["orders.shop"]
        .load_balancer
        .clone()
        .unwrap();
    assert_eq!(
        (lb.kind, lb.hash, lb.table_size),
        (LbKind::Maglev, Some(HashKey::SourceIp), Some(65537))
    );
}

#[test]
fn every_traffic_policy_error_at_its_field() {
    let bad = "apiVersion: v1
kind: Service
metadata: { name: orders, namespace: shop }
---
apiVersion: ringmesh.io/v1alpha1
kind: TrafficPolicy
metadata: { name: bad, namespace: shop }
spec:
  targetRefs: [ { kind: Gateway, name: orders }, { name: ordres }, { name: orders, namespace: other } ]
  loadBalancer: { simple: LEAST_REQUEST, consistentHash: { httpHeaderName: x }, peakEwma: { halfLife: 1s } }
  connectionPool: { tcp: { maxConnections: 0, tcpKeepalive: {} }, http: { maxRetries: 3 } }
  circuitBreaker: { maxRetries: 4 }
  outlierDetection: { baseEjectionTime: 30s, maxEjectionTime: 10s, maxEjectionPercent: 120, minHealthPercent: 50 }
  retryBudget: { percent: -1 }
  rateLimit: { requestsPerSecond: 0, per: { header: 'a b' } }
  panicThreshold: 101
  healthCheck: { interval: 0s, healthyThreshold: 0, http: { path: x, expectedStatuses: [700, '300-200'] } }
";
    assert_eq!(
        errors(bad),
        [
            "tp.yaml:9:25: TrafficPolicy/shop/bad.spec.targetRefs[0].kind: `Gateway`: a TrafficPolicy applies to Services",
            "tp.yaml:9:58: TrafficPolicy/shop/bad.spec.targetRefs[1].name: no Service named `ordres` in namespace `shop` (did you mean `orders.shop`?)",
            "tp.yaml:9:95: TrafficPolicy/shop/bad.spec.targetRefs[2].namespace: `other`: a TrafficPolicy applies to Services of its own namespace (`shop`), as in Istio",
            "tp.yaml:10:58: TrafficPolicy/shop/bad.spec.loadBalancer.consistentHash: goes with `simple: RING_HASH` or `MAGLEV` (or no `simple`)",
            "tp.yaml:10:91: TrafficPolicy/shop/bad.spec.loadBalancer.peakEwma: goes with `simple: PEAK_EWMA`",
            "tp.yaml:11:44: TrafficPolicy/shop/bad.spec.connectionPool.tcp.maxConnections: must be at least 1",
            "tp.yaml:11:61: TrafficPolicy/shop/bad.spec.connectionPool.tcp.tcpKeepalive: not supported yet",
            "tp.yaml:12:33: TrafficPolicy/shop/bad.spec.circuitBreaker.maxRetries: also set as TrafficPolicy/shop/bad.spec.connectionPool.http.maxRetries: set it in one place",
            "tp.yaml:13:63: TrafficPolicy/shop/bad.spec.outlierDetection.maxEjectionTime: `10s` is shorter than baseEjectionTime",
            "tp.yaml:13:88: TrafficPolicy/shop/bad.spec.outlierDetection.maxEjectionPercent: `120` is not a percentage from 0 to 100",
            "tp.yaml:13:111: TrafficPolicy/shop/bad.spec.outlierDetection.minHealthPercent: not supported yet: `panicThreshold` says when every endpoint gets traffic again",
            "tp.yaml:14:27: TrafficPolicy/shop/bad.spec.retryBudget.percent: `-1` is not a percentage from 0 to 100",
            "tp.yaml:15:14: TrafficPolicy/shop/bad.spec.rateLimit.burst: missing: requests taken at once after a quiet spell (at least 1)",
            "tp.yaml:15:35: TrafficPolicy/shop/bad.spec.rateLimit.requestsPerSecond: 0: must be a number more than 0",
            "tp.yaml:15:53: TrafficPolicy/shop/bad.spec.rateLimit.per.header: `a b` is not a header name",
            "tp.yaml:16:19: TrafficPolicy/shop/bad.spec.panicThreshold: `101` is not a percentage from 0 to 100",
            "tp.yaml:17:28: TrafficPolicy/shop/bad.spec.healthCheck.interval: must be more than 0",
            "tp.yaml:17:50: TrafficPolicy/shop/bad.spec.healthCheck.healthyThreshold: `0`: must be from 1 to 4294967295",
            "tp.yaml:17:67: TrafficPolicy/shop/bad.spec.healthCheck.http.path: `x`: must start with / and hold no spaces or control characters",
            "tp.yaml:17:89: TrafficPolicy/shop/bad.spec.healthCheck.http.expectedStatuses[0]: must be a status from 100 to 599, or a range like \"200-299\"",
            "tp.yaml:17:94: TrafficPolicy/shop/bad.spec.healthCheck.http.expectedStatuses[1]: must be a status from 100 to 599, or a range like \"200-299\"",
        ]
    );
}

#[test]
fn a_service_takes_one_traffic_policy_and_targets_are_required() {
    let second = format!(
        "{POLICY}---\napiVersion: ringmesh.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {{ name: more, namespace: shop }}\nspec:\n  targetRefs: [ {{ kind: Service, name: web }}, {{ kind: Service, name: orders }} ]\n"
    );
    assert_eq!(
        errors(&second),
        ["tp.yaml:35:70: TrafficPolicy/shop/more.spec.targetRefs[1].name: Service `orders.shop` already has a TrafficPolicy: orders.shop (tp.yaml:13); a Service takes one (merge them)"]
    );
    let none = "apiVersion: ringmesh.io/v1alpha1\nkind: TrafficPolicy\nmetadata: { name: p }\nspec: { panicThreshold: 10 }\n";
    assert_eq!(
        errors(none),
        ["tp.yaml:2:7: TrafficPolicy/p.spec.targetRefs: missing: the Services this policy applies to (`- { kind: Service, name: ... }`)"]
    );
    let version = POLICY.replace("ringmesh.io/v1alpha1", "networking.istio.io/v1");
    assert!(
        errors(&version)[0].contains("`networking.istio.io/v1` is not an apiVersion of TrafficPolicy: write `ringmesh.io/v1alpha1`"),
        "{:?}",
        errors(&version)
    );
}
