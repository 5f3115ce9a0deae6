//! Shared by the fuzz targets and the helper examples: how a fuzz input becomes the
//! bytes handed to a decoder. Each function's mode table is documented on it; the
//! first input byte picks the mode, the rest is the body.

use storage_core::record::{CHECKSUM_BYTES, MAGIC as RECORD_MAGIC, PREFIX_BYTES};
// Constructed sidecars are of version 1 (uncompressed), so the fuzzer's bytes reach the
// entry parser that both versions share; mode 0 feeds raw bytes to every version.
use storage_core::sidecar::MAGIC_V1 as SIDECAR_MAGIC;

/// The segment id the sidecar target decodes with.
pub const SIDECAR_SEGMENT_ID: u64 = 7;

/// The record bytes `record_decode` hands to `record::decode` for `data`
/// (`None`: input too short for its mode, skipped).
///
/// * mode 0 (raw): the body as is. Almost everything fails the prefix or the checksum;
///   this covers those checks.
/// * mode 1 (checksum fixed): the body is the record without its checksum; the correct
///   blake3 is appended. The prefix (and so the lengths) comes from the input.
/// * mode 2 (lengths and checksum fixed): the body is
///   `kind u8 | lsn u64 LE | split u16 LE | bytes`; `bytes[..split]` becomes the JSON
///   header and the rest the payload. A well-formed prefix with consistent lengths is
///   built around them and the blake3 appended, so the JSON header parsing and the kind
///   check get fuzzed.
pub fn record_bytes(data: &[u8]) -> Option<Vec<u8>> {
    let (&mode, body) = data.split_first()?;
    match mode % 3 {
        0 => Some(body.to_vec()),
        1 => Some(with_checksum(body.to_vec())),
        _ => consistent_record(body),
    }
}

fn with_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
    let checksum = blake3::hash(&bytes);
    bytes.extend_from_slice(checksum.as_bytes());
    bytes
}

fn consistent_record(body: &[u8]) -> Option<Vec<u8>> {
    if body.len() < 11 {
        return None;
    }
    let kind = body[0];
    let lsn = u64::from_le_bytes(body[1..9].try_into().unwrap());
    let split = u16::from_le_bytes(body[9..11].try_into().unwrap()) as usize;
    let rest = &body[11..];
    let (header, payload) = rest.split_at(split.min(rest.len()));
    let mut out = Vec::with_capacity(PREFIX_BYTES + rest.len() + CHECKSUM_BYTES);
    out.extend_from_slice(&RECORD_MAGIC);
    out.push(kind);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
    Some(with_checksum(out))
}

/// Fixed part of one sidecar entry: 4 words, kind, header_len.
const FIXED_ENTRY_BYTES: usize = 8 * 4 + 1 + 4;
/// A record's prefix and checksum.
const RECORD_OVERHEAD: u64 = (PREFIX_BYTES + CHECKSUM_BYTES) as u64;

/// The sidecar file `sidecar_decode` hands to `sidecar::decode` for `data`
/// (`None`: empty input).
///
/// * mode 0 (raw): the body as is (magic, length and checksum checks).
/// * mode 1 (checksum fixed): `"QIDX0001" | body | blake3`; count and entries come
///   from the input.
/// * mode 2 (count and checksum fixed): the body is entries in the file's own format
///   (`lsn | offset | record_len | payload_len | kind | header_len u32 | header`); the
///   count is set to the number of whole entries it holds, so the per-entry checks
///   (kind, lengths, order) get fuzzed.
/// * mode 3 (mostly valid): the body is compact entries
///   `lsn u64 | offset u64 | payload_len u64 | kind u8 | header_len u16 | header`;
///   `record_len` is computed from the parts and count and checksum are fixed, so
///   entries usually pass the framing checks and their JSON headers get fuzzed through
///   `entry()`.
pub fn sidecar_bytes(data: &[u8]) -> Option<Vec<u8>> {
    let (&mode, body) = data.split_first()?;
    Some(match mode % 4 {
        0 => body.to_vec(),
        1 => sidecar_file(None, body),
        2 => sidecar_file(Some(count_entries(body)), body),
        _ => {
            let (count, entries) = compact_entries(body);
            sidecar_file(Some(count), &entries)
        }
    })
}

/// `MAGIC | count (if given) | entries | blake3`.
fn sidecar_file(count: Option<u64>, entries: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entries.len() + 32);
    out.extend_from_slice(&SIDECAR_MAGIC);
    if let Some(count) = count {
        out.extend_from_slice(&count.to_le_bytes());
    }
    out.extend_from_slice(entries);
    with_checksum(out)
}

/// How many whole entries `body` holds, framed as the decoder frames them.
fn count_entries(body: &[u8]) -> u64 {
    let mut at = 0usize;
    let mut count = 0u64;
    while at + FIXED_ENTRY_BYTES <= body.len() {
        let header_len = u32::from_le_bytes(body[at + 33..at + 37].try_into().unwrap()) as usize;
        at += FIXED_ENTRY_BYTES;
        if header_len > body.len() - at {
            break;
        }
        at += header_len;
        count += 1;
    }
    count
}

/// Expands compact entries into the file's format, with `record_len` computed from the
/// parts (wrapping: the decoder must refuse an oversized payload_len before it adds).
/// A truncated last header is shortened to what is there.
fn compact_entries(body: &[u8]) -> (u64, Vec<u8>) {
    const COMPACT: usize = 8 * 3 + 1 + 2;
    let word = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().unwrap());
    let mut out = Vec::with_capacity(body.len() * 2);
    let mut at = 0usize;
    let mut count = 0u64;
    while at + COMPACT <= body.len() {
        let (lsn, offset, payload_len) = (word(at), word(at + 8), word(at + 16));
        let kind = body[at + 24];
        let header_len = u16::from_le_bytes(body[at + 25..at + 27].try_into().unwrap()) as usize;
        at += COMPACT;
        let header = &body[at..(at + header_len).min(body.len())];
        at += header.len();
        let record_len = (RECORD_OVERHEAD + header.len() as u64).wrapping_add(payload_len);
        out.extend_from_slice(&lsn.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&record_len.to_le_bytes());
        out.extend_from_slice(&payload_len.to_le_bytes());
        out.push(kind);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(header);
        count += 1;
    }
    (count, out)
}
