//! Resources as written. Fields validation may complain about are
//! `Spanned`, so errors can name their line; unknown fields are errors.
//! A field the Gateway API (or Kubernetes) has but ringmesh does not
//! implement yet is read as `Unsupported`, so that validation can say so
//! at the field instead of "unknown field".

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

pub type S<T> = Spanned<T>;

/// A field ringmesh knows but does not implement yet: any value, kept
/// only for where it was written.
pub type Unsupported = Option<S<serde::de::IgnoredAny>>;

/// Read first from every document, to learn which type to read it as
/// and which namespace its references resolve in.
#[derive(Debug, Deserialize)]
pub struct Header {
    pub kind: Option<S<String>>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<S<String>>,
    pub metadata: Option<HeaderMetadata>,
}

#[derive(Debug, Deserialize)]
pub struct HeaderMetadata {
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: S<String>,
    /// `default` when not given.
    pub namespace: Option<S<String>>,
    /// Accepted so that a Kubernetes manifest reads as it is; ignored.
    pub labels: Option<serde::de::IgnoredAny>,
    /// Accepted so that a Kubernetes manifest reads as it is; ignored.
    pub annotations: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub kind: S<String>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<S<String>>,
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: RawServiceSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServiceSpec {
    /// Static endpoints, `ip:port` or `dns-name:port` (a bare host when
    /// `ports` are given), besides the proxies that register as this
    /// service's workloads.
    #[serde(default)]
    pub endpoints: Vec<S<String>>,
    /// As a Kubernetes Service's: one cluster each.
    #[serde(default)]
    pub ports: Vec<S<RawServicePort>>,
    /// Kubernetes picks workloads by label; ringmesh's register with
    /// `--service`. Accepted so that a Kubernetes Service reads as it is,
    /// and ignored.
    pub selector: Option<serde::de::IgnoredAny>,
    /// `ClusterIP` only.
    #[serde(rename = "type")]
    pub service_type: Option<S<String>>,
}

/// As a Kubernetes `ServicePort`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawServicePort {
    pub name: Option<S<String>>,
    pub port: S<u64>,
    /// A number; Kubernetes' named target ports are not supported.
    pub target_port: Option<S<RawIntOrString>>,
    /// `TCP` only.
    pub protocol: Option<S<String>>,
    /// `http`, `http2`, `grpc`, `tcp`, `kubernetes.io/h2c`,
    /// `kubernetes.io/ws`.
    pub app_protocol: Option<S<String>>,
}

/// Kubernetes' IntOrString.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawIntOrString {
    Int(u64),
    String(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpRoute {
    pub kind: S<String>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<S<String>>,
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

/// As the Gateway API's `ParentReference`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawParentRef {
    /// `gateway.networking.k8s.io` (the default) for a Gateway; `""` or
    /// `core` for a Service.
    pub group: Option<S<String>>,
    /// `Service` (mesh traffic, the default) or `Gateway`.
    pub kind: Option<S<String>>,
    /// The route's own when not given.
    pub namespace: Option<S<String>>,
    pub name: S<String>,
    /// A Gateway's listener name, or a Service's port name.
    pub section_name: Option<S<String>>,
    /// A Gateway listener's port, or a Service's port.
    pub port: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRule {
    /// The Gateway API's rule name; accepted, ignored.
    pub name: Option<S<String>>,
    #[serde(default)]
    pub matches: Vec<S<RawRouteMatch>>,
    /// Required unless a `RequestRedirect` answers the rule's requests.
    #[serde(default)]
    pub backend_refs: Vec<S<RawBackendRef>>,
    pub timeouts: Option<RawTimeouts>,
    pub retry: Option<S<RawRetry>>,
    pub fault: Option<S<RawFault>>,
    #[serde(default)]
    pub filters: Vec<S<RawFilter>>,
    pub session_persistence: Unsupported,
}

/// A Gateway API HTTPRoute filter. `ExtensionRef` and `CORS` are known,
/// so they are refused as not supported yet rather than as unknown
/// fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFilter {
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub request_mirror: Option<S<RawRequestMirror>>,
    pub request_header_modifier: Option<S<RawHeaderModifier>>,
    pub response_header_modifier: Option<S<RawHeaderModifier>>,
    pub request_redirect: Option<S<RawRequestRedirect>>,
    #[serde(rename = "urlRewrite")]
    pub url_rewrite: Option<S<RawUrlRewrite>>,
    pub extension_ref: Unsupported,
    pub cors: Unsupported,
}

/// `RequestHeaderModifier` / `ResponseHeaderModifier`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderModifier {
    #[serde(default)]
    pub set: Vec<S<RawHttpHeader>>,
    #[serde(default)]
    pub add: Vec<S<RawHttpHeader>>,
    #[serde(default)]
    pub remove: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpHeader {
    pub name: S<String>,
    pub value: S<String>,
}

/// `RequestRedirect`: unset parts are the request's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRequestRedirect {
    pub scheme: Option<S<String>>,
    pub hostname: Option<S<String>>,
    pub path: Option<S<RawHttpPathModifier>>,
    pub port: Option<S<u64>>,
    pub status_code: Option<S<u64>>,
}

