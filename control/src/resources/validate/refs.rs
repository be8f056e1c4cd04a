//! What every route kind shares: `parentRefs` (where it attaches) and
//! `backendRefs` (the Services it sends to), as the Gateway API writes
//! them, resolved to qualified names, ports and proxy clusters.

use serde_saphyr::{Location, Spanned};

use super::super::model::*;
use super::super::raw::*;
use super::{did_you_mean, Checker, Doc, GATEWAY_API};

/// The groups a core object (a Service) may be written with.
const CORE: [&str; 2] = ["", "core"];

impl Checker {
    /// A route's `parentRefs`: those that resolve, in order.
    pub(super) fn parent_refs(
        &mut self,
        doc: &Doc,
        refs: &[Spanned<RawParentRef>],
        at: &str,
        kind: RouteKind,
        known: &Resources,
    ) -> Vec<Parent> {
        refs.iter()
            .enumerate()
            .filter_map(|(i, p)| {
                self.parent_ref(doc, p, &format!("{at}.spec.parentRefs[{i}]"), kind, known)
            })
            .collect()
    }

    fn parent_ref(
        &mut self,
        doc: &Doc,
        p: &Spanned<RawParentRef>,
        path: &str,
        route: RouteKind,
        known: &Resources,
    ) -> Option<Parent> {
        let raw = &p.value;
        // The Gateway API's default is a Gateway; ringmesh's short form
        // (no apiVersion) kept its own, a Service.
        let group = raw.group.as_ref().map(|g| g.value.as_str());
        let kind = match (raw.kind.as_ref().map(|k| k.value.as_str()), group) {
            (Some(k), _) => k,
            (None, Some(g)) if CORE.contains(&g) => "Service",
            (None, Some(_)) => "Gateway",
            (None, None) if doc.gateway_api => "Gateway",
            (None, None) => "Service",
        };
        let at_kind = raw.kind.as_ref().map_or(p.referenced, |k| k.referenced);
        let want_group: &[&str] = match kind {
            "Service" => &CORE,
            "Gateway" => &[GATEWAY_API],
            other => {
                let hint = did_you_mean(other, &["Service", "Gateway"]);
                self.err(
                    doc,
                    &at_kind,
                    format!("{path}.kind"),
                    format!("a parent is a Service or a Gateway, not `{other}`{hint}"),
                );
                return None;
            }
        };
        if let Some(g) = raw
            .group
            .as_ref()
            .filter(|g| !want_group.contains(&g.value.as_str()))
        {
            self.err(
                doc,
                &g.referenced,
                format!("{path}.group"),
                format!(
                    "`{}` is not the group of a {kind}: write {}",
                    g.value,
                    if kind == "Service" {
                        "\"\" (or core)".to_string()
                    } else {
                        format!("`{GATEWAY_API}`")
                    }
                ),
            );
            return None;
        }
        if let Some(ns) = &raw.namespace {
            self.name(doc, ns, &format!("{path}.namespace"));
        }
        let port = match &raw.port {
            Some(n) => Some((n, self.port_number(doc, n, &format!("{path}.port"))?)),
            None => None,
        };
        let name_path = format!("{path}.name");
        if kind == "Service" {
            if route != RouteKind::Http && route != RouteKind::Grpc {
                self.err(
                    doc,
                    &at_kind,
                    format!("{path}.kind"),
                    format!(
                        "a {} attaches to a Gateway listener: sidecars carry HTTP and gRPC only",
                        route.as_str()
                    ),
                );
                return None;
            }
            let name = self.reference_in(
                doc,
                &raw.name,
                raw.namespace.as_ref(),
                &name_path,
                "Service",
                known.services.keys(),
            )?;
            let service = known.services.get(&name)?;
            let port = self.service_parent_port(doc, service, raw, port, path)?;
            return Some(Parent::Service { name, port });
        }
        let ns = raw
            .namespace
            .as_ref()
            .map_or(doc.ns.as_str(), |n| n.value.as_str());
        let wanted = qualified(&raw.name.value, ns);
        if raw.kind.is_none()
            && raw.group.is_none()
            && !known.gateways.contains_key(&wanted)
            && known.services.contains_key(&wanted)
        {
            self.err(
                doc,
                &raw.name.referenced,
                &name_path,
                format!(
                    "no Gateway named `{}`: a parent is a Gateway unless it says otherwise (the Gateway API's default, read in a document with apiVersion); for the mesh, write `kind: Service`",
                    raw.name.value
                ),
            );
            return None;
        }
        let name = self.reference_in(
            doc,
            &raw.name,
            raw.namespace.as_ref(),
            &name_path,
            "Gateway",
            known.gateways.keys(),
        )?;
        let gw = known.gateways.get(&name)?;
        let section = raw.section_name.as_ref().map(|s| s.value.clone());
        let parent = Parent::Gateway {
            name: name.clone(),
            section,
            port: port.map(|(_, p)| p),
        };
        let chosen: Vec<&GatewayListener> = gw
            .listeners
            .iter()
            .filter(|l| parent.is_listener(&name, l))
            .collect();
        if chosen.is_empty() {
            let (at, field, what) = match (&raw.section_name, port) {
                (Some(s), _) => (s.referenced, "sectionName", format!("named `{}`", s.value)),
                (None, Some((n, p))) => (n.referenced, "port", format!("on port {p}")),
                (None, None) => (p.referenced, "name", "at all".to_string()),
            };
            let names: Vec<String> = gw
                .listeners
                .iter()
                .map(|l| format!("{} ({})", l.name, l.address.port()))
                .collect();
            self.err(
                doc,
                &at,
                format!("{path}.{field}"),
                format!(
                    "Gateway `{}` has no listener {what}; its listeners: {}",
                    raw.name.value,
                    names.join(", ")
                ),
            );
            return None;
        }
        if !chosen.iter().any(|l| l.accepts(route, &doc.ns)) {
            let why = if chosen.iter().any(|l| l.kinds.contains(&route)) {
                format!(
                    "its listeners here allow routes from their Gateway's namespace only (`allowedRoutes.namespaces.from: Same`, the default), not from `{}`",
                    doc.ns
                )
            } else {
                let kinds: Vec<&str> = chosen
                    .iter()
                    .flat_map(|l| l.kinds.iter().map(|k| k.as_str()))
                    .collect();
                format!(
                    "its listeners here take {} (by protocol or `allowedRoutes.kinds`), not {}s",
                    if kinds.is_empty() {
                        "no route".to_string()
                    } else {
                        kinds.join(", ")
                    },
                    route.as_str()
                )
            };
            self.err(
                doc,
                &raw.name.referenced,
                &name_path,
                format!(
                    "Gateway `{}` does not take this route: {why}",
                    raw.name.value
                ),
            );
            return None;
        }
        Some(parent)
    }

