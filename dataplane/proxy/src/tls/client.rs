//! What a cluster trusts and presents when it originates TLS.
//!
//! Verification is always on: the upstream's chain must lead to a CA in
//! the cluster's bundle (or the system's roots) and name the server name
//! the proxy asked for. There is no setting to skip it.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};

/// TLS 1.2 sessions and TLS 1.3 tickets remembered per process, so a new
/// connection to an upstream resumes instead of a full handshake.
const SESSIONS: usize = 1024;

/// A cluster's TLS origination, ready for handshakes.
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    /// The name sent in SNI and verified; `None`: each endpoint's IP.
    pub name: Option<ServerName<'static>>,
    /// Identifies these settings in the connection pool: two clusters, or
    /// two generations of one, with equal keys may share connections.
    pub key: u64,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("name", &self.name)
            .field("alpn", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

pub struct Settings {
    pub roots: RootCertStore,
    pub name: Option<ServerName<'static>>,
    pub alpn: Vec<Vec<u8>>,
    pub client_cert: Option<Arc<CertifiedKey>>,
    /// A digest of everything above, from the config text.
    pub key: u64,
}

impl ClientTls {
    pub fn build(s: Settings) -> Result<ClientTls, String> {
        let builder = ClientConfig::builder_with_provider(super::provider())
            .with_protocol_versions(super::VERSIONS)
            .map_err(|e| e.to_string())?
            .with_root_certificates(s.roots);
        let mut config = match s.client_cert {
            Some(ck) => builder.with_client_cert_resolver(Arc::new(ClientCert(ck))),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = s.alpn;
        config.resumption = rustls::client::Resumption::in_memory_sessions(SESSIONS);
        Ok(ClientTls {
            config: Arc::new(config),
            name: s.name,
            key: s.key,
        })
    }

    /// A meshed cluster's origination (`tls::mesh::client`): the server
    /// checked by `verifier`, the workload certificate presented, `alpn`,
    /// and each endpoint named by its IP (peers are told apart by SPIFFE
    /// ID, not by name).
    pub fn build_mesh(
        verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
        certificate: Arc<CertifiedKey>,
        key: u64,
        alpn: &[u8],
    ) -> Result<ClientTls, String> {
        let mut config = ClientConfig::builder_with_provider(super::provider())
            .with_protocol_versions(super::VERSIONS)
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(ClientCert(certificate)));
        config.alpn_protocols = vec![alpn.to_vec()];
        config.resumption = rustls::client::Resumption::store(sessions(key)?);
        Ok(ClientTls {
            config: Arc::new(config),
            name: None,
            key,
        })
    }

    /// The server name for a connection to `ip`.
    pub fn server_name(&self, ip: IpAddr) -> ServerName<'static> {
        match &self.name {
            Some(n) => n.clone(),
            None => ServerName::IpAddress(ip.into()),
        }
    }
}

/// A mesh cluster's remembered sessions, kept across rebuilds of its
/// config (every config push and certificate renewal rebuilds it): new
/// connections to a peer resume instead of a full handshake. Keyed by the
/// identity reached (`key`); touched only when a config is built.
fn sessions(key: u64) -> Result<Arc<dyn rustls::client::ClientSessionStore>, String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Stores = HashMap<u64, Arc<dyn rustls::client::ClientSessionStore>>;
    static KEPT: OnceLock<Mutex<Stores>> = OnceLock::new();
    let mut kept = KEPT
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| "session store poisoned".to_string())?;
    Ok(kept
        .entry(key)
        .or_insert_with(|| Arc::new(rustls::client::ClientSessionMemoryCache::new(SESSIONS)))
        .clone())
}

/// The one client certificate a cluster presents, whatever the upstream
/// asks for (its CA hints are not used to choose).
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
