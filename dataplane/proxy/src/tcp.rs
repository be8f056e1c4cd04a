//! Opaque TCP proxying: a listener with `tcp:` relays each connection to
//! an endpoint of its cluster, bytes both ways, with the cluster's
//! balancer, connect timeout, TLS origination and connection limit, and
//! the listener's TLS termination when it has one.
//!
//! The relay is the tunnel's (`tunnel`): copied through a small buffer
//! that grows for bulk transfers, closed when idle for `idle_timeout` or when
//! listeners close on drain, bytes counted in
//! `ringmesh_tunnel_bytes_total`. A connection the cluster cannot take
//! (no endpoint, every try refused, the limit reached) is closed without a
//! byte: there is no protocol to say why in.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::balance::{Completion, Outcome, PickCtx};
use crate::buf::ReadBuf;
use crate::cluster::{ClusterState, InFlight};
use crate::telemetry::access_log::Entry;
use crate::timer::Timer;
use crate::transport::Stream;
use crate::tunnel::{self, Meter};
use crate::worker::Core;

/// Endpoints tried before the client's connection is closed: a refused or
/// timed-out connect moves on to another endpoint once (Envoy's
/// `max_connect_attempts` is 1; a mesh expects one retry).
const CONNECT_TRIES: usize = 2;

/// Relay `client` (accepted on `listener`) to its cluster until either
/// side is done.
pub async fn serve(
    core: &Rc<Core>,
    listener: usize,
    client: Stream,
    peer: SocketAddr,
    timer: &mut Timer,
) {
    let begun = Instant::now();
    let snap = core.snapshot();
    let Some(tcp) = snap.config.listeners[listener].tcp else {
        return;
    };
    let Some(cluster) = snap.clusters.get(tcp.cluster) else {
        return;
    };
    // Read before the stream moves into the relay.
    let logged = snap.config.listeners[listener].access_log.is_some();
    let principal = logged.then(|| crate::tls::principal(&client)).flatten();
    let done = Done {
        core,
        snap: &snap,
        listener,
        cluster,
        peer,
        principal: principal.as_deref(),
        begun,
    };
    let peer_ip = peer.ip();
    let mut avoid = None;
    for _ in 0..CONNECT_TRIES {
        let ep = {
            let mut rng = core.rng.borrow_mut();
            let mut pick = PickCtx {
                request: None,
                client: peer_ip,
                rng: &mut rng,
                avoid: avoid.as_deref(),
            };
            cluster.pick(&mut pick)
        };
        let Some(ep) = ep else {
            debug!(cluster = %cluster.name, "tcp: no endpoint");
            done.log(None, "UH", "no_healthy_endpoints", (0, 0));
            return;
        };
        let in_flight = InFlight::new(ep.clone());
        let start = Instant::now();
        match cluster.connect_tcp(&ep, timer).await {
            Ok(upstream) => {
                let latency = start.elapsed();
                cluster.complete(
                    &ep,
                    &Completion {
                        outcome: Outcome::Connected,
                        latency,
                    },
                );
                let stats = &core.stats.listeners[listener];
                let meter = Meter::new(&stats.tunnel_up, &stats.tunnel_down);
                let (mut none_in, mut none_out) =
                    (ReadBuf::with_capacity(0), ReadBuf::with_capacity(0));
                tunnel::run(
                    client,
                    upstream,
                    &mut none_in,
                    &mut none_out,
                    tcp.idle_timeout,
                    &core.drain,
                    &meter,
                )
                .await;
                drop(in_flight);
                let moved = (meter.sent_up.get(), meter.sent_down.get());
                done.log(Some((ep.addr, latency)), "-", "via_upstream", moved);
                return;
            }
            Err(e) => {
                debug!(cluster = %cluster.name, endpoint = %ep.addr, error = %e, "tcp: connect failed");
                cluster.complete(
                    &ep,
                    &Completion {
                        outcome: Outcome::ConnectFailed,
                        latency: start.elapsed(),
                    },
                );
                drop(in_flight);
                if !e.retryable() {
                    done.log(Some((ep.addr, Duration::ZERO)), "UF", e.reason(), (0, 0));
                    return;
                }
                avoid = Some(ep);
            }
        }
    }
    done.log(None, "UF", "upstream_connect_failed", (0, 0));
}

/// What a finished relay's access log line needs.
struct Done<'a> {
    core: &'a Core,
    snap: &'a crate::worker::Snapshot,
    listener: usize,
    cluster: &'a ClusterState,
    peer: SocketAddr,
    principal: Option<&'a [u8]>,
    begun: Instant,
}

impl Done<'_> {
    /// The connection's line: its endpoint and connect time, if it got
    /// one, and bytes from and to the client.
    fn log(
        &self,
        upstream: Option<(SocketAddr, Duration)>,
        flags: &'static str,
        details: &'static str,
        (received, sent): (u64, u64),
    ) {
        let l = &self.snap.config.listeners[self.listener];
        if l.access_log.is_none() {
            return;
        }
        let entry = Entry {
            flags,
            details,
            bytes_received: received,
            bytes_sent: sent,
            upstream_time: upstream.map(|(_, t)| t),
            upstream_host: upstream.map(|(a, _)| a),
            cluster: &self.cluster.name,
            ..Entry::without_request(
                "TCP",
                &l.name,
                self.peer,
                self.principal,
                self.begun.elapsed(),
            )
        };
        crate::telemetry::record(self.core, l, None, None, &entry);
    }
}
