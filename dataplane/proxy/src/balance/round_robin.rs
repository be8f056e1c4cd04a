//! Round robin: each core walks the endpoints in turn from its own start.

use std::rc::Rc;

use super::{steer, Balancer, PickCtx};
use crate::cluster::Endpoint;

pub struct RoundRobin {
    cursor: usize,
}

impl RoundRobin {
    /// Core `core` starts at endpoint `core`, so N cores do not send their
    /// first requests to the same endpoint.
    pub fn new(core: usize) -> Self {
        RoundRobin { cursor: core }
    }
}

impl Balancer for RoundRobin {
    fn pick(&mut self, endpoints: &[Rc<Endpoint>], ctx: &mut PickCtx<'_>) -> Option<usize> {
        if endpoints.is_empty() {
            return None;
        }
        let i = steer(self.cursor % endpoints.len(), endpoints, ctx.avoid);
        self.cursor = i + 1;
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{endpoints, pick_with};
    use super::*;

    #[test]
    fn cycles_through_endpoints_from_the_core_offset() {
        let eps = endpoints(3);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut rr = RoundRobin::new(1);
        let picks: Vec<usize> = (0..6)
            .map(|_| pick_with(&mut rr, &eps, &mut rng, None))
            .collect();
        assert_eq!(picks, [1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn a_retry_skips_the_endpoint_that_failed() {
        let eps = endpoints(3);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut rr = RoundRobin::new(0);
        assert_eq!(pick_with(&mut rr, &eps, &mut rng, None), 0);
        // The cursor would give 1; the try that failed used 1.
        assert_eq!(pick_with(&mut rr, &eps, &mut rng, Some(&eps[1])), 2);
        let one = endpoints(1);
        assert_eq!(
            pick_with(&mut rr, &one, &mut rng, Some(&one[0])),
            0,
            "the only endpoint is used again"
        );
    }

    #[test]
    fn no_endpoints_means_no_pick() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut ctx = PickCtx {
            request: Some(&super::super::testing::Get),
            client: [127, 0, 0, 1].into(),
            rng: &mut rng,
            avoid: None,
        };
        assert_eq!(RoundRobin::new(0).pick(&[], &mut ctx), None);
    }
}
