//! Why a request failed, who is at fault, whether another try may help,
//! and the response that says so.
//!
//! Every failure the proxy answers itself goes through `ProxyError`, and
//! `ProxyError::status` is the one place a failure becomes a status code.
//! The reason travels in the `ringmesh-error` response header and the body,
//! so a user can act on a 502 without reading proxy logs.

use std::fmt;

use ringmesh_http1::{ChunkedError, HeadError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Downstream,
    Upstream,
    /// The proxy's own config or limits.
    Proxy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The request head broke a framing or syntax rule.
    BadRequest(HeadError),
    /// The request's chunked body was malformed.
    BadRequestBody(ChunkedError),
    /// The head did not arrive within `header_read_timeout`.
    HeaderTimeout,
    NoRoute,
    /// The cluster has no endpoints (DNS gave none, or none configured).
    NoEndpoints,
    /// A circuit breaker's threshold (this core's share) is reached.
    Overflow(crate::circuit_breaker::Breaker),
    ConnectFailed,
    ConnectTimeout,
    /// The upstream closed or reset before a complete response head.
    UpstreamReset,
    /// No response head within the route's timeout.
    UpstreamTimeout,
    /// The upstream's response head broke a framing or syntax rule.
    BadUpstreamResponse(HeadError),
    /// A method the proxy does not forward (CONNECT).
    MethodNotAllowed,
    /// The upstream switched protocols on a request that did not ask to.
    UnexpectedUpgrade,
    /// A route's fault filter answered with this status.
    FaultAbort(u16),
    /// Over the route's local rate limit; a token is back in this many
    /// whole seconds (the `retry-after`, at least 1).
    RateLimited(u32),
    /// The TLS handshake with the upstream failed, for this reason
    /// (`tls::reason::describe`).
    UpstreamTls(&'static str),
    /// The request cannot be expressed to the upstream's protocol (h2
    /// refused a header the client's protocol allowed).
    UnsendableRequest,
    /// The listener's authorization policies refused the request.
    Forbidden,
    /// The path has no normal form to authorize (an encoded `/` or `\\`,
    /// a broken escape).
    BadPath,
}

impl ProxyError {
    pub fn status(self) -> u16 {
        match self {
            ProxyError::BadRequest(e) => e.status(),
            ProxyError::BadRequestBody(_) => 400,
            ProxyError::HeaderTimeout => 408,
            ProxyError::NoRoute => 404,
            ProxyError::NoEndpoints | ProxyError::Overflow(_) => 503,
            ProxyError::ConnectFailed
            | ProxyError::UpstreamReset
            | ProxyError::BadUpstreamResponse(_) => 502,
            ProxyError::ConnectTimeout | ProxyError::UpstreamTimeout => 504,
            ProxyError::MethodNotAllowed => 405,
            ProxyError::UnexpectedUpgrade | ProxyError::UpstreamTls(_) => 502,
            ProxyError::FaultAbort(status) => status,
            ProxyError::RateLimited(_) => 429,
            ProxyError::UnsendableRequest => 502,
            ProxyError::Forbidden => 403,
            ProxyError::BadPath => 400,
        }
    }

    /// Stable identifier for logs, metrics and the `ringmesh-error` header.
    pub fn reason(self) -> &'static str {
        match self {
            ProxyError::BadRequest(e) => e.reason(),
            ProxyError::BadRequestBody(_) => "invalid_chunked_body",
            ProxyError::HeaderTimeout => "request_header_timeout",
            ProxyError::NoRoute => "no_route",
            ProxyError::NoEndpoints => "no_healthy_endpoints",
            ProxyError::Overflow(_) => "overflow",
            ProxyError::ConnectFailed => "upstream_connect_failed",
            ProxyError::ConnectTimeout => "upstream_connect_timeout",
            ProxyError::UpstreamReset => "upstream_reset_before_response",
            ProxyError::UpstreamTimeout => "upstream_response_timeout",
            ProxyError::BadUpstreamResponse(_) => "upstream_invalid_response",
            ProxyError::MethodNotAllowed => "method_not_allowed",
            ProxyError::UnexpectedUpgrade => "upstream_unexpected_upgrade",
            ProxyError::FaultAbort(_) => "fault_abort",
            ProxyError::RateLimited(_) => "rate_limited",
            ProxyError::UpstreamTls(_) => "upstream_tls_failed",
            ProxyError::UnsendableRequest => "request_not_forwardable",
            ProxyError::Forbidden => "authorization_denied",
            ProxyError::BadPath => "invalid_path",
        }
    }

    /// Envoy's response flag for the access log (`-`: Envoy has none;
    /// `reason` says what happened).
    pub fn response_flags(self) -> &'static str {
        match self {
            ProxyError::NoRoute => "NR",
            ProxyError::NoEndpoints => "UH",
            ProxyError::Overflow(_) => "UO",
            ProxyError::ConnectFailed | ProxyError::ConnectTimeout | ProxyError::UpstreamTls(_) => {
                "UF"
            }
            ProxyError::UpstreamTimeout => "UT",
            ProxyError::UpstreamReset => "UC",
            ProxyError::BadUpstreamResponse(_) | ProxyError::UnexpectedUpgrade => "UPE",
            ProxyError::BadRequest(_) | ProxyError::BadRequestBody(_) | ProxyError::BadPath => {
                "DPE"
            }
            ProxyError::FaultAbort(_) => "FI",
            ProxyError::RateLimited(_) => "RL",
            ProxyError::HeaderTimeout
            | ProxyError::Forbidden
            | ProxyError::MethodNotAllowed
            | ProxyError::UnsendableRequest => "-",
        }
    }

    pub fn fault(self) -> Fault {
        match self {
            ProxyError::BadRequest(_)
            | ProxyError::BadRequestBody(_)
            | ProxyError::HeaderTimeout
            | ProxyError::MethodNotAllowed
            | ProxyError::Forbidden
            | ProxyError::BadPath => Fault::Downstream,
            ProxyError::NoRoute
            | ProxyError::NoEndpoints
            | ProxyError::Overflow(_)
            | ProxyError::FaultAbort(_)
            | ProxyError::RateLimited(_)
            | ProxyError::UnsendableRequest => Fault::Proxy,
            ProxyError::ConnectFailed
            | ProxyError::ConnectTimeout
            | ProxyError::UpstreamReset
            | ProxyError::UpstreamTimeout
            | ProxyError::BadUpstreamResponse(_)
            | ProxyError::UnexpectedUpgrade
            | ProxyError::UpstreamTls(_) => Fault::Upstream,
        }
    }

    /// Whether another try (on another connection or endpoint) may succeed
    /// where this one failed, were the request safe to send again: the
    /// upstream side failed, or a limit of this core was hit.
    pub fn retryable(self) -> bool {
        match self {
            ProxyError::ConnectFailed | ProxyError::ConnectTimeout | ProxyError::UpstreamReset => {
                true
            }
            // The time for the request is spent; the same upstream would
            // answer the same way (a certificate is wrong for every try);
            // the limit is the cluster's, not the endpoint's; or the client
            // or the config is at fault.
            ProxyError::UpstreamTimeout
            | ProxyError::UpstreamTls(_)
            | ProxyError::BadUpstreamResponse(_)
            | ProxyError::UnexpectedUpgrade
            | ProxyError::Overflow(_)
            | ProxyError::NoEndpoints
            | ProxyError::NoRoute
            | ProxyError::BadRequest(_)
            | ProxyError::BadRequestBody(_)
            | ProxyError::HeaderTimeout
            | ProxyError::MethodNotAllowed
            | ProxyError::FaultAbort(_)
            | ProxyError::RateLimited(_)
            | ProxyError::UnsendableRequest
            | ProxyError::Forbidden
            | ProxyError::BadPath => false,
        }
    }

    /// Worth a log line: failures that say something about the system, not
    /// a client's mistake (those are counted in metrics), an injected
    /// fault or a rate limit that does what it was told.
    pub fn is_logged(self) -> bool {
        matches!(self.fault(), Fault::Upstream | Fault::Proxy)
            && !matches!(
                self,
                ProxyError::FaultAbort(_) | ProxyError::RateLimited(_) | ProxyError::NoRoute
            )
    }

    /// The gRPC status a gRPC client gets for this failure (the codes of
    /// gRPC's `statuscodes.md`): UNAVAILABLE where another try may work,
    /// DEADLINE_EXCEEDED for a timeout, UNIMPLEMENTED for a call nothing
    /// serves, INTERNAL for a broken message; an injected fault maps its
    /// HTTP status as gRPC's `http-grpc-status-mapping.md` does.
    pub fn grpc_status(self) -> u8 {
        const INTERNAL: u8 = 13;
        const UNAVAILABLE: u8 = 14;
        match self {
            ProxyError::BadRequest(_) | ProxyError::BadRequestBody(_) => INTERNAL,
            ProxyError::BadUpstreamResponse(_) | ProxyError::UnsendableRequest => INTERNAL,
            ProxyError::HeaderTimeout | ProxyError::UpstreamTimeout => 4,
            ProxyError::ConnectTimeout => UNAVAILABLE,
            ProxyError::NoRoute | ProxyError::MethodNotAllowed => 12,
            ProxyError::Forbidden => 7,
            ProxyError::BadPath => INTERNAL,
            ProxyError::NoEndpoints
            | ProxyError::Overflow(_)
            | ProxyError::ConnectFailed
            | ProxyError::UpstreamReset
            | ProxyError::UnexpectedUpgrade
            | ProxyError::UpstreamTls(_) => UNAVAILABLE,
            ProxyError::FaultAbort(status) => grpc_status_of_http(status),
            // RESOURCE_EXHAUSTED, as Envoy's local rate limit answers gRPC.
            ProxyError::RateLimited(_) => 8,
        }
    }

    /// The `retry-after` of the response, in seconds, if it has one.
    pub fn retry_after(self) -> Option<u32> {
        match self {
            ProxyError::RateLimited(secs) => Some(secs),
            _ => None,
        }
    }

    /// Whether the client connection must close after the error response:
    /// after a framing error the rest of the stream cannot be trusted.
    pub fn closes_connection(self) -> bool {
        // A refused request was well formed: the connection can go on.
        self.fault() == Fault::Downstream && self != ProxyError::Forbidden
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())?;
        match self {
            ProxyError::BadUpstreamResponse(e) => write!(f, " ({e})"),
            ProxyError::BadRequestBody(e) => write!(f, " ({e})"),
            ProxyError::UpstreamTls(why) => write!(f, ": {why}"),
            ProxyError::Overflow(b) => write!(f, ": the cluster's {} limit", b.label()),
            _ => Ok(()),
        }
    }
}

