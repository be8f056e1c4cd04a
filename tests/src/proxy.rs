//! Start the real `ringmesh-proxy` binary and learn its bound addresses.
//!
//! Configs use port 0 everywhere; the proxy logs the address each listener
//! got, and `Proxy::start` reads those lines from its stderr. No fixed
//! ports, so tests run in parallel.
//!
//! `RINGMESH_PROXY_BIN=/path/to/ringmesh-proxy` runs the tests against that
//! binary instead of building this workspace's: to show a test fails on an
//! older build before the fix it covers, e.g.
//! `RINGMESH_PROXY_BIN=/work/baseline/target/release/ringmesh-proxy cargo test
//! -p ringmesh-tests --test hostile`. Only `ringmesh-proxy` is overridden.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The variable that names a prebuilt proxy binary to test instead.
pub const PROXY_BIN_VAR: &str = "RINGMESH_PROXY_BIN";

/// Path to the `ringmesh-proxy` binary: `$RINGMESH_PROXY_BIN` when set,
/// else the one of the same profile as this test, built once per test
/// process so it is never stale.
pub fn proxy_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os(PROXY_BIN_VAR) {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "{PROXY_BIN_VAR}={} is not a file",
                path.display()
            );
            path
        }
        None => workspace_bin("ringmesh-proxy", "ringmesh-proxy"),
    })
    .clone()
}

/// Path to the `ringmesh-bench` binary, built the same way.
pub fn bench_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("ringmesh-bench", "ringmesh-bench"))
        .clone()
}

/// Path to the `ringmeshctl` binary.
pub fn ctl_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("ringmesh-control", "ringmeshctl"))
        .clone()
}

/// Path to the `ringmesh-control` binary.
pub fn control_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("ringmesh-control", "ringmesh-control"))
        .clone()
}

/// Build `bin` of `package` in this test's profile; its path.
fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // <target>/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile dir")
        .to_path_buf();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "-p", package, "--bin", bin]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building {bin} failed");
    profile_dir.join(bin)
}

/// Every line of a child's stderr: kept (for assertions) and sent on as
/// it arrives (for waiting on a line).
pub fn read_log(
    stderr: std::process::ChildStderr,
) -> (Arc<Mutex<Vec<String>>>, mpsc::Receiver<String>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            sink.lock().expect("log lock").push(line);
        }
    });
    (log, rx)
}

/// A running proxy process; killed when dropped.
pub struct Proxy {
    child: Option<Child>,
    pub listeners: HashMap<String, SocketAddr>,
    pub admin: Option<SocketAddr>,
    /// Every stderr line so far.
    pub log: Arc<Mutex<Vec<String>>>,
    _config: tempfile::NamedTempFile,
}

impl Proxy {
    /// Write `yaml` to a file and start the proxy on it; waits until ready.
    pub fn start(yaml: &str) -> Proxy {
        Self::try_start(yaml).unwrap_or_else(|e| panic!("proxy did not start: {e}"))
    }

    /// Start, returning the log on failure instead of panicking.
    pub fn try_start(yaml: &str) -> Result<Proxy, String> {
        Self::try_start_with(yaml, &[])
    }

    /// Start with extra arguments (e.g. `--control-plane ...`); `yaml` is
    /// the `--config` file (only `runtime` and `admin` count then).
    pub fn try_start_with(yaml: &str, args: &[String]) -> Result<Proxy, String> {
        let mut file = tempfile::Builder::new()
            .suffix(".yaml")
            .tempfile()
            .map_err(|e| e.to_string())?;
        std::io::Write::write_all(&mut file, yaml.as_bytes()).map_err(|e| e.to_string())?;
        let mut child = Command::new(proxy_bin())
            .arg("--config")
            .arg(file.path())
            .arg("--log")
            .arg("info")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (log, rx) = read_log(stderr);
        let mut proxy = Proxy {
            child: Some(child),
            listeners: HashMap::new(),
            admin: None,
            log,
            _config: file,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("listener bound") => {
                    let name = field(&line, "listener").ok_or_else(|| line.clone())?;
                    let addr = field(&line, "address")
                        .and_then(|a| a.parse().ok())
                        .ok_or_else(|| line.clone())?;
                    proxy.listeners.insert(name, addr);
                }
                Ok(line) if line.contains("admin bound") => {
                    proxy.admin = field(&line, "address").and_then(|a| a.parse().ok());
                }
                Ok(line) if line.contains("ringmesh-proxy ready") => return Ok(proxy),
                Ok(_) => {}
                Err(_) => return Err(format!("no ready line; log:\n{}", proxy.log_text())),
            }
        }
    }

    pub fn addr(&self, listener: &str) -> SocketAddr {
        self.listeners[listener]
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Replace the config file with `yaml` and send SIGHUP; returns at
    /// once (watch the log for "config reloaded").
    pub fn reload(&self, yaml: &str) {
        std::fs::write(self._config.path(), yaml).expect("rewrite config");
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("proxy pid");
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("SIGHUP");
    }

    /// How many log lines so far contain `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    /// Send SIGTERM without waiting.
    pub fn signal_term(&self) {
        // SAFETY-free: libc::kill is a plain syscall wrapper on a pid we own.
        let pid = self.pid() as libc::pid_t;
        #[allow(unsafe_code)]
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }

    /// Send SIGUSR1 (reopen access log files).
    pub fn signal_usr1(&self) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("proxy pid");
        rustix::process::kill_process(pid, rustix::process::Signal::USR1).expect("SIGUSR1");
    }

    /// Send SIGINT without waiting.
    pub fn signal_int(&self) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("proxy pid");
        rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    }

    /// Wait for the process to exit, up to `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Config updates applied on every core so far (a control plane's
    /// pushes, reloads).
    pub fn applied(&self) -> u64 {
        self.metric(r#"ringmesh_config_updates_total{result="applied"}"#)
            .unwrap_or(0)
    }

    /// A metric's value from `/metrics`, by its full series name
    /// (`name{labels}` as rendered).
    pub fn metric(&self, series: &str) -> Option<u64> {
        let (_, text) = self.admin_get("/metrics");
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
    }

    /// GET an admin path; returns (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let addr = self.admin.expect("admin configured");
        let resp = crate::client::Client::connect(addr).get(path, "admin");
        (resp.status, resp.text())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `key=value` from a log line (plain tracing fmt output).
fn field(line: &str, key: &str) -> Option<String> {
    let pat = format!("{key}=");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_string())
}

/// Run `ringmesh-proxy` with arguments and return (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(proxy_bin())
        .args(args)
        .output()
        .expect("run ringmesh-proxy");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_read_from_log_lines() {
        let line = "2026-01-01T00:00:00Z  INFO listener bound listener=main address=127.0.0.1:4000 sockets=2";
        assert_eq!(field(line, "listener").as_deref(), Some("main"));
        assert_eq!(field(line, "address").as_deref(), Some("127.0.0.1:4000"));
        assert_eq!(field(line, "missing"), None);
    }
}
