//! A connection's bytes, plain or over TLS, behind one type, so the load
//! and the upstream speak HTTP the same way over either.
//!
//! Plain TCP keeps its zero-copy paths (static bytes and owned buffers go
//! to the kernel as they are); TLS copies plaintext into rustls.

use std::io;

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use crate::http::{Fill, ReadBuf};
use crate::tls::TlsStream;

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    /// Send bytes that live for the whole run (canned requests and
    /// responses).
    pub async fn write_static(&mut self, bytes: &'static [u8]) -> io::Result<()> {
        match self {
            Stream::Plain(io) => io.write_all(bytes).await.0.map(|_| ()),
            Stream::Tls(tls) => tls.write_all(bytes).await,
        }
    }

    /// Send all of `buf`, and give it back for reuse.
    pub async fn write_vec(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match self {
            Stream::Plain(io) => {
                let (res, buf) = io.write_all(buf).await;
                (res.map(|_| ()), buf)
            }
            Stream::Tls(tls) => (tls.write_all(&buf).await, buf),
        }
    }
}

impl Stream {
    /// End the stream cleanly: a TLS close_notify (plain TCP needs
    /// nothing before the socket is dropped).
    pub async fn close(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(tls) => tls.close_notify().await,
        }
    }
}

impl Fill for Stream {
    async fn fill(&mut self, rb: &mut ReadBuf) -> io::Result<usize> {
        match self {
            Stream::Plain(io) => rb.fill(io).await,
            Stream::Tls(tls) => tls.fill(rb).await,
        }
    }
}
