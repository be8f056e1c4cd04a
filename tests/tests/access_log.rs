//! Access logs end to end: one line per request or TCP connection, with
//! exact fields for HTTP/1.1, HTTP/2, gRPC and TCP; the text template and
//! the status filter; rotation by SIGUSR1; and a writer blocked on a pipe
//! nobody reads, which must cost log lines (counted), never requests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use ringmesh_tests::grpc::{GrpcClient, GrpcServer};
use ringmesh_tests::h2::curl;
use ringmesh_tests::{echo, eventually, Client, Proxy, Upstream};
use serde_json::Value;

/// The log's lines once it has `n` of them (the cores hand their
/// buffers over at least every second).
fn lines(path: &Path, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    eventually(
        &format!("{n} lines in {}", path.display()),
        Duration::from_secs(10),
        || {
            got = std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            got.len() >= n
        },
    );
    got
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// A proxy whose listener `main` logs (JSON) to `path` and routes
/// everything to `up`.
fn logging_to(path: &Path, up: &Upstream) -> Proxy {
    Proxy::start(&format!(
        "runtime: {{ workers: 2 }}
admin: {{ address: '127.0.0.1:0' }}
listeners:
  - name: main
    address: 127.0.0.1:0
    access_log: {{ path: {} }}
    routes: [ {{ name: app, cluster: app }} ]
clusters:
  - {{ name: app, endpoints: ['{}'] }}
",
        path.display(),
        up.addr
    ))
}

/// The line whose `field` is `value`.
fn find<'a>(all: &'a [Value], field: &str, value: &str) -> &'a Value {
    all.iter()
        .find(|v| v[field] == value)
        .unwrap_or_else(|| panic!("no line with {field}={value}: {all:#?}"))
}

fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || echo(s));
        }
    });
    addr
}

