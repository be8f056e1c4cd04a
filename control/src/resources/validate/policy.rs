//! A rule's policies: what happens to a request once the rule matched it
//! (timeouts, retries), beside where it goes.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::super::model::Retry;
use super::super::raw::{RawRetry, RawTimeouts};
use super::{Checker, Doc};

/// The longest duration the proxy accepts in any setting (its
/// `Defaults::MAX_DURATION`): past a week a duration is a typo, and a
/// snapshot holding one would be refused by every proxy it reached.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Checker {
    /// `timeouts.request`: from sending the request upstream to receiving
    /// the response head.
    pub(super) fn timeouts(&mut self, doc: &Doc, t: &RawTimeouts, path: &str) -> Option<Duration> {
        let t = t.request.as_ref()?;
        self.duration(
            doc,
            t,
            &format!("{path}.timeouts.request"),
            // The Gateway API reads 0s as "no timeout"; the proxy has no
            // such route setting and refuses a zero one.
            "must be more than 0; for no route timeout leave `request` out \
             (the listener's idle timeout then applies)",
        )
    }

    /// A duration written like `2s` or `500ms`, more than 0 and at most
    /// `MAX_DURATION`; `zero` says what to write instead of 0.
    pub(super) fn duration(
        &mut self,
        doc: &Doc,
        s: &Spanned<String>,
        path: &str,
        zero: &str,
    ) -> Option<Duration> {
        let problem = match humantime::parse_duration(&s.value) {
            Ok(d) if d.is_zero() => zero.to_string(),
            Ok(d) if d > MAX_DURATION => format!("`{}` is longer than 7 days", s.value),
            Ok(d) => return Some(d),
            Err(e) => format!(
                "`{}` is not a duration ({e}); write e.g. 2s or 500ms",
                s.value
            ),
        };
        self.err(doc, &s.referenced, path, problem);
        None
    }

    pub(super) fn retry(&mut self, doc: &Doc, r: &RawRetry, path: &str) -> Retry {
        let attempts = &r.attempts;
        if !(1..=5).contains(&attempts.value) {
            self.err(
                doc,
                &attempts.referenced,
                format!("{path}.retry.attempts"),
                "must be from 1 to 5",
            );
        }
        for (i, c) in r.codes.iter().enumerate() {
            if !(500..=599).contains(&c.value) {
                self.err(
                    doc,
                    &c.referenced,
                    format!("{path}.retry.codes[{i}]"),
                    format!(
                        "{} is not a 5xx status: only server errors are retried",
                        c.value
                    ),
                );
            }
        }
        Retry {
            attempts: attempts.value.clamp(1, 5) as u32,
            codes: r.codes.iter().map(|c| c.value as u16).collect(),
        }
    }
}
