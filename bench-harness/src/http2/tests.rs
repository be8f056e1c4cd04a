//! The HTTP/2 load and upstream against each other over loopback
//! sockets, in this process; and the load against small h2 servers that
//! reset streams or send GOAWAY, to see those counted.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::http::RequestSpec;
use crate::load::{self, H2Load, LoadOptions, LoadReport};
use crate::runtime::IoMode;
use crate::tls::{generate, ClientTls, ServerTls, DEFAULT_SNI};
use crate::upstream::{self, UpstreamOptions};

fn h2_upstream(f: impl FnOnce(&mut UpstreamOptions)) -> SocketAddr {
    let mut o = UpstreamOptions {
        body_size: 100,
        h2: true,
        ..Default::default()
    };
    f(&mut o);
    upstream::start(o).expect("upstream starts").addrs[0]
}

fn load(addr: SocketAddr, tls: Option<&ClientTls>, f: impl FnOnce(&mut LoadOptions)) -> LoadReport {
    let mut o = LoadOptions {
        addr,
        request: RequestSpec {
            method: "GET".into(),
            host: "bench".into(),
            path: "/".into(),
            headers: vec![("x-test".into(), "1".into())],
            body_size: 0,
            close: false,
        },
        connections: 2,
        threads: 1,
        cpus: vec![],
        duration: Duration::from_millis(500),
        warmup: Duration::from_millis(100),
        rate: None,
        pipeline: 1,
        new_connection: false,
        timeout: Duration::from_secs(5),
        io: IoMode::Auto,
        h2: Some(H2Load {
            streams: 4,
            grpc: None,
        }),
    };
    f(&mut o);
    load::run_with_tls(&o, tls, Arc::new(AtomicBool::new(false)), &mut ()).expect("load runs")
}

fn assert_clean(r: &LoadReport, what: &str) {
    assert!(r.requests > 20, "{what}: too few responses: {r}");
    assert_eq!(r.ok, r.requests, "{what}: {r}");
    assert_eq!(r.errors.total(), 0, "{what}: {r}");
    assert_eq!(r.protocol, "h2", "{what}");
    assert!(r.latency.p99_us >= r.latency.p50_us && r.latency.p50_us > 0.0);
}

#[test]
fn h2c_closed_open_loop_grpc_and_bodies() {
    let addr = h2_upstream(|_| {});
    let closed = load(addr, None, |_| {});
    assert_clean(&closed, "closed, 2 × 4 streams");
    assert_eq!(closed.streams, 4);
    assert_eq!(closed.response_body_bytes, closed.requests * 100);

    let paced = load(addr, None, |o| o.rate = Some(400.0));
    assert_clean(&paced, "open loop");
    // 400 req/s over 0.5 s, spread over 8 stream slots.
    assert!(
        (150..=250).contains(&paced.requests),
        "the open loop holds its rate: {paced}"
    );

    let grpc = load(addr, None, |o| {
        o.h2 = Some(H2Load {
            streams: 2,
            grpc: Some(1000),
        })
    });
    assert_clean(&grpc, "gRPC");
    assert_eq!(grpc.grpc_payload_bytes, Some(1000));
    // The payload comes back, framed: 5 + 3 (tag, length) + 1000 bytes.
    assert_eq!(grpc.response_body_bytes, grpc.requests * 1008);

    // /size/N and request bodies larger than a window.
    let big = load(addr, None, |o| {
        o.request.path = "/size/200000".into();
        o.request.method = "POST".into();
        o.request.body_size = 300_000;
    });
    assert_clean(&big, "large bodies both ways");
    assert_eq!(big.response_body_bytes, big.requests * 200_000);

    // The same port still serves HTTP/1.1.
    let h1 = load(addr, None, |o| o.h2 = None);
    assert!(h1.requests > 20 && h1.errors.total() == 0, "{h1}");
    assert_eq!(h1.protocol, "http/1.1");
}

