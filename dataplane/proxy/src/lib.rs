//! ringmesh data plane: a shared-nothing, thread-per-core HTTP/1.1 proxy on
//! io_uring (monoio).
//!
//! Module map, in the order a request meets them:
//! - `server`: binds every socket, starts the workers, applies new configs
//!   (stage, then commit on every core), drains on a signal.
//! - `worker`: one pinned thread and monoio runtime per core; accept loops,
//!   the per-core `Core` and config `Snapshot`.
//! - `handler`: tasks that serve connections one after another;
//!   `park`: idle connections in a per-core slab and epoll set.
//! - `transport`: the stream every connection runs over (plain TCP or TLS);
//!   `tls`: what listeners present and clusters trust (rustls configs).
//! - `h1`: HTTP/1.x connections: reading requests, writing responses,
//!   upstream exchanges, body relays, request and response views.
//! - `pipeline`: the life of a request as named phases (route, filters,
//!   selection, retries, timeouts, header edits, pooling, log).
//! - `view`: the protocol-neutral request and response views.
//! - `router`: route matching; `filter`: route filters (fault injection, local rate limit).
//! - `cluster`: endpoints, balancer and connections of a cluster per core;
//!   `balance`: the balancer trait and policies; `upstream`: connector and
//!   connection pools.
//! - `tunnel`: bytes both ways after `101 Switching Protocols`; `tcp`:
//!   listeners that relay opaque TCP to a cluster over the same relay.
//! - `buf`: read buffers over ownership-passing IO; `pool`: pooled buffers.
//! - `error`: failures as responses; `loglimit`: rate-limited failure logs.
//! - `config`: YAML and proto to a validated model; `metrics`, `admin`:
//!   observability; `telemetry`: access logs and spans, written and
//!   exported by threads off the cores; `agent`: the control-plane stream; `dns`: endpoint
//!   names resolved off the request cores.

pub mod admin;
pub mod agent;
pub mod authz;
pub mod balance;
pub mod buf;
pub mod circuit_breaker;
pub mod cluster;
pub mod config;
pub mod detect;
pub mod dns;
pub mod drain;
pub mod error;
pub mod filter;
pub mod grpc;
pub mod h1;
pub mod h2;
pub mod handler;
pub mod health;
pub mod identity;
pub mod loglimit;
pub mod metrics;
pub mod mirror;
pub mod outlier;
pub mod park;
pub mod pipeline;
pub mod pool;
pub mod redirect;
pub mod report;
pub mod retry_budget;
pub mod router;
pub mod server;
pub mod tcp;
pub mod telemetry;
#[cfg(test)]
pub mod testing;
pub mod timer;
pub mod tls;
pub mod transport;
pub mod trim;
pub mod tunnel;
pub mod upstream;
pub mod view;
pub mod worker;

use std::net::SocketAddr;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] config::ConfigErrors),
    #[error("cannot bind {what} to {addr}: {source}")]
    Bind {
        what: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot start the admin server: {0}")]
    Admin(std::io::Error),
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
    #[error("{0}")]
    Runtime(String),
}
