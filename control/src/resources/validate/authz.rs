//! AuthorizationPolicy, as Istio writes it (`security.istio.io/v1`):
//! which Services it protects, and its rules, checked by the rules the
//! proxy applies to a listener's `authorization` (patterns `exact`,
//! `prefix*`, `*suffix`, `*`; paths normalised; header names tokens). A
//! policy the proxy would refuse is refused here, at its field, when it
//! is applied: otherwise every sidecar of the Service would NACK the
//! snapshot and keep its old policies without anyone being told why.
//! Istio fields ringmesh does not implement yet are "not supported yet"
//! at the field, never "unknown field".

use serde_saphyr::Spanned;

use super::super::model::*;
use super::super::raw::*;
use super::{did_you_mean, Checker, Doc};

/// Istio's `when` keys other than `request.headers[...]`: known, not
/// implemented yet.
const ISTIO_KEYS: [&str; 11] = [
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims",
    "destination.ip",
    "destination.port",
    "connection.sni",
];

/// What a pattern may hold, as the proxy reads it: an `*` only as its
/// first or last byte (`dataplane/proxy/src/config/validate/authz.rs`).
fn pattern_ok(v: &str) -> bool {
    let inner = v.trim_start_matches('*').trim_end_matches('*');
    !v.is_empty() && !inner.contains('*') && (v == "*" || v.matches('*').count() <= 1)
}

/// An HTTP token (RFC 9110): methods and header names.
impl Checker {
    pub(super) fn authorization_policy(
        &mut self,
        doc: &Doc,
        p: &RawAuthorizationPolicy,
        at: &str,
        name: String,
        known: &Resources,
    ) -> Option<AuthzPolicy> {
        let errors = self.errors.len();
        let spec = &p.spec;
        self.unsupported(
            doc,
            &spec.selector,
            &format!("{at}.spec.selector"),
            ": ringmesh has no workload labels; use targetRefs (kind: Service)",
        );
        self.unsupported(
            doc,
            &spec.target_ref,
            &format!("{at}.spec.targetRef"),
            ": use targetRefs",
        );
        self.unsupported(
            doc,
            &spec.provider,
            &format!("{at}.spec.provider"),
            ": there is no external authorizer (action CUSTOM)",
        );
        let targets = spec.target_refs.as_ref().map(|refs| {
            let mut out = Vec::new();
            for (i, r) in refs.iter().enumerate() {
                let path = format!("{at}.spec.targetRefs[{i}]");
                if let Some(q) = self.service_target(
                    doc,
                    r,
                    &path,
                    known,
                    "a policy protects Services",
                    &["Gateway", "GatewayClass", "ServiceEntry"],
                    Some("; a Gateway's listeners are not judged yet"),
                ) {
                    if !out.contains(&q) {
                        out.push(q);
                    }
                }
            }
            out
        });
        if spec.target_refs.as_ref().is_some_and(Vec::is_empty) {
            self.err(
                doc,
                &p.kind.referenced,
                format!("{at}.spec.targetRefs"),
                "empty: name the Services this policy protects, or leave targetRefs out to protect every Service of the namespace",
            );
        }
        let deny = match spec.action.as_ref().map(|a| (a.value.as_str(), a)) {
            None | Some(("ALLOW", _)) => false,
            Some(("DENY", _)) => true,
            Some((what @ ("AUDIT" | "CUSTOM"), a)) => {
                self.err(
                    doc,
                    &a.referenced,
                    format!("{at}.spec.action"),
                    format!("`{what}` is not supported yet: use ALLOW or DENY"),
                );
                false
            }
            Some((other, a)) => {
                let hint = did_you_mean(other, &["ALLOW", "DENY", "AUDIT", "CUSTOM"]);
                self.err(
                    doc,
                    &a.referenced,
                    format!("{at}.spec.action"),
                    format!("unknown action `{other}`{hint}: use ALLOW or DENY"),
                );
                false
            }
        };
        let rules = spec
            .rules
            .iter()
            .flatten()
            .enumerate()
            .map(|(j, r)| self.authz_rule(doc, r, &format!("{at}.spec.rules[{j}]")))
            .collect();
        (self.errors.len() == errors).then(|| AuthzPolicy {
            name,
            namespace: doc.ns.clone(),
            targets,
            deny,
            rules,
            source: Source {
                file: doc.file.clone(),
                line: doc.offset + p.kind.referenced.line(),
            },
        })
    }

