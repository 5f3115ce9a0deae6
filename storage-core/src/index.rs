//! The sled index: derived state, rebuilt from the log whenever it is missing or behind.
//!
//! Everything lives in one sled tree so that the effects of a whole group commit, and
//! the applied-LSN watermark, are written in one atomic `Batch`. Keys:
//!
//! ```text
//! B <bucket>                             -> BucketEntry
//! O <bucket> 0x00 <key>                  -> ObjectEntry   (ordered: listing is a range scan)
//! U <bucket> 0x00 <key> 0x00 <upload_id> -> UploadEntry
//! P <upload_id> 0x00 <part_number u32 BE> -> PartEntry
//! C <lsn u64 BE>                         -> ChunkLocation (where a data-bearing record is)
//! Mapplied                               -> AppliedPosition
//! ```
//! Bucket names never contain 0x00, so the separators are unambiguous.
//!
//! [`apply`] is the only code that changes objects, buckets and uploads. It runs in
//! LSN order both in the live writer and in replay, so its decisions (including
//! rejections) are the same both times.

use crate::error::{Rejection, Result};
use crate::log_entry::{ChunkPiece, LogEntry, ObjectMeta, ObjectRecord, PartRecord, UploadRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Bound;

const BUCKET: u8 = b'B';
const OBJECT: u8 = b'O';
const UPLOAD: u8 = b'U';
const PART: u8 = b'P';
const CHUNK: u8 = b'C';
const APPLIED_KEY: &[u8] = b"Mapplied";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEntry {
    pub created_ms: i64,
    pub lsn: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub lsn: u64,
    pub meta: ObjectMeta,
    pub chunks: Vec<ChunkPiece>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadEntry {
    pub lsn: u64,
    pub upload: UploadRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    pub lsn: u64,
    pub part: PartRecord,
}

/// Where a record is: segment, byte offset of its first byte, total record length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLocation {
    pub segment_id: u64,
    pub offset: u64,
    pub record_len: u64,
}

impl RecordLocation {
    fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[0..8].copy_from_slice(&self.segment_id.to_be_bytes());
        out[8..16].copy_from_slice(&self.offset.to_be_bytes());
        out[16..24].copy_from_slice(&self.record_len.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<RecordLocation> {
        if bytes.len() != 24 {
            return None;
        }
        let word = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().unwrap());
        Some(RecordLocation { segment_id: word(0), offset: word(8), record_len: word(16) })
    }
}

/// The log position through which the index is complete: the LSN of the last applied
/// record and the byte just past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppliedPosition {
    pub lsn: u64,
    pub segment_id: u64,
    pub end_offset: u64,
}

impl AppliedPosition {
    fn encode(&self) -> [u8; 24] {
        RecordLocation { segment_id: self.lsn, offset: self.segment_id, record_len: self.end_offset }.encode()
    }

    fn decode(bytes: &[u8]) -> Option<AppliedPosition> {
        let raw = RecordLocation::decode(bytes)?;
        Some(AppliedPosition { lsn: raw.segment_id, segment_id: raw.offset, end_offset: raw.record_len })
    }
}

pub fn bucket_key(bucket: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + bucket.len());
    k.push(BUCKET);
    k.extend_from_slice(bucket.as_bytes());
    k
}

pub fn object_prefix(bucket: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + bucket.len());
    k.push(OBJECT);
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k
}

pub fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = object_prefix(bucket);
    k.extend_from_slice(key.as_bytes());
    k
}

pub fn upload_prefix(bucket: &str) -> Vec<u8> {
    let mut k = vec![UPLOAD];
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k
}

pub fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut k = upload_prefix(bucket);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k.extend_from_slice(upload_id.as_bytes());
    k
}

pub fn part_prefix(upload_id: &str) -> Vec<u8> {
    let mut k = vec![PART];
    k.extend_from_slice(upload_id.as_bytes());
    k.push(0);
    k
}

pub fn part_key(upload_id: &str, part_number: u32) -> Vec<u8> {
    let mut k = part_prefix(upload_id);
    k.extend_from_slice(&part_number.to_be_bytes());
    k
}

pub fn encode_location(location: &RecordLocation) -> [u8; 24] {
    location.encode()
}

pub fn chunk_key(lsn: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = CHUNK;
    k[1..].copy_from_slice(&lsn.to_be_bytes());
    k
}

/// The smallest byte string greater than every string starting with `prefix`
/// (`None` when there is none, i.e. the prefix is all 0xFF).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("index values always serialize")
}

fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| crate::Error::Corrupt(format!("undecodable index value: {e}")))
}

/// Read access to the committed index.
#[derive(Clone)]
pub struct Index {
    pub(crate) tree: sled::Tree,
}

