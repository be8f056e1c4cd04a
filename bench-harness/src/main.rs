//! `ringmesh-bench`: test upstream, load generator and peer comparison.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ringmesh_bench::http::RequestSpec;
use ringmesh_bench::load::{self, LoadOptions};
use ringmesh_bench::progress::LoadProgress;
use ringmesh_bench::runtime::{CpuList, IoMode};
use ringmesh_bench::tls::{ClientTls, ServerTls, DEFAULT_SNI};
use ringmesh_bench::upstream::{self, AddedLatency, UpstreamOptions};

#[derive(Parser)]
#[command(
    name = "ringmesh-bench",
    version,
    about = "ringmesh perf harness: test upstream, load generator, proxy comparison"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve fixed HTTP/1.1 responses fast (the upstream behind a proxy);
    /// with --h2 also HTTP/2 and gRPC Echo.Unary.
    Upstream(UpstreamArgs),
    /// Drive HTTP/1.1 or HTTP/2 (--h2, --grpc) load at a URL and report
    /// latency percentiles.
    Load(LoadArgs),
    /// Run a scenario against ringmesh and its peers; write JSON, Markdown, SVG.
    Compare(ringmesh_bench::compare::CompareArgs),
    /// Write a throwaway CA and a leaf for localhost/127.0.0.1 (ECDSA
    /// P-256) into a directory, for --tls-* runs by hand.
    TlsCerts(TlsCertsArgs),
}

#[derive(Args)]
struct TlsCertsArgs {
    /// Directory to write ca.pem, leaf-chain.pem, leaf-key.pem and
    /// leaf-combined.pem into (created if missing).
    dir: PathBuf,
}

#[derive(Args)]
struct UpstreamArgs {
    /// Address to listen on (repeat for several).
    #[arg(short, long = "listen", default_value = "127.0.0.1:8000")]
    listen: Vec<SocketAddr>,
    /// Worker threads (one SO_REUSEPORT socket each).
    #[arg(short, long, default_value_t = 1)]
    workers: usize,
    /// CPUs to pin workers to, e.g. `0` or `0-3` (round robin).
    #[arg(long)]
    cpus: Option<CpuList>,
    /// Response status.
    #[arg(long, default_value_t = 200)]
    status: u16,
    /// Response body bytes (`/size/N` overrides per request).
    #[arg(short = 'b', long, default_value_t = 0)]
    body_size: usize,
    /// Added latency per response: `2ms` fixed or `1ms..5ms` uniform.
    #[arg(long)]
    latency: Option<AddedLatency>,
    /// Return the request body as the response body.
    #[arg(long)]
    echo: bool,
    /// IO driver: auto, uring or epoll.
    #[arg(long, default_value = "auto")]
    io: IoMode,
    /// Serve HTTPS with this certificate chain (PEM, leaf first).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTP/2 too: h2c with prior knowledge on plaintext (other
    /// connections get HTTP/1.1 as before), h2 by ALPN over TLS (offered
    /// before http/1.1). Same responses per stream, plus gRPC: POST
    /// /ringmesh.testing.v1.Echo/Unary answers the request's payload with
    /// grpc-status 0.
    #[arg(long)]
    h2: bool,
    /// With --h2: answer every gRPC call with this grpc-status instead
    /// (Trailers-Only), e.g. 14 for UNAVAILABLE.
    #[arg(long, default_value_t = 0, requires = "h2")]
    grpc_status: i32,
}

