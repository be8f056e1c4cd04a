//! Upstream connections: how they are made (`Connector`) and kept
//! (`EndpointPool`, with the cluster's limit in `Limit`).
//!
//! Everything is per core: a core's connections serve only that core's
//! requests, so checking one out is a `Vec::pop`, not a lock.
//!
//! Connections are keyed by endpoint and transport settings
//! (`TransportKey`): the pool lives on each endpoint and every entry
//! records the transport it was made with, so a connection made with one
//! TLS identity or SNI is never handed to a request that needs
//! another. An endpoint holds two kinds of connection:
//!
//! - **exclusive** (HTTP/1.1): one request at a time; idle ones wait in a
//!   LIFO stack (the most recently used is the least likely to have been
//!   closed by the upstream), checked out whole and given back after a
//!   cleanly delimited response;
//! - **shared** (multiplexed, HTTP/2): many requests at once; a request
//!   takes a stream on the first usable connection below its stream limit
//!   (`SharedConn`), and a connection that is draining (GOAWAY) or closed
//!   is retired on the next checkout.
//!
//! Both kinds count against the cluster's `max_connections`, split across
//! cores (`Limit`).

mod connector;
pub mod h2;
pub mod pool;

pub use connector::{ConnectError, Connector};
pub use pool::{EndpointPool, Idle, Limit, OpenSlot, SharedConn, UpstreamConn};

/// The transport settings a connection was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKey {
    Plain,
    /// TLS, with the digest of its settings (CA, SNI, ALPN, client
    /// certificate: `ClientTls::key`).
    Tls(u64),
}
