//! Real crypto throughout: CAs and keys made here, SVIDs read back with
//! x509-parser and verified with rustls.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair as RcKey,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, UnixTime};
use x509_parser::extensions::GeneralName;

use super::*;
use crate::csr::{csr_pem, KeyPair};
use crate::spiffe;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn now() -> SystemTime {
    SystemTime::now()
}

fn ca() -> Ca {
    Ca::generate("mesh.local", 365 * DAY, now()).expect("CA")
}

fn orders() -> SpiffeId {
    SpiffeId::workload("mesh.local", "shop", "orders").expect("id")
}

fn ders(pem_text: &str) -> Vec<CertificateDer<'static>> {
    pem::certificates(pem_text.as_bytes()).expect("pem")
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).expect("x509").1
}

fn issue_for_new_key(ca: &Ca) -> (KeyPair, Svid) {
    let key = KeyPair::generate().expect("key");
    let csr = csr_pem(&key).expect("csr");
    let svid = ca
        .issue(csr.as_bytes(), &orders(), DAY, now())
        .expect("issued");
    (key, svid)
}

fn uris(cert: &X509Certificate<'_>) -> Vec<String> {
    san_names(cert)
        .into_iter()
        .filter_map(|n| n.strip_prefix("URI:").map(str::to_string))
        .collect()
}

fn san_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::URI(u) => format!("URI:{u}"),
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn an_svid_is_what_the_spiffe_standard_says_field_by_field() {
    let ca = ca();
    let t0 = now();
    let (key, svid) = issue_for_new_key(&ca);
    let chain = ders(&svid.chain_pem);
    assert_eq!(chain.len(), 1, "a root CA adds nothing to the chain");
    assert_eq!(ders(&svid.cert_pem), chain);
    let leaf = parse(&chain[0]);

    // One URI SAN, the identity; nothing else; critical as the subject is empty.
    assert_eq!(san_names(&leaf), [format!("URI:{}", orders())]);
    assert!(
        leaf.subject_alternative_name()
            .expect("san")
            .expect("san")
            .critical
    );
    assert_eq!(leaf.subject().iter().count(), 0);
    assert_eq!(spiffe::spiffe_id_of(&chain[0]), Some(orders()));

    // Not a CA; digital signature only; server and client auth.
    let bc = leaf.basic_constraints().expect("bc").expect("bc present");
    assert!(!bc.value.ca);
    let ku = leaf.key_usage().expect("ku").expect("ku present").value;
    assert!(ku.digital_signature());
    assert!(!ku.key_cert_sign() && !ku.crl_sign() && !ku.key_encipherment());
    let eku = leaf
        .extended_key_usage()
        .expect("eku")
        .expect("eku present")
        .value;
    assert!(eku.server_auth && eku.client_auth && !eku.any);

    // The proxy's key; issued by the CA and verifiable with its key.
    assert_eq!(leaf.public_key().raw, key.public_key_der());
    let root_der = ders(&ca.bundle_pem());
    let root = parse(&root_der[0]);
    assert_eq!(leaf.issuer(), root.subject());
    leaf.verify_signature(Some(root.public_key()))
        .expect("signed by the CA");

    // Backdated for clock skew; lasts the lifetime asked.
    let v = leaf.validity();
    let t0s = unix(t0);
    let backdate = BACKDATE.as_secs() as i64;
    assert!((t0s - backdate - 2..=t0s - backdate + 2).contains(&v.not_before.timestamp()));
    let day = DAY.as_secs() as i64;
    assert!((t0s + day - 2..=t0s + day + 2).contains(&v.not_after.timestamp()));
    assert_eq!(svid.not_after, from_unix(v.not_after.timestamp()));
}

#[test]
fn serials_are_random_even_for_the_same_key() {
    let ca = ca();
    let key = KeyPair::generate().expect("key");
    let csr = csr_pem(&key).expect("csr");
    let serial = || {
        let svid = ca
            .issue(csr.as_bytes(), &orders(), DAY, now())
            .expect("svid");
        parse(&ders(&svid.cert_pem)[0]).raw_serial().to_vec()
    };
    let (a, b) = (serial(), serial());
    assert_ne!(a, b);
    assert_eq!(a.len(), 16);
}

