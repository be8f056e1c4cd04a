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
pub use rate_limit::{Bucket, RateLimit};

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
}

impl Filter {
    /// Decide on one request. A filter that both delays and aborts (a fault
    /// with both) returns the delay first; `after_delay` asks again.
    pub fn on_request(&self, req: &dyn RequestView, ctx: &mut FilterCtx<'_>) -> Verdict {
        match self {
            Filter::Fault(f) => f.on_request(req, ctx, Stage::Start),
            Filter::RateLimit(_) => match ctx.state {
                FilterState::Bucket(b) => match b.take(ctx.now) {
                    Ok(()) => Verdict::Continue,
                    Err(wait) => Verdict::Limited(rate_limit::retry_after_secs(wait)),
                },
                FilterState::None => Verdict::Continue,
            },
        }
    }

    /// This filter's state for one core of `workers`.
    pub fn state(&self, workers: usize, now: Instant) -> FilterState {
        match self {
            Filter::Fault(_) => FilterState::None,
            Filter::RateLimit(r) => FilterState::Bucket(Rc::new(r.bucket(workers, now))),
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

/// Where a filter is in its decision: before or after its own delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Start,
    Delayed,
}
