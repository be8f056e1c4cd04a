//! Request and response heads: parse, classify headers, decide body framing.
//!
//! A parsed head is a set of byte ranges into the read buffer it came from,
//! so the proxy can forward header bytes without copying them into owned
//! strings. Each header is classified once here (hop-by-hop, framing, Host,
//! ...) so that routing and rewriting never compare header names again, and
//! the request target is reduced to its form, authority and origin-form
//! parts (`target`), so routing sees one path and one authority whichever
//! form the client used.

use std::mem::MaybeUninit;

use crate::HeadError;

mod target;
pub use target::TargetForm;

/// Most header fields a head may carry; the array httparse fills lives on the
/// stack, so this bounds stack use (32 bytes a field) as well as the limit a
/// user may configure.
pub const MAX_HEADERS_CEILING: usize = 512;

/// Byte range into the buffer a head was parsed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    fn of(buf: &[u8], part: &[u8]) -> Span {
        // Both slices come from the same allocation: `part` was handed out by
        // httparse from `buf`, so the address difference is its offset.
        let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    /// The bytes this span covers in `buf`.
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// What a header means to a proxy, decided once at parse time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderKind {
    /// End-to-end: forwarded as is.
    Other,
    /// Hop-by-hop (Connection, Keep-Alive, Proxy-Connection, TE, Upgrade and
    /// the end-to-end headers a Connection option names, which never include
    /// Content-Length, Transfer-Encoding or Host): never forwarded as is.
    HopByHop,
    /// Transfer-Encoding: re-framed by the proxy.
    TransferEncoding,
    /// Content-Length: forwarded when the body keeps its length.
    ContentLength,
    Host,
    /// Expect: answered by the proxy itself.
    Expect,
    XForwardedFor,
    XForwardedProto,
}

#[derive(Clone, Copy, Debug)]
pub struct HeaderSpan {
    pub name: Span,
    pub value: Span,
    pub kind: HeaderKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// From httparse's minor version: 0 is HTTP/1.0, anything else 1.1.
    fn from_minor(minor: u8) -> Self {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

/// How the body after a head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Responses only: the body ends when the upstream closes.
    UntilClose,
}

/// Limits on a head, from config.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most bytes in the request line plus headers.
    pub max_header_bytes: usize,
    /// Most header fields.
    pub max_headers: usize,
}

impl Default for Limits {
    /// 64 KiB and 100 fields: nginx's large_client_header_buffers and
    /// Envoy's max_request_headers_count sit at the same order.
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_headers: 100,
        }
    }
}

/// A parsed request head; reuse one per connection so `headers` keeps its
/// capacity.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Span,
    /// The request target as sent.
    pub target: Span,
    /// Which form `target` has; anything but these four is refused.
    pub target_form: TargetForm,
    /// The target's authority when it is absolute-form, otherwise `None`.
    pub authority: Option<Span>,
    /// The path and query of the target: all of it for origin-, authority-
    /// and asterisk-form; for absolute-form the bytes after the authority,
    /// which are empty or start with `?` when the target has no path (the
    /// origin form then needs a `/` in front: see `origin_form`).
    pub origin: Span,
    pub version: Version,
    /// Bytes the head takes in the buffer, the final CRLF included.
    pub head_len: usize,
    pub headers: Vec<HeaderSpan>,
    /// The authority the request is for: the target's for absolute-form
    /// (RFC 9112 section 3.2.2: the Host header is then ignored), else the
    /// Host header's value; `None` only for HTTP/1.0 without Host.
    pub host: Option<Span>,
    pub framing: BodyFraming,
    /// Whether the client allows the connection to stay open after this
    /// exchange.
    pub keep_alive: bool,
    /// The Upgrade header's value when `Connection: upgrade` asks for one.
    pub upgrade: Option<Span>,
    pub expect_continue: bool,
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead {
            method: Span::default(),
            target: Span::default(),
            target_form: TargetForm::Origin,
            authority: None,
            origin: Span::default(),
            version: Version::Http11,
            head_len: 0,
            headers: Vec::with_capacity(32),
            host: None,
            framing: BodyFraming::Empty,
            keep_alive: true,
            upgrade: None,
            expect_continue: false,
        }
    }
}