#[test]
fn the_lifetime_is_clamped_to_the_cas_expiry() {
    let t = now();
    let ca = Ca::generate("mesh.local", 2 * DAY, t).expect("CA");
    let csr = csr_pem(&KeyPair::generate().expect("key")).expect("csr");
    let svid = ca
        .issue(csr.as_bytes(), &orders(), 30 * DAY, t)
        .expect("svid");
    assert_eq!(svid.not_after, ca.not_after());
    assert_eq!(unix(svid.not_after), unix(t) + 2 * DAY.as_secs() as i64);
    // After the CA's expiry it issues nothing.
    let later = t + 3 * DAY;
    assert!(matches!(
        ca.issue(csr.as_bytes(), &orders(), DAY, later),
        Err(IssueError::CaNotValid)
    ));
}

#[test]
fn lifetimes_zero_or_too_long_and_foreign_identities_are_refused() {
    let ca = ca();
    let csr = csr_pem(&KeyPair::generate().expect("key")).expect("csr");
    let csr = csr.as_bytes();
    assert!(matches!(
        ca.issue(csr, &orders(), Duration::ZERO, now()),
        Err(IssueError::LifetimeZero)
    ));
    assert!(matches!(
        ca.issue(csr, &orders(), MAX_LIFETIME + Duration::from_secs(1), now()),
        Err(IssueError::LifetimeTooLong { .. })
    ));
    let other = SpiffeId::workload("other.domain", "shop", "orders").expect("id");
    let err = ca.issue(csr, &other, DAY, now()).expect_err("foreign");
    assert!(matches!(err, IssueError::ForeignTrustDomain { .. }));
    assert!(!err.requester_fault());
    assert!(err.to_string().contains("trust domain mesh.local"), "{err}");
}

/// A CSR that asks for everything it should not get.
fn greedy_csr(key: &RcKey) -> String {
    let mut p = CertificateParams::new(vec!["admin.mesh.local".to_string()]).expect("params");
    p.subject_alt_names.push(SanType::URI(
        "spiffe://evil/ns/kube-system/sa/admin"
            .try_into()
            .expect("uri"),
    ));
    p.subject_alt_names.push(SanType::URI(
        "spiffe://mesh.local/ns/shop/sa/payments"
            .try_into()
            .expect("uri"),
    ));
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    p.serialize_request(key).expect("csr").pem().expect("pem")
}

#[test]
fn what_a_csr_asks_for_is_ignored() {
    let ca = ca();
    let key = RcKey::generate().expect("key");
    let svid = ca
        .issue(greedy_csr(&key).as_bytes(), &orders(), DAY, now())
        .expect("issued all the same");
    let der = ders(&svid.cert_pem);
    let leaf = parse(&der[0]);
    assert_eq!(san_names(&leaf), [format!("URI:{}", orders())]);
    assert_eq!(uris(&leaf), [orders().to_string()]);
    assert!(!leaf.basic_constraints().expect("bc").expect("bc").value.ca);
    let ku = leaf.key_usage().expect("ku").expect("ku").value;
    assert!(!ku.key_cert_sign() && !ku.crl_sign());
    let eku = leaf.extended_key_usage().expect("eku").expect("eku").value;
    assert!(!eku.code_signing && eku.server_auth && eku.client_auth);
    assert_eq!(leaf.subject().iter().count(), 0, "the CSR's CN is dropped");
}

#[test]
fn a_csr_in_der_works_too() {
    let ca = ca();
    let key = RcKey::generate().expect("key");
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .expect("csr");
    let svid = ca.issue(csr.der(), &orders(), DAY, now()).expect("issued");
    assert_eq!(
        spiffe::spiffe_id_of(&ders(&svid.cert_pem)[0]),
        Some(orders())
    );
}

#[test]
fn a_tampered_csr_is_refused() {
    let ca = ca();
    let key = RcKey::generate().expect("key");
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .expect("csr");
    // Flip a bit in the last byte: inside the signature value.
    let mut der = csr.der().to_vec();
    if let Some(last) = der.last_mut() {
        *last ^= 1;
    }
    assert!(matches!(
        ca.issue(&der, &orders(), DAY, now()),
        Err(IssueError::BadSignature)
    ));
    // Swap in another key: the signature no longer matches the key.
    let other = RcKey::generate().expect("key");
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    let der_other = p.serialize_request(&other).expect("csr").der().to_vec();
    let info_of = |d: &[u8]| {
        let (_, r) = X509CertificationRequest::from_der(d).expect("csr");
        r.certification_request_info.subject_pki.raw.to_vec()
    };
    let (mine, theirs) = (info_of(&der_other), info_of(csr.der()));
    let swapped = replace(&der_other, &mine, &theirs);
    assert!(matches!(
        ca.issue(&swapped, &orders(), DAY, now()),
        Err(IssueError::BadSignature)
    ));
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = haystack
        .windows(from.len())
        .position(|w| w == from)
        .expect("present");
    [&haystack[..at], to, &haystack[at + from.len()..]].concat()
}

