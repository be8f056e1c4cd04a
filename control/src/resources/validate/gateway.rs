//! Gateways: their listeners as the Gateway API writes them (port,
//! protocol, hostname, TLS, which routes may attach), and ringmesh's
//! `address` beside `port`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_saphyr::Spanned;

use super::super::model::*;
use super::super::raw::*;
use super::{did_you_mean, Checker, Doc, GATEWAY_API};

impl Checker {
    pub(super) fn gateway(
        &mut self,
        doc: &Doc,
        g: &RawGateway,
        at: &str,
        name: String,
        known: &Resources,
    ) -> Gateway {
        let spec = &g.spec;
        self.unsupported(
            doc,
            &spec.addresses,
            &format!("{at}.spec.addresses"),
            ": a gateway proxy listens on its listeners' `address` or `port`",
        );
        self.unsupported(
            doc,
            &spec.infrastructure,
            &format!("{at}.spec.infrastructure"),
            "",
        );
        if spec.listeners.is_empty() {
            self.err(
                doc,
                &g.kind.referenced,
                format!("{at}.spec.listeners"),
                "a Gateway needs at least one listener",
            );
        }
        let mut listeners = Vec::new();
        let mut names = BTreeMap::new();
        for (i, l) in spec.listeners.iter().enumerate() {
            let path = format!("{at}.spec.listeners[{i}]");
            let n = &l.value.name;
            self.name(doc, n, &format!("{path}.name"));
            self.unique(&mut names, doc, &n.value, n, &format!("{path}.name"));
            let protocol = self.listener_protocol(doc, l, &path);
            let (hostname, tls) = self.listener_tls(doc, l, protocol, &path, known);
            let (allowed_namespace, kinds) = self.allowed_routes(doc, l, protocol, &path);
            if let (Some(address), Some(protocol)) =
                (self.listener_address(doc, l, &path), protocol)
            {
                listeners.push((
                    i,
                    GatewayListener {
                        name: n.value.clone(),
                        address,
                        protocol,
                        allowed_namespace,
                        kinds,
                        hostname,
                        tls,
                    },
                ));
            }
        }
        self.shared_addresses(doc, &spec.listeners, &listeners, at, known);
        let source = Source {
            file: doc.file.clone(),
            line: doc.offset + g.kind.referenced.line(),
        };
        Gateway {
            name,
            listeners: listeners.into_iter().map(|(_, l)| l).collect(),
            source,
        }
    }

    fn listener_protocol(
        &mut self,
        doc: &Doc,
        l: &Spanned<RawGatewayListener>,
        path: &str,
    ) -> Option<ListenerProtocol> {
        let Some(p) = &l.value.protocol else {
            return Some(ListenerProtocol::Http);
        };
        match p.value.as_str() {
            "HTTP" => Some(ListenerProtocol::Http),
            "HTTPS" => Some(ListenerProtocol::Https),
            "TCP" => Some(ListenerProtocol::Tcp),
            other => {
                let known = ["HTTP", "HTTPS", "TCP"];
                let why = match other {
                    "TLS" | "UDP" => "".to_string(),
                    _ => did_you_mean(other, &known),
                };
                self.err(
                    doc,
                    &p.referenced,
                    format!("{path}.protocol"),
                    format!("`{other}` is not supported{why}: use HTTP, HTTPS or TCP"),
                );
                None
            }
        }
    }