impl Index {
    pub fn new(tree: sled::Tree) -> Index {
        Index { tree }
    }

    pub fn applied_position(&self) -> Result<Option<AppliedPosition>> {
        Ok(self.tree.get(APPLIED_KEY)?.and_then(|v| AppliedPosition::decode(&v)))
    }

    pub fn bucket(&self, bucket: &str) -> Result<Option<BucketEntry>> {
        self.tree.get(bucket_key(bucket))?.map(|v| from_json(&v)).transpose()
    }

    pub fn buckets(&self) -> Result<Vec<(String, BucketEntry)>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([BUCKET]) {
            let (k, v) = item?;
            out.push((String::from_utf8_lossy(&k[1..]).into_owned(), from_json(&v)?));
        }
        Ok(out)
    }

    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectEntry>> {
        self.tree.get(object_key(bucket, key))?.map(|v| from_json(&v)).transpose()
    }

    /// Objects of `bucket` with keys >= `from` (as raw key bytes), in key order.
    pub fn objects_from(
        &self,
        bucket: &str,
        from: &[u8],
    ) -> impl Iterator<Item = Result<(String, ObjectEntry)>> + use<> {
        let prefix = object_prefix(bucket);
        let mut start = prefix.clone();
        start.extend_from_slice(from);
        let end = prefix_successor(&prefix).expect("object prefix ends in 0x00");
        let prefix_len = prefix.len();
        self.tree.range(start..end).map(move |item| {
            let (k, v) = item?;
            let key = String::from_utf8(k[prefix_len..].to_vec())
                .map_err(|_| crate::Error::Corrupt("object key is not UTF-8".into()))?;
            Ok((key, from_json(&v)?))
        })
    }

    pub fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Option<UploadEntry>> {
        self.tree.get(upload_key(bucket, key, upload_id))?.map(|v| from_json(&v)).transpose()
    }

    /// Every in-progress upload of a bucket, ordered by key then upload id.
    pub fn uploads(&self, bucket: &str) -> Result<Vec<UploadEntry>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(upload_prefix(bucket)) {
            out.push(from_json(&item?.1)?);
        }
        Ok(out)
    }

    /// The parts of an upload, ordered by part number.
    pub fn parts(&self, upload_id: &str) -> Result<Vec<PartEntry>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(part_prefix(upload_id)) {
            out.push(from_json(&item?.1)?);
        }
        Ok(out)
    }

    /// Every data-bearing record: (lsn, location).
    pub fn chunk_locations(&self) -> impl Iterator<Item = Result<(u64, RecordLocation)>> + use<> {
        self.tree.scan_prefix([CHUNK]).map(|item| {
            let (k, v) = item?;
            let lsn =
                u64::from_be_bytes(k[1..9].try_into().map_err(|_| crate::Error::Corrupt("bad chunk key".into()))?);
            let location = RecordLocation::decode(&v)
                .ok_or_else(|| crate::Error::Corrupt(format!("bad location of chunk {lsn}")))?;
            Ok((lsn, location))
        })
    }

    pub fn chunk_location(&self, lsn: u64) -> Result<Option<RecordLocation>> {
        Ok(self.tree.get(chunk_key(lsn))?.and_then(|v| RecordLocation::decode(&v)))
    }
}

/// Uncommitted index changes, layered over the committed tree. Reads see the layers
/// first. Committed as one sled `Batch`.
#[derive(Default)]
pub struct Overlay {
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Moves every change of `other` on top of this overlay.
    pub fn absorb(&mut self, other: Overlay) {
        self.writes.extend(other.writes);
    }

    pub fn into_batch(self, applied: Option<AppliedPosition>) -> sled::Batch {
        let mut batch = sled::Batch::default();
        for (k, v) in self.writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        if let Some(applied) = applied {
            batch.insert(APPLIED_KEY, &applied.encode()[..]);
        }
        batch
    }
}

/// A read view: an overlay (the batch being built) over a lower overlay (changes not
/// yet committed) over the committed tree.
pub struct View<'a> {
    pub tree: &'a sled::Tree,
    pub lower: &'a Overlay,
    pub top: &'a mut Overlay,
}

