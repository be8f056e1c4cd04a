//! Raw documents -> checked `Resources`, collecting every error.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, Spanned};

use super::model::*;
use super::raw::*;
use super::{ResourceError, ResourceErrors};

mod authz;
mod backend_tls;
mod filters;
mod gateway;
mod grpc;
mod health_check;
mod mirror;
mod peer_authn;
mod policy;
mod refs;
mod route;
mod service;
mod tcp;
mod telemetry;
mod tls;
mod traffic_policy;

const KINDS: [&str; 12] = [
    "Service",
    "HTTPRoute",
    "Gateway",
    "Secret",
    "ConfigMap",
    "BackendTLSPolicy",
    "GRPCRoute",
    "TCPRoute",
    "AuthorizationPolicy",
    "PeerAuthentication",
    "Telemetry",
    "TrafficPolicy",
];

const GATEWAY_API: &str = "gateway.networking.k8s.io";

/// The `apiVersion`s a kind may say, as Kubernetes serves it (the first
/// is the one to write). Leaving `apiVersion` out is fine: ringmesh
/// knows each kind in one shape only.
fn api_versions(kind: &str) -> &'static [&'static str] {
    match kind {
        "Service" | "Secret" | "ConfigMap" => &["v1"],
        "HTTPRoute" | "Gateway" => &[
            "gateway.networking.k8s.io/v1",
            "gateway.networking.k8s.io/v1beta1",
        ],
        "GRPCRoute" => &[
            "gateway.networking.k8s.io/v1",
            "gateway.networking.k8s.io/v1alpha2",
        ],
        "TCPRoute" => &["gateway.networking.k8s.io/v1alpha2"],
        "BackendTLSPolicy" => &[
            "gateway.networking.k8s.io/v1alpha3",
            "gateway.networking.k8s.io/v1",
        ],
        "AuthorizationPolicy" | "PeerAuthentication" => {
            &["security.istio.io/v1", "security.istio.io/v1beta1"]
        }
        "Telemetry" => &["telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"],
        "TrafficPolicy" => &["ringmesh.io/v1alpha1"],
        _ => &[],
    }
}

/// Where a document sits: its file and the line before its first, and
/// the namespace its references resolve in.
#[derive(Clone)]
struct Doc {
    file: String,
    offset: u64,
    ns: String,
    /// It says its `apiVersion`: it reads as the Gateway API writes it,
    /// defaults included (a `parentRefs` entry is a Gateway unless it
    /// says otherwise).
    gateway_api: bool,
}

#[derive(Default)]
struct RawSet {
    services: Vec<(Doc, RawService)>,
    routes: Vec<(Doc, RawHttpRoute)>,
    grpc_routes: Vec<(Doc, RawGrpcRoute)>,
    tcp_routes: Vec<(Doc, RawTcpRoute)>,
    gateways: Vec<(Doc, RawGateway)>,
    secrets: Vec<(Doc, RawSecret)>,
    config_maps: Vec<(Doc, RawConfigMap)>,
    backend_tls: Vec<(Doc, RawBackendTlsPolicy)>,
    authz: Vec<(Doc, RawAuthorizationPolicy)>,
    peer_authn: Vec<(Doc, RawPeerAuthentication)>,
    telemetry: Vec<(Doc, RawTelemetry)>,
    traffic_policies: Vec<(Doc, RawTrafficPolicy)>,
}

