//! The phases themselves; see the module docs of `pipeline` for the map.

use std::rc::Rc;
use std::time::{Duration, Instant};

use ringmesh_http1::rewrite::{ClientCert, Propagated};
use tracing::{debug, warn};

use super::downstream::{
    Aborted, After, Downstream, H2HeadError, HeadRead, Local, RequestEdits, ResponseEnd, SendError,
};
use super::Next;
use crate::balance::{Completion, Outcome, PickCtx};
use crate::circuit_breaker::{Breaker, Held};
use crate::cluster::{ClusterState, Endpoint, InFlight};
use crate::config::model::{Action, Listener, RetryPolicy, Route, UpstreamProtocol};
use crate::error::ProxyError;
use crate::filter::{FilterCtx, Injected, Verdict};
use crate::telemetry::access_log::Entry;
use crate::telemetry::trace::{self, TraceContext, TRACEPARENT_LEN};
use crate::upstream::h2::{H2Client, H2Exchange, OpenError, Opened};
use crate::upstream::UpstreamConn;
use crate::view::{RequestView, ResponseView};
use crate::worker::{Core, Snapshot};
use crate::{grpc, mirror, router};

/// Where a try's response head arrived: an exclusive HTTP/1.1 connection
/// (the head in the downstream's workspace), or a stream of a shared
/// HTTP/2 connection.
enum Upstream {
    H1(UpstreamConn),
    H2(H2Exchange),
}

/// The response head of a try, whichever protocol brought it.
fn response<'a, D: Downstream>(down: &'a D, up: &'a Upstream) -> &'a dyn ResponseView {
    match up {
        Upstream::H1(_) => down.response(),
        Upstream::H2(x) => x,
    }
}

/// What a request runs with: its core, the config snapshot taken when its
/// head was complete, its listener and its client.
pub struct Env<'a> {
    pub core: &'a Core,
    pub snap: &'a Snapshot,
    pub listener: usize,
    /// The client's address as text (X-Forwarded-For).
    pub client_ip: &'a [u8],
    pub client: std::net::IpAddr,
    pub client_port: u16,
    /// `http` or `https`: what the client connected over.
    pub scheme: &'static [u8],
    /// The client's identity (its certificate's SPIFFE ID, without the
    /// scheme), when it presented one.
    pub principal: Option<&'a [u8]>,
}

/// Per-request state the phases fill in, read by `log`.
struct Ctx<'a> {
    env: &'a Env<'a>,
    listener: &'a Listener,
    route: Option<usize>,
    cluster: Option<&'a Rc<ClusterState>>,
    /// The endpoint the last try went to.
    endpoint: Option<Rc<Endpoint>>,
    /// When the last try started (one clock read serves the pool
    /// checkout, the try's deadlines, its latency and the pool return).
    started: Option<Instant>,
    /// Tries after the first.
    tries: u32,
    /// The status the client got (499: none, it went away first).
    status: u16,
    /// Why the proxy answered itself, if it did because of a failure.
    error: Option<ProxyError>,
    /// A failure after the response head had left.
    aborted: Option<&'static str>,
    /// The grpc-status a gRPC client got.
    grpc: Option<u8>,
    /// The last try's endpoint and how long it took to its response head.
    upstream: Option<std::net::SocketAddr>,
    upstream_time: Option<Duration>,
    /// A fault filter delayed the request.
    delayed: bool,
    /// When the request's head was complete.
    begun: Instant,
    /// Trace context, when the config traces requests.
    trace: Option<TraceContext>,
    /// What goes upstream: `traceparent` naming this proxy's span, and an
    /// `x-request-id` the proxy made (the client sent none).
    traceparent: Option<[u8; TRACEPARENT_LEN]>,
    request_id: Option<[u8; 36]>,
    /// A mirror waiting for the request body to pass (`mirror`). Boxed:
    /// only mirrored requests allocate it, and every request's future
    /// stays a pointer larger, not a whole request head.
    mirror: Option<Box<mirror::Pending>>,
}

/// Serve one request whose head is complete.
pub async fn serve<D: Downstream>(down: &mut D, env: &Env<'_>) -> Next {
    let begun = Instant::now();
    let mut ctx = Ctx {
        env,
        listener: &env.snap.config.listeners[env.listener],
        route: None,
        cluster: None,
        endpoint: None,
        started: None,
        tries: 0,
        status: 499,
        error: None,
        aborted: None,
        grpc: None,
        upstream: None,
        upstream_time: None,
        delayed: false,
        begun,
        trace: None,
        traceparent: None,
        request_id: None,
        mirror: None,
    };
    observe(down.request(), &mut ctx);
    let next = run(down, &mut ctx).await;
    if ctx.mirror.is_some() {
        launch_mirror(down, &mut ctx, true);
    }
    ctx.grpc = down.grpc_status();
    log(down, &ctx, begun.elapsed());
    next
}

