//! One step against one running target.
//!
//! Load steps run `ringmesh-bench load` as a child process pinned to the
//! load CPUs; its stderr marks the start and end of the measured window,
//! and the target's CPU time and the load CPUs' busy time are sampled at
//! those two lines. Idle steps open the connections from here (over TLS,
//! each completes its handshake before its request).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::results::Metrics;
use super::scenario::{Scenario, Step, StepKind};
use super::tls::TlsRun;
use crate::load::LoadReport;
use crate::procfs;
use crate::progress::{MEASURED, MEASURING};
use crate::tls::{blocking, ClientTls};

pub struct Target<'a> {
    pub addr: SocketAddr,
    /// The processes to account, each with its children: none for
    /// `direct`, one per proxy, both of a mesh pair (CPU time and memory
    /// are their sums).
    pub pids: Vec<u32>,
    /// Speak TLS to it (TLS scenarios).
    pub tls: Option<&'a TlsRun>,
    /// A mesh pair's proxy B: the connections A holds to it are counted
    /// at the end of the window.
    pub hop: Option<SocketAddr>,
}

/// Samples taken at the window's edges.
#[derive(Default, Clone, Copy)]
struct Sample {
    target_cpu: f64,
    load_busy: u64,
    load_total: u64,
    /// Established connections to a pair's B.
    hop_connections: Option<u64>,
}

fn sample(pids: &[u32], hop: Option<SocketAddr>, load_cpus: &[usize]) -> Sample {
    let (load_busy, load_total) = procfs::cpu_jiffies(load_cpus);
    Sample {
        hop_connections: match hop {
            Some(SocketAddr::V4(b)) => Some(procfs::established_to(b)),
            _ => None,
        },
        target_cpu: pids.iter().map(|&p| procfs::tree_cpu_seconds(p)).sum(),
        load_busy,
        load_total,
    }
}

/// The `ringmesh-bench load` arguments for a step.
pub fn load_args(
    sc: &Scenario,
    step: &Step,
    target: &Target,
    rate: Option<f64>,
    duration: Duration,
) -> Vec<String> {
    let addr = target.addr;
    let mut a: Vec<String> = vec![
        "load".into(),
        format!("http://{addr}{}", step.load_path()),
        "--connections".into(),
        step.connections.to_string(),
        "--threads".into(),
        step.threads
            .min(sc.cpus.load.len().max(1))
            .max(1)
            .to_string(),
        "--cpus".into(),
        sc.cpus
            .load
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(","),
        "--duration".into(),
        format!("{}ms", duration.as_millis()),
        "--warmup".into(),
        format!("{}ms", sc.warmup.as_millis()),
        "--method".into(),
        step.method.clone(),
        "--body-size".into(),
        step.body_size.to_string(),
        "--json".into(),
        "-".into(),
        "--quiet".into(),
    ];
    if let StepKind::Closed {
        pipeline,
        new_connection,
    } = step.kind
    {
        a.extend(["--pipeline".into(), pipeline.to_string()]);
        if new_connection {
            a.push("--new-connection".into());
        }
    }
    if let StepKind::Rate {
        new_connection: true,
        ..
    } = step.kind
    {
        a.push("--new-connection".into());
    }
    if let Some(r) = rate {
        a.extend(["--rate".into(), format!("{r:.0}")]);
    }
    if sc.client == super::scenario::Proto::H2 {
        a.extend(["--h2".into(), "--streams".into(), step.streams.to_string()]);
        if let Some(payload) = step.grpc {
            a.extend([
                "--grpc".into(),
                "--grpc-payload".into(),
                payload.to_string(),
            ]);
        }
    }
    if let Some(tls) = target.tls {
        a.extend(tls.load_args());
    }
    a
}

