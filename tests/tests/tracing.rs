//! Distributed tracing end to end: two proxies in a row (a caller's
//! outbound sidecar and a callee's inbound one) report their spans to an
//! OTLP receiver in the test (tonic). One trace id, correct parent and
//! child links, semantic-convention attributes, the sampled flag
//! honoured, and a dead collector costing spans, never requests.

use std::time::Duration;

use ringmesh_tests::otlp::{Collector, Received};
use ringmesh_tests::{closed_port, eventually, Client, Proxy, Upstream};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The callee's sidecar (inbound, to `app`), then the caller's
/// (outbound, to the callee's); `a_sampling` is the caller's rate for
/// traces that start there.
fn pair(collector: &str, app: &Upstream, a_sampling: u32) -> (Proxy, Proxy) {
    let b = Proxy::start(&format!(
        "runtime: {{ workers: 2 }}
admin: {{ address: '127.0.0.1:0' }}
tracing: {{ collector: '{collector}', service_name: orders }}
listeners:
  - name: in
    address: 127.0.0.1:0
    direction: inbound
    routes: [ {{ name: app, cluster: app }} ]
clusters:
  - {{ name: app, endpoints: ['{}'] }}
",
        app.addr
    ));
    let a = Proxy::start(&format!(
        "runtime: {{ workers: 2 }}
admin: {{ address: '127.0.0.1:0' }}
tracing: {{ collector: '{collector}', service_name: web, sampling_percent: {a_sampling} }}
listeners:
  - name: out
    address: 127.0.0.1:0
    direction: outbound
    routes: [ {{ name: orders, cluster: orders }} ]
clusters:
  - {{ name: orders, endpoints: ['{}'] }}
",
        b.addr("in")
    ));
    (a, b)
}

fn by_service<'a>(spans: &'a [Received], service: &str) -> &'a Received {
    spans
        .iter()
        .find(|s| s.service == service)
        .unwrap_or_else(|| panic!("no span from {service}: {spans:#?}"))
}