impl View<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.top.writes.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.lower.writes.get(key) {
            return Ok(v.clone());
        }
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.top.writes.insert(key, Some(value));
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.top.writes.insert(key, None);
    }

    /// Every live key starting with `prefix`, as seen through the layers.
    fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut keys: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
        for item in self.tree.scan_prefix(prefix) {
            keys.insert(item?.0.to_vec(), true);
        }
        for layer in [self.lower, &*self.top] {
            let upper = prefix_successor(prefix);
            let range = (Bound::Included(prefix.to_vec()), upper.map(Bound::Excluded).unwrap_or(Bound::Unbounded));
            for (k, v) in layer.writes.range(range) {
                keys.insert(k.clone(), v.is_some());
            }
        }
        Ok(keys.into_iter().filter(|(_, live)| *live).map(|(k, _)| k).collect())
    }

    fn has_prefix(&self, prefix: &[u8]) -> Result<bool> {
        // Fast path: a committed key that no layer removed.
        for item in self.tree.scan_prefix(prefix) {
            let (k, _) = item?;
            let removed = |layer: &Overlay| matches!(layer.writes.get(k.as_ref()), Some(None));
            let revived = |layer: &Overlay| matches!(layer.writes.get(k.as_ref()), Some(Some(_)));
            if revived(self.top) || (!removed(self.top) && !removed(self.lower)) {
                return Ok(true);
            }
        }
        Ok(!self.keys_with_prefix(prefix)?.is_empty())
    }

    /// Makes the payload of the record at `location` addressable by its LSN.
    pub fn register_chunk(&mut self, lsn: u64, location: RecordLocation) {
        self.insert(chunk_key(lsn).to_vec(), location.encode().to_vec());
    }

    fn json<T: for<'de> Deserialize<'de>>(&self, key: &[u8]) -> Result<Option<T>> {
        self.get(key)?.map(|v| from_json(&v)).transpose()
    }
}

/// Applies one record to the index view. `own_location` is where the record itself is
/// stored; records with a payload become addressable chunks under their LSN.
///
/// Returns `Ok(Err(rejection))` when the record must not take effect (the writer then
/// does not write it; replay never meets one).
pub fn apply(
    view: &mut View<'_>,
    entry: &LogEntry,
    lsn: u64,
    own_location: RecordLocation,
    payload_len: u64,
) -> Result<Result<(), Rejection>> {
    let decision = decide(view, entry)?;
    if decision.is_err() {
        return Ok(decision);
    }
    if payload_len > 0 {
        view.insert(chunk_key(lsn).to_vec(), own_location.encode().to_vec());
    }
    let own_chunks = |chunks: &[ChunkPiece], inline: bool| {
        if inline { vec![ChunkPiece { lsn, len: payload_len, offset: 0 }] } else { chunks.to_vec() }
    };
    match entry {
        LogEntry::Chunk => {}
        LogEntry::Object(object) => put_object(view, object, lsn, own_chunks(&object.chunks, object.inline))?,
        LogEntry::Tombstone { bucket, key, .. } => {
            let k = object_key(bucket, key);
            if let Some(existing) = view.json::<ObjectEntry>(&k)?
                && existing.lsn < lsn
            {
                view.remove(k);
            }
        }
        LogEntry::BucketCreate { bucket, created_ms } => {
            view.insert(bucket_key(bucket), to_json(&BucketEntry { created_ms: *created_ms, lsn }));
        }
        LogEntry::BucketDelete { bucket } => {
            for upload in view.keys_with_prefix(&upload_prefix(bucket))? {
                if let Some(entry) = view.json::<UploadEntry>(&upload)? {
                    remove_upload(view, &entry.upload.bucket, &entry.upload.key, &entry.upload.upload_id)?;
                }
            }
            view.remove(bucket_key(bucket));
        }
        LogEntry::UploadCreate(upload) => {
            let k = upload_key(&upload.bucket, &upload.key, &upload.upload_id);
            view.insert(k, to_json(&UploadEntry { lsn, upload: upload.clone() }));
        }
        LogEntry::Part(part) => {
            let mut part = part.clone();
            part.chunks = own_chunks(&part.chunks, part.inline);
            let k = part_key(&part.upload_id, part.part_number);
            view.insert(k, to_json(&PartEntry { lsn, part }));
        }
        LogEntry::UploadComplete { upload_id, object } => {
            put_object(view, object, lsn, object.chunks.clone())?;
            remove_upload(view, &object.bucket, &object.key, upload_id)?;
        }
        LogEntry::UploadAbort { bucket, key, upload_id } => remove_upload(view, bucket, key, upload_id)?,
        LogEntry::Replaces { .. } => {}
    }
    Ok(Ok(()))
}

