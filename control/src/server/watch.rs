//! Watching the resource directory. Polling (every 300 ms by default, on names, sizes
//! and modification times) works on every file system, containers' bind
//! mounts included; a change is read once the directory has been still for
//! one more poll, so an editor's multi-step save is read once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{error, info};

use super::Hub;

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    let mut out: Fingerprint = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some((e.path(), m.len(), m.modified().ok()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

pub async fn watch_dir(dir: PathBuf, hub: Arc<Hub>, poll: Duration) {
    let mut seen = fingerprint(&dir);
    loop {
        tokio::time::sleep(poll).await;
        let now = fingerprint(&dir);
        if now == seen {
            continue;
        }
        // Wait for the writes to settle.
        tokio::time::sleep(poll).await;
        let settled = fingerprint(&dir);
        if settled != now {
            continue;
        }
        seen = settled;
        match crate::resources::load_dir(&dir) {
            Ok(r) => {
                info!(
                    services = r.services.len(),
                    routes = r.routes.len(),
                    gateways = r.gateways.len(),
                    secrets = r.secrets.len(),
                    backend_tls_policies = r.backend_tls.len(),
                    authorization_policies = r.authz.len(),
                    peer_authentications = r.peer_authn.len(),
                    telemetries = r.telemetry.len(),
                    traffic_policies = r.traffic_policies.len(),
                    "resources changed; pushing"
                );
                hub.set_resources(r);
            }
            Err(e) => {
                error!("resource change rejected; the previous resources stay in force:\n{e}");
                hub.reject(e.to_string());
            }
        }
    }
}
