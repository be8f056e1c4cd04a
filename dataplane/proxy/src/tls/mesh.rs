//! Mutual TLS between the mesh's proxies: both sides present their
//! workload certificate (an X509-SVID) and check the other's SPIFFE ID.
//!
//! rustls checks DNS names and IP addresses, never URI SANs, so both
//! directions need a verifier of their own:
//! - `PeerVerifier` (client side): the server's chain leads to the trust
//!   bundle and its one URI SAN is the SPIFFE ID the cluster expects;
//! - `WorkloadClientVerifier` (server side): the client's chain leads to
//!   the trust bundle and carries a SPIFFE ID, which authorization reads as
//!   the request's principal.
//!
//! Chains, signatures and validity are checked by webpki as for any TLS
//! peer; only the name check differs. The configs are built when a config
//! or the identity changes (`config::validate`), never per connection.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    SignatureScheme,
};

use super::client::ClientTls;
use super::server::{ClientAuth, Served, ServerTls};

/// A workload certificate the control plane's CA issued to the proxy, with
/// the CA's bundle; the config's `mesh.trust_bundle` joins its roots.
pub struct Issued {
    pub key: Arc<CertifiedKey>,
    pub bundle: Vec<CertificateDer<'static>>,
}

/// Where a config's workload identity comes from.
#[derive(Clone, Default)]
pub enum IdentitySource {
    /// A static config: `mesh.identity` names the files.
    #[default]
    Files,
    /// Under a control plane: what the proxy holds now; `None` before the
    /// first certificate and after one expired unrenewed (mesh traffic is
    /// then refused).
    Issued(Option<Arc<Issued>>),
}

/// A workload identity ready to serve: the X509-SVID with its key, and the
/// roots the mesh's other identities chain to.
pub struct Svid {
    /// `spiffe://trust-domain/path`.
    pub spiffe_id: String,
    pub key: Arc<CertifiedKey>,
    pub roots: Arc<RootCertStore>,
}

impl fmt::Debug for Svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Svid")
            .field("spiffe_id", &self.spiffe_id)
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

impl Svid {
    /// The identity of a chain (leaf first) and its key, trusting `roots`
    /// for peers. The leaf must carry exactly one SPIFFE ID, as X509-SVIDs
    /// do.
    pub fn new(key: Arc<CertifiedKey>, roots: RootCertStore) -> Result<Svid, String> {
        let leaf = key.cert.first().ok_or("the chain is empty")?;
        let id = ringmesh_pki::spiffe::spiffe_id_of(leaf)
            .ok_or("the certificate has no SPIFFE ID (exactly one spiffe:// URI SAN)")?;
        if roots.is_empty() {
            return Err("the trust bundle holds no CA certificate".into());
        }
        Ok(Svid {
            spiffe_id: id.as_str().to_string(),
            key,
            roots: Arc::new(roots),
        })
    }
}

/// ALPN of opaque TCP carried between the mesh's proxies: the receiving
/// proxy relays the connection's bytes to its listener's `tcp` cluster
/// instead of reading HTTP.
pub const TCP_ALPN: &[u8] = b"ringmesh-tcp/1";

/// A mesh listener's TLS: the SVID, client certificates required and
/// checked against the bundle, ALPN `h2` (how proxies talk to each other)
/// and `http/1.1`, and with `tcp`, the mesh's opaque TCP (`TCP_ALPN`).
pub fn server(
    svid: &Svid,
    listener: &str,
    handshake_timeout: std::time::Duration,
    tcp: bool,
) -> Result<ServerTls, String> {
    let verifier = WorkloadClientVerifier::new(svid.roots.clone())?;
    let mut alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if tcp {
        alpn.push(TCP_ALPN.to_vec());
    }
    ServerTls::build(super::server::Settings {
        certificates: vec![Served {
            key: svid.key.clone(),
            names: Vec::new(),
        }],
        alpn,
        handshake_timeout,
        client_auth: ClientAuth::Verifier(Arc::new(verifier)),
        session_resumption: true,
        // Its own resumption state: a ticket from a plain TLS listener of
        // the same name must not resume here without a client certificate.
        listener: format!("{listener}#mesh"),
    })
}

/// A meshed cluster's TLS: the SVID as client certificate, the server
/// checked for `expected`, ALPN `h2` (or, for opaque TCP, `TCP_ALPN`).
/// `key` identifies the transport in the pool, so it depends on
/// `expected` only: connections made with the previous certificate stay
/// in use after a renewal.
pub fn client(svid: &Svid, expected: &str, key: u64, alpn: &[u8]) -> Result<ClientTls, String> {
    let verifier = PeerVerifier {
        roots: svid.roots.clone(),
        expected: expected.to_string(),
        algorithms: super::provider().signature_verification_algorithms,
    };
    ClientTls::build_mesh(Arc::new(verifier), svid.key.clone(), key, alpn)
}

/// Checks a server's certificate for the SPIFFE ID a cluster expects.
#[derive(Debug)]
struct PeerVerifier {
    roots: Arc<RootCertStore>,
    expected: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        match ringmesh_pki::spiffe::spiffe_id_of(end_entity) {
            Some(id) if id.as_str() == self.expected => Ok(ServerCertVerified::assertion()),
            found => {
                tracing::debug!(expected = %self.expected, found = ?found.as_ref().map(|i| i.as_str()), "peer has another identity");
                Err(Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Requires a client certificate that chains to the bundle (webpki's
/// client verifier) and carries a SPIFFE ID.
#[derive(Debug)]
struct WorkloadClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl WorkloadClientVerifier {
    fn new(roots: Arc<RootCertStore>) -> Result<Self, String> {
        let inner = WebPkiClientVerifier::builder_with_provider(roots, super::provider())
            .build()
            .map_err(|e| format!("trust bundle: {e}"))?;
        Ok(WorkloadClientVerifier { inner })
    }
}

impl ClientCertVerifier for WorkloadClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if ringmesh_pki::spiffe::spiffe_id_of(end_entity).is_none() {
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
