//! The discovery service over real gRPC on loopback: auth, snapshots,
//! ACK/NACK bookkeeping, pushes on resource changes, endpoint-only
//! updates, rejected changes.

// Test helpers unwrap like the tests themselves: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ringmesh_control::server::{serve, Hub, ServeOptions};
use ringmesh_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;

const TOKEN: &str = "test-token-0123456789";

const SERVICES: &str = "kind: Service\nmetadata: { name: web }\n---\nkind: Service\nmetadata: { name: api }\nspec: { endpoints: [127.0.0.1:9001] }\n";

struct Plane {
    addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Plane {
    start_with(None).await
}

/// A control plane whose proxies also trust `trust_bundle` (PEM).
async fn start_with(trust_bundle: Option<String>) -> Plane {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("services.yaml"), SERVICES).unwrap();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let opts = ServeOptions {
        resources: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        token: TOKEN.into(),
        poll: Duration::from_millis(100),
        ca: Arc::new(
            ringmesh_pki::ca::Ca::generate(
                "cluster.local",
                Duration::from_secs(3600),
                std::time::SystemTime::now(),
            )
            .unwrap(),
        ),
        svid_lifetime: Duration::from_secs(600),
        trust_bundle,
        resync_grace: Duration::ZERO,
        tls: None,
        window: Duration::from_secs(30),
    };
    tokio::spawn(serve(
        opts,
        move |a| {
            let _ = addr_tx.send(a);
        },
        async move { drop(stopped.await) },
    ));
    Plane {
        addr: addr_rx.await.unwrap(),
        dir,
        _stop: stop,
    }
}

fn sidecar(id: &str, service: &str, inbound: &str) -> pb::Node {
    pb::Node {
        id: id.into(),
        service: service.into(),
        role: pb::Role::Sidecar as i32,
        workload_address: "127.0.0.1:7000".into(),
        inbound_address: inbound.into(),
        outbound_address: "127.0.0.1:7002".into(),
    }
}

/// A proxy's side of the stream.
struct Proxy {
    tx: mpsc::Sender<pb::DiscoveryRequest>,
    rx: tonic::Streaming<pb::DiscoveryResponse>,
}