    /// `address` (ringmesh's `ip:port`) or `port` (the Gateway API's: every
    /// address); both must agree on the port.
    fn listener_address(
        &mut self,
        doc: &Doc,
        l: &Spanned<RawGatewayListener>,
        path: &str,
    ) -> Option<SocketAddr> {
        let raw = &l.value;
        let port = raw
            .port
            .as_ref()
            .map(|p| (p, self.port_number(doc, p, &format!("{path}.port"))));
        let address = match &raw.address {
            Some(a) => match a.value.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.err(
                        doc,
                        &a.referenced,
                        format!("{path}.address"),
                        format!("`{}` is not ip:port", a.value),
                    );
                    return None;
                }
            },
            None => None,
        };
        match (address, port) {
            (None, None) => {
                self.err(
                    doc,
                    &l.referenced,
                    format!("{path}.port"),
                    "missing: the port to listen on (`port`, on every address, or `address: ip:port`)",
                );
                None
            }
            (None, Some((_, p))) => Some(SocketAddr::from(([0, 0, 0, 0], p?))),
            (Some(a), None) => Some(a),
            (Some(a), Some((p, n))) => {
                if n? != a.port() {
                    self.err(
                        doc,
                        &p.referenced,
                        format!("{path}.port"),
                        format!(
                            "{} is not the port of `address` ({a}): give one, or the same port in both",
                            p.value
                        ),
                    );
                    return None;
                }
                Some(a)
            }
        }
    }

    /// `allowedRoutes`: the namespace routes may come from (None: any) and
    /// the kinds that may attach.
    fn allowed_routes(
        &mut self,
        doc: &Doc,
        l: &Spanned<RawGatewayListener>,
        protocol: Option<ListenerProtocol>,
        path: &str,
    ) -> (Option<String>, Vec<RouteKind>) {
        let carried = protocol.map_or(&[][..], |p| p.kinds());
        let Some(a) = &l.value.allowed_routes else {
            return (Some(doc.ns.clone()), carried.to_vec());
        };
        let path = format!("{path}.allowedRoutes");
        let mut namespace = Some(doc.ns.clone());
        if let Some(ns) = &a.value.namespaces {
            self.unsupported(
                doc,
                &ns.value.selector,
                &format!("{path}.namespaces.selector"),
                ": ringmesh namespaces carry no labels; use `from: Same` or `from: All`",
            );
            match ns.value.from.as_ref().map(|f| (f.value.as_str(), f)) {
                None | Some(("Same", _)) => {}
                Some(("All", _)) => namespace = None,
                Some(("Selector", f)) => self.err(
                    doc,
                    &f.referenced,
                    format!("{path}.namespaces.from"),
                    "`Selector` is not supported yet: ringmesh namespaces carry no labels; use Same or All",
                ),
                Some((other, f)) => {
                    let hint = did_you_mean(other, &["Same", "All"]);
                    self.err(
                        doc,
                        &f.referenced,
                        format!("{path}.namespaces.from"),
                        format!("`{other}`{hint}: use Same or All"),
                    );
                }
            }
        }
        let Some(kinds) = &a.value.kinds else {
            return (namespace, carried.to_vec());
        };
        let mut out = Vec::new();
        for (i, k) in kinds.iter().enumerate() {
            let kpath = format!("{path}.kinds[{i}]");
            if let Some(g) = k.value.group.as_ref().filter(|g| g.value != GATEWAY_API) {
                self.err(
                    doc,
                    &g.referenced,
                    format!("{kpath}.group"),
                    format!("`{}`: routes are of group {GATEWAY_API}", g.value),
                );
                continue;
            }
            let kind = &k.value.kind;
            let names: Vec<&str> = carried.iter().map(|k| k.as_str()).collect();
            match carried.iter().find(|c| c.as_str() == kind.value) {
                Some(c) => out.push(*c),
                None => {
                    let any = ["HTTPRoute", "GRPCRoute", "TCPRoute"];
                    let hint = if any.contains(&kind.value.as_str()) {
                        String::new()
                    } else {
                        did_you_mean(&kind.value, &names)
                    };
                    self.err(
                        doc,
                        &kind.referenced,
                        format!("{kpath}.kind"),
                        format!(
                            "`{}`{hint}: this listener's protocol carries {}",
                            kind.value,
                            names.join(", ")
                        ),
                    );
                }
            }
        }
        (namespace, out)
    }
}
