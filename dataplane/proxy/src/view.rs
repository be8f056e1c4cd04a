//! The protocol-neutral view of a request and a response.
//!
//! Routing, filters, balancers, metrics and logs read requests through
//! `RequestView` and responses through `ResponseView`, never through a
//! codec's own types, so the same route table and policies serve every
//! protocol. HTTP/1.1 implements the views over the byte ranges of its
//! parsed head (`h1::view`): nothing is copied to build one; HTTP/2 over
//! h2's decoded `http` parts (`h2::view`, `upstream::h2::H2Exchange`).
//!
//! Names and values are bytes as they came off the wire. Header names are
//! compared case-insensitively (`header`), as HTTP/1.1 sends them in any
//! case and HTTP/2 in lowercase.

/// The protocol a message arrived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http10,
    Http11,
    Http2,
}

/// How much body follows a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// None at all.
    Empty,
    /// Exactly this many bytes.
    Sized(u64),
    /// Streamed until its end (chunked, until close, HTTP/2 END_STREAM);
    /// trailers may follow it.
    Streamed,
}

/// A request as every part of the pipeline reads it.
pub trait RequestView {
    /// `GET`, `POST`, ... as sent (methods are case-sensitive).
    fn method(&self) -> &[u8];
    /// `http` or `https`: how the request reached the proxy.
    fn scheme(&self) -> &[u8];
    /// The authority (host and optional port) the request is for: the
    /// absolute-form target's, else Host (`:authority` in HTTP/2). Empty
    /// when the request has none (HTTP/1.0 without Host).
    fn authority(&self) -> &[u8];
    /// The path without its query string.
    fn path(&self) -> &[u8];
    /// The query string without its `?`, if any.
    fn query(&self) -> Option<&[u8]>;
    /// The first value of header `name` (case-insensitive).
    fn header(&self, name: &[u8]) -> Option<&[u8]>;
    /// Every header field in order, as sent (hop-by-hop ones included).
    fn for_each_header(&self, f: &mut dyn FnMut(&[u8], &[u8]));
    fn body(&self) -> BodyKind;
    fn protocol(&self) -> Protocol;
}

/// A response as every part of the pipeline reads it.
pub trait ResponseView {
    fn status(&self) -> u16;
    fn header(&self, name: &[u8]) -> Option<&[u8]>;
    fn for_each_header(&self, f: &mut dyn FnMut(&[u8], &[u8]));
    fn body(&self) -> BodyKind;
    fn protocol(&self) -> Protocol;
}

/// The authority without its port: `example.com:8080` -> `example.com`,
/// `[::1]:80` -> `[::1]`.
pub fn host_of(authority: &[u8]) -> &[u8] {
    match authority.iter().rposition(|&b| b == b':') {
        Some(i) if !authority[i..].contains(&b']') => &authority[..i],
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_authorities() {
        assert_eq!(host_of(b"a.b:80"), b"a.b");
        assert_eq!(host_of(b"[::1]:80"), b"[::1]");
        assert_eq!(host_of(b"[::1]"), b"[::1]");
        assert_eq!(host_of(b"a.b"), b"a.b");
        assert_eq!(host_of(b""), b"");
    }
}
