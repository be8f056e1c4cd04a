//! How health check results reach the cores that do not probe.
//!
//! The probing core holds a sender to every other core's inbox (unbounded
//! `futures` channels: a report must not be dropped, and a core waits on
//! its inbox without a timer). A report is a cluster's whole state, its
//! unhealthy addresses, built once and shared by every inbox (`Arc`); a
//! core applies it to the cluster of that name in the config it runs.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;

use super::PROBING_CORE;
use crate::cluster::ClusterState;
use crate::worker::{Core, Snapshot};

/// A cluster's health as the probing core sees it after a round.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub cluster: Box<str>,
    /// Sorted.
    pub unhealthy: Box<[SocketAddr]>,
}

pub(super) type Outbox = UnboundedSender<Arc<Report>>;

/// One core's end: its inbox (not on the probing core) and, on the
/// probing core, the other cores' inboxes.
pub struct Link {
    pub(super) inbox: Option<UnboundedReceiver<Arc<Report>>>,
    pub(super) outboxes: Vec<Outbox>,
}

/// The ends for `workers` cores, in core order.
pub fn connect(workers: usize) -> Vec<Link> {
    let mut outboxes = Vec::with_capacity(workers.saturating_sub(1));
    let mut links: Vec<Link> = (0..workers)
        .map(|core| {
            let inbox = (core != PROBING_CORE).then(|| {
                let (tx, rx) = unbounded();
                outboxes.push(tx);
                rx
            });
            Link {
                inbox,
                outboxes: Vec::new(),
            }
        })
        .collect();
    if let Some(probing) = links.get_mut(PROBING_CORE) {
        probing.outboxes = outboxes;
    }
    links
}

/// `cluster`'s report: its endpoints that are unhealthy on this core.
pub(super) fn report(cluster: &ClusterState) -> Report {
    let mut unhealthy: Vec<SocketAddr> = cluster
        .endpoints()
        .iter()
        .filter(|e| e.is_unhealthy())
        .map(|e| e.addr)
        .collect();
    unhealthy.sort_unstable();
    Report {
        cluster: cluster.name.as_str().into(),
        unhealthy: unhealthy.into(),
    }
}

/// Send `report` to every other core. A core that is gone (stopping) is
/// skipped.
pub(super) fn publish(outboxes: &[Outbox], report: Report) {
    if outboxes.is_empty() {
        return;
    }
    let report = Arc::new(report);
    for out in outboxes {
        let _ = out.unbounded_send(report.clone());
    }
}

/// Make `snap`'s cluster named in `report` match it; whether any
/// endpoint's health changed (the cluster's picks were rebuilt then).
pub(super) fn apply(snap: &Snapshot, report: &Report) -> bool {
    let Some(cluster) = snap.clusters.iter().find(|c| *c.name == *report.cluster) else {
        return false;
    };
    let mut changed = false;
    for ep in cluster.endpoints().iter() {
        let unhealthy = report.unhealthy.binary_search(&ep.addr).is_ok();
        if ep.is_unhealthy() != unhealthy {
            ep.set_unhealthy(unhealthy);
            changed = true;
        }
    }
    if changed {
        cluster.refresh_routing();
    }
    changed
}

/// A non-probing core's loop: apply reports until the probing core is
/// gone or this core's listeners close.
pub(super) async fn listen(core: Rc<Core>, mut inbox: UnboundedReceiver<Arc<Report>>) {
    loop {
        let next = {
            let stopped = core.drain.stopped();
            let next = inbox.next();
            monoio::select! {
                _ = stopped => return,
                r = next => r,
            }
        };
        let Some(report) = next else { return };
        apply(&core.snapshot(), &report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probing_core_reaches_every_other_core() {
        let links = connect(3);
        assert!(links[0].inbox.is_none());
        assert_eq!(links[0].outboxes.len(), 2);
        for l in &links[1..] {
            assert!(l.inbox.is_some() && l.outboxes.is_empty());
        }
        let one = connect(1);
        assert!(one[0].inbox.is_none() && one[0].outboxes.is_empty());
    }
}
