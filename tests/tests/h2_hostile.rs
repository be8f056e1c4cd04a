//! Hostile HTTP/2 clients, with hand-built frames: each abuse answered as
//! RFC 9113 says (a stream error resets the stream and the connection
//! goes on; a connection error is GOAWAY and a close), and the proxy's
//! memory does not grow with the attack.

use std::time::Duration;

use ringmesh_tests::h2::{frame, hpack, Frame, RawH2};
use ringmesh_tests::{config, Proxy, Upstream};

/// HTTP/2 error codes (RFC 9113 section 7).
const PROTOCOL_ERROR: u32 = 0x1;
const FLOW_CONTROL_ERROR: u32 = 0x3;
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn proxy(up: &Upstream) -> Proxy {
    let routes = "
      - { name: hello, match: { path: { exact: /hello } }, direct_response: { status: 200, body: hi } }
      - { name: slow, cluster: app }
";
    Proxy::start(&config(routes, &[("app", &[up])], ""))
}

fn headers(path: &str) -> Vec<u8> {
    hpack(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "test"),
    ])
}

/// Frames until one matches, answering SETTINGS; `None` at the end.
fn until(c: &mut RawH2, mut want: impl FnMut(&Frame) -> bool) -> Option<Frame> {
    loop {
        let f = c.read()?;
        if f.kind == frame::SETTINGS && f.flags & frame::ACK == 0 {
            c.send(frame::SETTINGS, frame::ACK, 0, &[]);
        }
        if want(&f) {
            return Some(f);
        }
    }
}

fn goaway(frames: &[Frame]) -> Option<u32> {
    frames
        .iter()
        .find(|f| f.kind == frame::GOAWAY)
        .and_then(Frame::error_code)
}

/// A request on a new connection is answered: the proxy is fine.
fn still_serves(p: &Proxy) {
    let mut c = RawH2::connect(p.addr("main"));
    assert!(c.get(1, "/hello"));
    let f = until(&mut c, |f| f.kind == frame::HEADERS && f.stream == 1);
    assert!(f.is_some(), "a fresh connection is served");
}

#[test]
fn rapid_reset_gets_goaway_and_memory_stays_flat() {
    let up = Upstream::start("app");
    let p = proxy(&up);
    still_serves(&p);
    let before = p.rss_kib();
    // Open a stream to a slow upstream route and reset it at once, over
    // and over (CVE-2023-44487), in one burst.
    let mut c = RawH2::connect(p.addr("main"));
    let mut burst = Vec::new();
    for i in 0..5000u32 {
        let id = 2 * i + 1;
        burst.extend(ringmesh_tests::h2::frame_bytes(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            id,
            &headers("/delay/1000"),
        ));
        burst.extend(ringmesh_tests::h2::frame_bytes(
            frame::RST_STREAM,
            0,
            id,
            &8u32.to_be_bytes(),
        ));
    }
    c.write(&burst);
    let frames = c.read_to_end();
    assert_eq!(
        goaway(&frames),
        Some(ENHANCE_YOUR_CALM),
        "{:?}",
        frames.last()
    );
    still_serves(&p);
    let after = p.rss_kib();
    assert!(
        after < before + 20 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
}

#[test]
fn paced_resets_before_the_response_are_cut_off_too() {
    let up = Upstream::start("app");
    let p = proxy(&up);
    // Slower than h2's own burst detection: each stream is accepted and
    // sent upstream before its reset arrives. The proxy counts streams
    // reset before their response and ends the connection.
    let mut c = RawH2::connect(p.addr("main"));
    let mut cut = false;
    for i in 0..2000u32 {
        let id = 2 * i + 1;
        let sent = c.send(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            id,
            &headers("/delay/1000"),
        ) && {
            std::thread::sleep(Duration::from_millis(1));
            c.send(frame::RST_STREAM, 0, id, &8u32.to_be_bytes())
        };
        if !sent {
            cut = true;
            break;
        }
    }
    let frames = c.read_to_end();
    assert!(
        cut || goaway(&frames) == Some(ENHANCE_YOUR_CALM),
        "2000 paced resets went unnoticed: {:?}",
        frames.last()
    );
    still_serves(&p);
}

#[test]
fn streams_accepted_then_reset_are_counted_and_the_connection_cut() {
    let up = Upstream::start("app");
    let p = proxy(&up);
    // Each stream is accepted and forwarded before its reset: h2's own
    // limit (resets before accept) never sees these.
    let mut c = RawH2::connect(p.addr("main"));
    let started = up.requests();
    let mut cut = false;
    for i in 0..400u32 {
        let id = 2 * i + 1;
        if !c.send(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            id,
            &headers("/delay/1000"),
        ) {
            cut = true;
            break;
        }
        // Reset once the upstream has the request.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while up.requests() < started + i as usize + 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        if !c.send(frame::RST_STREAM, 0, id, &8u32.to_be_bytes()) {
            cut = true;
            break;
        }
    }
    let frames = c.read_to_end();
    assert!(
        cut || goaway(&frames) == Some(ENHANCE_YOUR_CALM),
        "400 accepted-then-reset streams went unnoticed: {:?}",
        frames.last()
    );
    assert!(
        up.requests() - started < 200,
        "cut off after about 100 streams, not {}",
        up.requests() - started
    );
    still_serves(&p);
}

