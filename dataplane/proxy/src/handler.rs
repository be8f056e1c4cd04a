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
//!
//! A handler whose connection has just answered a request keeps it for up
//! to `PARK_AFTER` waiting for the next one (a read already posted, so a
//! keep-alive client's next request costs nothing extra). That wait is
//! what makes a handler per connection expensive when thousands of
//! connections each send a request now and then, so at most `GRACE_MAX`
//! handlers per core wait at once; beyond that, a connection that goes
//! quiet is parked at once. This bounds a core's handlers (about 7 KiB
//! each) by its requests in flight plus `GRACE_MAX`, not by its
//! connections.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};

use std::sync::Arc;

use crate::h1::server::{Exit, H1Conn, Workspace};
use crate::park::ConnSlot;
use crate::tls::server::ServerTls;
use crate::transport::Stream;
use crate::worker::Core;

/// Free handlers the sweep leaves: enough for the connections a busy core
/// starts or wakes between two sweeps without spawning.
const KEEP_FREE: usize = 64;

/// Handlers per core that may wait for their connection's next request at
/// once: above the keep-alive connections a busy core serves concurrently
/// in the benchmarks (32 to 100), small enough that a burst of mostly idle
/// connections costs about 1 MiB of handlers, not 7 KiB per connection.
pub const GRACE_MAX: usize = 128;

/// A connection to serve.
pub struct Job {
    pub io: Stream,
    pub peer: SocketAddr,
    /// Counts the connection against its listener for as long as it lives,
    /// across handlers and parking.
    pub slot: ConnSlot,
    /// Bytes are known to be waiting (the parker woke it): read them at
    /// once rather than wait for them.
    pub ready: bool,
    /// A new connection on a TLS listener: the handshake to run first, with
    /// the settings in force when it was accepted.
    pub tls: Option<Arc<ServerTls>>,
    /// Just accepted (not woken from parking): its listener decides what
    /// it speaks, HTTP or relayed TCP, once.
    pub fresh: bool,
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
    /// Handlers waiting for their connection's next request.
    waiting: Cell<usize>,
}

/// A handler waiting for its connection's next request; counted until
/// dropped.
pub struct Waiting<'a>(&'a Handlers);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.set(self.0.waiting.get() - 1);
    }
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

    /// Room for one more handler to wait for its connection's next
    /// request, or `None`: park the connection now.
    pub fn wait_slot(&self) -> Option<Waiting<'_>> {
        if self.waiting.get() >= GRACE_MAX {
            return None;
        }
        self.waiting.set(self.waiting.get() + 1);
        Some(Waiting(self))
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
    // Its workspace is freed when this task ends: worth returning pages to
    // the OS at the next sweep.
    core.freed.set(true);
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
    let Job {
        io,
        peer,
        slot,
        ready,
        tls,
        fresh,
    } = job;
    // What a connection is served as is decided once, when it is new: a
    // reload does not turn a relayed connection into an HTTP one, or back.
    let (tls, relay) = if fresh {
        match plan(core, slot.listener, &io, tls, &mut workspace.timer).await {
            Some(p) => p,
            None => return,
        }
    } else {
        (tls, false)
    };
    let io = match tls {
        Some(tls) => {
            match crate::tls::accept::handshake(core, slot.listener, io, &tls, &mut workspace.timer)
                .await
            {
                Some(io) => io,
                None => return,
            }
        }
        None => io,
    };
    // A peer of the mesh asks for an opaque TCP relay by ALPN.
    let relay = relay
        || matches!(&io, Stream::Tls(t) if t.alpn_protocol() == Some(crate::tls::mesh::TCP_ALPN));
    // A relayed connection is never parked (it has no requests to wait
    // for) and gets a task of its own, so this handler and its HTTP
    // workspace go back to the free list instead of waiting out a
    // long-lived relay.
    if relay {
        if !tcp_allowed(core, slot.listener, &io) {
            return;
        }
        let core = core.clone();
        monoio::spawn(async move {
            let mut timer = crate::timer::Timer::new();
            crate::tcp::serve(&core, slot.listener, io, peer, &mut timer).await;
            drop(slot);
        });
        return;
    }
    // ALPN picked HTTP/2: the connection's state lives in h2, not in a
    // workspace; it gets a task of its own and frees this handler.
    let io = match io {
        Stream::Tls(t) if t.alpn_protocol() == Some(b"h2") => {
            let wants = core.snapshot().config.listeners[slot.listener].reads_principal;
            let tls = Stream::Tls(t);
            let principal = wants
                .then(|| crate::tls::principal(&tls))
                .flatten()
                .map(Rc::from);
            let Stream::Tls(t) = tls else { return };
            match crate::transport::h2io::H2Io::tls(*t) {
                Ok(io) => spawn_h2(core, io, peer, b"https", slot, principal),
                Err(e) => tracing::debug!(%peer, error = %e, "h2: no poll-io for the socket"),
            }
            return;
        }
        io => io,
    };
    let conn = H1Conn::new(
        workspace,
        io,
        core.clone(),
        slot.listener,
        peer,
        ready,
        fresh,
    );
    match conn.serve().await {
        Exit::Closed => drop(slot),
        Exit::H2 { io, read } => {
            let Ok(tcp) = io.into_tcp() else { return };
            match crate::transport::h2io::H2Io::plain(tcp, &read) {
                Ok(io) => spawn_h2(core, io, peer, b"http", slot, None),
                Err(e) => tracing::debug!(%peer, error = %e, "h2c: no poll-io for the socket"),
            }
        }
        Exit::Park { io, until } => {
            let job = Job {
                io,
                peer,
                slot,
                ready: false,
                tls: None,
                fresh: false,
            };
            core.parker.park(core, job, until)
        }
    }
}