impl RequestHead {
    pub fn method<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.method.get(buf)
    }

    pub fn is_head_method(&self, buf: &[u8]) -> bool {
        self.method(buf) == b"HEAD"
    }

    /// CONNECT, whose target is authority-form: the proxy answers it itself.
    pub fn is_connect(&self) -> bool {
        self.target_form == TargetForm::Authority
    }

    /// The path of the origin-form target, without the query string: `/`
    /// for an absolute-form target with no path.
    pub fn path<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let origin = self.origin.get(buf);
        let end = origin
            .iter()
            .position(|&b| b == b'?')
            .unwrap_or(origin.len());
        match &origin[..end] {
            [] => b"/",
            path => path,
        }
    }

    /// The query string without its `?`, if any.
    pub fn query<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        let origin = self.origin.get(buf);
        let start = origin.iter().position(|&b| b == b'?')?;
        Some(&origin[start + 1..])
    }

    /// The target to send an origin server, in two parts to be written one
    /// after the other: `["/", "?q"]` for `http://a?q`, whose path is empty,
    /// else `["", origin]`. Two slices rather than one so that nothing is
    /// copied or allocated to add the `/`.
    pub fn origin_form<'a>(&self, buf: &'a [u8]) -> [&'a [u8]; 2] {
        let origin = self.origin.get(buf);
        let slash: &[u8] = match (self.target_form, origin.first()) {
            (TargetForm::Absolute, None | Some(b'?')) => b"/",
            _ => b"",
        };
        [slash, origin]
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header<'a>(&self, buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        find_header(&self.headers, buf, name)
    }
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: Span,
    pub version: Version,
    pub head_len: usize,
    pub headers: Vec<HeaderSpan>,
    pub framing: BodyFraming,
    /// Whether the upstream lets the connection be reused after this body.
    pub keep_alive: bool,
}

impl Default for ResponseHead {
    fn default() -> Self {
        ResponseHead {
            status: 0,
            reason: Span::default(),
            version: Version::Http11,
            head_len: 0,
            headers: Vec::with_capacity(32),
            framing: BodyFraming::Empty,
            keep_alive: true,
        }
    }
}

impl ResponseHead {
    /// 1xx other than 101: forwarded, then the real response follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    pub fn header<'a>(&self, buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        find_header(&self.headers, buf, name)
    }
}

fn find_header<'a>(headers: &[HeaderSpan], buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.get(buf).eq_ignore_ascii_case(name))
        .map(|h| h.value.get(buf))
}

/// Parse a request head at the start of `buf` into `head`.
///
/// `Ok(false)` means the head is not complete yet: read more and call again.
/// The limits are enforced on partial heads too, so a client cannot make the
/// proxy buffer without end.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    head: &mut RequestHead,
) -> Result<bool, HeadError> {
    // Uninitialised storage: zeroing 512 fields (16 KiB) per parse cost
    // more than the parse itself.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CEILING];
    let max = limits.max_headers.min(MAX_HEADERS_CEILING);
    let mut req = httparse::Request::new(&mut []);
    let status = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, buf, &mut fields[..max])
        .map_err(HeadError::from_httparse)?;
    let Some(head_len) = complete_len(status, buf.len(), limits)? else {
        return Ok(false);
    };
    // A complete head always has all three parts; httparse guarantees it.
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Syntax("incomplete_request_line"));
    };
    head.method = Span::of(buf, method.as_bytes());
    head.target = Span::of(buf, path.as_bytes());
    let target = target::parse(method.as_bytes(), head.target, buf)?;
    head.target_form = target.form;
    head.authority = target.authority;
    head.origin = target.origin;
    head.version = Version::from_minor(version);
    head.head_len = head_len;
    let facts = collect_headers(buf, req.headers, &mut head.headers)?;

    // An absolute-form target's authority replaces Host, so such a request
    // needs none; several are refused whatever the form.
    head.host = match (facts.host_count, head.authority) {
        (2.., _) => return Err(HeadError::InvalidHost),
        (_, Some(authority)) => Some(authority),
        (0, None) if head.version == Version::Http11 => return Err(HeadError::InvalidHost),
        (_, None) => facts.host,
    };
    head.framing = request_framing(&facts, head.version)?;
    head.keep_alive = keep_alive(head.version, &facts);
    head.upgrade = if facts.conn_upgrade {
        facts.upgrade
    } else {
        None
    };
    head.expect_continue = facts.expect_continue;
    Ok(true)
}

