//! Connection handlers: long-lived tasks that serve connections one after
//! another.
//!
//! A connection needs a task only while it has a request in flight or is
//! about to get one. Spawning a task for every new or woken connection
//! would allocate its state, buffers and timer each time (five allocations
//! a low-rate sidecar client paid on every request after a quiet second).
//! Instead each core keeps handler tasks that outlive their connections:
//! a handler serves a connection until it closes or goes quiet, hands the
//! socket to the parker (`park`), and waits on the core's free list for
//! the next one. Serving a connection, new or woken, allocates nothing
//! once the core has enough handlers for its concurrency.
//!
//! The free list grows with concurrency and is trimmed back to `KEEP_FREE`
//! by the core's 1 s sweep, so a burst does not pin its handlers.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::h1::server::{Exit, H1Conn, Workspace};
use crate::park::ConnSlot;
use crate::transport::Stream;
use crate::worker::Core;

/// Free handlers the sweep leaves: enough for the connections a busy core
/// starts or wakes between two sweeps without spawning.
const KEEP_FREE: usize = 64;

/// A connection to serve.
pub struct Job {
    pub io: Stream,
    pub peer: SocketAddr,
    /// Counts the connection against its listener for as long as it lives,
    /// across handlers and parking.
    pub slot: ConnSlot,
}

/// A handler's mailbox.
#[derive(Default)]
struct Mailbox {
    job: Cell<Option<Job>>,
    exit: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

/// This core's handlers.
#[derive(Default)]
pub struct Handlers {
    free: RefCell<Vec<Rc<Mailbox>>>,
    alive: Cell<usize>,
}

impl Handlers {
    /// Serve `job` on a free handler, or on a new one.
    pub fn dispatch(&self, core: &Rc<Core>, job: Job) {
        let free = self.free.borrow_mut().pop();
        match free {
            Some(mailbox) => {
                mailbox.job.set(Some(job));
                if let Some(w) = mailbox.waker.take() {
                    w.wake();
                }
            }
            None => {
                self.alive.set(self.alive.get() + 1);
                monoio::spawn(run(core.clone(), job));
            }
        }
    }

    /// Let free handlers beyond `KEEP_FREE` end; returns how many.
    pub fn trim(&self) -> usize {
        let mut free = self.free.borrow_mut();
        let extra = free.len().saturating_sub(KEEP_FREE);
        for mailbox in free.drain(..extra) {
            mailbox.exit.set(true);
            if let Some(w) = mailbox.waker.take() {
                w.wake();
            }
        }
        free.shrink_to(KEEP_FREE);
        extra
    }

    /// Handler tasks alive (serving or free).
    pub fn alive(&self) -> usize {
        self.alive.get()
    }

    pub fn free(&self) -> usize {
        self.free.borrow().len()
    }
}

/// A handler: serve `first`, then whatever the free list brings, until
/// told to exit.
async fn run(core: Rc<Core>, first: Job) {
    let mut workspace = Workspace::default();
    let mailbox = Rc::new(Mailbox::default());
    let mut job = first;
    loop {
        serve(&core, &mut workspace, job).await;
        core.handlers.free.borrow_mut().push(mailbox.clone());
        match next_job(&mailbox).await {
            Some(next) => job = next,
            None => break,
        }
    }
    core.handlers.alive.set(core.handlers.alive.get() - 1);
}

async fn next_job(mailbox: &Mailbox) -> Option<Job> {
    poll_fn(|cx| {
        if let Some(job) = mailbox.job.take() {
            return Poll::Ready(Some(job));
        }
        if mailbox.exit.get() {
            return Poll::Ready(None);
        }
        mailbox.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    })
    .await
}

/// Serve one connection; a quiet one goes to the parker.
async fn serve(core: &Rc<Core>, workspace: &mut Workspace, job: Job) {
    let Job { io, peer, slot } = job;
    let conn = H1Conn::new(workspace, io, core.clone(), slot.listener, peer);
    match conn.serve().await {
        Exit::Closed => drop(slot),
        Exit::Park { io, until } => core.parker.park(core, Job { io, peer, slot }, until),
    }
}
