//! Heads between HTTP/2 and HTTP/1.1, and the responses the proxy makes
//! on an HTTP/2 stream.
//!
//! RFC 9113 section 8.2.2 and 8.3.1: `:authority` becomes Host,
//! connection-specific fields never cross (h2 refuses them on the way in;
//! they are dropped from HTTP/1.1 responses on the way out), cookie
//! crumbs are joined with `; ` for HTTP/1.1 (section 8.2.3), `te` is
//! dropped (HTTP/1.1 would need `Connection: te` to carry it). A request
//! body of unknown length goes upstream chunked, with the client's
//! trailers in the chunked trailer section.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use ringmesh_http1::head::HeaderKind;
use ringmesh_http1::rewrite::{write_pair, HeaderEdits};
use ringmesh_http1::ResponseHead;

use super::view::H2Request;
use crate::config::model::ForwardedProto;
#[cfg(test)]
use crate::error::ProxyError;
use crate::pipeline::{Local, RequestEdits};
use crate::view::RequestView;

/// Fields HTTP/2 never carries (RFC 9113 section 8.2.2), and `te`,
/// which HTTP/1.1 would need a `Connection: te` for.
fn connection_specific(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 6] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"te",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Append the HTTP/1.1 head for `req` to `out`: origin-form target,
/// Host from `:authority`, the route's edits, X-Forwarded-*, and
/// `transfer-encoding: chunked` when `chunked`.
pub fn write_h1_request(
    out: &mut Vec<u8>,
    req: &H2Request,
    edits: &RequestEdits<'_>,
    chunked: bool,
) {
    use crate::view::RequestView;
    out.extend_from_slice(req.method());
    out.push(b' ');
    match edits.rewrite.and_then(|r| r.path.as_ref()) {
        Some(p) => p.write_target(req.path(), req.query(), out),
        None => out.extend_from_slice(req.path_and_query()),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let authority = req.authority();
    let host = match edits.rewrite.and_then(|r| r.host.as_deref()) {
        Some(h) => h,
        None if authority.is_empty() => edits.fallback_host,
        None => authority,
    };
    write_pair(out, b"host", host);
    let headers = &req.parts.headers;
    let trust = edits.forwarded_proto == ForwardedProto::Trust;
    let xff = headers.get_all("x-forwarded-for").iter().count();
    let mut seen_xff = 0;
    let mut saw_xfp = false;
    let mut cookies = 0;
    for (name, value) in headers {
        let n = name.as_str().as_bytes();
        match name.as_str() {
            "host" | "expect" => continue,
            "cookie" => {
                cookies += 1;
                continue;
            }
            "x-forwarded-proto" if !trust => continue,
            "x-forwarded-proto" => saw_xfp = true,
            "x-forwarded-client-cert" if edits.client_cert.is_some() => continue,
            _ if connection_specific(n) => continue,
            _ if !edits.propagated.is_empty() && edits.propagated.replaces(n) => continue,
            _ => {}
        }
        if !edits.headers.remove.is_empty() && removes(edits.headers, n) {
            continue;
        }
        if name.as_str() == "x-forwarded-for" {
            seen_xff += 1;
            if seen_xff == xff {
                out.extend_from_slice(b"x-forwarded-for: ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b", ");
                out.extend_from_slice(edits.client_ip);
                out.extend_from_slice(b"\r\n");
                continue;
            }
        }
        write_pair(out, n, value.as_bytes());
    }
    if cookies > 0 && !removes(edits.headers, b"cookie") {
        out.extend_from_slice(b"cookie: ");
        for (i, crumb) in headers.get_all("cookie").iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(crumb.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    if xff == 0 {
        write_pair(out, b"x-forwarded-for", edits.client_ip);
    }
    if !saw_xfp {
        write_pair(out, b"x-forwarded-proto", edits.scheme);
    }
    if let Some(cert) = &edits.client_cert {
        cert.write(out);
    }
    edits
        .propagated
        .each(|name, value| write_pair(out, name, value));
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    for (name, value) in &edits.headers.add {
        write_pair(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

fn removes(edits: &HeaderEdits, name: &[u8]) -> bool {
    edits.remove.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// The request for an HTTP/2 upstream, from any client's request: its
/// authority as `:authority` (Host dropped), hop-by-hop and
/// connection-specific fields dropped (`te: trailers` kept, as gRPC
/// needs), the route's edits and X-Forwarded-* applied. `None` when the
/// target cannot form a URI.
pub fn h2_upstream_request(req: &dyn RequestView, edits: &RequestEdits<'_>) -> Option<Request<()>> {
    let rewrite = edits.rewrite;
    let authority = match (rewrite.and_then(|r| r.host.as_deref()), req.authority()) {
        (Some(h), _) => h,
        (None, b"") => edits.fallback_host,
        (None, a) => a,
    };
    let mut target = Vec::with_capacity(req.path().len() + 16);
    ringmesh_http1::target::write_target(
        rewrite.and_then(|r| r.path.as_ref()),
        req.path(),
        req.query(),
        &mut target,
    );
    let uri = http::Uri::builder()
        .scheme(if req.scheme() == b"https" {
            "https"
        } else {
            "http"
        })
        .authority(authority)
        .path_and_query(target)
        .build()
        .ok()?;
    let mut out = Request::new(());
    *out.method_mut() = http::Method::from_bytes(req.method()).ok()?;
    *out.uri_mut() = uri;
    *out.version_mut() = http::Version::HTTP_2;
    let trust = edits.forwarded_proto == ForwardedProto::Trust;
    let headers = out.headers_mut();
    let mut xff: Vec<u8> = Vec::new();
    let mut saw_xfp = false;
    req.for_each_header(&mut |name, value| {
        let lower = |n: &[u8], want: &[u8]| n.eq_ignore_ascii_case(want);
        if lower(name, b"te") {
            if value.eq_ignore_ascii_case(b"trailers") {
                append(headers, b"te", b"trailers");
            }
            return;
        }
        if connection_specific(name) || lower(name, b"host") || lower(name, b"expect") {
            return;
        }
        if edits.client_cert.is_some() && lower(name, ringmesh_http1::rewrite::XFCC) {
            return;
        }
        if !edits.propagated.is_empty() && edits.propagated.replaces(name) {
            return;
        }
        if !edits.headers.remove.is_empty() && removes(edits.headers, name) {
            return;
        }
        if lower(name, b"x-forwarded-for") {
            if !xff.is_empty() {
                xff.extend_from_slice(b", ");
            }
            xff.extend_from_slice(value);
            return;
        }
        if lower(name, b"x-forwarded-proto") {
            if !trust {
                return;
            }
            saw_xfp = true;
        }
        append(headers, name, value);
    });
    if !xff.is_empty() {
        xff.extend_from_slice(b", ");
    }
    xff.extend_from_slice(edits.client_ip);
    append(headers, b"x-forwarded-for", &xff);
    if !saw_xfp {
        append(headers, b"x-forwarded-proto", edits.scheme);
    }
    if let Some(value) = edits.client_cert.and_then(|c| c.value()) {
        append(headers, ringmesh_http1::rewrite::XFCC, &value);
    }
    edits
        .propagated
        .each(|name, value| append(headers, name, value));
    for (name, value) in &edits.headers.add {
        append(headers, name, value);
    }
    Some(out)
}

/// The client's response head for an HTTP/2 upstream's (`parts`):
/// connection-specific fields dropped, the route's edits applied.
pub fn h2_response_from_h2(parts: &http::response::Parts, edits: &HeaderEdits) -> Response<()> {
    let mut resp = Response::new(());
    *resp.status_mut() = parts.status;
    let headers = resp.headers_mut();
    for (name, value) in &parts.headers {
        let n = name.as_str().as_bytes();
        if connection_specific(n) || (!edits.remove.is_empty() && removes(edits, n)) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    for (name, value) in &edits.add {
        append(headers, name, value);
    }
    resp
}

/// Append trailers as a chunked body's trailer section (after the last
/// chunk), dropping fields not allowed there.
pub fn write_h1_trailers(out: &mut Vec<u8>, trailers: &HeaderMap) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        let n = name.as_str().as_bytes();
        if connection_specific(n) || n == b"content-length" || n == b"host" {
            continue;
        }
        write_pair(out, n, value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// The HTTP/2 response head for an HTTP/1.1 response head, with the
/// route's edits. `buf` is a shared copy of the bytes the head was parsed
/// from: field values are slices of it, so the whole head costs one
/// allocation, not one per field. Fields h2 cannot carry are dropped; so
/// is a field whose name or value HTTP/2 would refuse.
pub fn h2_response(buf: &Bytes, head: &ResponseHead, edits: &HeaderEdits) -> Response<()> {
    let mut resp = Response::new(());
    *resp.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = resp.headers_mut();
    for h in &head.headers {
        if matches!(h.kind, HeaderKind::HopByHop | HeaderKind::TransferEncoding) {
            continue;
        }
        let name = h.name.get(buf);
        if connection_specific(name) || (!edits.remove.is_empty() && removes(edits, name)) {
            continue;
        }
        let range = h.value.start as usize..h.value.end as usize;
        let value = buf
            .get(range.clone())
            .map(|_| HeaderValue::from_maybe_shared(buf.slice(range)));
        if let (Ok(n), Some(Ok(v))) = (HeaderName::from_bytes(name), value) {
            headers.append(n, v);
        }
    }
    for (name, value) in &edits.add {
        append(headers, name, value);
    }
    resp
}

fn append(headers: &mut HeaderMap, name: &[u8], value: &[u8]) {
    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
        headers.append(n, v);
    }
}

/// A response the proxy makes, as head and body. A gRPC request gets
/// a gRPC answer: HTTP 200, Trailers-Only (the status in the head, no
/// body), `grpc-status` and a percent-encoded `grpc-message`.
pub fn local_response(local: Local<'_>, grpc: bool, is_head: bool) -> (Response<()>, Bytes) {
    let mut resp = Response::new(());
    let h = resp.headers_mut();
    let body = match local {
        Local::Error(err) if grpc => {
            h.insert("content-type", HeaderValue::from_static("application/grpc"));
            h.insert(
                "grpc-status",
                HeaderValue::from(u16::from(err.grpc_status())),
            );
            let message = grpc_message(&err.to_string());
            if let Ok(v) = HeaderValue::from_str(&message) {
                h.insert("grpc-message", v);
            }
            h.insert("ringmesh-error", HeaderValue::from_static(err.reason()));
            Bytes::new()
        }
        Local::Error(err) => {
            *resp.status_mut() = status(err.status());
            let h = resp.headers_mut();
            h.insert("content-type", HeaderValue::from_static("text/plain"));
            h.insert("ringmesh-error", HeaderValue::from_static(err.reason()));
            Bytes::from(format!("{err}\n"))
        }
        Local::Direct { status: code, body } => {
            *resp.status_mut() = status(code);
            Bytes::copy_from_slice(body)
        }
        Local::Redirect {
            status: code,
            location,
        } => {
            *resp.status_mut() = status(code);
            append(resp.headers_mut(), b"location", location);
            Bytes::new()
        }
    };
    if let Local::Error(err) = local {
        if let Some(secs) = err.retry_after() {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
    }
    if !grpc || !matches!(local, Local::Error(_)) {
        resp.headers_mut()
            .insert("content-length", HeaderValue::from(body.len()));
    }
    let body = if is_head { Bytes::new() } else { body };
    (resp, body)
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// gRPC's `grpc-message` encoding: bytes outside printable ASCII, and
/// `%`, percent-encoded (PROTOCOL-HTTP2.md).
pub fn grpc_message(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmesh_http1::{parse_response, Limits};

    fn request(build: http::request::Builder) -> H2Request {
        let (parts, ()) = build.body(()).unwrap().into_parts();
        H2Request {
            parts,
            scheme: b"https",
            empty: false,
        }
    }

    fn edits<'a>(headers: &'a HeaderEdits) -> RequestEdits<'a> {
        RequestEdits {
            headers,
            rewrite: None,
            client_ip: b"10.0.0.9",
            scheme: b"https",
            forwarded_proto: ForwardedProto::Overwrite,
            fallback_host: b"10.1.1.1:80",
            h1_upstream: true,
            client_cert: None,
            propagated: Default::default(),
        }
    }

    #[test]
    fn an_h2_request_becomes_an_h1_head() {
        let req = request(
            http::Request::builder()
                .method("POST")
                .uri("https://api.example:8443/v1/x?y=1")
                .header("cookie", "a=1")
                .header("x-forwarded-for", "1.1.1.1")
                .header("x-forwarded-proto", "http")
                .header("te", "trailers")
                .header("cookie", "b=2")
                .header("x-drop", "1")
                .header("content-type", "application/grpc"),
        );
        let route = HeaderEdits {
            remove: vec![b"x-drop".to_vec().into()],
            add: vec![(b"x-route".to_vec().into(), b"r1".to_vec().into())],
        };
        let mut out = Vec::new();
        write_h1_request(&mut out, &req, &edits(&route), true);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "POST /v1/x?y=1 HTTP/1.1\r\n\
             host: api.example:8443\r\n\
             x-forwarded-for: 1.1.1.1, 10.0.0.9\r\n\
             content-type: application/grpc\r\n\
             cookie: a=1; b=2\r\n\
             x-forwarded-proto: https\r\n\
             transfer-encoding: chunked\r\n\
             x-route: r1\r\n\r\n"
        );
        assert_eq!(req.method(), b"POST");
    }

    #[test]
    fn a_mesh_listener_tells_an_h2_workload_who_called() {
        let req = request(
            http::Request::builder()
                .method("GET")
                .uri("https://orders/x")
                .header("x-forwarded-client-cert", "URI=spiffe://td/ns/a/sa/forged"),
        );
        let none = HeaderEdits::default();
        let mut e = edits(&none);
        e.client_cert = Some(ringmesh_http1::rewrite::ClientCert {
            by: b"spiffe://td/ns/a/sa/orders",
            uri: Some(b"td/ns/a/sa/web"),
        });
        let out = h2_upstream_request(&req, &e).unwrap();
        let xfcc: Vec<_> = out
            .headers()
            .get_all("x-forwarded-client-cert")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            xfcc,
            ["By=spiffe://td/ns/a/sa/orders;URI=spiffe://td/ns/a/sa/web"]
        );
        // Outside the mesh it passes through.
        let out = h2_upstream_request(&req, &edits(&none)).unwrap();
        assert_eq!(
            out.headers()["x-forwarded-client-cert"],
            "URI=spiffe://td/ns/a/sa/forged"
        );
    }

    #[test]
    fn an_h1_response_becomes_an_h2_head_without_connection_fields() {
        let raw = b"HTTP/1.1 201 Created\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\nSet-Cookie: a\r\nSet-Cookie: b\r\nX-Secret: s\r\n\r\n";
        let mut head = ResponseHead::default();
        assert!(parse_response(raw, &Limits::default(), false, &mut head).unwrap());
        let route = HeaderEdits {
            remove: vec![b"x-secret".to_vec().into()],
            add: vec![],
        };
        let resp = h2_response(&Bytes::from_static(raw), &head, &route);
        assert_eq!(resp.status(), 201);
        let names: Vec<_> = resp.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-up", "set-cookie"]);
        assert_eq!(resp.headers().get_all("set-cookie").iter().count(), 2);
    }

    #[test]
    fn a_grpc_caller_gets_trailers_only_errors() {
        let (resp, body) = local_response(Local::Error(ProxyError::NoEndpoints), true, false);
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        assert_eq!(h["grpc-status"], "14");
        assert_eq!(h["content-type"], "application/grpc");
        assert_eq!(h["grpc-message"], "no_healthy_endpoints");
        assert!(body.is_empty());
        let (resp, _) = local_response(Local::Error(ProxyError::UpstreamTimeout), true, false);
        assert_eq!(resp.headers()["grpc-status"], "4");
        let (resp, body) = local_response(Local::Error(ProxyError::NoRoute), false, false);
        assert_eq!(resp.status(), 404);
        assert_eq!(body, "no_route\n");
    }

    #[test]
    fn a_rate_limited_caller_is_told_when_to_come_back() {
        let limited = Local::Error(ProxyError::RateLimited(2));
        let (resp, body) = local_response(limited, false, false);
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "2");
        assert_eq!(resp.headers()["ringmesh-error"], "rate_limited");
        assert_eq!(body, "rate_limited\n");
        let (resp, _) = local_response(limited, true, false);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["grpc-status"], "8");
        assert_eq!(resp.headers()["retry-after"], "2");
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(grpc_message("a b%c\u{e9}\n"), "a b%25c%C3%A9%0A");
    }
}
