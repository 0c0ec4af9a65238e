//! The binary's allocator (mimalloc), told to give freed memory back to the OS: the one
//! place shikaku calls it directly.

/// mimalloc's `mi_option_purge_delay` (the same place in the option list of its v2 and v3,
/// `mimalloc.h`); the Rust bindings name no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Has mimalloc (the binary's allocator) give freed memory back to the OS at once. By
/// default it waits 10 ms and purges only on a later allocation or free in the same thread,
/// so a serving core left idle after thousands of connections closed kept their buffers
/// resident indefinitely (120 MiB after 3,000 connections, in `tests/hostile_server.rs`).
/// Pages freed on the query path are none: lookups and answers allocate nothing per request.
#[allow(unsafe_code)] // Setting an integer option of mimalloc; see SAFETY below.
pub fn return_freed_memory_at_once() {
    // SAFETY: sets an integer option that mimalloc reads when it next purges; the call takes
    // no pointer and mimalloc allows it from any thread at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// Has mimalloc return what the calling thread's heap holds freed (pages emptied and kept for
/// reuse, blocks freed by other threads): without an allocation after them, an idle core kept
/// a burst's pages resident (7 to 15 MiB after 1,500 connections closed, `perf/memory.py`).
/// A serving core calls it when its connections have fallen since its last look, off the
/// query path.
#[allow(unsafe_code)] // A call into mimalloc with no pointer; see SAFETY below.
pub fn collect_freed_memory() {
    // SAFETY: `mi_collect` takes no pointer; mimalloc allows it from any thread at any time,
    // on that thread's own heap.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}