/// Trace context and request id, when the config asks for them: the
/// caller's trace continued (or a new one), and an `x-request-id` made
/// for a request without one (access logs and traces name it).
fn observe(req: &dyn RequestView, ctx: &mut Ctx<'_>) {
    let tracing = ctx.env.snap.config.tracing.as_ref();
    if tracing.is_none() && ctx.listener.access_log.is_none() {
        return;
    }
    let mut rng = ctx.env.core.rng.borrow_mut();
    if let Some(t) = tracing {
        let trace = TraceContext::for_request(req, &mut rng, t.per_million);
        ctx.traceparent = Some(trace.traceparent());
        ctx.trace = Some(trace);
    }
    if req.header(b"x-request-id").is_none() {
        ctx.request_id = Some(trace::request_id(&mut rng));
    }
}

async fn run<'a, D: Downstream>(down: &mut D, ctx: &mut Ctx<'a>) -> Next {
    if let Err(e) = request_filters(down.request()) {
        return respond_error(down, ctx, e).await;
    }
    if let Err(e) = authorize(down.request(), ctx) {
        return respond_error(down, ctx, e).await;
    }
    let Some(index) = router::route(ctx.listener, down.request(), ctx.env.principal) else {
        return respond_error(down, ctx, ProxyError::NoRoute).await;
    };
    ctx.route = Some(index);
    let route = &ctx.listener.routes[index];
    if let Some(next) = route_filters(down, ctx, route, index).await {
        return next;
    }
    match &route.action {
        Action::Direct { status, body } => {
            ctx.status = *status;
            let close = down.body_unread() || draining(ctx);
            let local = Local::Direct {
                status: *status,
                body,
            };
            after(down.respond(local, close).await)
        }
        Action::Redirect(redirect) => {
            ctx.status = redirect.status;
            let close = down.body_unread() || draining(ctx);
            // A pooled buffer: a redirect allocates nothing once the
            // core's pool is warm.
            let pool = &ctx.env.core.pool;
            let mut location = pool.take_buf();
            location.clear();
            redirect.location(down.request(), &mut location);
            let local = Local::Redirect {
                status: redirect.status,
                location: &location,
            };
            let answered = down.respond(local, close).await;
            pool.put_buf(location);
            after(answered)
        }
        Action::Cluster(id) => forward(down, ctx, route, *id).await,
        Action::Weighted { choices, total } => {
            let roll = ctx.env.core.rng.borrow_mut().u64(..*total);
            match router::pick_weighted(choices, roll) {
                Some(id) => forward(down, ctx, route, id).await,
                None => respond_error(down, ctx, ProxyError::NoRoute).await,
            }
        }
    }
}

/// Checks on the request before routing, the same for every route.
fn request_filters(req: &dyn RequestView) -> Result<(), ProxyError> {
    // CONNECT asks the proxy to open a raw tunnel to an arbitrary address;
    // that is not a route's job (and an open relay if it were).
    if req.method() == b"CONNECT" {
        return Err(ProxyError::MethodNotAllowed);
    }
    Ok(())
}

/// The listener's authorization policies (`authz`), before routing: the
/// path normalised into the core's buffer, the decision counted.
fn authorize(req: &dyn RequestView, ctx: &Ctx<'_>) -> Result<(), ProxyError> {
    use crate::authz::{path, Decision, Subject};
    let Some(policies) = &ctx.listener.authorization else {
        return Ok(());
    };
    let core = ctx.env.core;
    let stats = &core.stats.listeners[ctx.env.listener];
    let mut buf = core.path_buf.borrow_mut();
    if path::normalize(req.path(), &mut buf).is_err() {
        stats.authz_denied.inc();
        return Err(ProxyError::BadPath);
    }
    let subject = Subject {
        req,
        path: &buf,
        principal: ctx.env.principal,
        port: &core.listener_ports[ctx.env.listener],
    };
    let decision = policies.decide(&subject);
    let (Decision::Allow(by) | Decision::Deny(by)) = decision;
    if let Some(i) = by {
        ctx.env.snap.policy_stats[ctx.env.listener][i].decided.inc();
    }
    match decision {
        Decision::Allow(_) => {
            stats.authz_allowed.inc();
            Ok(())
        }
        Decision::Deny(policy) => {
            stats.authz_denied.inc();
            debug!(
                listener = %ctx.listener.name,
                policy = policies.name(policy),
                principal = %String::from_utf8_lossy(ctx.env.principal.unwrap_or(b"")),
                "request denied"
            );
            Err(ProxyError::Forbidden)
        }
    }
}

