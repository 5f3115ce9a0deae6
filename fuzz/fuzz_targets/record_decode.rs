//! Fuzzes `record::decode` and `record::decode_prefix` (segment record framing).
//!
//! The input → record bytes mapping (raw / checksum fixed / lengths and checksum fixed,
//! picked by the first byte) is `quarry_fuzz::record_bytes`; see its docs.
//! `cargo run --example show_input -- record_decode <file>` prints the record bytes for
//! a saved input.
//!
//! The decoders must return (never panic, hang or over-allocate), and an accepted
//! record must be self-consistent and survive a re-encode.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use storage_core::record::{self, CHECKSUM_BYTES, PREFIX_BYTES};

fuzz_target!(|data: &[u8]| {
    if let Some(bytes) = quarry_fuzz::record_bytes(data) {
        check(bytes);
    }
});

fn check(bytes: Vec<u8>) {
    let prefix = record::decode_prefix(&bytes);
    let bytes = Bytes::from(bytes);
    let Ok(decoded) = record::decode(bytes.clone()) else { return };

    // Accepted: everything must agree with the bytes.
    let prefix = prefix.expect("decode accepted a record whose prefix decode_prefix refuses");
    assert_eq!(decoded.prefix, prefix);
    assert_eq!(prefix.record_len(), bytes.len() as u64);
    assert_ne!(prefix.lsn, 0);
    let header_end = PREFIX_BYTES + prefix.header_len as usize;
    assert_eq!(decoded.header, bytes[PREFIX_BYTES..header_end]);
    assert_eq!(decoded.payload, bytes[header_end..bytes.len() - CHECKSUM_BYTES]);
    assert_eq!(decoded.payload.len() as u64, prefix.payload_len);
    assert_eq!(decoded.entry.kind(), prefix.kind);

    // Re-encoding the decoded entry must give a record that decodes to the same thing.
    let again = record::encode(prefix.lsn, &decoded.entry, decoded.payload.clone());
    let mut all = again.head.clone();
    all.extend_from_slice(&again.payload);
    all.extend_from_slice(&again.checksum);
    assert_eq!(all.len() as u64, again.len());
    let back = record::decode(Bytes::from(all)).expect("re-encoded record does not decode");
    assert_eq!(back.entry, decoded.entry);
    assert_eq!(back.prefix.kind, prefix.kind);
    assert_eq!(back.prefix.lsn, prefix.lsn);
    assert_eq!(back.payload, decoded.payload);
}
