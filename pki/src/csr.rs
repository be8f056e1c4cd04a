//! The proxy's side of getting an identity: its own key pair and a
//! certificate signing request for it.
//!
//! The key is made on the proxy and never leaves it; only the CSR (the
//! public key, signed by the private key to prove the proxy holds it) goes
//! to the control plane. The CSR asks for nothing: the CA ignores any name
//! or extension in it and issues the identity the proxy is entitled to, so
//! the subject is empty and there are no SANs. ECDSA P-256, as ztunnel and
//! Linkerd use: small, fast to verify, supported by every TLS stack.

use std::fmt;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A key or CSR could not be made (an error of the crypto library).
#[derive(Debug, thiserror::Error)]
#[error("cannot make a key pair or CSR: {0}")]
pub struct CsrError(#[from] rcgen::Error);

/// A private key made here (ECDSA P-256). Its `Debug` shows no secret.
pub struct KeyPair(rcgen::KeyPair);

impl KeyPair {
    /// A fresh ECDSA P-256 key pair.
    pub fn generate() -> Result<KeyPair, CsrError> {
        Ok(KeyPair(rcgen::KeyPair::generate_for(
            &rcgen::PKCS_ECDSA_P256_SHA256,
        )?))
    }

    /// The private key, PKCS#8, for rustls.
    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.0.serialize_der()))
    }

    /// The public key as a DER SubjectPublicKeyInfo (to match a returned
    /// certificate against the key it was requested for).
    pub fn public_key_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(&self.0)
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPair(ECDSA P-256)")
    }
}

/// A PEM `CERTIFICATE REQUEST` for `key`: empty subject, no extensions.
pub fn csr_pem(key: &KeyPair) -> Result<String, CsrError> {
    let mut params = rcgen::CertificateParams::default();
    // rcgen's default subject is `CN=rcgen self signed cert`; ask for nothing.
    params.distinguished_name = rcgen::DistinguishedName::new();
    Ok(params.serialize_request(&key.0)?.pem()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, X509CertificationRequest};

    #[test]
    fn a_csr_carries_the_key_and_asks_for_nothing() {
        let key = KeyPair::generate().expect("key");
        let pem = csr_pem(&key).expect("csr");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let der = pem_der(&pem);
        let (rest, csr) = X509CertificationRequest::from_der(&der).expect("parses");
        assert!(rest.is_empty());
        let info = &csr.certification_request_info;
        assert_eq!(info.subject.iter().count(), 0, "subject {}", info.subject);
        assert_eq!(info.subject_pki.raw, key.public_key_der());
        assert_eq!(csr.requested_extensions().map_or(0, |e| e.count()), 0);
        assert_eq!(format!("{key:?}"), "KeyPair(ECDSA P-256)");
    }

    #[test]
    fn the_private_key_is_usable_by_rustls() {
        let key = KeyPair::generate().expect("key");
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        assert!(provider
            .key_provider
            .load_private_key(key.private_key_der())
            .is_ok());
    }

    fn pem_der(pem: &str) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
            .expect("pem")
            .as_ref()
            .to_vec()
    }
}
