//! Which endpoints a pick may choose from: the healthy ones, the proxy's
//! own zone first, all of them in panic.
//!
//! Rebuilt when the endpoint set or an endpoint's health changes (rare),
//! so a pick only rolls a number and hands the balancer a slice:
//!
//! - **Health.** An endpoint ejected by outlier detection (this core's
//!   view) or failing active health checks (every core's) is left out.
//! - **Panic.** When fewer than `panic_threshold` of the endpoints are
//!   healthy, every endpoint is a candidate again: the few healthy ones
//!   would otherwise take all the load and fail too (Envoy's panic mode).
//! - **Locality.** When the proxy has a `zone` and some endpoints share
//!   it, those get the traffic while enough of them are healthy; the rest
//!   spills to the other zones in proportion, as Envoy's priority levels
//!   with their 1.4 overprovisioning factor do: with 80% of the local
//!   endpoints healthy, all traffic stays (0.8 × 1.4 ≥ 1); with 50%, 70%
//!   stays and 30% goes elsewhere; with none, all of it does.
//!
//! Consistent-hash policies are not locality-aware (a key must map to one
//! endpoint wherever the pick happens): they get every healthy endpoint.

use std::rc::Rc;

use crate::cluster::Endpoint;

/// Envoy's overprovisioning factor for priority spill-over.
const OVERPROVISION: f64 = 1.4;

/// The candidate sets of one cluster on one core.
#[derive(Default)]
pub struct Routing {
    /// Healthy endpoints (all of them in panic), local and remote alike.
    healthy: Vec<Rc<Endpoint>>,
    /// Healthy endpoints in the proxy's zone, and the others.
    local: Vec<Rc<Endpoint>>,
    remote: Vec<Rc<Endpoint>>,
    /// The share of picks that go to `local` (0 without locality).
    local_share: f64,
    /// Fewer than the threshold are healthy: `healthy` holds every one.
    pub panic: bool,
}

impl Routing {
    /// The sets for `all`, with `panic_threshold` (0 to 1).
    pub fn build(all: &[Rc<Endpoint>], panic_threshold: f64) -> Routing {
        let healthy_count = all.iter().filter(|e| e.is_healthy()).count();
        let panic = !all.is_empty() && (healthy_count as f64) < panic_threshold * all.len() as f64;
        let usable = |e: &&Rc<Endpoint>| panic || e.is_healthy();
        let healthy: Vec<Rc<Endpoint>> = all.iter().filter(usable).cloned().collect();
        let local: Vec<Rc<Endpoint>> = healthy.iter().filter(|e| e.is_local()).cloned().collect();
        let remote: Vec<Rc<Endpoint>> = healthy.iter().filter(|e| !e.is_local()).cloned().collect();
        let local_total = all.iter().filter(|e| e.is_local()).count();
        let local_share = if local_total == 0 {
            0.0
        } else {
            (local.len() as f64 / local_total as f64 * OVERPROVISION).min(1.0)
        };
        Routing {
            healthy,
            local,
            remote,
            local_share,
            panic,
        }
    }

    /// The candidates for one pick; `roll` is uniform in [0, 1).
    pub fn candidates(&self, locality_aware: bool, roll: impl FnOnce() -> f64) -> &[Rc<Endpoint>] {
        if !locality_aware || self.local_share == 0.0 {
            return &self.healthy;
        }
        let stay = self.remote.is_empty() || self.local_share >= 1.0 || roll() < self.local_share;
        if stay && !self.local.is_empty() {
            return &self.local;
        }
        &self.remote
    }

    /// Every candidate regardless of zone (what hash policies index).
    pub fn healthy(&self) -> &[Rc<Endpoint>] {
        &self.healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::zoned;

    fn addrs(set: &[Rc<Endpoint>]) -> Vec<u8> {
        set.iter()
            .map(|e| match e.addr.ip() {
                std::net::IpAddr::V4(v4) => v4.octets()[3],
                std::net::IpAddr::V6(_) => 0,
            })
            .collect()
    }

    #[test]
    fn unhealthy_endpoints_are_left_out_until_panic() {
        let eps = zoned(&[false; 4]);
        eps[0].set_ejected(true);
        let r = Routing::build(&eps, 0.5);
        assert!(!r.panic);
        assert_eq!(addrs(r.candidates(true, || 0.0)), [2, 3, 4]);
        eps[1].set_ejected(true);
        let r = Routing::build(&eps, 0.5);
        assert!(!r.panic, "half healthy is not below half");
        assert_eq!(addrs(r.candidates(true, || 0.0)), [3, 4]);
        eps[2].set_unhealthy(true);
        let r = Routing::build(&eps, 0.5);
        assert!(r.panic);
        assert_eq!(addrs(r.candidates(true, || 0.0)), [1, 2, 3, 4], "all again");
        let r = Routing::build(&eps, 0.0);
        assert!(!r.panic, "a zero threshold never panics");
        assert_eq!(addrs(r.candidates(true, || 0.0)), [4]);
    }

    #[test]
    fn local_endpoints_get_the_traffic_while_enough_are_healthy() {
        // Endpoints 1-4 are in the proxy's zone, 5-6 are not.
        let eps = zoned(&[true, true, true, true, false, false]);
        let r = Routing::build(&eps, 0.0);
        assert_eq!(addrs(r.candidates(true, || 0.99)), [1, 2, 3, 4]);
        assert_eq!(
            addrs(r.candidates(false, || 0.0)),
            [1, 2, 3, 4, 5, 6],
            "not locality-aware: every healthy endpoint"
        );
        // Half the local ones down: 0.5 × 1.4 = 70% stays local.
        eps[0].set_ejected(true);
        eps[1].set_ejected(true);
        let r = Routing::build(&eps, 0.0);
        assert_eq!(addrs(r.candidates(true, || 0.69)), [3, 4]);
        assert_eq!(addrs(r.candidates(true, || 0.71)), [5, 6]);
        // All local ones down: everything fails over.
        eps[2].set_ejected(true);
        eps[3].set_ejected(true);
        let r = Routing::build(&eps, 0.0);
        assert_eq!(addrs(r.candidates(true, || 0.0)), [5, 6]);
        // And no remote ones left: stay local rather than have none.
        let only_local = zoned(&[true, true]);
        only_local[0].set_ejected(true);
        let r = Routing::build(&only_local, 0.0);
        assert_eq!(addrs(r.candidates(true, || 0.99)), [2]);
    }
}