#[derive(Args)]
struct LoadArgs {
    /// http://HOST:PORT/PATH (https:// implies --tls)
    url: String,
    /// Connections kept open (or concurrent, with --new-connection).
    #[arg(short, long, default_value_t = 10)]
    connections: usize,
    /// Load threads (each a runtime with its share of connections).
    #[arg(short, long, default_value_t = 1)]
    threads: usize,
    /// CPUs to pin threads to, e.g. `0` or `2-3`.
    #[arg(long)]
    cpus: Option<CpuList>,
    /// Measured time.
    #[arg(short, long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Time before measuring starts (connections, pools and caches warm up).
    #[arg(short, long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Open loop at this many requests/s (latency from intended send times).
    #[arg(short, long)]
    rate: Option<f64>,
    /// Requests written back to back per connection (closed loop).
    #[arg(short, long, default_value_t = 1)]
    pipeline: usize,
    /// Open a new connection for every request.
    #[arg(long)]
    new_connection: bool,
    /// Request method.
    #[arg(short, long, default_value = "GET")]
    method: String,
    /// Request body bytes.
    #[arg(short = 'b', long, default_value_t = 0)]
    body_size: usize,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Longest wait for a connect or a response.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Write the report as JSON to this file (`-` = stdout, instead of text).
    #[arg(long)]
    json: Option<String>,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
    /// IO driver: auto, uring or epoll.
    #[arg(long, default_value = "auto")]
    io: IoMode,
    /// Speak TLS (needs --tls-ca). A failed handshake counts as a
    /// `handshake` error; a new connection's handshake is part of its
    /// request's latency.
    #[arg(long)]
    tls: bool,
    /// CA certificate(s) to trust, PEM.
    #[arg(long, value_name = "PEM")]
    tls_ca: Option<PathBuf>,
    /// Server name sent and verified.
    #[arg(long, default_value = DEFAULT_SNI)]
    sni: String,
    /// Resume TLS sessions on later connections (default: every new
    /// connection is a full handshake).
    #[arg(long)]
    tls_resume: bool,
    /// Speak HTTP/2: h2c with prior knowledge, or with --tls h2 by ALPN
    /// (only h2 offered). RST_STREAM and GOAWAY count as errors of their
    /// own; a connection that breaks or is sent away is opened again.
    #[arg(long)]
    h2: bool,
    /// With --h2: concurrent streams per connection, each looping like a
    /// connection of its own (closed loop), or with --rate its own share
    /// of the schedule (connections × streams clients in all).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// gRPC: send ringmesh.testing.v1.Echo/Unary calls (POST, framed
    /// EchoRequest, te: trailers) instead of the URL's path and --method;
    /// implies --h2. A non-zero grpc-status counts as a `grpc` error.
    #[arg(long)]
    grpc: bool,
    /// With --grpc: payload bytes in each EchoRequest.
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    grpc_payload: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Upstream(a) => run_upstream(a),
        Cmd::Load(a) => run_load(a),
        Cmd::Compare(a) => ringmesh_bench::compare::main(a),
        Cmd::TlsCerts(a) => run_tls_certs(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringmesh-bench: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_tls_certs(a: TlsCertsArgs) -> Result<ExitCode, String> {
    let f = ringmesh_bench::tls::generate(&a.dir)?;
    println!("CA (load --tls-ca):           {}", f.ca.display());
    println!("chain (upstream --tls-cert):  {}", f.chain.display());
    println!("key (upstream --tls-key):     {}", f.key.display());
    println!("chain + key in one file:      {}", f.combined.display());
    Ok(ExitCode::SUCCESS)
}

fn run_upstream(a: UpstreamArgs) -> Result<ExitCode, String> {
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls::from_files(cert, key)?),
        _ => None,
    };
    let opts = UpstreamOptions {
        listen: a.listen,
        workers: a.workers,
        cpus: a.cpus.map(|c| c.0).unwrap_or_default(),
        status: a.status,
        body_size: a.body_size,
        latency: a.latency,
        echo: a.echo,
        io: a.io,
        tls,
        h2: a.h2,
        grpc_status: a.grpc_status,
    };
    let up = upstream::start(opts.clone()).map_err(|e| format!("upstream: {e}"))?;
    let addrs: Vec<String> = up.addrs.iter().map(|a| a.to_string()).collect();
    eprintln!(
        "ringmesh-bench upstream listening on {}{}{} ({} workers, {}, status {}, {} body bytes{}{})",
        addrs.join(", "),
        if opts.tls.is_some() { " (https)" } else { "" },
        match (opts.h2, opts.tls.is_some()) {
            (true, true) => ", HTTP/2 by ALPN and HTTP/1.1",
            (true, false) => ", h2c (prior knowledge) and HTTP/1.1",
            _ => "",
        },
        opts.workers,
        up.driver,
        opts.status,
        opts.body_size,
        if opts.echo { ", echo" } else { "" },
        opts.latency
            .map(|l| format!(", +{:?}..{:?}", l.min, l.max))
            .unwrap_or_default()
    );
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone()).map_err(|e| e.to_string())?;
    }
    while !term.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(ExitCode::SUCCESS)
}

/// Split `http://host:port/path` (or https://) into the address to
/// connect to, the Host header, the path and whether it is https.
fn parse_url(url: &str) -> Result<(SocketAddr, String, String, bool), String> {
    let (rest, https) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => {
            return Err(format!(
                "{url:?}: only http:// and https:// URLs are supported"
            ))
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:{}", if https { 443 } else { 80 })
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{url:?}: cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url:?}: {authority} has no address"))?;
    Ok((addr, authority.to_string(), path.to_string(), https))
}

/// The load's TLS client, or None for plain HTTP; options that only mean
/// something over TLS are refused without it.
fn load_tls(a: &LoadArgs, https: bool) -> Result<Option<ClientTls>, String> {
    if !(a.tls || https) {
        if a.tls_ca.is_some() || a.tls_resume || a.sni != DEFAULT_SNI {
            return Err("--tls-ca, --sni and --tls-resume apply with --tls only".into());
        }
        return Ok(None);
    }
    let ca = a
        .tls_ca
        .as_deref()
        .ok_or("--tls needs --tls-ca PEM: the CA that issued the server's certificate")?;
    ClientTls::from_ca_file(ca, &a.sni, a.tls_resume).map(Some)
}

