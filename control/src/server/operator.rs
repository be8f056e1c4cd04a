//! The operator API `ringmeshctl` talks to.

use std::sync::Arc;

use ringmesh_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::state::Hub;
use crate::resources::model::{
    BackendCa, CaRef, ListenerProtocol, Parent, PathMatch, Resources, TelemetryTarget,
};
use crate::resources::redact;
use crate::store::{Store, StoreError};

pub struct OperatorService {
    pub hub: Arc<Hub>,
    pub store: Arc<Store>,
    /// The proxies' traffic reports (`Telemetry/Report`).
    pub stats: Arc<crate::stats::Store>,
}

/// Errors go back redacted: a key pasted where a name goes is not echoed.
fn status(e: StoreError) -> Status {
    match e {
        StoreError::Invalid(lines) => Status::invalid_argument(redact(&lines.join("\n"))),
        StoreError::NotFound(m) => Status::not_found(redact(&m)),
        StoreError::Io(m) => Status::internal(redact(&m)),
    }
}

/// The kinds `get` and `delete` take, as `ringmeshctl` lists them.
pub const KIND_WORDS: &str =
    "services, routes, grpcroutes, tcproutes, gateways, secrets, configmaps, backendtlspolicies, authorizationpolicies, peerauthentications, telemetries or trafficpolicies";

/// `service`, `services`, `svc`, `httproute`, `routes`, ... -> the kind.
pub fn kind_of(word: &str) -> Option<&'static str> {
    match word.to_ascii_lowercase().as_str() {
        "service" | "services" | "svc" => Some("Service"),
        "httproute" | "httproutes" | "route" | "routes" => Some("HTTPRoute"),
        "grpcroute" | "grpcroutes" => Some("GRPCRoute"),
        "tcproute" | "tcproutes" => Some("TCPRoute"),
        "gateway" | "gateways" | "gw" => Some("Gateway"),
        "secret" | "secrets" => Some("Secret"),
        "configmap" | "configmaps" | "cm" => Some("ConfigMap"),
        "backendtlspolicy" | "backendtlspolicies" | "btlspolicy" | "btlspolicies" => {
            Some("BackendTLSPolicy")
        }
        "authorizationpolicy" | "authorizationpolicies" | "ap" => Some("AuthorizationPolicy"),
        "peerauthentication" | "peerauthentications" | "pa" => Some("PeerAuthentication"),
        "telemetry" | "telemetries" => Some("Telemetry"),
        "trafficpolicy" | "trafficpolicies" | "tp" => Some("TrafficPolicy"),
        _ => None,
    }
}

