//! PEM in and out.

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The certificates in PEM text, in order; at least one.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    for (i, c) in CertificateDer::pem_slice_iter(pem).enumerate() {
        certs.push(c.map_err(|e| format!("block {} is not valid PEM: {e}", i + 1))?);
    }
    if certs.is_empty() {
        return Err("no CERTIFICATE block found".into());
    }
    Ok(certs)
}

/// The private key in PEM text (PKCS#8, RSA or EC).
pub fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|_| "no private key found (expected a PKCS#8, RSA or EC PRIVATE KEY block)".into())
}

/// Whether the text holds a private key (a certificate file must not).
pub fn has_private_key(pem: &[u8]) -> bool {
    PrivateKeyDer::from_pem_slice(pem).is_ok()
}

/// A PEM block with `label` around `der`.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A key as PEM again, in its own format's block.
pub fn encode_key(key: &PrivateKeyDer<'_>) -> Result<String, String> {
    let label = match key {
        PrivateKeyDer::Pkcs8(_) => "PRIVATE KEY",
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => return Err("unsupported private key format".into()),
    };
    Ok(encode(label, key.secret_der()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_round_trips() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let pem = encode("CERTIFICATE", &der);
        let certs = certificates(pem.as_bytes()).expect("parses");
        assert_eq!(certs[0].as_ref(), &der[..]);
    }

    #[test]
    fn not_pem_says_what_is_missing() {
        assert_eq!(
            certificates(b"hello").expect_err("none"),
            "no CERTIFICATE block found"
        );
        assert!(private_key(b"hello")
            .expect_err("none")
            .contains("no private key"));
    }
}