/// Checks a record's preconditions against the current state, changing nothing.
fn decide(view: &View<'_>, entry: &LogEntry) -> Result<Result<(), Rejection>> {
    let bucket_exists = |bucket: &str| -> Result<bool> { Ok(view.get(&bucket_key(bucket))?.is_some()) };
    let upload_exists = |bucket: &str, key: &str, upload_id: &str| -> Result<bool> {
        Ok(view.get(&upload_key(bucket, key, upload_id))?.is_some())
    };
    let chunks_exist = |chunks: &[ChunkPiece]| -> Result<bool> {
        for piece in chunks.iter().filter(|p| p.len > 0) {
            if view.get(&chunk_key(piece.lsn))?.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    };
    Ok(match entry {
        LogEntry::Chunk | LogEntry::Tombstone { .. } | LogEntry::Replaces { .. } => Ok(()),
        // Every piece an object names must exist (a body whose chunks compaction
        // reclaimed in the meantime is refused, never committed broken).
        LogEntry::Object(object) if !object.inline && !chunks_exist(&object.chunks)? => Err(Rejection::MissingChunks),
        LogEntry::UploadComplete { object, .. } if !chunks_exist(&object.chunks)? => Err(Rejection::MissingChunks),
        LogEntry::Part(part) if !part.inline && !chunks_exist(&part.chunks)? => Err(Rejection::MissingChunks),
        LogEntry::Object(object) => object_preconditions(view, object)?,
        LogEntry::BucketCreate { bucket, .. } if bucket_exists(bucket)? => Err(Rejection::BucketAlreadyExists),
        LogEntry::BucketCreate { .. } => Ok(()),
        LogEntry::BucketDelete { bucket } if !bucket_exists(bucket)? => Err(Rejection::NoSuchBucket),
        LogEntry::BucketDelete { bucket } if view.has_prefix(&object_prefix(bucket))? => Err(Rejection::BucketNotEmpty),
        LogEntry::BucketDelete { .. } => Ok(()),
        LogEntry::UploadCreate(upload) if !bucket_exists(&upload.bucket)? => Err(Rejection::NoSuchBucket),
        LogEntry::UploadCreate(_) => Ok(()),
        LogEntry::Part(part) if !upload_exists(&part.bucket, &part.key, &part.upload_id)? => {
            Err(Rejection::NoSuchUpload)
        }
        LogEntry::Part(_) => Ok(()),
        LogEntry::UploadComplete { upload_id, object } => {
            if !upload_exists(&object.bucket, &object.key, upload_id)? {
                Err(Rejection::NoSuchUpload)
            } else {
                object_preconditions(view, object)?
            }
        }
        LogEntry::UploadAbort { bucket, key, upload_id } if !upload_exists(bucket, key, upload_id)? => {
            Err(Rejection::NoSuchUpload)
        }
        LogEntry::UploadAbort { .. } => Ok(()),
    })
}

fn object_preconditions(view: &View<'_>, object: &ObjectRecord) -> Result<Result<(), Rejection>> {
    if view.get(&bucket_key(&object.bucket))?.is_none() {
        return Ok(Err(Rejection::NoSuchBucket));
    }
    if !object.if_none_match && object.if_match.is_none() {
        return Ok(Ok(()));
    }
    let existing = view.json::<ObjectEntry>(&object_key(&object.bucket, &object.key))?;
    if object.if_none_match && existing.is_some() {
        return Ok(Err(Rejection::PreconditionFailed));
    }
    if let Some(want) = &object.if_match
        && existing.as_ref().is_none_or(|e| want != "*" && &e.meta.etag != want)
    {
        return Ok(Err(Rejection::PreconditionFailed));
    }
    Ok(Ok(()))
}

fn put_object(view: &mut View<'_>, object: &ObjectRecord, lsn: u64, chunks: Vec<ChunkPiece>) -> Result<()> {
    let k = object_key(&object.bucket, &object.key);
    if let Some(existing) = view.json::<ObjectEntry>(&k)?
        && existing.lsn >= lsn
    {
        return Ok(()); // already holds a newer version (idempotent replay)
    }
    let total: u64 = chunks.iter().map(|c| c.len).sum();
    assert_eq!(
        total, object.meta.size_bytes,
        "object {}/{}: chunks do not add up to its size",
        object.bucket, object.key
    );
    view.insert(k, to_json(&ObjectEntry { lsn, meta: object.meta.clone(), chunks }));
    Ok(())
}

fn remove_upload(view: &mut View<'_>, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
    for part in view.keys_with_prefix(&part_prefix(upload_id))? {
        view.remove(part);
    }
    view.remove(upload_key(bucket, key, upload_id));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_carries() {
        assert_eq!(prefix_successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_successor(&[b'a', 0xFF]), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
    }

    #[test]
    fn positions_round_trip() {
        let loc = RecordLocation { segment_id: 7, offset: 1 << 40, record_len: 99 };
        assert_eq!(RecordLocation::decode(&loc.encode()), Some(loc));
        let pos = AppliedPosition { lsn: 5, segment_id: 3, end_offset: 1234 };
        assert_eq!(AppliedPosition::decode(&pos.encode()), Some(pos));
    }
}
