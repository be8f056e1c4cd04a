//! The things compared: no proxy, ringmesh, and the peers a user would
//! run instead. Each proxy gets a generated config made alike: one
//! listener, one upstream with keep-alive, no access log, X-Forwarded-For
//! added, the same worker count, pinned to the same CPUs.
//!
//! In TLS scenarios each listener also terminates TLS with the run's
//! certificate: TLS 1.2 and 1.3 (Mozilla's "intermediate" profile), ALPN
//! http/1.1, each proxy's own session cache, no session tickets where that
//! is a setting (the load never resumes anyway).
//!
//! In TCP scenarios (`mode = "tcp"`) each proxy is an L4 relay instead:
//! every client connection gets an upstream connection of its own and the
//! bytes pass unparsed (ringmesh's `tcp` listener, nginx's `stream`,
//! HAProxy's `mode tcp`, Envoy's tcp_proxy), so nothing is added to the
//! requests and no upstream connection is reused.
//!
//! In pair scenarios (`topology = "pair"`) each config is one sidecar of
//! a mesh hop (`Setup::mesh`): the same config plus mTLS to or from the
//! other ([`super::pair`]).
//!
//! `ringmesh-telemetry` is the `ringmesh` build with the `ringmesh` config
//! plus an access log and tracing at 100% to the harness's OTLP sink
//! ([`ringmesh_telemetry_config`]): the cost of telemetry, measured in the
//! same run. Every other target's config is what it was without it.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::pair::{self, Role};
use super::scenario::{Mode, Proto, Step, H2_UPSTREAM_PREFIX};
use crate::http2::grpc::SERVICE_PREFIX;
use crate::tls::{blocking, CertFiles, ClientTls};

/// Where Debian's `libnginx-mod-stream` puts nginx's stream module (the
/// second is the same directory through nginx's prefix).
const NGINX_STREAM_MODULE: [&str; 2] = [
    "/usr/lib/nginx/modules/ngx_stream_module.so",
    "/usr/share/nginx/modules/ngx_stream_module.so",
];

/// The stream module file nginx loads in TCP scenarios, if installed.
fn nginx_stream_module() -> Option<PathBuf> {
    NGINX_STREAM_MODULE
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The load goes straight to the upstream: the floor every proxy adds to.
    Direct,
    Ringmesh,
    /// A second ringmesh-proxy build (`--baseline-bin`), usually the
    /// commit before a change: same config, same CPUs, same run.
    Baseline,
    Nginx,
    Haproxy,
    Envoy,
    /// The `ringmesh` build and config with an access log (JSON, to a file
    /// in the run's scratch directory) and tracing at 100% to the
    /// harness's OTLP sink: what telemetry costs per request.
    #[serde(rename = "ringmesh-telemetry")]
    RingmeshTelemetry,
    /// The `ringmesh` build and config with `lb: round_robin`: the
    /// reference row of scenarios with several endpoints (elsewhere, with
    /// one endpoint, the same as `ringmesh`).
    #[serde(rename = "ringmesh-rr")]
    RingmeshRoundRobin,
}

/// In the enum's order (`Display` indexes it).
const NAMES: [&str; 8] = [
    "direct",
    "ringmesh",
    "baseline",
    "nginx",
    "haproxy",
    "envoy",
    "ringmesh-telemetry",
    "ringmesh-rr",
];

impl FromStr for TargetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "direct" => TargetKind::Direct,
            "ringmesh" => TargetKind::Ringmesh,
            "baseline" => TargetKind::Baseline,
            "nginx" => TargetKind::Nginx,
            "haproxy" => TargetKind::Haproxy,
            "envoy" => TargetKind::Envoy,
            "ringmesh-telemetry" => TargetKind::RingmeshTelemetry,
            "ringmesh-rr" => TargetKind::RingmeshRoundRobin,
            other => {
                let hint = super::did_you_mean(other, &NAMES);
                return Err(format!(
                    "unknown target {other:?}{hint}; known: {}",
                    NAMES.join(", ")
                ));
            }
        })
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NAMES[*self as usize])
    }
}

impl TargetKind {
    pub fn is_proxy(self) -> bool {
        self != TargetKind::Direct
    }

    /// A build of ringmesh-proxy (the one under test or the baseline).
    pub fn is_ringmesh(self) -> bool {
        matches!(
            self,
            TargetKind::Ringmesh
                | TargetKind::Baseline
                | TargetKind::RingmeshTelemetry
                | TargetKind::RingmeshRoundRobin
        )
    }

    /// The binary to run in a scenario of `mode`, or why it cannot be.
    pub fn locate(self, bins: &RingmeshBins, mode: Mode) -> Result<Option<PathBuf>, String> {
        self.locate_for(bins, mode, false)
    }

    /// As [`TargetKind::locate`], for a scenario where HTTP/2 is spoken
    /// on either side (`h2`).
    pub fn locate_for(
        self,
        bins: &RingmeshBins,
        mode: Mode,
        h2: bool,
    ) -> Result<Option<PathBuf>, String> {
        if self == TargetKind::Envoy && h2 {
            return Err(ENVOY_NO_H2.into());
        }
        let bin = self.locate_bin(bins)?;
        if self == TargetKind::Nginx && mode == Mode::Tcp && nginx_stream_module().is_none() {
            return Err(NGINX_NO_STREAM.into());
        }
        Ok(bin)
    }

    fn locate_bin(self, bins: &RingmeshBins) -> Result<Option<PathBuf>, String> {
        match self {
            TargetKind::Direct => Ok(None),
            TargetKind::Ringmesh
            | TargetKind::RingmeshTelemetry
            | TargetKind::RingmeshRoundRobin => {
                if bins.current.is_file() {
                    Ok(Some(bins.current.clone()))
                } else {
                    Err(format!(
                        "{} not found; build it with `cargo build --release -p ringmesh-proxy` or pass --ringmesh-bin",
                        bins.current.display()
                    ))
                }
            }
            TargetKind::Baseline => match &bins.baseline {
                Some(b) if b.is_file() => Ok(Some(b.clone())),
                Some(b) => Err(format!("--baseline-bin {}: not a file", b.display())),
                None => Err("no --baseline-bin given".into()),
            },
            TargetKind::Nginx => which("nginx").map(Some).ok_or_else(|| "nginx not installed; run perf/install-peers.sh (apt-get install nginx-light)".into()),
            TargetKind::Haproxy => which("haproxy").map(Some).ok_or_else(|| "haproxy not installed; run perf/install-peers.sh (apt-get install haproxy)".into()),
            TargetKind::Envoy => which("envoy").map(Some).ok_or_else(|| {
                "envoy not on PATH; Debian has no package: install a release binary (https://www.envoyproxy.io/docs/envoy/latest/start/install) and put it on PATH".into()
            }),
        }
    }

    /// Version string for the report.
    pub fn version(self, bin: &Path) -> String {
        let arg = match self {
            TargetKind::Direct => return String::new(),
            TargetKind::Nginx => "-v",
            TargetKind::Haproxy => "-v",
            TargetKind::Ringmesh
            | TargetKind::Baseline
            | TargetKind::RingmeshTelemetry
            | TargetKind::RingmeshRoundRobin
            | TargetKind::Envoy => "--version",
        };
        let out = Command::new(bin).arg(arg).output();
        let text = out
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default();
        text.lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string()
    }
}

/// Why nginx cannot relay TCP here (Debian builds `stream` as a module).
const NGINX_NO_STREAM: &str = "install libnginx-mod-stream (perf/install-peers.sh): nginx's stream module, which a TCP scenario needs, is not in /usr/lib/nginx/modules";

/// The ringmesh-proxy builds a run may start.
#[derive(Debug, Clone)]
pub struct RingmeshBins {
    /// The build under test (`--ringmesh-bin`, default next to this binary).
    pub current: PathBuf,
    /// The build it is compared with (`--baseline-bin`).
    pub baseline: Option<PathBuf>,
}

