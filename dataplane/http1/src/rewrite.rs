//! Write forwarded heads: what the next hop sees.
//!
//! The proxy copies each kept header line from the read buffer into one
//! output buffer it reuses for every request (one `memcpy` a header, no
//! allocation), drops hop-by-hop headers, re-adds its own framing and
//! connection headers, and applies the route's header edits. One contiguous
//! buffer means one write syscall (or one io_uring SQE) for the whole head.

use crate::head::{HeaderKind, HeaderSpan, RequestHead, ResponseHead, Span};
use crate::target::TargetRewrite;
use crate::BodyFraming;

/// A header name and value, as bytes.
pub type HeaderPair = (Box<[u8]>, Box<[u8]>);

/// Header edits a route asks for, compiled from config. Names are stored
/// lowercase so matching needs no allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// Header names to drop.
    pub remove: Vec<Box<[u8]>>,
    /// Headers to append, after removal.
    pub add: Vec<HeaderPair>,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    fn removes(&self, name: &[u8]) -> bool {
        self.remove.iter().any(|r| r.eq_ignore_ascii_case(name))
    }
}

/// What the proxy knows about the request beyond its head.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The client's address as text, appended to X-Forwarded-For.
    pub client_ip: &'a [u8],
    /// `http` or `https`: how the request reached the proxy, sent as
    /// X-Forwarded-Proto.
    pub proto: &'a [u8],
    /// Keep an X-Forwarded-Proto the client sent (a proxy in front that is
    /// trusted to set it); when false, the client's is replaced with
    /// `proto`, so a client cannot claim `https` over plain HTTP.
    pub trust_proto: bool,
    /// Host to send when an HTTP/1.0 client sent none (the upstream address).
    pub fallback_host: &'a [u8],
    /// On a listener of the mesh: the `x-forwarded-client-cert` to send.
    pub client_cert: Option<ClientCert<'a>>,
    /// Trace context and request id.
    pub propagated: Propagated<'a>,
    /// The route's `rewrite`: a new path and/or Host (`None`: as sent).
    pub rewrite: Option<&'a TargetRewrite>,
}

/// Headers the proxy sets on a forwarded request for tracing, replacing
/// any of the same name the client sent: `traceparent` naming the proxy's
/// span as the parent, and an `x-request-id` it made because the client
/// sent none. Both `None` when tracing and access logs are off.
#[derive(Debug, Clone, Copy, Default)]
pub struct Propagated<'a> {
    pub traceparent: Option<&'a [u8]>,
    pub request_id: Option<&'a [u8]>,
}

impl Propagated<'_> {
    pub fn is_empty(&self) -> bool {
        self.traceparent.is_none() && self.request_id.is_none()
    }

    /// Whether the client's header `name` gives way to the proxy's.
    pub fn replaces(&self, name: &[u8]) -> bool {
        (self.traceparent.is_some() && name.eq_ignore_ascii_case(b"traceparent"))
            || (self.request_id.is_some() && name.eq_ignore_ascii_case(b"x-request-id"))
    }

    /// Each header to send, as (name, value).
    pub fn each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        if let Some(v) = self.traceparent {
            f(b"traceparent", v);
        }
        if let Some(v) = self.request_id {
            f(b"x-request-id", v);
        }
    }
}

/// `x-forwarded-client-cert` as Envoy and Istio send it to a workload:
/// who terminated the mTLS (`By`, the proxy's own SPIFFE ID) and who the
/// client proved to be (`URI`). Every such header the client sent is
/// dropped first, so a caller (even a plaintext one on a permissive
/// listener) cannot claim an identity.
#[derive(Debug, Clone, Copy)]
pub struct ClientCert<'a> {
    /// The proxy's SPIFFE ID (`spiffe://...`).
    pub by: &'a [u8],
    /// The client's principal (`td/ns/x/sa/y`, no scheme); `None`: it
    /// proved none, and no header is sent.
    pub uri: Option<&'a [u8]>,
}

/// The header's name.
pub const XFCC: &[u8] = b"x-forwarded-client-cert";

