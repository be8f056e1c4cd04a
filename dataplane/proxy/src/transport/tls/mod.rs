//! TLS over a TCP stream, driven through rustls' unbuffered API.
//!
//! Why not `monoio-rustls` (or rustls' buffered `Connection`): those copy
//! every byte through buffers the TLS layer owns (16 KiB in and 16 KiB out
//! per connection, allocated when it opens and held while it idles). Here
//! the proxy owns every buffer and lends them only while bytes move:
//!
//! - **incoming:** ciphertext is read from the socket straight into a
//!   record buffer from the core's pool (`buffers`) and rustls decrypts
//!   each record where it lies; the buffer goes back to the pool as soon as
//!   no partial record is left in it. Plaintext is handed to the reader's
//!   own buffer; only the part of a record that does not fit is kept
//!   (`plain`) until the next read.
//! - **outgoing:** the writer's plaintext is encrypted into a pooled
//!   output buffer, which io_uring owns while the write is in flight and
//!   which goes back to the pool once it is written.
//!
//! So an idle TLS connection holds its rustls session and nothing else,
//! and a busy core recycles a few record buffers. What rustls 0.23 still
//! does inside: it moves each decrypted record into a `Vec` of its own and
//! assembles each outgoing record in one before copying it out (its
//! unbuffered API keeps the in-place path for a later release); that is
//! one allocation and copy per record, not per byte moved by this layer.
//!
//! The stream is driven by one task at a time (`&mut self`), like a TCP
//! stream here: the HTTP/1.1 loop reads, then writes. Every state rustls
//! can ask for is handled in `drive`: records to encode (handshake
//! messages, alerts, tickets, key updates) are queued in the output buffer
//! and sent before the next socket read or at the end of the write that
//! produced them (rustls#1958: a read can imply a write); every decrypted record
//! is drained at once (rustls#2121), so a write is never blocked behind
//! unread application data.
//!
//! An operation dropped halfway (a stall timeout around a write) takes its
//! buffer, and the records in it, with it: the TLS record stream is then
//! broken, so the stream remembers it (`broken`) and fails every later
//! operation instead of sending a corrupt sequence.

pub mod buffers;
mod iobuf;
pub mod poll;
pub mod split;

use std::io;
use std::sync::Arc;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent,
};
use monoio::net::TcpStream;
use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use rustls::{ClientConfig, ServerConfig};

use iobuf::Fill;

/// Plaintext encrypted per record: TLS's maximum fragment.
const MAX_PLAIN: usize = 16 * 1024;

/// A handshake flight may span records; the incoming buffer grows to hold
/// it, up to this (a long certificate chain is ~10 KiB).
const MAX_FLIGHT: usize = 64 * 1024;

/// A TLS session over a TCP connection, client or server side.
pub struct TlsStream {
    tcp: TcpStream,
    st: State,
}

/// The session and its buffers: everything but the socket, so the two
/// halves of a split stream (`split`) can share it.
struct State {
    session: Session,
    io: Bufs,
}

