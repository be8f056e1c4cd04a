//! Read buffers over monoio's ownership-passing IO.
//!
//! io_uring owns a buffer while an operation is in flight, so reads and
//! writes take buffers by value and hand them back. `ReadBuf` wraps that
//! dance for the one read buffer each side of a connection has. Body bytes
//! are written straight out of the buffer they were read into (a `Slice` of
//! it): no copy on the proxy's side for content-length and chunked bodies.
//!
//! Drop safety: a read or write future may be dropped mid-operation (a
//! deadline passed, a `select` took the other branch). The buffer is then
//! gone with the operation (the driver keeps it until the kernel is done
//! with it), and so are the unconsumed bytes it held. Every operation
//! leaves the `ReadBuf` consistent *before* it awaits (empty, start 0,
//! marked `lost`) and restores it after, so a dropped operation leaves a
//! valid empty buffer that says its data was lost, never a panic waiting
//! in `data()`. A connection whose buffer was lost mid-message closes.

use std::io;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent,
};

/// Room a read asks the kernel to fill at least; below this the buffer is
/// compacted or grown first.
const MIN_READ: usize = 4096;

/// A connection's read buffer: `buf[start..]` holds bytes not yet consumed.
///
/// A message head can be *pinned*: consumed (the body after it is read and
/// relayed as usual) but kept in place at `buf[pin..start_of_body]`, so the
/// parsed head's byte ranges stay valid for the whole exchange (routing,
/// retries, balancers and logs read the request through them) without
/// copying it anywhere. Compaction moves unconsumed bytes down to the end
/// of the pinned head instead of to 0.
#[derive(Debug)]
pub struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    /// Pinned head: `buf[pin.0..pin.1]`.
    pin: Option<(usize, usize)>,
    /// Initial capacity, restored by `shrink` after a large head.
    base: usize,
    /// An operation holding the buffer was dropped before it finished:
    /// the bytes it held are gone.
    lost: bool,
}

impl ReadBuf {
    pub fn with_capacity(n: usize) -> Self {
        ReadBuf {
            buf: Vec::with_capacity(n),
            start: 0,
            pin: None,
            base: n,
            lost: false,
        }
    }

