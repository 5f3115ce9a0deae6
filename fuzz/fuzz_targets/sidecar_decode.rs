//! Fuzzes `sidecar::decode` and `SidecarEntry::entry` (segment sidecar files).
//!
//! The input → sidecar file mapping (raw / checksum fixed / count and checksum fixed /
//! compact entries with record_len, count and checksum fixed, picked by the first byte)
//! is `quarry_fuzz::sidecar_bytes`; see its docs.
//! `cargo run --example show_input -- sidecar_decode <file>` prints the file for a
//! saved input.
//!
//! `decode` must return (never panic, hang or over-allocate). An accepted sidecar must
//! round-trip through `encode`, and `entry()` must return on every entry.

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
    // What was accepted survives being written again (as the current version).
    let again = sidecar::decode(SIDECAR_SEGMENT_ID, &sidecar::encode(&entries)).expect("re-encoded sidecar refused");
    assert!(again == entries, "accepted sidecar does not round-trip");
}