impl ClientCert<'_> {
    /// Append the header line, when the client proved an identity.
    pub fn write(&self, out: &mut Vec<u8>) {
        if self.uri.is_none() {
            return;
        }
        out.extend_from_slice(XFCC);
        out.extend_from_slice(b": ");
        self.write_value(out);
        out.extend_from_slice(b"\r\n");
    }

    /// The header's value, for an HTTP/2 header map; `None` when the
    /// client proved no identity.
    pub fn value(&self) -> Option<Vec<u8>> {
        self.uri?;
        let mut v = Vec::new();
        self.write_value(&mut v);
        Some(v)
    }

    fn write_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"By=");
        out.extend_from_slice(self.by);
        out.extend_from_slice(b";URI=spiffe://");
        out.extend_from_slice(self.uri.unwrap_or_default());
    }
}

/// Append the request head to send upstream. The upstream always gets
/// HTTP/1.1 with the same framing the client used (a chunked body stays
/// chunked and is forwarded verbatim), and an origin-form target: for an
/// absolute-form one, the path and query, with the target's authority as
/// Host in place of the client's (RFC 9112 section 3.2.2).
pub fn write_request_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &RequestHead,
    ctx: &RequestContext<'_>,
    edits: &HeaderEdits,
) {
    out.extend_from_slice(head.method.get(buf));
    out.push(b' ');
    let (new_path, new_host) = match ctx.rewrite {
        Some(r) => (r.path.as_ref(), r.host.as_deref()),
        None => (None, None),
    };
    match new_path {
        Some(p) => p.write_target(head.path(buf), head.query(buf), out),
        None => {
            for part in head.origin_form(buf) {
                out.extend_from_slice(part);
            }
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // A rewritten Host replaces both the target's authority and Host.
    let own_host = new_host.is_some() || head.authority.is_some();
    if let Some(host) = new_host {
        write_pair(out, b"host", host);
    } else if let Some(authority) = head.authority {
        write_pair(out, b"host", authority.get(buf));
    }

    let last_xff = head
        .headers
        .iter()
        .rposition(|h| h.kind == HeaderKind::XForwardedFor);
    let mut saw_xfp = false;
    for (i, h) in head.headers.iter().enumerate() {
        match h.kind {
            HeaderKind::HopByHop | HeaderKind::TransferEncoding | HeaderKind::Expect => continue,
            HeaderKind::Host if own_host => continue,
            HeaderKind::XForwardedProto if !ctx.trust_proto => continue,
            HeaderKind::XForwardedProto => saw_xfp = true,
            _ => {}
        }
        if !edits.remove.is_empty() && edits.removes(h.name.get(buf)) {
            continue;
        }
        if ctx.client_cert.is_some() && h.name.get(buf).eq_ignore_ascii_case(XFCC) {
            continue;
        }
        if !ctx.propagated.is_empty() && ctx.propagated.replaces(h.name.get(buf)) {
            continue;
        }
        if Some(i) == last_xff {
            write_field_start(out, buf, h);
            out.extend_from_slice(b", ");
            out.extend_from_slice(ctx.client_ip);
            out.extend_from_slice(b"\r\n");
        } else {
            write_field(out, buf, h);
        }
    }
    if last_xff.is_none() {
        write_pair(out, b"x-forwarded-for", ctx.client_ip);
    }
    if !saw_xfp {
        write_pair(out, b"x-forwarded-proto", ctx.proto);
    }
    if let Some(cert) = &ctx.client_cert {
        cert.write(out);
    }
    ctx.propagated
        .each(|name, value| write_pair(out, name, value));
    if head.host.is_none() && new_host.is_none() {
        write_pair(out, b"host", ctx.fallback_host);
    }
    if head.framing == BodyFraming::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if let Some(proto) = head.upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
        write_pair(out, b"upgrade", proto.get(buf));
    }
    for (name, value) in &edits.add {
        write_pair(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// How the response to the client is delimited and whether the connection
/// stays open; decided by the proxy from both sides' versions and framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// Forward the upstream's own framing (Content-Length or none).
    AsIs,
    /// Send `transfer-encoding: chunked` (forwarding or re-chunking).
    Chunked,
    /// No framing header: the body ends when the proxy closes.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// Nothing: HTTP/1.1 keep-alive is the default.
    None,
    /// `connection: keep-alive`, for an HTTP/1.0 client that asked for it.
    KeepAlive,
    /// `connection: close`.
    Close,
    /// `connection: upgrade` plus the upstream's Upgrade header (101).
    Upgrade,
}

/// Append the response head to send to the client.
pub fn write_response_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &ResponseHead,
    framing: ResponseFraming,
    connection: ConnectionHeader,
    edits: &HeaderEdits,
) {
    write_status_line(out, head.status, head.reason.get(buf));
    let mut upgrade: Option<Span> = None;
    for h in &head.headers {
        let name = h.name.get(buf);
        match h.kind {
            HeaderKind::HopByHop => {
                if connection == ConnectionHeader::Upgrade && name.eq_ignore_ascii_case(b"upgrade")
                {
                    upgrade = Some(h.value);
                }
                continue;
            }
            HeaderKind::TransferEncoding => continue,
            HeaderKind::ContentLength if framing != ResponseFraming::AsIs => continue,
            _ => {}
        }
        if !edits.remove.is_empty() && edits.removes(name) {
            continue;
        }
        write_field(out, buf, h);
    }
    if framing == ResponseFraming::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    match connection {
        ConnectionHeader::None => {}
        ConnectionHeader::KeepAlive => out.extend_from_slice(b"connection: keep-alive\r\n"),
        ConnectionHeader::Close => out.extend_from_slice(b"connection: close\r\n"),
        ConnectionHeader::Upgrade => {
            out.extend_from_slice(b"connection: upgrade\r\n");
            if let Some(proto) = upgrade {
                write_pair(out, b"upgrade", proto.get(buf));
            }
        }
    }
    for (name, value) in &edits.add {
        write_pair(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// `HTTP/1.1 {status} {reason}\r\n`.
pub fn write_status_line(out: &mut Vec<u8>, status: u16, reason: &[u8]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let code = status.min(999);
    out.extend_from_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
}

fn write_field_start(out: &mut Vec<u8>, buf: &[u8], h: &HeaderSpan) {
    out.extend_from_slice(h.name.get(buf));
    out.extend_from_slice(b": ");
    out.extend_from_slice(h.value.get(buf));
}

fn write_field(out: &mut Vec<u8>, buf: &[u8], h: &HeaderSpan) {
    write_field_start(out, buf, h);
    out.extend_from_slice(b"\r\n");
}

pub fn write_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_request, parse_response, Limits};

    const CTX: RequestContext<'static> = RequestContext {
        client_ip: b"10.0.0.9",
        proto: b"http",
        fallback_host: b"10.1.1.1:80",
        trust_proto: true,
        client_cert: None,
        propagated: Propagated {
            traceparent: None,
            request_id: None,
        },
        rewrite: None,
    };

    fn rewrite_request(raw: &str, edits: &HeaderEdits) -> String {
        rewrite_request_with(raw, edits, &CTX)
    }

    fn rewrite_request_with(raw: &str, edits: &HeaderEdits, ctx: &RequestContext<'_>) -> String {
        let mut head = RequestHead::default();
        assert!(parse_request(raw.as_bytes(), &Limits::default(), &mut head).unwrap());
        let mut out = Vec::new();
        write_request_head(&mut out, raw.as_bytes(), &head, ctx, edits);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn request_drops_hop_by_hop_and_adds_forwarding_headers() {
        let out = rewrite_request(
            "GET /x HTTP/1.1\r\nHost: svc\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nUpgrade: h2c\r\nAccept: */*\r\n\r\n",
            &HeaderEdits::default(),
        );
        assert_eq!(
            out,
            "GET /x HTTP/1.1\r\nHost: svc\r\nAccept: */*\r\nx-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: http\r\n\r\n"
        );
    }

    #[test]
    fn a_rewrite_replaces_the_path_and_every_host() {
        use crate::target::{PathRewrite, TargetRewrite};
        let rewrite = TargetRewrite {
            host: Some(b"internal.svc"[..].into()),
            path: Some(PathRewrite::prefix(b"/api", b"/v2")),
        };
        let ctx = RequestContext {
            rewrite: Some(&rewrite),
            ..CTX
        };
        // Origin form with Host, absolute form, and HTTP/1.0 without Host.
        for raw in [
            "GET /api/users?id=7 HTTP/1.1\r\nHost: shop.example\r\n\r\n",
            "GET http://shop.example/api/users?id=7 HTTP/1.1\r\nHost: other\r\n\r\n",
            "GET /api/users?id=7 HTTP/1.0\r\n\r\n",
        ] {
            let out = rewrite_request_with(raw, &HeaderEdits::default(), &ctx);
            assert!(
                out.starts_with("GET /v2/users?id=7 HTTP/1.1\r\nhost: internal.svc\r\n"),
                "{out}"
            );
            assert_eq!(
                out.to_ascii_lowercase().matches("host:").count(),
                1,
                "{out}"
            );
        }
        // Only the host: the target is the client's, byte for byte.
        let host_only = TargetRewrite {
            host: Some(b"b"[..].into()),
            path: None,
        };
        let out = rewrite_request_with(
            "GET /x?q HTTP/1.1\r\nHost: a\r\n\r\n",
            &HeaderEdits::default(),
            &RequestContext {
                rewrite: Some(&host_only),
                ..CTX
            },
        );
        assert!(
            out.starts_with("GET /x?q HTTP/1.1\r\nhost: b\r\nx-forwarded-for"),
            "{out}"
        );
    }

    #[test]
    fn a_mesh_listener_sends_the_clients_identity_and_drops_forged_ones() {
        let raw = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Client-Cert: By=x;URI=spiffe://td/ns/a/sa/admin\r\nx-forwarded-client-cert: forged\r\n\r\n";
        let by = b"spiffe://td/ns/shop/sa/orders";
        let proved = RequestContext {
            client_cert: Some(ClientCert {
                by,
                uri: Some(b"td/ns/shop/sa/web"),
            }),
            ..CTX
        };
        assert_eq!(
            rewrite_request_with(raw, &HeaderEdits::default(), &proved),
            "GET / HTTP/1.1\r\nHost: a\r\nx-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: http\r\nx-forwarded-client-cert: By=spiffe://td/ns/shop/sa/orders;URI=spiffe://td/ns/shop/sa/web\r\n\r\n"
        );
        let plaintext = RequestContext {
            client_cert: Some(ClientCert { by, uri: None }),
            ..CTX
        };
        assert!(
            !rewrite_request_with(raw, &HeaderEdits::default(), &plaintext)
                .to_ascii_lowercase()
                .contains("x-forwarded-client-cert")
        );
        // Outside the mesh the header is the application's business.
        assert!(rewrite_request(raw, &HeaderEdits::default()).contains("forged"));
        assert_eq!(
            ClientCert {
                by: b"spiffe://a/b",
                uri: Some(b"a/c")
            }
            .value()
            .as_deref(),
            Some(&b"By=spiffe://a/b;URI=spiffe://a/c"[..])
        );
    }

    #[test]
    fn request_appends_to_the_last_x_forwarded_for_and_keeps_proto() {
        let out = rewrite_request(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\nX-Forwarded-Proto: https\r\n\r\n",
            &HeaderEdits::default(),
        );
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 10.0.0.9\r\nX-Forwarded-Proto: https\r\n\r\n"
        );
    }

    #[test]
    fn a_clients_x_forwarded_proto_is_replaced_unless_trusted() {
        // Before `trust_proto`, a client could tell the upstream it came
        // over https through a plain HTTP listener.
        let raw = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Proto: https\r\n\r\n";
        let overwrite = RequestContext {
            trust_proto: false,
            ..CTX
        };
        let out = rewrite_request_with(raw, &HeaderEdits::default(), &overwrite);
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: a\r\nx-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: http\r\n\r\n"
        );
    }

    #[test]
    fn request_keeps_chunked_framing_and_upgrade_and_drops_expect() {
        let out = rewrite_request(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
            &HeaderEdits::default(),
        );
        assert!(out.ends_with("transfer-encoding: chunked\r\n\r\n"), "{out}");
        assert!(!out.to_ascii_lowercase().contains("expect"), "{out}");
        let out = rewrite_request(
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            &HeaderEdits::default(),
        );
        assert!(
            out.ends_with("connection: upgrade\r\nupgrade: websocket\r\n\r\n"),
            "{out}"
        );
    }

    #[test]
    fn http10_request_without_host_gets_the_upstream_as_host() {
        let out = rewrite_request("GET / HTTP/1.0\r\n\r\n", &HeaderEdits::default());
        assert!(out.starts_with("GET / HTTP/1.1\r\n"), "{out}");
        assert!(out.contains("host: 10.1.1.1:80\r\n"), "{out}");
    }

    #[test]
    fn route_edits_remove_then_add() {
        let edits = HeaderEdits {
            remove: vec![b"x-internal".to_vec().into()],
            add: vec![(b"x-route".to_vec().into(), b"r1".to_vec().into())],
        };
        let out = rewrite_request("GET / HTTP/1.1\r\nHost: a\r\nX-Internal: s\r\n\r\n", &edits);
        assert!(!out.contains("X-Internal"), "{out}");
        assert!(out.ends_with("x-route: r1\r\n\r\n"), "{out}");
    }

    fn rewrite_response(raw: &str, framing: ResponseFraming, conn: ConnectionHeader) -> String {
        let mut head = ResponseHead::default();
        assert!(parse_response(raw.as_bytes(), &Limits::default(), false, &mut head).unwrap());
        let mut out = Vec::new();
        write_response_head(
            &mut out,
            raw.as_bytes(),
            &head,
            framing,
            conn,
            &HeaderEdits::default(),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn response_reframing() {
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\n";
        assert_eq!(
            rewrite_response(raw, ResponseFraming::Chunked, ConnectionHeader::None),
            "HTTP/1.1 200 OK\r\nX-A: 1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(
            rewrite_response(raw, ResponseFraming::Close, ConnectionHeader::Close),
            "HTTP/1.1 200 OK\r\nX-A: 1\r\nconnection: close\r\n\r\n"
        );
        let raw = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(
            rewrite_response(raw, ResponseFraming::AsIs, ConnectionHeader::KeepAlive),
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nconnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn switching_protocols_keeps_upgrade() {
        let raw = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n";
        assert_eq!(
            rewrite_response(raw, ResponseFraming::AsIs, ConnectionHeader::Upgrade),
            "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
        );
    }

    #[test]
    fn connection_naming_framing_or_host_does_not_drop_them() {
        let out = rewrite_request(
            "POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\n",
            &HeaderEdits::default(),
        );
        assert_eq!(
            out,
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nx-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: http\r\n\r\n"
        );
        let out = rewrite_request(
            "GET / HTTP/1.1\r\nConnection: Host\r\nHost: a\r\n\r\n",
            &HeaderEdits::default(),
        );
        assert!(out.contains("\r\nHost: a\r\n"), "{out}");
        assert!(!out.contains("host: 10.1.1.1:80"), "{out}");
    }

    #[test]
    fn response_connection_naming_content_length_keeps_the_length() {
        let raw = "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(
            rewrite_response(raw, ResponseFraming::AsIs, ConnectionHeader::None),
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        );
    }

    #[test]
    fn absolute_form_goes_upstream_as_origin_form_with_its_authority_as_host() {
        let out = rewrite_request(
            "GET http://svc:8080/x?y=1 HTTP/1.1\r\nHost: other\r\nAccept: */*\r\n\r\n",
            &HeaderEdits::default(),
        );
        assert_eq!(
            out,
            "GET /x?y=1 HTTP/1.1\r\nhost: svc:8080\r\nAccept: */*\r\nx-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: http\r\n\r\n"
        );
        // No path: `/`; no Host from an HTTP/1.0 client: the authority, not
        // the upstream's address.
        let out = rewrite_request(
            "GET HTTPS://svc?q HTTP/1.0\r\n\r\n",
            &HeaderEdits::default(),
        );
        assert_eq!(
            out,
            "GET /?q HTTP/1.1\r\nhost: svc\r\nx-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: http\r\n\r\n"
        );
    }

    #[test]
    fn asterisk_form_is_forwarded_as_is() {
        let out = rewrite_request(
            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            &HeaderEdits::default(),
        );
        assert!(
            out.starts_with("OPTIONS * HTTP/1.1\r\nHost: a\r\n"),
            "{out}"
        );
    }

    #[test]
    fn status_line_formats_three_digits() {
        let mut out = Vec::new();
        write_status_line(&mut out, 404, b"Not Found");
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\n");
    }
}
