//! The core's pool of TLS record buffers.
//!
//! A TLS connection needs a buffer for ciphertext coming in (a record is
//! decrypted where it lands) and one for ciphertext going out, but only
//! while bytes are moving: an idle connection gives both back, so ten
//! thousand idle TLS connections hold no record buffers. Buffers are
//! per thread, and a worker is one thread pinned to one core, so the pool
//! is per core with no lock: a `RefCell` in a thread-local.

use std::cell::RefCell;

/// One buffer holds the largest record the TLS 1.2 wire allows (16 KiB of
/// plaintext, 2 KiB of expansion, the 5-byte header), so a record always
/// fits in an empty buffer and is decrypted in one piece.
pub const RECORD_BUF: usize = 16 * 1024 + 2048 + 5;

/// Free buffers kept per kind per core; beyond this they are freed.
const KEEP: usize = 256;

thread_local! {
    /// Incoming buffers, empty (`len` 0): reads fill them.
    static INCOMING: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    /// Outgoing buffers, zero-filled to their capacity once: rustls encrypts
    /// into an initialised `&mut [u8]`, so they are never re-zeroed.
    static OUTGOING: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for a whole record.
pub fn take_incoming() -> Vec<u8> {
    INCOMING
        .with_borrow_mut(|free| free.pop())
        .unwrap_or_else(|| Vec::with_capacity(RECORD_BUF))
}

/// Give back an incoming buffer. One that grew (a handshake flight larger
/// than a record) or lost its allocation is dropped instead.
pub fn put_incoming(mut buf: Vec<u8>) {
    if buf.capacity() != RECORD_BUF {
        return;
    }
    buf.clear();
    INCOMING.with_borrow_mut(|free| {
        if free.len() < KEEP {
            free.push(buf);
        }
    });
}

/// A buffer of `RECORD_BUF` initialised bytes to encrypt into.
pub fn take_outgoing() -> Vec<u8> {
    OUTGOING
        .with_borrow_mut(|free| free.pop())
        .unwrap_or_else(|| vec![0; RECORD_BUF])
}

pub fn put_outgoing(buf: Vec<u8>) {
    if buf.len() != RECORD_BUF {
        return;
    }
    OUTGOING.with_borrow_mut(|free| {
        if free.len() < KEEP {
            free.push(buf);
        }
    });
}

/// Free the pooled buffers beyond `floor` of each kind (the core's sweep,
/// after a burst).
pub fn trim(floor: usize) -> bool {
    let a = INCOMING.with_borrow_mut(|free| shrink(free, floor));
    let b = OUTGOING.with_borrow_mut(|free| shrink(free, floor));
    a || b
}

fn shrink(free: &mut Vec<Vec<u8>>, floor: usize) -> bool {
    if free.len() <= floor {
        return false;
    }
    free.truncate(floor);
    free.shrink_to_fit();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_in_shape() {
        let a = take_incoming();
        assert!(a.is_empty() && a.capacity() == RECORD_BUF);
        let mut a2 = a;
        a2.extend_from_slice(b"partial record");
        put_incoming(a2);
        assert!(take_incoming().is_empty(), "returned buffers are cleared");

        let out = take_outgoing();
        assert_eq!(out.len(), RECORD_BUF);
        put_outgoing(out);
        put_outgoing(Vec::new()); // a lost one is not pooled
        assert_eq!(take_outgoing().len(), RECORD_BUF);
    }

    #[test]
    fn a_grown_buffer_is_not_pooled() {
        let mut a = take_incoming();
        a.reserve(RECORD_BUF * 2);
        put_incoming(a);
        assert_eq!(take_incoming().capacity(), RECORD_BUF);
    }
}
