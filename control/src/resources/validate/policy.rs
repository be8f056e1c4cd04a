//! A rule's policies: what happens to a request once the rule matched it
//! (timeouts, retries, injected faults), beside where it goes.

use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::super::model::{Fault, FaultAbort, FaultDelay, Retry};
use super::super::raw::{RawFault, RawFaultAbort, RawFaultDelay, RawRetry, RawTimeouts};
use super::{Checker, Doc};

/// The longest duration the proxy accepts in any setting (its
/// `Defaults::MAX_DURATION`): past a week a duration is a typo, and a
/// snapshot holding one would be refused by every proxy it reached.
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Checker {
    /// `timeouts.request`: from sending the request upstream to receiving
    /// the response head.
    pub(super) fn timeouts(&mut self, doc: &Doc, t: &RawTimeouts, path: &str) -> Option<Duration> {
        self.unsupported(
            doc,
            &t.backend_request,
            &format!("{path}.timeouts.backendRequest"),
            ": `request` bounds each try",
        );
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
        let backoff = r.backoff.as_ref().and_then(|b| {
            let at = format!("{path}.retry.backoff");
            match humantime::parse_duration(&b.value) {
                Ok(d) if d > MAX_DURATION => {
                    self.err(
                        doc,
                        &b.referenced,
                        at,
                        format!("`{}` is longer than 7 days", b.value),
                    );
                    None
                }
                // 0s is meaningful here: retry at once.
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(
                        doc,
                        &b.referenced,
                        at,
                        format!("`{}` is not a duration ({e}); write e.g. 100ms", b.value),
                    );
                    None
                }
            }
        });
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
            grpc: Vec::new(),
            backoff,
        }
    }

    /// `fault`: a delay, an abort, or both. `None` when it is unusable
    /// (and an error says why).
    pub(super) fn fault(&mut self, doc: &Doc, f: &Spanned<RawFault>, path: &str) -> Option<Fault> {
        let (delay, abort) = (&f.value.delay, &f.value.abort);
        if delay.is_none() && abort.is_none() {
            self.err(
                doc,
                &f.referenced,
                path,
                "give a `delay`, an `abort` or both",
            );
            return None;
        }
        let delay = delay.as_ref().map(|d| self.fault_delay(doc, d, path));
        let abort = abort.as_ref().map(|a| self.fault_abort(doc, a, path));
        // Checked one by one so every error is reported.
        match (delay, abort) {
            (Some(None), _) | (_, Some(None)) => None,
            (delay, abort) => Some(Fault {
                delay: delay.flatten(),
                abort: abort.flatten(),
            }),
        }
    }

    fn fault_delay(
        &mut self,
        doc: &Doc,
        d: &Spanned<RawFaultDelay>,
        path: &str,
    ) -> Option<FaultDelay> {
        let path = format!("{path}.delay");
        let duration = match &d.value.fixed_delay {
            Some(t) => self.duration(
                doc,
                t,
                &format!("{path}.fixedDelay"),
                "must be more than 0; for no delay leave `delay` out",
            ),
            None => {
                self.err(
                    doc,
                    &d.referenced,
                    format!("{path}.fixedDelay"),
                    "missing: how long to hold a request, e.g. 2s",
                );
                None
            }
        };
        let percent = self.percent(doc, &d.value.percent, &d.referenced, &path, "delayed");
        Some(FaultDelay {
            duration: duration?,
            percent: percent?,
        })
    }

    fn fault_abort(
        &mut self,
        doc: &Doc,
        a: &Spanned<RawFaultAbort>,
        path: &str,
    ) -> Option<FaultAbort> {
        let path = format!("{path}.abort");
        let status = match &a.value.http_status {
            Some(s) if (200..=599).contains(&s.value) => Some(s.value as u16),
            Some(s) => {
                self.err(
                    doc,
                    &s.referenced,
                    format!("{path}.httpStatus"),
                    format!("{} is not a status from 200 to 599", s.value),
                );
                None
            }
            None => {
                self.err(
                    doc,
                    &a.referenced,
                    format!("{path}.httpStatus"),
                    "missing: the status to answer instead, e.g. 503",
                );
                None
            }
        };
        let percent = self.percent(doc, &a.value.percent, &a.referenced, &path, "aborted");
        Some(FaultAbort {
            status: status?,
            percent: percent?,
        })
    }

    /// `{path}.percent`: required, 0 to 100, fractions allowed.
    fn percent(
        &mut self,
        doc: &Doc,
        p: &Option<Spanned<f64>>,
        parent: &Location,
        path: &str,
        what: &str,
    ) -> Option<f64> {
        let path = format!("{path}.percent");
        match p {
            Some(p) if (0.0..=100.0).contains(&p.value) => Some(p.value),
            Some(p) => {
                self.err(
                    doc,
                    &p.referenced,
                    path,
                    format!(
                        "{} is not a percentage: write 0 to 100, e.g. 10 or 0.5",
                        p.value
                    ),
                );
                None
            }
            None => {
                self.err(
                    doc,
                    parent,
                    path,
                    format!("missing: the share of requests {what}, 0 to 100"),
                );
                None
            }
        }
    }
}
