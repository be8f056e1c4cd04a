//! Resources + a proxy's identity -> that proxy's `ProxyConfig`.
//!
//! A sidecar (node.service = the Service its workload is) gets:
//! - listener `inbound` on its `inbound_address`: everything to its local
//!   workload (cluster `_inbound`);
//! - listener `outbound` on its `outbound_address`: for each Service, the
//!   rules of the HTTPRoutes whose parent it is (matched on Host = the
//!   Service's name, then path, method, headers), then a catch-all to the
//!   Service itself;
//! - one cluster per Service: its static endpoints plus the inbound
//!   addresses of every proxy registered as its workload.
//!
//! A gateway (node.service = a Gateway's name) gets that Gateway's
//! listeners, each with the rules of the HTTPRoutes attached to it (Host
//! from `hostnames`, intersected with the listener's `hostname`), and the
//! same clusters. Listeners that share an address (one port, several
//! hostnames, as the Gateway API serves SNI) become one proxy listener,
//! named after the first of them; an HTTPS one carries their certificates,
//! each answering for its listener's hostname.
//!
//! The inbound listener carries the AuthorizationPolicies that protect
//! the sidecar's Service (Istio's semantics, judged by the proxy before
//! routing): the proxy is where the request is, so the decision is made
//! there, with no call back to the control plane.
//!
//! Proxies speak mTLS to each other where both ends are in the mesh
//! (`mesh.rs`): every proxy gets `ProxyConfig.mesh` (the roots its peers
//! chain to), every sidecar's inbound listener accepts mTLS (and, unless
//! STRICT, plaintext), and a Service cluster whose endpoints are all
//! registered sidecars is meshed (mTLS, HTTP/2, the Service's SPIFFE ID).
//!
//! A Telemetry (Istio's) that applies to the proxy's Service or Gateway
//! gives every listener of it `access_log`, and the proxy `tracing` with
//! the Service's (or Gateway's) qualified name as `service_name`.
//!
//! Certificates and keys go inline (`inline_pem`): they reach the proxy
//! over the authenticated discovery stream, and no file has to exist on
//! the proxy's machine. A Service that a BackendTLSPolicy targets gets a
//! cluster that originates TLS, with the policy's CAs and hostname.
//!
//! Compiling is deterministic: the same inputs give the same config, so a
//! config's hash is its version.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use ringmesh_proto::v1 as pb;

pub mod check;
mod mesh;
mod traffic;

pub use mesh::{identity_of, MeshContext, DEFAULT_TRUST_DOMAIN};

use crate::resources::model::{
    namespace_of, AppProtocol, BackendCa, BackendTls, Gateway, GatewayListener, HeaderEdits,
    HttpRoute, ListenerProtocol, PathMatch, PathModifier, Resources, RouteKind, Rule, Service,
    ServicePort, TelemetryTarget, TlsSecret,
};

/// Name of the sidecar's cluster for its own workload. Service names
/// cannot contain '_', so it never collides with one.
pub const INBOUND_CLUSTER: &str = "_inbound";

/// Service name -> inbound addresses of the proxies registered as its
/// workloads.
pub type Workloads = BTreeMap<String, BTreeSet<String>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("sidecar `{node}` says it fronts Service `{service}`, which does not exist")]
    UnknownService { node: String, service: String },
    #[error("gateway `{node}` says it is Gateway `{gateway}`, which does not exist")]
    UnknownGateway { node: String, gateway: String },
    #[error("node `{0}` has no role: say sidecar or gateway")]
    NoRole(String),
    #[error("sidecar `{0}` has an inbound address but no workload address: inbound traffic would have nowhere to go")]
    InboundWithoutWorkload(String),
    #[error("Service `{service}` has no SPIFFE ID in trust domain `{trust_domain}`: {error}")]
    Identity {
        service: String,
        trust_domain: String,
        error: ringmesh_pki::spiffe::SpiffeIdError,
    },
}

/// [`compile_with`] in the default trust domain, with no trust bundle:
/// for checking configs offline (the server compiles with its CA's).
pub fn compile(
    res: &Resources,
    node: &pb::Node,
    workloads: &Workloads,
) -> Result<pb::ProxyConfig, CompileError> {
    compile_with(res, node, workloads, &MeshContext::default())
}

