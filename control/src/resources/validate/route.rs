//! HTTPRoutes: rules of matches, backends and policies.

use serde_saphyr::{Location, Spanned};

use super::super::model::*;
use super::super::raw::*;
use super::{did_you_mean, Checker, Doc};

/// The parts of a route document every route kind has.
pub(super) struct RouteShape<'a> {
    pub kind: RouteKind,
    /// Where its `kind` is written: errors about the whole route point here.
    pub written_at: &'a Location,
    pub parent_refs: &'a [Spanned<RawParentRef>],
    pub hostnames: &'a [Spanned<String>],
}

impl Checker {
    pub(super) fn route(
        &mut self,
        doc: &Doc,
        r: &RawHttpRoute,
        at: &str,
        name: String,
        known: &Resources,
    ) -> HttpRoute {
        let spec = &r.spec;
        let shape = RouteShape {
            kind: RouteKind::Http,
            written_at: &r.kind.referenced,
            parent_refs: &spec.parent_refs,
            hostnames: &spec.hostnames,
        };
        self.route_of(doc, &shape, &spec.rules, at, name, known, Self::rule)
    }

    /// What every route kind checks alike (parents, hostnames, at least one
    /// rule), with `rule` checking each of its own rules.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn route_of<R>(
        &mut self,
        doc: &Doc,
        shape: &RouteShape<'_>,
        rules: &[Spanned<R>],
        at: &str,
        name: String,
        known: &Resources,
        rule: fn(&mut Self, &Doc, &R, &Location, &str, &Resources) -> Rule,
    ) -> HttpRoute {
        if shape.parent_refs.is_empty() {
            self.err(
                doc,
                shape.written_at,
                format!("{at}.spec.parentRefs"),
                "name at least one parent: a Service (mesh) or a Gateway (edge)",
            );
        }
        let parents = self.parent_refs(doc, shape.parent_refs, at, shape.kind, known);
        if parents.len() == shape.parent_refs.len() {
            self.route_hostnames(doc, shape.hostnames, &parents, at, known);
        }
        if rules.is_empty() {
            self.err(
                doc,
                shape.written_at,
                format!("{at}.spec.rules"),
                "a route needs at least one rule",
            );
        }
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let path = format!("{at}.spec.rules[{i}]");
                rule(self, doc, &r.value, &r.referenced, &path, known)
            })
            .collect();
        HttpRoute {
            name,
            parents,
            hostnames: shape.hostnames.iter().map(|h| h.value.clone()).collect(),
            rules,
            source: Source {
                file: doc.file.clone(),
                line: doc.offset + shape.written_at.line(),
            },
        }
    }

    /// `hostnames`: for Gateway parents only, and met by some listener.
    pub(super) fn route_hostnames(
        &mut self,
        doc: &Doc,
        hostnames: &[Spanned<String>],
        parents: &[Parent],
        at: &str,
        known: &Resources,
    ) {
        let Some(first) = hostnames.first() else {
            return;
        };
        if !parents.iter().any(|p| matches!(p, Parent::Gateway { .. })) {
            self.err(
                doc,
                &first.referenced,
                format!("{at}.spec.hostnames"),
                "hostnames apply to Gateway parents; a mesh route applies to its Service's name",
            );
            return;
        }
        let hostnames: Vec<String> = hostnames.iter().map(|h| h.value.clone()).collect();
        for p in parents {
            let Parent::Gateway { name: g, .. } = p else {
                continue;
            };
            let Some(gw) = known.gateways.get(g) else {
                continue;
            };
            let listeners: Vec<&GatewayListener> = gw
                .listeners
                .iter()
                .filter(|l| p.is_listener(g, l))
                .collect();
            if !listeners.is_empty() && listeners.iter().all(|l| l.hosts_for(&hostnames).is_empty())
            {
                let served: Vec<&str> = listeners
                    .iter()
                    .filter_map(|l| l.hostname.as_deref())
                    .collect();
                self.err(
                    doc,
                    &first.referenced,
                    format!("{at}.spec.hostnames"),
                    format!(
                        "no listener of Gateway `{g}` serves these hostnames (its listeners serve {}): the route would never match",
                        served.join(", ")
                    ),
                );
            }
        }
    }

    pub(super) fn rule(
        &mut self,
        doc: &Doc,
        rule: &RawRule,
        at_rule: &Location,
        path: &str,
        known: &Resources,
    ) -> Rule {
        self.unsupported(
            doc,
            &rule.session_persistence,
            &format!("{path}.sessionPersistence"),
            "",
        );
        let mut matches = Vec::new();
        for (i, m) in rule.matches.iter().enumerate() {
            matches.push(self.route_match(doc, &m.value, &format!("{path}.matches[{i}]")));
        }
        let filters = self.filters(doc, &rule.filters, path, known, &matches);
        let backends = match (filters.redirects, rule.backend_refs.first()) {
            // Answered by the proxy: nothing is forwarded.
            (true, None) => Vec::new(),
            (true, Some(first)) => {
                self.err(
                    doc,
                    &first.referenced,
                    format!("{path}.backendRefs"),
                    "a rule with a RequestRedirect filter answers every request itself: its backendRefs would never get one; remove them",
                );
                Vec::new()
            }
            (false, _) => self.backend_refs(
                doc,
                &rule.backend_refs,
                at_rule,
                path,
                RouteKind::Http,
                known,
            ),
        };
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
            mirror: filters.mirror,
            request_headers: filters.request_headers,
            response_headers: filters.response_headers,
            redirect: filters.redirect,
            rewrite: filters.rewrite,
        }
    }

    pub(super) fn route_match(&mut self, doc: &Doc, m: &RawRouteMatch, path: &str) -> Match {
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
                    "RegularExpression" => {
                        let at = p
                            .value
                            .kind
                            .as_ref()
                            .map_or(&p.referenced, |k| &k.referenced);
                        self.err(
                            doc,
                            at,
                            format!("{path}.path.type"),
                            "`RegularExpression` is not supported yet: use PathPrefix or Exact",
                        );
                        PathMatch::Prefix(value)
                    }
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
        let headers = self.header_matches(doc, &m.headers, path);
        self.unsupported(
            doc,
            &m.query_params,
            &format!("{path}.queryParams"),
            ": match on path, method and headers",
        );
        Match {
            path: p,
            method,
            headers,
            grpc: None,
        }
    }

    /// `headers`: exact matches, names lowercased.
    pub(super) fn header_matches(
        &mut self,
        doc: &Doc,
        headers: &[Spanned<RawHeaderMatch>],
        path: &str,
    ) -> Vec<(String, String)> {
        headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let name = &h.value.name;
                if !super::token(&name.value) {
                    self.err(
                        doc,
                        &name.referenced,
                        format!("{path}.headers[{i}].name"),
                        format!("`{}` is not a header name", name.value),
                    );
                }
                match h.value.kind.as_ref().map(|k| (k.value.as_str(), k)) {
                    None | Some(("Exact", _)) => {}
                    Some(("RegularExpression", k)) => self.err(
                        doc,
                        &k.referenced,
                        format!("{path}.headers[{i}].type"),
                        "`RegularExpression` is not supported yet: use Exact",
                    ),
                    Some((other, k)) => {
                        let hint = did_you_mean(other, &["Exact", "RegularExpression"]);
                        self.err(
                            doc,
                            &k.referenced,
                            format!("{path}.headers[{i}].type"),
                            format!("unknown header match type `{other}`{hint}: use Exact"),
                        );
                    }
                }
                (name.value.to_ascii_lowercase(), h.value.value.value.clone())
            })
            .collect()
    }
}
