//! Cores tell each other what their balancers measured.
//!
//! A latency-aware balancer (`peak_ewma`) learns about an endpoint only
//! from the tries its own core sends. With N cores each sees 1/N of the
//! traffic, and a core that has sent an endpoint nothing lately would
//! send it requests it is too slow for. So every `INTERVAL` each core
//! sends the estimates its tries changed to every other core, and takes
//! theirs in as samples of its own.
//!
//! Messages, not shared state: each core has a bounded inbox (a lock-free
//! `std::sync::mpsc` channel) that it empties on its own timer; nobody
//! wakes another core. A full inbox drops the summary (the next one, a
//! few milliseconds later, carries newer estimates anyway). A summary is
//! built once and shared by every inbox (`Arc`); that refcount is the only
//! atomic the cores share, touched per tick, never per request.

use std::rc::Rc;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use crate::worker::Core;

/// How often a core shares: a few round trips of a local service, short
/// next to a slow endpoint's latency (Linkerd's estimates move on every
/// response; this keeps cores within 5 ms of each other).
pub const INTERVAL: Duration = Duration::from_millis(5);

/// The longest wait between ticks: a core without traffic of its own to
/// share doubles its wait up to this (an idle sidecar wakes about once a
/// second, not 200 times), and goes back to `INTERVAL` on its first tick
/// with news. Peers' summaries wait in the inbox meanwhile; the core
/// needs them only when it picks, and a core that picks has news.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Summaries a core's inbox holds: 0.6 s of every peer's ticks on a
/// 2-core machine, 40 ms on a 64-core one.
const INBOX: usize = 128;

/// One core's changed estimates for one cluster.
#[derive(Debug)]
pub struct Summary {
    pub cluster: Box<str>,
    pub entries: Box<[Shared]>,
}

/// A core's inbox and the other cores' inboxes.
pub struct Peers {
    inbox: Receiver<Arc<Summary>>,
    outboxes: Vec<SyncSender<Arc<Summary>>>,
}

/// Inboxes for `workers` cores, each connected to all the others.
pub fn connect(workers: usize) -> Vec<Peers> {
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers).map(|_| sync_channel(INBOX)).unzip();
    receivers
        .into_iter()
        .enumerate()
        .map(|(me, inbox)| Peers {
            inbox,
            outboxes: senders
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != me)
                .map(|(_, s)| s.clone())
                .collect(),
        })
        .collect()
}

impl Peers {
    /// Send to every other core; a full inbox drops it.
    pub fn publish(&self, summary: Summary) {
        let summary = Arc::new(summary);
        for out in &self.outboxes {
            match out.try_send(summary.clone()) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Every summary that arrived since the last call.
    pub fn receive(&self, mut f: impl FnMut(&Summary)) {
        while let Ok(s) = self.inbox.try_recv() {
            f(&s);
        }
    }
}

/// A core's sharing loop, until it drains.
pub async fn run(core: Rc<Core>, peers: Peers) {
    if peers.outboxes.is_empty() {
        return;
    }
    let mut buf = Vec::new();
    let mut wait = INTERVAL;
    while !core.drain.is_stopped() {
        monoio::time::sleep(wait).await;
        wait = next_wait(wait, tick(&core, &peers, &mut buf));
    }
}

/// The wait before the next tick: `INTERVAL` after one with news, twice
/// the last (up to `IDLE_CHECK`) after one without.
fn next_wait(last: Duration, had_news: bool) -> Duration {
    if had_news {
        INTERVAL
    } else {
        (last * 2).min(IDLE_CHECK)
    }
}

/// Send this core's news and take in the others'; whether it had news.
fn tick(core: &Core, peers: &Peers, buf: &mut Vec<Shared>) -> bool {
    let snap = core.snapshot();
    let mut news = false;
    for c in snap.clusters.iter().filter(|c| c.shares()) {
        buf.clear();
        c.share(buf);
        if !buf.is_empty() {
            news = true;
            peers.publish(Summary {
                cluster: c.name.as_str().into(),
                entries: buf.as_slice().into(),
            });
        }
    }
    peers.receive(|s| {
        if let Some(c) = snap.clusters.iter().find(|c| *c.name == *s.cluster) {
            c.absorb(&s.entries);
        }
    });
    news
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(rtt_ns: u64) -> Summary {
        Summary {
            cluster: "c".into(),
            entries: [Shared {
                addr: "10.0.0.1:80".parse().unwrap(),
                rtt_ns,
            }]
            .into(),
        }
    }

    #[test]
    fn an_idle_core_slows_down_and_news_brings_it_back() {
        let mut wait = INTERVAL;
        for _ in 0..20 {
            wait = next_wait(wait, false);
        }
        assert_eq!(wait, IDLE_CHECK);
        assert_eq!(next_wait(wait, true), INTERVAL);
        assert_eq!(next_wait(INTERVAL, false), INTERVAL * 2);
    }

    #[test]
    fn every_other_core_hears_and_a_full_inbox_drops() {
        let peers = connect(3);
        peers[0].publish(summary(7));
        let mut got = Vec::new();
        peers[0].receive(|s| got.push(s.entries[0].rtt_ns));
        assert!(got.is_empty(), "not to itself");
        for p in &peers[1..] {
            let mut got = Vec::new();
            p.receive(|s| got.push(s.entries[0].rtt_ns));
            assert_eq!(got, [7]);
        }
        for i in 0..INBOX as u64 + 10 {
            peers[0].publish(summary(i));
        }
        let mut n = 0;
        peers[1].receive(|_| n += 1);
        assert_eq!(n, INBOX, "the excess was dropped, nothing blocked");
    }
}
