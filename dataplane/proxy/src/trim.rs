//! Give memory freed by parked connections back to the OS.
//!
//! When a connection parks, its task state and buffers (a few KiB) are
//! freed, but glibc keeps freed chunks in its arenas: they sit between the
//! small parked tasks that stay alive, so the heap never shrinks from the
//! top and RSS stays at the peak. `malloc_trim(0)` returns the free pages
//! inside the heap (madvise). Measured with 5000 idle keep-alive
//! connections, one request each made in turn (perf/peers/idle_memory.py
//! --mode sequential): 3.65 KiB per connection without it, 0.70 KiB with
//! it (nginx 1.22: 0.51 KiB). After a burst it cannot help much: see
//! docs/benchmarks.md.
//!
//! It runs from the core's 1 s sweep, and only when something was freed
//! since the last sweep, so a busy core that never parks never calls it.

/// Return free heap pages to the OS (glibc); a no-op elsewhere.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        #[allow(unsafe_code)]
        // SAFETY: malloc_trim has no preconditions; it only walks glibc's
        // own free lists under their locks and madvises free pages.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
