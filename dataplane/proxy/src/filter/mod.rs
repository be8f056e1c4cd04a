//! Route filters: policies that look at a request before it is forwarded
//! and may delay it, answer it themselves, or let it through.
//!
//! A route's filters are compiled from config into a small list
//! (`Route::filters`) and run in order by the pipeline's `route_filters`
//! phase (`pipeline::phases`). A filter decides synchronously from the
//! request view and per-core state and returns what to do; the pipeline
//! does the waiting and the answering, so a filter never touches IO, timers
//! or the wire format, and is unit-tested with a plain request view.
//!
//! Adding a filter: a module here with its config type and `on_request`,
//! a variant of `Filter`, and its field in `config` (raw, validate, proto).

pub mod fault;
pub mod rate_limit;

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::view::RequestView;

pub use fault::{Fault, FaultAbort, FaultDelay};
pub use rate_limit::{Bucket, Keyed, Per, RateLimit};

/// One compiled filter of a route.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Fault(Fault),
    RateLimit(RateLimit),
}

/// A filter's per-core mutable state, one per filter of a route, built
/// per core with the core's snapshot (`worker::Snapshot::build`) and kept
/// across a reload while the route and its filter are unchanged.
#[derive(Debug, Clone)]
pub enum FilterState {
    /// The filter keeps none (fault: it uses the core's rng).
    None,
    /// A rate limit's token bucket, this core's share.
    Bucket(Rc<Bucket>),
    /// A rate limit's buckets per caller.
    Keyed(Rc<Keyed>),
}

/// What a filter wants done with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on to the next filter, then forward.
    Continue,
    /// Wait this long, then go on.
    Delay(Duration, Injected),
    /// Answer with this status instead of forwarding.
    Respond(u16, Injected),
    /// Over the route's rate limit: answer 429 with this `retry-after`
    /// (whole seconds, at least 1).
    Limited(u32),
}

/// Which fault a verdict injected, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    Delay,
    Abort,
}

/// Per-request input a filter may use besides the request.
pub struct FilterCtx<'a> {
    /// The core's random source (fault percentages).
    pub rng: &'a mut fastrand::Rng,
    /// When the request's head was complete (rate limits).
    pub now: Instant,
    /// This filter's per-core state.
    pub state: &'a FilterState,
    /// The client's workload identity, when it presented one.
    pub principal: Option<&'a [u8]>,
    /// The client's address.
    pub client: std::net::IpAddr,
}

impl Filter {
    /// Decide on one request. A filter that both delays and aborts (a fault
    /// with both) returns the delay first; `after_delay` asks again.
    pub fn on_request(&self, req: &dyn RequestView, ctx: &mut FilterCtx<'_>) -> Verdict {
        match self {
            Filter::Fault(f) => f.on_request(req, ctx, Stage::Start),
            Filter::RateLimit(r) => {
                let taken = match ctx.state {
                    FilterState::Bucket(b) => b.take(ctx.now),
                    FilterState::Keyed(k) => match &r.per {
                        Per::Header(name) => k.take(req.header(name).unwrap_or(b""), ctx.now),
                        Per::Source | Per::Route => match ctx.principal {
                            Some(p) => k.take(p, ctx.now),
                            None => k.take(&ip_key(ctx.client), ctx.now),
                        },
                    },
                    FilterState::None => Ok(()),
                };
                match taken {
                    Ok(()) => Verdict::Continue,
                    Err(wait) => Verdict::Limited(rate_limit::retry_after_secs(wait)),
                }
            }
        }
    }

    /// This filter's state for one core of `workers`.
    pub fn state(&self, workers: usize, now: Instant) -> FilterState {
        match self {
            Filter::Fault(_) => FilterState::None,
            Filter::RateLimit(r) if r.per == Per::Route => {
                FilterState::Bucket(Rc::new(r.bucket(workers, now)))
            }
            Filter::RateLimit(r) => FilterState::Keyed(Rc::new(r.keyed(workers, now))),
        }
    }

    /// Decide again after this filter's own delay has passed.
    pub fn after_delay(&self, req: &dyn RequestView, ctx: &mut FilterCtx<'_>) -> Verdict {
        match self {
            Filter::Fault(f) => f.on_request(req, ctx, Stage::Delayed),
            // Never delays.
            Filter::RateLimit(_) => Verdict::Continue,
        }
    }
}

