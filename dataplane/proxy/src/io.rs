//! Buffers and body relays over monoio's ownership-passing IO.
//!
//! io_uring owns a buffer while an operation is in flight, so reads and
//! writes take buffers by value and hand them back. `ReadBuf` wraps that
//! dance for the one read buffer each side of a connection has. Body bytes
//! are written straight out of the buffer they were read into (a `Slice` of
//! it): no copy on the proxy's side for content-length and chunked bodies.

use std::io;
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use ringmesh_http1::chunked::{write_chunk_header, LAST_CHUNK};
use ringmesh_http1::{ChunkedDecoder, ChunkedError};

use futures_util::FutureExt;

use crate::timer::Timer;

/// Room a read asks the kernel to fill at least; below this the buffer is
/// compacted or grown first.
const MIN_READ: usize = 4096;

/// A connection's read buffer: `buf[start..]` holds bytes not yet consumed.
#[derive(Debug)]
pub struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    /// Initial capacity, restored by `shrink` after a large head.
    base: usize,
}

impl ReadBuf {
    pub fn with_capacity(n: usize) -> Self {
        ReadBuf {
            buf: Vec::with_capacity(n),
            start: 0,
            base: n,
        }
    }

    /// Wrap a (pooled) buffer; `shrink` keeps its capacity.
    pub fn from_vec(mut buf: Vec<u8>) -> Self {
        buf.clear();
        let base = buf.capacity();
        ReadBuf {
            buf,
            start: 0,
            base,
        }
    }

    /// The allocation, for returning it to a pool.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Drop unconsumed bytes.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Give back memory a large head made the buffer grow to.
    pub fn shrink(&mut self) {
        if self.buf.capacity() > self.base && self.is_empty() {
            self.buf = Vec::with_capacity(self.base);
        }
    }

    /// Read more bytes, growing the buffer up to `limit`. Returns 0 at EOF.
    pub async fn fill<R: AsyncReadRent>(&mut self, io: &mut R, limit: usize) -> io::Result<usize> {
        self.make_room(limit)?;
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        let cap = buf.capacity();
        let (res, slice) = io.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        res
    }

    /// Room for the next read. An empty buffer reads into the capacity it
    /// has: an idle connection's small buffer must not grow before a byte
    /// arrives. A buffer holding a partial message is compacted, then
    /// doubled up to `limit` when less than `MIN_READ` is left.
    fn make_room(&mut self, limit: usize) -> io::Result<()> {
        let spare = self.buf.capacity() - self.buf.len();
        if spare >= MIN_READ || (self.is_empty() && spare > 0) {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(self.buf.len() - self.start);
            self.start = 0;
        }
        let spare = self.buf.capacity() - self.buf.len();
        if spare >= MIN_READ || (spare > 0 && self.buf.capacity() >= limit) {
            return Ok(());
        }
        if self.buf.capacity() >= limit {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "read buffer limit reached",
            ));
        }
        let want = (self.buf.capacity() * 2).clamp(MIN_READ * 2, limit.max(MIN_READ * 2));
        self.buf.reserve_exact(want - self.buf.len());
        Ok(())
    }

    /// `fill` with a read that `handle`'s canceller can cancel; a cancelled
    /// read returns an error and leaves the buffer as it was.
    pub async fn fill_cancelable(
        &mut self,
        io: &mut monoio::net::TcpStream,
        limit: usize,
        handle: monoio::io::CancelHandle,
    ) -> io::Result<usize> {
        use monoio::io::CancelableAsyncReadRent;
        self.make_room(limit)?;
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        let cap = buf.capacity();
        let (res, slice) = io.cancelable_read(buf.slice_mut(len..cap), handle).await;
        self.buf = slice.into_inner();
        res
    }

    /// Grow to at least `BODY_READ` for streaming a body, so a large body
    /// moves in large reads; `shrink` gives it back afterwards.
    pub fn reserve_for_body(&mut self) {
        if self.buf.capacity() < BODY_READ {
            self.buf.reserve_exact(BODY_READ - self.buf.len());
        }
    }

    /// Write the first `n` unconsumed bytes to `io` and consume them.
    pub async fn write_to<W: AsyncWriteRent>(&mut self, io: &mut W, n: usize) -> io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let (res, slice) = io.write_all(buf.slice(self.start..self.start + n)).await;
        self.buf = slice.into_inner();
        res?;
        self.consume(n);
        Ok(())
    }
}

