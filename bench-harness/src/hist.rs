//! Latency histograms: one per load thread, merged at the end.
//!
//! hdrhistogram in nanoseconds with 3 significant digits: 0.1% error at
//! any magnitude, from 1 us to an hour, in a fixed ~200 KiB per histogram.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded exactly; longer ones are clamped to it.
const MAX_NS: u64 = 3_600_000_000_000;

#[derive(Clone)]
pub struct Latency {
    h: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Latency {
        // 3 significant figures over [1 ns, 1 h] is a valid hdrhistogram
        // configuration; it can only fail for invalid bounds.
        #[allow(clippy::expect_used)]
        let h = Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid histogram bounds");
        Latency { h }
    }

    pub fn record(&mut self, d: Duration) {
        let ns = (d.as_nanos() as u64).clamp(1, MAX_NS);
        self.h.saturating_record(ns);
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so add cannot fail.
        let _ = self.h.add(&other.h);
    }

    pub fn count(&self) -> u64 {
        self.h.len()
    }

    pub fn summary(&self) -> Percentiles {
        let us = |ns: u64| ns as f64 / 1000.0;
        let q = |p: f64| us(self.h.value_at_quantile(p));
        if self.h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: self.h.len(),
            min_us: us(self.h.min()),
            mean_us: self.h.mean() / 1000.0,
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            p9999_us: q(0.9999),
            max_us: us(self.h.max()),
        }
    }
}

/// The percentiles every report shows, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
}

/// Names of the percentiles reports show, in order (max last).
pub const LABELS: [&str; 6] = ["p50", "p90", "p99", "p99.9", "p99.99", "max"];

#[cfg(test)]
mod tests {
    use super::*;

    fn within(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.002 + 0.001
    }

    #[test]
    fn percentiles_of_known_data() {
        let mut h = Latency::new();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.summary();
        assert_eq!(s.count, 10_000);
        assert!(within(s.p50_us, 5000.0), "{s:?}");
        assert!(within(s.p99_us, 9900.0), "{s:?}");
        assert!(within(s.p999_us, 9990.0), "{s:?}");
        assert!(within(s.max_us, 10_000.0), "{s:?}");
        assert!(within(s.min_us, 1.0), "{s:?}");
    }

    #[test]
    fn merging_equals_recording_into_one() {
        let (mut a, mut b, mut all) = (Latency::new(), Latency::new(), Latency::new());
        for i in 0..5000u64 {
            let d = Duration::from_micros(50 + i % 700);
            a.record(d);
            all.record(d);
            let d = Duration::from_millis(2 + i % 40);
            b.record(d);
            all.record(d);
        }
        a.merge(&b);
        assert_eq!(a.summary(), all.summary());
        assert_eq!(a.count(), 10_000);
        // The slow half dominates the top: p90 comes from `b`'s range.
        assert!(a.summary().p90_us > 2000.0);
        assert!(a.summary().p50_us < 2100.0);
    }

    #[test]
    fn empty_and_out_of_range() {
        assert_eq!(Latency::new().summary(), Percentiles::default());
        let mut h = Latency::new();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(10_000));
        assert_eq!(h.count(), 2);
        assert!(h.summary().max_us <= MAX_NS as f64 / 1000.0 * 1.001);
    }
}
