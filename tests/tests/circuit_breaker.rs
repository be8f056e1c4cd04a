//! Circuit breakers under concurrent load on both workers: the upstream
//! never sees more requests at once than the cluster's `max_requests`
//! (the sum of the workers' shares), and the excess fails fast with 503
//! `overflow`, counted by limit.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringmesh_tests::{eventually, Client, Proxy};

/// An upstream that holds every request `hold` and records how many it
/// held at once.
struct Counting {
    addr: SocketAddr,
    most: Arc<AtomicUsize>,
}

fn counting_upstream(hold: Duration) -> Counting {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let active = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (a, m) = (active.clone(), most.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let (a, m) = (a.clone(), m.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut out = stream;
                loop {
                    // A GET without a body: the head ends at an empty line.
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(hold);
                    a.fetch_sub(1, Ordering::SeqCst);
                    if out
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Counting { addr, most }
}

#[test]
fn max_requests_holds_across_both_workers_and_the_excess_overflows() {
    let up = counting_upstream(Duration::from_millis(400));
    let p = Proxy::start(&format!(
        "runtime: {{ workers: 2 }}\nadmin: {{ address: '127.0.0.1:0' }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes: [ {{ name: r, cluster: c }} ]\nclusters:\n  - {{ name: c, endpoints: ['{}'], circuit_breaker: {{ max_requests: 4 }} }}\n",
        up.addr
    ));
    let addr = p.addr("main");
    let clients = 40;
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let r = Client::connect(addr).get("/", "svc");
                (r.status, r.header("ringmesh-error").map(str::to_string))
            })
        })
        .collect();
    let results: Vec<(u16, Option<String>)> = handles
        .into_iter()
        .map(|h| h.join().expect("client"))
        .collect();
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let overflowed = results
        .iter()
        .filter(|(s, e)| *s == 503 && e.as_deref() == Some("overflow"))
        .count();
    assert_eq!(ok + overflowed, clients, "{results:?}");
    let most = up.most.load(Ordering::SeqCst);
    // 2 a worker: never more, whatever the spread of connections.
    assert!((1..=4).contains(&most), "the upstream held {most} at once");
    assert!(overflowed > 0, "40 at once against a limit of 4");
    eventually("the overflows counted", Duration::from_secs(5), || {
        p.metric("ringmesh_upstream_overflow_total{cluster=\"c\",limit=\"requests\"}")
            == Some(overflowed as u64)
    });
    // Once the burst is over, the cluster takes requests again.
    let mut c = Client::connect(addr);
    assert_eq!(c.get("/", "svc").status, 200);
}
