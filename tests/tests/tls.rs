//! TLS on both sides, end to end: curl, openssl s_client and rustls
//! clients against TLS listeners of the real proxy; TLS upstreams behind
//! it. Certificates are made by each test (rcgen), never committed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringmesh_tests::tls::{run, yaml_path, LeafFiles, Pki, TlsClient, TlsUpstream};
use ringmesh_tests::{eventually, run_cli, Client, Proxy, Upstream};

/// One TLS listener `main` serving `certs` (YAML list items), answering
/// every request itself (`hello`) unless `routes` says otherwise.
fn listener_yaml(certs: &[&LeafFiles], tls_extra: &str, routes: &str, clusters: &str) -> String {
    let mut y = String::from(
        "runtime: { workers: 2 }\nadmin: { address: '127.0.0.1:0' }\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    tls:\n",
    );
    y.push_str(tls_extra);
    y.push_str("      certificates:\n");
    for c in certs {
        y.push_str(&format!(
            "        - {{ cert: {}, key: {} }}\n",
            yaml_path(&c.cert),
            yaml_path(&c.key)
        ));
    }
    y.push_str("    routes:\n");
    if routes.is_empty() {
        y.push_str("      - { name: hello, direct_response: { status: 200, body: hello } }\n");
    } else {
        y.push_str(routes);
    }
    y.push_str(clusters);
    y
}

fn curl(args: &[&str]) -> (bool, String) {
    let mut all = vec!["-sS", "--max-time", "20"];
    all.extend_from_slice(args);
    run("curl", &all, b"")
}

fn s_client(port: u16, args: &[&str]) -> (bool, String) {
    let connect = format!("127.0.0.1:{port}");
    let mut all = vec!["s_client", "-connect", &connect];
    all.extend_from_slice(args);
    run("openssl", &all, b"")
}

