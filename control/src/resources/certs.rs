//! Certificate material, checked before any proxy sees it.
//!
//! The control plane sends certificates and keys inline over the discovery
//! stream, so it checks them the way the proxy will (rustls with the same
//! aws-lc-rs provider, x509-parser for dates and names): a chain that does
//! not parse, a key that does not match its certificate or a certificate
//! out of its validity period is an error at the resource's field, and the
//! proxies never get it.
//!
//! What is sent is re-encoded from what was parsed: only CERTIFICATE
//! blocks for a chain, only the key block for a key. Whatever else a user
//! pasted beside them (comments, a key in a certificate file) stays here.
//!
//! Messages never quote PEM; a private key lives in [`PrivateKeyPem`],
//! which has no `Display` and whose `Debug` says `[redacted]`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// A private key in PEM. It is only ever read to build a proxy's config
/// ([`PrivateKeyPem::expose`]); printing it in any way shows `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    /// The PEM text, for the proxy's config and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem([redacted])")
    }
}

/// What a chain's leaf certificate says, for checks and `ringmeshctl get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// e.g. `CN=shop.example.com`.
    pub subject: String,
    /// subjectAltName DNS names, lowercase (`*.example.com` for a wildcard).
    pub dns_names: Vec<String>,
    /// RFC 3339, e.g. `2027-12-01T00:00:00Z`.
    pub not_after: String,
}

impl Leaf {
    /// Whether a client asking for `host` (a DNS name, or `*.` and one)
    /// would accept this certificate: a name equal to it, or a wildcard
    /// covering its first label.
    pub fn covers(&self, host: &str) -> bool {
        self.dns_names.iter().any(|n| {
            n == host
                || n.strip_prefix("*.").is_some_and(|suffix| {
                    host.split_once('.')
                        .is_some_and(|(label, rest)| rest == suffix && label != "*")
                })
        })
    }
}

/// A checked certificate chain and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// CERTIFICATE blocks only, leaf first.
    pub chain_pem: String,
    pub key: PrivateKeyPem,
    pub leaf: Leaf,
}

/// The certificates in PEM text, in order; at least one.
pub fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    for (i, c) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        certs.push(c.map_err(|e| format!("block {} is not valid PEM: {e}", i + 1))?);
    }
    if certs.is_empty() {
        return Err("no CERTIFICATE block found".into());
    }
    Ok(certs)
}

/// `tls.crt` and `tls.key` as a pair: the chain parses and is within its
/// validity period at `now`, the key parses and matches the leaf. The
/// error says which of the two is at fault.
pub fn key_pair(cert_pem: &str, key_pem: &str, now: SystemTime) -> Result<KeyPair, PairError> {
    if PrivateKeyDer::from_pem_slice(cert_pem.as_bytes()).is_ok() {
        return Err(PairError::Cert(
            "holds a private key, which belongs in `tls.key` (it is not shown here)".into(),
        ));
    }
    let chain = certificates(cert_pem).map_err(PairError::Cert)?;
    let leaf = check_validity(&chain, now).map_err(PairError::Cert)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| {
        PairError::Key(
            "no private key found (expected a PKCS#8, RSA or EC PRIVATE KEY block)".into(),
        )
    })?;
    let key_text = key_to_pem(&key).map_err(PairError::Key)?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| PairError::Key(format!("unusable private key: {e}")))?;
    rustls::sign::CertifiedKey::new(chain.clone(), signer)
        .keys_match()
        .map_err(|_| {
            PairError::Key("the private key does not match the certificate in `tls.crt`".into())
        })?;
    Ok(KeyPair {
        chain_pem: chain.iter().map(|c| pem_block("CERTIFICATE", c)).collect(),
        key: PrivateKeyPem(key_text),
        leaf,
    })
}

/// Which half of a pair is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairError {
    Cert(String),
    Key(String),
}

/// A CA bundle: every certificate parses and can be a trust anchor.
/// Returns the bundle re-encoded and how many CAs it holds.
pub fn ca_bundle(pem: &str) -> Result<(String, usize), String> {
    if PrivateKeyDer::from_pem_slice(pem.as_bytes()).is_ok() {
        return Err("holds a private key; a CA bundle holds only certificates".into());
    }
    let certs = certificates(pem)?;
    let mut store = rustls::RootCertStore::empty();
    for (i, c) in certs.iter().enumerate() {
        store
            .add(c.clone())
            .map_err(|e| format!("certificate {} is not a usable CA: {e}", i + 1))?;
    }
    Ok((
        certs.iter().map(|c| pem_block("CERTIFICATE", c)).collect(),
        certs.len(),
    ))
}

