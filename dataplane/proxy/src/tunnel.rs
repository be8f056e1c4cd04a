//! Tunnels: after `101 Switching Protocols` (WebSocket and other upgrades)
//! the proxy relays bytes both ways until either side is done.
//!
//! Bytes already read on each side go first. Then each direction is
//! copied through a buffer over the streams' read and write halves
//! (`transport::ReadHalf`/`WriteHalf`), plain TCP or TLS alike: 4 KiB
//! while messages are small (what a quiet tunnel holds), 64 KiB while
//! reads fill the buffer. A direction ends when its sender closes, and the
//! other side then sees a half-close.
//!
//! Why not splice: splice through a pipe (64 KiB per call) was measured
//! against this copy on the TCP relay scenario (`perf/scenarios/tcp.toml`,
//! HTTP request/response through the relay): 45.5 against 26.3 CPU µs per
//! request at 19.9k req/s, 576k against 845k pipelined req/s, 133 against
//! 72 CPU µs per new connection (two pipes to make and close). io_uring
//! runs splices with a pipe end in its worker threads, and a pipe per
//! direction costs two descriptors per tunnel for its whole life.
//!
//! A tunnel holds its client connection's place in the listener's limit
//! and its upstream connection's place in the cluster's limit for as long
//! as it lives. It ends when neither direction has moved a byte for the
//! listener's `tunnel_idle_timeout`, or when listeners close on drain.
//!

use std::cell::Cell;
use std::io;
use std::time::Duration;

use futures_util::future::{select, Either};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::time::Instant;

use crate::buf::ReadBuf;
use crate::drain::Drain;
use crate::metrics::Counter;
use crate::transport::{ReadHalf, Stream, WriteHalf};
use crate::upstream::UpstreamConn;

/// When bytes last moved, and how many each way: the idle watchdog reads
/// the first, the listener's `ringmesh_tunnel_bytes_total` counts the
/// others as they move (per-core counters, a relaxed add per chunk).
pub struct Meter<'a> {
    last: Cell<Instant>,
    /// Client to upstream.
    pub up: &'a Counter,
    /// Upstream to client.
    pub down: &'a Counter,
    /// This tunnel's own bytes, each way (for its access log line).
    pub sent_up: Cell<u64>,
    pub sent_down: Cell<u64>,
}

impl<'a> Meter<'a> {
    pub fn new(up: &'a Counter, down: &'a Counter) -> Self {
        Meter {
            last: Cell::new(Instant::now()),
            up,
            down,
            sent_up: Cell::new(0),
            sent_down: Cell::new(0),
        }
    }

    fn moved(&self, way: Way, n: usize) {
        let (counter, mine) = match way {
            Way::Up => (self.up, &self.sent_up),
            Way::Down => (self.down, &self.sent_down),
        };
        counter.add(n as u64);
        mine.set(mine.get() + n as u64);
        self.last.set(Instant::now());
    }
}

/// A direction of a tunnel.
#[derive(Debug, Clone, Copy)]
enum Way {
    /// Client to upstream.
    Up,
    /// Upstream to client.
    Down,
}

/// Relay `client` and `upstream` until both directions end, the tunnel is
/// idle for `idle`, or listeners close.
pub async fn run(
    client: Stream,
    upstream: UpstreamConn,
    from_client: &mut ReadBuf,
    from_upstream: &mut ReadBuf,
    idle: Duration,
    drain: &Drain,
    meter: &Meter<'_>,
) {
    let (up, _slot) = upstream.into_parts();
    meter.last.set(Instant::now());
    let relay = std::pin::pin!(relay_both(client, up, from_client, from_upstream, meter));
    let watchdog = std::pin::pin!(watchdog(&meter.last, idle));
    let stopped = std::pin::pin!(drain.stopped());
    // Whichever ends first drops the others: an idle or stopped tunnel's
    // sockets close with it.
    if let Either::Right(_) = select(relay, select(watchdog, stopped)).await {
        tracing::debug!("tunnel closed: idle or listeners closed");
    }
}

