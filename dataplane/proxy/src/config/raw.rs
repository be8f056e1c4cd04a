//! The config file as written: serde types that mirror `proxy.yaml` field for
//! field. Nothing here is trusted; `validate` turns it into `model` types.
//!
//! Fields that validation may complain about are `Spanned` so an error can
//! name the line they came from; every struct denies unknown fields so a typo
//! is an error, not a silently ignored setting.

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

pub type S<T> = Spanned<T>;

mod health;
pub use health::*;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub runtime: RawRuntime,
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub listeners: Vec<S<RawListener>>,
    #[serde(default)]
    pub clusters: Vec<S<RawCluster>>,
    pub mesh: Option<S<RawMesh>>,
    pub tracing: Option<S<RawTracing>>,
    /// The proxy's own locality (endpoints' `zone`).
    pub zone: Option<S<String>>,
}

/// Spans exported over OTLP/gRPC.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    /// `host:port` or `http://host:port` of an OTLP/gRPC collector.
    pub collector: Option<S<String>>,
    /// Share of traces that start here to record, 0 to 100 (default 100).
    pub sampling_percent: Option<S<f64>>,
    /// The spans' `service.name`.
    pub service_name: Option<S<String>>,
}

/// A listener's access log.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    /// A file, or `-` for stdout.
    pub path: Option<S<String>>,
    /// `json` (default), `text`, or a template of `%OPERATOR%`s.
    pub format: Option<S<String>>,
    /// Log only responses with at least this status.
    pub min_status: Option<S<u64>>,
    /// Share of requests logged, 0 to 100 (default 100).
    pub sample_percent: Option<S<f64>>,
}

/// The workload identity and the peers' roots, for `mesh` listeners and
/// clusters.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMesh {
    /// From files (a SPIRE agent's); unset: from the control plane.
    pub identity: Option<S<RawCertificate>>,
    pub trust_bundle: Option<S<String>>,
    pub trust_bundle_pem: Option<S<String>>,
}

/// A listener that accepts mTLS from the mesh's proxies.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeshInbound {
    /// `permissive` (default) or `strict`.
    pub mode: Option<S<String>>,
}

/// A cluster whose endpoints are the mesh's proxies.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeshUpstream {
    /// The SPIFFE ID they must prove.
    pub identity: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    /// `auto` or a count.
    pub workers: Option<S<StringOrNumber>>,
    /// CPU ids to pin workers to, in order.
    pub cpu_affinity: Option<S<Vec<usize>>>,
    /// `auto`, `uring` or `epoll`.
    pub io: Option<S<String>>,
    pub drain_timeout: Option<S<String>>,
    pub drain_delay: Option<S<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StringOrNumber {
    Number(u64),
    String(String),
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub address: S<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: S<String>,
    pub address: S<String>,
    pub max_header_bytes: Option<S<u64>>,
    pub max_headers: Option<S<u64>>,
    pub header_read_timeout: Option<S<String>>,
    pub idle_timeout: Option<S<String>>,
    #[serde(default)]
    pub routes: Vec<S<RawRoute>>,
    pub max_connections: Option<S<u64>>,
    /// `overwrite` or `trust`.
    pub x_forwarded_proto: Option<S<String>>,
    pub tunnel_idle_timeout: Option<S<String>>,
    pub tls: Option<S<RawDownstreamTls>>,
    pub tcp: Option<S<RawTcp>>,
    pub http2: Option<S<RawHttp2>>,
    pub detect: Option<S<RawDetect>>,
    #[serde(default)]
    pub authorization: Vec<S<RawPolicy>>,
    pub mesh: Option<S<RawMeshInbound>>,
    pub access_log: Option<S<RawAccessLog>>,
    /// `inbound` (default: the proxy serves callers) or `outbound` (the
    /// proxy calls other services for its workload).
    pub direction: Option<S<String>>,
}

