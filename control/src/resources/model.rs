//! Checked resources: what the compiler works from. Names are resolved
//! (every reference points at something that exists), durations parsed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::certs::KeyPair;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub services: BTreeMap<String, Service>,
    pub routes: BTreeMap<String, HttpRoute>,
    pub gateways: BTreeMap<String, Gateway>,
    pub secrets: BTreeMap<String, TlsSecret>,
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub backend_tls: BTreeMap<String, BackendTls>,
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
    /// Lowercase; `*.example.com` for a wildcard. None: every host.
    pub hostname: Option<String>,
    /// `protocol: HTTPS`: TLS terminated with these certificates.
    pub tls: Option<ListenerTls>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// Secret names, in the order given.
    pub certificates: Vec<String>,
}

impl GatewayListener {
    /// The Host matches a route with `route_hostnames` gets on this
    /// listener, as the Gateway API intersects them: the route's names
    /// this listener's hostname covers, or the listener's hostname where
    /// a route's wildcard covers it. `[None]`: any host. Empty: the route
    /// does not apply here.
    pub fn hosts_for(&self, route_hostnames: &[String]) -> Vec<Option<String>> {
        let Some(mine) = &self.hostname else {
            if route_hostnames.is_empty() {
                return vec![None];
            }
            return route_hostnames.iter().cloned().map(Some).collect();
        };
        if route_hostnames.is_empty() {
            return vec![Some(mine.clone())];
        }
        let mut out = Vec::new();
        for h in route_hostnames {
            let h = h.to_ascii_lowercase();
            let both = if h == *mine || wildcard_covers(mine, &h) {
                Some(h)
            } else if wildcard_covers(&h, mine) {
                Some(mine.clone())
            } else {
                None
            };
            if let Some(b) = both.filter(|b| !out.contains(&Some(b.clone()))) {
                out.push(Some(b));
            }
        }
        out
    }
}

/// `*.example.com` covers `a.example.com`, `a.b.example.com` and
/// `*.a.example.com` (a Host wildcard spans labels, as in the Gateway API).
fn wildcard_covers(wildcard: &str, name: &str) -> bool {
    wildcard
        .strip_prefix('*')
        .is_some_and(|suffix| name.len() > suffix.len() && name.ends_with(suffix))
}

/// A Secret of type `kubernetes.io/tls`: a checked chain and its key, and
/// the CA bundle in `ca.crt` if it has one. `Debug` redacts the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSecret {
    pub name: String,
    pub pair: KeyPair,
    pub ca: Option<CaBundle>,
    pub source: Source,
}

/// A ConfigMap with a CA bundle in `ca.crt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMap {
    pub name: String,
    pub ca: CaBundle,
    pub source: Source,
}

/// Checked CA certificates, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle {
    pub pem: String,
    pub count: usize,
}

/// A BackendTLSPolicy: proxies originate TLS to its Services' endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendTls {
    pub name: String,
    /// Service names; a Service has at most one policy.
    pub targets: Vec<String>,
    pub ca: BackendCa,
    /// Sent in SNI and verified in the certificate.
    pub hostname: String,
    /// A Secret presented when the backend asks for a client certificate
    /// (option `ringmesh.io/client-certificate`).
    pub client_certificate: Option<String>,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendCa {
    /// `wellKnownCACertificates: System`: the proxy machine's roots.
    System,
    /// `caCertificateRefs`, in order.
    Refs(Vec<CaRef>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaRef {
    ConfigMap(String),
    Secret(String),
}

impl Resources {
    /// The CA bundle a reference names (validation made sure it has one).
    pub fn ca_pem(&self, r: &CaRef) -> Option<&str> {
        match r {
            CaRef::ConfigMap(n) => self.config_maps.get(n).map(|c| c.ca.pem.as_str()),
            CaRef::Secret(n) => self
                .secrets
                .get(n)
                .and_then(|s| s.ca.as_ref())
                .map(|c| c.pem.as_str()),
        }
    }
}