    fn authz_rule(&mut self, doc: &Doc, r: &Spanned<RawAuthzRule>, at: &str) -> AuthzRule {
        let r = &r.value;
        let mut out = AuthzRule::default();
        for (k, f) in r.from.iter().enumerate() {
            let p = format!("{at}.from[{k}].source");
            let Some(s) = &f.value.source else {
                self.err(
                    doc,
                    &f.referenced,
                    p,
                    "missing: `from` entries are `{source: {...}}`",
                );
                continue;
            };
            let s = &s.value;
            for (field, why) in [
                (&s.request_principals, "requestPrincipals"),
                (&s.not_request_principals, "notRequestPrincipals"),
            ] {
                self.unsupported(
                    doc,
                    field,
                    &format!("{p}.{why}"),
                    ": ringmesh does not validate JWTs (RequestAuthentication)",
                );
            }
            for (field, why) in [
                (&s.ip_blocks, "ipBlocks"),
                (&s.not_ip_blocks, "notIpBlocks"),
                (&s.remote_ip_blocks, "remoteIpBlocks"),
                (&s.not_remote_ip_blocks, "notRemoteIpBlocks"),
            ] {
                self.unsupported(
                    doc,
                    field,
                    &format!("{p}.{why}"),
                    ": the proxy matches principals and namespaces",
                );
            }
            if s.principals.is_empty()
                && s.not_principals.is_empty()
                && s.namespaces.is_empty()
                && s.not_namespaces.is_empty()
                && self.errors.last().is_none_or(|e| !e.path.starts_with(&p))
            {
                self.err(
                    doc,
                    &f.referenced,
                    p.clone(),
                    "empty: give principals, notPrincipals, namespaces or notNamespaces (or leave this `from` entry out)",
                );
            }
            let principal = |v: &str| ringmesh_authz::bare_principal(v).to_string();
            out.from.push(AuthzSource {
                principals: self.patterns(doc, &s.principals, &p, "principals", principal),
                not_principals: self.patterns(
                    doc,
                    &s.not_principals,
                    &p,
                    "notPrincipals",
                    principal,
                ),
                namespaces: self.patterns(doc, &s.namespaces, &p, "namespaces", str::to_string),
                not_namespaces: self.patterns(
                    doc,
                    &s.not_namespaces,
                    &p,
                    "notNamespaces",
                    str::to_string,
                ),
            });
        }
        for (k, t) in r.to.iter().enumerate() {
            let p = format!("{at}.to[{k}].operation");
            let Some(o) = &t.value.operation else {
                self.err(
                    doc,
                    &t.referenced,
                    p,
                    "missing: `to` entries are `{operation: {...}}`",
                );
                continue;
            };
            let o = &o.value;
            for (field, why) in [(&o.hosts, "hosts"), (&o.not_hosts, "notHosts")] {
                self.unsupported(
                    doc,
                    field,
                    &format!("{p}.{why}"),
                    ": the proxy matches methods, paths and ports",
                );
            }
            if o.methods.is_empty()
                && o.not_methods.is_empty()
                && o.paths.is_empty()
                && o.not_paths.is_empty()
                && o.ports.is_empty()
                && o.not_ports.is_empty()
                && self.errors.last().is_none_or(|e| !e.path.starts_with(&p))
            {
                self.err(
                    doc,
                    &t.referenced,
                    p.clone(),
                    "empty: give methods, notMethods, paths, notPaths, ports or notPorts (or leave this `to` entry out)",
                );
            }
            out.to.push(AuthzOperation {
                methods: self.methods(doc, &o.methods, &p, "methods"),
                not_methods: self.methods(doc, &o.not_methods, &p, "notMethods"),
                paths: self.authz_paths(doc, &o.paths, &p, "paths"),
                not_paths: self.authz_paths(doc, &o.not_paths, &p, "notPaths"),
                ports: self.authz_ports(doc, &o.ports, &p, "ports"),
                not_ports: self.authz_ports(doc, &o.not_ports, &p, "notPorts"),
            });
        }
        for (k, c) in r.when.iter().enumerate() {
            let p = format!("{at}.when[{k}]");
            if let Some(header) = self.condition_key(doc, &c.value.key, &format!("{p}.key")) {
                if c.value.values.is_empty() && c.value.not_values.is_empty() {
                    self.err(
                        doc,
                        &c.referenced,
                        format!("{p}.values"),
                        "missing: give values or notValues",
                    );
                }
                out.when.push(AuthzCondition {
                    header,
                    values: self.patterns(doc, &c.value.values, &p, "values", str::to_string),
                    not_values: self.patterns(
                        doc,
                        &c.value.not_values,
                        &p,
                        "notValues",
                        str::to_string,
                    ),
                });
            }
        }
        out
    }

