//! A real gRPC server (tonic, h2c) implementing `ringmesh.testing.v1.Echo`
//! on its own tokio runtime, and a client to call it through the proxy.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringmesh_proto::testing::echo_client::EchoClient;
use ringmesh_proto::testing::echo_server::{Echo, EchoServer};
use ringmesh_proto::testing::{EchoReply, EchoRequest};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// Counts calls whose handler was dropped before it finished: the
/// proxy cancelled the upstream stream.
#[derive(Default)]
pub struct Counters {
    pub calls: AtomicUsize,
    pub cancelled: AtomicUsize,
    /// Unary calls to fail with UNAVAILABLE before the first success.
    pub fail_first: AtomicUsize,
}

struct Guard {
    counters: Arc<Counters>,
    done: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.done {
            self.counters.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct Service {
    counters: Arc<Counters>,
}

fn fail(req: &EchoRequest) -> Option<Status> {
    if req.fail_code == 0 {
        return None;
    }
    let code = tonic::Code::from_i32(req.fail_code);
    Some(Status::with_details(
        code,
        req.fail_message.clone(),
        req.fail_details.clone().into(),
    ))
}

fn reply<T>(req: &Request<T>, payload: Vec<u8>, index: u32) -> EchoReply {
    let meta = req.metadata();
    let text = |k: &str| {
        meta.get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    EchoReply {
        payload,
        index,
        forwarded_for: text("x-forwarded-for"),
        traceparent: text("traceparent"),
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

#[tonic::async_trait]
impl Echo for Service {
    async fn unary(&self, req: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.counters.calls.fetch_add(1, Ordering::SeqCst);
        let mut guard = Guard {
            counters: self.counters.clone(),
            done: false,
        };
        let r = req.get_ref();
        if self
            .counters
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            guard.done = true;
            return Err(Status::unavailable("failing on purpose"));
        }
        if r.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(r.delay_ms.into())).await;
        }
        guard.done = true;
        if let Some(s) = fail(r) {
            return Err(s);
        }
        let out = reply(&req, r.payload.clone(), 0);
        Ok(Response::new(out))
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        req: Request<EchoRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        self.counters.calls.fetch_add(1, Ordering::SeqCst);
        let r = req.get_ref().clone();
        if let Some(s) = fail(&r) {
            return Err(s);
        }
        let first = reply(&req, r.payload.clone(), 0);
        let delay = Duration::from_millis(r.delay_ms.into());
        let stream = tokio_stream::iter(0..r.count).then(move |i| {
            let mut one = first.clone();
            one.index = i;
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(one)
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn client_stream(
        &self,
        req: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        self.counters.calls.fetch_add(1, Ordering::SeqCst);
        let mut all = Vec::new();
        let mut n = 0;
        let meta = reply(&req, Vec::new(), 0);
        let mut stream = req.into_inner();
        while let Some(m) = stream.message().await? {
            all.extend_from_slice(&m.payload);
            n += 1;
        }
        Ok(Response::new(EchoReply {
            payload: all,
            index: n,
            ..meta
        }))
    }

    type BidiStream = ReplyStream;

    async fn bidi(
        &self,
        req: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<Self::BidiStream>, Status> {
        self.counters.calls.fetch_add(1, Ordering::SeqCst);
        let counters = self.counters.clone();
        let mut stream = req.into_inner();
        let out = async_stream(move |tx| async move {
            let mut guard = Guard {
                counters,
                done: false,
            };
            let mut i = 0;
            loop {
                match stream.message().await {
                    Ok(Some(m)) => {
                        let one = EchoReply {
                            payload: m.payload,
                            index: i,
                            ..Default::default()
                        };
                        i += 1;
                        if tx.send(Ok(one)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        guard.done = true;
                        return;
                    }
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(out))
    }
}

/// A stream fed by a task through a channel.
fn async_stream<F, Fut>(f: F) -> ReplyStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<EchoReply, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// The Echo server on an ephemeral loopback port, until dropped.
pub struct GrpcServer {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    _runtime: tokio::runtime::Runtime,
}

impl GrpcServer {
    pub fn start() -> GrpcServer {
        let (runtime, listener, addr) = crate::tokio_server();
        let counters = Arc::new(Counters::default());
        let service = Service {
            counters: counters.clone(),
        };
        runtime.spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(EchoServer::new(service).max_decoding_message_size(64 << 20))
                .serve_with_incoming(incoming)
                .await;
        });
        GrpcServer {
            addr,
            counters,
            _runtime: runtime,
        }
    }
}

/// A client runtime and a channel to `addr` (h2c with prior knowledge).
pub struct GrpcClient {
    pub runtime: tokio::runtime::Runtime,
    pub echo: EchoClient<tonic::transport::Channel>,
}

impl GrpcClient {
    pub fn connect(addr: SocketAddr) -> GrpcClient {
        Self::connect_as(addr, None)
    }

    /// Connect to `addr`, sending `authority` as `:authority` (a
    /// sidecar's outbound listener routes by it).
    pub fn connect_as(addr: SocketAddr, authority: Option<&str>) -> GrpcClient {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut endpoint =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
        if let Some(a) = authority {
            endpoint = endpoint.origin(format!("http://{a}").parse().expect("origin"));
        }
        let channel = runtime.block_on(endpoint.connect()).expect("connect");
        let echo = EchoClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        GrpcClient { runtime, echo }
    }
}
