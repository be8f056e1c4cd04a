//! Pick a route for a request: first match wins, in config order.
//!
//! Routes match on the protocol-neutral request view, so one route table
//! serves every protocol. Matchers were lowercased at config time, and the
//! view hands out bytes in place (for HTTP/1.1, in the read buffer), so
//! matching allocates nothing.

use crate::config::model::{HeaderRule, HostMatch, Listener, PathMatch, RouteMatch};
use crate::view::{host_of, RequestView};

/// The index of the first route of `listener` that matches; `principal`
/// is the caller's workload identity, when it proved one (mTLS).
pub fn route(
    listener: &Listener,
    req: &dyn RequestView,
    principal: Option<&[u8]>,
) -> Option<usize> {
    let host = host_of(req.authority());
    let path = req.path();
    listener
        .routes
        .iter()
        .position(|r| matches(&r.matcher, req, host, path, principal))
}

fn matches(
    m: &RouteMatch,
    req: &dyn RequestView,
    host: &[u8],
    path: &[u8],
    principal: Option<&[u8]>,
) -> bool {
    let host_ok = match &m.host {
        None => true,
        Some(HostMatch::Exact(want)) => host.eq_ignore_ascii_case(want),
        Some(HostMatch::Suffix(suffix)) => {
            host.len() > suffix.len()
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        }
    };
    let path_ok = match &m.path {
        PathMatch::Any => true,
        PathMatch::Exact(want) => path == &want[..],
        PathMatch::Prefix(prefix) => path.starts_with(prefix),
    };
    host_ok
        && path_ok
        && (!m.grpc || is_grpc(req))
        && m.source.as_ref().is_none_or(|s| s.admits(principal))
        && m.method
            .as_ref()
            .is_none_or(|want| req.method() == &want[..])
        && m.headers.iter().all(|h| {
            let value = req.header(&h.name);
            match &h.rule {
                HeaderRule::Exact(want) => value == Some(&want[..]),
                HeaderRule::Present(present) => value.is_some() == *present,
            }
        })
}

pub use crate::grpc::is_grpc;

/// Choose a cluster by weight; `roll` is uniform in `0..total`.
pub fn pick_weighted(choices: &[(usize, u64)], roll: u64) -> Option<usize> {
    choices
        .iter()
        .find(|(_, cumulative)| roll < *cumulative)
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::ReadBuf;
    use crate::h1::view::H1Request;
    use ringmesh_http1::{parse_request, Limits, RequestHead};

    const ROUTES: &str = "\
listeners:
  - name: l
    address: 127.0.0.1:1
    routes:
      - name: api-get
        match: { host: api.example.com, path: { prefix: /v1/ }, method: GET }
        direct_response: { status: 200 }
      - name: canary
        match: { host: '*.example.com', headers: [ { name: x-canary, exact: 'yes' } ] }
        direct_response: { status: 200 }
      - name: no-debug
        match: { path: { exact: /status }, headers: [ { name: x-debug, present: false } ] }
        direct_response: { status: 200 }
      - name: wild
        match: { host: '*.example.com' }
        direct_response: { status: 200 }
";

    fn pick(raw: &str) -> Option<String> {
        let config = crate::config::parse(ROUTES, "t").unwrap();
        let mut req = H1Request {
            rbuf: ReadBuf::with_capacity(1024),
            head: RequestHead::default(),
            scheme: b"http",
        };
        req.rbuf.extend_from_slice(raw.as_bytes());
        assert!(parse_request(req.rbuf.data(), &Limits::default(), &mut req.head).unwrap());
        req.rbuf.pin(req.head.head_len);
        let l = &config.listeners[0];
        route(l, &req, None).map(|i| l.routes[i].name.clone())
    }

    #[test]
    fn a_route_can_be_for_some_callers_only() {
        let config = crate::config::parse(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - { name: web, match: { source: { principals: [td/ns/shop/sa/web] } }, direct_response: { status: 200 } }\n      - { name: shop, match: { source: { namespaces: [shop] } }, direct_response: { status: 200 } }\n      - { name: rest, direct_response: { status: 200 } }\n",
            "t.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut req = H1Request {
            rbuf: ReadBuf::with_capacity(1024),
            head: RequestHead::default(),
            scheme: b"http",
        };
        req.rbuf
            .extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(parse_request(req.rbuf.data(), &Limits::default(), &mut req.head).unwrap());
        req.rbuf.pin(req.head.head_len);
        let l = &config.listeners[0];
        let name = |p: Option<&[u8]>| route(l, &req, p).map(|i| l.routes[i].name.as_str());
        assert_eq!(name(Some(b"td/ns/shop/sa/web")), Some("web"));
        assert_eq!(name(Some(b"td/ns/shop/sa/cart")), Some("shop"));
        assert_eq!(name(Some(b"td/ns/other/sa/web")), Some("rest"));
        assert_eq!(name(None), Some("rest"), "unauthenticated");
    }

    #[test]
    fn first_matching_route_wins() {
        assert_eq!(
            pick("GET /v1/users HTTP/1.1\r\nHost: API.example.com:8443\r\n\r\n").as_deref(),
            Some("api-get")
        );
        assert_eq!(
            pick("POST /v1/users HTTP/1.1\r\nHost: api.example.com\r\n\r\n").as_deref(),
            Some("wild")
        );
        assert_eq!(
            pick("GET /v1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n").as_deref(),
            Some("wild")
        );
        assert_eq!(
            pick("GET / HTTP/1.1\r\nHost: a.example.com\r\nX-Canary: yes\r\n\r\n").as_deref(),
            Some("canary")
        );
        assert_eq!(
            pick("GET / HTTP/1.1\r\nHost: a.example.com\r\nX-Canary: no\r\n\r\n").as_deref(),
            Some("wild")
        );
    }

    #[test]
    fn suffix_needs_a_label_before_it() {
        assert_eq!(pick("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), None);
    }

    #[test]
    fn exact_path_ignores_query_and_present_false_works() {
        assert_eq!(
            pick("GET /status?full=1 HTTP/1.1\r\nHost: other\r\n\r\n").as_deref(),
            Some("no-debug")
        );
        assert_eq!(
            pick("GET /status HTTP/1.1\r\nHost: other\r\nX-Debug: 1\r\n\r\n"),
            None
        );
        assert_eq!(pick("GET /statusx HTTP/1.1\r\nHost: other\r\n\r\n"), None);
    }

    #[test]
    fn weighted_pick_follows_cumulative_weights() {
        let choices = [(0, 90), (1, 100)];
        assert_eq!(pick_weighted(&choices, 0), Some(0));
        assert_eq!(pick_weighted(&choices, 89), Some(0));
        assert_eq!(pick_weighted(&choices, 90), Some(1));
        assert_eq!(pick_weighted(&choices, 99), Some(1));
    }
}
