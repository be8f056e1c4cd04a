//! The operator API `ringmeshctl` talks to.

use std::sync::Arc;

use ringmesh_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::state::Hub;
use crate::resources::model::{Parent, PathMatch, Resources};
use crate::store::{Store, StoreError};

pub struct OperatorService {
    pub hub: Arc<Hub>,
    pub store: Arc<Store>,
}

fn status(e: StoreError) -> Status {
    match e {
        StoreError::Invalid(lines) => Status::invalid_argument(lines.join("\n")),
        StoreError::NotFound(m) => Status::not_found(m),
        StoreError::Io(m) => Status::internal(m),
    }
}

/// `service`, `services`, `svc`, `httproute`, `routes`, ... -> the kind.
pub fn kind_of(word: &str) -> Option<&'static str> {
    match word.to_ascii_lowercase().as_str() {
        "service" | "services" | "svc" => Some("Service"),
        "httproute" | "httproutes" | "route" | "routes" => Some("HTTPRoute"),
        "gateway" | "gateways" | "gw" => Some("Gateway"),
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
                "unknown kind `{}`: Service, HTTPRoute or Gateway",
                req.kind
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
            Status::invalid_argument(format!(
                "unknown kind `{word}`: services, routes or gateways"
            ))
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
            })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            proxies,
            rejected: self.hub.rejected().unwrap_or_default(),
        }))
    }
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
        "HTTPRoute" => r
            .routes
            .values()
            .map(|rt| {
                let parents: Vec<String> = rt
                    .parents
                    .iter()
                    .map(|p| match p {
                        Parent::Service(n) => format!("Service/{n}"),
                        Parent::Gateway(n) => format!("Gateway/{n}"),
                    })
                    .collect();
                let rules: Vec<String> = rt
                    .rules
                    .iter()
                    .map(|rule| {
                        let when: Vec<String> = rule
                            .matches
                            .iter()
                            .map(|m| match &m.path {
                                PathMatch::Prefix(p) => format!("{p}*"),
                                PathMatch::Exact(p) => p.clone(),
                            })
                            .collect();
                        let to: Vec<String> = rule
                            .backends
                            .iter()
                            .map(|b| format!("{}={}", b.service, b.weight))
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
        _ => r
            .gateways
            .values()
            .map(|g| {
                let listeners: Vec<String> = g
                    .listeners
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.address))
                    .collect();
                one(
                    &g.name,
                    src(&g.source),
                    vec![("listeners", listeners.join(", "))],
                )
            })
            .collect(),
    }
}
