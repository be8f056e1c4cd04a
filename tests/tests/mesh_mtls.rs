//! mTLS between two proxies of the mesh, with workload identities from
//! files (as a SPIRE agent writes them; the control plane's CA is tested
//! in `control_mtls.rs`): sidecar A's outbound cluster reaches sidecar B's
//! inbound listener over mTLS and HTTP/2, B checks A's SPIFFE ID (and its
//! policies see it), A checks B's; plaintext and foreign identities are
//! refused by a strict listener and accepted by a permissive one as they
//! should be.

use std::net::SocketAddr;

use ringmesh_tests::tls::{yaml_path, LeafFiles, Pki, TlsClient};
use ringmesh_tests::{Client, Proxy, Upstream};

const WEB: &str = "spiffe://cluster.local/ns/shop/sa/web";
const ORDERS: &str = "spiffe://cluster.local/ns/shop/sa/orders";
const EVIL: &str = "spiffe://cluster.local/ns/shop/sa/evil";

fn identity(pki: &Pki, leaf: &LeafFiles) -> String {
    format!(
        "mesh: {{ identity: {{ cert: {}, key: {} }}, trust_bundle: {} }}\n",
        yaml_path(&leaf.cert),
        yaml_path(&leaf.key),
        yaml_path(&pki.ca_file())
    )
}

