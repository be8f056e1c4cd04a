//! A listener's and a cluster's `tls`: PEM loaded and checked, rustls
//! configs built, every problem located at its field.
//!
//! Files are read here, at validation, so a reload whose certificate is
//! unreadable, expired or does not match its key is refused while the old
//! config keeps serving. Messages name the file, never key bytes.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use ringmesh_pki::check::Leaf;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use serde_saphyr::{Location, Spanned};

use super::{Bounds, Validator};
use crate::config::model::{EndpointSpec, Target, UpstreamProtocol};
use crate::config::raw::{RawCertificate, RawClientAuth, RawDownstreamTls, RawUpstreamTls};
use crate::tls::certs::{self, PemSource};
use crate::tls::client::{self, ClientTls};
use crate::tls::server::{self, ClientAuth, ServerTls};

/// A handshake not done within this is closed: long enough for a slow
/// mobile client, short enough that stalled handshakes do not pile up
/// (nginx bounds the whole first read by 60s; Envoy has no default).
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Protocols the proxy speaks over TLS.
const KNOWN_ALPN: &[&str] = &["h2", "http/1.1"];

/// What a listener offers in ALPN unless its `alpn` says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Offers {
    /// Relays TCP only: it claims no protocol.
    Nothing,
    Http1,
    H2AndHttp1,
}

impl Validator {
    pub(super) fn downstream_tls(
        &mut self,
        t: &Spanned<RawDownstreamTls>,
        listener: &str,
        offers: Offers,
        path: &str,
    ) -> Option<Arc<ServerTls>> {
        let raw = &t.value;
        let errors = self.errors.len();
        if raw.certificates.is_empty() {
            self.err(
                &t.referenced,
                format!("{path}.certificates"),
                "at least one certificate is needed",
            );
        }
        let mut served = Vec::new();
        for (i, c) in raw.certificates.iter().enumerate() {
            let p = format!("{path}.certificates[{i}]");
            if let Some((key, leaf)) = self.certificate(c, &p) {
                let names = match &c.value.server_names {
                    Some(names) => self.server_names(names, &format!("{p}.server_names")),
                    None => leaf.dns_names,
                };
                if names.is_empty() && i > 0 {
                    self.err(
                        &c.referenced,
                        &p,
                        "this certificate names no DNS name and is not the first (default) one, \
                         so no client would get it: set `server_names`",
                    );
                }
                served.push(server::Served { key, names });
            }
        }
        // h2 first: a client offering both gets HTTP/2 (RFC 9113 3.2).
        let default: &[&str] = match offers {
            Offers::Nothing => &[],
            Offers::Http1 => &["http/1.1"],
            Offers::H2AndHttp1 => &["h2", "http/1.1"],
        };
        let alpn = self.alpn(&raw.alpn, &format!("{path}.alpn"), default);
        if offers != Offers::H2AndHttp1 && alpn.iter().any(|p| p == b"h2") {
            self.err(
                &t.referenced,
                format!("{path}.alpn"),
                "`h2` is offered but the listener does not serve HTTP/2 (`http2.enabled: false`, or `tcp` only)",
            );
        }
        let handshake_timeout = self.duration(
            &raw.handshake_timeout,
            &format!("{path}.handshake_timeout"),
            HANDSHAKE_TIMEOUT,
            Bounds::NonZero,
        );
        let client_auth = match &raw.client_auth {
            None => ClientAuth::None,
            Some(a) => self.client_auth(a, &format!("{path}.client_auth"))?,
        };
        if self.errors.len() > errors {
            return None;
        }
        let settings = server::Settings {
            certificates: served,
            alpn,
            handshake_timeout,
            client_auth,
            session_resumption: raw.session_resumption.as_ref().is_none_or(|s| s.value),
            listener: listener.to_string(),
        };
        match ServerTls::build(settings) {
            Ok(tls) => Some(Arc::new(tls)),
            Err(e) => {
                self.err(&t.referenced, path, e);
                None
            }
        }
    }