/// Run the route's filters in order; `Some` when one of them answered.
async fn route_filters<D: Downstream>(
    down: &mut D,
    ctx: &mut Ctx<'_>,
    route: &Route,
    index: usize,
) -> Option<Next> {
    let snap = ctx.env.snap;
    let states = &snap.filter_state[ctx.env.listener][index];
    let now = ctx.begun;
    for (filter, state) in route.filters.iter().zip(states.iter()) {
        let env = ctx.env;
        let decide = |req: &dyn RequestView, now: Instant, delayed: bool| {
            let mut rng = env.core.rng.borrow_mut();
            let mut fctx = FilterCtx {
                rng: &mut rng,
                now,
                state,
                principal: env.principal,
                client: env.client,
            };
            if delayed {
                filter.after_delay(req, &mut fctx)
            } else {
                filter.on_request(req, &mut fctx)
            }
        };
        let mut verdict = decide(down.request(), now, false);
        if let Verdict::Delay(wait, kind) = verdict {
            count_fault(ctx, kind);
            ctx.delayed = true;
            down.timer().after(wait).await;
            verdict = decide(down.request(), Instant::now(), true);
        }
        match verdict {
            Verdict::Continue | Verdict::Delay(..) => {}
            Verdict::Respond(status, kind) => {
                count_fault(ctx, kind);
                return Some(respond_error(down, ctx, ProxyError::FaultAbort(status)).await);
            }
            Verdict::Limited(retry_after) => {
                snap.route_stats[ctx.env.listener][index].rate_limited.inc();
                return Some(respond_error(down, ctx, ProxyError::RateLimited(retry_after)).await);
            }
        }
    }
    None
}

fn count_fault(ctx: &Ctx<'_>, kind: Injected) {
    if let Some(r) = ctx.route {
        ctx.env.snap.route_stats[ctx.env.listener][r].fault(kind);
    }
}

/// Forward the request to cluster `id` and its response to the client.
async fn forward<D: Downstream>(down: &mut D, ctx: &mut Ctx<'_>, route: &Route, id: usize) -> Next {
    let cluster = &ctx.env.snap.clusters[id];
    ctx.cluster = Some(cluster);
    // Held until the response has been sent: the circuit breaker's
    // `max_requests` counts requests in flight to the cluster.
    let Some(_active) = cluster.breakers.requests.enter() else {
        cluster.stats.overflow[Breaker::Requests as usize].inc();
        return respond_error(down, ctx, ProxyError::Overflow(Breaker::Requests)).await;
    };
    if let Some(policy) = &route.mirror {
        ctx.mirror = start_mirror(down, ctx, route, policy);
    }
    let result = exchange(down, ctx, route, cluster).await;
    if ctx.mirror.is_some() {
        // The body has usually passed by now (an HTTP/1.1 upstream takes
        // it before answering); a full-duplex HTTP/2 one may still be
        // streaming it: then the mirror waits for the end of the request.
        launch_mirror(down, ctx, false);
    }
    let up = match result {
        Ok(up) => up,
        Err(Failure::Respond(e)) => return respond_error(down, ctx, e).await,
        Err(Failure::Abort(a)) => {
            ctx.aborted = Some(a.why);
            return Next::Close;
        }
    };
    ctx.status = response(down, &up).status();
    let close = draining(ctx);
    let mut conn = match up {
        Upstream::H1(conn) => conn,
        Upstream::H2(mut x) => {
            // The connection stays shared in the pool; only the stream ends.
            return match down
                .send_response_h2(&mut x, &route.response_headers, close)
                .await
            {
                Ok(a) => after(a),
                Err(a) => {
                    ctx.aborted = Some(a.why);
                    Next::Close
                }
            };
        }
    };
    // Response filters: a 101 the client did not ask for cannot be
    // forwarded (the connection would become a tunnel nobody wanted).
    if ctx.status == 101 {
        if !down.wants_upgrade() {
            down.discard_response();
            return respond_error(down, ctx, ProxyError::UnexpectedUpgrade).await;
        }
        return match down.switch_protocols(&route.response_headers).await {
            Ok(()) => Next::Tunnel(conn),
            Err(a) => {
                ctx.aborted = Some(a.why);
                Next::Close
            }
        };
    }
    match down
        .send_response(&mut conn, &route.response_headers, close)
        .await
    {
        Ok((end, after_response)) => {
            let ep = ctx.endpoint.take();
            if end == ResponseEnd::Reusable {
                if let (Some(ep), Some(since)) = (ep, ctx.started) {
                    // Idle since the try started: it expires a little
                    // early rather than costing a clock read.
                    cluster.release(&ep, conn, since);
                }
            }
            after(after_response)
        }
        Err(a) => {
            ctx.aborted = Some(a.why);
            Next::Close
        }
    }
}