/// An authorization policy (Istio's AuthorizationPolicy, per listener).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub name: Option<S<String>>,
    /// `allow` (default) or `deny`.
    pub action: Option<S<String>>,
    #[serde(default)]
    pub rules: Vec<S<RawAuthzRule>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthzRule {
    #[serde(default)]
    pub from: Vec<S<RawAuthzSource>>,
    #[serde(default)]
    pub to: Vec<S<RawAuthzOperation>>,
    #[serde(default)]
    pub when: Vec<S<RawAuthzCondition>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthzSource {
    #[serde(default)]
    pub principals: Vec<S<String>>,
    #[serde(default)]
    pub not_principals: Vec<S<String>>,
    #[serde(default)]
    pub namespaces: Vec<S<String>>,
    #[serde(default)]
    pub not_namespaces: Vec<S<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthzOperation {
    #[serde(default)]
    pub methods: Vec<S<String>>,
    #[serde(default)]
    pub not_methods: Vec<S<String>>,
    #[serde(default)]
    pub paths: Vec<S<String>>,
    #[serde(default)]
    pub not_paths: Vec<S<String>>,
    #[serde(default)]
    pub ports: Vec<S<String>>,
    #[serde(default)]
    pub not_ports: Vec<S<String>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthzCondition {
    pub header: S<String>,
    #[serde(default)]
    pub values: Vec<S<String>>,
    #[serde(default)]
    pub not_values: Vec<S<String>>,
}

/// Protocol detection on a listener.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetect {
    pub timeout: Option<S<String>>,
}

/// HTTP/2 from clients on a listener.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp2 {
    pub enabled: Option<S<bool>>,
    pub max_concurrent_streams: Option<S<u64>>,
    pub initial_stream_window: Option<S<u64>>,
    pub initial_connection_window: Option<S<u64>>,
    pub max_header_list_size: Option<S<u64>>,
    pub max_frame_size: Option<S<u64>>,
    pub max_pending_accept_reset_streams: Option<S<u64>>,
    pub max_local_error_reset_streams: Option<S<u64>>,
}

/// Opaque TCP proxying on a listener.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcp {
    pub cluster: Option<S<String>>,
    pub idle_timeout: Option<S<String>>,
}

/// TLS termination on a listener.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDownstreamTls {
    #[serde(default)]
    pub certificates: Vec<S<RawCertificate>>,
    pub alpn: Option<Vec<S<String>>>,
    pub handshake_timeout: Option<S<String>>,
    pub client_auth: Option<S<RawClientAuth>>,
    pub session_resumption: Option<S<bool>>,
}

/// A certificate chain and its key: each from a file (`cert`, `key`) or
/// inline PEM (`cert_pem`, `key_pem`; what a control plane pushes). An
/// inline key is never serialised back (`/config_dump`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert: Option<S<String>>,
    pub cert_pem: Option<S<String>>,
    pub key: Option<S<String>>,
    #[serde(default, serialize_with = "redacted")]
    pub key_pem: Option<S<String>>,
    pub server_names: Option<Vec<S<String>>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientAuth {
    pub ca: Option<S<String>>,
    pub ca_pem: Option<S<String>>,
    /// `require` or `optional`.
    pub mode: Option<S<String>>,
}

/// TLS origination to a cluster's endpoints.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca: Option<S<String>>,
    pub ca_pem: Option<S<String>>,
    pub sni: Option<S<String>>,
    pub alpn: Option<Vec<S<String>>>,
    pub client_certificate: Option<S<RawCertificate>>,
}

