//! ringmesh data plane.
pub mod config;