enum Session {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

/// Everything but the socket and the session, so `drive` can lend the
/// session to rustls and these to the state handler at once.
#[derive(Default)]
struct Bufs {
    /// Ciphertext received and not yet processed (a partial record); no
    /// allocation while empty.
    rx: Vec<u8>,
    /// Decrypted plaintext the last reader had no room for.
    plain: Vec<u8>,
    plain_at: usize,
    /// Records to send: `tx[..tx_end]`; no allocation while empty.
    tx: Vec<u8>,
    tx_end: usize,
    /// The peer closed (close_notify or end of the TCP stream).
    eof: bool,
    /// An operation was dropped mid-way or TLS failed: nothing more can
    /// be sent or received on this stream.
    broken: bool,
}

/// What `drive` is asked to do once the session is ready for traffic.
enum Want<'a> {
    /// Only process what was received; plaintext goes to the sink.
    Read(&'a mut dyn Sink),
    /// Encrypt this plaintext (one record's worth at most).
    Encrypt(&'a [u8]),
    /// Queue a close_notify alert.
    Close,
}

/// Where `drive` stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// More input is needed (a partial record, the handshake's next flight).
    NeedData,
    /// Handshake done, nothing more to process; `Want::Encrypt`/`Close`
    /// was carried out.
    Open,
    /// The output buffer has no room for the record: send it first.
    Full,
    /// The session ended (both sides sent close_notify).
    Closed,
}

/// Plaintext from decrypted records goes to a reader's buffer through
/// this; what it does not take is kept for the next read.
trait Sink {
    /// Copy as much of `bytes` as fits; returns how much was taken.
    fn put(&mut self, bytes: &[u8]) -> usize;
}

/// A sink that takes nothing: during a handshake or a write, early
/// application data is kept for the next read.
struct Keep;

impl Sink for Keep {
    fn put(&mut self, _: &[u8]) -> usize {
        0
    }
}

/// A TLS failure, with rustls' error when there is one.
#[derive(Debug)]
pub enum TlsError {
    Tls(rustls::Error),
    Io(io::Error),
    /// The peer closed the connection before the handshake finished.
    Eof,
}

impl From<io::Error> for TlsError {
    fn from(e: io::Error) -> Self {
        TlsError::Io(e)
    }
}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::Io(e) => e,
            TlsError::Tls(e) => io::Error::new(io::ErrorKind::InvalidData, e),
            TlsError::Eof => io::ErrorKind::UnexpectedEof.into(),
        }
    }
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Tls(e) => write!(f, "{e}"),
            TlsError::Io(e) => write!(f, "{e}"),
            TlsError::Eof => f.write_str("connection closed during the handshake"),
        }
    }
}

impl TlsStream {
    /// The server side of a new connection; `handshake` completes it.
    pub fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> Result<Self, TlsError> {
        let session = UnbufferedServerConnection::new(config).map_err(TlsError::Tls)?;
        Ok(Self::new(tcp, Session::Server(session)))
    }