/// Decide whether this request is mirrored (the route's share, rolled
/// with the core's rng) and prepare the copy: the head now, the body as
/// it passes. A request without a body is sent to the mirror at once.
/// Only a mirrored request gets past the roll, and only it allocates.
fn start_mirror<D: Downstream>(
    down: &mut D,
    ctx: &Ctx<'_>,
    route: &Route,
    policy: &mirror::Policy,
) -> Option<Box<mirror::Pending>> {
    let env = ctx.env;
    let stats = &env.snap.route_stats[env.listener][ctx.route?];
    let cluster = &env.snap.clusters[policy.cluster];
    let picked = {
        let mut rng = env.core.rng.borrow_mut();
        if !mirror::roll(policy, &mut rng) {
            return None;
        }
        if !mirror::room() {
            stats.mirror(mirror::Outcome::Dropped);
            return None;
        }
        if let crate::view::BodyKind::Sized(n) = down.request().body() {
            if n > policy.max_body_bytes {
                stats.mirror(mirror::Outcome::BodyTooLarge);
                return None;
            }
        }
        cluster.pick(&mut PickCtx {
            request: Some(down.request()),
            client: env.client,
            rng: &mut rng,
            avoid: None,
        })
    };
    let Some(endpoint) = picked else {
        stats.mirror(mirror::Outcome::Failed);
        return None;
    };
    let head = down
        .h2_request(&edits(ctx, route, &endpoint, false))
        .and_then(|(req, has_body)| Some((mirror::shadowed(req)?, has_body)));
    let Some((head, has_body)) = head else {
        stats.mirror(mirror::Outcome::Failed);
        return None;
    };
    let pending = Box::new(mirror::Pending {
        head,
        has_body,
        cluster: cluster.clone(),
        endpoint,
        stats: stats.clone(),
        timeout: route.timeout.unwrap_or(mirror::DEFAULT_TIMEOUT),
    });
    if !has_body {
        pending.launch(Vec::new());
        return None;
    }
    down.copy_body(policy.max_body_bytes);
    Some(pending)
}

/// Send the pending mirror once its body copy is complete; `last`: the
/// request is over, so a copy still incomplete never will be.
fn launch_mirror<D: Downstream>(down: &mut D, ctx: &mut Ctx<'_>, last: bool) {
    let Some(pending) = ctx.mirror.take() else {
        return;
    };
    let Some(copy) = down.body_copy() else {
        pending.skip(mirror::Outcome::Incomplete);
        return;
    };
    match copy.state() {
        mirror::CopyState::Done => pending.launch(copy.take()),
        mirror::CopyState::TooLarge => pending.skip(mirror::Outcome::BodyTooLarge),
        mirror::CopyState::Broken => pending.skip(mirror::Outcome::Incomplete),
        mirror::CopyState::Copying if last => pending.skip(mirror::Outcome::Incomplete),
        mirror::CopyState::Copying => ctx.mirror = Some(pending),
    }
}

/// Why an exchange ended without a usable response.
enum Failure {
    /// Nothing reached the client yet: answer with this error.
    Respond(ProxyError),
    /// The client is gone or the connection cannot go on.
    Abort(Aborted),
}

/// Tries of one request until one yields a response head the route's
/// retry policy accepts, or the policy gives up. Returns the connection
/// the response head arrived on.
async fn exchange<D: Downstream>(
    down: &mut D,
    ctx: &mut Ctx<'_>,
    route: &Route,
    cluster: &ClusterState,
) -> Result<Upstream, Failure> {
    // A gRPC call is a POST, but its route's policy is the caller's word
    // that the method may run twice (as in Envoy and gRPC's own retries).
    let retry = route
        .retry
        .as_ref()
        .filter(|_| is_idempotent(down.request().method()) || router::is_grpc(down.request()));
    let mut previous: Option<Rc<Endpoint>> = None;
    // The route's timeout bounds the whole request, every try and every
    // backoff: it runs from the first try.
    let route_wait = response_wait(route, down.request(), ctx.listener.idle_timeout);
    let mut deadline = None;
    // A retry in flight, counted against the circuit breaker's
    // `max_retries`.
    let mut _retrying = None;
    loop {
        let ep = select(down.request(), ctx, cluster, previous.as_deref())
            .ok_or(Failure::Respond(ProxyError::NoEndpoints))?;
        if ctx.tries == 0 {
            prepare(down, ctx, route, cluster, &ep)?;
            down.continue_body().await.map_err(Failure::Abort)?;
        }
        let in_flight = InFlight::new(ep.clone());
        let started = monoio::time::Instant::now();
        ctx.started = Some(started.into_std());
        let deadline = *deadline.get_or_insert(started + route_wait);
        if ctx.tries == 0 {
            if let Some(budget) = &cluster.budget {
                budget.on_request(started.into_std());
            }
        }
        let left = deadline.saturating_duration_since(started);
        let wait = retry
            .and_then(|p| p.per_try_timeout)
            .map_or(left, |t| t.min(left));
        let result = try_once(down, ctx, route, cluster, &ep, started, wait).await;
        let outcome = outcome(&result, down);
        let latency = started.elapsed();
        cluster.stats.upstream_time.record(latency);
        if outcome == Outcome::TimedOut {
            cluster.stats.timeouts.inc();
        }
        ctx.upstream = Some(ep.addr);
        ctx.upstream_time = Some(latency);
        cluster.complete(&ep, &Completion { outcome, latency });
        drop(in_flight);
        // Read only when the policy retries on gRPC statuses.
        let grpc = match &result {
            Ok(up) if retry.is_some_and(|p| !p.grpc_statuses.is_empty()) => {
                grpc::status(response(down, up))
            }
            _ => None,
        };
        let pause = match retry {
            Some(p)
                if should_retry(retry, &result, outcome, grpc, ctx.tries, down.replayable()) =>
            {
                let now = started + latency;
                let pause = p
                    .backoff
                    .wait(ctx.tries, &mut ctx.env.core.rng.borrow_mut());
                // This request's previous retry, if any, has ended.
                _retrying = None;
                _retrying = may_retry(cluster, now, pause, deadline);
                _retrying.is_some().then_some(pause)
            }
            _ => None,
        };
        if let Some(pause) = pause {
            // An HTTP/1.1 try leaves its response, or what arrived of it,
            // in the read buffer; one a timeout cut short leaves it marked
            // lost. The next try starts from a clean one.
            if !matches!(&result, Ok(Upstream::H2(_))) {
                down.discard_response();
            }
            drop(result);
            ctx.tries += 1;
            cluster.stats.retries.inc();
            debug!(cluster = %cluster.name, route = %route.name, tries = ctx.tries, ?pause, "retrying");
            if !pause.is_zero() {
                down.timer().after(pause).await;
            }
            previous = Some(ep);
            continue;
        }
        ctx.endpoint = Some(ep);
        return result;
    }
}