/// `URLRewrite`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUrlRewrite {
    pub hostname: Option<S<String>>,
    pub path: Option<S<RawHttpPathModifier>>,
}

/// The Gateway API's `HTTPPathModifier`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHttpPathModifier {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub kind: Option<S<String>>,
    pub replace_full_path: Option<S<String>>,
    pub replace_prefix_match: Option<S<String>>,
}

/// `requestMirror`: a copy of the requests to `backendRef`, `percent` or
/// `fraction` of them (neither: all).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRequestMirror {
    pub backend_ref: S<RawBackendRef>,
    pub percent: Option<S<f64>>,
    pub fraction: Option<S<RawFraction>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFraction {
    pub numerator: S<u64>,
    /// 100 when not given, as in the Gateway API.
    pub denominator: Option<S<u64>>,
}

/// As in the Gateway API (GEP-1731): failed connections are retried, and
/// responses with these status codes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub attempts: S<u64>,
    #[serde(default)]
    pub codes: Vec<S<u64>>,
    /// A duration (`100ms`): the proxy's backoff base (its max is ten
    /// times that).
    pub backoff: Option<S<String>>,
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
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRouteMatch {
    pub path: Option<S<RawPathMatch>>,
    pub method: Option<S<String>>,
    #[serde(default)]
    pub headers: Vec<S<RawHeaderMatch>>,
    pub query_params: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPathMatch {
    /// `PathPrefix` (the default) or `Exact`; `RegularExpression` is not
    /// supported.
    #[serde(rename = "type")]
    pub kind: Option<S<String>>,
    pub value: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderMatch {
    /// `Exact` (the default); `RegularExpression` is not supported.
    #[serde(rename = "type")]
    pub kind: Option<S<String>>,
    pub name: S<String>,
    pub value: S<String>,
}

/// As the Gateway API's `BackendRef`: a Service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackendRef {
    /// `""` (the default) or `core`.
    pub group: Option<S<String>>,
    /// `Service`, the default.
    pub kind: Option<S<String>>,
    /// The route's own when not given.
    pub namespace: Option<S<String>>,
    pub name: S<String>,
    /// One of the Service's `ports`.
    pub port: Option<S<u64>>,
    pub weight: Option<S<u64>>,
    pub filters: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTimeouts {
    pub request: Option<S<String>>,
    pub backend_request: Unsupported,
}

/// As the Gateway API's GRPCRoute (v1), with ringmesh's `timeouts` and
/// `retry` on rules as on HTTPRoute rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrpcRoute {
    pub kind: S<String>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<S<String>>,
    pub metadata: Metadata,
    pub spec: RawGrpcRouteSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGrpcRouteSpec {
    pub parent_refs: Vec<S<RawParentRef>>,
    #[serde(default)]
    pub hostnames: Vec<S<String>>,
    pub rules: Vec<S<RawGrpcRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGrpcRule {
    /// The Gateway API's rule name; accepted, ignored.
    pub name: Option<S<String>>,
    #[serde(default)]
    pub matches: Vec<S<RawGrpcRouteMatch>>,
    pub backend_refs: Vec<S<RawBackendRef>>,
    pub timeouts: Option<RawTimeouts>,
    pub retry: Option<S<RawGrpcRetry>>,
    pub filters: Unsupported,
    pub session_persistence: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrpcRouteMatch {
    pub method: Option<S<RawGrpcMethodMatch>>,
    #[serde(default)]
    pub headers: Vec<S<RawHeaderMatch>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrpcMethodMatch {
    /// `Exact` (the default); `RegularExpression` is not supported.
    #[serde(rename = "type")]
    pub kind: Option<S<String>>,
    pub service: Option<S<String>>,
    pub method: Option<S<String>>,
}

/// As an HTTPRoute's, with gRPC statuses (names or numbers) for codes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrpcRetry {
    pub attempts: S<u64>,
    #[serde(default)]
    pub codes: Vec<S<RawIntOrString>>,
    /// As on HTTPRoute.
    pub backoff: Option<S<String>>,
}

/// As the Gateway API's TCPRoute (v1alpha2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcpRoute {
    pub kind: S<String>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<S<String>>,
    pub metadata: Metadata,
    pub spec: RawTcpRouteSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTcpRouteSpec {
    pub parent_refs: Vec<S<RawParentRef>>,
    pub rules: Vec<S<RawTcpRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTcpRule {
    /// The Gateway API's rule name; accepted, ignored.
    pub name: Option<S<String>>,
    pub backend_refs: Vec<S<RawBackendRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    pub kind: S<String>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<S<String>>,
    pub metadata: Metadata,
    pub spec: RawGatewaySpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGatewaySpec {
    /// Accepted, ignored: a ringmesh control plane is one class.
    pub gateway_class_name: Option<S<String>>,
    pub listeners: Vec<S<RawGatewayListener>>,
    pub addresses: Unsupported,
    pub infrastructure: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGatewayListener {
    pub name: S<String>,
    /// `ip:port` the gateway proxy listens on (ringmesh's); or:
    pub address: Option<S<String>>,
    /// the Gateway API's: on every address (`0.0.0.0:port`).
    pub port: Option<S<u64>>,
    /// `HTTP` (the default), `HTTPS` or `TCP`.
    pub protocol: Option<S<String>>,
    /// The host name this listener serves (`*.` and a name for a
    /// wildcard): the SNI its certificates answer to, and the Host its
    /// routes match. None: every host name.
    pub hostname: Option<S<String>>,
    /// For `protocol: HTTPS`.
    pub tls: Option<S<RawGatewayTls>>,
    pub allowed_routes: Option<S<RawAllowedRoutes>>,
}

/// As the Gateway API's `AllowedRoutes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAllowedRoutes {
    pub namespaces: Option<S<RawRouteNamespaces>>,
    pub kinds: Option<Vec<S<RawRouteGroupKind>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteNamespaces {
    /// `Same` (the default) or `All`; `Selector` is not supported.
    pub from: Option<S<String>>,
    pub selector: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteGroupKind {
    pub group: Option<S<String>>,
    pub kind: S<String>,
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
    pub options: Unsupported,
    pub frontend_validation: Unsupported,
}

/// A reference to another resource, as the Gateway API writes them.
/// `group` is `""` (core Kubernetes objects: Service, Secret, ConfigMap)
/// when given; `kind` has a default where a reference is used.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObjectRef {
    pub group: Option<S<String>>,
    pub kind: Option<S<String>>,
    /// The referring resource's when not given (where the Gateway API has
    /// it: a listener's `certificateRefs`).
    pub namespace: Option<S<String>>,
    pub name: S<String>,
}

/// A Kubernetes Secret of type `kubernetes.io/tls`: `tls.crt`, `tls.key`
/// and optionally `ca.crt`, base64 in `data` or PEM text in `stringData`.
/// Not `Debug`: it holds a private key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSecret {
    pub kind: S<String>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<S<String>>,
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
    #[serde(rename = "apiVersion")]
    pub api_version: Option<S<String>>,
    pub metadata: Metadata,
    pub data: Option<S<BTreeMap<String, S<String>>>>,
}

/// As the Gateway API's BackendTLSPolicy: how proxies speak TLS to a
/// Service's endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackendTlsPolicy {
    pub kind: S<String>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<S<String>>,
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

/// As Istio's `security.istio.io/v1` AuthorizationPolicy: which requests
/// the sidecars of a Service serve.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthorizationPolicy {
    pub kind: S<String>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<S<String>>,
    pub metadata: Metadata,
    /// Istio's `spec: {}` is a valid (ALLOW, no rules: deny-all) policy.
    #[serde(default)]
    pub spec: RawAuthzSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAuthzSpec {
    /// Services; none (and no `selector`): every Service of the namespace.
    pub target_refs: Option<Vec<S<RawObjectRef>>>,
    /// `ALLOW` (the default) or `DENY`; `AUDIT` and `CUSTOM` are not
    /// supported yet.
    pub action: Option<S<String>>,
    /// None or empty: an ALLOW policy matches nothing (deny all).
    pub rules: Option<Vec<S<RawAuthzRule>>>,
    pub selector: Unsupported,
    pub target_ref: Unsupported,
    pub provider: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthzRule {
    #[serde(default)]
    pub from: Vec<S<RawAuthzFrom>>,
    #[serde(default)]
    pub to: Vec<S<RawAuthzTo>>,
    #[serde(default)]
    pub when: Vec<S<RawAuthzCondition>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthzFrom {
    /// Required (Istio's validation says so too).
    pub source: Option<S<RawAuthzSource>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAuthzSource {
    #[serde(default)]
    pub principals: Vec<S<String>>,
    #[serde(default)]
    pub not_principals: Vec<S<String>>,
    #[serde(default)]
    pub namespaces: Vec<S<String>>,
    #[serde(default)]
    pub not_namespaces: Vec<S<String>>,
    pub request_principals: Unsupported,
    pub not_request_principals: Unsupported,
    pub ip_blocks: Unsupported,
    pub not_ip_blocks: Unsupported,
    pub remote_ip_blocks: Unsupported,
    pub not_remote_ip_blocks: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthzTo {
    /// Required (Istio's validation says so too).
    pub operation: Option<S<RawAuthzOperation>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAuthzOperation {
    #[serde(default)]
    pub methods: Vec<S<String>>,
    #[serde(default)]
    pub not_methods: Vec<S<String>>,
    #[serde(default)]
    pub paths: Vec<S<String>>,
    #[serde(default)]
    pub not_paths: Vec<S<String>>,
    pub hosts: Unsupported,
    pub not_hosts: Unsupported,
    /// The workload's ports (Istio writes them as strings).
    #[serde(default)]
    pub ports: Vec<S<String>>,
    #[serde(default)]
    pub not_ports: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAuthzCondition {
    /// `request.headers[<name>]`; Istio's other keys are not supported yet.
    pub key: S<String>,
    #[serde(default)]
    pub values: Vec<S<String>>,
    #[serde(default)]
    pub not_values: Vec<S<String>>,
}

/// As Istio's `security.istio.io/v1` PeerAuthentication: whether the
/// sidecars of a Service (or of every Service of a namespace) accept
/// plaintext besides mTLS from other proxies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeerAuthentication {
    pub kind: S<String>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<S<String>>,
    pub metadata: Metadata,
    /// Istio's `spec: {}` is valid: namespace-wide, mode UNSET.
    #[serde(default)]
    pub spec: RawPeerAuthnSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPeerAuthnSpec {
    /// `matchLabels: { app: <Service name> }`; none: every Service of
    /// the namespace.
    pub selector: Option<S<RawWorkloadSelector>>,
    /// None (or no `mode`): UNSET, inherit.
    pub mtls: Option<S<RawPeerAuthnMtls>>,
    pub port_level_mtls: Unsupported,
}

/// As Istio's WorkloadSelector.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawWorkloadSelector {
    pub match_labels: Option<BTreeMap<String, S<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeerAuthnMtls {
    /// `STRICT`, `PERMISSIVE` or `UNSET`; `DISABLE` is not supported yet.
    pub mode: Option<S<String>>,
}

/// As Istio's `telemetry.istio.io/v1` Telemetry: the access log and the
/// tracing of one Service's sidecars, of Gateways (`targetRefs`), or of
/// every workload of a namespace. Istio names providers defined in its
/// MeshConfig; ringmesh has none, so the destination is written in the
/// resource (`file`, `collector`: ringmesh's extension fields).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub kind: S<String>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<S<String>>,
    pub metadata: Metadata,
    /// `spec: {}` is valid (and does nothing).
    #[serde(default)]
    pub spec: RawTelemetrySpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTelemetrySpec {
    /// `matchLabels: { app: <Service name> }`, as PeerAuthentication's.
    pub selector: Option<S<RawWorkloadSelector>>,
    /// Gateways (`kind: Gateway`) of the resource's namespace.
    pub target_refs: Option<Vec<S<RawObjectRef>>>,
    /// At most one entry (a listener writes one access log).
    pub access_logging: Option<Vec<S<RawAccessLogging>>>,
    /// At most one entry (a proxy exports to one collector).
    pub tracing: Option<Vec<S<RawTelemetryTracing>>>,
    pub target_ref: Unsupported,
    pub metrics: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAccessLogging {
    /// Istio's: only `envoy` (stdout, Envoy's text format) is known.
    pub providers: Option<Vec<S<RawProviderRef>>>,
    /// ringmesh's: the file and its format.
    pub file: Option<S<RawLogFile>>,
    pub filter: Option<S<RawLogFilter>>,
    /// ringmesh's: the share of requests logged, 0 to 100.
    pub sample_percent: Option<S<f64>>,
    pub disabled: Option<S<bool>>,
    #[serde(rename = "match")]
    pub match_: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProviderRef {
    pub name: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogFile {
    /// Required; `Option` so that its absence is reported at its path.
    pub path: Option<S<String>>,
    pub format: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLogFilter {
    /// Istio's CEL: only `response.code >= N` (or `> N`) is read.
    pub expression: Option<S<String>>,
    /// ringmesh's: log responses with at least this status.
    pub min_status: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTelemetryTracing {
    /// Istio's; ringmesh has no MeshConfig to define them in.
    pub providers: Option<Vec<S<RawProviderRef>>>,
    /// ringmesh's: the OTLP/gRPC collector, `host:port`.
    pub collector: Option<S<String>>,
    pub random_sampling_percentage: Option<S<f64>>,
    pub disabled: Option<S<bool>>,
    pub disable_span_reporting: Unsupported,
    pub custom_tags: Unsupported,
    #[serde(rename = "match")]
    pub match_: Unsupported,
    pub use_request_id_for_trace_sampling: Unsupported,
}

/// ringmesh's `TrafficPolicy` (`ringmesh.io/v1alpha1`): what the proxies
/// do when they call a Service, attached to it by `targetRefs` as the
/// Gateway API attaches policies, with fields shaped after Istio's
/// DestinationRule `trafficPolicy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrafficPolicy {
    pub kind: S<String>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<S<String>>,
    pub metadata: Metadata,
    pub spec: RawTrafficPolicySpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTrafficPolicySpec {
    pub target_refs: Option<Vec<S<RawObjectRef>>>,
    pub load_balancer: Option<S<RawLoadBalancer>>,
    pub connection_pool: Option<S<RawConnectionPool>>,
    /// ringmesh's: the proxy's circuit breaker by its own names (the same
    /// limits `connectionPool` sets, in Envoy's words).
    pub circuit_breaker: Option<S<RawCircuitBreaker>>,
    pub outlier_detection: Option<S<RawOutlierDetection>>,
    pub retry_budget: Option<S<RawTpRetryBudget>>,
    /// ringmesh's: a local rate limit on the Service's sidecars.
    pub rate_limit: Option<S<RawTpRateLimit>>,
    pub panic_threshold: Option<S<f64>>,
    /// Active health checks of the Service's endpoints.
    pub health_check: Option<S<RawTpHealthCheck>>,
    /// Istio's DestinationRule fields a TrafficPolicy does not take.
    pub tls: Unsupported,
    pub port_level_settings: Unsupported,
    pub tunnel: Unsupported,
    pub proxy_protocol: Unsupported,
}

/// The proxy's `health_check` in the resources' camelCase.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTpHealthCheck {
    pub interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub jitter: Option<S<String>>,
    pub unhealthy_threshold: Option<S<u64>>,
    pub healthy_threshold: Option<S<u64>>,
    pub http: Option<S<RawTpHttpCheck>>,
    pub tcp: Option<S<RawTpTcpCheck>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTpHttpCheck {
    pub path: Option<S<String>>,
    pub host: Option<S<String>>,
    /// `204` or `"200-299"`.
    pub expected_statuses: Option<S<Vec<S<RawStatusRange>>>>,
}

/// `204`, or `"200-299"` (both ends included).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawStatusRange {
    Code(u64),
    Range(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTpTcpCheck {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLoadBalancer {
    /// ROUND_ROBIN, LEAST_REQUEST, PEAK_EWMA, RING_HASH, MAGLEV (Istio's
    /// RANDOM and PASSTHROUGH are refused).
    pub simple: Option<S<String>>,
    pub consistent_hash: Option<S<RawConsistentHash>>,
    /// ringmesh's: the settings of PEAK_EWMA.
    pub peak_ewma: Option<S<RawPeakEwma>>,
    pub locality_lb_setting: Unsupported,
    pub warmup_duration_secs: Unsupported,
    pub warmup: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConsistentHash {
    pub http_header_name: Option<S<String>>,
    pub http_cookie: Option<S<RawHttpCookie>>,
    pub use_source_ip: Option<S<bool>>,
    /// ringmesh's: ring points per unit of an endpoint's weight.
    pub ring_points: Option<S<u64>>,
    pub maglev: Option<S<RawMaglev>>,
    pub ring_hash: Unsupported,
    pub minimum_ring_size: Unsupported,
    pub http_query_parameter_name: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpCookie {
    pub name: S<String>,
    pub path: Unsupported,
    pub ttl: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMaglev {
    pub table_size: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPeakEwma {
    pub half_life: Option<S<String>>,
    pub default_rtt: Option<S<String>>,
}

/// Istio's `connectionPool`, the parts the proxy has.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnectionPool {
    pub tcp: Option<S<RawTcpPool>>,
    pub http: Option<S<RawHttpPool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTcpPool {
    pub max_connections: Option<S<u64>>,
    pub connect_timeout: Option<S<String>>,
    pub tcp_keepalive: Unsupported,
    pub max_connection_duration: Unsupported,
    pub idle_timeout: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHttpPool {
    pub http1_max_pending_requests: Option<S<u64>>,
    pub http2_max_requests: Option<S<u64>>,
    pub max_retries: Option<S<u64>>,
    pub idle_timeout: Option<S<String>>,
    pub max_requests_per_connection: Unsupported,
    pub h2_upgrade_policy: Unsupported,
    pub use_client_protocol: Unsupported,
    pub max_concurrent_streams: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCircuitBreaker {
    pub max_connections: Option<S<u64>>,
    pub max_pending_requests: Option<S<u64>>,
    pub max_requests: Option<S<u64>>,
    pub max_retries: Option<S<u64>>,
}

/// Istio's `outlierDetection`, with ringmesh's `maxEjectionTime` and
/// `successRate` (Envoy's).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOutlierDetection {
    #[serde(rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: Option<S<u64>>,
    pub consecutive_gateway_errors: Option<S<u64>>,
    pub interval: Option<S<String>>,
    pub base_ejection_time: Option<S<String>>,
    pub max_ejection_time: Option<S<String>>,
    pub max_ejection_percent: Option<S<f64>>,
    pub success_rate: Option<S<RawSuccessRate>>,
    pub min_health_percent: Unsupported,
    pub split_external_local_origin_errors: Unsupported,
    pub consecutive_local_origin_failures: Unsupported,
    pub consecutive_errors: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSuccessRate {
    pub minimum_hosts: Option<S<u64>>,
    pub request_volume: Option<S<u64>>,
    pub stdev_factor: Option<S<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTpRetryBudget {
    pub percent: Option<S<f64>>,
    pub min_retries_per_second: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTpRateLimit {
    pub requests_per_second: Option<S<f64>>,
    pub burst: Option<S<u64>>,
    pub per: Option<S<RawRateLimitPer>>,
}

/// `per: source` or `per: { header: NAME }`, as the proxy writes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum RawRateLimitPer {
    Source,
    Header(S<String>),
}
