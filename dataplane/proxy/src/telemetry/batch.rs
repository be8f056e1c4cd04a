//! Per-core buffers of telemetry (access-log lines, span records) handed
//! to a thread off the request cores.
//!
//! A core appends each item to a buffer of its own (no lock, no shared
//! atomic) and ships the buffer whole when it is full or at the core's
//! next sweep (every second): one channel send per batch of hundreds of
//! items, never one per item (the OpenTelemetry SDK's batch processor
//! funnels every span of every thread through one channel; this is why it
//! is not used on the cores). The consumer sends the emptied buffer back
//! on the core's own return channel, so a core in steady state allocates
//! nothing. A core holds at most `SPARE` buffers per kind: when the
//! consumer falls behind (a slow disk, a pipe nobody reads, a dead
//! collector), they are all in flight, and the core drops new items and
//! counts them instead of waiting.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::Arc;

/// A buffer is shipped once it holds this much.
pub const BATCH_BYTES: usize = 48 * 1024;

/// Buffers a core may have in flight per kind (access logs, spans): the
/// most a slow consumer can hold back is `SPARE * BATCH_BYTES` per core.
pub const SPARE: usize = 4;

/// A full buffer on its way to the consumer.
pub struct Batch<D> {
    /// Where its items go (a log file, a collector).
    pub dest: Arc<D>,
    pub buf: Vec<u8>,
    /// How many items it holds (for counting drops by item).
    pub items: u32,
    /// The core it came from: where the buffer goes back.
    pub core: usize,
}

/// The consumer's end: batches from every core, and each core's return
/// channel.
pub struct Inbox<D> {
    pub batches: Receiver<Batch<D>>,
    returns: Vec<Sender<Vec<u8>>>,
}

impl<D> Inbox<D> {
    /// Give a consumed buffer back to its core (emptied). A core that has
    /// stopped has nobody to give it to: it is freed.
    pub fn recycle(&self, core: usize, mut buf: Vec<u8>) {
        buf.clear();
        if let Some(tx) = self.returns.get(core) {
            let _ = tx.send(buf);
        }
    }
}

/// One inbox and an outbox per core.
pub fn channels<D>(cores: usize) -> (Inbox<D>, Vec<Outbox<D>>) {
    let (tx, rx) = mpsc::sync_channel(cores.max(1) * SPARE);
    let mut returns = Vec::with_capacity(cores);
    let outboxes = (0..cores)
        .map(|core| {
            let (back_tx, back_rx) = mpsc::channel();
            returns.push(back_tx);
            Outbox {
                core,
                open: Vec::new(),
                spare: back_rx,
                idle: Vec::new(),
                out: tx.clone(),
                allocated: 0,
            }
        })
        .collect();
    (
        Inbox {
            batches: rx,
            returns,
        },
        outboxes,
    )
}

/// A core's end. Lives in a `RefCell` on the core: one writer.
pub struct Outbox<D> {
    core: usize,
    /// Buffers being filled, one per destination in use (a listener's
    /// log file; the collector): as many as the config names.
    open: Vec<Open<D>>,
    spare: Receiver<Vec<u8>>,
    /// Empty buffers this core holds (flushed while empty).
    idle: Vec<Vec<u8>>,
    out: SyncSender<Batch<D>>,
    /// Buffers this core created so far (at most `SPARE`).
    allocated: usize,
}

struct Open<D> {
    dest: Arc<D>,
    buf: Vec<u8>,
    items: u32,
}

impl<D> Outbox<D> {
    /// Append one item for `dest`, written by `write`. `false`: no buffer
    /// was free and the item was dropped (the caller counts it).
    pub fn push(&mut self, dest: &Arc<D>, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        let i = match self.open.iter().position(|o| Arc::ptr_eq(&o.dest, dest)) {
            Some(i) => i,
            None => match self.fresh() {
                Some(buf) => {
                    self.open.push(Open {
                        dest: dest.clone(),
                        buf,
                        items: 0,
                    });
                    self.open.len() - 1
                }
                None => return false,
            },
        };
        let open = &mut self.open[i];
        write(&mut open.buf);
        open.items += 1;
        if open.buf.len() >= BATCH_BYTES {
            let full = self.open.swap_remove(i);
            self.ship(full);
        }
        true
    }

    /// Ship every buffer holding something (the core's sweep, and its
    /// last act before it stops); empty ones go back to the idle list, so
    /// a destination a reload removed holds no buffer.
    pub fn flush(&mut self) {
        for open in std::mem::take(&mut self.open) {
            if open.items > 0 {
                self.ship(open);
            } else {
                self.idle.push(open.buf);
            }
        }
    }

    fn ship(&mut self, open: Open<D>) {
        let batch = Batch {
            dest: open.dest,
            buf: open.buf,
            items: open.items,
            core: self.core,
        };
        // The channel holds every buffer that exists: it is never full.
        // A consumer that is gone frees the batch.
        if let Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) = self.out.try_send(batch)
        {
            drop(b);
            self.allocated -= 1;
        }
    }

    /// An empty buffer: one the consumer returned, or a new one while this
    /// core has fewer than `SPARE`.
    fn fresh(&mut self) -> Option<Vec<u8>> {
        if let Some(buf) = self.idle.pop() {
            return Some(buf);
        }
        if let Ok(buf) = self.spare.try_recv() {
            return Some(buf);
        }
        if self.allocated < SPARE {
            self.allocated += 1;
            return Some(Vec::with_capacity(BATCH_BYTES + BATCH_BYTES / 4));
        }
        None
    }
}
