//! The server side of a new TLS connection: the handshake, bounded by the
//! listener's `handshake_timeout`, before the connection's first request.
//!
//! It runs in the connection's handler, never in the accept loop, so a
//! slow or stalled client holds only its own task. A failure answers the
//! client nothing but the TLS alert rustls chose (no HTTP error, no detail
//! an attacker could use), is counted by reason, and is logged at a
//! limited rate.

use std::rc::Rc;

use tracing::info;

use super::reason;
use super::server::ServerTls;
use crate::timer::Timer;
use crate::transport::tls::TlsStream;
use crate::transport::Stream;
use crate::worker::Core;

/// Run the handshake on a new connection; `None` when it failed (the
/// connection is closed).
pub async fn handshake(
    core: &Rc<Core>,
    listener: usize,
    io: Stream,
    tls: &ServerTls,
    timer: &mut Timer,
) -> Option<Stream> {
    let stats = &core.stats.listeners[listener];
    let tcp = match io.into_tcp() {
        Ok(tcp) => tcp,
        // Only a TCP stream is ever accepted on a TLS listener.
        Err(other) => return Some(other),
    };
    let mut s = match TlsStream::accept(tcp, tls.config.clone()) {
        Ok(s) => s,
        Err(e) => {
            fail(core, listener, reason::label(&e), &e.to_string());
            return None;
        }
    };
    match timer.within(tls.handshake_timeout, s.handshake()).await {
        Ok(Ok(())) => {
            stats.tls_handshakes.inc();
            Some(Stream::Tls(Box::new(s)))
        }
        Ok(Err(e)) => {
            fail(core, listener, reason::label(&e), &e.to_string());
            None
        }
        Err(_) => {
            fail(core, listener, "timeout", "handshake timed out");
            None
        }
    }
}

fn fail(core: &Core, listener: usize, label: &'static str, detail: &str) {
    core.stats.listeners[listener].tls_failed(label);
    // A client that gave up (closed, timed out) is routine; a refused
    // handshake is worth a line, rate-limited: scanners send many.
    if !matches!(label, "peer_closed" | "io") && core.log_limit.allow() {
        info!(
            worker = core.id,
            listener = %core.snapshot().config.listeners[listener].name,
            reason = label,
            error = detail,
            "TLS handshake failed"
        );
    }
}
