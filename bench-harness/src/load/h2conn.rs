//! The load's HTTP/2 connections: one task per connection that (re)opens
//! it, and one task per stream slot looping request by request on it.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::conn::{open, Failure, Thread};
use super::H2Load;
use crate::http::{RequestSpec, Response};
use crate::http2::client::{self, H2Conn, H2Failure, H2Response};
use crate::http2::grpc;
use crate::pace::Pacer;
use crate::schedule::Schedule;

/// Each request's head and body, made once per run.
pub struct H2Plan {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    body: Option<Bytes>,
    grpc: bool,
    streams: usize,
}

impl H2Plan {
    /// Built from the options `validate` has checked (an invalid method,
    /// path or header falls back to what is valid, and is caught there).
    pub fn new(spec: &RequestSpec, h2: &H2Load, tls: bool) -> H2Plan {
        let scheme = if tls { "https" } else { "http" };
        let (method, path, body) = match h2.grpc {
            Some(payload) => (
                http::Method::POST,
                grpc::UNARY_PATH,
                Some(grpc::unary_request(payload)),
            ),
            None => (
                http::Method::from_bytes(spec.method.as_bytes()).unwrap_or(http::Method::GET),
                spec.path.as_str(),
                (spec.body_size > 0).then(|| Bytes::from(vec![b'x'; spec.body_size])),
            ),
        };
        let uri = format!("{scheme}://{}{path}", spec.host)
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("http://bench/"));
        let mut headers = http::HeaderMap::new();
        for (k, v) in &spec.headers {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                headers.append(k, v);
            }
        }
        if h2.grpc.is_some() {
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(grpc::CONTENT_TYPE),
            );
            headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        }
        H2Plan {
            method,
            uri,
            headers,
            body,
            grpc: h2.grpc.is_some(),
            streams: h2.streams,
        }
    }

    fn request(&self) -> http::Request<()> {
        let mut req = http::Request::new(());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Check what [`H2Plan::new`] would otherwise quietly replace.
pub fn check(spec: &RequestSpec) -> Result<(), String> {
    http::Method::from_bytes(spec.method.as_bytes())
        .map_err(|_| format!("--method {:?}: not an HTTP method", spec.method))?;
    format!("http://{}{}", spec.host, spec.path)
        .parse::<http::Uri>()
        .map_err(|e| {
            format!(
                "{}{}: not a valid URL for HTTP/2: {e}",
                spec.host, spec.path
            )
        })?;
    for (k, v) in &spec.headers {
        http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("header {k:?}: not a valid header name"))?;
        http::HeaderValue::from_str(v).map_err(|_| format!("header {k:?}: invalid value"))?;
        if [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
            "host",
        ]
        .contains(&k.to_ascii_lowercase().as_str())
        {
            return Err(format!(
                "header {k:?}: not allowed in HTTP/2 (connection-specific)"
            ));
        }
    }
    Ok(())
}

/// One stream slot: a client of its own on the connection, with its
/// share of the open loop's schedule (kept across reconnections).
struct Slot {
    schedule: Option<Schedule>,
    pacer: Option<Pacer>,
}

/// What a slot's loop ended on.
enum SlotEnd {
    /// The run is over (time, or stop).
    Done,
    /// The connection can take no more streams: open another.
    Reconnect,
}

/// Connection `c` of `conns`: open it, run its stream slots until the run
/// ends, and open it again whenever it breaks.
pub(super) async fn connection(t: &Rc<Thread>, c: usize, conns: usize) -> io::Result<()> {
    let Some(plan) = &t.plan.h2 else {
        return Ok(());
    };
    let m = plan.streams;
    let mut slots = Vec::with_capacity(m);
    for s in 0..m {
        slots.push(Slot {
            schedule: t
                .plan
                .opts
                .rate
                .map(|rate| Schedule::new(t.plan.start, rate, c * m + s, conns * m)),
            pacer: match t.plan.opts.rate {
                Some(_) => Some(Pacer::new(t.uring)?),
                None => None,
            },
        });
    }
    while !t.stopping() && Instant::now() < t.plan.end {
        let t0 = Instant::now();
        let conn = match connect(t, t0).await {
            Ok(conn) => Rc::new(conn),
            Err(f) => {
                t.record(t0, &Err(f));
                // A refused connect returns at once: pause so a dead
                // target is not hammered in a busy loop.
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let mut tasks = Vec::with_capacity(m);
        for mut slot in slots.drain(..) {
            let (t, conn) = (t.clone(), conn.clone());
            tasks.push(monoio::spawn(async move {
                let end = match slot.schedule.is_some() {
                    true => paced(&t, &conn, &mut slot).await,
                    false => closed(&t, &conn).await,
                };
                (slot, end)
            }));
        }
        let mut done = true;
        for task in tasks {
            let (slot, end) = task.await;
            slots.push(slot);
            done &= matches!(end, Ok(SlotEnd::Done));
            end?;
        }
        if done {
            return Ok(());
        }
    }
    Ok(())
}

/// Connect (over TLS, the handshake too) and start HTTP/2; the timeout
/// bounds it all.
async fn connect(t: &Thread, t0: Instant) -> Result<H2Conn, Failure> {
    let setup = async {
        let stream = open(t, t0).await?;
        client::handshake(stream).await.map_err(|e| match e {
            client::HandshakeError::NoAlpn => Failure::Handshake,
            client::HandshakeError::Io(_) => Failure::Reset,
            client::HandshakeError::H2(_) => Failure::Protocol,
        })
    };
    match monoio::time::timeout(t.plan.opts.timeout, setup).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Timeout),
    }
}