/// Whether a retry the route's policy wants is sent after `pause`, with
/// its place under the circuit breaker's `max_retries`: not when the wait
/// would reach the request's deadline (the route's timeout), nor when the
/// cluster's retry budget is spent or `max_retries` retries are in flight
/// (both counted). Either way the request gets its last try's failure.
fn may_retry<'c>(
    cluster: &'c ClusterState,
    now: monoio::time::Instant,
    pause: Duration,
    deadline: monoio::time::Instant,
) -> Option<Held<'c>> {
    if now + pause >= deadline {
        return None;
    }
    let Some(slot) = cluster.breakers.retries.enter() else {
        cluster.stats.overflow[Breaker::Retries as usize].inc();
        return None;
    };
    match &cluster.budget {
        Some(budget) if !budget.try_retry(now.into_std()) => {
            cluster.stats.retries_budget_exhausted.inc();
            None
        }
        _ => Some(slot),
    }
}

/// Upstream selection: the cluster's balancer picks the endpoint for this
/// try, away from the one the previous try failed on when it can.
fn select(
    req: &dyn RequestView,
    ctx: &Ctx<'_>,
    cluster: &ClusterState,
    previous: Option<&Endpoint>,
) -> Option<Rc<Endpoint>> {
    let mut rng = ctx.env.core.rng.borrow_mut();
    let mut pick = PickCtx {
        request: Some(req),
        client: ctx.env.client,
        rng: &mut rng,
        avoid: previous,
    };
    cluster.pick(&mut pick)
}

/// Upstream request filters: the edits that turn the client's request into
/// the upstream's, applied as the request is encoded (once per request for
/// HTTP/1.1 upstreams, once per try for HTTP/2 ones).
fn prepare<D: Downstream>(
    down: &mut D,
    ctx: &Ctx<'_>,
    route: &Route,
    cluster: &ClusterState,
    ep: &Endpoint,
) -> Result<(), Failure> {
    let h1 = cluster.protocol != UpstreamProtocol::Http2;
    down.prepare_request(&edits(ctx, route, ep, h1))
        .map_err(Failure::Respond)
}

fn edits<'a>(ctx: &'a Ctx<'_>, route: &'a Route, ep: &'a Endpoint, h1: bool) -> RequestEdits<'a> {
    RequestEdits {
        headers: &route.request_headers,
        rewrite: route.rewrite.as_ref(),
        client_ip: ctx.env.client_ip,
        scheme: ctx.env.scheme,
        forwarded_proto: ctx.listener.x_forwarded_proto,
        fallback_host: &ep.authority,
        h1_upstream: h1,
        client_cert: ctx.listener.mesh.map(|_| ClientCert {
            by: ctx
                .env
                .snap
                .config
                .identity
                .as_ref()
                .map_or(&b""[..], |i| i.spiffe_id.as_bytes()),
            uri: ctx.env.principal,
        }),
        propagated: Propagated {
            traceparent: ctx.traceparent.as_ref().map(|t| &t[..]),
            request_id: ctx.request_id.as_ref().map(|r| &r[..]),
        },
    }
}

