//! The framing of one record in a segment file.
//!
//! ```text
//! offset  size  field
//!      0     4  magic  b"QRY1"
//!      4     1  kind   (RecordKind)
//!      5     3  zero
//!      8     8  lsn           u64 LE
//!     16     4  header_len    u32 LE
//!     20     4  zero
//!     24     8  payload_len   u64 LE
//!     32     h  header   (JSON of LogEntry)
//!   32+h     p  payload  (object bytes, if any)
//! 32+h+p    32  blake3 of bytes [0, 32+h+p)
//! ```
//! A record never spans two segments. The checksum covers everything before it, so a
//! torn or corrupted record is always detected before any of its bytes are used.

use crate::error::{Error, Result};
use crate::log_entry::LogEntry;
use bytes::Bytes;

pub const MAGIC: [u8; 4] = *b"QRY1";
pub const PREFIX_BYTES: usize = 32;
pub const CHECKSUM_BYTES: usize = 32;
/// Largest header we write or accept; a decoded length past it means corruption.
pub const MAX_HEADER_BYTES: usize = 16 * 1024 * 1024;
/// Largest payload we write or accept (the chunk size is far below it).
pub const MAX_PAYLOAD_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    Chunk = 1,
    Object = 2,
    Tombstone = 3,
    BucketCreate = 4,
    BucketDelete = 5,
    UploadCreate = 6,
    Part = 7,
    UploadComplete = 8,
    UploadAbort = 9,
    Replaces = 10,
    BucketVersioning = 11,
    ObjectTagging = 12,
    BucketTagging = 13,
    BucketObjectLock = 14,
    ObjectRetention = 15,
    ObjectLegalHold = 16,
    BucketPolicy = 17,
    BucketPublicAccessBlock = 18,
    BucketAcl = 19,
    ObjectAcl = 20,
    BucketOwnershipControls = 21,
    BucketCors = 22,
    User = 23,
    AccessKey = 24,
    BucketEncryption = 25,
    BucketLifecycle = 26,
}

impl RecordKind {
    pub fn from_u8(value: u8) -> Option<RecordKind> {
        use RecordKind::*;
        Some(match value {
            1 => Chunk,
            2 => Object,
            3 => Tombstone,
            4 => BucketCreate,
            5 => BucketDelete,
            6 => UploadCreate,
            7 => Part,
            8 => UploadComplete,
            9 => UploadAbort,
            10 => Replaces,
            11 => BucketVersioning,
            12 => ObjectTagging,
            13 => BucketTagging,
            14 => BucketObjectLock,
            15 => ObjectRetention,
            16 => ObjectLegalHold,
            17 => BucketPolicy,
            18 => BucketPublicAccessBlock,
            19 => BucketAcl,
            20 => ObjectAcl,
            21 => BucketOwnershipControls,
            22 => BucketCors,
            23 => User,
            24 => AccessKey,
            25 => BucketEncryption,
            26 => BucketLifecycle,
            _ => return None,
        })
    }
}

/// The fixed-size start of a record: enough to know its full length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPrefix {
    pub kind: RecordKind,
    pub lsn: u64,
    pub header_len: u32,
    pub payload_len: u64,
}

impl RecordPrefix {
    pub fn record_len(&self) -> u64 {
        record_len(self.header_len as usize, self.payload_len)
    }

    /// Decodes and sanity-checks a prefix. `None` means "not a record here".
    pub fn decode(bytes: &[u8; PREFIX_BYTES]) -> Option<RecordPrefix> {
        if bytes[0..4] != MAGIC || bytes[5..8] != [0; 3] || bytes[20..24] != [0; 4] {
            return None;
        }
        let kind = RecordKind::from_u8(bytes[4])?;
        let lsn = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        let header_len = u32::from_le_bytes(bytes[16..20].try_into().unwrap());
        let payload_len = u64::from_le_bytes(bytes[24..32].try_into().unwrap());
        if header_len as usize > MAX_HEADER_BYTES || payload_len > MAX_PAYLOAD_BYTES || lsn == 0 {
            return None;
        }
        Some(RecordPrefix { kind, lsn, header_len, payload_len })
    }

    fn encode(&self) -> [u8; PREFIX_BYTES] {
        let mut out = [0u8; PREFIX_BYTES];
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = self.kind as u8;
        out[8..16].copy_from_slice(&self.lsn.to_le_bytes());
        out[16..20].copy_from_slice(&self.header_len.to_le_bytes());
        out[24..32].copy_from_slice(&self.payload_len.to_le_bytes());
        out
    }
}

pub fn record_len(header_len: usize, payload_len: u64) -> u64 {
    (PREFIX_BYTES + header_len + CHECKSUM_BYTES) as u64 + payload_len
}

