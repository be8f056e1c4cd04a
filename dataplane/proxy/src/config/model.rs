//! The validated config: what the rest of the proxy is allowed to see.
//!
//! Every value here has passed validation and has its default filled in;
//! cluster references are indices, matchers are pre-lowercased bytes. A
//! `Config` is immutable and shared with the cores behind an `Arc`; each core
//! builds its own mutable state (pools, balancer cursors) from it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringmesh_http1::rewrite::HeaderEdits;
use ringmesh_http1::Limits;

#[derive(Debug)]
pub struct Config {
    pub runtime: Runtime,
    pub admin: Option<SocketAddr>,
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    /// The workload identity `mesh` listeners and clusters serve; `None`
    /// when none is held (they refuse mesh traffic then) or none is used.
    pub identity: Option<Arc<crate::tls::mesh::Svid>>,
    /// Spans to an OTLP collector; `None`: no tracing (no trace headers
    /// are touched either).
    pub tracing: Option<Tracing>,
    /// The proxy's own locality: endpoints with the same `zone` are
    /// preferred while enough of them are healthy.
    pub zone: Option<Arc<str>>,
    /// The config as the user wrote it, as JSON, for `/config_dump`.
    pub dump: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub workers: Workers,
    /// CPU ids to pin workers to; worker `i` gets `cpu_affinity[i % len]`.
    pub cpu_affinity: Option<Vec<usize>>,
    pub io: IoMode,
    /// After SIGTERM, the last request may take this long once listeners
    /// are closed; zero closes in-flight requests at once.
    pub drain_timeout: Duration,
    /// After SIGTERM, how long the proxy keeps serving (and accepting) while
    /// `/ready` says 503, so load balancers stop sending before listeners
    /// close. SIGINT skips it; zero closes listeners at once.
    pub drain_delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// One per CPU in the process's affinity mask.
    Auto,
    Count(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// io_uring, falling back to epoll when io_uring cannot be set up.
    Auto,
    Uring,
    Epoll,
}

#[derive(Debug)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub limits: Limits,
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed;
    /// also the longest any read or write may stall.
    pub idle_timeout: Duration,
    pub routes: Vec<Route>,
    /// Most open downstream connections (all workers); `None`: no limit
    /// but the process's file descriptors.
    pub max_connections: Option<usize>,
    pub x_forwarded_proto: ForwardedProto,
    /// A tunnel (after `101 Switching Protocols`) with no byte either way
    /// for this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// TLS termination; `None`: plaintext.
    pub tls: Option<Arc<crate::tls::server::ServerTls>>,
    /// Opaque TCP proxying instead of HTTP (then `routes` is empty).
    pub tcp: Option<TcpProxy>,
    /// HTTP/2 from clients (h2c prior knowledge, ALPN `h2`); `None`:
    /// HTTP/1.x only.
    pub http2: Option<Http2>,
    /// Protocol detection's timeout: each new connection is TLS, HTTP or
    /// `tcp` by its first bytes (`detect`). `None`: no detection.
    pub detect: Option<Duration>,
    /// Which requests are served; `None`: all.
    pub authorization: Option<crate::authz::Authorization>,
    /// Accepts mTLS from the mesh's proxies; `tls` is then the workload
    /// certificate's (`None` while the proxy holds none: mTLS is refused).
    pub mesh: Option<MeshMode>,
    /// The client's identity is read from its certificate when a
    /// connection starts: policies, a mesh (XFCC) or a route's `source`
    /// use it.
    pub reads_principal: bool,
    /// One line per request (or TCP connection); `None`: no access log.
    pub access_log: Option<AccessLog>,
    /// Whom the listener serves: callers (inbound) or its own workload
    /// calling out (outbound). Span kinds and metrics say which.
    pub direction: Direction,
}

/// Whose traffic a listener carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Callers reach the workload (or a gateway's services) through it.
    Inbound,
    /// The workload calls other services through it.
    Outbound,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A listener's access log.
#[derive(Debug)]
pub struct AccessLog {
    pub file: Arc<crate::telemetry::writer::LogFile>,
    pub format: crate::telemetry::access_log::Format,
    /// Only responses with at least this status are logged (0: all).
    pub min_status: u16,
    /// Requests logged per million.
    pub per_million: u32,
}

/// Distributed tracing.
#[derive(Debug)]
pub struct Tracing {
    pub collector: Arc<crate::telemetry::otlp::Collector>,
    /// Traces that start here recorded per million (a caller's sampled
    /// flag decides for the rest).
    pub per_million: u32,
}

