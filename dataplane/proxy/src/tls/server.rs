//! What a TLS listener presents and accepts.
//!
//! Built from the listener's `tls:` settings at validation: a rustls
//! `ServerConfig` with the certificates chosen by SNI, ALPN, session
//! resumption and, optionally, client-certificate verification. A reload
//! builds a new one; connections keep the config they were accepted with,
//! so rotating a certificate affects new handshakes only.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, ServerSessionMemoryCache,
    WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// TLS 1.2 sessions remembered per process for resumption by session id.
/// TLS 1.3 (and 1.2 clients that support them) resume with tickets, which
/// need no server memory.
const SESSION_CACHE: usize = 4096;

/// A listener's TLS termination, ready for handshakes.
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub handshake_timeout: Duration,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("alpn", &self.config.alpn_protocols)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// One certificate chain with its key and the SNI names it serves
/// (lowercase; `*.suffix` for a wildcard).
pub struct Served {
    pub key: Arc<CertifiedKey>,
    pub names: Vec<String>,
}

/// Whether and how clients must present a certificate.
pub enum ClientAuth {
    None,
    Require(rustls::RootCertStore),
    Optional(rustls::RootCertStore),
    /// A verifier of its own (the mesh's: `tls::mesh`).
    Verifier(Arc<dyn rustls::server::danger::ClientCertVerifier>),
}

pub struct Settings {
    /// The first is the default.
    pub certificates: Vec<Served>,
    pub alpn: Vec<Vec<u8>>,
    pub handshake_timeout: Duration,
    pub client_auth: ClientAuth,
    pub session_resumption: bool,
    /// The listener's name: its resumption state (ticket keys, session
    /// cache) outlives reloads of its config.
    pub listener: String,
}

impl ServerTls {
    pub fn build(s: Settings) -> Result<ServerTls, String> {
        let provider = super::provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(super::VERSIONS)
            .map_err(|e| e.to_string())?;
        let builder = match s.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Require(roots) | ClientAuth::Optional(roots) if roots.is_empty() => {
                let _ = roots;
                return Err("client_auth.ca holds no CA certificate".into());
            }
            ClientAuth::Require(roots) => {
                let v =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("client_auth.ca: {e}"))?;
                builder.with_client_cert_verifier(v)
            }
            ClientAuth::Verifier(v) => builder.with_client_cert_verifier(v),
            ClientAuth::Optional(roots) => {
                let v =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| format!("client_auth.ca: {e}"))?;
                builder.with_client_cert_verifier(v)
            }
        };
        let resolver = SniResolver::new(s.certificates).ok_or("no certificate")?;
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = s.alpn;
        if s.session_resumption {
            let (tickets, sessions) = resumption(&s.listener)?;
            config.session_storage = sessions;
            config.ticketer = tickets;
            // One ticket per handshake: a client resumes once per
            // connection it opens, and each ticket costs an encryption.
            config.send_tls13_tickets = 1;
        } else {
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        Ok(ServerTls {
            config: Arc::new(config),
            handshake_timeout: s.handshake_timeout,
        })
    }
}

type Resumption = (
    Arc<dyn rustls::server::ProducesTickets>,
    Arc<dyn rustls::server::StoresServerSessions>,
);

/// A listener's ticket keys and session cache, made once and kept across
/// reloads: a config push (every route change) must not send every client
/// back to a full handshake, as a new ticket key would. Per listener, so
/// a session from one listener never resumes on another with other
/// certificates or client-certificate rules. Touched only when a config
/// is built, off the request path; the lock is for that.
fn resumption(listener: &str) -> Result<Resumption, String> {
    static KEPT: std::sync::OnceLock<std::sync::Mutex<HashMap<String, Resumption>>> =
        std::sync::OnceLock::new();
    let mut kept = KEPT
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| "session resumption state poisoned".to_string())?;
    if let Some(r) = kept.get(listener) {
        return Ok(r.clone());
    }
    let made: Resumption = (ticketer()?, ServerSessionMemoryCache::new(SESSION_CACHE));
    kept.insert(listener.to_string(), made.clone());
    Ok(made)
}

fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, String> {
    #[cfg(feature = "aws-lc-rs")]
    let t = rustls::crypto::aws_lc_rs::Ticketer::new();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let t = rustls::crypto::ring::Ticketer::new();
    t.map_err(|e| format!("session tickets: {e}"))
}

/// Picks the certificate for a handshake by SNI: an exact name, then a
/// wildcard covering it (one label, as in certificates), then the default.
/// A client that sends no SNI, or a name nothing covers, gets the default
/// (as nginx's default server and Envoy's default filter chain do).
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    fn new(served: Vec<Served>) -> Option<Self> {
        let default = served.first()?.key.clone();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for s in served {
            for name in s.names {
                // The first certificate to claim a name keeps it.
                match name.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.to_string()),
                    None => exact.entry(name),
                }
                .or_insert_with(|| s.key.clone());
            }
        }
        Some(SniResolver {
            exact,
            wildcard,
            default,
        })
    }

    fn lookup(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name else {
            return self.default.clone();
        };
        // rustls hands over SNI lowercased already.
        if let Some(k) = self.exact.get(name) {
            return k.clone();
        }
        if let Some((_, suffix)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(suffix) {
                return k.clone();
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.lookup(hello.server_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::testing::TestCa;
    use crate::tls::certs::{certified_key, PemSource};

    fn key(ca: &TestCa, names: &[&str]) -> Arc<CertifiedKey> {
        let leaf = ca.leaf(names).unwrap();
        certified_key(
            &PemSource::Inline(leaf.cert_pem),
            &PemSource::Inline(leaf.key_pem),
            &crate::tls::provider(),
            std::time::SystemTime::now(),
        )
        .expect("key")
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_default() {
        let ca = TestCa::new("ca").unwrap();
        let (a, b, w) = (
            key(&ca, &["a.test"]),
            key(&ca, &["b.test"]),
            key(&ca, &["*.w.test"]),
        );
        let r = SniResolver::new(vec![
            Served {
                key: a.clone(),
                names: vec!["a.test".into()],
            },
            Served {
                key: b.clone(),
                names: vec!["b.test".into()],
            },
            Served {
                key: w.clone(),
                names: vec!["*.w.test".into(), "b.test".into()],
            },
        ])
        .expect("resolver");
        assert!(Arc::ptr_eq(&r.lookup(Some("a.test")), &a));
        assert!(
            Arc::ptr_eq(&r.lookup(Some("b.test")), &b),
            "first claim wins"
        );
        assert!(Arc::ptr_eq(&r.lookup(Some("x.w.test")), &w));
        assert!(
            Arc::ptr_eq(&r.lookup(Some("y.x.w.test")), &a),
            "a wildcard covers one label"
        );
        assert!(Arc::ptr_eq(&r.lookup(Some("w.test")), &a));
        assert!(Arc::ptr_eq(&r.lookup(None), &a));
    }

    #[test]
    fn resumption_state_outlives_a_rebuild_of_the_same_listener_only() {
        let (a1, _) = resumption("kept-a").expect("a");
        let (a2, _) = resumption("kept-a").expect("a again");
        let (b, _) = resumption("kept-b").expect("b");
        assert!(Arc::ptr_eq(&a1, &a2), "the same ticket keys after a reload");
        assert!(!Arc::ptr_eq(&a1, &b), "another listener has its own");
    }

    #[test]
    fn client_auth_needs_a_ca() {
        let ca = TestCa::new("ca").unwrap();
        let err = ServerTls::build(Settings {
            certificates: vec![Served {
                key: key(&ca, &["a.test"]),
                names: vec![],
            }],
            alpn: vec![],
            handshake_timeout: Duration::from_secs(1),
            client_auth: ClientAuth::Require(rustls::RootCertStore::empty()),
            session_resumption: true,
            listener: "l".into(),
        })
        .err();
        assert!(err.is_some_and(|e| e.contains("no CA")));
    }
}
