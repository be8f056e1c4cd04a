//! An HTTP/2 client connection: the h2 connection task and its streams.
//!
//! h2's server `Connection` is both the acceptor of new streams and the
//! driver of the connection's IO (every stream's frames move only while it
//! is polled), so one task per connection loops on `accept()` for as long
//! as the connection lives, and each accepted stream runs the pipeline in
//! a task of its own: streams of one connection are served concurrently.
//!
//! The connection ends when the client closes it, after `idle_timeout`
//! with no open stream (GOAWAY, then close), or when listeners close on
//! drain: GOAWAY at once, streams in flight finish (the worker's drain
//! timeout bounds them), no new stream is accepted.
//!
//! Limits come from the listener's `http2` settings, sent in the proxy's
//! SETTINGS frame; h2 enforces the rest: a stream reset before it was
//! accepted counts against `max_pending_accept_reset_streams` (rapid
//! reset), a stream the proxy had to reset for the client's protocol
//! errors against `max_local_error_reset_streams`, the header list
//! (CONTINUATION frames included) against `max_header_list_size`; past
//! any of them the client gets GOAWAY.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::{select, Either};
use h2::server::{Builder, SendResponse};
use h2::RecvStream;
use tracing::debug;

use super::stream::H2Stream;
use super::view::H2Request;
use crate::config::model::Http2;
use crate::h1::server::IpText;
use crate::park::ConnSlot;
use crate::pipeline;
use crate::timer::Timer;
use crate::transport::h2io::H2Io;
use crate::worker::Core;

/// Bytes h2 may queue for one stream before `poll_capacity` waits: a few
/// frames in flight, not a whole response per stream (h2's default is
/// 400 KiB per stream, 40 MiB for 100 streams).
const SEND_BUFFER: usize = 64 * 1024;

/// After an idle connection's GOAWAY: time for the client's PING answer
/// and any stream that raced the GOAWAY.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// A connection being served.
pub struct Conn {
    pub core: Rc<Core>,
    pub listener: usize,
    pub peer: SocketAddr,
    /// `http` or `https`: what the client connected over.
    pub scheme: &'static [u8],
    /// Counts the connection against its listener while it lives.
    pub slot: ConnSlot,
    /// The client's identity (`tls::principal`), for authorization.
    pub principal: Option<Rc<[u8]>>,
}

fn builder(s: &Http2) -> Builder {
    let mut b = Builder::new();
    b.max_concurrent_streams(s.max_concurrent_streams)
        .initial_window_size(s.initial_stream_window)
        .initial_connection_window_size(s.initial_connection_window)
        .max_header_list_size(s.max_header_list_size)
        .max_frame_size(s.max_frame_size)
        .max_pending_accept_reset_streams(s.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(s.max_local_error_reset_streams))
        .max_send_buffer_size(SEND_BUFFER);
    b
}

/// Streams open on a connection, when the last one ended, and how many
/// the client reset before their response.
struct Activity {
    open: Cell<usize>,
    last: Cell<Instant>,
    streams: Cell<u64>,
    premature: Cell<u64>,
}

/// Streams a connection may open before its resets are judged; then, when
/// most of its streams were reset by the client before their response, the
/// connection is an attack (rapid reset paced slower than h2's own
/// detection, which counts only streams reset before they are accepted)
/// and ends with GOAWAY ENHANCE_YOUR_CALM. Envoy judges the same way after
/// 500 streams; a smaller count stops an attacker sooner, and honest
/// clients (gRPC cancellations) reset a few streams, not most.
const PREMATURE_RESET_MIN_STREAMS: u64 = 100;

impl Activity {
    fn is_abusive(&self) -> bool {
        let (total, premature) = (self.streams.get(), self.premature.get());
        total >= PREMATURE_RESET_MIN_STREAMS && premature * 2 > total
    }
}

