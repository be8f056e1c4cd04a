//! The phases, driven through the connection loop over memory pipes
//! (`testing`): routing, filters, retries, replay safety, upgrades,
//! request-body framing, config swaps and drain.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::testing::{answering, content_length, refuse, run, send, upstream, Harness, Reader};
use crate::transport::memory::MemStream;

fn config(routes: &str, clusters: &str) -> String {
    let clusters = if clusters.is_empty() {
        String::new()
    } else {
        format!("clusters:\n{clusters}")
    };
    format!(
        "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    idle_timeout: 2s\n    routes:\n{routes}{clusters}"
    )
}

const APP: &str = "  - { name: app, endpoints: ['10.1.0.1:80'] }\n";

async fn get(c: &mut MemStream, r: &mut Reader, path: &str) -> crate::testing::Response {
    send(
        c,
        format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
    )
    .await;
    r.response(c, false).await.expect("a response")
}

#[test]
fn a_direct_route_answers_and_keeps_the_connection() {
    run(async {
        let h = Harness::new(&config(
            "      - { direct_response: { status: 200, body: hi } }\n",
            "",
        ));
        let (mut c, mut r) = (h.connect(), Reader::default());
        for _ in 0..3 {
            let resp = get(&mut c, &mut r, "/").await;
            assert_eq!((resp.status, resp.text().as_str()), (200, "hi"));
            assert_eq!(resp.header("connection"), None, "kept alive");
        }
    });
}

#[test]
fn a_retry_goes_to_another_endpoint() {
    run(async {
        let failing = Rc::new(Cell::new(0));
        let seen = failing.clone();
        // Reads the request, then closes without answering.
        upstream("10.1.0.1:80", move |mut s: MemStream| {
            let seen = seen.clone();
            async move {
                if Reader::default().head(&mut s).await.is_some() {
                    seen.set(seen.get() + 1);
                }
            }
        });
        let good = Rc::new(Cell::new(0));
        upstream("10.1.0.2:80", answering(200, "b", good.clone()));
        let h = Harness::new(&config(
            "      - { cluster: app, retries: { attempts: 1, on: [reset] } }\n",
            "  - { name: app, lb: round_robin, endpoints: ['10.1.0.1:80', '10.1.0.2:80'] }\n",
        ));
        let (mut c, mut r) = (h.connect(), Reader::default());
        let resp = get(&mut c, &mut r, "/").await;
        assert_eq!((resp.status, resp.text().as_str()), (200, "b"));
        assert_eq!((failing.get(), good.get()), (1, 1));
        let stats = &h.core.snapshot().clusters[0].stats;
        assert_eq!(stats.retries.get(), 1);
    });
}

#[test]
fn connect_failures_are_retried_but_timeouts_of_the_response_are_not() {
    run(async {
        refuse("10.1.0.1:80");
        let good = Rc::new(Cell::new(0));
        upstream("10.1.0.2:80", answering(200, "b", good.clone()));
        let h = Harness::new(&config(
            "      - { cluster: app, retries: { attempts: 2 } }\n",
            "  - { name: app, endpoints: ['10.1.0.1:80', '10.1.0.2:80'] }\n",
        ));
        let (mut c, mut r) = (h.connect(), Reader::default());
        assert_eq!(get(&mut c, &mut r, "/").await.status, 200);
        assert_eq!(good.get(), 1);
    });
}

#[test]
fn a_fault_abort_answers_without_forwarding() {
    run(async {
        let seen = Rc::new(Cell::new(0));
        upstream("10.1.0.1:80", answering(200, "up", seen.clone()));
        let h = Harness::new(&config(
            "      - { name: r, cluster: app, fault: { abort: { status: 418, percent: 100 } } }\n",
            APP,
        ));
        let (mut c, mut r) = (h.connect(), Reader::default());
        let resp = get(&mut c, &mut r, "/").await;
        assert_eq!(resp.status, 418);
        assert_eq!(resp.header("ringmesh-error"), Some("fault_abort"));
        assert_eq!(seen.get(), 0, "nothing forwarded");
        let again = get(&mut c, &mut r, "/").await;
        assert_eq!(
            again.status, 418,
            "the connection survives an injected abort"
        );
    });
}

