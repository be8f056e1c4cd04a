//! Tunnels: after `101 Switching Protocols` (WebSocket and other upgrades)
//! the proxy relays bytes both ways until either side is done.
//!
//! Bytes already read on each side go first. Then, when both ends are
//! plain TCP, each direction is spliced: moved through a pipe by the
//! kernel, never copied into user space (64 KiB per splice; monoio 0.2's
//! own `zero_copy` moves 4 KiB at a time). A direction ends when its
//! sender closes, and the other side then sees a half-close.
//!
//! A tunnel holds its client connection's place in the listener's limit
//! and its upstream connection's place in the cluster's limit for as long
//! as it lives. It ends when neither direction has moved a byte for the
//! listener's `tunnel_idle_timeout`, or when listeners close on drain.
//!
//! A TLS end cannot be spliced (the kernel would move ciphertext): then
//! each direction is copied through a buffer in user space, over the
//! streams' read and write halves (`transport::ReadHalf`/`WriteHalf`).

use std::cell::Cell;
use std::io;
use std::time::Duration;

use futures_util::future::{select, Either};
use monoio::io::splice::{SpliceDestination, SpliceSource};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;
use monoio::time::Instant;

use crate::buf::ReadBuf;
use crate::drain::Drain;
use crate::metrics::Counter;
use crate::transport::{ReadHalf, Stream, WriteHalf};
use crate::upstream::UpstreamConn;

/// Bytes moved per splice: the pipe's default capacity.
const SPLICE_LEN: u32 = 64 * 1024;

/// When bytes last moved, and how many each way: the idle watchdog reads
/// the first, the listener's `ringmesh_tunnel_bytes_total` counts the
/// others as they move (per-core counters, a relaxed add per chunk).
pub struct Meter<'a> {
    last: Cell<Instant>,
    /// Client to upstream.
    pub up: &'a Counter,
    /// Upstream to client.
    pub down: &'a Counter,
}

impl<'a> Meter<'a> {
    pub fn new(up: &'a Counter, down: &'a Counter) -> Self {
        Meter {
            last: Cell::new(Instant::now()),
            up,
            down,
        }
    }

    fn moved(&self, counter: &Counter, n: usize) {
        counter.add(n as u64);
        self.last.set(Instant::now());
    }
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
    meter.moved(meter.up, n);
    let n = from_upstream.len();
    if n > 0 && from_upstream.write_to(&mut client, n).await.is_err() {
        return;
    }
    meter.moved(meter.down, n);
    from_client.clear();
    from_upstream.clear();
    match (client, upstream) {
        (Stream::Plain(c), Stream::Plain(u)) => splice_both(c, u, meter).await,
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

/// Bytes copied per read when an end is TLS: a record's worth.
const COPY_BUF: usize = 16 * 1024;

async fn copy_both(
    (mut cr, mut cw): (ReadHalf, WriteHalf),
    (mut ur, mut uw): (ReadHalf, WriteHalf),
    meter: &Meter<'_>,
) {
    let up = async {
        let _ = copy_one(&mut cr, &mut uw, meter, meter.up).await;
        let _ = uw.shutdown().await;
    };
    let down = async {
        let _ = copy_one(&mut ur, &mut cw, meter, meter.down).await;
        let _ = cw.shutdown().await;
    };
    monoio::join!(up, down);
}

/// Copy from `src` to `dst` until `src` ends.
async fn copy_one(
    src: &mut ReadHalf,
    dst: &mut WriteHalf,
    meter: &Meter<'_>,
    counter: &Counter,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(COPY_BUF);
    loop {
        buf.clear();
        let (res, b) = src.read(buf).await;
        buf = b;
        let n = res?;
        if n == 0 {
            return Ok(());
        }
        meter.last.set(Instant::now());
        let (res, b) = dst.write_all(buf).await;
        buf = b;
        res?;
        meter.moved(counter, n);
    }
}

async fn splice_both(client: TcpStream, upstream: TcpStream, meter: &Meter<'_>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let up = async {
        let _ = splice_one(&mut cr, &mut uw, meter, meter.up).await;
        let _ = uw.shutdown().await;
    };
    let down = async {
        let _ = splice_one(&mut ur, &mut cw, meter, meter.down).await;
        let _ = cw.shutdown().await;
    };
    monoio::join!(up, down);
}

/// Move bytes from `src` to `dst` through a pipe until `src` closes.
async fn splice_one<R: SpliceSource, W: SpliceDestination>(
    src: &mut R,
    dst: &mut W,
    meter: &Meter<'_>,
    counter: &Counter,
) -> io::Result<()> {
    let (mut pipe_r, mut pipe_w) = monoio::net::unix::new_pipe()?;
    loop {
        let n = src.splice_to_pipe(&mut pipe_w, SPLICE_LEN).await?;
        if n == 0 {
            return Ok(());
        }
        meter.last.set(Instant::now());
        let mut left = n;
        while left > 0 {
            let m = dst.splice_from_pipe(&mut pipe_r, left).await?;
            if m == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            left -= m;
        }
        meter.moved(counter, n as usize);
    }
}
