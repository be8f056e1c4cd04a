//! Checked resources: what the compiler works from. Names are resolved
//! (every reference points at something that exists), durations parsed.
//!
//! Resources are scoped by namespace, and known by their qualified name:
//! `name` in the `default` namespace, `name.namespace` in any other (see
//! `qualified`). That is the key of every map here, the name references
//! hold, and (for a Service) the Host the mesh calls it by and the base of
//! its clusters' names.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::certs::KeyPair;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub services: BTreeMap<String, Service>,
    pub routes: BTreeMap<String, HttpRoute>,
    /// GRPCRoutes: HTTP routes whose matches are gRPC methods.
    pub grpc_routes: BTreeMap<String, HttpRoute>,
    pub tcp_routes: BTreeMap<String, TcpRoute>,
    pub gateways: BTreeMap<String, Gateway>,
    pub secrets: BTreeMap<String, TlsSecret>,
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub backend_tls: BTreeMap<String, BackendTls>,
    /// AuthorizationPolicies, by qualified name (the order sidecars get
    /// them in).
    pub authz: BTreeMap<String, AuthzPolicy>,
    /// PeerAuthentications, by qualified name.
    pub peer_authn: BTreeMap<String, PeerAuthn>,
    /// Telemetries, by qualified name.
    pub telemetry: BTreeMap<String, Telemetry>,
    /// TrafficPolicies, by qualified name.
    pub traffic_policies: BTreeMap<String, TrafficPolicy>,
}

/// Where a resource was defined, for errors and `ringmeshctl get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: String,
    pub line: u64,
}

/// The namespace of a resource that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A resource's name as ringmesh knows it: `name` in the default
/// namespace (so resources written without namespaces keep their names),
/// `name.namespace` in another. Both parts are DNS labels, so the result
/// is a valid proxy name (letters, digits, `-`, `.`; at most 127) and a
/// host name.
pub fn qualified(name: &str, namespace: &str) -> String {
    if namespace == DEFAULT_NAMESPACE {
        name.to_string()
    } else {
        format!("{name}.{namespace}")
    }
}

/// The namespace part of a qualified name.
pub fn namespace_of(qualified: &str) -> &str {
    qualified
        .split_once('.')
        .map_or(DEFAULT_NAMESPACE, |(_, ns)| ns)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Qualified.
    pub name: String,
    /// Static endpoints; proxies registered as this service's workloads are
    /// added when compiling. With `ports`, an endpoint may be a bare host
    /// (it serves every port's `target_port`).
    pub endpoints: Vec<String>,
    /// `spec.ports`, in the order written; empty: one cluster for the
    /// Service, as before ports were read.
    pub ports: Vec<ServicePort>,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    /// What routes name (`backendRefs[].port`, `parentRefs[].port`).
    pub port: u16,
    /// Where endpoints listen; `port` when not given.
    pub target_port: u16,
    pub app_protocol: AppProtocol,
}

/// A Service port's `appProtocol`: what the proxy speaks to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppProtocol {
    /// Not given: HTTP/1.1, or HTTP/2 when a GRPCRoute sends to it.
    Unspecified,
    /// `http`, `kubernetes.io/ws`: HTTP/1.1.
    Http,
    /// `http2`, `grpc`, `kubernetes.io/h2c`: HTTP/2 (h2c on plaintext).
    Http2,
    /// `tcp`: opaque bytes; only TCPRoutes send to it.
    Tcp,
}

impl Service {
    /// The cluster a route's `port` (already checked) sends to.
    pub fn cluster(&self, port: Option<u16>) -> String {
        match port {
            Some(p) if !self.ports.is_empty() => cluster_name(&self.name, p),
            _ => self.name.clone(),
        }
    }

    pub fn port(&self, port: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.port == port)
    }

    /// The static endpoints of one port: those written `host:target_port`,
    /// and the bare hosts with `target_port` added.
    pub fn port_endpoints(&self, p: &ServicePort) -> Vec<String> {
        self.endpoints
            .iter()
            .filter_map(|e| match endpoint_port(e) {
                Some(port) => (port == p.target_port).then(|| e.clone()),
                None if e.parse::<std::net::Ipv6Addr>().is_ok() => {
                    Some(format!("[{e}]:{}", p.target_port))
                }
                None => Some(format!("{e}:{}", p.target_port)),
            })
            .collect()
    }
}

