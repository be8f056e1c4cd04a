//! HTTP/2 on the client side: h2c with prior knowledge on plaintext
//! listeners (the client preface detected where an HTTP/1.1 head would
//! start), h2 by ALPN on TLS listeners.
//!
//! The codec is the `h2` crate (0.4.20 or later: the rapid-reset,
//! CONTINUATION-flood and reset-flood limits, and it passes h2spec),
//! driven over monoio's `poll-io` bridge (`transport::h2io`), which moves
//! bytes between the socket and h2's buffers with no copy of its own.
//! Not monoio-http's h2 (a fork of h2 0.3 without those fixes), not
//! monoio-compat (a copy each way, write errors reported a call late).
//!
//! `server` runs the connection and a task per stream; `stream` is the
//! pipeline's `Downstream` for one stream; `view` reads h2's decoded
//! request; `encode` maps heads between HTTP/2 and HTTP/1.1 and makes the
//! proxy's own responses (gRPC ones for gRPC calls).
//!
//! Unlike HTTP/1.1, h2 and a task per stream allocate per request, and an
//! idle connection keeps h2's state (about 40 KiB) instead of being
//! parked: the idle timeout bounds how long.

pub mod body;
pub mod encode;
pub mod server;
pub mod stream;
pub mod view;

/// The HTTP/2 client connection preface (RFC 9113 section 3.4) up to the
/// end of its first line: enough to tell it from an HTTP/1.x request.
pub const PREFACE_START: &[u8] = b"PRI * HTTP/2.0\r\n";
