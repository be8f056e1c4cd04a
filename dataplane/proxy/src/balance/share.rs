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
//! `std::sync::mpsc` channel) that it empties on its own timer. A full
//! inbox drops the summary (the next one, a few milliseconds later,
//! carries newer estimates anyway). A summary is built once and shared by
//! every inbox (`Arc`).
//!
//! A core with no news, sent or received, doubles its wait up to
//! `IDLE_CHECK`, so an idle proxy does not wake 200 times a second. Before
//! such a long sleep it raises its `dozing` flag; a peer that sends to a
//! dozing core rings its doorbell (a channel that wakes it), so a core
//! that has been idle has its peers' estimates before its next request
//! is picked, not a second later. Those wakes happen only when a core goes
//! from idle to hearing news; while traffic flows every core ticks on its
//! own and nobody wakes anyone. The flags, the doorbells and the `Arc`
//! refcounts are the only atomics the cores share, touched per tick,
//! never per request.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;

use super::Shared;
use crate::worker::Core;

/// How often a core shares: a few round trips of a local service, short
/// next to a slow endpoint's latency (Linkerd's estimates move on every
/// response; this keeps cores within 5 ms of each other).
pub const INTERVAL: Duration = Duration::from_millis(5);

/// The longest wait between ticks of a core with no news.
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

/// The way to another core: its inbox, whether it dozes, its doorbell.
struct Outbox {
    inbox: SyncSender<Arc<Summary>>,
    dozing: Arc<AtomicBool>,
    bell: UnboundedSender<()>,
}

/// A core's inbox, its dozing flag and its doorbell, as others hold them.
type Way = (
    SyncSender<Arc<Summary>>,
    Arc<AtomicBool>,
    UnboundedSender<()>,
);

/// A core's inbox, dozing flag and doorbell, and the other cores' ways.
pub struct Peers {
    inbox: Receiver<Arc<Summary>>,
    dozing: Arc<AtomicBool>,
    bell: UnboundedReceiver<()>,
    outboxes: Vec<Outbox>,
}

/// Inboxes for `workers` cores, each connected to all the others.
pub fn connect(workers: usize) -> Vec<Peers> {
    let ends: Vec<_> = (0..workers)
        .map(|_| {
            let (tx, rx) = sync_channel(INBOX);
            let (bell_tx, bell_rx) = unbounded();
            (tx, rx, Arc::new(AtomicBool::new(false)), bell_tx, bell_rx)
        })
        .collect();
    let ways: Vec<Way> = ends
        .iter()
        .map(|(tx, _, dozing, bell, _)| (tx.clone(), dozing.clone(), bell.clone()))
        .collect();
    ends.into_iter()
        .enumerate()
        .map(|(me, (_, inbox, dozing, _, bell))| Peers {
            inbox,
            dozing,
            bell,
            outboxes: ways
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != me)
                .map(|(_, (inbox, dozing, bell))| Outbox {
                    inbox: inbox.clone(),
                    dozing: dozing.clone(),
                    bell: bell.clone(),
                })
                .collect(),
        })
        .collect()
}

impl Peers {
    /// Send to every other core (a full inbox drops it); ring the
    /// doorbell of those dozing.
    pub fn publish(&self, summary: Summary) {
        let summary = Arc::new(summary);
        for out in &self.outboxes {
            match out.inbox.try_send(summary.clone()) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
            if out.dozing.swap(false, SeqCst) {
                let _ = out.bell.unbounded_send(());
            }
        }
    }

    /// Every summary that arrived since the last call; whether any did.
    pub fn receive(&self, mut f: impl FnMut(&Summary)) -> bool {
        let mut any = false;
        while let Ok(s) = self.inbox.try_recv() {
            any = true;
            f(&s);
        }
        any
    }
}

/// A core's sharing loop, until it drains.
pub async fn run(core: Rc<Core>, mut peers: Peers) {
    if peers.outboxes.is_empty() {
        return;
    }
    let mut buf = Vec::new();
    let mut wait = INTERVAL;
    while !core.drain.is_stopped() {
        if wait > INTERVAL {
            // Raise the flag, then look once more: a summary sent before
            // the flag was up is seen here, one sent after rings.
            peers.dozing.store(true, SeqCst);
            if tick(&core, &peers, &mut buf) {
                peers.dozing.store(false, SeqCst);
                wait = INTERVAL;
                continue;
            }
            let sleep = monoio::time::sleep(wait);
            let bell = peers.bell.next();
            monoio::select! {
                _ = sleep => {}
                _ = bell => {}
            }
            peers.dozing.store(false, SeqCst);
        } else {
            monoio::time::sleep(wait).await;
        }
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

/// Send this core's news and take in the others'; whether there was any
/// either way.
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
    let heard = peers.receive(|s| {
        if let Some(c) = snap.clusters.iter().find(|c| *c.name == *s.cluster) {
            c.absorb(&s.entries);
        }
    });
    news || heard
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
        let mut peers = connect(3);
        peers[1].dozing.store(true, SeqCst);
        peers[0].publish(summary(7));
        assert!(!peers[1].dozing.load(SeqCst), "woken");
        assert!(peers[1].bell.try_recv().is_ok(), "its bell rang");
        assert!(
            peers[2].bell.try_recv().is_err(),
            "an awake core's bell stays quiet"
        );
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
