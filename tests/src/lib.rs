//! Support for ringmesh's end-to-end tests: the real proxy binary, a
//! scriptable upstream, and a raw HTTP client. The tests themselves live in
//! `tests/tests/*.rs`.

pub mod client;
pub mod control;
pub mod grpc;
pub mod h2;
pub mod h2up;
pub mod otlp;
pub mod proxy;
pub mod tls;
pub mod upstream;

pub use client::{Client, Response};
pub use proxy::{bench_bin, control_bin, ctl_bin, proxy_bin, run_cli, Proxy};
pub use upstream::Upstream;

use std::time::{Duration, Instant};

/// Poll `check` until it returns true or `limit` passes; the condition the
/// test waits for is named in the panic.
pub fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

/// The runtime line `config` writes; `with_runtime` replaces it.
const DEFAULT_RUNTIME: &str = "runtime: { workers: 2 }";

/// `yaml` (from `config`) with its runtime section replaced, e.g.
/// `with_runtime(&yaml, "{ workers: 2, io: epoll }")`.
pub fn with_runtime(yaml: &str, runtime: &str) -> String {
    assert!(
        yaml.starts_with(DEFAULT_RUNTIME),
        "with_runtime takes a config() result"
    );
    yaml.replacen(DEFAULT_RUNTIME, &format!("runtime: {runtime}"), 1)
}

/// A tokio runtime for a test server (two worker threads) and a listener
/// bound on an ephemeral loopback port, with its address.
pub fn tokio_server() -> (
    tokio::runtime::Runtime,
    tokio::net::TcpListener,
    std::net::SocketAddr,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (runtime, listener, addr)
}

/// An address on loopback where nothing listens: connecting is refused.
pub fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

/// A config with one listener `main` on an ephemeral port, the given routes
/// (YAML list items indented six spaces, for `routes:`; a leading newline,
/// as a raw string literal starts with, is ignored), and one cluster per upstream.
pub fn config(routes: &str, clusters: &[(&str, &[&Upstream])], extra_listener: &str) -> String {
    let mut yaml = String::from(DEFAULT_RUNTIME);
    yaml.push_str("\nadmin: { address: '127.0.0.1:0' }\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n");
    yaml.push_str(extra_listener);
    yaml.push_str("    routes:\n");
    yaml.push_str(routes.trim_start_matches('\n'));
    if !clusters.is_empty() {
        yaml.push_str("clusters:\n");
        for (name, ups) in clusters {
            let eps: Vec<String> = ups.iter().map(|u| format!("'{}'", u.addr)).collect();
            yaml.push_str(&format!(
                "  - {{ name: {name}, endpoints: [{}] }}\n",
                eps.join(", ")
            ));
        }
    }
    yaml
}

/// Echo what `s` reads until the peer half-closes, then close: the
/// opaque TCP servers of the relay tests.
pub fn echo(mut s: std::net::TcpStream) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {
                // The client's half-close: close ours.
                let _ = s.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
