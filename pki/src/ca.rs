//! The control plane's certificate authority: SPIFFE X.509-SVIDs for
//! proxies, from their CSRs.
//!
//! A proxy makes its own key and sends a CSR; the control plane knows, from
//! the authenticated stream, which service the proxy serves, and asks this
//! CA for exactly that identity. The CA uses the CSR for one thing only: the
//! public key, after checking the CSR's self-signature (proof that the
//! requester holds the private key). Every name and extension the CSR asks
//! for is ignored, never copied: a CSR is the requester's wish list, and a
//! proxy that could choose its SANs, key usages or `CA:TRUE` could become
//! any service, or a CA for the whole mesh.
//!
//! What is issued follows the SPIFFE X509-SVID standard
//! (spiffe/spiffe `standards/X509-SVID.md`): an empty subject; exactly one
//! URI SAN, the SPIFFE ID (critical, as the subject is empty); no DNS or IP
//! names; `CA:FALSE`; key usage digitalSignature only (no keyCertSign or
//! cRLSign; no keyEncipherment, as RSA keys are refused); extended key usage
//! serverAuth and clientAuth; a random serial; valid from a few minutes
//! before now (clock skew between machines) for the lifetime asked, but
//! never beyond the CA's own expiry.
//!
//! The CA comes from files (an operator's root or intermediate and its key,
//! checked here as a CA before it signs anything) or is generated (the
//! embedded default: a self-signed ECDSA P-256 root). No name constraints:
//! rustls-webpki fails closed on URI name constraints, which would refuse
//! every SVID the CA signs; a loaded CA with URI constraints is refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};
use x509_parser::der_parser::oid::Oid;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_SIG_ED25519,
};
use x509_parser::prelude::{
    ASN1Time, FromDer, GeneralName, X509Certificate, X509CertificationRequest,
};

use crate::spiffe::{check_trust_domain, SpiffeId, SpiffeIdError};
use crate::{check, pem};

/// The longest SVID lifetime `issue` accepts. Short-lived certificates are
/// the point (the default is 24 h); this bound only catches a unit mistake
/// in config. Istio's own cap on workload certificates is the same 90 days.
pub const MAX_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// How far before "now" a certificate's validity starts, so a peer whose
/// clock is a little behind ours does not see it as not yet valid.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// An issuing certificate authority.
pub struct Ca {
    /// SVIDs are issued only for identities in this trust domain.
    trust_domain: String,
    issuer: Issuer<'static, KeyPair>,
    /// The issuing certificate, then those above it, ending with the root.
    chain: Vec<CertificateDer<'static>>,
    not_before: SystemTime,
    /// The earliest expiry in `chain`: no SVID outlives it.
    not_after: SystemTime,
}

/// An issued X.509-SVID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Svid {
    /// The leaf, PEM.
    pub cert_pem: String,
    /// The leaf then the intermediates (not the root), PEM: what the proxy
    /// presents in a handshake.
    pub chain_pem: String,
    /// The leaf's notAfter (whole seconds).
    pub not_after: SystemTime,
}

/// Why certificate material cannot be a CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("CA certificate: {0}")]
    Certificate(String),
    #[error("CA key: {0}")]
    Key(String),
    #[error("CA {0}")]
    Validity(String),
    #[error("certificate 1 ({subject}) is not a CA: {why}")]
    NotCa { subject: String, why: &'static str },
    #[error("the CA key does not match certificate 1")]
    KeyMismatch,
    #[error("certificate {at} is not signed by the certificate after it")]
    ChainBroken { at: usize },
    #[error("the chain does not end with a self-signed root (the trust bundle)")]
    NoRoot,
    #[error("certificate {at} has URI name constraints, which rustls refuses for every SVID")]
    UriNameConstraints { at: usize },
    #[error("trust domain: {0}")]
    TrustDomain(#[from] SpiffeIdError),
    #[error("CA validity must be more than zero")]
    ValidityZero,
    #[error("cannot make the CA: {0}")]
    Generate(rcgen::Error),
    #[error("the system random number generator failed")]
    Random,
}

/// Why a CSR was not turned into an SVID.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("CSR cannot be parsed: {0}")]
    BadCsr(String),
    #[error("CSR signature does not verify: the requester has not shown it holds the key")]
    BadSignature,
    #[error("CSR key type {0} is not supported (ECDSA P-256 or P-384, or Ed25519)")]
    UnsupportedKey(String),
    #[error("certificate lifetime must be more than zero")]
    LifetimeZero,
    #[error("certificate lifetime {asked:?} is longer than the {MAX_LIFETIME:?} allowed")]
    LifetimeTooLong { asked: Duration },
    #[error("identity {id} is not in this CA's trust domain {trust_domain}")]
    ForeignTrustDomain { id: String, trust_domain: String },
    #[error("the CA is not valid at this time; it can issue nothing")]
    CaNotValid,
    #[error("cannot sign: {0}")]
    Sign(rcgen::Error),
    #[error("the system random number generator failed")]
    Random,
}

