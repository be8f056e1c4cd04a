//! Endpoint names resolved at start and refreshed on an interval.
//!
//! Resolution blocks (getaddrinfo), so it never runs on a worker: the first
//! pass runs during startup, refreshes on a thread of their own, and a
//! changed address set reaches every worker as a message.

use std::net::ToSocketAddrs;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_channel::mpsc::UnboundedSender;
use tracing::{info, warn};

use crate::config::model::{Cluster, Resolved, Target};
use crate::config::Config;
use crate::worker::WorkerMsg;

/// The endpoints of every cluster, in config order.
pub fn resolve_all(config: &Config) -> Vec<Arc<[Resolved]>> {
    config.clusters.iter().map(|c| resolve(c).into()).collect()
}

/// A cluster's endpoints as addresses, each with its entry's weight and
/// zone; a name that does not resolve adds none (its requests get 503
/// no_healthy_endpoints until it does). An address listed twice keeps its
/// first entry.
pub fn resolve(cluster: &Cluster) -> Vec<Resolved> {
    let mut out = Vec::with_capacity(cluster.endpoints.len());
    for e in &cluster.endpoints {
        let entry = |addr| Resolved {
            addr,
            weight: e.weight,
            zone: e.zone.clone(),
        };
        match &e.target {
            Target::Ip(addr) => out.push(entry(*addr)),
            Target::Dns { host, port } => match (host.as_str(), *port).to_socket_addrs() {
                Ok(addrs) => out.extend(addrs.map(entry)),
                Err(err) => {
                    warn!(cluster = %cluster.name, host, error = %err, "endpoint name does not resolve")
                }
            },
        }
    }
    out.sort_by_key(|r| r.addr);
    out.dedup_by_key(|r| r.addr);
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
    mut current: Vec<Arc<[Resolved]>>,
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
                let fresh: Arc<[Resolved]> = resolve(c).into();
                if fresh != current[i] {
                    let addrs: Vec<_> = fresh.iter().map(|r| r.addr).collect();
                    info!(cluster = %c.name, endpoints = ?addrs, "endpoints changed");
                    for w in &workers {
                        let _ = w.unbounded_send(WorkerMsg::Endpoints {
                            generation,
                            cluster: i,
                            endpoints: fresh.clone(),
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
        let addrs: Vec<std::net::SocketAddr> = resolve(&config.clusters[0])
            .iter()
            .map(|r| r.addr)
            .collect();
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

    #[test]
    fn a_name_gives_each_address_its_weight_and_zone() {
        let config = crate::config::parse(
            "zone: a
listeners: [ { name: l, address: '127.0.0.1:0' } ]
clusters: [ { name: c, endpoints: [{ address: 'localhost:81', weight: 7, zone: b }, '127.0.0.1:81'] } ]
",
            "t",
        )
        .unwrap();
        let eps = resolve(&config.clusters[0]);
        assert!(!eps.is_empty());
        let v4 = eps
            .iter()
            .find(|r| r.addr == "127.0.0.1:81".parse().unwrap())
            .expect("localhost resolves to 127.0.0.1");
        assert_eq!(
            (v4.weight, v4.zone.as_deref()),
            (7, Some("b")),
            "the first entry for an address wins: {eps:?}"
        );
    }
}
