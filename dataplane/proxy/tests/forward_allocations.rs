//! A proxied request on kept-alive connections (client and upstream)
//! allocates nothing on the core, with the resilience features on: a
//! Peak-EWMA balancer over weighted endpoints, circuit breakers, outlier
//! detection and a retry policy. Counted with a per-thread counting
//! allocator (the core runs on the test's thread; the client and the
//! upstream on others), not timed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use ringmesh_proxy::config::{self, model::Resolved};
use ringmesh_proxy::handler::Job;
use ringmesh_proxy::metrics::CoreStats;
use ringmesh_proxy::park::ConnSlot;
use ringmesh_proxy::transport::Stream;
use ringmesh_proxy::worker::Core;

mod counting;
use counting::allocations;

/// A keep-alive upstream answering every request `200 ok`.
fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut out = stream;
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => {
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if out.write_all(ok).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    addr
}

fn request(client: &mut TcpStream) {
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.ends_with(b"ok") {
        let n = client.read(&mut buf).expect("read");
        assert!(n > 0, "proxy closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

const WARM_UP: usize = 50;
const COUNTED: usize = 200;

#[test]
fn a_forwarded_request_allocates_nothing_with_resilience_on() {
    let ups = [upstream(), upstream()];
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (go, wait) = mpsc::channel::<()>();
    let (done, finished) = mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        for _ in 0..WARM_UP {
            request(&mut c);
        }
        done.send(()).expect("report");
        wait.recv().expect("go");
        for _ in 0..COUNTED {
            request(&mut c);
        }
        done.send(()).expect("report");
        let _ = wait.recv();
    });
    let yaml = format!(
        "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes: [ {{ cluster: c, retries: {{ attempts: 1 }} }} ]\nclusters:\n  - {{ name: c, lb: peak_ewma, endpoints: ['{}', {{ address: '{}', weight: 2 }}], circuit_breaker: {{ max_requests: 100 }}, outlier_detection: {{ consecutive_5xx: 3 }} }}\n",
        ups[0], ups[1]
    );
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(async move {
            let config = Arc::new(config::parse(&yaml, "test").expect("config"));
            let stats = Arc::new(CoreStats::for_config(&config));
            let endpoints: Vec<Arc<[Resolved]>> =
                vec![ringmesh_proxy::dns::resolve(&config.clusters[0]).into()];
            let core: Rc<Core> = Core::new(
                0,
                1,
                &config,
                &endpoints,
                stats,
                &[0],
                ringmesh_proxy::telemetry::CoreTelemetry::detached(),
            )
            .expect("core");
            monoio::spawn(ringmesh_proxy::park::run(core.clone()));
            let (socket, peer) = listener.accept().expect("accept");
            socket.set_nonblocking(true).expect("nonblocking");
            let io = monoio::net::TcpStream::from_std(socket).expect("register");
            let job = Job {
                io: Stream::tcp(io),
                peer,
                slot: ConnSlot::open(core.clone(), 0),
                ready: false,
                tls: None,
                fresh: true,
            };
            core.handlers.dispatch(&core, job);
            while finished.try_recv().is_err() {
                monoio::time::sleep(Duration::from_millis(2)).await;
            }
            go.send(()).expect("go");
            let before = allocations();
            while finished.try_recv().is_err() {
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            let during = allocations() - before;
            assert_eq!(
                during, 0,
                "allocations on the core for {COUNTED} forwarded requests"
            );
            drop(go);
        });
    client.join().expect("client");
}
