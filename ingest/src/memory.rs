//! Memory the allocator gives back: tuning for long ingest runs.
//!
//! `culla` and the ingest benchmarks use mimalloc as their global allocator. Each commit
//! frees a commit's worth of events (about 120,000 rows of small strings) at once, and
//! mimalloc, by default, keeps freed memory for a second before returning it to the
//! system, so one commit's rows were still held while the next one's were allocated.
//! With a purge delay of 1 ms, peak RSS on 10 million events from Kafka fell from
//! 532–544 MB to 462 MB (445 MB with the 6-byte id index), and through the local log
//! from 489 to 332 MB (with the id index and a shorter parse queue too). It costs
//! speed on small runs (pages are returned and faulted in again at every commit): on 1M
//! events from Kafka 0.58–0.74× the raw consumer instead of 0.71–0.93× in the same
//! session, on 10M 0.84–0.87×. Memory is the bound that fails a laptop; at a city's
//! volumes (≈ 100,000 events a year) either speed is a second (docs/bench-ingest-kafka.md).

use libmimalloc_sys as ffi;
use std::ffi::c_long;

/// mimalloc's `mi_option_purge_delay` (position 15 of `mi_option_e` in mimalloc.h, v2
/// and v3; the Rust bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: ffi::mi_option_t = 15;

/// The purge delay `culla` runs with, in milliseconds (mimalloc's default is 1,000).
pub const PURGE_DELAY_MS: c_long = 1;

/// Makes mimalloc return freed memory to the system after [`PURGE_DELAY_MS`]. Call it
/// first thing in `main`, before any other thread starts (mimalloc's options are not
/// synchronised). Harmless where mimalloc is not the global allocator.
pub fn return_freed_memory_promptly() {
    set_purge_delay_ms(PURGE_DELAY_MS);
}

/// Sets mimalloc's purge delay to `ms` milliseconds (benchmarks compare settings). Same
/// rule as [`return_freed_memory_promptly`]: before any other thread starts.
#[allow(unsafe_code)]
pub fn set_purge_delay_ms(ms: c_long) {
    // SAFETY: `mi_option_set` only stores a number in mimalloc's option table; it is
    // called before other threads exist, as mimalloc requires.
    unsafe { ffi::mi_option_set(MI_OPTION_PURGE_DELAY, ms) }
}

/// mimalloc's current purge delay in milliseconds.
#[allow(unsafe_code)]
pub fn purge_delay_ms() -> c_long {
    // SAFETY: reads one entry of mimalloc's option table.
    unsafe { ffi::mi_option_get(MI_OPTION_PURGE_DELAY) }
}

/// This process's resident memory in MB (`VmRSS` of `/proc/self/status`), for logs;
/// `None` where that file does not exist.
pub fn resident_mb() -> Option<f64> {
    status_mb("VmRSS:")
}

/// This process's peak resident memory so far in MB (`VmHWM`), as [`resident_mb`].
pub fn peak_resident_mb() -> Option<f64> {
    status_mb("VmHWM:")
}

/// The value in kB of the `/proc/self/status` line starting with `key`, in MB.
fn status_mb(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_that_changes() {
        // Position 15 is the purge delay: 1,000 ms by default in mimalloc v3 (a wrong
        // position would read another option's default), then the value set.
        assert_eq!(purge_delay_ms(), 1000);
        return_freed_memory_promptly();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }

    #[test]
    fn resident_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let mb = resident_mb().expect("VmRSS on Linux");
            assert!(mb > 0.0 && mb < 1e6, "{mb}");
        }
    }
}
