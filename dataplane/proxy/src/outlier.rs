//! Outlier detection: take an endpoint that fails out of the rotation for
//! a while (Envoy's outlier detection, Istio's DestinationRule
//! `outlierDetection`).
//!
//! Two detectors, per worker, from the outcome of every try:
//! - **Consecutive errors**: `consecutive_5xx` 5xx responses or failed
//!   tries (no connection, a reset, a timeout) in a row, or
//!   `consecutive_gateway_errors` 502/503/504 or failed tries in a row.
//! - **Success rate**: every `interval`, the endpoints with at least
//!   `request_volume` tries in it are compared, when there are at least
//!   `minimum_hosts` of them; one whose success rate is below the mean by
//!   more than `stdev_factor` standard deviations is ejected.
//!
//! An ejection lasts `base_ejection_time` times the number of times the
//! endpoint was ejected (capped at `max_ejection_time`); the count goes
//! down by one for every interval the endpoint stays in. At most
//! `max_ejection_percent` of the endpoints are out at once, but one may
//! always be. Ejections end on the worker's 1-second sweep, so an
//! ejection lasts up to a second longer than its time.
//!
//! Each worker decides for itself from its own tries: no counter is
//! shared, and each worker's ejection shows in
//! `ringmesh_endpoint_ejected` (the number of workers that have it out).

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::balance::Outcome;
use crate::config::model::{OutlierDetection, SuccessRate};

/// One endpoint's detection state on one worker.
#[derive(Debug, Default)]
pub struct EndpointState {
    consecutive_5xx: Cell<u32>,
    consecutive_gateway: Cell<u32>,
    /// Tries and successes in the current interval.
    tries: Cell<u32>,
    successes: Cell<u32>,
    /// Set while ejected: when it ends.
    until: Cell<Option<Instant>>,
    /// Ejections not yet forgiven: the next one lasts this many + 1 times
    /// the base.
    ejections: Cell<u32>,
    /// Ejected during the current interval (not forgiven at its end).
    ejected_lately: Cell<bool>,
}

impl EndpointState {
    pub fn is_ejected(&self) -> bool {
        self.until.get().is_some()
    }

    /// Ejected for an hour, or not, without a detector (tests).
    #[cfg(test)]
    pub(crate) fn set_ejected(&self, on: bool) {
        self.until
            .set(on.then(|| Instant::now() + Duration::from_secs(3600)));
    }
}

/// What a try's outcome means for its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Eject,
}

/// A cluster's detector on one worker.
#[derive(Debug)]
pub struct Detector {
    cfg: OutlierDetection,
    next_interval: Cell<Instant>,
}

impl Detector {
    pub fn new(cfg: OutlierDetection, now: Instant) -> Detector {
        Detector {
            cfg,
            next_interval: Cell::new(now + cfg.interval),
        }
    }

    /// Count a try; `Eject` when a consecutive-error threshold is reached.
    pub fn on_outcome(&self, ep: &EndpointState, outcome: Outcome) -> Verdict {
        if ep.is_ejected() {
            // Tries that were in flight when it went out: already judged.
            return Verdict::Keep;
        }
        ep.tries.set(ep.tries.get().saturating_add(1));
        let (server_error, gateway_error) = (outcome.is_failure(), outcome.is_gateway_error());
        if !server_error {
            ep.successes.set(ep.successes.get().saturating_add(1));
        }
        let bump = |c: &Cell<u32>, hit: bool, limit: u32| {
            c.set(if hit { c.get().saturating_add(1) } else { 0 });
            limit > 0 && c.get() >= limit
        };
        let by_5xx = bump(&ep.consecutive_5xx, server_error, self.cfg.consecutive_5xx);
        let by_gateway = bump(
            &ep.consecutive_gateway,
            gateway_error,
            self.cfg.consecutive_gateway_errors,
        );
        if by_5xx || by_gateway {
            Verdict::Eject
        } else {
            Verdict::Keep
        }
    }