    /// The client side of a new connection to `name`; `handshake`
    /// completes it.
    pub fn connect(
        tcp: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<Self, TlsError> {
        let session = UnbufferedClientConnection::new(config, name).map_err(TlsError::Tls)?;
        Ok(Self::new(tcp, Session::Client(session)))
    }

    fn new(tcp: TcpStream, session: Session) -> Self {
        TlsStream {
            tcp,
            st: State {
                session,
                io: Bufs::default(),
            },
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Run the handshake to its end. The caller bounds it in time.
    pub async fn handshake(&mut self) -> Result<(), TlsError> {
        loop {
            let step = self.drive(Want::Read(&mut Keep));
            self.flush().await?;
            match step? {
                Step::Open if !self.is_handshaking() => return Ok(()),
                Step::Closed => return Err(TlsError::Eof),
                _ => {
                    if self.read_tls(None).await? == 0 {
                        return Err(TlsError::Eof);
                    }
                }
            }
        }
    }

    pub fn is_handshaking(&self) -> bool {
        self.st.is_handshaking()
    }

    /// The protocol agreed in ALPN.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.st.alpn_protocol()
    }

    /// The peer's certificate chain, leaf first, once the handshake is done
    /// (a client's only when one was asked for and sent).
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.st.peer_certificates()
    }

    /// Plaintext or ciphertext is buffered here: a read would not wait.
    pub fn has_buffered_input(&self) -> bool {
        self.st.has_buffered_input()
    }

    fn drive(&mut self, want: Want<'_>) -> Result<Step, TlsError> {
        self.st.drive(want)
    }

    /// Send the queued records.
    async fn flush(&mut self) -> io::Result<()> {
        if self.st.io.tx_end == 0 {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.st.io.tx);
        let end = std::mem::take(&mut self.st.io.tx_end);
        // Dropped before this returns: `broken` stays set, the records are
        // gone with the operation.
        let was_broken = std::mem::replace(&mut self.st.io.broken, true);
        let (res, slice) = self.tcp.write_all(buf.slice(..end)).await;
        self.st.io.broken = was_broken;
        buffers::put_outgoing(slice.into_inner());
        res.map(|_| ())
    }

    /// Read ciphertext from the socket, after what is buffered. Returns 0
    /// at the end of the TCP stream.
    async fn read_tls(&mut self, cancel: Option<CancelHandle>) -> io::Result<usize> {
        if self.st.io.broken {
            return Err(io::Error::other("TLS stream broken"));
        }
        let mut rx = std::mem::take(&mut self.st.io.rx);
        if rx.capacity() == 0 {
            rx = buffers::take_incoming();
        } else if rx.len() == rx.capacity() {
            // A handshake flight larger than a record.
            if rx.len() >= MAX_FLIGHT {
                self.st.io.rx = rx;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "TLS handshake message too large",
                ));
            }
            rx.reserve(rx.len());
        }
        let (len, cap) = (rx.len(), rx.capacity());
        self.st.io.broken = true;
        let (res, slice) = match cancel {
            Some(c) => self.tcp.cancelable_read(rx.slice_mut(len..cap), c).await,
            None => self.tcp.read(rx.slice_mut(len..cap)).await,
        };
        self.st.io.broken = false;
        let rx = slice.into_inner();
        if rx.is_empty() {
            buffers::put_incoming(rx);
        } else {
            self.st.io.rx = rx;
        }
        res
    }

    async fn read_plain<T: IoBufMut>(
        &mut self,
        buf: T,
        cancel: Option<CancelHandle>,
    ) -> (io::Result<usize>, T) {
        let mut fill = Fill::new(buf);
        if fill.room() == 0 {
            return (Ok(0), fill.into_inner());
        }
        loop {
            if self.st.take_plain(&mut fill) {
                return (Ok(fill.filled()), fill.into_inner());
            }
            let step = self.drive(Want::Read(&mut fill));
            // Records rustls queued while reading (a key update answer,
            // an alert) go out before anything else is read.
            if let Err(e) = self.flush().await {
                return (Err(e), fill.into_inner());
            }
            match step {
                Err(e) => return (Err(e.into()), fill.into_inner()),
                Ok(_) if fill.filled() > 0 => return (Ok(fill.filled()), fill.into_inner()),
                Ok(_) if self.st.io.eof => return (Ok(0), fill.into_inner()),
                Ok(_) => {}
            }
            match self.read_tls(cancel.clone()).await {
                // The TCP stream ended without close_notify: an end of
                // stream all the same (HTTP framing tells a cut message).
                Ok(0) => {
                    self.st.io.eof = true;
                    return (Ok(0), fill.into_inner());
                }
                Ok(_) => {}
                Err(e) => return (Err(e), fill.into_inner()),
            }
        }
    }

    async fn write_plain<T: IoBuf>(&mut self, buf: T) -> (io::Result<usize>, T) {
        let res = self.write_bytes(iobuf::as_slice(&buf)).await;
        (res, buf)
    }

    async fn write_bytes(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut sent = 0;
        while sent < data.len() {
            let piece = &data[sent..data.len().min(sent + MAX_PLAIN)];
            match self.drive(Want::Encrypt(piece))? {
                Step::Open => sent += piece.len(),
                Step::Full => self.flush().await?,
                Step::NeedData => {
                    return Err(io::Error::other("TLS write before the handshake completed"))
                }
                Step::Closed => return Err(io::ErrorKind::BrokenPipe.into()),
            }
        }
        self.flush().await?;
        Ok(data.len())
    }

    /// Send close_notify, then close the sending side of the socket.
    async fn close(&mut self) -> io::Result<()> {
        if !self.st.io.broken {
            if let Ok(Step::Full) = self.drive(Want::Close) {
                self.flush().await?;
                let _ = self.drive(Want::Close);
            }
            self.flush().await?;
        }
        self.tcp.shutdown().await
    }
}

impl State {
    pub fn is_handshaking(&self) -> bool {
        match &self.session {
            Session::Server(c) => c.is_handshaking(),
            Session::Client(c) => c.is_handshaking(),
        }
    }

