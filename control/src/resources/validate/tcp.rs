//! TCPRoutes: a Gateway TCP listener's connections, relayed to one
//! Service port. The proxy relays a listener to one cluster, so a TCP
//! listener takes exactly one TCPRoute, with one backend.

use std::collections::BTreeMap;

use super::super::model::*;
use super::super::raw::*;
use super::{Checker, Doc, RawSet};

impl Checker {
    pub(super) fn tcp_route(
        &mut self,
        doc: &Doc,
        r: &RawTcpRoute,
        at: &str,
        name: String,
        known: &Resources,
    ) -> Option<TcpRoute> {
        let spec = &r.spec;
        if spec.parent_refs.is_empty() {
            self.err(
                doc,
                &r.kind.referenced,
                format!("{at}.spec.parentRefs"),
                "name at least one parent: a Gateway's TCP listener",
            );
        }
        let parents = self.parent_refs(doc, &spec.parent_refs, at, RouteKind::Tcp, known);
        let rule = match spec.rules.as_slice() {
            [] => {
                self.err(
                    doc,
                    &r.kind.referenced,
                    format!("{at}.spec.rules"),
                    "a route needs a rule with a backend",
                );
                return None;
            }
            [one] => one,
            [_, second, ..] => {
                self.err(
                    doc,
                    &second.referenced,
                    format!("{at}.spec.rules[1]"),
                    "more than one rule is not supported yet: a TCP connection has nothing to match a rule on",
                );
                return None;
            }
        };
        let path = format!("{at}.spec.rules[0]");
        let refs = &rule.value.backend_refs;
        if let Some(second) = refs.get(1) {
            self.err(
                doc,
                &second.referenced,
                format!("{path}.backendRefs[1]"),
                "more than one backend is not supported yet: the proxy relays a TCP listener to one Service port",
            );
            return None;
        }
        let backend = self
            .backend_refs(doc, refs, &rule.referenced, &path, RouteKind::Tcp, known)
            .pop()?;
        Some(TcpRoute {
            name,
            parents,
            backend,
            source: Source {
                file: doc.file.clone(),
                line: doc.offset + r.kind.referenced.line(),
            },
        })
    }

    /// Every Gateway TCP listener has one TCPRoute: the proxy binds its
    /// listeners at start and relays a TCP one to a cluster, so one without
    /// a route could be neither programmed now nor later without a restart.
    /// `quiet`: a TCPRoute failed its own checks; say nothing of listeners
    /// it may have meant.
    pub(super) fn tcp_listeners(&mut self, set: &RawSet, known: &Resources, quiet: bool) {
        for (doc, g) in &set.gateways {
            let q = qualified(&g.metadata.name.value, &doc.ns);
            let Some(gw) = known.gateways.get(&q) else {
                continue;
            };
            let mut seen = BTreeMap::new();
            for (i, raw) in g.spec.listeners.iter().enumerate() {
                let Some(l) = gw.listeners.iter().find(|l| {
                    l.name == raw.value.name.value && l.protocol == ListenerProtocol::Tcp
                }) else {
                    continue;
                };
                if seen.insert(l.name.clone(), ()).is_some() {
                    continue;
                }
                let routes: Vec<&str> = known
                    .tcp_routes
                    .values()
                    .filter(|r| {
                        l.accepts(RouteKind::Tcp, namespace_of(&r.name))
                            && r.parents.iter().any(|p| p.is_listener(&gw.name, l))
                    })
                    .map(|r| r.name.as_str())
                    .collect();
                let at = raw
                    .value
                    .protocol
                    .as_ref()
                    .map_or(raw.referenced, |p| p.referenced);
                let path = format!("{}.spec.listeners[{i}]", resource_path("Gateway", &q));
                match routes.as_slice() {
                    [] if quiet => {}
                    [] => self.err(
                        doc,
                        &at,
                        path,
                        "no TCPRoute attaches to this TCP listener: it would have nowhere to relay connections (a TCP listener is programmed with its route, and the proxy binds listeners at start)",
                    ),
                    [_] => {}
                    many => self.err(
                        doc,
                        &at,
                        path,
                        format!(
                            "{} TCPRoutes attach to this TCP listener ({}): the proxy relays a listener to one backend; use one route, or a listener each",
                            many.len(),
                            many.join(", ")
                        ),
                    ),
                }
            }
        }
    }
}

/// `Kind/name` or `Kind/namespace/name` from a qualified name.
pub(super) fn resource_path(kind: &str, qualified: &str) -> String {
    match qualified.split_once('.') {
        Some((name, ns)) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{qualified}"),
    }
}