#[tonic::async_trait]
impl pb::operator_server::Operator for OperatorService {
    async fn apply(
        &self,
        req: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let req = req.into_inner();
        let files: Vec<(String, String)> =
            req.files.into_iter().map(|f| (f.name, f.content)).collect();
        let store = self.store.clone();
        let (results, resources) =
            tokio::task::spawn_blocking(move || store.apply(&files, req.dry_run))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(status)?;
        if !req.dry_run {
            // In force now, without waiting for the directory poll.
            self.hub.set_resources(resources);
        }
        Ok(Response::new(pb::ApplyResponse { results }))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let req = req.into_inner();
        let kind = kind_of(&req.kind).ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown kind `{}`: {KIND_WORDS}",
                redact(&req.kind)
            ))
        })?;
        let store = self.store.clone();
        let (result, resources) =
            tokio::task::spawn_blocking(move || store.delete(kind, &req.name))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(status)?;
        self.hub.set_resources(resources);
        Ok(Response::new(pb::DeleteResponse { result }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let word = req.into_inner().kind;
        let kind = kind_of(&word).ok_or_else(|| {
            Status::invalid_argument(format!("unknown kind `{}`: {KIND_WORDS}", redact(&word)))
        })?;
        Ok(Response::new(pb::GetResponse {
            resources: summarize(&self.hub.resources(), &self.hub.workloads(), kind),
        }))
    }

    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let proxies = self
            .hub
            .proxies()
            .into_iter()
            .map(|p| pb::ProxyState {
                node: Some(p.node),
                connected: p.connected,
                sent_version: p.sent.unwrap_or_default(),
                acked_version: p.acked.unwrap_or_default(),
                nack_version: p
                    .last_nack
                    .as_ref()
                    .map(|n| n.0.clone())
                    .unwrap_or_default(),
                nack_errors: p.last_nack.map(|n| n.1).unwrap_or_default(),
                compile_error: p.compile_error.unwrap_or_default(),
                spiffe_id: p
                    .identity
                    .as_ref()
                    .map(|i| i.spiffe_id.clone())
                    .unwrap_or_default(),
                certificate_not_after: p.identity.map_or(0, |i| unix_seconds(i.not_after)),
            })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            proxies,
            rejected: self.hub.rejected().unwrap_or_default(),
        }))
    }

    async fn stat(
        &self,
        _req: Request<pb::StatRequest>,
    ) -> Result<Response<pb::StatResponse>, Status> {
        Ok(Response::new(self.stat_now(std::time::Instant::now())))
    }

    async fn auth_check(
        &self,
        req: Request<pb::AuthCheckRequest>,
    ) -> Result<Response<pb::AuthCheckResponse>, Status> {
        use crate::compile::check::{check, CheckError, Probe};
        let r = req.into_inner();
        let probe = Probe {
            from: Some(r.from).filter(|f| !f.is_empty()),
            to: r.to,
            method: r.method,
            path: r.path,
            headers: r
                .headers
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v))
                .collect(),
            port: u16::try_from(r.port).ok().filter(|p| *p > 0),
        };
        let v = check(&self.hub.resources(), self.hub.mesh(), &probe).map_err(|e| match e {
            CheckError::UnknownService(_) | CheckError::UnknownCaller(_) => {
                Status::not_found(redact(&e.to_string()))
            }
            CheckError::BadSpiffeId(..) | CheckError::NoMethod => {
                Status::invalid_argument(redact(&e.to_string()))
            }
        })?;
        Ok(Response::new(pb::AuthCheckResponse {
            allowed: v.allowed,
            policy: v.policy.unwrap_or_default(),
            principal: v.principal.unwrap_or_default(),
            normalized_path: v.normalized_path,
            reason: v.reason,
        }))
    }
}

impl OperatorService {
    /// `Stat`: every Service (and every Service or Gateway a connected
    /// proxy registered for), with its traffic when some proxy of it has
    /// data in the window; every edge with requests in it.
    pub fn stat_now(&self, now: std::time::Instant) -> pb::StatResponse {
        use crate::stats::{aggregate, NodeInfo, Traffic};
        use std::collections::BTreeMap;
        let deltas = self.stats.window(now);
        let proxies = self.hub.proxies();
        let nodes: BTreeMap<String, NodeInfo> = proxies
            .iter()
            .map(|p| {
                let info = NodeInfo {
                    service: p.node.service.clone(),
                    gateway: p.node.role() == pb::Role::Gateway,
                };
                (p.node.id.clone(), info)
            })
            .collect();
        let resources = self.hub.resources();
        let mut clusters: BTreeMap<String, String> = BTreeMap::new();
        for s in resources.services.values() {
            clusters.insert(s.cluster(None), s.name.clone());
            for p in &s.ports {
                clusters.insert(s.cluster(Some(p.port)), s.name.clone());
            }
        }
        let (services, edges) = aggregate(&deltas, &nodes, |c| clusters.get(c).cloned());
        let endpoints =
            crate::stats::aggregate_endpoints(&deltas, &nodes, |c| clusters.get(c).cloned());
        let mut connected: BTreeMap<String, u32> =
            resources.services.keys().map(|s| (s.clone(), 0)).collect();
        for p in proxies.iter().filter(|p| p.connected) {
            *connected.entry(p.node.service.clone()).or_default() += 1;
        }
        for s in services.keys() {
            connected.entry(s.clone()).or_default();
        }
        let traffic = |t: &Traffic, mtls: u64| pb::TrafficStats {
            requests: t.counts.requests(),
            failures: t.failures(),
            rps: t.rps,
            latency_p50_ms: t.latency_ms(0.5),
            latency_p95_ms: t.latency_ms(0.95),
            latency_p99_ms: t.latency_ms(0.99),
            seconds: t.seconds,
            mtls_requests: mtls,
        };
        pb::StatResponse {
            services: connected
                .into_iter()
                .map(|(name, n)| {
                    let t = services.get(&name);
                    pb::ServiceStat {
                        proxies: n,
                        reporting: t.map_or(0, |t| t.proxies),
                        meshed: t.is_some_and(|t| t.all_mesh),
                        stats: t.map(|t| traffic(t, t.counts.mtls)),
                        name,
                    }
                })
                .collect(),
            edges: edges
                .into_iter()
                .map(|((from, to), t)| pb::EdgeStat {
                    from,
                    to,
                    mtls: t.all_mesh,
                    stats: Some(traffic(
                        &t,
                        if t.all_mesh { t.counts.requests() } else { 0 },
                    )),
                })
                .collect(),
            window_seconds: self.stats.window.as_secs_f64(),
            endpoints: endpoints
                .into_iter()
                .map(|((service, address), t)| pb::EndpointStat {
                    service,
                    address,
                    requests: t.requests,
                    errors: t.errors,
                    rps: t.rps,
                    proxies: t.proxies,
                    ejected_by: t.ejected_by,
                    ejections: t.ejections,
                    unhealthy_by: t.unhealthy_by,
                })
                .collect(),
        }
    }
}

