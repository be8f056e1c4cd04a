//! A route's `redirect`: the proxy answers with a `Location` built from
//! the request instead of forwarding it (Envoy's `redirect` action, the
//! Gateway API's `RequestRedirect`).
//!
//! Each part of the location is the route's when it gives one, else the
//! request's: scheme, host (without its port), port, path (replaced in
//! full or by prefix, `ringmesh_http1::target`) and the query, always
//! kept. The port follows the Gateway API: a given `port` is used; with a
//! new `scheme` and no `port`, the scheme's own (none is written); with
//! neither, the port the client wrote in Host. A port that is the
//! scheme's default (80 for http, 443 for https) is never written.
//!
//! The location is written into a buffer the phase takes from the core's
//! pool and gives back after the answer: a redirect allocates nothing
//! once the pool is warm, and routes without one pay nothing.

use ringmesh_http1::target::PathRewrite;

use crate::view::{host_of, RequestView};

/// A validated `redirect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// `http` or `https`.
    pub scheme: Option<&'static [u8]>,
    pub host: Option<Box<[u8]>>,
    pub port: Option<u16>,
    pub path: Option<PathRewrite>,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
}

impl Redirect {
    /// The statuses a redirect may answer with.
    pub const STATUSES: [u16; 5] = [301, 302, 303, 307, 308];
    /// What a redirect answers when its `status` is not given (the Gateway
    /// API's and Envoy's default).
    pub const DEFAULT_STATUS: u16 = 302;

    /// Append the `Location` for `req` to `out`.
    pub fn location(&self, req: &dyn RequestView, out: &mut Vec<u8>) {
        let scheme = self.scheme.unwrap_or(match req.scheme() {
            b"https" => b"https",
            _ => b"http",
        });
        let authority = req.authority();
        let host = self.host.as_deref().unwrap_or(host_of(authority));
        let port = match (self.port, self.scheme) {
            (Some(p), _) => Some(p),
            (None, Some(_)) => None,
            (None, None) => port_of(authority),
        };
        out.extend_from_slice(scheme);
        out.extend_from_slice(b"://");
        out.extend_from_slice(host);
        if let Some(p) = port.filter(|p| Some(*p) != default_port(scheme)) {
            out.push(b':');
            out.extend_from_slice(itoa::Buffer::new().format(p).as_bytes());
        }
        ringmesh_http1::target::write_target(self.path.as_ref(), req.path(), req.query(), out);
    }
}

fn default_port(scheme: &[u8]) -> Option<u16> {
    match scheme {
        b"http" => Some(80),
        b"https" => Some(443),
        _ => None,
    }
}

/// The port of an authority (`a:8080`, `[::1]:8080`), if it has one.
fn port_of(authority: &[u8]) -> Option<u16> {
    let host = host_of(authority);
    let rest = authority.get(host.len() + 1..)?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{BodyKind, Protocol};

    struct Req {
        scheme: &'static [u8],
        authority: &'static [u8],
        path: &'static [u8],
        query: Option<&'static [u8]>,
    }

    impl RequestView for Req {
        fn method(&self) -> &[u8] {
            b"GET"
        }
        fn scheme(&self) -> &[u8] {
            self.scheme
        }
        fn authority(&self) -> &[u8] {
            self.authority
        }
        fn path(&self) -> &[u8] {
            self.path
        }
        fn query(&self) -> Option<&[u8]> {
            self.query
        }
        fn header(&self, _: &[u8]) -> Option<&[u8]> {
            None
        }
        fn for_each_header(&self, _: &mut dyn FnMut(&[u8], &[u8])) {}
        fn body(&self) -> BodyKind {
            BodyKind::Empty
        }
        fn protocol(&self) -> Protocol {
            Protocol::Http11
        }
    }

    fn location(r: &Redirect, req: &Req) -> String {
        let mut out = Vec::new();
        r.location(req, &mut out);
        String::from_utf8(out).unwrap()
    }

    const REQ: Req = Req {
        scheme: b"http",
        authority: b"shop.example:8080",
        path: b"/old/cart",
        query: Some(b"id=7"),
    };

    fn redirect() -> Redirect {
        Redirect {
            scheme: None,
            host: None,
            port: None,
            path: None,
            status: 302,
        }
    }

    #[test]
    fn unset_parts_are_the_requests() {
        assert_eq!(
            location(&redirect(), &REQ),
            "http://shop.example:8080/old/cart?id=7"
        );
        let v6 = Req {
            authority: b"[::1]:80",
            query: None,
            ..REQ
        };
        assert_eq!(location(&redirect(), &v6), "http://[::1]/old/cart");
    }

    #[test]
    fn a_new_scheme_drops_the_port_unless_one_is_given() {
        let https = Redirect {
            scheme: Some(b"https"),
            ..redirect()
        };
        assert_eq!(location(&https, &REQ), "https://shop.example/old/cart?id=7");
        let port = Redirect {
            port: Some(8443),
            ..https.clone()
        };
        assert_eq!(
            location(&port, &REQ),
            "https://shop.example:8443/old/cart?id=7"
        );
        let default = Redirect {
            port: Some(443),
            ..https
        };
        assert_eq!(
            location(&default, &REQ),
            "https://shop.example/old/cart?id=7"
        );
    }

    #[test]
    fn host_and_path_are_replaced() {
        let r = Redirect {
            host: Some(b"new.example"[..].into()),
            path: Some(PathRewrite::prefix(b"/old", b"/new")),
            ..redirect()
        };
        assert_eq!(location(&r, &REQ), "http://new.example:8080/new/cart?id=7");
        let full = Redirect {
            path: Some(PathRewrite::Full(b"/"[..].into())),
            ..redirect()
        };
        assert_eq!(location(&full, &REQ), "http://shop.example:8080/?id=7");
    }
}