/// What a mesh listener accepts besides mTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshMode {
    /// Plaintext too, told apart by detection (`detect` is set).
    Permissive,
    /// Nothing else.
    Strict,
}

/// A listener's HTTP/2 settings, sent to clients in its SETTINGS frame or
/// enforced by h2 against floods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2 {
    pub max_concurrent_streams: u32,
    pub initial_stream_window: u32,
    pub initial_connection_window: u32,
    pub max_header_list_size: u32,
    pub max_frame_size: u32,
    /// Streams the client reset before the proxy accepted them, at once.
    pub max_pending_accept_reset_streams: usize,
    /// Streams the proxy reset for the client's protocol errors.
    pub max_local_error_reset_streams: usize,
}

/// A listener that relays its connections to a cluster, bytes both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpProxy {
    pub cluster: ClusterId,
    /// No byte either way for this long closes the connection.
    pub idle_timeout: Duration,
}

impl Listener {
    /// The scheme requests on this listener arrive with.
    pub fn scheme(&self) -> &'static [u8] {
        if self.tls.is_some() {
            b"https"
        } else {
            b"http"
        }
    }
}

/// What the proxy does with a client's `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedProto {
    /// Replace it with the listener's scheme: the edge, where clients could
    /// claim `https` over plain HTTP.
    Overwrite,
    /// Keep the client's value, set it when absent: behind a proxy that is
    /// trusted to set it (a gateway in front of a sidecar).
    Trust,
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub action: Action,
    /// From forwarding the request to the upstream's response head; when
    /// unset, the listener's idle timeout applies.
    pub timeout: Option<Duration>,
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
    pub retry: Option<RetryPolicy>,
    /// Compiled in the order they run (`filter`).
    pub filters: Vec<crate::filter::Filter>,
    /// A copy of a share of the requests to another cluster.
    pub mirror: Option<crate::mirror::Policy>,
    /// A new path and/or Host for the upstream request (`None`: the
    /// client's, and the encoders do no extra work).
    pub rewrite: Option<ringmesh_http1::target::TargetRewrite>,
}

/// When a request may be sent again, to another endpoint if there is one.
/// Only idempotent methods are retried, and only while the whole request
/// is still in the proxy's hands (no streamed body) and no response byte
/// has reached the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries after the first.
    pub attempts: u32,
    pub on_connect_failure: bool,
    /// The upstream closed or reset the connection before a response head.
    pub on_reset: bool,
    /// Response statuses that are retried (the response is dropped).
    pub statuses: Vec<u16>,
    /// gRPC status codes that are retried, read from a gRPC response's
    /// head (a Trailers-Only answer: the upstream failed before replying).
    pub grpc_statuses: Vec<u8>,
    /// A try that got no response head within its per-try timeout. The
    /// route's own timeout ending is never retried: it bounds the request.
    pub on_timeout: bool,
    pub backoff: Backoff,
    /// Each try's wait for its response head, within what is left of the
    /// route's timeout.
    pub per_try_timeout: Option<Duration>,
}

/// Exponential backoff with full jitter: before retry `k` (0 for the
/// first) the request waits a random time in `[0, min(max, base * 2^k)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Envoy's: 25 ms, and ten times the base.
    pub const DEFAULT_BASE: Duration = Duration::from_millis(25);

    /// The longest wait before retry `k` (0 for the first).
    pub fn ceiling(&self, k: u32) -> Duration {
        // 2^k saturates: past 2^31 any base is over any max worth having.
        let factor = 1u32.checked_shl(k.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait before retry `k`, drawn from `rng`.
    pub fn wait(&self, k: u32, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = self.ceiling(k);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.u64(0..=nanos))
    }
}

/// A cluster's retry budget, each core's share of it (`ClusterState`):
/// in any `RetryBudget::WINDOW`, a core's retries to the cluster stay
/// within `percent` of its requests to it, plus `min_per_second * window
/// / workers` (the floor is split evenly across the cores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    /// Of the requests, in parts per million.
    pub per_million: u32,
    pub min_per_second: u32,
}

impl RetryBudget {
    /// Linkerd's and Envoy's: 20 %, at least 10 retries a second.
    pub const DEFAULT_PERCENT: f64 = 20.0;
    pub const DEFAULT_MIN_PER_SECOND: u32 = 10;
    /// The span retries and requests are counted over.
    pub const WINDOW: Duration = Duration::from_secs(10);
}

