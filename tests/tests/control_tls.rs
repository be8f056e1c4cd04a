//! TLS from the control plane, end to end with real processes: an HTTPS
//! Gateway whose certificates come from Secrets (a file in the watched
//! directory and one made with `ringmeshctl create secret tls`), served by
//! SNI to curl; both rotated, by the directory watch and by ringmeshctl,
//! with new handshakes getting the new certificate; a BackendTLSPolicy to
//! a TLS upstream; and no private key in any output along the way.

use std::path::Path;
use std::time::Duration;

use ringmesh_control::compile::{compile, Workloads};
use ringmesh_control::resources;
use ringmesh_proto::v1 as pb;
use ringmesh_proxy::config;
use ringmesh_tests::control::{self, ctl, free_addr, ControlPlane};
use ringmesh_tests::tls::{run, LeafFiles, Pki, TlsClient, TlsUpstream};
use ringmesh_tests::{eventually, Upstream};

/// PEM as a YAML block scalar under a key indented two spaces.
fn block(pem: &str) -> String {
    let mut out = String::from("|\n");
    for line in pem.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn secret_yaml(name: &str, leaf: &LeafFiles) -> String {
    format!(
        "kind: Secret\nmetadata: {{ name: {name} }}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}  tls.key: {}",
        block(&leaf.cert_pem),
        block(&leaf.key_pem)
    )
}

fn write(dir: &Path, file: &str, text: &str) {
    // Write then rename: the control plane never reads half a file.
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join(file)).expect("rename");
}

/// `curl -v --cacert CA https://HOST:PORT/` resolving HOST to loopback:
/// (verified and answered, body and curl's account of the handshake).
fn curl(port: u16, host: &str, ca: &Path) -> (bool, String) {
    let resolve = format!("{host}:{port}:127.0.0.1");
    let url = format!("https://{host}:{port}/");
    let ca = ca.to_str().expect("utf-8 path");
    run(
        "curl",
        &[
            "-sS",
            "-v",
            "--max-time",
            "20",
            "--cacert",
            ca,
            "--resolve",
            &resolve,
            &url,
        ],
        b"",
    )
}

/// The leaf a new handshake with SNI `host` gets.
fn served(addr: std::net::SocketAddr, ca_pem: &str, host: &str) -> Option<Vec<u8>> {
    TlsClient::connect(addr, ca_pem, host, None)
        .ok()
        .map(|c| c.server_cert().as_ref().to_vec())
}

/// Every line of a key's PEM body: none may appear in any output.
fn key_lines(leaf: &LeafFiles) -> Vec<String> {
    leaf.key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_string)
        .collect()
}

fn assert_no_key(what: &str, text: &str, keys: &[&LeafFiles]) {
    assert!(
        !text.contains("PRIVATE KEY-----"),
        "{what} shows a key:\n{text}"
    );
    for k in keys {
        for line in key_lines(k) {
            assert!(!text.contains(&line), "{what} shows key material:\n{text}");
        }
    }
}

const EDGE: &str = r#"kind: Gateway
metadata: { name: edge }
spec:
  listeners:
    - name: shop
      address: "ADDR"
      protocol: HTTPS
      hostname: shop.example.com
      tls: { mode: Terminate, certificateRefs: [ { kind: Secret, name: shop-cert } ] }
    - name: api
      address: "ADDR"
      protocol: HTTPS
      hostname: api.example.com
      tls: { certificateRefs: [ { name: api-cert } ] }
---
kind: HTTPRoute
metadata: { name: to-shop }
spec:
  parentRefs: [ { kind: Gateway, name: edge } ]
  rules: [ { backendRefs: [ { name: shop } ] } ]
"#;

