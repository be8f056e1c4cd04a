//! Waiting until an instant with microsecond precision.
//!
//! monoio's timer wheel ticks in milliseconds, so `sleep_until` wakes up to
//! 1 ms late. An open-loop load measures latency from each request's
//! intended send time; a generator that sends 0.5 ms late on average would
//! add that to every sample and blur the 50-100 us a proxy adds. Each paced
//! connection therefore owns a timerfd, armed for the exact instant and
//! read through io_uring (the read completes when the timer fires; no
//! thread blocks). Under the epoll driver, where monoio would do that read
//! as a blocking syscall, it falls back to the wheel.

use std::io;
use std::time::Instant;

use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};

pub enum Pacer {
    Timerfd {
        /// Armed with timerfd_settime; a dup of `file`'s descriptor, so
        /// both name the same timer.
        timer: rustix::fd::OwnedFd,
        file: monoio::fs::File,
        buf: Option<Vec<u8>>,
    },
    Wheel,
}

impl Pacer {
    pub fn new(uring: bool) -> io::Result<Pacer> {
        if !uring {
            return Ok(Pacer::Wheel);
        }
        // Blocking fd on purpose: io_uring polls it internally; with
        // O_NONBLOCK it would hand back EAGAIN instead of waiting.
        let fd = rustix::time::timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::CLOEXEC)?;
        let timer = fd.try_clone()?;
        let file = monoio::fs::File::from_std(std::fs::File::from(fd))?;
        Ok(Pacer::Timerfd {
            timer,
            file,
            buf: Some(Vec::with_capacity(8)),
        })
    }

    /// Return at `when` (at once if it has passed).
    pub async fn until(&mut self, when: Instant) -> io::Result<()> {
        let now = Instant::now();
        if when <= now {
            return Ok(());
        }
        match self {
            Pacer::Wheel => {
                monoio::time::sleep_until(when.into()).await;
                Ok(())
            }
            Pacer::Timerfd { timer, file, buf } => {
                let wait = when - now;
                let spec = Itimerspec {
                    it_interval: Timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    },
                    it_value: Timespec {
                        tv_sec: wait.as_secs() as _,
                        tv_nsec: wait.subsec_nanos().max(1) as _,
                    },
                };
                rustix::time::timerfd_settime(&*timer, TimerfdTimerFlags::empty(), &spec)?;
                let mut b = buf.take().unwrap_or_default();
                b.clear();
                let (res, b) = file.read_at(b, 0).await;
                *buf = Some(b);
                res.map(|_| ())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Median lateness of 25 waits of 300 us each.
    async fn median_lateness(p: &mut Pacer) -> Duration {
        let mut late = Vec::new();
        for _ in 0..25 {
            let when = Instant::now() + Duration::from_micros(300);
            p.until(when).await.unwrap();
            let now = Instant::now();
            assert!(now >= when, "woke early");
            late.push(now - when);
        }
        late.sort();
        late[12]
    }

    #[test]
    fn timerfd_wakes_closer_to_time_than_the_wheel() {
        crate::runtime::block_on(crate::runtime::IoMode::Auto, |uring| async move {
            if !uring {
                return; // epoll: the pacer is the wheel; nothing to compare
            }
            let fd = median_lateness(&mut Pacer::new(true).unwrap()).await;
            let wheel = median_lateness(&mut Pacer::Wheel).await;
            // The wheel rounds up to its next 1 ms tick (about 0.5 ms late
            // on average); the timerfd is late by a wake-up only.
            assert!(fd * 2 < wheel, "timerfd {fd:?} vs wheel {wheel:?}");
        })
        .unwrap();
    }
}