/// Parse a response head at the start of `buf` into `head`.
///
/// `request_was_head` matters because a response to HEAD has no body whatever
/// its Content-Length says.
pub fn parse_response(
    buf: &[u8],
    limits: &Limits,
    request_was_head: bool,
    head: &mut ResponseHead,
) -> Result<bool, HeadError> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CEILING];
    let max = limits.max_headers.min(MAX_HEADERS_CEILING);
    let mut resp = httparse::Response::new(&mut []);
    let status = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut fields[..max])
        .map_err(HeadError::from_httparse)?;
    let Some(head_len) = complete_len(status, buf.len(), limits)? else {
        return Ok(false);
    };
    let (Some(code), Some(version)) = (resp.code, resp.version) else {
        return Err(HeadError::Syntax("incomplete_status_line"));
    };
    head.status = code;
    head.reason = resp
        .reason
        .map(|r| Span::of(buf, r.as_bytes()))
        .unwrap_or_default();
    head.version = Version::from_minor(version);
    head.head_len = head_len;
    let facts = collect_headers(buf, resp.headers, &mut head.headers)?;
    head.keep_alive = keep_alive(head.version, &facts);
    head.framing = response_framing(code, request_was_head, &facts, head.version)?;
    if head.framing == BodyFraming::UntilClose {
        head.keep_alive = false;
    }
    Ok(true)
}

/// The head's length once it is complete, `None` while it is partial. A
/// head over the size limit is refused whether complete or not, so a peer
/// cannot make the proxy buffer without end.
fn complete_len(
    status: httparse::Status<usize>,
    buffered: usize,
    limits: &Limits,
) -> Result<Option<usize>, HeadError> {
    match status {
        httparse::Status::Partial if buffered > limits.max_header_bytes => {
            Err(HeadError::HeadTooLarge)
        }
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(n) if n > limits.max_header_bytes => {
            Err(HeadError::HeadTooLarge)
        }
        httparse::Status::Complete(n) => Ok(Some(n)),
    }
}

/// What the header scan learned, before framing is decided.
#[derive(Default)]
struct HeaderFacts {
    host: Option<Span>,
    host_count: u32,
    content_length: Option<u64>,
    content_length_invalid: bool,
    /// Transfer-Encoding seen, and whether it was exactly one `chunked`.
    transfer_encoding: bool,
    te_is_chunked: bool,
    conn_close: bool,
    conn_keep_alive: bool,
    conn_upgrade: bool,
    /// Connection named other headers: strip them as hop-by-hop.
    conn_names_others: bool,
    upgrade: Option<Span>,
    expect_continue: bool,
}