#[test]
fn an_https_gateway_answers_by_sni_and_rotates_its_certificates() {
    let pki = Pki::new("edge ca");
    let shop = pki.leaf("shop", &["shop.example.com"]);
    let api = pki.leaf("api", &["api.example.com"]);
    let backend = Upstream::start("shop-backend");
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "services.yaml",
        &format!(
            "kind: Service\nmetadata: {{ name: shop }}\nspec: {{ endpoints: ['{}'] }}\n",
            backend.addr
        ),
    );
    // A Secret written by hand into the watched directory.
    write(
        dir.path(),
        "shop-cert.yaml",
        &secret_yaml("shop-cert", &shop),
    );
    let cp = ControlPlane::start(dir.path(), "127.0.0.1:0".parse().expect("addr"));
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, (code, out, err): (i32, String, String)| {
        outputs.push((what.to_string(), format!("{out}{err}")));
        (code, out, err)
    };

    // A Secret made from PEM files by ringmeshctl, as kubectl makes one.
    let (cert, key) = (
        api.cert.to_str().expect("path"),
        api.key.to_str().expect("path"),
    );
    let (code, out, err) = record(
        "create secret tls",
        ctl(
            cp.addr,
            &[
                "create", "secret", "tls", "api-cert", "--cert", cert, "--key", key,
            ],
        ),
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "Secret/api-cert created\n"),
        "{err}"
    );
    let stored = dir.path().join("secret-api-cert.yaml");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&stored)
            .expect("stored")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "a Secret's file is its owner's only");
    }

    let addr = free_addr();
    let files = tempfile::tempdir().expect("tempdir");
    let edge = files.path().join("edge.yaml");
    std::fs::write(&edge, EDGE.replace("ADDR", &addr.to_string())).expect("write");
    let (code, out, err) = record(
        "apply",
        ctl(cp.addr, &["apply", "-f", edge.to_str().expect("path")]),
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "Gateway/edge created\nHTTPRoute/to-shop created\n"),
        "{err}"
    );
    let gw = control::gateway(cp.addr, "gw-1", "edge");

    // SNI picks the certificate; curl verifies it against the CA and the
    // name it asked for, so a wrong certificate would fail the request.
    for (host, leaf) in [("shop.example.com", &shop), ("api.example.com", &api)] {
        let (ok, out) = curl(addr.port(), host, &pki.ca_file());
        assert!(ok, "curl https://{host}/: {out}");
        assert!(out.contains("shop-backend"), "proxied over TLS: {out}");
        assert!(out.contains(&format!("subject: CN={host}")), "{out}");
        assert_eq!(served(addr, &pki.ca_pem, host), Some(leaf.der().to_vec()));
    }

    // A keep-alive connection made before the rotations.
    let mut before = TlsClient::connect(addr, &pki.ca_pem, "shop.example.com", None)
        .expect("connect before rotation");
    assert_eq!(
        before.get("/", "shop.example.com").map(|r| r.status),
        Ok(200)
    );

    // Rotation 1: the file in the watched directory changes.
    let shop2 = pki.leaf("shop2", &["shop.example.com"]);
    write(
        dir.path(),
        "shop-cert.yaml",
        &secret_yaml("shop-cert", &shop2),
    );
    eventually(
        "new handshakes for shop.example.com get the new certificate",
        Duration::from_secs(15),
        || served(addr, &pki.ca_pem, "shop.example.com") == Some(shop2.der().to_vec()),
    );
    let (ok, out) = curl(addr.port(), "shop.example.com", &pki.ca_file());
    assert!(ok && out.contains("shop-backend"), "{out}");
    assert_eq!(
        served(addr, &pki.ca_pem, "api.example.com"),
        Some(api.der().to_vec()),
        "the other listener's certificate is untouched"
    );

    // Rotation 2: ringmeshctl replaces the Secret it made.
    let api2 = pki.leaf("api2", &["api.example.com"]);
    let (cert, key) = (
        api2.cert.to_str().expect("path"),
        api2.key.to_str().expect("path"),
    );
    let (code, out, err) = record(
        "create secret tls (rotation)",
        ctl(
            cp.addr,
            &[
                "create", "secret", "tls", "api-cert", "--cert", cert, "--key", key,
            ],
        ),
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "Secret/api-cert configured\n"),
        "{err}"
    );
    eventually(
        "new handshakes for api.example.com get the new certificate",
        Duration::from_secs(15),
        || served(addr, &pki.ca_pem, "api.example.com") == Some(api2.der().to_vec()),
    );
    let (ok, out) = curl(addr.port(), "api.example.com", &pki.ca_file());
    assert!(ok && out.contains("shop-backend"), "{out}");
    assert_eq!(
        before.get("/", "shop.example.com").map(|r| r.status),
        Ok(200),
        "the connection made before both rotations still serves"
    );

    // A key that does not match: refused with its field, no key shown,
    // and the certificate in force stays.
    let wrong = pki.leaf("wrong", &["api.example.com"]);
    let (code, _, err) = record(
        "create secret tls (mismatched key)",
        ctl(
            cp.addr,
            &[
                "create",
                "secret",
                "tls",
                "api-cert",
                "--cert",
                api2.cert.to_str().expect("path"),
                "--key",
                wrong.key.to_str().expect("path"),
            ],
        ),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("Secret/api-cert.data[\"tls.key\"]: the private key does not match"),
        "{err}"
    );
    assert_eq!(
        served(addr, &pki.ca_pem, "api.example.com"),
        Some(api2.der().to_vec())
    );

    // What the operator sees: summaries, never keys.
    for args in [
        &["get", "secrets"][..],
        &["get", "secrets", "-o", "json"],
        &["get", "secrets", "-o", "yaml"],
        &["get", "gateways", "-o", "json"],
        &["status"],
    ] {
        record(&args.join(" "), ctl(cp.addr, args));
    }
    let table = &outputs
        .iter()
        .find(|(w, _)| w == "get secrets")
        .expect("get secrets")
        .1;
    assert!(
        table.contains("shop-cert") && table.contains("api.example.com"),
        "{table}"
    );
    assert!(table.contains("tls.key (redacted)"), "{table}");
    let json = &outputs
        .iter()
        .find(|(w, _)| w == "get secrets -o json")
        .expect("json")
        .1;
    let rows: serde_json::Value = serde_json::from_str(json).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{json}");
    let out = std::process::Command::new(ringmesh_tests::ctl_bin())
        .args(["validate", "-f"])
        .arg(dir.path())
        .output()
        .expect("validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("valid: 1 services, 1 HTTP routes, 1 gateways, 2 secrets in 5 files"),
        "{text}"
    );
    outputs.push(("validate".into(), text));
    let (status, dump) = gw.admin_get("/config_dump");
    assert_eq!(status, 200);
    outputs.push(("the gateway's /config_dump".into(), dump));
    outputs.push(("the control plane's log".into(), cp.log_text()));
    outputs.push(("the gateway's log".into(), gw.log_text()));
    for (what, text) in &outputs {
        assert_no_key(what, text, &[&shop, &shop2, &api, &api2, &wrong]);
    }
}