impl IssueError {
    /// Whether the requester is at fault (a CSR to fix: the gRPC layer's
    /// INVALID_ARGUMENT), rather than the CA or its configuration
    /// (lifetime, trust domain, expiry, signing: INTERNAL or
    /// FAILED_PRECONDITION, and an operator's problem).
    pub fn requester_fault(&self) -> bool {
        matches!(
            self,
            IssueError::BadCsr(_) | IssueError::BadSignature | IssueError::UnsupportedKey(_)
        )
    }
}

impl Ca {
    /// A new self-signed ECDSA P-256 root for `trust_domain`, valid from
    /// `now` (less [`BACKDATE`]) for `validity`.
    pub fn generate(
        trust_domain: &str,
        validity: Duration,
        now: SystemTime,
    ) -> Result<Ca, CaError> {
        check_trust_domain(trust_domain)?;
        if validity.is_zero() {
            return Err(CaError::ValidityZero);
        }
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name
            .push(DnType::OrganizationName, "ringmesh");
        p.distinguished_name.push(
            DnType::CommonName,
            format!("ringmesh workload CA {trust_domain}"),
        );
        // It signs leaves only.
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.serial_number = Some(random_serial().map_err(|_| CaError::Random)?);
        p.not_before = asn1_time(now.checked_sub(BACKDATE).unwrap_or(now))?.to_datetime();
        p.not_after = asn1_time(now.checked_add(validity).unwrap_or(now))?.to_datetime();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Generate)?;
        let cert = p.self_signed(&key).map_err(CaError::Generate)?;
        let (not_before, not_after) = window(cert.der())?;
        Ok(Ca {
            trust_domain: trust_domain.to_string(),
            issuer: Issuer::new(p, key),
            chain: vec![cert.der().clone()],
            not_before,
            not_after,
        })
    }

    /// A CA from files: `chain_pem` holds the issuing certificate first,
    /// then any intermediates above it, then the root; `key_pem` the
    /// issuing certificate's key. Each certificate must be valid at `now`
    /// and signed by the next; the first must be a CA allowed to sign
    /// certificates (basicConstraints CA:TRUE, keyUsage keyCertSign).
    pub fn from_pem(
        trust_domain: &str,
        chain_pem: &[u8],
        key_pem: &[u8],
        now: SystemTime,
    ) -> Result<Ca, CaError> {
        check_trust_domain(trust_domain)?;
        let chain = pem::certificates(chain_pem).map_err(CaError::Certificate)?;
        if pem::has_private_key(chain_pem) {
            return Err(CaError::Certificate(
                "the certificate file holds a private key".into(),
            ));
        }
        let key = pem::private_key(key_pem).map_err(CaError::Key)?;
        check::validity(&chain, now).map_err(CaError::Validity)?;
        check_chain(&chain)?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        check::certified_key(chain.clone(), key.clone_key(), &provider).map_err(|e| match e {
            check::KeyError::Mismatch => CaError::KeyMismatch,
            check::KeyError::Unusable(why) => CaError::Key(why),
        })?;
        let key = KeyPair::try_from(&key).map_err(|e| CaError::Key(e.to_string()))?;
        let issuer = Issuer::from_ca_cert_der(&chain[0], key)
            .map_err(|e| CaError::Certificate(e.to_string()))?;
        let (mut not_before, mut not_after) = window(&chain[0])?;
        for der in &chain[1..] {
            let (b, a) = window(der)?;
            not_before = not_before.max(b);
            not_after = not_after.min(a);
        }
        Ok(Ca {
            trust_domain: trust_domain.to_string(),
            issuer,
            chain,
            not_before,
            not_after,
        })
    }

    /// The trust domain this CA issues for.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The trust bundle: the root that proxies trust, PEM.
    pub fn bundle_pem(&self) -> String {
        self.chain
            .last()
            .map(|root| pem::encode("CERTIFICATE", root))
            .unwrap_or_default()
    }

    /// The CA's certificate chain as `from_pem` reads it, PEM.
    pub fn chain_pem(&self) -> String {
        self.chain
            .iter()
            .map(|c| pem::encode("CERTIFICATE", c))
            .collect()
    }

    /// The CA's private key, PKCS#8 PEM: only to keep a generated CA in the
    /// control plane's own state directory.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// The CA's expiry (the earliest in its chain): SVIDs end by then.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// An X.509-SVID for `identity`, for the key of `csr` (PEM or DER),
    /// valid from `now` less [`BACKDATE`] to `now + lifetime` or the CA's
    /// expiry, whichever is first. Nothing else of the CSR is used (see the
    /// module docs).
    pub fn issue(
        &self,
        csr: &[u8],
        identity: &SpiffeId,
        lifetime: Duration,
        now: SystemTime,
    ) -> Result<Svid, IssueError> {
        if lifetime.is_zero() {
            return Err(IssueError::LifetimeZero);
        }
        if lifetime > MAX_LIFETIME {
            return Err(IssueError::LifetimeTooLong { asked: lifetime });
        }
        if identity.trust_domain() != self.trust_domain {
            return Err(IssueError::ForeignTrustDomain {
                id: identity.to_string(),
                trust_domain: self.trust_domain.clone(),
            });
        }
        let not_before =
            whole_seconds(now.checked_sub(BACKDATE).unwrap_or(now)).max(self.not_before);
        let not_after = whole_seconds(now.checked_add(lifetime).unwrap_or(now)).min(self.not_after);
        if now < self.not_before || not_after <= now {
            return Err(IssueError::CaNotValid);
        }
        let key = csr_public_key(csr)?;

        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        let uri = identity
            .as_str()
            .try_into()
            .map_err(|e: rcgen::Error| IssueError::Sign(e))?;
        p.subject_alt_names = vec![SanType::URI(uri)];
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.serial_number = Some(random_serial().map_err(|_| IssueError::Random)?);
        p.not_before = asn1_time(not_before)
            .map_err(|_| IssueError::CaNotValid)?
            .to_datetime();
        p.not_after = asn1_time(not_after)
            .map_err(|_| IssueError::CaNotValid)?
            .to_datetime();
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &self.issuer).map_err(IssueError::Sign)?;

        let cert_pem = pem::encode("CERTIFICATE", cert.der());
        let mut chain_pem = cert_pem.clone();
        for ca in &self.chain[..self.chain.len().saturating_sub(1)] {
            chain_pem.push_str(&pem::encode("CERTIFICATE", ca));
        }
        Ok(Svid {
            cert_pem,
            chain_pem,
            not_after,
        })
    }
}

