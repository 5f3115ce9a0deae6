//! Counters the engine keeps about itself (exported by the server as metrics).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct EngineStats {
    /// Sealed segments replayed from their sidecar.
    pub sidecar_hits: AtomicU64,
    /// Sealed segments that had to be scanned (no sidecar, or a bad one).
    pub sidecar_misses: AtomicU64,
    pub sidecars_written: AtomicU64,
    /// Reads refused because the record failed verification.
    pub corrupt_reads: AtomicU64,
    /// Payload bytes of the chunk records read (and verified) to serve object reads:
    /// against the bytes served, it shows the read amplification of small ranges.
    pub chunk_read_bytes: AtomicU64,
    /// Damaged regions found by replay or scrub.
    pub damaged_regions: AtomicU64,
    /// Bytes verified by scrubs.
    pub scrubbed_bytes: AtomicU64,
}

impl EngineStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
