//! A TLS session as a poll-style stream, for h2 (`transport::h2io`).
//!
//! h2 drives its IO through tokio's `AsyncRead`/`AsyncWrite`. Rather than
//! a second TLS stack (tokio-rustls would move every handshake to rustls'
//! buffered API, whose per-connection buffers this module avoids), the
//! session that ran its handshake over io_uring (`TlsStream`) continues
//! here over the same socket in monoio's poll-io mode, with the same
//! `State` and the same pooled record buffers:
//!
//! - **read:** ciphertext is read into a pooled record buffer, decrypted
//!   in place by rustls, and the plaintext copied into h2's read buffer
//!   (what does not fit is kept for the next read); the record buffer goes
//!   back to the pool once no partial record is left in it.
//! - **write:** h2's bytes are encrypted into a pooled output buffer, one
//!   record per call (a vectored write, a DATA frame's header and payload,
//!   is gathered into one record), and the buffer is sent by `poll_flush`
//!   or when it has no room for the next record.
//!
//! No operation is ever dropped half-way here (poll-style calls keep their
//! progress in `self`), so the record stream cannot break the way an
//! abandoned io_uring write can.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use monoio::net::tcp::stream_poll::TcpStreamPoll;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{buffers, Sink, State, Step, TlsStream, Want, MAX_FLIGHT, MAX_PLAIN};

/// A TLS session over a poll-io socket.
pub struct PollTls {
    tcp: TcpStreamPoll,
    st: State,
    /// Bytes of `st.io.tx[..tx_end]` already sent.
    sent: usize,
    /// A vectored write gathered into one record.
    gather: Vec<u8>,
    /// close_notify is queued.
    closing: bool,
}

impl TlsStream {
    /// Continue a session whose handshake is done in poll style. Plaintext
    /// or ciphertext that arrived with the handshake is kept.
    pub fn into_poll(self) -> io::Result<PollTls> {
        let TlsStream { tcp, st } = self;
        if st.io.tx_end != 0 || st.io.broken {
            return Err(io::Error::other("TLS stream busy or broken"));
        }
        let tcp = tcp.try_into_poll_io().map_err(|(e, _)| e)?;
        Ok(PollTls {
            tcp,
            st,
            sent: 0,
            gather: Vec::new(),
            closing: false,
        })
    }
}

/// Plaintext goes straight into h2's read buffer.
struct Into<'a, 'b>(&'a mut ReadBuf<'b>);

impl Sink for Into<'_, '_> {
    fn put(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.0.remaining());
        self.0.put_slice(&bytes[..n]);
        n
    }
}

impl PollTls {
    /// The protocol agreed in ALPN.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.st.alpn_protocol()
    }

    /// Copy kept plaintext into `buf`; true if any was there.
    fn take_plain(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let io = &mut self.st.io;
        if io.plain_at >= io.plain.len() {
            return false;
        }
        io.plain_at += Into(buf).put(&io.plain[io.plain_at..]);
        if io.plain_at == io.plain.len() {
            io.plain_at = 0;
            buffers::put_incoming(std::mem::take(&mut io.plain));
        }
        true
    }

    /// Send the queued records; `Ready(Ok)` once all are sent.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let io = &mut self.st.io;
        while self.sent < io.tx_end {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &io.tx[self.sent..io.tx_end]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        if io.tx_end > 0 {
            io.tx_end = 0;
            self.sent = 0;
            buffers::put_outgoing(std::mem::take(&mut io.tx));
        }
        Poll::Ready(Ok(()))
    }

    /// Read more ciphertext after what is buffered; `Ready(Ok(0))` at the
    /// end of the TCP stream.
    fn poll_read_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let rx = &mut self.st.io.rx;
        if rx.capacity() == 0 {
            *rx = buffers::take_incoming();
        } else if rx.len() == rx.capacity() {
            if rx.len() >= MAX_FLIGHT {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "TLS record too large",
                )));
            }
            rx.reserve(rx.len());
        }
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut self.tcp), cx, rx);
        if rx.is_empty() {
            buffers::put_incoming(std::mem::take(rx));
        }
        read
    }

    /// Encrypt `plain` (at most one record's worth) into the output
    /// buffer, sending it first when it is full.
    fn poll_encrypt(&mut self, cx: &mut Context<'_>, plain: &[u8]) -> Poll<io::Result<usize>> {
        let piece = &plain[..plain.len().min(MAX_PLAIN)];
        loop {
            match self
                .st
                .drive(Want::Encrypt(piece))
                .map_err(io::Error::from)?
            {
                Step::Open => return Poll::Ready(Ok(piece.len())),
                Step::Full => ready!(self.poll_send(cx))?,
                Step::NeedData => {
                    return Poll::Ready(Err(io::Error::other(
                        "TLS write before the handshake completed",
                    )))
                }
                Step::Closed => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
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
            if this.take_plain(buf) {
                return Poll::Ready(Ok(()));
            }
            let before = buf.filled().len();
            let step = this.st.drive(Want::Read(&mut Into(buf)));
            // Records rustls queued while reading (a key update's answer,
            // an alert) leave as soon as the socket takes them; a full
            // socket does not hold up the read.
            if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            step.map_err(io::Error::from)?;
            if buf.filled().len() > before || this.st.io.eof {
                return Poll::Ready(Ok(()));
            }
            if ready!(this.poll_read_tls(cx))? == 0 {
                // The TCP stream ended (with or without close_notify).
                this.st.io.eof = true;
                return Poll::Ready(Ok(()));
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
        self.get_mut().poll_encrypt(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // One record for what fits of all slices: a frame header and its
        // payload should not cost two records.
        let mut gather = std::mem::take(&mut this.gather);
        gather.clear();
        for b in bufs {
            let room = MAX_PLAIN - gather.len();
            gather.extend_from_slice(&b[..b.len().min(room)]);
            if gather.len() == MAX_PLAIN {
                break;
            }
        }
        let res = this.poll_encrypt(cx, &gather);
        this.gather = gather;
        res
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        if !this.closing && !this.st.io.broken {
            this.closing = true;
            // An empty output buffer always has room for the alert.
            let _ = this.st.drive(Want::Close);
            ready!(this.poll_send(cx))?;
        }
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}