/// Serialises a secret as a marker: it was given, and that is all anyone
/// reading a dump may learn.
fn redacted<Ser: serde::Serializer>(v: &Option<S<String>>, s: Ser) -> Result<Ser::Ok, Ser::Error> {
    match v {
        Some(_) => s.serialize_some("[redacted]"),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<S<String>>,
    #[serde(default, rename = "match")]
    pub matcher: RawMatch,
    pub cluster: Option<S<String>>,
    pub weighted_clusters: Option<Vec<S<RawWeighted>>>,
    pub direct_response: Option<S<RawDirect>>,
    pub timeout: Option<S<String>>,
    pub request_headers: Option<RawHeaderEdits>,
    pub response_headers: Option<RawHeaderEdits>,
    pub retries: Option<S<RawRetries>>,
    pub fault: Option<S<RawFault>>,
    pub rate_limit: Option<S<RawRateLimit>>,
    pub mirror: Option<S<RawMirror>>,
    pub redirect: Option<S<RawRedirect>>,
    pub rewrite: Option<S<RawRewrite>>,
}

/// Answer with a redirect instead of forwarding (Envoy's `redirect`, the
/// Gateway API's `RequestRedirect`); unset parts are the request's.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedirect {
    /// `http` or `https`.
    pub scheme: Option<S<String>>,
    pub hostname: Option<S<String>>,
    pub port: Option<S<u64>>,
    pub path: Option<S<RawPathModifier>>,
    /// 301, 302, 303, 307 or 308; default 302.
    pub status: Option<S<u64>>,
}

/// A new path: `full` replaces it, `prefix` replaces the part the route's
/// `match.path.prefix` matched.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPathModifier {
    pub full: Option<S<String>>,
    pub prefix: Option<S<String>>,
}

/// A new Host and/or path for the upstream request.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRewrite {
    pub hostname: Option<S<String>>,
    pub path: Option<S<RawPathModifier>>,
}

/// A copy of a share of the route's requests to another cluster, whose
/// answers are dropped (Envoy's `request_mirror_policies`, Istio's
/// `mirror` and `mirrorPercentage`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMirror {
    pub cluster: Option<S<String>>,
    /// 0 to 100, fractions allowed; default 100.
    pub percent: Option<S<f64>>,
    /// Requests with a larger body are not mirrored; default 64 KiB.
    pub max_body_bytes: Option<S<u64>>,
}

/// A route's local rate limit (all workers together).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// More than 0; fractions allowed (`0.5`: one request every 2 s).
    pub requests_per_second: Option<S<f64>>,
    /// At least 1.
    pub burst: Option<S<u64>>,
    /// A bucket per caller instead of one for the route.
    pub per: Option<S<RawRateLimitPer>>,
}

/// `per: source` or `per: { header: NAME }`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawRateLimitPer {
    Source,
    Header(S<String>),
}

