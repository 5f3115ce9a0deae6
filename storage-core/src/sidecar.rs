//! Segment sidecars: `<id>.idx` beside a sealed segment lists every record's header
//! and location, so an index rebuild reads a few MB of sidecars instead of every byte
//! of data. A sidecar is an optimization, never a source of truth: a missing,
//! truncated or corrupt one means "scan the segment".
//!
//! ```text
//! version 2 (written): magic "QIDX0002" | count u64 LE | entries_len u64 LE
//!                      | LZ4 block of the entries (entries_len bytes once decompressed)
//!                      | blake3 of everything before (32 bytes)
//! version 1 (read):    magic "QIDX0001" | count u64 LE | entries | blake3 (32 bytes)
//! entry: lsn u64 | offset u64 | record_len u64 | payload_len u64 | kind u8
//!        | header_len u32 | header (the record's JSON header)
//! ```
//! Version 2 compresses because the JSON headers of small objects repeat their field
//! names: uncompressed, a sidecar held about as many bytes per object as the record's
//! own header. Any other magic is refused (and the segment scanned).

use crate::error::{Error, Result};
use crate::index::RecordLocation;
use crate::io::SegmentDir;
use crate::log_entry::LogEntry;
use crate::record::{self, MAX_HEADER_BYTES, RecordKind};
use crate::segment::{self, segment_name};
use bytes::Bytes;

pub const MAGIC: [u8; 8] = *b"QIDX0002";
/// The uncompressed version 1, still read.
pub const MAGIC_V1: [u8; 8] = *b"QIDX0001";
const FIXED_ENTRY_BYTES: usize = 8 * 4 + 1 + 4;
const CHECKSUM_BYTES: usize = 32;
/// A sidecar larger than this is refused (a 256 MiB segment of tiny records stays far below).
pub const MAX_SIDECAR_BYTES: u64 = 1 << 30;

pub fn sidecar_name(segment_id: u64) -> String {
    format!("{segment_id:020}.idx")
}

fn temporary_name(segment_id: u64) -> String {
    format!("{segment_id:020}.idx.tmp")
}

/// One record as a sidecar describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarEntry {
    pub lsn: u64,
    pub location: RecordLocation,
    pub payload_len: u64,
    pub kind: RecordKind,
    pub header: Bytes,
}

impl SidecarEntry {
    pub fn entry(&self) -> Result<LogEntry> {
        let entry: LogEntry = serde_json::from_slice(&self.header)
            .map_err(|e| Error::Corrupt(format!("sidecar header of lsn {} does not decode: {e}", self.lsn)))?;
        if entry.kind() != self.kind {
            return Err(Error::Corrupt(format!("sidecar entry lsn {}: kind disagrees with header", self.lsn)));
        }
        Ok(entry)
    }
}

pub fn encode(entries: &[SidecarEntry]) -> Vec<u8> {
    let plain = encode_entries(entries);
    let compressed = lz4_flex::block::compress(&plain);
    let mut out = Vec::with_capacity(24 + compressed.len() + CHECKSUM_BYTES);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    out.extend_from_slice(&(plain.len() as u64).to_le_bytes());
    out.extend_from_slice(&compressed);
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());
    out
}

