//! The two places TLS touches a caller's buffer through raw pointers.
//!
//! monoio's IO traits pass buffers as `IoBuf`/`IoBufMut`, which expose a
//! pointer and a length (what io_uring needs), not a slice. A TCP stream
//! hands the pointer to the kernel; TLS has to encrypt from the bytes and
//! decrypt into the room, so it needs them as memory it can read and
//! write. Both conversions rely only on the traits' documented contracts.

use monoio::buf::{IoBuf, IoBufMut};

/// The initialised bytes of a buffer, to encrypt.
pub fn as_slice<T: IoBuf>(buf: &T) -> &[u8] {
    #[allow(unsafe_code)]
    // SAFETY: `IoBuf` promises that `read_ptr` points at `bytes_init`
    // initialised bytes that stay valid and unchanged while the buffer is
    // borrowed; the slice borrows `buf`, so it cannot outlive them.
    unsafe {
        std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init())
    }
}

/// A reader's buffer being filled from its start, as a read would.
pub struct Fill<T> {
    buf: T,
    filled: usize,
}

impl<T: IoBufMut> Fill<T> {
    pub fn new(buf: T) -> Self {
        Fill { buf, filled: 0 }
    }

    pub fn room(&mut self) -> usize {
        self.buf.bytes_total() - self.filled
    }

    pub fn filled(&self) -> usize {
        self.filled
    }

    /// Append as much of `bytes` as fits; returns how much.
    pub fn put(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.room());
        if n == 0 {
            return 0;
        }
        #[allow(unsafe_code)]
        // SAFETY: `IoBufMut` promises `write_ptr` is valid for writes of
        // `bytes_total` bytes; `filled + n <= bytes_total` by `room`, the
        // source is a distinct slice, and `set_init` records exactly the
        // bytes written from the start of the buffer so far.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.buf.write_ptr().add(self.filled), n);
            self.filled += n;
            self.buf.set_init(self.filled);
        }
        n
    }

    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: IoBufMut> super::Sink for Fill<T> {
    fn put(&mut self, bytes: &[u8]) -> usize {
        Fill::put(self, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::buf::IoBufMut;

    #[test]
    fn fill_writes_from_the_start_of_a_slice_and_stops_at_its_end() {
        let mut v = Vec::with_capacity(10);
        v.extend_from_slice(b"head");
        let mut f = Fill::new(v.slice_mut(4..10));
        assert_eq!(f.room(), 6);
        assert_eq!(f.put(b"abc"), 3);
        assert_eq!(f.put(b"defgh"), 3);
        assert_eq!(f.put(b"x"), 0);
        let v = f.into_inner().into_inner();
        assert_eq!(v, b"headabcdef");
    }

    #[test]
    fn as_slice_sees_only_initialised_bytes() {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(b"hello");
        assert_eq!(as_slice(&v), b"hello");
        assert_eq!(as_slice(&v.slice(1..3)), b"el");
    }
}
