//! Fuzzes `sidecar::decode` and `SidecarEntry::entry` (segment sidecar files).
//!
//! The input → sidecar file mapping (raw / checksum fixed / count and checksum fixed /
//! compact entries with record_len, count and checksum fixed, picked by the first byte)
//! is `quarry_fuzz::sidecar_bytes`; see its docs.
//! `cargo run --example show_input -- sidecar_decode <file>` prints the file for a
//! saved input.
//!
//! `decode` must return (never panic, hang or over-allocate). An accepted sidecar must
//! re-encode to exactly its bytes, and `entry()` must return on every entry.

#![no_main]

use libfuzzer_sys::fuzz_target;
use quarry_fuzz::SIDECAR_SEGMENT_ID;
use storage_core::sidecar;

fuzz_target!(|data: &[u8]| {
    if let Some(bytes) = quarry_fuzz::sidecar_bytes(data) {
        check(&bytes);
    }
});

fn check(bytes: &[u8]) {
    let Ok(entries) = sidecar::decode(SIDECAR_SEGMENT_ID, bytes) else { return };
    for e in &entries {
        assert_eq!(e.location.segment_id, SIDECAR_SEGMENT_ID);
        if let Ok(entry) = e.entry() {
            assert_eq!(entry.kind(), e.kind);
        }
    }
    // The format has no slack: an accepted sidecar re-encodes to exactly its bytes.
    assert!(sidecar::encode(&entries) == bytes, "accepted sidecar does not re-encode to its bytes");
}
