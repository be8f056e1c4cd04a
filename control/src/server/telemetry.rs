//! `Telemetry/Report`: the proxies' traffic summaries, into the
//! [`crate::stats::Store`] that `ringmeshctl stat` reads.

use std::sync::Arc;
use std::time::Instant;

use ringmesh_proto::v1 as pb;
use tonic::{Request, Response, Status, Streaming};

use crate::stats::Store;

pub struct TelemetryService {
    pub store: Arc<Store>,
}

/// A node id is a DNS-label-like name; anything longer is refused rather
/// than kept.
const MAX_NODE_ID: usize = 253;

#[tonic::async_trait]
impl pb::telemetry_server::Telemetry for TelemetryService {
    async fn report(
        &self,
        req: Request<Streaming<pb::StatsReport>>,
    ) -> Result<Response<pb::ReportAck>, Status> {
        let mut reports = req.into_inner();
        // The first report names the node; the stream is its from then on.
        let Some(first) = reports.message().await? else {
            return Ok(Response::new(pb::ReportAck {}));
        };
        let node = first.node_id.clone();
        if node.is_empty() || node.len() > MAX_NODE_ID {
            return Err(Status::invalid_argument(
                "a report names its node (node_id, at most 253 bytes)",
            ));
        }
        let stream = self.store.open(&node);
        // Closed however the call ends, dropped with a lost connection too.
        let _open = Open {
            store: &self.store,
            node: &node,
            stream,
        };
        self.store.record(&node, stream, &first, Instant::now());
        loop {
            match reports.message().await {
                Ok(Some(r)) if r.node_id == node => {
                    self.store.record(&node, stream, &r, Instant::now())
                }
                Ok(Some(r)) => {
                    break Err(Status::invalid_argument(format!(
                        "report for node `{}` on the stream of `{node}`",
                        crate::resources::redact(&r.node_id)
                    )))
                }
                Ok(None) => break Ok(Response::new(pb::ReportAck {})),
                Err(e) => break Err(e),
            }
        }
    }
}

/// A node's open report stream.
struct Open<'a> {
    store: &'a Store,
    node: &'a str,
    stream: u64,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.store.close(self.node, self.stream, Instant::now());
    }
}
