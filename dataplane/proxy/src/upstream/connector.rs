//! Making upstream connections.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;
use tracing::debug;

use super::TransportKey;
use crate::timer::Timer;
use crate::transport::Stream;

/// Why a connection could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    Refused,
    TimedOut,
}

/// Makes connections of one transport to a cluster's endpoints.
#[derive(Debug, Clone)]
pub struct Connector {
    pub timeout: Duration,
    pub transport: TransportKey,
}

impl Connector {
    pub fn plain(timeout: Duration) -> Self {
        Connector {
            timeout,
            transport: TransportKey::Plain,
        }
    }

    /// Connect to `addr` within the connect timeout, on the caller's timer.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        timer: &mut Timer,
    ) -> Result<Stream, ConnectError> {
        #[cfg(test)]
        if let Some(scripted) = crate::testing::dial(addr) {
            return scripted;
        }
        match self.transport {
            TransportKey::Plain => {
                match timer
                    .within(self.timeout, TcpStream::connect_addr(addr))
                    .await
                {
                    Ok(Ok(s)) => Ok(Stream::tcp(s)),
                    Ok(Err(e)) => {
                        debug!(%addr, error = %e, "upstream connect failed");
                        Err(ConnectError::Refused)
                    }
                    Err(_) => Err(ConnectError::TimedOut),
                }
            }
        }
    }
}
