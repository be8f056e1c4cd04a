//! A TLS stream in two halves that move bytes at the same time: a tunnel
//! reads from each side while it writes to it.
//!
//! The halves share the session (`Rc<RefCell<State>>`, one core, never
//! borrowed across an await) and own a half of the socket each. Two rules
//! keep rustls' view consistent:
//!
//! - rustls keeps offsets into the incoming buffer between calls, so the
//!   buffer it is given must not leave the session while the reader waits
//!   on the socket: the reader reads into a buffer of its own and appends
//!   what arrived (one copy of ciphertext, on tunnels only).
//! - records rustls asks to send while the reader processes input (a key
//!   update's answer) are queued in the shared output buffer and sent by
//!   the writer's next write, after the records it already had in flight,
//!   so the record sequence stays in order.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;

use super::iobuf::{self, Fill};
use super::{buffers, vectored_unsupported, State, Step, TlsStream, Want, MAX_PLAIN};

pub struct TlsReader {
    tcp: OwnedReadHalf<TcpStream>,
    st: Rc<RefCell<State>>,
}

pub struct TlsWriter {
    tcp: OwnedWriteHalf<TcpStream>,
    st: Rc<RefCell<State>>,
}

impl TlsStream {
    pub fn into_split(self) -> (TlsReader, TlsWriter) {
        let (r, w) = self.tcp.into_split();
        let st = Rc::new(RefCell::new(self.st));
        (
            TlsReader {
                tcp: r,
                st: st.clone(),
            },
            TlsWriter { tcp: w, st },
        )
    }
}

impl TlsReader {
    async fn read_plain<T: IoBufMut>(&mut self, buf: T) -> (io::Result<usize>, T) {
        let mut fill = Fill::new(buf);
        if fill.room() == 0 {
            return (Ok(0), fill.into_inner());
        }
        loop {
            {
                let mut st = self.st.borrow_mut();
                if st.take_plain(&mut fill) {
                    return (Ok(fill.filled()), fill.into_inner());
                }
                match st.drive(Want::Read(&mut fill)) {
                    Err(e) => return (Err(e.into()), fill.into_inner()),
                    Ok(_) if fill.filled() > 0 => return (Ok(fill.filled()), fill.into_inner()),
                    Ok(_) if st.io.eof => return (Ok(0), fill.into_inner()),
                    Ok(_) => {}
                }
            }
            let incoming = buffers::take_incoming();
            let cap = incoming.capacity();
            let (res, slice) = self.tcp.read(incoming.slice_mut(0..cap)).await;
            let incoming = slice.into_inner();
            let n = match res {
                Ok(n) => n,
                Err(e) => {
                    buffers::put_incoming(incoming);
                    return (Err(e), fill.into_inner());
                }
            };
            let mut st = self.st.borrow_mut();
            if n == 0 {
                st.io.eof = true;
            } else {
                if st.io.rx.capacity() == 0 {
                    st.io.rx = buffers::take_incoming();
                }
                st.io.rx.extend_from_slice(&incoming[..n]);
            }
            buffers::put_incoming(incoming);
            if n == 0 {
                return (Ok(0), fill.into_inner());
            }
        }
    }
}

impl TlsWriter {
    async fn write_bytes(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut sent = 0;
        while sent < data.len() {
            let piece = &data[sent..data.len().min(sent + MAX_PLAIN)];
            let step = self.st.borrow_mut().drive(Want::Encrypt(piece))?;
            match step {
                Step::Open => sent += piece.len(),
                Step::Full => self.flush_tls().await?,
                Step::NeedData | Step::Closed => return Err(io::ErrorKind::BrokenPipe.into()),
            }
        }
        self.flush_tls().await?;
        Ok(data.len())
    }

    /// Send every queued record, the reader's included.
    async fn flush_tls(&mut self) -> io::Result<()> {
        loop {
            let (buf, end) = {
                let mut st = self.st.borrow_mut();
                if st.io.tx_end == 0 {
                    return Ok(());
                }
                let end = std::mem::take(&mut st.io.tx_end);
                (std::mem::take(&mut st.io.tx), end)
            };
            let (res, slice) = self.tcp.write_all(buf.slice(..end)).await;
            buffers::put_outgoing(slice.into_inner());
            if let Err(e) = res {
                self.st.borrow_mut().io.broken = true;
                return Err(e);
            }
        }
    }
}

impl AsyncReadRent for TlsReader {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        self.read_plain(buf).await
    }

    async fn readv<T: monoio::buf::IoVecBufMut>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        vectored_unsupported(buf)
    }
}

impl AsyncWriteRent for TlsWriter {
    async fn write<T: IoBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        let res = self.write_bytes(iobuf::as_slice(&buf)).await;
        (res, buf)
    }

    async fn writev<T: monoio::buf::IoVecBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        vectored_unsupported(buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_tls().await
    }

    /// close_notify, then the socket's sending side.
    async fn shutdown(&mut self) -> io::Result<()> {
        let closed = self.st.borrow_mut().drive(Want::Close);
        if let Ok(Step::Full) = closed {
            self.flush_tls().await?;
            let _ = self.st.borrow_mut().drive(Want::Close);
        }
        self.flush_tls().await?;
        self.tcp.shutdown().await
    }
}