fn collect_headers(
    buf: &[u8],
    fields: &[httparse::Header<'_>],
    out: &mut Vec<HeaderSpan>,
) -> Result<HeaderFacts, HeadError> {
    out.clear();
    let mut facts = HeaderFacts::default();
    let mut te_tokens = 0u32;
    for field in fields {
        let name = field.name.as_bytes();
        let value = trim(field.value);
        let span = HeaderSpan {
            name: Span::of(buf, name),
            value: Span::of(buf, value),
            kind: classify(name),
        };
        match span.kind {
            HeaderKind::Host => {
                facts.host = Some(span.value);
                facts.host_count += 1;
            }
            HeaderKind::ContentLength => note_content_length(&mut facts, value),
            HeaderKind::TransferEncoding => {
                facts.transfer_encoding = true;
                for token in tokens(value) {
                    te_tokens += 1;
                    facts.te_is_chunked = te_tokens == 1 && token.eq_ignore_ascii_case(b"chunked");
                }
                if te_tokens != 1 {
                    facts.te_is_chunked = false;
                }
            }
            HeaderKind::Expect => {
                facts.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
            }
            _ if name.eq_ignore_ascii_case(b"connection") => note_connection(&mut facts, value),
            _ if name.eq_ignore_ascii_case(b"upgrade") => facts.upgrade = Some(span.value),
            _ => {}
        }
        out.push(span);
    }
    if facts.conn_names_others {
        mark_connection_named(buf, out);
    }
    Ok(facts)
}

fn note_content_length(facts: &mut HeaderFacts, value: &[u8]) {
    // RFC 9112 6.3: a list of identical values may be folded to one; anything
    // else is unrecoverable framing.
    for token in value.split(|&b| b == b',') {
        match parse_decimal(trim(token)) {
            Some(n) if facts.content_length.is_none_or(|prev| prev == n) => {
                facts.content_length = Some(n)
            }
            _ => facts.content_length_invalid = true,
        }
    }
}

fn note_connection(facts: &mut HeaderFacts, value: &[u8]) {
    for token in tokens(value) {
        if token.eq_ignore_ascii_case(b"close") {
            facts.conn_close = true;
        } else if token.eq_ignore_ascii_case(b"keep-alive") {
            facts.conn_keep_alive = true;
        } else if token.eq_ignore_ascii_case(b"upgrade") {
            facts.conn_upgrade = true;
        } else {
            facts.conn_names_others = true;
        }
    }
}

/// Mark the end-to-end headers that a Connection header names as hop-by-hop.
///
/// Only fields the next hop can do without may be dropped this way. Framing
/// (Content-Length, Transfer-Encoding) never is: a request forwarded without
/// its length would have its body read upstream as the next request. Nor is
/// Host, which an HTTP/1.1 upstream requires.
fn mark_connection_named(buf: &[u8], headers: &mut [HeaderSpan]) {
    // Rare path (clients seldom name extra headers): a quadratic scan over a
    // bounded header count beats building a set, and allocates nothing.
    for i in 0..headers.len() {
        let h = headers[i];
        if !may_be_named_hop_by_hop(h.kind) {
            continue;
        }
        let name = h.name.get(buf);
        let named = headers.iter().any(|c| {
            c.name.get(buf).eq_ignore_ascii_case(b"connection")
                && tokens(c.value.get(buf)).any(|t| t.eq_ignore_ascii_case(name))
        });
        if named {
            headers[i].kind = HeaderKind::HopByHop;
        }
    }
}

/// Whether a Connection option may turn a header of this kind hop-by-hop.
fn may_be_named_hop_by_hop(kind: HeaderKind) -> bool {
    match kind {
        HeaderKind::ContentLength | HeaderKind::TransferEncoding | HeaderKind::Host => false,
        // Already dropped.
        HeaderKind::HopByHop => false,
        // Dropping a client's X-Forwarded-* or Expect is safe: the proxy
        // writes its own forwarding headers and answers Expect itself.
        HeaderKind::Other
        | HeaderKind::Expect
        | HeaderKind::XForwardedFor
        | HeaderKind::XForwardedProto => true,
    }
}

fn request_framing(facts: &HeaderFacts, version: Version) -> Result<BodyFraming, HeadError> {
    if facts.transfer_encoding {
        if version == Version::Http10 {
            return Err(HeadError::TransferEncodingInHttp10);
        }
        if facts.content_length.is_some() || facts.content_length_invalid {
            return Err(HeadError::ContentLengthAndTransferEncoding);
        }
        if !facts.te_is_chunked {
            return Err(HeadError::UnsupportedTransferEncoding);
        }
        return Ok(BodyFraming::Chunked);
    }
    if facts.content_length_invalid {
        return Err(HeadError::InvalidContentLength);
    }
    Ok(match facts.content_length {
        Some(0) | None => BodyFraming::Empty,
        Some(n) => BodyFraming::Length(n),
    })
}

fn response_framing(
    status: u16,
    request_was_head: bool,
    facts: &HeaderFacts,
    version: Version,
) -> Result<BodyFraming, HeadError> {
    if request_was_head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyFraming::Empty);
    }
    if facts.transfer_encoding {
        // An upstream sending both is broken or hostile; refusing it keeps a
        // response-splitting attempt from reaching the client.
        if facts.content_length.is_some() || facts.content_length_invalid {
            return Err(HeadError::ContentLengthAndTransferEncoding);
        }
        if version == Version::Http10 {
            return Err(HeadError::TransferEncodingInHttp10);
        }
        return Ok(if facts.te_is_chunked {
            BodyFraming::Chunked
        } else {
            BodyFraming::UntilClose
        });
    }
    if facts.content_length_invalid {
        return Err(HeadError::InvalidContentLength);
    }
    Ok(match facts.content_length {
        Some(0) => BodyFraming::Empty,
        Some(n) => BodyFraming::Length(n),
        None => BodyFraming::UntilClose,
    })
}

fn keep_alive(version: Version, facts: &HeaderFacts) -> bool {
    match version {
        Version::Http11 => !facts.conn_close,
        Version::Http10 => facts.conn_keep_alive && !facts.conn_close,
    }
}

/// Classify a header name; names are compared by length first so the common
/// end-to-end header costs one length check and at most one comparison.
fn classify(name: &[u8]) -> HeaderKind {
    let is = |s: &[u8]| name.eq_ignore_ascii_case(s);
    match name.len() {
        2 if is(b"te") => HeaderKind::HopByHop,
        4 if is(b"host") => HeaderKind::Host,
        6 if is(b"expect") => HeaderKind::Expect,
        7 if is(b"upgrade") => HeaderKind::HopByHop,
        10 if is(b"connection") || is(b"keep-alive") => HeaderKind::HopByHop,
        14 if is(b"content-length") => HeaderKind::ContentLength,
        15 if is(b"x-forwarded-for") => HeaderKind::XForwardedFor,
        16 if is(b"proxy-connection") => HeaderKind::HopByHop,
        17 if is(b"transfer-encoding") => HeaderKind::TransferEncoding,
        17 if is(b"x-forwarded-proto") => HeaderKind::XForwardedProto,
        _ => HeaderKind::Other,
    }
}

/// Comma-separated list elements, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|t| !t.is_empty())
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Strict decimal: digits only, no sign, no overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
