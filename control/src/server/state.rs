//! What the control plane knows: the resources in force, the proxies that
//! are (or were) connected, and what each was sent, ACKed or NACKed.
//!
//! One lock around it all: every operation is short and the control plane
//! is off every request path. Streams learn of changes through a watch
//! channel carrying a generation number, which coalesces bursts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use ringmesh_proto::v1 as pb;
use tokio::sync::watch;

use crate::compile::{MeshContext, Workloads};
use crate::resources::Resources;

/// Per proxy, as `ringmeshctl status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyStatus {
    pub node: pb::Node,
    pub connected: bool,
    /// Version of the last snapshot sent, and of the last one ACKed.
    pub sent: Option<String>,
    pub acked: Option<String>,
    /// The last NACK: version and the proxy's errors.
    pub last_nack: Option<(String, Vec<String>)>,
    /// Why no config could be compiled for it (e.g. unknown Service).
    pub compile_error: Option<String>,
    /// The last certificate the CA issued it, kept across reconnects
    /// (the proxy keeps its certificate while the stream is away).
    pub identity: Option<IssuedIdentity>,
    pub since: SystemTime,
}

/// What `Identity/Sign` last issued to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedIdentity {
    /// `spiffe://<trust-domain>/ns/<namespace>/sa/<service>`.
    pub spiffe_id: String,
    pub not_after: SystemTime,
}

#[derive(Default)]
struct Inner {
    resources: Arc<Resources>,
    /// The last rejected resource change: its errors.
    rejected: Option<String>,
    proxies: BTreeMap<String, ProxyStatus>,
    /// Streams per node id; a reconnect supersedes the older stream.
    streams: BTreeMap<String, u64>,
    next_stream: u64,
    /// Until then, proxies that reconnect running a config keep it.
    resync_until: Option<std::time::Instant>,
}

pub struct Hub {
    inner: Mutex<Inner>,
    generation: watch::Sender<u64>,
    /// The trust domain and roots every config is compiled with: fixed
    /// for the run (flags and CA), so outside the lock.
    mesh: MeshContext,
}

impl Hub {
    pub fn new(resources: Resources, mesh: MeshContext) -> Arc<Hub> {
        let (generation, _) = watch::channel(0);
        Arc::new(Hub {
            inner: Mutex::new(Inner {
                resources: Arc::new(resources),
                ..Inner::default()
            }),
            generation,
            mesh,
        })
    }

    /// After a (re)start the control plane knows no sidecar: a proxy that
    /// reconnects first would be pushed a config without the endpoints of
    /// those that have not reconnected yet, and fail its calls to them
    /// until they do. For `grace` from now, reconnecting proxies keep the
    /// config they run (new proxies are served at once).
    pub fn hold_reconnected_for(&self, grace: std::time::Duration) {
        self.lock().resync_until = Some(std::time::Instant::now() + grace);
    }

    /// When a reconnected proxy may be pushed a config, if it must wait.
    pub fn resync_until(&self) -> Option<std::time::Instant> {
        self.lock()
            .resync_until
            .filter(|t| *t > std::time::Instant::now())
    }

    pub fn mesh(&self) -> &MeshContext {
        &self.mesh
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep
        // serving it rather than poisoning every later call.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    pub fn resources(&self) -> Arc<Resources> {
        self.lock().resources.clone()
    }

    /// A new valid resource set: in force from now, pushed to every proxy.
    pub fn set_resources(&self, r: Resources) {
        {
            let mut i = self.lock();
            i.resources = Arc::new(r);
            i.rejected = None;
        }
        self.bump();
    }

    /// A resource change that failed validation: kept out, reported.
    pub fn reject(&self, errors: String) {
        self.lock().rejected = Some(errors);
    }

    pub fn rejected(&self) -> Option<String> {
        self.lock().rejected.clone()
    }

    /// A proxy connected; returns its stream id.
    pub fn connect(&self, node: pb::Node) -> u64 {
        let id = {
            let mut i = self.lock();
            i.next_stream += 1;
            let stream = i.next_stream;
            i.streams.insert(node.id.clone(), stream);
            let prev = i.proxies.remove(&node.id);
            i.proxies.insert(
                node.id.clone(),
                ProxyStatus {
                    node,
                    connected: true,
                    sent: None,
                    acked: prev.as_ref().and_then(|p| p.acked.clone()),
                    identity: prev.as_ref().and_then(|p| p.identity.clone()),
                    last_nack: prev.and_then(|p| p.last_nack),
                    compile_error: None,
                    since: SystemTime::now(),
                },
            );
            stream
        };
        // Its workload is now an endpoint for everyone else.
        self.bump();
        id
    }

    /// A stream ended; the proxy is disconnected unless a newer stream for
    /// the same node took over.
    pub fn disconnect(&self, node_id: &str, stream: u64) {
        {
            let mut i = self.lock();
            if i.streams.get(node_id) != Some(&stream) {
                return;
            }
            i.streams.remove(node_id);
            if let Some(p) = i.proxies.get_mut(node_id) {
                p.connected = false;
                p.since = SystemTime::now();
            }
        }
        self.bump();
    }

    pub fn update(&self, node_id: &str, f: impl FnOnce(&mut ProxyStatus)) {
        if let Some(p) = self.lock().proxies.get_mut(node_id) {
            f(p);
        }
    }

    /// `Identity/Sign` issued a certificate to a node. A sidecar's first
    /// one makes it an endpoint of its Service (`workloads`): pushed now.
    pub fn issued(&self, node_id: &str, issued: IssuedIdentity) {
        self.update(node_id, |p| p.identity = Some(issued));
        self.bump();
    }

    /// What a proxy registered as, while its discovery stream is open.
    pub fn connected_node(&self, node_id: &str) -> Option<pb::Node> {
        self.lock()
            .proxies
            .get(node_id)
            .filter(|p| p.connected)
            .map(|p| p.node.clone())
    }

    pub fn proxies(&self) -> Vec<ProxyStatus> {
        self.lock().proxies.values().cloned().collect()
    }

    /// Connected sidecars that hold a workload certificate this control
    /// plane issued and that has not expired, by the Service they front:
    /// their inbound addresses are that Service's endpoints. A sidecar
    /// without one could not answer the mTLS its callers speak (Kubernetes
    /// keeps a pod out of its Service until it is ready, for the same
    /// reason); a sidecar signs again whenever it reconnects, so after a
    /// restart of the control plane it is back in a moment.
    pub fn workloads(&self) -> Workloads {
        let mut w = Workloads::new();
        let now = SystemTime::now();
        for p in self.lock().proxies.values() {
            if p.connected
                && p.node.role() == pb::Role::Sidecar
                && !p.node.inbound_address.is_empty()
                && p.identity.as_ref().is_some_and(|i| i.not_after > now)
            {
                w.entry(p.node.service.clone())
                    .or_default()
                    .insert(p.node.inbound_address.clone());
            }
        }
        w
    }
}
