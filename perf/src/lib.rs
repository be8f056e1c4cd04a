//! The per-request hot path, as one function the benchmark and the
//! allocation test both drive: parse a request head, route it, write the
//! forwarded head; parse the response head, write the head sent back.
//!
//! This is every byte-level step the proxy does per request outside the
//! kernel and the runtime; the IO around it is measured end to end by
//! `perf/peers/compare.py`.

use ringmesh_http1::rewrite::{self, ConnectionHeader, RequestContext, ResponseFraming};
use ringmesh_http1::{parse_request, parse_response, Limits, RequestHead, ResponseHead};
use ringmesh_proxy::buf::ReadBuf;
use ringmesh_proxy::config::{self, Config};
use ringmesh_proxy::h1::view::H1Request;
use ringmesh_proxy::router;
use ringmesh_proxy::telemetry::access_log::{self, Entry, Format};
use ringmesh_proxy::telemetry::span;
use ringmesh_proxy::telemetry::trace::{self, TraceContext};

/// A request as curl or a service client sends it.
pub const REQUEST: &[u8] = b"GET /api/v1/orders/12345?expand=items HTTP/1.1\r\n\
Host: orders.shop.svc.cluster.local\r\n\
User-Agent: checkout/2.3.1\r\n\
Accept: application/json\r\n\
Accept-Encoding: gzip, br\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo\r\n\
X-Request-Id: 4bf92f3577b34da6a3ce929d0e0e4736\r\n\
Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\
Connection: keep-alive\r\n\r\n";

/// A request to the route with a `rewrite` (path prefix and Host).
pub const REWRITTEN_REQUEST: &[u8] = b"GET /api/v2/payments/77?expand=items HTTP/1.1\r\n\
Host: orders.shop.svc.cluster.local\r\n\
Accept: application/json\r\n\r\n";

/// A typical JSON API response head.
pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: application/json\r\n\
Content-Length: 512\r\n\
Date: Sun, 22 Nov 2026 03:00:00 GMT\r\n\
Cache-Control: no-store\r\n\
X-Request-Id: 4bf92f3577b34da6a3ce929d0e0e4736\r\n\r\n";

/// Ten routes, the one that matches last, so routing does real work.
pub const CONFIG: &str = r"
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { match: { host: payments.shop.svc.cluster.local }, cluster: payments }
      - { match: { host: '*.admin.internal' }, cluster: payments }
      - { match: { path: { prefix: /static/ } }, direct_response: { status: 404 } }
      - { match: { path: { exact: /healthz } }, direct_response: { status: 200 } }
      - { match: { path: { prefix: /api/v2/ } }, cluster: payments, rewrite: { hostname: payments.internal, path: { prefix: /v2 } } }
      - { match: { headers: [ { name: x-canary, exact: 'on' } ] }, cluster: payments }
      - { match: { method: POST, path: { prefix: /api/v1/orders } }, cluster: payments }
      - { match: { host: carts.shop.svc.cluster.local }, cluster: payments }
      - { match: { path: { prefix: /api/v1/users } }, cluster: payments }
      - match: { host: '*.shop.svc.cluster.local', path: { prefix: /api/v1/orders }, method: GET }
        cluster: orders
        request_headers: { add: [ { name: x-route, value: orders } ], remove: [ authorization ] }
clusters:
  - { name: orders, endpoints: ['10.0.0.1:8080'] }
  - { name: payments, endpoints: ['10.0.0.2:8080'] }
";

/// Reusable state, as a connection keeps it between requests.
pub struct HotPath {
    pub config: Config,
    /// The client's read buffer and parsed head, as a connection holds them.
    req: H1Request,
    resp: ResponseHead,
    out: Vec<u8>,
    /// A core's access-log and span buffer (cleared per request here).
    log: Vec<u8>,
    text: ringmesh_proxy::telemetry::access_log::Format,
    rng: fastrand::Rng,
}

impl HotPath {
    pub fn new() -> Self {
        let config = match config::parse(CONFIG, "bench") {
            Ok(c) => c,
            Err(e) => panic!("bench config: {e}"),
        };
        HotPath {
            config,
            req: H1Request {
                rbuf: ReadBuf::with_capacity(2048),
                head: RequestHead::default(),
                scheme: b"http",
            },
            resp: ResponseHead::default(),
            out: Vec::with_capacity(4096),
            log: Vec::with_capacity(4096),
            text: match Format::parse("text") {
                Ok(f) => f,
                Err(e) => panic!("text format: {e}"),
            },
            rng: fastrand::Rng::with_seed(1),
        }
    }

    /// What the kernel's read does (the request lands in the buffer),
    /// then the head parsed and pinned; `false` if it does not parse.
    fn load(&mut self, request: &[u8]) -> bool {
        let req = &mut self.req;
        req.rbuf.clear();
        req.rbuf.extend_from_slice(request);
        if parse_request(req.rbuf.data(), &Limits::default(), &mut req.head) != Ok(true) {
            return false;
        }
        req.rbuf.pin(req.head.head_len);
        true
    }

