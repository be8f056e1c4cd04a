//! Loading certificates and keys, and refusing the ones that would fail
//! later: a key that does not match its certificate, a chain with an
//! expired or not-yet-valid certificate, a file that is not PEM.
//!
//! Error messages name the file (or "inline PEM") and the certificate by
//! its subject; they never include key bytes.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use ringmesh_pki::check::{KeyError, Leaf};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// Where PEM text comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    File(PathBuf),
    /// Pushed by the control plane (or written inline in YAML).
    Inline(String),
}

/// Never prints inline PEM: it may be a private key.
impl fmt::Debug for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemSource::File(p) => write!(f, "{}", p.display()),
            PemSource::Inline(_) => f.write_str("inline PEM"),
        }
    }
}

impl PemSource {
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            PemSource::File(p) => {
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            }
            PemSource::Inline(s) => Ok(s.as_bytes().to_vec()),
        }
    }
}

/// The certificates in a PEM source, in order; at least one.
pub fn load_certs(src: &PemSource) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = src.read()?;
    ringmesh_pki::pem::certificates(&pem).map_err(|e| format!("{src}: {e}"))
}

/// The private key in a PEM source (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(src: &PemSource) -> Result<PrivateKeyDer<'static>, String> {
    let pem = src.read()?;
    ringmesh_pki::pem::private_key(&pem).map_err(|e| format!("{src}: {e}"))
}

/// A chain and its key, checked: every certificate valid `now`, the key
/// usable by `provider` and matching the leaf.
pub fn certified_key(
    cert: &PemSource,
    key: &PemSource,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<Arc<CertifiedKey>, String> {
    let chain = load_certs(cert)?;
    check_validity(cert, &chain, now)?;
    with_key(chain, key, cert, provider)
}

/// A loaded chain (from `cert`) paired with the key in `key`, which must
/// be usable by `provider` and match the leaf.
pub fn with_key(
    chain: Vec<CertificateDer<'static>>,
    key: &PemSource,
    cert: &PemSource,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let der = load_key(key)?;
    ringmesh_pki::check::certified_key(chain, der, provider).map_err(|e| match e {
        KeyError::Unusable(why) => format!("{key}: {why}"),
        KeyError::Mismatch => {
            format!("{key}: the private key does not match the certificate in {cert}")
        }
    })
}

/// Every certificate of `chain` is within its validity period at `now`;
/// what the leaf says (its DNS names are the default SNI names).
pub fn check_validity(
    src: &PemSource,
    chain: &[CertificateDer<'_>],
    now: SystemTime,
) -> Result<Leaf, String> {
    ringmesh_pki::check::validity(chain, now).map_err(|e| format!("{src}: {e}"))
}

/// A trust store from a PEM bundle; at least one CA.
pub fn roots(src: &PemSource) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for c in load_certs(src)? {
        store
            .add(c)
            .map_err(|e| format!("{src}: not a usable CA certificate: {e}"))?;
    }
    Ok(store)
}

/// The system's trusted roots (`/etc/ssl/certs` and friends).
pub fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(format!(
            "no system CA certificates found{why}; set `ca` to a PEM bundle"
        ));
    }
    Ok(store)
}

#[cfg(test)]
pub mod testing {
    //! Certificates made at test time.
    pub use ringmesh_pki::mint::{Ca as TestCa, Issued as Leaf};
}

#[cfg(test)]
mod tests {
    use super::testing::TestCa;
    use super::*;

    fn inline(s: &str) -> PemSource {
        PemSource::Inline(s.to_string())
    }

    #[test]
    fn a_key_must_match_its_certificate() {
        let ca = TestCa::new("ca").unwrap();
        let (a, b) = (ca.leaf(&["a.test"]).unwrap(), ca.leaf(&["b.test"]).unwrap());
        let p = crate::tls::provider();
        let now = SystemTime::now();
        assert!(certified_key(&inline(&a.cert_pem), &inline(&a.key_pem), &p, now).is_ok());
        let Err(err) = certified_key(&inline(&a.cert_pem), &inline(&b.key_pem), &p, now) else {
            panic!("a mismatched key was accepted");
        };
        assert!(err.contains("does not match"), "{err}");
        assert!(!err.contains("PRIVATE"), "no key material in errors: {err}");
    }

    #[test]
    fn an_expired_or_future_chain_is_refused() {
        let ca = TestCa::new("ca").unwrap();
        let old = ca
            .leaf_dated(&["a.test"], Some(((2020, 1, 1), (2021, 1, 1))))
            .unwrap();
        let chain = load_certs(&inline(&old.cert_pem)).expect("certs");
        let err = check_validity(&inline(""), &chain, SystemTime::now()).expect_err("expired");
        assert!(err.contains("expired on"), "{err}");
        let future = ca
            .leaf_dated(&["a.test"], Some(((2090, 1, 1), (2091, 1, 1))))
            .unwrap();
        let chain = load_certs(&inline(&future.cert_pem)).expect("certs");
        let err = check_validity(&inline(""), &chain, SystemTime::now()).expect_err("future");
        assert!(err.contains("not valid before"), "{err}");
    }

    #[test]
    fn not_pem_says_so_with_the_file() {
        let err =
            load_certs(&PemSource::File("/nonexistent/chain.pem".into())).expect_err("missing");
        assert!(err.contains("/nonexistent/chain.pem"), "{err}");
        let err = load_certs(&inline("hello")).expect_err("not pem");
        assert!(err.contains("no CERTIFICATE"), "{err}");
        let err = load_key(&inline("hello")).expect_err("not a key");
        assert!(err.contains("no private key"), "{err}");
    }

    #[test]
    fn dns_names_come_from_the_leaf() {
        let ca = TestCa::new("ca").unwrap();
        let leaf = ca.leaf(&["A.test", "*.b.test", "127.0.0.1"]).unwrap();
        let chain = load_certs(&inline(&leaf.cert_pem)).expect("certs");
        let leaf = check_validity(&inline(""), &chain, SystemTime::now()).expect("valid");
        assert_eq!(leaf.dns_names, vec!["a.test", "*.b.test"]);
    }

    #[test]
    fn inline_pem_is_never_printed() {
        let src = inline("-----BEGIN PRIVATE KEY-----\nsecret");
        assert_eq!(format!("{src} {src:?}"), "inline PEM inline PEM");
    }
}
