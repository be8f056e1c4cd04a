//! `ringmesh-control serve`: the gRPC discovery service over a watched
//! directory of resources.

pub mod discovery;
pub mod identity;
pub mod operator;
pub mod state;
pub mod telemetry;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ringmesh_proto::v1 as pb;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;

pub use state::Hub;

pub struct ServeOptions {
    pub resources: PathBuf,
    pub listen: SocketAddr,
    pub token: String,
    /// How often the resource directory is checked for changes.
    pub poll: std::time::Duration,
    /// The CA that signs workload identities.
    pub ca: Arc<ringmesh_pki::ca::Ca>,
    /// How long an issued identity certificate is valid.
    pub svid_lifetime: std::time::Duration,
    /// Extra roots proxies trust besides the CA's (`--trust-bundle`, PEM):
    /// the old root during a root rotation. Checked at start.
    pub trust_bundle: Option<String>,
    /// After the start, proxies that reconnect running a config keep it
    /// this long before a new one is pushed (`Hub::resync_until`).
    pub resync_grace: std::time::Duration,
    /// Serve TLS with this certificate chain and key (PEM): the stream
    /// carries inline keys and workload certificates.
    pub tls: Option<(String, String)>,
    /// What `ringmeshctl stat` looks back over (`--window`): rates and
    /// percentiles come from the proxies' reports in it.
    pub window: std::time::Duration,
}

/// Load the resources (refusing to start on errors), bind, and serve until
/// `shutdown` resolves. `bound` hears the address actually bound.
pub async fn serve(
    opts: ServeOptions,
    bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let resources = crate::resources::load_dir(&opts.resources).map_err(|e| e.to_string())?;
    let bundle_pem = identity::trust_bundle(
        &opts.ca,
        opts.trust_bundle.as_deref(),
        std::time::SystemTime::now(),
    )
    .map_err(|e| format!("--trust-bundle: {e}"))?;
    let mesh = crate::compile::MeshContext {
        trust_domain: opts.ca.trust_domain().to_string(),
        bundle_pem: bundle_pem.clone(),
    };
    let hub = Hub::new(resources, mesh);
    hub.hold_reconnected_for(opts.resync_grace);
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", opts.listen))?;
    bound(listener.local_addr().map_err(|e| e.to_string())?);
    let watcher = tokio::spawn(watch::watch_dir(
        opts.resources.clone(),
        hub.clone(),
        opts.poll,
    ));
    let service = discovery::DiscoveryService { hub: hub.clone() };
    let store = Arc::new(crate::store::Store::new(&opts.resources));
    let stats = Arc::new(crate::stats::Store::new(opts.window));
    let operator = operator::OperatorService {
        hub: hub.clone(),
        store,
        stats: stats.clone(),
    };
    let telemetry = telemetry::TelemetryService { store: stats };
    let identity = identity::IdentityService {
        hub: hub.clone(),
        ca: opts.ca.clone(),
        lifetime: opts.svid_lifetime,
        bundle_pem,
    };
    let auth = discovery::authenticate(Arc::from(opts.token.as_str()));
    // Snapshots are small and latency matters: no Nagle delay (with the
    // peer's delayed ACK it adds 40 ms to a push).
    let incoming = TcpListenerStream::new(listener).map(|s| {
        s.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    });
    let mut server = tonic::transport::Server::builder();
    if let Some((cert, key)) = &opts.tls {
        let identity = tonic::transport::Identity::from_pem(cert, key);
        server = server
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    }
    let result = server
        .add_service(pb::discovery_server::DiscoveryServer::with_interceptor(
            service,
            auth.clone(),
        ))
        .add_service(pb::identity_server::IdentityServer::with_interceptor(
            identity,
            auth.clone(),
        ))
        .add_service(pb::telemetry_server::TelemetryServer::with_interceptor(
            telemetry,
            auth.clone(),
        ))
        .add_service(pb::operator_server::OperatorServer::with_interceptor(
            operator, auth,
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| e.to_string());
    watcher.abort();
    result
}