#[test]
fn a_fault_delay_waits_then_forwards_outside_the_route_timeout() {
    run(async {
        let seen = Rc::new(Cell::new(0));
        upstream("10.1.0.1:80", answering(200, "up", seen.clone()));
        let h = Harness::new(&config(
            "      - { cluster: app, timeout: 30ms, fault: { delay: { duration: 80ms, percent: 100 } } }\n",
            APP,
        ));
        let (mut c, mut r) = (h.connect(), Reader::default());
        let started = Instant::now();
        let resp = get(&mut c, &mut r, "/").await;
        assert_eq!((resp.status, resp.text().as_str()), (200, "up"));
        assert!(started.elapsed() >= Duration::from_millis(80));
        assert_eq!(seen.get(), 1);
    });
}

/// On each connection: answers the first request, then reads the second
/// (head and body) and closes without answering: received, not answered.
/// `seen` counts requests over all connections.
fn answer_once_then_swallow(
    seen: Rc<Cell<usize>>,
) -> impl Fn(MemStream) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    move |mut s| {
        let seen = seen.clone();
        Box::pin(async move {
            let mut r = Reader::default();
            let mut on_this = 0;
            while let Some(head) = r.head(&mut s).await {
                seen.set(seen.get() + 1);
                on_this += 1;
                if let Some(n) = content_length(&head) {
                    let _ = r.bytes(&mut s, n).await;
                }
                if on_this > 1 {
                    return;
                }
                send(&mut s, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
            }
        })
    }
}

#[test]
fn a_non_idempotent_request_is_never_sent_twice() {
    run(async {
        let seen = Rc::new(Cell::new(0));
        upstream("10.1.0.1:80", answer_once_then_swallow(seen.clone()));
        let h = Harness::new(&config("      - { cluster: app }\n", APP));
        let (mut c, mut r) = (h.connect(), Reader::default());
        assert_eq!(get(&mut c, &mut r, "/").await.status, 200);
        send(
            &mut c,
            b"POST /order HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab",
        )
        .await;
        let resp = r.response(&mut c, false).await.expect("a response");
        assert_eq!(resp.status, 502);
        assert_eq!(
            resp.header("ringmesh-error"),
            Some("upstream_reset_before_response")
        );
        assert_eq!(seen.get(), 2, "the POST reached the upstream once");
    });
}

#[test]
fn an_idempotent_request_on_a_closed_pooled_connection_is_sent_again() {
    run(async {
        let seen = Rc::new(Cell::new(0));
        upstream("10.1.0.1:80", answer_once_then_swallow(seen.clone()));
        let h = Harness::new(&config("      - { cluster: app }\n", APP));
        let (mut c, mut r) = (h.connect(), Reader::default());
        assert_eq!(get(&mut c, &mut r, "/").await.status, 200);
        // The pooled connection swallows this one; a new connection
        // answers it (its first request).
        assert_eq!(get(&mut c, &mut r, "/again").await.status, 200);
        assert_eq!(seen.get(), 3);
    });
}

