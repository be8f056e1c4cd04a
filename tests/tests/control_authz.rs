//! AuthorizationPolicy end to end: ringmesh-control compiles Istio-shaped
//! policies onto the inbound listener of a Service's sidecar, and the
//! sidecar judges real requests by them (DENY first, then an ALLOW must
//! match; paths normalised, so `/orders/../admin` is `/admin`). Also: what
//! the control plane accepts, the proxy accepts (no NACK for a policy
//! that passed `apply`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ringmesh_control::compile::{compile, Workloads};
use ringmesh_control::resources;
use ringmesh_proto::v1 as pb;
use ringmesh_proxy::config;
use ringmesh_tests::control::{ctl, sidecar, ControlPlane};
use ringmesh_tests::{eventually, Client, Upstream};

fn write(dir: &Path, file: &str, text: &str) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join(file)).expect("rename");
}

/// `orders` in `shop`, served by `upstream`; a namespace-wide DENY for
/// `/admin*`, and an ALLOW for GET `/orders/*` on `orders`.
fn shop(upstream: SocketAddr) -> String {
    let port = upstream.port();
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{ name: orders, namespace: shop }}
spec: {{ endpoints: ["{upstream}"] }}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{ name: no-admin, namespace: shop }}
spec:
  action: DENY
  rules: [ {{ to: [ {{ operation: {{ paths: ["/admin*"] }} }} ] }} ]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{ name: by-port, namespace: shop }}
spec:
  action: DENY
  rules:
    - to: [ {{ operation: {{ paths: ["/orders/secret"], ports: ["{port}"] }} }} ]
    - to: [ {{ operation: {{ paths: ["/orders/other"], ports: ["1"] }} }} ]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{ name: orders-read, namespace: shop }}
spec:
  targetRefs: [ {{ kind: Service, group: "", name: orders }} ]
  action: ALLOW
  rules:
    - to: [ {{ operation: {{ methods: [GET], paths: ["/orders/*"] }} }} ]
"#
    )
}

/// One request with the raw request line `method path`: (status,
/// `ringmesh-error`).
fn send(addr: SocketAddr, method: &str, path: &str) -> (u16, Option<String>) {
    let r = Client::connect(addr).request(
        format!("{method} {path} HTTP/1.1\r\nHost: orders.shop\r\nContent-Length: 0\r\n\r\n")
            .as_bytes(),
    );
    (r.status, r.header("ringmesh-error").map(str::to_string))
}

