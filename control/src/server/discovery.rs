//! The discovery stream: snapshots out, ACKs and NACKs in.
//!
//! Per stream, one task owns the conversation: it compiles the proxy's
//! config whenever the hub's generation moves, sends it when it differs
//! from what the proxy last got (only the changed clusters' endpoints when
//! nothing else changed), and records each answer.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;

use prost::Message;
use ringmesh_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use super::state::Hub;
use crate::compile::compile_with;
use crate::resources::redact;

pub struct DiscoveryService {
    pub hub: Arc<Hub>,
}

type Out = Result<pb::DiscoveryResponse, Status>;

/// The version of a config: a hash of its encoding. Compiling is
/// deterministic, so equal configs have equal versions.
pub fn version_of(c: &pb::ProxyConfig) -> String {
    let mut h = DefaultHasher::new();
    c.encode_to_vec().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The clusters whose endpoints changed, when nothing else did.
fn endpoint_only_change(
    old: &pb::ProxyConfig,
    new: &pb::ProxyConfig,
) -> Option<Vec<pb::ClusterEndpoints>> {
    if old.listeners != new.listeners
        || old.runtime != new.runtime
        || old.admin != new.admin
        || old.mesh != new.mesh
        || old.clusters.len() != new.clusters.len()
    {
        return None;
    }
    let mut changed = Vec::new();
    for (a, b) in old.clusters.iter().zip(&new.clusters) {
        let same_but_endpoints = pb::Cluster {
            endpoints: Vec::new(),
            endpoint_details: Vec::new(),
            ..a.clone()
        } == pb::Cluster {
            endpoints: Vec::new(),
            endpoint_details: Vec::new(),
            ..b.clone()
        };
        if !same_but_endpoints {
            return None;
        }
        if a.endpoints != b.endpoints || a.endpoint_details != b.endpoint_details {
            changed.push(pb::ClusterEndpoints {
                cluster: b.name.clone(),
                endpoints: b.endpoints.clone(),
                endpoint_details: b.endpoint_details.clone(),
            });
        }
    }
    Some(changed)
}

#[tonic::async_trait]
impl pb::discovery_server::Discovery for DiscoveryService {
    type StreamStream = Pin<Box<dyn tokio_stream::Stream<Item = Out> + Send + 'static>>;

    async fn stream(
        &self,
        request: Request<Streaming<pb::DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let mut inbound = request.into_inner();
        let first = inbound.message().await?.ok_or_else(|| {
            Status::invalid_argument("the stream ended before saying who the proxy is")
        })?;
        let node = first
            .node
            .clone()
            .ok_or_else(|| Status::invalid_argument("the first request must carry `node`"))?;
        if node.id.is_empty() {
            return Err(Status::invalid_argument("node.id is empty"));
        }
        let (tx, rx) = mpsc::channel::<Out>(16);
        let hub = self.hub.clone();
        // Registered before the stream is answered: a proxy that sees its
        // stream open may ask for its identity at once (`Identity/Sign`).
        let stream = hub.connect(node.clone());
        tokio::spawn(async move {
            let id = node.id.clone();
            info!(node = %id, service = %node.service, role = ?node.role(), "proxy connected");
            let mut conv = Conversation {
                hub: hub.clone(),
                node,
                tx,
                sent: None,
                acked: None,
                refused: None,
                outstanding: false,
                nonce: 0,
            };
            // A proxy that reconnects says which version it runs: no need
            // to send that again.
            if !first.version.is_empty() {
                conv.hub
                    .update(&id, |p| p.acked = Some(first.version.clone()));
            }
            conv.run(inbound, first.version).await;
            hub.disconnect(&id, stream);
            info!(node = %id, "proxy disconnected");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Conversation {
    hub: Arc<Hub>,
    node: pb::Node,
    tx: mpsc::Sender<Out>,
    /// The last config sent, and its version.
    sent: Option<(pb::ProxyConfig, String)>,
    /// The last config the proxy ACKed: what it runs.
    acked: Option<(pb::ProxyConfig, String)>,
    /// The last version it NACKed: not sent again.
    refused: Option<String>,
    /// A response is on its way and not yet answered.
    outstanding: bool,
    nonce: u64,
}

impl Conversation {
    async fn run(&mut self, mut inbound: Streaming<pb::DiscoveryRequest>, running: String) {
        let mut changes = self.hub.subscribe();
        changes.mark_changed();
        let mut running = Some(running).filter(|v| !v.is_empty());
        // A proxy back after a restart of the control plane keeps what it
        // runs until the others are back too (`Hub::resync_until`).
        let hold = running.as_ref().and(self.hub.resync_until());
        let mut held = hold.is_some();
        let until = tokio::time::Instant::from_std(hold.unwrap_or_else(std::time::Instant::now));
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if !held && !self.push(running.take()).await {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(until), if held => {
                    held = false;
                    if !self.push(running.take()).await {
                        return;
                    }
                }
                msg = inbound.message() => match msg {
                    Ok(Some(req)) => self.answer(req),
                    Ok(None) | Err(_) => return,
                },
            }
        }
    }

    /// Compile and send if the proxy's config changed. False when the
    /// stream is gone.
    async fn push(&mut self, running: Option<String>) -> bool {
        let id = self.node.id.clone();
        let config = match compile_with(
            &self.hub.resources(),
            &self.node,
            &self.hub.workloads(),
            self.hub.mesh(),
        ) {
            Ok(c) => c,
            Err(e) => {
                warn!(node = %id, error = %e, "cannot compile a config for this proxy");
                let msg = e.to_string();
                self.hub.update(&id, |p| p.compile_error = Some(msg));
                return true;
            }
        };
        self.hub.update(&id, |p| p.compile_error = None);
        let version = version_of(&config);
        if self.sent.as_ref().map(|s| &s.1) == Some(&version)
            || self.refused.as_ref() == Some(&version)
        {
            return true;
        }
        if running.as_ref() == Some(&version) {
            // Reconnected and already running it.
            self.hub.update(&id, |p| p.sent = Some(version.clone()));
            self.sent = Some((config.clone(), version.clone()));
            self.acked = Some((config, version));
            return true;
        }
        // An endpoint-only update is applied to what the proxy runs, so it
        // is computed against the ACKed config, and only when no other
        // response is still unanswered (that one might be refused).
        let base = if self.outstanding {
            None
        } else {
            self.acked.as_ref()
        };
        let resource = match base.and_then(|(old, _)| endpoint_only_change(old, &config)) {
            Some(clusters) => {
                pb::discovery_response::Resource::Endpoints(pb::EndpointUpdate { clusters })
            }
            None => pb::discovery_response::Resource::Config(config.clone()),
        };
        self.nonce += 1;
        let response = pb::DiscoveryResponse {
            version: version.clone(),
            nonce: self.nonce.to_string(),
            resource: Some(resource),
        };
        if self.tx.send(Ok(response)).await.is_err() {
            return false;
        }
        info!(node = %id, %version, "snapshot sent");
        self.hub.update(&id, |p| p.sent = Some(version.clone()));
        self.sent = Some((config, version));
        self.outstanding = true;
        true
    }

    fn answer(&mut self, req: pb::DiscoveryRequest) {
        let id = &self.node.id;
        if req.response_nonce != self.nonce.to_string() {
            // An answer to a response that has since been superseded.
            return;
        }
        match req.nack {
            None => {
                info!(node = %id, version = %req.version, "ACK");
                self.hub.update(id, |p| p.acked = Some(req.version.clone()));
                self.acked = self.sent.clone();
                self.outstanding = false;
            }
            Some(nack) => {
                // The proxy's messages never quote keys; redacted anyway,
                // as they reach the log and `ringmeshctl status`.
                let errors: Vec<String> = nack.errors.iter().map(|e| redact(e)).collect();
                warn!(node = %id, version = %req.version, ?errors, "NACK");
                // The proxy still runs what it ACKed last.
                self.refused = Some(req.version.clone());
                self.sent = self.acked.clone();
                self.outstanding = false;
                self.hub.update(id, |p| {
                    p.last_nack = Some((req.version.clone(), errors.clone()))
                });
            }
        }
    }
}

/// Refuse streams without `authorization: Bearer <token>`.
pub fn authenticate(
    token: Arc<str>,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |req: Request<()>| {
        let ok = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
        if ok {
            Ok(req)
        } else {
            Err(Status::unauthenticated(
                "missing or wrong bootstrap token (metadata `authorization: Bearer <token>`)",
            ))
        }
    }
}

/// Compare without leaking, through timing, how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(name: &str, eps: &[&str]) -> pb::Cluster {
        pb::Cluster {
            name: name.into(),
            endpoints: eps.iter().map(|e| e.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn endpoint_only_changes_are_told_apart() {
        let old = pb::ProxyConfig {
            clusters: vec![cluster("a", &["1.1.1.1:1"]), cluster("b", &[])],
            ..Default::default()
        };
        let mut new = old.clone();
        new.clusters[1].endpoints.push("2.2.2.2:2".into());
        let changed = endpoint_only_change(&old, &new).unwrap();
        assert_eq!(
            changed,
            [pb::ClusterEndpoints {
                cluster: "b".into(),
                endpoints: vec!["2.2.2.2:2".into()],
                endpoint_details: vec![],
            }]
        );
        new.clusters[1].lb = pb::LbPolicy::LeastRequest as i32;
        assert_eq!(
            endpoint_only_change(&old, &new),
            None,
            "a cluster setting changed"
        );
        let mut new = old.clone();
        new.mesh = Some(pb::Mesh::default());
        assert_eq!(endpoint_only_change(&old, &new), None, "the mesh changed");
        let mut new = old.clone();
        new.clusters[1].mesh = Some(pb::MeshUpstream {
            identity: "spiffe://cluster.local/ns/default/sa/b".into(),
        });
        assert_eq!(
            endpoint_only_change(&old, &new),
            None,
            "a cluster became meshed"
        );
        let mut new = old.clone();
        new.listeners.push(pb::Listener::default());
        assert_eq!(endpoint_only_change(&old, &new), None, "a listener changed");
        assert_ne!(version_of(&old), version_of(&new));
        assert_eq!(version_of(&old), version_of(&old.clone()));
    }

    #[test]
    fn tokens() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        let auth = authenticate(Arc::from("s3cret"));
        let mut req = Request::new(());
        assert_eq!(
            auth(Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        req.metadata_mut()
            .insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(auth(req).is_ok());
    }
}