/// The cluster of one port of a Service with ports: `name_port` (`_`
/// appears in no resource name, so it never collides with one).
pub fn cluster_name(service: &str, port: u16) -> String {
    format!("{service}_{port}")
}

/// The port of `ip:port`, `[v6]:port` or `host:port`; None for a bare host.
pub fn endpoint_port(e: &str) -> Option<u16> {
    if let Ok(a) = e.parse::<SocketAddr>() {
        return Some(a.port());
    }
    if e.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    e.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpRoute {
    pub name: String,
    pub parents: Vec<Parent>,
    pub hostnames: Vec<String>,
    pub rules: Vec<Rule>,
    pub source: Source,
}

/// Where a route attaches: qualified names, with the Gateway API's
/// `port` and `sectionName` (a listener's name; for a Service, a port's
/// name, read as the port it names).
/// A TCPRoute: a Gateway TCP listener's connections, relayed to one
/// backend.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpRoute {
    /// Qualified.
    pub name: String,
    pub parents: Vec<Parent>,
    pub backend: Backend,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Parent {
    /// A sidecar's outbound listener tells Services apart by Host, not by
    /// port: `port` is checked but routes all of the Service's traffic.
    Service { name: String, port: Option<u16> },
    Gateway {
        name: String,
        section: Option<String>,
        port: Option<u16>,
    },
}

impl Parent {
    pub fn name(&self) -> &str {
        match self {
            Parent::Service { name, .. } | Parent::Gateway { name, .. } => name,
        }
    }

    pub fn is_service(&self, service: &str) -> bool {
        matches!(self, Parent::Service { name, .. } if name == service)
    }

    /// Whether this parent is Gateway `gateway`'s listener `l`.
    pub fn is_listener(&self, gateway: &str, l: &GatewayListener) -> bool {
        match self {
            Parent::Gateway {
                name,
                section,
                port,
            } => {
                name == gateway
                    && section.as_ref().is_none_or(|s| *s == l.name)
                    && port.is_none_or(|p| p == l.address.port())
            }
            Parent::Service { .. } => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Any of these matches selects the rule; none means every request.
    pub matches: Vec<Match>,
    pub backends: Vec<Backend>,
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub fault: Option<Fault>,
    /// A copy of the requests to another Service's cluster.
    pub mirror: Option<Mirror>,
    /// `RequestHeaderModifier`, as the proxy route's `request_headers`.
    pub request_headers: HeaderEdits,
    /// `ResponseHeaderModifier`, as the proxy route's `response_headers`.
    pub response_headers: HeaderEdits,
    /// `RequestRedirect`: the rule answers instead of forwarding (its
    /// `backends` are empty).
    pub redirect: Option<Redirect>,
    /// `URLRewrite`, as the proxy route's `rewrite`.
    pub rewrite: Option<Rewrite>,
}

/// Header edits as the proxy applies them: `remove` first, then `add`
/// (appended). The Gateway API's `set` is a remove and an add of the same
/// name. Names lowercase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

/// A new path: the whole of it, or the part a `PathPrefix` match matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathModifier {
    Full(String),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<PathModifier>,
    /// Unset: the proxy's default, 302.
    pub status: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
}

/// The Gateway API's `RequestMirror` filter, as the proxy's route
/// `mirror`: the copies' cluster and their share (`None`: all).
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    pub cluster: String,
    pub percent: Option<f64>,
}

/// Idempotent requests that fail to connect, are reset, or get one of
/// `codes` (default 502, 503, 504) are sent again, up to `attempts` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub codes: Vec<u16>,
    /// gRPC statuses, by the proxy's names (`unavailable`, ...).
    pub grpc: Vec<String>,
    /// The wait before the first retry (doubling, with jitter, up to ten
    /// times it); `None`: the proxy's default (25 ms).
    pub backoff: Option<Duration>,
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
    /// Unused (`/`) when `grpc` is set: the method is the path.
    pub path: PathMatch,
    pub method: Option<String>,
    pub headers: Vec<(String, String)>,
    /// A GRPCRoute's `method` match.
    pub grpc: Option<GrpcMethod>,
}

