//! Access log lines: what one request (or TCP connection) did, as JSON or
//! as a template of Envoy's command operators (`%START_TIME%`,
//! `%REQ(:METHOD)%`, `%RESPONSE_CODE%`, ...), so a line reads the way an
//! Envoy, Istio or nginx user expects.
//!
//! A line is written on the request's core straight into the core's log
//! buffer (`batch::Outbox`): no allocation, no lock. A template is
//! compiled once, when the config is validated, into literal bytes and
//! field operators.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::clock;
use crate::view::RequestView;

/// How a listener's lines look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line, every field (Istio's names).
    Json,
    /// A compiled `%OPERATOR%` template; a newline ends each line.
    Template(Vec<Piece>),
}

/// Envoy's default text format (its `RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)`
/// spelled `UPSTREAM_SERVICE_TIME`: ringmesh adds no such header).
pub const TEXT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%\" \
%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \
%UPSTREAM_SERVICE_TIME% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \
\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(Box<[u8]>),
    Field(Field),
    /// `%REQ(name)%`: a request header (lowercase name).
    Header(Box<[u8]>),
}

/// The operators a template may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    StartTime,
    Method,
    Authority,
    /// Path and query, as `:path` in HTTP/2.
    Path,
    Scheme,
    RequestId,
    Protocol,
    ResponseCode,
    ResponseFlags,
    ResponseCodeDetails,
    BytesReceived,
    BytesSent,
    Duration,
    UpstreamServiceTime,
    UpstreamHost,
    UpstreamCluster,
    RouteName,
    DownstreamRemoteAddress,
    DownstreamPeerUriSan,
    TraceId,
    GrpcStatus,
    GrpcStatusNumber,
}

const OPERATORS: &[(&str, Field)] = &[
    ("START_TIME", Field::StartTime),
    ("PROTOCOL", Field::Protocol),
    ("RESPONSE_CODE", Field::ResponseCode),
    ("RESPONSE_FLAGS", Field::ResponseFlags),
    ("RESPONSE_CODE_DETAILS", Field::ResponseCodeDetails),
    ("BYTES_RECEIVED", Field::BytesReceived),
    ("BYTES_SENT", Field::BytesSent),
    ("DURATION", Field::Duration),
    ("UPSTREAM_SERVICE_TIME", Field::UpstreamServiceTime),
    ("UPSTREAM_HOST", Field::UpstreamHost),
    ("UPSTREAM_CLUSTER", Field::UpstreamCluster),
    ("ROUTE_NAME", Field::RouteName),
    ("DOWNSTREAM_REMOTE_ADDRESS", Field::DownstreamRemoteAddress),
    ("DOWNSTREAM_PEER_URI_SAN", Field::DownstreamPeerUriSan),
    ("TRACE_ID", Field::TraceId),
    ("GRPC_STATUS", Field::GrpcStatus),
    ("GRPC_STATUS_NUMBER", Field::GrpcStatusNumber),
];

/// `REQ(...)` names that are not plain headers.
const PSEUDO: &[(&str, Field)] = &[
    (":method", Field::Method),
    (":authority", Field::Authority),
    (":path", Field::Path),
    (":scheme", Field::Scheme),
    ("x-request-id", Field::RequestId),
];

impl Format {
    /// `json`, `text` (Envoy's default format) or a template.
    pub fn parse(text: &str) -> Result<Format, String> {
        match text {
            "json" => Ok(Format::Json),
            "text" => compile(TEXT),
            t if t.contains('%') => compile(t),
            other => Err(format!(
                "unknown format `{other}`: use json, text, or a template of %OPERATOR%s such as \"%START_TIME% %REQ(:METHOD)% %RESPONSE_CODE%\""
            )),
        }
    }
}

fn compile(text: &str) -> Result<Format, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        if start > 0 {
            pieces.push(Piece::Literal(rest.as_bytes()[..start].into()));
        }
        let after = &rest[start + 1..];
        let end = after.find('%').ok_or_else(|| {
            format!(
                "`%` at byte {} opens an operator nobody closes",
                text.len() - rest.len() + start
            )
        })?;
        pieces.push(operator(&after[..end])?);
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.as_bytes().into()));
    }
    Ok(Format::Template(pieces))
}