/// The config of proxy `node`, given the resources in force, the sidecars
/// registered now, and the mesh's trust domain and roots.
pub fn compile_with(
    res: &Resources,
    node: &pb::Node,
    workloads: &Workloads,
    mesh: &MeshContext,
) -> Result<pb::ProxyConfig, CompileError> {
    let clusters = clusters(res, workloads, mesh)?;
    let listeners = match node.role() {
        pb::Role::Sidecar => sidecar(res, node)?,
        pb::Role::Gateway => gateway(res, node)?,
        pb::Role::Unspecified => return Err(CompileError::NoRole(node.id.clone())),
    };
    let mut listeners = listeners;
    // A Telemetry's access log goes on every listener of the workload (a
    // sidecar's inbound and outbound; a gateway's), its tracing on the
    // proxy, with the workload's name as the spans' service.
    let workload = match node.role() {
        pb::Role::Gateway => TelemetryTarget::Gateway(node.service.clone()),
        _ => TelemetryTarget::Service(node.service.clone()),
    };
    let access_log = res.access_log_for(&workload).map(|a| pb::AccessLog {
        path: a.sink.path,
        format: a.sink.format,
        min_status: a.min_status.map(u32::from),
        sample_percent: a.sample_percent,
    });
    for l in &mut listeners {
        unique_route_names(&mut l.routes);
        l.access_log = access_log.clone();
    }
    let tracing = res.tracing_for(&workload).map(|t| pb::Tracing {
        collector: t.collector,
        sampling_percent: t.sampling_percent,
        service_name: node.service.clone(),
    });
    let mut clusters = clusters;
    if node.role() == pb::Role::Sidecar && !node.workload_address.is_empty() {
        // The workload speaks what its Service's (first HTTP) port says.
        let protocol = res
            .services
            .get(&node.service)
            .and_then(default_port)
            .flatten()
            .map_or(pb::UpstreamProtocol::Unspecified, |p| {
                upstream_protocol(p.app_protocol, false)
            });
        clusters.push(pb::Cluster {
            name: INBOUND_CLUSTER.into(),
            endpoints: vec![node.workload_address.clone()],
            protocol: protocol as i32,
            ..Default::default()
        });
    }
    Ok(pb::ProxyConfig {
        runtime: None,
        admin: None,
        listeners,
        clusters,
        mesh: Some(mesh::proxy_mesh(mesh)),
        tracing,
        zone: String::new(),
    })
}

/// A rule becomes one proxy route per hostname and per parent, all named
/// `{route}.{rule}`; the proxy needs route names unique per listener (they
/// are its metric labels). Later duplicates get `-2`, `-3`, ... (a `-`
/// cannot follow the rule number of a built name, so no new clash).
fn unique_route_names(routes: &mut [pb::Route]) {
    let mut seen = BTreeSet::new();
    for r in routes {
        let Some(name) = r.name.clone() else { continue };
        let (mut candidate, mut n) = (name.clone(), 1);
        while !seen.insert(candidate.clone()) {
            n += 1;
            candidate = format!("{name}-{n}");
        }
        r.name = Some(candidate);
    }
}

/// One cluster per Service, or with `ports`, one per port (named
/// `service_port`): static endpoints (for a port, those on its target
/// port, and bare hosts with it) plus the inbound addresses of the
/// proxies registered as the Service's workloads (on every port but a TCP
/// one: a sidecar's inbound listener speaks HTTP). A cluster with
/// registered sidecars and no static endpoint is meshed (`mesh.rs`).
fn clusters(
    res: &Resources,
    workloads: &Workloads,
    mesh: &MeshContext,
) -> Result<Vec<pb::Cluster>, CompileError> {
    let policies: BTreeMap<&str, &BackendTls> = res
        .backend_tls
        .values()
        .flat_map(|p| p.targets.iter().map(move |t| (t.as_str(), p)))
        .collect();
    let grpc = grpc_clusters(res);
    let mut out = Vec::new();
    for s in res.services.values() {
        let registered = workloads.get(&s.name);
        let sidecars = registered.map_or(0, BTreeSet::len);
        let tls = policies.get(s.name.as_str()).map(|p| upstream_tls(res, p));
        let traffic = res.traffic_policy_for(&s.name);
        let meshed = |c: &mut pb::Cluster| {
            mesh::mesh_cluster(c, &s.name, mesh).map_err(|error| CompileError::Identity {
                service: s.name.clone(),
                trust_domain: mesh.trust_domain.clone(),
                error,
            })
        };
        if s.ports.is_empty() {
            let mut endpoints: BTreeSet<String> = s.endpoints.iter().cloned().collect();
            endpoints.extend(registered.into_iter().flatten().cloned());
            let mut c = pb::Cluster {
                name: s.name.clone(),
                endpoints: endpoints.into_iter().collect(),
                tls,
                protocol: upstream_protocol(AppProtocol::Unspecified, grpc.contains(&s.name))
                    as i32,
                ..Default::default()
            };
            if mesh::meshed(s.endpoints.len(), sidecars) {
                meshed(&mut c)?;
            }
            if let Some(p) = traffic {
                traffic::cluster(&mut c, p);
            }
            out.push(c);
            continue;
        }
        for p in &s.ports {
            let name = s.cluster(Some(p.port));
            let on_port = s.port_endpoints(p);
            let tcp = p.app_protocol == AppProtocol::Tcp;
            let mut endpoints: BTreeSet<String> = on_port.iter().cloned().collect();
            if !tcp {
                endpoints.extend(registered.into_iter().flatten().cloned());
            }
            let mut c = pb::Cluster {
                protocol: upstream_protocol(p.app_protocol, grpc.contains(&name)) as i32,
                name,
                endpoints: endpoints.into_iter().collect(),
                tls: tls.clone(),
                ..Default::default()
            };
            // A TCP port's cluster has no sidecars (they carry HTTP).
            if !tcp && mesh::meshed(on_port.len(), sidecars) {
                meshed(&mut c)?;
            }
            if let Some(p) = traffic {
                traffic::cluster(&mut c, p);
            }
            out.push(c);
        }
    }
    Ok(out)
}

