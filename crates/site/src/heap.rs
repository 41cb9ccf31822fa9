//! The process's heap, set up so that an order never waits on the kernel to grow it.
//!
//! With glibc's defaults every thread but the main one allocates from an arena of its own,
//! which grows by `mprotect(2)` a page or so at a time: a gateway keeps a few hundred bytes
//! per order (the resting order, its Execution Report kept for replay), so one order in 15-20
//! paid for a system call (measured 15-50 µs on the benchmark VM, see BENCHMARKS.md) in the
//! middle of its round trip. [`keep_heap`] asks glibc instead for one arena, grown 64 MiB at a
//! time (`M_TOP_PAD`) and not handed back to the kernel below 512 MiB of free top
//! (`M_TRIM_THRESHOLD`). `TWINSITE_GLIBC_HEAP=default` keeps glibc's defaults.

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
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1) == 1
            && libc::mallopt(libc::M_TOP_PAD, 64 * MIB) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, 512 * MIB) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}
