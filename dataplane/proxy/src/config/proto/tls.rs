//! TLS settings between the wire and the raw config.
//!
//! A `DataSource` is a file path or inline PEM; the raw config holds them
//! as `cert`/`cert_pem` (and so on) pairs, so a pushed inline key is
//! validated like a YAML one and redacted from `/config_dump` like one.

use ringmesh_proto::v1 as pb;
use serde_saphyr::Spanned;

use super::{duration, s, wire_duration, ToProtoError};
use crate::config::raw::*;

type Pair = (Option<Spanned<String>>, Option<Spanned<String>>);

fn source(d: &Option<pb::DataSource>) -> Pair {
    match d.as_ref().and_then(|d| d.source.as_ref()) {
        Some(pb::data_source::Source::File(f)) => (Some(s(f.clone())), None),
        Some(pb::data_source::Source::InlinePem(p)) => (None, Some(s(p.clone()))),
        None => (None, None),
    }
}

fn strings(v: &[String]) -> Option<Vec<Spanned<String>>> {
    (!v.is_empty()).then(|| v.iter().cloned().map(s).collect())
}

pub(super) fn certificate(c: &pb::TlsCertificate) -> RawCertificate {
    let (cert, cert_pem) = source(&c.cert);
    let (key, key_pem) = source(&c.key);
    RawCertificate {
        cert,
        cert_pem,
        key,
        key_pem,
        server_names: strings(&c.server_names),
    }
}

pub(super) fn downstream(t: &pb::DownstreamTls) -> RawDownstreamTls {
    RawDownstreamTls {
        certificates: t.certificates.iter().map(|c| s(certificate(c))).collect(),
        alpn: strings(&t.alpn),
        handshake_timeout: duration(&t.handshake_timeout),
        client_auth: t.client_auth.as_ref().map(|a| {
            let (ca, ca_pem) = source(&a.ca);
            let mode = match pb::ClientAuthMode::try_from(a.mode) {
                Ok(pb::ClientAuthMode::Unspecified) => None,
                Ok(pb::ClientAuthMode::Require) => Some("require".to_string()),
                Ok(pb::ClientAuthMode::Optional) => Some("optional".to_string()),
                // Kept, so validation names the unknown value at its field.
                Err(_) => Some(a.mode.to_string()),
            };
            s(RawClientAuth {
                ca,
                ca_pem,
                mode: mode.map(s),
            })
        }),
        session_resumption: t.session_resumption.map(s),
    }
}

pub(super) fn upstream(t: &pb::UpstreamTls) -> RawUpstreamTls {
    let (ca, ca_pem) = source(&t.ca);
    RawUpstreamTls {
        ca,
        ca_pem,
        sni: t.sni.clone().map(s),
        alpn: strings(&t.alpn),
        client_certificate: t.client_certificate.as_ref().map(|c| s(certificate(c))),
    }
}

pub(super) fn mesh(m: &pb::Mesh) -> RawMesh {
    let (trust_bundle, trust_bundle_pem) = source(&m.trust_bundle);
    RawMesh {
        identity: m.identity.as_ref().map(|c| s(certificate(c))),
        trust_bundle,
        trust_bundle_pem,
    }
}

pub(super) fn wire_mesh(m: &RawMesh) -> pb::Mesh {
    pb::Mesh {
        identity: m.identity.as_ref().map(|c| wire_certificate(&c.value)),
        trust_bundle: wire_source((&m.trust_bundle, &m.trust_bundle_pem)),
    }
}

fn wire_source(
    pair: (&Option<Spanned<String>>, &Option<Spanned<String>>),
) -> Option<pb::DataSource> {
    use pb::data_source::Source;
    let source = match pair {
        (Some(f), _) => Source::File(f.value.clone()),
        (None, Some(p)) => Source::InlinePem(p.value.clone()),
        (None, None) => return None,
    };
    Some(pb::DataSource {
        source: Some(source),
    })
}

fn wire_strings(v: &Option<Vec<Spanned<String>>>) -> Vec<String> {
    v.iter().flatten().map(|x| x.value.clone()).collect()
}

pub(super) fn wire_certificate(c: &RawCertificate) -> pb::TlsCertificate {
    pb::TlsCertificate {
        cert: wire_source((&c.cert, &c.cert_pem)),
        key: wire_source((&c.key, &c.key_pem)),
        server_names: wire_strings(&c.server_names),
    }
}

pub(super) fn wire_downstream(
    t: &RawDownstreamTls,
    path: &str,
) -> Result<pb::DownstreamTls, ToProtoError> {
    let client_auth = match &t.client_auth {
        None => None,
        Some(a) => {
            let mode = match a.value.mode.as_ref().map(|m| m.value.as_str()) {
                None => pb::ClientAuthMode::Unspecified,
                Some("require") => pb::ClientAuthMode::Require,
                Some("optional") => pb::ClientAuthMode::Optional,
                Some(other) => {
                    return Err(ToProtoError {
                        path: format!("{path}.client_auth.mode"),
                        message: format!("unknown client_auth mode `{other}`"),
                    })
                }
            };
            Some(pb::ClientAuth {
                ca: wire_source((&a.value.ca, &a.value.ca_pem)),
                mode: mode as i32,
            })
        }
    };
    Ok(pb::DownstreamTls {
        certificates: t
            .certificates
            .iter()
            .map(|c| wire_certificate(&c.value))
            .collect(),
        alpn: wire_strings(&t.alpn),
        handshake_timeout: wire_duration(
            &t.handshake_timeout,
            &format!("{path}.handshake_timeout"),
        )?,
        client_auth,
        session_resumption: t.session_resumption.as_ref().map(|v| v.value),
    })
}

pub(super) fn wire_upstream(t: &RawUpstreamTls) -> pb::UpstreamTls {
    pb::UpstreamTls {
        ca: wire_source((&t.ca, &t.ca_pem)),
        sni: t.sni.as_ref().map(|v| v.value.clone()),
        alpn: wire_strings(&t.alpn),
        client_certificate: t
            .client_certificate
            .as_ref()
            .map(|c| wire_certificate(&c.value)),
    }
}
