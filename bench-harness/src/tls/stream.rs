//! A rustls connection over a monoio TCP stream.
//!
//! monoio hands buffers to the kernel and gets them back (io_uring owns a
//! buffer until the operation completes), so this drives rustls's buffered
//! API by hand: ciphertext is read into `cipher_in` and given to
//! `read_tls`; whatever rustls wants to send is gathered with `write_tls`
//! into `cipher_out` and written in one go. Each step that makes rustls
//! answer (a handshake flight, an alert, a key update) is flushed before
//! the next read, so neither side waits on a message still in a buffer.

use std::io::{self, BufRead, Write};

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::Connection;

use crate::http::ReadBuf;

/// Ciphertext read per call: one full TLS record (16 KiB of payload plus
/// header and AEAD overhead) fits.
const CIPHER_IN: usize = 16 * 1024 + 2048 + 5;

pub struct TlsStream {
    tcp: TcpStream,
    tls: Connection,
    /// Ciphertext read from the socket; `cipher_in[in_pos..]` is not yet
    /// handed to rustls.
    cipher_in: Vec<u8>,
    in_pos: usize,
    /// Ciphertext on its way out; kept for its capacity.
    cipher_out: Vec<u8>,
}

impl TlsStream {
    /// Wrap a connected socket; nothing is sent until the first flush.
    pub fn new(tcp: TcpStream, tls: impl Into<Connection>) -> TlsStream {
        TlsStream {
            tcp,
            tls: tls.into(),
            cipher_in: Vec::with_capacity(CIPHER_IN),
            in_pos: 0,
            cipher_out: Vec::new(),
        }
    }

    /// The rustls state (negotiated version, suite, handshake kind).
    pub fn tls(&self) -> &Connection {
        &self.tls
    }

    /// Whether ALPN picked HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.tls.alpn_protocol() == Some(super::ALPN_H2)
    }

    /// The socket, the session and the ciphertext read but not yet given
    /// to rustls, for a session to go on in poll style (`http2::io`). Call
    /// it between operations, when nothing is waiting to be sent.
    pub fn into_parts(self) -> (TcpStream, Connection, Vec<u8>) {
        let TlsStream {
            tcp,
            tls,
            cipher_in,
            in_pos,
            ..
        } = self;
        (tcp, tls, cipher_in[in_pos..].to_vec())
    }

    /// Run the handshake to its end (a client's last flight is left to go
    /// out with the first request, as a client that sends at once would).
    /// A TLS error comes back as [`io::ErrorKind::InvalidData`] wrapping
    /// the `rustls::Error` (see [`super::is_tls_error`]); the peer closing
    /// first, as [`io::ErrorKind::UnexpectedEof`].
    pub async fn handshake(&mut self) -> io::Result<()> {
        while self.tls.is_handshaking() {
            self.flush().await?;
            if !self.feed().await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                ));
            }
        }
        Ok(())
    }

    /// Read plaintext into `rb`: Ok(0) at the end of the stream (a
    /// close_notify, or a TCP close without one, as HTTP/1.1 servers do).
    pub async fn fill(&mut self, rb: &mut ReadBuf) -> io::Result<usize> {
        loop {
            {
                let mut reader = self.tls.reader();
                match reader.fill_buf() {
                    Ok(chunk) => {
                        let n = rb.append(chunk);
                        reader.consume(n);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
            }
            self.feed().await?;
        }
    }

    /// Encrypt and send all of `data`.
    pub async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            // rustls takes what fits under its buffer limit (64 KiB).
            let n = self.tls.writer().write(data)?;
            data = &data[n..];
            self.flush().await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "TLS connection takes no more plaintext",
                ));
            }
        }
        Ok(())
    }

    /// Tell the peer nothing more is coming (TLS close_notify).
    pub async fn close_notify(&mut self) -> io::Result<()> {
        self.tls.send_close_notify();
        self.flush().await
    }

    /// Send everything rustls has queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            let mut out = std::mem::take(&mut self.cipher_out);
            out.clear();
            self.tls.write_tls(&mut out)?;
            let (res, out) = self.tcp.write_all(out).await;
            self.cipher_out = out;
            res?;
        }
        Ok(())
    }

    /// Give rustls more ciphertext (reading the socket when none is left),
    /// process it and send what it answers. Ok(false) at TCP EOF.
    async fn feed(&mut self) -> io::Result<bool> {
        if self.in_pos == self.cipher_in.len() {
            let mut buf = std::mem::take(&mut self.cipher_in);
            buf.clear();
            let (res, buf) = self.tcp.read(buf).await;
            self.cipher_in = buf;
            self.in_pos = 0;
            if res? == 0 {
                // Tells rustls the stream ended; its reader then reports a
                // clean or an unclean close.
                self.tls.read_tls(&mut io::empty())?;
                self.process().await?;
                return Ok(false);
            }
        }
        let n = self.tls.read_tls(&mut &self.cipher_in[self.in_pos..])?;
        self.in_pos += n;
        self.process().await?;
        Ok(true)
    }

    async fn process(&mut self) -> io::Result<()> {
        match self.tls.process_new_packets() {
            Ok(_) => self.flush().await,
            Err(e) => {
                // Send the alert rustls queued, so the peer logs why.
                let _ = self.flush().await;
                Err(io::Error::new(io::ErrorKind::InvalidData, e))
            }
        }
    }
}