/// Run a load step; returns the metrics and the load's own report.
pub fn load_step(
    bench: &Path,
    sc: &Scenario,
    step: &Step,
    target: &Target,
    rate: Option<f64>,
    duration: Duration,
) -> Result<(Metrics, LoadReport), String> {
    let mut cmd = Command::new(bench);
    cmd.args(load_args(sc, step, target, rate, duration))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = std::thread::scope(|s| {
        s.spawn(|| {
            crate::runtime::pin_current(&sc.cpus.load)?;
            cmd.spawn()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("spawn thread panicked")))
    })
    .map_err(|e| format!("starting {}: {e}", bench.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let (pids, hop, load_cpus) = (target.pids.clone(), target.hop, sc.cpus.load.clone());
    let watcher = std::thread::spawn(move || {
        let (mut start, mut end, mut other) = (None, None, String::new());
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with(MEASURING) {
                start = Some(sample(&pids, hop, &load_cpus));
            } else if line.starts_with(MEASURED) {
                end = Some(sample(&pids, hop, &load_cpus));
            } else {
                other.push_str(&line);
                other.push('\n');
            }
        }
        (start, end, other)
    });
    let mut json = String::new();
    let _ = stdout.read_to_string(&mut json);
    let status = child.wait().map_err(|e| e.to_string())?;
    let (start, end, stderr_text) = watcher.join().map_err(|_| "stderr watcher panicked")?;
    let report: LoadReport = serde_json::from_str(&json).map_err(|e| {
        format!(
            "load exited with {status}, no report ({e}): {}",
            stderr_text.trim()
        )
    })?;
    let (start, end) = match (start, end) {
        (Some(s), Some(e)) => (s, e),
        _ => {
            return Err(format!(
                "load gave no window markers: {}",
                stderr_text.trim()
            ))
        }
    };
    let l = &report.latency;
    let responses = report.requests.max(1) as f64;
    let busy = (end.load_busy - start.load_busy) as f64
        / (end.load_total - start.load_total).max(1) as f64;
    let metrics = Metrics {
        rps: report.rps,
        p50_us: l.p50_us,
        p90_us: l.p90_us,
        p99_us: l.p99_us,
        p999_us: l.p999_us,
        p9999_us: l.p9999_us,
        max_us: l.max_us,
        errors: report.errors.total(),
        proxy_cpu_us_per_req: (!target.pids.is_empty())
            .then(|| (end.target_cpu - start.target_cpu) * 1e6 / responses),
        proxy_peak_rss_kib: rss_kib(&target.pids).map(|(_, peak)| peak),
        load_cpu_busy: busy,
        idle_kib_per_conn: None,
        added_p50_us: None,
        added_p99_us: None,
        hop_connections: end.hop_connections,
        success_rate: super::results::success_rate(&report),
    };
    Ok((metrics, report))
}

/// Open `n` keep-alive connections through the target, one request each,
/// hold them for `hold`, and charge the target's memory growth to them.
pub fn idle_step(target: &Target, n: usize, hold: Duration) -> Result<Metrics, String> {
    let before = rss_kib(&target.pids).map(|(now, _)| now);
    let mut conns = Vec::with_capacity(n);
    let tls = target.tls.map(|t| &t.client);
    for i in 0..n {
        let s = idle_connection(target.addr, tls)
            .map_err(|e| format!("idle connection {i} of {n}: {e}"))?;
        conns.push(s);
    }
    // Long enough for ringmesh to park them (1 s) and for every peer to
    // settle whatever per-connection buffers it frees when idle.
    std::thread::sleep(hold);
    let after = rss_kib(&target.pids);
    // Every connection must still be open, or the memory is not theirs.
    let closed = conns.iter().filter(|s| is_closed(s)).count();
    if closed > 0 {
        return Err(format!(
            "{closed} of {n} idle connections were closed by the target while held"
        ));
    }
    drop(conns);
    let per_conn = match (before, after) {
        (Some(b), Some((a, _))) => Some(a.saturating_sub(b) as f64 / n as f64),
        _ => None,
    };
    Ok(Metrics {
        idle_kib_per_conn: per_conn,
        proxy_peak_rss_kib: after.map(|a| a.1),
        ..Metrics::default()
    })
}

/// Resident and peak resident memory (KiB) summed over `pids` and their
/// children; None without a process.
fn rss_kib(pids: &[u32]) -> Option<(u64, u64)> {
    (!pids.is_empty()).then(|| {
        pids.iter()
            .map(|&p| procfs::tree_rss_kib(p))
            .fold((0, 0), |(r, h), (r2, h2)| (r + r2, h + h2))
    })
}

/// A connection that has carried one request and is now idle: its socket
/// (over TLS, the handshake done and the client's TLS state dropped, so
/// thousands of them cost this process little; the target keeps its own).
fn idle_connection(addr: SocketAddr, tls: Option<&ClientTls>) -> std::io::Result<TcpStream> {
    match tls {
        Some(tls) => {
            let mut s = blocking::connect(addr, tls, Duration::from_secs(5))?;
            one_request(&mut s)?;
            Ok(s.into_parts().1)
        }
        None => {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            one_request(&mut s)?;
            Ok(s)
        }
    }
}

fn one_request(s: &mut (impl Read + Write)) -> std::io::Result<()> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")?;
    // Read to the end of a body-less or small content-length response.
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("closed before responding"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Ok(());
            }
        }
    }
}