    /// `request.headers[<name>]` -> the header name, lowercased.
    fn condition_key(&mut self, doc: &Doc, key: &Spanned<String>, path: &str) -> Option<String> {
        let k = key.value.as_str();
        if let Some(name) = k
            .strip_prefix("request.headers[")
            .and_then(|r| r.strip_suffix(']'))
        {
            if super::token(name) {
                return Some(name.to_ascii_lowercase());
            }
            self.err(
                doc,
                &key.referenced,
                path,
                format!("`{name}` is not a header name"),
            );
            return None;
        }
        let base = k.split('[').next().unwrap_or(k);
        let message = if ISTIO_KEYS.contains(&base) || base.starts_with("experimental.") {
            format!("`{k}` is not supported yet: conditions are on `request.headers[<name>]`")
        } else {
            format!("unknown key `{k}`: conditions are on `request.headers[<name>]`")
        };
        self.err(doc, &key.referenced, path, message);
        None
    }

    /// Values the proxy reads as patterns: `exact`, `prefix*`,
    /// `*suffix` or `*`.
    fn patterns(
        &mut self,
        doc: &Doc,
        values: &[Spanned<String>],
        at: &str,
        field: &str,
        fix: impl Fn(&str) -> String,
    ) -> Vec<String> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if !pattern_ok(&v.value) {
                    self.err(
                        doc,
                        &v.referenced,
                        format!("{at}.{field}[{i}]"),
                        format!(
                            "`{}`: a value is exact, `prefix*`, `*suffix` or `*` (one `*`, first or last)",
                            v.value
                        ),
                    );
                }
                fix(&v.value)
            })
            .collect()
    }

    /// HTTP methods: tokens (`GET`, `PURGE`), as patterns; uppercased, as
    /// the proxy matches them.
    fn methods(
        &mut self,
        doc: &Doc,
        values: &[Spanned<String>],
        at: &str,
        field: &str,
    ) -> Vec<String> {
        let errors = self.errors.len();
        let out = self.patterns(doc, values, at, field, |m| m.to_ascii_uppercase());
        if self.errors.len() == errors {
            for (i, v) in values.iter().enumerate() {
                if !super::token(&v.value) {
                    self.err(
                        doc,
                        &v.referenced,
                        format!("{at}.{field}[{i}]"),
                        format!("`{}` is not an HTTP method (GET, POST, ...)", v.value),
                    );
                }
            }
        }
        out
    }

    /// Ports: numbers written as strings, as Istio's API has them.
    fn authz_ports(
        &mut self,
        doc: &Doc,
        values: &[Spanned<String>],
        at: &str,
        field: &str,
    ) -> Vec<u16> {
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            match v.value.parse::<u16>() {
                Ok(p) if p > 0 => out.push(p),
                _ => self.err(
                    doc,
                    &v.referenced,
                    format!("{at}.{field}[{i}]"),
                    format!("`{}` is not a port (1 to 65535)", v.value),
                ),
            }
        }
        out
    }

    /// Paths: patterns that start with `/` (or `*`, for a suffix), and
    /// whose path part is normalised (`/a/../b` would never match).
    fn authz_paths(
        &mut self,
        doc: &Doc,
        values: &[Spanned<String>],
        at: &str,
        field: &str,
    ) -> Vec<String> {
        let errors = self.errors.len();
        let out = self.patterns(doc, values, at, field, str::to_string);
        if self.errors.len() > errors {
            return out;
        }
        for (i, v) in values.iter().enumerate() {
            let path = format!("{at}.{field}[{i}]");
            if !v.value.starts_with('/') && !v.value.starts_with('*') {
                self.err(
                    doc,
                    &v.referenced,
                    path,
                    format!(
                        "`{}`: a path starts with `/` (or `*` for a suffix)",
                        v.value
                    ),
                );
            } else if !ringmesh_authz::path::pattern_is_normal(&v.value) {
                self.err(
                    doc,
                    &v.referenced,
                    path,
                    format!(
                        "`{}` is not a normalised path (requests are matched after `.`, `..`, `//` and escapes are resolved), so it would never match",
                        v.value
                    ),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_as_the_proxy_reads_them() {
        for v in ["a", "a*", "*a", "*"] {
            assert!(pattern_ok(v), "{v}");
        }
        for v in ["", "**", "*a*", "a*b", "a**"] {
            assert!(!pattern_ok(v), "{v}");
        }
    }
}
