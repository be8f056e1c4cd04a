//! ringmesh-bench: the perf harness.
//!
//! - [`upstream`]: a fast HTTP/1.1 test server (the thing behind the proxy),
//!   with `h2` also HTTP/2 and gRPC ([`http2`]);
//! - [`load`]: a load generator, closed loop or open loop at a fixed rate,
//!   HTTP/1.1 or HTTP/2 (streams per connection, gRPC unary calls);
//! - [`compare`]: runs scenarios against ringmesh and its peers, same cores,
//!   alternating runs, and reports medians as JSON, Markdown and SVG;
//! - [`tls`]: rustls for the load and the upstream, and each run's
//!   throwaway certificates.

pub mod compare;
pub mod hist;
pub mod http;
pub mod http2;
pub mod load;
pub mod pace;
pub mod procfs;
pub mod progress;
pub mod runtime;
pub mod schedule;
pub mod stream;
pub mod tls;
pub mod upstream;
