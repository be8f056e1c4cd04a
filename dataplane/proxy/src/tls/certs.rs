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

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

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
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(&pem) {
        certs.push(c.map_err(|e| format!("{src}: not a valid PEM certificate: {e}"))?);
    }
    if certs.is_empty() {
        return Err(format!("{src}: no CERTIFICATE block found"));
    }
    Ok(certs)
}

/// The private key in a PEM source (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(src: &PemSource) -> Result<PrivateKeyDer<'static>, String> {
    let pem = src.read()?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        format!("{src}: no private key found (expected a PKCS#8, RSA or EC PRIVATE KEY block)")
    })
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
    let signer = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("{key}: unusable private key: {e}"))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match()
        .map_err(|_| format!("{key}: the private key does not match the certificate in {cert}"))?;
    Ok(Arc::new(ck))
}

/// Every certificate of `chain` is within its validity period at `now`.
pub fn check_validity(
    src: &PemSource,
    chain: &[CertificateDer<'_>],
    now: SystemTime,
) -> Result<(), String> {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for (i, der) in chain.iter().enumerate() {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("{src}: certificate {} cannot be parsed: {e}", i + 1))?;
        let v = cert.validity();
        let what = || format!("{src}: certificate {} ({})", i + 1, cert.subject());
        if v.not_after.timestamp() < now {
            return Err(format!("{} expired on {}", what(), v.not_after));
        }
        if v.not_before.timestamp() > now {
            return Err(format!("{} is not valid before {}", what(), v.not_before));
        }
    }
    Ok(())
}

/// The DNS names a leaf certificate covers (subjectAltName), lowercased.
pub fn dns_names(leaf: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
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
    //! Certificates made at test time (rcgen); nothing is committed.

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };

    /// A CA that signs leaves.
    pub struct TestCa {
        pub cert_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    pub struct Leaf {
        pub cert_pem: String,
        pub key_pem: String,
    }

    impl TestCa {
        pub fn new(name: &str) -> Self {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.distinguished_name.push(DnType::CommonName, name);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().expect("key");
            let cert = p.self_signed(&key).expect("self-sign");
            TestCa {
                cert_pem: cert.pem(),
                issuer: Issuer::new(p, key),
            }
        }

        /// A server (and client) leaf for `names` (DNS names or IPs).
        pub fn leaf(&self, names: &[&str]) -> Leaf {
            self.leaf_valid(names, None)
        }

        /// A leaf valid between two dates (year, month, day).
        pub fn leaf_valid(&self, names: &[&str], window: Option<(Ymd, Ymd)>) -> Leaf {
            let mut p = CertificateParams::default();
            p.distinguished_name
                .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
            p.subject_alt_names = names
                .iter()
                .map(|n| match n.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName((*n).try_into().expect("dns name")),
                })
                .collect();
            p.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            if let Some(((y1, m1, d1), (y2, m2, d2))) = window {
                p.not_before = rcgen::date_time_ymd(y1, m1, d1);
                p.not_after = rcgen::date_time_ymd(y2, m2, d2);
            }
            let key = KeyPair::generate().expect("key");
            let cert = p.signed_by(&key, &self.issuer).expect("sign");
            Leaf {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            }
        }
    }

    pub type Ymd = (i32, u8, u8);
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
        let ca = TestCa::new("ca");
        let (a, b) = (ca.leaf(&["a.test"]), ca.leaf(&["b.test"]));
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
        let ca = TestCa::new("ca");
        let old = ca.leaf_valid(&["a.test"], Some(((2020, 1, 1), (2021, 1, 1))));
        let chain = load_certs(&inline(&old.cert_pem)).expect("certs");
        let err = check_validity(&inline(""), &chain, SystemTime::now()).expect_err("expired");
        assert!(err.contains("expired on"), "{err}");
        let future = ca.leaf_valid(&["a.test"], Some(((2090, 1, 1), (2091, 1, 1))));
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
        let ca = TestCa::new("ca");
        let leaf = ca.leaf(&["A.test", "*.b.test", "127.0.0.1"]);
        let chain = load_certs(&inline(&leaf.cert_pem)).expect("certs");
        assert_eq!(dns_names(&chain[0]), vec!["a.test", "*.b.test"]);
    }

    #[test]
    fn inline_pem_is_never_printed() {
        let src = inline("-----BEGIN PRIVATE KEY-----\nsecret");
        assert_eq!(format!("{src} {src:?}"), "inline PEM inline PEM");
    }
}
