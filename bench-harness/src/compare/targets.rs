//! The things compared: no proxy, ringmesh, and the peers a user would
//! run instead. Each proxy gets a generated config made alike: one
//! listener, one upstream with keep-alive, no access log, X-Forwarded-For
//! added, the same worker count, pinned to the same CPUs.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

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
}

const NAMES: [&str; 6] = [
    "direct", "ringmesh", "baseline", "nginx", "haproxy", "envoy",
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

    /// The binary to run, or why it cannot be.
    pub fn locate(self, bins: &RingmeshBins) -> Result<Option<PathBuf>, String> {
        match self {
            TargetKind::Direct => Ok(None),
            TargetKind::Ringmesh => {
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
            TargetKind::Ringmesh | TargetKind::Baseline | TargetKind::Envoy => "--version",
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
}

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
        // The baseline gets the very same config: the builds differ, nothing
        // else. It may be older than this harness, so `ringmesh_config`
        // sticks to fields every ringmesh release has understood.
        TargetKind::Ringmesh | TargetKind::Baseline => {
            cmd.arg("--config")
                .arg(write("ringmesh.yaml", ringmesh_config(s))?);
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

/// ringmesh's config, for the current build and the baseline alike. Only
/// long-standing fields (runtime, admin, listeners, clusters, pool): an
/// older baseline rejects fields it does not know.
pub fn ringmesh_config(s: &Setup) -> String {
    format!(
        "# generated by ringmesh-bench compare\n\
runtime: {{ workers: {w}, cpu_affinity: [{cpus}] }}\n\
admin: {{ address: '{admin}' }}\n\
listeners:\n  - name: main\n    address: '{listen}'\n    idle_timeout: {KEEPALIVE_S}s\n    routes: [ {{ cluster: up }} ]\n\
clusters:\n  - name: up\n    endpoints: ['{up}']\n    pool: {{ max_idle_per_endpoint: {UPSTREAM_IDLE}, idle_timeout: {KEEPALIVE_S}s }}\n",
        w = s.cpus.len(),
        cpus = cpu_list(s.cpus),
        admin = s.admin,
        listen = s.listen,
        up = s.upstream,
    )
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
    format!(
        "# generated by ringmesh-bench compare\n\
daemon off;\nmaster_process on;\nworker_processes {w};\nworker_cpu_affinity {masks};\n\
error_log stderr error;\npid {dir}/nginx.pid;\nworker_rlimit_nofile {nofile};\n\
events {{ worker_connections {conns}; }}\n\
http {{\n  access_log off;\n  keepalive_requests 100000000;\n  keepalive_timeout {KEEPALIVE_S}s;\n\
  client_max_body_size 0;\n  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;\n\
  fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;\n\
  upstream up {{ server {up}; keepalive {UPSTREAM_IDLE}; keepalive_requests 100000000; keepalive_timeout {KEEPALIVE_S}s; }}\n\
  server {{\n    listen {listen} backlog=4096 reuseport;\n    location / {{\n\
      proxy_pass http://up;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
      proxy_buffering off;\n      proxy_request_buffering off;\n    }}\n  }}\n}}\n",
        w = s.cpus.len(),
        masks = masks.join(" "),
        nofile = (conns as u64 * 2).min(s.fd_limit),
        up = s.upstream,
        listen = s.listen,
    )
}

pub fn haproxy_config(s: &Setup) -> String {
    let cpus = cpu_list(s.cpus).replace(' ', "");
    let maxconn = s.max_connections + 1024;
    // HAProxy wants two descriptors per connection and refuses to start
    // when the hard RLIMIT_NOFILE is below that: the run then reports it
    // as failed, with HAProxy's own message, rather than measuring a
    // cut-down configuration.
    format!(
        "# generated by ringmesh-bench compare\n\
global\n  nbthread {w}\n  cpu-map auto:1/1-{w} {cpus}\n  maxconn {maxconn}\n\
defaults\n  mode http\n  timeout connect 2s\n  timeout client {KEEPALIVE_S}s\n  timeout server {KEEPALIVE_S}s\n\
  timeout http-keep-alive {KEEPALIVE_S}s\n  option http-keep-alive\n  option forwardfor\n  http-reuse always\n\
frontend f\n  bind {listen}\n  default_backend b\n\
backend b\n  server s1 {up} pool-max-conn {idle}\n",
        w = s.cpus.len(),
        listen = s.listen,
        up = s.upstream,
        idle = UPSTREAM_IDLE * s.cpus.len(),
    )
}

/// Envoy's config. Raw strings, because YAML's indentation is its
/// structure.
pub fn envoy_config(s: &Setup) -> String {
    format!(
        r#"# generated by ringmesh-bench compare
admin:
  address: {{ socket_address: {{ address: {aip}, port_value: {aport} }} }}
static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: {lip}, port_value: {lport} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: main
          use_remote_address: true
          generate_request_id: false
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [ {{ match: {{ prefix: "/" }}, route: {{ cluster: up, timeout: 0s }} }} ]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router, dynamic_stats: false }}
  clusters:
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

/// Wait until a GET through `addr` gets a 2xx.
pub fn wait_ready(addr: SocketAddr, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match probe(addr) {
            Ok(status) if (200..300).contains(&status) => return Ok(()),
            Ok(status) => last = format!("status {status}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{addr} not ready after {limit:?}: {last}"))
}

/// One request on a new connection; the status.
pub fn probe(addr: SocketAddr) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
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
        let v: serde_json::Value =
            serde_saphyr::from_str(&e).unwrap_or_else(|err| panic!("{err}\n{e}"));
        let listener = &v["static_resources"]["listeners"][0];
        assert_eq!(listener["address"]["socket_address"]["port_value"], 9001);
        assert_eq!(
            listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
                ["virtual_hosts"][0]["routes"][0]["route"]["cluster"],
            "up"
        );
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
            TargetKind::Baseline.locate(&bins(Some(old.clone()))),
            Ok(Some(old))
        );
        let gone = TargetKind::Baseline
            .locate(&bins(Some(dir.path().join("gone"))))
            .unwrap_err();
        assert!(
            gone.contains("--baseline-bin") && gone.contains("gone"),
            "{gone}"
        );
        assert!(TargetKind::Baseline.locate(&bins(None)).is_err());
    }
}
