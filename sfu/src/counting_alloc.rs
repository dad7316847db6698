//! A global allocator that counts each thread's heap allocations and live
//! bytes, so the forwarding bench and `sfu/tests/allocations.rs` can say
//! what the forwarding path allocates and what a subscriber holds. Install it in the binary that measures:
//! `#[global_allocator] static GLOBAL: CountingAlloc = CountingAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting each thread's allocations (other
/// threads, such as a test harness's, allocate at their own pace).
pub struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// count is a const-initialised thread local, which does not allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        let _ = LIVE_BYTES.try_with(|n| n.set(n.get() + layout.size() as i64));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE_BYTES.try_with(|n| n.set(n.get() - layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Heap allocations this thread has made so far, with [`CountingAlloc`]
/// installed (always 0 without it).
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Bytes this thread has allocated and not freed, with [`CountingAlloc`]
/// installed: the live heap of whatever runs on one thread alone, such as
/// a simulated call (a block freed on another thread is not subtracted).
pub fn live_bytes() -> i64 {
    LIVE_BYTES.with(Cell::get)
}