/// `name` on PATH, or in the sbin directories a non-root PATH lacks.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// What a target's config needs to know.
pub struct Setup<'a> {
    pub upstream: SocketAddr,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub cpus: &'a [usize],
    pub dir: &'a Path,
    /// Client connections it must hold at once (idle steps).
    pub max_connections: usize,
    /// The hard RLIMIT_NOFILE targets inherit (nothing can raise it).
    pub fd_limit: u64,
    /// Terminate TLS on the listener with these (TLS scenarios).
    pub tls: Option<&'a CertFiles>,
    /// Serve HTTP, or relay opaque TCP (TCP scenarios).
    pub mode: Mode,
    /// What clients speak to the listener (h2: h2c with prior knowledge,
    /// or h2 by ALPN with `tls`).
    pub client: Proto,
    /// The upstream serving h2c, when a step uses it: plain requests
    /// under `/h2/` and every gRPC call go there, over HTTP/2.
    pub upstream_h2: Option<SocketAddr>,
    /// One proxy of a mesh pair (`topology = "pair"`): A sends to B over
    /// mTLS (its `upstream` is B), B requires mTLS on its listener (its
    /// `tls` is its SVID).
    pub mesh: Option<Role<'a>>,
    /// Where `ringmesh-telemetry` logs and sends spans (other targets
    /// ignore it).
    pub telemetry: Option<Telemetry>,
    /// Several endpoints in place of `upstream` (scenarios with
    /// `endpoints` > 1), each proxy balancing them its load-aware way.
    pub balanced: Option<Balanced<'a>>,
}

/// The endpoints of a scenario with several, and how the proxies treat
/// failures of one of them in this step.
///
/// - Always: ringmesh `lb: peak_ewma` (`ringmesh-rr`: `round_robin`),
///   nginx `least_conn`, HAProxy `balance leastconn`.
/// - `retry: false`, each proxy's defaults: ringmesh retries nothing and
///   ejects nothing (Peak-EWMA counts a failed try as a slow one);
///   nginx's `proxy_next_upstream error timeout` and `max_fails=1
///   fail_timeout=10s` (a refused connection is retried on the next
///   server and the server is left out for 10 s; a 503 is passed on);
///   HAProxy's `retries 3` on connection failures to the same server,
///   no redispatch, no health checks.
/// - `retry: true`, the same told to all three: one retry on another
///   endpoint, at once, of a try that failed to connect, was reset or cut
///   short, timed out, or answered 502, 503 or 504; and an endpoint that
///   fails once is left out for about 10 s. ringmesh: the route's
///   `retries: { attempts: 1, backoff: { base: 0ms } }` (its default `on`
///   list is exactly those failures) and the cluster's
///   `outlier_detection: { consecutive_gateway_errors: 1,
///   base_ejection_time: 10s }`; nginx: `proxy_next_upstream error timeout
///   http_502 http_503 http_504`, `proxy_next_upstream_tries 2` and
///   `max_fails=1 fail_timeout=10s` on each server; HAProxy: `retries 1`,
///   `option redispatch 1`, `retry-on conn-failure empty-response
///   response-timeout 502 503 504`, and on each server `observe layer7
///   error-limit 1 on-error mark-down`, which HAProxy accepts only with
///   `check` (a TCP connect every `inter 10s`, `rise 1`: the way back in).
#[derive(Debug, Clone, Copy)]
pub struct Balanced<'a> {
    pub endpoints: &'a [SocketAddr],
    pub retry: bool,
}

/// Whether `kind` has a config for a scenario with `endpoints` endpoints.
pub fn supports_endpoints(kind: TargetKind, endpoints: usize) -> Result<(), &'static str> {
    match kind {
        _ if endpoints <= 1 => Ok(()),
        TargetKind::Envoy => Err("configs with several endpoints are not generated for Envoy yet (no envoy binary here to check one)"),
        TargetKind::RingmeshTelemetry => Err("not run with several endpoints (its proxy restarts every step there, and its counts are per run)"),
        _ => Ok(()),
    }
}

/// The telemetry `ringmesh-telemetry` adds to ringmesh's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telemetry {
    /// The listener's access log (JSON lines).
    pub access_log: PathBuf,
    /// The OTLP/gRPC sink for spans at 100%; None in TCP scenarios (a
    /// relayed connection gets an access-log line but no span).
    pub collector: Option<SocketAddr>,
}

/// The `service_name` of `ringmesh-telemetry`'s spans.
pub const TELEMETRY_SERVICE: &str = "bench";

/// Why nginx sits out plain h2-in / h2-out steps.
pub const NGINX_NO_H2_UPSTREAM: &str = "not supported: nginx (1.22) proxies HTTP/2 to an upstream only as gRPC (grpc_pass); its proxy_pass speaks HTTP/1.x";

/// Whether `kind` can run `step` as the scenario sets it up, or why not
/// (the step is left out for that target, and the report says so).
pub fn supports(kind: TargetKind, step: &Step) -> Result<(), &'static str> {
    if kind == TargetKind::Nginx && step.upstream == Proto::H2 && step.grpc.is_none() {
        return Err(NGINX_NO_H2_UPSTREAM);
    }
    Ok(())
}

/// Why Envoy sits out HTTP/2 scenarios.
const ENVOY_NO_H2: &str =
    "HTTP/2 configs for Envoy are not generated yet (no envoy binary here to check them against)";

/// A generated config file and the command that runs the target with it.
pub fn command(kind: TargetKind, bin: &Path, s: &Setup) -> std::io::Result<Command> {
    let write = |name: &str, text: String| -> std::io::Result<PathBuf> {
        let p = s.dir.join(name);
        std::fs::write(&p, text)?;
        Ok(p)
    };
    let mut cmd = Command::new(bin);
    match kind {
        TargetKind::Direct => return Err(std::io::Error::other("direct has no process")),
        TargetKind::Envoy if s.mesh.is_some() => {
            return Err(std::io::Error::other(
                pair::supports(kind).err().unwrap_or("no pair config"),
            ))
        }
        // The baseline gets the very same config: the builds differ, nothing
        // else. It may be older than this harness, so `ringmesh_config`
        // sticks to fields every ringmesh release has understood.
        TargetKind::Ringmesh | TargetKind::Baseline => {
            cmd.arg("--config")
                .arg(write("ringmesh.yaml", ringmesh_config(s))?);
        }
        TargetKind::RingmeshRoundRobin => {
            cmd.arg("--config").arg(write(
                "ringmesh.yaml",
                ringmesh_config_lb(s, "round_robin"),
            )?);
        }
        TargetKind::RingmeshTelemetry => {
            let t = s.telemetry.as_ref().ok_or_else(|| {
                std::io::Error::other("ringmesh-telemetry: no access log path or sink given")
            })?;
            cmd.arg("--config")
                .arg(write("ringmesh.yaml", ringmesh_telemetry_config(s, t))?);
        }
        TargetKind::Nginx => {
            cmd.arg("-c")
                .arg(write("nginx.conf", nginx_config(s))?)
                .arg("-e")
                .arg("stderr");
        }
        TargetKind::Haproxy => {
            cmd.arg("-db")
                .arg("-f")
                .arg(write("haproxy.cfg", haproxy_config(s))?);
        }
        TargetKind::Envoy => {
            cmd.arg("-c")
                .arg(write("envoy.yaml", envoy_config(s))?)
                .arg("--concurrency")
                .arg(s.cpus.len().to_string())
                .arg("--log-level")
                .arg("error")
                .arg("--disable-hot-restart");
        }
    }
    Ok(cmd)
}

/// Idle upstream connections each proxy keeps per worker.
const UPSTREAM_IDLE: usize = 64;
/// Keep-alive timeouts long enough that no run ever sees one.
const KEEPALIVE_S: u32 = 300;

fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// TLS 1.2 ciphers of Mozilla's intermediate profile that this run's
/// certificate (ECDSA) and config (no DH parameters) can use; the
/// load negotiates TLS 1.3, so they only matter to a TLS 1.2 client.
const TLS12_CIPHERS: &str =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305";
/// TLS 1.3 suites (Mozilla intermediate), for configs that list them.
const TLS13_SUITES: &str =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/// ringmesh's config, for the current build and the baseline alike. Only
/// long-standing fields (runtime, admin, listeners, clusters, pool): an
/// older baseline rejects fields it does not know. The listener's `tls`
/// (issue 9) is there only in TLS scenarios, so a baseline from before it
/// runs every plain one.
pub fn ringmesh_config(s: &Setup) -> String {
    ringmesh_config_lb(s, "peak_ewma")
}

