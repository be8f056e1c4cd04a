//! Least request: power of two choices on the requests this core has in
//! flight to each endpoint. Two random candidates and the less loaded one
//! wins: nearly the balance of a full scan at O(1), without herding every
//! core onto the same "least loaded" endpoint (Mitzenmacher; Envoy's and
//! Linkerd's default shape).
//!
//! With weights, candidates are drawn in proportion to weight and compared
//! on in-flight requests per unit of weight (Envoy's least request divides
//! by weight the same way).

use std::rc::Rc;

use super::{is_avoided, max_weight, two_candidates, Balancer, PickCtx};
use crate::cluster::Endpoint;

#[derive(Default)]
pub struct LeastRequest {
    max_weight: u32,
}

impl Balancer for LeastRequest {
    fn pick(&mut self, endpoints: &[Rc<Endpoint>], ctx: &mut PickCtx<'_>) -> Option<usize> {
        match endpoints.len() {
            0 => None,
            1 => Some(0),
            _ => {
                let (a, b) = two_candidates(endpoints, ctx.rng, self.max_weight);
                // Load per unit of weight, compared by cross-multiplying:
                // (in_flight_a + 1) / w_a against (in_flight_b + 1) / w_b.
                let load = |i: usize, other: usize| {
                    let e = &endpoints[i];
                    let per = u64::from(e.in_flight() + 1) * u64::from(endpoints[other].weight());
                    (is_avoided(e, ctx.avoid), per)
                };
                Some(if load(b, a) < load(a, b) { b } else { a })
            }
        }
    }

    fn on_endpoints(&mut self, all: &[Rc<Endpoint>]) {
        self.max_weight = max_weight(all);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{endpoints, pick_with};
    use super::*;
    use crate::cluster::InFlight;

    #[test]
    fn avoids_the_busy_endpoint() {
        let eps = endpoints(2);
        let mut rng = fastrand::Rng::with_seed(7);
        let _held: Vec<InFlight> = (0..5).map(|_| InFlight::new(eps[0].clone())).collect();
        for _ in 0..50 {
            assert_eq!(
                pick_with(&mut LeastRequest::default(), &eps, &mut rng, None),
                1
            );
        }
    }

    #[test]
    fn candidates_are_distinct() {
        // With two endpoints the two candidates are always both, so the
        // idle one always wins.
        let eps = endpoints(2);
        let _busy = InFlight::new(eps[1].clone());
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..1000 {
            assert_eq!(
                pick_with(&mut LeastRequest::default(), &eps, &mut rng, None),
                0
            );
        }
    }

    #[test]
    fn weights_draw_candidates_and_scale_load() {
        let eps = super::super::testing::weighted(&[3, 1]);
        let mut lr = LeastRequest::default();
        lr.on_endpoints(&eps);
        let mut rng = fastrand::Rng::with_seed(5);
        // Two in flight on the weight-3 endpoint are 1 per unit of weight
        // each with the next one: (2+1)/3 = 1 against (0+1)/1 = 1, a tie
        // the first candidate wins; three in flight tip it.
        let _held: Vec<InFlight> = (0..3).map(|_| InFlight::new(eps[0].clone())).collect();
        for _ in 0..50 {
            assert_eq!(pick_with(&mut lr, &eps, &mut rng, None), 1);
        }
    }

    #[test]
    fn a_retry_prefers_another_endpoint_even_if_busier() {
        let eps = endpoints(2);
        let _busy = InFlight::new(eps[1].clone());
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..100 {
            assert_eq!(
                pick_with(&mut LeastRequest::default(), &eps, &mut rng, Some(&eps[0])),
                1
            );
        }
    }
}
