//! A request on a parked connection allocates nothing: the parker hands
//! the socket to a free handler task, which serves it with the buffers it
//! and the core's pool already hold. Counted with a per-thread counting
//! allocator (the core runs on the test's thread, the client on another),
//! not timed.

use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use ringmesh_proxy::config;
use ringmesh_proxy::handler::Job;
use ringmesh_proxy::metrics::CoreStats;
use ringmesh_proxy::park::ConnSlot;
use ringmesh_proxy::transport::Stream;
use ringmesh_proxy::worker::Core;

mod counting;
use counting::allocations;

const CONFIG: &str = "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - { direct_response: { status: 200, body: hi } }\n";

/// One request on `client`, answered.
fn request(client: &mut std::net::TcpStream) {
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"hi") {
        let n = client.read(&mut buf).expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn a_request_on_a_parked_connection_allocates_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    // The client, on its own thread (its allocations are not counted):
    // one request, then quiet until told, then one more.
    let (go, wait) = mpsc::channel::<()>();
    let (done, finished) = mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        request(&mut c);
        done.send(()).expect("report");
        wait.recv().expect("go");
        request(&mut c);
        done.send(()).expect("report");
        // Keep the connection open until the test is done.
        let _ = wait.recv();
    });
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(async move {
            let config = Arc::new(config::parse(CONFIG, "test").expect("config"));
            let stats = Arc::new(CoreStats::for_config(&config));
            let core: Rc<Core> = Core::new(
                0,
                1,
                &config,
                &[],
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
            // The first request, then the quiet second after which the
            // connection is parked and its handler freed.
            while finished.try_recv().is_err() {
                monoio::time::sleep(Duration::from_millis(5)).await;
            }
            for _ in 0..400 {
                if core.parker.len() == 1 {
                    break;
                }
                monoio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(core.parker.len(), 1, "the quiet connection is parked");
            // Let the handler settle on the free list and the canceled
            // read complete, then count from here.
            monoio::time::sleep(Duration::from_millis(50)).await;
            // The proxy's tasks run only when this future awaits, so the
            // count starts after the test's own channel send.
            go.send(()).expect("go");
            let before = allocations();
            while finished.try_recv().is_err() {
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            let during = allocations() - before;
            assert!(core.parker.is_empty(), "the connection was woken");
            assert_eq!(
                during, 0,
                "allocations to wake and serve a parked connection"
            );
            drop(go);
        });
    client.join().expect("client");
}