#[test]
fn curl_and_openssl_get_the_certificate_their_sni_names() {
    let pki = Pki::new("test ca");
    let a = pki.leaf("a", &["a.test"]);
    let w = pki.leaf("w", &["*.w.test"]);
    let proxy = Proxy::start(&listener_yaml(&[&a, &w], "", "", ""));
    let addr = proxy.addr("main");
    let ca = pki.ca_file();
    let ca = ca.to_str().expect("path");

    let resolve = format!("a.test:{}:127.0.0.1", addr.port());
    let (ok, out) = curl(&[
        "--cacert",
        ca,
        "--resolve",
        &resolve,
        &format!("https://a.test:{}/", addr.port()),
    ]);
    assert!(ok && out == "hello", "curl over TLS: {out}");

    let resolve = format!("x.w.test:{}:127.0.0.1", addr.port());
    let (ok, out) = curl(&[
        "--cacert",
        ca,
        "--resolve",
        &resolve,
        &format!("https://x.w.test:{}/", addr.port()),
    ]);
    assert!(
        ok && out == "hello",
        "the wildcard certificate verifies for x.w.test: {out}"
    );

    let (ok, out) = s_client(
        addr.port(),
        &[
            "-servername",
            "x.w.test",
            "-CAfile",
            ca,
            "-alpn",
            "h2,http/1.1",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("subject=CN = *.w.test"),
        "SNI x.w.test gets the wildcard: {out}"
    );
    assert!(
        out.contains("ALPN protocol: h2"),
        "ALPN answered, HTTP/2 preferred: {out}"
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

    let (_, out) = s_client(addr.port(), &["-servername", "other.test", "-CAfile", ca]);
    assert!(
        out.contains("subject=CN = a.test"),
        "an unknown name gets the default: {out}"
    );
    let (_, out) = s_client(addr.port(), &["-noservername", "-CAfile", ca]);
    assert!(
        out.contains("subject=CN = a.test"),
        "no SNI gets the default: {out}"
    );

    // TLS 1.2 works, with an ECDHE AEAD suite.
    let (ok, out) = s_client(
        addr.port(),
        &["-tls1_2", "-CAfile", ca, "-servername", "a.test"],
    );
    assert!(ok && out.contains("Protocol  : TLSv1.2"), "{out}");
    assert!(
        out.contains("ECDHE-ECDSA-AES256-GCM-SHA384") || out.contains("ECDHE-ECDSA-CHACHA20"),
        "{out}"
    );
    assert_eq!(
        proxy_metric(
            &proxy,
            "ringmesh_tls_handshake_failures_total{listener=\"main\",reason=\"incompatible\"}"
        ),
        0
    );
    assert!(proxy_metric(&proxy, "ringmesh_tls_handshakes_total{listener=\"main\"}") >= 6);
}

#[test]
fn old_versions_and_weak_suites_are_refused() {
    let pki = Pki::new("test ca");
    let a = pki.leaf("a", &["a.test"]);
    let proxy = Proxy::start(&listener_yaml(&[&a], "", "", ""));
    let port = proxy.addr("main").port();
    let refused = |args: &[&str]| {
        let (ok, out) = s_client(port, args);
        assert!(
            !ok || out.contains("Cipher is (NONE)"),
            "{args:?} was accepted: {out}"
        );
        assert!(
            !out.contains("BEGIN CERTIFICATE") && !out.contains("subject=CN"),
            "no certificate shown to {args:?}: {out}"
        );
    };
    // SECLEVEL=0: let this openssl offer what it would refuse by default.
    refused(&["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    refused(&["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    refused(&["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"]); // CBC
    refused(&["-tls1_2", "-cipher", "AES128-GCM-SHA256"]); // no forward secrecy
    let (ok, out) = curl(&[
        "-k",
        "--tls-max",
        "1.1",
        &format!("https://127.0.0.1:{port}/"),
    ]);
    assert!(!ok, "curl with TLS <= 1.1: {out}");
    let key = "ringmesh_tls_handshake_failures_total{listener=\"main\",reason=\"incompatible\"}";
    eventually("refusals counted", Duration::from_secs(5), || {
        proxy_metric(&proxy, key) >= 5
    });
}

#[test]
fn a_stalled_handshake_is_closed_and_counted() {
    let pki = Pki::new("test ca");
    let a = pki.leaf("a", &["a.test"]);
    let proxy = Proxy::start(&listener_yaml(
        &[&a],
        "      handshake_timeout: 300ms\n",
        "",
        "",
    ));
    let mut c = Client::connect(proxy.addr("main"));
    c.send(&[0x16, 0x03, 0x01]); // the start of a record, then nothing
    let start = Instant::now();
    let rest = c.read_to_close();
    assert!(rest.is_empty(), "nothing but a close: {rest:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
    let key = "ringmesh_tls_handshake_failures_total{listener=\"main\",reason=\"timeout\"}";
    eventually("timeout counted", Duration::from_secs(5), || {
        proxy_metric(&proxy, key) == 1
    });
}

#[test]
fn a_required_client_certificate_is_checked() {
    let pki = Pki::new("test ca");
    let a = pki.leaf("a", &["a.test"]);
    let client = pki.leaf("client", &["client.test"]);
    let stranger = Pki::new("stranger").leaf("stranger", &["client.test"]);
    let auth = format!(
        "      client_auth: {{ ca: {}, mode: require }}\n",
        yaml_path(&pki.ca_file())
    );
    let proxy = Proxy::start(&listener_yaml(&[&a], &auth, "", ""));
    let addr = proxy.addr("main");

    let mut c =
        TlsClient::connect(addr, &pki.ca_pem, "a.test", Some(&client)).expect("with a certificate");
    assert_eq!(c.get("/", "a.test").expect("get").text(), "hello");

    // TLS 1.3 clients learn of the refusal at their first read.
    let without = TlsClient::connect(addr, &pki.ca_pem, "a.test", None)
        .and_then(|mut c| c.get("/", "a.test").map(|_| ()));
    assert!(without.is_err(), "no certificate: refused");
    let wrong = TlsClient::connect(addr, &pki.ca_pem, "a.test", Some(&stranger))
        .and_then(|mut c| c.get("/", "a.test").map(|_| ()));
    assert!(wrong.is_err(), "a certificate from another CA: refused");
    let (ok, _) = curl(&[
        "--cacert",
        pki.ca_file().to_str().expect("path"),
        "--resolve",
        &format!("a.test:{}:127.0.0.1", addr.port()),
        &format!("https://a.test:{}/", addr.port()),
    ]);
    assert!(!ok, "curl without a certificate is refused");

    let count = |reason: &str| {
        proxy_metric(
            &proxy,
            &format!(
                "ringmesh_tls_handshake_failures_total{{listener=\"main\",reason=\"{reason}\"}}"
            ),
        )
    };
    eventually("refusals counted by reason", Duration::from_secs(5), || {
        count("no_client_certificate") >= 2 && count("bad_certificate") == 1
    });
}

/// Keep-alive TLS clients, each on one connection for its whole life,
/// counting answers and failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: std::net::SocketAddr, ca_pem: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failures, ca) = (
                    stop.clone(),
                    ok.clone(),
                    failures.clone(),
                    ca_pem.to_string(),
                );
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(120);
                    let mut c = match TlsClient::connect(addr, &ca, "a.test", None) {
                        Ok(c) => c,
                        Err(e) => return failures.lock().expect("lock").push(e),
                    };
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        match c.get("/", "a.test") {
                            Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                            Ok(r) => {
                                failures.lock().expect("lock").push(format!(
                                    "{} {}",
                                    r.status,
                                    r.text()
                                ));
                                0
                            }
                            Err(e) => {
                                failures.lock().expect("lock").push(e);
                                return;
                            }
                        };
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            threads,
        }
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("load thread");
        }
        let failures = self.failures.lock().expect("lock").clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

#[test]
fn certificates_rotate_on_reload_without_a_failed_request() {
    let pki = Pki::new("test ca");
    let first = pki.leaf("a", &["a.test"]);
    let yaml = listener_yaml(&[&first], "", "", "");
    let proxy = Proxy::start(&yaml);
    let addr = proxy.addr("main");
    let before = TlsClient::connect(addr, &pki.ca_pem, "a.test", None).expect("connect");
    assert_eq!(before.server_cert(), first.der());

    let load = Load::start(addr, &pki.ca_pem, 4);
    eventually("load running", Duration::from_secs(10), || {
        load.ok.load(Ordering::Relaxed) > 100
    });

    // A key that does not match: refused, the old certificate keeps serving.
    let other = pki.leaf("other", &["a.test"]);
    let bad = first.replaced_by(&LeafFiles {
        key_pem: other.key_pem.clone(),
        ..first.clone()
    });
    proxy.reload(&yaml);
    eventually("bad reload refused", Duration::from_secs(10), || {
        proxy.log_count("config reload rejected") >= 1
    });
    assert!(
        proxy.log_text().contains("does not match"),
        "{}",
        proxy.log_text()
    );
    let c = TlsClient::connect(addr, &pki.ca_pem, "a.test", None).expect("connect");
    assert_eq!(c.server_cert(), first.der(), "still the old certificate");
    drop(bad);

    // The rotation: new handshakes get the new certificate.
    let second = first.replaced_by(&pki.leaf("second", &["a.test"]));
    proxy.reload(&yaml);
    eventually("new certificate served", Duration::from_secs(10), || {
        TlsClient::connect(addr, &pki.ca_pem, "a.test", None)
            .is_ok_and(|c| c.server_cert() == second.der())
    });
    let seen = load.ok.load(Ordering::Relaxed);
    eventually("load still running", Duration::from_secs(10), || {
        load.ok.load(Ordering::Relaxed) > seen + 100
    });
    let (ok, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} failed of {}: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(5)]
    );
}