#[test]
fn garbage_and_unsupported_keys_are_refused() {
    let ca = ca();
    assert!(matches!(
        ca.issue(b"hello", &orders(), DAY, now()),
        Err(IssueError::BadCsr(_))
    ));
    assert!(matches!(
        ca.issue(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            &orders(),
            DAY,
            now()
        ),
        Err(IssueError::BadCsr(_))
    ));
    let rsa = RcKey::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .expect("RSA key");
    let csr = CertificateParams::default()
        .serialize_request(&rsa)
        .expect("csr");
    let err = ca.issue(csr.der(), &orders(), DAY, now()).expect_err("RSA");
    assert!(matches!(err, IssueError::UnsupportedKey(_)), "{err}");
    assert!(err.requester_fault());
    for alg in [&rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
        let key = RcKey::generate_for(alg).expect("key");
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .expect("csr");
        ca.issue(csr.der(), &orders(), DAY, now())
            .expect("P-384 and Ed25519 are fine");
    }
}

#[test]
fn a_generated_ca_round_trips_through_pem() {
    let ca = ca();
    let again = Ca::from_pem(
        "mesh.local",
        ca.chain_pem().as_bytes(),
        ca.key_pem().as_bytes(),
        now(),
    )
    .expect("loads");
    assert_eq!(again.bundle_pem(), ca.bundle_pem());
    assert_eq!(again.not_after(), ca.not_after());
    let (_, svid) = issue_for_new_key(&again);
    let leaf_der = ders(&svid.cert_pem);
    let root_der = ders(&ca.bundle_pem());
    let (leaf, root) = (parse(&leaf_der[0]), parse(&root_der[0]));
    leaf.verify_signature(Some(root.public_key()))
        .expect("signed by the same CA");
}

#[test]
fn a_non_ca_a_wrong_key_or_an_expired_ca_is_refused() {
    let t = now();
    let ca = ca();
    let (_, svid) = issue_for_new_key(&ca);
    let leaf_key = KeyPair::generate().expect("key");
    let leaf_key_pem = pem::encode_key(&leaf_key.private_key_der()).expect("pem");
    // A leaf as a CA (with its root so the chain is whole).
    let chain = format!("{}{}", svid.cert_pem, ca.bundle_pem());
    let err = Ca::from_pem("mesh.local", chain.as_bytes(), leaf_key_pem.as_bytes(), t)
        .err()
        .expect("not a CA");
    assert!(matches!(err, CaError::NotCa { .. }), "{err}");
    // The right certificate with another key.
    let err = Ca::from_pem(
        "mesh.local",
        ca.chain_pem().as_bytes(),
        leaf_key_pem.as_bytes(),
        t,
    )
    .err()
    .expect("mismatch");
    assert!(matches!(err, CaError::KeyMismatch), "{err}");
    // Expired.
    let err = Ca::from_pem(
        "mesh.local",
        ca.chain_pem().as_bytes(),
        ca.key_pem().as_bytes(),
        t + 400 * DAY,
    )
    .err()
    .expect("expired");
    assert!(matches!(err, CaError::Validity(_)), "{err}");
    // A CA certificate without keyCertSign.
    let key = RcKey::generate().expect("key");
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p.self_signed(&key).expect("cert");
    let err = Ca::from_pem(
        "mesh.local",
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        t,
    )
    .err()
    .expect("no keyCertSign");
    assert!(err.to_string().contains("keyCertSign"), "{err}");
}

/// A root, and an intermediate it signs, as an operator would bring them.
fn root_and_intermediate() -> (String, String, String) {
    let root_key = RcKey::generate().expect("key");
    let mut rp = CertificateParams::default();
    rp.distinguished_name
        .push(rcgen::DnType::CommonName, "root");
    rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    rp.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root = rp.self_signed(&root_key).expect("root");
    let root_issuer = rcgen::Issuer::new(rp, root_key);
    let int_key = RcKey::generate().expect("key");
    let mut ip = CertificateParams::default();
    ip.distinguished_name
        .push(rcgen::DnType::CommonName, "intermediate");
    ip.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ip.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let int = ip.signed_by(&int_key, &root_issuer).expect("int");
    (
        format!("{}{}", int.pem(), root.pem()),
        int_key.serialize_pem(),
        root.pem(),
    )
}