#[test]
fn a_continuation_flood_is_cut_off() {
    let up = Upstream::start("app");
    let p = proxy(&up);
    let before = p.rss_kib();
    let mut c = RawH2::connect(p.addr("main"));
    // HEADERS without END_HEADERS, then endless CONTINUATION frames of
    // junk fields: the header list limit ends it.
    let first = headers("/hello");
    c.send(frame::HEADERS, frame::END_STREAM, 1, &first);
    let junk = hpack(&[("x-junk", &"a".repeat(8000))]);
    let mut n = 0;
    while n < 10_000 && c.send(frame::CONTINUATION, 0, 1, &junk) {
        n += 1;
    }
    let frames = c.read_to_end();
    assert!(n < 10_000, "the proxy read 10000 CONTINUATION frames");
    assert!(
        goaway(&frames).is_some() || frames.iter().any(|f| f.kind == frame::RST_STREAM),
        "{frames:?}"
    );
    still_serves(&p);
    assert!(p.rss_kib() < before + 20 * 1024, "RSS grew");
}

#[test]
fn oversized_headers_and_malformed_requests_reset_the_stream_only() {
    let up = Upstream::start("app");
    let p = proxy(&up);
    let mut c = RawH2::connect(p.addr("main"));
    // A header list over the listener's limit (64 KiB).
    let big = hpack(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/hello"),
        (":authority", "test"),
        ("x-big", &"b".repeat(70_000)),
    ]);
    // One HEADERS frame holds 16 KiB: split into CONTINUATION frames.
    let mut chunks = big.chunks(16_000).peekable();
    let mut flags = frame::END_STREAM;
    let mut kind = frame::HEADERS;
    while let Some(chunk) = chunks.next() {
        if chunks.peek().is_none() {
            flags |= frame::END_HEADERS;
        }
        c.send(kind, flags, 1, chunk);
        kind = frame::CONTINUATION;
        flags = 0;
    }
    let f = until(&mut c, |f| {
        f.stream == 1 && matches!(f.kind, frame::HEADERS | frame::RST_STREAM)
    })
    .expect("an answer to stream 1");
    if f.kind == frame::HEADERS {
        // h2 answers 431 itself (RFC 6585), a stream-level answer; its
        // :status is a literal (0x88 would be the indexed `:status 200`).
        assert_ne!(f.payload.first(), Some(&0x88), "not a 200: {f:?}");
    }
    // Malformed requests (RFC 9113 8.1.1): each a stream error.
    let malformed: [&[(&str, &str)]; 3] = [
        // No :path.
        &[(":method", "GET"), (":scheme", "http"), (":authority", "t")],
        // A response pseudo-header in a request.
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":status", "200"),
        ],
        // A connection-specific field.
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("connection", "close"),
        ],
    ];
    for (i, fields) in malformed.iter().enumerate() {
        let id = 3 + 2 * i as u32;
        c.send(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            id,
            &hpack(fields),
        );
        let f = until(&mut c, |f| f.stream == id || f.kind == frame::GOAWAY).expect("an answer");
        assert_eq!(
            (f.kind, f.error_code()),
            (frame::RST_STREAM, Some(PROTOCOL_ERROR)),
            "malformed request {i}: {f:?}"
        );
    }
    // The connection goes on.
    assert!(c.get(9, "/hello"));
    let f = until(&mut c, |f| f.stream == 9).expect("served");
    assert_eq!(f.kind, frame::HEADERS);
    // An uppercase field name: h2 fails the whole connection (GOAWAY
    // PROTOCOL_ERROR), stricter than RFC 9113's stream error.
    let upper = hpack(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        ("X-Up", "1"),
    ]);
    c.send(
        frame::HEADERS,
        frame::END_HEADERS | frame::END_STREAM,
        11,
        &upper,
    );
    assert_eq!(goaway(&c.read_to_end()), Some(PROTOCOL_ERROR));
    still_serves(&p);
}

#[test]
fn data_beyond_the_window_is_a_flow_control_error() {
    let up = Upstream::start("app");
    let p = proxy(&up);
    let mut c = RawH2::connect(p.addr("main"));
    // POST to a direct response: nobody reads the body, so the window is
    // never opened again; the stream's window is 256 KiB.
    let post = hpack(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/hello"),
        (":authority", "test"),
    ]);
    c.send(frame::HEADERS, frame::END_HEADERS, 1, &post);
    let chunk = vec![0u8; 16_384];
    for _ in 0..(300 * 1024 / chunk.len()) {
        if !c.send(frame::DATA, 0, 1, &chunk) {
            break;
        }
    }
    let f = until(&mut c, |f| {
        (f.stream == 1 && f.kind == frame::RST_STREAM) || f.kind == frame::GOAWAY
    })
    .expect("an error");
    assert_eq!(f.error_code(), Some(FLOW_CONTROL_ERROR), "{f:?}");
}