    /// The protocol agreed in ALPN.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match &self.session {
            Session::Server(c) => c.alpn_protocol(),
            Session::Client(c) => c.alpn_protocol(),
        }
    }

    /// The peer's certificate chain, leaf first, once the handshake is done
    /// (a client's only when one was asked for and sent).
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match &self.session {
            Session::Server(c) => c.peer_certificates(),
            Session::Client(c) => c.peer_certificates(),
        }
    }

    /// Plaintext or ciphertext is buffered here: a read would not wait.
    pub fn has_buffered_input(&self) -> bool {
        self.io.plain_at < self.io.plain.len() || !self.io.rx.is_empty()
    }

    /// Let rustls process what was received and do what it asks until it
    /// needs more input, is ready for traffic (and has done `want`), or
    /// the session closed.
    fn drive(&mut self, mut want: Want<'_>) -> Result<Step, TlsError> {
        if self.io.broken {
            return Err(TlsError::Io(io::Error::other("TLS stream broken")));
        }
        // Always the same buffer, writes included: rustls remembers offsets
        // into it between calls (a handshake message spanning records is
        // joined in place), so another slice, even an empty one, would
        // break them. Records a write finds complete are decrypted and
        // kept for the next read.
        let mut rx = std::mem::take(&mut self.io.rx);
        let result = loop {
            let (discard, step) = match &mut self.session {
                Session::Server(c) => {
                    on_state(c.process_tls_records(&mut rx), &mut self.io, &mut want)
                }
                Session::Client(c) => {
                    on_state(c.process_tls_records(&mut rx), &mut self.io, &mut want)
                }
            };
            if discard > 0 {
                rx.drain(..discard);
            }
            match step {
                Ok(None) => continue,
                Ok(Some(step)) => break Ok(step),
                Err(e) => break Err(e),
            }
        };
        self.io.rx = rx;
        if self.io.rx.is_empty() && self.io.rx.capacity() > 0 {
            buffers::put_incoming(std::mem::take(&mut self.io.rx));
        }
        if let Err(e) = &result {
            self.queue_alert();
            tracing::debug!(error = %e, "TLS failed");
        }
        result.map_err(TlsError::Tls)
    }

    /// After a TLS error rustls has queued an alert for the peer: encode it
    /// (sent by the next flush), then refuse everything else.
    fn queue_alert(&mut self) {
        // One call: rustls hands out queued records before it looks at the
        // input again, and looking again would fail (and alert) twice.
        let mut rx = std::mem::take(&mut self.io.rx);
        let mut want = Want::Read(&mut Keep);
        let _ = match &mut self.session {
            Session::Server(c) => on_state(c.process_tls_records(&mut rx), &mut self.io, &mut want),
            Session::Client(c) => on_state(c.process_tls_records(&mut rx), &mut self.io, &mut want),
        };
        // Nothing more is read from a failed session.
        if rx.capacity() > 0 {
            buffers::put_incoming(rx);
        }
        self.io.broken = true;
    }

    /// Copy kept plaintext into `fill`; true if any was there.
    fn take_plain<T: IoBufMut>(&mut self, fill: &mut Fill<T>) -> bool {
        let io = &mut self.io;
        if io.plain_at >= io.plain.len() {
            return false;
        }
        io.plain_at += fill.put(&io.plain[io.plain_at..]);
        if io.plain_at == io.plain.len() {
            io.plain_at = 0;
            buffers::put_incoming(std::mem::take(&mut io.plain));
        }
        true
    }
}

