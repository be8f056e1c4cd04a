//! ringmesh data plane: a shared-nothing, thread-per-core HTTP/1.1 proxy on
//! io_uring (monoio).
//!
//! Module map, in the order a request meets them:
//! - `server`: binds every socket, starts the workers, drains on a signal.
//! - `worker`: one pinned thread and monoio runtime per core; accept loops.
//! - `conn`: the life of a connection and of each request on it.
//! - `router`: route matching; `cluster`: endpoints, balancing, pooling.
//! - `io`: read buffers and body relays; `error`: failures as responses.
//! - `config`: YAML to validated model; `metrics`, `admin`: observability.
//! - `dns`: endpoint names resolved off the request cores.

pub mod admin;
pub mod agent;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod dns;
pub mod drain;
pub mod error;
pub mod filter;
pub mod io;
pub mod metrics;
pub mod park;
pub mod pool;
pub mod router;
pub mod server;
pub mod timer;
pub mod trim;
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
