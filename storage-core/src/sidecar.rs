//! Segment sidecars: `<id>.idx` beside a sealed segment lists every record's header
//! and location, so an index rebuild reads a few MB of sidecars instead of every byte
//! of data. A sidecar is an optimization, never a source of truth: a missing,
//! truncated or corrupt one means "scan the segment".
//!
//! ```text
//! version 3 (written): magic "QIDX0003"
//!                      | frames: plain_len u32 LE | compressed_len u32 LE | LZ4 block
//!                      | end: plain_len 0 | compressed_len 0
//!                      | count u64 LE | covered_bytes u64 LE (where the last record ends)
//!                      | blake3 of everything before (32 bytes)
//! version 2 (read):    magic "QIDX0002" | count u64 LE | entries_len u64 LE
//!                      | one LZ4 block of all entries | blake3 (32 bytes)
//! version 1 (read):    magic "QIDX0001" | count u64 LE | entries | blake3 (32 bytes)
//! entry: lsn u64 | offset u64 | record_len u64 | payload_len u64 | kind u8
//!        | header_len u32 | header (the record's JSON header)
//! ```
//! Entries are compressed because the JSON headers of small objects repeat their field
//! names. Version 3 compresses them in frames of about `FRAME_PLAIN_BYTES`, whole entries
//! each, so neither the builder nor a reader holds a segment's headers uncompressed
//! (version 2's single block cost the builder ~250 MB at the seal of a segment of 1 KiB
//! objects). Any other magic is refused (and the segment scanned).

use crate::error::{Error, Result};
use crate::index::RecordLocation;
use crate::io::SegmentDir;
use crate::log_entry::LogEntry;
use crate::record::{self, MAX_HEADER_BYTES, RecordKind};
use crate::segment::{self, segment_name};
use bytes::Bytes;

pub const MAGIC: [u8; 8] = *b"QIDX0003";
/// The single-block version 2, still read.
pub const MAGIC_V2: [u8; 8] = *b"QIDX0002";
/// The uncompressed version 1, still read.
pub const MAGIC_V1: [u8; 8] = *b"QIDX0001";
const FIXED_ENTRY_BYTES: usize = 8 * 4 + 1 + 4;
const CHECKSUM_BYTES: usize = 32;
const FRAME_HEAD_BYTES: usize = 8;
const TRAILER_BYTES: usize = 16;
/// A frame is closed once its entries reach this many bytes (one entry may exceed it).
pub const FRAME_PLAIN_BYTES: usize = 1 << 20;
/// Largest frame a reader accepts: a full frame plus the largest possible entry.
const MAX_FRAME_PLAIN_BYTES: usize = FRAME_PLAIN_BYTES + FIXED_ENTRY_BYTES + MAX_HEADER_BYTES;
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

/// Builds a version 3 sidecar entry by entry, compressing a frame whenever one fills.
pub struct SidecarWriter {
    plain: Vec<u8>,
    out: Vec<u8>,
    count: u64,
    covered_bytes: u64,
}

impl Default for SidecarWriter {
    fn default() -> Self {
        SidecarWriter { plain: Vec::new(), out: MAGIC.to_vec(), count: 0, covered_bytes: 0 }
    }
}

impl SidecarWriter {
    pub fn push(&mut self, lsn: u64, location: RecordLocation, payload_len: u64, kind: RecordKind, header: &[u8]) {
        assert!(location.offset >= self.covered_bytes, "sidecar entries are pushed in segment order");
        assert_eq!(record::record_len(header.len(), payload_len), location.record_len, "entry length");
        put_entry(&mut self.plain, lsn, location, payload_len, kind, header);
        self.count += 1;
        self.covered_bytes = location.offset + location.record_len;
        if self.plain.len() >= FRAME_PLAIN_BYTES {
            self.close_frame();
        }
    }

