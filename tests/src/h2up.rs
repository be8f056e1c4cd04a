//! An HTTP/2 upstream (hyper, h2c with prior knowledge) for the
//! translation tests, on its own tokio runtime.
//!
//! | path          | response                                                  |
//! |---------------|-----------------------------------------------------------|
//! | `/headers`    | the request's `:authority`, `:path` and fields, one a line |
//! | `/echo`       | the request body, then its trailers as response trailers  |
//! | `/trailers`   | `ok`, then the trailer `x-trailer: t`                     |
//! | `/status/N`   | status N, empty body                                      |
//! | `/delay/MS`   | waits MS milliseconds, then `late` (ignores grpc-timeout) |
//! | anything else | `h2 upstream`                                             |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};

type Body = BoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn with_trailers(data: Bytes, trailers: http::HeaderMap) -> Body {
    let frames: Vec<Result<Frame<Bytes>, Infallible>> =
        vec![Ok(Frame::data(data)), Ok(Frame::trailers(trailers))];
    StreamBody::new(tokio_stream::iter(frames)).boxed()
}

async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let resp = match path.as_str() {
        "/headers" => {
            let mut text = format!(
                ":authority: {}\n:path: {}\n",
                req.uri().authority().map(|a| a.as_str()).unwrap_or(""),
                req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("")
            );
            for (n, v) in req.headers() {
                text.push_str(&format!("{}: {}\n", n, v.to_str().unwrap_or("?")));
            }
            Response::new(full(text))
        }
        "/echo" => {
            let collected = match req.into_body().collect().await {
                Ok(c) => c,
                Err(_) => return Ok(Response::new(full("body failed"))),
            };
            let trailers = collected.trailers().cloned();
            let data = collected.to_bytes();
            match trailers {
                Some(t) => Response::new(with_trailers(data, t)),
                None => Response::new(full(data)),
            }
        }
        "/trailers" => {
            let mut t = http::HeaderMap::new();
            t.insert("x-trailer", http::HeaderValue::from_static("t"));
            Response::new(with_trailers(Bytes::from_static(b"ok"), t))
        }
        p if p.starts_with("/delay/") => {
            let ms = p["/delay/".len()..].parse().unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            Response::new(full("late"))
        }
        p if p.starts_with("/status/") => {
            let code = p["/status/".len()..].parse().unwrap_or(500);
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or_default();
            r
        }
        _ => Response::new(full("h2 upstream")),
    };
    Ok(resp)
}

async fn serve(tcp: tokio::net::TcpStream, goaway: Option<usize>) {
    let served = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let (count, notify) = (served.clone(), enough.clone());
    let service = hyper::service::service_fn(move |req| {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        if goaway.is_some_and(|every| n == every) {
            notify.notify_one();
        }
        handle(req)
    });
    let io = hyper_util::rt::TokioIo::new(tcp);
    let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = enough.notified() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The server, until dropped; counts the connections it accepted.
pub struct H2Upstream {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl H2Upstream {
    pub fn start() -> H2Upstream {
        Self::start_with(None)
    }

    /// An upstream that sends GOAWAY (graceful) on each connection after
    /// `every` requests: streams in flight finish, later ones must go to a
    /// new connection.
    pub fn with_goaway(every: usize) -> H2Upstream {
        Self::start_with(Some(every))
    }

    fn start_with(goaway: Option<usize>) -> H2Upstream {
        let (runtime, listener, addr) = crate::tokio_server();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(tcp, goaway));
            }
        });
        H2Upstream {
            addr,
            connections,
            _runtime: runtime,
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
