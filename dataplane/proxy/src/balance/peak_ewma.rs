//! Peak-EWMA: power of two choices on each endpoint's latency estimate,
//! weighted by the requests in flight to it (Linkerd's default balancer,
//! after Finagle's and tower's).
//!
//! An endpoint's estimate starts at `default_rtt` until its first
//! measurement replaces it (tower keeps blending from the default, so an
//! endpoint faster than it takes tens of seconds to look fast). Then it is
//! a moving average of its tries' latencies
//! that jumps to any sample above it (the peak) and otherwise moves
//! towards samples by how long it went without one: a sample's weight
//! halves every `half_life`. It also decays towards zero while unsampled,
//! so an endpoint that was slow is tried again after a while instead of
//! being shunned forever. A candidate's cost is
//! `estimate × (in_flight + 1) / weight`; the cheaper of two random
//! candidates wins.
//!
//! A failed try (no connection, a reset, a timeout, 502, 503, 504) counts
//! as at least `FAILURE_PENALTY`: a fast refusal must not look like a fast
//! endpoint.
//!
//! Cores share their estimates (`share`): every few milliseconds each core
//! sends the estimates its own tries changed, and a core takes a peer's
//! estimate as a sample of its own. A core that has sent an endpoint
//! little traffic thus still avoids it when another core found it slow.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{is_avoided, max_weight, two_candidates, Balancer, Completion, PickCtx, Shared};
use crate::cluster::Endpoint;
use crate::config::model;

/// What a failed try counts as, at least.
pub const FAILURE_PENALTY: Duration = Duration::from_secs(1);

pub struct PeakEwma {
    /// The decay's time constant: `half_life / ln 2`, in nanoseconds.
    tau_ns: f64,
    default_rtt_ns: f64,
    max_weight: u32,
    /// By endpoint position.
    estimates: Vec<Estimate>,
    /// Endpoint positions by address, for peers' estimates.
    by_addr: HashMap<SocketAddr, usize>,
}

#[derive(Debug, Clone, Copy)]
struct Estimate {
    addr: SocketAddr,
    rtt_ns: f64,
    /// When `rtt_ns` was last set.
    at: Instant,
    /// Changed by this core's own tries since it last shared.
    fresh: bool,
    /// Set from a measurement (this core's or a peer's), not the default.
    measured: bool,
}

impl Estimate {
    /// The estimate at `now`, decayed towards zero since it was set.
    fn at(&self, now: Instant, tau_ns: f64) -> f64 {
        let idle = now.saturating_duration_since(self.at).as_nanos() as f64;
        self.rtt_ns * (-idle / tau_ns).exp()
    }

    /// Take a sample: the first replaces the default, then the peak, or
    /// the average weighted by how long the estimate went without one.
    fn sample(&mut self, rtt_ns: f64, now: Instant, tau_ns: f64) {
        if !self.measured || rtt_ns > self.rtt_ns {
            self.measured = true;
            self.rtt_ns = rtt_ns;
        } else {
            let idle = now.saturating_duration_since(self.at).as_nanos() as f64;
            let kept = (-idle / tau_ns).exp();
            self.rtt_ns = self.rtt_ns * kept + rtt_ns * (1.0 - kept);
        }
        self.at = now;
    }
}

impl PeakEwma {
    pub fn new(settings: &model::PeakEwma) -> Self {
        PeakEwma {
            tau_ns: settings.half_life.as_nanos() as f64 / std::f64::consts::LN_2,
            default_rtt_ns: settings.default_rtt.as_nanos() as f64,
            max_weight: 1,
            estimates: Vec::new(),
            by_addr: HashMap::new(),
        }
    }

    fn cost(&self, e: &Endpoint, now: Instant) -> f64 {
        let rtt = e
            .position()
            .and_then(|p| self.estimates.get(p))
            .map_or(self.default_rtt_ns, |est| est.at(now, self.tau_ns));
        rtt * f64::from(e.in_flight() + 1) / f64::from(e.weight())
    }
}

impl Balancer for PeakEwma {
    fn pick(&mut self, set: &[Rc<Endpoint>], ctx: &mut PickCtx<'_>) -> Option<usize> {
        match set.len() {
            0 => None,
            1 => Some(0),
            _ => {
                let (a, b) = two_candidates(set, ctx.rng, self.max_weight);
                let now = Instant::now();
                let cost = |i: usize| (is_avoided(&set[i], ctx.avoid), self.cost(&set[i], now));
                let (ca, cb) = (cost(a), cost(b));
                Some(if cb < ca { b } else { a })
            }
        }
    }

    fn on_endpoints(&mut self, all: &[Rc<Endpoint>]) {
        let now = Instant::now();
        let old: HashMap<SocketAddr, Estimate> =
            self.estimates.drain(..).map(|e| (e.addr, e)).collect();
        self.estimates = all
            .iter()
            .map(|ep| {
                old.get(&ep.addr).copied().unwrap_or(Estimate {
                    addr: ep.addr,
                    rtt_ns: self.default_rtt_ns,
                    at: now,
                    fresh: false,
                    measured: false,
                })
            })
            .collect();
        self.by_addr = all.iter().enumerate().map(|(i, e)| (e.addr, i)).collect();
        self.max_weight = max_weight(all);
    }

    fn on_complete(&mut self, endpoint: &Endpoint, done: &Completion) {
        let Some(est) = endpoint.position().and_then(|p| self.estimates.get_mut(p)) else {
            return;
        };
        let latency = if done.outcome.is_gateway_error() {
            done.latency.max(FAILURE_PENALTY)
        } else {
            done.latency
        };
        est.sample(latency.as_nanos() as f64, Instant::now(), self.tau_ns);
        est.fresh = true;
    }

