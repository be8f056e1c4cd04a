//! A route's `rate_limit`: compiled into a `filter::RateLimit` for
//! `Route::filters`, after the fault (an injected abort is not counted
//! against the limit).

use serde_saphyr::Spanned;

use super::Validator;
use crate::config::raw::{RawRateLimit, RawRateLimitPer};
use crate::filter::{Filter, Per, RateLimit};

impl Validator {
    /// `None` after reporting every problem of the limit; `path` names the
    /// `rate_limit` field itself.
    pub(super) fn rate_limit(&mut self, l: &Spanned<RawRateLimit>, path: &str) -> Option<Filter> {
        let rate_path = format!("{path}.requests_per_second");
        let rate = match &l.value.requests_per_second {
            Some(r) if r.value.is_finite() && r.value > 0.0 => Some(r.value),
            Some(r) => {
                self.err(
                    &r.referenced,
                    rate_path,
                    format!("`{}`: must be a number more than 0", r.value),
                );
                None
            }
            None => {
                self.err(
                    &l.referenced,
                    rate_path,
                    "missing: the requests per second the route accepts, e.g. 100",
                );
                None
            }
        };
        let burst_path = format!("{path}.burst");
        let burst = match &l.value.burst {
            Some(b) if b.value >= 1 && b.value <= u64::from(u32::MAX) => {
                u32::try_from(b.value).ok()
            }
            Some(b) => {
                self.err(
                    &b.referenced,
                    burst_path,
                    format!("`{}`: must be from 1 to {}", b.value, u32::MAX),
                );
                None
            }
            None => {
                self.err(
                    &l.referenced,
                    burst_path,
                    "missing: the requests accepted at once, at least 1",
                );
                None
            }
        };
        let per = match l.value.per.as_ref().map(|p| &p.value) {
            None => Some(Per::Route),
            Some(RawRateLimitPer::Source) => Some(Per::Source),
            Some(RawRateLimitPer::Header(name)) => {
                let before = self.errors.len();
                self.header_name(name, &format!("{path}.per.header"));
                (self.errors.len() == before)
                    .then(|| Per::Header(name.value.to_ascii_lowercase().into_bytes().into()))
            }
        };
        Some(Filter::RateLimit(RateLimit {
            requests_per_second: rate?,
            burst: burst?,
            per: per?,
        }))
    }
}