/// How the load speaks HTTP/2 (None: HTTP/1.1); HTTP/2-only options are
/// refused without it.
fn load_h2(a: &LoadArgs) -> Result<Option<load::H2Load>, String> {
    if !(a.h2 || a.grpc) {
        if a.streams != 1 {
            return Err("--streams applies with --h2 only (HTTP/1.1: --pipeline)".into());
        }
        return Ok(None);
    }
    Ok(Some(load::H2Load {
        streams: a.streams,
        grpc: a.grpc.then_some(a.grpc_payload),
    }))
}

fn run_load(a: LoadArgs) -> Result<ExitCode, String> {
    let (addr, host, path, https) = parse_url(&a.url)?;
    let tls = load_tls(&a, https)?;
    let h2 = load_h2(&a)?;
    let mut headers = Vec::new();
    for h in &a.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| format!("header {h:?}: expected `Name: value`"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let opts = LoadOptions {
        addr,
        request: RequestSpec {
            method: a.method,
            host,
            path,
            headers,
            body_size: a.body_size,
            close: a.new_connection,
        },
        connections: a.connections,
        threads: a.threads,
        cpus: a.cpus.map(|c| c.0).unwrap_or_default(),
        duration: a.duration,
        warmup: a.warmup,
        rate: a.rate,
        pipeline: a.pipeline,
        new_connection: a.new_connection,
        timeout: a.timeout,
        io: a.io,
        h2,
    };
    opts.validate()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let mut progress = LoadProgress::new(a.warmup, a.duration, !a.quiet);
    let report = load::run_with_tls(&opts, tls.as_ref(), stop, &mut progress)
        .map_err(|e| format!("load: {e}"))?;
    progress.finish();
    match a.json.as_deref() {
        Some("-") => println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        ),
        Some(path) => {
            let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
            std::fs::write(path, text).map_err(|e| format!("writing {path}: {e}"))?;
            println!("{report}");
        }
        None => println!("{report}"),
    }
    // 130 after Ctrl-C, as shells report SIGINT; 1 when nothing succeeded.
    Ok(if report.interrupted {
        ExitCode::from(130)
    } else if report.ok == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_args(args: &[&str]) -> Result<LoadArgs, String> {
        let cli = Cli::try_parse_from(
            ["ringmesh-bench", "load", "http://127.0.0.1:1/"]
                .iter()
                .chain(args),
        )
        .map_err(|e| e.to_string())?;
        match cli.cmd {
            Cmd::Load(a) => Ok(a),
            _ => Err("not load".into()),
        }
    }

    #[test]
    fn h2_load_arguments() {
        assert_eq!(load_h2(&load_args(&[]).unwrap()), Ok(None));
        let a = load_args(&["--h2", "--streams", "100"]).unwrap();
        assert_eq!(
            load_h2(&a),
            Ok(Some(load::H2Load {
                streams: 100,
                grpc: None
            }))
        );
        // --grpc implies --h2; the payload defaults to 64 bytes.
        let a = load_args(&["--grpc"]).unwrap();
        assert_eq!(
            load_h2(&a),
            Ok(Some(load::H2Load {
                streams: 1,
                grpc: Some(64)
            }))
        );
        let a = load_args(&["--grpc", "--grpc-payload", "1000", "--h2", "--tls"]).unwrap();
        assert_eq!(load_h2(&a).unwrap().unwrap().grpc, Some(1000));
        assert!(a.tls);
        let err = load_h2(&load_args(&["--streams", "4"]).unwrap()).unwrap_err();
        assert!(err.contains("--streams applies with --h2 only"), "{err}");
        assert!(load_args(&["--streams", "x"]).is_err());
    }

    #[test]
    fn h2_upstream_arguments() {
        let up = |args: &[&str]| {
            Cli::try_parse_from(["ringmesh-bench", "upstream"].iter().chain(args)).map(|c| match c
                .cmd
            {
                Cmd::Upstream(a) => (a.h2, a.grpc_status),
                _ => (false, -1),
            })
        };
        assert_eq!(up(&[]).unwrap(), (false, 0));
        assert_eq!(up(&["--h2"]).unwrap(), (true, 0));
        assert_eq!(up(&["--h2", "--grpc-status", "14"]).unwrap(), (true, 14));
        // gRPC statuses are HTTP/2's: refused without --h2.
        assert!(up(&["--grpc-status", "14"]).is_err());
    }

    #[test]
    fn urls() {
        let (addr, host, path, https) = parse_url("http://127.0.0.1:8080/a/b?c").unwrap();
        assert_eq!(
            (
                addr.to_string().as_str(),
                host.as_str(),
                path.as_str(),
                https
            ),
            ("127.0.0.1:8080", "127.0.0.1:8080", "/a/b?c", false)
        );
        let (addr, _, path, _) = parse_url("http://127.0.0.1").unwrap();
        assert_eq!((addr.port(), path.as_str()), (80, "/"));
        let (addr, _, _, https) = parse_url("https://127.0.0.1/").unwrap();
        assert_eq!((addr.port(), https), (443, true));
        assert!(parse_url("ftp://x/")
            .unwrap_err()
            .contains("only http:// and https://"));
        assert!(parse_url("http:///x").unwrap_err().contains("no host"));
    }
}
