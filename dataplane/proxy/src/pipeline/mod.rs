//! The life of one request, top to bottom, as named phases.
//!
//! ```text
//! request filters   refuse what the proxy does not serve (CONNECT)
//! route             first matching route of the listener
//! route filters     the route's filters in order (fault injection, rate limit)
//! action            direct response, or forward:
//!   prepare         encode the upstream request once: header edits,
//!                   X-Forwarded-*, the part of the body already here
//!   select          cluster (weights), endpoint (the cluster's balancer)
//!   exchange        connection (pool or connect), send, response head;
//!                   retries by the route's policy, each try timed
//!   response        101 -> tunnel; response header edits; head and body
//!                   to the client; the connection back to the pool
//! log               counters by route and cluster, failures (rate-limited)
//! ```
//!
//! Everything here is policy: it reads the request through `RequestView`
//! and moves bytes only through `Downstream`, so it is the same for every
//! protocol. The connection loops (`h1::server`) read requests and write
//! what these phases decide; they hold no policy of their own.

pub mod downstream;
mod phases;

pub use downstream::{
    Aborted, After, Downstream, H2HeadError, HeadRead, Local, RequestEdits, ResponseEnd, SendError,
};
pub use phases::{is_idempotent, serve, Env};

use crate::upstream::UpstreamConn;

/// What the connection does after a request.
pub enum Next {
    KeepAlive,
    Close,
    /// After `101 Switching Protocols`: relay bytes both ways until either
    /// side closes, over this upstream connection (still counted against
    /// its cluster's limit).
    Tunnel(UpstreamConn),
}

#[cfg(test)]
mod tests;