/// [`ringmesh_config`] with this `lb` for a cluster of several endpoints
/// (with one endpoint, no `lb` is written: the same config as ever).
pub fn ringmesh_config_lb(s: &Setup, lb: &str) -> String {
    if s.mode == Mode::Tcp {
        // The `tcp` listener (issue 10): no routes, its own idle timeout.
        // Every relay holds an upstream connection, and those count
        // against the cluster's `pool.max_connections` (1024 by default):
        // raised to what the run holds at once, as HAProxy's maxconn.
        return format!(
            "# generated by ringmesh-bench compare\n\
runtime: {{ workers: {w}, cpu_affinity: [{cpus}] }}\n\
admin: {{ address: '{admin}' }}\n\
listeners:\n  - name: main\n    address: '{listen}'\n    tcp: {{ cluster: up, idle_timeout: {KEEPALIVE_S}s }}\n\
clusters:\n  - name: up\n    endpoints: ['{up}']\n    pool: {{ max_connections: {max} }}\n",
            max = s.max_connections + 1024,
            w = s.cpus.len(),
            cpus = cpu_list(s.cpus),
            admin = s.admin,
            listen = s.listen,
            up = s.upstream,
        );
    }
    // A mesh pair (issue 11): the workload identity on both; B's listener
    // requires mTLS in place of `tls`, A's cluster to B is a mesh one.
    let (identity, cluster_mesh) = match s.mesh {
        None => (String::new(), String::new()),
        Some(Role::Server(f)) => (pair::ringmesh_identity(&f.server), String::new()),
        Some(Role::Client(f)) => (
            pair::ringmesh_identity(&f.client),
            format!("    mesh: {{ identity: '{}' }}\n", pair::SERVER_ID),
        ),
    };
    let tls = s.tls.map_or_else(String::new, |t| {
        if matches!(s.mesh, Some(Role::Server(_))) {
            return "    mesh: { mode: strict }\n".to_string();
        }
        format!(
            "    tls:\n      certificates:\n        - cert: '{}'\n          key: '{}'\n",
            t.chain.display(),
            t.key.display()
        )
    });
    // With an HTTP/2 upstream (issue 10): its cluster speaks h2c
    // (`protocol: http2`, connections shared by streams) and takes
    // `/h2/` and gRPC. The listener serves HTTP/2 by default (preface or
    // ALPN), so an h2 client needs nothing more. Plain scenarios keep the
    // config an older baseline understands.
    let (routes, h2_cluster) = match s.upstream_h2 {
        None if s.balanced.is_some_and(|b| b.retry) => (
            "    routes: [ { cluster: up, retries: { attempts: 1, backoff: { base: 0ms } } } ]\n"
                .to_string(),
            String::new(),
        ),
        None => ("    routes: [ { cluster: up } ]\n".to_string(), String::new()),
        Some(up2) => (
            format!(
                concat!(
                    "    routes:\n",
                    "      - {{ match: {{ path: {{ prefix: {h2}/ }} }}, cluster: up2 }}\n",
                    "      - {{ match: {{ path: {{ prefix: {grpc} }} }}, cluster: up2 }}\n",
                    "      - {{ cluster: up }}\n"
                ),
                h2 = H2_UPSTREAM_PREFIX,
                grpc = SERVICE_PREFIX
            ),
            format!(
                "  - name: up2\n    endpoints: ['{up2}']\n    protocol: http2\n    pool: {{ max_idle_per_endpoint: {UPSTREAM_IDLE}, idle_timeout: {KEEPALIVE_S}s }}\n"
            ),
        ),
    };
    // Several endpoints: the balancer, and with `retry` the passive
    // health check ([`Balanced`]).
    let (endpoints, balance) = match s.balanced {
        None => (format!("'{}'", s.upstream), String::new()),
        Some(b) => (
            b.endpoints
                .iter()
                .map(|e| format!("'{e}'"))
                .collect::<Vec<_>>()
                .join(", "),
            match b.retry {
                false => format!("    lb: {lb}\n"),
                true => format!(
                    "    lb: {lb}\n    outlier_detection: {{ consecutive_gateway_errors: 1, base_ejection_time: 10s }}\n"
                ),
            },
        ),
    };
    format!(
        "# generated by ringmesh-bench compare\n\
{identity}runtime: {{ workers: {w}, cpu_affinity: [{cpus}] }}\n\
admin: {{ address: '{admin}' }}\n\
listeners:\n  - name: main\n    address: '{listen}'\n    idle_timeout: {KEEPALIVE_S}s\n{tls}{routes}\
clusters:\n  - name: up\n    endpoints: [{endpoints}]\n{balance}    pool: {{ max_idle_per_endpoint: {UPSTREAM_IDLE}, idle_timeout: {KEEPALIVE_S}s }}\n{cluster_mesh}{h2_cluster}",
        w = s.cpus.len(),
        cpus = cpu_list(s.cpus),
        admin = s.admin,
        listen = s.listen,
    )
}

/// `ringmesh-telemetry`'s config: [`ringmesh_config`] with, on its
/// listener, `access_log: { path, format: json }` and, at the top level
/// (HTTP only), `tracing` at 100% to the sink. Only added lines: the rest
/// is byte for byte what `ringmesh` runs with, so the two differ by the
/// telemetry alone.
pub fn ringmesh_telemetry_config(s: &Setup, t: &Telemetry) -> String {
    let base = ringmesh_config(s);
    // The listener's first field after its name; `admin`'s address is in
    // flow style on one line, so this is the listener's.
    let anchor = format!("    address: '{}'\n", s.listen);
    let access_log = format!(
        "    access_log: {{ path: '{}', format: json }}\n",
        t.access_log.display()
    );
    let mut out = base.replacen(&anchor, &format!("{anchor}{access_log}"), 1);
    debug_assert_ne!(out, base, "the listener's address line is where it was");
    if let Some(collector) = t.collector {
        out.push_str(&format!(
            "tracing: {{ collector: '{collector}', sampling_percent: 100, service_name: {TELEMETRY_SERVICE} }}\n"
        ));
    }
    out
}

