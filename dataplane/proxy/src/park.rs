//! Idle connections, parked in a per-core slab at a few dozen bytes each.
//!
//! A keep-alive connection spends most of its life idle; sidecars hold
//! thousands of them. A handler task (`handler`) serves a connection only
//! while a request is due; after `PARK_AFTER` with no byte it hands the
//! bare socket here. A parked connection is one slab entry (the socket,
//! its client address, its idle deadline and its listener slot) and one
//! registration in the core's epoll set: no task, no buffer, no timer. One
//! task per core waits for that epoll set to become readable (an io_uring
//! poll on the epoll descriptor, or the legacy driver's own epoll), takes
//! the ready connections out of the slab and gives each to a free
//! handler. Waking a parked connection allocates nothing.
//!
//! Why not one small task per parked connection (what ringmesh did
//! before): tasks are allocated one by one among the live connections'
//! tasks and buffers, so after a burst the freed memory is scattered
//! between parked tasks and the heap never shrinks (4.4 KiB per idle
//! connection measured, against nginx's 0.5); and waking one rebuilt a
//! full connection task, five allocations per request for a client that
//! sends one request a second.
//!
//! Idle deadlines are not timers: the core's 1 s sweep closes the expired
//! entries, so a parked connection honours its idle timeout to within a
//! second. When listeners close on drain, parked connections close too,
//! except those whose next request has already arrived: they are served
//! (with `connection: close`).

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Instant;

use futures_util::future::{select, Either};
use monoio::net::TcpStream;
use rustix::event::epoll;
use slab::Slab;
use tracing::warn;

use crate::handler::Job;
use crate::transport::{borrow_fd, Stream};
use crate::worker::Core;

pub use crate::h1::server::PARK_AFTER;

/// An open downstream connection, counted for as long as it lives, across
/// the handlers that serve it and the parker.
pub struct ConnSlot {
    pub core: Rc<Core>,
    pub listener: usize,
}

impl ConnSlot {
    pub fn open(core: Rc<Core>, listener: usize) -> Self {
        let stats = &core.stats.listeners[listener];
        stats.connections_total.inc();
        stats.connections_active.inc();
        core.connections.set(core.connections.get() + 1);
        ConnSlot { core, listener }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.core.stats.listeners[self.listener]
            .connections_active
            .dec();
        self.core.connections.set(self.core.connections.get() - 1);
    }
}

/// What a parked connection keeps: its socket, its peer and its place in
/// the listener's count. Not the whole `Job`: a parked connection's
/// handshake is done and nothing is known to be waiting, and every byte
/// here is paid per idle connection.
struct Parked {
    io: Stream,
    peer: std::net::SocketAddr,
    slot: ConnSlot,
    until: Instant,
    /// Told apart from a later entry reusing the same slab key.
    generation: u32,
}

/// This core's parked connections.
pub struct Parker {
    entries: RefCell<Slab<Parked>>,
    /// The epoll set, wrapped in a monoio socket type only so that the
    /// runtime can wait for it to become readable (an io_uring poll, or a
    /// registration in the legacy driver's epoll); nothing reads or
    /// writes it.
    ready: TcpStream,
    generation: Cell<u32>,
}

/// Ready connections taken per `epoll_wait`.
const BATCH: usize = 128;

impl Parker {
    /// Must be called inside the core's monoio runtime.
    pub fn new() -> std::io::Result<Parker> {
        let set: OwnedFd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let ready = TcpStream::from_std(std::net::TcpStream::from(set))?;
        Ok(Parker {
            entries: RefCell::new(Slab::new()),
            ready,
            generation: Cell::new(0),
        })
    }