    /// What access logs and tracing add to one request on its core: the
    /// trace context read and the `traceparent` and request id made, a
    /// JSON line, an Envoy-format text line and a span record written.
    /// Returns the bytes written.
    pub fn telemetry(&mut self, request: &[u8]) -> usize {
        if !self.load(request) {
            return 0;
        }
        let req = &mut self.req;
        let trace = TraceContext::for_request(&*req, &mut self.rng, 1_000_000);
        let parent = trace.traceparent();
        let id = trace::request_id(&mut self.rng);
        let start = std::time::SystemTime::now();
        let entry = Entry {
            start,
            duration: std::time::Duration::from_micros(840),
            request: Some(&*req),
            protocol: "HTTP/1.1",
            status: Some(200),
            flags: "-",
            details: "via_upstream",
            bytes_received: 0,
            bytes_sent: 512,
            upstream_time: Some(std::time::Duration::from_micros(610)),
            upstream_host: Some(std::net::SocketAddr::from(([10, 0, 0, 1], 8080))),
            cluster: "orders",
            route: "route9",
            listener: "main",
            client: std::net::SocketAddr::from(([10, 1, 2, 3], 41234)),
            principal: Some(b"cluster.local/ns/shop/sa/checkout"),
            trace_id: Some(trace.trace_id),
            request_id: Some(&id),
            grpc: None,
        };
        self.log.clear();
        access_log::write(&Format::Json, &entry, &mut self.log);
        access_log::write(&self.text, &entry, &mut self.log);
        span::encode(&trace, span::Kind::Server, &entry, &mut self.log);
        req.rbuf.unpin();
        self.log.len() + parent.len()
    }

    /// One request's byte work; returns the bytes written, so the compiler
    /// cannot drop any of it.
    pub fn run(&mut self, request: &[u8], response: &[u8]) -> usize {
        let limits = Limits::default();
        if !self.load(request) {
            return 0;
        }
        let listener = &self.config.listeners[0];
        let req = &mut self.req;
        let Some(ri) = router::route(listener, &*req, None) else {
            req.rbuf.unpin();
            return 0;
        };
        let route = &listener.routes[ri];
        self.out.clear();
        let ctx = RequestContext {
            client_ip: b"10.1.2.3",
            proto: b"http",
            fallback_host: b"10.0.0.1:8080",
            trust_proto: false,
            client_cert: None,
            propagated: Default::default(),
            rewrite: route.rewrite.as_ref(),
        };
        rewrite::write_request_head(
            &mut self.out,
            req.rbuf.pinned(),
            &req.head,
            &ctx,
            &route.request_headers,
        );
        req.rbuf.unpin();
        let sent = self.out.len();
        if parse_response(response, &limits, false, &mut self.resp) != Ok(true) {
            return 0;
        }
        self.out.clear();
        rewrite::write_response_head(
            &mut self.out,
            response,
            &self.resp,
            ResponseFraming::AsIs,
            ConnectionHeader::None,
            &route.response_headers,
        );
        sent + self.out.len()
    }
}

impl Default for HotPath {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_request_takes_the_last_route() {
        let mut hp = HotPath::new();
        assert!(hp.run(REQUEST, RESPONSE) > 0);
        let req = &mut hp.req;
        req.rbuf.clear();
        req.rbuf.extend_from_slice(REQUEST);
        assert_eq!(
            parse_request(req.rbuf.data(), &Limits::default(), &mut req.head),
            Ok(true)
        );
        req.rbuf.pin(req.head.head_len);
        assert_eq!(
            router::route(&hp.config.listeners[0], &hp.req, None),
            Some(9)
        );
    }

    #[test]
    fn the_rewritten_request_leaves_with_its_new_path_and_host() {
        let mut hp = HotPath::new();
        assert!(hp.run(REWRITTEN_REQUEST, RESPONSE) > 0);
        // `out` holds the response head now; encode the request again.
        assert!(hp.load(REWRITTEN_REQUEST));
        let route = &hp.config.listeners[0].routes[4];
        let mut out = Vec::new();
        let ctx = RequestContext {
            client_ip: b"10.1.2.3",
            proto: b"http",
            fallback_host: b"",
            trust_proto: false,
            client_cert: None,
            propagated: Default::default(),
            rewrite: route.rewrite.as_ref(),
        };
        rewrite::write_request_head(
            &mut out,
            hp.req.rbuf.pinned(),
            &hp.req.head,
            &ctx,
            &route.request_headers,
        );
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with(
                "GET /v2/payments/77?expand=items HTTP/1.1\r\nhost: payments.internal\r\n"
            ),
            "{text}"
        );
    }
}