#[test]
fn a_101_the_client_did_not_ask_for_is_a_502_and_not_pooled() {
    run(async {
        let conns = Rc::new(Cell::new(0));
        let opened = conns.clone();
        upstream("10.1.0.1:80", move |mut s: MemStream| {
            opened.set(opened.get() + 1);
            async move {
                let mut r = Reader::default();
                while r.head(&mut s).await.is_some() {
                    send(&mut s, b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n").await;
                }
            }
        });
        let h = Harness::new(&config("      - { cluster: app }\n", APP));
        let (mut c, mut r) = (h.connect(), Reader::default());
        let resp = get(&mut c, &mut r, "/").await;
        assert_eq!(resp.status, 502);
        assert_eq!(
            resp.header("ringmesh-error"),
            Some("upstream_unexpected_upgrade")
        );
        assert_eq!(get(&mut c, &mut r, "/").await.status, 502);
        assert_eq!(conns.get(), 2, "the switched connection was never reused");
    });
}

#[test]
fn connect_is_refused_with_405_before_routing() {
    run(async {
        let seen = Rc::new(Cell::new(0));
        upstream("10.1.0.1:80", answering(200, "up", seen.clone()));
        let h = Harness::new(&config("      - { cluster: app }\n", APP));
        let (mut c, mut r) = (h.connect(), Reader::default());
        send(
            &mut c,
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        )
        .await;
        let resp = r.response(&mut c, false).await.expect("a response");
        assert_eq!(resp.status, 405);
        assert_eq!(resp.header("ringmesh-error"), Some("method_not_allowed"));
        assert_eq!(seen.get(), 0);
    });
}

#[test]
fn a_bad_chunk_line_with_the_head_sends_nothing_upstream() {
    run(async {
        let conns = Rc::new(Cell::new(0));
        let opened = conns.clone();
        upstream("10.1.0.1:80", move |_s: MemStream| {
            opened.set(opened.get() + 1);
            async {}
        });
        let h = Harness::new(&config("      - { cluster: app }\n", APP));
        for bad in [
            "0x5\r\nhello\r\n",
            "-5\r\nhello\r\n",
            "10000000000000005\r\n",
            "5;ext\nhello\r\n",
        ] {
            let (mut c, mut r) = (h.connect(), Reader::default());
            let raw =
                format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{bad}");
            send(&mut c, raw.as_bytes()).await;
            let resp = r.response(&mut c, false).await.expect("a response");
            assert_eq!(resp.status, 400, "{bad:?}");
            assert_eq!(resp.header("ringmesh-error"), Some("invalid_chunked_body"));
        }
        assert_eq!(conns.get(), 0, "no upstream connection was even opened");
    });
}

#[test]
fn a_bad_chunk_line_after_the_head_aborts_the_upstream_connection() {
    run(async {
        let closed = Rc::new(Cell::new(false));
        let saw_close = closed.clone();
        upstream("10.1.0.1:80", move |mut s: MemStream| {
            let saw_close = saw_close.clone();
            async move {
                let mut r = Reader::default();
                let _ = r.head(&mut s).await;
                // Read the body until the proxy closes the connection.
                while r.bytes(&mut s, 1).await.is_some() {}
                saw_close.set(true);
            }
        });
        let h = Harness::new(&config("      - { cluster: app }\n", APP));
        let (mut c, mut r) = (h.connect(), Reader::default());
        send(
            &mut c,
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        )
        .await;
        monoio::time::sleep(Duration::from_millis(20)).await;
        send(&mut c, b"zz\r\n").await;
        let resp = r.response(&mut c, false).await.expect("a response");
        assert_eq!(resp.status, 400);
        assert_eq!(resp.header("ringmesh-error"), Some("invalid_chunked_body"));
        monoio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            closed.get(),
            "the upstream connection holding a partial request was closed"
        );
        assert_eq!(
            h.core.snapshot().clusters[0].limit.open(),
            0,
            "and not pooled"
        );
    });
}

