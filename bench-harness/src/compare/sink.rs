//! The OTLP/gRPC collector the `ringmesh-telemetry` target exports its
//! spans to: a tonic `TraceService` on loopback that decodes each
//! `ExportTraceServiceRequest`, counts its spans and drops them.
//!
//! It runs in this (the harness's) process, on a thread of its own with a
//! one-thread tokio runtime, pinned to the scenario's upstream CPUs like
//! the test upstream: what a collector spends receiving spans is not the
//! proxy's cost, and the harness measures only the proxy's process tree.
//! What the proxy spends encoding and sending them is, and is measured.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::{Request, Response, Status};

/// What the sink has received since it started.
#[derive(Debug, Default)]
struct Counts {
    spans: AtomicU64,
    exports: AtomicU64,
}

#[derive(Clone)]
struct Service(Arc<Counts>);

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        self.0.spans.fetch_add(spans as u64, Ordering::Relaxed);
        self.0.exports.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A running sink; stopped (and its thread joined) on drop.
pub struct SpanSink {
    pub addr: SocketAddr,
    counts: Arc<Counts>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SpanSink {
    /// Listen on an ephemeral loopback port, serving from a thread pinned
    /// to `cpus` (none: not pinned).
    pub fn start(cpus: &[usize]) -> Result<SpanSink, String> {
        let fail = |e: std::io::Error| format!("OTLP sink: {e}");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        let counts = Arc::new(Counts::default());
        let service = Service(counts.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let cpus = cpus.to_vec();
        let thread = std::thread::Builder::new()
            .name("otlp-sink".into())
            .spawn(move || {
                let started = (|| {
                    if !cpus.is_empty() {
                        crate::runtime::pin_current(&cpus)?;
                    }
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                })();
                let rt = match started {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(fail(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(fail(e)));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let incoming = tonic::transport::server::TcpIncoming::from(listener)
                        .with_nodelay(Some(true));
                    // Stopped at once, not gracefully: an exporter that
                    // keeps its connection open must not hold the run up.
                    // The connections' tasks go with the runtime.
                    let serve = tonic::transport::Server::builder()
                        .add_service(TraceServiceServer::new(service))
                        .serve_with_incoming(incoming);
                    tokio::select! {
                        _ = serve => {}
                        _ = stopped => {}
                    }
                });
            })
            .map_err(fail)?;
        ready_rx
            .recv()
            .map_err(|_| "OTLP sink: its thread ended before listening".to_string())??;
        Ok(SpanSink {
            addr,
            counts,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Spans received so far.
    pub fn spans(&self) -> u64 {
        self.counts.spans.load(Ordering::Relaxed)
    }

    /// Export calls received so far.
    pub fn exports(&self) -> u64 {
        self.counts.exports.load(Ordering::Relaxed)
    }
}

impl Drop for SpanSink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    #[test]
    fn counts_the_spans_it_is_sent() {
        let sink = SpanSink::start(&[]).unwrap();
        assert_eq!((sink.spans(), sink.exports()), (0, 0));
        let endpoint = format!("http://{}", sink.addr);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut client = TraceServiceClient::connect(endpoint).await.unwrap();
            for n in [3, 2] {
                let scope = ScopeSpans {
                    spans: vec![Span::default(); n],
                    ..Default::default()
                };
                let request = ExportTraceServiceRequest {
                    resource_spans: vec![ResourceSpans {
                        scope_spans: vec![scope.clone(), scope],
                        ..Default::default()
                    }],
                };
                client.export(request).await.unwrap();
            }
        });
        assert_eq!((sink.spans(), sink.exports()), (10, 2));
        drop(sink); // stops and joins
    }
}
