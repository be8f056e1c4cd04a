//! A TrafficPolicy on the clusters of its Services, on every proxy that
//! calls them, and its rate limit on their sidecars' inbound route.

use super::fixtures::*;
use super::*;
use crate::resources::validate_traffic_policy_mesh as policy;

fn dur(ms: u64) -> Option<prost_types::Duration> {
    Some(duration(std::time::Duration::from_millis(ms)))
}

#[test]
fn a_policy_sets_its_services_clusters_on_every_caller() {
    let res = resources(policy());
    let gateway = format!(
        "{}---\nkind: Gateway\nmetadata: {{ name: edge, namespace: shop }}\nspec: {{ listeners: [ {{ name: web, port: 8080 }} ] }}\n",
        policy()
    );
    for config in [
        compile(&res, &sidecar_of("web.shop"), &Workloads::new()),
        compile(
            &resources(&gateway),
            &gateway_of("edge.shop"),
            &Workloads::new(),
        ),
    ] {
        let c = config.unwrap_or_else(|e| panic!("{e}"));
        let orders = cluster(&c, "orders.shop");
        assert_eq!(orders.lb, pb::LbPolicy::RingHash as i32);
        assert_eq!(
            orders.hash,
            Some(pb::Hash {
                on: Some(pb::hash::On::Header("x-user".into())),
                table_size: None,
                ring_points: Some(64),
            })
        );
        assert_eq!(
            orders.circuit_breaker,
            Some(pb::CircuitBreaker {
                max_connections: Some(100),
                max_pending_requests: Some(10),
                max_requests: Some(50),
                max_retries: Some(2),
            })
        );
        assert_eq!(orders.connect_timeout, dur(250));
        assert_eq!(orders.pool.as_ref().and_then(|p| p.idle_timeout), dur(3000));
        let o = orders
            .outlier_detection
            .as_ref()
            .expect("outlier detection");
        assert_eq!(
            (o.consecutive_5xx, o.consecutive_gateway_errors),
            (Some(3), Some(2))
        );
        assert_eq!((o.interval, o.base_ejection_time), (dur(5000), dur(15000)));
        assert_eq!(o.max_ejection_percent, Some(50.0));
        assert_eq!(
            orders.retry_budget,
            Some(pb::RetryBudget {
                percent: Some(25.0),
                min_per_second: Some(5),
            })
        );
        assert_eq!(orders.panic_threshold, Some(30.0));
        // Another Service's cluster is as it was.
        let web = cluster(&c, "web.shop");
        assert_eq!(
            (web.lb, &web.outlier_detection, web.panic_threshold),
            (0, &None, None)
        );
    }
}

#[test]
fn the_rate_limit_is_on_the_target_services_sidecars_inbound_route() {
    let res = resources(policy());
    let c = compile(&res, &sidecar_of("orders.shop"), &Workloads::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let inbound = &listener(&c, "inbound").routes[0];
    assert_eq!(
        inbound.rate_limit,
        Some(pb::RateLimit {
            requests_per_second: 100.0,
            burst: 20,
            per: Some(pb::rate_limit::Per::PerHeader("x-api-key".into())),
        })
    );
    // Not on its outbound calls, nor on another Service's sidecar.
    assert!(listener(&c, "outbound")
        .routes
        .iter()
        .all(|r| r.rate_limit.is_none()));
    let web = compile(&res, &sidecar_of("web.shop"), &Workloads::new()).unwrap();
    assert_eq!(listener(&web, "inbound").routes[0].rate_limit, None);
}

#[test]
fn every_port_of_a_service_gets_the_policy() {
    let text = policy().replace(
        "metadata: { name: orders, namespace: shop }\n---",
        "metadata: { name: orders, namespace: shop }\nspec: { ports: [ { port: 80 }, { port: 9090, appProtocol: grpc } ] }\n---",
    );
    let c = compile(
        &resources(&text),
        &sidecar_of("web.shop"),
        &Workloads::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for name in ["orders.shop_80", "orders.shop_9090"] {
        assert_eq!(cluster(&c, name).panic_threshold, Some(30.0), "{name}");
    }
}

#[test]
fn a_health_check_runs_over_http_to_plain_endpoints_and_tcp_to_sidecars() {
    let text = format!(
        "{}  healthCheck: {{ interval: 2s, unhealthyThreshold: 2, http: {{ path: /healthz, expectedStatuses: [200, '300-302'] }} }}\n",
        policy()
    );
    let res = resources(&text);
    let plain = compile(&res, &sidecar_of("web.shop"), &Workloads::new()).unwrap();
    let h = cluster(&plain, "orders.shop")
        .health_check
        .clone()
        .expect("a health check");
    assert_eq!((h.interval, h.unhealthy_threshold), (dur(2000), Some(2)));
    assert_eq!(
        h.kind,
        Some(pb::health_check::Kind::Http(pb::HttpHealthCheck {
            path: Some("/healthz".into()),
            host: None,
            expected_statuses: vec![
                pb::StatusRange {
                    start: 200,
                    end: 200
                },
                pb::StatusRange {
                    start: 300,
                    end: 302
                },
            ],
        }))
    );
    // Orders' endpoints are sidecars (HTTP/2 over mTLS): the proxy's
    // HTTP/1.1 check would fail them, so a connection check it is.
    let mut w = Workloads::new();
    w.entry("orders.shop".to_string())
        .or_default()
        .insert("127.0.0.1:7201".to_string());
    let meshed = compile(&res, &sidecar_of("web.shop"), &w).unwrap();
    let c = cluster(&meshed, "orders.shop");
    assert!(c.mesh.is_some(), "{c:?}");
    assert_eq!(
        c.health_check.as_ref().and_then(|h| h.kind.clone()),
        Some(pb::health_check::Kind::Tcp(pb::TcpHealthCheck {}))
    );
}
