//! The control agent: the proxy's side of the discovery stream.
//!
//! It runs on a thread of its own with a small tokio runtime, off the
//! request cores. It holds the stream to `ringmesh-control`, turns each
//! snapshot into a validated `Config` by the same path a file takes
//! (`config::proto` then `config::validate`), hands it to the main thread
//! to apply on every core, and answers ACK or NACK (with the errors).
//! When the control plane is away it keeps the last good config in force
//! and reconnects with jittered exponential backoff, telling the control
//! plane which version it runs.
//!
//! Beside the stream it keeps the workload certificate (`identity`); each
//! new one (and an expiry) has the running config validated again and
//! applied, so mesh TLS everywhere carries the certificate in force.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use ringmesh_proto::v1 as pb;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{info, warn};

use crate::config::{self, Config};
use crate::identity::Published;

pub struct AgentOptions {
    /// Where ringmesh-control is, and how to trust it.
    pub control: ControlPlane,
    pub token: String,
    pub node: pb::Node,
    /// Runtime and admin settings come from the local bootstrap file, not
    /// the control plane: they apply at start only.
    pub runtime: Option<pb::Runtime>,
    pub admin: Option<pb::Admin>,
    /// Traffic reports (`Telemetry/Report`) are sent this often, read
    /// from here (`report`).
    pub stats_interval: Duration,
    pub stats: Arc<crate::report::StatsSource>,
}

/// ringmesh-control's address, and for `https://`, the CA its certificate
/// chains to: the discovery stream and `Identity/Sign` (which carry
/// inline keys and the workload certificates) then run over TLS.
#[derive(Clone)]
pub struct ControlPlane {
    pub endpoint: String,
    tls: Option<tonic::transport::ClientTlsConfig>,
}

impl ControlPlane {
    pub fn new(endpoint: String, ca_pem: Option<String>) -> Result<ControlPlane, String> {
        let https = endpoint.starts_with("https://");
        let tls = match (https, ca_pem) {
            (false, None) => None,
            (false, Some(_)) => {
                return Err(format!(
                    "--control-plane-ca is for an https:// control plane, not {endpoint}"
                ))
            }
            (true, None) => {
                return Err(format!(
                    "{endpoint}: give the CA its certificate chains to (--control-plane-ca)"
                ))
            }
            (true, Some(pem)) => {
                if ringmesh_pki::pem::certificates(pem.as_bytes()).is_err() {
                    return Err("--control-plane-ca holds no PEM certificate".into());
                }
                Some(
                    tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
                )
            }
        };
        Ok(ControlPlane { endpoint, tls })
    }

    /// A gRPC channel to it (TLS when `https://`).
    pub async fn connect(&self) -> Result<tonic::transport::Channel, String> {
        let mut e = tonic::transport::Endpoint::from_shared(self.endpoint.clone())
            .map_err(|e| format!("{}: {e}", self.endpoint))?
            .connect_timeout(Duration::from_secs(2))
            // A control plane that vanished without a FIN (a node lost)
            // is noticed by HTTP/2 pings, not after the kernel's hours.
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            e = e
                .tls_config(tls.clone())
                .map_err(|e| format!("{}: {e}", self.endpoint))?;
        }
        e.connect()
            .await
            .map_err(|e| format!("{}: {}", self.endpoint, chain(&e)))
    }
}

/// An error with its causes (tonic's own says only "transport error").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// A validated snapshot for the main thread to apply. It answers on
/// `reply`: Ok when every core has it, Err (the reason) when it cannot be
/// applied (e.g. it changes listeners).
pub struct Snapshot {
    pub config: Arc<Config>,
    pub version: String,
    pub reply: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Start the agent thread; snapshots arrive through `deliver`.
pub fn spawn<E: From<Snapshot> + Send + 'static>(
    opts: AgentOptions,
    deliver: Sender<E>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ringmesh-agent".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    warn!(error = %e, "control agent cannot start its runtime");
                    return;
                }
            };
            rt.block_on(run(opts, deliver));
        })?;
    Ok(())
}

/// The config the proxy runs, as the control plane sent it, and its version.
type Running = Option<(pb::ProxyConfig, String)>;

async fn run<E: From<Snapshot>>(opts: AgentOptions, deliver: Sender<E>) {
    // The workload certificate is asked for (and renewed) beside the
    // stream; it is issued once the stream has registered the node.
    let (publish, mut identity) = tokio::sync::watch::channel(None);
    let resign = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(crate::identity::maintain(
        opts.control.clone(),
        opts.token.clone(),
        opts.node.id.clone(),
        publish,
        resign.clone(),
    ));
    tokio::spawn(crate::report::run(
        opts.control.clone(),
        opts.token.clone(),
        opts.node.id.clone(),
        opts.stats.clone(),
        opts.stats_interval,
    ));
    let mut running: Running = None;
    let mut backoff = Backoff::default();
    loop {
        let mut s = Session {
            running: &mut running,
            backoff: &mut backoff,
            identity: &mut identity,
            resign: &resign,
        };
        match session(&opts, &deliver, &mut s).await {
            Ok(()) => info!("control plane closed the stream; reconnecting"),
            Err(e) => warn!(error = %e, "control plane unreachable; the config in force stays"),
        }
        // An expiry while the control plane is away still applies.
        let pause = tokio::time::sleep(backoff.next());
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                Ok(()) = identity.changed() => reapply(&opts, &deliver, &running, &identity).await,
            }
        }
    }
}

