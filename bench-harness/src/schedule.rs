//! Intended send times for an open-loop load.
//!
//! Each connection sends on its own fixed grid: request k is due at
//! `start + (k + phase) * interval`, whatever happened to request k-1. A
//! request that goes out late (the previous response was slow) keeps its
//! due time, and its latency is measured from it; so a server that stalls
//! for 100 ms shows 100 ms of queueing in every request due during the
//! stall, as a real client population would see it, instead of one slow
//! sample (coordinated omission). Phases are staggered across connections
//! so the combined arrivals are evenly spaced, not bursts.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    interval_ns: f64,
    phase: f64,
    k: u64,
}

impl Schedule {
    /// Connection `index` of `connections` sharing `rate` requests/s.
    pub fn new(start: Instant, rate: f64, index: usize, connections: usize) -> Schedule {
        let connections = connections.max(1) as f64;
        let per_conn = rate / connections;
        Schedule {
            start,
            interval_ns: 1e9 / per_conn,
            phase: index as f64 / connections,
            k: 0,
        }
    }

    /// The due time of the next request.
    pub fn next_due(&mut self) -> Instant {
        let at = self.peek();
        self.k += 1;
        at
    }

    pub fn peek(&self) -> Instant {
        let offset = (self.k as f64 + self.phase) * self.interval_ns;
        self.start + Duration::from_nanos(offset as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_a_fixed_grid() {
        let start = Instant::now();
        let mut s = Schedule::new(start, 1000.0, 0, 1);
        let due: Vec<_> = (0..5).map(|_| s.next_due() - start).collect();
        let ms = Duration::from_millis;
        assert_eq!(due, vec![ms(0), ms(1), ms(2), ms(3), ms(4)]);
    }

    #[test]
    fn lateness_does_not_move_the_grid() {
        // Asking late (the previous response was slow) still yields the
        // original due times: the delay is charged to those requests.
        let start = Instant::now();
        let mut s = Schedule::new(start, 100.0, 0, 1);
        let first = s.next_due();
        std::thread::sleep(Duration::from_millis(35));
        let second = s.next_due();
        assert_eq!(second - first, Duration::from_millis(10));
        assert!(second < Instant::now(), "due in the past: sent at once");
    }

    #[test]
    fn connections_share_the_rate_evenly() {
        let start = Instant::now();
        let conns = 4;
        let mut all: Vec<Duration> = Vec::new();
        for i in 0..conns {
            let mut s = Schedule::new(start, 4000.0, i, conns);
            // One second of each connection's grid.
            while s.peek() < start + Duration::from_secs(1) {
                all.push(s.next_due() - start);
            }
        }
        assert_eq!(all.len(), 4000, "the combined rate is the target rate");
        all.sort();
        let gaps: Vec<_> = all.windows(2).map(|w| w[1] - w[0]).collect();
        let (lo, hi) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
        assert!(
            *lo >= Duration::from_micros(249) && *hi <= Duration::from_micros(251),
            "{lo:?}..{hi:?}"
        );
    }
}