fn unix_seconds(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn summarize(
    r: &Resources,
    workloads: &crate::compile::Workloads,
    kind: &str,
) -> Vec<pb::Resource> {
    let src = |s: &crate::resources::model::Source| format!("{}:{}", s.file, s.line);
    let one = |name: &str, source: String, summary: Vec<(&str, String)>| pb::Resource {
        kind: kind.to_string(),
        name: name.to_string(),
        source,
        summary: summary
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    };
    match kind {
        "Service" => r
            .services
            .values()
            .map(|s| {
                let registered: Vec<String> = workloads
                    .get(&s.name)
                    .map(|w| w.iter().cloned().collect())
                    .unwrap_or_default();
                one(
                    &s.name,
                    src(&s.source),
                    vec![
                        ("endpoints", s.endpoints.join(", ")),
                        ("workloads", registered.join(", ")),
                    ],
                )
            })
            .collect(),
        "HTTPRoute" | "GRPCRoute" => if kind == "HTTPRoute" {
            &r.routes
        } else {
            &r.grpc_routes
        }
        .values()
        .map(|rt| {
            let parents: Vec<String> = rt
                .parents
                .iter()
                .map(|p| match p {
                    Parent::Service { name, port: None } => format!("Service/{name}"),
                    Parent::Service {
                        name,
                        port: Some(port),
                    } => format!("Service/{name}:{port}"),
                    Parent::Gateway { name, section, .. } => match section {
                        Some(s) => format!("Gateway/{name}/{s}"),
                        None => format!("Gateway/{name}"),
                    },
                })
                .collect();
            let rules: Vec<String> = rt
                .rules
                .iter()
                .map(|rule| {
                    let when: Vec<String> = rule
                        .matches
                        .iter()
                        .map(|m| match (&m.grpc, &m.path) {
                            (Some(g), _) if g.service.is_empty() => "grpc".into(),
                            (Some(g), _) => match &g.method {
                                Some(method) => format!("/{}/{method}", g.service),
                                None => format!("/{}/*", g.service),
                            },
                            (None, PathMatch::Prefix(p)) => format!("{p}*"),
                            (None, PathMatch::Exact(p)) => p.clone(),
                        })
                        .collect();
                    let to: Vec<String> = rule
                        .backends
                        .iter()
                        .map(|b| format!("{}={}", b.cluster, b.weight))
                        .collect();
                    format!(
                        "{} -> {}",
                        if when.is_empty() {
                            "*".into()
                        } else {
                            when.join("|")
                        },
                        to.join(",")
                    )
                })
                .collect();
            one(
                &rt.name,
                src(&rt.source),
                vec![("parents", parents.join(", ")), ("rules", rules.join("; "))],
            )
        })
        .collect(),
        "TCPRoute" => r
            .tcp_routes
            .values()
            .map(|rt| {
                let parents: Vec<String> = rt
                    .parents
                    .iter()
                    .map(|p| format!("Gateway/{}", p.name()))
                    .collect();
                one(
                    &rt.name,
                    src(&rt.source),
                    vec![
                        ("parents", parents.join(", ")),
                        ("backend", rt.backend.cluster.clone()),
                    ],
                )
            })
            .collect(),
        "Gateway" => r
            .gateways
            .values()
            .map(|g| {
                let listeners: Vec<String> = g
                    .listeners
                    .iter()
                    .map(|l| {
                        let mut text = format!("{}={}", l.name, l.address);
                        if l.protocol == ListenerProtocol::Tcp {
                            text.push_str(" TCP");
                        }
                        if let Some(tls) = &l.tls {
                            text.push_str(&format!(" HTTPS({})", tls.certificates.join(" ")));
                        }
                        if let Some(h) = &l.hostname {
                            text.push_str(&format!(" {h}"));
                        }
                        text
                    })
                    .collect();
                one(
                    &g.name,
                    src(&g.source),
                    vec![("listeners", listeners.join(", "))],
                )
            })
            .collect(),
        // What a Secret holds, never the key itself.
        "Secret" => r
            .secrets
            .values()
            .map(|s| {
                let leaf = &s.pair.leaf;
                let chain = s.pair.chain_pem.matches("-----BEGIN").count();
                let mut data = format!("tls.crt ({}), tls.key (redacted)", certificates(chain));
                if let Some(ca) = &s.ca {
                    data.push_str(&format!(", ca.crt ({})", certificates(ca.count)));
                }
                one(
                    &s.name,
                    src(&s.source),
                    vec![
                        ("type", "kubernetes.io/tls".into()),
                        ("subject", leaf.subject.clone()),
                        ("names", leaf.dns_names.join(", ")),
                        ("expires", leaf.not_after.clone()),
                        ("data", data),
                    ],
                )
            })
            .collect(),
        "ConfigMap" => r
            .config_maps
            .values()
            .map(|c| {
                one(
                    &c.name,
                    src(&c.source),
                    vec![("data", format!("ca.crt ({})", certificates(c.ca.count)))],
                )
            })
            .collect(),
        "AuthorizationPolicy" => r
            .authz
            .values()
            .map(|p| {
                let targets = match &p.targets {
                    Some(t) => t
                        .iter()
                        .map(|t| format!("Service/{t}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    None => format!("every Service in {}", p.namespace),
                };
                one(
                    &p.name,
                    src(&p.source),
                    vec![
                        ("targets", targets),
                        ("action", if p.deny { "DENY" } else { "ALLOW" }.into()),
                        ("rules", p.rules.len().to_string()),
                    ],
                )
            })
            .collect(),
        "PeerAuthentication" => r
            .peer_authn
            .values()
            .map(|p| {
                let selects = match &p.service {
                    Some(s) => format!("Service/{s}"),
                    None => format!("every Service in {}", p.namespace),
                };
                let mode = match p.mode {
                    Some(m) => m.as_str().to_string(),
                    None => "UNSET".into(),
                };
                one(
                    &p.name,
                    src(&p.source),
                    vec![("selects", selects), ("mode", mode)],
                )
            })
            .collect(),
        "TrafficPolicy" => r
            .traffic_policies
            .values()
            .map(|p| {
                let targets: Vec<String> =
                    p.targets.iter().map(|t| format!("Service/{t}")).collect();
                let mut sets = Vec::new();
                if let Some(lb) = &p.load_balancer {
                    use crate::resources::model::LbKind;
                    sets.push(
                        match lb.kind {
                            LbKind::RoundRobin => "ROUND_ROBIN",
                            LbKind::LeastRequest => "LEAST_REQUEST",
                            LbKind::PeakEwma => "PEAK_EWMA",
                            LbKind::RingHash => "RING_HASH",
                            LbKind::Maglev => "MAGLEV",
                        }
                        .to_string(),
                    );
                }
                if !p.breakers.is_empty() {
                    sets.push("circuitBreaker".into());
                }
                if p.outlier.is_some() {
                    sets.push("outlierDetection".into());
                }
                if p.retry_budget.is_some() {
                    sets.push("retryBudget".into());
                }
                if let Some(r) = &p.rate_limit {
                    sets.push(format!(
                        "rateLimit {}/s burst {}",
                        r.requests_per_second, r.burst
                    ));
                }
                if let Some(t) = p.panic_threshold {
                    sets.push(format!("panicThreshold {t}%"));
                }
                one(
                    &p.name,
                    src(&p.source),
                    vec![("targets", targets.join(", ")), ("sets", sets.join(", "))],
                )
            })
            .collect(),
        "Telemetry" => r
            .telemetry
            .values()
            .map(|t| {
                let targets = if t.targets.is_empty() {
                    format!("every workload in {}", t.namespace)
                } else {
                    t.targets
                        .iter()
                        .map(|target| match target {
                            TelemetryTarget::Service(s) => format!("Service/{s}"),
                            TelemetryTarget::Gateway(g) => format!("Gateway/{g}"),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let log = match &t.access_logging {
                    None => "inherit".to_string(),
                    Some(a) if a.disabled == Some(true) => "disabled".into(),
                    Some(a) => {
                        let mut parts =
                            vec![a.sink.as_ref().map_or("inherited file".into(), |s| {
                                format!("{} ({})", s.path, s.format)
                            })];
                        match a.min_status {
                            Some(Some(m)) => parts.push(format!("status >= {m}")),
                            Some(None) => parts.push("every status".into()),
                            None => {}
                        }
                        if let Some(p) = a.sample_percent {
                            parts.push(format!("{p}%"));
                        }
                        parts.join(", ")
                    }
                };
                let tracing = match &t.tracing {
                    None => "inherit".to_string(),
                    Some(tr) if tr.disabled == Some(true) => "disabled".into(),
                    Some(tr) => {
                        let mut parts = vec![tr
                            .collector
                            .clone()
                            .unwrap_or_else(|| "inherited collector".into())];
                        if let Some(p) = tr.sampling_percent {
                            parts.push(format!("{p}%"));
                        }
                        parts.join(", ")
                    }
                };
                one(
                    &t.name,
                    src(&t.source),
                    vec![
                        ("selects", targets),
                        ("accessLog", log),
                        ("tracing", tracing),
                    ],
                )
            })
            .collect(),
        _ => r
            .backend_tls
            .values()
            .map(|p| {
                let targets: Vec<String> =
                    p.targets.iter().map(|t| format!("Service/{t}")).collect();
                let ca = match &p.ca {
                    BackendCa::System => "System".to_string(),
                    BackendCa::Refs(refs) => refs
                        .iter()
                        .map(|r| match r {
                            CaRef::ConfigMap(n) => format!("ConfigMap/{n}"),
                            CaRef::Secret(n) => format!("Secret/{n}"),
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let client = p
                    .client_certificate
                    .as_ref()
                    .map(|n| format!("Secret/{n}"))
                    .unwrap_or_default();
                one(
                    &p.name,
                    src(&p.source),
                    vec![
                        ("targets", targets.join(", ")),
                        ("ca", ca),
                        ("hostname", p.hostname.clone()),
                        ("clientCertificate", client),
                    ],
                )
            })
            .collect(),
    }
}

fn certificates(n: usize) -> String {
    match n {
        1 => "1 certificate".into(),
        n => format!("{n} certificates"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::certs::testing::TestCa;

    #[test]
    fn get_shows_what_a_secret_holds_never_its_key() {
        let ca = TestCa::new("ca").unwrap();
        let leaf = ca.leaf(&["shop.example.com"]).unwrap();
        let block = |pem: &str| {
            pem.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        };
        let text = format!(
            "kind: Secret\nmetadata: {{ name: shop-cert }}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}  ca.crt: |\n{}---\nkind: Service\nmetadata: {{ name: s }}\n---\nkind: BackendTLSPolicy\nmetadata: {{ name: p }}\nspec:\n  targetRefs: [ {{ name: s }} ]\n  validation: {{ caCertificateRefs: [ {{ kind: Secret, name: shop-cert }} ], hostname: s.internal }}\n  options: {{ ringmesh.io/client-certificate: shop-cert }}\n",
            block(&leaf.cert_pem),
            block(&leaf.key_pem),
            block(&ca.cert_pem)
        );
        let res =
            crate::resources::parse(&[("m.yaml".into(), text)]).unwrap_or_else(|e| panic!("{e}"));
        let rows = summarize(&res, &Default::default(), "Secret");
        assert_eq!(rows.len(), 1);
        let s = &rows[0].summary;
        assert_eq!(s["names"], "shop.example.com");
        assert_eq!(s["subject"], "CN=shop.example.com");
        assert_eq!(
            s["data"],
            "tls.crt (1 certificate), tls.key (redacted), ca.crt (1 certificate)"
        );
        assert!(s["expires"].ends_with('Z'));
        let p = &summarize(&res, &Default::default(), "BackendTLSPolicy")[0].summary;
        assert_eq!(
            (
                p["targets"].as_str(),
                p["ca"].as_str(),
                p["hostname"].as_str(),
                p["clientCertificate"].as_str()
            ),
            (
                "Service/s",
                "Secret/shop-cert",
                "s.internal",
                "Secret/shop-cert"
            )
        );
        let key_body = leaf.key_pem.lines().nth(1).unwrap_or_default().to_string();
        for kind in [
            "Service",
            "HTTPRoute",
            "GRPCRoute",
            "TCPRoute",
            "Gateway",
            "Secret",
            "ConfigMap",
            "BackendTLSPolicy",
        ] {
            let shown = format!("{:?}", summarize(&res, &Default::default(), kind));
            assert!(
                !shown.contains(&key_body) && !shown.contains("PRIVATE"),
                "{kind}: {shown}"
            );
        }
    }

    #[test]
    fn kinds_by_any_name() {
        for (word, kind) in [
            ("secrets", "Secret"),
            ("Secret", "Secret"),
            ("cm", "ConfigMap"),
            ("configmaps", "ConfigMap"),
            ("backendtlspolicies", "BackendTLSPolicy"),
            ("BackendTLSPolicy", "BackendTLSPolicy"),
            ("authorizationpolicies", "AuthorizationPolicy"),
            ("AuthorizationPolicy", "AuthorizationPolicy"),
            ("peerauthentications", "PeerAuthentication"),
            ("PeerAuthentication", "PeerAuthentication"),
            ("pa", "PeerAuthentication"),
            ("telemetries", "Telemetry"),
            ("Telemetry", "Telemetry"),
            ("trafficpolicies", "TrafficPolicy"),
            ("tp", "TrafficPolicy"),
            ("gw", "Gateway"),
        ] {
            assert_eq!(kind_of(word), Some(kind), "{word}");
        }
        assert_eq!(kind_of("certificates"), None);
    }

    #[test]
    fn get_shows_what_a_telemetry_selects_logs_and_traces() {
        let res = crate::resources::parse(&[(
            "t.yaml".into(),
            crate::resources::validate_telemetry_mesh().into(),
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        let rows: Vec<(String, String, String, String)> =
            summarize(&res, &Default::default(), "Telemetry")
                .into_iter()
                .map(|r| {
                    (
                        r.name,
                        r.summary["selects"].clone(),
                        r.summary["accessLog"].clone(),
                        r.summary["tracing"].clone(),
                    )
                })
                .collect();
        let row = |a: &str, b: &str, c: &str, d: &str| {
            (a.to_string(), b.to_string(), c.to_string(), d.to_string())
        };
        assert_eq!(
            rows,
            [
                row(
                    "edge-stdout.shop",
                    "Gateway/edge.shop",
                    "- (text)",
                    "disabled"
                ),
                row(
                    "mesh-default.shop",
                    "every workload in shop",
                    "/var/log/ringmesh/access.log (json), status >= 400",
                    "otel.observability:4317, 10%"
                ),
                row(
                    "orders-quiet.shop",
                    "Service/orders.shop",
                    "disabled",
                    "inherit"
                ),
                row(
                    "web.shop",
                    "Service/web.shop",
                    "inherited file, every status, 50%",
                    "inherited collector, 100%"
                ),
            ]
        );
    }

    #[test]
    fn get_shows_what_a_peer_authentication_selects_and_its_mode() {
        let res = crate::resources::parse(&[(
            "p.yaml".into(),
            crate::resources::validate_peer_authn_mesh().into(),
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        let rows: Vec<(String, String, String, String)> =
            summarize(&res, &Default::default(), "PeerAuthentication")
                .into_iter()
                .map(|r| {
                    (
                        r.name,
                        r.summary["selects"].clone(),
                        r.summary["mode"].clone(),
                        r.source,
                    )
                })
                .collect();
        let row = |n: &str, s: &str, m: &str, src: &str| {
            (n.to_string(), s.to_string(), m.to_string(), src.to_string())
        };
        assert_eq!(
            rows,
            [
                row(
                    "cart-inherits.shop",
                    "Service/cart.shop",
                    "UNSET",
                    "p.yaml:30"
                ),
                row(
                    "default.shop",
                    "every Service in shop",
                    "STRICT",
                    "p.yaml:17"
                ),
                row("orders-strict", "Service/orders", "STRICT", "p.yaml:37"),
                row(
                    "web-permissive.shop",
                    "Service/web.shop",
                    "PERMISSIVE",
                    "p.yaml:23"
                ),
            ]
        );
    }
}
