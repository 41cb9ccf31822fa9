//! The process's heap, set up so that an order never waits on the kernel to grow it.
//!
//! With glibc's defaults every thread but the main one allocates from an arena of its own,
//! which grows by `mprotect(2)` a page or so at a time and is trimmed back when its top is
//! free: a gateway keeps a few hundred bytes per order (the resting order, its Execution Report
//! kept for replay), so one order in 15-20 paid for a system call (15-50 µs on the benchmark
//! VM, see BENCHMARKS.md) and a page fault in the middle of its round trip.
//!
//! * [`keep_heap`], first thing in `main`: free memory is not handed back to the kernel below
//!   512 MiB of free top (`M_TRIM_THRESHOLD`), and the main arena grows 64 MiB at a time
//!   (`M_TOP_PAD`).
//! * [`prefault_thread`], on the thread that runs a site: its arena is grown and its pages
//!   touched once (32 MiB, about 10 ms), so the memory the first ~100,000 orders keep is
//!   mapped before any order arrives.
//!
//! Threads keep their own arenas: one arena for the whole process (`M_ARENA_MAX=1`) was
//! tried and cost the FIX benchmark's ten sessions about a quarter of their throughput (lock
//! contention). `TWINSITE_GLIBC_HEAP=default` keeps glibc's defaults.

use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that keeps glibc's own heap settings when set to `default`.
pub const HEAP_ENV: &str = "TWINSITE_GLIBC_HEAP";

/// How much of a site thread's heap [`prefault_thread`] grows and touches.
pub const PREFAULT_BYTES: usize = 32 << 20;

static KEPT: AtomicBool = AtomicBool::new(false);

/// Apply the heap settings; call first thing in `main`, before any thread starts. Returns
/// whether they were applied (false on other C libraries, or when `TWINSITE_GLIBC_HEAP=default`).
pub fn keep_heap() -> bool {
    if std::env::var(HEAP_ENV).is_ok_and(|v| v == "default") {
        return false;
    }
    let kept = apply();
    KEPT.store(kept, Ordering::Relaxed);
    kept
}

/// Grow and touch the calling thread's heap once ([`PREFAULT_BYTES`]); only after
/// [`keep_heap`] applied (without its trim threshold the memory would be handed back at once).
pub fn prefault_thread() {
    if KEPT.load(Ordering::Relaxed) {
        prefault(PREFAULT_BYTES);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    const MIB: libc::c_int = 1024 * 1024;
    // SAFETY: mallopt only changes allocator parameters, and every value is in the range
    // glibc documents.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 * MIB) == 1
            && libc::mallopt(libc::M_TOP_PAD, 64 * MIB) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}

/// Allocate `bytes` in blocks under glibc's mmap threshold (so they come from the thread's
/// arena itself), write them, then free them: they coalesce into the arena's top, which the
/// trim threshold keeps, and later allocations are carved from pages already mapped.
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