#[test]
fn fields_are_exact_for_http1_http2_grpc_and_tcp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let up = Upstream::start("app");
    let grpc = GrpcServer::start();
    let tcp_server = echo_server();
    let yaml = format!(
        "runtime: {{ workers: 2 }}
admin: {{ address: '127.0.0.1:0' }}
listeners:
  - name: main
    address: 127.0.0.1:0
    access_log: {{ path: {log} }}
    routes:
      - {{ name: grpc, match: {{ grpc: {{ service: ringmesh.testing.v1.Echo }} }}, cluster: echo }}
      - {{ name: app, cluster: app }}
  - name: raw
    address: 127.0.0.1:0
    access_log: {{ path: {log} }}
    tcp: {{ cluster: raw }}
clusters:
  - {{ name: app, endpoints: ['{}'] }}
  - {{ name: echo, protocol: http2, endpoints: ['{}'] }}
  - {{ name: raw, endpoints: ['{}'] }}
",
        up.addr,
        grpc.addr,
        tcp_server,
        log = log.display()
    );
    let p = Proxy::start(&yaml);
    let main = p.addr("main");

    // HTTP/1.1: a body up, the echo down, a request id of the client's.
    let mut c = Client::connect(main);
    let local = c.stream.local_addr().expect("local");
    let r = c.request(
        b"POST /echo?x=1 HTTP/1.1\r\nHost: shop\r\nUser-Agent: t/1\r\nX-Request-Id: rid-h1\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    // One the proxy answers itself: no route matches... every path
    // matches `app`, so ask for a method it refuses.
    let r = c.request(b"CONNECT shop:443 HTTP/1.1\r\nHost: shop\r\n\r\n");
    assert_eq!(r.status, 405);
    drop(c);

    // HTTP/2 (h2c): a 1000-byte download, no request id of its own.
    let reply = curl(
        &[
            "--http2-prior-knowledge",
            &format!("http://{main}/download/1000"),
        ],
        b"",
    )
    .expect("curl");
    assert_eq!((reply.status, reply.body.len()), (200, 1000));

    // gRPC through an HTTP/2 upstream.
    let mut g = GrpcClient::connect(main);
    let req = ringmesh_proto::testing::EchoRequest {
        payload: b"ping".to_vec(),
        ..Default::default()
    };
    g.runtime.block_on(g.echo.unary(req)).expect("unary");

    // TCP: 11 bytes each way, then the client half-closes.
    let mut s = TcpStream::connect(p.addr("raw")).expect("tcp");
    s.write_all(b"hello world").expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("read");
    assert_eq!(back, b"hello world");
    let tcp_client = s.local_addr().expect("local");
    drop(s);

    let all: Vec<Value> = lines(&log, 5).iter().map(|l| json(l)).collect();
    assert_eq!(all.len(), 5, "{all:#?}");

    let h1 = find(&all, "request_id", "rid-h1");
    assert_eq!(h1["method"], "POST");
    assert_eq!(h1["path"], "/echo?x=1");
    assert_eq!(h1["authority"], "shop");
    assert_eq!(h1["protocol"], "HTTP/1.1");
    assert_eq!(h1["response_code"], 200);
    assert_eq!(h1["response_flags"], "-");
    assert_eq!(h1["response_code_details"], "via_upstream");
    assert_eq!(h1["bytes_received"], 5);
    assert_eq!(h1["bytes_sent"], 5);
    assert_eq!(h1["upstream_host"], up.addr.to_string());
    assert_eq!(h1["upstream_cluster"], "app");
    assert_eq!(h1["route_name"], "app");
    assert_eq!(h1["listener"], "main");
    assert_eq!(h1["user_agent"], "t/1");
    assert_eq!(h1["downstream_remote_address"], local.to_string());
    assert!(h1["upstream_service_time"].as_u64().is_some(), "{h1}");
    assert!(h1["duration"].as_u64().unwrap() < 5000, "{h1}");
    assert!(
        h1["grpc_status"].is_null() && h1["trace_id"].is_null(),
        "{h1}"
    );
    let start = h1["start_time"].as_str().unwrap();
    assert!(start.len() == 24 && start.ends_with('Z'), "{start}");

    let refused = find(&all, "method", "CONNECT");
    assert_eq!(refused["response_code"], 405);
    assert_eq!(refused["response_code_details"], "method_not_allowed");
    assert!(refused["upstream_host"].is_null(), "{refused}");
    // A request without an id got one made for it.
    assert_eq!(
        refused["request_id"].as_str().unwrap().len(),
        36,
        "{refused}"
    );

    let h2 = find(&all, "path", "/download/1000");
    assert_eq!(h2["protocol"], "HTTP/2");
    assert_eq!(
        (h2["response_code"].as_u64(), h2["bytes_sent"].as_u64()),
        (Some(200), Some(1000))
    );
    assert_eq!(h2["bytes_received"], 0);
    assert!(
        h2["user_agent"].as_str().unwrap().starts_with("curl/"),
        "{h2}"
    );

    let call = find(&all, "path", "/ringmesh.testing.v1.Echo/Unary");
    assert_eq!(call["protocol"], "HTTP/2");
    assert_eq!(call["grpc_status"], 0);
    assert_eq!(call["route_name"], "grpc");
    assert_eq!(call["upstream_host"], grpc.addr.to_string());
    // A 5-byte gRPC frame header and the 4-byte message ("ping"
    // encoded as field 1: 2 bytes of tag and length).
    assert_eq!(call["bytes_received"], 11, "{call}");

    let tcp = find(&all, "protocol", "TCP");
    assert_eq!(tcp["listener"], "raw");
    assert_eq!(
        (tcp["bytes_received"].as_u64(), tcp["bytes_sent"].as_u64()),
        (Some(11), Some(11))
    );
    assert_eq!(tcp["upstream_host"], tcp_server.to_string());
    assert_eq!(tcp["downstream_remote_address"], tcp_client.to_string());
    assert!(
        tcp["method"].is_null() && tcp["response_code"] == 0,
        "{tcp}"
    );

    // Counted once the write returned (just after the lines landed).
    eventually("the lines counted", Duration::from_secs(5), || {
        p.metric("ringmesh_access_log_lines_total") == Some(5)
    });
    assert_eq!(
        p.metric("ringmesh_access_log_dropped_total{reason=\"buffer_full\"}"),
        Some(0)
    );
}

#[test]
fn templates_filters_and_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("errors.log");
    let up = Upstream::start("app");
    let yaml = format!(
        "runtime: {{ workers: 2 }}
admin: {{ address: '127.0.0.1:0' }}
listeners:
  - name: main
    address: 127.0.0.1:0
    access_log: {{ path: {}, format: '%RESPONSE_CODE% %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER% \"%REQ(X-TAG)%\"', min_status: 400 }}
    routes:
      - {{ name: dead, match: {{ path: {{ prefix: /down }} }}, cluster: dead }}
      - {{ name: app, cluster: app }}
clusters:
  - {{ name: app, endpoints: ['{}'] }}
  - {{ name: dead, endpoints: ['{}'] }}
",
        log.display(),
        up.addr,
        ringmesh_tests::closed_port()
    );
    let p = Proxy::start(&yaml);
    let mut c = Client::connect(p.addr("main"));
    for _ in 0..3 {
        assert_eq!(c.get("/app/ok", "h").status, 200);
    }
    let r = c.request(b"GET /status/404 HTTP/1.1\r\nHost: h\r\nX-Tag: a\"b\r\n\r\n");
    assert_eq!(r.status, 404);
    assert_eq!(c.get("/down", "h").status, 502);
    // Only the two failures, in the template, the header's quote escaped.
    let got = lines(&log, 2);
    assert_eq!(
        got,
        vec![
            "404 GET /status/404 - app \"a\\x22b\"".to_string(),
            "502 GET /down UF dead \"-\"".to_string(),
        ]
    );

    // Rotation: move the file away, SIGUSR1, and new lines go to a new
    // file at the configured path.
    let rotated = dir.path().join("errors.log.1");
    std::fs::rename(&log, &rotated).expect("rename");
    p.signal_usr1();
    eventually("the reopen is logged", Duration::from_secs(5), || {
        p.log_count("reopening access log files") == 1
    });
    assert_eq!(c.get("/down", "h").status, 502);
    let fresh = lines(&log, 1);
    assert_eq!(fresh, vec!["502 GET /down UF dead \"-\"".to_string()]);
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap().lines().count(),
        2
    );
}

