use std::time::Duration;

use super::model::*;
use super::*;

fn errors(yaml: &str) -> Vec<String> {
    match parse(yaml, "t.yaml") {
        Ok(_) => panic!("config should be rejected:\n{yaml}"),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

#[test]
fn example_config_is_valid() {
    let config = parse(EXAMPLE, "examples/proxy.yaml").unwrap();
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.clusters[0].name, "local-app");
    assert!(matches!(
        config.listeners[0].routes[0].action,
        Action::Direct { status: 200, .. }
    ));
    assert_eq!(config.admin, Some("127.0.0.1:9901".parse().unwrap()));
}

#[test]
fn defaults_are_filled_in() {
    let config = parse(
        "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - cluster: c\nclusters:\n  - name: c\n    endpoints: [127.0.0.1:1]\n",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(config.runtime.workers, Workers::Auto);
    assert_eq!(config.runtime.io, IoMode::Auto);
    assert_eq!(config.runtime.drain_timeout, defaults::DRAIN_TIMEOUT);
    assert_eq!(config.runtime.drain_delay, defaults::DRAIN_DELAY);
    let l = &config.listeners[0];
    assert_eq!(l.header_read_timeout, defaults::HEADER_READ_TIMEOUT);
    assert_eq!(l.max_connections, None);
    assert_eq!(l.x_forwarded_proto, ForwardedProto::Overwrite);
    assert_eq!(l.tunnel_idle_timeout, defaults::TUNNEL_IDLE_TIMEOUT);
    assert_eq!(l.limits.max_header_bytes, 64 * 1024);
    assert_eq!(l.routes[0].name, "route0");
    let c = &config.clusters[0];
    assert_eq!(c.lb, LbPolicy::RoundRobin);
    assert_eq!(
        c.pool.max_idle_per_endpoint,
        defaults::MAX_IDLE_PER_ENDPOINT
    );
}

#[test]
fn all_semantic_errors_are_reported_with_line_and_path() {
    let yaml = "\
listeners:
  - name: a
    address: 127.0.0.1:8080
    routes:
      - cluster: bakend
      - direct_response: { status: 700 }
  - name: a
    address: nonsense
clusters:
  - name: backend
    endpoints: [127.0.0.1:1, 'bad host:x']
    lb: random
";
    let errs = errors(yaml);
    assert_eq!(
        errs,
        vec![
            "t.yaml:5:18: listeners[0].routes[0].cluster: unknown cluster `bakend` (did you mean `backend`?)",
            "t.yaml:6:36: listeners[0].routes[1].direct_response.status: status must be from 200 to 599",
            "t.yaml:7:11: listeners[1].name: duplicate listener name `a`",
            "t.yaml:8:14: listeners[1].address: `nonsense` is not an IP:PORT address",
            "t.yaml:11:30: clusters[0].endpoints[1]: `bad host:x` is not HOST:PORT or IP:PORT",
            "t.yaml:12:9: clusters[0].lb: unknown lb policy `random`: use round_robin, least_request, peak_ewma, ring_hash or maglev",
        ]
    );
}

#[test]
fn unknown_field_suggests_the_closest() {
    let errs = errors("listeners:\n  - name: a\n    adress: 127.0.0.1:1\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("t.yaml:3:"), "{errs:?}");
    assert!(errs[0].contains("unknown field `adress`"), "{errs:?}");
    assert!(errs[0].contains("did you mean `address`?"), "{errs:?}");
    assert!(
        !errs[0].contains("at line"),
        "location is said once: {errs:?}"
    );
}

#[test]
fn an_unreadable_file_is_named_without_a_line() {
    let err = load(std::path::Path::new("/nonexistent/proxy.yaml")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("/nonexistent/proxy.yaml: cannot read: "),
        "{text}"
    );
}

#[test]
fn route_needs_exactly_one_action() {
    let errs = errors(
        "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    routes:\n      - match: { path: { prefix: / } }\n",
    );
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].contains("listeners[0].routes[0]: a route needs exactly one of"),
        "{errs:?}"
    );
}

#[test]
fn redirects_and_rewrites_compile_and_their_errors_are_located() {
    use crate::config::model::Action;
    use ringmesh_http1::target::PathRewrite;
    let yaml = "\
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - match: { path: { prefix: /old/ } }
        redirect: { scheme: https, path: { prefix: /new } }
      - match: { path: { prefix: /api } }
        cluster: c
        rewrite: { hostname: Internal.Svc, path: { prefix: / } }
      - cluster: c
clusters: [ { name: c, endpoints: ['127.0.0.1:2'] } ]
";
    let config = parse(yaml, "t.yaml").unwrap();
    let routes = &config.listeners[0].routes;
    let Action::Redirect(r) = &routes[0].action else {
        panic!("{:?}", routes[0].action)
    };
    assert_eq!(r.status, 302);
    assert_eq!(r.path, Some(PathRewrite::prefix(b"/old/", b"/new")));
    let w = routes[1].rewrite.as_ref().unwrap();
    assert_eq!(w.host.as_deref(), Some(&b"internal.svc"[..]));
    assert_eq!(w.path, Some(PathRewrite::prefix(b"/api", b"")));
    assert!(routes[2].rewrite.is_none());

    let errs = errors(
        "\
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - match: { path: { exact: /x } }
        redirect: { hostname: 'a:80', port: 0, path: { prefix: /y }, status: 200 }
      - redirect: { path: { full: 'no-slash', prefix: /z } }
      - cluster: c
        redirect: {}
      - direct_response: { status: 200 }
        rewrite: { hostname: a }
      - cluster: c
        rewrite: {}
      - cluster: c
        rewrite: { path: { full: '/a?b' } }
clusters: [ { name: c, endpoints: ['127.0.0.1:2'] } ]
",
    );
    assert_eq!(
        errs,
        [
            "t.yaml:6:31: listeners[0].routes[0].redirect.hostname: `a:80` is not a host name: no port here (a redirect has `port`; an IPv6 address goes in brackets)",
            "t.yaml:6:45: listeners[0].routes[0].redirect.port: 0 is not a port: 1 to 65535",
            "t.yaml:6:64: listeners[0].routes[0].redirect.path.prefix: replaces the path prefix the route matched, and this route matches none: give it `match.path.prefix`, or use `full`",
            "t.yaml:6:78: listeners[0].routes[0].redirect.status: 200 is not a redirect status: 301, 302, 303, 307 or 308",
            "t.yaml:7:55: listeners[0].routes[1].redirect.path: give `full` or `prefix`, not both",
            "t.yaml:8:9: listeners[0].routes[2]: a route needs exactly one of `cluster`, `weighted_clusters`, `direct_response` or `redirect`",
            "t.yaml:11:18: listeners[0].routes[3].rewrite: only a route that forwards (`cluster` or `weighted_clusters`) rewrites its requests",
            "t.yaml:13:18: listeners[0].routes[4].rewrite: give a `hostname`, a `path` or both (or leave `rewrite` out)",
            "t.yaml:15:34: listeners[0].routes[5].rewrite.path.full: `/a?b` must not contain `?` or `#`: the request's query is kept",
        ],
        "{errs:#?}"
    );
}

#[test]
fn bad_values_are_reported() {
    let yaml = "\
runtime: { workers: 0, io: kqueue, drain_timeout: soon }
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - match: { host: 'foo*', path: { exact: x }, headers: [ { name: 'bad name', exact: v } ] }
        direct_response: { status: 200 }
        request_headers: { add: [ { name: x-a, value: \"a\\r\\nb\" } ] }
";
    let errs = errors(yaml).join("\n");
    for want in [
        "runtime.workers: must be `auto`",
        "runtime.io: unknown io driver `kqueue`",
        "runtime.drain_timeout: `soon` is not a duration",
        "listeners[0].routes[0].match.host:",
        "listeners[0].routes[0].match.path:",
        "listeners[0].routes[0].match.headers[0].name: `bad name` is not a valid header name",
        "listeners[0].routes[0].request_headers.add[0].value: header value must not contain CR",
    ] {
        assert!(errs.contains(want), "missing {want:?} in\n{errs}");
    }
}

#[test]
fn matchers_and_weights_compile() {
    let yaml = "\
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - match: { host: '*.Example.com', path: { prefix: /api }, method: get, headers: [ { name: X-Canary, present: true } ] }
        weighted_clusters: [ { cluster: v1, weight: 90 }, { cluster: v2, weight: 10 } ]
clusters:
  - { name: v1, endpoints: [127.0.0.1:1] }
  - { name: v2, endpoints: ['localhost:2'], lb: least_request }
";
    let config = parse(yaml, "t.yaml").unwrap();
    let route = &config.listeners[0].routes[0];
    assert_eq!(
        route.matcher.host,
        Some(HostMatch::Suffix(b".example.com".to_vec().into()))
    );
    assert_eq!(
        route.matcher.path,
        PathMatch::Prefix(b"/api".to_vec().into())
    );
    assert_eq!(route.matcher.method.as_deref(), Some(&b"GET"[..]));
    assert_eq!(route.matcher.headers[0].name.as_ref(), b"x-canary");
    match &route.action {
        Action::Weighted { choices, total } => {
            assert_eq!(choices, &vec![(0, 90), (1, 100)]);
            assert_eq!(*total, 100);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        config.clusters[1].endpoints,
        vec![EndpointSpec {
            target: Target::Dns {
                host: "localhost".into(),
                port: 2
            },
            weight: 1,
            zone: None,
        }]
    );
}

#[test]
fn durations_past_a_week_are_rejected_where_written() {
    let yaml = "\
runtime: { drain_timeout: 8d, drain_delay: 2w }
listeners:
  - name: a
    address: 127.0.0.1:1
    idle_timeout: 1000000000y
    routes:
      - cluster: c
        timeout: 169h
clusters:
  - name: c
    endpoints: [127.0.0.1:1]
    pool: { idle_timeout: 7d 1s }
";
    assert_eq!(
        errors(yaml),
        vec![
            "t.yaml:1:27: runtime.drain_timeout: `8d` is longer than the 7-day maximum",
            "t.yaml:1:44: runtime.drain_delay: `2w` is longer than the 7-day maximum",
            "t.yaml:5:19: listeners[0].idle_timeout: `1000000000y` is longer than the 7-day maximum",
            "t.yaml:8:18: listeners[0].routes[0].timeout: `169h` is longer than the 7-day maximum",
            "t.yaml:12:27: clusters[0].pool.idle_timeout: `7d 1s` is longer than the 7-day maximum",
        ]
    );
}

#[test]
fn zero_is_rejected_where_it_would_fail_every_request() {
    let yaml = "\
listeners:
  - name: a
    address: 127.0.0.1:1
    header_read_timeout: 0s
    idle_timeout: 0ms
    routes:
      - cluster: c
        timeout: 0s
clusters:
  - name: c
    endpoints: [127.0.0.1:1]
    connect_timeout: 0s
    dns_refresh: 0s
";
    assert_eq!(
        errors(yaml),
        vec![
            "t.yaml:4:26: listeners[0].header_read_timeout: `0s`: must be more than zero",
            "t.yaml:5:19: listeners[0].idle_timeout: `0ms`: must be more than zero",
            "t.yaml:8:18: listeners[0].routes[0].timeout: `0s`: must be more than zero",
            "t.yaml:12:22: clusters[0].connect_timeout: `0s`: must be more than zero",
            "t.yaml:13:18: clusters[0].dns_refresh: `0s`: must be more than zero",
        ]
    );
}

#[test]
fn zero_is_kept_where_it_means_something() {
    let yaml = "\
runtime: { drain_timeout: 0s, drain_delay: 0s }
listeners:
  - name: a
    address: 127.0.0.1:1
    routes: [ { cluster: c } ]
clusters:
  - { name: c, endpoints: [127.0.0.1:1], pool: { idle_timeout: 0s } }
";
    let config = parse(yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.runtime.drain_timeout, Duration::ZERO);
    assert_eq!(config.runtime.drain_delay, Duration::ZERO);
    assert_eq!(config.clusters[0].pool.idle_timeout, Duration::ZERO);
    // The ceiling itself is allowed.
    let week = yaml.replace("drain_timeout: 0s", "drain_timeout: 7d");
    let config = parse(&week, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.runtime.drain_timeout, defaults::MAX_DURATION);
}

#[test]
fn route_names_are_checked_like_other_names() {
    let yaml = "\
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - { name: 'x\"} 1', direct_response: { status: 200 } }
      - { name: '', direct_response: { status: 200 } }
";
    assert_eq!(
        errors(yaml),
        vec![
            "t.yaml:5:17: listeners[0].routes[0].name: `x\"} 1` is not a valid name (letters, digits, - _ . ; at most 128)",
            "t.yaml:6:17: listeners[0].routes[1].name: `` is not a valid name (letters, digits, - _ . ; at most 128)",
        ]
    );
}

#[test]
fn route_names_are_unique_within_a_listener() {
    let yaml = "\
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - { name: api, direct_response: { status: 200 } }
      - { direct_response: { status: 200 } }
      - { name: api, direct_response: { status: 200 } }
      - { name: route1, direct_response: { status: 200 } }
      - { name: route5, direct_response: { status: 200 } }
      - { direct_response: { status: 200 } }
  - name: b
    address: 127.0.0.1:2
    routes:
      - { name: api, direct_response: { status: 200 } }
";
    assert_eq!(
        errors(yaml),
        vec![
            "t.yaml:7:17: listeners[0].routes[2].name: duplicate route name `api`: it is also routes[0]",
            "t.yaml:8:17: listeners[0].routes[3].name: duplicate route name `route1`: it is also the default name of routes[1]",
            "t.yaml:10:9: listeners[0].routes[5]: this route's default name `route5` is also routes[4]: give it a `name`",
        ]
    );
}

#[test]
fn listener_connection_limit_forwarded_proto_and_tunnel_timeout() {
    let yaml = "\
listeners:
  - { name: a, address: 127.0.0.1:1, max_connections: 4294967295, x_forwarded_proto: trust, tunnel_idle_timeout: 90s }
  - { name: b, address: 127.0.0.1:2, max_connections: 1, x_forwarded_proto: overwrite }
";
    let config = parse(yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (&config.listeners[0], &config.listeners[1]);
    assert_eq!(a.max_connections, Some(u32::MAX as usize));
    assert_eq!(a.x_forwarded_proto, ForwardedProto::Trust);
    assert_eq!(a.tunnel_idle_timeout, Duration::from_secs(90));
    assert_eq!(b.max_connections, Some(1));
    assert_eq!(b.x_forwarded_proto, ForwardedProto::Overwrite);
}

#[test]
fn bad_listener_limits_are_reported() {
    let yaml = "\
listeners:
  - name: a
    address: 127.0.0.1:1
    max_connections: 0
    x_forwarded_proto: https
    tunnel_idle_timeout: 0s
  - name: b
    address: 127.0.0.1:2
    max_connections: 4294967296
    x_forwarded_proto: Trust
    tunnel_idle_timeout: 8d
";
    assert_eq!(
        errors(yaml),
        vec![
            "t.yaml:4:22: listeners[0].max_connections: must be from 1 to 4294967295",
            "t.yaml:5:24: listeners[0].x_forwarded_proto: unknown x_forwarded_proto `https`: use overwrite or trust",
            "t.yaml:6:26: listeners[0].tunnel_idle_timeout: `0s`: must be more than zero",
            "t.yaml:9:22: listeners[1].max_connections: must be from 1 to 4294967295",
            "t.yaml:10:24: listeners[1].x_forwarded_proto: unknown x_forwarded_proto `Trust`: use overwrite or trust",
            "t.yaml:11:26: listeners[1].tunnel_idle_timeout: `8d` is longer than the 7-day maximum",
        ]
    );
}

#[test]
fn faults_compile_to_route_filters() {
    use crate::filter::{Fault, FaultAbort, FaultDelay, Filter};
    let yaml = "\
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - name: both
        fault: { delay: { duration: 2s, percent: 10 }, abort: { status: 503, percent: 5.5 } }
        cluster: c
      - name: delay-only
        fault: { delay: { duration: 250ms, percent: 0.0001 } }
        cluster: c
      - name: abort-only-with-direct-response
        fault: { abort: { status: 200, percent: 100.0 } }
        direct_response: { status: 204 }
      - name: none
        cluster: c
clusters:
  - { name: c, endpoints: [127.0.0.1:1] }
";
    let config = parse(yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    let filters: Vec<&Vec<Filter>> = config.listeners[0]
        .routes
        .iter()
        .map(|r| &r.filters)
        .collect();
    assert_eq!(
        filters,
        [
            &vec![Filter::Fault(Fault {
                delay: Some(FaultDelay {
                    duration: Duration::from_secs(2),
                    per_million: 100_000,
                }),
                abort: Some(FaultAbort {
                    status: 503,
                    per_million: 55_000,
                }),
            })],
            &vec![Filter::Fault(Fault {
                delay: Some(FaultDelay {
                    duration: Duration::from_millis(250),
                    per_million: 1,
                }),
                abort: None,
            })],
            &vec![Filter::Fault(Fault {
                delay: None,
                abort: Some(FaultAbort {
                    status: 200,
                    per_million: 1_000_000,
                }),
            })],
            &vec![],
        ]
    );
}

#[test]
fn bad_faults_are_reported_together() {
    let yaml = "\
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - fault: {}
        cluster: c
      - fault:
          delay: { percent: 101 }
          abort: { status: 700 }
        cluster: c
      - fault:
          delay: { duration: 0s, percent: -1 }
          abort: { percent: .nan }
        cluster: c
      - fault: { delay: { duration: 8d, percent: 0 } }
        cluster: c
clusters:
  - { name: c, endpoints: [127.0.0.1:1] }
";
    assert_eq!(
        errors(yaml),
        vec![
            "t.yaml:5:16: listeners[0].routes[0].fault: a fault needs a `delay`, an `abort` or both",
            "t.yaml:8:18: listeners[0].routes[1].fault.delay.duration: missing: how long to delay, e.g. 2s",
            "t.yaml:8:29: listeners[0].routes[1].fault.delay.percent: `101` is not a percentage from 0 to 100",
            "t.yaml:9:18: listeners[0].routes[1].fault.abort.percent: missing: the share of requests, 0 to 100",
            "t.yaml:9:28: listeners[0].routes[1].fault.abort.status: status must be from 200 to 599",
            "t.yaml:12:30: listeners[0].routes[2].fault.delay.duration: `0s`: must be more than zero",
            "t.yaml:12:43: listeners[0].routes[2].fault.delay.percent: `-1` is not a percentage from 0 to 100",
            "t.yaml:13:18: listeners[0].routes[2].fault.abort.status: missing: the status to answer with, e.g. 503",
            "t.yaml:13:29: listeners[0].routes[2].fault.abort.percent: `NaN` is not a percentage from 0 to 100",
            "t.yaml:15:37: listeners[0].routes[3].fault.delay.duration: `8d` is longer than the 7-day maximum",
        ]
    );
}

#[test]
fn rate_limits_compile_after_faults() {
    use crate::filter::{Fault, FaultAbort, Filter, Per, RateLimit};
    let yaml = "\
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - cluster: c
        rate_limit: { requests_per_second: 20, burst: 10 }
        fault: { abort: { status: 503, percent: 1 } }
      - cluster: c
        rate_limit: { requests_per_second: 0.5, burst: 1, per: source }
      - cluster: c
        rate_limit: { requests_per_second: 1, burst: 1, per: { header: X-User } }
clusters:
  - { name: c, endpoints: [127.0.0.1:1] }
";
    let config = super::parse(yaml, "t.yaml").unwrap();
    let routes = &config.listeners[0].routes;
    assert_eq!(
        routes[0].filters,
        vec![
            Filter::Fault(Fault {
                delay: None,
                abort: Some(FaultAbort {
                    status: 503,
                    per_million: 10_000
                }),
            }),
            Filter::RateLimit(RateLimit {
                requests_per_second: 20.0,
                burst: 10,
                per: Per::Route,
            }),
        ]
    );
    assert_eq!(
        routes[1].filters,
        vec![Filter::RateLimit(RateLimit {
            requests_per_second: 0.5,
            burst: 1,
            per: Per::Source,
        })]
    );
    assert_eq!(
        routes[2].filters,
        vec![Filter::RateLimit(RateLimit {
            requests_per_second: 1.0,
            burst: 1,
            per: Per::Header(b"x-user".to_vec().into()),
        })]
    );
}

#[test]
fn bad_rate_limits_are_reported_together() {
    let yaml = "\
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - rate_limit: {}
        cluster: c
      - rate_limit: { requests_per_second: 0, burst: 0 }
        cluster: c
      - rate_limit: { requests_per_second: -1.5, burst: 5000000000 }
        cluster: c
      - rate_limit: { requests_per_second: .inf, burst: 1 }
        cluster: c
      - rate_limit: { requests_per_second: 1, burst: 1, per: { header: \"a b\" } }
        cluster: c
clusters:
  - { name: c, endpoints: [127.0.0.1:1] }
";
    assert_eq!(
        errors(yaml),
        vec![
            "t.yaml:5:21: listeners[0].routes[0].rate_limit.requests_per_second: missing: the requests per second the route accepts, e.g. 100",
            "t.yaml:5:21: listeners[0].routes[0].rate_limit.burst: missing: the requests accepted at once, at least 1",
            "t.yaml:7:44: listeners[0].routes[1].rate_limit.requests_per_second: `0`: must be a number more than 0",
            "t.yaml:7:54: listeners[0].routes[1].rate_limit.burst: `0`: must be from 1 to 4294967295",
            "t.yaml:9:44: listeners[0].routes[2].rate_limit.requests_per_second: `-1.5`: must be a number more than 0",
            "t.yaml:9:57: listeners[0].routes[2].rate_limit.burst: `5000000000`: must be from 1 to 4294967295",
            "t.yaml:11:44: listeners[0].routes[3].rate_limit.requests_per_second: `inf`: must be a number more than 0",
            "t.yaml:13:72: listeners[0].routes[4].rate_limit.per.header: `a b` is not a valid header name",
        ]
    );
    let unknown = errors(
        "listeners: [ { name: a, address: 127.0.0.1:1, routes: [ { cluster: c, rate_limit: { requests_per_second: 1, burst: 1, per: client } } ] } ]\n",
    );
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(unknown[0].contains("client"), "{unknown:?}");
}

#[test]
fn a_percent_is_a_number() {
    let errs = errors(
        "listeners: [ { name: a, address: 127.0.0.1:1, routes: [ { cluster: c, fault: { abort: { status: 503, percent: 10% } } } ] } ]\n",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("t.yaml:1:"), "{errs:?}");
}

#[test]
fn a_tcp_listener_names_a_cluster_and_has_no_routes() {
    let ok = parse(
        "listeners:\n  - name: db\n    address: 127.0.0.1:0\n    tcp: { cluster: pg }\nclusters:\n  - { name: pg, endpoints: [127.0.0.1:5432] }\n",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(
        ok.listeners[0].tcp,
        Some(TcpProxy {
            cluster: 0,
            idle_timeout: defaults::TCP_IDLE_TIMEOUT
        })
    );
    let errs = errors(
        "listeners:\n  - name: db\n    address: 127.0.0.1:0\n    tcp: { cluster: gp, idle_timeout: 0s }\n    routes:\n      - direct_response: { status: 200 }\n  - name: db2\n    address: 127.0.0.1:0\n    tcp: {}\nclusters:\n  - { name: pg, endpoints: [127.0.0.1:5432] }\n",
    );
    assert_eq!(
        errs,
        [
            "t.yaml:4:10: listeners[0].tcp: a tcp listener relays bytes and has no routes: give `tcp` or `routes`, not both (or `detect`, to tell HTTP from the rest)",
            "t.yaml:4:21: listeners[0].tcp.cluster: unknown cluster `gp`",
            "t.yaml:4:39: listeners[0].tcp.idle_timeout: `0s`: must be more than zero",
            "t.yaml:9:10: listeners[1].tcp.cluster: missing: the cluster to relay to",
        ],
        "{errs:#?}"
    );
}

#[test]
fn grpc_matches_become_paths_and_retries_name_grpc_statuses() {
    let config = parse(
        "\
listeners:
  - name: l
    address: 127.0.0.1:0
    routes:
      - match: { grpc: { service: helloworld.Greeter, method: SayHello } }
        cluster: c
        retries: { attempts: 2, on: [unavailable, resource-exhausted, 503] }
      - match: { grpc: { service: helloworld.Greeter } }
        cluster: c
      - match: { grpc: {} }
        cluster: c
clusters:
  - name: c
    endpoints: [127.0.0.1:1]
",
        "t.yaml",
    )
    .unwrap();
    let routes = &config.listeners[0].routes;
    assert_eq!(
        routes[0].matcher.path,
        PathMatch::Exact(b"/helloworld.Greeter/SayHello"[..].into())
    );
    assert!(routes[0].matcher.grpc);
    let retry = routes[0].retry.as_ref().unwrap();
    assert_eq!(retry.grpc_statuses, vec![14, 8]);
    assert_eq!(retry.statuses, vec![503]);
    assert_eq!(
        routes[1].matcher.path,
        PathMatch::Prefix(b"/helloworld.Greeter/"[..].into())
    );
    assert_eq!(routes[2].matcher.path, PathMatch::Any);
    assert!(routes[2].matcher.grpc);
}

#[test]
fn bad_grpc_matches_are_located() {
    let errs = errors(
        "\
listeners:
  - name: l
    address: 127.0.0.1:0
    routes:
      - match: { grpc: { method: SayHello } }
        direct_response: { status: 200 }
      - match: { grpc: { service: 'a/b' }, path: { prefix: / } }
        direct_response: { status: 200 }
      - retries: { attempts: 1, on: [unavailble] }
        direct_response: { status: 200 }
",
    );
    let all = errs.join("\n");
    assert!(
        all.contains("t.yaml:5:")
            && all.contains("routes[0].match.grpc.method: a method needs its service"),
        "{all}"
    );
    assert!(
        all.contains("routes[1].match.grpc: `grpc` sets the path"),
        "{all}"
    );
    assert!(
        all.contains("routes[1].match.grpc.service: `a/b` is not a gRPC service name"),
        "{all}"
    );
    assert!(
        all.contains("routes[2].retries.on[0]: `unavailble` is not a retry condition"),
        "{all}"
    );
}

#[test]
fn http2_settings_are_bounded_by_rfc_9113() {
    let errs = errors(
        "\
listeners:
  - name: l
    address: 127.0.0.1:0
    http2: { max_frame_size: 1000, initial_stream_window: 4294967295, max_concurrent_streams: 0 }
    routes:
      - direct_response: { status: 200 }
",
    );
    let all = errs.join("\n");
    assert!(
        all.contains("listeners[0].http2.max_frame_size: must be from 16384 to 16777215"),
        "{all}"
    );
    assert!(
        all.contains("listeners[0].http2.initial_stream_window: must be from 1 to 2147483647"),
        "{all}"
    );
    assert!(
        all.contains("listeners[0].http2.max_concurrent_streams: must be from 1"),
        "{all}"
    );
}

#[test]
fn a_cluster_protocol_sets_what_tls_offers_in_alpn() {
    let ca = crate::tls::certs::testing::TestCa::new("ca").unwrap();
    let pem = ca.cert_pem.replace('\n', "\\n");
    let yaml = |protocol: &str, alpn: &str| {
        format!(
            "listeners: [ {{ name: l, address: '127.0.0.1:1' }} ]\nclusters:\n  - {{ name: c, protocol: {protocol}, endpoints: ['a.test:443'], tls: {{ ca_pem: \"{pem}\"{alpn} }} }}\n"
        )
    };
    let alpn_of = |protocol: &str| {
        let config = parse(&yaml(protocol, ""), "t.yaml").unwrap();
        let c = &config.clusters[0];
        (
            c.protocol,
            c.tls.as_ref().unwrap().config.alpn_protocols.clone(),
        )
    };
    assert_eq!(alpn_of("http1"), (UpstreamProtocol::Http1, vec![]));
    assert_eq!(
        alpn_of("http2"),
        (UpstreamProtocol::Http2, vec![b"h2".to_vec()])
    );
    assert_eq!(
        alpn_of("auto"),
        (
            UpstreamProtocol::Auto,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        )
    );
    let errs = errors(&yaml("http2", ", alpn: [http/1.1]")).join("\n");
    assert!(
        errs.contains("clusters[0].tls.alpn: the cluster's protocol is http2 or auto: offer `h2`"),
        "{errs}"
    );
    let errs = errors(&yaml("spdy", "")).join("\n");
    assert!(
        errs.contains("clusters[0].protocol: unknown protocol `spdy`"),
        "{errs}"
    );
}

#[test]
fn detect_lets_a_listener_have_routes_and_tcp() {
    let yaml = |detect: &str| {
        format!(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n{detect}    tcp: {{ cluster: c }}\n    routes: [ {{ cluster: c }} ]\nclusters: [ {{ name: c, endpoints: ['127.0.0.1:1'] }} ]\n"
        )
    };
    let config = parse(&yaml("    detect: {}\n"), "t.yaml").unwrap();
    let l = &config.listeners[0];
    assert_eq!(l.detect, Some(defaults::DETECT_TIMEOUT));
    assert!(l.tcp.is_some() && !l.routes.is_empty());
    let config = parse(&yaml("    detect: { timeout: 20ms }\n"), "t.yaml").unwrap();
    assert_eq!(config.listeners[0].detect, Some(Duration::from_millis(20)));
    let errs = errors(&yaml("")).join("\n");
    assert!(errs.contains("give `tcp` or `routes`, not both"), "{errs}");
    let errs = errors(&yaml("    detect: { timeout: 0s }\n")).join("\n");
    assert!(errs.contains("listeners[0].detect.timeout"), "{errs}");
}

#[test]
fn authorization_policies_compile_and_their_errors_are_located() {
    let config = parse(
        "\
listeners:
  - name: l
    address: 127.0.0.1:0
    authorization:
      - name: no-admin
        action: deny
        rules: [ { to: [ { paths: [/admin, /admin/*] } ] } ]
      - name: web
        rules:
          - from: [ { principals: ['spiffe://cluster.local/ns/shop/sa/web'] } ]
            to: [ { methods: [get, POST], paths: ['/orders*'] } ]
            when: [ { header: X-Tenant, not_values: [blocked] } ]
    routes: [ { direct_response: { status: 200 } } ]
",
        "t.yaml",
    )
    .unwrap();
    let a = config.listeners[0].authorization.as_ref().unwrap();
    assert_eq!((a.deny.len(), a.allow.len()), (1, 1));
    let rule = &a.allow[0].rules[0];
    assert_eq!(
        rule.from[0].principals.yes,
        [crate::authz::Pattern::Exact(
            b"cluster.local/ns/shop/sa/web"[..].into()
        )],
        "the scheme is dropped, as Istio writes principals"
    );
    assert_eq!(
        rule.to[0].methods.yes[0],
        crate::authz::Pattern::Exact(b"GET"[..].into())
    );
    assert_eq!(&rule.when[0].header[..], b"x-tenant");

    let errs = errors(
        "\
listeners:
  - name: l
    address: 127.0.0.1:0
    authorization:
      - action: maybe
        rules: [ { to: [ { paths: ['/a/../b', 'x', '/a*b*'] } ] } ]
      - name: dup
      - name: dup
    routes: [ { direct_response: { status: 200 } } ]
",
    )
    .join("\n");
    for want in [
        "listeners[0].authorization[0].name: missing",
        "listeners[0].authorization[0].action: unknown action `maybe`: use allow or deny",
        "authorization[0].rules[0].to[0].paths[0]: `/a/../b` is not a normalised path",
        "authorization[0].rules[0].to[0].paths[1]: `x`: a path starts with `/`",
        "authorization[0].rules[0].to[0].paths[2]: `/a*b*`: a value is exact, `prefix*`, `*suffix` or `*`",
        "listeners[0].authorization[2].name: `dup` names another policy",
    ] {
        assert!(errs.contains(want), "{want}\n{errs}");
    }
}

/// A workload identity as inline PEM (escaped for a YAML double-quoted
/// string): the CA's bundle, a chain for `spiffe_id` and its key.
fn mesh_identity(spiffe_id: &str) -> (String, String, String) {
    let ca = crate::tls::certs::testing::TestCa::new("mesh ca").unwrap();
    let leaf = ca.leaf(&[spiffe_id]).unwrap();
    let esc = |s: &str| s.replace('\n', "\\n");
    (esc(&ca.cert_pem), esc(&leaf.cert_pem), esc(&leaf.key_pem))
}

#[test]
fn mesh_listeners_and_clusters_serve_the_workload_identity() {
    let (bundle, cert, key) = mesh_identity("spiffe://cluster.local/ns/shop/sa/web");
    let yaml = format!(
        "mesh: {{ identity: {{ cert_pem: \"{cert}\", key_pem: \"{key}\" }}, trust_bundle_pem: \"{bundle}\" }}
listeners:
  - {{ name: in, address: '127.0.0.1:1', mesh: {{}}, routes: [ {{ cluster: app }} ] }}
  - {{ name: strict, address: '127.0.0.1:2', mesh: {{ mode: strict }}, routes: [ {{ cluster: app }} ] }}
  - {{ name: out, address: '127.0.0.1:3', routes: [ {{ cluster: orders }} ] }}
clusters:
  - {{ name: app, endpoints: ['127.0.0.1:9'] }}
  - {{ name: orders, endpoints: ['127.0.0.1:10'], mesh: {{ identity: 'spiffe://cluster.local/ns/shop/sa/orders' }} }}
"
    );
    let config = parse(&yaml, "t.yaml").unwrap();
    let id = config.identity.as_ref().expect("identity");
    assert_eq!(id.spiffe_id, "spiffe://cluster.local/ns/shop/sa/web");
    let permissive = &config.listeners[0];
    assert_eq!(permissive.mesh, Some(MeshMode::Permissive));
    assert_eq!(
        permissive.detect,
        Some(defaults::DETECT_TIMEOUT),
        "plaintext too"
    );
    let tls = permissive.tls.as_ref().expect("mTLS");
    assert_eq!(
        tls.config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    let strict = &config.listeners[1];
    assert_eq!((strict.mesh, strict.detect), (Some(MeshMode::Strict), None));
    let orders = &config.clusters[1];
    assert_eq!(
        orders.mesh.as_deref(),
        Some("spiffe://cluster.local/ns/shop/sa/orders")
    );
    assert_eq!(orders.protocol, UpstreamProtocol::Http2);
    let tls = orders.tls.as_ref().expect("mTLS");
    assert_eq!(tls.config.alpn_protocols, [b"h2".to_vec()]);
    let tcp = orders.mesh_tcp_tls.as_ref().expect("mTLS for relays");
    assert_eq!(
        tcp.config.alpn_protocols,
        [crate::tls::mesh::TCP_ALPN.to_vec()],
        "a relay asks the peer to relay"
    );
    assert_eq!(
        tls.key,
        mesh_transport_key("spiffe://cluster.local/ns/shop/sa/orders")
    );
    assert!(config.clusters[0].mesh.is_none() && config.clusters[0].tls.is_none());
}

#[test]
fn mesh_without_an_identity_is_refused_statically_and_fails_closed_issued() {
    let yaml = "listeners:
  - { name: in, address: '127.0.0.1:1', mesh: { mode: strict }, routes: [ { cluster: orders } ] }
clusters:
  - { name: orders, endpoints: ['127.0.0.1:10'], mesh: { identity: 'spiffe://td/ns/a/sa/b' } }
";
    let errs = errors(yaml).join("\n");
    assert!(
        errs.contains("t.yaml:2:") && errs.contains("listeners[0].mesh: needs a workload identity"),
        "{errs}"
    );
    // Under a control plane before the first certificate: valid, and
    // neither side has TLS to offer (connections are refused).
    let raw: raw::RawConfig = serde_saphyr::from_str(yaml).unwrap();
    let config = validate(
        &raw,
        "snapshot",
        crate::tls::mesh::IdentitySource::Issued(None),
    )
    .expect("valid without a certificate yet");
    assert!(config.identity.is_none());
    assert!(config.listeners[0].tls.is_none() && config.listeners[0].mesh.is_some());
    assert!(config.clusters[0].tls.is_none() && config.clusters[0].mesh.is_some());
}

#[test]
fn mesh_settings_that_contradict_it_are_located() {
    let (bundle, cert, key) = mesh_identity("spiffe://cluster.local/ns/shop/sa/web");
    let yaml = format!(
        "mesh: {{ identity: {{ cert_pem: \"{cert}\", key_pem: \"{key}\" }}, trust_bundle_pem: \"{bundle}\" }}
listeners:
  - name: a
    address: '127.0.0.1:1'
    mesh: {{ mode: strict }}
    detect: {{}}
    http2: {{ enabled: false }}
    routes: [ {{ cluster: orders }} ]
  - {{ name: b, address: '127.0.0.1:2', mesh: {{ mode: lenient }}, routes: [ {{ cluster: orders }} ] }}
  - {{ name: t, address: '127.0.0.1:3', tcp: {{ cluster: orders }} }}
clusters:
  - {{ name: orders, endpoints: ['127.0.0.1:10'], protocol: http1, mesh: {{ identity: 'orders' }} }}
  - {{ name: x, endpoints: ['127.0.0.1:10'], mesh: {{}} }}
"
    );
    let errs = errors(&yaml).join("\n");
    for want in [
        "listeners[0].detect: a strict `mesh` listener accepts mTLS only",
        "listeners[0].http2.enabled: proxies of the mesh talk HTTP/2",
        "listeners[1].mesh.mode: unknown mode `lenient`: use permissive or strict",
        "clusters[0].protocol: a `mesh` cluster speaks HTTP/2",
        "clusters[0].mesh.identity: `orders` is not a SPIFFE ID",
        "clusters[1].mesh.identity: required",
    ] {
        assert!(errs.contains(want), "missing `{want}` in:\n{errs}");
    }
    // Opaque TCP to a mesh cluster is fine: it is carried in mTLS.
    let yaml = yaml
        .replace("protocol: http1, ", "")
        .replace("identity: 'orders'", "identity: 'spiffe://td/x'");
    let errs = errors(&yaml).join("\n");
    assert!(!errs.contains("listeners[2]"), "{errs}");
    // An identity from files needs the roots its peers chain to.
    let no_bundle = format!(
        "mesh: {{ identity: {{ cert_pem: \"{cert}\", key_pem: \"{key}\" }} }}
listeners: [ {{ name: a, address: '127.0.0.1:1', mesh: {{}}, routes: [ {{ direct_response: {{ status: 200 }} }} ] }} ]
"
    );
    let errs = errors(&no_bundle).join("\n");
    assert!(
        errs.contains("mesh.trust_bundle: required with `mesh.identity`"),
        "{errs}"
    );
    // A certificate without a SPIFFE ID is no workload identity.
    let ca = crate::tls::certs::testing::TestCa::new("ca").unwrap();
    let leaf = ca.leaf(&["web.test"]).unwrap();
    let (cert, key) = (
        leaf.cert_pem.replace('\n', "\\n"),
        leaf.key_pem.replace('\n', "\\n"),
    );
    let dns = format!(
        "mesh: {{ identity: {{ cert_pem: \"{cert}\", key_pem: \"{key}\" }}, trust_bundle_pem: \"{bundle}\" }}
listeners: [ {{ name: a, address: '127.0.0.1:1', mesh: {{}}, routes: [ {{ direct_response: {{ status: 200 }} }} ] }} ]
"
    );
    let errs = errors(&dns).join("\n");
    assert!(
        errs.contains("mesh.identity.cert: the certificate has no SPIFFE ID"),
        "{errs}"
    );
}

#[test]
fn an_issued_identity_trusts_its_bundle_and_the_configs_extra_roots() {
    use crate::tls::certs::{certified_key, load_certs, PemSource};
    let issuing = crate::tls::certs::testing::TestCa::new("new root").unwrap();
    let old = crate::tls::certs::testing::TestCa::new("old root").unwrap();
    let leaf = issuing
        .leaf(&["spiffe://cluster.local/ns/shop/sa/web"])
        .unwrap();
    let issued = crate::tls::mesh::Issued {
        key: certified_key(
            &PemSource::Inline(leaf.cert_pem),
            &PemSource::Inline(leaf.key_pem),
            &crate::tls::provider(),
            std::time::SystemTime::now(),
        )
        .unwrap(),
        bundle: load_certs(&PemSource::Inline(issuing.cert_pem.clone())).unwrap(),
    };
    // During a root rotation the config carries the old root too.
    let yaml = format!(
        "mesh: {{ trust_bundle_pem: \"{}\" }}
listeners: [ {{ name: in, address: '127.0.0.1:1', mesh: {{}}, routes: [ {{ direct_response: {{ status: 200 }} }} ] }} ]
",
        old.cert_pem.replace('\n', "\\n")
    );
    let raw: raw::RawConfig = serde_saphyr::from_str(&yaml).unwrap();
    let source = crate::tls::mesh::IdentitySource::Issued(Some(std::sync::Arc::new(issued)));
    let config = validate(&raw, "snapshot", source).unwrap();
    let id = config.identity.as_ref().expect("identity");
    assert_eq!(id.spiffe_id, "spiffe://cluster.local/ns/shop/sa/web");
    assert_eq!(id.roots.len(), 2, "the issuing root and the old one");
}

#[test]
fn authorization_ports_are_numbers() {
    let yaml = |ports: &str| {
        format!(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    authorization: [ {{ name: p, rules: [ {{ to: [ {{ ports: [{ports}] }} ] }} ] }} ]\n    routes: [ {{ direct_response: {{ status: 200 }} }} ]\n"
        )
    };
    let c = parse(&yaml("'8080'"), "t.yaml").unwrap();
    let a = c.listeners[0].authorization.as_ref().unwrap();
    assert_eq!(
        a.allow[0].rules[0].to[0].ports.yes,
        [crate::authz::Pattern::Exact(b"8080"[..].into())]
    );
    let errs = errors(&yaml("'http', '0'")).join("\n");
    assert!(
        errs.contains(
            "listeners[0].authorization[0].rules[0].to[0].ports[0]: `http` is not a port"
        ) && errs.contains("ports[1]: `0` is not a port"),
        "{errs}"
    );
}

#[test]
fn retry_backoff_per_try_timeout_and_budget_are_read_with_defaults() {
    let c = parse(
        "\
listeners:
  - name: l
    address: 127.0.0.1:0
    routes:
      - { cluster: a, retries: { attempts: 2, on: [timeout], backoff: { base: 100ms }, per_try_timeout: 1s } }
      - { cluster: b, retries: { attempts: 1 } }
clusters:
  - { name: a, endpoints: [127.0.0.1:1], retry_budget: {} }
  - { name: b, endpoints: [127.0.0.1:2], retry_budget: { percent: 12.5, min_per_second: 0 } }
",
        "t.yaml",
    )
    .unwrap();
    let routes = &c.listeners[0].routes;
    let a = routes[0].retry.as_ref().unwrap();
    assert!(a.on_timeout && !a.on_reset);
    assert_eq!(a.backoff.base, Duration::from_millis(100));
    assert_eq!(a.backoff.max, Duration::from_secs(1), "ten times the base");
    assert_eq!(a.per_try_timeout, Some(Duration::from_secs(1)));
    let b = routes[1].retry.as_ref().unwrap();
    assert!(b.on_timeout && b.on_reset, "the default conditions");
    assert_eq!(b.backoff.base, Duration::from_millis(25));
    assert_eq!(b.backoff.max, Duration::from_millis(250));
    assert_eq!(b.per_try_timeout, None);
    let budget = c.clusters[0].retry_budget.unwrap();
    assert_eq!((budget.per_million, budget.min_per_second), (200_000, 10));
    let budget = c.clusters[1].retry_budget.unwrap();
    assert_eq!((budget.per_million, budget.min_per_second), (125_000, 0));
}

#[test]
fn bad_retry_settings_are_located() {
    let errs = errors(
        "\
listeners:
  - name: l
    address: 127.0.0.1:0
    routes:
      - cluster: a
        retries: { attempts: 1, backoff: { base: 1s, max: 10ms }, per_try_timeout: 0s }
      - cluster: a
        retries: { attempts: 1, backoff: { base: soon } }
clusters:
  - name: a
    endpoints: [127.0.0.1:1]
    retry_budget: { percent: 120 }
",
    );
    let all = errs.join("\n");
    for want in [
        "t.yaml:6:",
        "routes[0].retries.backoff.max: must be at least the base",
        "routes[0].retries.per_try_timeout: `0s`: must be more than zero",
        "t.yaml:8:",
        "routes[1].retries.backoff.base: `soon` is not a duration",
        "t.yaml:12:",
        "clusters[0].retry_budget.percent: `120` is not a percentage from 0 to 100",
    ] {
        assert!(all.contains(want), "{want} in\n{all}");
    }
}

#[test]
fn balancing_settings_are_validated_where_written() {
    let yaml = "\
zone: 'bad zone'
listeners: [ { name: l, address: '127.0.0.1:1', routes: [ { cluster: a } ] } ]
clusters:
  - name: a
    endpoints: [ { address: 10.0.0.1:80, weight: 0 }, { address: 'x y:1', zone: ok } ]
    peak_ewma: { half_life: 0s }
    panic_threshold: 150
  - { name: b, endpoints: [10.0.0.1:80], lb: ring_hash }
  - { name: c, endpoints: [10.0.0.1:80], lb: maglev, hash: { on: { header: 'a b' }, table_size: 100, ring_points: 3 } }
  - { name: d, endpoints: [10.0.0.1:80], lb: peak_ewma, peak_ewma: { half_life: 0s }, hash: {} }
";
    assert_eq!(
        errors(yaml),
        vec![
            "t.yaml:1:7: zone: `bad zone` is not a zone name (1-63 letters, digits, `-`, `_`, `.`)",
            "t.yaml:5:18: clusters[0].endpoints[0].weight: `0`: must be from 1 to 1000",
            "t.yaml:5:55: clusters[0].endpoints[1].address: `x y:1` is not HOST:PORT or IP:PORT",
            "t.yaml:6:16: clusters[0].peak_ewma: only used with `lb: peak_ewma` (lb is `round_robin`)",
            "t.yaml:7:22: clusters[0].panic_threshold: `150` is not a percentage from 0 to 100",
            "t.yaml:8:46: clusters[1].hash: missing: what to hash, e.g. `hash: { on: { header: x-user } }`",
            "t.yaml:9:76: clusters[2].hash.on.header: `a b` is not a valid header name",
            "t.yaml:9:97: clusters[2].hash.table_size: `100` is not prime: Maglev needs a prime table size, e.g. 101",
            "t.yaml:9:115: clusters[2].hash.ring_points: not a setting of `lb: maglev`",
            "t.yaml:10:81: clusters[3].peak_ewma.half_life: `0s`: must be more than zero",
            "t.yaml:10:93: clusters[3].hash: only used with `lb: ring_hash` or `lb: maglev` (lb is `peak_ewma`)",
        ]
    );
}

#[test]
fn endpoints_carry_weights_and_zones_and_policies_their_settings() {
    let yaml = "\
zone: us-east-1a
listeners: [ { name: l, address: '127.0.0.1:1', routes: [ { cluster: a } ] } ]
clusters:
  - name: a
    endpoints: [ 10.0.0.1:80, { address: 10.0.0.2:80, weight: 5, zone: us-east-1a } ]
    lb: ring_hash
    hash: { on: { cookie: session } }
    panic_threshold: 0
  - { name: b, endpoints: [10.0.0.1:80], lb: peak_ewma }
";
    let config = parse(yaml, "t").unwrap();
    assert_eq!(config.zone.as_deref(), Some("us-east-1a"));
    let a = &config.clusters[0];
    assert_eq!(a.endpoints[1].weight, 5);
    assert_eq!(a.endpoints[1].zone.as_deref(), Some("us-east-1a"));
    assert_eq!(
        (a.endpoints[0].weight, a.endpoints[0].zone.clone()),
        (1, None)
    );
    assert_eq!(
        a.lb,
        LbPolicy::RingHash(HashPolicy {
            on: HashOn::Cookie("session".into()),
            table_size: defaults::RING_POINTS,
        })
    );
    assert_eq!(a.panic_threshold, 0.0);
    assert_eq!(
        config.clusters[1].lb,
        LbPolicy::PeakEwma(PeakEwma {
            half_life: defaults::PEAK_EWMA_HALF_LIFE,
            default_rtt: defaults::PEAK_EWMA_DEFAULT_RTT,
        })
    );
    assert_eq!(
        config.clusters[1].panic_threshold,
        defaults::PANIC_THRESHOLD
    );
}

#[test]
fn breakers_and_outlier_detection_are_validated_where_written() {
    let yaml = "\
listeners: [ { name: l, address: '127.0.0.1:1', routes: [ { cluster: a } ] } ]
clusters:
  - name: a
    endpoints: [10.0.0.1:80]
    pool: { max_connections: 10 }
    circuit_breaker: { max_connections: 5, max_requests: 0 }
    outlier_detection: { base_ejection_time: 10s, max_ejection_time: 5s, max_ejection_percent: 101, success_rate: { stdev_factor: 0 } }
  - { name: b, endpoints: [10.0.0.1:80], circuit_breaker: { max_connections: 7, max_retries: 1 }, outlier_detection: { consecutive_5xx: 0, consecutive_gateway_errors: 2 } }
";
    assert_eq!(
        errors(yaml),
        vec![
            "t.yaml:6:41: clusters[0].circuit_breaker.max_connections: also set as pool.max_connections: set it in one place",
            "t.yaml:6:58: clusters[0].circuit_breaker.max_requests: must be from 1 to 4294967295",
            "t.yaml:7:70: clusters[0].outlier_detection.max_ejection_time: `5s` is shorter than base_ejection_time (10s)",
            "t.yaml:7:96: clusters[0].outlier_detection.max_ejection_percent: `101` is not a percentage from 0 to 100",
            "t.yaml:7:131: clusters[0].outlier_detection.success_rate.stdev_factor: `0`: must be more than 0 and at most 100",
        ]
    );
    let yaml = yaml.replace("max_requests: 0", "max_requests: 1").replace(
        "    pool: { max_connections: 10 }\n    circuit_breaker: { max_connections: 5, max_requests: 1 }\n    outlier_detection: { base_ejection_time: 10s, max_ejection_time: 5s, max_ejection_percent: 101, success_rate: { stdev_factor: 0 } }\n",
        "",
    );
    let config = parse(&yaml, "t").unwrap();
    let b = &config.clusters[1];
    assert_eq!(b.pool.max_connections, 7);
    assert_eq!(
        b.breakers,
        Breakers {
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 1
        }
    );
    let o = b.outlier.expect("detection on");
    assert_eq!((o.consecutive_5xx, o.consecutive_gateway_errors), (0, 2));
    assert_eq!(o.base_ejection_time, Duration::from_secs(30));
    assert_eq!(config.clusters[0].outlier, None);
}

#[test]
fn mirrors_compile_with_their_defaults() {
    let yaml = "\
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - { cluster: c, mirror: { cluster: shadow } }
      - { cluster: c, mirror: { cluster: shadow, percent: 0.5, max_body_bytes: 0 } }
clusters:
  - { name: c, endpoints: [127.0.0.1:1] }
  - { name: shadow, endpoints: [127.0.0.1:2] }
";
    let config = parse(yaml, "t.yaml").unwrap();
    let routes = &config.listeners[0].routes;
    assert_eq!(
        routes[0].mirror,
        Some(crate::mirror::Policy {
            cluster: 1,
            per_million: 1_000_000,
            max_body_bytes: 64 * 1024,
        })
    );
    assert_eq!(
        routes[1].mirror,
        Some(crate::mirror::Policy {
            cluster: 1,
            per_million: 5_000,
            max_body_bytes: 0,
        })
    );
}

#[test]
fn bad_mirrors_are_reported_together() {
    let yaml = "\
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - { cluster: c, mirror: {} }
      - { cluster: c, mirror: { cluster: shadw, percent: 101 } }
      - { cluster: c, mirror: { cluster: shadow, max_body_bytes: 5000000 } }
clusters:
  - { name: c, endpoints: [127.0.0.1:1] }
  - { name: shadow, endpoints: [127.0.0.1:2] }
";
    assert_eq!(
        errors(yaml),
        vec![
            "t.yaml:5:31: listeners[0].routes[0].mirror.cluster: missing: the cluster the copies go to",
            "t.yaml:6:42: listeners[0].routes[1].mirror.cluster: unknown cluster `shadw` (did you mean `shadow`?)",
            "t.yaml:6:58: listeners[0].routes[1].mirror.percent: `101` is not a percentage from 0 to 100",
            "t.yaml:7:66: listeners[0].routes[2].mirror.max_body_bytes: `5000000`: at most 4194304 (4 MiB): each mirrored request holds its body in memory",
        ]
    );
    let unknown = errors(
        "listeners: [ { name: a, address: 127.0.0.1:1, routes: [ { cluster: c, mirror: { cluster: c, fraction: 1 } } ] } ]\nclusters: [ { name: c, endpoints: [127.0.0.1:1] } ]\n",
    );
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(unknown[0].contains("fraction"), "{unknown:?}");
}