fn encode_entries(entries: &[SidecarEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 128);
    for e in entries {
        out.extend_from_slice(&e.lsn.to_le_bytes());
        out.extend_from_slice(&e.location.offset.to_le_bytes());
        out.extend_from_slice(&e.location.record_len.to_le_bytes());
        out.extend_from_slice(&e.payload_len.to_le_bytes());
        out.push(e.kind as u8);
        out.extend_from_slice(&(e.header.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.header);
    }
    out
}

/// Decodes and verifies a sidecar of segment `segment_id` (version 2, or the version 1
/// earlier builds wrote). Any defect is an error.
pub fn decode(segment_id: u64, bytes: &[u8]) -> Result<Vec<SidecarEntry>> {
    let bad = |what: &str| Error::Corrupt(format!("sidecar of segment {segment_id}: {what}"));
    if bytes.len() < MAGIC.len() + 8 + CHECKSUM_BYTES {
        return Err(bad("too short"));
    }
    let magic = &bytes[..MAGIC.len()];
    if magic != MAGIC && magic != MAGIC_V1 {
        return Err(bad("bad magic (not a sidecar version this build reads)"));
    }
    let body_end = bytes.len() - CHECKSUM_BYTES;
    if blake3::hash(&bytes[..body_end]).as_bytes()[..] != bytes[body_end..] {
        return Err(bad("checksum mismatch"));
    }
    let count = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    if magic == MAGIC_V1 {
        return decode_entries(segment_id, count, &bytes[16..body_end]);
    }
    if body_end < 24 {
        return Err(bad("too short"));
    }
    let plain_len = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
    // LZ4 expands at most 255 times: a larger claim is corruption, not a reason to allocate.
    let compressed = &bytes[24..body_end];
    if plain_len > MAX_SIDECAR_BYTES || plain_len > 255 * compressed.len() as u64 + 16 {
        return Err(bad("claims more entry bytes than it can hold"));
    }
    let plain = lz4_flex::block::decompress(compressed, plain_len as usize)
        .map_err(|e| bad(&format!("entries do not decompress: {e}")))?;
    if plain.len() as u64 != plain_len {
        return Err(bad("entries decompress to another length"));
    }
    decode_entries(segment_id, count, &plain)
}

/// Parses `count` entries that must fill `bytes` exactly.
fn decode_entries(segment_id: u64, count: u64, bytes: &[u8]) -> Result<Vec<SidecarEntry>> {
    let bad = |what: &str| Error::Corrupt(format!("sidecar of segment {segment_id}: {what}"));
    let body_end = bytes.len();
    if count > (body_end as u64) / FIXED_ENTRY_BYTES as u64 {
        return Err(bad("entry count larger than the file"));
    }
    // The count is only a claim until the entries are parsed: cap what it reserves.
    let mut entries = Vec::with_capacity((count as usize).min(4096));
    let mut at = 0usize;
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let mut previous_end = 0u64;
    for _ in 0..count {
        if at + FIXED_ENTRY_BYTES > body_end {
            return Err(bad("entry runs past the end"));
        }
        let (lsn, offset, record_len, payload_len) = (word(at), word(at + 8), word(at + 16), word(at + 24));
        let kind = RecordKind::from_u8(bytes[at + 32]).ok_or_else(|| bad("unknown record kind"))?;
        let header_len = u32::from_le_bytes(bytes[at + 33..at + 37].try_into().unwrap()) as usize;
        at += FIXED_ENTRY_BYTES;
        if header_len > MAX_HEADER_BYTES || at + header_len > body_end {
            return Err(bad("header runs past the end"));
        }
        if payload_len > record::MAX_PAYLOAD_BYTES || record::record_len(header_len, payload_len) != record_len {
            return Err(bad("record length disagrees with its parts"));
        }
        if offset < previous_end {
            return Err(bad("entries out of order"));
        }
        previous_end = offset.checked_add(record_len).ok_or_else(|| bad("entry ends past the largest offset"))?;
        let header = Bytes::copy_from_slice(&bytes[at..at + header_len]);
        at += header_len;
        entries.push(SidecarEntry {
            lsn,
            location: RecordLocation { segment_id, offset, record_len },
            payload_len,
            kind,
            header,
        });
    }
    if at != body_end {
        return Err(bad("trailing bytes after the entries"));
    }
    Ok(entries)
}

/// Reads the sidecar of a segment; `Ok(None)` if there is none.
pub fn read(dir: &dyn SegmentDir, segment_id: u64) -> Result<Option<Vec<SidecarEntry>>> {
    let file = match dir.open(&sidecar_name(segment_id), false) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let len = file.len_bytes()?;
    if len > MAX_SIDECAR_BYTES {
        return Err(Error::Corrupt(format!("sidecar of segment {segment_id} is {len} bytes")));
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)?;
    decode(segment_id, &bytes).map(Some)
}

/// Builds the sidecar of a sealed segment by scanning it, and installs it atomically
/// (temporary file, fsync, rename, directory fsync). A segment with damage gets no
/// sidecar: scans must keep seeing the damage.
pub fn build(dir: &dyn SegmentDir, segment_id: u64) -> Result<usize> {
    let segment = dir.open(&segment_name(segment_id), false)?;
    let mut entries = Vec::new();
    let end = segment::scan(segment.as_ref(), segment_id, 0, false, |location, record| {
        entries.push(SidecarEntry {
            lsn: record.prefix.lsn,
            location,
            payload_len: record.prefix.payload_len,
            kind: record.prefix.kind,
            // A copy: a slice would pin the whole record (payload included) in memory.
            header: Bytes::copy_from_slice(&record.header),
        });
        Ok(())
    })?;
    if let Some(damage) = end.tail_damage {
        return Err(Error::Corrupt(format!("not writing a sidecar for a damaged segment: {damage}")));
    }
    let bytes = encode(&entries);
    let temporary = temporary_name(segment_id);
    let result = (|| -> Result<()> {
        let _ = dir.remove(&temporary);
        let file = dir.open(&temporary, true)?;
        file.write_all_at(&bytes, 0)?;
        file.sync()?;
        dir.rename(&temporary, &sidecar_name(segment_id))?;
        dir.sync_dir()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = dir.remove(&temporary); // a partial sidecar is removed
    }
    result.map(|()| entries.len())
}

/// Builds sidecars for the segment ids it is sent, one at a time, until every sender
/// is gone. Runs on its own thread: a sidecar never delays or fails a request.
pub fn run_builder(
    dir: std::sync::Arc<dyn SegmentDir>,
    stats: std::sync::Arc<crate::stats::EngineStats>,
    sealed: std::sync::mpsc::Receiver<u64>,
) {
    while let Ok(segment_id) = sealed.recv() {
        match build(dir.as_ref(), segment_id) {
            Ok(records) => {
                crate::stats::EngineStats::add(&stats.sidecars_written, 1);
                tracing::debug!(segment = segment_id, records, "sidecar written");
            }
            Err(e) => tracing::warn!(segment = segment_id, "sidecar not written: {e}"),
        }
    }
}

/// Removes temporary sidecars left by a crash.
pub fn remove_partials(dir: &dyn SegmentDir) -> Result<()> {
    for name in dir.list()? {
        if name.ends_with(".idx.tmp") {
            dir.remove(&name)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(lsn: u64, offset: u64, header: &str, payload_len: u64) -> SidecarEntry {
        SidecarEntry {
            lsn,
            location: RecordLocation {
                segment_id: 3,
                offset,
                record_len: record::record_len(header.len(), payload_len),
            },
            payload_len,
            kind: RecordKind::Chunk,
            header: Bytes::copy_from_slice(header.as_bytes()),
        }
    }

    #[test]
    fn round_trip_including_boundaries() {
        let entries = vec![
            entry(1, 0, "", 0),
            entry(u64::MAX, 64, r#"{"type":"chunk"}"#, record::MAX_PAYLOAD_BYTES),
            entry(7, u64::MAX / 2, "x", 1),
        ];
        assert_eq!(decode(3, &encode(&entries)).unwrap(), entries);
        assert_eq!(decode(3, &encode(&[])).unwrap(), vec![]);
    }

    /// Found by the sidecar_decode fuzz target: an entry at offset u64::MAX overflowed
    /// `offset + record_len` (a panic in debug builds, a silent wrap in release).
    #[test]
    fn entry_at_the_largest_offset_is_refused_not_overflowed() {
        let input = hex::decode(
            "514944583030303101000000000000000100000000000000ffffffffffffffff40000000000000000000000000000000010000000080d52d3199d9b4f3f3760dfb6b22b48f6813ad43ed6941b06eb021b66e40c4b3",
        )
        .unwrap();
        assert!(decode(3, &input).is_err());
    }

    /// Sidecars written before version 2 (uncompressed) are still read as they are.
    #[test]
    fn version_1_sidecars_are_still_read() {
        let entries = vec![entry(1, 0, r#"{"type":"chunk"}"#, 10), entry(2, 100, r#"{"type":"chunk"}"#, 5)];
        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        v1.extend_from_slice(&encode_entries(&entries));
        let checksum = blake3::hash(&v1);
        v1.extend_from_slice(checksum.as_bytes());
        assert_eq!(decode(3, &v1).unwrap(), entries);
        // The version 1 sidecar the fuzz regression below was found on starts so too.
        assert_eq!(&v1[..8], b"QIDX0001");
    }

    /// Small-object headers repeat their field names: version 2 stores far fewer bytes.
    #[test]
    fn version_2_compresses_repetitive_headers() {
        let header =
            r#"{"type":"object","bucket":"b","key":"k","meta":{"size_bytes":1,"etag":"x"},"chunks":[],"inline":true}"#;
        let entries: Vec<SidecarEntry> = (0..1000).map(|i| entry(i + 1, i * 1000, header, 1)).collect();
        let plain = encode_entries(&entries).len();
        let stored = encode(&entries).len();
        assert!(stored * 4 < plain, "{stored} bytes stored for {plain} bytes of entries");
        assert_eq!(decode(3, &encode(&entries)).unwrap(), entries);
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let bytes = encode(&[entry(1, 0, r#"{"type":"chunk"}"#, 10), entry(2, 100, r#"{"type":"chunk"}"#, 5)]);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(decode(3, &bad).is_err(), "flipped byte {i} accepted");
        }
        for len in 0..bytes.len() {
            assert!(decode(3, &bytes[..len]).is_err(), "truncation to {len} accepted");
        }
        let mut bad_magic = bytes.clone();
        bad_magic[0] = b'X';
        assert!(decode(3, &bad_magic).is_err());
    }
}