/// What the proxy speaks to a cluster: what its port says, else HTTP/2
/// when a GRPCRoute sends to it (gRPC needs HTTP/2), else the proxy's
/// default (HTTP/1.1, left unset so configs without ports are as before).
fn upstream_protocol(app: AppProtocol, grpc: bool) -> pb::UpstreamProtocol {
    match app {
        AppProtocol::Http => pb::UpstreamProtocol::Http1,
        AppProtocol::Http2 => pb::UpstreamProtocol::Http2,
        AppProtocol::Unspecified if grpc => pb::UpstreamProtocol::Http2,
        AppProtocol::Unspecified | AppProtocol::Tcp => pb::UpstreamProtocol::Unspecified,
    }
}

/// Clusters some GRPCRoute sends to.
fn grpc_clusters(res: &Resources) -> BTreeSet<String> {
    res.grpc_routes
        .values()
        .flat_map(|r| r.rules.iter())
        .flat_map(|rule| rule.backends.iter())
        .map(|b| b.cluster.clone())
        .collect()
}

/// Where a sidecar sends what no rule of a Service matched: its cluster,
/// or with ports, its first HTTP one's (the outbound listener tells
/// Services apart by Host, which has no port). None: only TCP ports.
fn default_port(s: &Service) -> Option<Option<&ServicePort>> {
    if s.ports.is_empty() {
        return Some(None);
    }
    s.ports
        .iter()
        .find(|p| p.app_protocol != AppProtocol::Tcp)
        .map(Some)
}

/// A BackendTLSPolicy as the proxy's cluster `tls`: its CA bundles (none:
/// the system's roots), its hostname as SNI and the name verified, and
/// the client certificate of its `ringmesh.io/client-certificate` option.
fn upstream_tls(res: &Resources, p: &BackendTls) -> pb::UpstreamTls {
    let ca = match &p.ca {
        BackendCa::System => None,
        BackendCa::Refs(refs) => Some(inline(refs.iter().filter_map(|r| res.ca_pem(r)).collect())),
    };
    pb::UpstreamTls {
        ca,
        sni: Some(p.hostname.clone()),
        alpn: Vec::new(),
        client_certificate: p
            .client_certificate
            .as_ref()
            .and_then(|n| res.secrets.get(n))
            .map(|s| certificate(s, Vec::new())),
    }
}

fn inline(pem: String) -> pb::DataSource {
    pb::DataSource {
        source: Some(pb::data_source::Source::InlinePem(pem)),
    }
}

fn certificate(s: &TlsSecret, server_names: Vec<String>) -> pb::TlsCertificate {
    pb::TlsCertificate {
        cert: Some(inline(s.pair.chain_pem.clone())),
        key: Some(inline(s.pair.key.expose().to_string())),
        server_names,
    }
}

fn sidecar(res: &Resources, node: &pb::Node) -> Result<Vec<pb::Listener>, CompileError> {
    if !res.services.contains_key(&node.service) {
        return Err(CompileError::UnknownService {
            node: node.id.clone(),
            service: node.service.clone(),
        });
    }
    let mut listeners = Vec::new();
    if !node.inbound_address.is_empty() && node.workload_address.is_empty() {
        return Err(CompileError::InboundWithoutWorkload(node.id.clone()));
    }
    if !node.inbound_address.is_empty() {
        let route = pb::Route {
            name: Some("inbound".into()),
            action: Some(pb::route::Action::Cluster(INBOUND_CLUSTER.into())),
            // A TrafficPolicy's rate limit: the calls this sidecar takes.
            rate_limit: res
                .traffic_policy_for(&node.service)
                .and_then(traffic::rate_limit),
            ..Default::default()
        };
        listeners.push(pb::Listener {
            name: "inbound".into(),
            address: node.inbound_address.clone(),
            direction: pb::Direction::Inbound as i32,
            routes: vec![route],
            authorization: authorization(res, &node.service, Some(node)),
            // Peers' mTLS is accepted (with their identities, policies
            // can name them) and so is plaintext, unless a
            // PeerAuthentication makes the Service STRICT.
            mesh: Some(mesh::inbound(res.mtls_mode(&node.service))),
            ..Default::default()
        });
    }
    if !node.outbound_address.is_empty() {
        let mut routes = Vec::new();
        for (service, s) in &res.services {
            let mesh = res.routes.values().chain(res.grpc_routes.values());
            for r in mesh.filter(|r| r.parents.iter().any(|p| p.is_service(service))) {
                routes.extend(rule_routes(r, Some(service)));
            }
            // Anything no rule matched still reaches the Service.
            let Some(port) = default_port(s) else {
                continue;
            };
            routes.push(pb::Route {
                name: Some(format!("{service}.default")),
                r#match: Some(pb::RouteMatch {
                    host: Some(service.clone()),
                    ..Default::default()
                }),
                action: Some(pb::route::Action::Cluster(s.cluster(port.map(|p| p.port)))),
                ..Default::default()
            });
        }
        listeners.push(pb::Listener {
            name: "outbound".into(),
            address: node.outbound_address.clone(),
            direction: pb::Direction::Outbound as i32,
            routes,
            ..Default::default()
        });
    }
    Ok(listeners)
}

