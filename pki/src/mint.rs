//! Throwaway certificates for tests and benchmark runs (rcgen): a CA and
//! the leaves it signs, ECDSA P-256, made at run time. Nothing made here
//! is ever committed or trusted beyond the run that made it.

pub use rcgen::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};

/// A date: year, month, day.
pub type Ymd = (i32, u8, u8);

/// A CA that signs leaves.
pub struct Ca {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    /// PKCS#8.
    pub key_pem: String,
}

impl Ca {
    /// A self-signed CA with common name `name` (give each its own, so a
    /// client holding another CA hears "unknown issuer", not "bad
    /// signature").
    pub fn new(name: &str) -> Result<Ca, rcgen::Error> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = p.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(p, key),
        })
    }

    /// A leaf for `names` (DNS names, IP addresses, or `spiffe://` URIs,
    /// a workload identity; the first is also its common name), for
    /// servers and clients.
    pub fn leaf(&self, names: &[&str]) -> Result<Issued, rcgen::Error> {
        self.leaf_dated(names, None)
    }

    /// A leaf valid only from one date to another.
    pub fn leaf_dated(
        &self,
        names: &[&str],
        window: Option<(Ymd, Ymd)>,
    ) -> Result<Issued, rcgen::Error> {
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        p.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) if n.starts_with("spiffe://") => Ok(SanType::URI((*n).try_into()?)),
                Err(_) => Ok(SanType::DnsName((*n).try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.use_authority_key_identifier_extension = true;
        if let Some(((y1, m1, d1), (y2, m2, d2))) = window {
            p.not_before = rcgen::date_time_ymd(y1, m1, d1);
            p.not_after = rcgen::date_time_ymd(y2, m2, d2);
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = p.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
