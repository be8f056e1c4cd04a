//! `topology = "pair"`: the mesh hop (issue 11). Each proxy target is two
//! processes of the same proxy, the sidecars of two workloads:
//!
//! ```text
//! load -> A (plaintext HTTP/1.1) -> mTLS -> B (mTLS required) -> upstream
//! direct: load -> upstream
//! ```
//!
//! A is the calling workload's sidecar (its outbound listener), B the
//! called workload's (its inbound one). Both run on the scenario's proxy
//! CPUs with one worker per CPU each, so a request costs what two sidecars
//! sharing a core cost; CPU time and memory are summed over both.
//!
//! Identities are X509-SVIDs made for the run by one throwaway CA (ECDSA
//! P-256, as a mesh CA issues them): A's only URI SAN is [`CLIENT_ID`],
//! B's [`SERVER_ID`]. nginx and HAProxy cannot check a URI SAN (OpenSSL's
//! host check reads DNS names, else the common name), so B's SVID also
//! carries the DNS name [`SERVER_NAME`], which they verify instead;
//! ringmesh ignores it and checks the SPIFFE ID, on both sides. A's SVID
//! needs no DNS name: B only checks that it chains to the bundle (and
//! ringmesh that it carries a SPIFFE ID).
//!
//! What each pair speaks on the hop ([`hop`]): ringmesh HTTP/2, one
//! multiplexed connection per peer per core (its mesh clusters always
//! do); nginx HTTP/1.1 over a keep-alive pool (its `proxy_pass` speaks no
//! HTTP/2 upstream); HAProxy HTTP/1.1 over its reuse pool, like nginx.

use std::path::Path;

use ringmesh_pki::mint::Ca;

use super::targets::TargetKind;
use crate::tls::{write_private, CertFiles};

/// Proxy A's workload identity (the caller).
pub const CLIENT_ID: &str = "spiffe://cluster.local/ns/bench/sa/client";
/// Proxy B's workload identity (the called service).
pub const SERVER_ID: &str = "spiffe://cluster.local/ns/bench/sa/server";
/// The DNS name in B's SVID, for the peers that verify names only.
pub const SERVER_NAME: &str = "server.bench.svc.cluster.local";

/// One run's mesh certificates. Each [`CertFiles`]'s `ca` is the trust
/// bundle (the CA both SVIDs chain to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshFiles {
    /// A's SVID.
    pub client: CertFiles,
    /// B's SVID: also what B's listener serves (`Setup::tls`).
    pub server: CertFiles,
}

impl MeshFiles {
    /// The file names under `dir` (nothing is written).
    pub fn in_dir(dir: &Path) -> MeshFiles {
        let svid = |who: &str| CertFiles {
            ca: dir.join("bundle.pem"),
            chain: dir.join(format!("{who}-svid.pem")),
            key: dir.join(format!("{who}-key.pem")),
            combined: dir.join(format!("{who}-combined.pem")),
        };
        MeshFiles {
            client: svid("client"),
            server: svid("server"),
        }
    }
}

/// Make the trust bundle and both SVIDs under `dir` (created if missing).
pub fn generate(dir: &Path) -> Result<MeshFiles, String> {
    let fail = |what: &str, e: ringmesh_pki::mint::Error| format!("generating the {what}: {e}");
    let name = format!("ringmesh-bench mesh CA {:016x}", fastrand::u64(..));
    let ca = Ca::new(&name).map_err(|e| fail("mesh CA", e))?;
    let client = ca.leaf(&[CLIENT_ID]).map_err(|e| fail("client SVID", e))?;
    let server = ca
        .leaf(&[SERVER_ID, SERVER_NAME])
        .map_err(|e| fail("server SVID", e))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let files = MeshFiles::in_dir(dir);
    write_private(&files.client.ca, &ca.cert_pem)?;
    for (f, leaf) in [(&files.client, client), (&files.server, server)] {
        write_private(&f.chain, &leaf.cert_pem)?;
        write_private(&f.key, &leaf.key_pem)?;
        write_private(&f.combined, &format!("{}{}", leaf.cert_pem, leaf.key_pem))?;
    }
    Ok(files)
}