    /// A Service parent's `port` / `sectionName`: one of its ports.
    fn service_parent_port(
        &mut self,
        doc: &Doc,
        service: &Service,
        raw: &RawParentRef,
        port: Option<(&Spanned<u64>, u16)>,
        path: &str,
    ) -> Option<Option<u16>> {
        let by_name = match &raw.section_name {
            None => None,
            Some(s) => match service
                .ports
                .iter()
                .find(|p| p.name.as_ref() == Some(&s.value))
            {
                Some(p) => Some(p.port),
                None => {
                    self.err(
                        doc,
                        &s.referenced,
                        format!("{path}.sectionName"),
                        format!(
                            "Service `{}` has no port named `{}`{}",
                            raw.name.value,
                            s.value,
                            port_list(service)
                        ),
                    );
                    return None;
                }
            },
        };
        if let Some((n, p)) = port {
            if service.port(p).is_none() {
                self.err(
                    doc,
                    &n.referenced,
                    format!("{path}.port"),
                    format!(
                        "Service `{}` has no port {p}{}",
                        raw.name.value,
                        port_list(service)
                    ),
                );
                return None;
            }
            if by_name.is_some_and(|b| b != p) {
                self.err(
                    doc,
                    &n.referenced,
                    format!("{path}.port"),
                    "`port` and `sectionName` name different ports",
                );
                return None;
            }
        }
        Some(by_name.or(port.map(|(_, p)| p)))
    }

