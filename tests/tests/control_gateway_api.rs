//! Gateway API documents as users write them, end to end through real
//! processes: ringmesh-control over a directory of pasted-style resources
//! (apiVersion, namespaces, Service ports, full parent and backend
//! references), proxies that take their config from it, real upstreams.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use ringmesh_control::compile::{compile, Workloads};
use ringmesh_control::resources;
use ringmesh_proto::v1 as pb;
use ringmesh_proxy::config;
use ringmesh_tests::control::{free_addr, gateway, sidecar, ControlPlane};
use ringmesh_tests::{closed_port, eventually, Client, Upstream};

fn write(dir: &Path, file: &str, text: &str) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join(file)).expect("rename");
}

/// `web` in namespace `shop`: port 80 (HTTP/1.1) served by `main`, port 81
/// by `canary`, both on loopback (a bare host serves each target port);
/// an HTTPRoute attached to port 80 sends `/canary` with `x-canary: 1` to
/// port 81. `client` is the Service the calling sidecar fronts.
fn shop(main: SocketAddr, canary: SocketAddr) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  labels: {{ app: web }}
spec:
  selector: {{ app: web }}
  endpoints: [127.0.0.1]
  ports:
    - {{ name: http, port: 80, targetPort: {}, protocol: TCP, appProtocol: http }}
    - {{ name: canary, port: 81, targetPort: {} }}
---
apiVersion: v1
kind: Service
metadata: {{ name: client, namespace: shop }}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web-canary
  namespace: shop
  annotations: {{ owner: "team-web" }}
spec:
  parentRefs:
    - {{ group: "", kind: Service, name: web, port: 80 }}
  rules:
    - matches:
        - path: {{ type: PathPrefix, value: /canary }}
          headers: [ {{ type: Exact, name: x-canary, value: "1" }} ]
      backendRefs:
        - {{ group: "", kind: Service, name: web, namespace: shop, port: 81, weight: 1 }}
"#,
        main.port(),
        canary.port()
    )
}

fn get(addr: SocketAddr, path: &str, host: &str, headers: &str) -> (u16, String) {
    let r = Client::connect(addr)
        .request(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n").as_bytes());
    (r.status, r.text())
}

#[test]
fn a_pasted_http_route_routes_through_a_sidecar_by_service_port() {
    let (main, canary) = (Upstream::start("main"), Upstream::start("canary"));
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "shop.yaml", &shop(main.addr, canary.addr));
    let cp = ControlPlane::start(dir.path(), "127.0.0.1:0".parse().expect("addr"));
    // The sidecar names its Service as ringmesh knows it: `name.namespace`.
    let (_client, _, out) = sidecar(cp.addr, "client-1", "client.shop", closed_port());
    // Host `web.shop`: the rule of the route attached to port 80 first,
    // then the catch-all to the Service's first HTTP port.
    eventually("the canary rule in force", Duration::from_secs(15), || {
        get(out, "/canary/x", "web.shop", "x-canary: 1\r\n") == (200, "canary".into())
    });
    assert_eq!(get(out, "/canary/x", "web.shop", ""), (200, "main".into()));
    assert_eq!(get(out, "/", "web.shop:80", ""), (200, "main".into()));
    assert!(main.requests() >= 2 && canary.requests() >= 1);
    // The short name is not this Service: it lives in `shop`.
    assert_eq!(get(out, "/", "web", "").0, 404);
    let _ = &cp;
}

/// A TCP server that echoes what it reads, on std threads.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 8192];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Send `bytes` through `addr` and read as many back.
fn round_trip(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(bytes)?;
    let mut got = vec![0u8; bytes.len()];
    s.read_exact(&mut got)?;
    Ok(got)
}

#[test]
fn a_tcp_route_relays_bytes_through_a_gateway_tcp_listener() {
    let echo = echo_server();
    let listen = free_addr();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        r#"apiVersion: v1
kind: Service
metadata: {{ name: echo, namespace: tools }}
spec:
  endpoints: [127.0.0.1]
  ports: [ {{ name: echo, port: 7, targetPort: {}, appProtocol: tcp }} ]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: edge, namespace: infra }}
spec:
  gatewayClassName: ringmesh
  listeners:
    - name: echo
      address: "{listen}"
      port: {}
      protocol: TCP
      allowedRoutes:
        namespaces: {{ from: All }}
        kinds: [ {{ group: gateway.networking.k8s.io, kind: TCPRoute }} ]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{ name: echo, namespace: tools }}
spec:
  parentRefs: [ {{ name: edge, namespace: infra, sectionName: echo }} ]
  rules: [ {{ backendRefs: [ {{ name: echo, port: 7 }} ] }} ]
"#,
        echo.port(),
        listen.port()
    );
    write(dir.path(), "echo.yaml", &text);
    let cp = ControlPlane::start(dir.path(), "127.0.0.1:0".parse().expect("addr"));
    let _gw = gateway(cp.addr, "edge-1", "edge.infra");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    eventually("bytes relayed both ways", Duration::from_secs(15), || {
        round_trip(listen, b"hello over tcp\n").is_ok_and(|b| b == b"hello over tcp\n")
    });
    let back = round_trip(listen, &big).unwrap_or_else(|e| panic!("200 kB round trip: {e}"));
    assert!(back == big, "200 kB echoed intact");
}