/// The CSR's public key, once its self-signature verifies and its type is
/// one we issue for.
fn csr_public_key(csr: &[u8]) -> Result<rcgen::SubjectPublicKeyInfo, IssueError> {
    let der = if csr.trim_ascii_start().starts_with(b"-----BEGIN") {
        CertificateSigningRequestDer::from_pem_slice(csr)
            .map_err(|e| IssueError::BadCsr(format!("not a PEM CERTIFICATE REQUEST: {e}")))?
    } else {
        CertificateSigningRequestDer::from(csr)
    };
    let (rest, req) =
        X509CertificationRequest::from_der(&der).map_err(|e| IssueError::BadCsr(e.to_string()))?;
    if !rest.is_empty() {
        return Err(IssueError::BadCsr("trailing bytes after the CSR".into()));
    }
    let spki = &req.certification_request_info.subject_pki;
    let alg = &spki.algorithm;
    let curve: Option<Oid> = alg.parameters.as_ref().and_then(|p| p.as_oid().ok());
    let supported = if alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        curve == Some(OID_EC_P256) || curve == Some(OID_NIST_EC_P384)
    } else {
        alg.algorithm == OID_SIG_ED25519
    };
    if !supported {
        let curve = curve.map(|c| format!(" ({c})")).unwrap_or_default();
        return Err(IssueError::UnsupportedKey(format!(
            "{}{curve}",
            alg.algorithm
        )));
    }
    req.verify_signature()
        .map_err(|_| IssueError::BadSignature)?;
    rcgen::SubjectPublicKeyInfo::from_der(spki.raw)
        .map_err(|e| IssueError::UnsupportedKey(e.to_string()))
}