pub fn nginx_config(s: &Setup) -> String {
    let dir = s.dir.display();
    // worker_cpu_affinity wants one bitmask per worker.
    let masks: Vec<String> = s
        .cpus
        .iter()
        .map(|&c| format!("1{}", "0".repeat(c)))
        .collect();
    let conns = s.max_connections * 2 + 1024;
    if s.mode == Mode::Tcp {
        // `stream` only: a relayed connection is two nginx connections
        // (client and upstream), hence worker_connections as above.
        let module = nginx_stream_module().unwrap_or_else(|| PathBuf::from(NGINX_STREAM_MODULE[0]));
        return format!(
            "# generated by ringmesh-bench compare\n\
load_module {module};\n\
daemon off;\nmaster_process on;\nworker_processes {w};\nworker_cpu_affinity {masks};\n\
error_log stderr error;\npid {dir}/nginx.pid;\nworker_rlimit_nofile {nofile};\n\
events {{ worker_connections {conns}; }}\n\
stream {{\n  upstream up {{ server {up}; }}\n\
  server {{\n    listen {listen} reuseport backlog=4096;\n    proxy_pass up;\n\
    proxy_connect_timeout 2s;\n    proxy_timeout {KEEPALIVE_S}s;\n  }}\n}}\n",
            module = module.display(),
            w = s.cpus.len(),
            masks = masks.join(" "),
            nofile = (conns as u64 * 2).min(s.fd_limit),
            up = s.upstream,
            listen = s.listen,
        );
    }
    // HTTP/2 (nginx 1.22: `listen ... http2`, the `http2 on;` directive
    // is 1.25.1's; on plaintext that listener speaks only h2c with prior
    // knowledge). Its streams' limits are raised by keepalive_requests
    // and keepalive_timeout above (http2_max_requests is gone since
    // 1.19.7). To an HTTP/2 upstream only gRPC: grpc_pass, with the same
    // keep-alive pool; plain h2 out is `supports`'s business.
    let (up2, grpc) = s.upstream_h2.map_or_else(Default::default, |up2| {
        (
            format!("  upstream up2 {{ server {up2}; keepalive {UPSTREAM_IDLE}; keepalive_requests 100000000; keepalive_timeout {KEEPALIVE_S}s; }}\n"),
            format!(
                "    location {SERVICE_PREFIX} {{\n      grpc_pass grpc://up2;\n\
      grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      grpc_buffer_size 16k;\n    }}\n"
            ),
        )
    });
    // Mozilla intermediate (ssl-config.mozilla.org, nginx 1.22, OpenSSL
    // 3.0), without the DHE ciphers it pairs with a dhparam file.
    let (ssl, mut tls) = s.tls.map_or_else(Default::default, |t| {
        (
            " ssl",
            format!(
                "    ssl_certificate {};\n    ssl_certificate_key {};\n\
    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_ecdh_curve X25519:prime256v1:secp384r1;\n\
    ssl_ciphers {TLS12_CIPHERS};\n    ssl_prefer_server_ciphers off;\n\
    ssl_session_cache shared:SSL:10m;\n    ssl_session_timeout 1d;\n    ssl_session_tickets off;\n",
                t.chain.display(),
                t.key.display()
            ),
        )
    });
    // A mesh pair: B requires client certificates, A proxies to B over
    // mTLS (the same keep-alive pool, now of TLS connections).
    let (scheme, upstream_tls) = match s.mesh {
        None => ("http", String::new()),
        Some(Role::Server(f)) => {
            tls.push_str(&pair::nginx_verify_clients(f));
            ("http", String::new())
        }
        Some(Role::Client(f)) => ("https", pair::nginx_upstream_tls(f)),
    };
    // Several endpoints: least_conn, and with `retry` 502/503/504 retried
    // on the next server ([`Balanced`]).
    let (servers, next_upstream) = match s.balanced {
        None => (format!("server {};", s.upstream), String::new()),
        Some(b) => {
            let params = if b.retry {
                " max_fails=1 fail_timeout=10s"
            } else {
                ""
            };
            let list: Vec<String> = b
                .endpoints
                .iter()
                .map(|e| format!("server {e}{params};"))
                .collect();
            (
                format!("least_conn; {}", list.join(" ")),
                match b.retry {
                    true => "      proxy_next_upstream error timeout http_502 http_503 http_504;\n      proxy_next_upstream_tries 2;\n".to_string(),
                    false => String::new(),
                },
            )
        }
    };
    format!(
        "# generated by ringmesh-bench compare\n\
daemon off;\nmaster_process on;\nworker_processes {w};\nworker_cpu_affinity {masks};\n\
error_log stderr error;\npid {dir}/nginx.pid;\nworker_rlimit_nofile {nofile};\n\
events {{ worker_connections {conns}; }}\n\
http {{\n  access_log off;\n  keepalive_requests 100000000;\n  keepalive_timeout {KEEPALIVE_S}s;\n\
  client_max_body_size 0;\n  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;\n\
  fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;\n\
  upstream up {{ {servers} keepalive {UPSTREAM_IDLE}; keepalive_requests 100000000; keepalive_timeout {KEEPALIVE_S}s; }}\n{up2}\
  server {{\n    listen {listen}{ssl}{http2} backlog=4096 reuseport;\n{tls}    location / {{\n\
      proxy_pass {scheme}://up;\n{upstream_tls}      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
      proxy_buffering off;\n      proxy_request_buffering off;\n{next_upstream}    }}\n{grpc}  }}\n}}\n",
        http2 = if s.client == Proto::H2 { " http2" } else { "" },
        up2 = up2,
        grpc = grpc,
        w = s.cpus.len(),
        masks = masks.join(" "),
        nofile = (conns as u64 * 2).min(s.fd_limit),
        listen = s.listen,
    )
}

pub fn haproxy_config(s: &Setup) -> String {
    let cpus = cpu_list(s.cpus).replace(' ', "");
    let maxconn = s.max_connections + 1024;
    // Mozilla intermediate (HAProxy 2.6, OpenSSL 3.0), ciphers as nginx's.
    let (global_tls, bind_tls) = s.tls.map_or_else(Default::default, |t| {
        (
            format!(
                "  ssl-default-bind-ciphers {TLS12_CIPHERS}\n  ssl-default-bind-ciphersuites {TLS13_SUITES}\n\
  ssl-default-bind-options prefer-client-ciphers no-tls-tickets\n"
            ),
            format!(
                " ssl crt {} alpn {} ssl-min-ver TLSv1.2",
                t.combined.display(),
                if s.client == Proto::H2 {
                    "h2,http/1.1"
                } else {
                    "http/1.1"
                }
            ),
        )
    });
    // A mesh pair: B requires client certificates on its TLS bind, A's
    // server is B over mTLS.
    let (bind_tls, server_tls) = match s.mesh {
        None => (bind_tls, String::new()),
        Some(Role::Server(f)) => (bind_tls + &pair::haproxy_verify_clients(f), String::new()),
        Some(Role::Client(f)) => (bind_tls, pair::haproxy_server_tls(f)),
    };
    if s.mode == Mode::Tcp {
        // An L4 relay: no HTTP options, nothing to reuse.
        return format!(
            "# generated by ringmesh-bench compare\n\
global\n  nbthread {w}\n  cpu-map auto:1/1-{w} {cpus}\n  maxconn {maxconn}\n\
defaults\n  mode tcp\n  timeout connect 2s\n  timeout client {KEEPALIVE_S}s\n  timeout server {KEEPALIVE_S}s\n\
frontend f\n  bind {listen}\n  default_backend b\n\
backend b\n  server s1 {up}\n",
            w = s.cpus.len(),
            listen = s.listen,
            up = s.upstream,
        );
    }
    // HTTP/2 clients: h2c by `proto h2` on a plain bind (ALPN over TLS,
    // above). An HTTP/2 upstream: a second backend whose server speaks
    // h2 (`proto h2`), for `/h2/` and gRPC.
    let bind_h2 = if s.client == Proto::H2 && s.tls.is_none() {
        " proto h2"
    } else {
        ""
    };
    let (use_h2, backend_h2) = s.upstream_h2.map_or_else(Default::default, |up2| {
        (
            format!("  use_backend b2 if {{ path_beg {H2_UPSTREAM_PREFIX}/ {SERVICE_PREFIX} }}\n"),
            format!(
                "backend b2\n  server s2 {up2} proto h2 pool-max-conn {}\n",
                UPSTREAM_IDLE * s.cpus.len()
            ),
        )
    });
    // Several endpoints: leastconn, and with `retry` a redispatched retry
    // and passive health ([`Balanced`]).
    let idle = UPSTREAM_IDLE * s.cpus.len();
    let backend = match s.balanced {
        None => format!(
            "  server s1 {} pool-max-conn {idle}{server_tls}\n",
            s.upstream
        ),
        Some(b) => {
            let mut out = String::from("  balance leastconn\n");
            if b.retry {
                out.push_str(
                    "  retries 1\n  option redispatch 1\n  retry-on conn-failure empty-response response-timeout 502 503 504\n",
                );
                out.push_str(
                    "  default-server check inter 10s rise 1 observe layer7 error-limit 1 on-error mark-down\n",
                );
            }
            for (i, e) in b.endpoints.iter().enumerate() {
                out.push_str(&format!(
                    "  server s{} {e} pool-max-conn {idle}{server_tls}\n",
                    i + 1
                ));
            }
            out
        }
    };
    // HAProxy wants two descriptors per connection and refuses to start
    // when the hard RLIMIT_NOFILE is below that: the run then reports it
    // as failed, with HAProxy's own message, rather than measuring a
    // cut-down configuration.
    format!(
        "# generated by ringmesh-bench compare\n\
global\n  nbthread {w}\n  cpu-map auto:1/1-{w} {cpus}\n  maxconn {maxconn}\n{global_tls}\
defaults\n  mode http\n  timeout connect 2s\n  timeout client {KEEPALIVE_S}s\n  timeout server {KEEPALIVE_S}s\n\
  timeout http-keep-alive {KEEPALIVE_S}s\n  option http-keep-alive\n  option forwardfor\n  http-reuse always\n\
frontend f\n  bind {listen}{bind_tls}{bind_h2}\n{use_h2}  default_backend b\n\
backend b\n{backend}{backend_h2}",
        w = s.cpus.len(),
        listen = s.listen,
    )
}

