//! Route `redirect` and `rewrite` through the real proxy: HTTP/1.1 and
//! HTTP/2 clients (curl), HTTP/1.1 and HTTP/2 upstreams that echo the
//! head they received.

use ringmesh_tests::h2::curl;
use ringmesh_tests::h2up::H2Upstream;
use ringmesh_tests::{Client, Proxy, Upstream};

fn proxy(h1: &Upstream, h2: &H2Upstream) -> Proxy {
    Proxy::start(&format!(
        "runtime: {{ workers: 2 }}
admin: {{ address: '127.0.0.1:0' }}
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - match: {{ path: {{ prefix: /old/ }} }}
        redirect: {{ scheme: https, path: {{ prefix: /new }}, status: 301 }}
      - match: {{ path: {{ exact: /moved }} }}
        redirect: {{ hostname: elsewhere.example, port: 8080, path: {{ full: /here }} }}
      - match: {{ path: {{ prefix: /api/ }} }}
        cluster: h1
        rewrite: {{ hostname: internal.svc, path: {{ prefix: / }} }}
      - match: {{ path: {{ prefix: /grpcish/ }} }}
        cluster: h2
        rewrite: {{ hostname: h2.internal, path: {{ full: /headers }} }}
      - cluster: h1
clusters:
  - {{ name: h1, endpoints: ['{}'] }}
  - {{ name: h2, endpoints: ['{}'], protocol: http2 }}
",
        h1.addr, h2.addr
    ))
}

#[test]
fn redirects_answer_http1_and_http2_clients_with_a_location() {
    let (h1, h2) = (Upstream::start("app"), H2Upstream::start());
    let p = proxy(&h1, &h2);
    let main = p.addr("main");
    // HTTP/1.1, kept alive across redirects.
    let mut c = Client::connect(main);
    for _ in 0..2 {
        let r = c.get("/old/cart/1?id=7", &format!("shop.example:{}", main.port()));
        assert_eq!(r.status, 301);
        assert_eq!(
            r.header("location"),
            Some("https://shop.example/new/cart/1?id=7")
        );
        assert_eq!(r.header("content-length"), Some("0"));
    }
    let r = c.get("/moved?q", "shop.example");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("http://elsewhere.example:8080/here?q")
    );
    // HTTP/2 (h2c), and an HTTP/1.1 curl for good measure.
    for proto in ["--http2-prior-knowledge", "--http1.1"] {
        let r = curl(&[proto, &format!("http://{main}/old/x?y=1")], b"").expect("curl");
        assert_eq!(r.status, 301, "{proto}");
        assert_eq!(
            r.header("location"),
            Some("https://127.0.0.1/new/x?y=1"),
            "{proto}: a new scheme drops the client's port"
        );
    }
    assert_eq!(h1.requests(), 0, "nothing was forwarded");
}

#[test]
fn rewrites_reach_http1_and_http2_upstreams_from_either_client() {
    let (h1, h2) = (Upstream::start("app"), H2Upstream::start());
    let p = proxy(&h1, &h2);
    let main = p.addr("main");
    // HTTP/1.1 client -> HTTP/1.1 upstream: `/api/headers?x=1` leaves as
    // `/headers?x=1` with the new Host (the upstream echoes its head).
    let r = Client::connect(main).get("/api/headers?x=1", "shop.example");
    assert_eq!(r.status, 200);
    let head = r.text();
    assert!(head.starts_with("GET /headers?x=1 HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("host: internal.svc\r\n"),
        "{head}"
    );
    assert!(!head.contains("shop.example"), "{head}");
    // HTTP/2 client -> HTTP/1.1 upstream.
    let r = curl(
        &[
            "--http2-prior-knowledge",
            &format!("http://{main}/api/headers?x=2"),
        ],
        b"",
    )
    .expect("curl");
    assert_eq!((r.version.as_str(), r.status), ("2", 200));
    let head = r.text();
    assert!(head.starts_with("GET /headers?x=2 HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("host: internal.svc\r\n"),
        "{head}"
    );
    // Both clients -> HTTP/2 upstream: `:path` and `:authority` rewritten.
    for proto in ["--http2-prior-knowledge", "--http1.1"] {
        let r = curl(&[proto, &format!("http://{main}/grpcish/a/b?k=v")], b"").expect("curl");
        assert_eq!(r.status, 200, "{proto}");
        let seen = r.text();
        assert!(
            seen.contains(":authority: h2.internal\n"),
            "{proto}: {seen}"
        );
        assert!(seen.contains(":path: /headers?k=v\n"), "{proto}: {seen}");
    }
    // A route without a rewrite sends what the client sent.
    let r = Client::connect(main).get("/headers?z", "shop.example");
    assert!(
        r.text().starts_with("GET /headers?z HTTP/1.1\r\n"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("shop.example"), "{}", r.text());
}
