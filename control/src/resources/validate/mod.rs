//! Raw documents -> checked `Resources`, collecting every error.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, Spanned};

use super::model::*;
use super::raw::*;
use super::{ResourceError, ResourceErrors};

mod backend_tls;
mod policy;
mod tls;

const KINDS: [&str; 6] = [
    "Service",
    "HTTPRoute",
    "Gateway",
    "Secret",
    "ConfigMap",
    "BackendTLSPolicy",
];

/// Where a document sits: its file and the line before its first.
#[derive(Clone)]
struct Doc {
    file: String,
    offset: u64,
}

#[derive(Default)]
struct RawSet {
    services: Vec<(Doc, RawService)>,
    routes: Vec<(Doc, RawHttpRoute)>,
    gateways: Vec<(Doc, RawGateway)>,
    secrets: Vec<(Doc, RawSecret)>,
    config_maps: Vec<(Doc, RawConfigMap)>,
    backend_tls: Vec<(Doc, RawBackendTlsPolicy)>,
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
        match kind.value.as_str() {
            "Service" => set
                .services
                .extend(self.typed(doc, text).map(|r| (doc.clone(), r))),
            "HTTPRoute" => set
                .routes
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

    fn unique<'a>(
        &mut self,
        seen: &mut BTreeMap<&'a str, String>,
        doc: &Doc,
        n: &'a Spanned<String>,
        path: &str,
    ) -> bool {
        let here = format!("{}:{}", doc.file, doc.offset + n.referenced.line());
        if let Some(first) = seen.get(n.value.as_str()) {
            self.err(
                doc,
                &n.referenced,
                path,
                format!("`{}` is defined twice; first at {first}", n.value),
            );
            return false;
        }
        seen.insert(&n.value, here);
        true
    }

    fn check(&mut self, set: &RawSet) -> Resources {
        let mut out = Resources::default();
        let mut seen = BTreeMap::new();
        for (doc, s) in &set.services {
            let Some(at) = self.named(&mut seen, doc, &s.metadata.name, "Service") else {
                continue;
            };
            let mut endpoints = Vec::new();
            for (i, e) in s.spec.endpoints.iter().enumerate() {
                if self.endpoint(doc, e, &format!("{at}.spec.endpoints[{i}]")) {
                    endpoints.push(e.value.clone());
                }
            }
            let source = Source {
                file: doc.file.clone(),
                line: doc.offset + s.kind.referenced.line(),
            };
            out.services.insert(
                s.metadata.name.value.clone(),
                Service {
                    name: s.metadata.name.value.clone(),
                    endpoints,
                    source,
                },
            );
        }
        let mut seen = BTreeMap::new();
        for (doc, raw) in &set.secrets {
            let Some(at) = self.named(&mut seen, doc, &raw.metadata.name, "Secret") else {
                continue;
            };
            match self.secret(doc, raw, &at) {
                Some(secret) => {
                    out.secrets.insert(secret.name.clone(), secret);
                }
                None => {
                    self.broken
                        .insert(("Secret", raw.metadata.name.value.clone()));
                }
            }
        }
        let mut seen = BTreeMap::new();
        for (doc, raw) in &set.config_maps {
            let Some(at) = self.named(&mut seen, doc, &raw.metadata.name, "ConfigMap") else {
                continue;
            };
            match self.config_map(doc, raw, &at) {
                Some(cm) => {
                    out.config_maps.insert(cm.name.clone(), cm);
                }
                None => {
                    self.broken
                        .insert(("ConfigMap", raw.metadata.name.value.clone()));
                }
            }
        }
        let mut seen = BTreeMap::new();
        for (doc, g) in &set.gateways {
            let Some(at) = self.named(&mut seen, doc, &g.metadata.name, "Gateway") else {
                continue;
            };
            let gw = self.gateway(doc, g, &at, &out);
            out.gateways.insert(gw.name.clone(), gw);
        }
        let mut seen = BTreeMap::new();
        for (doc, r) in &set.routes {
            let Some(at) = self.named(&mut seen, doc, &r.metadata.name, "HTTPRoute") else {
                continue;
            };
            let route = self.route(doc, r, &at, &out);
            out.routes.insert(route.name.clone(), route);
        }
        let (mut seen, mut taken) = (BTreeMap::new(), BTreeMap::new());
        for (doc, p) in &set.backend_tls {
            let Some(at) = self.named(&mut seen, doc, &p.metadata.name, "BackendTLSPolicy") else {
                continue;
            };
            if let Some(policy) = self.backend_tls(doc, p, &at, &out, &mut taken) {
                out.backend_tls.insert(policy.name.clone(), policy);
            }
        }
        out
    }