/// Every certificate of `chain` is valid at `now`; what the leaf says.
fn check_validity(chain: &[CertificateDer<'_>], now: SystemTime) -> Result<Leaf, String> {
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

fn key_to_pem(key: &PrivateKeyDer<'_>) -> Result<String, String> {
    let label = match key {
        PrivateKeyDer::Pkcs8(_) => "PRIVATE KEY",
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => return Err("unsupported private key format".into()),
    };
    Ok(pem_block(label, key.secret_der()))
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
pub(crate) mod testing {
    //! Certificates made at test time (rcgen); nothing is committed.

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyUsagePurpose, SanType,
    };

    pub struct TestCa {
        pub cert_pem: String,
        issuer: Issuer<'static, rcgen::KeyPair>,
    }

    pub struct Leaf {
        pub cert_pem: String,
        pub key_pem: String,
    }

    /// (year, month, day)
    pub type Ymd = (i32, u8, u8);

    impl TestCa {
        pub fn new(name: &str) -> TestCa {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.distinguished_name.push(DnType::CommonName, name);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = p.self_signed(&key).expect("self-sign");
            TestCa {
                cert_pem: cert.pem(),
                issuer: Issuer::new(p, key),
            }
        }

        pub fn leaf(&self, names: &[&str]) -> Leaf {
            self.leaf_valid(names, None)
        }

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
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = p.signed_by(&key, &self.issuer).expect("sign");
            Leaf {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::TestCa;
    use super::*;

    #[test]
    fn a_good_pair_is_re_encoded_and_described() {
        let ca = TestCa::new("ca");
        let a = ca.leaf(&["a.test", "*.w.test", "127.0.0.1"]);
        // Comments and a CA after the leaf ride along in the input only.
        let cert = format!("# mine\n{}{}", a.cert_pem, ca.cert_pem);
        let pair = key_pair(&cert, &a.key_pem, SystemTime::now()).unwrap();
        assert_eq!(pair.leaf.subject, "CN=a.test");
        assert_eq!(pair.leaf.dns_names, ["a.test", "*.w.test"]);
        assert_eq!(certificates(&pair.chain_pem).unwrap().len(), 2);
        assert!(!pair.chain_pem.contains("# mine"));
        assert_eq!(
            PrivateKeyDer::from_pem_slice(pair.key.expose().as_bytes())
                .unwrap()
                .secret_der(),
            PrivateKeyDer::from_pem_slice(a.key_pem.as_bytes())
                .unwrap()
                .secret_der(),
            "the same key, re-encoded"
        );
        assert!(
            pair.leaf.not_after.ends_with('Z'),
            "{}",
            pair.leaf.not_after
        );
        assert!(pair.leaf.covers("a.test") && pair.leaf.covers("x.w.test"));
        assert!(!pair.leaf.covers("x.y.w.test") && !pair.leaf.covers("w.test"));
        assert!(!pair.leaf.covers("b.test"));
    }

    #[test]
    fn a_key_must_match_and_never_shows() {
        let ca = TestCa::new("ca");
        let (a, b) = (ca.leaf(&["a.test"]), ca.leaf(&["b.test"]));
        let err = key_pair(&a.cert_pem, &b.key_pem, SystemTime::now()).unwrap_err();
        assert_eq!(
            err,
            PairError::Key("the private key does not match the certificate in `tls.crt`".into())
        );
        let err = key_pair(&a.cert_pem, "hello", SystemTime::now()).unwrap_err();
        assert!(
            matches!(&err, PairError::Key(m) if m.contains("no private key")),
            "{err:?}"
        );
        let err = key_pair(&a.key_pem, &a.key_pem, SystemTime::now()).unwrap_err();
        assert!(matches!(&err, PairError::Cert(m) if m.contains("belongs in `tls.key`")));
        let pair = key_pair(&a.cert_pem, &a.key_pem, SystemTime::now()).unwrap();
        let shown = format!("{pair:?}");
        assert!(
            shown.contains("[redacted]") && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }

    #[test]
    fn dates_are_checked_on_every_certificate() {
        let ca = TestCa::new("ca");
        let old = ca.leaf_valid(&["a.test"], Some(((2020, 1, 1), (2021, 1, 1))));
        let err = key_pair(&old.cert_pem, &old.key_pem, SystemTime::now()).unwrap_err();
        assert_eq!(
            err,
            PairError::Cert("certificate 1 (CN=a.test) expired on 2021-01-01T00:00:00Z".into())
        );
        let future = ca.leaf_valid(&["a.test"], Some(((2090, 1, 1), (2091, 1, 1))));
        let err = key_pair(&future.cert_pem, &future.key_pem, SystemTime::now()).unwrap_err();
        assert!(matches!(&err, PairError::Cert(m) if m.contains("not valid before 2090-01-01")));
        // An expired intermediate after a good leaf.
        let good = ca.leaf(&["a.test"]);
        let chain = format!("{}{}", good.cert_pem, old.cert_pem);
        let err = key_pair(&chain, &good.key_pem, SystemTime::now()).unwrap_err();
        assert!(matches!(&err, PairError::Cert(m) if m.starts_with("certificate 2 ")));
    }

    #[test]
    fn ca_bundles() {
        let (a, b) = (TestCa::new("a"), TestCa::new("b"));
        let (pem, n) = ca_bundle(&format!("{}\n{}", a.cert_pem, b.cert_pem)).unwrap();
        assert_eq!(n, 2);
        assert_eq!(certificates(&pem).unwrap().len(), 2);
        assert_eq!(
            ca_bundle("nothing").unwrap_err(),
            "no CERTIFICATE block found"
        );
        let leaf = a.leaf(&["a.test"]);
        assert!(ca_bundle(&leaf.key_pem)
            .unwrap_err()
            .contains("private key"));
    }
}