/// Required fields are `Option` here so that a missing one is reported by
/// validation with its field path, next to every other error, and so that a
/// pushed snapshot, where they may be unset, has a raw form.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub delay: Option<S<RawFaultDelay>>,
    pub abort: Option<S<RawFaultAbort>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFaultDelay {
    pub duration: Option<S<String>>,
    /// 0 to 100, fractions allowed; YAML may write `10` or `0.5`.
    pub percent: Option<S<f64>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFaultAbort {
    pub status: Option<S<u64>>,
    pub percent: Option<S<f64>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetries {
    /// Tries after the first one.
    pub attempts: S<u64>,
    /// `connect-failure`, `reset`, `timeout`, `5xx`, or status codes.
    pub on: Option<Vec<S<StringOrNumber>>>,
    /// The wait before each retry; Envoy's defaults when unset.
    pub backoff: Option<S<RawBackoff>>,
    /// How long each try waits for its response head (within what is
    /// left of the route's `timeout`).
    pub per_try_timeout: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackoff {
    pub base: Option<S<String>>,
    pub max: Option<S<String>>,
}

/// A cluster's cap on retries, as a share of its requests.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetryBudget {
    /// 0 to 100, fractions allowed.
    pub percent: Option<S<f64>>,
    pub min_per_second: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub host: Option<S<String>>,
    pub path: Option<S<RawPath>>,
    pub method: Option<S<String>>,
    #[serde(default)]
    pub headers: Vec<S<RawHeaderMatch>>,
    pub grpc: Option<S<RawGrpcMatch>>,
    /// The caller's workload identity (mTLS), as in policies' `from`.
    pub source: Option<S<RawAuthzSource>>,
}

/// A gRPC service and method; both optional (any gRPC request).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrpcMatch {
    pub service: Option<String>,
    pub method: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPath {
    pub exact: Option<String>,
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderMatch {
    pub name: S<String>,
    pub exact: Option<String>,
    pub present: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeighted {
    pub cluster: S<String>,
    pub weight: S<u64>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirect {
    pub status: S<u64>,
    #[serde(default)]
    pub body: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderEdits {
    #[serde(default)]
    pub add: Vec<S<RawHeader>>,
    #[serde(default)]
    pub remove: Vec<S<String>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeader {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: S<String>,
    #[serde(default)]
    pub endpoints: Vec<S<RawEndpoint>>,
    /// `round_robin`, `least_request`, `peak_ewma`, `ring_hash`, `maglev`.
    pub lb: Option<S<String>>,
    /// Settings of `lb: peak_ewma`.
    pub peak_ewma: Option<S<RawPeakEwma>>,
    /// Settings of `lb: ring_hash` and `lb: maglev` (required by them).
    pub hash: Option<S<RawHash>>,
    /// Percent of healthy endpoints below which all get traffic.
    pub panic_threshold: Option<S<f64>>,
    pub circuit_breaker: Option<S<RawCircuitBreaker>>,
    pub outlier_detection: Option<S<RawOutlierDetection>>,
    pub connect_timeout: Option<S<String>>,
    pub dns_refresh: Option<S<String>>,
    #[serde(default)]
    pub pool: RawPool,
    pub health_check: Option<S<RawHealthCheck>>,
    pub tls: Option<S<RawUpstreamTls>>,
    /// `http1`, `http2` or `auto`.
    pub protocol: Option<S<String>>,
    pub mesh: Option<S<RawMeshUpstream>>,
    pub retry_budget: Option<S<RawRetryBudget>>,
}

/// `HOST:PORT`, or `{ address: HOST:PORT, weight: N, zone: NAME }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawEndpoint {
    Address(String),
    Detailed(RawEndpointDetail),
}

/// Fields of a detailed endpoint. Not `Spanned` inside an untagged enum
/// (serde buffers it); errors point at the endpoint's line.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpointDetail {
    pub address: String,
    pub weight: Option<u64>,
    pub zone: Option<String>,
}

/// Envoy's circuit-breaker thresholds, for the whole proxy.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreaker {
    pub max_connections: Option<S<u64>>,
    pub max_pending_requests: Option<S<u64>>,
    pub max_requests: Option<S<u64>>,
    pub max_retries: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutlierDetection {
    /// 0: off.
    pub consecutive_5xx: Option<S<u64>>,
    /// 0 (default): off.
    pub consecutive_gateway_errors: Option<S<u64>>,
    pub interval: Option<S<String>>,
    pub base_ejection_time: Option<S<String>>,
    pub max_ejection_time: Option<S<String>>,
    pub max_ejection_percent: Option<S<f64>>,
    pub success_rate: Option<S<RawSuccessRate>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSuccessRate {
    pub minimum_hosts: Option<S<u64>>,
    pub request_volume: Option<S<u64>>,
    pub stdev_factor: Option<S<f64>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeakEwma {
    pub half_life: Option<S<String>>,
    pub default_rtt: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHash {
    /// `source_ip`, `{ header: NAME }` or `{ cookie: NAME }`.
    pub on: Option<S<RawHashOn>>,
    /// Ring hash: points per unit of weight.
    pub ring_points: Option<S<u64>>,
    /// Maglev: the lookup table's size (a prime).
    pub table_size: Option<S<u64>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawHashOn {
    SourceIp,
    Header(S<String>),
    Cookie(S<String>),
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub max_idle_per_endpoint: Option<S<u64>>,
    pub idle_timeout: Option<S<String>>,
    pub max_connections: Option<S<u64>>,
}