fn operator(name: &str) -> Result<Piece, String> {
    if let Some(inner) = name.strip_prefix("REQ(").and_then(|n| n.strip_suffix(')')) {
        let lower = inner.to_ascii_lowercase();
        if lower.is_empty() || lower.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(format!("`%{name}%`: REQ() needs a header name"));
        }
        return Ok(match PSEUDO.iter().find(|(n, _)| *n == lower) {
            Some((_, f)) => Piece::Field(*f),
            None if lower.starts_with(':') => {
                return Err(format!(
                    "`%{name}%`: unknown pseudo-header; use :method, :authority, :path or :scheme"
                ))
            }
            None => Piece::Header(lower.into_bytes().into()),
        });
    }
    match OPERATORS.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => Ok(Piece::Field(*f)),
        None => {
            let names: Vec<&str> = OPERATORS.iter().map(|(n, _)| *n).collect();
            let hint = names
                .iter()
                .filter(|n| strsim::jaro_winkler(n, name) > 0.85)
                .max_by(|a, b| {
                    strsim::jaro_winkler(a, name).total_cmp(&strsim::jaro_winkler(b, name))
                })
                .map(|n| format!(" (did you mean {n}?)"))
                .unwrap_or_default();
            Err(format!(
                "unknown operator `%{name}%`{hint}; known: REQ(header), {}",
                names.join(", ")
            ))
        }
    }
}

/// What one finished request or TCP connection did.
pub struct Entry<'a> {
    pub start: SystemTime,
    pub duration: Duration,
    /// `None` for a TCP connection.
    pub request: Option<&'a dyn RequestView>,
    /// `HTTP/1.1`, `HTTP/2` or `TCP`.
    pub protocol: &'static str,
    /// `None`: no response (TCP).
    pub status: Option<u16>,
    /// Envoy's response flags (`UF`, `NR`, ...), or `-`.
    pub flags: &'static str,
    /// Why the proxy answered as it did (`via_upstream`, or the reason of
    /// its own answer).
    pub details: &'static str,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub upstream_time: Option<Duration>,
    pub upstream_host: Option<SocketAddr>,
    pub cluster: &'a str,
    pub route: &'a str,
    pub listener: &'a str,
    pub client: SocketAddr,
    /// The caller's workload identity (SPIFFE ID without the scheme).
    pub principal: Option<&'a [u8]>,
    pub trace_id: Option<[u8; 16]>,
    /// The request's `x-request-id`, sent or generated.
    pub request_id: Option<&'a [u8]>,
    pub grpc: Option<u8>,
}

impl<'a> Entry<'a> {
    /// What a line without a request says (a TCP connection, a request
    /// refused before its head was complete), ending now after
    /// `duration`: the rest is filled in by the caller.
    pub fn without_request(
        protocol: &'static str,
        listener: &'a str,
        client: SocketAddr,
        principal: Option<&'a [u8]>,
        duration: Duration,
    ) -> Self {
        Entry {
            start: clock::started(SystemTime::now(), duration),
            duration,
            request: None,
            protocol,
            status: None,
            flags: "-",
            details: "",
            bytes_received: 0,
            bytes_sent: 0,
            upstream_time: None,
            upstream_host: None,
            cluster: "",
            route: "",
            listener,
            client,
            principal,
            trace_id: None,
            request_id: None,
            grpc: None,
        }
    }
}

/// Append `e` as one line (ending in `\n`).
pub fn write(format: &Format, e: &Entry<'_>, out: &mut Vec<u8>) {
    match format {
        Format::Json => write_json(e, out),
        Format::Template(pieces) => {
            for p in pieces {
                match p {
                    Piece::Literal(b) => out.extend_from_slice(b),
                    Piece::Field(f) => text_field(*f, e, out),
                    Piece::Header(name) => match e.request.and_then(|r| r.header(name)) {
                        Some(v) => text_escaped(v, out),
                        None => out.push(b'-'),
                    },
                }
            }
            out.push(b'\n');
        }
    }
}