impl RetryPolicy {
    pub fn retries_status(&self, status: u16) -> bool {
        self.statuses.contains(&status)
    }

    pub fn retries_grpc(&self, code: u8) -> bool {
        self.grpc_statuses.contains(&code)
    }
}

/// Methods safe to send twice (RFC 9110 section 9.2.2).
pub fn is_idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
    )
}

#[derive(Debug, Default)]
pub struct RouteMatch {
    pub host: Option<HostMatch>,
    pub path: PathMatch,
    /// Uppercase method name.
    pub method: Option<Box<[u8]>>,
    pub headers: Vec<HeaderMatch>,
    /// Only gRPC requests (`content-type: application/grpc[+...]`); the
    /// service and method are in `path`.
    pub grpc: bool,
    /// Only requests from these callers (their mTLS identity, as
    /// authorization policies match it).
    pub source: Option<crate::authz::Source>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HostMatch {
    /// Lowercase host, no port.
    Exact(Box<[u8]>),
    /// `*.example.com` stored as `.example.com`.
    Suffix(Box<[u8]>),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub enum PathMatch {
    #[default]
    Any,
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
}

#[derive(Debug, PartialEq, Eq)]
pub struct HeaderMatch {
    /// Lowercase name.
    pub name: Box<[u8]>,
    pub rule: HeaderRule,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HeaderRule {
    Exact(Box<[u8]>),
    Present(bool),
}

/// Index into `Config::clusters`.
pub type ClusterId = usize;

#[derive(Debug)]
pub enum Action {
    Cluster(ClusterId),
    /// Clusters with cumulative weights; `total` is the last cumulative sum.
    Weighted {
        choices: Vec<(ClusterId, u64)>,
        total: u64,
    },
    Direct {
        status: u16,
        body: Bytes,
    },
    /// Answer with a redirect built from the request.
    Redirect(crate::redirect::Redirect),
}

#[derive(Debug)]
pub struct Cluster {
    pub name: String,
    pub endpoints: Vec<EndpointSpec>,
    pub lb: LbPolicy,
    pub connect_timeout: Duration,
    /// How often DNS names among the endpoints are resolved again.
    pub dns_refresh: Duration,
    pub pool: PoolConfig,
    /// Active health checks, run by core 0 (`health`). Not part of
    /// `same_settings`: a change restarts the checks and keeps the
    /// endpoints' health and the cluster's connections.
    pub health_check: Option<crate::health::HealthCheck>,
    /// TLS origination; `None`: plaintext.
    pub tls: Option<Arc<crate::tls::client::ClientTls>>,
    pub protocol: UpstreamProtocol,
    /// The endpoints are the mesh's proxies and must prove this SPIFFE ID;
    /// `tls` is then mTLS with the workload certificate (`None` while the
    /// proxy holds none: connecting fails) and `protocol` HTTP/2.
    pub mesh: Option<Box<str>>,
    /// A mesh cluster's TLS for opaque TCP relays (`tcp` listeners): the
    /// same mTLS, with the mesh's TCP ALPN so the peer relays the bytes.
    pub mesh_tcp_tls: Option<Arc<crate::tls::client::ClientTls>>,
    /// Caps retries to the cluster; `None`: only routes' `attempts` do.
    pub retry_budget: Option<RetryBudget>,
    /// Below this share of healthy endpoints (0 to 1), route to all of
    /// them rather than overload the few (Envoy's panic threshold).
    pub panic_threshold: f64,
    /// Limits on concurrent requests, connects and retries (connections:
    /// `pool.max_connections`).
    pub breakers: Breakers,
    pub outlier: Option<OutlierDetection>,
}

/// Envoy's circuit-breaker thresholds, for the whole proxy; each worker
/// gets its share (`circuit_breaker::share`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breakers {
    /// Requests waiting for a new connection (connecting).
    pub max_pending_requests: u32,
    /// Requests in flight to the cluster.
    pub max_requests: u32,
    /// Retries in flight to the cluster.
    pub max_retries: u32,
}

impl Default for Breakers {
    /// Envoy's defaults.
    fn default() -> Self {
        Breakers {
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

/// Ejecting endpoints that fail (Envoy's outlier detection), per worker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierDetection {
    /// Eject after this many 5xx or failed tries in a row; 0: never.
    pub consecutive_5xx: u32,
    /// Eject after this many 502, 503, 504 or failed tries in a row; 0:
    /// never.
    pub consecutive_gateway_errors: u32,
    /// How often success rates are compared and ejections ended.
    pub interval: Duration,
    /// An ejection lasts this times the endpoint's ejection count.
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    /// At most this share (0 to 1) of the endpoints ejected at once
    /// (at least one may always be).
    pub max_ejection: f64,
    pub success_rate: Option<SuccessRate>,
}

/// Eject endpoints whose success rate over an interval is below the mean
/// by more than `stdev_factor` standard deviations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuccessRate {
    /// Endpoints with enough requests needed for a comparison.
    pub minimum_hosts: u32,
    /// Requests in the interval an endpoint needs to be compared.
    pub request_volume: u32,
    pub stdev_factor: f64,
}

/// What the proxy speaks to a cluster's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    /// h2c with prior knowledge, or h2 by ALPN over TLS.
    Http2,
    /// h2 when TLS ALPN picks it, else HTTP/1.1.
    Auto,
}

impl Cluster {
    /// Same balancing, pool and timeouts: a core may keep its state (pools,
    /// cursors) for this cluster across a config swap. Endpoints may differ:
    /// they are replaced in place, keeping the connections of those that
    /// stay.
    pub fn same_settings(&self, other: &Cluster) -> bool {
        self.name == other.name
            && self.lb == other.lb
            && self.connect_timeout == other.connect_timeout
            && self.pool == other.pool
            && self.protocol == other.protocol
            && self.mesh == other.mesh
            && self.retry_budget == other.retry_budget
            && self.panic_threshold == other.panic_threshold
            && self.breakers == other.breakers
            && self.outlier == other.outlier
            && self.tls.as_ref().map(|t| t.key) == other.tls.as_ref().map(|t| t.key)
    }

    pub fn has_dns_endpoints(&self) -> bool {
        self.endpoints
            .iter()
            .any(|e| matches!(e.target, Target::Dns { .. }))
    }
}

/// The pool's key for a mesh cluster's connections: the identity they
/// reach, not the certificate they were made with, so a renewal keeps them.
pub fn mesh_transport_key(expected: &str) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    ("mesh", expected).hash(&mut h);
    h.finish()
}

/// One entry of a cluster's `endpoints`: where, and how it weighs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub target: Target,
    /// Relative share of traffic, 1 to `MAX_WEIGHT` (default 1).
    pub weight: u32,
    /// Its locality; endpoints in the proxy's own `zone` are preferred.
    pub zone: Option<Arc<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Ip(SocketAddr),
    Dns { host: String, port: u16 },
}