/// Sidecar B: the `orders` workload's, strict or permissive, letting only
/// `web` call /orders.
fn sidecar_b(pki: &Pki, leaf: &LeafFiles, mode: &str, app: &Upstream) -> Proxy {
    Proxy::start(&format!(
        "{}runtime: {{ workers: 2 }}
admin: {{ address: '127.0.0.1:0' }}
listeners:
  - name: inbound
    address: 127.0.0.1:0
    mesh: {{ mode: {mode} }}
    authorization:
      - name: web-orders
        rules:
          - from: [ {{ principals: [cluster.local/ns/shop/sa/web] }} ]
            to: [ {{ paths: [/orders, /orders/*] }} ]
          - to: [ {{ paths: [/public, /headers, /who] }} ]
    routes:
      # Routing by the caller's identity.
      - match: {{ path: {{ exact: /who }}, source: {{ principals: [cluster.local/ns/shop/sa/web] }} }}
        direct_response: {{ status: 200, body: web }}
      - match: {{ path: {{ exact: /who }} }}
        direct_response: {{ status: 200, body: someone }}
      - cluster: app
clusters:
  - {{ name: app, endpoints: ['{}'] }}
",
        identity(pki, leaf),
        app.addr
    ))
}

/// Sidecar A: the `web` workload's; its outbound listener sends to `b`
/// expecting `expected` there.
fn sidecar_a(pki: &Pki, leaf: &LeafFiles, b: SocketAddr, expected: &str) -> Proxy {
    Proxy::start(&format!(
        "{}runtime: {{ workers: 2 }}
admin: {{ address: '127.0.0.1:0' }}
listeners:
  - {{ name: outbound, address: 127.0.0.1:0, routes: [ {{ cluster: orders }} ] }}
clusters:
  - {{ name: orders, endpoints: ['{b}'], mesh: {{ identity: '{expected}' }} }}
",
        identity(pki, leaf)
    ))
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = Client::connect(addr).get(path, "orders");
    (r.status, r.text())
}

#[test]
fn sidecars_talk_mtls_over_http2_and_policies_see_the_caller() {
    let pki = Pki::new("mesh ca");
    let web = pki.leaf("web", &[WEB]);
    let orders = pki.leaf("orders", &[ORDERS, "orders.test"]);
    let app = Upstream::start("orders-app");
    let b = sidecar_b(&pki, &orders, "strict", &app);
    let a = sidecar_a(&pki, &web, b.addr("inbound"), ORDERS);

    // Many HTTP/1.1 clients of A share a few mTLS HTTP/2 connections
    // (one per core at most) to B.
    // At once, so HTTP/1.1 upstream connections would number 20.
    let start = std::sync::Arc::new(std::sync::Barrier::new(20));
    let outbound = a.addr("outbound");
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let start = start.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(outbound);
                start.wait();
                for _ in 0..5 {
                    let r = c.get(&format!("/orders/{i}"), "orders");
                    assert_eq!(r.status, 200, "{}", r.text());
                    assert_eq!(r.text(), "orders-app");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    let handshakes = b
        .metric(r#"ringmesh_tls_handshakes_total{listener="inbound"}"#)
        .expect("B counts its handshakes");
    assert!(
        (1..=2).contains(&handshakes),
        "20 client connections, {handshakes} mTLS handshakes at B"
    );
    assert_eq!(app.requests(), 100);

    // B's policies read A's identity: web may call /orders only.
    assert_eq!(get(a.addr("outbound"), "/admin").0, 403);
    // And B's routes: a route for web's calls only.
    assert_eq!(get(a.addr("outbound"), "/who"), (200, "web".to_string()));
    // And B's metrics, by caller (Istio's source_principal).
    let by_web = |class: &str| {
        b.metric(&format!(
            "ringmesh_source_requests_total{{listener=\"inbound\",source_principal=\"{WEB}\",class=\"{class}\"}}"
        ))
        .unwrap_or(0)
    };
    assert!(
        by_web("2xx") >= 101 && by_web("4xx") >= 1,
        "{}",
        b.admin_get("/metrics").1
    );
    // And the caller's latency as the callee saw it: one per request.
    let timed = b
        .metric(&format!(
            "ringmesh_source_request_duration_seconds_count{{listener=\"inbound\",source_principal=\"{WEB}\"}}"
        ))
        .unwrap_or(0);
    assert_eq!(timed, by_web("2xx") + by_web("4xx") + by_web("5xx"));
    // The workload learns who called (Envoy's and Istio's XFCC), and a
    // header the caller forged never reaches it.
    let r = Client::connect(a.addr("outbound")).request(
        b"GET /headers HTTP/1.1\r\nHost: orders\r\nX-Forwarded-Client-Cert: By=x;URI=spiffe://cluster.local/ns/shop/sa/admin\r\n\r\n",
    );
    let seen = r.text().to_ascii_lowercase();
    assert!(
        seen.contains(&format!(
            "x-forwarded-client-cert: by={};uri={}",
            ORDERS.to_ascii_lowercase(),
            WEB.to_ascii_lowercase()
        )),
        "{seen}"
    );
    assert_eq!(seen.matches("x-forwarded-client-cert").count(), 1, "{seen}");

    // A checks B's identity: a cluster expecting someone else refuses.
    let wrong = sidecar_a(&pki, &web, b.addr("inbound"), EVIL);
    let (status, body) = get(wrong.addr("outbound"), "/orders/1");
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("certificate lacks the expected SPIFFE ID"),
        "{body}"
    );
}

#[test]
fn a_strict_listener_refuses_plaintext_and_strangers_a_permissive_one_does_not() {
    let pki = Pki::new("mesh ca");
    let orders = pki.leaf("orders", &[ORDERS, "orders.test"]);
    let evil = pki.leaf("evil", &[EVIL]);
    let app = Upstream::start("orders-app");
    let strict = sidecar_b(&pki, &orders, "strict", &app);
    let inbound = strict.addr("inbound");

    // Plaintext: no HTTP answer, the handshake fails.
    let mut c = Client::connect(inbound);
    c.send(b"GET /public HTTP/1.1\r\nhost: orders\r\n\r\n");
    let answer = c.read_to_close();
    assert!(!answer.starts_with(b"HTTP"), "no plaintext answer");
    // No client certificate, or one from another CA: refused.
    let refused = |who: Option<&LeafFiles>| {
        TlsClient::connect(inbound, &pki.ca_pem, "orders.test", who)
            .and_then(|mut c| c.get("/public", "orders").map_err(|e| e.to_string()))
            .is_err()
    };
    assert!(refused(None), "no certificate");
    let stranger = Pki::new("stranger ca").leaf("web", &[WEB]);
    assert!(refused(Some(&stranger)), "an identity from another CA");
    // A workload of the mesh is let in, and its policies decide.
    let mut c = TlsClient::connect(inbound, &pki.ca_pem, "orders.test", Some(&evil)).expect("mTLS");
    assert_eq!(c.get("/public", "orders").expect("answer").status, 200);
    let mut c = TlsClient::connect(inbound, &pki.ca_pem, "orders.test", Some(&evil)).expect("mTLS");
    assert_eq!(c.get("/orders", "orders").expect("answer").status, 403);
    let failures = |reason: &str| {
        strict
            .metric(&format!(
                r#"ringmesh_tls_handshake_failures_total{{listener="inbound",reason="{reason}"}}"#
            ))
            .unwrap_or(0)
    };
    assert!(failures("no_client_certificate") >= 1);
    assert!(failures("bad_certificate") >= 1);

    // Permissive: the same plaintext request is served, and mTLS too.
    let permissive = sidecar_b(&pki, &orders, "permissive", &app);
    let inbound = permissive.addr("inbound");
    assert_eq!(get(inbound, "/public").0, 200);
    // Unauthenticated: not the route for web.
    assert_eq!(get(inbound, "/who"), (200, "someone".to_string()));
    // A plaintext caller cannot claim an identity to the workload.
    let r = Client::connect(inbound).request(
        b"GET /headers HTTP/1.1\r\nHost: orders\r\nX-Forwarded-Client-Cert: URI=spiffe://cluster.local/ns/shop/sa/web\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(
        !r.text()
            .to_ascii_lowercase()
            .contains("x-forwarded-client-cert"),
        "{}",
        r.text()
    );
    assert_eq!(
        get(inbound, "/orders").0,
        403,
        "plaintext is unauthenticated"
    );
    let mut c = TlsClient::connect(inbound, &pki.ca_pem, "orders.test", Some(&evil)).expect("mTLS");
    assert_eq!(c.get("/public", "orders").expect("answer").status, 200);
    assert!(refused_at(inbound, &pki, &stranger));
}

fn refused_at(addr: SocketAddr, pki: &Pki, who: &LeafFiles) -> bool {
    TlsClient::connect(addr, &pki.ca_pem, "orders.test", Some(who))
        .and_then(|mut c| c.get("/public", "orders").map_err(|e| e.to_string()))
        .is_err()
}

/// Echoes what it reads until the client half-closes.
fn echo_server() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || ringmesh_tests::echo(s));
        }
    });
    addr
}

#[test]
fn opaque_tcp_crosses_the_mesh_in_mtls_beside_http() {
    use std::io::{Read, Write};
    let pki = Pki::new("mesh ca");
    let web = pki.leaf("web", &[WEB]);
    let orders = pki.leaf("orders", &[ORDERS]);
    let app = Upstream::start("orders-app");
    let echo = echo_server();
    // B's strict inbound listener serves HTTP, and relays what a peer
    // asks to relay (by ALPN) to the echo server.
    let b = Proxy::start(&format!(
        "{}runtime: {{ workers: 2 }}
admin: {{ address: '127.0.0.1:0' }}
listeners:
  - name: inbound
    address: 127.0.0.1:0
    mesh: {{ mode: strict }}
    tcp: {{ cluster: echo }}
    routes: [ {{ cluster: app }} ]
clusters:
  - {{ name: app, endpoints: ['{}'] }}
  - {{ name: echo, endpoints: ['{echo}'] }}
",
        identity(&pki, &orders),
        app.addr
    ));
    let inbound = b.addr("inbound");
    let a = Proxy::start(&format!(
        "{}runtime: {{ workers: 2 }}
admin: {{ address: '127.0.0.1:0' }}
listeners:
  - {{ name: db, address: 127.0.0.1:0, tcp: {{ cluster: orders-db }} }}
  - {{ name: outbound, address: 127.0.0.1:0, routes: [ {{ cluster: orders }} ] }}
clusters:
  - {{ name: orders-db, endpoints: ['{inbound}'], mesh: {{ identity: '{ORDERS}' }} }}
  - {{ name: orders, endpoints: ['{inbound}'], mesh: {{ identity: '{ORDERS}' }} }}
",
        identity(&pki, &web)
    ));
    let mut c = std::net::TcpStream::connect(a.addr("db")).expect("connect");
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.write_all(&big).expect("write");
    c.shutdown(std::net::Shutdown::Write).expect("half-close");
    let mut back = Vec::new();
    c.read_to_end(&mut back).expect("read");
    assert!(back == big, "300 kB echoed intact through A, mTLS and B");
    // The same listener still serves HTTP to the mesh.
    assert_eq!(
        get(a.addr("outbound"), "/x"),
        (200, "orders-app".to_string())
    );
    assert!(
        b.metric(r#"ringmesh_tls_handshakes_total{listener="inbound"}"#)
            .is_some_and(|n| n >= 2),
        "both hops were mTLS"
    );
}
