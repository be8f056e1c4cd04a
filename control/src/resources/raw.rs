//! Resources as written. Fields validation may complain about are
//! `Spanned`, so errors can name their line; unknown fields are errors.

use serde::Deserialize;
use serde_saphyr::Spanned;

pub type S<T> = Spanned<T>;

/// Read first from every document, to learn which type to read it as.
#[derive(Debug, Deserialize)]
pub struct Header {
    pub kind: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub kind: S<String>,
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: RawServiceSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServiceSpec {
    /// Static endpoints, `ip:port` or `dns-name:port`, besides the proxies
    /// that register as this service's workloads.
    #[serde(default)]
    pub endpoints: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpRoute {
    pub kind: S<String>,
    pub metadata: Metadata,
    pub spec: RawHttpRouteSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHttpRouteSpec {
    pub parent_refs: Vec<S<RawParentRef>>,
    /// For Gateway parents: the Host names the rules apply to (all when
    /// empty). Mesh routes apply to their parent Service's name.
    #[serde(default)]
    pub hostnames: Vec<S<String>>,
    pub rules: Vec<S<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParentRef {
    /// `Service` (mesh traffic, the default) or `Gateway`.
    pub kind: Option<S<String>>,
    pub name: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRule {
    #[serde(default)]
    pub matches: Vec<S<RawRouteMatch>>,
    pub backend_refs: Vec<S<RawBackendRef>>,
    pub timeouts: Option<RawTimeouts>,
    pub retry: Option<S<RawRetry>>,
    pub fault: Option<S<RawFault>>,
}

/// As in the Gateway API (GEP-1731): failed connections are retried, and
/// responses with these status codes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub attempts: S<u64>,
    #[serde(default)]
    pub codes: Vec<S<u64>>,
}

/// As Istio's VirtualService `fault`, in this API's spelling: delay and/or
/// abort a share of the requests the rule matches. Required fields are
/// `Option` so that a missing one is reported at its path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub delay: Option<S<RawFaultDelay>>,
    pub abort: Option<S<RawFaultAbort>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFaultDelay {
    pub fixed_delay: Option<S<String>>,
    /// 0 to 100; an integer or a fraction.
    pub percent: Option<S<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFaultAbort {
    pub http_status: Option<S<u64>>,
    pub percent: Option<S<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteMatch {
    pub path: Option<S<RawPathMatch>>,
    pub method: Option<S<String>>,
    #[serde(default)]
    pub headers: Vec<S<RawHeaderMatch>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPathMatch {
    /// `PathPrefix` (the default) or `Exact`.
    #[serde(rename = "type")]
    pub kind: Option<S<String>>,
    pub value: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderMatch {
    pub name: S<String>,
    pub value: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackendRef {
    /// A Service.
    pub name: S<String>,
    pub weight: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub request: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    pub kind: S<String>,
    pub metadata: Metadata,
    pub spec: RawGatewaySpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGatewaySpec {
    pub listeners: Vec<S<RawGatewayListener>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGatewayListener {
    pub name: S<String>,
    /// `ip:port` the gateway proxy listens on.
    pub address: S<String>,
}
