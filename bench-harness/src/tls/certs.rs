//! A throwaway PKI for one run: a self-signed CA and a leaf for
//! `localhost` and 127.0.0.1 that it signs, both ECDSA P-256 (what a mesh
//! issues today, and the cheapest signature every target here serves).
//!
//! Made at run time into the run's scratch directory, so no key is ever
//! committed; the files are laid out the way each target wants them.

use std::path::{Path, PathBuf};

use ringmesh_pki::mint::Ca;

/// The names the leaf is valid for; the load's default SNI is the first.
pub const LEAF_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// Where one run's certificates are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The CA certificate: what the load trusts.
    pub ca: PathBuf,
    /// The leaf's chain, leaf first (just the leaf: the client already has
    /// the CA, and a chain of one keeps every target's handshake alike).
    pub chain: PathBuf,
    /// The leaf's private key, PKCS#8 PEM.
    pub key: PathBuf,
    /// Chain then key in one file (HAProxy's `crt`).
    pub combined: PathBuf,
}

impl CertFiles {
    /// The file names under `dir` (nothing is written).
    pub fn in_dir(dir: &Path) -> CertFiles {
        CertFiles {
            ca: dir.join("ca.pem"),
            chain: dir.join("leaf-chain.pem"),
            key: dir.join("leaf-key.pem"),
            combined: dir.join("leaf-combined.pem"),
        }
    }
}

/// Make a CA and a leaf and write them under `dir` (created if missing).
pub fn generate(dir: &Path) -> Result<CertFiles, String> {
    let fail = |what: &str, e: ringmesh_pki::mint::Error| format!("generating the {what}: {e}");
    // A name of its own, so a client holding another run's CA is told
    // "unknown issuer" rather than "bad signature".
    let name = format!("ringmesh-bench throwaway CA {:016x}", fastrand::u64(..));
    let ca = Ca::new(&name).map_err(|e| fail("CA", e))?;
    let leaf = ca.leaf(&LEAF_NAMES).map_err(|e| fail("leaf", e))?;

    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let files = CertFiles::in_dir(dir);
    let (chain, key) = (leaf.cert_pem, leaf.key_pem);
    for (path, text) in [
        (&files.ca, ca.cert_pem.clone()),
        (&files.chain, chain.clone()),
        (&files.key, key.clone()),
        (&files.combined, format!("{chain}{key}")),
    ] {
        write_private(path, &text)?;
    }
    Ok(files)
}

/// Write `text` readable by this user only (it may be a private key).
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    fn der(path: &Path) -> Vec<u8> {
        let text = std::fs::read(path).unwrap();
        let (_, pem) = parse_x509_pem(&text).unwrap();
        pem.contents
    }

    #[test]
    fn a_ca_and_a_p256_leaf_for_localhost() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(&dir.path().join("tls")).unwrap();
        assert_eq!(files, CertFiles::in_dir(&dir.path().join("tls")));

        let ca_der = der(&files.ca);
        let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
        assert!(ca.is_ca());
        let leaf_der = der(&files.chain);
        let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
        assert!(!leaf.is_ca());
        assert_eq!(leaf.issuer(), ca.subject());
        // (That the CA's signature verifies is the TLS round trip's to show.)
        // ECDSA on P-256.
        match leaf.public_key().parsed().unwrap() {
            x509_parser::public_key::PublicKey::EC(point) => assert_eq!(point.key_size(), 256),
            other => panic!("not an EC key: {other:?}"),
        }
        let sans = leaf.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = sans
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => d.to_string(),
                GeneralName::IPAddress(ip) => format!("{ip:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["localhost", "[127, 0, 0, 1]"]);
        let eku = leaf.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.server_auth);

        // HAProxy's file is the chain then the key; the key is not world-readable.
        let combined = std::fs::read_to_string(&files.combined).unwrap();
        let key = std::fs::read_to_string(&files.key).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        assert_eq!(
            combined,
            std::fs::read_to_string(&files.chain).unwrap() + &key
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn each_run_gets_its_own_keys() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (generate(a.path()).unwrap(), generate(b.path()).unwrap());
        assert_ne!(
            std::fs::read(&a.key).unwrap(),
            std::fs::read(&b.key).unwrap()
        );
    }
}