/// A gRPC service (fully qualified) and, optionally, one of its methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcMethod {
    /// Empty: any gRPC request.
    pub service: String,
    pub method: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Qualified.
    pub service: String,
    /// Set when the Service has ports: which one (a Service with one port
    /// needs none named).
    pub port: Option<u16>,
    /// The proxy cluster it sends to.
    pub cluster: String,
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
    /// `address`, or `0.0.0.0:port`.
    pub address: SocketAddr,
    pub protocol: ListenerProtocol,
    /// Namespaces whose routes may attach: `None` for all (`from: All`),
    /// else the Gateway's own (`from: Same`, the default).
    pub allowed_namespace: Option<String>,
    /// Kinds of route that may attach (`allowedRoutes.kinds`, or what the
    /// protocol carries).
    pub kinds: Vec<RouteKind>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerProtocol {
    Http,
    Https,
    /// Opaque TCP, relayed to the one TCPRoute's backend.
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteKind {
    Http,
    Grpc,
    Tcp,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
            RouteKind::Tcp => "TCPRoute",
        }
    }
}

impl ListenerProtocol {
    /// The route kinds a listener of this protocol can carry.
    pub fn kinds(self) -> &'static [RouteKind] {
        match self {
            ListenerProtocol::Http | ListenerProtocol::Https => &[RouteKind::Http, RouteKind::Grpc],
            ListenerProtocol::Tcp => &[RouteKind::Tcp],
        }
    }
}

impl GatewayListener {
    /// Whether a route of `kind` in `namespace` may attach here
    /// (`allowedRoutes`).
    pub fn accepts(&self, kind: RouteKind, namespace: &str) -> bool {
        self.kinds.contains(&kind)
            && self
                .allowed_namespace
                .as_ref()
                .is_none_or(|ns| ns == namespace)
    }

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

/// An AuthorizationPolicy (Istio's): which requests the inbound listener
/// of a Service's sidecars serves. Patterns are checked as the proxy
/// checks them, so a proxy never refuses one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzPolicy {
    /// Qualified: also its name in the proxy's listener.
    pub name: String,
    pub namespace: String,
    /// Qualified Service names; `None`: every Service of `namespace`.
    pub targets: Option<Vec<String>>,
    pub deny: bool,
    /// None: an ALLOW policy matches nothing (deny all), a DENY nothing.
    pub rules: Vec<AuthzRule>,
    pub source: Source,
}

impl AuthzPolicy {
    /// Whether the sidecars of Service `service` (qualified) carry it.
    pub fn applies_to(&self, service: &str) -> bool {
        match &self.targets {
            Some(t) => t.iter().any(|s| s == service),
            None => namespace_of(service) == self.namespace,
        }
    }
}

/// Each list is alternatives; an empty one matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzRule {
    pub from: Vec<AuthzSource>,
    pub to: Vec<AuthzOperation>,
    pub when: Vec<AuthzCondition>,
}

/// Patterns: `exact`, `prefix*`, `*suffix` or `*`. Principals without
/// `spiffe://`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzSource {
    pub principals: Vec<String>,
    pub not_principals: Vec<String>,
    pub namespaces: Vec<String>,
    pub not_namespaces: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzOperation {
    pub methods: Vec<String>,
    pub not_methods: Vec<String>,
    pub paths: Vec<String>,
    pub not_paths: Vec<String>,
    /// The workload's ports (its Service's target ports), as Istio means
    /// them; the compiler turns them into the sidecar's inbound port.
    pub ports: Vec<u16>,
    pub not_ports: Vec<u16>,
}

/// `request.headers[header]`: lowercase header name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzCondition {
    pub header: String,
    pub values: Vec<String>,
    pub not_values: Vec<String>,
}

/// How a sidecar's inbound listener takes traffic from other proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtlsMode {
    /// mTLS and plaintext: the default, as in Istio.
    Permissive,
    /// mTLS only.
    Strict,
}

impl MtlsMode {
    /// As Istio writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            MtlsMode::Permissive => "PERMISSIVE",
            MtlsMode::Strict => "STRICT",
        }
    }
}

/// A PeerAuthentication (Istio's): the mTLS mode of one Service's
/// sidecars, or of every Service of its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAuthn {
    /// Qualified.
    pub name: String,
    pub namespace: String,
    /// The Service its selector (`app: <name>`) picks, qualified; `None`:
    /// namespace-wide.
    pub service: Option<String>,
    /// `None`: UNSET, the namespace-wide policy's mode (or the default).
    pub mode: Option<MtlsMode>,
    pub source: Source,
}

