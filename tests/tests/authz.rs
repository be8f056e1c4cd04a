//! Authorization policies end to end: client certificates carrying SPIFFE
//! identities (minted at test time), the real proxy, HTTP/1.1 and HTTP/2
//! clients, allow/deny by principal, method and path, bypass spellings,
//! gRPC's PERMISSION_DENIED.

use ringmesh_tests::h2::curl;
use ringmesh_tests::tls::{yaml_path, LeafFiles, Pki, TlsClient};
use ringmesh_tests::Proxy;

const WEB: &str = "spiffe://cluster.local/ns/shop/sa/web";
const EVIL: &str = "spiffe://cluster.local/ns/shop/sa/evil";

fn proxy(pki: &Pki) -> Proxy {
    let server = pki.leaf("server", &["orders.test"]);
    Proxy::start(&format!(
        "runtime: {{ workers: 2 }}
admin: {{ address: '127.0.0.1:0' }}
listeners:
  - name: main
    address: 127.0.0.1:0
    tls:
      certificates: [ {{ cert: {}, key: {} }} ]
      client_auth: {{ ca: {}, mode: optional }}
    authorization:
      - name: no-admin
        action: deny
        rules: [ {{ to: [ {{ paths: [/admin, /admin/*] }} ] }} ]
      - name: web-orders
        rules:
          - from: [ {{ principals: [cluster.local/ns/shop/sa/web] }} ]
            to: [ {{ methods: [GET, POST], paths: [/orders, /orders/*] }} ]
      - name: public
        rules: [ {{ to: [ {{ paths: [/public/*] }} ] }} ]
    routes:
      - {{ name: all, direct_response: {{ status: 200, body: ok }} }}
",
        yaml_path(&server.cert),
        yaml_path(&server.key),
        yaml_path(&pki.ca_file()),
    ))
}

fn status(p: &Proxy, pki: &Pki, who: Option<&LeafFiles>, path: &str) -> u16 {
    let mut c =
        TlsClient::connect(p.addr("main"), &pki.ca_pem, "orders.test", who).expect("handshake");
    c.get(path, "orders.test").expect("response").status
}

#[test]
fn principals_methods_and_paths_decide_and_bypass_spellings_do_not_pass() {
    let pki = Pki::new("mesh ca");
    let web = pki.leaf("web", &[WEB]);
    let evil = pki.leaf("evil", &[EVIL]);
    let p = proxy(&pki);

    assert_eq!(status(&p, &pki, Some(&web), "/orders/7"), 200);
    assert_eq!(
        status(&p, &pki, Some(&evil), "/orders/7"),
        403,
        "another identity"
    );
    assert_eq!(status(&p, &pki, None, "/orders/7"), 403, "unauthenticated");
    assert_eq!(status(&p, &pki, None, "/public/x"), 200);
    assert_eq!(status(&p, &pki, Some(&evil), "/public/x"), 200);
    assert_eq!(
        status(&p, &pki, None, "/private"),
        403,
        "no ALLOW policy matches"
    );

    // DENY wins over ALLOW, whatever the spelling of the path.
    for path in [
        "/admin",
        "/admin/users",
        "/orders/../admin",
        "/orders/%2e%2e/admin",
        "/orders/%2E%2E/admin/x",
        "//admin",
        "/public/../admin",
        "/%61dmin",
        // Trailing-dot spellings: `.` segments go, `/admin/.` is `/admin/`.
        "/admin/.",
        "/public/x/../../admin/./",
    ] {
        assert_eq!(status(&p, &pki, Some(&web), path), 403, "{path}");
    }
    // An encoded slash has no safe normal form: refused outright.
    assert_eq!(status(&p, &pki, Some(&web), "/orders%2F..%2Fadmin"), 400);
    // Paths are case-sensitive: /ADMIN is not /admin, and no ALLOW
    // policy covers it either.
    assert_eq!(status(&p, &pki, Some(&web), "/ADMIN"), 403);

    let deny = p
        .metric("ringmesh_authz_decisions_total{listener=\"main\",decision=\"deny\"}")
        .unwrap_or(0);
    let allow = p
        .metric("ringmesh_authz_decisions_total{listener=\"main\",decision=\"allow\"}")
        .unwrap_or(0);
    assert!(deny >= 15 && allow >= 3, "deny {deny}, allow {allow}");
    let by = |policy: &str| {
        p.metric(&format!(
            "ringmesh_authz_policy_decisions_total{{listener=\"main\",policy=\"{policy}\"}}"
        ))
        .unwrap_or(0)
    };
    assert_eq!(by("no-admin"), 10, "each spelling of /admin");
    assert_eq!(by("web-orders"), 1);
    assert_eq!(by("public"), 2);
}

#[test]
fn http2_clients_are_judged_alike_and_grpc_gets_permission_denied() {
    let pki = Pki::new("mesh ca");
    let web = pki.leaf("web", &[WEB]);
    let evil = pki.leaf("evil", &[EVIL]);
    let p = proxy(&pki);
    let port = p.addr("main").port();
    let resolve = format!("orders.test:{port}:127.0.0.1");
    let ca = pki.ca_file();
    let call = |who: &LeafFiles, path: &str, extra: &[&str]| {
        let url = format!("https://orders.test:{port}{path}");
        let (cert, key) = (
            who.cert.to_str().expect("path"),
            who.key.to_str().expect("path"),
        );
        let mut args = vec![
            "--http2",
            "--cacert",
            ca.to_str().expect("path"),
            "--resolve",
            &resolve,
            "--cert",
            cert,
            "--key",
            key,
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args, b"").expect("curl")
    };
    let r = call(&web, "/orders/1", &[]);
    assert_eq!((r.version.as_str(), r.status), ("2", 200));
    let r = call(&evil, "/orders/1", &[]);
    assert_eq!(
        (r.status, r.header("ringmesh-error")),
        (403, Some("authorization_denied"))
    );
    let grpc = [
        "-X",
        "POST",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
    ];
    let r = call(&evil, "/orders.Orders/Create", &grpc);
    assert_eq!(r.status, 200, "gRPC errors are Trailers-Only");
    assert_eq!(
        r.header("grpc-status"),
        Some("7"),
        "PERMISSION_DENIED: {r:?}"
    );
}

#[test]
fn tcp_connections_are_judged_once_by_the_client_identity() {
    use std::io::{Read, Write};
    let pki = Pki::new("mesh ca");
    let web = pki.leaf("web", &[WEB]);
    let evil = pki.leaf("evil", &[EVIL]);
    let server = pki.leaf("server", &["db.test"]);
    // A server that greets, then echoes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let backend = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut s in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let _ = s.write_all(b"hello\n");
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let p = Proxy::start(&format!(
        "runtime: {{ workers: 1 }}
admin: {{ address: '127.0.0.1:0' }}
listeners:
  - name: db
    address: 127.0.0.1:0
    tls:
      certificates: [ {{ cert: {}, key: {} }} ]
      client_auth: {{ ca: {}, mode: optional }}
    authorization:
      - name: web-only
        rules: [ {{ from: [ {{ principals: [cluster.local/ns/shop/sa/web] }} ] }} ]
    tcp: {{ cluster: db }}
clusters:
  - {{ name: db, endpoints: ['{backend}'] }}
",
        yaml_path(&server.cert),
        yaml_path(&server.key),
        yaml_path(&pki.ca_file()),
    ));
    let mut ok = TlsClient::connect(p.addr("db"), &pki.ca_pem, "db.test", Some(&web)).expect("tls");
    assert_eq!(ok.read_exact(6), b"hello\n", "web is relayed");
    for who in [Some(&evil), None] {
        let mut c = TlsClient::connect(p.addr("db"), &pki.ca_pem, "db.test", who).expect("tls");
        assert!(c.read_to_end().is_empty(), "closed without a byte");
    }
    assert_eq!(
        p.metric("ringmesh_authz_decisions_total{listener=\"db\",decision=\"deny\"}"),
        Some(2)
    );
}