/// A client address as a key: a byte no principal starts with (a SPIFFE
/// path is text), then the address's bytes. On the stack.
fn ip_key(ip: std::net::IpAddr) -> IpKey {
    let mut key = IpKey {
        bytes: [0; 17],
        len: 0,
    };
    let octets: &[u8] = match ip {
        std::net::IpAddr::V4(v4) => &v4.octets(),
        std::net::IpAddr::V6(v6) => &v6.octets(),
    };
    key.bytes[1..=octets.len()].copy_from_slice(octets);
    key.len = octets.len() + 1;
    key
}

struct IpKey {
    bytes: [u8; 17],
    len: usize,
}

impl std::ops::Deref for IpKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Where a filter is in its decision: before or after its own delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Start,
    Delayed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeRequest;
    use std::net::IpAddr;

    type Headers = &'static [(&'static [u8], &'static [u8])];
    const ALICE: Headers = &[(b"x-user", b"alice")];
    const BOB: Headers = &[(b"x-user", b"bob")];

    /// A request with these headers.
    fn req(headers: Headers) -> FakeRequest {
        FakeRequest {
            headers,
            ..FakeRequest::default()
        }
    }

    fn limit(per: Per) -> Filter {
        Filter::RateLimit(RateLimit {
            requests_per_second: 1.0,
            burst: 1,
            per,
        })
    }

    /// The verdict for a request from `client` (with `principal`).
    fn decide(
        f: &Filter,
        state: &FilterState,
        req: &FakeRequest,
        principal: Option<&[u8]>,
        client: &str,
    ) -> Verdict {
        let mut rng = fastrand::Rng::with_seed(1);
        let client: IpAddr = client.parse().unwrap();
        f.on_request(
            req,
            &mut FilterCtx {
                rng: &mut rng,
                now: Instant::now(),
                state,
                principal,
                client,
            },
        )
    }

    #[test]
    fn per_source_keys_by_identity_else_address() {
        let f = limit(Per::Source);
        let state = f.state(1, Instant::now());
        assert!(matches!(state, FilterState::Keyed(_)));
        let req = req(&[]);
        let id = Some(&b"td/ns/a/sa/web"[..]);
        assert_eq!(decide(&f, &state, &req, id, "10.0.0.1"), Verdict::Continue);
        // The same identity from another address: the same bucket.
        assert_eq!(
            decide(&f, &state, &req, id, "10.0.0.2"),
            Verdict::Limited(1)
        );
        // No identity: by address, v4 and v6 apart.
        assert_eq!(
            decide(&f, &state, &req, None, "10.0.0.1"),
            Verdict::Continue
        );
        assert_eq!(
            decide(&f, &state, &req, None, "10.0.0.1"),
            Verdict::Limited(1)
        );
        assert_eq!(
            decide(&f, &state, &req, None, "::ffff:10.0.0.1"),
            Verdict::Continue
        );
        assert_eq!(
            decide(&f, &state, &req, None, "10.0.0.3"),
            Verdict::Continue
        );
    }

    #[test]
    fn per_header_keys_by_its_value_and_one_bucket_is_per_route() {
        let f = limit(Per::Header(b"x-user".to_vec().into()));
        let state = f.state(2, Instant::now());
        let (alice, bob, nobody) = (req(ALICE), req(BOB), req(&[]));
        assert_eq!(
            decide(&f, &state, &alice, None, "10.0.0.1"),
            Verdict::Continue
        );
        assert_eq!(
            decide(&f, &state, &alice, None, "10.0.0.2"),
            Verdict::Limited(2)
        );
        assert_eq!(
            decide(&f, &state, &bob, None, "10.0.0.1"),
            Verdict::Continue
        );
        assert_eq!(
            decide(&f, &state, &nobody, None, "10.0.0.1"),
            Verdict::Continue
        );
        assert_eq!(
            decide(&f, &state, &nobody, None, "10.0.0.2"),
            Verdict::Limited(2)
        );

        let f = limit(Per::Route);
        let state = f.state(1, Instant::now());
        assert!(matches!(state, FilterState::Bucket(_)));
        assert_eq!(
            decide(&f, &state, &alice, None, "10.0.0.1"),
            Verdict::Continue
        );
        assert_eq!(
            decide(&f, &state, &bob, None, "10.0.0.2"),
            Verdict::Limited(1)
        );
        assert_eq!(
            f.after_delay(
                &bob,
                &mut FilterCtx {
                    rng: &mut fastrand::Rng::with_seed(1),
                    now: Instant::now(),
                    state: &state,
                    principal: None,
                    client: "10.0.0.1".parse().unwrap(),
                }
            ),
            Verdict::Continue,
            "a rate limit never delays"
        );
    }
}