/// Closed loop: the slot's next request goes when its last answer ended.
async fn closed(t: &Thread, conn: &H2Conn) -> io::Result<SlotEnd> {
    while !t.stopping() {
        if conn.ended() {
            return Ok(SlotEnd::Reconnect);
        }
        if let Step::Reconnect = one(t, conn, Instant::now()).await {
            return Ok(SlotEnd::Reconnect);
        }
    }
    Ok(SlotEnd::Done)
}

/// Open loop: the slot's requests go at their due times, latency counts
/// from then; one not sent for want of a connection stays due.
async fn paced(t: &Thread, conn: &H2Conn, slot: &mut Slot) -> io::Result<SlotEnd> {
    let (Some(schedule), Some(pacer)) = (slot.schedule.as_mut(), slot.pacer.as_mut()) else {
        return Ok(SlotEnd::Done);
    };
    loop {
        let due = schedule.peek();
        if due >= t.plan.end || t.stopping() {
            return Ok(SlotEnd::Done);
        }
        pacer.until(due).await?;
        if t.stopping() {
            return Ok(SlotEnd::Done);
        }
        if conn.ended() {
            return Ok(SlotEnd::Reconnect);
        }
        match one(t, conn, due).await {
            Step::Unsent => return Ok(SlotEnd::Reconnect),
            Step::Reconnect => {
                schedule.next_due();
                return Ok(SlotEnd::Reconnect);
            }
            Step::Next => {
                schedule.next_due();
            }
        }
    }
}

enum Step {
    /// Counted; the connection takes more.
    Next,
    /// Counted; the connection is done.
    Reconnect,
    /// Not sent (the connection takes no new stream): not counted.
    Unsent,
}

/// One request and its answer, counted from `t0`.
async fn one(t: &Thread, conn: &H2Conn, t0: Instant) -> Step {
    let Some(plan) = &t.plan.h2 else {
        return Step::Unsent;
    };
    let mut send = conn.send.clone();
    let exchange = async {
        client::ready(&mut send).await?;
        client::exchange(&mut send, plan.request(), plan.body.as_ref(), plan.grpc).await
    };
    let result = match monoio::time::timeout(t.plan.opts.timeout, exchange).await {
        Ok(Err(H2Failure::Gone)) => return Step::Unsent,
        Ok(r) => r.map_err(failure),
        Err(_) => Err(Failure::Timeout),
    };
    let result = result.and_then(|r| outcome(r, plan.grpc));
    t.record(t0, &result);
    match result {
        Err(Failure::GoAway | Failure::Reset | Failure::Protocol) => Step::Reconnect,
        _ if conn.ended() => Step::Reconnect,
        _ => Step::Next,
    }
}

fn failure(f: H2Failure) -> Failure {
    match f {
        H2Failure::Gone | H2Failure::Reset => Failure::Reset,
        H2Failure::RstStream => Failure::RstStream,
        H2Failure::GoAway => Failure::GoAway,
        H2Failure::Protocol => Failure::Protocol,
    }
}

/// An HTTP/2 answer as the load counts it.
fn outcome(r: H2Response, grpc: bool) -> Result<Response, Failure> {
    if grpc && r.status == 200 && r.grpc_status != Some(0) {
        return Err(Failure::Grpc {
            body_bytes: r.body_bytes,
        });
    }
    Ok(Response {
        status: r.status,
        body_bytes: r.body_bytes,
        reusable: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RequestSpec {
        RequestSpec {
            method: "GET".into(),
            host: "127.0.0.1:8080".into(),
            path: "/a?b".into(),
            headers: vec![("X-Test".into(), "1".into())],
            body_size: 0,
            close: false,
        }
    }

    #[test]
    fn requests_are_made_once_and_copied() {
        let p = H2Plan::new(&spec(), &H2Load::default(), false);
        let r = p.request();
        assert_eq!(r.method(), http::Method::GET);
        assert_eq!(r.uri().to_string(), "http://127.0.0.1:8080/a?b");
        assert_eq!(r.headers()["x-test"], "1");
        assert!(p.body.is_none());
        let g = H2Plan::new(
            &spec(),
            &H2Load {
                streams: 4,
                grpc: Some(10),
            },
            true,
        );
        let r = g.request();
        assert_eq!(r.method(), http::Method::POST);
        assert_eq!(
            r.uri().to_string(),
            "https://127.0.0.1:8080/ringmesh.testing.v1.Echo/Unary"
        );
        assert_eq!(r.headers()["content-type"], "application/grpc");
        assert_eq!(r.headers()["te"], "trailers");
        // 5-byte prefix, field tag and length, 10 payload bytes.
        assert_eq!(g.body.as_ref().map(|b| b.len()), Some(17));
    }

    #[test]
    fn bad_requests_are_refused_before_the_run() {
        assert!(check(&spec()).is_ok());
        let mut s = spec();
        s.headers.push(("Connection".into(), "close".into()));
        assert!(check(&s).unwrap_err().contains("not allowed in HTTP/2"));
        let mut s = spec();
        s.method = "GE T".into();
        assert!(check(&s).unwrap_err().contains("not an HTTP method"));
    }

    #[test]
    fn a_failed_call_is_an_answer_and_an_error() {
        let ok = H2Response {
            status: 200,
            body_bytes: 5,
            grpc_status: Some(0),
        };
        assert!(outcome(ok, true).is_ok());
        let failed = H2Response {
            grpc_status: Some(14),
            ..ok
        };
        assert!(matches!(
            outcome(failed, true),
            Err(Failure::Grpc { body_bytes: 5 })
        ));
        // Plain requests never look at grpc-status.
        assert!(outcome(failed, false).is_ok());
        // A gRPC call answered with 503 counts as a status error.
        let r = outcome(
            H2Response {
                status: 503,
                ..failed
            },
            true,
        );
        assert_eq!(r.map(|r| r.status).ok(), Some(503));
    }
}
