//! ringmesh-control: the control plane.
//!
//! Operators state intent as mesh resources (`Service`, `HTTPRoute`,
//! `Gateway`, shaped like the Kubernetes Gateway API); [`resources`] reads
//! and checks them, every error with file, line and field path, and
//! [`compile`] turns them and a proxy's identity into that proxy's
//! `ringmesh.v1.ProxyConfig`.

pub mod compile;
pub mod resources;
pub mod server;
pub mod stats;
pub mod store;