#[test]
fn a_backend_tls_policy_makes_the_gateway_speak_tls_to_its_service() {
    let pki = Pki::new("payments ca");
    let leaf = pki.leaf("payments", &["payments.internal"]);
    let upstream = TlsUpstream::start("payments", &leaf);
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let policy = |hostname: &str| {
        format!(
            "kind: ConfigMap\nmetadata: {{ name: payments-ca }}\ndata:\n  ca.crt: {}---\nkind: BackendTLSPolicy\nmetadata: {{ name: payments }}\nspec:\n  targetRefs: [ {{ kind: Service, name: payments }} ]\n  validation:\n    caCertificateRefs: [ {{ kind: ConfigMap, name: payments-ca }} ]\n    hostname: {hostname}\n",
            block(&pki.ca_pem)
        )
    };
    write(
        dir.path(),
        "mesh.yaml",
        &format!(
            "kind: Service\nmetadata: {{ name: payments }}\nspec: {{ endpoints: ['{}'] }}\n---\nkind: Gateway\nmetadata: {{ name: edge }}\nspec: {{ listeners: [ {{ name: web, address: '{addr}' }} ] }}\n---\nkind: HTTPRoute\nmetadata: {{ name: pay }}\nspec: {{ parentRefs: [ {{ kind: Gateway, name: edge }} ], rules: [ {{ backendRefs: [ {{ name: payments }} ] }} ] }}\n",
            upstream.addr
        ),
    );
    write(dir.path(), "tls.yaml", &policy("payments.internal"));
    let cp = ControlPlane::start(dir.path(), "127.0.0.1:0".parse().expect("addr"));
    let _gw = control::gateway(cp.addr, "gw-1", "edge");
    let r = ringmesh_tests::Client::connect(addr).get("/", "shop.example");
    assert_eq!((r.status, r.text()), (200, "payments".to_string()));
    assert!(upstream.connections() > 0);

    // A hostname the upstream's certificate does not name: verification
    // fails, and the proxy says so.
    write(dir.path(), "tls.yaml", &policy("billing.internal"));
    eventually("the wrong name refused", Duration::from_secs(15), || {
        let r = ringmesh_tests::Client::connect(addr).get("/", "shop.example");
        r.status == 502 && r.header("ringmesh-error") == Some("upstream_tls_failed")
    });
}

