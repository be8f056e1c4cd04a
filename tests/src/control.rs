//! Start the real `ringmesh-control` and proxies that take their config
//! from it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::proxy::{control_bin, Proxy};

pub const TOKEN: &str = "e2e-bootstrap-token-0123456789";

/// A running control plane; killed when dropped.
pub struct ControlPlane {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

/// `serve` and the extra flags, in the order clap wants them.
fn extra_then_serve<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["serve"];
    args.extend_from_slice(extra);
    args
}

impl ControlPlane {
    /// Serve `dir` on `addr` (port 0: any), checking it every 50 ms.
    pub fn start(dir: &Path, addr: SocketAddr) -> ControlPlane {
        Self::start_with(dir, addr, &[])
    }

    /// The same, with more `serve` flags (`--svid-lifetime 4s`).
    pub fn start_with(dir: &Path, addr: SocketAddr, extra: &[&str]) -> ControlPlane {
        let mut child = Command::new(control_bin())
            .args(extra_then_serve(extra))
            // Test sidecars reconnect within a second of a restart.
            .args([
                "--resync-grace",
                "2s",
                "--poll",
                "50ms",
                "--token",
                TOKEN,
                "--listen",
                &addr.to_string(),
                "--resources",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringmesh-control");
        let stderr = child.stderr.take().expect("stderr");
        let (log, rx) = crate::proxy::read_log(stderr);
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains("discovery listening") => {
                    break line
                        .rsplit("address=")
                        .next()
                        .and_then(|a| a.trim().parse().ok());
                }
                Ok(_) => {}
                Err(_) => break None,
            }
        };
        match addr {
            Some(addr) => ControlPlane { child, addr, log },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ringmesh-control did not say where it listens: {:?}",
                    log.lock().expect("log")
                );
            }
        }
    }

    pub fn log_count(&self, text: &str) -> usize {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Write `text` to `dir/name` and `ringmeshctl apply -f` it; it must
    /// be accepted.
    pub fn apply(&self, dir: &Path, name: &str, text: &str) {
        let file = dir.join(name);
        std::fs::write(&file, text).expect("write");
        let (code, out, err) = ctl(self.addr, &["apply", "-f", &file.display().to_string()]);
        assert_eq!(code, 0, "{out}{err}");
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound and released: fine for tests).
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A sidecar for `service`, fronting `workload`, with fresh inbound and
/// outbound addresses. One worker, no admin.
pub fn sidecar(
    cp: SocketAddr,
    id: &str,
    service: &str,
    workload: SocketAddr,
) -> (Proxy, SocketAddr, SocketAddr) {
    sidecar_at(&cp.to_string(), &[], id, service, workload)
}

/// The same, with more proxy flags (`--stats-interval 250ms`).
pub fn sidecar_with(
    cp: SocketAddr,
    extra: &[&str],
    id: &str,
    service: &str,
    workload: SocketAddr,
) -> (Proxy, SocketAddr, SocketAddr) {
    sidecar_at(&cp.to_string(), extra, id, service, workload)
}

/// The same, for a control plane serving TLS (`--tls-cert`), trusted by
/// the CA in `ca`.
pub fn sidecar_tls(
    cp: SocketAddr,
    ca: &Path,
    id: &str,
    service: &str,
    workload: SocketAddr,
) -> (Proxy, SocketAddr, SocketAddr) {
    let ca = ca.display().to_string();
    sidecar_at(
        &format!("https://{cp}"),
        &["--control-plane-ca", &ca],
        id,
        service,
        workload,
    )
}

fn sidecar_at(
    cp: &str,
    extra: &[&str],
    id: &str,
    service: &str,
    workload: SocketAddr,
) -> (Proxy, SocketAddr, SocketAddr) {
    let (inbound, outbound) = (free_addr(), free_addr());
    let args: Vec<String> = [
        "--control-plane",
        cp,
        "--node",
        id,
        "--service",
        service,
        "--workload",
        &workload.to_string(),
        "--inbound",
        &inbound.to_string(),
        "--outbound",
        &outbound.to_string(),
        "--token",
        TOKEN,
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
    let proxy = Proxy::try_start_with(
        "runtime: { workers: 2 }\nadmin: { address: '127.0.0.1:0' }\n",
        &args,
    )
    .unwrap_or_else(|e| panic!("sidecar {id} did not start: {e}"));
    (proxy, inbound, outbound)
}

/// A gateway proxy for Gateway `gateway`, two workers and an admin port.
pub fn gateway(cp: SocketAddr, id: &str, gateway: &str) -> Proxy {
    let args: Vec<String> = [
        "--control-plane",
        &cp.to_string(),
        "--node",
        id,
        "--service",
        gateway,
        "--role",
        "gateway",
        "--token",
        TOKEN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Proxy::try_start_with(
        "runtime: { workers: 2 }\nadmin: { address: '127.0.0.1:0' }\n",
        &args,
    )
    .unwrap_or_else(|e| panic!("gateway {id} did not start: {e}"))
}

/// Run `ringmeshctl` against `cp`: (exit code, stdout, stderr).
pub fn ctl(cp: SocketAddr, args: &[&str]) -> (i32, String, String) {
    ctl_at(&cp.to_string(), args)
}

/// Run `ringmeshctl --server SERVER` (`https://...` for TLS).
pub fn ctl_at(server: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(crate::proxy::ctl_bin())
        .args(["--server", server, "--token", TOKEN])
        .args(args)
        .output()
        .expect("run ringmeshctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
