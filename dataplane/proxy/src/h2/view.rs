//! `RequestView` over an HTTP/2 request's parts, as h2 decoded them.
//!
//! h2 hands a request over as `http::request::Parts`: pseudo-headers
//! already split into method and URI (and checked: RFC 9113 section
//! 8.3.1), header names lowercase, connection-specific fields refused.
//! The view reads them in place.

use http::request::Parts;

use crate::view::{BodyKind, Protocol, RequestView};

/// A client's HTTP/2 request.
pub struct H2Request {
    pub parts: Parts,
    /// `http` or `https`: what the client connected over (not its
    /// `:scheme`, which a client may set to anything).
    pub scheme: &'static [u8],
    /// The request's DATA ends with its HEADERS (END_STREAM).
    pub empty: bool,
}

impl H2Request {
    /// `:path` as sent: path and query.
    pub fn path_and_query(&self) -> &[u8] {
        self.parts
            .uri
            .path_and_query()
            .map_or(b"/".as_slice(), |p| p.as_str().as_bytes())
    }

    fn content_length(&self) -> Option<u64> {
        let v = self.parts.headers.get(http::header::CONTENT_LENGTH)?;
        v.to_str().ok()?.parse().ok()
    }
}

impl RequestView for H2Request {
    fn method(&self) -> &[u8] {
        self.parts.method.as_str().as_bytes()
    }

    fn scheme(&self) -> &[u8] {
        self.scheme
    }

    fn authority(&self) -> &[u8] {
        // `:authority`, else Host (RFC 9113 section 8.3.1).
        match self.parts.uri.authority() {
            Some(a) => a.as_str().as_bytes(),
            None => self
                .parts
                .headers
                .get(http::header::HOST)
                .map_or(b"".as_slice(), |h| h.as_bytes()),
        }
    }

    fn path(&self) -> &[u8] {
        self.parts.uri.path().as_bytes()
    }

    fn query(&self) -> Option<&[u8]> {
        self.parts.uri.query().map(str::as_bytes)
    }

    fn header(&self, name: &[u8]) -> Option<&[u8]> {
        // Names in h2 are lowercase; config matchers were lowercased too,
        // but a caller may ask in any case.
        self.parts
            .headers
            .iter()
            .find(|(n, _)| n.as_str().as_bytes().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }

    fn for_each_header(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        for (n, v) in &self.parts.headers {
            f(n.as_str().as_bytes(), v.as_bytes());
        }
    }

    fn body(&self) -> BodyKind {
        if self.empty {
            return BodyKind::Empty;
        }
        match self.content_length() {
            Some(n) => BodyKind::Sized(n),
            None => BodyKind::Streamed,
        }
    }

    fn protocol(&self) -> Protocol {
        Protocol::Http2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_reads_pseudo_headers_and_fields() {
        let req = http::Request::builder()
            .method("POST")
            .uri("https://shop:8443/orders?id=7")
            .header("content-length", "4")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let view = H2Request {
            parts,
            scheme: b"https",
            empty: false,
        };
        assert_eq!(view.method(), b"POST");
        assert_eq!(view.authority(), b"shop:8443");
        assert_eq!(view.path(), b"/orders");
        assert_eq!(view.query(), Some(&b"id=7"[..]));
        assert_eq!(view.path_and_query(), b"/orders?id=7");
        assert_eq!(view.header(b"Content-Length"), Some(&b"4"[..]));
        assert_eq!(view.body(), BodyKind::Sized(4));
        let mut n = 0;
        view.for_each_header(&mut |_, _| n += 1);
        assert_eq!(n, 3);
    }
}