/// Handle one state rustls reports. Returns the bytes to discard from the
/// front of the input and `None` to go on driving, or the step to stop at.
fn on_state<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    io: &mut Bufs,
    want: &mut Want<'_>,
) -> (usize, Result<Option<Step>, rustls::Error>) {
    let UnbufferedStatus { mut discard, state } = status;
    let state = match state {
        Ok(state) => state,
        Err(e) => return (discard, Err(e)),
    };
    let step = match state {
        ConnectionState::ReadTraffic(mut records) => {
            // Drain every record now, so a later write is never blocked
            // behind unread data; what the reader has no room for is kept.
            while let Some(record) = records.next_record() {
                let record = match record {
                    Ok(r) => r,
                    Err(e) => return (discard, Err(e)),
                };
                discard += record.discard;
                let taken = match want {
                    Want::Read(sink) if io.plain_at == io.plain.len() => sink.put(record.payload),
                    _ => 0,
                };
                if taken < record.payload.len() {
                    if io.plain.capacity() == 0 {
                        io.plain = buffers::take_incoming();
                    }
                    io.plain.extend_from_slice(&record.payload[taken..]);
                }
            }
            None
        }
        ConnectionState::EncodeTlsData(mut encode) => {
            if let Err(e) = encode_into(io, |out| encode.encode(out)) {
                return (discard, Err(e));
            }
            None
        }
        // Sent by the caller's next flush, before any further read.
        ConnectionState::TransmitTlsData(transmit) => {
            transmit.done();
            None
        }
        ConnectionState::BlockedHandshake => Some(Step::NeedData),
        ConnectionState::PeerClosed => {
            io.eof = true;
            None
        }
        ConnectionState::Closed => {
            io.eof = true;
            Some(Step::Closed)
        }
        ConnectionState::WriteTraffic(mut traffic) => {
            let out = |io: &mut Bufs| {
                if io.tx.is_empty() {
                    io.tx = buffers::take_outgoing();
                }
            };
            let res = match want {
                Want::Read(_) => Ok(0),
                Want::Encrypt(plain) => {
                    out(io);
                    traffic.encrypt(plain, &mut io.tx[io.tx_end..])
                }
                Want::Close => {
                    out(io);
                    traffic.queue_close_notify(&mut io.tx[io.tx_end..])
                }
            };
            match res {
                Ok(n) => {
                    io.tx_end += n;
                    Some(Step::Open)
                }
                Err(EncryptError::InsufficientSize(_)) => Some(Step::Full),
                Err(e) => return (discard, Err(rustls::Error::General(e.to_string()))),
            }
        }
        // Early data is never enabled (no `max_early_data_size`).
        ConnectionState::ReadEarlyData(_) => {
            return (
                discard,
                Err(rustls::Error::General("unexpected early data".into())),
            )
        }
        _ => {
            return (
                discard,
                Err(rustls::Error::General("unknown TLS state".into())),
            )
        }
    };
    (discard, Ok(step))
}

/// Encode a handshake record into the output buffer, growing it when the
/// record does not fit (a large certificate flight).
fn encode_into(
    io: &mut Bufs,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), rustls::Error> {
    if io.tx.is_empty() {
        io.tx = buffers::take_outgoing();
    }
    loop {
        match encode(&mut io.tx[io.tx_end..]) {
            Ok(n) => {
                io.tx_end += n;
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                io.tx.resize(io.tx_end + required_size, 0);
            }
            Err(e) => return Err(rustls::Error::General(e.to_string())),
        }
    }
}

/// Nothing in the proxy reads or writes vectored, and a TLS record is
/// sealed from one buffer anyway: vectored IO is refused, as on the
/// in-memory test stream.
fn vectored_unsupported<T>(buf: T) -> monoio::BufResult<usize, T> {
    (
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "vectored IO over TLS",
        )),
        buf,
    )
}

impl AsyncReadRent for TlsStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        self.read_plain(buf, None).await
    }

    async fn readv<T: monoio::buf::IoVecBufMut>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        vectored_unsupported(buf)
    }
}

impl CancelableAsyncReadRent for TlsStream {
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> monoio::BufResult<usize, T> {
        self.read_plain(buf, Some(c)).await
    }

    async fn cancelable_readv<T: monoio::buf::IoVecBufMut>(
        &mut self,
        buf: T,
        _: CancelHandle,
    ) -> monoio::BufResult<usize, T> {
        vectored_unsupported(buf)
    }
}

impl AsyncWriteRent for TlsStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        self.write_plain(buf).await
    }

    async fn writev<T: monoio::buf::IoVecBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        vectored_unsupported(buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        TlsStream::flush(self).await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.close().await
    }
}

#[cfg(test)]
mod tests;
