//! Services: their static endpoints and, as a Kubernetes Service writes
//! them, their ports (one proxy cluster each) and what each speaks.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_saphyr::Spanned;

use super::super::model::*;
use super::super::raw::*;
use super::{did_you_mean, Checker, Doc};

/// `appProtocol` values read, as Kubernetes and the Gateway API (GEP-1911)
/// write them.
const APP_PROTOCOLS: [(&str, AppProtocol); 6] = [
    ("http", AppProtocol::Http),
    ("http2", AppProtocol::Http2),
    ("grpc", AppProtocol::Http2),
    ("tcp", AppProtocol::Tcp),
    ("kubernetes.io/h2c", AppProtocol::Http2),
    ("kubernetes.io/ws", AppProtocol::Http),
];

/// The longest name the proxy accepts for a cluster.
const PROXY_NAME_MAX: usize = 128;

impl Checker {
    pub(super) fn service(&mut self, doc: &Doc, s: &RawService, at: &str, name: String) -> Service {
        if let Some(t) = s
            .spec
            .service_type
            .as_ref()
            .filter(|t| t.value != "ClusterIP")
        {
            self.err(
                doc,
                &t.referenced,
                format!("{at}.spec.type"),
                format!(
                    "`{}` is not supported: a ringmesh Service is reached through its callers' sidecars or a Gateway (type ClusterIP)",
                    t.value
                ),
            );
        }
        let mut ports = Vec::new();
        let (mut numbers, mut names) = (BTreeMap::new(), BTreeMap::new());
        for (i, p) in s.spec.ports.iter().enumerate() {
            let path = format!("{at}.spec.ports[{i}]");
            if let Some(port) = self.service_port(doc, p, &path) {
                let number = Spanned::new(
                    port.port.to_string(),
                    p.value.port.referenced,
                    p.value.port.defined,
                );
                let fresh = self.unique(
                    &mut numbers,
                    doc,
                    &number.value,
                    &number,
                    &format!("{path}.port"),
                );
                if let Some(n) = &p.value.name {
                    self.unique(&mut names, doc, &n.value, n, &format!("{path}.name"));
                }
                let cluster = cluster_name(&name, port.port);
                if cluster.len() > PROXY_NAME_MAX {
                    self.err(
                        doc,
                        &s.metadata.name.referenced,
                        format!("{at}.metadata.name"),
                        format!("its cluster name `{cluster}` is longer than the {PROXY_NAME_MAX} characters a proxy accepts: shorten the name or namespace"),
                    );
                }
                if fresh {
                    ports.push(port);
                }
            }
        }
        let mut endpoints = Vec::new();
        for (i, e) in s.spec.endpoints.iter().enumerate() {
            if self.endpoint(doc, e, &format!("{at}.spec.endpoints[{i}]"), &ports) {
                endpoints.push(e.value.clone());
            }
        }
        Service {
            name,
            endpoints,
            ports,
            source: Source {
                file: doc.file.clone(),
                line: doc.offset + s.kind.referenced.line(),
            },
        }
    }

    fn service_port(
        &mut self,
        doc: &Doc,
        p: &Spanned<RawServicePort>,
        path: &str,
    ) -> Option<ServicePort> {
        let raw = &p.value;
        if let Some(n) = &raw.name {
            self.name(doc, n, &format!("{path}.name"));
        }
        let port = self.port_number(doc, &raw.port, &format!("{path}.port"));
        let target_port = match &raw.target_port {
            None => port,
            Some(t) => match &t.value {
                RawIntOrString::Int(n) => {
                    let n = Spanned::new(*n, t.referenced, t.defined);
                    self.port_number(doc, &n, &format!("{path}.targetPort"))
                }
                RawIntOrString::String(s) => {
                    self.err(
                        doc,
                        &t.referenced,
                        format!("{path}.targetPort"),
                        format!(
                            "`{s}`: named target ports are not supported yet: write the number"
                        ),
                    );
                    None
                }
            },
        };
        if let Some(proto) = raw.protocol.as_ref().filter(|p| p.value != "TCP") {
            self.err(
                doc,
                &proto.referenced,
                format!("{path}.protocol"),
                format!(
                    "`{}` is not supported: the proxy carries TCP only",
                    proto.value
                ),
            );
        }
        let app_protocol = match &raw.app_protocol {
            None => AppProtocol::Unspecified,
            Some(a) => match APP_PROTOCOLS.iter().find(|(n, _)| *n == a.value) {
                Some((_, proto)) => *proto,
                None => {
                    let known: Vec<&str> = APP_PROTOCOLS.iter().map(|(n, _)| *n).collect();
                    let hint = did_you_mean(&a.value.to_ascii_lowercase(), &known);
                    self.err(
                        doc,
                        &a.referenced,
                        format!("{path}.appProtocol"),
                        format!(
                            "`{}` is not supported{hint}: use one of {}",
                            a.value,
                            known.join(", ")
                        ),
                    );
                    AppProtocol::Unspecified
                }
            },
        };
        Some(ServicePort {
            name: raw.name.as_ref().map(|n| n.value.clone()),
            port: port?,
            target_port: target_port?,
            app_protocol,
        })
    }

    /// A port number, 1 to 65535.
    pub(super) fn port_number(&mut self, doc: &Doc, n: &Spanned<u64>, path: &str) -> Option<u16> {
        match u16::try_from(n.value) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                self.err(
                    doc,
                    &n.referenced,
                    path,
                    format!("{} is not a port: write 1 to 65535", n.value),
                );
                None
            }
        }
    }

    /// `ip:port` or `dns-name:port`; with `ports`, also a bare host (it
    /// serves each port's target port), and a port must be one of theirs.
    fn endpoint(
        &mut self,
        doc: &Doc,
        e: &Spanned<String>,
        path: &str,
        ports: &[ServicePort],
    ) -> bool {
        let v = e.value.as_str();
        let host_ok = |host: &str| {
            !host.is_empty()
                && host.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        };
        let port = match v.parse::<SocketAddr>() {
            Ok(a) => Some(Some(a.port())),
            Err(_) if v.parse::<std::net::IpAddr>().is_ok() => Some(None),
            Err(_) => match v.rsplit_once(':') {
                Some((host, port)) => port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0 && host_ok(host))
                    .map(Some),
                None if host_ok(v) => Some(None),
                None => None,
            },
        };
        let problem = match port {
            None => Some(format!("`{v}` is not an endpoint: write ip:port or host:port")),
            Some(None) if ports.is_empty() => Some(format!(
                "`{v}` has no port: write ip:port or host:port (a bare host is for a Service with `ports`, and serves each one's targetPort)"
            )),
            Some(Some(p)) if !ports.is_empty() && ports.iter().all(|sp| sp.target_port != p) => {
                let targets: Vec<String> =
                    ports.iter().map(|sp| sp.target_port.to_string()).collect();
                Some(format!(
                    "port {p} is the targetPort of none of this Service's ports ({}): no cluster would send to it",
                    targets.join(", ")
                ))
            }
            Some(_) => None,
        };
        if let Some(p) = &problem {
            self.err(doc, &e.referenced, path, p.clone());
        }
        problem.is_none()
    }
}
