//! One re-armable timer per connection.
//!
//! monoio's `Sleep` (ported from tokio) is 512+ bytes and 128-byte aligned.
//! Wrapping each read in `monoio::time::timeout` embeds one in the
//! connection's future for every timed await point, which made a connection
//! task 3.7 KiB. Instead each connection owns one boxed `Sleep` and re-arms
//! it (`reset`, a timer-wheel move) for each timed operation; a timed await
//! then adds a pointer, not a timer, to the future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use monoio::time::{Instant, Sleep};

/// The operation did not finish before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

pub struct Timer {
    sleep: Pin<Box<Sleep>>,
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer {
    /// Must be called inside a monoio runtime with the timer enabled.
    pub fn new() -> Self {
        // The first deadline is set by the first `until`; a day is "unset".
        Timer {
            sleep: Box::pin(monoio::time::sleep(Duration::from_secs(86_400))),
        }
    }

    /// Run `fut` until `deadline`. The operation is polled before the
    /// timer, so a result that is ready wins over an elapsed deadline.
    pub fn until<F: Future>(&mut self, deadline: Instant, fut: F) -> Within<'_, F> {
        self.sleep.as_mut().reset(deadline);
        Within {
            fut,
            sleep: self.sleep.as_mut(),
        }
    }

    /// The timer itself, armed to fire `limit` from now.
    pub fn after(&mut self, limit: Duration) -> Pin<&mut Sleep> {
        self.sleep.as_mut().reset(Instant::now() + limit);
        self.sleep.as_mut()
    }

    /// The sleep as last armed, not re-armed: for a deadline that several
    /// waits in a row share.
    pub fn armed(&mut self) -> Pin<&mut Sleep> {
        self.sleep.as_mut()
    }

    /// Run `fut` for at most `limit` from now.
    pub fn within<F: Future>(&mut self, limit: Duration, fut: F) -> Within<'_, F> {
        self.until(Instant::now() + limit, fut)
    }
}

pin_project_lite::pin_project! {
    /// A future bounded by its connection's timer. A plain struct rather
    /// than an `async fn`: an async wrapper would hold the operation twice
    /// (the argument and its pinned copy).
    pub struct Within<'a, F> {
        #[pin]
        fut: F,
        sleep: Pin<&'a mut Sleep>,
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run;

    #[test]
    fn a_slow_operation_times_out_and_the_timer_rearms() {
        run(async {
            let mut t = Timer::new();
            let slow = monoio::time::sleep(Duration::from_secs(5));
            assert_eq!(
                t.within(Duration::from_millis(20), slow).await,
                Err(Elapsed)
            );
            // Re-armed for a later deadline: a quick operation finishes.
            let quick = async { 7 };
            assert_eq!(t.within(Duration::from_millis(20), quick).await, Ok(7));
            let soon = monoio::time::sleep(Duration::from_millis(5));
            assert_eq!(t.within(Duration::from_secs(5), soon).await, Ok(()));
        });
    }

    #[test]
    fn a_ready_result_beats_a_past_deadline() {
        run(async {
            let mut t = Timer::new();
            let past = Instant::now();
            assert_eq!(t.until(past, async { 1 }).await, Ok(1));
        });
    }

    #[test]
    fn a_timed_await_is_small() {
        // The point of this module: a timed read adds little to a task.
        run(async {
            let mut t = Timer::new();
            let fut = t.within(Duration::from_secs(1), async {});
            let size = std::mem::size_of_val(&fut);
            assert!(size <= 16, "{size} bytes");
        });
    }
}
