//! A core's share of a cluster's retry budget (`model::RetryBudget`).
//!
//! Per core and single-threaded (`Cell`s in the cluster's per-core state):
//! requests and retries are counted in two consecutive windows of
//! `RetryBudget::WINDOW`, the older one weighed by how much of it still
//! lies within the last window (a sliding-window estimate). A retry is
//! allowed while, with it, the retries in the last window stay within
//! `percent` of the requests in it plus the core's share of the floor,
//! `min_per_second * window / workers`. No allocation, no clock read of
//! its own: callers pass the time they already read.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::config::model::RetryBudget;

pub struct Budget {
    per_million: u32,
    /// This core's share of the floor, in retries per window.
    floor: f64,
    window: Duration,
    /// Start of the current window.
    start: Cell<Instant>,
    /// (previous window, current window).
    requests: Cell<(u32, u32)>,
    retries: Cell<(u32, u32)>,
}

impl Budget {
    pub fn new(b: &RetryBudget, workers: usize, now: Instant) -> Self {
        Self::with_window(b, workers, now, RetryBudget::WINDOW)
    }

    fn with_window(b: &RetryBudget, workers: usize, now: Instant, window: Duration) -> Self {
        Budget {
            per_million: b.per_million,
            floor: f64::from(b.min_per_second) * window.as_secs_f64() / workers.max(1) as f64,
            window,
            start: Cell::new(now),
            requests: Cell::new((0, 0)),
            retries: Cell::new((0, 0)),
        }
    }

    /// Moves the windows on to `now`; the previous window's weight.
    fn roll(&self, now: Instant) -> f64 {
        let mut elapsed = now.saturating_duration_since(self.start.get());
        if elapsed >= self.window * 2 {
            self.requests.set((0, 0));
            self.retries.set((0, 0));
            self.start.set(now);
            elapsed = Duration::ZERO;
        } else if elapsed >= self.window {
            self.requests.set((self.requests.get().1, 0));
            self.retries.set((self.retries.get().1, 0));
            self.start.set(self.start.get() + self.window);
            elapsed -= self.window;
        }
        1.0 - elapsed.as_secs_f64() / self.window.as_secs_f64()
    }

    /// A request (its first try) to the cluster.
    pub fn on_request(&self, now: Instant) {
        self.roll(now);
        let (prev, cur) = self.requests.get();
        self.requests.set((prev, cur.saturating_add(1)));
    }

    /// Whether one more retry fits; when it does it is counted.
    pub fn try_retry(&self, now: Instant) -> bool {
        let weight = self.roll(now);
        let estimate = |(prev, cur): (u32, u32)| f64::from(prev) * weight + f64::from(cur);
        let requests = estimate(self.requests.get());
        let retries = estimate(self.retries.get());
        let allowed = requests * f64::from(self.per_million) / 1e6 + self.floor;
        if retries + 1.0 > allowed + 1e-9 {
            return false;
        }
        let (prev, cur) = self.retries.get();
        self.retries.set((prev, cur.saturating_add(1)));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(percent: u32, min_per_second: u32, workers: usize, now: Instant) -> Budget {
        let b = RetryBudget {
            per_million: percent * 10_000,
            min_per_second,
        };
        Budget::new(&b, workers, now)
    }

    #[test]
    fn retries_stay_within_the_percent_of_requests() {
        let now = Instant::now();
        let b = budget(20, 0, 1, now);
        assert!(!b.try_retry(now), "no requests, no floor: no retry");
        for _ in 0..10 {
            b.on_request(now);
        }
        assert!(b.try_retry(now));
        assert!(b.try_retry(now));
        assert!(!b.try_retry(now), "20 % of 10 is 2");
        for _ in 0..5 {
            b.on_request(now);
        }
        assert!(b.try_retry(now));
        assert!(!b.try_retry(now));
    }

    #[test]
    fn the_floor_is_split_across_the_cores() {
        let now = Instant::now();
        // 10 a second over a 10 s window is 100, 25 for each of 4 cores.
        let b = budget(0, 10, 4, now);
        let allowed = (0..1000).take_while(|_| b.try_retry(now)).count();
        assert_eq!(allowed, 25);
        let one = budget(0, 10, 1, now);
        assert_eq!((0..1000).take_while(|_| one.try_retry(now)).count(), 100);
        // The floor and the percent add up.
        let both = budget(50, 1, 2, now);
        for _ in 0..10 {
            both.on_request(now);
        }
        assert_eq!((0..1000).take_while(|_| both.try_retry(now)).count(), 10);
    }

    #[test]
    fn old_windows_are_forgotten() {
        let start = Instant::now();
        let w = RetryBudget::WINDOW;
        let b = budget(20, 0, 1, start);
        for _ in 0..10 {
            b.on_request(start);
        }
        assert!(b.try_retry(start) && b.try_retry(start));
        assert!(!b.try_retry(start));
        // Half a window into the next one, half of the old counts remain
        // (5 requests, 1 retry): no retry fits (1 + 1 > 20 % of 5) until
        // new requests come.
        let later = start + w + w / 2;
        assert!(!b.try_retry(later));
        for _ in 0..5 {
            b.on_request(later);
        }
        assert!(b.try_retry(later));
        // Two windows on, nothing is left.
        let much_later = later + w * 2;
        assert!(!b.try_retry(much_later));
        b.on_request(much_later);
        assert!(!b.try_retry(much_later), "20 % of one request");
    }

    #[test]
    fn backoff_waits_stay_under_the_doubling_ceiling_and_the_max() {
        use crate::config::model::Backoff;
        let ms = Duration::from_millis;
        let b = Backoff {
            base: ms(25),
            max: ms(250),
        };
        let ceilings: Vec<_> = (0..6).map(|k| b.ceiling(k)).collect();
        assert_eq!(
            ceilings,
            [ms(25), ms(50), ms(100), ms(200), ms(250), ms(250)]
        );
        assert_eq!(b.ceiling(u32::MAX), ms(250), "no overflow");
        let mut rng = fastrand::Rng::with_seed(7);
        for k in 0..6 {
            let waits: Vec<_> = (0..200).map(|_| b.wait(k, &mut rng)).collect();
            assert!(waits.iter().all(|w| *w <= b.ceiling(k)));
            // Full jitter: spread over the range, not bunched at its top.
            assert!(waits.iter().any(|w| *w < b.ceiling(k) / 2));
            assert!(waits.iter().any(|w| *w > b.ceiling(k) / 2));
        }
        let none = Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert_eq!(none.wait(3, &mut rng), Duration::ZERO);
    }
}