/// Write all of `out` and keep its allocation for the next use.
pub async fn write_vec<W: AsyncWriteRent>(io: &mut W, out: &mut Vec<u8>) -> io::Result<()> {
    let buf = std::mem::take(out);
    let (res, mut buf) = io.write_all(buf).await;
    buf.clear();
    *out = buf;
    res.map(|_| ())
}

/// How a body is delimited on the way in and on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// Exactly this many bytes, forwarded as is.
    Length(u64),
    /// Chunked in, chunked out: forwarded verbatim while the walker finds
    /// its end and checks its framing.
    Chunked,
    /// Chunked in, raw out: for HTTP/1.0 clients, the body ends at close.
    Dechunk,
    /// Until the sender closes, re-chunked for an HTTP/1.1 client.
    Rechunk,
    /// Until the sender closes, forwarded as is.
    UntilClose,
}

#[derive(Debug)]
pub enum RelayError {
    Read(io::Error),
    Write(io::Error),
    /// The sender closed before the body was complete.
    Truncated,
    /// No progress within the idle timeout.
    Timeout,
    Framing(ChunkedError),
}

/// Move the part of a body that has already arrived from `buf` to `out`,
/// behind the head written there, so head and body leave in one write: one
/// TCP segment and one wakeup of the peer instead of two, which costs far
/// more than copying up to `max` bytes. Returns what is left to relay, or
/// `None` when the whole body was taken.
pub fn coalesce(
    buf: &mut ReadBuf,
    out: &mut Vec<u8>,
    mode: BodyMode,
    max: usize,
) -> Option<BodyMode> {
    match mode {
        BodyMode::Length(n) => {
            let take = n.min(buf.len() as u64).min(max as u64) as usize;
            out.extend_from_slice(&buf.data()[..take]);
            buf.consume(take);
            let left = n - take as u64;
            (left > 0).then_some(BodyMode::Length(left))
        }
        BodyMode::Chunked if buf.len() <= max => {
            // Only a body that is complete in the buffer is taken, so the
            // relay never has to resume a half-walked chunk.
            let mut walker = ChunkedDecoder::new();
            match walker.scan(buf.data()) {
                Ok(n) if walker.is_done() => {
                    out.extend_from_slice(&buf.data()[..n]);
                    buf.consume(n);
                    None
                }
                _ => Some(mode),
            }
        }
        _ => Some(mode),
    }
}

/// Read size while a body streams: a pooled buffer's size, large enough
/// that a 1 GiB body costs 64k reads, not a million.
pub const BODY_READ: usize = crate::pool::BUF_SIZE;

/// Most a body read may grow the buffer to.
const BODY_BUFFER: usize = 64 * 1024;

/// Forward one body from `src` (with already-read bytes in `buf`) to `dst`.
/// What a body relay needs besides its two ends.
pub struct Relay<'a> {
    /// Scratch space for re-framed pieces (de-chunking, re-chunking).
    pub scratch: &'a mut Vec<u8>,
    /// The connection's timer, re-armed for every read and write.
    pub timer: &'a mut Timer,
    /// How long one read or write may stall.
    pub idle: Duration,
}

pub async fn relay<R: AsyncReadRent, W: AsyncWriteRent>(
    src: &mut R,
    buf: &mut ReadBuf,
    dst: &mut W,
    mode: BodyMode,
    ctx: Relay<'_>,
) -> Result<(), RelayError> {
    let Relay {
        scratch,
        timer,
        idle,
    } = ctx;
    buf.reserve_for_body();
    let mut decoder = ChunkedDecoder::new();
    let mut remaining = match mode {
        BodyMode::Length(n) => n,
        _ => u64::MAX,
    };
    loop {
        if buf.is_empty() {
            let n = timer
                .within(idle, buf.fill(src, BODY_BUFFER))
                .await
                .map_err(|_| RelayError::Timeout)?
                .map_err(RelayError::Read)?;
            if n == 0 {
                return match mode {
                    BodyMode::UntilClose => Ok(()),
                    BodyMode::Rechunk => {
                        scratch.clear();
                        scratch.extend_from_slice(LAST_CHUNK);
                        timed(timer, idle, write_vec(dst, scratch)).await
                    }
                    _ => Err(RelayError::Truncated),
                };
            }
        }
        let done = match mode {
            BodyMode::Length(_) => {
                let n = remaining.min(buf.len() as u64) as usize;
                timed(timer, idle, buf.write_to(dst, n)).await?;
                remaining -= n as u64;
                remaining == 0
            }
            BodyMode::Chunked => {
                let n = decoder.scan(buf.data()).map_err(RelayError::Framing)?;
                timed(timer, idle, buf.write_to(dst, n)).await?;
                decoder.is_done()
            }
            BodyMode::Dechunk => {
                scratch.clear();
                let data = buf.data();
                let n = decoder
                    .advance(data, |s, e| scratch.extend_from_slice(&data[s..e]))
                    .map_err(RelayError::Framing)?;
                buf.consume(n);
                if !scratch.is_empty() {
                    timed(timer, idle, write_vec(dst, scratch)).await?;
                }
                decoder.is_done()
            }
            BodyMode::Rechunk => {
                // Rare path (HTTP/1.0-style upstreams): one copy to frame it.
                scratch.clear();
                write_chunk_header(scratch, buf.len());
                scratch.extend_from_slice(buf.data());
                scratch.extend_from_slice(b"\r\n");
                buf.consume(buf.len());
                timed(timer, idle, write_vec(dst, scratch)).await?;
                false
            }
            BodyMode::UntilClose => {
                timed(timer, idle, buf.write_to(dst, buf.len())).await?;
                false
            }
        };
        if done {
            buf.shrink();
            return Ok(());
        }
    }
}

