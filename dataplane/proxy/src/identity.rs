//! The proxy's workload identity: a key it makes itself (the key never
//! leaves the proxy) and the X509-SVID the control plane's CA signs for
//! it (`ringmesh.v1.Identity/Sign`), renewed at half of its lifetime.
//!
//! The agent thread keeps it (`maintain`); the admin thread shows its
//! SPIFFE ID and expiry in `/metrics`. Neither touches the request path,
//! so the one lock here is never taken by a core. Serving the certificate
//! in mTLS between sidecars is issue 11's next step.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringmesh_pki::csr::{csr_pem, KeyPair};
use ringmesh_proto::v1 as pb;
use tracing::{info, warn};

/// What the CA signed, with the key it certifies.
pub struct Held {
    pub spiffe_id: String,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
    pub chain_pem: String,
    pub bundle_pem: String,
    pub key: KeyPair,
}

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

/// Keep an identity for `node_id`, forever: ask for one, then renew.
pub async fn maintain(endpoint: String, token: String, node_id: String) {
    let mut failures = 0;
    loop {
        match sign(&endpoint, &token, &node_id).await {
            Ok(held) => {
                failures = 0;
                let wait = renew_after(held.not_after, SystemTime::now());
                info!(identity = %held.spiffe_id, not_after = held.not_after, renew_in = ?wait, "workload certificate issued");
                *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                failures += 1;
                if failures > 3 {
                    warn!(error = %e, "workload certificate not issued; retrying");
                }
                tokio::time::sleep(retry_after(failures)).await;
            }
        }
    }
}

async fn sign(endpoint: &str, token: &str, node_id: &str) -> Result<Held, String> {
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let csr = csr_pem(&key).map_err(|e| e.to_string())?;
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| format!("{endpoint}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| format!("{endpoint}: {e}"))?;
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
    Ok(Held {
        spiffe_id: resp.spiffe_id,
        not_after: resp.not_after,
        chain_pem: resp.chain_pem,
        bundle_pem: resp.bundle_pem,
        key,
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
