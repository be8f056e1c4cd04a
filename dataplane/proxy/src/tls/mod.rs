//! TLS policy: what a listener presents and accepts (`server`), what a
//! cluster trusts and presents (`client`), the certificates both load
//! (`certs`), and short reasons for failures (`reason`).
//!
//! Everything here is built once per config, on the thread that validates
//! it, into rustls configs the cores share behind an `Arc`: a handshake
//! reads them, a request never touches them. The byte-moving half of TLS is
//! `transport::tls`.
//!
//! Versions and suites are Mozilla's "intermediate" profile: TLS 1.3 and
//! 1.2, ECDHE key exchange, AEAD ciphers only (AES-GCM, ChaCha20-Poly1305),
//! which is exactly what rustls implements; nothing older can be enabled.

pub mod accept;
pub mod certs;
pub mod client;
pub mod mesh;
pub mod reason;
pub mod server;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The crypto provider: aws-lc-rs (builds with a C compiler only) unless
/// the crate is built with only the `ring` feature.
pub fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let p = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let p = rustls::crypto::ring::default_provider();
    Arc::new(p)
}

/// TLS 1.3 and 1.2: Mozilla intermediate.
pub static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

#[cfg(all(not(feature = "aws-lc-rs"), not(feature = "ring")))]
compile_error!("ringmesh-proxy needs a crypto provider: feature `aws-lc-rs` (default) or `ring`");

/// The client's workload identity on a TLS connection: the SPIFFE ID of
/// its certificate, without the scheme (`authz`'s principals), when it
/// presented one that has exactly one.
pub fn principal(io: &crate::transport::Stream) -> Option<Box<[u8]>> {
    let crate::transport::Stream::Tls(t) = io else {
        return None;
    };
    let leaf = t.peer_certificates()?.first()?;
    ringmesh_pki::check::spiffe_principal(leaf).map(|p| p.into_bytes().into_boxed_slice())
}
