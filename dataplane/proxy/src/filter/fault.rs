//! Fault injection: delay or abort a share of a route's requests, to test
//! how callers cope with a slow or failing service (Envoy's fault filter,
//! Istio's `VirtualService.fault`). The delay applies before the request
//! is forwarded and does not count against the route's `timeout`; when a
//! route has both, a request is first considered for the delay, then for
//! the abort, each with its own percentage.

use std::time::Duration;

use super::{FilterCtx, Injected, Stage, Verdict};
use crate::view::RequestView;

/// Percentages are kept as parts per million: 0.0001 % resolution, and a
/// roll is one integer comparison.
pub const PER_MILLION: u32 = 1_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultDelay {
    pub duration: Duration,
    /// Share of requests delayed, in parts per million.
    pub per_million: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultAbort {
    /// Status answered instead of forwarding (200..=599).
    pub status: u16,
    /// Share of requests aborted, in parts per million.
    pub per_million: u32,
}

/// A percentage (0..=100, fractions allowed) as parts per million; `None`
/// when out of range or not a number.
pub fn per_million(percent: f64) -> Option<u32> {
    if !(0.0..=100.0).contains(&percent) {
        return None;
    }
    Some((percent * 10_000.0).round() as u32)
}

fn roll(ctx: &mut FilterCtx<'_>, per_million: u32) -> bool {
    per_million >= PER_MILLION || (per_million > 0 && ctx.rng.u32(..PER_MILLION) < per_million)
}

impl Fault {
    pub(super) fn on_request(
        &self,
        _req: &dyn RequestView,
        ctx: &mut FilterCtx<'_>,
        stage: Stage,
    ) -> Verdict {
        if stage == Stage::Start {
            if let Some(d) = &self.delay {
                if roll(ctx, d.per_million) {
                    return Verdict::Delay(d.duration, Injected::Delay);
                }
            }
        }
        match &self.abort {
            Some(a) if roll(ctx, a.per_million) => Verdict::Respond(a.status, Injected::Abort),
            _ => Verdict::Continue,
        }
    }
}