/// Serve an HTTP/2 connection in a task of its own.
fn spawn_h2(
    core: &Rc<Core>,
    io: crate::transport::h2io::H2Io,
    peer: SocketAddr,
    scheme: &'static [u8],
    slot: ConnSlot,
    principal: Option<Rc<[u8]>>,
) {
    let conn = crate::h2::server::Conn {
        core: core.clone(),
        listener: slot.listener,
        peer,
        scheme,
        slot,
        principal,
    };
    monoio::spawn(crate::h2::server::serve(conn, io));
}

/// How a new connection is served: whether TLS is terminated, and whether
/// it is relayed as opaque TCP (else HTTP). A listener with `detect`
/// decides by the first bytes (`detect`); `None`: the client closed.
///
/// | first bytes       | `tls` set          | no `tls`                    |
/// |-------------------|--------------------|-----------------------------|
/// | TLS ClientHello   | terminate, then HTTP (or `tcp` without routes) | `tcp` (passthrough) |
/// | HTTP/1.x, h2c     | HTTP, in plaintext | HTTP                        |
/// | other, or none in time | `tcp`         | `tcp`                       |
///
/// Without `tcp`, what would be relayed is served as HTTP instead.
///
/// A `mesh` listener whose proxy holds no workload certificate (`tls`
/// unset) refuses what would need one: every connection when strict, a
/// TLS one when permissive. It never serves them in plaintext.
async fn plan(
    core: &Rc<Core>,
    listener: usize,
    io: &Stream,
    tls: Option<Arc<ServerTls>>,
    timer: &mut crate::timer::Timer,
) -> Option<(Option<Arc<ServerTls>>, bool)> {
    use crate::config::model::MeshMode;
    use crate::detect::{sniff, Detected};
    let (detect, has_tcp, has_routes, mesh) = {
        let snap = core.snapshot();
        let l = &snap.config.listeners[listener];
        (l.detect, l.tcp.is_some(), !l.routes.is_empty(), l.mesh)
    };
    let refuse = || {
        core.stats.listeners[listener].tls_failed("no_identity");
        tracing::debug!("mesh connection refused: no workload certificate held");
        None
    };
    if mesh == Some(MeshMode::Strict) && tls.is_none() {
        return refuse();
    }
    // A mesh listener with routes relays only what asks for it by ALPN
    // (after the handshake, in `serve`).
    let relay = has_tcp && !(mesh.is_some() && has_routes);
    let Some(timeout) = detect else {
        return Some((tls, relay));
    };
    let Stream::Plain(tcp) = io else {
        return Some((tls, relay));
    };
    let found = sniff(tcp, timeout, timer).await;
    core.stats.listeners[listener].detected[found.index()].inc();
    Some(match found {
        Detected::Closed => return None,
        Detected::Tls if tls.is_some() => (tls, !has_routes && has_tcp),
        Detected::Tls if mesh.is_some() => return refuse(),
        Detected::Http1 | Detected::H2c => (None, false),
        Detected::Tls | Detected::Tcp | Detected::Timeout => (None, has_tcp),
    })
}

/// The listener's authorization policies, for a connection relayed as
/// opaque TCP: judged once, by the client's identity
/// (`Authorization::decide_connection`); a refused one is closed.
fn tcp_allowed(core: &Rc<Core>, listener: usize, io: &Stream) -> bool {
    use crate::authz::Decision;
    let snap = core.snapshot();
    let Some(policies) = &snap.config.listeners[listener].authorization else {
        return true;
    };
    let principal = crate::tls::principal(io);
    let stats = &core.stats.listeners[listener];
    let decision = policies.decide_connection(principal.as_deref(), &core.listener_ports[listener]);
    let (Decision::Allow(by) | Decision::Deny(by)) = decision;
    if let Some(i) = by {
        snap.policy_stats[listener][i].decided.inc();
    }
    match decision {
        Decision::Allow(_) => {
            stats.authz_allowed.inc();
            true
        }
        Decision::Deny(policy) => {
            stats.authz_denied.inc();
            tracing::debug!(
                listener = %snap.config.listeners[listener].name,
                policy = policies.name(policy),
                "connection denied"
            );
            false
        }
    }
}