    fn set(&self) -> std::os::fd::BorrowedFd<'_> {
        borrow_fd(self.ready.as_raw_fd())
    }

    /// Park `job` until bytes arrive (then a handler serves it), `until`
    /// passes, or listeners close.
    pub fn park(&self, core: &Core, job: Job, until: Instant) {
        let Some(fd) = job.io.parkable_fd() else {
            return;
        };
        let mut entries = self.entries.borrow_mut();
        if entries.len() == entries.capacity() {
            // Grow by an eighth, not double: the slab is most of what a
            // parked connection costs, and a doubled one is half empty.
            let more = (entries.capacity() / 8).max(64);
            entries.reserve_exact(more);
        }
        let key = entries.vacant_key();
        let generation = self.generation.get().wrapping_add(1);
        self.generation.set(generation);
        let data = epoll::EventData::new_u64((u64::from(generation) << 32) | key as u64);
        let flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP | epoll::EventFlags::ONESHOT;
        if let Err(e) = epoll::add(self.set(), borrow_fd(fd), data, flags) {
            // Without a registration nothing would wake it: close it.
            warn!(error = %e, "cannot park an idle connection; closing it");
            return;
        }
        core.stats.listeners[job.slot.listener]
            .connections_parked
            .inc();
        let Job { io, peer, slot, .. } = job;
        entries.insert(Parked {
            io,
            peer,
            slot,
            until,
            generation,
        });
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take entry `key` out of the slab and the epoll set.
    fn take(&self, core: &Core, key: usize) -> Option<Job> {
        let parked = self.entries.borrow_mut().try_remove(key)?;
        let job = Job {
            io: parked.io,
            peer: parked.peer,
            slot: parked.slot,
            ready: false,
            tls: None,
            fresh: false,
        };
        if let Some(fd) = job.io.parkable_fd() {
            let _ = epoll::delete(self.set(), borrow_fd(fd));
        }
        core.stats.listeners[job.slot.listener]
            .connections_parked
            .dec();
        Some(job)
    }

    /// Close parked connections whose idle deadline has passed; called by
    /// the core's sweep.
    pub fn expire(&self, core: &Core, now: Instant) {
        let expired: Vec<usize> = self
            .entries
            .borrow()
            .iter()
            .filter(|(_, p)| now >= p.until)
            .map(|(k, _)| k)
            .collect();
        for key in expired {
            drop(self.take(core, key));
        }
    }

    /// Hand every connection with bytes waiting to a handler.
    fn wake_ready(&self, core: &Rc<Core>, events: &mut Vec<epoll::Event>) {
        loop {
            events.clear();
            let zero = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let got = epoll::wait(
                self.set(),
                rustix::buffer::spare_capacity(events),
                Some(&zero),
            );
            if got.is_err() {
                return;
            }
            for ev in events.iter() {
                let data = ev.data.u64();
                let key = (data & 0xffff_ffff) as usize;
                let generation = (data >> 32) as u32;
                let current = self
                    .entries
                    .borrow()
                    .get(key)
                    .is_some_and(|p| p.generation == generation);
                if current {
                    if let Some(mut job) = self.take(core, key) {
                        job.ready = true;
                        core.handlers.dispatch(core, job);
                    }
                }
            }
            if events.len() < BATCH {
                return;
            }
        }
    }

    /// Listeners closed: close every parked connection, except those whose
    /// next request already arrived, which are served.
    fn stop(&self, core: &Rc<Core>) {
        let keys: Vec<usize> = self.entries.borrow().iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(mut job) = self.take(core, key) {
                if job.io.has_pending_input() {
                    job.ready = true;
                    core.handlers.dispatch(core, job);
                }
            }
        }
    }
}

/// The core's parking task: wake ready connections until listeners close.
pub async fn run(core: Rc<Core>) {
    let mut events: Vec<epoll::Event> = Vec::with_capacity(BATCH);
    loop {
        let woke = {
            let readable = std::pin::pin!(core.parker.ready.readable(false));
            let stopped = std::pin::pin!(core.drain.stopped());
            matches!(select(readable, stopped).await, Either::Left(_))
        };
        if !woke {
            core.parker.stop(&core);
            return;
        }
        core.parker.wake_ready(&core, &mut events);
    }
}