struct Checker {
    errors: Vec<ResourceError>,
    /// (kind, name) of resources that exist but failed their checks: a
    /// reference to one is not reported again as "no such resource".
    broken: BTreeSet<(&'static str, String)>,
}

pub fn parse(files: &[(String, String)]) -> Result<Resources, ResourceErrors> {
    let mut c = Checker {
        errors: Vec::new(),
        broken: BTreeSet::new(),
    };
    let mut set = RawSet::default();
    for (file, text) in files {
        for (offset, text) in split_documents(text) {
            c.read(
                &Doc {
                    file: file.clone(),
                    offset,
                    ns: DEFAULT_NAMESPACE.to_string(),
                    gateway_api: false,
                },
                text,
                &mut set,
            );
        }
    }
    let resources = c.check(&set);
    if c.errors.is_empty() {
        Ok(resources)
    } else {
        c.errors
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        Err(ResourceErrors(c.errors))
    }
}

/// Documents of a YAML stream: (lines before it, its text). Separators are
/// lines starting with `---`; documents with nothing but comments are
/// skipped.
pub(crate) fn split_documents(text: &str) -> Vec<(u64, &str)> {
    let mut out = Vec::new();
    let (mut start, mut start_line, mut pos) = (0usize, 0u64, 0usize);
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.starts_with("---") {
            out.push((start_line, &text[start..pos]));
            start = pos + line.len();
            start_line = n as u64 + 1;
        }
        pos += line.len();
    }
    out.push((start_line, &text[start..]));
    out.retain(|(_, doc)| {
        doc.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    out
}

/// An HTTP token (RFC 9110 `tchar`s): what a header name must be.
fn token(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn did_you_mean(word: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(word, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

impl Checker {
    fn err(
        &mut self,
        doc: &Doc,
        at: &Location,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (line, column) = match at.line() {
            0 => (doc.offset + 1, 1),
            l => (doc.offset + l, at.column()),
        };
        self.errors.push(ResourceError {
            file: doc.file.clone(),
            line,
            column,
            path: super::redact(&path.into()),
            message: super::redact(&message.into()),
        });
    }

    fn schema(&mut self, doc: &Doc, e: &serde_saphyr::Error) {
        let loc = e.location().unwrap_or(Location::UNKNOWN);
        let text = e.without_snippet().to_string();
        let mut message = text
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .trim()
            .to_string();
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        if let Some((unknown, expected)) = message
            .split("unknown field `")
            .nth(1)
            .and_then(|r| r.split_once('`'))
            .and_then(|(u, r)| r.split_once("expected ").map(|(_, e)| (u, e)))
        {
            let cands: Vec<&str> = expected
                .split(',')
                .map(|c| c.trim().trim_start_matches("one of ").trim_matches('`'))
                .collect();
            message.push_str(&did_you_mean(unknown, &cands));
        }
        self.err(doc, &loc, "", message);
    }

    fn typed<T: DeserializeOwned>(&mut self, doc: &Doc, text: &str) -> Option<T> {
        match serde_saphyr::from_str::<T>(text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.schema(doc, &e);
                None
            }
        }
    }

    fn read(&mut self, doc: &Doc, text: &str, set: &mut RawSet) {
        let Some(header) = self.typed::<Header>(doc, text) else {
            return;
        };
        let doc = &Doc {
            ns: header
                .metadata
                .and_then(|m| m.namespace)
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
            gateway_api: header.api_version.is_some(),
            ..doc.clone()
        };
        let Some(kind) = header.kind else {
            self.err(
                doc,
                &Location::UNKNOWN,
                "kind",
                format!(
                    "missing: every document says what it is ({})",
                    KINDS.join(", ")
                ),
            );
            return;
        };
        if let Some(v) = &header.api_version {
            let versions = api_versions(&kind.value);
            if !versions.is_empty() && !versions.contains(&v.value.as_str()) {
                self.err(
                    doc,
                    &v.referenced,
                    "apiVersion",
                    format!(
                        "`{}` is not an apiVersion of {}: write `{}` (or leave apiVersion out)",
                        v.value, kind.value, versions[0]
                    ),
                );
                return;
            }
        }
        match kind.value.as_str() {
            "Service" => set
                .services
                .extend(self.typed(doc, text).map(|r| (doc.clone(), r))),
            "HTTPRoute" => set
                .routes
                .extend(self.typed(doc, text).map(|r| (doc.clone(), r))),
            "GRPCRoute" => set
                .grpc_routes
                .extend(self.typed(doc, text).map(|r| (doc.clone(), r))),
            "TCPRoute" => set
                .tcp_routes
                .extend(self.typed(doc, text).map(|r| (doc.clone(), r))),
            "Gateway" => set
                .gateways
                .extend(self.typed(doc, text).map(|r| (doc.clone(), r))),
            "Secret" => set
                .secrets
                .extend(self.typed(doc, text).map(|r| (doc.clone(), r))),
            "ConfigMap" => set
                .config_maps
                .extend(self.typed(doc, text).map(|r| (doc.clone(), r))),
            "BackendTLSPolicy" => set
                .backend_tls
                .extend(self.typed(doc, text).map(|r| (doc.clone(), r))),
            "AuthorizationPolicy" => set
                .authz
                .extend(self.typed(doc, text).map(|r| (doc.clone(), r))),
            "PeerAuthentication" => set
                .peer_authn
                .extend(self.typed(doc, text).map(|r| (doc.clone(), r))),
            "Telemetry" => set
                .telemetry
                .extend(self.typed(doc, text).map(|r| (doc.clone(), r))),
            "TrafficPolicy" => set
                .traffic_policies
                .extend(self.typed(doc, text).map(|r| (doc.clone(), r))),
            other => {
                let hint = did_you_mean(other, &KINDS);
                self.err(
                    doc,
                    &kind.referenced,
                    "kind",
                    format!("unknown kind `{other}`{hint}; known: {}", KINDS.join(", ")),
                );
            }
        }
    }

    /// A resource name: lowercase letters, digits and '-', 1 to 63, as in
    /// Kubernetes (it becomes a host name in the mesh).
    fn name(&mut self, doc: &Doc, n: &Spanned<String>, path: &str) {
        let v = &n.value;
        let ok = (1..=63).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !v.starts_with('-')
            && !v.ends_with('-');
        if !ok {
            self.err(doc, &n.referenced, path, format!("`{v}` is not a valid name: 1-63 lowercase letters, digits and '-', not starting or ending with '-'"));
        }
    }

    /// `key` (a name, or a qualified name) seen once in `seen`; `n` is
    /// where it is written.
    fn unique(
        &mut self,
        seen: &mut BTreeMap<String, String>,
        doc: &Doc,
        key: &str,
        n: &Spanned<String>,
        path: &str,
    ) -> bool {
        let here = format!("{}:{}", doc.file, doc.offset + n.referenced.line());
        if let Some(first) = seen.get(key) {
            let what = match key.split_once('.') {
                Some((name, ns)) => format!("`{name}` (namespace `{ns}`)"),
                None => format!("`{key}`"),
            };
            self.err(
                doc,
                &n.referenced,
                path,
                format!("{what} is defined twice; first at {first}"),
            );
            return false;
        }
        seen.insert(key.to_string(), here);
        true
    }

    fn check(&mut self, set: &RawSet) -> Resources {
        let mut out = Resources::default();
        let mut seen = BTreeMap::new();
        for (doc, s) in &set.services {
            let Some((at, name)) = self.named(&mut seen, doc, &s.metadata, "Service") else {
                continue;
            };
            let service = self.service(doc, s, &at, name);
            out.services.insert(service.name.clone(), service);
        }
        let mut seen = BTreeMap::new();
        for (doc, raw) in &set.secrets {
            let Some((at, name)) = self.named(&mut seen, doc, &raw.metadata, "Secret") else {
                continue;
            };
            match self.secret(doc, raw, &at, &name) {
                Some(secret) => {
                    out.secrets.insert(secret.name.clone(), secret);
                }
                None => {
                    self.broken.insert(("Secret", name));
                }
            }
        }
        let mut seen = BTreeMap::new();
        for (doc, raw) in &set.config_maps {
            let Some((at, name)) = self.named(&mut seen, doc, &raw.metadata, "ConfigMap") else {
                continue;
            };
            match self.config_map(doc, raw, &at, &name) {
                Some(cm) => {
                    out.config_maps.insert(cm.name.clone(), cm);
                }
                None => {
                    self.broken.insert(("ConfigMap", name));
                }
            }
        }
        let mut seen = BTreeMap::new();
        for (doc, g) in &set.gateways {
            let Some((at, name)) = self.named(&mut seen, doc, &g.metadata, "Gateway") else {
                continue;
            };
            let gw = self.gateway(doc, g, &at, name, &out);
            out.gateways.insert(gw.name.clone(), gw);
        }
        let mut seen = BTreeMap::new();
        for (doc, r) in &set.routes {
            let Some((at, name)) = self.named(&mut seen, doc, &r.metadata, "HTTPRoute") else {
                continue;
            };
            let route = self.route(doc, r, &at, name, &out);
            out.routes.insert(route.name.clone(), route);
        }
        let mut seen = BTreeMap::new();
        for (doc, r) in &set.grpc_routes {
            let Some((at, name)) = self.named(&mut seen, doc, &r.metadata, "GRPCRoute") else {
                continue;
            };
            let route = self.grpc_route(doc, r, &at, name, &out);
            out.grpc_routes.insert(route.name.clone(), route);
        }
        let (mut seen, mut tcp_broken) = (BTreeMap::new(), false);
        for (doc, r) in &set.tcp_routes {
            let errors = self.errors.len();
            let Some((at, name)) = self.named(&mut seen, doc, &r.metadata, "TCPRoute") else {
                continue;
            };
            if let Some(route) = self.tcp_route(doc, r, &at, name, &out) {
                out.tcp_routes.insert(route.name.clone(), route);
            }
            tcp_broken |= self.errors.len() > errors;
        }
        self.tcp_listeners(set, &out, tcp_broken);
        let (mut seen, mut taken) = (BTreeMap::new(), BTreeMap::new());
        for (doc, p) in &set.backend_tls {
            let Some((at, name)) = self.named(&mut seen, doc, &p.metadata, "BackendTLSPolicy")
            else {
                continue;
            };
            if let Some(policy) = self.backend_tls(doc, p, &at, name, &out, &mut taken) {
                out.backend_tls.insert(policy.name.clone(), policy);
            }
        }
        let mut seen = BTreeMap::new();
        for (doc, p) in &set.authz {
            let Some((at, name)) = self.named(&mut seen, doc, &p.metadata, "AuthorizationPolicy")
            else {
                continue;
            };
            if let Some(policy) = self.authorization_policy(doc, p, &at, name, &out) {
                out.authz.insert(policy.name.clone(), policy);
            }
        }
        let (mut seen, mut taken) = (BTreeMap::new(), BTreeMap::new());
        for (doc, p) in &set.peer_authn {
            let Some((at, name)) = self.named(&mut seen, doc, &p.metadata, "PeerAuthentication")
            else {
                continue;
            };
            if let Some(policy) = self.peer_authentication(doc, p, &at, name, &out, &mut taken) {
                out.peer_authn.insert(policy.name.clone(), policy);
            }
        }
        let (mut seen, mut taken, mut inherits) = (BTreeMap::new(), BTreeMap::new(), Vec::new());
        let mut broken_wide = BTreeSet::new();
        for (doc, t) in &set.telemetry {
            let Some((at, name)) = self.named(&mut seen, doc, &t.metadata, "Telemetry") else {
                continue;
            };
            match self.telemetry(doc, t, &at, name, &out, &mut taken, &mut inherits) {
                Some(t) => {
                    out.telemetry.insert(t.name.clone(), t);
                }
                None if t.spec.selector.is_none() && t.spec.target_refs.is_none() => {
                    broken_wide.insert(doc.ns.clone());
                }
                None => {}
            }
        }
        self.telemetry_inherits(inherits, &out.telemetry, &broken_wide);
        let (mut seen, mut taken) = (BTreeMap::new(), BTreeMap::new());
        for (doc, p) in &set.traffic_policies {
            let Some((at, name)) = self.named(&mut seen, doc, &p.metadata, "TrafficPolicy") else {
                continue;
            };
            if let Some(policy) = self.traffic_policy(doc, p, &at, name, &out, &mut taken) {
                out.traffic_policies.insert(policy.name.clone(), policy);
            }
        }
        out
    }

    /// A resource's name and namespace, checked, and unique among its
    /// kind: its path prefix (`Kind/name`, or `Kind/namespace/name` as
    /// kubectl writes it) and qualified name, or None for a duplicate.
    fn named(
        &mut self,
        seen: &mut BTreeMap<String, String>,
        doc: &Doc,
        meta: &Metadata,
        kind: &str,
    ) -> Option<(String, String)> {
        let name = &meta.name;
        let at = match &meta.namespace {
            Some(ns) if ns.value != DEFAULT_NAMESPACE => {
                format!("{kind}/{}/{}", ns.value, name.value)
            }
            _ => format!("{kind}/{}", name.value),
        };
        let path = format!("{at}.metadata.name");
        self.name(doc, name, &path);
        if let Some(ns) = &meta.namespace {
            self.name(doc, ns, &format!("{at}.metadata.namespace"));
        }
        let q = qualified(&name.value, &doc.ns);
        self.unique(seen, doc, &q, name, &path).then_some((at, q))
    }

    /// A reference to a resource of `kind` by `name`, in `namespace` or
    /// else the referring document's: the qualified name if it exists.
    fn reference_in<'a>(
        &mut self,
        doc: &Doc,
        name: &Spanned<String>,
        namespace: Option<&Spanned<String>>,
        path: &str,
        kind: &str,
        known: impl Iterator<Item = &'a String>,
    ) -> Option<String> {
        let ns = namespace.map_or(doc.ns.as_str(), |n| n.value.as_str());
        let target = qualified(&name.value, ns);
        let known: Vec<&str> = known.map(String::as_str).collect();
        if known.contains(&target.as_str()) {
            return Some(target);
        }
        if self.broken.iter().any(|(k, n)| *k == kind && *n == target) {
            // Its own errors say what is wrong with it.
            return None;
        }
        let hint = did_you_mean(&target, &known);
        let where_ = if ns == DEFAULT_NAMESPACE {
            String::new()
        } else {
            format!(" in namespace `{ns}`")
        };
        self.err(
            doc,
            &name.referenced,
            path,
            format!("no {kind} named `{}`{where_}{hint}", name.value),
        );
        None
    }

    /// A reference to a resource of `kind` in the document's namespace.
    fn reference<'a>(
        &mut self,
        doc: &Doc,
        name: &Spanned<String>,
        path: &str,
        kind: &str,
        known: impl Iterator<Item = &'a String>,
    ) -> Option<String> {
        self.reference_in(doc, name, None, path, kind, known)
    }

    /// The end of a policy's `targetRefs` entry check: the target is in
    /// the policy's own namespace (Istio's rule; `what` says what the
    /// policy does, e.g. "a policy protects Services") and exists. `ok`:
    /// the entry's group and kind passed.
    #[allow(clippy::too_many_arguments)]
    fn own_namespace_target<'a>(
        &mut self,
        doc: &Doc,
        r: &RawObjectRef,
        path: &str,
        mut ok: bool,
        what: &str,
        kind: &str,
        known: impl Iterator<Item = &'a String>,
    ) -> Option<String> {
        if let Some(ns) = r.namespace.as_ref().filter(|ns| ns.value != doc.ns) {
            self.err(
                doc,
                &ns.referenced,
                format!("{path}.namespace"),
                format!(
                    "`{}`: {what} of its own namespace (`{}`), as in Istio",
                    ns.value, doc.ns
                ),
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        self.reference(doc, &r.name, &format!("{path}.name"), kind, known)
    }

    /// A policy's `targetRefs` entry naming a Service (group `""` or
    /// `core`, kind `Service` or unset) of the policy's own namespace.
    /// `what` says what the policy does ("a policy protects Services");
    /// `not_yet`: kinds said to be not supported yet rather than wrong;
    /// `gateway_api`: what to add when the group is the Gateway API's
    /// (not supported yet), `None` when that group is just wrong.
    #[allow(clippy::too_many_arguments)]
    fn service_target(
        &mut self,
        doc: &Doc,
        r: &Spanned<RawObjectRef>,
        path: &str,
        known: &Resources,
        what: &str,
        not_yet: &[&str],
        gateway_api: Option<&str>,
    ) -> Option<String> {
        let r = &r.value;
        let mut ok = true;
        if let Some(g) = r
            .group
            .as_ref()
            .filter(|g| !matches!(g.value.as_str(), "" | "core"))
        {
            let message = match gateway_api.filter(|_| g.value == GATEWAY_API) {
                Some(note) => format!(
                    "`{}` is not supported yet: {what} (group \"\"){note}",
                    g.value
                ),
                None => format!("`{}`: {what} (group \"\")", g.value),
            };
            self.err(doc, &g.referenced, format!("{path}.group"), message);
            ok = false;
        }
        if let Some(k) = r.kind.as_ref().filter(|k| k.value != "Service") {
            let message = if not_yet.contains(&k.value.as_str()) {
                format!("`{}` is not supported yet: {what}", k.value)
            } else {
                let hint = did_you_mean(&k.value, &["Service"]);
                format!("`{}`{hint}: {what}", k.value)
            };
            self.err(doc, &k.referenced, format!("{path}.kind"), message);
            ok = false;
        }
        self.own_namespace_target(doc, r, path, ok, what, "Service", known.services.keys())
    }

    /// A field of the Gateway API (or Kubernetes) that ringmesh does not
    /// implement yet: said at the field, not as "unknown field".
    fn unsupported(&mut self, doc: &Doc, field: &Unsupported, path: &str, why: &str) {
        if let Some(f) = field {
            self.err(doc, &f.referenced, path, format!("not supported yet{why}"));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
pub(crate) mod api_tests;

#[cfg(test)]
pub(crate) mod authz_tests;

#[cfg(test)]
pub(crate) mod peer_authn_tests;

#[cfg(test)]
pub(crate) mod telemetry_tests;

#[cfg(test)]
pub(crate) mod filters_tests;

#[cfg(test)]
pub(crate) mod traffic_policy_tests;