/// Which proxy of a pair a config is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role<'a> {
    /// Proxy A: a plaintext listener, an mTLS client of B.
    Client(&'a MeshFiles),
    /// Proxy B: an mTLS listener requiring a client certificate (the
    /// certificate it serves is `Setup::tls`), plain HTTP/1.1 to the
    /// upstream.
    Server(&'a MeshFiles),
}

/// Whether `kind` can run as a pair, or why not.
pub fn supports(kind: TargetKind) -> Result<(), &'static str> {
    match kind {
        TargetKind::Envoy => Err("mesh pair configs for Envoy are not generated yet (no envoy binary here to check them against)"),
        _ => Ok(()),
    }
}

/// What a pair of `kind` speaks between its proxies, for the report.
pub fn hop(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Direct => "no hop: the load talks to the upstream",
        TargetKind::Ringmesh | TargetKind::Baseline => {
            "mTLS (rustls), HTTP/2: one multiplexed connection per peer per core (a `mesh` cluster always speaks h2); B checks A's SPIFFE ID, A checks B's"
        }
        TargetKind::Nginx => {
            "mTLS (OpenSSL), HTTP/1.1 over a keep-alive pool (64 idle per worker, TLS sessions reused); proxy_pass cannot speak HTTP/2 upstream; A verifies B's DNS SAN"
        }
        TargetKind::Haproxy => {
            "mTLS (OpenSSL), HTTP/1.1 over its connection reuse pool (`http-reuse always`, TLS sessions reused), as nginx; A verifies B's DNS SAN"
        }
        TargetKind::Envoy => "not run",
    }
}

/// ringmesh's top-level `mesh` block: the workload identity from files.
pub fn ringmesh_identity(svid: &CertFiles) -> String {
    format!(
        "mesh: {{ identity: {{ cert: '{}', key: '{}' }}, trust_bundle: '{}' }}\n",
        svid.chain.display(),
        svid.key.display(),
        svid.ca.display()
    )
}

/// nginx on B: require a client certificate chaining to the bundle.
pub fn nginx_verify_clients(f: &MeshFiles) -> String {
    format!(
        "    ssl_client_certificate {};\n    ssl_verify_client on;\n    ssl_verify_depth 2;\n",
        f.server.ca.display()
    )
}

/// nginx on A, inside the location: mTLS to B, B's name verified, TLS 1.3
/// allowed (1.22's default for proxy_ssl_protocols stops at 1.2),
/// sessions reused.
pub fn nginx_upstream_tls(f: &MeshFiles) -> String {
    format!(
        "      proxy_ssl_certificate {};\n      proxy_ssl_certificate_key {};\n\
      proxy_ssl_trusted_certificate {};\n      proxy_ssl_verify on;\n      proxy_ssl_verify_depth 2;\n\
      proxy_ssl_name {SERVER_NAME};\n      proxy_ssl_protocols TLSv1.2 TLSv1.3;\n      proxy_ssl_session_reuse on;\n",
        f.client.chain.display(),
        f.client.key.display(),
        f.client.ca.display()
    )
}

/// HAProxy on B, after the bind's `ssl crt ...`: require a client
/// certificate chaining to the bundle.
pub fn haproxy_verify_clients(f: &MeshFiles) -> String {
    format!(" ca-file {} verify required", f.server.ca.display())
}

/// HAProxy on A, on the server line: mTLS to B, B's name verified,
/// HTTP/1.1 by ALPN.
pub fn haproxy_server_tls(f: &MeshFiles) -> String {
    format!(
        " ssl crt {} ca-file {} verify required verifyhost {SERVER_NAME} alpn http/1.1",
        f.client.combined.display(),
        f.client.ca.display()
    )
}
