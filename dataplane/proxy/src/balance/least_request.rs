//! Least request: power of two choices on the requests this core has in
//! flight to each endpoint. Two random candidates and the less loaded one
//! wins: nearly the balance of a full scan at O(1), without herding every
//! core onto the same "least loaded" endpoint (Mitzenmacher; Envoy's and
//! Linkerd's default shape).

use std::rc::Rc;

use super::{Balancer, PickCtx};
use crate::cluster::Endpoint;

pub struct LeastRequest;

impl Balancer for LeastRequest {
    fn pick(&mut self, endpoints: &[Rc<Endpoint>], ctx: &mut PickCtx<'_>) -> Option<usize> {
        let n = endpoints.len();
        match n {
            0 => None,
            1 => Some(0),
            _ => {
                let a = ctx.rng.usize(..n);
                let b = (a + 1 + ctx.rng.usize(..n - 1)) % n;
                let load = |i: usize| {
                    let avoided = ctx.avoid.is_some_and(|x| std::ptr::eq(&*endpoints[i], x));
                    (avoided, endpoints[i].in_flight())
                };
                Some(if load(b) < load(a) { b } else { a })
            }
        }
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
            assert_eq!(pick_with(&mut LeastRequest, &eps, &mut rng, None), 1);
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
            assert_eq!(pick_with(&mut LeastRequest, &eps, &mut rng, None), 0);
        }
    }

    #[test]
    fn a_retry_prefers_another_endpoint_even_if_busier() {
        let eps = endpoints(2);
        let _busy = InFlight::new(eps[1].clone());
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..100 {
            assert_eq!(
                pick_with(&mut LeastRequest, &eps, &mut rng, Some(&eps[0])),
                1
            );
        }
    }
}
