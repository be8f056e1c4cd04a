//! A rule's policies: what happens to a request once the rule matched it
//! (timeouts, retries), beside where it goes.

use super::super::model::Retry;
use super::super::raw::{RawRetry, RawTimeouts};
use super::{Checker, Doc};

impl Checker {
    /// `timeouts.request`: the whole exchange with the backend.
    pub(super) fn timeouts(
        &mut self,
        doc: &Doc,
        t: &RawTimeouts,
        path: &str,
    ) -> Option<std::time::Duration> {
        let t = t.request.as_ref()?;
        match humantime::parse_duration(&t.value) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    doc,
                    &t.referenced,
                    format!("{path}.timeouts.request"),
                    format!(
                        "`{}` is not a duration ({e}); write e.g. 2s or 500ms",
                        t.value
                    ),
                );
                None
            }
        }
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
