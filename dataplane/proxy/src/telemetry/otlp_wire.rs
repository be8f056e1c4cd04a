//! OTLP's `ExportTraceServiceRequest` in protobuf wire format, written
//! straight from the cores' span records into reused buffers.
//!
//! Hand-written because the generated types cost the exporter most of its
//! CPU: a `Span` of twenty attributes is some forty allocations to build
//! and free, and prost walks each nested message again for every length
//! prefix above it. Here an attribute's length is arithmetic, a span is
//! encoded once into a scratch buffer and copied behind its length, and
//! nothing is allocated per span. The tests decode the output with the
//! generated types (`opentelemetry-proto`), so the two cannot disagree.
//!
//! Attributes follow the OpenTelemetry HTTP semantic conventions (server
//! spans: `client.*`; client spans: `network.peer.*` for the endpoint),
//! with ringmesh's own under `ringmesh.*`.

use std::borrow::Cow;

use super::span::{Kind, Record};

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// Buffers reused from one export to the next.
#[derive(Default)]
pub struct Export {
    out: Vec<u8>,
    resource: Vec<u8>,
    scope: Vec<u8>,
    span: Vec<u8>,
}

impl Export {
    /// The request carrying `records` for service `service`; the number
    /// of spans in it.
    pub fn encode<'a>(
        &mut self,
        service: &str,
        records: impl Iterator<Item = Record<'a>>,
    ) -> (&[u8], u64) {
        // ScopeSpans { scope = 1: InstrumentationScope, spans = 2 }
        self.scope.clear();
        let (name, version) = ("ringmesh-proxy", env!("CARGO_PKG_VERSION"));
        let scope = str_len(name) + str_len(version);
        tag(&mut self.scope, 1, LEN);
        varint(&mut self.scope, scope as u64);
        string(&mut self.scope, 1, name);
        string(&mut self.scope, 2, version);
        let mut n = 0;
        for r in records {
            self.span.clear();
            span(&mut self.span, &r);
            bytes(&mut self.scope, 2, &self.span);
            n += 1;
        }
        // Resource { attributes = 1 }
        self.resource.clear();
        attr(&mut self.resource, 1, "service.name", service.as_bytes());
        attr(&mut self.resource, 1, "telemetry.sdk.name", b"ringmesh");
        // ResourceSpans { resource = 1, scope_spans = 2 }, reusing `span`.
        self.span.clear();
        bytes(&mut self.span, 1, &self.resource);
        bytes(&mut self.span, 2, &self.scope);
        // ExportTraceServiceRequest { resource_spans = 1 }
        self.out.clear();
        bytes(&mut self.out, 1, &self.span);
        (&self.out, n)
    }
}

/// One `Span` message's fields.
fn span(s: &mut Vec<u8>, r: &Record<'_>) {
    bytes(s, 1, &r.trace_id);
    bytes(s, 2, &r.span_id);
    if let Some(p) = &r.parent {
        bytes(s, 4, p);
    }
    let name: &[u8] = if r.method.is_empty() {
        b"TCP"
    } else {
        r.method
    };
    string(s, 5, &text(name));
    tag(s, 6, VARINT);
    varint(s, r.kind as u64);
    tag(s, 7, I64);
    s.extend_from_slice(&r.start_ns.to_le_bytes());
    tag(s, 8, I64);
    s.extend_from_slice(&r.end_ns.to_le_bytes());
    attributes(s, r);
    // Status { code = 3 }: ERROR (2) or UNSET (0, the empty message).
    tag(s, 15, LEN);
    if failed(r) {
        varint(s, 2);
        tag(s, 3, VARINT);
        varint(s, 2);
    } else {
        varint(s, 0);
    }
    // W3C flags: sampled (only sampled spans are recorded), and the
    // "has is_remote" bit.
    tag(s, 16, I32);
    s.extend_from_slice(&0x101u32.to_le_bytes());
}