/// What the control plane compiles from Gateway API documents passes the
/// proxy's own validation (as every pushed snapshot must): per-port
/// clusters with an explicit HTTP/1.1 protocol, namespaced names, a TCP
/// listener. (HTTP/2 clusters are left out: the proxy does not take them
/// yet.)
#[test]
fn compiled_gateway_api_configs_pass_the_proxys_validation() {
    let mut text = shop(
        "127.0.0.1:9001".parse().expect("addr"),
        "127.0.0.1:9002".parse().expect("addr"),
    );
    text.push_str(
        r#"---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: shop }
spec: { endpoints: ["10.0.0.5"], ports: [ { port: 5432, appProtocol: tcp } ] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: shop }
spec:
  listeners:
    - { name: web, port: 8080 }
    - { name: pg, port: 15432, protocol: TCP }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: shop }
spec:
  parentRefs: [ { name: edge, sectionName: web } ]
  hostnames: [ shop.example.com ]
  rules: [ { backendRefs: [ { name: web, port: 80, weight: 9 }, { name: web, port: 81, weight: 1 } ] } ]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: pg, namespace: shop }
spec:
  parentRefs: [ { name: edge, port: 15432 } ]
  rules: [ { backendRefs: [ { name: db, port: 5432 } ] } ]
"#,
    );
    let res = resources::parse(&[("api.yaml".into(), text)]).unwrap_or_else(|e| panic!("{e}"));
    let mut workloads = Workloads::new();
    workloads
        .entry("web.shop".into())
        .or_default()
        .insert("127.0.0.1:7101".into());
    let nodes = [
        pb::Node {
            id: "a".into(),
            service: "web.shop".into(),
            role: pb::Role::Sidecar as i32,
            workload_address: "127.0.0.1:7000".into(),
            inbound_address: "127.0.0.1:7001".into(),
            outbound_address: "127.0.0.1:7002".into(),
        },
        pb::Node {
            id: "gw".into(),
            service: "edge.shop".into(),
            role: pb::Role::Gateway as i32,
            ..Default::default()
        },
    ];
    for node in nodes {
        let wire = compile(&res, &node, &workloads).unwrap_or_else(|e| panic!("{e}"));
        let cfg = config::validate(
            &config::proto::to_raw(&wire),
            "snapshot",
            ringmesh_proxy::tls::mesh::IdentitySource::Issued(None),
        )
        .unwrap_or_else(|e| panic!("{} rejected its config:\n{e}", node.id));
        assert_eq!(cfg.clusters.len(), wire.clusters.len(), "{}", node.id);
        let names: Vec<&str> = wire.listeners.iter().map(|l| l.name.as_str()).collect();
        match node.id.as_str() {
            "gw" => {
                assert_eq!(names, ["web", "pg"]);
                assert_eq!(
                    wire.listeners[1].tcp.as_ref().map(|t| t.cluster.as_str()),
                    Some("db.shop_5432")
                );
            }
            _ => assert_eq!(names, ["inbound", "outbound"]),
        }
    }
}

#[test]
fn a_grpc_route_sends_calls_to_a_grpc_service_over_http2() {
    use ringmesh_proto::testing::EchoRequest;
    use ringmesh_tests::grpc::{GrpcClient, GrpcServer};
    let server = GrpcServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let resources = format!(
        r#"apiVersion: v1
kind: Service
metadata: {{ name: echo }}
spec:
  endpoints: [127.0.0.1]
  ports: [ {{ name: grpc, port: 50051, targetPort: {}, appProtocol: grpc }} ]
---
kind: Service
metadata: {{ name: caller }}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{ name: echo-unary }}
spec:
  parentRefs: [ {{ group: "", kind: Service, name: echo, port: 50051 }} ]
  rules:
    - matches: [ {{ method: {{ type: Exact, service: ringmesh.testing.v1.Echo, method: Unary }} }} ]
      backendRefs: [ {{ name: echo, port: 50051 }} ]
"#,
        server.addr.port()
    );
    write(dir.path(), "echo.yaml", &resources);
    let cp = ControlPlane::start(dir.path(), "127.0.0.1:0".parse().expect("addr"));
    let (_caller, _, out) = sidecar(cp.addr, "caller-1", "caller", closed_port());
    let mut c = GrpcClient::connect_as(out, Some("echo"));
    let req = EchoRequest {
        payload: b"through the mesh".to_vec(),
        ..Default::default()
    };
    eventually("the GRPCRoute in force", Duration::from_secs(15), || {
        c.runtime
            .block_on(c.echo.unary(req.clone()))
            .is_ok_and(|r| r.get_ref().payload == b"through the mesh")
    });
    let _ = &cp;
}