impl Resources {
    /// The mTLS mode of the sidecars of `service` (qualified), as Istio
    /// resolves it: the policy that selects the Service, unless UNSET;
    /// then its namespace's namespace-wide policy, unless UNSET; then
    /// PERMISSIVE. (Validation allows one of each, so there is no tie.)
    pub fn mtls_mode(&self, service: &str) -> MtlsMode {
        let namespace = namespace_of(service);
        let specific = self
            .peer_authn
            .values()
            .find(|p| p.service.as_deref() == Some(service))
            .and_then(|p| p.mode);
        let wide = || {
            self.peer_authn
                .values()
                .find(|p| p.service.is_none() && p.namespace == namespace)
                .and_then(|p| p.mode)
        };
        specific.or_else(wide).unwrap_or(MtlsMode::Permissive)
    }
}

/// What a Telemetry applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TelemetryTarget {
    /// The sidecars of a Service (qualified).
    Service(String),
    /// The gateway proxies of a Gateway (qualified).
    Gateway(String),
}

impl TelemetryTarget {
    pub fn name(&self) -> &str {
        match self {
            TelemetryTarget::Service(n) | TelemetryTarget::Gateway(n) => n,
        }
    }
}

/// A Telemetry (Istio's, with ringmesh's destinations): the access log
/// and tracing of some workloads. Every field is `None` when not written,
/// so that it inherits the namespace-wide Telemetry's (Istio's merge).
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// Qualified.
    pub name: String,
    pub namespace: String,
    /// Empty: every Service and Gateway of `namespace`.
    pub targets: Vec<TelemetryTarget>,
    /// `None`: no (or an empty) `accessLogging`.
    pub access_logging: Option<AccessLogging>,
    /// `None`: no (or an empty) `tracing`.
    pub tracing: Option<TracingPolicy>,
    pub source: Source,
}

/// One `accessLogging` entry; `None` fields inherit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessLogging {
    pub disabled: Option<bool>,
    pub sink: Option<LogSink>,
    /// `filter` given: `Some(its minimum status)` (`Some(None)`: every
    /// response, overriding an inherited filter).
    pub min_status: Option<Option<u16>>,
    pub sample_percent: Option<f64>,
}

/// Where lines go and how they look: the proxy's `path` and `format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSink {
    /// Absolute, or `-` (stdout).
    pub path: String,
    /// `json`, `text` or a template.
    pub format: String,
}

/// One `tracing` entry; `None` fields inherit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TracingPolicy {
    pub disabled: Option<bool>,
    /// `host:port` or `http://host:port`.
    pub collector: Option<String>,
    pub sampling_percent: Option<f64>,
}

/// The access log a workload's listeners get, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogSettings {
    pub sink: LogSink,
    pub min_status: Option<u16>,
    pub sample_percent: Option<f64>,
}

/// The tracing a workload's proxy gets, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    pub collector: String,
    pub sampling_percent: Option<f64>,
}

impl AccessLogging {
    /// `self` over `base`, field by field.
    pub fn over(&self, base: Option<&AccessLogging>) -> AccessLogging {
        let base = base.cloned().unwrap_or_default();
        AccessLogging {
            disabled: self.disabled.or(base.disabled),
            sink: self.sink.clone().or(base.sink),
            min_status: self.min_status.or(base.min_status),
            sample_percent: self.sample_percent.or(base.sample_percent),
        }
    }

    /// On, with somewhere to write: the listener's settings.
    pub fn settings(&self) -> Option<AccessLogSettings> {
        if self.disabled == Some(true) {
            return None;
        }
        Some(AccessLogSettings {
            sink: self.sink.clone()?,
            min_status: self.min_status.flatten(),
            sample_percent: self.sample_percent,
        })
    }
}

impl TracingPolicy {
    /// `self` over `base`, field by field.
    pub fn over(&self, base: Option<&TracingPolicy>) -> TracingPolicy {
        let base = base.cloned().unwrap_or_default();
        TracingPolicy {
            disabled: self.disabled.or(base.disabled),
            collector: self.collector.clone().or(base.collector),
            sampling_percent: self.sampling_percent.or(base.sampling_percent),
        }
    }

    pub fn settings(&self) -> Option<TracingSettings> {
        if self.disabled == Some(true) {
            return None;
        }
        Some(TracingSettings {
            collector: self.collector.clone()?,
            sampling_percent: self.sampling_percent,
        })
    }
}

