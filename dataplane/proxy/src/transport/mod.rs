//! The transport seam: one stream type for every connection the proxy
//! holds, downstream and upstream, active, parked or tunnelled.
//!
//! `Stream` is an enum, not a type parameter, so the request pipeline is
//! compiled once whatever the connection runs over: plain TCP today, TLS
//! (rustls over owned buffers) next, and an in-memory pipe in unit tests.
//! Every variant speaks monoio's ownership-passing IO (`AsyncReadRent`,
//! `AsyncWriteRent`: io_uring owns a buffer while an operation is in
//! flight) and cancelable reads (an idle connection's pending read is
//! cancelled, not dropped, so its buffer comes back). What only some
//! variants can do is asked, not assumed: `into_tcp` for a TLS handshake
//! on an accepted socket, `into_halves` for a tunnel's copy relay (anything
//! over a socket), `parkable_fd` for the epoll-based parking of idle
//! connections (`park`).

pub mod h2io;
#[cfg(test)]
pub mod memory;
pub mod tls;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent, OwnedReadHalf,
    OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use monoio::BufResult;

/// A connection's byte stream.
pub enum Stream {
    Plain(TcpStream),
    /// Boxed: a session is a few hundred bytes, and every parked plain
    /// connection would pay for the largest variant.
    Tls(Box<tls::TlsStream>),
    /// A pipe to a scripted peer in unit tests (`memory`).
    #[cfg(test)]
    Memory(memory::MemStream),
}

impl Stream {
    /// A new TCP connection, with Nagle off: the proxy writes whole heads
    /// and bodies, and a delayed ACK would add 40 ms to small exchanges.
    pub fn tcp(stream: TcpStream) -> Stream {
        let _ = stream.set_nodelay(true);
        Stream::Plain(stream)
    }

    /// The TCP socket, when the stream is plain TCP (a TLS session is
    /// started over it).
    pub fn into_tcp(self) -> Result<TcpStream, Stream> {
        match self {
            Stream::Plain(s) => Ok(s),
            other => Err(other),
        }
    }

    /// The socket, for registering an idle connection with the core's
    /// parking epoll set; `None` for streams that cannot be parked (an
    /// in-memory pipe), which then wait for their next request in place.
    pub fn parkable_fd(&self) -> Option<RawFd> {
        match self {
            Stream::Plain(s) => Some(s.as_raw_fd()),
            // Only with nothing decrypted or half-received buffered: the
            // parker waits for the socket, which would not signal those.
            Stream::Tls(t) if !t.has_buffered_input() => Some(t.tcp().as_raw_fd()),
            Stream::Tls(_) => None,
            #[cfg(test)]
            Stream::Memory(_) => None,
        }
    }

    /// The protocol TLS's ALPN agreed on, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            Stream::Tls(t) => t.alpn_protocol(),
            _ => None,
        }
    }

    /// Whether a pending read can be cancelled and awaited (its buffer
    /// comes back). A read that cannot is dropped instead: fine for a
    /// memory pipe, which holds no kernel-owned buffer.
    pub fn cancels_reads(&self) -> bool {
        match self {
            Stream::Plain(_) | Stream::Tls(_) => true,
            #[cfg(test)]
            Stream::Memory(_) => false,
        }
    }

    /// Whether bytes (or an EOF) are waiting to be read, without waiting
    /// and without consuming them. Used where a stale or closed peer must
    /// be told from a live idle one: a pooled upstream connection before
    /// it carries a request that must not be sent twice, a parked client
    /// connection when listeners close.
    pub fn has_pending_input(&self) -> bool {
        match self {
            Stream::Plain(s) => peek_pending(s.as_raw_fd()),
            Stream::Tls(t) => t.has_buffered_input() || peek_pending(t.tcp().as_raw_fd()),
            #[cfg(test)]
            Stream::Memory(m) => m.has_pending_input(),
        }
    }
}

/// The receiving half of a split stream (a tunnel's copy relay).
pub enum ReadHalf {
    Plain(OwnedReadHalf<TcpStream>),
    Tls(tls::split::TlsReader),
}

/// The sending half of a split stream.
pub enum WriteHalf {
    Plain(OwnedWriteHalf<TcpStream>),
    Tls(tls::split::TlsWriter),
}

