//! Ring hash (ketama): each endpoint owns points on a ring of 64-bit
//! hashes, in proportion to its weight; a request's key goes to the first
//! point at or after its hash. Adding or removing one of N endpoints moves
//! only the keys between its points and their predecessors: about 1/N of
//! them.
//!
//! Each endpoint has `ring_points × weight` points, a number that does not
//! depend on the other endpoints: one that comes or goes moves only the
//! keys of its own points (a ring sized from the total, as Envoy's is,
//! would move every endpoint's points too). Past `MAX_POINTS` in all,
//! every endpoint's count is scaled down alike.
//!
//! The ring is built over the healthy endpoints when they change (a
//! `Vec` of (hash, endpoint) sorted by hash, 16 bytes a point), never per
//! request. A pick is a binary search.

use std::rc::Rc;

use xxhash_rust::xxh64::xxh64;

use super::hash_key::key;
use super::{is_avoided, Balancer, PickCtx};
use crate::cluster::Endpoint;
use crate::config::model::{HashOn, HashPolicy};

/// Envoy's maximum ring size.
const MAX_POINTS: u64 = 8 * 1024 * 1024;

pub struct RingHash {
    on: HashOn,
    /// Points per unit of weight.
    size: u32,
    /// (point, index into the candidates it was built over), by point.
    ring: Vec<(u64, u32)>,
}

impl RingHash {
    pub fn new(policy: &HashPolicy) -> Self {
        RingHash {
            on: policy.on.clone(),
            size: policy.table_size,
            ring: Vec::new(),
        }
    }
}

/// An endpoint's `j`th point: the hash of `ADDRESS_j`, as Envoy names them.
fn point(addr: &str, j: u32, buf: &mut String) -> u64 {
    use std::fmt::Write as _;
    buf.clear();
    let _ = write!(buf, "{addr}_{j}");
    xxh64(buf.as_bytes(), 0)
}

impl Balancer for RingHash {
    fn pick(&mut self, set: &[Rc<Endpoint>], ctx: &mut PickCtx<'_>) -> Option<usize> {
        if set.is_empty() || self.ring.is_empty() {
            return None;
        }
        let hash = key(&self.on, ctx).unwrap_or_else(|| ctx.rng.u64(..));
        let start = self.ring.partition_point(|&(p, _)| p < hash);
        // A retry walks on to the next endpoint on the ring.
        let n = self.ring.len();
        let mut first = None;
        for k in 0..n {
            let i = self.ring[(start + k) % n].1 as usize;
            let Some(ep) = set.get(i) else { continue };
            first.get_or_insert(i);
            if !is_avoided(ep, ctx.avoid) {
                return Some(i);
            }
        }
        first
    }

    fn on_routable(&mut self, set: &[Rc<Endpoint>]) {
        self.ring.clear();
        let total: u64 = set.iter().map(|e| u64::from(e.weight())).sum();
        if total == 0 {
            return;
        }
        let mut buf = String::with_capacity(64);
        for (i, e) in set.iter().enumerate() {
            let addr = e.addr.to_string();
            let points = u64::from(self.size) * u64::from(e.weight());
            let points = if u64::from(self.size) * total > MAX_POINTS {
                (points * MAX_POINTS).div_ceil(u64::from(self.size) * total)
            } else {
                points
            };
            for j in 0..points.max(1) as u32 {
                self.ring.push((point(&addr, j, &mut buf), i as u32));
            }
        }
        self.ring.sort_unstable();
    }

    fn locality_aware(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{endpoints, weighted};
    use super::*;
    use crate::balance::testing::pick_for;

    fn ring(eps: &[Rc<Endpoint>]) -> RingHash {
        let mut r = RingHash::new(&HashPolicy {
            on: HashOn::Header("x-user".into()),
            table_size: 128,
        });
        r.on_routable(eps);
        r
    }

    #[test]
    fn a_key_keeps_its_endpoint() {
        let eps = endpoints(5);
        let mut r = ring(&eps);
        for user in 0..50 {
            let first = pick_for(&mut r, &eps, &format!("user-{user}"));
            for _ in 0..3 {
                assert_eq!(pick_for(&mut r, &eps, &format!("user-{user}")), first);
            }
        }
    }

    #[test]
    fn adding_an_endpoint_moves_about_one_in_n_keys() {
        let four = endpoints(4);
        let five = endpoints(5);
        let mut before = ring(&four);
        let mut after = ring(&five);
        let keys = 10_000;
        let moved = (0..keys)
            .filter(|k| {
                let k = format!("k{k}");
                let a = four[pick_for(&mut before, &four, &k)].addr;
                let b = five[pick_for(&mut after, &five, &k)].addr;
                assert!(
                    a == b || b == five[4].addr,
                    "a key moved between old endpoints"
                );
                a != b
            })
            .count();
        // Ideal: 1/5 of the keys, all to the new endpoint.
        let share = moved as f64 / keys as f64;
        assert!((0.15..=0.25).contains(&share), "moved {share}");
    }

    #[test]
    fn weights_scale_the_share() {
        let eps = weighted(&[3, 1]);
        let mut r = ring(&eps);
        let to_first = (0..4000)
            .filter(|k| pick_for(&mut r, &eps, &format!("k{k}")) == 0)
            .count();
        assert!((2700..=3300).contains(&to_first), "{to_first}");
    }
}