/// How long a request waits for its response head, all tries together:
/// the route's timeout (the listener's idle timeout without one, so a hung
/// upstream cannot pin a client connection), or a gRPC call's own
/// deadline when it is sooner. Each try gets what is left of it, or the
/// retry policy's per-try timeout when that is shorter.
fn response_wait(route: &Route, req: &dyn RequestView, stall: Duration) -> Duration {
    let wait = route.timeout.unwrap_or(stall);
    // gRPC runs over HTTP/2 only: an HTTP/1.1 request pays no header scan.
    if req.protocol() != crate::view::Protocol::Http2 {
        return wait;
    }
    grpc::timeout(req).map_or(wait, |t| wait.min(t))
}

/// One try, by the cluster's protocol.
async fn try_once<D: Downstream>(
    down: &mut D,
    ctx: &Ctx<'_>,
    route: &Route,
    cluster: &ClusterState,
    ep: &Endpoint,
    started: monoio::time::Instant,
    wait: Duration,
) -> Result<Upstream, Failure> {
    match cluster.protocol {
        UpstreamProtocol::Http2 => try_h2(down, ctx, route, cluster, ep, None, wait).await,
        UpstreamProtocol::Auto => match ep.pool.take_stream(cluster.connector.transport) {
            Some(c) => try_h2(down, ctx, route, cluster, ep, Some(c), wait).await,
            None => try_h1(down, ctx, route, cluster, ep, started, wait).await,
        },
        UpstreamProtocol::Http1 => try_h1(down, ctx, route, cluster, ep, started, wait).await,
    }
}

/// One try on a stream of a shared HTTP/2 connection (`client`, or one
/// from the pool or new). A stream the connection could not open, or the
/// upstream never processed, goes to another connection (twice at most).
async fn try_h2<D: Downstream>(
    down: &mut D,
    ctx: &Ctx<'_>,
    route: &Route,
    cluster: &ClusterState,
    ep: &Endpoint,
    mut client: Option<Rc<H2Client>>,
    wait: Duration,
) -> Result<Upstream, Failure> {
    let stall = ctx.listener.idle_timeout;
    let mut again = 0;
    loop {
        let c = match client.take() {
            Some(c) => c,
            None => cluster
                .h2_client(ep, down.timer())
                .await
                .map_err(Failure::Respond)?,
        };
        let (req, has_body) = down
            .h2_request(&edits(ctx, route, ep, false))
            .ok_or(Failure::Respond(ProxyError::UnsendableRequest))?;
        let Opened {
            response,
            mut body,
            slot,
        } = match c.open(req, !has_body).await {
            Ok(o) => o,
            Err(OpenError::Gone) if again < 2 => {
                again += 1;
                continue;
            }
            Err(OpenError::Gone) => return Err(Failure::Respond(ProxyError::UpstreamReset)),
            Err(OpenError::Rejected(e)) => {
                debug!(cluster = %cluster.name, error = %e, "h2 refused to send the request");
                return Err(Failure::Respond(ProxyError::UnsendableRequest));
            }
        };
        let deadline = monoio::time::Instant::now() + wait;
        match down.h2_exchange(&mut body, response, deadline, stall).await {
            Ok((resp, done)) => {
                let (head, recv) = resp.into_parts();
                return Ok(Upstream::H2(H2Exchange {
                    head,
                    body: recv,
                    request: (!done).then_some(body),
                    client: c,
                    _slot: slot,
                }));
            }
            Err(H2HeadError::NeverProcessed) if again < 2 && down.replayable() => {
                c.retire();
                again += 1;
            }
            Err(H2HeadError::NeverProcessed | H2HeadError::Reset) => {
                return Err(Failure::Respond(ProxyError::UpstreamReset))
            }
            Err(H2HeadError::Timeout) => return Err(Failure::Respond(ProxyError::UpstreamTimeout)),
            Err(H2HeadError::Send(e)) => return Err(send_failure(e)),
            Err(H2HeadError::ClientGone) => {
                return Err(Failure::Abort(Aborted {
                    why: "client reset the stream",
                }))
            }
        }
    }
}

fn send_failure(e: SendError) -> Failure {
    match e {
        SendError::Upstream { .. } => Failure::Respond(ProxyError::UpstreamReset),
        SendError::BadBody(e) => Failure::Respond(e),
        SendError::Stalled => Failure::Abort(Aborted {
            why: "request stalled",
        }),
        SendError::Client => Failure::Abort(Aborted {
            why: "client stopped sending the request body",
        }),
    }
}

