//! Bodies are streamed, never buffered whole: 1 GiB each way through the
//! proxy while its resident memory stays bounded.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringmesh_tests::upstream::pattern_byte;
use ringmesh_tests::{config, Client, Proxy, Upstream};

const GIB: u64 = 1 << 30;
/// Growth of the proxy's RSS allowed while 1 GiB streams through it. Its
/// buffers are 64 KiB per side; 32 MiB leaves room for allocator slack and
/// still fails loudly if a body were buffered.
const RSS_GROWTH_LIMIT_KIB: u64 = 32 * 1024;

/// Sample the proxy's RSS every 50 ms until stopped; returns the peak.
fn watch_rss(proxy: &Proxy) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let pid = proxy.pid();
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut peak = 0;
        while !flag.load(Ordering::SeqCst) {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let rss = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            peak = peak.max(rss);
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    });
    (stop, handle)
}

fn streaming_proxy(up: &Upstream) -> Proxy {
    let yaml = config(
        "      - { match: { path: { prefix: / } }, cluster: app }\n",
        &[("app", &[up])],
        "    idle_timeout: 60s\n",
    );
    Proxy::start(&yaml)
}

#[test]
fn one_gib_download_streams_with_bounded_memory() {
    let up = Upstream::start("up");
    let proxy = streaming_proxy(&up);
    let base = proxy.rss_kib();
    let (stop, peak) = watch_rss(&proxy);

    let mut c = Client::connect(proxy.addr("main"));
    c.send(format!("GET /download/{GIB} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    // Read the head by hand, then check every body byte against the pattern
    // without keeping it.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.stream.read_exact(&mut byte).expect("head byte");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {GIB}")), "{head}");
    let mut buf = vec![0u8; 256 * 1024];
    let mut seen = 0u64;
    while seen < GIB {
        let n = c.stream.read(&mut buf).expect("body read");
        assert!(n > 0, "closed after {seen} bytes");
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(
                *b,
                pattern_byte(seen + i as u64),
                "byte {}",
                seen + i as u64
            );
        }
        seen += n as u64;
    }
    stop.store(true, Ordering::SeqCst);
    let peak = peak.join().expect("rss watcher");
    assert!(peak > 0, "RSS was sampled");
    assert!(
        peak < base + RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {base} KiB to {peak} KiB"
    );
    assert_eq!(
        c.get("/", "a").text(),
        "up",
        "connection still usable after 1 GiB"
    );
}

#[test]
fn one_gib_upload_streams_with_bounded_memory() {
    let up = Upstream::start("up");
    let proxy = streaming_proxy(&up);
    let base = proxy.rss_kib();
    let (stop, peak) = watch_rss(&proxy);

    for chunked in [false, true] {
        let mut c = Client::connect(proxy.addr("main"));
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_string()
        } else {
            format!("Content-Length: {GIB}")
        };
        c.send(format!("POST /count HTTP/1.1\r\nHost: a\r\n{framing}\r\n\r\n").as_bytes());
        let block = vec![7u8; 1 << 20];
        let sent = Arc::new(AtomicU64::new(0));
        let mut writer = c.stream.try_clone().expect("clone");
        let progress = sent.clone();
        let sender = std::thread::spawn(move || {
            for _ in 0..(GIB >> 20) {
                if chunked {
                    writer
                        .write_all(format!("{:x}\r\n", block.len()).as_bytes())
                        .expect("chunk head");
                }
                writer.write_all(&block).expect("upload");
                if chunked {
                    writer.write_all(b"\r\n").expect("chunk end");
                }
                progress.fetch_add(block.len() as u64, Ordering::SeqCst);
            }
            if chunked {
                writer.write_all(b"0\r\n\r\n").expect("last chunk");
            }
        });
        let r = c.read_response(false);
        sender.join().expect("sender");
        assert_eq!(sent.load(Ordering::SeqCst), GIB);
        assert_eq!(
            (r.status, r.text()),
            (200, format!("bytes={GIB}")),
            "chunked={chunked}"
        );
    }
    stop.store(true, Ordering::SeqCst);
    let peak = peak.join().expect("rss watcher");
    assert!(
        peak < base + RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {base} KiB to {peak} KiB"
    );
}