    /// Wrap a (pooled) buffer; `shrink` keeps its capacity.
    pub fn from_vec(mut buf: Vec<u8>) -> Self {
        buf.clear();
        let base = buf.capacity();
        ReadBuf {
            buf,
            start: 0,
            pin: None,
            base,
            lost: false,
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

    /// A dropped operation took the buffer and its bytes with it.
    pub fn is_lost(&self) -> bool {
        self.lost
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            let keep = self.floor();
            self.buf.truncate(keep);
            self.start = keep;
        }
    }

    /// Where unconsumed bytes may start: after the pinned head, if any.
    fn floor(&self) -> usize {
        self.pin.map_or(0, |(_, end)| end)
    }

    /// Consume the next `n` bytes (a parsed head) but keep them in place
    /// until `unpin`; `pinned` returns them.
    pub fn pin(&mut self, n: usize) {
        let end = (self.start + n).min(self.buf.len());
        self.pin = Some((self.start, end));
        self.start = end;
        if self.start == self.buf.len() {
            self.buf.truncate(end);
        }
    }

    /// The pinned head; empty when none is pinned or it was lost.
    pub fn pinned(&self) -> &[u8] {
        match self.pin {
            Some((a, b)) => self.buf.get(a..b).unwrap_or_default(),
            None => &[],
        }
    }

    /// The exchange is over: the pinned head's bytes may be reused.
    pub fn unpin(&mut self) {
        if self.pin.take().is_some() && self.is_empty() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Drop unconsumed bytes (a pinned head stays); a lost buffer is
    /// usable again, at its base capacity.
    pub fn clear(&mut self) {
        if self.lost {
            self.lost = false;
            self.pin = None;
            self.buf = Vec::with_capacity(self.base);
        }
        let keep = self.floor();
        self.buf.truncate(keep);
        self.start = keep;
    }

    /// Give back memory a large head or body made the buffer grow to.
    pub fn shrink(&mut self) {
        if self.buf.capacity() > self.base && self.is_empty() && self.pin.is_none() {
            self.buf = Vec::with_capacity(self.base);
            self.start = 0;
        }
    }

    /// Take the buffer out for an operation, leaving a consistent empty,
    /// `lost` state behind until `put_back`.
    fn take(&mut self) -> (Vec<u8>, usize, Option<(usize, usize)>) {
        let start = std::mem::take(&mut self.start);
        self.lost = true;
        (std::mem::take(&mut self.buf), start, self.pin.take())
    }

    fn put_back(&mut self, buf: Vec<u8>, start: usize, pin: Option<(usize, usize)>) {
        self.buf = buf;
        self.start = start;
        self.pin = pin;
        self.lost = false;
    }

    /// Read more bytes, growing the buffer up to `limit`. Returns 0 at EOF.
    pub async fn fill<R: AsyncReadRent>(&mut self, io: &mut R, limit: usize) -> io::Result<usize> {
        self.make_room(limit)?;
        let (buf, start, pin) = self.take();
        let len = buf.len();
        let cap = buf.capacity();
        let (res, slice) = io.read(buf.slice_mut(len..cap)).await;
        self.put_back(slice.into_inner(), start, pin);
        res
    }

    /// `fill` with a read that `handle`'s canceller can cancel; a cancelled
    /// read returns an error and leaves the buffer as it was.
    pub async fn fill_cancelable<R: CancelableAsyncReadRent>(
        &mut self,
        io: &mut R,
        limit: usize,
        handle: CancelHandle,
    ) -> io::Result<usize> {
        self.make_room(limit)?;
        let (buf, start, pin) = self.take();
        let len = buf.len();
        let cap = buf.capacity();
        let (res, slice) = io.cancelable_read(buf.slice_mut(len..cap), handle).await;
        self.put_back(slice.into_inner(), start, pin);
        res
    }

    /// Room for the next read. An empty buffer reads into the capacity it
    /// has: an idle connection's small buffer must not grow before a byte
    /// arrives. A buffer holding a partial message is compacted, then
    /// doubled up to `limit` when less than `MIN_READ` is left.
    fn make_room(&mut self, limit: usize) -> io::Result<()> {
        if self.lost {
            return Err(io::Error::other("read buffer lost by a dropped operation"));
        }
        if self.buf.capacity() == 0 {
            // A buffer given back or lost: its base size again.
            let size = if self.base > 0 { self.base } else { MIN_READ };
            self.buf.reserve_exact(size);
        }
        let spare = self.buf.capacity() - self.buf.len();
        if spare >= MIN_READ || (self.is_empty() && spare > 0) {
            return Ok(());
        }
        let floor = self.floor();
        if self.start > floor {
            self.buf.copy_within(self.start.., floor);
            self.buf.truncate(self.buf.len() - (self.start - floor));
            self.start = floor;
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

    /// Grow to at least `BODY_READ` free for streaming a body, so a large
    /// body moves in large reads; `shrink` gives it back afterwards.
    pub fn reserve_for_body(&mut self) {
        let want = self.floor() + BODY_READ;
        if self.buf.capacity() < want {
            self.buf.reserve_exact(want - self.buf.len());
        }
    }

    /// Write the first `n` unconsumed bytes to `io` and consume them.
    pub async fn write_to<W: AsyncWriteRent>(&mut self, io: &mut W, n: usize) -> io::Result<()> {
        let (buf, start, pin) = self.take();
        let (res, slice) = io.write_all(buf.slice(start..start + n)).await;
        self.put_back(slice.into_inner(), start, pin);
        res?;
        self.consume(n);
        Ok(())
    }

    /// Append bytes (tests and the rare re-framing paths).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

/// Read size while a body streams: a pooled buffer's size, large enough
/// that a 1 GiB body costs 64k reads, not a million.
pub const BODY_READ: usize = crate::pool::BUF_SIZE;

/// Write all of `out` and keep its allocation for the next use. If the
/// write is dropped mid-way, `out` is left empty (its allocation went with
/// the operation) and the next use allocates again.
pub async fn write_vec<W: AsyncWriteRent>(io: &mut W, out: &mut Vec<u8>) -> io::Result<()> {
    let buf = std::mem::take(out);
    let (res, mut buf) = io.write_all(buf).await;
    buf.clear();
    *out = buf;
    res.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run;
    use crate::transport::memory::duplex;

    fn buf_with(bytes: &[u8]) -> ReadBuf {
        let mut b = ReadBuf::with_capacity(64);
        b.buf.extend_from_slice(bytes);
        b
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

    #[test]
    fn a_pinned_head_survives_body_reads_and_compaction() {
        let mut b = ReadBuf::with_capacity(64);
        b.buf.extend_from_slice(b"HEAD|body-part-1");
        b.pin(5);
        assert_eq!(b.pinned(), b"HEAD|");
        assert_eq!(b.data(), b"body-part-1");
        b.consume(5);
        b.make_room(1 << 20).unwrap();
        assert_eq!(b.pinned(), b"HEAD|", "compaction stops at the pinned head");
        assert_eq!(b.data(), b"part-1");
        b.consume(6);
        assert!(b.is_empty());
        assert_eq!(b.pinned(), b"HEAD|", "an emptied buffer keeps the head");
        b.extend_from_slice(b"next");
        b.unpin();
        assert_eq!(b.data(), b"next");
        b.consume(4);
        assert_eq!(b.buf.len(), 0, "unpinned and empty: reused from the start");
    }

    #[test]
    fn a_read_dropped_mid_operation_leaves_a_consistent_lost_buffer() {
        // Before the fix, `fill` took the Vec and left `start` behind: a
        // dropped read made `data()` slice an empty Vec at `start` > 0.
        run(async {
            let (mut a, _peer) = duplex(64);
            let mut b = buf_with(b"GET / HTTP/1.1\r\n");
            b.consume(4);
            let read = b.fill(&mut a, 1024);
            let timed = monoio::time::timeout(std::time::Duration::from_millis(5), read).await;
            assert!(timed.is_err(), "nothing to read: the read is dropped");
            assert!(b.is_lost());
            assert_eq!(b.data(), b"", "no panic, no stale bytes");
            assert!(b.fill(&mut a, 1024).await.is_err(), "refuses to go on");
            b.clear();
            assert!(!b.is_lost());
            assert!(b.capacity() > 0, "usable again");
        });
    }

    #[test]
    fn a_write_dropped_mid_operation_leaves_a_consistent_lost_buffer() {
        run(async {
            let (mut a, _peer) = duplex(4);
            let mut b = buf_with(b"0123456789");
            b.consume(2);
            let write = b.write_to(&mut a, 8);
            let timed = monoio::time::timeout(std::time::Duration::from_millis(5), write).await;
            assert!(timed.is_err(), "the peer does not read: the write stalls");
            assert!(b.is_lost());
            assert_eq!(b.len(), 0);
        });
    }
}
