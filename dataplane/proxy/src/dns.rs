//! Endpoint names resolved at start and refreshed on an interval.
//!
//! Resolution blocks (getaddrinfo), so it never runs on a worker: the first
//! pass runs during startup, refreshes on a thread of their own, and a
//! changed address set reaches every worker as a message.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_channel::mpsc::UnboundedSender;
use tracing::{info, warn};

use crate::config::model::{Cluster, EndpointSpec};
use crate::config::Config;
use crate::worker::WorkerMsg;

/// The addresses of every cluster, in config order.
pub fn resolve_all(config: &Config) -> Vec<Arc<[SocketAddr]>> {
    config.clusters.iter().map(|c| resolve(c).into()).collect()
}

/// A cluster's endpoints as addresses; a name that does not resolve adds
/// none (its requests get 503 no_healthy_endpoints until it does).
pub fn resolve(cluster: &Cluster) -> Vec<SocketAddr> {
    let mut out = Vec::with_capacity(cluster.endpoints.len());
    for e in &cluster.endpoints {
        match e {
            EndpointSpec::Ip(addr) => out.push(*addr),
            EndpointSpec::Dns { host, port } => match (host.as_str(), *port).to_socket_addrs() {
                Ok(addrs) => out.extend(addrs),
                Err(err) => {
                    warn!(cluster = %cluster.name, host, error = %err, "endpoint name does not resolve")
                }
            },
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The refresh thread; dropping `stop` ends it at once.
pub struct Refresher {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Refresher {
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// Start refreshing if any cluster has DNS endpoints.
pub fn spawn_refresher(
    config: &Arc<Config>,
    generation: u64,
    mut current: Vec<Arc<[SocketAddr]>>,
    workers: Vec<UnboundedSender<WorkerMsg>>,
) -> Option<Refresher> {
    let interval = config
        .clusters
        .iter()
        .filter(|c| c.has_dns_endpoints())
        .map(|c| c.dns_refresh)
        .min()?;
    let config = config.clone();
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ringmesh-dns".into())
        .spawn(move || loop {
            match stopped.recv_timeout(interval.max(Duration::from_millis(100))) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            for (i, c) in config
                .clusters
                .iter()
                .enumerate()
                .filter(|(_, c)| c.has_dns_endpoints())
            {
                let fresh: Arc<[SocketAddr]> = resolve(c).into();
                if fresh != current[i] {
                    info!(cluster = %c.name, endpoints = ?fresh, "endpoints changed");
                    for w in &workers {
                        let _ = w.unbounded_send(WorkerMsg::Endpoints {
                            generation,
                            cluster: i,
                            addrs: fresh.clone(),
                        });
                    }
                    current[i] = fresh;
                }
            }
        })
        .ok()?;
    Some(Refresher { stop, thread })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_and_localhost_endpoints_resolve() {
        let config = crate::config::parse(
            "listeners: [ { name: l, address: '127.0.0.1:0' } ]\nclusters: [ { name: c, endpoints: ['127.0.0.1:80', 'localhost:81', 'no-such-host.invalid:80'] } ]\n",
            "t",
        )
        .unwrap();
        let addrs = resolve(&config.clusters[0]);
        assert!(
            addrs.contains(&"127.0.0.1:80".parse().unwrap()),
            "{addrs:?}"
        );
        assert!(
            addrs.iter().any(|a| a.port() == 81 && a.ip().is_loopback()),
            "{addrs:?}"
        );
        assert!(addrs.iter().all(|a| a.port() != 80 || a.ip().is_loopback()));
    }
}