impl Stream {
    /// Two halves that read and write at the same time; `Err` for a
    /// stream that cannot be split (a memory pipe).
    pub fn into_halves(self) -> Result<(ReadHalf, WriteHalf), Stream> {
        match self {
            Stream::Plain(s) => {
                let (r, w) = s.into_split();
                Ok((ReadHalf::Plain(r), WriteHalf::Plain(w)))
            }
            Stream::Tls(t) => {
                let (r, w) = t.into_split();
                Ok((ReadHalf::Tls(r), WriteHalf::Tls(w)))
            }
            #[cfg(test)]
            other => Err(other),
        }
    }
}

impl AsyncReadRent for ReadHalf {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ReadHalf::Plain(s) => s.read(buf).await,
            ReadHalf::Tls(t) => t.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ReadHalf::Plain(s) => s.readv(buf).await,
            ReadHalf::Tls(t) => t.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for WriteHalf {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            WriteHalf::Plain(s) => s.write(buf).await,
            WriteHalf::Tls(t) => t.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            WriteHalf::Plain(s) => s.writev(buf).await,
            WriteHalf::Tls(t) => t.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Plain(s) => s.flush().await,
            WriteHalf::Tls(t) => t.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Plain(s) => s.shutdown().await,
            WriteHalf::Tls(t) => t.shutdown().await,
        }
    }
}

/// `recv(MSG_PEEK | MSG_DONTWAIT)` of one byte: true when a byte or an EOF
/// is waiting (or the socket failed), false when the read would block.
fn peek_pending(fd: RawFd) -> bool {
    let fd = borrow_fd(fd);
    let mut byte = [0u8; 1];
    match rustix::net::recv(
        fd,
        &mut byte,
        rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT,
    ) {
        Ok(_) => true,
        Err(e) => e != rustix::io::Errno::AGAIN,
    }
}

/// A borrowed descriptor of a socket monoio owns. monoio 0.2 implements
/// `AsRawFd` but not `AsFd` for its sockets, so this is the one place a
/// raw descriptor becomes a borrowed one for rustix's safe calls.
pub fn borrow_fd<'a>(fd: RawFd) -> BorrowedFd<'a> {
    #[allow(unsafe_code)]
    // SAFETY: every caller passes the descriptor of a monoio socket it
    // holds (a `TcpStream` or `TcpListener` alive for the duration of the
    // call), so the descriptor is open for as long as the borrow is used;
    // the returned borrow never escapes the calling function.
    unsafe {
        BorrowedFd::borrow_raw(fd)
    }
}

impl AsyncReadRent for Stream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(t) => t.read(buf).await,
            #[cfg(test)]
            Stream::Memory(m) => m.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.readv(buf).await,
            Stream::Tls(t) => t.readv(buf).await,
            #[cfg(test)]
            Stream::Memory(_) => (
                Err(io::Error::new(io::ErrorKind::Unsupported, "readv")),
                buf,
            ),
        }
    }
}

impl CancelableAsyncReadRent for Stream {
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.cancelable_read(buf, c).await,
            Stream::Tls(t) => t.cancelable_read(buf, c).await,
            // A memory read holds no kernel-owned buffer: dropping it is
            // as good as cancelling it.
            #[cfg(test)]
            Stream::Memory(m) => m.read(buf).await,
        }
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.cancelable_readv(buf, c).await,
            Stream::Tls(t) => t.cancelable_readv(buf, c).await,
            #[cfg(test)]
            Stream::Memory(_) => (
                Err(io::Error::new(io::ErrorKind::Unsupported, "readv")),
                buf,
            ),
        }
    }
}

impl AsyncWriteRent for Stream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.write(buf).await,
            Stream::Tls(t) => t.write(buf).await,
            #[cfg(test)]
            Stream::Memory(m) => m.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.writev(buf).await,
            Stream::Tls(t) => t.writev(buf).await,
            #[cfg(test)]
            Stream::Memory(_) => (
                Err(io::Error::new(io::ErrorKind::Unsupported, "writev")),
                buf,
            ),
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush().await,
            Stream::Tls(t) => t.flush().await,
            #[cfg(test)]
            Stream::Memory(_) => Ok(()),
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(t) => t.shutdown().await,
            #[cfg(test)]
            Stream::Memory(m) => {
                m.shutdown();
                Ok(())
            }
        }
    }
}