/// Envoy's config. Its TLS (a DownstreamTlsContext on the filter chain)
/// is written from Envoy's v3 API reference and has not been run here:
/// no envoy binary on this machine, so tls.toml leaves envoy out. Its
/// tcp_proxy filter (TCP scenarios) is in the same position, and tcp.toml
/// leaves envoy out too. Raw strings, because YAML's indentation is its
/// structure.
pub fn envoy_config(s: &Setup) -> String {
    // The chain's first key: the transport socket over TLS, else `filters`.
    let chain_head = s.tls.map_or_else(
        || "    - filters:\n".to_string(),
        |t| {
            format!(
                r#"    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_params: {{ tls_minimum_protocol_version: TLSv1_2 }}
            alpn_protocols: ["http/1.1"]
            tls_certificates:
            - certificate_chain: {{ filename: "{}" }}
              private_key: {{ filename: "{}" }}
      filters:
"#,
                t.chain.display(),
                t.key.display()
            )
        },
    );
    let filter = if s.mode == Mode::Tcp {
        format!(
            r#"      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: main
          cluster: up
          idle_timeout: {KEEPALIVE_S}s
"#
        )
    } else {
        HTTP_CONNECTION_MANAGER.to_string()
    };
    format!(
        r#"# generated by ringmesh-bench compare
admin:
  address: {{ socket_address: {{ address: {aip}, port_value: {aport} }} }}
static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: {lip}, port_value: {lport} }} }}
    filter_chains:
{chain_head}{filter}  clusters:
  - name: up
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: {uip}, port_value: {uport} }} }} }}
"#,
        aip = s.admin.ip(),
        aport = s.admin.port(),
        lip = s.listen.ip(),
        lport = s.listen.port(),
        uip = s.upstream.ip(),
        uport = s.upstream.port(),
    )
}

/// Envoy's HTTP filter chain (HTTP scenarios).
const HTTP_CONNECTION_MANAGER: &str = r#"      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: main
          use_remote_address: true
          generate_request_id: false
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [ { match: { prefix: "/" }, route: { cluster: up, timeout: 0s } } ]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router, dynamic_stats: false }
"#;

/// Start `cmd` with its CPU affinity set to `cpus`: it is spawned from a
/// thread pinned there, and a child inherits its parent thread's mask, so
/// every thread and worker process it starts stays on those CPUs.
pub fn spawn_pinned(mut cmd: Command, cpus: &[usize], log: &Path) -> std::io::Result<Child> {
    let cpus = cpus.to_vec();
    let log = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    std::thread::spawn(move || {
        crate::runtime::pin_current(&cpus)?;
        cmd.spawn()
    })
    .join()
    .map_err(|_| std::io::Error::other("spawn thread panicked"))?
}

/// Wait until a GET through `addr` (over TLS with `tls`, over HTTP/2
/// with `h2`) gets a 2xx; give up at once if `child`, the process that
/// should answer, exits.
pub fn wait_ready(
    addr: SocketAddr,
    tls: Option<&ClientTls>,
    h2: bool,
    limit: Duration,
    mut child: Option<&mut Child>,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        if let Some(Ok(Some(status))) = child.as_mut().map(|c| c.try_wait()) {
            return Err(format!("exited ({status}) before {addr} answered"));
        }
        let status = match h2 {
            true => probe_h2(addr, tls),
            false => probe(addr, tls),
        };
        match status {
            Ok(status) if (200..300).contains(&status) => return Ok(()),
            Ok(status) => last = format!("status {status}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{addr} not ready after {limit:?}: {last}"))
}

/// One request on a new connection (over TLS with `tls`, handshake
/// included); the status.
pub fn probe(addr: SocketAddr, tls: Option<&ClientTls>) -> std::io::Result<u16> {
    match tls {
        Some(tls) => probe_on(&mut blocking::connect(addr, tls, Duration::from_secs(2))?),
        None => {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            probe_on(&mut s)
        }
    }
}