#[test]
fn echo_and_grpc_failures() {
    let echo = h2_upstream(|o| o.echo = true);
    let r = load(echo, None, |o| {
        o.request.method = "POST".into();
        o.request.body_size = 70_000;
    });
    assert_clean(&r, "echo");
    assert_eq!(r.response_body_bytes, r.requests * 70_000);

    let failing = h2_upstream(|o| o.grpc_status = 14);
    let r = load(failing, None, |o| {
        o.h2 = Some(H2Load {
            streams: 1,
            grpc: Some(10),
        })
    });
    assert!(r.requests > 20, "{r}");
    assert_eq!(r.errors.grpc, r.requests, "every call failed: {r}");
    assert_eq!(r.ok, 0);
    assert_eq!(r.errors.total(), r.errors.grpc, "{r}");
}

#[test]
fn h2_over_tls_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate(dir.path()).unwrap();
    let server = ServerTls::from_files(&files.chain, &files.key).unwrap();
    let client = ClientTls::from_ca_file(&files.ca, DEFAULT_SNI, false).unwrap();
    let addr = h2_upstream(|o| o.tls = Some(server.clone()));
    let r = load(addr, Some(&client), |_| {});
    assert_clean(&r, "h2 over TLS");
    assert_eq!(r.tls.as_ref().map(|t| t.version.as_str()), Some("TLSv1_3"));
    let grpc = load(addr, Some(&client), |o| {
        o.h2 = Some(H2Load {
            streams: 8,
            grpc: Some(64),
        })
    });
    assert_clean(&grpc, "gRPC over TLS");
    // HTTP/1.1 clients still get HTTP/1.1 from it.
    let h1 = load(addr, Some(&client), |o| o.h2 = None);
    assert!(h1.requests > 20 && h1.errors.total() == 0, "{h1}");

    // An upstream without h2 offers only http/1.1: a failed handshake.
    let h1_only = h2_upstream(|o| {
        o.h2 = false;
        o.tls = Some(server);
    });
    let r = load(h1_only, Some(&client), |o| {
        o.duration = Duration::from_millis(200)
    });
    assert_eq!(r.ok, 0, "{r}");
    assert!(r.errors.handshake > 0, "{r}");
}

/// An h2c server on its own thread: each connection answers `per_conn`
/// streams (200, empty), then, with `reset`, resets every later stream,
/// or without it ends the connection with GOAWAY(INTERNAL_ERROR).
fn rude_server(per_conn: usize, reset: bool) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        crate::runtime::block_on(IoMode::Auto, |_| async move {
            let listener = monoio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                monoio::spawn(async move {
                    let io = super::io::H2Io::plain(tcp, Vec::new()).unwrap();
                    let Ok(mut conn) = h2::server::handshake(io).await else {
                        return;
                    };
                    let mut served = 0;
                    while let Some(Ok((_, mut respond))) = conn.accept().await {
                        served += 1;
                        if served <= per_conn {
                            let _ = respond.send_response(http::Response::new(()), true);
                        } else if reset {
                            respond.send_reset(h2::Reason::INTERNAL_ERROR);
                        } else {
                            // In flight: failed by the GOAWAY that follows.
                            conn.abrupt_shutdown(h2::Reason::INTERNAL_ERROR);
                            std::mem::forget(respond);
                        }
                    }
                });
            }
        })
    });
    addr
}

#[test]
fn rst_stream_and_goaway_are_counted_and_survived() {
    let resets = load(rude_server(5, true), None, |o| {
        o.warmup = Duration::ZERO;
        o.h2 = Some(H2Load {
            streams: 1,
            grpc: None,
        })
    });
    assert_eq!(
        resets.ok, 10,
        "5 answered per connection, 2 connections: {resets}"
    );
    assert!(resets.errors.rst_stream > 10, "{resets}");
    assert_eq!(resets.errors.total(), resets.errors.rst_stream, "{resets}");

    let goaways = load(rude_server(5, false), None, |o| {
        o.warmup = Duration::ZERO;
        o.h2 = Some(H2Load {
            streams: 1,
            grpc: None,
        })
    });
    // Each ending fails the stream in flight (as `goaway` when the GOAWAY
    // frame arrives before the close, else as `reset`: h2 may close the
    // socket before it flushes the frame); the load opens a new
    // connection and goes on.
    let failed = goaways.errors.goaway + goaways.errors.reset;
    assert!(failed > 2, "{goaways}");
    assert_eq!(goaways.errors.total(), failed, "{goaways}");
    assert!(goaways.ok >= failed * 4, "reconnected: {goaways}");
}
