//! The checks certificate material passes before it is served: every
//! certificate of a chain within its validity period, the key usable and
//! matching the leaf.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// What a chain's leaf says, for SNI defaults and listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// e.g. `CN=shop.example.com`.
    pub subject: String,
    /// subjectAltName DNS names, lowercase (`*.example.com` for a wildcard).
    pub dns_names: Vec<String>,
    /// RFC 3339, e.g. `2027-12-01T00:00:00Z`.
    pub not_after: String,
}

/// The workload identity a leaf certifies (`spiffe::spiffe_id_of`: its
/// one URI SAN, a valid SPIFFE ID), written without the scheme as
/// authorization policies write principals (`cluster.local/ns/shop/sa/web`).
pub fn spiffe_principal(leaf: &[u8]) -> Option<String> {
    let id = crate::spiffe::spiffe_id_of(leaf)?;
    id.as_str().strip_prefix("spiffe://").map(str::to_string)
}

/// Every certificate of `chain` is valid at `now`; what the leaf says.
pub fn validity(chain: &[CertificateDer<'_>], now: SystemTime) -> Result<Leaf, String> {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut leaf = None;
    for (i, der) in chain.iter().enumerate() {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("certificate {} cannot be parsed: {e}", i + 1))?;
        let v = cert.validity();
        let what = || format!("certificate {} ({})", i + 1, cert.subject());
        if v.not_after.timestamp() < now {
            return Err(format!(
                "{} expired on {}",
                what(),
                rfc3339(v.not_after.timestamp())
            ));
        }
        if v.not_before.timestamp() > now {
            return Err(format!(
                "{} is not valid before {}",
                what(),
                rfc3339(v.not_before.timestamp())
            ));
        }
        if i == 0 {
            leaf = Some(Leaf {
                subject: cert.subject().to_string(),
                dns_names: dns_names(&cert),
                not_after: rfc3339(v.not_after.timestamp()),
            });
        }
    }
    leaf.ok_or_else(|| "no CERTIFICATE block found".into())
}

fn dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
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

fn rfc3339(unix: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Why a key cannot serve a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The provider cannot sign with it (an unsupported algorithm).
    Unusable(String),
    /// It is not the leaf's key.
    Mismatch,
}

/// The chain and its key, ready to serve: the key usable by `provider`
/// and matching the leaf.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, KeyError> {
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| KeyError::Unusable(format!("unusable private key: {e}")))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(|_| KeyError::Mismatch)?;
    Ok(Arc::new(ck))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "mint")]
    #[test]
    fn a_spiffe_leaf_names_its_principal() {
        let ca = crate::mint::Ca::new("ca").unwrap();
        let der = |names: &[&str]| {
            let pem = ca.leaf(names).unwrap().cert_pem;
            crate::pem::certificates(pem.as_bytes()).unwrap().remove(0)
        };
        let one = der(&["spiffe://cluster.local/ns/shop/sa/web"]);
        assert_eq!(
            spiffe_principal(&one).as_deref(),
            Some("cluster.local/ns/shop/sa/web")
        );
        assert_eq!(spiffe_principal(&der(&["web.test"])), None, "no URI SAN");
        let two = der(&["spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/c"]);
        assert_eq!(spiffe_principal(&two), None, "X509-SVIDs have one");
    }
    use crate::pem;

    type Ymd = (i32, u8, u8);

    fn ca_and_leaf(window: Option<(Ymd, Ymd)>) -> (String, String) {
        let mut p =
            rcgen::CertificateParams::new(vec!["A.test".to_string(), "*.b.test".to_string()])
                .expect("params");
        if let Some(((y1, m1, d1), (y2, m2, d2))) = window {
            p.not_before = rcgen::date_time_ymd(y1, m1, d1);
            p.not_after = rcgen::date_time_ymd(y2, m2, d2);
        }
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = p.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    fn provider() -> CryptoProvider {
        rustls::crypto::aws_lc_rs::default_provider()
    }

    #[test]
    fn a_valid_chain_says_what_its_leaf_names() {
        let (cert, _) = ca_and_leaf(None);
        let chain = pem::certificates(cert.as_bytes()).expect("pem");
        let leaf = validity(&chain, SystemTime::now()).expect("valid");
        assert_eq!(leaf.dns_names, ["a.test", "*.b.test"]);
    }

    #[test]
    fn expired_and_future_chains_are_refused_with_their_dates() {
        let (old, _) = ca_and_leaf(Some(((2020, 1, 1), (2021, 1, 1))));
        let chain = pem::certificates(old.as_bytes()).expect("pem");
        let err = validity(&chain, SystemTime::now()).expect_err("expired");
        assert!(err.ends_with("expired on 2021-01-01T00:00:00Z"), "{err}");
        let (future, _) = ca_and_leaf(Some(((2090, 1, 1), (2091, 1, 1))));
        let chain = pem::certificates(future.as_bytes()).expect("pem");
        let err = validity(&chain, SystemTime::now()).expect_err("future");
        assert!(
            err.ends_with("is not valid before 2090-01-01T00:00:00Z"),
            "{err}"
        );
    }

    #[test]
    fn a_key_must_match_its_leaf() {
        let (cert, key) = ca_and_leaf(None);
        let (_, other) = ca_and_leaf(None);
        let chain = pem::certificates(cert.as_bytes()).expect("pem");
        let ok = certified_key(
            chain.clone(),
            pem::private_key(key.as_bytes()).expect("key"),
            &provider(),
        );
        assert!(ok.is_ok());
        let bad = certified_key(
            chain,
            pem::private_key(other.as_bytes()).expect("key"),
            &provider(),
        );
        assert_eq!(bad.err(), Some(KeyError::Mismatch));
    }
}