#[test]
fn the_config_in_force_when_the_head_completes_is_the_one_used() {
    run(async {
        let first = config(
            "      - { direct_response: { status: 200, body: old } }\n",
            "",
        );
        let h = Harness::new(&first);
        let (mut c, mut r) = (h.connect(), Reader::default());
        assert_eq!(get(&mut c, &mut r, "/").await.text(), "old");
        // The connection now waits for its next request; swap under it.
        let new = Arc::new(
            crate::config::parse(
                &config(
                    "      - { direct_response: { status: 200, body: new } }\n",
                    "",
                ),
                "t",
            )
            .expect("config"),
        );
        let (replies, confirmations) = std::sync::mpsc::channel();
        let reload = crate::worker::Reload {
            config: new.clone(),
            endpoints: crate::dns::resolve_all(&new),
            generation: 1,
            stats: vec![crate::worker::SnapshotStats::for_config(
                &h.core.stats,
                &new,
            )],
            replies,
        };
        h.core.stage(&reload);
        h.core.commit(1);
        assert_eq!(
            confirmations.try_iter().count(),
            2,
            "staged, then committed"
        );
        assert_eq!(
            get(&mut c, &mut r, "/").await.text(),
            "new",
            "the first request after the commit on a kept-alive connection"
        );
    });
}

#[test]
fn while_draining_every_response_closes_its_connection() {
    run(async {
        let h = Harness::new(&config(
            "      - { direct_response: { status: 200, body: hi } }\n",
            "",
        ));
        let (mut c, mut r) = (h.connect(), Reader::default());
        assert_eq!(get(&mut c, &mut r, "/").await.header("connection"), None);
        h.core.drain.start();
        let resp = get(&mut c, &mut r, "/").await;
        assert_eq!(resp.header("connection"), Some("close"));
        assert!(r.eof(&mut c).await);
    });
}

#[test]
fn a_grpc_call_is_retried_on_a_grpc_status_the_route_names() {
    run(async {
        let tries = Rc::new(Cell::new(0));
        let seen = tries.clone();
        // The first call fails Trailers-Only with UNAVAILABLE, the second
        // succeeds.
        upstream("10.1.0.1:80", move |mut s: MemStream| {
            let seen = seen.clone();
            async move {
                let mut r = Reader::default();
                while let Some(head) = r.head(&mut s).await {
                    seen.set(seen.get() + 1);
                    if let Some(n) = content_length(&head) {
                        let _ = r.bytes(&mut s, n).await;
                    }
                    let status = if seen.get() == 1 { 14 } else { 0 };
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-status: {status}\r\ncontent-length: 0\r\n\r\n"
                    );
                    send(&mut s, resp.as_bytes()).await;
                }
            }
        });
        let h = Harness::new(&config(
            "      - { match: { grpc: { service: svc.S } }, cluster: app, retries: { attempts: 2, on: [unavailable] } }\n",
            APP,
        ));
        let (mut c, mut r) = (h.connect(), Reader::default());
        let call = "POST /svc.S/M HTTP/1.1\r\nHost: a\r\ncontent-type: application/grpc\r\ncontent-length: 5\r\n\r\n\0\0\0\0\0";
        send(&mut c, call.as_bytes()).await;
        let resp = r.response(&mut c, false).await.expect("a response");
        assert_eq!(resp.header("grpc-status"), Some("0"));
        assert_eq!(tries.get(), 2);
        // Not a gRPC request: the route does not match it.
        send(
            &mut c,
            b"POST /svc.S/M HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
        assert_eq!(
            r.response(&mut c, false).await.expect("a response").status,
            404
        );
    });
}

#[test]
fn a_redirect_route_answers_with_a_location_built_from_the_request() {
    run(async {
        let h = Harness::new(&config(
            "      - { match: { path: { prefix: /old } }, redirect: { scheme: https, path: { prefix: /new }, status: 301 } }\n      - { redirect: { hostname: b.example } }\n",
            "",
        ));
        let (mut c, mut r) = (h.connect(), Reader::default());
        for _ in 0..2 {
            let resp = get(&mut c, &mut r, "/old/cart?id=7").await;
            assert_eq!(resp.status, 301);
            assert_eq!(resp.header("location"), Some("https://a/new/cart?id=7"));
            assert_eq!(resp.header("content-length"), Some("0"));
            assert_eq!(resp.header("connection"), None, "kept alive");
        }
        let resp = get(&mut c, &mut r, "/x").await;
        assert_eq!(resp.status, 302);
        assert_eq!(resp.header("location"), Some("http://b.example/x"));
    });
}
