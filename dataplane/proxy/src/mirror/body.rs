//! A copy of a request body for its mirror, taken as the body passes
//! through the proxy on its way to the real upstream.
//!
//! The real request is never held back for it: the copy sees the bytes
//! the downstream relays anyway, in the order it relays them, and gives
//! up (freeing what it holds) as soon as the body outgrows the mirror's
//! `max_body_bytes`. Only a mirrored request has one, so this is the one
//! place a request body is copied for mirroring: HTTP/1.1 bytes are
//! copied into `Bytes` (the relay writes them from the read buffer and
//! reuses it), HTTP/2 DATA is kept by reference (`Bytes` clones).

use bytes::Bytes;
use ringmesh_http1::ChunkedDecoder;

/// How the copied body ends.
#[derive(Debug)]
enum Framing {
    /// After this many bytes (HTTP/1.1 content-length).
    Length(u64),
    /// At its last chunk: the copy keeps the payload, not the framing.
    Chunked(ChunkedDecoder),
    /// When the downstream says so (`end`): HTTP/2 END_STREAM.
    Stream,
}

/// Where a copy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyState {
    /// More of the body is still to come.
    Copying,
    /// The whole body is in the copy.
    Done,
    /// The body outgrew the limit: the copy was dropped.
    TooLarge,
    /// The body's framing broke (the real request fails on it too).
    Broken,
}

#[derive(Debug)]
pub struct BodyCopy {
    chunks: Vec<Bytes>,
    len: u64,
    limit: u64,
    framing: Framing,
    state: CopyState,
}

impl BodyCopy {
    /// A copy of an HTTP/1.1 body of `length` bytes (`None`: chunked).
    pub fn h1(length: Option<u64>, limit: u64) -> Box<Self> {
        let framing = match length {
            Some(n) => Framing::Length(n),
            None => Framing::Chunked(ChunkedDecoder::new()),
        };
        Self::new(framing, limit)
    }

    /// A copy of an HTTP/2 body, complete at `end`.
    pub fn h2(limit: u64) -> Box<Self> {
        Self::new(Framing::Stream, limit)
    }

    fn new(framing: Framing, limit: u64) -> Box<Self> {
        let mut copy = Box::new(BodyCopy {
            chunks: Vec::new(),
            len: 0,
            limit,
            framing,
            state: CopyState::Copying,
        });
        copy.check_done();
        copy
    }

    pub fn state(&self) -> CopyState {
        self.state
    }

    /// HTTP/1.1 body bytes as framed on the wire, in order.
    pub fn push_wire(&mut self, wire: &[u8]) {
        if self.state != CopyState::Copying || wire.is_empty() {
            return;
        }
        match &mut self.framing {
            Framing::Length(n) => {
                let take = (*n - self.len).min(wire.len() as u64) as usize;
                self.append(Bytes::copy_from_slice(&wire[..take]));
            }
            Framing::Chunked(decoder) => {
                let mut payload = Vec::new();
                match decoder.advance(wire, |s, e| payload.extend_from_slice(&wire[s..e])) {
                    Ok(_) => self.append(Bytes::from(payload)),
                    Err(_) => self.give_up(CopyState::Broken),
                }
            }
            Framing::Stream => self.append(Bytes::copy_from_slice(wire)),
        }
        self.check_done();
    }

    /// One HTTP/2 DATA payload.
    pub fn push_data(&mut self, data: &Bytes) {
        if self.state == CopyState::Copying && !data.is_empty() {
            self.append(data.clone());
        }
    }

    /// The body ended (HTTP/2 END_STREAM, trailers).
    pub fn end(&mut self) {
        if self.state == CopyState::Copying {
            self.state = CopyState::Done;
        }
    }

    /// The copied body, once `Done`.
    pub fn take(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.chunks)
    }

    fn append(&mut self, b: Bytes) {
        if self.state != CopyState::Copying || b.is_empty() {
            return;
        }
        self.len += b.len() as u64;
        if self.len > self.limit {
            self.give_up(CopyState::TooLarge);
            return;
        }
        self.chunks.push(b);
    }

    fn give_up(&mut self, why: CopyState) {
        self.state = why;
        self.chunks = Vec::new();
    }

    fn check_done(&mut self) {
        if self.state != CopyState::Copying {
            return;
        }
        let done = match &self.framing {
            Framing::Length(n) => self.len >= *n,
            Framing::Chunked(d) => d.is_done(),
            Framing::Stream => false,
        };
        if done {
            self.state = CopyState::Done;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(c: &mut BodyCopy) -> Vec<u8> {
        c.take().concat()
    }

    #[test]
    fn a_sized_body_is_done_at_its_length_in_any_split() {
        let mut c = BodyCopy::h1(Some(5), 10);
        c.push_wire(b"he");
        assert_eq!(c.state(), CopyState::Copying);
        c.push_wire(b"llo");
        assert_eq!(c.state(), CopyState::Done);
        c.push_wire(b"more");
        assert_eq!(joined(&mut c), b"hello");
    }

    #[test]
    fn a_chunked_body_keeps_its_payload_not_its_framing() {
        let mut c = BodyCopy::h1(None, 100);
        c.push_wire(b"3\r\nab");
        c.push_wire(b"c\r\n2\r\nde\r\n0\r");
        assert_eq!(c.state(), CopyState::Copying);
        c.push_wire(b"\n\r\n");
        assert_eq!(c.state(), CopyState::Done);
        assert_eq!(joined(&mut c), b"abcde");
    }

    #[test]
    fn over_the_limit_the_copy_is_dropped() {
        let mut c = BodyCopy::h2(4);
        c.push_data(&Bytes::from_static(b"abc"));
        c.push_data(&Bytes::from_static(b"de"));
        assert_eq!(c.state(), CopyState::TooLarge);
        c.end();
        assert_eq!(c.state(), CopyState::TooLarge);
        assert!(c.take().is_empty());
        // Exactly the limit fits.
        let mut c = BodyCopy::h1(Some(4), 4);
        c.push_wire(b"abcd");
        assert_eq!(c.state(), CopyState::Done);
    }

    #[test]
    fn broken_chunks_end_the_copy() {
        let mut c = BodyCopy::h1(None, 100);
        c.push_wire(b"zz\r\n");
        assert_eq!(c.state(), CopyState::Broken);
    }

    #[test]
    fn an_empty_sized_body_is_done_at_once() {
        assert_eq!(BodyCopy::h1(Some(0), 0).state(), CopyState::Done);
    }
}
