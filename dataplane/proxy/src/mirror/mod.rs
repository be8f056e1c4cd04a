//! Request mirroring (shadowing): a copy of a share of a route's requests
//! goes to another cluster, and whatever becomes of it is only counted
//! (Envoy's `request_mirror_policies`, Istio's `mirror`).
//!
//! The real request must not notice. So the copy is sent from a detached
//! task on the request's core (`send`), started only once the request
//! body has passed through the proxy (`body::BodyCopy` takes it from the
//! relay that forwards it anyway); the real exchange never waits for it,
//! and the mirror's failures, timeouts and answers go nowhere but
//! `ringmesh_mirror_requests_total`.
//!
//! Cost: a route without a mirror pays one `Option` check per request. A
//! mirrored request allocates: its head is rebuilt as an `http::Request`
//! (the form an HTTP/2 upstream needs; an HTTP/1.1 mirror is encoded from
//! it), its body is copied (HTTP/1.1) or kept by reference (HTTP/2 DATA),
//! and its task, timer and connection are its own. That is the price of
//! sending a second request, and only mirrored requests pay it.
//!
//! Bounds, per core: at most `MAX_IN_FLIGHT` mirror tasks at once (more
//! are dropped and counted: a slow mirror cluster cannot pile up memory),
//! each holding at most its route's `max_body_bytes` of body, each ending
//! by its route's `timeout` (or `DEFAULT_TIMEOUT`). The in-flight count is
//! a thread-local `Cell`: a core is one thread, so it is this core's state
//! with no sharing, and it needs no slot in `worker::Core`.

pub mod body;
mod send;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use body::{BodyCopy, CopyState};

use crate::cluster::{ClusterState, Endpoint};
use crate::config::model::ClusterId;
use crate::metrics::RouteStats;

/// A route's mirror, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub cluster: ClusterId,
    /// Share of requests mirrored, in parts per million.
    pub per_million: u32,
    /// Requests with a larger body are not mirrored.
    pub max_body_bytes: u64,
}

impl Policy {
    /// 64 KiB: request bodies of typical APIs fit; uploads are not copied.
    pub const DEFAULT_MAX_BODY: u64 = 64 * 1024;
    /// The largest `max_body_bytes` accepted: with `MAX_IN_FLIGHT` tasks
    /// a core holds at most 128 x 4 MiB of mirrored bodies.
    pub const MAX_BODY_LIMIT: u64 = 4 * 1024 * 1024;
}

/// Mirror tasks a core runs at once; more are dropped.
pub const MAX_IN_FLIGHT: usize = 128;

/// How long a mirror may take, connect to the end of its response, when
/// its route has no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// What became of a mirror, for `ringmesh_mirror_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The mirror answered (any status).
    Sent,
    /// No answer: connect failure, reset, timeout, no endpoint.
    Failed,
    /// Not sent: the core already had `MAX_IN_FLIGHT` mirrors running.
    Dropped,
    /// Not sent: the body was over `max_body_bytes`.
    BodyTooLarge,
    /// Not sent: the body never arrived whole (the client went away, the
    /// real upstream failed before taking it, its framing broke).
    Incomplete,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Sent,
        Outcome::Failed,
        Outcome::Dropped,
        Outcome::BodyTooLarge,
        Outcome::Incomplete,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Failed => "failed",
            Outcome::Dropped => "dropped",
            Outcome::BodyTooLarge => "body_too_large",
            Outcome::Incomplete => "incomplete",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

thread_local! {
    /// Mirror tasks running on this core (one thread per core).
    static IN_FLIGHT: Cell<usize> = const { Cell::new(0) };
}

/// A running mirror task's place under `MAX_IN_FLIGHT`.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        IN_FLIGHT.with(|n| {
            (n.get() < MAX_IN_FLIGHT).then(|| {
                n.set(n.get() + 1);
                Slot
            })
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        IN_FLIGHT.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Whether a request is mirrored: a roll of the core's rng, as faults do.
pub fn roll(policy: &Policy, rng: &mut fastrand::Rng) -> bool {
    use crate::filter::fault::PER_MILLION;
    policy.per_million >= PER_MILLION
        || (policy.per_million > 0 && rng.u32(..PER_MILLION) < policy.per_million)
}

/// Whether there is room for another mirror on this core now. A request
/// that would be dropped anyway is not copied.
pub fn room() -> bool {
    IN_FLIGHT.with(|n| n.get() < MAX_IN_FLIGHT)
}

