//! HTTP/1.x framing for the ringmesh data plane.
//!
//! This crate knows bytes, not sockets: it parses request and response heads
//! from a read buffer, decides how the body that follows is framed (and
//! rejects framings that enable request smuggling), walks chunked bodies, and
//! writes the forwarded head into a reusable output buffer. Keeping it free of
//! IO makes every framing rule testable with plain byte strings and lets the
//! proxy crate own all the io_uring plumbing.
//!
//! Parsing is done by `httparse`; what is hand-written here is the framing
//! policy on top of it (RFC 9112 sections 6 and 7), because that policy is
//! exactly where proxies disagree and smuggling happens.
//!
//! Nothing here allocates per request: parsed heads store byte ranges into the
//! caller's buffer in a `Vec` the caller reuses, and rewriting appends to a
//! caller-owned `Vec<u8>` whose capacity survives from request to request.
#![forbid(unsafe_code)]

pub mod chunked;
mod error;
pub mod head;
pub mod rewrite;
pub mod target;

pub use chunked::{ChunkedDecoder, ChunkedError};
pub use error::HeadError;
pub use head::{
    parse_request, parse_response, BodyFraming, HeaderSpan, Limits, RequestHead, ResponseHead,
    Span, TargetForm, Version,
};
