//! What the proxy reads from gRPC calls (gRPC over HTTP/2,
//! `PROTOCOL-HTTP2.md`): whether a request is one, its deadline, and the
//! status a response carries in its head.

use std::time::Duration;

use crate::view::{RequestView, ResponseView};

/// A gRPC request: `content-type: application/grpc`, alone or with a
/// `+codec` or `;parameters` suffix.
pub fn is_grpc(req: &dyn RequestView) -> bool {
    req.header(b"content-type").is_some_and(|ct| {
        const GRPC: &[u8] = b"application/grpc";
        ct.len() >= GRPC.len()
            && ct[..GRPC.len()].eq_ignore_ascii_case(GRPC)
            && matches!(ct.get(GRPC.len()), None | Some(b'+' | b';'))
    })
}

/// The call's `grpc-timeout`: up to 8 digits and a unit (`H`, `M`, `S`,
/// `m`, `u`, `n`). A malformed one is ignored, as gRPC servers do.
pub fn timeout(req: &dyn RequestView) -> Option<Duration> {
    let v = req.header(b"grpc-timeout")?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(n * 3600),
        b"M" => Duration::from_secs(n * 60),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The `grpc-status` of a response head: set when the call failed before
/// any message (Trailers-Only).
pub fn status(resp: &dyn ResponseView) -> Option<u8> {
    let v = resp.header(b"grpc-status")?;
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The `grpc-status` among trailers.
pub fn status_in(trailers: &http::HeaderMap) -> Option<u8> {
    trailers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::view::H2Request;

    fn req(headers: &[(&str, &str)]) -> H2Request {
        let mut b = http::Request::builder().method("POST").uri("http://a/s/M");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        let (parts, ()) = b.body(()).unwrap().into_parts();
        H2Request {
            parts,
            scheme: b"http",
            empty: false,
        }
    }

    #[test]
    fn grpc_requests_are_told_by_content_type() {
        assert!(is_grpc(&req(&[("content-type", "application/grpc")])));
        assert!(is_grpc(&req(&[("content-type", "application/grpc+proto")])));
        assert!(is_grpc(&req(&[(
            "content-type",
            "application/grpc;charset=x"
        )])));
        assert!(!is_grpc(&req(&[("content-type", "application/grpc-web")])));
        assert!(!is_grpc(&req(&[("content-type", "application/json")])));
        assert!(!is_grpc(&req(&[])));
    }

    #[test]
    fn grpc_timeouts_parse_every_unit_and_refuse_junk() {
        let t = |v: &str| timeout(&req(&[("grpc-timeout", v)]));
        assert_eq!(t("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(t("3M"), Some(Duration::from_secs(180)));
        assert_eq!(t("10S"), Some(Duration::from_secs(10)));
        assert_eq!(t("250m"), Some(Duration::from_millis(250)));
        assert_eq!(t("7u"), Some(Duration::from_micros(7)));
        assert_eq!(t("9n"), Some(Duration::from_nanos(9)));
        assert_eq!(t("123456789S"), None, "more than 8 digits");
        assert_eq!(t("S"), None);
        assert_eq!(t("1x"), None);
        assert_eq!(t("-1S"), None);
    }
}
