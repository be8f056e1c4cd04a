//! Admin HTTP server: `/ready`, `/metrics`, `/config_dump`.
//!
//! It runs on its own thread with a small tokio runtime and hyper, off the
//! request cores: a slow scrape never delays a request. It reads the cores'
//! counters (single-writer atomics) and sums them per scrape.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tracing::warn;

use crate::config::Config;
use crate::metrics::{self, CoreStats, WorkerInfo};

pub struct AdminState {
    /// True once every worker serves, false again while draining.
    pub ready: AtomicBool,
    /// The config in force and its version; replaced on reload.
    config: Mutex<(Arc<Config>, String)>,
    stats: Vec<Arc<CoreStats>>,
    workers: OnceLock<Vec<WorkerInfo>>,
}

impl AdminState {
    pub fn new(config: Arc<Config>, stats: Vec<Arc<CoreStats>>) -> Self {
        AdminState {
            ready: AtomicBool::new(false),
            config: Mutex::new((config, "static".into())),
            stats,
            workers: OnceLock::new(),
        }
    }

    /// A new config is in force on every core.
    pub fn set_config(&self, config: Arc<Config>, version: String) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = (config, version);
    }

    fn config(&self) -> (Arc<Config>, String) {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_workers(&self, workers: Vec<WorkerInfo>) {
        let _ = self.workers.set(workers);
    }

    fn handle(&self, path: &str, query: Option<&str>) -> (StatusCode, &'static str, String) {
        match path {
            "/ready" if self.ready.load(Ordering::Acquire) => {
                (StatusCode::OK, "text/plain", "ready\n".into())
            }
            "/ready" => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "not ready\n".into(),
            ),
            "/metrics" => {
                let workers = self.workers.get().map(Vec::as_slice).unwrap_or_default();
                (StatusCode::OK, "text/plain; version=0.0.4", {
                    let (config, version) = self.config();
                    let per_core = query.is_some_and(|q| q.split('&').any(|kv| kv == "per_core=1"));
                    let mut out = if per_core {
                        metrics::render_per_core(&config, &self.stats, workers)
                    } else {
                        metrics::render(&config, &self.stats, workers)
                    };
                    metrics::config_updates::render(&mut out, &version);
                    crate::telemetry::render_metrics(&mut out, &self.stats);
                    crate::identity::render(&mut out);
                    out
                })
            }
            "/config_dump" => {
                let workers: Vec<serde_json::Value> = self
                    .workers
                    .get()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|w| serde_json::json!({ "id": w.id, "cpu": w.cpu, "driver": w.driver }))
                    .collect();
                let (config, version) = self.config();
                let dump = serde_json::json!({
                    "version": version,
                    "config": config.dump,
                    "workers": workers,
                });
                let text = serde_json::to_string_pretty(&dump).unwrap_or_default();
                (StatusCode::OK, "application/json", text + "\n")
            }
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found: try /ready, /metrics, /config_dump\n".into(),
            ),
        }
    }
}

/// Serve the admin API on `listener` from a thread of its own. The thread
/// lives until the process exits.
pub fn spawn(
    listener: std::net::TcpListener,
    state: Arc<AdminState>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("ringmesh-admin".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        warn!(error = %e, "admin listener failed");
                        return;
                    }
                };
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(
                            move |req: Request<hyper::body::Incoming>| {
                                let (status, content_type, body) =
                                    state.handle(req.uri().path(), req.uri().query());
                                let response = Response::builder()
                                    .status(status)
                                    .header("content-type", content_type)
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap_or_default();
                                async move { Ok::<_, Infallible>(response) }
                            },
                        );
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    });
                }
            })
        })
}