/// A write bounded by the stall limit, with both failures as relay errors.
/// A plain function returning a combinator: an `async fn` taking the write
/// future would hold it twice in every relay's state.
fn timed<'t, F>(
    timer: &'t mut Timer,
    idle: Duration,
    write: F,
) -> impl std::future::Future<Output = Result<(), RelayError>> + 't
where
    F: std::future::Future<Output = io::Result<()>> + 't,
{
    timer.within(idle, write).map(|r| match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(RelayError::Write(e)),
        Err(_) => Err(RelayError::Timeout),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf_with(bytes: &[u8]) -> ReadBuf {
        let mut b = ReadBuf::with_capacity(64);
        b.buf.extend_from_slice(bytes);
        b
    }

    #[test]
    fn whole_small_body_rides_with_the_head() {
        let mut buf = buf_with(b"helloNEXT");
        let mut out = b"HEAD".to_vec();
        assert_eq!(
            coalesce(&mut buf, &mut out, BodyMode::Length(5), 1024),
            None
        );
        assert_eq!(out, b"HEADhello");
        assert_eq!(buf.data(), b"NEXT", "the next message stays");
    }

    #[test]
    fn partial_body_leaves_the_rest_to_relay() {
        let mut buf = buf_with(b"abc");
        let mut out = Vec::new();
        assert_eq!(
            coalesce(&mut buf, &mut out, BodyMode::Length(10), 1024),
            Some(BodyMode::Length(7))
        );
        assert_eq!(out, b"abc");
        assert!(buf.is_empty());
        let mut buf = buf_with(b"abcdef");
        let mut out = Vec::new();
        assert_eq!(
            coalesce(&mut buf, &mut out, BodyMode::Length(6), 4),
            Some(BodyMode::Length(2)),
            "bounded by max"
        );
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn only_complete_chunked_bodies_are_taken() {
        let mut buf = buf_with(b"3\r\nabc\r\n0\r\n\r\nGET");
        let mut out = Vec::new();
        assert_eq!(coalesce(&mut buf, &mut out, BodyMode::Chunked, 1024), None);
        assert_eq!(out, b"3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(buf.data(), b"GET");
        let mut buf = buf_with(b"3\r\nab");
        let mut out = Vec::new();
        assert_eq!(
            coalesce(&mut buf, &mut out, BodyMode::Chunked, 1024),
            Some(BodyMode::Chunked)
        );
        assert!(out.is_empty());
        assert_eq!(buf.len(), 5, "nothing consumed");
    }

    #[test]
    fn an_empty_small_buffer_does_not_grow_before_reading() {
        let mut b = ReadBuf::with_capacity(2048);
        b.make_room(1 << 20).unwrap();
        assert_eq!(b.capacity(), 2048);
        b.buf.extend_from_slice(&[1u8; 2048]);
        b.make_room(1 << 20).unwrap();
        assert!(b.capacity() >= MIN_READ * 2, "a full buffer grows");
    }

    #[test]
    fn read_buffer_compacts_before_growing() {
        let mut b = ReadBuf::with_capacity(MIN_READ * 2);
        b.buf.extend(std::iter::repeat_n(1u8, MIN_READ * 2 - 10));
        b.consume(MIN_READ * 2 - 20);
        b.make_room(1 << 20).unwrap();
        assert_eq!(b.len(), 10);
        assert_eq!(
            b.buf.capacity(),
            MIN_READ * 2,
            "compacted instead of growing"
        );
    }
}