/// Serve `io` as an HTTP/2 connection until it closes.
pub async fn serve(conn: Conn, io: H2Io) {
    let Conn {
        core,
        listener,
        peer,
        scheme,
        slot,
        principal,
    } = conn;
    let (settings, idle, handshake_timeout) = {
        let snap = core.snapshot();
        let l = &snap.config.listeners[listener];
        let Some(settings) = l.http2 else { return };
        (settings, l.idle_timeout, l.header_read_timeout)
    };
    let mut timer = Timer::new();
    let handshake = builder(&settings).handshake::<_, Bytes>(io);
    let mut h2 = match timer.within(handshake_timeout, handshake).await {
        Ok(Ok(h2)) => h2,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "h2 handshake failed");
            return;
        }
        Err(_) => return,
    };
    let activity = Rc::new(Activity {
        open: Cell::new(0),
        last: Cell::new(Instant::now()),
        streams: Cell::new(0),
        premature: Cell::new(0),
    });
    let client_ip = IpText::new(peer.ip());
    // Set once GOAWAY went out: past it, the connection is dropped.
    let mut closing: Option<Option<monoio::time::Instant>> = None;
    // Armed once per idle period, not per stream: a busy connection
    // accepts streams without touching the timer wheel.
    let mut stop = std::pin::pin!(core.drain.stopped());
    timer.after(idle);
    loop {
        let event = match closing {
            // Draining: streams in flight finish; the worker's drain
            // timeout bounds them.
            Some(None) => Some(h2.accept().await),
            Some(Some(deadline)) => match timer.until(deadline, h2.accept()).await {
                Ok(next) => Some(next),
                Err(_) => break,
            },
            None => {
                let accept = std::pin::pin!(h2.accept());
                match select(accept, select(stop.as_mut(), timer.armed())).await {
                    Either::Left((next, _)) => Some(next),
                    Either::Right((Either::Left(_), _)) => {
                        closing = Some(None);
                        None
                    }
                    Either::Right((Either::Right(_), _)) => None,
                }
            }
        };
        if closing == Some(None) && event.is_none() {
            h2.graceful_shutdown();
        }
        match event {
            Some(Some(Ok((req, respond)))) => {
                if closing.is_none() && activity.is_abusive() {
                    debug!(%peer, "h2: most streams reset before their response; closing");
                    h2.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
                    closing = Some(Some(monoio::time::Instant::now() + CLOSE_GRACE));
                    continue;
                }
                activity.streams.set(activity.streams.get() + 1);
                let (parts, body) = req.into_parts();
                let stream = StreamTask {
                    core: core.clone(),
                    listener,
                    peer,
                    client_ip,
                    scheme,
                    activity: activity.clone(),
                    principal: principal.clone(),
                };
                activity.open.set(activity.open.get() + 1);
                monoio::spawn(stream.run(parts, body, respond));
            }
            Some(Some(Err(e))) => {
                debug!(%peer, error = %e, "h2 connection error");
                break;
            }
            Some(None) => break,
            None => {
                let quiet_for = activity.last.get().elapsed();
                let quiet = activity.open.get() == 0 && quiet_for >= idle;
                if !quiet {
                    // Due when the connection will have been quiet for the
                    // idle timeout (busy now: a whole one from now).
                    let left = match activity.open.get() {
                        0 => idle.saturating_sub(quiet_for),
                        _ => idle,
                    };
                    timer.after(left.max(std::time::Duration::from_millis(1)));
                }
                if quiet && closing.is_none() {
                    // GOAWAY, then h2 waits for a PING round trip before
                    // closing; a client that never answers it is cut off.
                    closing = Some(Some(monoio::time::Instant::now() + CLOSE_GRACE));
                    h2.graceful_shutdown();
                }
            }
        }
    }
    drop(slot);
}

/// What a stream's task needs from its connection.
struct StreamTask {
    core: Rc<Core>,
    listener: usize,
    peer: SocketAddr,
    client_ip: IpText,
    scheme: &'static [u8],
    activity: Rc<Activity>,
    principal: Option<Rc<[u8]>>,
}

impl StreamTask {
    async fn run(
        self,
        parts: http::request::Parts,
        body: RecvStream,
        respond: SendResponse<Bytes>,
    ) {
        // The config a request runs on is the one in force when its head
        // arrived, as for HTTP/1.1.
        let snap = self.core.snapshot();
        let stall = snap.config.listeners[self.listener].idle_timeout;
        let req = H2Request {
            parts,
            scheme: self.scheme,
            empty: body.is_end_stream(),
        };
        let mut stream = H2Stream::new(req, body, respond, self.core.clone(), stall);
        let env = pipeline::Env {
            core: &self.core,
            snap: &snap,
            listener: self.listener,
            client_ip: self.client_ip.as_bytes(),
            client: self.peer.ip(),
            client_port: self.peer.port(),
            scheme: self.scheme,
            principal: self.principal.as_deref(),
        };
        let _ = pipeline::serve(&mut stream, &env).await;
        let premature = stream.finish();
        let a = &self.activity;
        if premature {
            a.premature.set(a.premature.get() + 1);
        }
        a.open.set(a.open.get() - 1);
        a.last.set(Instant::now());
    }
}
