//! A cluster's `health_check` as written (validated in
//! `validate/health.rs`).

use serde::{Deserialize, Serialize};

use super::S;

/// Active health checks of a cluster's endpoints: `http` or `tcp`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// Between rounds of checks (default 5s).
    pub interval: Option<S<String>>,
    /// One check, from connect to response head (default 1s).
    pub timeout: Option<S<String>>,
    /// Up to this much, at random, added to each interval (default 0).
    pub jitter: Option<S<String>>,
    /// Failed checks in a row that make an endpoint unhealthy (default 3).
    pub unhealthy_threshold: Option<S<u64>>,
    /// Passed checks in a row that make it healthy again (default 2).
    pub healthy_threshold: Option<S<u64>>,
    pub http: Option<S<RawHttpCheck>>,
    pub tcp: Option<S<RawTcpCheck>>,
}

/// An HTTP/1.1 GET that passes on an expected status.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpCheck {
    /// Default `/`.
    pub path: Option<S<String>>,
    /// The Host header (default: the cluster's name).
    pub host: Option<S<String>>,
    /// Default `["200-399"]`.
    pub expected_statuses: Option<S<Vec<S<RawStatusRange>>>>,
}

/// `204`, or `"200-299"` (both ends included).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawStatusRange {
    Code(u64),
    Range(String),
}

/// A connection (and TLS handshake, on a TLS cluster) passes.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcpCheck {}
