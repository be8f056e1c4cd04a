//! A route's `fault`: compiled into a `filter::Fault` for `Route::filters`.
//!
//! Kept apart from the rest of route validation because it is the first
//! filter: the next one gets a sibling module here, and `route` only
//! collects what they compile to.

use serde_saphyr::{Location, Spanned};

use super::{Bounds, Validator};
use crate::config::raw::{RawFault, RawFaultAbort, RawFaultDelay};
use crate::filter::fault::per_million;
use crate::filter::{Fault, FaultAbort, FaultDelay, Filter};

impl Validator {
    /// `None` after reporting every problem of the fault; `path` names the
    /// `fault` field itself.
    pub(super) fn fault(&mut self, f: &Spanned<RawFault>, path: &str) -> Option<Filter> {
        let (delay, abort) = (&f.value.delay, &f.value.abort);
        if delay.is_none() && abort.is_none() {
            self.err(
                &f.referenced,
                path,
                "a fault needs a `delay`, an `abort` or both",
            );
            return None;
        }
        // Both are checked before either may end the function: every error
        // is reported in one round. `Some(None)`: given but invalid.
        let delay = delay
            .as_ref()
            .map(|d| self.fault_delay(d, &format!("{path}.delay")));
        let abort = abort
            .as_ref()
            .map(|a| self.fault_abort(a, &format!("{path}.abort")));
        if matches!(delay, Some(None)) || matches!(abort, Some(None)) {
            return None;
        }
        Some(Filter::Fault(Fault {
            delay: delay.flatten(),
            abort: abort.flatten(),
        }))
    }

    fn fault_delay(&mut self, d: &Spanned<RawFaultDelay>, path: &str) -> Option<FaultDelay> {
        let duration_path = format!("{path}.duration");
        let duration = match &d.value.duration {
            Some(s) => self.given_duration(s, &duration_path, Bounds::NonZero),
            None => {
                self.err(
                    &d.referenced,
                    duration_path,
                    "missing: how long to delay, e.g. 2s",
                );
                None
            }
        };
        let per_million = self.percent(&d.value.percent, &d.referenced, path);
        Some(FaultDelay {
            duration: duration?,
            per_million: per_million?,
        })
    }

    fn fault_abort(&mut self, a: &Spanned<RawFaultAbort>, path: &str) -> Option<FaultAbort> {
        let status_path = format!("{path}.status");
        let status = match &a.value.status {
            Some(s) if (200..=599).contains(&s.value) => Some(s.value as u16),
            Some(s) => {
                self.err(&s.referenced, status_path, "status must be from 200 to 599");
                None
            }
            None => {
                self.err(
                    &a.referenced,
                    status_path,
                    "missing: the status to answer with, e.g. 503",
                );
                None
            }
        };
        let per_million = self.percent(&a.value.percent, &a.referenced, path);
        Some(FaultAbort {
            status: status?,
            per_million: per_million?,
        })
    }

    /// The required `percent` of a delay or abort at `at`, in parts per
    /// million.
    fn percent(&mut self, p: &Option<Spanned<f64>>, at: &Location, path: &str) -> Option<u32> {
        let path = format!("{path}.percent");
        let Some(p) = p else {
            self.err(at, path, "missing: the share of requests, 0 to 100");
            return None;
        };
        self.percent_value(p, &path)
    }

    /// A percentage (0 to 100) in parts per million, or an error at it.
    pub(super) fn percent_value(&mut self, p: &Spanned<f64>, path: &str) -> Option<u32> {
        let parts = per_million(p.value);
        if parts.is_none() {
            self.err(
                &p.referenced,
                path,
                format!("`{}` is not a percentage from 0 to 100", p.value),
            );
        }
        parts
    }
}