/// One HTTP/2 request on a new connection (h2c, or h2 by ALPN with
/// `tls`), on a runtime of its own; the status.
pub fn probe_h2(addr: SocketAddr, tls: Option<&ClientTls>) -> std::io::Result<u16> {
    use crate::http2::client;
    use crate::stream::Stream;
    let tls = tls.map(ClientTls::for_h2);
    crate::runtime::block_on(crate::runtime::IoMode::Auto, |_| async move {
        let exchange = async {
            let tcp = monoio::net::TcpStream::connect(addr).await?;
            let stream = match &tls {
                None => Stream::Plain(tcp),
                Some(t) => {
                    let conn = t.connection().map_err(std::io::Error::other)?;
                    let mut s = crate::tls::TlsStream::new(tcp, conn);
                    s.handshake().await?;
                    Stream::Tls(Box::new(s))
                }
            };
            let mut c = client::handshake(stream)
                .await
                .map_err(std::io::Error::other)?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            let mut req = http::Request::new(());
            *req.uri_mut() = format!("{scheme}://bench/")
                .parse()
                .map_err(std::io::Error::other)?;
            let fail = |f| std::io::Error::other(format!("HTTP/2 request failed: {f:?}"));
            client::ready(&mut c.send).await.map_err(fail)?;
            let r = client::exchange(&mut c.send, req, None, false)
                .await
                .map_err(fail)?;
            Ok(r.status)
        };
        match monoio::time::timeout(Duration::from_secs(2), exchange).await {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    })?
}

fn probe_on(s: &mut (impl Read + Write)) -> std::io::Result<u16> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf)?;
    let head = std::str::from_utf8(&buf[..n]).unwrap_or("");
    head.split_ascii_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {head:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(dir: &Path) -> Setup<'_> {
        Setup {
            upstream: "127.0.0.1:9000".parse().unwrap(),
            listen: "127.0.0.1:9001".parse().unwrap(),
            admin: "127.0.0.1:9002".parse().unwrap(),
            cpus: &[1, 3],
            dir,
            max_connections: 10_000,
            fd_limit: 20_000,
            tls: None,
            mode: Mode::Http,
            client: Proto::H1,
            upstream_h2: None,
            mesh: None,
            telemetry: None,
            balanced: None,
        }
    }

    #[test]
    fn names_round_trip() {
        for n in NAMES {
            assert_eq!(n.parse::<TargetKind>().unwrap().to_string(), n);
        }
        assert!("ngnix"
            .parse::<TargetKind>()
            .unwrap_err()
            .contains("did you mean \"nginx\""));
    }

    #[test]
    fn configs_say_the_same_thing() {
        let dir = Path::new("/tmp/x");
        let s = setup(dir);
        let r = ringmesh_config(&s);
        assert!(
            r.contains("workers: 2, cpu_affinity: [1, 3]") && r.contains("'127.0.0.1:9000'"),
            "{r}"
        );
        let n = nginx_config(&s);
        assert!(
            n.contains("worker_processes 2;") && n.contains("worker_cpu_affinity 10 1000;"),
            "{n}"
        );
        assert!(
            n.contains("access_log off")
                && n.contains("keepalive 64;")
                && n.contains("listen 127.0.0.1:9001"),
            "{n}"
        );
        let h = haproxy_config(&s);
        assert!(h.contains("maxconn 11024"), "{h}");
        assert!(
            h.contains("nbthread 2")
                && h.contains("cpu-map auto:1/1-2 1,3")
                && h.contains("server s1 127.0.0.1:9000"),
            "{h}"
        );
        let e = envoy_config(&s);
        assert!(
            e.contains("port_value: 9001") && e.contains("port_value: 9000"),
            "{e}"
        );
        // Valid YAML, nested as Envoy reads it (no envoy binary here to try).
        let v = yaml(&e);
        let listener = &v["static_resources"]["listeners"][0];
        assert_eq!(listener["address"]["socket_address"]["port_value"], 9001);
        assert_eq!(
            listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
                ["virtual_hosts"][0]["routes"][0]["route"]["cluster"],
            "up"
        );
    }

    fn yaml(text: &str) -> serde_json::Value {
        serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn tls_terminates_on_every_listener() {
        let dir = Path::new("/run/x");
        let files = CertFiles::in_dir(Path::new("/run/x/tls"));
        let s = Setup {
            tls: Some(&files),
            ..setup(dir)
        };
        // ringmesh: the listener's `tls` block, in the format the proxy
        // accepts (issue 9).
        let r = ringmesh_config(&s);
        let listener = concat!(
            "  - name: main\n",
            "    address: '127.0.0.1:9001'\n",
            "    idle_timeout: 300s\n",
            "    tls:\n",
            "      certificates:\n",
            "        - cert: '/run/x/tls/leaf-chain.pem'\n",
            "          key: '/run/x/tls/leaf-key.pem'\n",
            "    routes: [ { cluster: up } ]\n",
        );
        assert!(r.contains(listener), "{r}");
        let v = yaml(&r);
        assert_eq!(
            v["listeners"][0]["tls"]["certificates"][0]["cert"],
            "/run/x/tls/leaf-chain.pem"
        );
        assert_eq!(v["listeners"][0]["routes"][0]["cluster"], "up");
        // Plain runs keep the config an older baseline understands.
        assert!(!ringmesh_config(&setup(dir)).contains("tls"));

        let n = nginx_config(&s);
        for want in [
            "listen 127.0.0.1:9001 ssl backlog=4096 reuseport;",
            "ssl_certificate /run/x/tls/leaf-chain.pem;",
            "ssl_certificate_key /run/x/tls/leaf-key.pem;",
            "ssl_protocols TLSv1.2 TLSv1.3;",
            "ssl_session_cache shared:SSL:10m;",
            "ssl_prefer_server_ciphers off;",
        ] {
            assert!(n.contains(want), "{want}: {n}");
        }
        assert!(!nginx_config(&setup(dir)).contains("ssl"));

        let h = haproxy_config(&s);
        assert!(
            h.contains("  bind 127.0.0.1:9001 ssl crt /run/x/tls/leaf-combined.pem alpn http/1.1 ssl-min-ver TLSv1.2\n"),
            "{h}"
        );
        assert!(
            h.contains("ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256"),
            "{h}"
        );
        assert!(!haproxy_config(&setup(dir)).contains("ssl"));

        let e = envoy_config(&s);
        let v = yaml(&e);
        let chain = &v["static_resources"]["listeners"][0]["filter_chains"][0];
        let ctx = &chain["transport_socket"]["typed_config"];
        assert_eq!(
            ctx["@type"],
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
        );
        assert_eq!(
            ctx["common_tls_context"]["tls_certificates"][0]["private_key"]["filename"],
            "/run/x/tls/leaf-key.pem"
        );
        assert_eq!(
            chain["filters"][0]["name"],
            "envoy.filters.network.http_connection_manager"
        );
        // Without TLS the same chain, minus the transport socket.
        let plain = yaml(&envoy_config(&setup(dir)));
        let chain = &plain["static_resources"]["listeners"][0]["filter_chains"][0];
        assert!(chain.get("transport_socket").is_none(), "{plain}");
        assert_eq!(
            chain["filters"][0]["name"],
            "envoy.filters.network.http_connection_manager"
        );
    }

    #[test]
    fn tcp_mode_relays_on_every_listener() {
        let dir = Path::new("/run/x");
        let s = Setup {
            mode: Mode::Tcp,
            ..setup(dir)
        };
        // ringmesh: the `tcp` listener (issue 10), no routes, the upstream
        // connection cap raised like HAProxy's maxconn.
        let r = ringmesh_config(&s);
        let listener = concat!(
            "listeners:\n",
            "  - name: main\n",
            "    address: '127.0.0.1:9001'\n",
            "    tcp: { cluster: up, idle_timeout: 300s }\n",
            "clusters:\n",
            "  - name: up\n",
            "    endpoints: ['127.0.0.1:9000']\n",
            "    pool: { max_connections: 11024 }\n",
        );
        assert!(r.contains(listener), "{r}");
        assert!(!r.contains("routes") && !r.contains("max_idle"), "{r}");
        let v = yaml(&r);
        assert_eq!(v["listeners"][0]["tcp"]["cluster"], "up");
        assert_eq!(v["listeners"][0]["tcp"]["idle_timeout"], "300s");
        assert_eq!(v["runtime"]["workers"], 2);
        assert_eq!(v["clusters"][0]["endpoints"][0], "127.0.0.1:9000");
        assert_eq!(v["clusters"][0]["pool"]["max_connections"], 11024);
        // HTTP scenarios keep routes and never say `tcp`.
        let plain = ringmesh_config(&setup(dir));
        assert!(plain.contains("routes: [ { cluster: up } ]") && !plain.contains("tcp"));

        // nginx: the stream module, a stream block, no http block.
        let n = nginx_config(&s);
        assert!(
            n.starts_with("# generated by ringmesh-bench compare\nload_module /"),
            "{n}"
        );
        assert!(n.contains("/ngx_stream_module.so;\n"), "{n}");
        for want in [
            "worker_processes 2;",
            "worker_cpu_affinity 10 1000;",
            "events { worker_connections 21024; }",
            "stream {\n  upstream up { server 127.0.0.1:9000; }\n",
            "    listen 127.0.0.1:9001 reuseport backlog=4096;\n    proxy_pass up;\n",
            "proxy_timeout 300s;",
        ] {
            assert!(n.contains(want), "{want}: {n}");
        }
        assert!(!n.contains("http {") && !n.contains("keepalive"), "{n}");
        let plain = nginx_config(&setup(dir));
        assert!(!plain.contains("stream {") && !plain.contains("load_module"));

        // HAProxy: mode tcp, generous timeouts, none of the HTTP options.
        let h = haproxy_config(&s);
        for want in [
            "nbthread 2",
            "cpu-map auto:1/1-2 1,3",
            "maxconn 11024",
            "defaults\n  mode tcp\n",
            "timeout client 300s",
            "timeout server 300s",
            "  bind 127.0.0.1:9001\n",
            "server s1 127.0.0.1:9000\n",
        ] {
            assert!(h.contains(want), "{want}: {h}");
        }
        for not in ["mode http", "forwardfor", "http-reuse", "http-keep-alive"] {
            assert!(!h.contains(not), "{not}: {h}");
        }

        // Envoy: tcp_proxy in place of the HTTP connection manager.
        let v = yaml(&envoy_config(&s));
        let filter = &v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0];
        assert_eq!(filter["name"], "envoy.filters.network.tcp_proxy");
        assert_eq!(
            filter["typed_config"]["@type"],
            "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
        );
        assert_eq!(filter["typed_config"]["cluster"], "up");
        assert_eq!(
            v["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
                [0]["endpoint"]["address"]["socket_address"]["port_value"],
            9000
        );
    }

    const THREE: [&str; 3] = ["127.0.0.1:9010", "127.0.0.1:9011", "127.0.0.1:9012"];

    fn three() -> Vec<SocketAddr> {
        THREE.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn several_endpoints_get_each_proxys_load_aware_balancer() {
        let dir = Path::new("/run/x");
        let endpoints = three();
        let s = Setup {
            balanced: Some(Balanced {
                endpoints: &endpoints,
                retry: false,
            }),
            ..setup(dir)
        };
        // ringmesh: all three, Peak-EWMA; no retries, no ejection.
        let r = ringmesh_config(&s);
        assert!(
            r.contains("    endpoints: ['127.0.0.1:9010', '127.0.0.1:9011', '127.0.0.1:9012']\n    lb: peak_ewma\n    pool: {"),
            "{r}"
        );
        assert!(r.contains("    routes: [ { cluster: up } ]\n"), "{r}");
        assert!(
            !r.contains("retries") && !r.contains("outlier_detection"),
            "{r}"
        );
        let v = yaml(&r);
        assert_eq!(v["clusters"][0]["endpoints"][2], "127.0.0.1:9012");
        assert_eq!(v["clusters"][0]["lb"], "peak_ewma");
        // ringmesh-rr: the same with round robin, and nothing else differs.
        let rr = ringmesh_config_lb(&s, "round_robin");
        assert_eq!(rr.replace("lb: round_robin", "lb: peak_ewma"), r);
        // One endpoint: no `lb` line, the config an older baseline reads.
        assert_eq!(
            ringmesh_config_lb(&setup(dir), "round_robin"),
            ringmesh_config(&setup(dir))
        );
        assert!(!ringmesh_config(&setup(dir)).contains("lb:"));

        // nginx: least_conn over the three, its defaults on failures.
        let n = nginx_config(&s);
        assert!(
            n.contains("upstream up { least_conn; server 127.0.0.1:9010; server 127.0.0.1:9011; server 127.0.0.1:9012; keepalive 64;"),
            "{n}"
        );
        assert!(
            !n.contains("proxy_next_upstream") && !n.contains("max_fails"),
            "{n}"
        );
        assert!(nginx_config(&setup(dir))
            .contains("upstream up { server 127.0.0.1:9000; keepalive 64;"));

        // HAProxy: leastconn, its defaults (no retries line, no checks).
        let h = haproxy_config(&s);
        assert!(
            h.contains("backend b\n  balance leastconn\n  server s1 127.0.0.1:9010 pool-max-conn 128\n  server s2 127.0.0.1:9011 pool-max-conn 128\n  server s3 127.0.0.1:9012 pool-max-conn 128\n"),
            "{h}"
        );
        for not in ["retries", "redispatch", "check", "observe"] {
            assert!(!h.contains(not), "{not}: {h}");
        }
        assert!(haproxy_config(&setup(dir))
            .contains("backend b\n  server s1 127.0.0.1:9000 pool-max-conn 128\n"));

        // Envoy and ringmesh-telemetry sit out, saying why.
        assert!(supports_endpoints(TargetKind::Envoy, 3).is_err());
        assert!(supports_endpoints(TargetKind::RingmeshTelemetry, 3).is_err());
        assert_eq!(supports_endpoints(TargetKind::Envoy, 1), Ok(()));
        for k in [
            TargetKind::Ringmesh,
            TargetKind::RingmeshRoundRobin,
            TargetKind::Nginx,
            TargetKind::Haproxy,
        ] {
            assert_eq!(supports_endpoints(k, 3), Ok(()));
        }
    }

    #[test]
    fn retry_tells_every_proxy_the_same_thing() {
        let dir = Path::new("/run/x");
        let endpoints = three();
        let s = Setup {
            balanced: Some(Balanced {
                endpoints: &endpoints,
                retry: true,
            }),
            ..setup(dir)
        };
        // ringmesh: one retry at once (the default `on` list: connect
        // failure, reset, timeout, 502, 503, 504), ejected after one failure.
        let r = ringmesh_config(&s);
        let v = yaml(&r);
        let route = &v["listeners"][0]["routes"][0];
        assert_eq!(route["cluster"], "up");
        assert_eq!(route["retries"]["attempts"], 1);
        assert_eq!(route["retries"]["backoff"]["base"], "0ms");
        assert!(
            route["retries"].get("on").is_none(),
            "the default list: {r}"
        );
        let c = &v["clusters"][0];
        assert_eq!(c["lb"], "peak_ewma");
        assert_eq!(c["outlier_detection"]["consecutive_gateway_errors"], 1);
        assert_eq!(c["outlier_detection"]["base_ejection_time"], "10s");
        assert_eq!(
            yaml(&ringmesh_config_lb(&s, "round_robin"))["clusters"][0]["outlier_detection"],
            c["outlier_detection"]
        );

        // nginx: 502/503/504 retried on the next server, two tries at most.
        let n = nginx_config(&s);
        for want in [
            "least_conn; server 127.0.0.1:9010 max_fails=1 fail_timeout=10s; server 127.0.0.1:9011 max_fails=1 fail_timeout=10s; server 127.0.0.1:9012 max_fails=1 fail_timeout=10s; keepalive 64;",
            "      proxy_next_upstream error timeout http_502 http_503 http_504;\n      proxy_next_upstream_tries 2;\n    }",
        ] {
            assert!(n.contains(want), "{want}: {n}");
        }

        // HAProxy: one redispatched retry on the same failures, and a
        // server marked down on its first error (passive, with `check`).
        let h = haproxy_config(&s);
        for want in [
            "backend b\n  balance leastconn\n  retries 1\n  option redispatch 1\n",
            "  retry-on conn-failure empty-response response-timeout 502 503 504\n",
            "  default-server check inter 10s rise 1 observe layer7 error-limit 1 on-error mark-down\n",
            "  server s3 127.0.0.1:9012 pool-max-conn 128\n",
        ] {
            assert!(h.contains(want), "{want}: {h}");
        }
    }

    /// A ringmesh variant target: it parses from and prints as `name`,
    /// runs ringmesh's build, and is found where ringmesh is. Returns the
    /// directory, the (empty) binary and the bins naming it.
    fn ringmesh_variant(
        name: &str,
        kind: TargetKind,
    ) -> (tempfile::TempDir, PathBuf, RingmeshBins) {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("ringmesh-proxy");
        std::fs::write(&bin, "").unwrap();
        let bins = RingmeshBins {
            current: bin.clone(),
            baseline: None,
        };
        assert_eq!(name.parse::<TargetKind>(), Ok(kind));
        assert_eq!(kind.to_string(), name);
        assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(name));
        assert!(kind.is_proxy() && kind.is_ringmesh());
        assert_eq!(kind.locate(&bins, Mode::Http), Ok(Some(bin.clone())));
        (dir, bin, bins)
    }

    #[test]
    fn ringmesh_rr_runs_ringmeshs_build_with_round_robin() {
        let (dir, bin, _) = ringmesh_variant("ringmesh-rr", TargetKind::RingmeshRoundRobin);
        let kind = TargetKind::RingmeshRoundRobin;
        let endpoints = three();
        let s = Setup {
            balanced: Some(Balanced {
                endpoints: &endpoints,
                retry: false,
            }),
            ..setup(dir.path())
        };
        let cmd = command(kind, &bin, &s).unwrap();
        assert_eq!(cmd.get_program(), bin.as_os_str());
        let written = std::fs::read_to_string(dir.path().join("ringmesh.yaml")).unwrap();
        assert_eq!(written, ringmesh_config_lb(&s, "round_robin"));
        assert!(written.contains("lb: round_robin"), "{written}");
    }

    #[test]
    fn nginx_without_its_stream_module_is_skipped_in_tcp_mode_only() {
        let dir = tempfile::tempdir().unwrap();
        let bins = RingmeshBins {
            current: dir.path().join("ringmesh-proxy"),
            baseline: None,
        };
        let Some(nginx) = which("nginx") else {
            // Not installed: skipped in both modes, with the install command.
            assert!(TargetKind::Nginx.locate(&bins, Mode::Tcp).is_err());
            return;
        };
        assert_eq!(
            TargetKind::Nginx.locate(&bins, Mode::Http),
            Ok(Some(nginx.clone()))
        );
        let tcp = TargetKind::Nginx.locate(&bins, Mode::Tcp);
        match nginx_stream_module() {
            Some(_) => assert_eq!(tcp, Ok(Some(nginx))),
            None => assert_eq!(tcp, Err(NGINX_NO_STREAM.to_string())),
        }
        assert!(NGINX_NO_STREAM.starts_with("install libnginx-mod-stream (perf/install-peers.sh)"));
    }

    #[test]
    fn the_baseline_gets_ringmeshs_config() {
        let (new, old) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let ring = command(
            TargetKind::Ringmesh,
            Path::new("/new/ringmesh-proxy"),
            &setup(new.path()),
        )
        .unwrap();
        let base = command(
            TargetKind::Baseline,
            Path::new("/old/ringmesh-proxy"),
            &setup(old.path()),
        )
        .unwrap();
        assert_eq!(base.get_program(), "/old/ringmesh-proxy");
        let args = |c: &Command| c.get_args().map(PathBuf::from).collect::<Vec<_>>();
        let config = old.path().join("ringmesh.yaml");
        assert_eq!(args(&base), [PathBuf::from("--config"), config.clone()]);
        assert_eq!(
            args(&ring),
            [PathBuf::from("--config"), new.path().join("ringmesh.yaml")]
        );
        let text = std::fs::read_to_string(&config).unwrap();
        assert_eq!(text, ringmesh_config(&setup(old.path())));
        assert_eq!(
            text,
            std::fs::read_to_string(new.path().join("ringmesh.yaml")).unwrap()
        );
        assert!(TargetKind::Baseline.is_proxy());
    }

    fn telemetry(collector: Option<&str>) -> Telemetry {
        Telemetry {
            access_log: PathBuf::from("/run/x/ringmesh-telemetry/access.log"),
            collector: collector.map(|c| c.parse().unwrap()),
        }
    }

    #[test]
    fn telemetry_adds_an_access_log_and_tracing_to_ringmeshs_config() {
        let dir = Path::new("/run/x");
        let t = telemetry(Some("127.0.0.1:4317"));
        let s = setup(dir);
        let on = ringmesh_telemetry_config(&s, &t);
        let log =
            "    access_log: { path: '/run/x/ringmesh-telemetry/access.log', format: json }\n";
        let tracing =
            "tracing: { collector: '127.0.0.1:4317', sampling_percent: 100, service_name: bench }\n";
        assert!(
            on.contains(&format!("    address: '127.0.0.1:9001'\n{log}")),
            "{on}"
        );
        assert!(on.ends_with(tracing), "{on}");
        // Only those two lines added: the rest is ringmesh's, byte for byte.
        assert_eq!(
            on.replacen(log, "", 1).replacen(tracing, "", 1),
            ringmesh_config(&s)
        );
        let v = yaml(&on);
        let listener = &v["listeners"][0];
        assert_eq!(
            listener["access_log"]["path"],
            "/run/x/ringmesh-telemetry/access.log"
        );
        assert_eq!(listener["access_log"]["format"], "json");
        assert_eq!(listener["routes"][0]["cluster"], "up");
        assert_eq!(v["tracing"]["collector"], "127.0.0.1:4317");
        assert_eq!(v["tracing"]["sampling_percent"], 100);
        assert_eq!(v["tracing"]["service_name"], "bench");
        assert_eq!(v["admin"]["address"], "127.0.0.1:9002");
        // ringmesh's own config never logs or traces, whatever Setup says.
        let told = Setup {
            telemetry: Some(t.clone()),
            ..setup(dir)
        };
        let plain = ringmesh_config(&told);
        assert_eq!(plain, ringmesh_config(&s));
        assert!(!plain.contains("access_log") && !plain.contains("tracing"));

        // TLS, HTTP/2 upstream: the log goes on the same listener.
        let files = CertFiles::in_dir(Path::new("/run/x/tls"));
        let s = Setup {
            tls: Some(&files),
            upstream_h2: Some("127.0.0.1:9003".parse().unwrap()),
            ..setup(dir)
        };
        let v = yaml(&ringmesh_telemetry_config(&s, &t));
        let listener = &v["listeners"][0];
        assert_eq!(listener["access_log"]["format"], "json");
        assert_eq!(
            listener["tls"]["certificates"][0]["key"],
            "/run/x/tls/leaf-key.pem"
        );
        assert_eq!(listener["routes"][2]["cluster"], "up");
        assert_eq!(v["tracing"]["sampling_percent"], 100);
    }

    #[test]
    fn telemetry_over_tcp_is_the_access_log_alone() {
        let dir = Path::new("/run/x");
        let s = Setup {
            mode: Mode::Tcp,
            ..setup(dir)
        };
        // compare gives no collector in TCP scenarios: no spans there.
        let on = ringmesh_telemetry_config(&s, &telemetry(None));
        assert!(!on.contains("tracing"), "{on}");
        let v = yaml(&on);
        assert_eq!(v["listeners"][0]["tcp"]["cluster"], "up");
        assert_eq!(v["listeners"][0]["access_log"]["format"], "json");
        assert_eq!(
            on.replacen(
                "    access_log: { path: '/run/x/ringmesh-telemetry/access.log', format: json }\n",
                "",
                1
            ),
            ringmesh_config(&s)
        );
    }

    #[test]
    fn telemetry_runs_ringmeshs_build_with_its_own_config() {
        let (dir, bin, bins) =
            ringmesh_variant("ringmesh-telemetry", TargetKind::RingmeshTelemetry);
        let kind = TargetKind::RingmeshTelemetry;
        assert_eq!(
            kind.locate(&bins, Mode::Tcp),
            TargetKind::Ringmesh.locate(&bins, Mode::Tcp)
        );

        let t = telemetry(Some("127.0.0.1:4317"));
        let s = Setup {
            telemetry: Some(t.clone()),
            ..setup(dir.path())
        };
        let cmd = command(kind, &bin, &s).unwrap();
        assert_eq!(cmd.get_program(), bin.as_os_str());
        let written = std::fs::read_to_string(dir.path().join("ringmesh.yaml")).unwrap();
        assert_eq!(written, ringmesh_telemetry_config(&s, &t));
        // ringmesh and the baseline, given the same Setup, run without it.
        command(TargetKind::Ringmesh, &bin, &s).unwrap();
        let written = std::fs::read_to_string(dir.path().join("ringmesh.yaml")).unwrap();
        assert_eq!(written, ringmesh_config(&setup(dir.path())));
        // Without a telemetry setup it is refused, not run without it.
        assert!(command(kind, &bin, &setup(dir.path())).is_err());
    }

    #[test]
    fn the_baseline_binary_is_the_one_given() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old-ringmesh-proxy");
        std::fs::write(&old, "").unwrap();
        let bins = |baseline: Option<PathBuf>| RingmeshBins {
            current: dir.path().join("ringmesh-proxy"),
            baseline,
        };
        assert_eq!(
            TargetKind::Baseline.locate(&bins(Some(old.clone())), Mode::Http),
            Ok(Some(old))
        );
        let gone = TargetKind::Baseline
            .locate(&bins(Some(dir.path().join("gone"))), Mode::Tcp)
            .unwrap_err();
        assert!(
            gone.contains("--baseline-bin") && gone.contains("gone"),
            "{gone}"
        );
        assert!(TargetKind::Baseline
            .locate(&bins(None), Mode::Http)
            .is_err());
    }

    #[test]
    fn h2_listeners_and_upstreams() {
        let dir = Path::new("/run/x");
        let s = Setup {
            client: Proto::H2,
            upstream_h2: Some("127.0.0.1:9003".parse().unwrap()),
            ..setup(dir)
        };
        // ringmesh: an http2 cluster for /h2/ and gRPC, the rest to `up`;
        // the listener serves h2c by default.
        let r = ringmesh_config(&s);
        let v = yaml(&r);
        let routes = &v["listeners"][0]["routes"];
        assert_eq!(routes[0]["match"]["path"]["prefix"], "/h2/");
        assert_eq!(routes[0]["cluster"], "up2");
        assert_eq!(
            routes[1]["match"]["path"]["prefix"],
            "/ringmesh.testing.v1.Echo/"
        );
        assert_eq!(routes[1]["cluster"], "up2");
        assert_eq!(routes[2]["cluster"], "up");
        assert_eq!(v["clusters"][1]["name"], "up2");
        assert_eq!(v["clusters"][1]["protocol"], "http2");
        assert_eq!(v["clusters"][1]["endpoints"][0], "127.0.0.1:9003");
        assert!(!ringmesh_config(&setup(dir)).contains("http2"));

        // nginx 1.22: `listen ... http2`, gRPC by grpc_pass to a pool.
        let n = nginx_config(&s);
        for want in [
            "listen 127.0.0.1:9001 http2 backlog=4096 reuseport;",
            "upstream up2 { server 127.0.0.1:9003; keepalive 64;",
            "location /ringmesh.testing.v1.Echo/ {\n      grpc_pass grpc://up2;",
        ] {
            assert!(n.contains(want), "{want}: {n}");
        }
        assert!(!nginx_config(&setup(dir)).contains("http2"));
        let files = CertFiles::in_dir(Path::new("/run/x/tls"));
        let tls = Setup {
            tls: Some(&files),
            ..s
        };
        assert!(nginx_config(&tls).contains("listen 127.0.0.1:9001 ssl http2 backlog"));
        // Plain h2 out is not nginx's: those steps are left out.
        let mut step = Step::closed("h2", 1);
        assert_eq!(supports(TargetKind::Nginx, &step), Ok(()));
        step.upstream = Proto::H2;
        assert_eq!(
            supports(TargetKind::Nginx, &step),
            Err(NGINX_NO_H2_UPSTREAM)
        );
        assert_eq!(supports(TargetKind::Haproxy, &step), Ok(()));
        step.grpc = Some(64);
        assert_eq!(supports(TargetKind::Nginx, &step), Ok(()));

        // HAProxy: proto h2 on the plain bind, alpn h2 over TLS, an h2
        // backend for /h2/ and gRPC.
        let s = Setup {
            client: Proto::H2,
            upstream_h2: Some("127.0.0.1:9003".parse().unwrap()),
            ..setup(dir)
        };
        let h = haproxy_config(&s);
        for want in [
            "  bind 127.0.0.1:9001 proto h2\n",
            "  use_backend b2 if { path_beg /h2/ /ringmesh.testing.v1.Echo/ }\n",
            "backend b2\n  server s2 127.0.0.1:9003 proto h2 pool-max-conn 128\n",
        ] {
            assert!(h.contains(want), "{want}: {h}");
        }
        let h = haproxy_config(&Setup {
            tls: Some(&files),
            ..s
        });
        assert!(h.contains(" alpn h2,http/1.1 ssl-min-ver TLSv1.2\n"), "{h}");
        assert!(!haproxy_config(&setup(dir)).contains("h2"));

        // Envoy sits out HTTP/2 scenarios, saying why.
        let bins = RingmeshBins {
            current: dir.join("ringmesh-proxy"),
            baseline: None,
        };
        let why = TargetKind::Envoy
            .locate_for(&bins, Mode::Http, true)
            .unwrap_err();
        assert!(
            why.contains("HTTP/2 configs for Envoy are not generated"),
            "{why}"
        );
    }
}
