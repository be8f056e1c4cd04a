//! Checked resources: what the compiler works from. Names are resolved
//! (every reference points at something that exists), durations parsed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub services: BTreeMap<String, Service>,
    pub routes: BTreeMap<String, HttpRoute>,
    pub gateways: BTreeMap<String, Gateway>,
}

/// Where a resource was defined, for errors and `ringmeshctl get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: String,
    pub line: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    /// Static endpoints; proxies registered as this service's workloads are
    /// added when compiling.
    pub endpoints: Vec<String>,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpRoute {
    pub name: String,
    pub parents: Vec<Parent>,
    pub hostnames: Vec<String>,
    pub rules: Vec<Rule>,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Parent {
    Service(String),
    Gateway(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Any of these matches selects the rule; none means every request.
    pub matches: Vec<Match>,
    pub backends: Vec<Backend>,
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub fault: Option<Fault>,
}

/// Idempotent requests that fail to connect, are reset, or get one of
/// `codes` (default 502, 503, 504) are sent again, up to `attempts` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub codes: Vec<u16>,
}

/// Fault injection, for testing how callers cope with a slow or failing
/// service: `delay` holds a share of the requests before they are
/// forwarded, then `abort` answers a share with a status instead. At least
/// one of them is set; each has its own share.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultDelay {
    /// More than 0, at most 7 days.
    pub duration: Duration,
    /// 0 to 100.
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultAbort {
    /// 200 to 599.
    pub status: u16,
    /// 0 to 100.
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub path: PathMatch,
    pub method: Option<String>,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub service: String,
    pub weight: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub name: String,
    pub listeners: Vec<GatewayListener>,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayListener {
    pub name: String,
    pub address: SocketAddr,
}
