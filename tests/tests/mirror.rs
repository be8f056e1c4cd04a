//! Request mirroring: a share of a route's requests is copied to another
//! cluster with Envoy's `-shadow` host, fire-and-forget. The mirror's
//! fate never reaches the client: a dead or hung mirror costs the real
//! requests nothing, and bodies over `max_body_bytes` are forwarded whole
//! and not mirrored. Outcomes are counted in
//! `ringmesh_mirror_requests_total`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringmesh_proto::testing::EchoRequest;
use ringmesh_tests::grpc::{GrpcClient, GrpcServer};
use ringmesh_tests::{closed_port, config, eventually, Client, Proxy, Upstream};

/// A request as a mirror received it.
#[derive(Debug, Clone)]
struct Seen {
    host: String,
    path: String,
    body: Vec<u8>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// An HTTP/1.1 mirror that records what it gets and answers 200.
fn h1_recorder() -> (SocketAddr, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log: Log = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let seen = seen.clone();
            std::thread::spawn(move || record_h1(stream, &seen));
        }
    });
    (addr, log)
}

fn record_h1(stream: TcpStream, log: &Log) {
    let mut out = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or_default().to_string();
        let (mut host, mut length) = (String::new(), 0usize);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap_or((h, ""));
            match name.to_ascii_lowercase().as_str() {
                "host" => host = value.trim().to_string(),
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "transfer-encoding" => panic!("a mirror is sent with a content-length"),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        log.lock().expect("lock").push(Seen { host, path, body });
        if out
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nshadow")
            .is_err()
        {
            return;
        }
    }
}

/// An HTTP/2 (h2c) mirror that records what it gets and answers 200.
struct H2Recorder {
    addr: SocketAddr,
    log: Log,
    _runtime: tokio::runtime::Runtime,
}

fn h2_recorder() -> H2Recorder {
    use http_body_util::BodyExt;
    let (runtime, listener, addr) = ringmesh_tests::tokio_server();
    let log: Log = Arc::default();
    let seen = log.clone();
    runtime.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let seen = seen.clone();
                    async move {
                        let host = req.uri().authority().map(|a| a.to_string());
                        let path = req.uri().path().to_string();
                        let body: hyper::body::Incoming = req.into_body();
                        let body = body.collect().await.map(|b| b.to_bytes().to_vec());
                        seen.lock().expect("lock").push(Seen {
                            host: host.unwrap_or_default(),
                            path,
                            body: body.unwrap_or_default(),
                        });
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"shadow")),
                        ))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(tcp);
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
            });
        }
    });
    H2Recorder {
        addr,
        log,
        _runtime: runtime,
    }
}

/// A mirror that accepts connections and never reads or answers; returns
/// how many it accepted.
fn hung() -> (SocketAddr, Arc<Mutex<Vec<TcpStream>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().map_while(Result::ok) {
            keep.lock().expect("lock").push(s);
        }
    });
    (addr, held)
}

/// `config` with extra clusters appended (`clusters:` is its last part).
fn with_clusters(yaml: String, extra: &[(&str, SocketAddr, &str)]) -> String {
    let mut yaml = yaml;
    for (name, addr, more) in extra {
        yaml.push_str(&format!(
            "  - {{ name: {name}, endpoints: ['{addr}']{more} }}\n"
        ));
    }
    yaml
}

fn mirrors(proxy: &Proxy, route: &str, outcome: &str) -> u64 {
    proxy
        .metric(&format!(
            "ringmesh_mirror_requests_total{{listener=\"main\",route=\"{route}\",outcome=\"{outcome}\"}}"
        ))
        .unwrap_or(0)
}

fn post(c: &mut Client, path: &str, host: &str, body: &[u8]) -> ringmesh_tests::Response {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    c.request(&req)
}

fn post_chunked(c: &mut Client, path: &str, host: &str, body: &[u8]) -> ringmesh_tests::Response {
    let mut req =
        format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for part in body.chunks(1000) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    c.request(&req)
}