/// The bytes of a record, split so the (possibly large) payload is never copied.
pub struct EncodedRecord {
    /// prefix + header
    pub head: Vec<u8>,
    pub payload: Bytes,
    pub checksum: [u8; CHECKSUM_BYTES],
}

impl EncodedRecord {
    pub fn len(&self) -> u64 {
        (self.head.len() + CHECKSUM_BYTES) as u64 + self.payload.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

pub fn encode(lsn: u64, entry: &LogEntry, payload: Bytes) -> EncodedRecord {
    let header = serde_json::to_vec(entry).expect("log entries always serialize");
    assert!(header.len() <= MAX_HEADER_BYTES, "record header too large: {} bytes", header.len());
    assert!(payload.len() as u64 <= MAX_PAYLOAD_BYTES, "record payload too large");
    let prefix =
        RecordPrefix { kind: entry.kind(), lsn, header_len: header.len() as u32, payload_len: payload.len() as u64 };
    let mut head = Vec::with_capacity(PREFIX_BYTES + header.len());
    head.extend_from_slice(&prefix.encode());
    head.extend_from_slice(&header);
    let mut hasher = blake3::Hasher::new();
    hasher.update(&head);
    hasher.update(&payload);
    EncodedRecord { head, payload, checksum: *hasher.finalize().as_bytes() }
}

/// A record read back and verified.
#[derive(Debug, Clone)]
pub struct DecodedRecord {
    pub prefix: RecordPrefix,
    pub entry: LogEntry,
    /// The header as stored (JSON of `entry`). A slice of the whole record: copy it
    /// before keeping it, or the payload stays in memory too.
    pub header: Bytes,
    pub payload: Bytes,
}

/// Decodes one whole record from `bytes` (exactly one record long) and verifies it.
pub fn decode(bytes: Bytes) -> Result<DecodedRecord> {
    let prefix = decode_prefix(&bytes)?;
    if bytes.len() as u64 != prefix.record_len() {
        return Err(Error::Corrupt(format!(
            "record length {} does not match its prefix ({})",
            bytes.len(),
            prefix.record_len()
        )));
    }
    let body_end = bytes.len() - CHECKSUM_BYTES;
    let expected: [u8; CHECKSUM_BYTES] = bytes[body_end..].try_into().unwrap();
    if blake3::hash(&bytes[..body_end]).as_bytes() != &expected {
        return Err(Error::Corrupt(format!("checksum mismatch in record lsn {}", prefix.lsn)));
    }
    let header_end = PREFIX_BYTES + prefix.header_len as usize;
    let entry: LogEntry = serde_json::from_slice(&bytes[PREFIX_BYTES..header_end])
        .map_err(|e| Error::Corrupt(format!("undecodable header in record lsn {}: {e}", prefix.lsn)))?;
    if entry.kind() != prefix.kind {
        return Err(Error::Corrupt(format!("record lsn {} kind byte disagrees with header", prefix.lsn)));
    }
    Ok(DecodedRecord {
        prefix,
        entry,
        header: bytes.slice(PREFIX_BYTES..header_end),
        payload: bytes.slice(header_end..body_end),
    })
}

pub fn decode_prefix(bytes: &[u8]) -> Result<RecordPrefix> {
    let head: &[u8; PREFIX_BYTES] = bytes
        .get(..PREFIX_BYTES)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Corrupt("record shorter than its prefix".into()))?;
    RecordPrefix::decode(head).ok_or_else(|| Error::Corrupt("bad record prefix".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_entry::LogEntry;

    fn to_bytes(rec: &EncodedRecord) -> Bytes {
        let mut all = rec.head.clone();
        all.extend_from_slice(&rec.payload);
        all.extend_from_slice(&rec.checksum);
        Bytes::from(all)
    }

    #[test]
    fn round_trip_and_every_flipped_byte_is_detected() {
        let entry = LogEntry::Tombstone {
            bucket: "b".into(),
            key: "k/ü".into(),
            origin: None,
            version_id: None,
            deleted_ms: None,
            conditions: None,
            bypass_governance: false,
        };
        let rec = encode(42, &entry, Bytes::from_static(b"payload"));
        let bytes = to_bytes(&rec);
        assert_eq!(bytes.len() as u64, rec.len());
        let back = decode(bytes.clone()).unwrap();
        assert_eq!(back.prefix.lsn, 42);
        assert_eq!(back.entry, entry);
        assert_eq!(&back.payload[..], b"payload");
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x01;
            assert!(decode(Bytes::from(bad)).is_err(), "flipping byte {i} went unnoticed");
        }
        assert!(decode(bytes.slice(..bytes.len() - 1)).is_err(), "truncation went unnoticed");
    }
}
