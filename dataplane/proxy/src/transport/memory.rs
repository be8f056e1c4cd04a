//! In-memory streams for unit tests: the connection loop and the request
//! pipeline run over them exactly as over TCP, with no socket, so a test
//! scripts both peers byte for byte and controls their timing.
//!
//! `duplex(capacity)` gives two connected ends. Each direction buffers at
//! most `capacity` bytes; a writer whose peer does not read waits, as a
//! socket writer does when the peer's receive window is full, which is how
//! tests reproduce a client that never reads its responses.

#![cfg(test)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::BufResult;

#[derive(Default)]
struct Pipe {
    data: VecDeque<u8>,
    /// The writing end shut down or was dropped: EOF after `data`.
    closed: bool,
    /// The reading end was dropped: writes fail.
    reader_gone: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Pipe {
    fn wake_reader(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }

    fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

/// One end of an in-memory connection.
pub struct MemStream {
    inbox: Rc<RefCell<Pipe>>,
    outbox: Rc<RefCell<Pipe>>,
    capacity: usize,
}

/// Two connected ends; each direction holds at most `capacity` bytes.
pub fn duplex(capacity: usize) -> (MemStream, MemStream) {
    let a = Rc::new(RefCell::new(Pipe::default()));
    let b = Rc::new(RefCell::new(Pipe::default()));
    (
        MemStream {
            inbox: a.clone(),
            outbox: b.clone(),
            capacity,
        },
        MemStream {
            inbox: b,
            outbox: a,
            capacity,
        },
    )
}

impl MemStream {
    pub fn has_pending_input(&self) -> bool {
        let p = self.inbox.borrow();
        !p.data.is_empty() || p.closed
    }

    /// Half-close: the peer reads EOF after what was written.
    pub fn shutdown(&mut self) {
        let mut p = self.outbox.borrow_mut();
        p.closed = true;
        p.wake_reader();
    }

    async fn read_into<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        poll_fn(|cx| {
            let mut p = self.inbox.borrow_mut();
            if p.data.is_empty() && !p.closed {
                p.reader = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(())
        })
        .await;
        let mut buf = buf;
        let chunk: Vec<u8> = {
            let mut p = self.inbox.borrow_mut();
            let n = p.data.len().min(buf.bytes_total());
            let chunk = p.data.drain(..n).collect();
            p.wake_writer();
            chunk
        };
        // monoio's reader for byte slices copies into the owned buffer
        // without any unsafe code here.
        let (res, out) = AsyncReadRent::read(&mut &chunk[..], buf).await;
        buf = out;
        (res, buf)
    }

    async fn write_from<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let want = buf.bytes_init();
        let room = poll_fn(|cx| {
            let mut p = self.outbox.borrow_mut();
            if p.reader_gone {
                return Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
            }
            let room = self.capacity.saturating_sub(p.data.len());
            if room == 0 && want > 0 {
                p.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(Ok(room))
        })
        .await;
        let room = match room {
            Ok(r) => r,
            Err(e) => return (Err(e), buf),
        };
        let n = want.min(room);
        let mut p = self.outbox.borrow_mut();
        p.data.extend(init_bytes(&buf)[..n].iter().copied());
        p.wake_reader();
        (Ok(n), buf)
    }
}

impl AsyncReadRent for MemStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.read_into(buf).await
    }

    async fn readv<T: monoio::buf::IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        (
            Err(io::Error::new(io::ErrorKind::Unsupported, "readv")),
            buf,
        )
    }
}

impl AsyncWriteRent for MemStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.write_from(buf).await
    }

    async fn writev<T: monoio::buf::IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        (
            Err(io::Error::new(io::ErrorKind::Unsupported, "writev")),
            buf,
        )
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        MemStream::shutdown(self);
        Ok(())
    }
}

/// The initialised bytes of an owned IO buffer.
fn init_bytes<T: IoBuf>(buf: &T) -> &[u8] {
    #[allow(unsafe_code)]
    // SAFETY: `IoBuf` guarantees `read_ptr` points at `bytes_init`
    // initialised bytes that stay valid while `buf` is borrowed.
    unsafe {
        std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init())
    }
}

impl Drop for MemStream {
    fn drop(&mut self) {
        {
            let mut out = self.outbox.borrow_mut();
            out.closed = true;
            out.wake_reader();
        }
        let mut inbox = self.inbox.borrow_mut();
        inbox.reader_gone = true;
        inbox.wake_writer();
    }
}

/// Relay two in-memory streams both ways until both directions end: the
/// tunnel's relay for unit tests (sockets use `tunnel::copy_both`).
pub async fn copy_both(
    a: MemStream,
    b: MemStream,
    activity: &std::cell::Cell<monoio::time::Instant>,
) {
    let (mut a_in, mut a_out) = a.halves();
    let (mut b_in, mut b_out) = b.halves();
    monoio::join!(
        copy_one(&mut a_in, &mut b_out, activity),
        copy_one(&mut b_in, &mut a_out, activity)
    );
}

async fn copy_one(
    src: &mut MemStream,
    dst: &mut MemStream,
    activity: &std::cell::Cell<monoio::time::Instant>,
) {
    loop {
        let (n, buf) = src.read(Vec::with_capacity(4096)).await;
        match n {
            Ok(n) if n > 0 => {
                activity.set(monoio::time::Instant::now());
                let (res, _) = dst.write_all(buf).await;
                if res.is_err() {
                    return;
                }
            }
            _ => {
                dst.shutdown();
                return;
            }
        }
    }
}

impl MemStream {
    /// Two handles on the same end: one reads, one writes (both share the
    /// pipes, so each can be driven by its own task).
    fn halves(self) -> (MemStream, MemStream) {
        let twin = MemStream {
            inbox: self.inbox.clone(),
            outbox: self.outbox.clone(),
            capacity: self.capacity,
        };
        (self, twin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run;

    #[test]
    fn bytes_cross_and_eof_follows_shutdown() {
        run(async {
            let (mut a, mut b) = duplex(16);
            let (n, _) = a.write(b"hello".to_vec()).await;
            assert_eq!(n.unwrap(), 5);
            a.shutdown();
            let (n, buf) = b.read(Vec::with_capacity(64)).await;
            assert_eq!((n.unwrap(), &buf[..]), (5, &b"hello"[..]));
            let (n, _) = b.read(Vec::with_capacity(64)).await;
            assert_eq!(n.unwrap(), 0, "EOF");
        });
    }

    #[test]
    fn a_writer_waits_for_a_reader_that_does_not_read() {
        run(async {
            let (mut a, b) = duplex(4);
            let (n, _) = a.write(b"abcdef".to_vec()).await;
            assert_eq!(n.unwrap(), 4, "only the capacity fits");
            let blocked =
                monoio::time::timeout(std::time::Duration::from_millis(20), a.write(b"x".to_vec()))
                    .await;
            assert!(blocked.is_err(), "a full pipe blocks the writer");
            drop(b);
            let (res, _) = a.write(b"x".to_vec()).await;
            assert!(res.is_err(), "the reader is gone");
        });
    }
}
