//! The byte stream under an HTTP/2 connection, as the `h2` crate wants it.
//!
//! h2 drives its IO through tokio's poll-style `AsyncRead`/`AsyncWrite`,
//! not monoio's ownership-passing IO. As in the proxy
//! (`dataplane/proxy/src/transport/h2io.rs`, `docs/notes/h2-on-monoio.md`),
//! the socket is turned into monoio's poll-io mode once its first bytes are
//! dealt with: it is then watched by an epoll set the ring polls, and
//! reads and writes are direct `recv`/`send` into h2's own buffers.
//!
//! - h2c: [`H2Io::Plain`], with the bytes already read while looking for
//!   the client preface (the upstream sniffs it) replayed first.
//! - h2 over TLS: [`H2Io::Tls`], the rustls session whose handshake (and
//!   ALPN) ran over io_uring in [`TlsStream`], continued here in poll
//!   style. The harness uses rustls's buffered `Connection` (its copies
//!   are on the harness's side, not the measured one), so this adapter is
//!   the plain read-decrypt / encrypt-write loop; whatever arrived with
//!   the handshake is kept.
//!
//! An enum, so h2's connection type is compiled once whatever is under it.

use std::io::{self, BufRead, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use monoio::net::tcp::stream_poll::TcpStreamPoll;
use monoio::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::tls::TlsStream;

/// Ciphertext read per call: a full TLS record fits.
const CIPHER_IN: usize = 16 * 1024 + 2048 + 5;

/// An HTTP/2 connection's transport.
pub enum H2Io {
    /// h2c (prior knowledge).
    Plain(Replay<TcpStreamPoll>),
    /// h2 by ALPN, after the TLS handshake.
    Tls(Box<PollTls>),
}

impl H2Io {
    /// A plain TCP connection whose first bytes, `read`, were already
    /// taken off the socket (empty for a client).
    pub fn plain(tcp: TcpStream, read: Vec<u8>) -> io::Result<H2Io> {
        let tcp = tcp.try_into_poll_io().map_err(|(e, _)| e)?;
        Ok(H2Io::Plain(Replay::new(tcp, read)))
    }

    /// A TLS connection whose handshake is done (ALPN picked `h2`).
    pub fn tls(tls: TlsStream) -> io::Result<H2Io> {
        let (tcp, conn, leftover) = tls.into_parts();
        let tcp = tcp.try_into_poll_io().map_err(|(e, _)| e)?;
        Ok(H2Io::Tls(Box::new(PollTls {
            tcp,
            tls: conn,
            cipher_in: leftover,
            in_pos: 0,
            cipher_out: Vec::new(),
            out_pos: 0,
            eof: false,
        })))
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

/// A rustls session over a poll-io socket.
pub struct PollTls {
    tcp: TcpStreamPoll,
    tls: rustls::Connection,
    /// Ciphertext read; `cipher_in[in_pos..]` not yet given to rustls.
    cipher_in: Vec<u8>,
    in_pos: usize,
    /// Ciphertext on its way out; `cipher_out[out_pos..]` not yet sent.
    cipher_out: Vec<u8>,
    out_pos: usize,
    /// The TCP stream ended.
    eof: bool,
}

impl PollTls {
    /// Send what is gathered, then whatever else rustls has queued.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            while self.out_pos < self.cipher_out.len() {
                let n = ready!(
                    Pin::new(&mut self.tcp).poll_write(cx, &self.cipher_out[self.out_pos..])
                )?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.out_pos += n;
            }
            self.cipher_out.clear();
            self.out_pos = 0;
            if !self.tls.wants_write() {
                return Poll::Ready(Ok(()));
            }
            self.tls.write_tls(&mut self.cipher_out)?;
        }
    }

    /// Give rustls the ciphertext it has not seen, reading the socket when
    /// there is none; `Ready(Ok(false))` at the end of the TCP stream.
    fn poll_feed(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.in_pos == self.cipher_in.len() {
            if self.eof {
                return Poll::Ready(Ok(false));
            }
            self.cipher_in.clear();
            self.in_pos = 0;
            self.cipher_in.reserve(CIPHER_IN);
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut self.tcp),
                cx,
                &mut self.cipher_in
            ))?;
            if n == 0 {
                self.eof = true;
                // Tells rustls the stream ended: its reader then reports a
                // clean or an unclean close.
                self.tls.read_tls(&mut io::empty())?;
                self.process(cx)?;
                return Poll::Ready(Ok(false));
            }
        }
        let n = self.tls.read_tls(&mut &self.cipher_in[self.in_pos..])?;
        self.in_pos += n;
        self.process(cx)?;
        Poll::Ready(Ok(true))
    }

    /// Decrypt what rustls holds; records it queued in answer (an alert,
    /// a key update) leave as soon as the socket takes them.
    fn process(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let res = self.tls.process_new_packets();
        if let Poll::Ready(Err(e)) = self.poll_send(cx) {
            if res.is_ok() {
                return Err(e);
            }
        }
        res.map(|_| ())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

impl AsyncRead for PollTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            {
                let mut reader = this.tls.reader();
                match reader.fill_buf() {
                    Ok(chunk) => {
                        // Empty: a close_notify, the end of the stream.
                        let n = chunk.len().min(buf.remaining());
                        buf.put_slice(&chunk[..n]);
                        reader.consume(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // A TCP close without close_notify: the end, as h2 sees it.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Poll::Ready(Ok(()))
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if !ready!(this.poll_feed(cx))? && this.in_pos == this.cipher_in.len() {
                // rustls was told of the end in poll_feed; its reader
                // answers on the next pass (EOF, or an unclean-close error).
                if this.tls.reader().fill_buf().is_err() {
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl AsyncWrite for PollTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Room first: rustls buffers what it is given, so what is queued
        // goes out before more is taken (back-pressure for h2).
        ready!(this.poll_send(cx))?;
        let n = this.tls.writer().write(buf)?;
        this.tls.write_tls(&mut this.cipher_out)?;
        // Best effort now; poll_flush finishes.
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        // One call for a frame's header and payload: rustls packs them
        // into as few records as fit.
        let n = this.tls.writer().write_vectored(bufs)?;
        this.tls.write_tls(&mut this.cipher_out)?;
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.tls.send_close_notify();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
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