    pub(super) fn upstream_tls(
        &mut self,
        t: &Spanned<RawUpstreamTls>,
        endpoints: &[EndpointSpec],
        protocol: UpstreamProtocol,
        path: &str,
    ) -> Option<Arc<ClientTls>> {
        let raw = &t.value;
        let errors = self.errors.len();
        let mut digest = DefaultHasher::new();
        let roots = match self.pem(&raw.ca, &raw.ca_pem, &t.referenced, path, "ca", false) {
            Some(src) => {
                hash_source(&src, &mut digest);
                certs::roots(&src)
                    .map_err(|e| {
                        self.err(
                            &located(&raw.ca, &raw.ca_pem, &t.referenced),
                            format!("{path}.ca"),
                            e,
                        )
                    })
                    .ok()
            }
            None => certs::system_roots()
                .map_err(|e| self.err(&t.referenced, format!("{path}.ca"), e))
                .ok(),
        };
        let name = match &raw.sni {
            Some(sni) => match ServerName::try_from(sni.value.clone()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.err(
                        &sni.referenced,
                        format!("{path}.sni"),
                        format!("`{}` is not a DNS name or IP address", sni.value),
                    );
                    None
                }
            },
            None => self.endpoint_name(endpoints, &t.referenced, path),
        };
        // What the cluster's protocol needs the upstream to agree to.
        let default: &[&str] = match protocol {
            UpstreamProtocol::Http1 => &[],
            UpstreamProtocol::Http2 => &["h2"],
            UpstreamProtocol::Auto => &["h2", "http/1.1"],
        };
        let alpn = self.alpn(&raw.alpn, &format!("{path}.alpn"), default);
        if protocol != UpstreamProtocol::Http1 && !alpn.iter().any(|p| p == b"h2") {
            self.err(
                &t.referenced,
                format!("{path}.alpn"),
                "the cluster's protocol is http2 or auto: offer `h2`",
            );
        }
        let client_cert = match &raw.client_certificate {
            Some(c) => {
                let p = format!("{path}.client_certificate");
                if let Some(n) = &c.value.server_names {
                    if let Some(first) = n.first() {
                        self.err(
                            &first.referenced,
                            format!("{p}.server_names"),
                            "not used for a client certificate",
                        );
                    }
                }
                self.certificate(c, &p).map(|(k, _)| {
                    k.cert[0].as_ref().hash(&mut digest);
                    k
                })
            }
            None => None,
        };
        if self.errors.len() > errors {
            return None;
        }
        format!("{name:?}").hash(&mut digest);
        alpn.hash(&mut digest);
        let settings = client::Settings {
            roots: roots?,
            name,
            alpn,
            client_cert,
            key: digest.finish(),
        };
        match ClientTls::build(settings) {
            Ok(tls) => Some(Arc::new(tls)),
            Err(e) => {
                self.err(&t.referenced, path, e);
                None
            }
        }
    }

    /// The name verified by default: the endpoints' one DNS name, or each
    /// endpoint's IP when they are all addresses.
    fn endpoint_name(
        &mut self,
        endpoints: &[EndpointSpec],
        at: &Location,
        path: &str,
    ) -> Option<ServerName<'static>> {
        let mut hosts: Vec<&str> = endpoints
            .iter()
            .filter_map(|e| match &e.target {
                Target::Dns { host, .. } => Some(host.as_str()),
                Target::Ip(_) => None,
            })
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        match hosts.as_slice() {
            [] => None,
            [one] => ServerName::try_from(one.to_string()).ok(),
            many => {
                self.err(
                    at,
                    format!("{path}.sni"),
                    format!(
                        "the endpoints have different DNS names ({}): set `sni` to the name their certificates share",
                        many.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// A chain and its key, checked; the error lands on the field at fault.
    pub(super) fn certificate(
        &mut self,
        c: &Spanned<RawCertificate>,
        path: &str,
    ) -> Option<(Arc<CertifiedKey>, Leaf)> {
        let raw = &c.value;
        let cert = self.pem(&raw.cert, &raw.cert_pem, &c.referenced, path, "cert", true);
        let key = self.pem(&raw.key, &raw.key_pem, &c.referenced, path, "key", true);
        let (cert, key) = (cert?, key?);
        let cert_at = located(&raw.cert, &raw.cert_pem, &c.referenced);
        let key_at = located(&raw.key, &raw.key_pem, &c.referenced);
        let (chain, leaf) = match certs::load_certs(&cert).and_then(|chain| {
            certs::check_validity(&cert, &chain, SystemTime::now()).map(|leaf| (chain, leaf))
        }) {
            Ok(loaded) => loaded,
            Err(e) => {
                self.err(&cert_at, format!("{path}.cert"), e);
                return None;
            }
        };
        match certs::with_key(chain, &key, &cert, &crate::tls::provider()) {
            Ok(k) => Some((k, leaf)),
            Err(e) => {
                self.err(&key_at, format!("{path}.key"), e);
                None
            }
        }
    }

    /// `require` (default) or `optional`, with the CA bundle.
    fn client_auth(&mut self, a: &Spanned<RawClientAuth>, path: &str) -> Option<ClientAuth> {
        let raw = &a.value;
        let ca = self.pem(&raw.ca, &raw.ca_pem, &a.referenced, path, "ca", true);
        let require = match raw.mode.as_ref().map(|m| (m.value.as_str(), m)) {
            None | Some(("require", _)) => true,
            Some(("optional", _)) => false,
            Some((other, m)) => {
                self.err(
                    &m.referenced,
                    format!("{path}.mode"),
                    format!("unknown mode `{other}`: use require or optional"),
                );
                true
            }
        };
        let roots = match certs::roots(&ca?) {
            Ok(r) => r,
            Err(e) => {
                self.err(
                    &located(&raw.ca, &raw.ca_pem, &a.referenced),
                    format!("{path}.ca"),
                    e,
                );
                return None;
            }
        };
        Some(if require {
            ClientAuth::Require(roots)
        } else {
            ClientAuth::Optional(roots)
        })
    }

    /// SNI names: lowercase DNS names, or `*.` and one.
    fn server_names(&mut self, names: &[Spanned<String>], path: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let name = n.value.to_ascii_lowercase();
            let bare = name.strip_prefix("*.").unwrap_or(&name);
            let valid = !bare.contains('*')
                && matches!(ServerName::try_from(bare), Ok(ServerName::DnsName(_)));
            if valid {
                out.push(name);
            } else {
                self.err(
                    &n.referenced,
                    format!("{path}[{i}]"),
                    format!("`{}` is not a DNS name or `*.` followed by one", n.value),
                );
            }
        }
        out
    }

    fn alpn(
        &mut self,
        v: &Option<Vec<Spanned<String>>>,
        path: &str,
        default: &[&str],
    ) -> Vec<Vec<u8>> {
        let Some(v) = v else {
            return default.iter().map(|p| p.as_bytes().to_vec()).collect();
        };
        for (i, p) in v.iter().enumerate() {
            if !KNOWN_ALPN.contains(&p.value.as_str()) {
                self.err(
                    &p.referenced,
                    format!("{path}[{i}]"),
                    format!(
                        "`{}`: the proxy speaks only {} over TLS so far",
                        p.value,
                        KNOWN_ALPN.join(", ")
                    ),
                );
            }
        }
        v.iter().map(|p| p.value.as_bytes().to_vec()).collect()
    }

    /// Exactly one of `<field>` (a file) and `<field>_pem` (inline).
    pub(super) fn pem(
        &mut self,
        file: &Option<Spanned<String>>,
        inline: &Option<Spanned<String>>,
        at: &Location,
        path: &str,
        field: &str,
        required: bool,
    ) -> Option<PemSource> {
        match (file, inline) {
            (Some(f), None) => Some(PemSource::File(self.resolve(&f.value))),
            (None, Some(p)) => Some(PemSource::Inline(p.value.clone())),
            (Some(f), Some(_)) => {
                self.err(
                    &f.referenced,
                    format!("{path}.{field}"),
                    format!("give `{field}` or `{field}_pem`, not both"),
                );
                None
            }
            (None, None) => {
                if required {
                    self.err(
                        at,
                        format!("{path}.{field}"),
                        format!("`{field}` (a PEM file) or `{field}_pem` is required"),
                    );
                }
                None
            }
        }
    }

    /// Relative paths are relative to the config file's directory.
    pub(super) fn resolve(&self, file: &str) -> PathBuf {
        let p = PathBuf::from(file);
        match &self.base {
            Some(base) if p.is_relative() => base.join(p),
            _ => p,
        }
    }
}

/// Where a pair's error points: the field given, else the parent.
fn located(
    file: &Option<Spanned<String>>,
    inline: &Option<Spanned<String>>,
    parent: &Location,
) -> Location {
    file.as_ref()
        .or(inline.as_ref())
        .map(|s| s.referenced)
        .unwrap_or(*parent)
}

/// A file's content, not its name: a rotated file under the same name is
/// new settings.
fn hash_source(src: &PemSource, h: &mut DefaultHasher) {
    src.read().ok().hash(h);
}
