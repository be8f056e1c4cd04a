//! Round robin: each core walks the endpoints in turn from its own start.
//!
//! With weights, smooth weighted round robin (nginx's): every pick adds
//! each candidate's weight to its running score, takes the highest and
//! takes the total off it. Weights 5, 1, 1 give a a b a c a a, not
//! a a a a a b c. That is O(candidates) per pick, paid only when weights
//! differ; equal weights keep the O(1) cursor.

use std::rc::Rc;

use super::{steer, Balancer, PickCtx};
use crate::cluster::Endpoint;

pub struct RoundRobin {
    cursor: usize,
    /// Smooth weighted round robin's scores by endpoint position; empty
    /// while every weight is the same.
    scores: Vec<i64>,
}

impl RoundRobin {
    /// Core `core` starts at endpoint `core`, so N cores do not send their
    /// first requests to the same endpoint.
    pub fn new(core: usize) -> Self {
        RoundRobin {
            cursor: core,
            scores: Vec::new(),
        }
    }

    fn smooth(&mut self, set: &[Rc<Endpoint>], ctx: &PickCtx<'_>) -> usize {
        let mut total = 0i64;
        let mut best: Option<(usize, i64)> = None;
        for (i, e) in set.iter().enumerate() {
            let Some(score) = e.position().and_then(|p| self.scores.get_mut(p)) else {
                continue;
            };
            let w = i64::from(e.weight());
            *score += w;
            total += w;
            let avoided = super::is_avoided(e, ctx.avoid) && set.len() > 1;
            if !avoided && best.is_none_or(|(_, s)| *score > s) {
                best = Some((i, *score));
            }
        }
        let Some((i, _)) = best else { return 0 };
        if let Some(score) = set[i].position().and_then(|p| self.scores.get_mut(p)) {
            *score -= total;
        }
        i
    }
}

impl Balancer for RoundRobin {
    fn pick(&mut self, endpoints: &[Rc<Endpoint>], ctx: &mut PickCtx<'_>) -> Option<usize> {
        if endpoints.is_empty() {
            return None;
        }
        if !self.scores.is_empty() {
            return Some(self.smooth(endpoints, ctx));
        }
        let i = steer(self.cursor % endpoints.len(), endpoints, ctx.avoid);
        self.cursor = i + 1;
        Some(i)
    }

    fn on_endpoints(&mut self, all: &[Rc<Endpoint>]) {
        let first = all.first().map(|e| e.weight());
        self.scores.clear();
        if all.iter().any(|e| Some(e.weight()) != first) {
            self.scores.resize(all.len(), 0);
        }
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
    fn weights_are_honoured_smoothly() {
        let eps = super::super::testing::weighted(&[5, 1, 1]);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut rr = RoundRobin::new(0);
        rr.on_endpoints(&eps);
        let picks: Vec<usize> = (0..7)
            .map(|_| pick_with(&mut rr, &eps, &mut rng, None))
            .collect();
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0], "nginx's sequence");
        // A retry does not go back to the endpoint that failed.
        assert_ne!(pick_with(&mut rr, &eps, &mut rng, Some(&eps[0])), 0);
        // Over many picks, 5:1:1.
        let mut counts = [0; 3];
        for _ in 0..700 {
            counts[pick_with(&mut rr, &eps, &mut rng, None)] += 1;
        }
        assert!(counts[0] >= 495 && counts[0] <= 505, "{counts:?}");
    }

    #[test]
    fn no_endpoints_means_no_pick() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut ctx = PickCtx {
            request: Some(&super::super::testing::GET),
            client: [127, 0, 0, 1].into(),
            rng: &mut rng,
            avoid: None,
        };
        assert_eq!(RoundRobin::new(0).pick(&[], &mut ctx), None);
    }
}