/// Resolves once no byte has moved for `idle`.
async fn watchdog(activity: &Cell<Instant>, idle: Duration) {
    loop {
        let due = activity.get() + idle;
        if Instant::now() >= due {
            return;
        }
        monoio::time::sleep_until(due).await;
    }
}

async fn relay_both(
    mut client: Stream,
    mut upstream: Stream,
    from_client: &mut ReadBuf,
    from_upstream: &mut ReadBuf,
    meter: &Meter<'_>,
) {
    // Bytes each side sent after its head go first (within the idle
    // watchdog, like everything else here).
    let n = from_client.len();
    if n > 0 && from_client.write_to(&mut upstream, n).await.is_err() {
        return;
    }
    meter.moved(Way::Up, n);
    let n = from_upstream.len();
    if n > 0 && from_upstream.write_to(&mut client, n).await.is_err() {
        return;
    }
    meter.moved(Way::Down, n);
    from_client.clear();
    from_upstream.clear();
    match (client, upstream) {
        #[cfg(test)]
        (Stream::Memory(c), Stream::Memory(u)) => {
            crate::transport::memory::copy_both(c, u, &meter.last).await
        }
        (client, upstream) => match (client.into_halves(), upstream.into_halves()) {
            (Ok(c), Ok(u)) => copy_both(c, u, meter).await,
            _ => tracing::warn!("tunnel between a memory pipe and a socket"),
        },
    }
}

/// A direction's buffer while messages are small, and what an idle
/// relay holds per direction (a read posted to io_uring keeps its buffer
/// while it waits).
const COPY_SMALL: usize = 4 * 1024;

/// A direction's buffer while a read fills the buffer it has: bulk
/// transfers move 64 KiB per read and write.
const COPY_LARGE: usize = 64 * 1024;

async fn copy_both(
    (mut cr, mut cw): (ReadHalf, WriteHalf),
    (mut ur, mut uw): (ReadHalf, WriteHalf),
    meter: &Meter<'_>,
) {
    let up = async {
        let _ = copy_one(&mut cr, &mut uw, meter, Way::Up).await;
        let _ = uw.shutdown().await;
    };
    let down = async {
        let _ = copy_one(&mut ur, &mut cw, meter, Way::Down).await;
        let _ = cw.shutdown().await;
    };
    monoio::join!(up, down);
}

/// Copy from `src` to `dst` until `src` ends. The buffer grows to
/// `COPY_LARGE` when a read fills it and shrinks back to `COPY_SMALL` when
/// a read would have fit the small one, so a bulk transfer moves large
/// chunks and a quiet relay holds 4 KiB per direction.
async fn copy_one(
    src: &mut ReadHalf,
    dst: &mut WriteHalf,
    meter: &Meter<'_>,
    way: Way,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(COPY_SMALL);
    loop {
        buf.clear();
        let (res, b) = src.read(buf).await;
        buf = b;
        let n = res?;
        if n == 0 {
            return Ok(());
        }
        meter.last.set(Instant::now());
        let size = next_size(n, buf.capacity());
        let (res, b) = dst.write_all(buf).await;
        buf = b;
        res?;
        meter.moved(way, n);
        if size != buf.capacity() {
            buf = Vec::with_capacity(size);
        }
    }
}

/// The buffer for the next read after one of `n` bytes into `cap`.
fn next_size(n: usize, cap: usize) -> usize {
    if n == cap && cap < COPY_LARGE {
        COPY_LARGE
    } else if n <= COPY_SMALL && cap > COPY_SMALL {
        COPY_SMALL
    } else {
        cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_buffer_grows_for_bulk_and_shrinks_when_quiet() {
        assert_eq!(
            next_size(COPY_SMALL, COPY_SMALL),
            COPY_LARGE,
            "a full read grows it"
        );
        assert_eq!(next_size(100, COPY_SMALL), COPY_SMALL);
        assert_eq!(next_size(COPY_LARGE, COPY_LARGE), COPY_LARGE);
        assert_eq!(
            next_size(30_000, COPY_LARGE),
            COPY_LARGE,
            "mid-sized reads keep it"
        );
        assert_eq!(
            next_size(100, COPY_LARGE),
            COPY_SMALL,
            "a small read shrinks it"
        );
    }
}