/// `Span.attributes` (field 9).
fn attributes(s: &mut Vec<u8>, r: &Record<'_>) {
    const F: u32 = 9;
    if !r.method.is_empty() {
        attr(s, F, "http.request.method", r.method);
        attr(s, F, "url.scheme", r.scheme);
        attr(s, F, "url.path", r.path);
        if !r.query.is_empty() {
            attr(s, F, "url.query", r.query);
        }
        let (host, port) = host_port(r.authority);
        if !host.is_empty() {
            attr(s, F, "server.address", host);
        }
        if let Some(p) = port {
            attr_int(s, F, "server.port", p);
        }
        attr(s, F, "network.protocol.name", b"http");
        let version = r.protocol.strip_prefix(b"HTTP/").unwrap_or(r.protocol);
        attr(s, F, "network.protocol.version", version);
        if !r.user_agent.is_empty() {
            attr(s, F, "user_agent.original", r.user_agent);
        }
    }
    if r.status != 0 {
        attr_int(s, F, "http.response.status_code", i64::from(r.status));
    }
    let (client, client_port) = host_port(r.client);
    attr(s, F, "client.address", client);
    if let Some(p) = client_port {
        attr_int(s, F, "client.port", p);
    }
    if !r.upstream.is_empty() {
        let (peer, peer_port) = host_port(r.upstream);
        attr(s, F, "network.peer.address", peer);
        if let Some(p) = peer_port {
            attr_int(s, F, "network.peer.port", p);
        }
    }
    if let Some(code) = r.grpc {
        attr(s, F, "rpc.system", b"grpc");
        attr_int(s, F, "rpc.grpc.status_code", i64::from(code));
    }
    if failed(r) {
        let mut num = itoa::Buffer::new();
        let why: &[u8] = if r.details != b"via_upstream" && r.details != b"direct_response" {
            r.details
        } else if let Some(code) = r.grpc.filter(|c| *c != 0) {
            num.format(code).as_bytes()
        } else if r.status == 0 {
            b"client_closed"
        } else {
            num.format(r.status).as_bytes()
        };
        attr(s, F, "error.type", why);
    }
    for (key, v) in [
        ("ringmesh.listener", r.listener),
        ("ringmesh.route", r.route),
        ("ringmesh.cluster", r.cluster),
        ("ringmesh.response_flags", r.flags),
        ("ringmesh.response_code_details", r.details),
    ] {
        if !v.is_empty() {
            attr(s, F, key, v);
        }
    }
    if !r.principal.is_empty() {
        // `spiffe://` + the principal, without building the string.
        let value = text(r.principal);
        let len = SPIFFE.len() + value.len();
        kv_head(
            s,
            F,
            "ringmesh.peer.principal",
            1 + varint_len(len as u64) + len,
        );
        tag(s, 1, LEN);
        varint(s, len as u64);
        s.extend_from_slice(SPIFFE);
        s.extend_from_slice(value.as_bytes());
    }
}

const SPIFFE: &[u8] = b"spiffe://";

/// Whether the span's status is ERROR, by the semantic conventions: no
/// response at all; HTTP 5xx, and 4xx too on a client span; for gRPC, any
/// code but OK on a client span, and on a server span the codes that
/// mean the server failed (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
/// INTERNAL, UNAVAILABLE, DATA_LOSS).
pub fn failed(r: &Record<'_>) -> bool {
    if r.status == 0 || r.status >= 500 || (r.kind == Kind::Client && r.status >= 400) {
        return true;
    }
    match (r.grpc, r.kind) {
        (Some(0) | None, _) => false,
        (Some(_), Kind::Client) => true,
        (Some(code), Kind::Server) => matches!(code, 2 | 4 | 12 | 13 | 14 | 15),
    }
}

/// Split `host:port` (or `[v6]:port`) into its parts.
pub fn host_port(text: &[u8]) -> (&[u8], Option<i64>) {
    match text.iter().rposition(|&b| b == b':') {
        Some(i) if !text[i + 1..].is_empty() && text[i + 1..].iter().all(u8::is_ascii_digit) => {
            let host = &text[..i];
            let host = host
                .strip_prefix(b"[")
                .and_then(|h| h.strip_suffix(b"]"))
                .unwrap_or(host);
            let port = std::str::from_utf8(&text[i + 1..])
                .ok()
                .and_then(|p| p.parse().ok());
            (host, port)
        }
        _ => (text, None),
    }
}