/// The workload certificate changed: the running config again, with it.
async fn reapply<E: From<Snapshot>>(
    opts: &AgentOptions,
    deliver: &Sender<E>,
    running: &Running,
    identity: &Published,
) {
    let Some((wire, version)) = running else {
        return;
    };
    match install(opts, deliver, wire, version, identity).await {
        Ok(()) => info!(version = %version, "workload certificate in force on every core"),
        Err(errors) => warn!(errors = ?errors, "the new workload certificate could not be applied"),
    }
}

/// Exponential backoff from 100 ms to 10 s, with full jitter so a fleet of
/// proxies does not reconnect in lockstep when the control plane returns.
#[derive(Default)]
pub(crate) struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub(crate) fn next(&mut self) -> Duration {
        let cap = Duration::from_millis(100)
            .saturating_mul(1 << self.attempt.min(7))
            .min(Duration::from_secs(10));
        self.attempt += 1;
        Duration::from_millis(fastrand::u64(
            cap.as_millis() as u64 / 2..=cap.as_millis() as u64,
        ))
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// What a session works with, kept across sessions.
struct Session<'a> {
    running: &'a mut Running,
    backoff: &'a mut Backoff,
    identity: &'a mut Published,
    resign: &'a tokio::sync::Notify,
}

/// How long the control plane may take to answer the discovery stream's
/// opening (it registers the node first: milliseconds).
const STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the first config waits for the workload certificate before it
/// is applied without one (mesh traffic is refused until it comes): the
/// proxy reports ready only once it can serve its mesh listeners.
const FIRST_IDENTITY_WAIT: Duration = Duration::from_secs(15);