    fn close_frame(&mut self) {
        if self.plain.is_empty() {
            return;
        }
        let compressed = lz4_flex::block::compress(&self.plain);
        self.out.extend_from_slice(&(self.plain.len() as u32).to_le_bytes());
        self.out.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
        self.out.extend_from_slice(&compressed);
        self.plain.clear();
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The whole file.
    pub fn finish(mut self) -> Vec<u8> {
        self.close_frame();
        self.out.extend_from_slice(&[0; FRAME_HEAD_BYTES]);
        self.out.extend_from_slice(&self.count.to_le_bytes());
        self.out.extend_from_slice(&self.covered_bytes.to_le_bytes());
        let checksum = blake3::hash(&self.out);
        self.out.extend_from_slice(checksum.as_bytes());
        self.out
    }
}

fn put_entry(out: &mut Vec<u8>, lsn: u64, location: RecordLocation, payload_len: u64, kind: RecordKind, header: &[u8]) {
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&location.offset.to_le_bytes());
    out.extend_from_slice(&location.record_len.to_le_bytes());
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(header);
}

pub fn encode(entries: &[SidecarEntry]) -> Vec<u8> {
    let mut writer = SidecarWriter::default();
    for e in entries {
        writer.push(e.lsn, e.location, e.payload_len, e.kind, &e.header);
    }
    writer.finish()
}

/// A sidecar file whose checksum is verified. Version 3 entries are decoded a frame at
/// a time as they are visited; older versions were decoded whole when opened.
pub struct Sidecar {
    segment_id: u64,
    content: Content,
    count: u64,
    covered_bytes: u64,
}

enum Content {
    Frames(Vec<u8>),
    Decoded(Vec<SidecarEntry>),
}

impl Sidecar {
    /// Checks the magic, the checksum and (version 3) the trailer of `bytes`.
    pub fn parse(segment_id: u64, bytes: Vec<u8>) -> Result<Sidecar> {
        let bad = |what: &str| Error::Corrupt(format!("sidecar of segment {segment_id}: {what}"));
        if bytes.len() < MAGIC.len() + 8 + CHECKSUM_BYTES {
            return Err(bad("too short"));
        }
        let magic: [u8; 8] = bytes[..MAGIC.len()].try_into().unwrap();
        if magic != MAGIC && magic != MAGIC_V2 && magic != MAGIC_V1 {
            return Err(bad("bad magic (not a sidecar version this build reads)"));
        }
        let body_end = bytes.len() - CHECKSUM_BYTES;
        if blake3::hash(&bytes[..body_end]).as_bytes()[..] != bytes[body_end..] {
            return Err(bad("checksum mismatch"));
        }
        if magic != MAGIC {
            let entries = decode_old(segment_id, magic, &bytes[..body_end])?;
            let covered_bytes = entries.last().map_or(0, |e| e.location.offset + e.location.record_len);
            return Ok(Sidecar {
                segment_id,
                count: entries.len() as u64,
                covered_bytes,
                content: Content::Decoded(entries),
            });
        }
        if body_end < MAGIC.len() + FRAME_HEAD_BYTES + TRAILER_BYTES {
            return Err(bad("too short"));
        }
        let trailer = &bytes[body_end - TRAILER_BYTES..body_end];
        let count = u64::from_le_bytes(trailer[..8].try_into().unwrap());
        let covered_bytes = u64::from_le_bytes(trailer[8..].try_into().unwrap());
        let mut frames = bytes;
        frames.truncate(body_end - TRAILER_BYTES);
        Ok(Sidecar { segment_id, content: Content::Frames(frames), count, covered_bytes })
    }

    /// How many records the sidecar claims to describe.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Where the last record it describes ends: equal to the segment's length when the
    /// sidecar covers the whole segment.
    pub fn covered_bytes(&self) -> u64 {
        self.covered_bytes
    }