    /// How many of `total` endpoints may be out at once.
    pub fn max_ejected(&self, total: usize) -> usize {
        ((total as f64 * self.cfg.max_ejection).floor() as usize).max(1)
    }

    /// Take `ep` out from `now`; returns how long for.
    pub fn eject(&self, ep: &EndpointState, now: Instant) -> Duration {
        let n = ep.ejections.get().saturating_add(1);
        ep.ejections.set(n);
        ep.ejected_lately.set(true);
        let time = self
            .cfg
            .base_ejection_time
            .saturating_mul(n)
            .min(self.cfg.max_ejection_time);
        ep.until.set(Some(now + time));
        ep.consecutive_5xx.set(0);
        ep.consecutive_gateway.set(0);
        time
    }

    /// Whether `ep`'s ejection is over at `now` (it is back in then).
    pub fn release_due(&self, ep: &EndpointState, now: Instant) -> bool {
        match ep.until.get() {
            Some(until) if until <= now => {
                ep.until.set(None);
                true
            }
            _ => false,
        }
    }

    /// At an interval's end: the endpoints whose success rate is an
    /// outlier (indices into `eps`), and the counts start again. `None`
    /// before the interval is over.
    pub fn interval_end<'a>(
        &self,
        eps: impl Iterator<Item = &'a EndpointState> + Clone,
        now: Instant,
    ) -> Option<Vec<usize>> {
        if now < self.next_interval.get() {
            return None;
        }
        self.next_interval.set(now + self.cfg.interval);
        let outliers = match &self.cfg.success_rate {
            Some(sr) => success_rate_outliers(sr, eps.clone()),
            None => Vec::new(),
        };
        for ep in eps {
            ep.tries.set(0);
            ep.successes.set(0);
            if !ep.is_ejected() && !ep.ejected_lately.get() {
                ep.ejections.set(ep.ejections.get().saturating_sub(1));
            }
            ep.ejected_lately.set(false);
        }
        Some(outliers)
    }
}