/// A TLS listener forwarding everything to a plain upstream, and a client
/// connected to it.
fn tls_in_front_of_plain() -> (Upstream, Proxy, TlsClient) {
    let pki = Pki::new("test ca");
    let a = pki.leaf("a", &["a.test"]);
    let up = Upstream::start("plain");
    let routes = "      - { name: all, cluster: plain }\n";
    let clusters = format!(
        "clusters:\n  - {{ name: plain, endpoints: ['{}'] }}\n",
        up.addr
    );
    let proxy = Proxy::start(&listener_yaml(&[&a], "", routes, &clusters));
    let c = TlsClient::connect(proxy.addr("main"), &pki.ca_pem, "a.test", None).expect("connect");
    (up, proxy, c)
}

#[test]
fn https_is_forwarded_as_the_scheme() {
    let (_up, _proxy, mut c) = tls_in_front_of_plain();
    assert_eq!(c.alpn().as_deref(), Some(&b"http/1.1"[..]));
    let head = c
        .get("/headers", "a.test")
        .expect("get")
        .text()
        .to_ascii_lowercase();
    assert!(head.contains("x-forwarded-proto: https\r\n"), "{head}");
}

/// A plain listener in front of a TLS cluster.
fn origination_yaml(up: &TlsUpstream, ca: &std::path::Path, sni: &str) -> String {
    format!(
        "runtime: {{ workers: 1 }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - {{ name: all, cluster: secure }}\nclusters:\n  - name: secure\n    endpoints: ['{}']\n    tls: {{ ca: {}, sni: {sni} }}\n",
        up.addr,
        yaml_path(ca)
    )
}