/// The control plane's TLS output is valid input for the proxy: what it
/// compiles passes the proxy's own validation (PEM, key match, names),
/// the path every pushed snapshot takes.
#[test]
fn compiled_tls_passes_the_proxys_validation() {
    let pki = Pki::new("ca");
    let (shop, fallback) = (
        pki.leaf("shop", &["shop.example.com"]),
        pki.leaf("fallback", &["example.com", "shop.example.com"]),
    );
    let upstream_ca = Pki::new("upstream ca");
    let text = format!(
        "{}---\n{}---\nkind: ConfigMap\nmetadata: {{ name: up-ca }}\ndata:\n  ca.crt: {}---\n{}",
        secret_yaml("shop-cert", &shop),
        secret_yaml("fallback-cert", &fallback),
        block(&upstream_ca.ca_pem),
        r#"kind: Service
metadata: { name: up }
spec: { endpoints: [up.internal:443] }
---
kind: BackendTLSPolicy
metadata: { name: up }
spec:
  targetRefs: [ { name: up } ]
  validation: { caCertificateRefs: [ { name: up-ca } ], hostname: up.internal }
  options: { ringmesh.io/client-certificate: shop-cert }
---
kind: Gateway
metadata: { name: edge }
spec:
  listeners:
    - { name: plain, address: "127.0.0.1:8080", hostname: shop.example.com }
    - { name: tls, address: "127.0.0.1:8443", protocol: HTTPS, tls: { certificateRefs: [ { name: fallback-cert } ] } }
    - { name: shop, address: "127.0.0.1:8443", protocol: HTTPS, hostname: shop.example.com, tls: { certificateRefs: [ { name: shop-cert } ] } }
---
kind: HTTPRoute
metadata: { name: r }
spec: { parentRefs: [ { kind: Gateway, name: edge } ], rules: [ { backendRefs: [ { name: up } ] } ] }
"#
    );
    let res = resources::parse(&[("mesh.yaml".into(), text)]).unwrap_or_else(|e| panic!("{e}"));
    let node = pb::Node {
        id: "gw".into(),
        service: "edge".into(),
        role: pb::Role::Gateway as i32,
        ..Default::default()
    };
    let wire = compile(&res, &node, &Workloads::new()).unwrap_or_else(|e| panic!("{e}"));
    let cfg = config::validate(
        &config::proto::to_raw(&wire),
        "snapshot",
        ringmesh_proxy::tls::mesh::IdentitySource::Issued(None),
    )
    .unwrap_or_else(|e| panic!("the proxy rejected its config:\n{e}"));
    let names: Vec<(&str, bool)> = cfg
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.tls.is_some()))
        .collect();
    assert_eq!(names, [("plain", false), ("tls", true)]);
    let up = cfg
        .clusters
        .iter()
        .find(|c| c.name == "up")
        .expect("cluster");
    assert!(up.tls.is_some(), "origination to `up`");
}
