//! Local rate limiting: a token bucket per route and core (Envoy's
//! `local_ratelimit`). Requests over the route's rate are answered by the
//! proxy with 429 (`RESOURCE_EXHAUSTED` for gRPC) and a `retry-after`.
//!
//! Shared-nothing: the route's `requests_per_second` and `burst` are split
//! across the workers, each core enforcing its share with a bucket of its
//! own (`Bucket`, plain `Cell`s, no atomics). The kernel spreads
//! connections over the cores by `SO_REUSEPORT` hash, so the limit is the
//! route's total only when traffic is spread; a client whose connections
//! all land on one core gets that core's share (`docs/configuration.md`).
//!
//! The bucket is kept as GCRA (the generic cell rate algorithm): one
//! number, the theoretical arrival time of the next request, in
//! nanoseconds since the bucket was made. A request is let through when
//! it would not push that time more than `burst` intervals past now. The
//! arithmetic is in `u128` nanoseconds (an interval is at most `u64::MAX`,
//! a burst at most `u32::MAX`), so neither a huge rate nor a tiny one
//! overflows.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// A route's configured limit (all workers together; per caller with
/// `per`).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// Requests per second the route accepts in the long run (> 0).
    pub requests_per_second: f64,
    /// Requests accepted at once after a quiet spell (>= 1).
    pub burst: u32,
    pub per: Per,
}

/// What a bucket is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Per {
    /// One bucket for the route.
    Route,
    /// One per caller: its workload identity (mTLS), else its IP address.
    Source,
    /// One per value of this request header (lowercase name); requests
    /// without it share one.
    Header(Box<[u8]>),
}

/// Callers with a bucket of their own, per route and core; past them,
/// callers share one (`Keyed`), as `metrics::Sources` bounds its labels.
pub const KEYS: usize = 32;

/// Longest key with a bucket of its own; longer ones share.
pub const MAX_KEY: usize = 256;

/// Per-caller buckets of one route on one core. A slot is claimed by the
/// first request of a caller; a slot whose bucket is full again (its
/// caller quiet for `burst` intervals) is as good as a fresh one and is
/// given to the next new caller. Only when all `KEYS` callers are active
/// do new ones share `other`.
#[derive(Debug)]
pub struct Keyed {
    slots: Box<[KeySlot]>,
    other: Bucket,
}

#[derive(Debug)]
struct KeySlot {
    /// Empty and unused: free (an empty key in use is `used`).
    key: RefCell<Vec<u8>>,
    used: Cell<bool>,
    bucket: Bucket,
}

impl Keyed {
    fn new(per_second: f64, burst: u32, now: Instant) -> Keyed {
        Keyed {
            slots: (0..KEYS)
                .map(|_| KeySlot {
                    // Most keys (identities, IPs, user ids) fit: claiming a
                    // slot allocates nothing.
                    key: RefCell::new(Vec::with_capacity(64)),
                    used: Cell::new(false),
                    bucket: Bucket::new(per_second, burst, now),
                })
                .collect(),
            other: Bucket::new(per_second, burst, now),
        }
    }

    /// Take a token from `key`'s bucket.
    pub fn take(&self, key: &[u8], now: Instant) -> Result<(), Duration> {
        if key.len() > MAX_KEY {
            return self.other.take(now);
        }
        if let Some(slot) = self
            .slots
            .iter()
            .find(|s| s.used.get() && *s.key.borrow() == key)
        {
            return slot.bucket.take(now);
        }
        let free = self
            .slots
            .iter()
            .find(|s| !s.used.get())
            .or_else(|| self.slots.iter().find(|s| s.bucket.is_full(now)));
        match free {
            Some(slot) => {
                let mut k = slot.key.borrow_mut();
                k.clear();
                k.extend_from_slice(key);
                slot.used.set(true);
                slot.bucket.refill();
                slot.bucket.take(now)
            }
            None => self.other.take(now),
        }
    }
}