#[test]
fn a_sidecar_judges_requests_by_its_services_policies() {
    let upstream = Upstream::start("orders");
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "shop.yaml", &shop(upstream.addr));
    let cp = ControlPlane::start(dir.path(), "127.0.0.1:0".parse().expect("addr"));
    let (_orders, inbound, _) = sidecar(cp.addr, "orders-1", "orders.shop", upstream.addr);
    eventually("the policies in force", Duration::from_secs(15), || {
        send(inbound, "GET", "/orders/1").0 == 200
    });
    let served = upstream.requests();
    let denied = Some("authorization_denied".to_string());
    // Not GET: no ALLOW policy matches.
    assert_eq!(send(inbound, "POST", "/orders/1"), (403, denied.clone()));
    // Normalised to /admin: the DENY policy.
    assert_eq!(
        send(inbound, "GET", "/orders/../admin"),
        (403, denied.clone())
    );
    assert_eq!(send(inbound, "GET", "/admin/x"), (403, denied.clone()));
    // Served by no ALLOW rule.
    assert_eq!(send(inbound, "GET", "/other"), (403, denied.clone()));
    assert_eq!(send(inbound, "GET", "/orders/2").0, 200);
    // `ports` are the workload's: the rule naming its port applies, the
    // one naming another port does not.
    assert_eq!(
        send(inbound, "GET", "/orders/secret"),
        (403, denied.clone())
    );
    assert_eq!(send(inbound, "GET", "/orders/other").0, 200);
    assert_eq!(
        upstream.requests(),
        served + 2,
        "refused requests never reach the workload"
    );

    // `ringmeshctl auth check` answers what the sidecar did, and names
    // the policy that decided.
    for (method, path, policy) in [
        ("GET", "/orders/1", Some("orders-read.shop")),
        ("POST", "/orders/1", None),
        ("GET", "/orders/../admin", Some("no-admin.shop")),
        ("GET", "/admin/x", Some("no-admin.shop")),
        ("GET", "/other", None),
    ] {
        let served = send(inbound, method, path).0 == 200;
        let (code, out, err) = ctl(
            cp.addr,
            &[
                "auth",
                "check",
                "--to",
                "orders.shop",
                "--method",
                method,
                "--path",
                path,
                "-o",
                "json",
            ],
        );
        assert_eq!(
            code,
            if served { 0 } else { 1 },
            "{method} {path}: {out}{err}"
        );
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(
            v["decision"],
            if served { "allow" } else { "deny" },
            "{out}"
        );
        assert_eq!(v["policy"].as_str(), policy, "{method} {path}: {out}");
    }
    let (code, out, _) = ctl(
        cp.addr,
        &[
            "auth",
            "check",
            "--to",
            "orders.shop",
            "--path",
            "/orders/%2e%2e/admin",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        out.starts_with("deny") && out.contains("path:      /admin"),
        "{out}"
    );
    // `ports` conditions need the workload port called.
    let port = upstream.addr.port().to_string();
    let secret = [
        "auth",
        "check",
        "--to",
        "orders.shop",
        "--path",
        "/orders/secret",
    ];
    let (code, out, _) = ctl(cp.addr, &[&secret[..], &["--port", &port]].concat());
    assert!(code == 1 && out.contains("by-port.shop"), "{out}");
    let (code, out, _) = ctl(cp.addr, &secret);
    assert!(code == 0 && out.contains("orders-read.shop"), "{out}");
    let (code, _, err) = ctl(cp.addr, &["auth", "check", "--to", "nowhere"]);
    assert_eq!((code, err.trim()), (1, "no Service `nowhere`"));

    // ringmeshctl lists them, by their names in the mesh.
    let (code, out, err) = ctl(cp.addr, &["get", "authorizationpolicies"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("no-admin.shop") && out.contains("orders-read.shop"),
        "{out}"
    );
    assert!(
        out.contains("DENY") && out.contains("Service/orders.shop"),
        "{out}"
    );
    assert!(out.contains("every Service in shop"), "{out}");
}

#[test]
fn what_the_control_plane_accepts_the_proxy_accepts() {
    // Patterns at the edges of the rules both sides apply: suffixes,
    // encoded reserved characters, `spiffe://` principals, wildcards.
    let text = r#"apiVersion: v1
kind: Service
metadata: { name: orders, namespace: shop }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: edges, namespace: shop }
spec:
  targetRefs: [ { kind: Service, name: orders } ]
  rules:
    - from: [ { source: { principals: ["spiffe://cluster.local/ns/shop/sa/*"], notNamespaces: ["*-dev", "*"] } } ]
      to: [ { operation: { methods: ["*", get, PURGE], notPaths: ["*.json", "/a%20b", "/", "/x/", "*"], paths: ["/orders/*"] } } ]
      when: [ { key: "request.headers[X-Tenant]", values: ["*"], notValues: ["evil*"] } ]
    - {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-all }
spec: {}
"#;
    let res =
        resources::parse(&[("authz.yaml".into(), text.into())]).unwrap_or_else(|e| panic!("{e}"));
    let node = pb::Node {
        id: "orders-1".into(),
        service: "orders.shop".into(),
        role: pb::Role::Sidecar as i32,
        workload_address: "127.0.0.1:7000".into(),
        inbound_address: "127.0.0.1:7001".into(),
        outbound_address: "127.0.0.1:7002".into(),
    };
    let wire = compile(&res, &node, &Workloads::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wire.listeners[0].authorization.len(), 1);
    config::validate(
        &config::proto::to_raw(&wire),
        "snapshot",
        ringmesh_proxy::tls::mesh::IdentitySource::Issued(None),
    )
    .unwrap_or_else(|e| panic!("the proxy rejected a policy the control plane accepted:\n{e}"));
}