#[test]
fn a_writer_blocked_on_a_pipe_costs_lines_not_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success(), "mkfifo");
    // A reader that never reads: the pipe's 64 KiB fill, then the
    // writer's write(2) blocks for good.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open fifo");
    let up = Upstream::start("app");
    let p = logging_to(&fifo, &up);
    let started = Instant::now();
    // Four connections (both cores), 6000 requests: several MiB of log
    // lines, far past the pipe and every core's buffers.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let addr = p.addr("main");
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let padding = "x".repeat(300);
                (0..1500)
                    .filter(|i| c.get(&format!("/r{i}?{padding}"), "h").status == 200)
                    .count()
            })
        })
        .collect();
    let ok: usize = handles.into_iter().map(|h| h.join().expect("client")).sum();
    assert_eq!(ok, 6000, "every request answered");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "requests never waited on the log: {:?}",
        started.elapsed()
    );
    eventually("dropped lines are counted", Duration::from_secs(10), || {
        p.metric("ringmesh_access_log_dropped_total{reason=\"buffer_full\"}")
            .is_some_and(|n| n > 0)
    });
    // And the proxy still answers at once.
    assert_eq!(
        Client::connect(p.addr("main")).get("/after", "h").status,
        200
    );
}

use std::os::unix::fs::OpenOptionsExt;

#[test]
fn a_request_refused_before_its_head_is_complete_is_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let up = Upstream::start("app");
    let p = logging_to(&log, &up);
    // A smuggling attempt: both framings.
    let mut c = Client::connect(p.addr("main"));
    let r = c.request(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    let local = c.stream.local_addr().expect("local");
    let line = json(&lines(&log, 1)[0]);
    assert_eq!(line["response_code"], 400);
    assert_eq!(line["response_flags"], "DPE");
    assert!(
        line["method"].is_null() && line["route_name"].is_null(),
        "{line}"
    );
    assert_eq!(line["downstream_remote_address"], local.to_string());
    let details = line["response_code_details"].as_str().unwrap();
    assert!(!details.is_empty() && details != "via_upstream", "{line}");
    assert!(line["bytes_sent"].as_u64().unwrap() > 0, "{line}");
}

/// A proxy stopped at once (SIGINT: no drain delay) still writes the
/// lines its cores held: each core flushes as it stops and the writer
/// gets its time, rather than the line waiting for a sweep that never
/// comes.
#[test]
fn lines_held_by_the_cores_are_written_at_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let up = Upstream::start("app");
    let mut p = logging_to(&log, &up);
    let r = Client::connect(p.addr("main")).get("/bye", "h");
    assert_eq!(r.status, 200);
    p.signal_int();
    assert!(p.wait(Duration::from_secs(10)).is_some(), "the proxy exits");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let line = json(
        text.lines()
            .next()
            .unwrap_or_else(|| panic!("no line: {text:?}")),
    );
    assert_eq!(line["path"], "/bye");
}

/// The log writer and the span exporter yield to the workers (nice 10),
/// so a worker sharing their CPU serves requests first.
#[test]
fn the_writer_and_exporter_threads_run_below_the_workers() {
    let up = Upstream::start("app");
    let p = Proxy::start(&ringmesh_tests::config(
        "      - { name: app, cluster: app }\n",
        &[("app", &[&up])],
        "",
    ));
    let nice_of = |name: &str| -> Option<i64> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", p.pid())).ok()?;
        tasks.filter_map(Result::ok).find_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            if comm.trim() != name {
                return None;
            }
            // Field 19 of stat is the nice value; the command (field 2)
            // is in parentheses and may hold spaces: count after it.
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            let after = stat.rsplit_once(')')?.1;
            after.split_whitespace().nth(16)?.parse().ok()
        })
    };
    // Workers keep the nice value the proxy was started with (this test's
    // own: a CI under `nice` starts everything lower); the two threads go
    // to 10, or stay where they were when that is already lower.
    let own: i64 = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(16)?
                .parse()
                .ok()
        })
        .expect("the test's own nice value");
    let lowered = own.max(10);
    eventually("both threads lowered", Duration::from_secs(5), || {
        nice_of("ringmesh-logs") == Some(lowered) && nice_of("ringmesh-otlp") == Some(lowered)
    });
    assert_eq!(nice_of("ringmesh-w0"), Some(own), "workers keep theirs");
}
