//! Cache prefetch hints: they change no result, only when memory arrives.

/// Starts loading every cache line of `bytes`.
pub(super) fn prefetch_lines(bytes: &[u8]) {
    let base = bytes.as_ptr() as usize;
    let mut at = 0;
    while at < bytes.len() {
        prefetch(&bytes[at..]);
        // The next line's first byte: lines are aligned in memory, not in the slice.
        at = ((base + at) & !(CACHE_LINE_BYTES - 1)) + CACHE_LINE_BYTES - base;
    }
}

/// Starts loading the cache line holding the start of `value`.
pub(super) fn prefetch_value<T>(value: &T) {
    prefetch_addr((value as *const T).cast::<u8>());
}

/// Records of one card worth fetching ahead: most cards have one to three.
pub(super) const PREFETCH_RECORDS: usize = 4;
const CACHE_LINE_BYTES: usize = 64;

/// Asks the CPU to start loading the cache line holding the first byte of `bytes`, without
/// waiting for it. A hint: it changes no result, only when the memory arrives.
#[inline]
pub(super) fn prefetch(bytes: &[u8]) {
    if let Some(b) = bytes.first() {
        prefetch_addr(b);
    }
}

/// [`prefetch`] of the line holding `at`, which points into a live value.
#[inline]
#[allow(unsafe_code)] // A cache hint; see SAFETY below.
fn prefetch_addr(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it loads nothing into the program and never faults,
    // even on an unmapped address; the callers' addresses are in live values anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
