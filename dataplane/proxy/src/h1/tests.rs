//! The HTTP/1.x connection loop over memory pipes (`testing`): keep-alive
//! and pipelining, refusals, timeouts, stalled clients, bodies both ways.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use crate::testing::{answering, content_length, run, send, upstream, Harness, Reader};
use crate::transport::memory::MemStream;

fn config(listener: &str, routes: &str) -> String {
    format!(
        "listeners:\n  - name: main\n    address: 127.0.0.1:0\n{listener}    routes:\n{routes}clusters:\n  - {{ name: app, endpoints: ['10.1.0.1:80'], pool: {{ max_connections: 1 }} }}\n"
    )
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    run(async {
        let seen = Rc::new(Cell::new(0));
        upstream("10.1.0.1:80", answering(200, "up", seen.clone()));
        let h = Harness::new(&config(
            "",
            "      - { match: { path: { exact: /d } }, direct_response: { status: 201, body: direct } }\n      - { cluster: app }\n",
        ));
        let (mut c, mut r) = (h.connect(), Reader::default());
        send(
            &mut c,
            b"GET /d HTTP/1.1\r\nHost: a\r\n\r\nGET /u HTTP/1.1\r\nHost: a\r\n\r\nHEAD /d HTTP/1.1\r\nHost: a\r\n\r\nGET /d HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .await;
        let first = r.response(&mut c, false).await.expect("1");
        let second = r.response(&mut c, false).await.expect("2");
        let third = r.response(&mut c, true).await.expect("3");
        let fourth = r.response(&mut c, false).await.expect("4");
        assert_eq!((first.status, first.text().as_str()), (201, "direct"));
        assert_eq!((second.status, second.text().as_str()), (200, "up"));
        assert_eq!(
            (third.status, third.header("content-length")),
            (201, Some("6"))
        );
        assert_eq!(fourth.text(), "direct", "HEAD sent no body to desync on");
    });
}

#[test]
fn a_malformed_head_gets_400_and_the_connection_closes() {
    run(async {
        let h = Harness::new(&config("", "      - { cluster: app }\n"));
        let (mut c, mut r) = (h.connect(), Reader::default());
        send(&mut c, b"GET / HTTP/1.1\r\nHost : a\r\n\r\n").await;
        let resp = r.response(&mut c, false).await.expect("a response");
        assert_eq!(resp.status, 400);
        assert_eq!(resp.header("connection"), Some("close"));
        assert!(r.eof(&mut c).await);
    });
}

#[test]
fn a_slow_head_gets_408() {
    run(async {
        let h = Harness::new(&config(
            "    header_read_timeout: 50ms\n",
            "      - { cluster: app }\n",
        ));
        let (mut c, mut r) = (h.connect(), Reader::default());
        send(&mut c, b"GET / HTTP/1.1\r\nHost: a\r\n").await;
        let resp = r.response(&mut c, false).await.expect("a response");
        assert_eq!(resp.status, 408);
        assert!(r.eof(&mut c).await);
    });
}

#[test]
fn an_idle_connection_closes_at_its_idle_timeout() {
    run(async {
        let h = Harness::new(&config(
            "    idle_timeout: 50ms\n",
            "      - { direct_response: { status: 200 } }\n",
        ));
        let (mut c, mut r) = (h.connect(), Reader::default());
        send(&mut c, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(r.response(&mut c, false).await.expect("served").status, 200);
        assert!(r.eof(&mut c).await, "closed when idle");
        assert_eq!(h.core.connections.get(), 0);
    });
}

#[test]
fn a_client_that_stops_reading_is_closed_after_the_stall_limit() {
    run(async {
        // Direct responses of 8 KiB to a client whose pipe holds 1 KiB and
        // who never reads: the write stalls. Before writes had a stall
        // limit, this connection (and its handler) stayed forever.
        let h = Harness::new(&h_config_with_body(8 * 1024));
        let mut c = h.connect_with(1024);
        for _ in 0..20 {
            send(&mut c, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        }
        assert_eq!(h.core.connections.get(), 1);
        monoio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            h.core.connections.get(),
            0,
            "given up on after the stall limit"
        );
    });
}

fn h_config_with_body(n: usize) -> String {
    let body = "x".repeat(n);
    config(
        "    idle_timeout: 100ms\n",
        &format!("      - {{ direct_response: {{ status: 200, body: '{body}' }} }}\n"),
    )
}

#[test]
fn a_stalled_client_frees_the_upstream_connection_it_held() {
    run(async {
        // The cluster allows one connection per core. A client that never
        // reads its 8 KiB responses must not hold it forever: before the
        // response head write had a stall limit, every other client got
        // 503 overflow.
        upstream("10.1.0.1:80", |mut s: MemStream| async move {
            let mut r = Reader::default();
            let body = "y".repeat(8 * 1024);
            while r.head(&mut s).await.is_some() {
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                send(&mut s, resp.as_bytes()).await;
            }
        });
        let h = Harness::new(&config(
            "    idle_timeout: 100ms\n",
            "      - { cluster: app }\n",
        ));
        let mut stuck = h.connect_with(1024);
        for _ in 0..20 {
            send(&mut stuck, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        }
        monoio::time::sleep(Duration::from_millis(20)).await;
        let (mut other, mut r) = (h.connect(), Reader::default());
        send(&mut other, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let resp = r.response(&mut other, false).await.expect("a response");
        assert_eq!(
            (resp.status, resp.header("ringmesh-error")),
            (503, Some("overflow")),
            "while the stalled client holds the only connection"
        );
        // Past the stall limit (100 ms) the stalled client is given up on
        // and its upstream connection closed.
        monoio::time::sleep(Duration::from_millis(300)).await;
        let (mut other, mut r) = (h.connect(), Reader::default());
        send(&mut other, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let resp = r.response(&mut other, false).await.expect("a response");
        assert_eq!(resp.status, 200, "{:?}", resp.header("ringmesh-error"));
    });
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    run(async {
        upstream("10.1.0.1:80", |mut s: MemStream| async move {
            let mut r = Reader::default();
            while let Some(head) = r.head(&mut s).await {
                assert!(
                    !head.to_ascii_lowercase().contains("expect:"),
                    "not forwarded"
                );
                let n = content_length(&head).unwrap_or(0);
                let body = r.bytes(&mut s, n).await.unwrap_or_default();
                let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                send(&mut s, resp.as_bytes()).await;
                send(&mut s, &body).await;
            }
        });
        let h = Harness::new(&config("", "      - { cluster: app }\n"));
        let (mut c, mut r) = (h.connect(), Reader::default());
        send(
            &mut c,
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .await;
        let interim = r.response(&mut c, false).await.expect("interim");
        assert_eq!(interim.status, 100);
        send(&mut c, b"hello").await;
        let resp = r.response(&mut c, false).await.expect("final");
        assert_eq!((resp.status, resp.text().as_str()), (200, "hello"));
    });
}

#[test]
fn a_large_body_streams_both_ways() {
    run(async {
        upstream("10.1.0.1:80", |mut s: MemStream| async move {
            let mut r = Reader::default();
            while let Some(head) = r.head(&mut s).await {
                let n = content_length(&head).unwrap_or(0);
                let body = r.bytes(&mut s, n).await.unwrap_or_default();
                let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                send(&mut s, resp.as_bytes()).await;
                send(&mut s, &body).await;
            }
        });
        let h = Harness::new(&config("", "      - { cluster: app }\n"));
        let (mut c, mut r) = (h.connect(), Reader::default());
        // Over the pipes' capacity and the 16 KiB sent with the head: the
        // relays stream it in both directions.
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let head = format!(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        send(&mut c, head.as_bytes()).await;
        send(&mut c, &body).await;
        let resp = r.response(&mut c, false).await.expect("a response");
        assert_eq!(resp.status, 200);
        assert!(resp.body == body, "the body came back intact");
    });
}

#[test]
fn a_tunnel_closes_when_listeners_close_on_drain() {
    run(async {
        // Answers an upgrade with 101, then echoes.
        upstream("10.1.0.1:80", |mut s: MemStream| async move {
            let mut r = Reader::default();
            if r.head(&mut s).await.is_none() {
                return;
            }
            send(
                &mut s,
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            )
            .await;
            while let Some(b) = r.bytes(&mut s, 1).await {
                send(&mut s, &b).await;
            }
        });
        let h = Harness::new(&config("", "      - { cluster: app }\n"));
        let (mut c, mut r) = (h.connect(), Reader::default());
        send(
            &mut c,
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .await;
        assert_eq!(r.response(&mut c, false).await.expect("101").status, 101);
        send(&mut c, b"ping").await;
        assert_eq!(r.bytes(&mut c, 4).await.as_deref(), Some(&b"ping"[..]));
        let limit = h.core.snapshot().clusters[0].limit.clone();
        assert_eq!(limit.open(), 1, "the tunnel holds its upstream connection");
        h.core.drain.stop();
        let closed = monoio::time::timeout(Duration::from_secs(2), r.eof(&mut c)).await;
        assert_eq!(closed, Ok(true), "the tunnel closed with the listeners");
        monoio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(h.core.connections.get(), 0);
        assert_eq!(limit.open(), 0, "and gave its upstream connection back");
    });
}