/// One try on an HTTP/1.1 connection to `ep`: the request sent, the
/// response head read. A reused connection the upstream closed while it
/// was idle is replaced once, when the request may be sent again: always
/// if the upstream provably never saw it, otherwise only for idempotent
/// methods. With `protocol: auto`, a new TLS connection whose ALPN picked
/// `h2` turns the try into an HTTP/2 one.
async fn try_h1<D: Downstream>(
    down: &mut D,
    ctx: &Ctx<'_>,
    route: &Route,
    cluster: &ClusterState,
    ep: &Endpoint,
    started: monoio::time::Instant,
    wait: Duration,
) -> Result<Upstream, Failure> {
    let idempotent = is_idempotent(down.request().method());
    let stall = ctx.listener.idle_timeout;
    let mut pooled = cluster.checkout(ep, started.into_std());
    let mut now = started;
    loop {
        let mut conn = match pooled.take() {
            // An idle connection the upstream already closed (or wrote to)
            // is never used for a request that must not be sent twice.
            Some(c) if !idempotent && c.stream.has_pending_input() => continue,
            Some(c) => c,
            None => {
                let c = cluster
                    .connect(ep, down.timer())
                    .await
                    .map_err(Failure::Respond)?;
                if cluster.protocol == UpstreamProtocol::Auto && c.stream.alpn() == Some(b"h2") {
                    let client = cluster
                        .adopt_h2(ep, c, down.timer())
                        .await
                        .map_err(Failure::Respond)?;
                    // Boxed: rare, and it would double this future's size.
                    return Box::pin(try_h2(down, ctx, route, cluster, ep, Some(client), wait))
                        .await;
                }
                now = monoio::time::Instant::now();
                c
            }
        };
        let reused = conn.reused;
        let resend = |down: &D| reused && idempotent && down.replayable();
        // The route timeout runs from sending the request; the head's own
        // write is bounded by the stall limit too.
        let (write_by, answer_by) = (now + stall.min(wait), now + wait);
        let deadline = match down.send_request(&mut conn.stream, write_by, stall).await {
            // A body streamed after the head: the wait starts now.
            Ok(true) => monoio::time::Instant::now() + wait,
            Ok(false) => answer_by,
            Err(SendError::Upstream { early: true }) => {
                // The upstream stopped reading the body: it may have
                // answered (413, 401) and closed. That answer is what the
                // client should get.
                let deadline = monoio::time::Instant::now() + EARLY_RESPONSE_WAIT;
                return match down
                    .read_response_head(&mut conn.stream, Some(deadline))
                    .await
                {
                    Ok(()) => Ok(Upstream::H1(conn)),
                    Err(e) => Err(head_failure(e)),
                };
            }
            Err(SendError::Upstream { early: false }) if resend(down) => continue,
            Err(SendError::Upstream { .. }) => {
                return Err(Failure::Respond(ProxyError::UpstreamReset))
            }
            Err(e) => return Err(send_failure(e)),
        };
        match down
            .read_response_head(&mut conn.stream, Some(deadline))
            .await
        {
            Ok(()) => return Ok(Upstream::H1(conn)),
            Err(HeadRead::ClosedEarly) if resend(down) => continue,
            Err(e) => return Err(head_failure(e)),
        }
    }
}

/// How long to wait for an early response after the upstream stopped
/// reading the request body; an upstream that answered has already sent it.
const EARLY_RESPONSE_WAIT: Duration = Duration::from_secs(1);

fn head_failure(e: HeadRead) -> Failure {
    match e {
        HeadRead::ClosedEarly => Failure::Respond(ProxyError::UpstreamReset),
        HeadRead::Failed(e) => Failure::Respond(e),
        HeadRead::ClientGone => Failure::Abort(Aborted {
            why: "client closed while interim responses were forwarded",
        }),
    }
}

/// A try's result as balancers and retry policies see it.
fn outcome<D: Downstream>(result: &Result<Upstream, Failure>, down: &D) -> Outcome {
    match result {
        Ok(up) => Outcome::Response(response(down, up).status()),
        Err(Failure::Respond(ProxyError::ConnectFailed | ProxyError::ConnectTimeout)) => {
            Outcome::ConnectFailed
        }
        Err(Failure::Respond(ProxyError::UpstreamTimeout)) => Outcome::TimedOut,
        Err(_) => Outcome::Failed,
    }
}

/// Whether the route's policy sends the request again after a try.
/// Only idempotent requests have a policy here (`exchange`), only while
/// the proxy holds the whole request, never past `attempts`, and only
/// after a failure another try may fix (`ProxyError::retryable`): never
/// when the client is gone.
fn should_retry(
    policy: Option<&RetryPolicy>,
    result: &Result<Upstream, Failure>,
    outcome: Outcome,
    grpc: Option<u8>,
    tries: u32,
    replayable: bool,
) -> bool {
    let Some(p) = policy else { return false };
    if tries >= p.attempts || !replayable {
        return false;
    }
    match (result, outcome) {
        (Ok(_), Outcome::Response(status)) => {
            p.retries_status(status) || grpc.is_some_and(|code| p.retries_grpc(code))
        }
        (Err(Failure::Respond(e)), Outcome::ConnectFailed) if e.retryable() => p.on_connect_failure,
        (Err(Failure::Respond(e)), Outcome::Failed) if e.retryable() => p.on_reset,
        // A try its per-try timeout ended; after the route's timeout there
        // is no time left for another (`may_retry`).
        (Err(Failure::Respond(_)), Outcome::TimedOut) => p.on_timeout,
        _ => false,
    }
}

