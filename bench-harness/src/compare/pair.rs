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
        TargetKind::Direct => "none, the load talks to the upstream",
        TargetKind::Ringmesh | TargetKind::Baseline | TargetKind::RingmeshRoundRobin => {
            "mTLS (rustls), HTTP/2: one multiplexed connection per peer per core (a `mesh` cluster always speaks h2); B checks A's SPIFFE ID, A checks B's"
        }
        TargetKind::RingmeshTelemetry => {
            "mTLS (rustls), HTTP/2, as ringmesh; A and B each write an access log and export a span per request (two spans per request)"
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::scenario::{Mode, Proto};
    use crate::compare::targets::{haproxy_config, nginx_config, ringmesh_config, Setup};
    use x509_parser::prelude::*;

    const UPSTREAM: &str = "127.0.0.1:9000";
    const B: &str = "127.0.0.1:9101";

    /// Proxy A's and B's setups as `compare` makes them: A forwards to B,
    /// B serves its SVID and forwards to the upstream.
    fn setup<'a>(dir: &'a Path, files: &'a MeshFiles, role: &str) -> Setup<'a> {
        let (upstream, listen, tls, mesh) = match role {
            "a" => (B, "127.0.0.1:9100", None, Role::Client(files)),
            _ => (UPSTREAM, B, Some(&files.server), Role::Server(files)),
        };
        Setup {
            upstream: upstream.parse().unwrap(),
            listen: listen.parse().unwrap(),
            admin: "127.0.0.1:9102".parse().unwrap(),
            cpus: &[1],
            dir,
            max_connections: 32,
            fd_limit: 20_000,
            tls,
            mode: Mode::Http,
            client: Proto::H1,
            upstream_h2: None,
            mesh: Some(mesh),
            telemetry: None,
            balanced: None,
        }
    }

    fn yaml(text: &str) -> serde_json::Value {
        serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn ringmesh_pair_a_is_a_mesh_client_and_b_a_strict_listener() {
        let dir = Path::new("/run/x");
        let files = MeshFiles::in_dir(Path::new("/run/x/mesh"));
        let a = yaml(&ringmesh_config(&setup(dir, &files, "a")));
        assert_eq!(a["mesh"]["identity"]["cert"], "/run/x/mesh/client-svid.pem");
        assert_eq!(a["mesh"]["identity"]["key"], "/run/x/mesh/client-key.pem");
        assert_eq!(a["mesh"]["trust_bundle"], "/run/x/mesh/bundle.pem");
        assert_eq!(a["runtime"]["workers"], 1);
        assert_eq!(a["runtime"]["cpu_affinity"][0], 1);
        let listener = &a["listeners"][0];
        assert_eq!(listener["address"], "127.0.0.1:9100");
        assert!(listener.get("mesh").is_none() && listener.get("tls").is_none());
        let cluster = &a["clusters"][0];
        assert_eq!(cluster["endpoints"][0], B);
        assert_eq!(cluster["mesh"]["identity"], SERVER_ID);
        assert!(cluster.get("tls").is_none() && cluster.get("protocol").is_none());

        let b = yaml(&ringmesh_config(&setup(dir, &files, "b")));
        assert_eq!(b["mesh"]["identity"]["cert"], "/run/x/mesh/server-svid.pem");
        assert_eq!(b["mesh"]["trust_bundle"], "/run/x/mesh/bundle.pem");
        let listener = &b["listeners"][0];
        assert_eq!(listener["address"], B);
        assert_eq!(listener["mesh"]["mode"], "strict");
        assert!(listener.get("tls").is_none(), "mesh replaces tls: {b}");
        let cluster = &b["clusters"][0];
        assert_eq!(cluster["endpoints"][0], UPSTREAM);
        assert!(cluster.get("mesh").is_none(), "plain HTTP/1.1 to the app");
    }

    #[test]
    fn nginx_pair_verifies_both_ways_over_a_keepalive_pool() {
        let dir = Path::new("/run/x");
        let files = MeshFiles::in_dir(Path::new("/run/x/mesh"));
        let a = nginx_config(&setup(dir, &files, "a"));
        for want in [
            "upstream up { server 127.0.0.1:9101; keepalive 64;",
            "listen 127.0.0.1:9100 backlog=4096 reuseport;",
            "proxy_pass https://up;\n",
            "proxy_ssl_certificate /run/x/mesh/client-svid.pem;",
            "proxy_ssl_certificate_key /run/x/mesh/client-key.pem;",
            "proxy_ssl_trusted_certificate /run/x/mesh/bundle.pem;",
            "proxy_ssl_verify on;",
            "proxy_ssl_name server.bench.svc.cluster.local;",
            "proxy_ssl_protocols TLSv1.2 TLSv1.3;",
            "proxy_ssl_session_reuse on;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
        ] {
            assert!(a.contains(want), "{want}: {a}");
        }
        assert!(
            !a.contains("ssl_verify_client") && !a.contains(" ssl "),
            "{a}"
        );

        let b = nginx_config(&setup(dir, &files, "b"));
        for want in [
            "listen 127.0.0.1:9101 ssl backlog=4096 reuseport;",
            "ssl_certificate /run/x/mesh/server-svid.pem;",
            "ssl_certificate_key /run/x/mesh/server-key.pem;",
            "ssl_client_certificate /run/x/mesh/bundle.pem;",
            "ssl_verify_client on;",
            "ssl_protocols TLSv1.2 TLSv1.3;",
            "upstream up { server 127.0.0.1:9000; keepalive 64;",
            "proxy_pass http://up;\n",
        ] {
            assert!(b.contains(want), "{want}: {b}");
        }
        assert!(!b.contains("proxy_ssl"), "{b}");
        // Single-proxy configs are untouched.
        let plain = nginx_config(&Setup {
            mesh: None,
            tls: None,
            ..setup(dir, &files, "b")
        });
        assert!(plain.contains("proxy_pass http://up;") && !plain.contains("ssl"));
    }

    #[test]
    fn haproxy_pair_verifies_both_ways_and_reuses_connections() {
        let dir = Path::new("/run/x");
        let files = MeshFiles::in_dir(Path::new("/run/x/mesh"));
        let a = haproxy_config(&setup(dir, &files, "a"));
        for want in [
            "  bind 127.0.0.1:9100\n",
            "  http-reuse always\n",
            "  server s1 127.0.0.1:9101 pool-max-conn 64 ssl crt /run/x/mesh/client-combined.pem ca-file /run/x/mesh/bundle.pem verify required verifyhost server.bench.svc.cluster.local alpn http/1.1\n",
        ] {
            assert!(a.contains(want), "{want}: {a}");
        }
        let b = haproxy_config(&setup(dir, &files, "b"));
        for want in [
            "  bind 127.0.0.1:9101 ssl crt /run/x/mesh/server-combined.pem alpn http/1.1 ssl-min-ver TLSv1.2 ca-file /run/x/mesh/bundle.pem verify required\n",
            "  server s1 127.0.0.1:9000 pool-max-conn 64\n",
        ] {
            assert!(b.contains(want), "{want}: {b}");
        }
    }

    #[test]
    fn envoy_sits_out_pairs() {
        assert!(supports(TargetKind::Envoy).is_err());
        for k in [
            TargetKind::Ringmesh,
            TargetKind::Baseline,
            TargetKind::Nginx,
            TargetKind::Haproxy,
        ] {
            assert_eq!(supports(k), Ok(()));
        }
        let dir = tempfile::tempdir().unwrap();
        let files = MeshFiles::in_dir(dir.path());
        let err = crate::compare::targets::command(
            TargetKind::Envoy,
            Path::new("/usr/bin/envoy"),
            &setup(dir.path(), &files, "a"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("Envoy"), "{err}");
        assert!(hop(TargetKind::Ringmesh).contains("HTTP/2"));
        assert!(hop(TargetKind::Nginx).contains("HTTP/1.1"));
        assert!(hop(TargetKind::Haproxy).contains("HTTP/1.1"));
    }

    fn cert(path: &Path) -> Vec<u8> {
        let text = std::fs::read(path).unwrap();
        let (_, pem) = parse_x509_pem(&text).unwrap();
        pem.contents
    }

    fn sans(der: &[u8]) -> Vec<String> {
        let (_, c) = X509Certificate::from_der(der).unwrap();
        let san = c.subject_alternative_name().unwrap().unwrap();
        san.value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::URI(u) => format!("uri:{u}"),
                GeneralName::DNSName(d) => format!("dns:{d}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn svids_carry_one_spiffe_id_each_and_chain_to_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(&dir.path().join("mesh")).unwrap();
        assert_eq!(files, MeshFiles::in_dir(&dir.path().join("mesh")));
        assert_eq!(files.client.ca, files.server.ca, "one trust bundle");
        let client = cert(&files.client.chain);
        assert_eq!(sans(&client), [format!("uri:{CLIENT_ID}")]);
        let server = cert(&files.server.chain);
        assert_eq!(
            sans(&server),
            [format!("uri:{SERVER_ID}"), format!("dns:{SERVER_NAME}")]
        );
        let ca = cert(&files.client.ca);
        let (_, ca) = X509Certificate::from_der(&ca).unwrap();
        for der in [&client, &server] {
            let (_, leaf) = X509Certificate::from_der(der).unwrap();
            assert_eq!(leaf.issuer(), ca.subject());
            let eku = leaf.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.client_auth && eku.server_auth);
        }
        // HAProxy's files: chain then key; keys private.
        for f in [&files.client, &files.server] {
            let combined = std::fs::read_to_string(&f.combined).unwrap();
            let key = std::fs::read_to_string(&f.key).unwrap();
            assert_eq!(combined, std::fs::read_to_string(&f.chain).unwrap() + &key);
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&f.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