    /// Calls `visit` with every entry in order. An error (from the sidecar or from
    /// `visit`) stops the walk; the entries already visited were valid.
    pub fn for_each(&self, mut visit: impl FnMut(SidecarEntry) -> Result<()>) -> Result<()> {
        let frames = match &self.content {
            Content::Decoded(entries) => return entries.iter().cloned().try_for_each(visit),
            Content::Frames(frames) => frames,
        };
        let bad = |what: &str| Error::Corrupt(format!("sidecar of segment {}: {what}", self.segment_id));
        let mut at = MAGIC.len();
        let mut seen = 0u64;
        let mut previous_end = 0u64;
        loop {
            let head = frames.get(at..at + FRAME_HEAD_BYTES).ok_or_else(|| bad("frame runs past the end"))?;
            let plain_len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
            let compressed_len = u32::from_le_bytes(head[4..].try_into().unwrap()) as usize;
            at += FRAME_HEAD_BYTES;
            if plain_len == 0 {
                if compressed_len != 0 || at != frames.len() {
                    return Err(bad("bytes after the last frame"));
                }
                break;
            }
            let compressed = frames.get(at..at + compressed_len).ok_or_else(|| bad("frame runs past the end"))?;
            at += compressed_len;
            // LZ4 expands at most 255 times: a larger claim is corruption, not a reason to allocate.
            if plain_len > MAX_FRAME_PLAIN_BYTES || plain_len > 255 * compressed_len + 16 {
                return Err(bad("frame claims more entry bytes than it can hold"));
            }
            let plain = lz4_flex::block::decompress(compressed, plain_len)
                .map_err(|e| bad(&format!("frame does not decompress: {e}")))?;
            if plain.len() != plain_len {
                return Err(bad("frame decompresses to another length"));
            }
            seen += parse_entries(self.segment_id, Bytes::from(plain), &mut previous_end, &mut visit)?;
        }
        if seen != self.count || previous_end != self.covered_bytes {
            return Err(bad("entries disagree with the trailer"));
        }
        Ok(())
    }

    pub fn into_entries(self) -> Result<Vec<SidecarEntry>> {
        if let Content::Decoded(entries) = self.content {
            return Ok(entries);
        }
        // The count is only a claim until the entries are parsed: cap what it reserves.
        let mut entries = Vec::with_capacity((self.count as usize).min(4096));
        self.for_each(|entry| {
            entries.push(entry);
            Ok(())
        })?;
        Ok(entries)
    }
}

/// Decodes and verifies a sidecar of segment `segment_id` (any version this build
/// reads). Any defect is an error.
pub fn decode(segment_id: u64, bytes: &[u8]) -> Result<Vec<SidecarEntry>> {
    Sidecar::parse(segment_id, bytes.to_vec())?.into_entries()
}

/// The entries of a version 1 or 2 sidecar (checksum already verified; `body` ends
/// before it).
fn decode_old(segment_id: u64, magic: [u8; 8], body: &[u8]) -> Result<Vec<SidecarEntry>> {
    let bad = |what: &str| Error::Corrupt(format!("sidecar of segment {segment_id}: {what}"));
    let count = u64::from_le_bytes(body[8..16].try_into().unwrap());
    let plain = if magic == MAGIC_V1 {
        Bytes::copy_from_slice(&body[16..])
    } else {
        if body.len() < 24 {
            return Err(bad("too short"));
        }
        let plain_len = u64::from_le_bytes(body[16..24].try_into().unwrap());
        let compressed = &body[24..];
        if plain_len > MAX_SIDECAR_BYTES || plain_len > 255 * compressed.len() as u64 + 16 {
            return Err(bad("claims more entry bytes than it can hold"));
        }
        let plain = lz4_flex::block::decompress(compressed, plain_len as usize)
            .map_err(|e| bad(&format!("entries do not decompress: {e}")))?;
        if plain.len() as u64 != plain_len {
            return Err(bad("entries decompress to another length"));
        }
        Bytes::from(plain)
    };
    if count > (plain.len() as u64) / FIXED_ENTRY_BYTES as u64 {
        return Err(bad("entry count larger than the file"));
    }
    let mut entries = Vec::with_capacity(count as usize);
    parse_entries(segment_id, plain, &mut 0, &mut |entry| {
        entries.push(entry);
        Ok(())
    })?;
    if entries.len() as u64 != count {
        return Err(bad("entry count disagrees with the entries"));
    }
    Ok(entries)
}