/// Append the response for `err` to `out`.
/// Returns the body's length.
pub fn write_error_response(out: &mut Vec<u8>, err: ProxyError, close: bool) -> usize {
    let status = err.status();
    let body = err.to_string();
    ringmesh_http1::rewrite::write_status_line(out, status, reason_phrase(status).as_bytes());
    out.extend_from_slice(b"content-type: text/plain\r\nringmesh-error: ");
    out.extend_from_slice(err.reason().as_bytes());
    if let Some(secs) = err.retry_after() {
        out.extend_from_slice(b"\r\nretry-after: ");
        out.extend_from_slice(itoa::Buffer::new().format(secs).as_bytes());
    }
    out.extend_from_slice(format!("\r\ncontent-length: {}\r\n", body.len() + 1).as_bytes());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out.push(b'\n');
    body.len() + 1
}

/// gRPC's mapping of an HTTP status from a server that is not gRPC.
pub fn grpc_status_of_http(status: u16) -> u8 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit_breaker::Breaker;

    #[test]
    fn every_error_maps_to_its_status() {
        let cases = [
            (ProxyError::BadRequest(HeadError::InvalidContentLength), 400),
            (ProxyError::BadRequest(HeadError::TooManyHeaders), 431),
            (ProxyError::HeaderTimeout, 408),
            (ProxyError::NoRoute, 404),
            (ProxyError::NoEndpoints, 503),
            (ProxyError::Overflow(Breaker::Connections), 503),
            (ProxyError::ConnectFailed, 502),
            (ProxyError::UpstreamReset, 502),
            (ProxyError::ConnectTimeout, 504),
            (ProxyError::UpstreamTimeout, 504),
            (ProxyError::MethodNotAllowed, 405),
            (ProxyError::UnexpectedUpgrade, 502),
            (ProxyError::FaultAbort(418), 418),
            (ProxyError::RateLimited(3), 429),
            (ProxyError::UpstreamTls("certificate expired"), 502),
        ];
        for (err, status) in cases {
            assert_eq!(err.status(), status, "{err}");
        }
    }

    #[test]
    fn a_rate_limited_request_says_when_to_come_back() {
        let err = ProxyError::RateLimited(3);
        let mut out = Vec::new();
        write_error_response(&mut out, err, false);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nringmesh-error: rate_limited\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nretry-after: 3\r\n"), "{text}");
        assert_eq!(err.grpc_status(), 8);
        assert!(!err.retryable() && !err.is_logged() && !err.closes_connection());
    }

    #[test]
    fn a_tls_failure_says_why() {
        let err = ProxyError::UpstreamTls("certificate expired");
        assert_eq!(err.to_string(), "upstream_tls_failed: certificate expired");
        assert!(!err.retryable());
        assert_eq!(err.fault(), Fault::Upstream);
    }

    #[test]
    fn only_failures_another_try_may_fix_are_retryable() {
        assert!(ProxyError::ConnectFailed.retryable());
        assert!(ProxyError::UpstreamReset.retryable());
        assert!(!ProxyError::Overflow(Breaker::Requests).retryable());
        assert!(!ProxyError::UpstreamTimeout.retryable());
        assert!(!ProxyError::BadRequestBody(ringmesh_http1::ChunkedError::InvalidSize).retryable());
    }

    #[test]
    fn error_response_carries_the_reason() {
        let mut out = Vec::new();
        write_error_response(&mut out, ProxyError::ConnectFailed, false);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\nringmesh-error: upstream_connect_failed\r\ncontent-length: 24\r\n\r\nupstream_connect_failed\n"
        );
    }
}