impl RateLimit {
    /// This core's rate and burst: `requests_per_second / workers`,
    /// `ceil(burst / workers)` (at least 1).
    fn share(&self, workers: usize) -> (f64, u32) {
        let workers = workers.max(1);
        let w = u32::try_from(workers).unwrap_or(u32::MAX);
        (
            self.requests_per_second / workers as f64,
            self.burst.div_ceil(w).max(1),
        )
    }

    /// This core's bucket (its share), starting full at `now`.
    pub fn bucket(&self, workers: usize, now: Instant) -> Bucket {
        let (rate, burst) = self.share(workers);
        Bucket::new(rate, burst, now)
    }

    /// This core's per-caller buckets, each with the core's share.
    pub fn keyed(&self, workers: usize, now: Instant) -> Keyed {
        let (rate, burst) = self.share(workers);
        Keyed::new(rate, burst, now)
    }
}

/// One core's token bucket for one route. Written by its core only.
#[derive(Debug)]
pub struct Bucket {
    epoch: Instant,
    /// Nanoseconds between two tokens (1 to `u64::MAX`).
    interval: u128,
    /// `burst * interval`: how far past now the arrival time may run.
    tolerance: u128,
    /// Theoretical arrival time of the next request, nanoseconds since
    /// `epoch`; at or before now: the bucket is full.
    tat: Cell<u128>,
}

impl Bucket {
    /// A full bucket refilling at `per_second` tokens a second, holding at
    /// most `burst`.
    pub fn new(per_second: f64, burst: u32, now: Instant) -> Bucket {
        // `as` saturates: a tiny rate gives u64::MAX, NaN gives 0.
        let interval = (1e9 / per_second).ceil() as u64;
        let interval = u128::from(interval.max(1));
        Bucket {
            epoch: now,
            interval,
            tolerance: interval * u128::from(burst.max(1)),
            tat: Cell::new(0),
        }
    }

    fn since_epoch(&self, now: Instant) -> u128 {
        now.saturating_duration_since(self.epoch).as_nanos()
    }

    /// Full (as if new) at `now`: no request within `burst` intervals.
    fn is_full(&self, now: Instant) -> bool {
        self.tat.get() <= self.since_epoch(now)
    }

    fn refill(&self) {
        self.tat.set(0);
    }

    /// Take a token at `now`: `Ok` if there was one, else how long until
    /// the next one.
    pub fn take(&self, now: Instant) -> Result<(), Duration> {
        let now = self.since_epoch(now);
        let next = self.tat.get().max(now).saturating_add(self.interval);
        let ahead = next - now;
        if ahead <= self.tolerance {
            self.tat.set(next);
            Ok(())
        } else {
            let wait = u64::try_from(ahead - self.tolerance).unwrap_or(u64::MAX);
            Err(Duration::from_nanos(wait))
        }
    }
}