/// Methods safe to send twice (RFC 9110 section 9.2.2).
pub fn is_idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
    )
}

/// The core is draining: every response closes its connection.
fn draining(ctx: &Ctx<'_>) -> bool {
    ctx.env.core.drain.is_draining()
}

/// Answer with `err`, unless the client is gone.
async fn respond_error<D: Downstream>(down: &mut D, ctx: &mut Ctx<'_>, err: ProxyError) -> Next {
    ctx.status = err.status();
    ctx.error = Some(err);
    let close = err.closes_connection() || down.body_unread() || draining(ctx);
    after(down.respond(Local::Error(err), close).await)
}

fn after(a: After) -> Next {
    match a {
        After::KeepAlive => Next::KeepAlive,
        After::Close => Next::Close,
    }
}

/// Count the request where it belongs, write its access log line and
/// span, and report failures.
fn log<D: Downstream>(down: &D, ctx: &Ctx<'_>, duration: Duration) {
    let env = ctx.env;
    let status = ctx.status;
    match ctx.route {
        Some(r) => {
            let stats = &env.snap.route_stats[env.listener][r];
            stats.record(status);
            stats.record_duration(status, duration);
            if let Some(code) = ctx.grpc {
                stats.record_grpc(code);
            }
        }
        None => {
            let stats = &env.core.stats.listeners[env.listener];
            stats.unrouted.record(status);
            stats.unrouted_codes.record(status);
        }
    }
    if let Some(c) = ctx.cluster {
        c.stats.requests.record(status);
    }
    if ctx.listener.mesh.is_some() {
        env.core.stats.listeners[env.listener]
            .sources
            .record(env.principal, status, duration);
    }
    let route = ctx
        .route
        .map_or("", |r| ctx.listener.routes[r].name.as_str());
    let cluster = ctx.cluster.map_or("", |c| c.name.as_str());
    let traced = ctx.trace.is_some_and(|t| t.sampled);
    if ctx.listener.access_log.is_some() || traced {
        let req = down.request();
        let (bytes_received, bytes_sent) = down.body_bytes();
        let (flags, details) = outcome_flags(ctx);
        let entry = Entry {
            start: crate::telemetry::clock::started(std::time::SystemTime::now(), duration),
            duration,
            request: Some(req),
            protocol: match req.protocol() {
                crate::view::Protocol::Http10 => "HTTP/1.0",
                crate::view::Protocol::Http11 => "HTTP/1.1",
                crate::view::Protocol::Http2 => "HTTP/2",
            },
            status: Some(status),
            flags,
            details,
            bytes_received,
            bytes_sent,
            upstream_time: ctx.upstream_time,
            upstream_host: ctx.upstream,
            cluster,
            route,
            listener: &ctx.listener.name,
            client: std::net::SocketAddr::new(env.client, env.client_port),
            principal: env.principal,
            trace_id: ctx.trace.map(|t| t.trace_id),
            request_id: match &ctx.request_id {
                Some(id) => Some(&id[..]),
                None => req.header(b"x-request-id"),
            },
            grpc: ctx.grpc,
        };
        crate::telemetry::record(
            env.core,
            ctx.listener,
            env.snap.config.tracing.as_ref(),
            ctx.trace.as_ref(),
            &entry,
        );
    }
    if let Some(err) = ctx.error {
        // One stderr lock shared by every core: during an outage every
        // request fails, so failure lines are rate-limited per core.
        if err.is_logged() && env.core.log_limit.allow() {
            // The caller's workload identity, on mTLS listeners.
            let principal = env.principal.map(String::from_utf8_lossy);
            warn!(listener = %ctx.listener.name, route, cluster, reason = %err, status, principal = principal.as_deref(), "request failed");
        }
    } else if let Some(why) = ctx.aborted {
        debug!(listener = %ctx.listener.name, route, cluster, why, "connection aborted");
    }
}

/// Envoy's response flags and a detail for the log: what went wrong (or
/// `via_upstream`).
fn outcome_flags(ctx: &Ctx<'_>) -> (&'static str, &'static str) {
    if let Some(err) = ctx.error {
        let flags = err.response_flags();
        return (flags, err.reason());
    }
    if ctx.aborted.is_some() {
        return ("DC", "downstream_closed");
    }
    let details = match ctx.route.map(|r| &ctx.listener.routes[r].action) {
        Some(Action::Direct { .. }) => "direct_response",
        Some(Action::Redirect(_)) => "redirect",
        _ => "via_upstream",
    };
    (if ctx.delayed { "DI" } else { "-" }, details)
}
