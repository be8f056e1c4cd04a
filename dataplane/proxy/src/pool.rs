//! Per-core pools of the buffers a request needs only while it is active.
//!
//! A keep-alive connection spends most of its life idle. Its upstream read
//! buffer, head buffer and parsed-header lists are needed only from the
//! moment a request arrives until its response is sent, so they are taken
//! from this core's pool then and given back when the connection goes idle:
//! thousands of idle connections hold no such buffers, and a busy core
//! recycles the same few without calling the allocator. Single-threaded
//! (one pool per core), so a `RefCell` is all the synchronisation needed.

use std::cell::RefCell;

use ringmesh_http1::HeaderSpan;

/// Size of a pooled byte buffer: a response head and a small body in one
/// read, and a whole head to write.
pub const BUF_SIZE: usize = 16 * 1024;

/// Most free items kept per kind; beyond this, returned items are freed.
const KEEP: usize = 1024;

/// Free items `trim` leaves: enough for the requests a busy core has in
/// flight at once between two trims without touching the allocator.
const FLOOR: usize = 64;

/// Header lists start with room for this many fields (the common case);
/// they grow when a message has more and keep that size in the pool.
const HEADERS: usize = 32;

#[derive(Default)]
pub struct Pool {
    bufs: RefCell<Vec<Vec<u8>>>,
    headers: RefCell<Vec<Vec<HeaderSpan>>>,
}

impl Pool {
    pub fn take_buf(&self) -> Vec<u8> {
        self.bufs
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUF_SIZE))
    }

    /// Return a buffer; buffers that grew (a large body went through them)
    /// or came from elsewhere are freed instead, so the pool stays uniform.
    pub fn put_buf(&self, mut buf: Vec<u8>) {
        let mut bufs = self.bufs.borrow_mut();
        if buf.capacity() == BUF_SIZE && bufs.len() < KEEP {
            buf.clear();
            bufs.push(buf);
        }
    }

    pub fn take_headers(&self) -> Vec<HeaderSpan> {
        self.headers
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(HEADERS))
    }

    pub fn put_headers(&self, mut list: Vec<HeaderSpan>) {
        let mut lists = self.headers.borrow_mut();
        if list.capacity() > 0 && lists.len() < KEEP {
            list.clear();
            lists.push(list);
        }
    }

    /// Free what a burst left beyond `FLOOR`; called once a second, so a
    /// burst of concurrent requests does not pin its buffers after it ends.
    /// Returns whether anything was freed.
    pub fn trim(&self) -> bool {
        let mut bufs = self.bufs.borrow_mut();
        let mut headers = self.headers.borrow_mut();
        let freed = bufs.len() > FLOOR || headers.len() > FLOOR;
        bufs.truncate(FLOOR);
        bufs.shrink_to(FLOOR);
        headers.truncate(FLOOR);
        headers.shrink_to(FLOOR);
        freed
    }

    /// Free items held, for tests and metrics.
    pub fn free_bufs(&self) -> usize {
        self.bufs.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_recycled_not_reallocated() {
        let pool = Pool::default();
        let a = pool.take_buf();
        let ptr = a.as_ptr();
        pool.put_buf(a);
        let b = pool.take_buf();
        assert_eq!(b.as_ptr(), ptr, "same allocation handed out again");
        assert!(b.is_empty());
    }

    #[test]
    fn grown_or_foreign_buffers_are_freed() {
        let pool = Pool::default();
        let mut grown = pool.take_buf();
        grown.reserve(BUF_SIZE * 4);
        pool.put_buf(grown);
        pool.put_buf(Vec::new());
        pool.put_buf(Vec::with_capacity(10));
        assert_eq!(pool.free_bufs(), 0);
    }

    #[test]
    fn trim_returns_a_burst_to_the_floor() {
        let pool = Pool::default();
        let burst: Vec<Vec<u8>> = (0..500).map(|_| pool.take_buf()).collect();
        for b in burst {
            pool.put_buf(b);
        }
        assert_eq!(pool.free_bufs(), 500);
        assert!(pool.trim());
        assert_eq!(pool.free_bufs(), FLOOR);
        assert!(!pool.trim(), "nothing more to free");
    }

    #[test]
    fn the_pool_keeps_a_bounded_number() {
        let pool = Pool::default();
        let many: Vec<Vec<u8>> = (0..KEEP + 10).map(|_| pool.take_buf()).collect();
        for b in many {
            pool.put_buf(b);
        }
        assert_eq!(pool.free_bufs(), KEEP);
    }
}
