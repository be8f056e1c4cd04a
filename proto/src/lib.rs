//! `ringmesh.v1`: the contract between the control plane and the proxies.
//!
//! - [`v1::ProxyConfig`]: a proxy's whole config, the same shape as
//!   `proxy.yaml` (the proxy converts it and runs the same validation);
//! - [`v1::discovery_server`] / [`v1::discovery_client`]: the stream that
//!   carries versioned snapshots one way and ACKs/NACKs the other.

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("ringmesh.v1");
}

/// `ringmesh.testing.v1.Echo`: a gRPC service with every kind of call,
/// for the end-to-end tests and the perf harness (not the proxy's API).
pub mod testing {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("ringmesh.testing.v1");
}