/// The issuing certificate is a CA that may sign certificates; each is
/// signed by the next; the last is a self-signed root; none has URI name
/// constraints.
fn check_chain(chain: &[CertificateDer<'_>]) -> Result<(), CaError> {
    let certs = chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            X509Certificate::from_der(der).map(|(_, c)| c).map_err(|e| {
                CaError::Certificate(format!("certificate {} cannot be parsed: {e}", i + 1))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let first = &certs[0];
    let not_ca = |why| CaError::NotCa {
        subject: first.subject().to_string(),
        why,
    };
    match first.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {}
        Ok(_) => return Err(not_ca("no basicConstraints CA:TRUE")),
        Err(_) => return Err(not_ca("basicConstraints cannot be parsed")),
    }
    match first.key_usage() {
        Ok(Some(ku)) if ku.value.key_cert_sign() => {}
        Ok(_) => return Err(not_ca("keyUsage does not allow keyCertSign")),
        Err(_) => return Err(not_ca("keyUsage cannot be parsed")),
    }
    for (i, cert) in certs.iter().enumerate() {
        if has_uri_constraints(cert) {
            return Err(CaError::UriNameConstraints { at: i + 1 });
        }
        match certs.get(i + 1) {
            Some(parent) => cert
                .verify_signature(Some(parent.public_key()))
                .map_err(|_| CaError::ChainBroken { at: i + 1 })?,
            None => {
                if cert.subject() != cert.issuer() || cert.verify_signature(None).is_err() {
                    return Err(CaError::NoRoot);
                }
            }
        }
    }
    Ok(())
}

fn has_uri_constraints(cert: &X509Certificate<'_>) -> bool {
    let Ok(Some(nc)) = cert.name_constraints() else {
        return false;
    };
    [&nc.value.permitted_subtrees, &nc.value.excluded_subtrees]
        .into_iter()
        .flatten()
        .flatten()
        .any(|s| matches!(s.base, GeneralName::URI(_)))
}

/// A certificate's validity window.
fn window(der: &[u8]) -> Result<(SystemTime, SystemTime), CaError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CaError::Certificate(e.to_string()))?;
    let v = cert.validity();
    Ok((
        from_unix(v.not_before.timestamp()),
        from_unix(v.not_after.timestamp()),
    ))
}

fn from_unix(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    from_unix(unix(t))
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn asn1_time(t: SystemTime) -> Result<ASN1Time, CaError> {
    ASN1Time::from_timestamp(unix(t))
        .map_err(|e| CaError::Certificate(format!("date out of range: {e}")))
}

/// 16 random bytes, positive: RFC 5280 allows up to 20, and the CA/Browser
/// Forum asks for at least 64 bits of randomness. A serial derived from the
/// key (rcgen's default) would repeat when a key is certified twice.
fn random_serial() -> Result<SerialNumber, rustls::crypto::GetRandomFailed> {
    let mut bytes = [0u8; 16];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)?;
    // Positive, and 16 bytes long whatever the first random bits.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
mod tests;
