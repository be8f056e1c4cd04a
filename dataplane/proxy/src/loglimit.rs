//! Rate-limited failure logs, per core.
//!
//! Every log line goes through the process-wide stderr lock. When an
//! upstream is down every request fails, and a line per failure would make
//! all cores queue on that lock. Each core logs at most `PER_SECOND`
//! failures a second and counts the rest; the count is logged once the
//! window has passed (by the next failure or the core's sweep).

use std::cell::Cell;
use std::time::{Duration, Instant};

use tracing::warn;

/// Failure lines a core logs per second.
const PER_SECOND: u32 = 10;

pub struct LogLimit {
    window: Cell<Instant>,
    used: Cell<u32>,
    suppressed: Cell<u64>,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit {
            window: Cell::new(Instant::now()),
            used: Cell::new(0),
            suppressed: Cell::new(0),
        }
    }
}

impl LogLimit {
    /// Whether one more failure line may be logged now.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        if now.duration_since(self.window.get()) >= Duration::from_secs(1) {
            self.flush();
            self.window.set(now);
            self.used.set(0);
        }
        if self.used.get() < PER_SECOND {
            self.used.set(self.used.get() + 1);
            true
        } else {
            self.suppressed.set(self.suppressed.get() + 1);
            false
        }
    }

    /// Log how many lines were held back, if any.
    pub fn flush(&self) {
        let n = self.suppressed.replace(0);
        if n > 0 {
            warn!(
                suppressed = n,
                "more requests failed; their log lines were rate-limited"
            );
        }
    }

    #[cfg(test)]
    fn suppressed(&self) -> u64 {
        self.suppressed.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_per_second_lines_then_counted() {
        let limit = LogLimit::default();
        let t0 = Instant::now();
        let allowed = (0..100).filter(|_| limit.allow_at(t0)).count();
        assert_eq!(allowed, PER_SECOND as usize);
        assert_eq!(limit.suppressed(), 90);
        assert!(
            limit.allow_at(t0 + Duration::from_millis(1500)),
            "a new window"
        );
        assert_eq!(limit.suppressed(), 0, "the count was logged and reset");
    }
}
