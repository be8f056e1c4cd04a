//! A client's HTTP/2 request body, as the proxy forwards it.
//!
//! Pieces (DATA, trailers, the end) that arrived with the head are taken
//! at once without waiting and *held*: they go out with the head on every
//! try, so a request whose body fits among them stays replayable for
//! retries. The rest is pulled live as the upstream takes it; pulling one
//! starts the relay (no more retries), and a live piece on its way to an
//! HTTP/2 upstream is kept in `in_hand` until sent, so waiting for the
//! upstream's window can be abandoned (a response head arrived first) and
//! resumed without losing a byte.
//!
//! The client's flow-control window is released only as bytes leave for
//! the upstream: a slow upstream slows the client, never the proxy's
//! memory.

use std::future::poll_fn;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use http::HeaderMap;

use crate::pipeline::SendError;

/// Most body bytes held from the arrival of the head.
pub const HELD_MAX: usize = 16 * 1024;

/// What the client's request stream yields next.
pub enum Piece {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
}

pub struct ClientBody {
    recv: RecvStream,
    /// DATA ended (trailers may follow).
    data_done: bool,
    /// Taken when the head arrived, sent on every try.
    pub held: Vec<Bytes>,
    held_len: usize,
    pub held_trailers: Option<HeaderMap>,
    /// Pieces remain with the client after the held ones.
    pub pending: bool,
    /// A live piece was pulled: the request can be sent again only if
    /// every live piece was kept too (`kept_all`).
    pub relay_started: bool,
    /// Every live piece pulled so far was also copied into `held` (a
    /// `Bytes` clone, no copy of the data), within `HELD_MAX`: a body
    /// that arrives after its head, as a client's DATA frame often does,
    /// stays replayable for a retry, as Envoy buffers for its retries.
    kept_all: bool,
    /// A live piece not yet (fully) sent to an HTTP/2 upstream.
    in_hand: Option<Bytes>,
    /// Bytes pulled live and not yet released to the client's window.
    unreleased: usize,
    /// DATA bytes received from the client, for the access log.
    pub received: u64,
    /// A mirrored request's body, copied (by reference) as it is taken.
    pub copy: Option<Box<crate::mirror::BodyCopy>>,
}

impl ClientBody {
    pub fn new(recv: RecvStream) -> Self {
        let pending = !recv.is_end_stream();
        ClientBody {
            recv,
            data_done: false,
            held: Vec::new(),
            held_len: 0,
            held_trailers: None,
            pending,
            relay_started: false,
            kept_all: true,
            in_hand: None,
            unreleased: 0,
            received: 0,
            copy: None,
        }
    }

