//! Load balancing: which endpoint of a cluster gets a request.
//!
//! A `Balancer` is per core and per cluster, like everything on the
//! request path: it keeps whatever state its policy needs (a cursor,
//! latency estimates, a hash ring) in plain fields, touched by one thread.
//! The pipeline calls it at three points:
//!
//! - `pick`: choose an endpoint for one try of a request, given the
//!   request (for hash policies: a header, a cookie), the client's
//!   address, the core's random source, and the endpoint a failed try
//!   just used (a retry goes elsewhere when it can);
//! - `on_endpoints`: the endpoint set changed (DNS, control plane); a
//!   policy rebuilds what depends on it (a ring) and may carry state over
//!   for endpoints that stayed;
//! - `on_complete`: a try ended, with its outcome and latency (for
//!   latency-aware and outlier-aware policies).
//!
//! Endpoints carry what every policy may read: their position in the
//! current set (so per-endpoint state is a `Vec` indexed by position) and
//! the requests this core has in flight to them.
//!
//! Policies: `round_robin` (a cursor), `least_request` (power of two
//! choices on in-flight requests). A hash or peak-EWMA policy is one more
//! module and one more `LbPolicy` variant; nothing on the request path
//! changes.

mod least_request;
mod round_robin;

use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::cluster::Endpoint;
use crate::config::model::LbPolicy;
use crate::view::RequestView;

pub use least_request::LeastRequest;
pub use round_robin::RoundRobin;

/// What a policy may use to choose.
pub struct PickCtx<'a> {
    /// `None` for opaque TCP, which has no request: a policy that hashes
    /// a request's header falls back to the client's address or its own
    /// choice.
    pub request: Option<&'a dyn RequestView>,
    pub client: IpAddr,
    pub rng: &'a mut fastrand::Rng,
    /// The endpoint the previous try of this request used, if this is a
    /// retry: avoided when another endpoint is available.
    pub avoid: Option<&'a Endpoint>,
}

/// How a try ended, as a balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response head arrived with this status.
    Response(u16),
    /// The connection was made (opaque TCP: there is no response to see).
    Connected,
    /// The connection could not be made.
    ConnectFailed,
    /// The upstream closed, reset or broke the protocol before a response.
    Failed,
    /// No response head within the route's timeout.
    TimedOut,
}

/// A finished try.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    pub outcome: Outcome,
    /// From the start of the try to the response head (or the failure);
    /// zero unless the balancer `wants_latency`.
    pub latency: Duration,
}

/// A per-core load-balancing policy for one cluster.
pub trait Balancer {
    /// The index in `endpoints` of the endpoint for this try; `None` only
    /// when `endpoints` is empty.
    fn pick(&mut self, endpoints: &[Rc<Endpoint>], ctx: &mut PickCtx<'_>) -> Option<usize>;

    /// The endpoint set changed; `endpoints` is the new one.
    fn on_endpoints(&mut self, endpoints: &[Rc<Endpoint>]) {
        let _ = endpoints;
    }

    /// A try to `endpoint` finished.
    fn on_complete(&mut self, endpoint: &Endpoint, done: &Completion) {
        let _ = (endpoint, done);
    }

    /// Whether `on_complete` reads `Completion::latency`; when false the
    /// pipeline does not read the clock to measure it (zero is passed).
    fn wants_latency(&self) -> bool {
        false
    }
}

/// The balancer for `policy`, for core `core` (so cores start at different
/// endpoints and do not hit the same one in lockstep).
pub fn build(policy: LbPolicy, core: usize) -> Box<dyn Balancer> {
    match policy {
        LbPolicy::RoundRobin => Box::new(RoundRobin::new(core)),
        LbPolicy::LeastRequest => Box::new(LeastRequest),
    }
}

/// When `avoid` is set and there is another endpoint, move `i` off it.
fn steer(i: usize, endpoints: &[Rc<Endpoint>], avoid: Option<&Endpoint>) -> usize {
    match avoid {
        Some(a) if endpoints.len() > 1 && std::ptr::eq(&*endpoints[i], a) => {
            (i + 1) % endpoints.len()
        }
        _ => i,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Endpoints and a request view for balancer tests.
    use super::*;
    use crate::view::{BodyKind, Protocol};

    pub fn endpoints(n: usize) -> Vec<Rc<Endpoint>> {
        (0..n)
            .map(|i| Endpoint::new(std::net::SocketAddr::from(([10, 0, 0, i as u8 + 1], 80))))
            .collect()
    }

    pub struct Get;

    impl RequestView for Get {
        fn method(&self) -> &[u8] {
            b"GET"
        }
        fn scheme(&self) -> &[u8] {
            b"http"
        }
        fn authority(&self) -> &[u8] {
            b"svc"
        }
        fn path(&self) -> &[u8] {
            b"/"
        }
        fn query(&self) -> Option<&[u8]> {
            None
        }
        fn header(&self, _: &[u8]) -> Option<&[u8]> {
            None
        }
        fn for_each_header(&self, _: &mut dyn FnMut(&[u8], &[u8])) {}
        fn body(&self) -> BodyKind {
            BodyKind::Empty
        }
        fn protocol(&self) -> Protocol {
            Protocol::Http11
        }
    }

    pub fn pick_with(
        b: &mut dyn Balancer,
        eps: &[Rc<Endpoint>],
        rng: &mut fastrand::Rng,
        avoid: Option<&Endpoint>,
    ) -> usize {
        let mut ctx = PickCtx {
            request: Some(&Get),
            client: IpAddr::from([127, 0, 0, 1]),
            rng,
            avoid,
        };
        b.pick(eps, &mut ctx).expect("an endpoint")
    }
}