    /// A rule's `backendRefs`: at least one, weights that send somewhere.
    pub(super) fn backend_refs(
        &mut self,
        doc: &Doc,
        refs: &[Spanned<RawBackendRef>],
        at_rule: &Location,
        path: &str,
        route: RouteKind,
        known: &Resources,
    ) -> Vec<Backend> {
        if refs.is_empty() {
            self.err(
                doc,
                at_rule,
                format!("{path}.backendRefs"),
                "a rule needs at least one backend",
            );
        }
        let backends = refs
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                self.backend_ref(doc, b, &format!("{path}.backendRefs[{i}]"), route, known)
            })
            .collect();
        if !refs.is_empty()
            && refs
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
        backends
    }

    pub(super) fn backend_ref(
        &mut self,
        doc: &Doc,
        b: &Spanned<RawBackendRef>,
        path: &str,
        route: RouteKind,
        known: &Resources,
    ) -> Option<Backend> {
        let raw = &b.value;
        self.unsupported(doc, &raw.filters, &format!("{path}.filters"), "");
        let weight = raw.weight.as_ref().map_or(1, |w| w.value);
        if weight > 1_000_000 {
            let at = raw.weight.as_ref().map_or(&b.referenced, |w| &w.referenced);
            self.err(doc, at, format!("{path}.weight"), "must be at most 1000000");
        }
        if let Some(g) = raw
            .group
            .as_ref()
            .filter(|g| !CORE.contains(&g.value.as_str()))
        {
            self.err(
                doc,
                &g.referenced,
                format!("{path}.group"),
                format!("`{}`: a backend is a Service (group \"\")", g.value),
            );
            return None;
        }
        if let Some(k) = raw.kind.as_ref().filter(|k| k.value != "Service") {
            let hint = did_you_mean(&k.value, &["Service"]);
            self.err(
                doc,
                &k.referenced,
                format!("{path}.kind"),
                format!("`{}`{hint}: a backend is a Service", k.value),
            );
            return None;
        }
        if let Some(ns) = &raw.namespace {
            self.name(doc, ns, &format!("{path}.namespace"));
        }
        let port = match &raw.port {
            Some(n) => Some((n, self.port_number(doc, n, &format!("{path}.port"))?)),
            None => None,
        };
        let name = self.reference_in(
            doc,
            &raw.name,
            raw.namespace.as_ref(),
            &format!("{path}.name"),
            "Service",
            known.services.keys(),
        )?;
        let service = known.services.get(&name)?;
        let port = self.backend_port(doc, service, b, port, path, route)?;
        Some(Backend {
            cluster: service.cluster(port),
            service: name,
            port,
            weight,
        })
    }

    /// A backend's port: none for a Service without ports; one of its
    /// ports otherwise (the only one when none is named), carrying what
    /// the route speaks.
    fn backend_port(
        &mut self,
        doc: &Doc,
        service: &Service,
        b: &Spanned<RawBackendRef>,
        port: Option<(&Spanned<u64>, u16)>,
        path: &str,
        route: RouteKind,
    ) -> Option<Option<u16>> {
        let name = &b.value.name.value;
        let chosen = match (port, service.ports.as_slice()) {
            (None, []) => return Some(None),
            (Some((n, _)), []) => {
                self.err(
                    doc,
                    &n.referenced,
                    format!("{path}.port"),
                    format!("Service `{name}` declares no ports: leave `port` out, or give the Service `spec.ports`"),
                );
                return None;
            }
            (None, [only]) => only,
            (None, _) => {
                self.err(
                    doc,
                    &b.referenced,
                    format!("{path}.port"),
                    format!(
                        "missing: Service `{name}` has several ports{}",
                        port_list(service)
                    ),
                );
                return None;
            }
            (Some((n, p)), _) => match service.port(p) {
                Some(sp) => sp,
                None => {
                    self.err(
                        doc,
                        &n.referenced,
                        format!("{path}.port"),
                        format!("Service `{name}` has no port {p}{}", port_list(service)),
                    );
                    return None;
                }
            },
        };
        let at = port.map_or(b.referenced, |(n, _)| n.referenced);
        let problem = match (route, chosen.app_protocol) {
            (RouteKind::Http | RouteKind::Grpc, AppProtocol::Tcp) => Some(format!(
                "port {} of Service `{name}` is TCP (appProtocol: tcp): only a TCPRoute sends to it",
                chosen.port
            )),
            (RouteKind::Grpc, AppProtocol::Http) => Some(format!(
                "port {} of Service `{name}` speaks HTTP/1.1 (its appProtocol): gRPC needs HTTP/2, write appProtocol: grpc (or http2, kubernetes.io/h2c)",
                chosen.port
            )),
            _ => None,
        };
        if let Some(p) = problem {
            self.err(doc, &at, format!("{path}.port"), p);
            return None;
        }
        Some(Some(chosen.port))
    }
}

/// `: 80 (http), 9090` for messages.
fn port_list(s: &Service) -> String {
    if s.ports.is_empty() {
        return ": it declares none".into();
    }
    let ports: Vec<String> = s
        .ports
        .iter()
        .map(|p| match &p.name {
            Some(n) => format!("{} ({n})", p.port),
            None => p.port.to_string(),
        })
        .collect();
    format!("; its ports: {}", ports.join(", "))
}
