//! Active health checks: a cluster's `health_check` probes every endpoint
//! and takes the ones that fail out of every core's picks.
//!
//! Why one core probes: endpoints are per core (each core has its own
//! `Endpoint` for the same address), but an endpoint's health is a fact
//! about the endpoint, not about a core. Probing from every core would
//! multiply the checks an upstream sees by the worker count and let cores
//! disagree. So **core 0 probes** (a task per checked cluster,
//! `checker`), sets the health of its own endpoints, and after **every
//! round** sends each other core the cluster's list of unhealthy
//! addresses (`link`). The list is the whole state, not a change: a core
//! that missed or reordered a report (a reload, an endpoint update racing
//! it) is right again after the next round, and nothing has to be
//! acknowledged. Reports are off the request path: one message per
//! cluster per interval per core.
//!
//! Choices, as Envoy and nginx make them where they agree:
//! - An endpoint is healthy until `unhealthy_threshold` checks in a row
//!   fail, then unhealthy until `healthy_threshold` in a row pass. A **new
//!   endpoint starts healthy** (nginx without `mandatory`; Envoy would hold
//!   it back until its first check): a cluster whose endpoints all appear
//!   at once (a start, a DNS answer) is not without endpoints, or in
//!   panic, for a round. The first round runs at once (after up to
//!   `jitter`), so a dead endpoint is found within `unhealthy_threshold -
//!   1` intervals of the start.
//! - A check opens a new connection through the cluster's `Connector`
//!   (TLS, SNI and client certificate included) outside the cluster's
//!   connection limit, and closes it: `tcp` passes on the connection (and
//!   handshake), `http` on an expected status to `GET path HTTP/1.1` with
//!   `Connection: close`. `timeout` bounds each check as a whole.
//! - The balancer's panic threshold still applies: with too few healthy
//!   endpoints, all of them get traffic (`balance::routing`).
//! - A reload (a new config committed on core 0) restarts every checker
//!   with its new settings; a cluster kept across it (same settings but
//!   for the health check, `Cluster::same_settings`) keeps its endpoints
//!   and so their health, and a checker's counts of checks in a row start
//!   again. A cluster whose `health_check` was removed has its endpoints
//!   made healthy on every core.
//! - Drain: the checkers stop when the listeners close.
//!
//! Logged: every change of state (at most `LOG_PER_ROUND` lines per
//! cluster and round, then a count), at warn for unhealthy, info for
//! healthy again. Counted: `EndpointStats::checks_passed/failed`.

mod checker;
mod link;
mod probe;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;

use crate::worker::Core;

pub use link::{connect, Link, Report};
pub use probe::Failure;

/// A cluster's `health_check`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub interval: Duration,
    pub timeout: Duration,
    /// Up to this much, at random, added to each wait between rounds, so
    /// proxies started together do not probe together.
    pub jitter: Duration,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    pub kind: CheckKind,
}

impl HealthCheck {
    /// Envoy's and nginx's common choice: a dead endpoint is found in
    /// `unhealthy_threshold` × 5 s without checks adding real load.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
    /// A local service answers a health check in milliseconds; a second
    /// tolerates a loaded one.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    /// One failed check (a dropped SYN, a GC pause) does not take an
    /// endpoint out; three in a row do.
    pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 3;
    /// A recovering endpoint proves itself twice before it gets traffic.
    pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 2;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// Connect (and the TLS handshake, on a TLS cluster).
    Tcp,
    Http(HttpCheck),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// Visible ASCII, starting with `/`.
    pub path: Box<str>,
    /// The Host header: visible ASCII.
    pub host: Box<str>,
    /// Statuses that pass, as inclusive ranges.
    pub expected: Box<[(u16, u16)]>,
}

impl HttpCheck {
    /// Success and redirects, as Envoy's and nginx's defaults.
    pub const DEFAULT_EXPECTED: (u16, u16) = (200, 399);

    pub fn passes(&self, status: u16) -> bool {
        self.expected
            .iter()
            .any(|&(first, last)| (first..=last).contains(&status))
    }

    /// The request a check sends, encoded once per checker.
    pub fn request(&self) -> Box<[u8]> {
        format!(
            "GET {} HTTP/1.1\r\nhost: {}\r\nuser-agent: ringmesh-health-check\r\nconnection: close\r\n\r\n",
            self.path, self.host
        )
        .into_bytes()
        .into()
    }
}

/// The core that runs the checks.
pub const PROBING_CORE: usize = 0;

/// A core's part in health checking: on the probing core, the other
/// cores' inboxes and a way to stop the running checkers.
#[derive(Default)]
pub struct Checks {
    outboxes: RefCell<Vec<link::Outbox>>,
    /// Dropped to stop the checkers of the previous config.
    stops: RefCell<Vec<oneshot::Sender<()>>>,
    /// The config generation the checkers run for.
    generation: Cell<Option<u64>>,
}

/// Start health checking on `core`: the probing core keeps the other
/// cores' inboxes and starts its checkers; the others listen.
pub fn start(core: &Rc<Core>, link: Link) {
    let Link { inbox, outboxes } = link;
    if let Some(inbox) = inbox {
        monoio::spawn(link::listen(core.clone(), inbox));
    }
    if core.id == PROBING_CORE {
        *core.health.outboxes.borrow_mut() = outboxes;
        reconfigure(core);
    }
}

/// After a config commit: on the probing core, restart the checkers for
/// the config now in force (nothing if it is the one they run for).
pub fn reconfigure(core: &Rc<Core>) {
    if core.id != PROBING_CORE {
        return;
    }
    let snap = core.snapshot();
    if core.health.generation.replace(Some(snap.generation)) == Some(snap.generation) {
        return;
    }
    // Dropping the senders ends the previous config's checkers.
    core.health.stops.borrow_mut().clear();
    let outboxes = core.health.outboxes.borrow().clone();
    for (cluster, config) in snap.clusters.iter().zip(&snap.config.clusters) {
        match &config.health_check {
            Some(check) => {
                let (stop, stopped) = oneshot::channel();
                core.health.stops.borrow_mut().push(stop);
                let checker =
                    checker::Checker::new(core.clone(), cluster.clone(), check, outboxes.clone());
                monoio::spawn(checker.run(stopped));
            }
            None => {
                // No checks (any more): every endpoint is healthy, here and
                // on the cores that may have been told otherwise.
                if checker::clear(cluster) {
                    cluster.refresh_routing();
                }
                link::publish(&outboxes, link::report(cluster));
            }
        }
    }
}

#[cfg(test)]
mod tests;