/// A value of a text line: its bytes with `"`, `\` and control bytes as
/// `\xHH` (nginx's escaping), so a header cannot forge a line or a field.
fn text_escaped(v: &[u8], out: &mut Vec<u8>) {
    if v.iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.extend_from_slice(v);
        return;
    }
    for &b in v {
        if b < 0x20 || b == 0x7f || b == b'"' || b == b'\\' {
            out.extend_from_slice(b"\\x");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        } else {
            out.push(b);
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn text_field(f: Field, e: &Entry<'_>, out: &mut Vec<u8>) {
    let missing = |out: &mut Vec<u8>| out.push(b'-');
    let req = e.request;
    match f {
        Field::StartTime => clock::write_rfc3339_millis(out, e.start),
        Field::Method => match req {
            Some(r) => text_escaped(r.method(), out),
            None => missing(out),
        },
        Field::Authority => match req.map(|r| r.authority()).filter(|a| !a.is_empty()) {
            Some(a) => text_escaped(a, out),
            None => missing(out),
        },
        Field::Path => match req {
            Some(r) => {
                text_escaped(r.path(), out);
                if let Some(q) = r.query() {
                    out.push(b'?');
                    text_escaped(q, out);
                }
            }
            None => missing(out),
        },
        Field::Scheme => match req {
            Some(r) => text_escaped(r.scheme(), out),
            None => missing(out),
        },
        Field::RequestId => match e.request_id {
            Some(id) => text_escaped(id, out),
            None => missing(out),
        },
        Field::Protocol => out.extend_from_slice(e.protocol.as_bytes()),
        Field::ResponseCode => match e.status {
            Some(s) => number(u64::from(s), out),
            None => out.push(b'0'),
        },
        Field::ResponseFlags => out.extend_from_slice(e.flags.as_bytes()),
        Field::ResponseCodeDetails => out.extend_from_slice(e.details.as_bytes()),
        Field::BytesReceived => number(e.bytes_received, out),
        Field::BytesSent => number(e.bytes_sent, out),
        Field::Duration => number(millis(e.duration), out),
        Field::UpstreamServiceTime => match e.upstream_time {
            Some(d) => number(millis(d), out),
            None => missing(out),
        },
        Field::UpstreamHost => match e.upstream_host {
            Some(a) => address(a, out),
            None => missing(out),
        },
        Field::UpstreamCluster => name_or_dash(e.cluster, out),
        Field::RouteName => name_or_dash(e.route, out),
        Field::DownstreamRemoteAddress => address(e.client, out),
        Field::DownstreamPeerUriSan => match e.principal {
            Some(p) => {
                out.extend_from_slice(b"spiffe://");
                text_escaped(p, out);
            }
            None => missing(out),
        },
        Field::TraceId => match &e.trace_id {
            Some(id) => hex(id, out),
            None => missing(out),
        },
        Field::GrpcStatus => match e.grpc {
            Some(c) => out.extend_from_slice(grpc_name(c).as_bytes()),
            None => missing(out),
        },
        Field::GrpcStatusNumber => match e.grpc {
            Some(c) => number(u64::from(c), out),
            None => missing(out),
        },
    }
}

fn name_or_dash(name: &str, out: &mut Vec<u8>) {
    if name.is_empty() {
        out.push(b'-');
    } else {
        out.extend_from_slice(name.as_bytes());
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn number(n: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `ip:port`, `[v6]:port`, without allocating. IPv4 by hand: the
/// formatter's padding machinery was a visible share of a logged
/// request's cost.
pub fn address(a: SocketAddr, out: &mut Vec<u8>) {
    match a {
        SocketAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.ip().octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(digits.format(*octet).as_bytes());
            }
            out.push(b':');
            out.extend_from_slice(digits.format(v4.port()).as_bytes());
        }
        SocketAddr::V6(_) => {
            use std::io::Write;
            let _ = write!(out, "{a}");
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8], out: &mut Vec<u8>) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// gRPC status names, as Envoy's `%GRPC_STATUS%` prints them.
pub fn grpc_name(code: u8) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES.get(usize::from(code)).copied().unwrap_or("Unknown")
}

/// One JSON object, with Istio's field names; fields without a value are
/// `null`.
fn write_json(e: &Entry<'_>, out: &mut Vec<u8>) {
    let req = e.request;
    out.extend_from_slice(b"{\"start_time\":\"");
    clock::write_rfc3339_millis(out, e.start);
    out.push(b'"');
    json_opt(out, "method", req.map(|r| r.method()));
    json_opt(
        out,
        "authority",
        req.map(|r| r.authority()).filter(|a| !a.is_empty()),
    );
    out.extend_from_slice(b",\"path\":");
    match req {
        Some(r) => {
            out.push(b'"');
            json_escaped(r.path(), out);
            if let Some(q) = r.query() {
                out.push(b'?');
                json_escaped(q, out);
            }
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    json_opt(out, "protocol", Some(e.protocol.as_bytes()));
    out.extend_from_slice(b",\"response_code\":");
    number(e.status.map_or(0, u64::from), out);
    json_opt(out, "response_flags", Some(e.flags.as_bytes()));
    json_opt(out, "response_code_details", Some(e.details.as_bytes()));
    out.extend_from_slice(b",\"bytes_received\":");
    number(e.bytes_received, out);
    out.extend_from_slice(b",\"bytes_sent\":");
    number(e.bytes_sent, out);
    out.extend_from_slice(b",\"duration\":");
    number(millis(e.duration), out);
    out.extend_from_slice(b",\"upstream_service_time\":");
    match e.upstream_time {
        Some(d) => number(millis(d), out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"upstream_host\":");
    match e.upstream_host {
        Some(a) => {
            out.push(b'"');
            address(a, out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    json_opt(
        out,
        "upstream_cluster",
        Some(e.cluster.as_bytes()).filter(|c| !c.is_empty()),
    );
    json_opt(
        out,
        "route_name",
        Some(e.route.as_bytes()).filter(|c| !c.is_empty()),
    );
    json_opt(out, "listener", Some(e.listener.as_bytes()));
    out.extend_from_slice(b",\"downstream_remote_address\":\"");
    address(e.client, out);
    out.push(b'"');
    out.extend_from_slice(b",\"downstream_peer_uri_san\":");
    match e.principal {
        Some(p) => {
            out.extend_from_slice(b"\"spiffe://");
            json_escaped(p, out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"trace_id\":");
    match &e.trace_id {
        Some(id) => {
            out.push(b'"');
            hex(id, out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    json_opt(out, "user_agent", req.and_then(|r| r.header(b"user-agent")));
    json_opt(
        out,
        "x_forwarded_for",
        req.and_then(|r| r.header(b"x-forwarded-for")),
    );
    json_opt(out, "request_id", e.request_id);
    out.extend_from_slice(b",\"grpc_status\":");
    match e.grpc {
        Some(c) => number(u64::from(c), out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
}

fn json_opt(out: &mut Vec<u8>, key: &str, value: Option<&[u8]>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    match value {
        Some(v) => {
            out.push(b'"');
            json_escaped(v, out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string's contents. Bytes that are not UTF-8 (HTTP allows them
/// in header values) are written as `\u00XX`, so every line is valid JSON.
fn json_escaped(v: &[u8], out: &mut Vec<u8>) {
    // Nearly every value is printable ASCII: one copy.
    if v.iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.extend_from_slice(v);
        return;
    }
    let utf8 = std::str::from_utf8(v).is_ok();
    for &b in v {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if b < 0x20 || b == 0x7f || (b >= 0x80 && !utf8) => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
            b => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeRequest;

    const REQ: FakeRequest = FakeRequest {
        method: b"GET",
        authority: b"shop.example",
        path: b"/cart",
        query: Some(b"id=7"),
        headers: &[(b"user-agent", b"curl/8 \"x\"\x01"), (b"x-tenant", b"blue")],
    };

    fn entry(req: Option<&dyn RequestView>) -> Entry<'_> {
        Entry {
            start: std::time::UNIX_EPOCH + Duration::from_millis(1_796_166_849_123),
            duration: Duration::from_micros(31_900),
            request: req,
            protocol: "HTTP/1.1",
            status: Some(503),
            flags: "UF",
            details: "upstream_connect_failed",
            bytes_received: 12,
            bytes_sent: 345,
            upstream_time: Some(Duration::from_millis(30)),
            upstream_host: Some("127.0.0.1:8080".parse().unwrap()),
            cluster: "cart",
            route: "r0",
            listener: "in",
            client: "[::1]:40000".parse().unwrap(),
            principal: Some(b"td/ns/a/sa/web"),
            trace_id: Some([0xab; 16]),
            request_id: Some(b"rid-1"),
            grpc: Some(14),
        }
    }

    fn line(format: &str, e: &Entry<'_>) -> String {
        let mut out = Vec::new();
        write(&Format::parse(format).unwrap(), e, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_template_names_every_field() {
        let e = entry(Some(&REQ));
        let t = "%START_TIME% %REQ(:METHOD)% %REQ(:AUTHORITY)%%REQ(:PATH)% %PROTOCOL% \
                 %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %BYTES_RECEIVED% \
                 %BYTES_SENT% %DURATION% %UPSTREAM_SERVICE_TIME% %UPSTREAM_HOST% \
                 %UPSTREAM_CLUSTER% %ROUTE_NAME% %DOWNSTREAM_REMOTE_ADDRESS% \
                 %DOWNSTREAM_PEER_URI_SAN% %TRACE_ID% %GRPC_STATUS% %GRPC_STATUS_NUMBER% \
                 %REQ(X-Request-Id)% %REQ(X-TENANT)% %REQ(X-NONE)% %REQ(USER-AGENT)%";
        assert_eq!(
            line(t, &e),
            format!(
                "2026-12-01T23:14:09.123Z GET shop.example/cart?id=7 HTTP/1.1 503 UF \
                 upstream_connect_failed 12 345 31 30 127.0.0.1:8080 cart r0 [::1]:40000 \
                 spiffe://td/ns/a/sa/web {} Unavailable 14 rid-1 blue - curl/8 \\x22x\\x22\\x01\n",
                "ab".repeat(16)
            )
        );
    }

    #[test]
    fn json_lines_parse_and_carry_nulls() {
        let e = entry(Some(&REQ));
        let v: serde_json::Value = serde_json::from_str(&line("json", &e)).unwrap();
        assert_eq!(v["path"], "/cart?id=7");
        assert_eq!(v["response_code"], 503);
        assert_eq!(v["user_agent"], "curl/8 \"x\"\u{1}");
        assert_eq!(v["downstream_peer_uri_san"], "spiffe://td/ns/a/sa/web");
        assert_eq!(v["duration"], 31);
        let tcp = Entry {
            request: None,
            status: None,
            upstream_time: None,
            principal: None,
            protocol: "TCP",
            ..entry(None)
        };
        let v: serde_json::Value = serde_json::from_str(&line("json", &tcp)).unwrap();
        assert!(v["method"].is_null() && v["path"].is_null() && v["user_agent"].is_null());
        assert_eq!(v["protocol"], "TCP");
        assert_eq!(v["bytes_sent"], 345);
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for a in [
            "127.0.0.1:80",
            "10.20.255.0:65535",
            "0.0.0.0:0",
            "[::1]:9",
            "[fe80::1%2]:443",
        ] {
            let addr: SocketAddr = a.parse().unwrap();
            let mut out = Vec::new();
            address(addr, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), addr.to_string());
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_stay_valid_json() {
        let mut out = Vec::new();
        json_escaped(b"a\xffb\"", &mut out);
        assert_eq!(out, b"a\\u00ffb\\\"");
        let mut out = Vec::new();
        json_escaped("caf\u{e9}".as_bytes(), &mut out);
        assert_eq!(out, "caf\u{e9}".as_bytes());
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        let e = Format::parse("%START_TIM%").unwrap_err();
        assert!(e.contains("did you mean START_TIME?"), "{e}");
        let e = Format::parse("%REQ(:nope)%").unwrap_err();
        assert!(e.contains("unknown pseudo-header"), "{e}");
        let e = Format::parse("a %DURATION").unwrap_err();
        assert!(e.contains("nobody closes"), "{e}");
        let e = Format::parse("yaml").unwrap_err();
        assert!(e.contains("use json, text"), "{e}");
        assert!(Format::parse("text").is_ok());
    }
}
