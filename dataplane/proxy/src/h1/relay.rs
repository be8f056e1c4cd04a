//! HTTP/1.x body relays: move one body from a source stream to a
//! destination stream, re-framing it when the two sides need different
//! framings.
//!
//! Body bytes are written straight out of the buffer they were read into
//! (a `Slice` of it, as io_uring needs): no copy on the proxy's side for
//! content-length and chunked bodies. Every read and write is bounded by
//! the stall limit: a peer that stops sending or stops reading ends the
//! relay with `Timeout`, never holds it forever.

use std::io;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use ringmesh_http1::chunked::{write_chunk_header, LAST_CHUNK};
use ringmesh_http1::{ChunkedDecoder, ChunkedError};

use futures_util::FutureExt;

use crate::buf::{write_vec, ReadBuf};
use crate::timer::Timer;

/// How a body is delimited on the way in and on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// Exactly this many bytes, forwarded as is.
    Length(u64),
    /// Chunked in, chunked out: forwarded verbatim while the walker finds
    /// its end and checks its framing.
    Chunked,
    /// Chunked in, raw out: for HTTP/1.0 clients, the body ends at close.
    Dechunk,
    /// Until the sender closes, re-chunked for an HTTP/1.1 client.
    Rechunk,
    /// Until the sender closes, forwarded as is.
    UntilClose,
}

#[derive(Debug)]
pub enum RelayError {
    Read(io::Error),
    Write(io::Error),
    /// The sender closed before the body was complete.
    Truncated,
    /// No progress within the idle timeout.
    Timeout,
    Framing(ChunkedError),
}

/// Move the part of a body that has already arrived from `buf` to `out`,
/// behind the head written there, so head and body leave in one write: one
/// TCP segment and one wakeup of the peer instead of two, which costs far
/// more than copying up to `max` bytes. Returns what is left to relay, or
/// `None` when the whole body was taken.
pub fn coalesce(
    buf: &mut ReadBuf,
    out: &mut Vec<u8>,
    mode: BodyMode,
    max: usize,
) -> Option<BodyMode> {
    match mode {
        BodyMode::Length(n) => {
            let take = n.min(buf.len() as u64).min(max as u64) as usize;
            out.extend_from_slice(&buf.data()[..take]);
            buf.consume(take);
            let left = n - take as u64;
            (left > 0).then_some(BodyMode::Length(left))
        }
        BodyMode::Chunked if buf.len() <= max => {
            // Only a body that is complete in the buffer is taken, so the
            // relay never has to resume a half-walked chunk.
            let mut walker = ChunkedDecoder::new();
            match walker.scan(buf.data()) {
                Ok(n) if walker.is_done() => {
                    out.extend_from_slice(&buf.data()[..n]);
                    buf.consume(n);
                    None
                }
                _ => Some(mode),
            }
        }
        _ => Some(mode),
    }
}

/// Most a body read may grow the buffer to.
const BODY_BUFFER: usize = 64 * 1024;

/// Forward one body from `src` (with already-read bytes in `buf`) to `dst`.
/// What a body relay needs besides its two ends.
pub struct Relay<'a> {
    /// Scratch space for re-framed pieces (de-chunking, re-chunking).
    pub scratch: &'a mut Vec<u8>,
    /// The connection's timer, re-armed for every read and write.
    pub timer: &'a mut Timer,
    /// How long one read or write may stall.
    pub idle: Duration,
    /// A mirrored request's body copy: fed what is relayed, before it is
    /// written (the write gives the buffer's bytes away). Request bodies
    /// only (`Length`, `Chunked`).
    pub copy: Option<&'a mut crate::mirror::BodyCopy>,
}

