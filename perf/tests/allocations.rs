//! The hot path allocates nothing per request once a connection's buffers
//! exist: counted with a global allocator, not timed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ringmesh_perf::{HotPath, REQUEST, RESPONSE, REWRITTEN_REQUEST};

struct Counting;

thread_local! {
    /// Per thread, so tests running in parallel do not count each other.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[allow(unsafe_code)]
// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn parse_route_and_rewrite_allocate_nothing_per_request() {
    let mut hp = HotPath::new();
    // First request sizes the reused buffers, as a connection's first does.
    assert!(hp.run(REQUEST, RESPONSE) > 0);
    let before = allocations();
    for _ in 0..1000 {
        assert!(hp.run(REQUEST, RESPONSE) > 0);
    }
    let per_request = (allocations() - before) as f64 / 1000.0;
    assert_eq!(per_request, 0.0, "allocations per request on the hot path");
}

#[test]
fn a_rewritten_path_and_host_allocate_nothing_per_request() {
    // The rewrite is written into the head being encoded: no buffer of
    // its own. (The unrewritten requests above share the config, so a
    // route with `rewrite` costs the others nothing either.)
    let mut hp = HotPath::new();
    assert!(hp.run(REWRITTEN_REQUEST, RESPONSE) > 0);
    let before = allocations();
    for _ in 0..1000 {
        assert!(hp.run(REWRITTEN_REQUEST, RESPONSE) > 0);
    }
    let per_request = (allocations() - before) as f64 / 1000.0;
    assert_eq!(per_request, 0.0, "allocations per rewritten request");
}

#[test]
fn access_log_lines_and_spans_allocate_nothing_per_request() {
    let mut hp = HotPath::new();
    // The first request sizes the buffer, as a core's first batch does.
    assert!(hp.telemetry(REQUEST) > 0);
    let before = allocations();
    for _ in 0..1000 {
        assert!(hp.telemetry(REQUEST) > 0);
    }
    let per_request = (allocations() - before) as f64 / 1000.0;
    assert_eq!(
        per_request, 0.0,
        "allocations per logged and traced request"
    );
}

#[test]
fn the_counter_sees_an_allocation() {
    let before = allocations();
    let v: Vec<u8> = std::hint::black_box(Vec::with_capacity(64));
    assert_eq!(allocations() - before, 1);
    drop(v);
}