#[test]
fn an_intermediate_ca_sends_itself_in_the_chain_and_the_root_is_the_bundle() {
    let (chain, key, root) = root_and_intermediate();
    let ca = Ca::from_pem("mesh.local", chain.as_bytes(), key.as_bytes(), now()).expect("CA");
    assert_eq!(ca.bundle_pem(), root);
    let (_, svid) = issue_for_new_key(&ca);
    let presented = ders(&svid.chain_pem);
    assert_eq!(presented.len(), 2);
    assert_eq!(
        parse(&presented[1]).subject().to_string(),
        "CN=intermediate"
    );
    client_verifier_accepts(&ca.bundle_pem(), &svid.chain_pem);

    // Without its root, or in the wrong order, the chain is refused.
    let only_int = ders(&chain)[0].clone();
    let int_pem = pem::encode("CERTIFICATE", &only_int);
    let err = Ca::from_pem("mesh.local", int_pem.as_bytes(), key.as_bytes(), now())
        .err()
        .expect("no root");
    assert!(matches!(err, CaError::NoRoot), "{err}");
    let swapped = format!("{root}{int_pem}");
    assert!(Ca::from_pem("mesh.local", swapped.as_bytes(), key.as_bytes(), now()).is_err());
}

/// rustls' own server-side check of a client certificate, with roots from
/// the bundle: the proof that what we issue interoperates.
fn client_verifier_accepts(bundle_pem: &str, chain_pem: &str) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in ders(bundle_pem) {
        roots.add(c).expect("root");
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("verifier");
    let chain = ders(chain_pem);
    verifier
        .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
        .expect("rustls accepts the SVID as a client certificate");
}

#[test]
fn rustls_accepts_an_svid_as_a_client_and_as_a_server_certificate() {
    let ca = ca();
    let (key, svid) = issue_for_new_key(&ca);
    client_verifier_accepts(&ca.bundle_pem(), &svid.chain_pem);

    // Server side: chain and serverAuth (the name is a URI SAN, which the
    // mesh's own verifier checks; rustls checks DNS and IP names only).
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in ders(&ca.bundle_pem()) {
        roots.add(c).expect("root");
    }
    let chain = ders(&svid.chain_pem);
    let parsed = rustls::server::ParsedCertificate::try_from(&chain[0]).expect("parsed");
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots,
        &chain[1..],
        UnixTime::now(),
        provider.signature_verification_algorithms.all,
    )
    .expect("rustls accepts the SVID as a server certificate");

    // And the key the proxy kept serves the certificate.
    check::certified_key(chain, key.private_key_der(), &provider).expect("key matches");
}

#[test]
fn another_cas_svid_is_refused_by_rustls() {
    let (ours, theirs) = (ca(), ca());
    let (_, svid) = issue_for_new_key(&theirs);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in ders(&ours.bundle_pem()) {
        roots.add(c).expect("root");
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("verifier");
    let chain = ders(&svid.chain_pem);
    assert!(verifier
        .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
        .is_err());
}

#[test]
fn spiffe_id_of_wants_exactly_one_uri_san() {
    let key = RcKey::generate().expect("key");
    let self_signed = |sans: Vec<SanType>| {
        let mut p = CertificateParams::default();
        p.subject_alt_names = sans;
        p.self_signed(&key).expect("cert").der().to_vec()
    };
    let uri = |s: &str| SanType::URI(s.try_into().expect("uri"));
    let dns = SanType::DnsName("a.test".try_into().expect("dns"));
    let one = self_signed(vec![dns.clone(), uri("spiffe://td/ns/a/sa/b")]);
    assert_eq!(
        spiffe::spiffe_id_of(&one).map(|i| i.to_string()),
        Some("spiffe://td/ns/a/sa/b".to_string())
    );
    let two = self_signed(vec![
        uri("spiffe://td/ns/a/sa/b"),
        uri("spiffe://td/ns/a/sa/c"),
    ]);
    assert_eq!(spiffe::spiffe_id_of(&two), None);
    assert_eq!(spiffe::spiffe_id_of(&self_signed(vec![dns])), None);
    assert_eq!(
        spiffe::spiffe_id_of(&self_signed(vec![uri("https://td/a")])),
        None
    );
    assert_eq!(spiffe::spiffe_id_of(b"not a certificate"), None);
}

#[test]
fn bad_trust_domains_and_zero_validity_are_refused() {
    assert!(matches!(
        Ca::generate("Mesh.Local", DAY, now()),
        Err(CaError::TrustDomain(_))
    ));
    assert!(matches!(
        Ca::generate("mesh.local", Duration::ZERO, now()),
        Err(CaError::ValidityZero)
    ));
}