/// Parses the entries that fill `bytes` exactly, in segment order after `previous_end`,
/// and returns how many there were. Headers are slices of `bytes`.
fn parse_entries(
    segment_id: u64,
    bytes: Bytes,
    previous_end: &mut u64,
    visit: &mut impl FnMut(SidecarEntry) -> Result<()>,
) -> Result<u64> {
    let bad = |what: &str| Error::Corrupt(format!("sidecar of segment {segment_id}: {what}"));
    let body_end = bytes.len();
    let mut at = 0usize;
    let mut count = 0u64;
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    while at < body_end {
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
        if offset < *previous_end {
            return Err(bad("entries out of order"));
        }
        *previous_end = offset.checked_add(record_len).ok_or_else(|| bad("entry ends past the largest offset"))?;
        let header = bytes.slice(at..at + header_len);
        at += header_len;
        count += 1;
        visit(SidecarEntry {
            lsn,
            location: RecordLocation { segment_id, offset, record_len },
            payload_len,
            kind,
            header,
        })?;
    }
    Ok(count)
}

/// Opens and verifies the sidecar of a segment; `Ok(None)` if there is none.
pub fn open(dir: &dyn SegmentDir, segment_id: u64) -> Result<Option<Sidecar>> {
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
    Sidecar::parse(segment_id, bytes).map(Some)
}

/// Reads all the entries of a segment's sidecar; `Ok(None)` if there is none.
pub fn read(dir: &dyn SegmentDir, segment_id: u64) -> Result<Option<Vec<SidecarEntry>>> {
    open(dir, segment_id)?.map(Sidecar::into_entries).transpose()
}