    /// Every piece taken from the client passes here (held or live), so
    /// a mirror's copy sees the body once, in order.
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Result<Piece, h2::Error>> {
        if !self.data_done {
            match self.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    self.received += data.len() as u64;
                    if let Some(c) = self.copy.as_deref_mut() {
                        c.push_data(&data);
                    }
                    return Poll::Ready(Ok(Piece::Data(data)));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => self.data_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        let piece = match self.recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(t))) => Piece::Trailers(t),
            Poll::Ready(Ok(None)) => Piece::End,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        // Request trailers are not mirrored (an HTTP/1.1 mirror could not
        // carry them with a content-length): the body ends here.
        if let Some(c) = self.copy.as_deref_mut() {
            c.end();
        }
        Poll::Ready(Ok(piece))
    }

    /// Hold the pieces that are already here, without waiting, up to
    /// `HELD_MAX` bytes. Done once, before the first try.
    pub fn hold_ready(&mut self) {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        while self.pending && self.held_len < HELD_MAX {
            match self.poll_piece(&mut cx) {
                Poll::Ready(Ok(Piece::Data(d))) => {
                    let _ = self.recv.flow_control().release_capacity(d.len());
                    self.held_len += d.len();
                    if !d.is_empty() {
                        self.held.push(d);
                    }
                }
                Poll::Ready(Ok(Piece::Trailers(t))) => {
                    self.held_trailers = Some(t);
                    self.pending = false;
                }
                Poll::Ready(Ok(Piece::End)) => self.pending = false,
                // An error is met again (and answered) by the relay.
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
        }
    }

    /// The next live piece, waiting for it; starts the relay.
    pub async fn next(&mut self) -> Result<Piece, SendError> {
        self.relay_started = true;
        let piece = poll_fn(|cx| self.poll_piece(cx))
            .await
            .map_err(|_| SendError::Client)?;
        match &piece {
            Piece::Data(d) => {
                self.unreleased += d.len();
                if self.kept_all && self.held_len + d.len() <= HELD_MAX {
                    self.held_len += d.len();
                    if !d.is_empty() {
                        self.held.push(d.clone());
                    }
                } else {
                    self.kept_all = false;
                }
            }
            Piece::Trailers(t) => {
                self.held_trailers = Some(t.clone());
                self.pending = false;
            }
            Piece::End => self.pending = false,
        }
        Ok(piece)
    }

    /// The whole body is in `held`: it can be sent again on another try.
    pub fn replayable(&self) -> bool {
        !self.relay_started || (self.kept_all && !self.pending && self.in_hand.is_none())
    }

    /// A live piece has left for the upstream: open the client's window.
    pub fn release(&mut self) {
        if self.unreleased > 0 {
            let _ = self.recv.flow_control().release_capacity(self.unreleased);
            self.unreleased = 0;
        }
    }

    /// Send the held pieces on `up`, ending the stream when nothing
    /// remains with the client.
    pub async fn send_held(&mut self, up: &mut SendStream<Bytes>) -> Result<(), SendError> {
        for d in &self.held {
            send_up(up, &mut Some(d.clone())).await?;
        }
        if !self.pending {
            self.finish(up)?;
        }
        Ok(())
    }

    fn finish(&mut self, up: &mut SendStream<Bytes>) -> Result<(), SendError> {
        let sent = match self.held_trailers.clone() {
            Some(t) => up.send_trailers(t),
            None => up.send_data(Bytes::new(), true),
        };
        sent.map_err(|_| SendError::Upstream { early: true })
    }

    /// Move one live piece to an HTTP/2 upstream. Cancel-safe: a piece
    /// waiting for the upstream's window stays in hand.
    pub async fn pump_one(&mut self, up: &mut SendStream<Bytes>) -> Result<(), SendError> {
        if self.in_hand.is_none() {
            match self.next().await? {
                Piece::Data(d) => self.in_hand = Some(d),
                Piece::Trailers(t) => {
                    return up
                        .send_trailers(t)
                        .map_err(|_| SendError::Upstream { early: true })
                }
                Piece::End => {
                    return up
                        .send_data(Bytes::new(), true)
                        .map_err(|_| SendError::Upstream { early: true })
                }
            }
        }
        send_up(up, &mut self.in_hand).await?;
        self.release();
        Ok(())
    }

    /// Pump every live piece to an HTTP/2 upstream.
    pub async fn pump_all(&mut self, up: &mut SendStream<Bytes>) -> Result<(), SendError> {
        while self.pending || self.in_hand.is_some() {
            self.pump_one(up).await?;
        }
        Ok(())
    }
}

/// Send `data` on an upstream stream as its window allows; what is not
/// sent yet stays in `data` (cancel-safe).
pub async fn send_up(
    up: &mut SendStream<Bytes>,
    data: &mut Option<Bytes>,
) -> Result<(), SendError> {
    while let Some(d) = data {
        if d.is_empty() {
            *data = None;
            break;
        }
        up.reserve_capacity(d.len());
        let n = match poll_fn(|cx| up.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            _ => return Err(SendError::Upstream { early: true }),
        };
        if n == 0 {
            continue;
        }
        let chunk = d.split_to(n.min(d.len()));
        up.send_data(chunk, false)
            .map_err(|_| SendError::Upstream { early: true })?;
    }
    Ok(())
}

/// Send `data` to a client stream as its window allows, each wait within
/// `stall`; `end` ends the stream with the last frame. An error says why
/// the response cannot go on.
pub async fn send_down(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    timer: &mut crate::timer::Timer,
    stall: Duration,
) -> Result<(), &'static str> {
    if data.is_empty() {
        if end {
            send.send_data(data, true)
                .map_err(|_| "client reset the stream")?;
        }
        return Ok(());
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let capacity = timer
            .within(stall, poll_fn(|cx| send.poll_capacity(cx)))
            .await;
        let n = match capacity {
            Err(_) => return Err("client stopped reading"),
            Ok(None) | Ok(Some(Err(_))) => return Err("client reset the stream"),
            Ok(Some(Ok(n))) => n,
        };
        if n == 0 {
            continue;
        }
        let chunk = data.split_to(n.min(data.len()));
        send.send_data(chunk, end && data.is_empty())
            .map_err(|_| "client reset the stream")?;
    }
    Ok(())
}
