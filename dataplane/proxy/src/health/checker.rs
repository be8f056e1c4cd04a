//! One cluster's checker on the probing core: a round of checks every
//! interval, the thresholds applied, the state sent to the other cores.
//!
//! A round checks every endpoint, at most `MAX_PROBES` at once (each check
//! bounded by the timeout), so a round takes at most `timeout` per wave of
//! `MAX_PROBES` endpoints, and the next starts `interval` (plus jitter) after it ends:
//! rounds never overlap. The counts of checks in a row are the checker's,
//! by address; the health itself is the `Endpoint`'s (so a checker that
//! restarts after a reload starts from the health the endpoints have).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::StreamExt;
use tracing::{info, warn};

use super::link::{self, Outbox};
use super::probe::{probe, Failure};
use super::{CheckKind, HealthCheck};
use crate::cluster::{ClusterState, Endpoint};
use crate::worker::Core;

/// Probes of one round in flight at once.
pub(super) const MAX_PROBES: usize = 64;

/// State changes logged per cluster and round; the rest are counted in
/// one more line (a whole cluster going down logs a few lines, not one
/// per endpoint).
const LOG_PER_ROUND: usize = 8;

/// Checks in a row of one endpoint.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    /// Count one check of an endpoint that is `unhealthy` now; its new
    /// health when this check changes it.
    pub(super) fn record(
        &mut self,
        passed: bool,
        unhealthy: bool,
        check: &HealthCheck,
    ) -> Option<bool> {
        if passed {
            self.passed = self.passed.saturating_add(1);
            self.failed = 0;
            (unhealthy && self.passed >= check.healthy_threshold).then_some(false)
        } else {
            self.failed = self.failed.saturating_add(1);
            self.passed = 0;
            (!unhealthy && self.failed >= check.unhealthy_threshold).then_some(true)
        }
    }
}

pub(super) struct Checker {
    core: Rc<Core>,
    cluster: Rc<ClusterState>,
    check: HealthCheck,
    /// An `http` check's request, encoded once.
    request: Box<[u8]>,
    tallies: HashMap<SocketAddr, Tally>,
    outboxes: Vec<Outbox>,
}

impl Checker {
    pub(super) fn new(
        core: Rc<Core>,
        cluster: Rc<ClusterState>,
        check: &HealthCheck,
        outboxes: Vec<Outbox>,
    ) -> Self {
        let request = match &check.kind {
            CheckKind::Http(http) => http.request(),
            CheckKind::Tcp => Box::default(),
        };
        Checker {
            core,
            cluster,
            check: check.clone(),
            request,
            tallies: HashMap::new(),
            outboxes,
        }
    }

    /// Rounds until `stop` (its sender dropped: a new config) or the
    /// core's listeners close. The first round starts at once (after up
    /// to the jitter).
    pub(super) async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut wait = Duration::ZERO;
        loop {
            let pause = wait + self.jitter();
            {
                let stopped = self.core.drain.stopped();
                let sleep = monoio::time::sleep(pause);
                monoio::select! {
                    biased;
                    _ = &mut stop => return,
                    _ = stopped => return,
                    _ = sleep => {}
                }
            }
            // The endpoints as they are now; an update during the round
            // applies from the next one.
            let eps: Vec<Rc<Endpoint>> = self.cluster.endpoints().clone();
            let results = {
                let checks = eps
                    .iter()
                    .map(|ep| probe(&self.cluster.connector, ep.addr, &self.check, &self.request));
                // At most `MAX_PROBES` connections at once: a cluster of
                // thousands is checked in waves, not with a burst of
                // thousands of connects (a round then takes longer).
                let round = futures_util::stream::iter(checks)
                    .buffered(MAX_PROBES)
                    .collect::<Vec<_>>();
                let stopped = self.core.drain.stopped();
                monoio::select! {
                    biased;
                    _ = &mut stop => return,
                    _ = stopped => return,
                    r = round => r,
                }
            };
            self.apply(&eps, &results);
            link::publish(&self.outboxes, link::report(&self.cluster));
            wait = self.check.interval;
        }
    }

    fn jitter(&self) -> Duration {
        let max = self.check.jitter.as_nanos() as u64;
        if max == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.core.rng.borrow_mut().u64(0..max))
    }

    /// Count a round's results and change the endpoints' health where a
    /// threshold is reached.
    fn apply(&mut self, eps: &[Rc<Endpoint>], results: &[Result<(), Failure>]) {
        let mut changed = 0usize;
        for (ep, result) in eps.iter().zip(results) {
            match result {
                Ok(()) => ep.stats.checks_passed.inc(),
                Err(_) => ep.stats.checks_failed.inc(),
            }
            // Removed during the round: its counts go with it below.
            if ep.position().is_none() {
                continue;
            }
            let tally = self.tallies.entry(ep.addr).or_default();
            let Some(unhealthy) = tally.record(result.is_ok(), ep.is_unhealthy(), &self.check)
            else {
                continue;
            };
            ep.set_unhealthy(unhealthy);
            changed += 1;
            if changed <= LOG_PER_ROUND {
                log_change(&self.cluster.name, ep.addr, unhealthy, *tally, result);
            }
        }
        if changed > LOG_PER_ROUND {
            warn!(
                cluster = %self.cluster.name,
                more = changed - LOG_PER_ROUND,
                "more endpoints changed health this round"
            );
        }
        let current: HashSet<SocketAddr> =
            self.cluster.endpoints().iter().map(|e| e.addr).collect();
        self.tallies.retain(|addr, _| current.contains(addr));
        if changed > 0 {
            self.cluster.refresh_routing();
        }
    }
}

fn log_change(
    cluster: &str,
    endpoint: SocketAddr,
    unhealthy: bool,
    tally: Tally,
    last: &Result<(), Failure>,
) {
    if unhealthy {
        let reason = match last {
            Err(f) => f.to_string(),
            Ok(()) => String::new(),
        };
        warn!(
            cluster,
            %endpoint,
            failed_in_a_row = tally.failed,
            %reason,
            "endpoint unhealthy: it gets no traffic until its health checks pass"
        );
    } else {
        info!(
            cluster,
            %endpoint,
            passed_in_a_row = tally.passed,
            "endpoint healthy again: its health checks pass"
        );
    }
}

/// Make every endpoint of `cluster` healthy (its checks were removed);
/// whether any was not.
pub(super) fn clear(cluster: &ClusterState) -> bool {
    let mut changed = false;
    for ep in cluster.endpoints().iter().filter(|e| e.is_unhealthy()) {
        ep.set_unhealthy(false);
        changed = true;
    }
    changed
}
