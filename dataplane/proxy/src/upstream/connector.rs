//! Making upstream connections: TCP, then TLS when the cluster originates
//! it.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpStream;
use tracing::debug;

use super::TransportKey;
use crate::timer::Timer;
use crate::tls::client::ClientTls;
use crate::tls::reason;
use crate::transport::tls::TlsStream;
use crate::transport::Stream;

/// Why a connection could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    Refused,
    /// The TCP connect, or the TLS handshake, took longer than the connect
    /// timeout.
    TimedOut,
    /// The TLS handshake failed, for this reason.
    Tls(&'static str),
}

/// Makes connections of one transport to a cluster's endpoints.
#[derive(Debug, Clone)]
pub struct Connector {
    pub timeout: Duration,
    pub transport: TransportKey,
    /// Replaced in place when a config swap keeps the cluster's state but
    /// brings new TLS material (a renewed workload certificate), so the
    /// pooled connections stay and new handshakes use the new settings.
    tls: RefCell<Origination>,
}

#[derive(Debug, Clone)]
enum Origination {
    Plain,
    Tls(Arc<ClientTls>),
    /// A mesh cluster while the proxy holds no workload certificate:
    /// connecting fails rather than falling back to plaintext.
    NoIdentity,
}

impl Connector {
    pub fn plain(timeout: Duration) -> Self {
        Connector {
            timeout,
            transport: TransportKey::Plain,
            tls: RefCell::new(Origination::Plain),
        }
    }

    /// TLS over TCP, with a cluster's settings.
    pub fn tls(timeout: Duration, tls: Arc<ClientTls>) -> Self {
        Connector {
            timeout,
            transport: TransportKey::Tls(tls.key),
            tls: RefCell::new(Origination::Tls(tls)),
        }
    }

    /// A mesh cluster's: mTLS with `tls` when the proxy holds a workload
    /// certificate, else no connection at all. `key` is the transport's
    /// key either way (`ClientTls::key` once it exists).
    pub fn mesh(timeout: Duration, key: u64, tls: Option<Arc<ClientTls>>) -> Self {
        Connector {
            timeout,
            transport: TransportKey::Tls(key),
            tls: RefCell::new(tls.map_or(Origination::NoIdentity, Origination::Tls)),
        }
    }

    /// New TLS settings for the same transport (`transport` is unchanged:
    /// the caller checked the keys match).
    pub fn refresh(&self, tls: Option<Arc<ClientTls>>, mesh: bool) {
        *self.tls.borrow_mut() = match tls {
            Some(t) => Origination::Tls(t),
            None if mesh => Origination::NoIdentity,
            None => Origination::Plain,
        };
    }

    /// Connect to `addr` within the connect timeout (and, for TLS, the
    /// handshake within another), on the caller's timer.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        timer: &mut Timer,
    ) -> Result<Stream, ConnectError> {
        #[cfg(test)]
        if let Some(scripted) = crate::testing::dial(addr) {
            return scripted;
        }
        // Cloned out: the borrow must not live across an await.
        let origination = self.tls.borrow().clone();
        if let Origination::NoIdentity = origination {
            return Err(ConnectError::Tls("no workload certificate held"));
        }
        let tcp = match timer
            .within(self.timeout, TcpStream::connect_addr(addr))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                debug!(%addr, error = %e, "upstream connect failed");
                return Err(ConnectError::Refused);
            }
            Err(_) => return Err(ConnectError::TimedOut),
        };
        let _ = tcp.set_nodelay(true);
        let Origination::Tls(tls) = origination else {
            return Ok(Stream::Plain(tcp));
        };
        let mut s = TlsStream::connect(tcp, tls.config.clone(), tls.server_name(addr.ip()))
            .map_err(|e| ConnectError::Tls(reason::describe(&e)))?;
        match timer.within(self.timeout, s.handshake()).await {
            Ok(Ok(())) => Ok(Stream::Tls(Box::new(s))),
            Ok(Err(e)) => {
                debug!(%addr, error = %e, "upstream TLS handshake failed");
                Err(ConnectError::Tls(reason::describe(&e)))
            }
            Err(_) => Err(ConnectError::TimedOut),
        }
    }
}