    fn share(&mut self, out: &mut Vec<Shared>) {
        let now = Instant::now();
        for est in self.estimates.iter_mut().filter(|e| e.fresh) {
            est.fresh = false;
            out.push(Shared {
                addr: est.addr,
                rtt_ns: est.at(now, self.tau_ns) as u64,
            });
        }
    }

    fn absorb(&mut self, from_peer: &[Shared]) {
        let now = Instant::now();
        for s in from_peer {
            if let Some(est) = self
                .by_addr
                .get(&s.addr)
                .and_then(|&i| self.estimates.get_mut(i))
            {
                est.sample(s.rtt_ns as f64, now, self.tau_ns);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{endpoints, pick_with};
    use super::super::Outcome;
    use super::*;
    use crate::cluster::InFlight;

    fn balancer(eps: &[Rc<Endpoint>]) -> PeakEwma {
        let mut b = PeakEwma::new(&model::PeakEwma {
            half_life: Duration::from_secs(5),
            default_rtt: Duration::from_millis(30),
        });
        b.on_endpoints(eps);
        b
    }

    fn done(ms: u64) -> Completion {
        Completion {
            outcome: Outcome::Response(200),
            latency: Duration::from_millis(ms),
        }
    }

    fn share_of(b: &mut PeakEwma, eps: &[Rc<Endpoint>], slow: usize, picks: usize) -> usize {
        let mut rng = fastrand::Rng::with_seed(11);
        (0..picks)
            .filter(|_| pick_with(b, eps, &mut rng, None) == slow)
            .count()
    }

    #[test]
    fn a_slow_endpoint_loses_its_traffic() {
        let eps = endpoints(3);
        let mut b = balancer(&eps);
        for _ in 0..5 {
            b.on_complete(&eps[0], &done(50));
            b.on_complete(&eps[1], &done(1));
            b.on_complete(&eps[2], &done(1));
        }
        // P2C: the slow one wins only when drawn twice, which distinct
        // candidates never are.
        assert_eq!(share_of(&mut b, &eps, 0, 1000), 0);
    }

    #[test]
    fn the_peak_is_taken_at_once_and_forgotten_slowly() {
        let eps = endpoints(1);
        let mut b = balancer(&eps);
        b.on_complete(&eps[0], &done(1));
        b.on_complete(&eps[0], &done(100));
        let now = Instant::now();
        let est = b.estimates[0].at(now, b.tau_ns);
        assert!(est > 99e6, "peak taken: {est}");
        // A fast sample right after barely moves it.
        b.on_complete(&eps[0], &done(1));
        let est = b.estimates[0].at(Instant::now(), b.tau_ns);
        assert!(est > 90e6, "{est}");
    }

    #[test]
    fn the_first_measurement_replaces_the_default() {
        let eps = endpoints(1);
        let mut b = balancer(&eps);
        b.on_complete(&eps[0], &done(1));
        let est = b.estimates[0].at(Instant::now(), b.tau_ns);
        assert!(est < 1.1e6, "{est}");
    }

    #[test]
    fn in_flight_requests_raise_the_cost() {
        let eps = endpoints(2);
        let mut b = balancer(&eps);
        b.on_complete(&eps[0], &done(10));
        b.on_complete(&eps[1], &done(15));
        let _held: Vec<InFlight> = (0..3).map(|_| InFlight::new(eps[0].clone())).collect();
        // 10 ms × 4 > 15 ms × 1.
        assert_eq!(share_of(&mut b, &eps, 0, 200), 0);
    }

    #[test]
    fn a_failure_counts_as_a_slow_try() {
        let eps = endpoints(2);
        let mut b = balancer(&eps);
        b.on_complete(
            &eps[0],
            &Completion {
                outcome: Outcome::ConnectFailed,
                latency: Duration::from_micros(50),
            },
        );
        b.on_complete(&eps[1], &done(20));
        assert_eq!(share_of(&mut b, &eps, 0, 200), 0);
    }

    #[test]
    fn a_core_avoids_an_endpoint_another_core_found_slow() {
        let eps_a = endpoints(3);
        let eps_b = endpoints(3);
        let mut core_a = balancer(&eps_a);
        let mut core_b = balancer(&eps_b);
        for _ in 0..3 {
            core_a.on_complete(&eps_a[2], &done(50));
            core_a.on_complete(&eps_a[0], &done(1));
            core_a.on_complete(&eps_a[1], &done(1));
        }
        // Core b has measured nothing: every endpoint looks alike.
        assert!(share_of(&mut core_b, &eps_b, 2, 300) > 50);
        let mut wire = Vec::new();
        core_a.share(&mut wire);
        assert_eq!(wire.len(), 3);
        core_b.absorb(&wire);
        assert_eq!(share_of(&mut core_b, &eps_b, 2, 300), 0);
        // Nothing new since: nothing to share.
        wire.clear();
        core_a.share(&mut wire);
        assert!(wire.is_empty());
        // What b learned from a is not sent back.
        core_b.share(&mut wire);
        assert!(wire.is_empty());
    }

    #[test]
    fn estimates_follow_endpoints_that_stay() {
        let eps = endpoints(2);
        let mut b = balancer(&eps);
        b.on_complete(&eps[1], &done(80));
        // 10.0.0.2 moves to position 0.
        eps[1].set_place(0, 1, false);
        eps[0].set_place(1, 1, false);
        let moved = [eps[1].clone(), eps[0].clone()];
        b.on_endpoints(&moved);
        assert!(b.estimates[0].rtt_ns > 79e6);
        assert_eq!(b.estimates[0].addr, eps[1].addr);
    }
}
