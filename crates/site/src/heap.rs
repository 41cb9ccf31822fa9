//! The process's heap, set up so that an order never waits on the kernel to grow it.
//!
//! With glibc's defaults every thread but the main one allocates from an arena of its own,
//! which grows by `mprotect(2)` a page or so at a time: a gateway keeps a few hundred bytes
//! per order (the resting order, its Execution Report kept for replay), so one order in 15-20
//! paid for a system call (measured 15-50 µs on the benchmark VM, see BENCHMARKS.md) in the
//! middle of its round trip. [`keep_heap`] asks glibc instead for one arena, grown 64 MiB at a
//! time (`M_TOP_PAD`) and not handed back to the kernel below 512 MiB of free top
//! (`M_TRIM_THRESHOLD`), and touches the first 32 MiB of it once at start, so the pages the
//! first ~100,000 orders keep are already mapped (no page fault on their path either).
//! `TWINSITE_GLIBC_HEAP=default` keeps glibc's defaults.

/// The environment variable that keeps glibc's own heap settings when set to `default`.
pub const HEAP_ENV: &str = "TWINSITE_GLIBC_HEAP";

/// Apply the heap settings; call first thing in `main`, before any thread starts. Returns
/// whether they were applied (false on other C libraries, or when `TWINSITE_GLIBC_HEAP=default`).
pub fn keep_heap() -> bool {
    if std::env::var(HEAP_ENV).is_ok_and(|v| v == "default") {
        return false;
    }
    apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    const MIB: libc::c_int = 1024 * 1024;
    // SAFETY: mallopt only changes allocator parameters; it is called before other threads
    // exist, and every value is in the range glibc documents.
    let set = unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1) == 1
            && libc::mallopt(libc::M_TOP_PAD, 64 * MIB) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, 512 * MIB) == 1
    };
    if set {
        prefault(PREFAULT_BYTES);
    }
    set
}

/// How much of the heap is touched at start.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const PREFAULT_BYTES: usize = 32 << 20;

/// Touch `bytes` of heap in blocks under glibc's mmap threshold (so they come from the heap
/// itself), then free them: they coalesce into the heap's top, which the
/// trim threshold keeps mapped, and later allocations are carved from pages already present.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn prefault(bytes: usize) {
    const BLOCK: usize = 64 * 1024;
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(bytes / BLOCK);
    for _ in 0..bytes / BLOCK {
        let mut b = Vec::<u8>::with_capacity(BLOCK);
        // Writing maps the pages (zeroing a page costs about what its fault costs).
        b.resize(BLOCK, 1);
        blocks.push(b);
    }
    std::hint::black_box(&blocks);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}