#[test]
fn http1_requests_reach_the_mirror_with_the_shadow_host_and_their_body() {
    let up = Upstream::start("up");
    let (shadow, log) = h1_recorder();
    let yaml = config(
        "      - { name: m, cluster: app, mirror: { cluster: shadow } }\n",
        &[("app", &[&up])],
        "",
    );
    let proxy = Proxy::start(&with_clusters(yaml, &[("shadow", shadow, "")]));
    let mut c = Client::connect(proxy.addr("main"));
    let r = c.get("/plain?q=1", "api.example:8080");
    assert_eq!((r.status, r.text().as_str()), (200, "up"));
    let r = post(&mut c, "/echo", "api", b"hello mirror");
    assert_eq!((r.status, r.text().as_str()), (200, "hello mirror"));
    let r = post_chunked(&mut c, "/echo", "api", &[b'x'; 2500]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, vec![b'x'; 2500]);
    eventually("three mirrors sent", Duration::from_secs(10), || {
        mirrors(&proxy, "m", "sent") == 3
    });
    let mut seen = log.lock().expect("lock").clone();
    seen.sort_by_key(|s| s.body.len());
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0].host, "api.example-shadow:8080");
    assert_eq!(seen[0].path, "/plain?q=1");
    assert!(seen[0].body.is_empty());
    assert_eq!(seen[1].host, "api-shadow");
    assert_eq!(seen[1].body, b"hello mirror");
    // The chunked body arrives de-chunked, whole.
    assert_eq!(seen[2].body, vec![b'x'; 2500]);
    assert_eq!(up.requests(), 3, "the real upstream got each request once");
    assert_eq!(mirrors(&proxy, "m", "failed"), 0);
}

#[test]
fn grpc_calls_reach_an_http2_mirror() {
    let server = GrpcServer::start();
    let shadow = h2_recorder();
    let yaml = format!(
        "runtime: {{ workers: 2 }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - {{ name: echo, cluster: echo, mirror: {{ cluster: shadow }} }}\nclusters:\n  - {{ name: echo, protocol: http2, endpoints: ['{}'] }}\n  - {{ name: shadow, protocol: http2, endpoints: ['{}'] }}\n",
        server.addr, shadow.addr
    );
    let proxy = Proxy::start(&yaml);
    let mut c = GrpcClient::connect_as(proxy.addr("main"), Some("echo.svc:50051"));
    for i in 0..5u8 {
        let req = EchoRequest {
            payload: vec![i; 100],
            ..Default::default()
        };
        let reply = c
            .runtime
            .block_on(c.echo.unary(req))
            .expect("the real call succeeds")
            .into_inner();
        assert_eq!(reply.payload, vec![i; 100]);
    }
    eventually("five mirrors sent", Duration::from_secs(10), || {
        mirrors(&proxy, "echo", "sent") == 5
    });
    let seen = shadow.log.lock().expect("lock").clone();
    assert_eq!(seen.len(), 5, "{seen:?}");
    for s in &seen {
        assert_eq!(s.host, "echo.svc-shadow:50051");
        assert_eq!(s.path, "/ringmesh.testing.v1.Echo/Unary");
        // One length-prefixed message holding the payload.
        assert_eq!(s.body[0], 0, "uncompressed gRPC frame");
        assert!(s.body.len() > 105, "{}", s.body.len());
    }
    let payloads: Vec<u8> = seen.iter().map(|s| s.body[s.body.len() - 1]).collect();
    let mut sorted = payloads.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 1, 2, 3, 4], "each call's own body");
    assert_eq!(
        server
            .counters
            .calls
            .load(std::sync::atomic::Ordering::SeqCst),
        5
    );
}

#[test]
fn the_percent_is_honoured() {
    let up = Upstream::start("up");
    let (shadow, log) = h1_recorder();
    let yaml = config(
        "      - { name: m, cluster: app, mirror: { cluster: shadow, percent: 30 } }\n",
        &[("app", &[&up])],
        "",
    );
    let proxy = Proxy::start(&with_clusters(yaml, &[("shadow", shadow, "")]));
    let mut clients: Vec<Client> = (0..4)
        .map(|_| Client::connect(proxy.addr("main")))
        .collect();
    const N: usize = 600;
    for i in 0..N {
        assert_eq!(clients[i % 4].get("/", "a").status, 200);
    }
    // Mirrors in flight finish; nothing else is expected to move.
    eventually("every mirror answered", Duration::from_secs(10), || {
        mirrors(&proxy, "m", "sent") as usize == log.lock().expect("lock").len()
            && mirrors(&proxy, "m", "failed") == 0
    });
    let sent = log.lock().expect("lock").len() as f64;
    // Binomial(600, 0.3): mean 180, sd 11.2; five sd either side.
    assert!((124.0..=236.0).contains(&sent), "mirrored {sent} of {N}");
    assert_eq!(up.requests(), N);
}