/// The largest endpoint weight (Envoy allows 128; a wider range lets a
/// weight be a per-mille share).
pub const MAX_WEIGHT: u32 = 1000;

/// An endpoint as the cores get it: resolved, with its weight and zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resolved {
    pub addr: SocketAddr,
    pub weight: u32,
    pub zone: Option<Arc<str>>,
}

impl Resolved {
    /// Weight 1, no zone.
    pub fn plain(addr: SocketAddr) -> Self {
        Resolved {
            addr,
            weight: 1,
            zone: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum LbPolicy {
    RoundRobin,
    /// Power of two choices on in-flight requests (per core).
    LeastRequest,
    /// Power of two choices on latency estimates weighted by in-flight
    /// requests (Linkerd's default), shared across cores.
    PeakEwma(PeakEwma),
    /// Consistent hashing on a ring (ketama).
    RingHash(HashPolicy),
    /// Consistent hashing with Maglev's lookup table.
    Maglev(HashPolicy),
}

impl LbPolicy {
    pub fn name(&self) -> &'static str {
        match self {
            LbPolicy::RoundRobin => "round_robin",
            LbPolicy::LeastRequest => "least_request",
            LbPolicy::PeakEwma(_) => "peak_ewma",
            LbPolicy::RingHash(_) => "ring_hash",
            LbPolicy::Maglev(_) => "maglev",
        }
    }
}

/// Settings of `lb: peak_ewma`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeakEwma {
    /// How fast an endpoint's latency estimate forgets: a sample's weight
    /// halves every `half_life`.
    pub half_life: Duration,
    /// The estimate of an endpoint no request has measured yet.
    pub default_rtt: Duration,
}

/// Settings of `lb: ring_hash` and `lb: maglev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashPolicy {
    pub on: HashOn,
    /// Ring hash: points on the ring per unit of an endpoint's weight.
    /// Maglev: the lookup table's size, a prime.
    pub table_size: u32,
}

