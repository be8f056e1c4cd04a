//! TLS failures as short, fixed reasons: label values for
//! `ringmesh_tls_handshake_failures_total` and the text after
//! `upstream_tls_failed:` in a 502. Fixed strings, so counting a failure
//! allocates nothing and an attacker's input never reaches a label.

use rustls::{AlertDescription, CertificateError, Error};

use crate::transport::tls::TlsError;

/// Why a handshake failed, as a metric label.
pub fn label(e: &TlsError) -> &'static str {
    match e {
        TlsError::Eof => "peer_closed",
        TlsError::Io(_) => "io",
        TlsError::Tls(e) => match e {
            Error::PeerIncompatible(_) => "incompatible",
            Error::NoApplicationProtocol => "no_alpn",
            Error::NoCertificatesPresented => "no_client_certificate",
            Error::InvalidCertificate(_) => "bad_certificate",
            Error::AlertReceived(_) => "alert_received",
            _ => "protocol_error",
        },
    }
}

/// Why a handshake failed, for a person reading a 502 or a log.
pub fn describe(e: &TlsError) -> &'static str {
    match e {
        TlsError::Eof => "connection closed during the handshake",
        TlsError::Io(_) => "connection error during the handshake",
        TlsError::Tls(e) => describe_tls(e),
    }
}

fn describe_tls(e: &Error) -> &'static str {
    match e {
        Error::InvalidCertificate(c) => certificate(c),
        Error::PeerIncompatible(_) => "no common TLS version or cipher suite",
        Error::NoApplicationProtocol => "no common ALPN protocol",
        Error::NoCertificatesPresented => "no certificate presented",
        Error::AlertReceived(a) => alert(*a),
        Error::DecryptError => "decryption failed",
        _ => "TLS protocol error",
    }
}

/// The reason, when a read or write on an established connection failed
/// because of TLS (`transport::tls` wraps rustls' error in the
/// `io::Error`): in TLS 1.3 a server refuses a client certificate after
/// the client's side of the handshake is done, at the first read.
pub fn of_io(e: &std::io::Error) -> Option<&'static str> {
    e.get_ref()?.downcast_ref::<Error>().map(describe_tls)
}

fn certificate(c: &CertificateError) -> &'static str {
    match c {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate expired"
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate not yet valid"
        }
        CertificateError::UnknownIssuer => "certificate signed by an unknown authority",
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "certificate not valid for the server name"
        }
        // The mesh's verifiers (`tls::mesh`): a chain that is fine but
        // names another workload, or none.
        CertificateError::ApplicationVerificationFailure => {
            "certificate lacks the expected SPIFFE ID"
        }
        CertificateError::BadSignature => "bad certificate signature",
        CertificateError::Revoked => "certificate revoked",
        CertificateError::BadEncoding => "malformed certificate",
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "certificate not valid for this purpose"
        }
        _ => "invalid certificate",
    }
}

fn alert(a: AlertDescription) -> &'static str {
    match a {
        AlertDescription::ProtocolVersion => "peer refused the TLS version",
        AlertDescription::HandshakeFailure | AlertDescription::InsufficientSecurity => {
            "peer refused the handshake"
        }
        AlertDescription::BadCertificate
        | AlertDescription::UnknownCA
        | AlertDescription::CertificateRequired
        | AlertDescription::CertificateExpired
        | AlertDescription::CertificateUnknown
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::AccessDenied => "peer refused our certificate",
        AlertDescription::NoApplicationProtocol => "no common ALPN protocol",
        AlertDescription::UnrecognisedName => "peer does not serve this server name",
        _ => "peer sent a TLS alert",
    }
}
