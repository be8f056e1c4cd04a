//! Workload identities end to end: ringmesh-control as the CA, a real
//! sidecar that makes its own key, gets its Service's SPIFFE certificate
//! and renews it at half of its lifetime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringmesh_tests::control::{sidecar, ControlPlane};
use ringmesh_tests::{closed_port, eventually, Proxy};

/// The expiry the sidecar's `/metrics` shows for `spiffe_id`.
fn expiry(p: &Proxy, spiffe_id: &str) -> Option<u64> {
    p.metric(&format!(
        "ringmesh_identity_expiry_timestamp_seconds{{spiffe_id=\"{spiffe_id}\"}}"
    ))
}

#[test]
fn a_sidecar_gets_its_services_identity_and_renews_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("mesh.yaml"),
        "kind: Service\nmetadata: { name: web, namespace: shop }\n",
    )
    .expect("write");
    let cp = ControlPlane::start_with(
        dir.path(),
        "127.0.0.1:0".parse().expect("addr"),
        &["--svid-lifetime", "4s", "--trust-domain", "mesh.test"],
    );
    let (web, _, _) = sidecar(cp.addr, "web-1", "web.shop", closed_port());
    let id = "spiffe://mesh.test/ns/shop/sa/web";
    let mut first = None;
    eventually("an identity", Duration::from_secs(15), || {
        first = expiry(&web, id);
        first.is_some()
    });
    let first = first.unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    assert!(
        (now..=now + 5).contains(&first),
        "a 4 s lifetime: expires at {first}, now {now}"
    );
    // Renewed at about half-life, before it expires: a later expiry.
    eventually("a renewed identity", Duration::from_secs(10), || {
        expiry(&web, id).is_some_and(|e| e > first)
    });
    let _ = &cp;
}