async fn session<E: From<Snapshot>>(
    opts: &AgentOptions,
    deliver: &Sender<E>,
    s: &mut Session<'_>,
) -> Result<(), String> {
    let Session {
        running,
        backoff,
        identity,
        resign,
    } = s;
    let channel = opts.control.connect().await?;
    let mut client = pb::discovery_client::DiscoveryClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let hello = pb::DiscoveryRequest {
        node: Some(opts.node.clone()),
        version: running.as_ref().map(|r| r.1.clone()).unwrap_or_default(),
        ..Default::default()
    };
    tx.send(hello).await.map_err(|e| e.to_string())?;
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    let auth = format!("Bearer {}", opts.token)
        .parse()
        .map_err(|_| "the token is not a valid header value".to_string())?;
    req.metadata_mut().insert("authorization", auth);
    // A control plane that accepts the connection but never answers (hung,
    // or not a control plane) must not hold the agent forever.
    let mut stream = tokio::time::timeout(STREAM_OPEN_TIMEOUT, client.stream(req))
        .await
        .map_err(|_| {
            format!(
                "{}: no answer to the discovery stream within {STREAM_OPEN_TIMEOUT:?}",
                opts.control.endpoint
            )
        })?
        .map_err(|s| format!("{}: {}", s.code(), s.message()))?
        .into_inner();
    info!(endpoint = %opts.control.endpoint, node = %opts.node.id, "connected to the control plane");
    // The control plane registered the node before answering: its CA
    // signs now (again, after a reconnect: a restarted control plane
    // makes a sidecar an endpoint only once it issued it a certificate).
    resign.notify_one();
    backoff.reset();
    loop {
        let resp = tokio::select! {
            m = stream.message() => m.map_err(|s| format!("{}: {}", s.code(), s.message()))?,
            Ok(()) = identity.changed() => {
                reapply(opts, deliver, running, identity).await;
                continue;
            }
        };
        let Some(resp) = resp else { break };
        if running.is_none() && uses_mesh(&resp) && identity.borrow().is_none() {
            info!("waiting for the workload certificate before serving the mesh");
            let _ = tokio::time::timeout(FIRST_IDENTITY_WAIT, identity.changed()).await;
        }
        let answer = match apply(opts, deliver, running, &resp, identity).await {
            Ok(()) => {
                info!(version = %resp.version, "snapshot applied; ACK");
                pb::DiscoveryRequest {
                    version: resp.version.clone(),
                    response_nonce: resp.nonce.clone(),
                    ..Default::default()
                }
            }
            Err(errors) => {
                crate::metrics::config_updates::rejected();
                warn!(version = %resp.version, errors = ?errors, "snapshot rejected; NACK, the config in force stays");
                pb::DiscoveryRequest {
                    version: resp.version.clone(),
                    response_nonce: resp.nonce.clone(),
                    nack: Some(pb::Nack { errors }),
                    ..Default::default()
                }
            }
        };
        tx.send(answer).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Validate a response and have it applied; the errors if it cannot be.
async fn apply<E: From<Snapshot>>(
    opts: &AgentOptions,
    deliver: &Sender<E>,
    running: &mut Running,
    resp: &pb::DiscoveryResponse,
    identity: &Published,
) -> Result<(), Vec<String>> {
    let wire = next_config(running.as_ref().map(|r| &r.0), resp)?;
    install(opts, deliver, &wire, &resp.version, identity).await?;
    *running = Some((wire, resp.version.clone()));
    Ok(())
}

/// Validate a config (with the local runtime and admin settings and the
/// workload certificate in force) and have every core run it.
async fn install<E: From<Snapshot>>(
    opts: &AgentOptions,
    deliver: &Sender<E>,
    wire: &pb::ProxyConfig,
    version: &str,
    identity: &Published,
) -> Result<(), Vec<String>> {
    let mut full = wire.clone();
    full.runtime = opts.runtime.clone();
    full.admin = opts.admin.clone();
    let issued = identity.borrow().clone();
    let config = config::validate(
        &config::proto::to_raw(&full),
        &format!("snapshot {version}"),
        crate::tls::mesh::IdentitySource::Issued(issued),
    )
    .map_err(|e| e.to_string().lines().map(String::from).collect::<Vec<_>>())?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let config = Arc::new(config);
    let snapshot = Snapshot {
        config: config.clone(),
        version: version.to_string(),
        reply,
    };
    deliver
        .send(E::from(snapshot))
        .map_err(|_| vec!["the proxy is shutting down".to_string()])?;
    match answer.await {
        Ok(Ok(())) => {
            opts.stats.set_config(config);
            Ok(())
        }
        Ok(Err(why)) => Err(vec![why]),
        Err(_) => Err(vec!["the proxy is shutting down".to_string()]),
    }
}

/// Whether a response is a config with mesh listeners or clusters.
fn uses_mesh(resp: &pb::DiscoveryResponse) -> bool {
    match &resp.resource {
        Some(pb::discovery_response::Resource::Config(c)) => {
            c.listeners.iter().any(|l| l.mesh.is_some())
                || c.clusters.iter().any(|c| c.mesh.is_some())
        }
        _ => false,
    }
}

/// The whole config a response describes: its config, or the running one
/// with some clusters' endpoints replaced.
fn next_config(
    running: Option<&pb::ProxyConfig>,
    resp: &pb::DiscoveryResponse,
) -> Result<pb::ProxyConfig, Vec<String>> {
    match &resp.resource {
        Some(pb::discovery_response::Resource::Config(c)) => Ok(c.clone()),
        Some(pb::discovery_response::Resource::Endpoints(update)) => {
            let mut c = running
                .cloned()
                .ok_or_else(|| vec!["an endpoint update before any config".to_string()])?;
            for ce in &update.clusters {
                let cluster = c
                    .clusters
                    .iter_mut()
                    .find(|k| k.name == ce.cluster)
                    .ok_or_else(|| {
                        vec![format!(
                            "endpoint update for unknown cluster `{}`",
                            ce.cluster
                        )]
                    })?;
                cluster.endpoints = ce.endpoints.clone();
                cluster.endpoint_details = ce.endpoint_details.clone();
            }
            Ok(c)
        }
        None => Err(vec![
            "a response with neither config nor endpoints".to_string()
        ]),
    }
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
    fn endpoint_updates_apply_to_the_running_config() {
        let running = pb::ProxyConfig {
            clusters: vec![cluster("a", &["127.0.0.1:1"]), cluster("b", &[])],
            ..Default::default()
        };
        let update = |name: &str| pb::DiscoveryResponse {
            resource: Some(pb::discovery_response::Resource::Endpoints(
                pb::EndpointUpdate {
                    clusters: vec![pb::ClusterEndpoints {
                        cluster: name.into(),
                        endpoints: vec!["127.0.0.1:2".into()],
                        endpoint_details: vec![pb::Endpoint {
                            address: "127.0.0.1:3".into(),
                            weight: 2,
                            zone: "z".into(),
                        }],
                    }],
                },
            )),
            ..Default::default()
        };
        let next = next_config(Some(&running), &update("b")).unwrap();
        assert_eq!(next.clusters[1].endpoints, ["127.0.0.1:2"]);
        assert_eq!(next.clusters[1].endpoint_details[0].weight, 2);
        assert_eq!(next.clusters[0], running.clusters[0]);
        assert_eq!(
            next_config(Some(&running), &update("zz")).unwrap_err(),
            ["endpoint update for unknown cluster `zz`"]
        );
        assert!(next_config(None, &update("b")).is_err());
    }

    #[test]
    fn backoff_grows_jittered_and_capped() {
        let mut b = Backoff::default();
        let first = b.next();
        assert!(
            first >= Duration::from_millis(50) && first <= Duration::from_millis(100),
            "{first:?}"
        );
        for _ in 0..20 {
            assert!(b.next() <= Duration::from_secs(10));
        }
        let late = b.next();
        assert!(late >= Duration::from_secs(5), "{late:?}");
        b.reset();
        assert!(b.next() <= Duration::from_millis(100));
    }
}
