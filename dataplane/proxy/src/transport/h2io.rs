//! The byte stream under an HTTP/2 connection.
//!
//! The `h2` crate drives its connections through tokio's poll-style
//! `AsyncRead`/`AsyncWrite`, not monoio's ownership-passing IO. monoio's
//! `poll-io` bridge gives a socket exactly that: the socket is watched by
//! an epoll set the ring polls (one `PollAdd`), and reads and writes are
//! then direct `recv`/`send` into h2's own buffers: no copy, no buffer
//! lent to the kernel while a connection is idle. (monoio-compat would
//! copy each way through a buffer of its own and report write errors one
//! call late.)
//!
//! An enum, as `Stream` is, so h2's connection type (and every stream
//! task) is compiled once whatever is under it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use monoio::net::tcp::stream_poll::TcpStreamPoll;
use monoio::net::TcpStream;

use super::tls::poll::PollTls;
use super::tls::TlsStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An HTTP/2 connection's transport.
pub enum H2Io {
    /// h2c: plain TCP, with the bytes already read while detecting the
    /// protocol (the client preface) replayed first.
    Plain(Replay<TcpStreamPoll>),
    /// h2 by ALPN: the TLS session after its handshake (`tls::poll`).
    Tls(Box<PollTls>),
}

impl H2Io {
    /// A plain TCP connection whose first bytes, `read`, were already
    /// taken off the socket.
    pub fn plain(tcp: TcpStream, read: &[u8]) -> io::Result<H2Io> {
        let tcp = tcp.try_into_poll_io().map_err(|(e, _)| e)?;
        Ok(H2Io::Plain(Replay::new(tcp, read.to_vec())))
    }

    /// A TLS connection whose handshake picked `h2`.
    pub fn tls(tls: TlsStream) -> io::Result<H2Io> {
        Ok(H2Io::Tls(Box::new(tls.into_poll()?)))
    }
}

/// A stream that first yields bytes read from it earlier.
pub struct Replay<T> {
    inner: T,
    prefix: Vec<u8>,
    at: usize,
}

impl<T> Replay<T> {
    pub fn new(inner: T, prefix: Vec<u8>) -> Self {
        Replay {
            inner,
            prefix,
            at: 0,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Replay<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let rest = &this.prefix[this.at..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Replay<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncRead for H2Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            H2Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            H2Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for H2Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            H2Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            H2Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            H2Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            H2Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            H2Io::Plain(s) => s.is_write_vectored(),
            H2Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            H2Io::Plain(s) => Pin::new(s).poll_flush(cx),
            H2Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            H2Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            H2Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
