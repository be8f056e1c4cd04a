//! The proxy's workload identity: a key it makes itself (the key never
//! leaves the proxy) and the X509-SVID the control plane's CA signs for
//! it (`ringmesh.v1.Identity/Sign`), renewed at half of its lifetime.
//!
//! The agent thread keeps it (`maintain`) and publishes each new one on a
//! watch channel; the agent validates the running config again with it,
//! so every core's mesh listeners and clusters serve it from their next
//! handshake on (connections already open are kept). A certificate that
//! expires before it could be renewed is withdrawn the same way: mesh
//! traffic is then refused, never sent in plaintext. The admin thread
//! shows the SPIFFE ID and expiry in `/metrics`. None of this touches the
//! request path, so the one lock here is never taken by a core.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringmesh_pki::csr::{csr_pem, KeyPair};
use ringmesh_proto::v1 as pb;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::tls::mesh::Issued;

/// What the CA signed, ready for TLS.
pub struct Held {
    pub spiffe_id: String,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
    pub issued: Arc<Issued>,
}

/// What the agent watches: the certificate in force, `None` before the
/// first and after one expired unrenewed.
pub type Published = watch::Receiver<Option<Arc<Issued>>>;

/// The identity in force, once one was issued.
static CURRENT: Mutex<Option<Held>> = Mutex::new(None);

/// The SPIFFE ID and expiry of the identity in force.
pub fn summary() -> Option<(String, i64)> {
    let held = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    held.as_ref().map(|h| (h.spiffe_id.clone(), h.not_after))
}

/// The `/metrics` lines for the identity in force (none before one).
pub fn render(out: &mut String) {
    use std::fmt::Write;
    let Some((id, not_after)) = summary() else {
        return;
    };
    let name = "ringmesh_identity_expiry_timestamp_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} When the proxy's workload certificate expires (it renews at half of its lifetime).\n# TYPE {name} gauge\n{name}{{spiffe_id=\"{}\"}} {not_after}",
        crate::metrics::escape_label(&id)
    );
}

/// How long to wait before asking again after a failure: from 200 ms
/// (the node may not be registered yet) to 30 s.
fn retry_after(failures: u32) -> Duration {
    let ms = 200u64.saturating_mul(1 << failures.min(8)).min(30_000);
    Duration::from_millis(fastrand::u64(ms / 2..=ms))
}

/// When to renew: half-way through the remaining lifetime, jittered by
/// up to a tenth so a fleet does not renew in lockstep.
fn renew_after(not_after: i64, now: SystemTime) -> Duration {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let half = ((not_after - now).max(2) / 2) as u64 * 1000;
    Duration::from_millis(fastrand::u64(half * 9 / 10..=half))
}

/// Keep an identity for `node_id`, forever: ask for one, then renew;
/// each change goes out on `publish`. `resign` asks for a new one at once:
/// the agent rings it each time its discovery stream is (re)established,
/// so a control plane that restarted (and forgot what it issued) knows the
/// proxy holds one, and the first is asked for as soon as the node is
/// registered.
pub async fn maintain(
    control: crate::agent::ControlPlane,
    token: String,
    node_id: String,
    publish: watch::Sender<Option<Arc<Issued>>>,
    resign: Arc<tokio::sync::Notify>,
) {
    // Waits for `wait`, or less when a new certificate is asked for.
    let pause = |wait: Duration| {
        let resign = resign.clone();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = resign.notified() => {}
            }
        }
    };
    let mut failures = 0;
    loop {
        match sign(&control, &token, &node_id).await {
            Ok(held) => {
                failures = 0;
                let wait = renew_after(held.not_after, SystemTime::now());
                info!(identity = %held.spiffe_id, not_after = held.not_after, renew_in = ?wait, "workload certificate issued");
                publish.send_replace(Some(held.issued.clone()));
                *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
                pause(wait).await;
            }
            Err(e) => {
                failures += 1;
                if failures > 3 {
                    warn!(error = %e, "workload certificate not issued; retrying");
                }
                let wait = retry_after(failures);
                match expires_in(SystemTime::now()) {
                    // Withdrawn when it expires, not at the next retry.
                    // Not cut short: the expiry must be honoured.
                    Some(left) if left <= wait => {
                        tokio::time::sleep(left).await;
                        warn!("workload certificate expired and could not be renewed: mesh traffic is refused until one is issued");
                        publish.send_replace(None);
                        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        tokio::time::sleep(wait - left).await;
                    }
                    _ => pause(wait).await,
                }
            }
        }
    }
}

/// How long until the certificate in force expires (zero if it has).
fn expires_in(now: SystemTime) -> Option<Duration> {
    let held = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let h = held.as_ref()?;
    Some(Duration::from_secs((h.not_after - unix(now)).max(0) as u64))
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn sign(
    control: &crate::agent::ControlPlane,
    token: &str,
    node_id: &str,
) -> Result<Held, String> {
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let csr = csr_pem(&key).map_err(|e| e.to_string())?;
    let channel = control.connect().await?;
    let mut req = tonic::Request::new(pb::SignRequest {
        node_id: node_id.to_string(),
        csr_pem: csr,
    });
    let auth = format!("Bearer {token}")
        .parse()
        .map_err(|_| "the token is not a valid header value".to_string())?;
    req.metadata_mut().insert("authorization", auth);
    let resp = pb::identity_client::IdentityClient::new(channel)
        .sign(req)
        .await
        .map_err(|s| format!("{}: {}", s.code(), s.message()))?
        .into_inner();
    let chain = ringmesh_pki::pem::certificates(resp.chain_pem.as_bytes())
        .map_err(|e| format!("the issued chain: {e}"))?;
    let bundle = ringmesh_pki::pem::certificates(resp.bundle_pem.as_bytes())
        .map_err(|e| format!("the trust bundle: {e}"))?;
    let key =
        ringmesh_pki::check::certified_key(chain, key.private_key_der(), &crate::tls::provider())
            .map_err(|e| format!("the issued certificate does not fit the key: {e:?}"))?;
    Ok(Held {
        spiffe_id: resp.spiffe_id,
        not_after: resp.not_after,
        issued: Arc::new(Issued { key, bundle }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_at_half_life_with_jitter_and_retries_back_off() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        for _ in 0..100 {
            let wait = renew_after(1_000_000 + 3600, now);
            assert!(wait >= Duration::from_millis(1_620_000) && wait <= Duration::from_secs(1800));
        }
        assert!(
            renew_after(999_999, now) <= Duration::from_secs(1),
            "expired: at once"
        );
        assert!(retry_after(1) <= Duration::from_millis(400));
        assert!(retry_after(30) <= Duration::from_secs(30));
    }
}