#[test]
fn a_dead_or_hung_mirror_costs_the_real_requests_nothing() {
    let up = Upstream::start("up");
    let (hung_addr, held) = hung();
    let yaml = config(
        "      - { name: dead, match: { path: { prefix: /dead } }, cluster: app, mirror: { cluster: dead } }\n      - { name: hung, match: { path: { prefix: /hung } }, cluster: app, timeout: 60s, mirror: { cluster: hung } }\n",
        &[("app", &[&up])],
        "",
    );
    let proxy = Proxy::start(&with_clusters(
        yaml,
        &[("dead", closed_port(), ""), ("hung", hung_addr, "")],
    ));
    let mut clients: Vec<Client> = (0..4)
        .map(|_| Client::connect(proxy.addr("main")))
        .collect();
    for i in 0..50 {
        let r = post(&mut clients[i % 4], "/dead", "a", b"body");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    eventually(
        "the dead mirror's failures counted",
        Duration::from_secs(10),
        || mirrors(&proxy, "dead", "failed") == 50,
    );
    // 300 requests to a mirror that never answers, with a 60 s timeout:
    // every real request is answered while at most 128 mirrors a core
    // hang, so some of them were dropped, none answered, none timed out.
    for i in 0..300 {
        let r = clients[i % 4].get("/hung", "a");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let (sent, failed, dropped) = (
        mirrors(&proxy, "hung", "sent"),
        mirrors(&proxy, "hung", "failed"),
        mirrors(&proxy, "hung", "dropped"),
    );
    assert_eq!((sent, failed), (0, 0), "no mirror finished");
    assert!(dropped >= 300 - 2 * 128, "dropped {dropped}");
    assert!(
        !held.lock().expect("lock").is_empty(),
        "the mirror was reached"
    );
    assert_eq!(up.requests(), 350);
    // A mirror that outlives its route's timeout fails, later, alone.
    // On a fresh proxy: the hung route's mirrors hold this one's slots.
    drop(proxy);
    let yaml = config(
        "      - { name: late, cluster: app, timeout: 1s, mirror: { cluster: hung } }\n",
        &[("app", &[&up])],
        "",
    );
    let proxy = Proxy::start(&with_clusters(yaml, &[("hung", hung_addr, "")]));
    let mut c = Client::connect(proxy.addr("main"));
    for _ in 0..5 {
        assert_eq!(c.get("/late", "a").status, 200);
    }
    eventually(
        "the timed-out mirrors counted",
        Duration::from_secs(10),
        || mirrors(&proxy, "late", "failed") == 5,
    );
}

#[test]
fn a_body_over_the_limit_is_forwarded_whole_and_not_mirrored() {
    let up = Upstream::start("up");
    let (shadow, log) = h1_recorder();
    let yaml = config(
        "      - { name: m, cluster: app, mirror: { cluster: shadow, max_body_bytes: 1024 } }\n",
        &[("app", &[&up])],
        "",
    );
    let proxy = Proxy::start(&with_clusters(yaml, &[("shadow", shadow, "")]));
    let mut c = Client::connect(proxy.addr("main"));
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let r = post(&mut c, "/echo", "a", &big);
    assert_eq!(r.status, 200);
    assert!(r.body == big, "the sized body went upstream intact");
    let r = post_chunked(&mut c, "/echo", "a", &big[..5000]);
    assert_eq!(r.status, 200);
    assert!(
        r.body == big[..5000],
        "the chunked body went upstream intact"
    );
    let r = post(&mut c, "/echo", "a", &big[..1024]);
    assert_eq!((r.status, r.body.len()), (200, 1024));
    eventually("the small one mirrored", Duration::from_secs(10), || {
        mirrors(&proxy, "m", "sent") == 1
    });
    assert_eq!(mirrors(&proxy, "m", "body_too_large"), 2);
    let seen = log.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].body == big[..1024]);
}