/// A mirror decided for one request, waiting for the request body to
/// have passed (or sent at once when there is none).
pub struct Pending {
    /// The request as the mirror gets it: the route's edits applied,
    /// the authority with `-shadow`.
    pub head: http::Request<()>,
    /// A body follows the head (possibly an empty one).
    pub has_body: bool,
    pub cluster: Rc<ClusterState>,
    pub endpoint: Rc<Endpoint>,
    pub stats: Arc<RouteStats>,
    pub timeout: Duration,
}

impl Pending {
    /// Send it with `body` from a task of its own, or count it dropped
    /// when the core runs `MAX_IN_FLIGHT` mirrors already.
    pub fn launch(self: Box<Self>, body: Vec<Bytes>) {
        let Some(slot) = Slot::take() else {
            self.stats.mirror(Outcome::Dropped);
            return;
        };
        monoio::spawn(async move {
            let outcome = send::send(&self, body).await;
            self.stats.mirror(outcome);
            drop(slot);
        });
    }

    /// It will never be sent: count why.
    pub fn skip(self: Box<Self>, why: Outcome) {
        self.stats.mirror(why);
    }
}

/// Envoy's shadow host: `-shadow` after the host, before any port
/// (`api:8080` -> `api-shadow:8080`). `None` when the result is not an
/// authority `http` accepts.
pub fn shadow_authority(authority: &[u8]) -> Option<http::uri::Authority> {
    let host = crate::view::host_of(authority);
    let mut out = Vec::with_capacity(authority.len() + 7);
    out.extend_from_slice(host);
    out.extend_from_slice(b"-shadow");
    out.extend_from_slice(&authority[host.len()..]);
    http::uri::Authority::try_from(out.as_slice()).ok()
}

/// `req` with its authority replaced by the shadow one.
pub fn shadowed(req: http::Request<()>) -> Option<http::Request<()>> {
    let (mut parts, ()) = req.into_parts();
    let mut uri = parts.uri.into_parts();
    let authority = uri.authority.as_ref()?;
    uri.authority = Some(shadow_authority(authority.as_str().as_bytes())?);
    parts.uri = http::Uri::from_parts(uri).ok()?;
    Some(http::Request::from_parts(parts, ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_suffix_goes_before_the_port() {
        let s = |a: &str| shadow_authority(a.as_bytes()).map(|a| a.to_string());
        assert_eq!(s("api").as_deref(), Some("api-shadow"));
        assert_eq!(s("api.ns:8080").as_deref(), Some("api.ns-shadow:8080"));
        assert_eq!(s("10.0.0.1:80").as_deref(), Some("10.0.0.1-shadow:80"));
        // Textually, as Envoy does; `http` accepts it as an authority.
        assert_eq!(s("[::1]:80").as_deref(), Some("[::1]-shadow:80"));
        assert_eq!(s("a b"), None);
    }

    #[test]
    fn a_shadowed_request_keeps_everything_but_its_authority() {
        let req = http::Request::builder()
            .method("POST")
            .uri("http://api:81/a?b=c")
            .header("x-a", "1")
            .body(())
            .unwrap();
        let out = shadowed(req).unwrap();
        assert_eq!(out.uri().to_string(), "http://api-shadow:81/a?b=c");
        assert_eq!(out.method(), "POST");
        assert_eq!(out.headers()["x-a"], "1");
    }

    #[test]
    fn rolls_follow_the_share() {
        let mut rng = fastrand::Rng::with_seed(7);
        let policy = |pm| Policy {
            cluster: 0,
            per_million: pm,
            max_body_bytes: 0,
        };
        assert!((0..1000).all(|_| roll(&policy(1_000_000), &mut rng)));
        assert!((0..1000).all(|_| !roll(&policy(0), &mut rng)));
        let hits = (0..100_000)
            .filter(|_| roll(&policy(250_000), &mut rng))
            .count();
        assert!((23_500..26_500).contains(&hits), "{hits}");
    }

    #[test]
    fn the_cap_holds_and_frees() {
        let slots: Vec<Slot> = (0..MAX_IN_FLIGHT).map_while(|_| Slot::take()).collect();
        assert_eq!(slots.len(), MAX_IN_FLIGHT);
        assert!(!room());
        assert!(Slot::take().is_none());
        drop(slots);
        assert!(room());
    }
}