/// Builds the sidecar of a sealed segment by scanning it, and installs it atomically
/// (temporary file, fsync, rename, directory fsync). A segment with damage gets no
/// sidecar: scans must keep seeing the damage.
pub fn build(dir: &dyn SegmentDir, segment_id: u64) -> Result<u64> {
    let segment = dir.open(&segment_name(segment_id), false)?;
    let mut writer = SidecarWriter::default();
    let end = segment::scan(segment.as_ref(), segment_id, 0, false, |location, record| {
        writer.push(record.prefix.lsn, location, record.prefix.payload_len, record.prefix.kind, &record.header);
        Ok(())
    })?;
    if let Some(damage) = end.tail_damage {
        return Err(Error::Corrupt(format!("not writing a sidecar for a damaged segment: {damage}")));
    }
    let count = writer.count();
    let bytes = writer.finish();
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
    result.map(|()| count)
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

    /// The entries as versions 1 and 2 stored them (one run, no frames).
    fn plain_entries(entries: &[SidecarEntry]) -> Vec<u8> {
        let mut plain = Vec::new();
        for e in entries {
            put_entry(&mut plain, e.lsn, e.location, e.payload_len, e.kind, &e.header);
        }
        plain
    }

    fn old_sidecar(magic: [u8; 8], entries: &[SidecarEntry]) -> Vec<u8> {
        let plain = plain_entries(entries);
        let mut file = magic.to_vec();
        file.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        if magic == MAGIC_V1 {
            file.extend_from_slice(&plain);
        } else {
            file.extend_from_slice(&(plain.len() as u64).to_le_bytes());
            file.extend_from_slice(&lz4_flex::block::compress(&plain));
        }
        let checksum = blake3::hash(&file);
        file.extend_from_slice(checksum.as_bytes());
        file
    }

    /// Sidecars written by earlier builds (version 1 uncompressed, version 2 one LZ4
    /// block) are still read as they are.
    #[test]
    fn version_1_and_2_sidecars_are_still_read() {
        let entries = vec![entry(1, 0, r#"{"type":"chunk"}"#, 10), entry(2, 100, r#"{"type":"chunk"}"#, 5)];
        for magic in [MAGIC_V1, MAGIC_V2] {
            let file = old_sidecar(magic, &entries);
            assert_eq!(decode(3, &file).unwrap(), entries, "version {}", magic[7] as char);
            let sidecar = Sidecar::parse(3, file).unwrap();
            assert_eq!((sidecar.count(), sidecar.covered_bytes()), (2, 100 + entries[1].location.record_len));
        }
        // The version 1 sidecar the fuzz regression above was found on starts so too.
        assert_eq!(&old_sidecar(MAGIC_V1, &entries)[..8], b"QIDX0001");
    }

    /// Small-object headers repeat their field names: the frames store far fewer bytes,
    /// and a segment's worth of entries spans many frames, none much above the frame size.
    #[test]
    fn entries_are_compressed_in_bounded_frames() {
        let header =
            r#"{"type":"object","bucket":"b","key":"k","meta":{"size_bytes":1,"etag":"x"},"chunks":[],"inline":true}"#;
        let entries: Vec<SidecarEntry> = (0..30_000).map(|i| entry(i + 1, i * 1000, header, 1)).collect();
        let plain = plain_entries(&entries).len();
        let stored = encode(&entries);
        assert!(stored.len() * 4 < plain, "{} bytes stored for {plain} bytes of entries", stored.len());
        assert_eq!(decode(3, &stored).unwrap(), entries);
        let mut frames = 0;
        let mut largest_frame = 0;
        let mut at = MAGIC.len();
        loop {
            let plain_len = u32::from_le_bytes(stored[at..at + 4].try_into().unwrap()) as usize;
            let compressed_len = u32::from_le_bytes(stored[at + 4..at + 8].try_into().unwrap()) as usize;
            if plain_len == 0 {
                break;
            }
            frames += 1;
            largest_frame = largest_frame.max(plain_len);
            at += FRAME_HEAD_BYTES + compressed_len;
        }
        assert_eq!(frames, plain.div_ceil(FRAME_PLAIN_BYTES), "frames for {plain} bytes of entries");
        assert!(largest_frame < FRAME_PLAIN_BYTES + 200, "a frame of {largest_frame} bytes");
    }

    /// A walk stops at the first entry its visitor refuses, having visited the ones
    /// before in order (recovery resumes scanning the segment there).
    #[test]
    fn a_walk_stops_where_the_visitor_says() {
        let entries: Vec<SidecarEntry> = (0..10).map(|i| entry(i + 1, i * 100, "h", 0)).collect();
        let sidecar = Sidecar::parse(3, encode(&entries)).unwrap();
        let mut visited = Vec::new();
        let stopped = sidecar.for_each(|e| {
            if e.lsn == 5 {
                return Err(Error::Corrupt("stop".into()));
            }
            visited.push(e);
            Ok(())
        });
        assert!(stopped.is_err());
        assert_eq!(visited, entries[..4].to_vec());
    }

    /// A trailer that disagrees with the frames (a writer bug, since the checksum
    /// covers both) is refused, not trusted.
    #[test]
    fn entries_disagreeing_with_the_trailer_are_refused() {
        let entries = vec![entry(1, 0, "h", 0), entry(2, 100, "h", 0)];
        let good = encode(&entries);
        let trailer_at = good.len() - CHECKSUM_BYTES - TRAILER_BYTES;
        for (field_at, value) in [(trailer_at, 3u64), (trailer_at + 8, 99u64)] {
            let mut bad = good[..good.len() - CHECKSUM_BYTES].to_vec();
            bad[field_at..field_at + 8].copy_from_slice(&value.to_le_bytes());
            let checksum = blake3::hash(&bad);
            bad.extend_from_slice(checksum.as_bytes());
            assert!(decode(3, &bad).is_err(), "trailer field at {field_at} set to {value} accepted");
        }
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
