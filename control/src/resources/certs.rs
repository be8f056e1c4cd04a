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
use std::time::SystemTime;

use ringmesh_pki::{check, pem};
use rustls::pki_types::CertificateDer;

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

pub use ringmesh_pki::check::Leaf;

/// Whether a client asking for `host` (a DNS name, or `*.` and one) would
/// accept `leaf`: a name equal to it, or a wildcard covering its first
/// label.
pub fn covers(leaf: &Leaf, host: &str) -> bool {
    leaf.dns_names.iter().any(|n| {
        n == host
            || n.strip_prefix("*.").is_some_and(|suffix| {
                host.split_once('.')
                    .is_some_and(|(label, rest)| rest == suffix && label != "*")
            })
    })
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
    ringmesh_pki::pem::certificates(pem.as_bytes())
}

/// `tls.crt` and `tls.key` as a pair: the chain parses and is within its
/// validity period at `now`, the key parses and matches the leaf. The
/// error says which of the two is at fault.
pub fn key_pair(cert_pem: &str, key_pem: &str, now: SystemTime) -> Result<KeyPair, PairError> {
    if pem::has_private_key(cert_pem.as_bytes()) {
        return Err(PairError::Cert(
            "holds a private key, which belongs in `tls.key` (it is not shown here)".into(),
        ));
    }
    let chain = certificates(cert_pem).map_err(PairError::Cert)?;
    let leaf = check::validity(&chain, now).map_err(PairError::Cert)?;
    let key = pem::private_key(key_pem.as_bytes()).map_err(PairError::Key)?;
    let key_text = pem::encode_key(&key).map_err(PairError::Key)?;
    let chain_pem = chain
        .iter()
        .map(|c| pem::encode("CERTIFICATE", c))
        .collect();
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    check::certified_key(chain, key, &provider).map_err(|e| match e {
        check::KeyError::Unusable(why) => PairError::Key(why),
        check::KeyError::Mismatch => {
            PairError::Key("the private key does not match the certificate in `tls.crt`".into())
        }
    })?;
    Ok(KeyPair {
        chain_pem,
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
    if pem::has_private_key(pem.as_bytes()) {
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
        certs
            .iter()
            .map(|c| pem::encode("CERTIFICATE", c))
            .collect(),
        certs.len(),
    ))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Certificates made at test time.
    pub use ringmesh_pki::mint::{Ca as TestCa, Issued as Leaf};
}

#[cfg(test)]
mod tests {
    use super::testing::TestCa;
    use super::*;

    #[test]
    fn a_good_pair_is_re_encoded_and_described() {
        let ca = TestCa::new("ca").unwrap();
        let a = ca.leaf(&["a.test", "*.w.test", "127.0.0.1"]).unwrap();
        // Comments and a CA after the leaf ride along in the input only.
        let cert = format!("# mine\n{}{}", a.cert_pem, ca.cert_pem);
        let pair = key_pair(&cert, &a.key_pem, SystemTime::now()).unwrap();
        assert_eq!(pair.leaf.subject, "CN=a.test");
        assert_eq!(pair.leaf.dns_names, ["a.test", "*.w.test"]);
        assert_eq!(certificates(&pair.chain_pem).unwrap().len(), 2);
        assert!(!pair.chain_pem.contains("# mine"));
        assert_eq!(
            pem::private_key(pair.key.expose().as_bytes())
                .unwrap()
                .secret_der(),
            pem::private_key(a.key_pem.as_bytes()).unwrap().secret_der(),
            "the same key, re-encoded"
        );
        assert!(
            pair.leaf.not_after.ends_with('Z'),
            "{}",
            pair.leaf.not_after
        );
        assert!(covers(&pair.leaf, "a.test") && covers(&pair.leaf, "x.w.test"));
        assert!(!covers(&pair.leaf, "x.y.w.test") && !covers(&pair.leaf, "w.test"));
        assert!(!covers(&pair.leaf, "b.test"));
    }

    #[test]
    fn a_key_must_match_and_never_shows() {
        let ca = TestCa::new("ca").unwrap();
        let (a, b) = (ca.leaf(&["a.test"]).unwrap(), ca.leaf(&["b.test"]).unwrap());
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
        let ca = TestCa::new("ca").unwrap();
        let old = ca
            .leaf_dated(&["a.test"], Some(((2020, 1, 1), (2021, 1, 1))))
            .unwrap();
        let err = key_pair(&old.cert_pem, &old.key_pem, SystemTime::now()).unwrap_err();
        assert_eq!(
            err,
            PairError::Cert("certificate 1 (CN=a.test) expired on 2021-01-01T00:00:00Z".into())
        );
        let future = ca
            .leaf_dated(&["a.test"], Some(((2090, 1, 1), (2091, 1, 1))))
            .unwrap();
        let err = key_pair(&future.cert_pem, &future.key_pem, SystemTime::now()).unwrap_err();
        assert!(matches!(&err, PairError::Cert(m) if m.contains("not valid before 2090-01-01")));
        // An expired intermediate after a good leaf.
        let good = ca.leaf(&["a.test"]).unwrap();
        let chain = format!("{}{}", good.cert_pem, old.cert_pem);
        let err = key_pair(&chain, &good.key_pem, SystemTime::now()).unwrap_err();
        assert!(matches!(&err, PairError::Cert(m) if m.starts_with("certificate 2 ")));
    }

    #[test]
    fn ca_bundles() {
        let (a, b) = (TestCa::new("a").unwrap(), TestCa::new("b").unwrap());
        let (pem, n) = ca_bundle(&format!("{}\n{}", a.cert_pem, b.cert_pem)).unwrap();
        assert_eq!(n, 2);
        assert_eq!(certificates(&pem).unwrap().len(), 2);
        assert_eq!(
            ca_bundle("nothing").unwrap_err(),
            "no CERTIFICATE block found"
        );
        let leaf = a.leaf(&["a.test"]).unwrap();
        assert!(ca_bundle(&leaf.key_pem)
            .unwrap_err()
            .contains("private key"));
    }
}
