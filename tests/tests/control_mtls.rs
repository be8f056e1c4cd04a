//! Automatic mTLS end to end, all real processes: ringmesh-control as the
//! CA, two sidecars that get their Services' identities from it and talk
//! mTLS (HTTP/2) to each other without the applications doing anything;
//! PeerAuthentication STRICT; certificate rotation under load with no
//! failed request and no dropped connection; an expired certificate that
//! cannot be renewed fails closed; a root rotation with the old and new
//! roots trusted during the overlap.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ringmesh_tests::control::{ctl, ctl_at, sidecar, sidecar_tls, ControlPlane};
use ringmesh_tests::{eventually, Client, Proxy, Upstream};

const WEB: &str = "spiffe://cluster.local/ns/shop/sa/web";
const ORDERS: &str = "spiffe://cluster.local/ns/shop/sa/orders";

/// Two Services in `shop`; `orders` is STRICT and lets only `web` call
/// /orders.
const MESH: &str = "\
kind: Service
metadata: { name: web, namespace: shop }
---
kind: Service
metadata: { name: orders, namespace: shop }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: orders-strict, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  mtls: { mode: STRICT }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: orders-callers, namespace: shop }
spec:
  targetRefs: [ { kind: Service, name: orders } ]
  action: ALLOW
  rules:
    - from: [ { source: { principals: [cluster.local/ns/shop/sa/web] } } ]
      to: [ { operation: { paths: [/orders, /orders/*] } } ]
";

struct Mesh {
    cp: ControlPlane,
    web: Proxy,
    web_outbound: SocketAddr,
    orders: Proxy,
    orders_inbound: SocketAddr,
    app: Upstream,
}

fn mesh(dir: &Path, extra: &[&str]) -> Mesh {
    std::fs::write(dir.join("mesh.yaml"), MESH).expect("write");
    let cp = ControlPlane::start_with(dir, "127.0.0.1:0".parse().expect("addr"), extra);
    let app = Upstream::start("orders-app");
    let (orders, orders_inbound, _) = sidecar(cp.addr, "orders-1", "orders.shop", app.addr);
    let (web, _, web_outbound) = sidecar(cp.addr, "web-1", "web.shop", closed_addr());
    Mesh {
        cp,
        web,
        web_outbound,
        orders,
        orders_inbound,
        app,
    }
}

fn closed_addr() -> SocketAddr {
    ringmesh_tests::closed_port()
}

fn expiry(p: &Proxy, id: &str) -> Option<u64> {
    p.metric(&format!(
        "ringmesh_identity_expiry_timestamp_seconds{{spiffe_id=\"{id}\"}}"
    ))
}

fn status(outbound: SocketAddr, path: &str) -> u16 {
    Client::connect(outbound).get(path, "orders.shop").status
}

/// Both sidecars hold identities and a request crosses the mesh.
fn wait_ready(m: &Mesh) {
    eventually(
        "identities and a working hop",
        Duration::from_secs(20),
        || {
            expiry(&m.web, WEB).is_some()
                && expiry(&m.orders, ORDERS).is_some()
                && status(m.web_outbound, "/orders/1") == 200
        },
    );
}

/// Keep-alive clients of web's sidecar calling orders until `stop`: each
/// request must be a 200 on the same connection (a closed one would fail
/// the next read). Returns (requests, failures as text).
fn load(outbound: SocketAddr, stop: Arc<AtomicBool>, clients: usize) -> (usize, Vec<String>) {
    let done = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let mut c = Client::connect(outbound);
                // Bounded in count as well as by `stop`.
                for n in 0..200_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = c.get(&format!("/orders/{i}-{n}"), "orders.shop");
                    if r.status != 200 {
                        failures.push(format!("{}: {}", r.status, r.text()));
                        break;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();
    let failures = threads
        .into_iter()
        .flat_map(|t| {
            t.join()
                .unwrap_or_else(|_| vec!["a client panicked".into()])
        })
        .collect();
    (done.load(Ordering::Relaxed), failures)
}

#[test]
fn sidecars_talk_mtls_with_issued_identities_and_rotate_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = mesh(dir.path(), &["--svid-lifetime", "10s"]);
    wait_ready(&m);

    // The hop is mTLS: orders' inbound listener completed handshakes, and
    // its policy saw web's identity (an unauthorised path is refused).
    assert!(
        m.orders
            .metric(r#"ringmesh_tls_handshakes_total{listener="inbound"}"#)
            .is_some_and(|n| n >= 1),
        "orders' sidecar terminated mTLS"
    );
    assert_eq!(status(m.web_outbound, "/admin"), 403);
    // STRICT: a plaintext caller gets no HTTP answer.
    let mut c = Client::connect(m.orders_inbound);
    c.send(b"GET /orders/1 HTTP/1.1\r\nhost: orders.shop\r\n\r\n");
    assert!(!c.read_to_close().starts_with(b"HTTP"), "plaintext refused");

    // Two rotations (10 s certificates renew at about 5 s) under load.
    let stop = Arc::new(AtomicBool::new(false));
    let outbound = m.web_outbound;
    let loader = {
        let stop = stop.clone();
        std::thread::spawn(move || load(outbound, stop, 4))
    };
    let (mut seen_web, mut seen_orders) = (BTreeSet::new(), BTreeSet::new());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30)
        && (seen_web.len() < 3 || seen_orders.len() < 3)
    {
        seen_web.extend(expiry(&m.web, WEB));
        seen_orders.extend(expiry(&m.orders, ORDERS));
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::Relaxed);
    let (requests, failures) = loader.join().expect("load");
    assert!(
        seen_web.len() >= 3 && seen_orders.len() >= 3,
        "two renewals each: web {seen_web:?}, orders {seen_orders:?}"
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(requests > 100, "{requests} requests");
    assert!(m.app.requests() >= requests);
    let _ = &m.cp;
}

#[test]
fn an_expired_certificate_that_cannot_be_renewed_fails_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = mesh(dir.path(), &["--svid-lifetime", "4s"]);
    wait_ready(&m);
    let Mesh {
        cp,
        web,
        web_outbound,
        orders,
        orders_inbound,
        app: _app,
    } = m;
    // The CA goes away: nothing renews, and within 4 s both expire.
    cp.kill();
    eventually(
        "web refuses to call without a certificate",
        Duration::from_secs(15),
        || {
            let r = Client::connect(web_outbound).get("/orders/1", "orders.shop");
            r.status == 502 && r.text().contains("no workload certificate held")
        },
    );
    // orders' strict listener closes everything once its own certificate
    // has expired too; nothing in plaintext.
    eventually(
        "orders' identity withdrawn",
        Duration::from_secs(10),
        || expiry(&orders, ORDERS).is_none(),
    );
    let mut c = Client::connect(orders_inbound);
    c.send(b"GET /orders/1 HTTP/1.1\r\nhost: orders.shop\r\n\r\n");
    assert!(c.read_to_close().is_empty(), "closed at once");
    eventually("counted", Duration::from_secs(5), || {
        orders
            .metric(
                r#"ringmesh_tls_handshake_failures_total{listener="inbound",reason="no_identity"}"#,
            )
            .is_some_and(|n| n >= 1)
    });
    assert_eq!(expiry(&web, WEB), None, "the expired identity is withdrawn");
}

#[test]
fn a_root_rotation_keeps_the_mesh_working() {
    let now = SystemTime::now();
    let year = Duration::from_secs(365 * 24 * 3600);
    let old = ringmesh_pki::ca::Ca::generate("cluster.local", year, now).expect("old CA");
    let new = ringmesh_pki::ca::Ca::generate("cluster.local", year, now).expect("new CA");
    let files = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: String| {
        let p = files.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let (old_cert, old_key) = (
        write("old.crt", old.chain_pem()),
        write("old.key", old.key_pem()),
    );
    let (new_cert, new_key) = (
        write("new.crt", new.chain_pem()),
        write("new.key", new.key_pem()),
    );
    let old_root = write("old-root.pem", old.bundle_pem());

    let dir = tempfile::tempdir().expect("tempdir");
    let lifetime = ["--svid-lifetime", "6s"];
    let m = mesh(
        dir.path(),
        &[
            &["--ca-cert", &old_cert, "--ca-key", &old_key][..],
            &lifetime[..],
        ]
        .concat(),
    );
    wait_ready(&m);
    let addr = m.cp.addr;
    let Mesh {
        cp,
        web,
        web_outbound,
        orders,
        app: _app,
        ..
    } = m;
    let before = (expiry(&web, WEB), expiry(&orders, ORDERS));
    // Under load from here on: through the restart of the control plane
    // and while each sidecar renews from the new CA (one may hold a new
    // certificate while the other still holds an old one).
    let stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let stop = stop.clone();
        std::thread::spawn(move || load(web_outbound, stop, 2))
    };
    // The new CA signs from now on; proxies trust both roots meanwhile.
    cp.kill();
    let _cp = ControlPlane::start_with(
        dir.path(),
        addr,
        &[
            &[
                "--ca-cert",
                &new_cert,
                "--ca-key",
                &new_key,
                "--trust-bundle",
                &old_root,
            ][..],
            &lifetime[..],
        ]
        .concat(),
    );
    let (mut seen_web, mut seen_orders): (BTreeSet<u64>, BTreeSet<u64>) = (
        before.0.into_iter().collect(),
        before.1.into_iter().collect(),
    );
    eventually(
        "both renewed twice from the new CA",
        Duration::from_secs(30),
        || {
            seen_web.extend(expiry(&web, WEB));
            seen_orders.extend(expiry(&orders, ORDERS));
            seen_web.len() >= 3 && seen_orders.len() >= 3
        },
    );
    stop.store(true, Ordering::Relaxed);
    let (requests, failures) = loader.join().expect("load");
    assert!(
        failures.is_empty(),
        "failed requests: {failures:?}\nweb:\n{}\norders:\n{}",
        web.log_text(),
        orders.log_text()
    );
    assert!(requests > 10, "{requests} requests");
}

#[test]
fn the_discovery_stream_and_the_ca_can_run_over_tls() {
    // The control plane's own certificate, from an operator's CA (not the
    // mesh's): the stream carries inline keys and workload certificates.
    let pki = ringmesh_tests::tls::Pki::new("control ca");
    let serving = pki.leaf("control", &["127.0.0.1"]);
    let (cert, key) = (
        serving.cert.display().to_string(),
        serving.key.display().to_string(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mesh.yaml"), MESH).expect("write");
    let cp = ControlPlane::start_with(
        dir.path(),
        "127.0.0.1:0".parse().expect("addr"),
        &["--tls-cert", &cert, "--tls-key", &key],
    );
    let app = Upstream::start("orders-app");
    let ca = pki.ca_file();
    let (orders, _, _) = sidecar_tls(cp.addr, &ca, "orders-1", "orders.shop", app.addr);
    let (web, _, web_outbound) = sidecar_tls(cp.addr, &ca, "web-1", "web.shop", closed_addr());
    eventually(
        "identities over TLS and a working hop",
        Duration::from_secs(20),
        || {
            expiry(&web, WEB).is_some()
                && expiry(&orders, ORDERS).is_some()
                && status(web_outbound, "/orders/1") == 200
        },
    );
    // ringmeshctl too, with the CA; without it, it says what is missing.
    let server = format!("https://{}", cp.addr);
    let ca = ca.display().to_string();
    let (code, out, err) = ctl_at(&server, &["--ca", &ca, "status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(WEB) && out.contains(ORDERS), "{out}");
    let (code, _, err) = ctl_at(&server, &["status"]);
    assert!(code == 2 && err.contains("--ca"), "{err}");
    // A plaintext client gets nothing from the TLS port.
    let (code, _, _) = ctl(cp.addr, &["status"]);
    assert_eq!(code, 2, "plaintext refused");
}