#[test]
fn upstream_tls_is_verified_and_reused() {
    let pki = Pki::new("test ca");
    let good = TlsUpstream::start("secure", &pki.leaf("up", &["api.test"]));
    let proxy = Proxy::start(&origination_yaml(&good, &pki.ca_file(), "api.test"));
    let mut c = Client::connect(proxy.addr("main"));
    for _ in 0..5 {
        let r = c.get("/", "api.test");
        assert_eq!((r.status, r.text().as_str()), (200, "secure"));
    }
    assert_eq!(good.connections(), 1, "one TLS connection, reused");

    let refused = |up: &TlsUpstream, ca: &std::path::Path, sni: &str| {
        let proxy = Proxy::start(&origination_yaml(up, ca, sni));
        let r = Client::connect(proxy.addr("main")).get("/", "api.test");
        assert_eq!(r.status, 502);
        assert_eq!(r.header("ringmesh-error"), Some("upstream_tls_failed"));
        r.text()
    };
    let expired = TlsUpstream::start(
        "old",
        &pki.leaf_dated("old", &["api.test"], Some(((2020, 1, 1), (2021, 1, 1)))),
    );
    assert_eq!(
        refused(&expired, &pki.ca_file(), "api.test"),
        "upstream_tls_failed: certificate expired\n"
    );
    let other_ca = Pki::new("other ca");
    assert_eq!(
        refused(&good, &other_ca.ca_file(), "api.test"),
        "upstream_tls_failed: certificate signed by an unknown authority\n"
    );
    assert_eq!(
        refused(&good, &pki.ca_file(), "wrong.test"),
        "upstream_tls_failed: certificate not valid for the server name\n"
    );
    // A plaintext upstream behind a TLS cluster.
    let plain = Upstream::start("plain");
    let yaml = origination_yaml(&good, &pki.ca_file(), "api.test")
        .replace(&good.addr.to_string(), &plain.addr.to_string());
    let proxy = Proxy::start(&yaml);
    let r = Client::connect(proxy.addr("main")).get("/", "api.test");
    assert_eq!(
        (r.status, r.header("ringmesh-error")),
        (502, Some("upstream_tls_failed"))
    );
}