/// Indices of the endpoints below `mean - stdev_factor × stdev` among
/// those with enough tries, when enough have.
fn success_rate_outliers<'a>(
    sr: &SuccessRate,
    eps: impl Iterator<Item = &'a EndpointState>,
) -> Vec<usize> {
    let rates: Vec<(usize, f64)> = eps
        .enumerate()
        .filter(|(_, e)| !e.is_ejected() && e.tries.get() >= sr.request_volume)
        .map(|(i, e)| (i, f64::from(e.successes.get()) / f64::from(e.tries.get())))
        .collect();
    if rates.len() < sr.minimum_hosts as usize || rates.is_empty() {
        return Vec::new();
    }
    let n = rates.len() as f64;
    let mean = rates.iter().map(|(_, r)| r).sum::<f64>() / n;
    let var = rates.iter().map(|(_, r)| (r - mean).powi(2)).sum::<f64>() / n;
    let floor = mean - sr.stdev_factor * var.sqrt();
    rates
        .into_iter()
        .filter(|&(_, r)| r < floor)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 3,
            consecutive_gateway_errors: 0,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(100),
            max_ejection: 0.1,
            success_rate: None,
        }
    }

    #[test]
    fn consecutive_errors_eject_and_a_success_resets_the_count() {
        let d = Detector::new(cfg(), Instant::now());
        let ep = EndpointState::default();
        assert_eq!(d.on_outcome(&ep, Outcome::Response(503)), Verdict::Keep);
        assert_eq!(d.on_outcome(&ep, Outcome::ConnectFailed), Verdict::Keep);
        assert_eq!(d.on_outcome(&ep, Outcome::Response(200)), Verdict::Keep);
        assert_eq!(d.on_outcome(&ep, Outcome::Response(500)), Verdict::Keep);
        assert_eq!(d.on_outcome(&ep, Outcome::Response(500)), Verdict::Keep);
        assert_eq!(d.on_outcome(&ep, Outcome::TimedOut), Verdict::Eject);
        // 4xx is the client's: never counts.
        let other = EndpointState::default();
        for _ in 0..10 {
            assert_eq!(d.on_outcome(&other, Outcome::Response(404)), Verdict::Keep);
        }
    }

    #[test]
    fn gateway_errors_count_on_their_own() {
        let d = Detector::new(
            OutlierDetection {
                consecutive_5xx: 0,
                consecutive_gateway_errors: 2,
                ..cfg()
            },
            Instant::now(),
        );
        let ep = EndpointState::default();
        assert_eq!(d.on_outcome(&ep, Outcome::Response(500)), Verdict::Keep);
        assert_eq!(d.on_outcome(&ep, Outcome::Response(500)), Verdict::Keep);
        assert_eq!(d.on_outcome(&ep, Outcome::Response(502)), Verdict::Keep);
        assert_eq!(d.on_outcome(&ep, Outcome::Failed), Verdict::Eject);
    }

    #[test]
    fn ejections_grow_with_repeats_and_shrink_with_good_intervals() {
        let t0 = Instant::now();
        let d = Detector::new(cfg(), t0);
        let ep = EndpointState::default();
        assert_eq!(d.eject(&ep, t0), Duration::from_secs(30));
        assert!(!d.release_due(&ep, t0 + Duration::from_secs(29)));
        assert!(d.release_due(&ep, t0 + Duration::from_secs(30)));
        assert!(!ep.is_ejected());
        assert_eq!(d.eject(&ep, t0), Duration::from_secs(60));
        assert!(d.release_due(&ep, t0 + Duration::from_secs(60)));
        assert_eq!(d.eject(&ep, t0), Duration::from_secs(90));
        assert!(d.release_due(&ep, t0 + Duration::from_secs(90)));
        assert_eq!(
            d.eject(&ep, t0),
            Duration::from_secs(100),
            "capped at the max"
        );
        assert!(d.release_due(&ep, t0 + Duration::from_secs(100)));
        // Two intervals: the first still has the ejection in it.
        let one = || std::iter::once(&ep);
        assert!(d
            .interval_end(one(), t0 + Duration::from_secs(10))
            .is_some());
        assert!(d
            .interval_end(one(), t0 + Duration::from_secs(20))
            .is_some());
        assert_eq!(ep.ejections.get(), 3, "one interval forgiven");
    }

    #[test]
    fn at_least_one_endpoint_may_be_ejected() {
        let d = Detector::new(cfg(), Instant::now());
        assert_eq!(d.max_ejected(3), 1);
        assert_eq!(d.max_ejected(25), 2);
    }

    #[test]
    fn a_success_rate_far_below_the_others_is_ejected() {
        let t0 = Instant::now();
        let d = Detector::new(
            OutlierDetection {
                consecutive_5xx: 0,
                success_rate: Some(SuccessRate {
                    minimum_hosts: 3,
                    request_volume: 10,
                    stdev_factor: 1.0,
                }),
                ..cfg()
            },
            t0,
        );
        let eps: Vec<EndpointState> = (0..5).map(|_| EndpointState::default()).collect();
        for (i, ep) in eps.iter().enumerate() {
            for k in 0..20 {
                // Endpoint 4 fails half its tries, the others none.
                let failed = i == 4 && k % 2 == 0;
                d.on_outcome(ep, Outcome::Response(if failed { 503 } else { 200 }));
            }
        }
        assert_eq!(d.interval_end(eps.iter(), t0), None, "not yet");
        assert_eq!(
            d.interval_end(eps.iter(), t0 + Duration::from_secs(10)),
            Some(vec![4])
        );
        // Counts start again: too few tries to judge now.
        assert_eq!(
            d.interval_end(eps.iter(), t0 + Duration::from_secs(20)),
            Some(vec![])
        );
    }
}