/// What a consistent-hash policy hashes; a request without it gets a
/// random endpoint (Envoy's behaviour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// The client's IP address.
    SourceIp,
    /// A request header, lowercase (gRPC metadata is a header too).
    Header(Box<str>),
    /// A cookie's value.
    Cookie(Box<str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    pub max_idle_per_endpoint: usize,
    pub idle_timeout: Duration,
    /// Most upstream connections to the cluster, split evenly across cores.
    pub max_connections: usize,
}

/// Defaults, each with the reason for its value.
pub mod defaults {
    use std::time::Duration;

    /// Long enough for a slow client on a bad link, short enough that
    /// slowloris connections do not pile up (nginx: 60s, Envoy: none).
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Idle keep-alive connections from clients: nginx's keepalive_timeout
    /// is 75s, Envoy's idle_timeout 1h; a minute frees memory sooner.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Local upstreams answer a SYN in microseconds; a second covers a
    /// loaded host without hiding a dead endpoint for long.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    /// Below common upstream keep-alive timeouts (nginx 75s, Node 5s is the
    /// outlier), so the proxy, not the upstream, usually closes idle ones.
    pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
    pub const MAX_IDLE_PER_ENDPOINT: usize = 64;
    /// Envoy's default circuit-breaker max_connections.
    pub const MAX_CONNECTIONS: usize = 1024;
    /// Envoy's default: with half the endpoints unhealthy, send to all.
    pub const PANIC_THRESHOLD: f64 = 0.5;
    /// Linkerd decays its estimates with a 10 s time constant: a 6.9 s
    /// half-life. A round 7 s keeps its behaviour.
    pub const PEAK_EWMA_HALF_LIFE: Duration = Duration::from_secs(7);
    /// Linkerd's default estimate for an endpoint not yet measured.
    pub const PEAK_EWMA_DEFAULT_RTT: Duration = Duration::from_millis(30);
    /// Points per unit of weight on a hash ring: 8 endpoints make
    /// Envoy's default minimum ring of 1024. Fixed per endpoint, not
    /// spread over a total, so an endpoint that comes or goes moves only
    /// its own keys.
    pub const RING_POINTS: u32 = 128;
    /// Envoy's Maglev table size: a prime, ~100 entries per endpoint for
    /// clusters of hundreds.
    pub const MAGLEV_TABLE_SIZE: u32 = 65537;
    pub const DNS_REFRESH: Duration = Duration::from_secs(30);
    /// Kubernetes' default grace period is 30s; drain inside it (with the
    /// delay below, 25s).
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
    /// Endpoint removal reaches load balancers and other proxies a few
    /// seconds after SIGTERM (Istio's terminationDrainDuration is 5s).
    pub const DRAIN_DELAY: Duration = Duration::from_secs(5);
    /// Envoy's default stream idle timeout, which also bounds upgraded
    /// (WebSocket) connections; long enough for 30s-ping protocols.
    pub const TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    /// Istio's protocol sniffing timeout: local clients send their first
    /// bytes within microseconds of connecting; a server-speaks-first
    /// protocol pays this once per connection.
    pub const DETECT_TIMEOUT: Duration = Duration::from_millis(100);
    /// Envoy's tcp_proxy idle_timeout: long-lived database and message
    /// queue connections are quiet for minutes.
    pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
    /// Longest duration any setting may have: beyond a week a timeout is a
    /// typo, and every deadline stays far inside the timer wheel's range.
    pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

    /// HTTP/2 streams a client may open at once: RFC 9113 asks for no less
    /// than 100, and Envoy's and nginx's edge advice stays near it (nginx
    /// 128): enough for a gRPC channel, few enough to bound the per-stream
    /// tasks one connection can cost.
    pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
    /// Bytes a client may send on one stream before the proxy forwarded
    /// them; the connection's window bounds the sum. Envoy's edge advice
    /// is 64 KiB and 1 MiB; a larger stream window keeps one bulk upload on
    /// a sidecar's loopback from stalling on window updates.
    pub const H2_STREAM_WINDOW: u32 = 256 * 1024;
    pub const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;
    /// RFC 9113's smallest maximum frame size, every peer's default.
    pub const H2_MAX_FRAME_SIZE: u32 = 16 * 1024;
    /// Rapid reset (CVE-2023-44487): h2's own default is 20.
    pub const H2_MAX_PENDING_ACCEPT_RESET: usize = 20;
    /// h2's default: a client that makes the proxy reset this many streams
    /// for its errors gets GOAWAY.
    pub const H2_MAX_LOCAL_ERROR_RESET: usize = 1024;
}