/// The AuthorizationPolicies that protect Service `service` (those that
/// name it in `targetRefs`, and those of its namespace without
/// `targetRefs`), in name order, each named as the control plane names it
/// (`name`, `name.namespace`): unique, since qualified names are.
///
/// `ports` are the workload's, as in Istio; the proxy matches the port a
/// request came in on. For a sidecar (`node`), whose inbound listener
/// serves one workload port, they become that listener's port when they
/// name the workload's, and a condition that can never hold otherwise.
/// Without a node they stay the workload's (`auth check`).
pub(crate) fn authorization(
    res: &Resources,
    service: &str,
    node: Option<&pb::Node>,
) -> Vec<pb::AuthorizationPolicy> {
    let ports = node.and_then(sidecar_ports);
    res.authz
        .values()
        .filter(|p| p.applies_to(service))
        .map(|p| pb::AuthorizationPolicy {
            name: p.name.clone(),
            action: if p.deny {
                pb::AuthzAction::Deny
            } else {
                pb::AuthzAction::Allow
            } as i32,
            rules: p
                .rules
                .iter()
                .map(|r| pb::AuthzRule {
                    from: r
                        .from
                        .iter()
                        .map(|f| pb::AuthzSource {
                            principals: f.principals.clone(),
                            not_principals: f.not_principals.clone(),
                            namespaces: f.namespaces.clone(),
                            not_namespaces: f.not_namespaces.clone(),
                        })
                        .collect(),
                    to: r
                        .to
                        .iter()
                        .map(|t| {
                            let (yes, no) = match ports {
                                Some(p) => p.condition(&t.ports, &t.not_ports),
                                None => (text(&t.ports), text(&t.not_ports)),
                            };
                            pb::AuthzOperation {
                                methods: t.methods.clone(),
                                not_methods: t.not_methods.clone(),
                                paths: t.paths.clone(),
                                not_paths: t.not_paths.clone(),
                                ports: yes,
                                not_ports: no,
                            }
                        })
                        .collect(),
                    when: r
                        .when
                        .iter()
                        .map(|c| pb::AuthzCondition {
                            header: c.header.clone(),
                            values: c.values.clone(),
                            not_values: c.not_values.clone(),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

fn text(ports: &[u16]) -> Vec<String> {
    ports.iter().map(u16::to_string).collect()
}

/// A sidecar's workload port and the port its inbound listener takes
/// requests for it on.
#[derive(Clone, Copy)]
struct SidecarPorts {
    workload: u16,
    inbound: u16,
}

fn sidecar_ports(node: &pb::Node) -> Option<SidecarPorts> {
    let port = |a: &str| a.parse::<std::net::SocketAddr>().ok().map(|a| a.port());
    Some(SidecarPorts {
        workload: port(&node.workload_address)?,
        inbound: port(&node.inbound_address)?,
    })
}

impl SidecarPorts {
    /// An operation's `ports` / `notPorts` as the inbound listener sees
    /// them. A `ports` list without the workload's port never matches:
    /// the inbound port is then both required and excluded.
    fn condition(self, ports: &[u16], not_ports: &[u16]) -> (Vec<String>, Vec<String>) {
        let inbound = vec![self.inbound.to_string()];
        let never = !ports.is_empty() && !ports.contains(&self.workload);
        let yes = if ports.is_empty() {
            Vec::new()
        } else {
            inbound.clone()
        };
        let no = if never || not_ports.contains(&self.workload) {
            inbound
        } else {
            Vec::new()
        };
        (yes, no)
    }
}

fn gateway(res: &Resources, node: &pb::Node) -> Result<Vec<pb::Listener>, CompileError> {
    let gw = res
        .gateways
        .get(&node.service)
        .ok_or_else(|| CompileError::UnknownGateway {
            node: node.id.clone(),
            gateway: node.service.clone(),
        })?;
    let mut groups: Vec<Vec<&GatewayListener>> = Vec::new();
    for l in &gw.listeners {
        match groups.iter_mut().find(|g| g[0].address == l.address) {
            Some(g) => g.push(l),
            None => groups.push(vec![l]),
        }
    }
    Ok(groups
        .iter()
        .map(|g| match g[0].protocol {
            ListenerProtocol::Tcp => tcp_listener(res, gw, g[0]),
            _ => shared_listener(res, gw, g),
        })
        .collect())
}

/// A TCP listener relays to the backend of the one TCPRoute attached to
/// it (validation made sure there is exactly one).
fn tcp_listener(res: &Resources, gw: &Gateway, l: &GatewayListener) -> pb::Listener {
    let route = res.tcp_routes.values().find(|r| {
        l.accepts(RouteKind::Tcp, namespace_of(&r.name))
            && r.parents.iter().any(|p| p.is_listener(&gw.name, l))
    });
    pb::Listener {
        name: l.name.clone(),
        address: l.address.to_string(),
        tcp: route.map(|r| pb::TcpProxy {
            cluster: r.backend.cluster.clone(),
            idle_timeout: None,
        }),
        ..Default::default()
    }
}

/// Routes of `kind` (in `routes`) attached to listener `l` of `gw`, and
/// allowed there.
fn attached<'a>(
    routes: &'a BTreeMap<String, HttpRoute>,
    gw: &'a Gateway,
    l: &'a GatewayListener,
    kind: RouteKind,
) -> impl Iterator<Item = &'a HttpRoute> + 'a {
    routes.values().filter(move |r| {
        l.accepts(kind, namespace_of(&r.name))
            && r.parents.iter().any(|p| p.is_listener(&gw.name, l))
    })
}

/// Gateway listeners on one address as one proxy listener. Routes of the
/// most specific hostname come first (the proxy takes the first route
/// that matches): the Gateway API's "most specific listener wins".
fn shared_listener(res: &Resources, gw: &Gateway, group: &[&GatewayListener]) -> pb::Listener {
    let mut by_specificity = group.to_vec();
    by_specificity.sort_by_key(|l| match l.hostname.as_deref() {
        Some(h) if !h.starts_with('*') => (0, Reverse(0)),
        Some(h) => (1, Reverse(h.len())),
        None => (2, Reverse(0)),
    });
    let mut routes = Vec::new();
    for l in by_specificity {
        for (kind, all) in [
            (RouteKind::Http, &res.routes),
            (RouteKind::Grpc, &res.grpc_routes),
        ] {
            for r in attached(all, gw, l, kind) {
                for host in l.hosts_for(&r.hostnames) {
                    routes.extend(rule_routes(r, host.as_ref()));
                }
            }
        }
    }
    pb::Listener {
        name: group[0].name.clone(),
        address: group[0].address.to_string(),
        routes,
        tls: downstream_tls(res, group),
        ..Default::default()
    }
}

/// The certificates of the listeners on one address. The listener without
/// a hostname (if any) goes first, so its first certificate is the
/// default, for clients that send no SNI or a name nothing serves; it
/// answers for the names in its certificate except those a listener with
/// that hostname serves. Every other certificate answers for its
/// listener's hostname.
fn downstream_tls(res: &Resources, group: &[&GatewayListener]) -> Option<pb::DownstreamTls> {
    if group.iter().all(|l| l.tls.is_none()) {
        return None;
    }
    let claimed: Vec<&str> = group.iter().filter_map(|l| l.hostname.as_deref()).collect();
    let catch_all = group.iter().filter(|l| l.hostname.is_none());
    let named = group.iter().filter(|l| l.hostname.is_some());
    let mut certificates = Vec::new();
    for l in catch_all.chain(named) {
        let Some(tls) = &l.tls else { continue };
        for s in tls.certificates.iter().filter_map(|n| res.secrets.get(n)) {
            let names = match &l.hostname {
                Some(h) => vec![h.clone()],
                None => {
                    let own = &s.pair.leaf.dns_names;
                    if own.iter().any(|n| claimed.contains(&n.as_str())) {
                        own.iter()
                            .filter(|n| !claimed.contains(&n.as_str()))
                            .cloned()
                            .collect()
                    } else {
                        // The proxy reads none as the leaf's own names.
                        Vec::new()
                    }
                }
            };
            certificates.push(certificate(s, names));
        }
    }
    Some(pb::DownstreamTls {
        certificates,
        ..Default::default()
    })
}

/// One proxy route per (rule, match); a rule without matches matches all.
/// Every route of a rule gets the rule's action and policies.
fn rule_routes(r: &HttpRoute, host: Option<&String>) -> Vec<pb::Route> {
    let mut out = Vec::new();
    for (i, rule) in r.rules.iter().enumerate() {
        let base = policies(rule);
        let host = host.cloned();
        if rule.matches.is_empty() {
            let path = replaces_prefix(rule).then(|| pb::PathMatch {
                kind: Some(pb::path_match::Kind::Prefix("/".into())),
            });
            out.push(pb::Route {
                name: Some(format!("{}.{i}", r.name)),
                r#match: Some(pb::RouteMatch {
                    host,
                    path,
                    ..Default::default()
                }),
                ..base
            });
            continue;
        }
        for (j, m) in rule.matches.iter().enumerate() {
            let path = pb::PathMatch {
                kind: Some(match &m.path {
                    PathMatch::Prefix(p) => pb::path_match::Kind::Prefix(p.clone()),
                    PathMatch::Exact(p) => pb::path_match::Kind::Exact(p.clone()),
                }),
            };
            // A gRPC method is its path: the proxy takes one or the other.
            let (path, grpc) = match &m.grpc {
                Some(g) => (
                    None,
                    Some(pb::GrpcMatch {
                        service: g.service.clone(),
                        method: g.method.clone().unwrap_or_default(),
                    }),
                ),
                None => (Some(path), None),
            };
            let headers = m
                .headers
                .iter()
                .map(|(n, v)| pb::HeaderMatch {
                    name: n.clone(),
                    kind: Some(pb::header_match::Kind::Exact(v.clone())),
                })
                .collect();
            out.push(pb::Route {
                name: Some(format!("{}.{i}.{j}", r.name)),
                r#match: Some(pb::RouteMatch {
                    host: host.clone(),
                    path,
                    method: m.method.clone(),
                    headers,
                    grpc,
                    // The Gateway API matches no caller identity.
                    source: None,
                }),
                ..base.clone()
            });
        }
    }
    out
}

/// A route with what a rule does to the requests it matches (where they
/// go, timeout, retries, fault), but no name or match yet.
fn policies(rule: &Rule) -> pb::Route {
    let retries = rule.retry.as_ref().map(|r| pb::RetryPolicy {
        attempts: u64::from(r.attempts),
        // Empty: the proxy's default (connect-failure, reset, timeout, 502-504).
        on: if r.codes.is_empty() && r.grpc.is_empty() {
            Vec::new()
        } else {
            ["connect-failure", "reset"]
                .iter()
                .map(|s| s.to_string())
                .chain(r.codes.iter().map(|c| c.to_string()))
                .chain(r.grpc.iter().cloned())
                .collect()
        },
        // The Gateway API's one `backoff` is the base; the proxy's max
        // defaults to ten times it. Unset: the proxy's default.
        backoff: r.backoff.map(|b| pb::RetryBackoff {
            base: Some(duration(b)),
            max: None,
        }),
        per_try_timeout: None,
    });
    let fault = rule.fault.as_ref().map(|f| pb::Fault {
        delay: f.delay.as_ref().map(|d| pb::FaultDelay {
            duration: Some(duration(d.duration)),
            percent: d.percent,
        }),
        abort: f.abort.as_ref().map(|a| pb::FaultAbort {
            status: u64::from(a.status),
            percent: a.percent,
        }),
    });
    // The proxy's default body limit (64 KiB): the Gateway API has none.
    let mirror = rule.mirror.as_ref().map(|m| pb::Mirror {
        cluster: m.cluster.clone(),
        percent: m.percent,
        max_body_bytes: None,
    });
    let edits = |e: &HeaderEdits| {
        (e.add.len() + e.remove.len() > 0).then(|| pb::HeaderEdits {
            add: e
                .add
                .iter()
                .map(|(name, value)| pb::Header {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            remove: e.remove.clone(),
        })
    };
    let rewrite = rule.rewrite.as_ref().map(|w| pb::Rewrite {
        hostname: w.hostname.clone(),
        path: w.path.as_ref().map(path_modifier),
    });
    pb::Route {
        action: Some(action(rule)),
        timeout: rule.timeout.map(duration),
        request_headers: edits(&rule.request_headers),
        response_headers: edits(&rule.response_headers),
        retries,
        fault,
        mirror,
        rewrite,
        ..Default::default()
    }
}

fn path_modifier(p: &PathModifier) -> pb::PathModifier {
    pb::PathModifier {
        kind: Some(match p {
            PathModifier::Full(f) => pb::path_modifier::Kind::Full(f.clone()),
            PathModifier::Prefix(f) => pb::path_modifier::Kind::Prefix(f.clone()),
        }),
    }
}

/// A prefix replacement needs the proxy route to match a prefix: a rule
/// without matches matches the prefix `/`, which its route then says.
fn replaces_prefix(rule: &Rule) -> bool {
    let prefix = |p: &Option<PathModifier>| matches!(p, Some(PathModifier::Prefix(_)));
    rule.redirect.as_ref().is_some_and(|r| prefix(&r.path))
        || rule.rewrite.as_ref().is_some_and(|r| prefix(&r.path))
}

/// Validation bounds durations to 7 days, far inside the wire's range.
fn duration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn action(rule: &Rule) -> pb::route::Action {
    if let Some(r) = &rule.redirect {
        return pb::route::Action::Redirect(pb::Redirect {
            scheme: r.scheme.clone(),
            hostname: r.hostname.clone(),
            port: r.port.map(u32::from),
            path: r.path.as_ref().map(path_modifier),
            // 0: the proxy's default, 302 (the Gateway API's too).
            status: r.status.map_or(0, u32::from),
        });
    }
    match rule.backends.as_slice() {
        [one] => pb::route::Action::Cluster(one.cluster.clone()),
        many => pb::route::Action::WeightedClusters(pb::WeightedClusters {
            clusters: many
                .iter()
                .map(|b| pb::WeightedCluster {
                    cluster: b.cluster.clone(),
                    weight: b.weight,
                })
                .collect(),
        }),
    }
}

#[cfg(test)]
mod fixtures;

#[cfg(test)]
mod tls_tests;

#[cfg(test)]
mod api_tests;

#[cfg(test)]
mod authz_tests;

#[cfg(test)]
mod mesh_tests;

#[cfg(test)]
mod telemetry_tests;

#[cfg(test)]
mod filters_tests;

#[cfg(test)]
mod traffic_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::parse;

    fn mesh() -> Resources {
        let text = crate::resources::validate_tests_mesh();
        parse(&[("mesh.yaml".into(), text.into())]).unwrap()
    }

    fn sidecar_node() -> pb::Node {
        pb::Node {
            id: "web-1".into(),
            service: "checkout-v1".into(),
            role: pb::Role::Sidecar as i32,
            workload_address: "127.0.0.1:7000".into(),
            inbound_address: "127.0.0.1:7001".into(),
            outbound_address: "127.0.0.1:7002".into(),
        }
    }

    #[test]
    fn a_sidecar_gets_inbound_outbound_and_every_service() {
        let mut w = Workloads::new();
        w.entry("checkout-v1".into())
            .or_default()
            .insert("127.0.0.1:7101".into());
        let c = compile(&mesh(), &sidecar_node(), &w).unwrap();
        let names: Vec<&str> = c.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["inbound", "outbound"]);
        assert_eq!(c.listeners[0].address, "127.0.0.1:7001");
        let clusters: Vec<(&str, Vec<&str>)> = c
            .clusters
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.endpoints.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            clusters,
            [
                ("checkout", vec![]),
                ("checkout-v1", vec!["127.0.0.1:7101", "127.0.0.1:9001"]),
                ("checkout-v2", vec!["127.0.0.1:9002", "v2.internal:9002"]),
                (INBOUND_CLUSTER, vec!["127.0.0.1:7000"]),
            ]
        );
        let out = &c.listeners[1].routes;
        let names: Vec<&str> = out
            .iter()
            .map(|r| r.name.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(
            names,
            [
                "checkout-split.0.0",
                "checkout-split.1",
                "checkout.default",
                "checkout-v1.default",
                "checkout-v2.default"
            ]
        );
        let canary = &out[0];
        let m = canary.r#match.as_ref().unwrap();
        assert_eq!(m.host.as_deref(), Some("checkout"));
        assert_eq!(m.method.as_deref(), Some("POST"));
        assert_eq!(
            m.path.as_ref().unwrap().kind,
            Some(pb::path_match::Kind::Prefix("/cart".into()))
        );
        assert_eq!(
            canary.action,
            Some(pb::route::Action::Cluster("checkout-v2".into()))
        );
        let split = &out[1];
        let Some(pb::route::Action::WeightedClusters(w)) = &split.action else {
            panic!("{split:?}")
        };
        assert_eq!(
            w.clusters
                .iter()
                .map(|c| (c.cluster.as_str(), c.weight))
                .collect::<Vec<_>>(),
            [("checkout-v1", 90), ("checkout-v2", 10)]
        );
        assert_eq!(
            split.timeout,
            Some(prost_types::Duration {
                seconds: 2,
                nanos: 0
            })
        );
    }

    #[test]
    fn a_gateway_gets_its_listeners_and_attached_routes() {
        let node = pb::Node {
            id: "gw-1".into(),
            service: "edge".into(),
            role: pb::Role::Gateway as i32,
            ..Default::default()
        };
        let c = compile(&mesh(), &node, &Workloads::new()).unwrap();
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].address, "127.0.0.1:8080");
        let r = &c.listeners[0].routes;
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].r#match.as_ref().unwrap().host.as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(
            r[0].r#match.as_ref().unwrap().path.as_ref().unwrap().kind,
            Some(pb::path_match::Kind::Exact("/".into()))
        );
    }

    #[test]
    fn identities_that_match_nothing_are_errors() {
        let mut n = sidecar_node();
        n.service = "nope".into();
        assert_eq!(
            compile(&mesh(), &n, &Workloads::new())
                .unwrap_err()
                .to_string(),
            "sidecar `web-1` says it fronts Service `nope`, which does not exist"
        );
        n.role = pb::Role::Gateway as i32;
        assert!(matches!(
            compile(&mesh(), &n, &Workloads::new()),
            Err(CompileError::UnknownGateway { .. })
        ));
        // An inbound listener needs a workload to send to (the proxy would
        // NACK a route to a cluster that is not there).
        let mut m = sidecar_node();
        m.workload_address.clear();
        assert_eq!(
            compile(&mesh(), &m, &Workloads::new()),
            Err(CompileError::InboundWithoutWorkload("web-1".into()))
        );
        m.inbound_address.clear();
        let c = compile(&mesh(), &m, &Workloads::new()).unwrap();
        let names: Vec<&str> = c.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["outbound"], "a client-only sidecar");
        n.role = 0;
        assert!(matches!(
            compile(&mesh(), &n, &Workloads::new()),
            Err(CompileError::NoRole(_))
        ));
    }

    #[test]
    fn a_fault_is_on_every_route_its_rule_makes() {
        // One rule, two matches, attached to a Service and to a Gateway
        // with two hostnames: 2 sidecar routes and 4 gateway routes.
        let text = format!(
            "{}---\n{}",
            crate::resources::validate_tests_mesh(),
            "kind: HTTPRoute\nmetadata: { name: chaos }\nspec:\n  parentRefs: [ { name: checkout }, { kind: Gateway, name: edge } ]\n  hostnames: [ a.example, b.example ]\n  rules:\n    - matches: [ { path: { value: /a } }, { path: { value: /b } } ]\n      backendRefs: [ { name: checkout-v1 } ]\n      timeouts: { request: 1500ms }\n      fault:\n        delay: { fixedDelay: 2s, percent: 10 }\n        abort: { httpStatus: 503, percent: 5.5 }\n    - backendRefs: [ { name: checkout-v2 } ]\n      fault: { abort: { httpStatus: 418, percent: 100 } }\n"
        );
        let res = parse(&[("mesh.yaml".into(), text)]).unwrap();
        let want = pb::Fault {
            delay: Some(pb::FaultDelay {
                duration: Some(prost_types::Duration {
                    seconds: 2,
                    nanos: 0,
                }),
                percent: 10.0,
            }),
            abort: Some(pb::FaultAbort {
                status: 503,
                percent: 5.5,
            }),
        };
        let teapot = pb::Fault {
            delay: None,
            abort: Some(pb::FaultAbort {
                status: 418,
                percent: 100.0,
            }),
        };
        let chaos = |routes: &[pb::Route]| -> Vec<(String, Option<pb::Fault>)> {
            routes
                .iter()
                .filter(|r| r.name.as_deref().is_some_and(|n| n.starts_with("chaos.")))
                .map(|r| (r.name.clone().unwrap_or_default(), r.fault))
                .collect()
        };
        let c = compile(&res, &sidecar_node(), &Workloads::new()).unwrap();
        let out = &c.listeners[1].routes;
        assert_eq!(
            chaos(out),
            [
                ("chaos.0.0".into(), Some(want)),
                ("chaos.0.1".into(), Some(want)),
                ("chaos.1".into(), Some(teapot)),
            ]
        );
        // The rule's other policies are still there beside it.
        let first = out.iter().find(|r| r.name.as_deref() == Some("chaos.0.1"));
        assert_eq!(
            first.and_then(|r| r.timeout),
            Some(prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        assert!(
            out.iter()
                .filter(|r| !r.name.as_deref().unwrap_or("").starts_with("chaos."))
                .all(|r| r.fault.is_none()),
            "no other route gets a fault"
        );
        let node = pb::Node {
            id: "gw-1".into(),
            service: "edge".into(),
            role: pb::Role::Gateway as i32,
            ..Default::default()
        };
        let c = compile(&res, &node, &Workloads::new()).unwrap();
        let got = chaos(&c.listeners[0].routes);
        assert_eq!(got.len(), 6, "{got:?}");
        let names: BTreeSet<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            BTreeSet::from([
                "chaos.0.0",
                "chaos.0.0-2",
                "chaos.0.1",
                "chaos.0.1-2",
                "chaos.1",
                "chaos.1-2"
            ]),
            "one route per hostname, each with its own name (the proxy's metric label)"
        );
        for (name, fault) in got {
            let want = if name.starts_with("chaos.1") {
                &teapot
            } else {
                &want
            };
            assert_eq!(fault.as_ref(), Some(want), "{name}");
        }
    }

    #[test]
    fn compiling_is_deterministic() {
        let a = compile(&mesh(), &sidecar_node(), &Workloads::new()).unwrap();
        let b = compile(&mesh(), &sidecar_node(), &Workloads::new()).unwrap();
        assert_eq!(a, b);
    }
}
