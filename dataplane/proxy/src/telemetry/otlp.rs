//! The span exporter: a thread off the request cores that turns the cores'
//! span records into OTLP and sends them to the collector over gRPC
//! (`opentelemetry.proto.collector.trace.v1.TraceService/Export`).
//!
//! One export per core batch (hundreds of spans at load, a few per second
//! when quiet). A collector that is down or slow costs spans, never
//! requests: an export has a deadline, a failed one counts its spans as
//! dropped, and while exports are slow the cores' buffers run out and the
//! cores drop (and count) spans themselves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use tonic::transport::{Channel, Endpoint};
use tracing::warn;

use super::batch::Inbox;
use super::span::{decode, Kind, Record};

/// Where spans go, from the config's `tracing`.
#[derive(Debug, PartialEq, Eq)]
pub struct Collector {
    /// `http://host:port`.
    pub endpoint: String,
    /// The resource's `service.name`.
    pub service_name: String,
}

/// How long one export may take before its spans count as dropped.
const EXPORT_DEADLINE: Duration = Duration::from_secs(2);

/// Spans the collector accepted, and spans lost because an export failed.
pub static EXPORTED: AtomicU64 = AtomicU64::new(0);
pub static EXPORT_FAILED: AtomicU64 = AtomicU64::new(0);

/// Start the exporter; it ends when every core's outbox is gone.
pub fn spawn(inbox: Inbox<Collector>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ringmesh-otlp".into())
        .spawn(move || run(inbox))
}

fn run(inbox: Inbox<Collector>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warn!(error = %e, "span exporter cannot start: spans will be dropped");
            drain(&inbox);
            return;
        }
    };
    // A lazy channel spawns its connection task on the current runtime.
    let _entered = rt.enter();
    let mut clients: HashMap<String, TraceServiceClient<Channel>> = HashMap::new();
    let failures = crate::loglimit::LogLimit::default();
    while let Ok(batch) = inbox.batches.recv() {
        let spans: Vec<Span> = decode(&batch.buf).map(|r| to_otlp(&r)).collect();
        let n = spans.len() as u64;
        let request = ExportTraceServiceRequest {
            resource_spans: vec![resource_spans(&batch.dest.service_name, spans)],
        };
        inbox.recycle(batch.core, batch.buf);
        let endpoint = &batch.dest.endpoint;
        let client = match clients.get(endpoint) {
            Some(c) => c.clone(),
            None => match Endpoint::from_shared(endpoint.clone()) {
                Ok(e) => {
                    let c = TraceServiceClient::new(
                        e.connect_timeout(EXPORT_DEADLINE)
                            .timeout(EXPORT_DEADLINE)
                            .connect_lazy(),
                    );
                    clients.insert(endpoint.clone(), c.clone());
                    c
                }
                Err(e) => {
                    EXPORT_FAILED.fetch_add(n, Relaxed);
                    if failures.allow() {
                        warn!(collector = %endpoint, error = %e, "bad collector address: spans dropped");
                    }
                    continue;
                }
            },
        };
        let mut client = client;
        let sent = rt.block_on(async {
            tokio::time::timeout(EXPORT_DEADLINE, client.export(request)).await
        });
        match sent {
            Ok(Ok(_)) => {
                EXPORTED.fetch_add(n, Relaxed);
            }
            failed => {
                EXPORT_FAILED.fetch_add(n, Relaxed);
                let why = match failed {
                    Ok(Err(status)) => status.to_string(),
                    _ => "no answer within the export deadline".to_string(),
                };
                if failures.allow() {
                    warn!(collector = %endpoint, spans = n, error = %why, "span export failed: spans dropped");
                }
            }
        }
    }
}

/// Without a runtime nothing can be sent: give every buffer back.
fn drain(inbox: &Inbox<Collector>) {
    while let Ok(batch) = inbox.batches.recv() {
        EXPORT_FAILED.fetch_add(u64::from(batch.items), Relaxed);
        inbox.recycle(batch.core, batch.buf);
    }
}

fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", service),
                kv("telemetry.sdk.name", "ringmesh"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "ringmesh-proxy".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// Whether the span's status is ERROR, by the semantic conventions: no
/// response at all; HTTP 5xx, and 4xx too on a client span; for gRPC, any
/// code but OK on a client span, and on a server span the codes that
/// mean the server failed (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
/// INTERNAL, UNAVAILABLE, DATA_LOSS).
fn failed(r: &Record<'_>) -> bool {
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
fn host_port(text: &[u8]) -> (&[u8], Option<i64>) {
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

/// A span with the OpenTelemetry HTTP semantic conventions' attributes
/// (server spans: `client.*`; client spans: `network.peer.*` for the
/// endpoint), and ringmesh's own under `ringmesh.*`.
pub fn to_otlp(r: &Record<'_>) -> Span {
    let mut attrs = Vec::with_capacity(20);
    if !r.method.is_empty() {
        attrs.push(kv("http.request.method", text(r.method)));
        attrs.push(kv("url.scheme", text(r.scheme)));
        attrs.push(kv("url.path", text(r.path)));
        if !r.query.is_empty() {
            attrs.push(kv("url.query", text(r.query)));
        }
        let (host, port) = host_port(r.authority);
        if !host.is_empty() {
            attrs.push(kv("server.address", text(host)));
        }
        if let Some(p) = port {
            attrs.push(kv_int("server.port", p));
        }
        attrs.push(kv("network.protocol.name", "http"));
        let version = r.protocol.strip_prefix(b"HTTP/").unwrap_or(r.protocol);
        attrs.push(kv("network.protocol.version", text(version)));
        if !r.user_agent.is_empty() {
            attrs.push(kv("user_agent.original", text(r.user_agent)));
        }
    }
    if r.status != 0 {
        attrs.push(kv_int("http.response.status_code", i64::from(r.status)));
    }
    let (client, client_port) = host_port(r.client);
    attrs.push(kv("client.address", text(client)));
    if let Some(p) = client_port {
        attrs.push(kv_int("client.port", p));
    }
    if !r.upstream.is_empty() {
        let (peer, peer_port) = host_port(r.upstream);
        attrs.push(kv("network.peer.address", text(peer)));
        if let Some(p) = peer_port {
            attrs.push(kv_int("network.peer.port", p));
        }
    }
    if let Some(code) = r.grpc {
        attrs.push(kv("rpc.system", "grpc"));
        attrs.push(kv_int("rpc.grpc.status_code", i64::from(code)));
    }
    let failed = failed(r);
    if failed {
        let why = if r.details != b"via_upstream" && r.details != b"direct_response" {
            text(r.details)
        } else if let Some(code) = r.grpc.filter(|c| *c != 0) {
            code.to_string()
        } else if r.status == 0 {
            "client_closed".to_string()
        } else {
            r.status.to_string()
        };
        attrs.push(kv("error.type", why));
    }
    for (key, v) in [
        ("ringmesh.listener", r.listener),
        ("ringmesh.route", r.route),
        ("ringmesh.cluster", r.cluster),
        ("ringmesh.response_flags", r.flags),
        ("ringmesh.response_code_details", r.details),
    ] {
        if !v.is_empty() {
            attrs.push(kv(key, text(v)));
        }
    }
    if !r.principal.is_empty() {
        let mut p = b"spiffe://".to_vec();
        p.extend_from_slice(r.principal);
        attrs.push(kv("ringmesh.peer.principal", text(&p)));
    }
    Span {
        trace_id: r.trace_id.to_vec(),
        span_id: r.span_id.to_vec(),
        parent_span_id: r.parent.map(|p| p.to_vec()).unwrap_or_default(),
        // W3C flags: sampled (only sampled spans are recorded).
        flags: 0x101,
        name: if r.method.is_empty() {
            "TCP".into()
        } else {
            text(r.method)
        },
        kind: match r.kind {
            Kind::Server => span::SpanKind::Server as i32,
            Kind::Client => span::SpanKind::Client as i32,
        },
        start_time_unix_nano: r.start_ns,
        end_time_unix_nano: r.end_ns,
        attributes: attrs,
        status: Some(Status {
            code: if failed {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Unset as i32
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: Kind, status: u16, grpc: Option<u8>) -> Record<'static> {
        Record {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: None,
            kind,
            start_ns: 0,
            end_ns: 1,
            status,
            grpc,
            method: b"POST",
            scheme: b"http",
            authority: b"a",
            path: b"/p",
            query: b"",
            protocol: b"HTTP/2",
            user_agent: b"",
            client: b"127.0.0.1:1",
            upstream: b"",
            principal: b"",
            route: b"",
            cluster: b"",
            listener: b"",
            details: b"via_upstream",
            flags: b"-",
        }
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
        let span = to_otlp(&record(Server, 200, Some(13)));
        let error_type = span.attributes.iter().find(|kv| kv.key == "error.type");
        assert!(error_type.is_some(), "{span:?}");
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
}
