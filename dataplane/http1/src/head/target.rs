//! Request targets: which of the four forms of RFC 9112 section 3.2 a
//! request line uses, and where its authority and origin-form parts are.
//!
//! The proxy routes on the path and the authority, and always sends the
//! upstream an origin-form target with a Host header, so every form is
//! reduced here to those parts, as byte ranges (nothing is copied). A target
//! that is none of the forms, or one that parsers downstream could read
//! differently from us (userinfo, a scheme other than http(s), an empty host,
//! a fragment), is refused with a 400 rather than passed on.

use super::Span;
use crate::HeadError;

/// The form of a request target (RFC 9112 section 3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetForm {
    /// `/path?query`: what clients send to an origin server.
    Origin,
    /// `http://host:port/path?query`: what clients send to a forward proxy,
    /// and which a server MUST accept too (RFC 9112 section 3.2.2).
    Absolute,
    /// `host:port`, for CONNECT only: the proxy refuses it (405) itself.
    Authority,
    /// `*`, for a server-wide OPTIONS only: forwarded as is.
    Asterisk,
}

/// Where the parts of a target are, once its form is known.
pub(super) struct Target {
    pub form: TargetForm,
    /// The authority of an absolute-form target.
    pub authority: Option<Span>,
    /// Path and query: the whole target unless absolute-form.
    pub origin: Span,
}

const INVALID: HeadError = HeadError::Syntax("invalid_request_target");

/// Classify `target` (a span of `buf`) for a request with `method`.
pub(super) fn parse(method: &[u8], target: Span, buf: &[u8]) -> Result<Target, HeadError> {
    let bytes = target.get(buf);
    let whole = |form| Target {
        form,
        authority: None,
        origin: target,
    };
    if method == b"CONNECT" {
        // CONNECT takes authority-form only, and with a port.
        return match is_authority(bytes, true) {
            true => Ok(whole(TargetForm::Authority)),
            false => Err(INVALID),
        };
    }
    match bytes {
        [b'/', ..] => return Ok(whole(TargetForm::Origin)),
        b"*" if method == b"OPTIONS" => return Ok(whole(TargetForm::Asterisk)),
        _ => {}
    }
    let after_scheme = scheme_len(bytes).ok_or(INVALID)?;
    let rest = &bytes[after_scheme..];
    // An absolute-URI has no fragment; a client never sends one.
    if rest.contains(&b'#') {
        return Err(INVALID);
    }
    let authority_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    if !is_authority(&rest[..authority_len], false) {
        return Err(INVALID);
    }
    let sub = |from: usize, to: usize| Span {
        start: target.start + from as u32,
        end: target.start + to as u32,
    };
    Ok(Target {
        form: TargetForm::Absolute,
        authority: Some(sub(after_scheme, after_scheme + authority_len)),
        origin: sub(after_scheme + authority_len, bytes.len()),
    })
}

/// The length of an `http://` or `https://` prefix (any case), or `None`
/// when the target does not start with one: any other scheme, a target with
/// no `//`, or a bare word.
fn scheme_len(target: &[u8]) -> Option<usize> {
    let colon = target.iter().position(|&b| b == b':')?;
    let scheme = &target[..colon];
    let http = scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https");
    (http && target[colon..].starts_with(b"://")).then_some(colon + 3)
}

/// `host[:port]` with no userinfo: a reg-name or IPv4 address (RFC 3986
/// characters, `@` excluded) or a bracketed IPv6 literal, and a decimal port
/// of at most 65535 (an empty port is refused: parsers disagree on it).
fn is_authority(authority: &[u8], port_required: bool) -> bool {
    let (host_ok, port) = match authority {
        [b'[', rest @ ..] => {
            let Some(close) = rest.iter().position(|&b| b == b']') else {
                return false;
            };
            let literal = &rest[..close];
            let ok = !literal.is_empty()
                && literal
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            match &rest[close + 1..] {
                [] => (ok, None),
                [b':', port @ ..] => (ok, Some(port)),
                _ => return false,
            }
        }
        _ => {
            let (host, port) = match authority.iter().rposition(|&b| b == b':') {
                Some(i) => (&authority[..i], Some(&authority[i + 1..])),
                None => (authority, None),
            };
            (
                !host.is_empty() && host.iter().all(|&b| is_reg_name_byte(b)),
                port,
            )
        }
    };
    host_ok
        && match port {
            None => !port_required,
            Some(port) => is_port(port),
        }
}

/// unreserved, sub-delims and `%` of pct-encoded (RFC 3986 section 3.2.2).
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}

fn is_port(port: &[u8]) -> bool {
    (1..=5).contains(&port.len())
        && port.iter().all(u8::is_ascii_digit)
        && port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535
}