/// Whether the target closed `s`: what is waiting on it (a TLS session
/// ticket, a close_notify) is read past, to see whether the end follows.
fn is_closed(s: &TcpStream) -> bool {
    let _ = s.set_nonblocking(true);
    let mut b = [0u8; 4096];
    let mut r = s;
    let closed = loop {
        match r.read(&mut b) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) => break e.kind() != std::io::ErrorKind::WouldBlock,
        }
    };
    let _ = s.set_nonblocking(false);
    closed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{self, UpstreamOptions};

    const SCENARIO: &str = r#"
targets = ["nginx"]
cpus = { proxy = [0], upstream = [0], load = [0] }
[[step]]
name = "hs"
connections = 4
new_connection = true
"#;

    #[test]
    fn the_load_speaks_tls_to_tls_targets() {
        let dir = tempfile::tempdir().unwrap();
        let run = TlsRun::new(dir.path()).unwrap();
        let sc = super::super::scenario::parse(SCENARIO, "t").unwrap();
        let mut target = Target {
            addr: "127.0.0.1:9443".parse().unwrap(),
            pids: Vec::new(),
            hop: None,
            tls: Some(&run),
        };
        let args = load_args(&sc, &sc.steps[0], &target, None, Duration::from_secs(1));
        let ca = run.files.ca.display().to_string();
        let tail: Vec<&str> = args
            .iter()
            .rev()
            .take(6)
            .rev()
            .map(String::as_str)
            .collect();
        assert_eq!(
            tail,
            [
                "--new-connection",
                "--tls",
                "--tls-ca",
                &ca,
                "--sni",
                "localhost"
            ]
        );
        assert_eq!(args[1], "http://127.0.0.1:9443/");
        target.tls = None;
        let plain = load_args(&sc, &sc.steps[0], &target, None, Duration::from_secs(1));
        assert!(!plain.iter().any(|a| a.starts_with("--tls")), "{plain:?}");
        assert!(!plain.iter().any(|a| a == "--h2"), "{plain:?}");
    }

    #[test]
    fn the_load_speaks_h2_and_grpc_to_h2_scenarios() {
        let sc = super::super::scenario::parse(
            r#"
client = "h2"
targets = ["ringmesh"]
cpus = { proxy = [0], upstream = [0], load = [0] }
[[step]]
name = "h2-h2"
connections = 2
streams = 100
upstream = "h2"
[[step]]
name = "grpc"
connections = 2
grpc = true
grpc_payload = 10
"#,
            "t",
        )
        .unwrap();
        let target = Target {
            addr: "127.0.0.1:9000".parse().unwrap(),
            pids: Vec::new(),
            hop: None,
            tls: None,
        };
        let args = load_args(&sc, &sc.steps[0], &target, None, Duration::from_secs(1));
        assert_eq!(
            args[1], "http://127.0.0.1:9000/h2/",
            "routed to the h2 upstream"
        );
        let tail: Vec<&str> = args
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(String::as_str)
            .collect();
        assert_eq!(tail, ["--h2", "--streams", "100"]);
        let args = load_args(&sc, &sc.steps[1], &target, None, Duration::from_secs(1));
        let tail: Vec<&str> = args
            .iter()
            .rev()
            .take(6)
            .rev()
            .map(String::as_str)
            .collect();
        assert_eq!(
            tail,
            ["--h2", "--streams", "1", "--grpc", "--grpc-payload", "10"]
        );
    }

    #[test]
    fn idle_tls_connections_finish_their_handshakes_and_stay_open() {
        let dir = tempfile::tempdir().unwrap();
        let run = TlsRun::new(dir.path()).unwrap();
        let tls = crate::tls::ServerTls::from_files(&run.files.chain, &run.files.key).unwrap();
        let up = upstream::start(UpstreamOptions {
            tls: Some(tls),
            ..Default::default()
        })
        .unwrap();
        let target = Target {
            addr: up.addrs[0],
            pids: Vec::new(),
            hop: None,
            tls: Some(&run),
        };
        // Each handshakes, answers one request, and is still open after
        // the hold (or the step fails saying how many were closed).
        let m = idle_step(&target, 20, Duration::from_millis(50)).unwrap();
        assert_eq!(m.idle_kib_per_conn, None, "no process to weigh");

        // Held connections a server closes are noticed, TLS alert or not.
        let plain = upstream::start(UpstreamOptions::default()).unwrap();
        let mut s = TcpStream::connect(plain.addrs[0]).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert!(is_closed(&s));
        let open = TcpStream::connect(plain.addrs[0]).unwrap();
        assert!(!is_closed(&open));
    }
}
