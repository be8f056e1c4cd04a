//! TLS for the harness: the load's client side, the upstream's server
//! side, and the certificates `compare` makes for each run.
//!
//! rustls on aws-lc-rs, the provider the proxy uses. Both sides run the
//! buffered `Connection` API over monoio's owned-buffer IO
//! ([`stream::TlsStream`]): ciphertext is read into one buffer and written
//! from another, plaintext is copied in and out. Those copies cost the
//! harness a little CPU; they are not on the side being measured.
//!
//! The client makes every target do the same work:
//! - key exchange X25519 first (P-256 only if a server refuses it): every
//!   target here supports it, so none gets a cheaper or dearer one (rustls
//!   would otherwise offer post-quantum hybrids that OpenSSL 3.0 lacks);
//! - no session resumption unless asked (`--tls-resume`): a new
//!   connection is a full handshake, which is what new-connection steps
//!   are meant to price;
//! - ALPN `http/1.1` (only `h2` with `--h2`), SNI `localhost` unless told otherwise, and the
//!   certificate verified against the CA it is given, so a broken chain
//!   counts as a handshake error instead of going unnoticed.

pub mod blocking;
mod certs;
pub mod stream;

use std::path::Path;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::aws_lc_rs::{self, kx_group};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};

pub(crate) use certs::write_private;
pub use certs::{generate, CertFiles, LEAF_NAMES};
pub use stream::TlsStream;

/// The SNI (and name verified) when none is given: what the run's leaf
/// certificate is issued for.
pub const DEFAULT_SNI: &str = LEAF_NAMES[0];

const ALPN_HTTP1: &[u8] = b"http/1.1";
const ALPN_H2: &[u8] = b"h2";

/// How the load (or a probe) connects over TLS.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    resume: bool,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .field("resume", &self.resume)
            .finish()
    }
}

impl ClientTls {
    /// Trust the CA certificates in the PEM file `ca`; verify the server
    /// as `sni`; resume sessions only when `resume`.
    pub fn from_ca_file(ca: &Path, sni: &str, resume: bool) -> Result<ClientTls, String> {
        let pem = std::fs::read(ca).map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
        let roots = roots(&pem).map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
        ClientTls::new(roots, sni, resume)
    }

    /// As [`ClientTls::from_ca_file`], from PEM text.
    pub fn from_ca_pem(pem: &[u8], sni: &str, resume: bool) -> Result<ClientTls, String> {
        ClientTls::new(roots(pem)?, sni, resume)
    }

    fn new(roots: RootCertStore, sni: &str, resume: bool) -> Result<ClientTls, String> {
        let server_name = ServerName::try_from(sni.to_string())
            .map_err(|e| format!("--sni {sni:?}: not a DNS name or IP address: {e}"))?;
        let mut config = ClientConfig::builder_with_provider(client_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        config.resumption = resumption(resume);
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
            resume,
        })
    }

    /// A copy with a session cache of its own (one per load thread, so
    /// threads never share a lock).
    pub fn for_thread(&self) -> ClientTls {
        let mut config = (*self.config).clone();
        config.resumption = resumption(self.resume);
        ClientTls {
            config: Arc::new(config),
            server_name: self.server_name.clone(),
            resume: self.resume,
        }
    }

    /// A copy that offers only `h2` in ALPN (the load's `--h2 --tls`): a
    /// server that does not pick it fails the connection.
    pub fn for_h2(&self) -> ClientTls {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        ClientTls {
            config: Arc::new(config),
            server_name: self.server_name.clone(),
            resume: self.resume,
        }
    }

    /// Whether this client asks for HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.config.alpn_protocols == [ALPN_H2.to_vec()]
    }

    /// A new client connection (nothing sent yet).
    pub fn connection(&self) -> Result<rustls::ClientConnection, rustls::Error> {
        rustls::ClientConnection::new(self.config.clone(), self.server_name.clone())
    }
}

/// The CA certificates in `pem`.
fn roots(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no CERTIFICATE in it".into());
    }
    Ok(roots)
}

/// A fresh session cache, or none: each new connection a full handshake.
fn resumption(resume: bool) -> Resumption {
    if resume {
        // Room for every connection a load thread keeps.
        Resumption::in_memory_sessions(4096)
    } else {
        Resumption::disabled()
    }
}

/// aws-lc-rs with the key exchange every target shares (module docs).
fn client_provider() -> Arc<CryptoProvider> {
    let mut p = aws_lc_rs::default_provider();
    p.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1];
    Arc::new(p)
}

/// How the upstream serves TLS.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    /// Serve the chain in the PEM file `cert` (leaf first) with the key in
    /// `key`.
    pub fn from_files(cert: &Path, key: &Path) -> Result<ServerTls, String> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "--tls-cert {}: no CERTIFICATE in it",
                cert.display()
            ));
        }
        let private = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS versions: {e}"))?
                .with_no_client_auth()
                .with_single_cert(chain, private)
                .map_err(|e| {
                    format!(
                        "--tls-cert {} with --tls-key {}: {e}",
                        cert.display(),
                        key.display()
                    )
                })?;
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }

    /// A copy that offers `h2` first in ALPN, then `http/1.1` (the
    /// upstream's `--h2`).
    pub fn with_h2(&self) -> ServerTls {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
        ServerTls {
            config: Arc::new(config),
        }
    }

    /// A new server connection, waiting for a ClientHello.
    pub fn connection(&self) -> Result<rustls::ServerConnection, rustls::Error> {
        rustls::ServerConnection::new(self.config.clone())
    }
}

/// What a load run's handshakes agreed on and how many there were.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSummary {
    /// e.g. `TLSv1_3` (from the first handshake seen).
    pub version: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// e.g. `X25519`.
    pub key_exchange: String,
    /// Handshakes completed in the measured window, full ones...
    pub full_handshakes: u64,
    /// ...and resumed ones (0 unless `--tls-resume`).
    pub resumed_handshakes: u64,
}

impl TlsSummary {
    /// Note one completed handshake (`counted`: inside the window).
    pub fn record(&mut self, conn: &rustls::CommonState, counted: bool) {
        if self.version.is_empty() {
            let name = |x: Option<String>| x.unwrap_or_else(|| "?".into());
            self.version = name(conn.protocol_version().map(|v| format!("{v:?}")));
            self.cipher_suite = name(
                conn.negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite())),
            );
            self.key_exchange = name(
                conn.negotiated_key_exchange_group()
                    .map(|g| format!("{:?}", g.name())),
            );
        }
        if counted {
            match conn.handshake_kind() {
                Some(HandshakeKind::Resumed) => self.resumed_handshakes += 1,
                _ => self.full_handshakes += 1,
            }
        }
    }

    pub fn merge(&mut self, o: &TlsSummary) {
        if self.version.is_empty() {
            self.version.clone_from(&o.version);
            self.cipher_suite.clone_from(&o.cipher_suite);
            self.key_exchange.clone_from(&o.key_exchange);
        }
        self.full_handshakes += o.full_handshakes;
        self.resumed_handshakes += o.resumed_handshakes;
    }
}

/// Whether an IO error carries a TLS protocol error (bad certificate,
/// alert, malformed record) rather than a socket one.
pub fn is_tls_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

#[cfg(test)]
mod tests;
