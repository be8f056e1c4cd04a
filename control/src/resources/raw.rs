//! Resources as written. Fields validation may complain about are
//! `Spanned`, so errors can name their line; unknown fields are errors.

use std::collections::BTreeMap;

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
    /// `HTTP` (the default) or `HTTPS`.
    pub protocol: Option<S<String>>,
    /// The host name this listener serves (`*.` and a name for a
    /// wildcard): the SNI its certificates answer to, and the Host its
    /// routes match. None: every host name.
    pub hostname: Option<S<String>>,
    /// For `protocol: HTTPS`.
    pub tls: Option<S<RawGatewayTls>>,
}

/// As the Gateway API's `GatewayTLSConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGatewayTls {
    /// `Terminate` (the default); `Passthrough` is not supported yet.
    pub mode: Option<S<String>>,
    /// Secrets of type `kubernetes.io/tls`; the first is the default.
    #[serde(default)]
    pub certificate_refs: Vec<S<RawObjectRef>>,
}

/// A reference to another resource, as the Gateway API writes them.
/// `group` is `""` (core Kubernetes objects: Service, Secret, ConfigMap)
/// when given; `kind` has a default where a reference is used.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObjectRef {
    pub group: Option<S<String>>,
    pub kind: Option<S<String>>,
    pub name: S<String>,
}

/// A Kubernetes Secret of type `kubernetes.io/tls`: `tls.crt`, `tls.key`
/// and optionally `ca.crt`, base64 in `data` or PEM text in `stringData`.
/// Not `Debug`: it holds a private key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSecret {
    pub kind: S<String>,
    pub metadata: Metadata,
    #[serde(rename = "type")]
    pub secret_type: Option<S<String>>,
    pub data: Option<S<BTreeMap<String, S<String>>>>,
    pub string_data: Option<S<BTreeMap<String, S<String>>>>,
}

/// A Kubernetes ConfigMap holding a CA bundle in `ca.crt` (what the
/// Gateway API's BackendTLSPolicy points at).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfigMap {
    pub kind: S<String>,
    pub metadata: Metadata,
    pub data: Option<S<BTreeMap<String, S<String>>>>,
}

/// As the Gateway API's BackendTLSPolicy: how proxies speak TLS to a
/// Service's endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackendTlsPolicy {
    pub kind: S<String>,
    pub metadata: Metadata,
    pub spec: RawBackendTlsSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackendTlsSpec {
    /// Services.
    #[serde(default)]
    pub target_refs: Vec<S<RawObjectRef>>,
    /// Required; `Option` so that its absence is reported at its path.
    pub validation: Option<S<RawBackendTlsValidation>>,
    /// Implementation-specific settings (the Gateway API's extension
    /// point): `ringmesh.io/client-certificate: <Secret name>`.
    #[serde(default)]
    pub options: BTreeMap<String, S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackendTlsValidation {
    /// ConfigMaps (or Secrets) with a CA bundle in `ca.crt`.
    pub ca_certificate_refs: Option<Vec<S<RawObjectRef>>>,
    /// `System`: the proxy machine's trusted roots.
    #[serde(rename = "wellKnownCACertificates")]
    pub well_known_ca_certificates: Option<S<String>>,
    /// Sent in SNI and verified in the backend's certificate.
    pub hostname: Option<S<String>>,
}
