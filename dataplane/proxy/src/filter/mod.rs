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

use std::time::Duration;

use crate::view::RequestView;

pub use fault::{Fault, FaultAbort, FaultDelay};

/// One compiled filter of a route.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Fault(Fault),
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
}

impl Filter {
    /// Decide on one request. A filter that both delays and aborts (a fault
    /// with both) returns the delay first; `after_delay` asks again.
    pub fn on_request(&self, req: &dyn RequestView, ctx: &mut FilterCtx<'_>) -> Verdict {
        match self {
            Filter::Fault(f) => f.on_request(req, ctx, Stage::Start),
        }
    }

    /// Decide again after this filter's own delay has passed.
    pub fn after_delay(&self, req: &dyn RequestView, ctx: &mut FilterCtx<'_>) -> Verdict {
        match self {
            Filter::Fault(f) => f.on_request(req, ctx, Stage::Delayed),
        }
    }
}

/// Where a filter is in its decision: before or after its own delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Start,
    Delayed,
}