/// A wait as the whole seconds of a `retry-after`: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u32 {
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(b: &Bucket, at: Instant, n: u32) -> u32 {
        (0..n).filter(|_| b.take(at).is_ok()).count() as u32
    }

    #[test]
    fn a_full_bucket_lets_a_burst_through_then_refuses() {
        let t0 = Instant::now();
        let b = Bucket::new(10.0, 5, t0);
        assert_eq!(accepted(&b, t0, 20), 5);
        let wait = b.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert_eq!(retry_after_secs(wait), 1);
    }

    #[test]
    fn it_refills_at_the_rate_and_no_further_than_the_burst() {
        let t0 = Instant::now();
        let b = Bucket::new(10.0, 5, t0);
        assert_eq!(accepted(&b, t0, 5), 5);
        // 350 ms: three tokens back.
        assert_eq!(accepted(&b, t0 + Duration::from_millis(350), 10), 3);
        // A long quiet spell refills only up to the burst.
        assert_eq!(accepted(&b, t0 + Duration::from_secs(60), 10), 5);
        // Steady pacing at the rate is always accepted.
        let t1 = t0 + Duration::from_secs(120);
        assert_eq!(accepted(&b, t1, 5), 5);
        for i in 1..=50u64 {
            assert!(b.take(t1 + Duration::from_millis(100 * i)).is_ok(), "{i}");
        }
    }

    #[test]
    fn retry_after_is_the_time_to_the_next_token_in_whole_seconds() {
        let t0 = Instant::now();
        let b = Bucket::new(0.25, 1, t0);
        assert!(b.take(t0).is_ok());
        let wait = b.take(t0 + Duration::from_millis(500)).unwrap_err();
        assert_eq!(wait, Duration::from_millis(3500));
        assert_eq!(retry_after_secs(wait), 4);
        assert_eq!(retry_after_secs(Duration::from_nanos(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::MAX), u32::MAX);
    }

    #[test]
    fn huge_and_tiny_values_do_not_overflow() {
        let t0 = Instant::now();
        let far = t0 + Duration::from_secs(1 << 40);
        // A rate past one per nanosecond: everything goes through.
        let b = Bucket::new(f64::MAX, u32::MAX, t0);
        assert_eq!(accepted(&b, t0, 1000), 1000);
        assert_eq!(accepted(&b, far, 1000), 1000);
        // A rate so low the interval saturates: the burst, then nothing.
        let b = Bucket::new(f64::MIN_POSITIVE, 3, t0);
        assert_eq!(accepted(&b, t0, 10), 3);
        assert!(b.take(t0 + Duration::from_secs(1 << 30)).is_err());
        let b = Bucket::new(1e-12, u32::MAX, t0);
        assert_eq!(accepted(&b, t0, 10), 10);
        // A clock before the epoch counts as the epoch.
        let b = Bucket::new(1.0, 1, far);
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0).is_err());
    }

    #[test]
    fn the_split_across_workers_rounds_the_burst_up() {
        let t0 = Instant::now();
        let limit = RateLimit {
            requests_per_second: 20.0,
            burst: 11,
            per: Per::Route,
        };
        let b = limit.bucket(2, t0);
        assert_eq!(accepted(&b, t0, 20), 6);
        assert_eq!(b.take(t0).unwrap_err(), Duration::from_millis(100));
        let one = RateLimit {
            requests_per_second: 1.0,
            burst: 1,
            per: Per::Route,
        }
        .bucket(4, t0);
        assert_eq!(accepted(&one, t0, 5), 1);
        assert_eq!(one.take(t0).unwrap_err(), Duration::from_secs(4));
        assert_eq!(limit.bucket(0, t0).tolerance, limit.bucket(1, t0).tolerance);
    }

    #[test]
    fn callers_get_buckets_of_their_own_up_to_the_bound_then_share() {
        let t0 = Instant::now();
        let k = Keyed::new(1.0, 2, t0);
        let key = |i: usize| format!("caller-{i}").into_bytes();
        for i in 0..KEYS {
            assert!(k.take(&key(i), t0).is_ok() && k.take(&key(i), t0).is_ok());
            assert!(k.take(&key(i), t0).is_err(), "caller {i} has its own burst");
        }
        // Every slot is in use and none is full: new callers share one.
        assert!(k.take(b"late-1", t0).is_ok());
        assert!(k.take(b"late-2", t0).is_ok());
        assert!(k.take(b"late-3", t0).is_err());
        assert!(
            k.take(&[b'x'; MAX_KEY + 1], t0).is_err(),
            "a long key shares"
        );
        // Two seconds on, the first callers' buckets are full again: their
        // slots go to new callers, who get a whole burst.
        let t2 = t0 + Duration::from_secs(2);
        assert!(k.take(b"new", t2).is_ok() && k.take(b"new", t2).is_ok());
        assert!(k.take(b"new", t2).is_err());
        // A known caller keeps its slot and its state.
        assert!(k.take(&key(KEYS - 1), t2).is_ok());
        assert!(k.take(b"", t2).is_ok(), "no key is a key too");
    }
}