#[test]
fn private_keys_stay_out_of_dumps_and_errors() {
    let pki = Pki::new("test ca");
    let a = pki.leaf("a", &["a.test"]);
    let inline = format!(
        "runtime: {{ workers: 1 }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    tls:\n      certificates:\n        - cert_pem: {:?}\n          key_pem: {:?}\n    routes:\n      - {{ name: hello, direct_response: {{ status: 200, body: hello }} }}\n",
        a.cert_pem, a.key_pem
    );
    let proxy = Proxy::start(&inline);
    let c = TlsClient::connect(proxy.addr("main"), &pki.ca_pem, "a.test", None).expect("connect");
    assert_eq!(c.server_cert(), a.der());
    let (status, dump) = proxy.admin_get("/config_dump");
    assert_eq!(status, 200);
    assert!(!dump.contains("PRIVATE KEY"), "{dump}");
    assert!(dump.contains("[redacted]"), "{dump}");
    assert!(!proxy.log_text().contains("PRIVATE KEY"));

    // A mismatched key: located, named by file, no key bytes.
    let other = pki.leaf("other", &["a.test"]);
    let bad = listener_yaml(
        &[&LeafFiles {
            key: other.key.clone(),
            ..a.clone()
        }],
        "",
        "",
        "",
    );
    let file = pki.dir.path().join("bad.yaml");
    std::fs::write(&file, bad).expect("write");
    let (code, _, err) = run_cli(&["validate", "--config", file.to_str().expect("path")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(":8:") && err.contains("listeners[0].tls.certificates[0].key"),
        "{err}"
    );
    assert!(
        err.contains("other.key") && err.contains("does not match"),
        "{err}"
    );
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    // An expired certificate and a missing file, in the same round.
    let old = pki.leaf_dated("old", &["a.test"], Some(((2020, 1, 1), (2021, 1, 1))));
    let missing = LeafFiles {
        cert: pki.dir.path().join("missing.crt"),
        ..a.clone()
    };
    std::fs::write(&file, listener_yaml(&[&old, &missing], "", "", "")).expect("write");
    let (code, _, err) = run_cli(&["validate", "--config", file.to_str().expect("path")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("certificates[0].cert") && err.contains("expired on"),
        "{err}"
    );
    assert!(
        err.contains("certificates[1].cert") && err.contains("missing.crt"),
        "{err}"
    );
}

#[test]
fn a_websocket_tunnel_runs_over_a_tls_listener() {
    let (_up, _proxy, mut c) = tls_in_front_of_plain();
    c.send(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    let head = c.read_head();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Small frames, and one larger than a TLS record, both ways.
    let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    for msg in [&b"ping"[..], &big[..], b"after"] {
        c.send(msg);
        assert!(
            c.read_exact(msg.len()) == msg,
            "echo of {} bytes through the tunnel",
            msg.len()
        );
    }
    // A half-close reaches the upstream, which closes in turn.
    c.close_write();
    assert!(c.read_to_end().is_empty());
}

#[test]
fn sessions_resume_unless_turned_off() {
    let pki = Pki::new("test ca");
    let a = pki.leaf("a", &["a.test"]);
    let ca = pki.ca_file();
    let ca = ca.to_str().expect("path");
    let request = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    // One connection through openssl, saving its session (`-sess_out`) or
    // offering the saved one (`-sess_in`); returns how the handshake went:
    // "New" or "Reused".
    let handshake = |proxy: &Proxy, version: &str, flag: &str| {
        let connect = format!("127.0.0.1:{}", proxy.addr("main").port());
        let sess = pki.dir.path().join(format!("session{version}.pem"));
        let sess = sess.to_str().expect("path");
        let args = [
            "s_client",
            version,
            "-connect",
            &connect,
            "-servername",
            "a.test",
            "-CAfile",
            ca,
            flag,
            sess,
            "-ign_eof",
        ];
        let (_, out) = run("openssl", &args, request);
        assert!(out.contains("hello"), "{out}");
        let kind = out
            .lines()
            .find(|l| l.starts_with("New,") || l.starts_with("Reused,"));
        kind.unwrap_or("none")
            .split(',')
            .next()
            .unwrap_or("")
            .to_string()
    };
    let twice = |proxy: &Proxy, version: &str| {
        [
            handshake(proxy, version, "-sess_out"),
            handshake(proxy, version, "-sess_in"),
        ]
    };
    let yaml = listener_yaml(&[&a], "", "", "");
    let proxy = Proxy::start(&yaml);
    assert_eq!(
        twice(&proxy, "-tls1_3"),
        ["New", "Reused"],
        "TLS 1.3 ticket"
    );
    assert_eq!(
        twice(&proxy, "-tls1_2"),
        ["New", "Reused"],
        "TLS 1.2 session"
    );
    // A reload keeps the listener's ticket keys and session cache: the
    // sessions saved above still resume.
    proxy.reload(&yaml);
    eventually("reloaded", Duration::from_secs(10), || {
        proxy.log_count("config reloaded") == 1
    });
    assert_eq!(
        handshake(&proxy, "-tls1_3", "-sess_in"),
        "Reused",
        "1.3 after a reload"
    );
    assert_eq!(
        handshake(&proxy, "-tls1_2", "-sess_in"),
        "Reused",
        "1.2 after a reload"
    );
    let off = Proxy::start(&listener_yaml(
        &[&a],
        "      session_resumption: false\n",
        "",
        "",
    ));
    assert_eq!(twice(&off, "-tls1_3"), ["New", "New"]);
    assert_eq!(twice(&off, "-tls1_2"), ["New", "New"]);
}

#[test]
fn a_cluster_presents_its_client_certificate() {
    let pki = Pki::new("test ca");
    let up = TlsUpstream::start_with("mutual", &pki.leaf("up", &["api.test"]), Some(&pki.ca_pem));
    let client = pki.leaf("client", &["proxy.test"]);
    let with_cert = origination_yaml(&up, &pki.ca_file(), "api.test").replace(
        "sni: api.test }",
        &format!(
            "sni: api.test, client_certificate: {{ cert: {}, key: {} }} }}",
            yaml_path(&client.cert),
            yaml_path(&client.key)
        ),
    );
    let proxy = Proxy::start(&with_cert);
    let r = Client::connect(proxy.addr("main")).get("/", "api.test");
    assert_eq!((r.status, r.text().as_str()), (200, "mutual"));

    // Without one, the upstream refuses: in TLS 1.3 after the proxy's side
    // of the handshake, with an alert at the first read.
    let proxy = Proxy::start(&origination_yaml(&up, &pki.ca_file(), "api.test"));
    let r = Client::connect(proxy.addr("main")).get("/", "api.test");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        r.text(),
        "upstream_tls_failed: peer refused our certificate\n"
    );
}

/// A series' value, 0 while it is absent.
fn proxy_metric(proxy: &Proxy, series: &str) -> u64 {
    proxy.metric(series).unwrap_or(0)
}