#[test]
fn a_call_through_two_proxies_is_one_trace() {
    let collector = Collector::start();
    let app = Upstream::start("app");
    let (a, b) = pair(&collector.addr.to_string(), &app, 100);

    // The application's own span is the root: its traceparent is sent.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let root = "00f067aa0ba902b7";
    let r = Client::connect(a.addr("out")).request(
        format!(
            "GET /headers?q=1 HTTP/1.1\r\nHost: orders.shop:8080\r\nUser-Agent: t/1\r\n\
             traceparent: 00-{trace}-{root}-01\r\ntracestate: vendor=x\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200);
    let seen = r.text().to_ascii_lowercase();

    eventually("both spans arrive", Duration::from_secs(10), || {
        collector.spans().len() >= 2
    });
    let spans = collector.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let client = by_service(&spans, "web");
    let server = by_service(&spans, "orders");
    for s in [client, server] {
        assert_eq!(hex(&s.span.trace_id), trace, "one trace");
        assert_eq!(s.attr("http.request.method").as_deref(), Some("GET"));
        assert_eq!(s.attr("url.path").as_deref(), Some("/headers"));
        assert_eq!(s.attr("url.query").as_deref(), Some("q=1"));
        assert_eq!(s.attr("http.response.status_code").as_deref(), Some("200"));
        assert_eq!(s.attr("server.address").as_deref(), Some("orders.shop"));
        assert_eq!(s.attr("server.port").as_deref(), Some("8080"));
        assert_eq!(s.attr("user_agent.original").as_deref(), Some("t/1"));
        assert_eq!(s.attr("network.protocol.version").as_deref(), Some("1.1"));
        assert!(s.span.end_time_unix_nano > s.span.start_time_unix_nano);
    }
    // Kinds: CLIENT (3) at the caller's sidecar, SERVER (2) at the callee's.
    assert_eq!((client.span.kind, server.span.kind), (3, 2));
    // Links: app's span -> caller's client span -> callee's server span.
    assert_eq!(hex(&client.span.parent_span_id), root);
    assert_eq!(server.span.parent_span_id, client.span.span_id);
    assert_eq!(
        client.attr("network.peer.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        client.attr("network.peer.port").as_deref(),
        Some(b.addr("in").port().to_string().as_str())
    );
    assert_eq!(server.attr("ringmesh.route").as_deref(), Some("app"));
    // The application behind the callee got the callee's span as its
    // parent, the caller's tracestate, and one request id.
    let parent = format!("traceparent: 00-{trace}-{}-01", hex(&server.span.span_id));
    assert!(seen.contains(&parent), "{seen}");
    assert!(seen.contains("tracestate: vendor=x"), "{seen}");
    assert_eq!(seen.matches("x-request-id: ").count(), 1, "{seen}");
    // Counted once the collector's answer is back (just after it kept
    // the spans).
    eventually("both exports counted", Duration::from_secs(5), || {
        a.metric("ringmesh_spans_exported_total") == Some(1)
            && b.metric("ringmesh_spans_exported_total") == Some(1)
    });
}

#[test]
fn sampling_follows_the_head_of_the_trace() {
    let collector = Collector::start();
    let app = Upstream::start("app");
    // The caller records none of the traces that start with it.
    let (a, b) = pair(&collector.addr.to_string(), &app, 0);
    let mut c = Client::connect(a.addr("out"));
    for _ in 0..20 {
        assert_eq!(c.get("/x", "orders").status, 200);
    }
    // An unsampled caller: flag 00 is honoured at both hops.
    for _ in 0..5 {
        let r = c.request(
            b"GET /x HTTP/1.1\r\nHost: orders\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00\r\n\r\n",
        );
        assert_eq!(r.status, 200);
    }
    // A sampled one is recorded at both, whatever the caller's rate.
    let r = c.request(
        b"GET /x HTTP/1.1\r\nHost: orders\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203331-01\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    eventually("the sampled trace's spans", Duration::from_secs(10), || {
        collector.spans().len() >= 2
    });
    // Both proxies' sweeps have run since (spans go within a second).
    std::thread::sleep(Duration::from_millis(1500));
    let spans = collector.spans();
    assert_eq!(spans.len(), 2, "only the sampled trace: {spans:#?}");
    assert!(spans
        .iter()
        .all(|s| hex(&s.span.trace_id) == "0af7651916cd43dd8448eb211c80319d"));
    assert_eq!(a.metric("ringmesh_spans_exported_total"), Some(1));
    assert_eq!(b.metric("ringmesh_spans_exported_total"), Some(1));
}

#[test]
fn a_dead_collector_costs_spans_not_requests() {
    let app = Upstream::start("app");
    let dead = closed_port().to_string();
    let (a, _b) = pair(&dead, &app, 100);
    let mut c = Client::connect(a.addr("out"));
    for i in 0..200 {
        assert_eq!(c.get(&format!("/r{i}"), "orders").status, 200);
    }
    eventually("failed exports counted", Duration::from_secs(15), || {
        a.metric("ringmesh_spans_dropped_total{reason=\"export_failed\"}")
            .is_some_and(|n| n > 0)
    });
    assert_eq!(a.metric("ringmesh_spans_exported_total"), Some(0));
    assert_eq!(c.get("/after", "orders").status, 200);
}

#[test]
fn a_grpc_call_is_traced_over_http2_at_both_hops() {
    use ringmesh_tests::grpc::{GrpcClient, GrpcServer};
    let collector = Collector::start();
    let server = GrpcServer::start();
    let col = collector.addr;
    let b = Proxy::start(&format!(
        "runtime: {{ workers: 2 }}
admin: {{ address: '127.0.0.1:0' }}
tracing: {{ collector: '{col}', service_name: orders }}
listeners:
  - {{ name: in, address: 127.0.0.1:0, routes: [ {{ name: echo, cluster: echo }} ] }}
clusters:
  - {{ name: echo, protocol: http2, endpoints: ['{}'] }}
",
        server.addr
    ));
    let a = Proxy::start(&format!(
        "runtime: {{ workers: 2 }}
admin: {{ address: '127.0.0.1:0' }}
tracing: {{ collector: '{col}', service_name: web }}
listeners:
  - {{ name: out, address: 127.0.0.1:0, direction: outbound, routes: [ {{ name: orders, cluster: orders }} ] }}
clusters:
  - {{ name: orders, protocol: http2, endpoints: ['{}'] }}
",
        b.addr("in")
    ));
    let mut c = GrpcClient::connect(a.addr("out"));
    let ok = ringmesh_proto::testing::EchoRequest {
        payload: b"hi".to_vec(),
        ..Default::default()
    };
    let reply = c.runtime.block_on(c.echo.unary(ok)).expect("unary");
    let failing = ringmesh_proto::testing::EchoRequest {
        fail_code: 14,
        ..Default::default()
    };
    let status = c
        .runtime
        .block_on(c.echo.unary(failing))
        .expect_err("UNAVAILABLE");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    eventually("four spans", Duration::from_secs(10), || {
        collector.spans().len() >= 4
    });
    let spans = collector.spans();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let code = |s: &Received| s.attr("rpc.grpc.status_code");
    let ok_server = spans
        .iter()
        .find(|s| s.service == "orders" && code(s).as_deref() == Some("0"))
        .expect("the OK call's server span");
    // The gRPC server got the callee's span as the parent.
    let parent = reply.get_ref().traceparent.clone();
    assert_eq!(&parent[36..52], hex(&ok_server.span.span_id), "{parent}");
    for s in &spans {
        assert_eq!(s.attr("network.protocol.version").as_deref(), Some("2"));
        assert_eq!(s.attr("rpc.system").as_deref(), Some("grpc"));
        assert_eq!(
            s.attr("url.path").as_deref(),
            Some("/ringmesh.testing.v1.Echo/Unary")
        );
        // Status ERROR (2) exactly for the UNAVAILABLE call, at both.
        let error = code(s).as_deref() == Some("14");
        let want = if error { 2 } else { 0 };
        assert_eq!(
            s.span.status.as_ref().map(|st| st.code),
            Some(want),
            "{s:#?}"
        );
        if error {
            assert_eq!(s.attr("error.type").as_deref(), Some("14"));
        }
    }
    // Each call is one trace across both proxies.
    for trace in spans.iter().map(|s| s.span.trace_id.clone()) {
        assert_eq!(spans.iter().filter(|s| s.span.trace_id == trace).count(), 2);
    }
}