pub async fn relay<R: AsyncReadRent, W: AsyncWriteRent>(
    src: &mut R,
    buf: &mut ReadBuf,
    dst: &mut W,
    mode: BodyMode,
    ctx: Relay<'_>,
) -> Result<u64, RelayError> {
    let Relay {
        scratch,
        timer,
        idle,
        mut copy,
    } = ctx;
    buf.reserve_for_body();
    let mut decoder = ChunkedDecoder::new();
    let mut remaining = match mode {
        BodyMode::Length(n) => n,
        _ => u64::MAX,
    };
    // Body bytes taken from `src` as framed on the wire (chunk framing
    // included), for the access log.
    let mut moved = 0u64;
    loop {
        if buf.is_empty() {
            let n = timer
                .within(idle, buf.fill(src, BODY_BUFFER))
                .await
                .map_err(|_| RelayError::Timeout)?
                .map_err(RelayError::Read)?;
            if n == 0 {
                return match mode {
                    BodyMode::UntilClose => Ok(moved),
                    BodyMode::Rechunk => {
                        scratch.clear();
                        scratch.extend_from_slice(LAST_CHUNK);
                        timed(timer, idle, write_vec(dst, scratch))
                            .await
                            .map(|()| moved)
                    }
                    _ => Err(RelayError::Truncated),
                };
            }
        }
        let done = match mode {
            BodyMode::Length(_) => {
                let n = remaining.min(buf.len() as u64) as usize;
                if let Some(c) = copy.as_deref_mut() {
                    c.push_wire(&buf.data()[..n]);
                }
                timed(timer, idle, buf.write_to(dst, n)).await?;
                moved += n as u64;
                remaining -= n as u64;
                remaining == 0
            }
            BodyMode::Chunked => {
                let n = decoder.scan(buf.data()).map_err(RelayError::Framing)?;
                if let Some(c) = copy.as_deref_mut() {
                    c.push_wire(&buf.data()[..n]);
                }
                timed(timer, idle, buf.write_to(dst, n)).await?;
                moved += n as u64;
                decoder.is_done()
            }
            BodyMode::Dechunk => {
                scratch.clear();
                let data = buf.data();
                let n = decoder
                    .advance(data, |s, e| scratch.extend_from_slice(&data[s..e]))
                    .map_err(RelayError::Framing)?;
                buf.consume(n);
                moved += n as u64;
                if !scratch.is_empty() {
                    timed(timer, idle, write_vec(dst, scratch)).await?;
                }
                decoder.is_done()
            }
            BodyMode::Rechunk => {
                // Rare path (HTTP/1.0-style upstreams): one copy to frame it.
                scratch.clear();
                write_chunk_header(scratch, buf.len());
                scratch.extend_from_slice(buf.data());
                scratch.extend_from_slice(b"\r\n");
                moved += buf.len() as u64;
                buf.consume(buf.len());
                timed(timer, idle, write_vec(dst, scratch)).await?;
                false
            }
            BodyMode::UntilClose => {
                let n = buf.len();
                timed(timer, idle, buf.write_to(dst, n)).await?;
                moved += n as u64;
                false
            }
        };
        if done {
            buf.shrink();
            return Ok(moved);
        }
    }
}

/// A write bounded by the stall limit, with both failures as relay errors.
/// A plain function returning a combinator: an `async fn` taking the write
/// future would hold it twice in every relay's state.
fn timed<'t, F>(
    timer: &'t mut Timer,
    idle: Duration,
    write: F,
) -> impl std::future::Future<Output = Result<(), RelayError>> + 't
where
    F: std::future::Future<Output = io::Result<()>> + 't,
{
    timer.within(idle, write).map(|r| match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(RelayError::Write(e)),
        Err(_) => Err(RelayError::Timeout),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf_with(bytes: &[u8]) -> ReadBuf {
        let mut b = ReadBuf::with_capacity(64);
        b.extend_from_slice(bytes);
        b
    }

    #[test]
    fn whole_small_body_rides_with_the_head() {
        let mut buf = buf_with(b"helloNEXT");
        let mut out = b"HEAD".to_vec();
        assert_eq!(
            coalesce(&mut buf, &mut out, BodyMode::Length(5), 1024),
            None
        );
        assert_eq!(out, b"HEADhello");
        assert_eq!(buf.data(), b"NEXT", "the next message stays");
    }

    #[test]
    fn partial_body_leaves_the_rest_to_relay() {
        let mut buf = buf_with(b"abc");
        let mut out = Vec::new();
        assert_eq!(
            coalesce(&mut buf, &mut out, BodyMode::Length(10), 1024),
            Some(BodyMode::Length(7))
        );
        assert_eq!(out, b"abc");
        assert!(buf.is_empty());
        let mut buf = buf_with(b"abcdef");
        let mut out = Vec::new();
        assert_eq!(
            coalesce(&mut buf, &mut out, BodyMode::Length(6), 4),
            Some(BodyMode::Length(2)),
            "bounded by max"
        );
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn only_complete_chunked_bodies_are_taken() {
        let mut buf = buf_with(b"3\r\nabc\r\n0\r\n\r\nGET");
        let mut out = Vec::new();
        assert_eq!(coalesce(&mut buf, &mut out, BodyMode::Chunked, 1024), None);
        assert_eq!(out, b"3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(buf.data(), b"GET");
        let mut buf = buf_with(b"3\r\nab");
        let mut out = Vec::new();
        assert_eq!(
            coalesce(&mut buf, &mut out, BodyMode::Chunked, 1024),
            Some(BodyMode::Chunked)
        );
        assert!(out.is_empty());
        assert_eq!(buf.len(), 5, "nothing consumed");
    }
}
