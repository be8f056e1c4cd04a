//! Circuit breakers: Envoy's thresholds on what a cluster may have in
//! flight, so a slow upstream cannot tie up every request, connection and
//! retry of the proxy. Past a threshold a request fails at once with 503
//! `overflow` (gRPC UNAVAILABLE) instead of queueing behind the others; a
//! retry past `max_retries` is not sent (the request gets its try's
//! failure).
//!
//! Shared-nothing: each worker holds its share of every threshold and
//! counts with plain `Cell`s. The shares add up to the configured total
//! exactly (`share`): the first `max % workers` workers get one more than
//! the rest. A worker's share is at least 1, so a total below the number
//! of workers allows up to one per worker. The cost is the kernel's
//! uneven spread of connections over workers: one worker may refuse while
//! another has room.

use std::cell::Cell;

use crate::config::model;

/// Worker `core`'s share of `total` over `workers`.
pub fn share(total: u64, workers: usize, core: usize) -> u64 {
    let w = workers.max(1) as u64;
    let extra = u64::from((core as u64) < total % w);
    (total / w + extra).max(1)
}

/// One threshold on one worker.
#[derive(Debug)]
pub struct Gate {
    active: Cell<u32>,
    max: u32,
}

impl Gate {
    fn new(total: u32, workers: usize, core: usize) -> Gate {
        Gate {
            active: Cell::new(0),
            max: share(u64::from(total), workers, core) as u32,
        }
    }

    /// Room for one more, held until the guard drops; `None` at the limit.
    pub fn enter(&self) -> Option<Held<'_>> {
        if self.active.get() >= self.max {
            return None;
        }
        self.active.set(self.active.get() + 1);
        Some(Held(self))
    }

    pub fn active(&self) -> u32 {
        self.active.get()
    }
}

/// One request, connect or retry counted against its gate.
#[derive(Debug)]
pub struct Held<'a>(&'a Gate);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get().saturating_sub(1));
    }
}

/// A cluster's thresholds on one worker (connections: `upstream::Limit`).
#[derive(Debug)]
pub struct Breakers {
    /// Requests in flight to the cluster, from routing to the response's
    /// end.
    pub requests: Gate,
    /// Tries waiting for a new connection.
    pub pending: Gate,
    /// Retries in flight.
    pub retries: Gate,
}

impl Breakers {
    pub fn new(c: &model::Breakers, workers: usize, core: usize) -> Breakers {
        Breakers {
            requests: Gate::new(c.max_requests, workers, core),
            pending: Gate::new(c.max_pending_requests, workers, core),
            retries: Gate::new(c.max_retries, workers, core),
        }
    }
}

/// Which threshold a request overflowed (the `limit` label of
/// `ringmesh_upstream_overflow_total`).
/// The discriminant indexes `ClusterStats::overflow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaker {
    Connections = 0,
    PendingRequests = 1,
    Requests = 2,
    Retries = 3,
}

impl Breaker {
    pub const ALL: [Breaker; 4] = [
        Breaker::Connections,
        Breaker::PendingRequests,
        Breaker::Requests,
        Breaker::Retries,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Breaker::Connections => "connections",
            Breaker::PendingRequests => "pending_requests",
            Breaker::Requests => "requests",
            Breaker::Retries => "retries",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_total() {
        for total in [1u64, 2, 3, 7, 10, 1024] {
            for workers in [1usize, 2, 3, 8] {
                let sum: u64 = (0..workers).map(|c| share(total, workers, c)).sum();
                assert_eq!(sum, total.max(workers as u64), "{total} over {workers}");
            }
        }
        assert_eq!([share(7, 2, 0), share(7, 2, 1)], [4, 3]);
    }

    #[test]
    fn a_gate_holds_its_share_until_released() {
        let g = Gate::new(3, 2, 0); // 2 for core 0
        let a = g.enter().expect("room");
        let _b = g.enter().expect("room");
        assert!(g.enter().is_none());
        drop(a);
        assert!(g.enter().is_some());
        assert_eq!(g.active(), 1, "the probe above was dropped at once");
    }
}
