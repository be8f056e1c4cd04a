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

use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tracing::warn;

use super::batch::Inbox;
use super::otlp_wire::Export;
use super::span::decode;

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
    super::lower_priority("ringmesh-otlp");
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
    let mut channels: HashMap<String, Channel> = HashMap::new();
    let mut export = Export::default();
    let failures = crate::loglimit::LogLimit::default();
    while let Ok(batch) = inbox.batches.recv() {
        let (wire, n) = export.encode(&batch.dest.service_name, decode(&batch.buf));
        let request = Bytes::copy_from_slice(wire);
        inbox.recycle(batch.core, batch.buf);
        let endpoint = &batch.dest.endpoint;
        let channel = match channels.get(endpoint) {
            Some(c) => c.clone(),
            None => match Endpoint::from_shared(endpoint.clone()) {
                Ok(e) => {
                    let c = e
                        .connect_timeout(EXPORT_DEADLINE)
                        .timeout(EXPORT_DEADLINE)
                        .connect_lazy();
                    channels.insert(endpoint.clone(), c.clone());
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
        let sent = rt.block_on(async {
            tokio::time::timeout(EXPORT_DEADLINE, send(channel, request)).await
        });
        match sent {
            Ok(Ok(())) => {
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

/// The gRPC method every OTLP collector serves.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// One unary `Export` call carrying an already encoded request.
async fn send(channel: Channel, request: Bytes) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
    grpc.unary::<Bytes, (), Raw>(tonic::Request::new(request), path, Raw)
        .await
        .map(|_| ())
}

/// A codec that sends bytes already in protobuf form (`otlp_wire`) and
/// ignores the answer's body (the partial-success details are not used).
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

/// Without a runtime nothing can be sent: give every buffer back.
fn drain(inbox: &Inbox<Collector>) {
    while let Ok(batch) = inbox.batches.recv() {
        EXPORT_FAILED.fetch_add(u64::from(batch.items), Relaxed);
        inbox.recycle(batch.core, batch.buf);
    }
}
