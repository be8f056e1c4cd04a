//! The load and the upstream speaking TLS to each other over loopback
//! sockets, in this process.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::http::RequestSpec;
use crate::load::{self, LoadOptions, LoadReport};
use crate::runtime::IoMode;
use crate::upstream::{self, UpstreamOptions};

fn certs(dir: &Path) -> CertFiles {
    generate(dir).expect("certificates")
}

fn https_upstream(files: &CertFiles) -> SocketAddr {
    let up = upstream::start(UpstreamOptions {
        body_size: 100,
        tls: Some(ServerTls::from_files(&files.chain, &files.key).unwrap()),
        ..Default::default()
    })
    .unwrap();
    up.addrs[0]
}

fn client(files: &CertFiles, resume: bool) -> ClientTls {
    ClientTls::from_ca_file(&files.ca, DEFAULT_SNI, resume).unwrap()
}

fn load(addr: SocketAddr, tls: &ClientTls, f: impl FnOnce(&mut LoadOptions)) -> LoadReport {
    let mut o = LoadOptions {
        addr,
        request: RequestSpec {
            method: "GET".into(),
            host: "bench".into(),
            path: "/".into(),
            headers: vec![],
            body_size: 0,
            close: false,
        },
        connections: 2,
        threads: 1,
        cpus: vec![],
        duration: Duration::from_millis(400),
        warmup: Duration::from_millis(100),
        rate: None,
        pipeline: 1,
        new_connection: false,
        timeout: Duration::from_secs(5),
        io: IoMode::Auto,
        h2: None,
    };
    f(&mut o);
    load::run_with_tls(&o, Some(tls), Arc::new(AtomicBool::new(false)), &mut ()).unwrap()
}

fn assert_clean(r: &LoadReport, what: &str) {
    assert!(r.requests > 0, "{what}: no responses: {r}");
    assert_eq!(r.ok, r.requests, "{what}: {r}");
    assert_eq!(r.errors.total(), 0, "{what}: {r}");
    let tls = r.tls.as_ref().expect("a TLS summary");
    assert_eq!(
        (tls.version.as_str(), tls.key_exchange.as_str()),
        ("TLSv1_3", "X25519"),
        "{what}: {r}"
    );
}

#[test]
fn load_and_upstream_round_trip_over_tls_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let files = certs(dir.path());
    let addr = https_upstream(&files);
    let tls = client(&files, false);

    let closed = load(addr, &tls, |_| {});
    assert_clean(&closed, "closed loop");
    assert_eq!(
        closed.response_body_bytes,
        closed.requests * 100,
        "{closed}"
    );

    let piped = load(addr, &tls, |o| o.pipeline = 8);
    assert_clean(&piped, "pipelined");
    assert_eq!(piped.requests % 8, 0, "whole batches: {piped}");

    let paced = load(addr, &tls, |o| o.rate = Some(200.0));
    assert_clean(&paced, "open loop");

    // Bodies both ways larger than rustls buffers at once (64 KiB) and
    // than one TLS record (16 KiB).
    let big = load(addr, &tls, |o| {
        o.request.method = "POST".into();
        o.request.body_size = 200_000;
        o.request.path = "/size/300000".into();
    });
    assert_clean(&big, "large bodies");
    assert_eq!(big.response_body_bytes, big.requests * 300_000, "{big}");

    // A new connection per request: one full handshake each.
    let fresh = load(addr, &tls, |o| {
        o.new_connection = true;
        o.request.close = true;
    });
    assert_clean(&fresh, "new connection per request");
    let t = fresh.tls.as_ref().unwrap();
    assert_eq!(
        (t.full_handshakes, t.resumed_handshakes),
        (fresh.requests, 0),
        "{fresh}"
    );
}

#[test]
fn resumption_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let files = certs(dir.path());
    let addr = https_upstream(&files);
    let r = load(addr, &client(&files, true), |o| {
        o.new_connection = true;
        o.request.close = true;
    });
    assert_clean(&r, "resuming");
    let t = r.tls.as_ref().unwrap();
    // The first connection of each is full; later ones resume on the
    // tickets the upstream sent.
    assert!(t.resumed_handshakes > 0, "{r}");
    assert_eq!(t.full_handshakes + t.resumed_handshakes, r.requests, "{r}");
}

#[test]
fn a_ca_that_did_not_sign_the_server_counts_handshake_errors() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (served, trusted) = (certs(a.path()), certs(b.path()));
    let addr = https_upstream(&served);
    let r = load(addr, &client(&trusted, false), |_| {});
    assert_eq!(r.requests, 0, "{r}");
    assert!(r.errors.handshake > 0, "{r}");
    assert_eq!(
        r.errors.total(),
        r.errors.handshake,
        "only handshake errors: {r}"
    );

    // A plain-HTTP server: the handshake fails too (no TLS answer).
    let plain = upstream::start(UpstreamOptions::default()).unwrap();
    let r = load(plain.addrs[0], &client(&served, false), |_| {});
    assert!(r.errors.handshake > 0 && r.requests == 0, "{r}");
}

#[test]
fn blocking_clients_handshake_and_see_a_wrong_ca() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (served, other) = (certs(a.path()), certs(b.path()));
    let addr = https_upstream(&served);
    let mut s = blocking::connect(addr, &client(&served, false), Duration::from_secs(5)).unwrap();
    assert!(!s.conn.is_handshaking());
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with(&"x".repeat(100)), "{text}");

    let err = blocking::connect(addr, &client(&other, false), Duration::from_secs(5)).unwrap_err();
    assert!(is_tls_error(&err), "{err:?}");
    assert!(
        err.to_string()
            .contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
}

#[test]
fn bad_files_say_which_and_why() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (one, two) = (certs(a.path()), certs(b.path()));
    let missing = a.path().join("nope.pem");
    let err = ServerTls::from_files(&missing, &one.key).unwrap_err();
    assert!(
        err.starts_with("--tls-cert ") && err.contains("nope.pem"),
        "{err}"
    );
    let err = ServerTls::from_files(&one.chain, &one.chain).unwrap_err();
    assert!(err.starts_with("--tls-key "), "{err}");
    let err = ServerTls::from_files(&one.chain, &two.key).unwrap_err();
    assert!(
        err.contains("with --tls-key"),
        "a key that is not the cert's: {err}"
    );

    let err = ClientTls::from_ca_file(&one.key, DEFAULT_SNI, false).unwrap_err();
    assert!(err.contains("no CERTIFICATE"), "{err}");
    let err = ClientTls::from_ca_file(&one.ca, "not a name!", false).unwrap_err();
    assert!(err.starts_with("--sni \"not a name!\""), "{err}");
}