impl Resources {
    /// The Telemetry that targets `target`, and its namespace's
    /// namespace-wide one (validation allows one of each).
    fn telemetries(&self, target: &TelemetryTarget) -> (Option<&Telemetry>, Option<&Telemetry>) {
        let namespace = namespace_of(target.name());
        let specific = self.telemetry.values().find(|t| t.targets.contains(target));
        let wide = self
            .telemetry
            .values()
            .find(|t| t.targets.is_empty() && t.namespace == namespace);
        (specific, wide)
    }

    /// The access log of `target`'s listeners, as Istio resolves it: the
    /// targeting Telemetry's `accessLogging`, each field it leaves out
    /// taken from the namespace-wide one's.
    pub fn access_log_for(&self, target: &TelemetryTarget) -> Option<AccessLogSettings> {
        let (specific, wide) = self.telemetries(target);
        let wide = wide.and_then(|t| t.access_logging.as_ref());
        match specific.and_then(|t| t.access_logging.as_ref()) {
            Some(s) => s.over(wide).settings(),
            None => wide.and_then(AccessLogging::settings),
        }
    }

    /// `target`'s tracing, resolved as `access_log_for` resolves logs.
    pub fn tracing_for(&self, target: &TelemetryTarget) -> Option<TracingSettings> {
        let (specific, wide) = self.telemetries(target);
        let wide = wide.and_then(|t| t.tracing.as_ref());
        match specific.and_then(|t| t.tracing.as_ref()) {
            Some(s) => s.over(wide).settings(),
            None => wide.and_then(TracingPolicy::settings),
        }
    }
}

/// A `TrafficPolicy`: how proxies call the Services it targets, checked.
/// Every field is optional; an unset one leaves the proxy's default.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficPolicy {
    /// Qualified.
    pub name: String,
    /// Qualified Service names, each targeted by this policy alone.
    pub targets: Vec<String>,
    pub load_balancer: Option<LoadBalancer>,
    pub breakers: Breakers,
    pub connect_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub outlier: Option<Outlier>,
    pub retry_budget: Option<RetryBudget>,
    pub rate_limit: Option<RateLimit>,
    pub panic_threshold: Option<f64>,
    pub health_check: Option<HealthCheck>,
    pub source: Source,
}

/// Active health checks; unset fields take the proxy's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub jitter: Option<Duration>,
    pub unhealthy_threshold: Option<u64>,
    pub healthy_threshold: Option<u64>,
    /// `None`: a TCP check.
    pub http: Option<HttpCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub path: Option<String>,
    pub host: Option<String>,
    /// (first, last), both included; empty: the proxy's 200-399.
    pub expected_statuses: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbKind {
    RoundRobin,
    LeastRequest,
    PeakEwma,
    RingHash,
    Maglev,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    Header(String),
    Cookie(String),
    SourceIp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancer {
    pub kind: LbKind,
    /// Required by RingHash and Maglev.
    pub hash: Option<HashKey>,
    pub ring_points: Option<u64>,
    pub table_size: Option<u64>,
    pub half_life: Option<Duration>,
    pub default_rtt: Option<Duration>,
}

/// The proxy's circuit-breaker limits (whole proxy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breakers {
    pub max_connections: Option<u64>,
    pub max_pending_requests: Option<u64>,
    pub max_requests: Option<u64>,
    pub max_retries: Option<u64>,
}

impl Breakers {
    pub fn is_empty(&self) -> bool {
        *self == Breakers::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outlier {
    pub consecutive_5xx: Option<u64>,
    pub consecutive_gateway_errors: Option<u64>,
    pub interval: Option<Duration>,
    pub base_ejection_time: Option<Duration>,
    pub max_ejection_time: Option<Duration>,
    pub max_ejection_percent: Option<f64>,
    /// (minimum hosts, request volume, stdev factor).
    pub success_rate: Option<(Option<u64>, Option<u64>, Option<f64>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryBudget {
    pub percent: Option<f64>,
    pub min_per_second: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub requests_per_second: f64,
    pub burst: u64,
    /// None: one bucket; `Some(None)`: per caller; `Some(Some(h))`: per
    /// value of header `h`.
    pub per: Option<Option<String>>,
}

impl Resources {
    /// The TrafficPolicy targeting Service `service` (qualified), if any.
    pub fn traffic_policy_for(&self, service: &str) -> Option<&TrafficPolicy> {
        self.traffic_policies
            .values()
            .find(|p| p.targets.iter().any(|t| t == service))
    }
}
