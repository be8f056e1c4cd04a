//! ringmesh-bench: the perf harness.
//!
//! - [`upstream`]: a fast HTTP/1.1 test server (the thing behind the proxy);
//! - [`load`]: a load generator, closed loop or open loop at a fixed rate;
//! - [`compare`]: runs scenarios against ringmesh and its peers, same cores,
//!   alternating runs, and reports medians as JSON, Markdown and SVG;
//! - [`tls`]: rustls for the load and the upstream, and each run's
//!   throwaway certificates.

pub mod compare;
pub mod hist;
pub mod http;
pub mod load;
pub mod pace;
pub mod procfs;
pub mod progress;
pub mod runtime;
pub mod schedule;
pub mod stream;
pub mod tls;
pub mod upstream;