/// Protobuf strings are UTF-8; header bytes need not be. Borrowed (no
/// copy) when they are, as nearly always.
fn text(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// A `KeyValue { key, value: AnyValue { string_value } }` as field `field`.
fn attr(out: &mut Vec<u8>, field: u32, key: &str, value: &[u8]) {
    let value = text(value);
    kv_head(out, field, key, str_len(&value));
    string(out, 1, &value);
}

/// A `KeyValue { key, value: AnyValue { int_value } }` as field `field`.
fn attr_int(out: &mut Vec<u8>, field: u32, key: &str, v: i64) {
    kv_head(out, field, key, 1 + varint_len(v as u64));
    tag(out, 3, VARINT);
    varint(out, v as u64);
}

/// A `KeyValue`'s tag, length and key, and its value's tag and length,
/// for a value (`AnyValue`) of `any` bytes.
fn kv_head(out: &mut Vec<u8>, field: u32, key: &str, any: usize) {
    let kv = str_len(key) + 1 + varint_len(any as u64) + any;
    tag(out, field, LEN);
    varint(out, kv as u64);
    string(out, 1, key);
    tag(out, 2, LEN);
    varint(out, any as u64);
}

/// Bytes a string field takes (fields below 16: a one-byte tag).
fn str_len(s: &str) -> usize {
    1 + varint_len(s.len() as u64) + s.len()
}

fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes(out, field, s.as_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    tag(out, field, LEN);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field << 3 | u32::from(wire)));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message;

    fn record(kind: Kind, status: u16, grpc: Option<u8>) -> Record<'static> {
        Record {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: Some([3; 8]),
            kind,
            start_ns: 1_796_166_849_000_000_000,
            end_ns: 1_796_166_849_000_840_000,
            status,
            grpc,
            method: b"POST",
            scheme: b"http",
            authority: b"orders.shop:8080",
            path: b"/p",
            query: b"a=1",
            protocol: b"HTTP/2",
            user_agent: b"t/\xff",
            client: b"[::1]:40000",
            upstream: b"10.0.0.1:9",
            principal: b"td/ns/a/sa/web",
            route: b"r",
            cluster: b"c",
            listener: b"in",
            details: b"via_upstream",
            flags: b"-",
        }
    }

    fn export(records: Vec<Record<'_>>) -> (ExportTraceServiceRequest, u64) {
        let mut e = Export::default();
        let (bytes, n) = e.encode("web", records.into_iter());
        (
            ExportTraceServiceRequest::decode(bytes).expect("valid protobuf"),
            n,
        )
    }

    fn attr_of(s: &Span, key: &str) -> Option<String> {
        let kv = s.attributes.iter().find(|kv| kv.key == key)?;
        Some(match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(v) => v.clone(),
            Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn prost_reads_what_is_written() {
        let (req, n) = export(vec![
            record(Kind::Server, 200, None),
            record(Kind::Client, 503, Some(14)),
        ]);
        assert_eq!(n, 2);
        let rs = &req.resource_spans[0];
        let service = &rs.resource.as_ref().unwrap().attributes[0];
        assert_eq!(service.key, "service.name");
        let scope = &rs.scope_spans[0];
        assert_eq!(scope.scope.as_ref().unwrap().name, "ringmesh-proxy");
        let (ok, bad) = (&scope.spans[0], &scope.spans[1]);
        assert_eq!(
            (ok.trace_id.as_slice(), ok.span_id.as_slice()),
            (&[1; 16][..], &[2; 8][..])
        );
        assert_eq!(ok.parent_span_id, vec![3; 8]);
        assert_eq!((ok.name.as_str(), ok.kind), ("POST", 2));
        assert_eq!(ok.end_time_unix_nano - ok.start_time_unix_nano, 840_000);
        assert_eq!(ok.flags, 0x101);
        assert_eq!(ok.status.as_ref().map(|s| s.code), Some(0));
        assert_eq!(bad.status.as_ref().map(|s| s.code), Some(2));
        assert_eq!(bad.kind, 3);
        let want = [
            ("http.request.method", "POST"),
            ("url.scheme", "http"),
            ("url.path", "/p"),
            ("url.query", "a=1"),
            ("server.address", "orders.shop"),
            ("server.port", "8080"),
            ("network.protocol.version", "2"),
            ("user_agent.original", "t/\u{fffd}"),
            ("http.response.status_code", "200"),
            ("client.address", "::1"),
            ("client.port", "40000"),
            ("network.peer.address", "10.0.0.1"),
            ("network.peer.port", "9"),
            ("ringmesh.route", "r"),
            ("ringmesh.peer.principal", "spiffe://td/ns/a/sa/web"),
        ];
        for (k, v) in want {
            assert_eq!(attr_of(ok, k).as_deref(), Some(v), "{k}");
        }
        assert_eq!(attr_of(ok, "error.type"), None);
        assert_eq!(attr_of(bad, "rpc.grpc.status_code").as_deref(), Some("14"));
        assert_eq!(attr_of(bad, "error.type").as_deref(), Some("14"));
    }

    #[test]
    fn a_tcp_span_and_big_values_encode() {
        let mut tcp = record(Kind::Server, 0, None);
        tcp.method = b"";
        tcp.parent = None;
        // A length past two varint bytes.
        let long = vec![b'x'; 70_000];
        let mut big: Record<'_> = record(Kind::Server, 200, None);
        big.path = &long;
        let (req, n) = export(vec![tcp, big]);
        assert_eq!(n, 2);
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(
            (spans[0].name.as_str(), spans[0].parent_span_id.len()),
            ("TCP", 0)
        );
        assert_eq!(
            attr_of(&spans[0], "error.type").as_deref(),
            Some("client_closed")
        );
        assert_eq!(
            attr_of(&spans[1], "url.path").map(|p| p.len()),
            Some(70_000)
        );
    }

    #[test]
    fn error_status_follows_the_semantic_conventions() {
        use Kind::{Client, Server};
        assert!(
            !failed(&record(Server, 404, None)),
            "a server's 4xx is the client's"
        );
        assert!(failed(&record(Client, 404, None)));
        assert!(failed(&record(Server, 503, None)));
        assert!(failed(&record(Server, 0, None)), "no response");
        assert!(
            !failed(&record(Server, 200, Some(5))),
            "NOT_FOUND is the caller's"
        );
        assert!(failed(&record(Server, 200, Some(14))));
        assert!(failed(&record(Client, 200, Some(5))));
        assert!(!failed(&record(Client, 200, Some(0))));
    }

    #[test]
    fn host_and_port_split_for_every_address_form() {
        assert_eq!(
            host_port(b"a.example:8080"),
            (&b"a.example"[..], Some(8080))
        );
        assert_eq!(host_port(b"[::1]:9"), (&b"::1"[..], Some(9)));
        assert_eq!(host_port(b"a.example"), (&b"a.example"[..], None));
        assert_eq!(host_port(b""), (&b""[..], None));
    }

    #[test]
    fn varint_lengths() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }
}
