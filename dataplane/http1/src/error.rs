//! Why a head was refused, and which status that maps to.

use std::fmt;

/// A request or response head that cannot be forwarded.
///
/// Each variant names the rule that was broken so the proxy can log it and
/// send it back in its error response; `status()` gives the response status a
/// proxy answers a bad *request* head with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// The head is longer than the configured limit (431).
    HeadTooLarge,
    /// More header fields than the configured limit (431).
    TooManyHeaders,
    /// httparse refused the syntax: whitespace before a colon, obsolete line
    /// folding, bad token characters, bad request line (400); or the request
    /// target is of no valid form (`invalid_request_target`, 400).
    Syntax(&'static str),
    /// Both Content-Length and Transfer-Encoding (400).
    ContentLengthAndTransferEncoding,
    /// A Content-Length that is not a number, or several that disagree (400).
    InvalidContentLength,
    /// A Transfer-Encoding other than a single final `chunked` (400).
    UnsupportedTransferEncoding,
    /// Transfer-Encoding in an HTTP/1.0 message (400).
    TransferEncodingInHttp10,
    /// HTTP/1.1 request without Host, or with several (400).
    InvalidHost,
}

impl HeadError {
    /// The status a proxy answers a request with this error with.
    pub fn status(self) -> u16 {
        match self {
            HeadError::HeadTooLarge | HeadError::TooManyHeaders => 431,
            _ => 400,
        }
    }

    /// A short stable identifier, used in logs and the error header.
    pub fn reason(self) -> &'static str {
        match self {
            HeadError::HeadTooLarge => "header_bytes_over_limit",
            HeadError::TooManyHeaders => "header_count_over_limit",
            HeadError::Syntax(what) => what,
            HeadError::ContentLengthAndTransferEncoding => "content_length_and_transfer_encoding",
            HeadError::InvalidContentLength => "invalid_content_length",
            HeadError::UnsupportedTransferEncoding => "unsupported_transfer_encoding",
            HeadError::TransferEncodingInHttp10 => "transfer_encoding_in_http10",
            HeadError::InvalidHost => "invalid_host",
        }
    }

    pub(crate) fn from_httparse(err: httparse::Error) -> Self {
        use httparse::Error as E;
        match err {
            E::TooManyHeaders => HeadError::TooManyHeaders,
            E::HeaderName => HeadError::Syntax("invalid_header_name"),
            E::HeaderValue => HeadError::Syntax("invalid_header_value"),
            E::NewLine => HeadError::Syntax("invalid_line_ending"),
            E::Status => HeadError::Syntax("invalid_status"),
            E::Token => HeadError::Syntax("invalid_token"),
            E::Version => HeadError::Syntax("invalid_version"),
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for HeadError {}
