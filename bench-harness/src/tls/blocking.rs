//! Blocking TLS over std sockets, for the few connections `compare` opens
//! itself: readiness probes and the idle step's held connections.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use rustls::{ClientConnection, StreamOwned};

use super::ClientTls;

/// A TLS connection with its socket, readable and writable as plaintext.
pub type BlockingTls = StreamOwned<ClientConnection, TcpStream>;

/// Connect to `addr` and complete the TLS handshake; `timeout` bounds the
/// connect and each read and write after it.
pub fn connect(addr: SocketAddr, tls: &ClientTls, timeout: Duration) -> io::Result<BlockingTls> {
    let sock = TcpStream::connect_timeout(&addr, timeout)?;
    sock.set_read_timeout(Some(timeout))?;
    sock.set_write_timeout(Some(timeout))?;
    let conn = tls.connection().map_err(io::Error::other)?;
    let mut s = StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    // The client's last flight, so the server sees the handshake end now,
    // not when the first request is written.
    while s.conn.wants_write() {
        s.conn.write_tls(&mut s.sock)?;
    }
    Ok(s)
}