    /// A resource's name, checked and unique among its kind: its path
    /// prefix (`Kind/name`), or None for a duplicate.
    fn named<'a>(
        &mut self,
        seen: &mut BTreeMap<&'a str, String>,
        doc: &Doc,
        name: &'a Spanned<String>,
        kind: &str,
    ) -> Option<String> {
        let at = format!("{kind}/{}", name.value);
        let path = format!("{at}.metadata.name");
        self.name(doc, name, &path);
        self.unique(seen, doc, name, &path).then_some(at)
    }

    /// `ip:port` or `dns-name:port`.
    fn endpoint(&mut self, doc: &Doc, e: &Spanned<String>, path: &str) -> bool {
        if e.value.parse::<SocketAddr>().is_ok() {
            return true;
        }
        let ok = match e.value.rsplit_once(':') {
            Some((host, port)) => {
                port.parse::<u16>().is_ok_and(|p| p > 0)
                    && !host.is_empty()
                    && host.split('.').all(|l| {
                        !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    })
            }
            None => false,
        };
        if !ok {
            self.err(
                doc,
                &e.referenced,
                path,
                format!(
                    "`{}` is not an endpoint: write ip:port or host:port",
                    e.value
                ),
            );
        }
        ok
    }

    fn gateway(&mut self, doc: &Doc, g: &RawGateway, at: &str, known: &Resources) -> Gateway {
        if g.spec.listeners.is_empty() {
            self.err(
                doc,
                &g.kind.referenced,
                format!("{at}.spec.listeners"),
                "a Gateway needs at least one listener",
            );
        }
        let mut listeners = Vec::new();
        let mut names = BTreeMap::new();
        for (i, l) in g.spec.listeners.iter().enumerate() {
            let path = format!("{at}.spec.listeners[{i}]");
            self.name(doc, &l.value.name, &format!("{path}.name"));
            self.unique(&mut names, doc, &l.value.name, &format!("{path}.name"));
            let (hostname, tls) = self.listener_tls(doc, l, &path, known);
            match l.value.address.value.parse::<SocketAddr>() {
                Ok(address) => listeners.push((
                    i,
                    GatewayListener {
                        name: l.value.name.value.clone(),
                        address,
                        hostname,
                        tls,
                    },
                )),
                Err(_) => self.err(
                    doc,
                    &l.value.address.referenced,
                    format!("{path}.address"),
                    format!("`{}` is not ip:port", l.value.address.value),
                ),
            }
        }
        self.shared_addresses(doc, &g.spec.listeners, &listeners, at, known);
        let source = Source {
            file: doc.file.clone(),
            line: doc.offset + g.kind.referenced.line(),
        };
        Gateway {
            name: g.metadata.name.value.clone(),
            listeners: listeners.into_iter().map(|(_, l)| l).collect(),
            source,
        }
    }

    fn route(&mut self, doc: &Doc, r: &RawHttpRoute, at: &str, known: &Resources) -> HttpRoute {
        let spec = &r.spec;
        if spec.parent_refs.is_empty() {
            self.err(
                doc,
                &r.kind.referenced,
                format!("{at}.spec.parentRefs"),
                "name at least one parent: a Service (mesh) or a Gateway (edge)",
            );
        }
        let mut parents = Vec::new();
        for (i, p) in spec.parent_refs.iter().enumerate() {
            let path = format!("{at}.spec.parentRefs[{i}]");
            let kind = p
                .value
                .kind
                .as_ref()
                .map_or("Service", |k| k.value.as_str());
            let name = &p.value.name;
            match kind {
                "Service" => {
                    if self.reference(
                        doc,
                        name,
                        &format!("{path}.name"),
                        "Service",
                        known.services.keys(),
                    ) {
                        parents.push(Parent::Service(name.value.clone()));
                    }
                }
                "Gateway" => {
                    if self.reference(
                        doc,
                        name,
                        &format!("{path}.name"),
                        "Gateway",
                        known.gateways.keys(),
                    ) {
                        parents.push(Parent::Gateway(name.value.clone()));
                    }
                }
                other => {
                    let at_kind = p
                        .value
                        .kind
                        .as_ref()
                        .map_or(&p.referenced, |k| &k.referenced);
                    let hint = did_you_mean(other, &["Service", "Gateway"]);
                    self.err(
                        doc,
                        at_kind,
                        format!("{path}.kind"),
                        format!("a parent is a Service or a Gateway, not `{other}`{hint}"),
                    );
                }
            }
        }
        let gateway_parent = spec
            .parent_refs
            .iter()
            .any(|p| p.value.kind.as_ref().is_some_and(|k| k.value == "Gateway"));
        if !spec.hostnames.is_empty() && !gateway_parent {
            self.err(
                doc,
                &spec.hostnames[0].referenced,
                format!("{at}.spec.hostnames"),
                "hostnames apply to Gateway parents; a mesh route applies to its Service's name",
            );
        }
        let hostnames: Vec<String> = spec.hostnames.iter().map(|h| h.value.clone()).collect();
        for p in &parents {
            let Parent::Gateway(g) = p else { continue };
            let Some(gw) = known.gateways.get(g) else {
                continue;
            };
            if !hostnames.is_empty()
                && !gw.listeners.is_empty()
                && gw
                    .listeners
                    .iter()
                    .all(|l| l.hosts_for(&hostnames).is_empty())
            {
                let served: Vec<&str> = gw
                    .listeners
                    .iter()
                    .filter_map(|l| l.hostname.as_deref())
                    .collect();
                self.err(
                    doc,
                    &spec.hostnames[0].referenced,
                    format!("{at}.spec.hostnames"),
                    format!(
                        "no listener of Gateway `{g}` serves these hostnames (its listeners serve {}): the route would never match",
                        served.join(", ")
                    ),
                );
            }
        }
        if spec.rules.is_empty() {
            self.err(
                doc,
                &r.kind.referenced,
                format!("{at}.spec.rules"),
                "a route needs at least one rule",
            );
        }
        let rules = spec
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                self.rule(
                    doc,
                    &rule.value,
                    &rule.referenced,
                    &format!("{at}.spec.rules[{i}]"),
                    known,
                )
            })
            .collect();
        HttpRoute {
            name: r.metadata.name.value.clone(),
            parents,
            hostnames,
            rules,
            source: Source {
                file: doc.file.clone(),
                line: doc.offset + r.kind.referenced.line(),
            },
        }
    }

    fn reference<'a>(
        &mut self,
        doc: &Doc,
        name: &Spanned<String>,
        path: &str,
        kind: &str,
        known: impl Iterator<Item = &'a String>,
    ) -> bool {
        let known: Vec<&str> = known.map(String::as_str).collect();
        if known.contains(&name.value.as_str()) {
            return true;
        }
        if self
            .broken
            .iter()
            .any(|(k, n)| *k == kind && *n == name.value)
        {
            // Its own errors say what is wrong with it.
            return false;
        }
        let hint = did_you_mean(&name.value, &known);
        self.err(
            doc,
            &name.referenced,
            path,
            format!("no {kind} named `{}`{hint}", name.value),
        );
        false
    }

    fn rule(
        &mut self,
        doc: &Doc,
        rule: &RawRule,
        at_rule: &Location,
        path: &str,
        known: &Resources,
    ) -> Rule {
        let mut matches = Vec::new();
        for (i, m) in rule.matches.iter().enumerate() {
            matches.push(self.route_match(doc, &m.value, &format!("{path}.matches[{i}]")));
        }
        if rule.backend_refs.is_empty() {
            self.err(
                doc,
                at_rule,
                format!("{path}.backendRefs"),
                "a rule needs at least one backend",
            );
        }
        let mut backends = Vec::new();
        for (i, b) in rule.backend_refs.iter().enumerate() {
            let bpath = format!("{path}.backendRefs[{i}]");
            let weight = b.value.weight.as_ref().map_or(1, |w| w.value);
            if weight > 1_000_000 {
                let at = b
                    .value
                    .weight
                    .as_ref()
                    .map_or(&b.referenced, |w| &w.referenced);
                self.err(
                    doc,
                    at,
                    format!("{bpath}.weight"),
                    "must be at most 1000000",
                );
            }
            if self.reference(
                doc,
                &b.value.name,
                &format!("{bpath}.name"),
                "Service",
                known.services.keys(),
            ) {
                backends.push(Backend {
                    service: b.value.name.value.clone(),
                    weight,
                });
            }
        }
        if !rule.backend_refs.is_empty()
            && rule
                .backend_refs
                .iter()
                .all(|b| b.value.weight.as_ref().is_some_and(|w| w.value == 0))
        {
            self.err(
                doc,
                at_rule,
                format!("{path}.backendRefs"),
                "all weights are 0: no backend would get traffic",
            );
        }
        let timeout = rule
            .timeouts
            .as_ref()
            .and_then(|t| self.timeouts(doc, t, path));
        let retry = rule.retry.as_ref().map(|r| self.retry(doc, &r.value, path));
        let fault = rule
            .fault
            .as_ref()
            .and_then(|f| self.fault(doc, f, &format!("{path}.fault")));
        Rule {
            matches,
            backends,
            timeout,
            retry,
            fault,
        }
    }

    fn route_match(&mut self, doc: &Doc, m: &RawRouteMatch, path: &str) -> Match {
        let p = match &m.path {
            None => PathMatch::Prefix("/".into()),
            Some(p) => {
                let value = p.value.value.value.clone();
                if !value.starts_with('/') {
                    self.err(
                        doc,
                        &p.value.value.referenced,
                        format!("{path}.path.value"),
                        format!("`{value}` must start with '/'"),
                    );
                }
                match p
                    .value
                    .kind
                    .as_ref()
                    .map_or("PathPrefix", |k| k.value.as_str())
                {
                    "PathPrefix" => PathMatch::Prefix(value),
                    "Exact" => PathMatch::Exact(value),
                    other => {
                        let at = p
                            .value
                            .kind
                            .as_ref()
                            .map_or(&p.referenced, |k| &k.referenced);
                        let hint = did_you_mean(other, &["PathPrefix", "Exact"]);
                        self.err(
                            doc,
                            at,
                            format!("{path}.path.type"),
                            format!(
                                "unknown path match type `{other}`{hint}: use PathPrefix or Exact"
                            ),
                        );
                        PathMatch::Prefix(value)
                    }
                }
            }
        };
        let method = m.method.as_ref().map(|x| {
            if x.value.is_empty() || !x.value.bytes().all(|b| b.is_ascii_uppercase()) {
                self.err(
                    doc,
                    &x.referenced,
                    format!("{path}.method"),
                    format!("`{}` is not an HTTP method (GET, POST, ...)", x.value),
                );
            }
            x.value.clone()
        });
        let headers = m
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let name = &h.value.name;
                if name.value.is_empty()
                    || !name
                        .value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                {
                    self.err(
                        doc,
                        &name.referenced,
                        format!("{path}.headers[{i}].name"),
                        format!("`{}` is not a header name", name.value),
                    );
                }
                (name.value.to_ascii_lowercase(), h.value.value.value.clone())
            })
            .collect();
        Match {
            path: p,
            method,
            headers,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
