//! Making upstream connections: TCP, then TLS when the cluster originates
//! it.

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
    tls: Option<Arc<ClientTls>>,
}

impl Connector {
    pub fn plain(timeout: Duration) -> Self {
        Connector {
            timeout,
            transport: TransportKey::Plain,
            tls: None,
        }
    }

    /// TLS over TCP, with a cluster's settings.
    pub fn tls(timeout: Duration, tls: Arc<ClientTls>) -> Self {
        Connector {
            timeout,
            transport: TransportKey::Tls(tls.key),
            tls: Some(tls),
        }
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
        let Some(tls) = &self.tls else {
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
