//! `RequestView` and `ResponseView` over parsed HTTP/1.x heads, without
//! copying: a parsed head is byte ranges into the buffer it was read into,
//! and the views read through those ranges. The client's request head is
//! pinned in its read buffer (`ReadBuf::pin`) for the whole exchange, so
//! the view stays valid while the body streams, across retries, and for
//! the log at the end.

use ringmesh_http1::{BodyFraming, HeaderSpan, RequestHead, ResponseHead, Span, Version};

use crate::buf::ReadBuf;
use crate::view::{BodyKind, Protocol, RequestView, ResponseView};

/// The bytes of `span` in `buf`; empty if they are gone (a buffer lost to
/// a dropped operation), never a panic.
fn get(buf: &[u8], span: Span) -> &[u8] {
    buf.get(span.start as usize..span.end as usize)
        .unwrap_or_default()
}

pub(crate) fn find<'a>(buf: &'a [u8], headers: &[HeaderSpan], name: &[u8]) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| get(buf, h.name).eq_ignore_ascii_case(name))
        .map(|h| get(buf, h.value))
}

fn each(buf: &[u8], headers: &[HeaderSpan], f: &mut dyn FnMut(&[u8], &[u8])) {
    for h in headers {
        f(get(buf, h.name), get(buf, h.value));
    }
}

fn protocol(v: Version) -> Protocol {
    match v {
        Version::Http10 => Protocol::Http10,
        Version::Http11 => Protocol::Http11,
    }
}

fn body(framing: BodyFraming) -> BodyKind {
    match framing {
        BodyFraming::Empty => BodyKind::Empty,
        BodyFraming::Length(n) => BodyKind::Sized(n),
        BodyFraming::Chunked | BodyFraming::UntilClose => BodyKind::Streamed,
    }
}

/// A client's request: its read buffer, with the head pinned at the
/// front, and the parsed head.
pub struct H1Request {
    pub rbuf: ReadBuf,
    pub head: RequestHead,
    /// `http` or `https`, from the listener.
    pub scheme: &'static [u8],
}

impl H1Request {
    fn bytes(&self) -> &[u8] {
        self.rbuf.pinned()
    }

    /// The target as sent.
    pub fn target(&self) -> &[u8] {
        get(self.bytes(), self.head.target)
    }
}

impl RequestView for H1Request {
    fn method(&self) -> &[u8] {
        get(self.bytes(), self.head.method)
    }

    fn scheme(&self) -> &[u8] {
        self.scheme
    }

    fn authority(&self) -> &[u8] {
        self.head
            .host
            .map(|h| get(self.bytes(), h))
            .unwrap_or_default()
    }

    fn path(&self) -> &[u8] {
        // A lost buffer gives empty spans, and `path` of an empty origin
        // is `/`: never a panic.
        self.head.path(self.bytes())
    }

    fn query(&self) -> Option<&[u8]> {
        self.head.query(self.bytes())
    }

    fn header(&self, name: &[u8]) -> Option<&[u8]> {
        find(self.bytes(), &self.head.headers, name)
    }

    fn for_each_header(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        each(self.bytes(), &self.head.headers, f)
    }

    fn body(&self) -> BodyKind {
        body(self.head.framing)
    }

    fn protocol(&self) -> Protocol {
        protocol(self.head.version)
    }
}

/// An upstream's response: its read buffer, with the head at the front
/// until it is forwarded, and the parsed head.
pub struct H1Response {
    pub ubuf: ReadBuf,
    pub head: ResponseHead,
}

impl ResponseView for H1Response {
    fn status(&self) -> u16 {
        self.head.status
    }

    fn header(&self, name: &[u8]) -> Option<&[u8]> {
        find(self.ubuf.data(), &self.head.headers, name)
    }

    fn for_each_header(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        each(self.ubuf.data(), &self.head.headers, f)
    }

    fn body(&self) -> BodyKind {
        body(self.head.framing)
    }

    fn protocol(&self) -> Protocol {
        protocol(self.head.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmesh_http1::{parse_request, Limits};

    #[test]
    fn the_view_reads_a_pinned_head_while_the_body_moves() {
        let raw = b"POST /orders?id=7 HTTP/1.1\r\nHost: shop:8080\r\nX-A: 1\r\nContent-Length: 4\r\n\r\nbody";
        let mut req = H1Request {
            rbuf: ReadBuf::with_capacity(256),
            head: RequestHead::default(),
            scheme: b"http",
        };
        req.rbuf.extend_from_slice(raw);
        assert!(parse_request(req.rbuf.data(), &Limits::default(), &mut req.head).unwrap());
        req.rbuf.pin(req.head.head_len);
        req.rbuf.consume(4);
        assert_eq!(req.method(), b"POST");
        assert_eq!(req.authority(), b"shop:8080");
        assert_eq!(req.path(), b"/orders");
        assert_eq!(req.query(), Some(&b"id=7"[..]));
        assert_eq!(req.header(b"x-a"), Some(&b"1"[..]));
        assert_eq!(req.body(), BodyKind::Sized(4));
        let mut names = Vec::new();
        req.for_each_header(&mut |n, _| names.push(n.to_vec()));
        assert_eq!(names.len(), 3);
    }
}
