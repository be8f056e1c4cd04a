//! Pick a route for a request: first match wins, in config order.
//!
//! Matchers were lowercased at config time, so matching compares bytes in
//! place against the read buffer with no allocation.

use ringmesh_http1::RequestHead;

use crate::config::model::{HeaderRule, HostMatch, Listener, PathMatch, RouteMatch};

/// The index of the first route of `listener` that matches.
pub fn route(listener: &Listener, buf: &[u8], head: &RequestHead) -> Option<usize> {
    let host = head
        .host
        .map(|h| strip_port(h.get(buf)))
        .unwrap_or_default();
    let path = head.path(buf);
    listener
        .routes
        .iter()
        .position(|r| matches(&r.matcher, buf, head, host, path))
}

fn matches(m: &RouteMatch, buf: &[u8], head: &RequestHead, host: &[u8], path: &[u8]) -> bool {
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
        && m.method
            .as_ref()
            .is_none_or(|want| head.method(buf) == &want[..])
        && m.headers.iter().all(|h| {
            let value = head.header(buf, &h.name);
            match &h.rule {
                HeaderRule::Exact(want) => value == Some(&want[..]),
                HeaderRule::Present(present) => value.is_some() == *present,
            }
        })
}

/// `example.com:8080` -> `example.com`; `[::1]:80` -> `[::1]`.
fn strip_port(host: &[u8]) -> &[u8] {
    match host.iter().rposition(|&b| b == b':') {
        Some(i) if !host[i..].contains(&b']') => &host[..i],
        _ => host,
    }
}

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
    use ringmesh_http1::{parse_request, Limits};

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
        let mut head = RequestHead::default();
        assert!(parse_request(raw.as_bytes(), &Limits::default(), &mut head).unwrap());
        let l = &config.listeners[0];
        route(l, raw.as_bytes(), &head).map(|i| l.routes[i].name.clone())
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

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port(b"a.b:80"), b"a.b");
        assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
        assert_eq!(strip_port(b"[::1]"), b"[::1]");
        assert_eq!(strip_port(b"a.b"), b"a.b");
    }
}
