//! HTTP/2 and gRPC for the load and the upstream.
//!
//! - [`io`]: the `h2` crate's transport over monoio's poll-io (h2c, or a
//!   TLS session whose handshake ran over io_uring);
//! - [`client`]: one connection's handshake and one request/response
//!   exchange, the load's (and `compare`'s readiness probe's) building
//!   block;
//! - [`server`]: the upstream's HTTP/2 side: the same canned responses as
//!   its HTTP/1.1 side, plus Echo.Unary;
//! - [`grpc`]: the gRPC framing of `ringmesh.testing.v1.Echo`, encoded
//!   with prost (no tonic in the hot loop).
//!
//! h2 allocates per stream (its stream state, the request's headers, a
//! task per stream on the server), so the harness spends more CPU per
//! request over HTTP/2 than over HTTP/1.1; `generator_cpu` in the load's
//! report says how much.

pub mod client;
pub mod grpc;
pub mod io;
pub mod server;

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Stream and connection windows the harness advertises: large enough
/// that flow control never paces a benchmark's bodies (the proxies'
/// windows are what is measured).
pub const STREAM_WINDOW: u32 = 1 << 20;
pub const CONNECTION_WINDOW: u32 = 16 << 20;
/// Streams the upstream takes at once on one connection: above any
/// proxy's pool and any `--streams` a scenario uses.
pub const MAX_STREAMS: u32 = 1024;
/// Largest header list either side accepts.
pub const MAX_HEADER_LIST: u32 = 64 * 1024;

#[cfg(test)]
mod tests;