async fn connect(
    addr: std::net::SocketAddr,
    token: &str,
    node: pb::Node,
) -> Result<Proxy, tonic::Status> {
    let mut client = pb::discovery_client::DiscoveryClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(8);
    tx.send(pb::DiscoveryRequest {
        node: Some(node),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut req = Request::new(ReceiverStream::new(rx));
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let rx = client.stream(req).await?.into_inner();
    Ok(Proxy { tx, rx })
}

impl Proxy {
    async fn next(&mut self) -> pb::DiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message())
            .await
            .expect("a response in time")
            .unwrap()
            .unwrap()
    }

    async fn ack(&self, r: &pb::DiscoveryResponse) {
        self.tx
            .send(pb::DiscoveryRequest {
                version: r.version.clone(),
                response_nonce: r.nonce.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    async fn nack(&self, r: &pb::DiscoveryResponse, why: &str) {
        let nack = Some(pb::Nack {
            errors: vec![why.into()],
        });
        self.tx
            .send(pb::DiscoveryRequest {
                version: r.version.clone(),
                response_nonce: r.nonce.clone(),
                nack,
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

fn config(r: &pb::DiscoveryResponse) -> &pb::ProxyConfig {
    match &r.resource {
        Some(pb::discovery_response::Resource::Config(c)) => c,
        other => panic!("expected a full config, got {other:?}"),
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn status(hub: &Arc<Hub>, id: &str) -> ringmesh_control::server::state::ProxyStatus {
    hub.proxies().into_iter().find(|p| p.node.id == id).unwrap()
}

#[tokio::test]
async fn a_stream_without_the_token_is_refused() {
    let plane = start().await;
    let err = connect(
        plane.addr,
        "wrong-token",
        sidecar("a", "web", "127.0.0.1:7101"),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn snapshots_acks_pushes_and_endpoint_updates() {
    let plane = start().await;
    let mut a = connect(plane.addr, TOKEN, sidecar("a", "web", "127.0.0.1:7101"))
        .await
        .unwrap();
    let first = a.next().await;
    let web = |r: &pb::DiscoveryResponse| {
        config(r)
            .clusters
            .iter()
            .find(|c| c.name == "web")
            .unwrap()
            .endpoints
            .clone()
    };
    assert!(
        web(&first).is_empty(),
        "not an endpoint before it holds a certificate"
    );
    a.ack(&first).await;
    sign_node(plane.addr, "a").await;
    let signed = a.next().await;
    assert_eq!(
        web(&signed),
        ["127.0.0.1:7101"],
        "a registered itself as web's endpoint"
    );
    a.ack(&signed).await;

    // A second sidecar of `web`: a only hears about the new endpoint.
    let mut b = connect(plane.addr, TOKEN, sidecar("b", "web", "127.0.0.1:7201"))
        .await
        .unwrap();
    let _ = b.next().await;
    sign_node(plane.addr, "b").await;
    let update = a.next().await;
    match &update.resource {
        Some(pb::discovery_response::Resource::Endpoints(u)) => {
            assert_eq!(
                u.clusters,
                [pb::ClusterEndpoints {
                    cluster: "web".into(),
                    endpoints: vec!["127.0.0.1:7101".into(), "127.0.0.1:7201".into()],
                    endpoint_details: vec![],
                }]
            );
        }
        other => panic!("expected an endpoint-only update, got {other:?}"),
    }
    assert_ne!(update.version, signed.version);

    // A resource change: a new route reaches a as a full snapshot.
    write(plane.dir.path(), "kind: HTTPRoute\nmetadata: { name: api-route }\nspec: { parentRefs: [ { name: api } ], rules: [ { backendRefs: [ { name: web } ] } ] }\n");
    let pushed = a.next().await;
    let routes: Vec<String> = config(&pushed).listeners[1]
        .routes
        .iter()
        .filter_map(|r| r.name.clone())
        .collect();
    assert!(routes.contains(&"api-route.0".to_string()), "{routes:?}");
    a.nack(&pushed, "listeners[1].routes[0].cluster: unknown cluster")
        .await;

    // b disconnects: a is told its endpoint is gone. It refused the last
    // snapshot, so the update is a whole config, not a diff against it.
    drop(b);
    let update = a.next().await;
    let web = config(&update)
        .clusters
        .iter()
        .find(|c| c.name == "web")
        .unwrap()
        .clone();
    assert_eq!(web.endpoints, ["127.0.0.1:7101"]);
}

#[tokio::test]
async fn a_bad_resource_change_is_rejected_and_the_old_one_stays() {
    let plane = start().await;
    let mut a = connect(plane.addr, TOKEN, sidecar("a", "web", "127.0.0.1:7101"))
        .await
        .unwrap();
    let first = a.next().await;
    a.ack(&first).await;
    write(plane.dir.path(), "kind: HTTPRoute\nmetadata: { name: r }\nspec: { parentRefs: [ { name: nope } ], rules: [ { backendRefs: [ { name: web } ] } ] }\n");
    // Nothing is pushed for a rejected change; a valid one after it is.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // It injects a fault, which reaches the proxy as the route's `fault`.
    write(plane.dir.path(), "kind: HTTPRoute\nmetadata: { name: r }\nspec: { parentRefs: [ { name: api } ], rules: [ { backendRefs: [ { name: web } ], fault: { abort: { httpStatus: 503, percent: 2.5 } } } ] }\n");
    let next = a.next().await;
    let r = config(&next).listeners[1]
        .routes
        .iter()
        .find(|r| r.name.as_deref() == Some("r.0"))
        .unwrap();
    assert_eq!(
        r.fault,
        Some(pb::Fault {
            delay: None,
            abort: Some(pb::FaultAbort {
                status: 503,
                percent: 2.5
            }),
        })
    );
}

fn write(dir: &Path, text: &str) {
    std::fs::write(dir.join("routes.yaml"), text).unwrap();
}

#[tokio::test]
async fn the_hub_tracks_sent_acked_and_nacked_versions() {
    let hub = Hub::new(
        ringmesh_control::resources::parse(&[("s.yaml".into(), SERVICES.into())]).unwrap(),
        Default::default(),
    );
    let svc = ringmesh_control::server::discovery::DiscoveryService { hub: hub.clone() };
    let auth = ringmesh_control::server::discovery::authenticate(Arc::from(TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::discovery_server::DiscoveryServer::with_interceptor(
                svc, auth,
            ))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut a = connect(addr, TOKEN, sidecar("a", "web", "127.0.0.1:7101"))
        .await
        .unwrap();
    let first = a.next().await;
    eventually("sent recorded", || {
        status(&hub, "a").sent.as_deref() == Some(first.version.as_str())
    })
    .await;
    assert_eq!(status(&hub, "a").acked, None);
    a.ack(&first).await;
    eventually("ack recorded", || {
        status(&hub, "a").acked.as_deref() == Some(first.version.as_str())
    })
    .await;
    hub.set_resources(
        ringmesh_control::resources::parse(&[("s.yaml".into(), SERVICES.replace("9001", "9009"))])
            .unwrap(),
    );
    let second = a.next().await;
    a.nack(&second, "bad").await;
    eventually("nack recorded", || {
        status(&hub, "a").last_nack == Some((second.version.clone(), vec!["bad".into()]))
    })
    .await;
    assert_eq!(
        status(&hub, "a").acked.as_deref(),
        Some(first.version.as_str()),
        "the NACKed version is not in force"
    );
    // A sidecar for a Service that does not exist gets no config, and says why.
    let _c = connect(addr, TOKEN, sidecar("c", "ghost", "127.0.0.1:7301"))
        .await
        .unwrap();
    eventually("compile error recorded", || {
        hub.proxies()
            .iter()
            .any(|p| p.node.id == "c" && p.compile_error.is_some())
    })
    .await;
    drop(a);
    eventually("disconnect recorded", || !status(&hub, "a").connected).await;
}

#[tokio::test]
async fn after_a_nack_the_next_update_is_computed_against_what_the_proxy_runs() {
    let plane = start().await;
    let mut a = connect(plane.addr, TOKEN, sidecar("a", "web", "127.0.0.1:7101"))
        .await
        .unwrap();
    let first = a.next().await;
    a.ack(&first).await;
    sign_node(plane.addr, "a").await;
    let signed = a.next().await;
    a.ack(&signed).await;
    write(plane.dir.path(), "kind: HTTPRoute\nmetadata: { name: r }\nspec: { parentRefs: [ { name: api } ], rules: [ { backendRefs: [ { name: web } ] } ] }\n");
    let refused = a.next().await;
    a.nack(&refused, "listeners changed").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // web gains an endpoint. Against the refused config that is an
    // endpoint-only change; against the one a runs (without the route) it
    // is not: a must get a whole config.
    let mut b = connect(plane.addr, TOKEN, sidecar("b", "web", "127.0.0.1:7201"))
        .await
        .unwrap();
    let _ = b.next().await;
    sign_node(plane.addr, "b").await;
    let next = a.next().await;
    let c = config(&next);
    assert!(c.listeners[1]
        .routes
        .iter()
        .any(|r| r.name.as_deref() == Some("r.0")));
    let web = c.clusters.iter().find(|c| c.name == "web").unwrap();
    assert_eq!(web.endpoints, ["127.0.0.1:7101", "127.0.0.1:7201"]);
}

async fn sign(
    addr: std::net::SocketAddr,
    node_id: &str,
    csr_pem: String,
) -> Result<pb::SignResponse, tonic::Status> {
    let mut client = pb::identity_client::IdentityClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut req = Request::new(pb::SignRequest {
        node_id: node_id.into(),
        csr_pem,
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    client.sign(req).await.map(|r| r.into_inner())
}

/// Have `node_id` sign for its identity, as a proxy does once its stream
/// is open: only then is a sidecar an endpoint of its Service.
async fn sign_node(addr: std::net::SocketAddr, node_id: &str) {
    use ringmesh_pki::csr::{csr_pem, KeyPair};
    let key = KeyPair::generate().unwrap();
    sign(addr, node_id, csr_pem(&key).unwrap()).await.unwrap();
}

/// The operator API's view of one proxy (what `ringmeshctl status` prints).
async fn proxy_state(addr: std::net::SocketAddr, node_id: &str) -> pb::ProxyState {
    let mut client = pb::operator_client::OperatorClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut req = Request::new(pb::StatusRequest {});
    req.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let status = client.status(req).await.unwrap().into_inner();
    status
        .proxies
        .into_iter()
        .find(|p| p.node.as_ref().is_some_and(|n| n.id == node_id))
        .unwrap()
}

#[tokio::test]
async fn a_registered_proxy_gets_its_services_identity_and_no_other() {
    use ringmesh_pki::csr::{csr_pem, KeyPair};
    let plane = start().await;
    let key = KeyPair::generate().unwrap();
    // Not registered yet: nothing is issued.
    let err = sign(plane.addr, "web-1", csr_pem(&key).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");

    let mut proxy = connect(plane.addr, TOKEN, sidecar("web-1", "web", "127.0.0.1:7001"))
        .await
        .unwrap();
    let _first = proxy.rx.message().await.unwrap().unwrap();
    let shown = proxy_state(plane.addr, "web-1").await;
    assert_eq!(
        (shown.spiffe_id.as_str(), shown.certificate_not_after),
        ("", 0),
        "no certificate issued yet"
    );
    let svid = sign(plane.addr, "web-1", csr_pem(&key).unwrap())
        .await
        .unwrap();
    // What ringmeshctl status shows: the identity issued and its expiry.
    let shown = proxy_state(plane.addr, "web-1").await;
    assert_eq!(
        (shown.spiffe_id.as_str(), shown.certificate_not_after),
        (svid.spiffe_id.as_str(), svid.not_after)
    );
    assert_eq!(svid.spiffe_id, "spiffe://cluster.local/ns/default/sa/web");
    let leaf = ringmesh_pki::pem::certificates(svid.chain_pem.as_bytes())
        .unwrap()
        .remove(0);
    assert_eq!(
        ringmesh_pki::spiffe::spiffe_id_of(&leaf).map(|id| id.to_string()),
        Some(svid.spiffe_id.clone()),
        "the certificate carries the registered Service's identity"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now + 590..=now + 610).contains(&svid.not_after),
        "the configured lifetime"
    );
    assert!(svid.bundle_pem.contains("BEGIN CERTIFICATE"));

    // A CSR that is not one: the requester's fault.
    let err = sign(plane.addr, "web-1", "garbage".into())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    // Another node's identity cannot be had by naming it.
    let err = sign(plane.addr, "api-1", csr_pem(&key).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    // And the token is needed.
    let mut client = pb::identity_client::IdentityClient::connect(format!("http://{}", plane.addr))
        .await
        .unwrap();
    let err = client
        .sign(pb::SignRequest {
            node_id: "web-1".into(),
            csr_pem: csr_pem(&key).unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // The proxy keeps its certificate while its stream is away, and the
    // status says so after it reconnects.
    drop(proxy);
    let mut again = connect(plane.addr, TOKEN, sidecar("web-1", "web", "127.0.0.1:7001"))
        .await
        .unwrap();
    let _ = again.next().await;
    let shown = proxy_state(plane.addr, "web-1").await;
    assert_eq!(shown.spiffe_id, svid.spiffe_id);
}

#[tokio::test]
async fn sidecars_of_a_service_without_static_endpoints_are_reached_over_the_mesh() {
    use ringmesh_pki::csr::{csr_pem, KeyPair};
    // An old root kept during a rotation: proxies trust it beside the CA's.
    let old = ringmesh_pki::ca::Ca::generate(
        "cluster.local",
        Duration::from_secs(3600),
        std::time::SystemTime::now(),
    )
    .unwrap();
    let plane = start_with(Some(old.bundle_pem())).await;
    let mut web = connect(plane.addr, TOKEN, sidecar("web-1", "web", "127.0.0.1:7101"))
        .await
        .unwrap();
    let unsigned = web.next().await;
    web.ack(&unsigned).await;
    // Sign hands out the same bundle as the config carries.
    let key = KeyPair::generate().unwrap();
    let svid = sign(plane.addr, "web-1", csr_pem(&key).unwrap())
        .await
        .unwrap();
    let first = web.next().await;
    let c = config(&first);
    let inbound = c.listeners.iter().find(|l| l.name == "inbound").unwrap();
    assert_eq!(
        inbound.mesh,
        Some(pb::MeshInbound {
            mode: pb::MeshMode::Permissive as i32
        })
    );
    let cluster = |c: &pb::ProxyConfig, name: &str| {
        c.clusters.iter().find(|c| c.name == name).unwrap().clone()
    };
    let web_cluster = cluster(c, "web");
    assert_eq!(web_cluster.endpoints, ["127.0.0.1:7101"]);
    assert_eq!(
        web_cluster.mesh,
        Some(pb::MeshUpstream {
            identity: "spiffe://cluster.local/ns/default/sa/web".into()
        }),
        "web is served only by a registered sidecar"
    );
    assert_eq!(
        cluster(c, "api").mesh,
        None,
        "api has a static endpoint: plaintext"
    );
    // The proxy's roots: the CA's and the old one.
    let Some(pb::Mesh {
        identity: None,
        trust_bundle:
            Some(pb::DataSource {
                source: Some(pb::data_source::Source::InlinePem(bundle)),
            }),
    }) = &c.mesh
    else {
        panic!("no trust bundle in {:?}", c.mesh);
    };
    assert!(bundle.contains(old.bundle_pem().trim()), "the extra root");
    assert_eq!(
        ringmesh_pki::pem::certificates(bundle.as_bytes())
            .unwrap()
            .len(),
        2
    );
    web.ack(&first).await;
    assert_eq!(&svid.bundle_pem, bundle);

    // A gateway registers as its Gateway and gets that identity: it
    // presents it to the meshed clusters it sends to.
    std::fs::write(
        plane.dir.path().join("edge.yaml"),
        "kind: Gateway\nmetadata: { name: edge }\nspec:\n  listeners: [ { name: web, address: \"127.0.0.1:18080\" } ]\n",
    )
    .unwrap();
    let gw_node = pb::Node {
        id: "edge-1".into(),
        service: "edge".into(),
        role: pb::Role::Gateway as i32,
        ..Default::default()
    };
    // No config until the Gateway is read from the directory.
    let mut gw = connect(plane.addr, TOKEN, gw_node).await.unwrap();
    let gw_first = gw.next().await;
    assert!(cluster(config(&gw_first), "web").mesh.is_some());
    let svid = sign(plane.addr, "edge-1", csr_pem(&key).unwrap())
        .await
        .unwrap();
    assert_eq!(svid.spiffe_id, "spiffe://cluster.local/ns/default/sa/edge");

    // A PeerAuthentication makes web's inbound listener STRICT.
    std::fs::write(
        plane.dir.path().join("peer.yaml"),
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: web-strict }\nspec:\n  selector: { matchLabels: { app: web } }\n  mtls: { mode: STRICT }\n",
    )
    .unwrap();
    let strict = web.next().await;
    let inbound = config(&strict)
        .listeners
        .iter()
        .find(|l| l.name == "inbound")
        .unwrap();
    assert_eq!(
        inbound.mesh,
        Some(pb::MeshInbound {
            mode: pb::MeshMode::Strict as i32
        })
    );
}
