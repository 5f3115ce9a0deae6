//! The index: derived state, rebuilt from the log whenever it is missing, behind, or of
//! another layout.
//!
//! Everything lives in one fjall keyspace so that the effects of a whole group commit,
//! and the applied-LSN watermark, are written in one atomic batch. This module is the
//! only one that builds or parses keys. Keys (`‹x›` is a component: its bytes with
//! every 0x00 written 0x00 0xFF, then 0x00 0x01; unambiguous for every byte string and
//! order-preserving, so `‹a›…` sorts as `a` does):
//!
//! ```text
//! B ‹bucket›                                  -> BucketEntry
//! O ‹bucket› <key raw>                        -> ObjectEntry  (the latest version, which may be a
//!                                                               delete marker; listing: range scan)
//! V ‹bucket› ‹key› <!lsn u64 BE>              -> ObjectEntry  (noncurrent versions, newest first)
//! N ‹bucket› ‹key›                            -> lsn u64 BE   (which `V` entry is the null version)
//! U ‹bucket› ‹key› <upload_id raw>            -> UploadEntry  (by bucket, key, id)
//! P ‹bucket› ‹key› ‹upload_id› <part u32 BE>  -> PartEntry
//! C <lsn u64 BE>                              -> ChunkLocation (where a data-bearing record is)
//! D <segment id u64 BE>                       -> when compaction first saw dead bytes there
//! W ‹user›                                    -> UserEntry      (users made at run time)
//! K ‹access key›                              -> AccessKeyEntry (their access keys)
//! Mapplied                                    -> AppliedPosition
//! Mformat                                     -> layout version (u32 BE, `FORMAT_VERSION`)
//! Musers                                      -> how many `W` entries there are (u64 BE)
//! ```
//! An index whose `Mformat` is missing or another version is cleared and rebuilt from
//! the log ([`Index::open`]): an old layout is never read with the new one.
//!
//! A bucket never versioned has `O` entries only (each the `null` version). Once
//! versioning is enabled, a version that stops being the latest moves from `O` to `V`
//! (the `null` version is replaced instead when the bucket is suspended), and deleting
//! the latest version promotes the newest `V` entry of the key.
//!
//! [`apply`] is the only code that changes objects, buckets and uploads. It runs in
//! LSN order both in the live writer and in replay, so its decisions (including
//! rejections) are the same both times.

use crate::error::{Rejection, Result};
use crate::log_entry::{
    BucketEncryption, ChunkPiece, CorsRule, DefaultRetention, Grant, KeyChange, LifecycleRule, LockMode, LogEntry,
    ObjectMeta, ObjectOwnership, ObjectRecord, PartRecord, PublicAccessBlock, Retention, UploadRecord, UserChange,
    VersioningStatus,
};
use crate::version::VersionId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::Path;

const BUCKET: u8 = b'B';
const OBJECT: u8 = b'O';
const VERSION: u8 = b'V';
const NULL_VERSION: u8 = b'N';
const UPLOAD: u8 = b'U';
const PART: u8 = b'P';
const CHUNK: u8 = b'C';
const DEAD_SINCE: u8 = b'D';
const USER: u8 = b'W';
const ACCESS_KEY: u8 = b'K';
/// A user has at most this many access keys (as an IAM user: two, to rotate them).
pub const MAX_ACCESS_KEYS_PER_USER: usize = 2;
/// The most users made at run time (each change reloads them all in the key store).
pub const MAX_USERS: u64 = 10_000;
/// How many users made at run time there are (u64 BE; derived, like the rest).
const USER_COUNT_KEY: &[u8] = b"Musers";
const APPLIED_KEY: &[u8] = b"Mapplied";
const FORMAT_KEY: &[u8] = b"Mformat";
/// The index's version. 1 (no `Mformat` key) joined components with bare 0x00
/// separators, which keys and upload ids containing NUL could forge; 2 kept this key
/// layout in a sled database; 3 keeps it in a fjall keyspace; 4 adds noncurrent versions
/// (`V`) and names the upload of every completed object (rebuilt so that older
/// completions are named too); 5 adds `N`, so finding a key's noncurrent null version is
/// one read, not a walk over all its versions (in the writer, for every write to a
/// suspended bucket).
pub const FORMAT_VERSION: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEntry {
    pub created_ms: i64,
    pub lsn: u64,
    /// `None`: never versioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<VersioningStatus>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The record that set `tags` (compaction keeps it while the bucket lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_lsn: Option<u64>,
    /// Object lock enabled at creation.
    #[serde(default, skip_serializing_if = "is_false")]
    pub object_lock: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_retention: Option<DefaultRetention>,
    /// The record that set `default_retention` (kept while the bucket lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_lsn: Option<u64>,
    /// The user who owns it; none for buckets made before buckets had owners (the
    /// admins').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The bucket policy document, as PutBucketPolicy took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The record that set `policy` (kept while the bucket lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_lsn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<PublicAccessBlock>,
    /// The record that set `public_access_block` after the bucket was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block_lsn: Option<u64>,
    /// None: a bucket made before Object Ownership existed (BucketOwnerEnforced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ownership: Option<ObjectOwnership>,
    /// The record that set `object_ownership` after the bucket was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership_lsn: Option<u64>,
    /// The bucket's ACL grants (none: the owner's FULL_CONTROL only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<Grant>>,
    /// The record that set `acl` after the bucket was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl_lsn: Option<u64>,
    /// The bucket's CORS rules (none: no CORS configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Vec<CorsRule>>,
    /// The record that set `cors` (kept while the bucket lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_lsn: Option<u64>,
    /// The bucket's default encryption (PutBucketEncryption; none: no configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<BucketEncryption>,
    /// The record that set `encryption` (kept while the bucket lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_lsn: Option<u64>,
    /// The bucket's lifecycle rules (none: no lifecycle configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Vec<LifecycleRule>>,
    /// The record that set `lifecycle` (kept while the bucket lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_lsn: Option<u64>,
}

/// One version of an object: its body, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub lsn: u64,
    pub meta: ObjectMeta,
    pub chunks: Vec<ChunkPiece>,
    /// Made while versioning was enabled: its id is its LSN. Otherwise the null version.
    #[serde(default, skip_serializing_if = "is_false")]
    pub versioned: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub delete_marker: bool,
    /// The tagging record that set `meta.tags` since the version was made (compaction
    /// keeps it while the version lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_lsn: Option<u64>,
    /// The records that set `meta.retention` and `meta.legal_hold` since (as `tags_lsn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_lsn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_hold_lsn: Option<u64>,
    /// The record that set `meta.acl` since (as `tags_lsn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl_lsn: Option<u64>,
}

impl ObjectEntry {
    /// A version just written: no tagging or lock record has changed it since.
    pub fn new(
        lsn: u64,
        meta: ObjectMeta,
        chunks: Vec<ChunkPiece>,
        versioned: bool,
        delete_marker: bool,
    ) -> ObjectEntry {
        ObjectEntry {
            lsn,
            meta,
            chunks,
            versioned,
            delete_marker,
            tags_lsn: None,
            retention_lsn: None,
            legal_hold_lsn: None,
            acl_lsn: None,
        }
    }

    pub fn version_id(&self) -> VersionId {
        if self.versioned { VersionId::Lsn(self.lsn) } else { VersionId::Null }
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A user made at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    /// Its create record.
    pub lsn: u64,
    pub admin: bool,
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// The record that last disabled or enabled it (kept while the user lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_lsn: Option<u64>,
    /// Its access keys (derived: each key's own entry is the truth about it).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub access_keys: BTreeSet<String>,
}

/// An access key made at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyEntry {
    /// Its create record.
    pub lsn: u64,
    pub user: String,
    /// The secret, sealed by the server key.
    pub sealed_secret: String,
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_lsn: Option<u64>,
}

/// What applying a record did, for the answer to its request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// The version an object write or delete made or removed, in a bucket that has had
    /// versioning (`None` in one never versioned: S3 then names no version).
    pub version: Option<VersionId>,
    /// The version made or removed is a delete marker.
    pub delete_marker: bool,
}

/// A page of ListObjectVersions: every version of each key, latest first.
#[derive(Debug, Default)]
pub struct VersionPage {
    /// (key, version, is the latest version of its key)
    pub versions: Vec<(String, ObjectEntry, bool)>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The last key or common prefix returned and, for a version, its id: where the
    /// next page starts after.
    pub last: Option<(String, Option<VersionId>)>,
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

/// Appends one variable-length component so that no two component lists share an
/// encoding and byte order is kept: every 0x00 becomes 0x00 0xFF and the component ends
/// with 0x00 0x01 (smaller than any continuation, so "a" < "a\0" < "ab" still holds).
fn push_component(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(ESCAPED_NUL);
        }
    }
    out.extend_from_slice(&COMPONENT_END);
}

/// Reads one component written by [`push_component`] from the start of `bytes`:
/// the component and the rest. `None` if `bytes` does not start with one.
fn take_component(bytes: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (0, Some(&ESCAPED_NUL)) => out.push(0),
            (0, Some(&END)) => return Some((out, &bytes[i + 2..])),
            (0, _) => return None,
            (b, _) => {
                out.push(b);
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    None
}

const ESCAPED_NUL: u8 = 0xFF;
const END: u8 = 0x01;
const COMPONENT_END: [u8; 2] = [0x00, END];

/// `tag ‹name›`: the key of a user or an access key.
fn tagged_key(tag: u8, name: &[u8]) -> Vec<u8> {
    let mut k = vec![tag];
    push_component(&mut k, name);
    k
}

fn user_key(name: &str) -> Vec<u8> {
    tagged_key(USER, name.as_bytes())
}

fn access_key_key(access_key: &str) -> Vec<u8> {
    tagged_key(ACCESS_KEY, access_key.as_bytes())
}

fn bucket_key(bucket: &str) -> Vec<u8> {
    bucket_key_bytes(bucket.as_bytes())
}

fn bucket_key_bytes(bucket: &[u8]) -> Vec<u8> {
    let mut k = vec![BUCKET];
    push_component(&mut k, bucket);
    k
}

/// Every object key of `bucket` starts with this (and no key of another bucket does).
fn object_prefix(bucket: &str) -> Vec<u8> {
    object_prefix_bytes(bucket.as_bytes())
}

fn object_prefix_bytes(bucket: &[u8]) -> Vec<u8> {
    let mut k = vec![OBJECT];
    push_component(&mut k, bucket);
    k
}

/// The object key is the last component and stays raw: after the bucket's terminated
/// component it is unambiguous, and raw bytes keep listing a plain range scan.
fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    object_key_bytes(bucket.as_bytes(), key.as_bytes())
}

fn object_key_bytes(bucket: &[u8], key: &[u8]) -> Vec<u8> {
    let mut k = object_prefix_bytes(bucket);
    k.extend_from_slice(key);
    k
}

fn version_prefix_bytes(bucket: &[u8]) -> Vec<u8> {
    let mut k = vec![VERSION];
    push_component(&mut k, bucket);
    k
}

/// Every noncurrent version of `key` starts with this, newest first.
fn key_versions_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = version_prefix_bytes(bucket.as_bytes());
    push_component(&mut k, key.as_bytes());
    k
}

fn version_key_bytes(bucket: &[u8], key: &[u8], lsn: u64) -> Vec<u8> {
    let mut k = version_prefix_bytes(bucket);
    push_component(&mut k, key);
    k.extend_from_slice(&(!lsn).to_be_bytes());
    k
}

fn null_version_key_bytes(bucket: &[u8], key: &[u8]) -> Vec<u8> {
    let mut k = vec![NULL_VERSION];
    push_component(&mut k, bucket);
    push_component(&mut k, key);
    k
}

fn null_version_key(bucket: &str, key: &str) -> Vec<u8> {
    null_version_key_bytes(bucket.as_bytes(), key.as_bytes())
}

fn version_key(bucket: &str, key: &str, lsn: u64) -> Vec<u8> {
    version_key_bytes(bucket.as_bytes(), key.as_bytes(), lsn)
}

/// Every upload of `bucket` starts with this (and no upload of another bucket does).
fn upload_prefix(bucket: &str) -> Vec<u8> {
    upload_prefix_bytes(bucket.as_bytes())
}

fn upload_prefix_bytes(bucket: &[u8]) -> Vec<u8> {
    let mut k = vec![UPLOAD];
    push_component(&mut k, bucket);
    k
}

fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    upload_key_bytes(bucket.as_bytes(), key.as_bytes(), upload_id.as_bytes())
}

fn upload_key_bytes(bucket: &[u8], key: &[u8], upload_id: &[u8]) -> Vec<u8> {
    let mut k = upload_prefix_bytes(bucket);
    push_component(&mut k, key);
    k.extend_from_slice(upload_id);
    k
}

/// Parts belong to (bucket, key, upload id), not to an upload id alone.
fn part_prefix(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    part_prefix_bytes(bucket.as_bytes(), key.as_bytes(), upload_id.as_bytes())
}

fn part_prefix_bytes(bucket: &[u8], key: &[u8], upload_id: &[u8]) -> Vec<u8> {
    let mut k = vec![PART];
    push_component(&mut k, bucket);
    push_component(&mut k, key);
    push_component(&mut k, upload_id);
    k
}

fn part_key(bucket: &str, key: &str, upload_id: &str, part_number: u32) -> Vec<u8> {
    let mut k = part_prefix(bucket, key, upload_id);
    k.extend_from_slice(&part_number.to_be_bytes());
    k
}

/// A decoded index key (what [`IndexKey::encode`] wrote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexKey {
    Bucket { bucket: Vec<u8> },
    Object { bucket: Vec<u8>, key: Vec<u8> },
    Version { bucket: Vec<u8>, key: Vec<u8>, lsn: u64 },
    NullVersion { bucket: Vec<u8>, key: Vec<u8> },
    Upload { bucket: Vec<u8>, key: Vec<u8>, upload_id: Vec<u8> },
    Part { bucket: Vec<u8>, key: Vec<u8>, upload_id: Vec<u8>, part_number: u32 },
    Chunk { lsn: u64 },
    DeadSince { segment_id: u64 },
    User { name: Vec<u8> },
    AccessKey { access_key: Vec<u8> },
}

impl IndexKey {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            IndexKey::Bucket { bucket } => bucket_key_bytes(bucket),
            IndexKey::Object { bucket, key } => object_key_bytes(bucket, key),
            IndexKey::Version { bucket, key, lsn } => version_key_bytes(bucket, key, *lsn),
            IndexKey::NullVersion { bucket, key } => null_version_key_bytes(bucket, key),
            IndexKey::Upload { bucket, key, upload_id } => upload_key_bytes(bucket, key, upload_id),
            IndexKey::Part { bucket, key, upload_id, part_number } => {
                let mut k = part_prefix_bytes(bucket, key, upload_id);
                k.extend_from_slice(&part_number.to_be_bytes());
                k
            }
            IndexKey::Chunk { lsn } => chunk_key(*lsn).to_vec(),
            IndexKey::DeadSince { segment_id } => dead_since_key(*segment_id).to_vec(),
            IndexKey::User { name } => tagged_key(USER, name),
            IndexKey::AccessKey { access_key } => tagged_key(ACCESS_KEY, access_key),
        }
    }

    /// `None` for bytes that no `encode` produces (and for the `M` metadata keys).
    pub fn decode(bytes: &[u8]) -> Option<IndexKey> {
        let (&tag, rest) = bytes.split_first()?;
        let u64_of = |rest: &[u8]| Some(u64::from_be_bytes(rest.try_into().ok()?));
        match tag {
            BUCKET => {
                let (bucket, rest) = take_component(rest)?;
                rest.is_empty().then_some(IndexKey::Bucket { bucket })
            }
            OBJECT => {
                let (bucket, key) = take_component(rest)?;
                Some(IndexKey::Object { bucket, key: key.to_vec() })
            }
            VERSION => {
                let (bucket, rest) = take_component(rest)?;
                let (key, rest) = take_component(rest)?;
                Some(IndexKey::Version { bucket, key, lsn: !u64_of(rest)? })
            }
            NULL_VERSION => {
                let (bucket, rest) = take_component(rest)?;
                let (key, rest) = take_component(rest)?;
                rest.is_empty().then_some(IndexKey::NullVersion { bucket, key })
            }
            UPLOAD => {
                let (bucket, rest) = take_component(rest)?;
                let (key, upload_id) = take_component(rest)?;
                Some(IndexKey::Upload { bucket, key, upload_id: upload_id.to_vec() })
            }
            PART => {
                let (bucket, rest) = take_component(rest)?;
                let (key, rest) = take_component(rest)?;
                let (upload_id, rest) = take_component(rest)?;
                let part_number = u32::from_be_bytes(rest.try_into().ok()?);
                Some(IndexKey::Part { bucket, key, upload_id, part_number })
            }
            CHUNK => Some(IndexKey::Chunk { lsn: u64_of(rest)? }),
            DEAD_SINCE => Some(IndexKey::DeadSince { segment_id: u64_of(rest)? }),
            USER => {
                let (name, rest) = take_component(rest)?;
                rest.is_empty().then_some(IndexKey::User { name })
            }
            ACCESS_KEY => {
                let (access_key, rest) = take_component(rest)?;
                rest.is_empty().then_some(IndexKey::AccessKey { access_key })
            }
            _ => None,
        }
    }
}

/// `D<segment id>`: when compaction first saw dead payload in a segment.
fn dead_since_key(segment_id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = DEAD_SINCE;
    k[1..].copy_from_slice(&segment_id.to_be_bytes());
    k
}

fn chunk_key(lsn: u64) -> [u8; 9] {
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

/// The committed index. The only owner of the fjall keyspace: every read and write of
/// it goes through a method here.
#[derive(Clone)]
pub struct Index {
    db: fjall::Database,
    tree: fjall::Keyspace,
}

/// Bounds of the index's memory, besides the block cache the caller sizes: the one
/// memtable (writes not yet in a table file) and the journal that backs it.
const MEMTABLE_LIMIT_BYTES: u64 = 16 * 1024 * 1024;
/// fjall's minimum; also bounds how much journal a start-up replays.
const JOURNAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// What [`Index::open`] found instead of an index of this layout (it was cleared).
pub type ClearedLayout = String;

impl Index {
    /// Opens the index in `dir`, of this layout: an empty one is stamped with
    /// [`FORMAT_VERSION`]; one of another (or no) version, or the sled database that
    /// layouts 1 and 2 used, is cleared so that replay rebuilds it from the log. Returns
    /// what was cleared, if anything.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<(Index, Option<ClearedLayout>)> {
        let mut cleared = None;
        // sled's files (layouts 1 and 2): fjall must never try to read them.
        if dir.join("conf").is_file() && dir.join("db").is_file() {
            std::fs::remove_dir_all(dir)?;
            cleared = Some("1 or 2 (a sled database)".to_owned());
        }
        let db = open_database(dir, cache_bytes)?;
        let tree =
            db.keyspace("index", || fjall::KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_LIMIT_BYTES))?;
        let found = tree.get(FORMAT_KEY)?.map(|v| v.as_ref().try_into().map(u32::from_be_bytes).unwrap_or(0));
        if found != Some(FORMAT_VERSION) && !tree.is_empty()? {
            // Derived data: rebuilding it is always safe. The version key goes first, so
            // a crash during the clear leaves a tree that is cleared again next time.
            tree.remove(FORMAT_KEY)?;
            db.persist(fjall::PersistMode::SyncAll)?;
            tree.clear()?;
            db.persist(fjall::PersistMode::SyncAll)?;
            cleared = Some(found.map_or("1 (unversioned)".to_owned(), |v| v.to_string()));
        }
        if found != Some(FORMAT_VERSION) {
            tree.insert(FORMAT_KEY, FORMAT_VERSION.to_be_bytes())?;
            db.persist(fjall::PersistMode::SyncAll)?;
        }
        Ok((Index { db, tree }, cleared))
    }

    pub fn format_version(&self) -> Result<Option<u32>> {
        Ok(self.tree.get(FORMAT_KEY)?.and_then(|v| v.as_ref().try_into().ok().map(u32::from_be_bytes)))
    }

    /// When compaction first saw dead payload in `segment_id`, if it did.
    pub fn dead_since_ms(&self, segment_id: u64) -> Result<Option<i64>> {
        Ok(self
            .tree
            .get(dead_since_key(segment_id))?
            .map(|v| i64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]))))
    }

    pub fn set_dead_since_ms(&self, segment_id: u64, ms: Option<i64>) -> Result<()> {
        match ms {
            Some(ms) => self.tree.insert(dead_since_key(segment_id), ms.to_be_bytes())?,
            None => self.tree.remove(dead_since_key(segment_id))?,
        };
        Ok(())
    }

    pub fn applied_position(&self) -> Result<Option<AppliedPosition>> {
        Ok(self.tree.get(APPLIED_KEY)?.and_then(|v| AppliedPosition::decode(&v)))
    }

    pub fn bucket(&self, bucket: &str) -> Result<Option<BucketEntry>> {
        self.tree.get(bucket_key(bucket))?.map(|v| from_json(&v)).transpose()
    }

    /// The users made at run time, by name.
    pub fn users(&self) -> Result<Vec<(String, UserEntry)>> {
        self.named_entries(USER)
    }

    /// The access keys made at run time, by access key.
    pub fn access_keys(&self) -> Result<Vec<(String, AccessKeyEntry)>> {
        self.named_entries(ACCESS_KEY)
    }

    fn named_entries<T: for<'de> Deserialize<'de>>(&self, tag: u8) -> Result<Vec<(String, T)>> {
        let mut out = Vec::new();
        for item in self.tree.prefix([tag]) {
            let (k, v) = item.into_inner()?;
            let name = match IndexKey::decode(&k) {
                Some(IndexKey::User { name }) if tag == USER => name,
                Some(IndexKey::AccessKey { access_key }) if tag == ACCESS_KEY => access_key,
                _ => return Err(crate::Error::Corrupt("undecodable user or key entry in the index".into())),
            };
            out.push((String::from_utf8_lossy(&name).into_owned(), from_json(&v)?));
        }
        Ok(out)
    }

    pub fn buckets(&self) -> Result<Vec<(String, BucketEntry)>> {
        let mut out = Vec::new();
        for item in self.tree.prefix([BUCKET]) {
            let (k, v) = item.into_inner()?;
            let Some(IndexKey::Bucket { bucket }) = IndexKey::decode(&k) else {
                return Err(crate::Error::Corrupt("undecodable bucket key in the index".into()));
            };
            out.push((String::from_utf8_lossy(&bucket).into_owned(), from_json(&v)?));
        }
        Ok(out)
    }

    /// The current object under a key: its latest version, unless that is a delete marker.
    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectEntry>> {
        Ok(self.latest(bucket, key)?.filter(|entry| !entry.delete_marker))
    }

    /// The latest version of a key, a delete marker included.
    pub fn latest(&self, bucket: &str, key: &str) -> Result<Option<ObjectEntry>> {
        self.tree.get(object_key(bucket, key))?.map(|v| from_json(&v)).transpose()
    }

    /// One version of a key, a delete marker included.
    pub fn version(&self, bucket: &str, key: &str, version: VersionId) -> Result<Option<ObjectEntry>> {
        if let Some(latest) = self.latest(bucket, key)?
            && latest.version_id() == version
        {
            return Ok(Some(latest));
        }
        match version {
            VersionId::Lsn(lsn) => self.tree.get(version_key(bucket, key, lsn))?.map(|v| from_json(&v)).transpose(),
            VersionId::Null => {
                let Some(lsn) = self.tree.get(null_version_key(bucket, key))?.and_then(|v| lsn_of(&v)) else {
                    return Ok(None);
                };
                self.tree.get(version_key(bucket, key, lsn))?.map(|v| from_json(&v)).transpose()
            }
        }
    }

    /// The newest version of a key older than `lsn` that the index still holds (a delete
    /// marker included): the key's latest version when `lsn` was written, if that one
    /// was not deleted since. One seek, however many versions the key has.
    pub fn version_before(&self, bucket: &str, key: &str, lsn: u64) -> Result<Option<ObjectEntry>> {
        if let Some(latest) = self.latest(bucket, key)?
            && latest.lsn < lsn
        {
            return Ok(Some(latest));
        }
        let Some(below) = lsn.checked_sub(1) else { return Ok(None) };
        let end = prefix_successor(&key_versions_prefix(bucket, key)).expect("a key's version prefix ends in END");
        // Version keys sort newest first: the first at or after `below`'s is the newest
        // version older than `lsn`.
        match self.tree.range(version_key(bucket, key, below)..end).next() {
            Some(item) => Ok(Some(from_json(&item.into_inner()?.1)?)),
            None => Ok(None),
        }
    }

    /// Noncurrent versions of `bucket` from key `from` on (all of that key's), in key
    /// order, newest first within a key.
    pub fn noncurrent_versions_from(
        &self,
        bucket: &str,
        from: &[u8],
    ) -> impl Iterator<Item = Result<(String, ObjectEntry)>> + use<> {
        let prefix = version_prefix_bytes(bucket.as_bytes());
        let mut start = prefix.clone();
        push_component(&mut start, from);
        start.truncate(start.len() - COMPONENT_END.len());
        let end = prefix_successor(&prefix).expect("version prefix ends in 0x01");
        self.tree.range(start..end).map(move |item| {
            let (k, v) = item.into_inner()?;
            let Some(IndexKey::Version { key, .. }) = IndexKey::decode(&k) else {
                return Err(crate::Error::Corrupt("undecodable version key in the index".into()));
            };
            let key = String::from_utf8(key).map_err(|_| crate::Error::Corrupt("object key is not UTF-8".into()))?;
            Ok((key, from_json(&v)?))
        })
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
        let end = prefix_successor(&prefix).expect("object prefix ends in 0x01");
        let prefix_len = prefix.len();
        self.tree.range(start..end).map(move |item| {
            let (k, v) = item.into_inner()?;
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
        for item in self.tree.prefix(upload_prefix(bucket)) {
            out.push(from_json(&item.value()?)?);
        }
        Ok(out)
    }

    /// The parts of an upload, ordered by part number.
    pub fn parts(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Vec<PartEntry>> {
        let mut out = Vec::new();
        for item in self.tree.prefix(part_prefix(bucket, key, upload_id)) {
            out.push(from_json(&item.value()?)?);
        }
        Ok(out)
    }

    /// Every data-bearing record: (lsn, location).
    pub fn chunk_locations(&self) -> impl Iterator<Item = Result<(u64, RecordLocation)>> + use<> {
        self.tree.prefix([CHUNK]).map(|item| {
            let (k, v) = item.into_inner()?;
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

    /// A read view for [`apply`]: `top` (the changes being built) over `lower` (changes
    /// not yet committed) over the committed tree.
    pub(crate) fn view<'a>(&'a self, lower: &'a Overlay, top: &'a mut Overlay) -> View<'a> {
        View { tree: &self.tree, lower, top, tree_reads: std::cell::Cell::new(0) }
    }

    /// Commits `changes` and, if given, the new applied position, atomically: after a
    /// crash the tree holds either all of it or none of it.
    pub(crate) fn commit(&self, changes: Overlay, applied: Option<AppliedPosition>) -> Result<()> {
        // Handed to the OS, not fsynced: the log is the truth, and a crash keeps a prefix
        // of whole batches (fjall drops a batch the journal holds only part of).
        let mut batch = self.db.batch().durability(Some(fjall::PersistMode::Buffer));
        for (k, v) in changes.writes {
            match v {
                Some(v) => batch.insert(&self.tree, k, v),
                None => batch.remove(&self.tree, k),
            }
        }
        if let Some(applied) = applied {
            batch.insert(&self.tree, APPLIED_KEY, applied.encode());
        }
        batch.commit()?;
        Ok(())
    }

    /// Records where compaction moved payload records (`moved`) and forgets the ones it
    /// dropped, in one atomic batch.
    pub(crate) fn relocate_chunks(&self, moved: &[(u64, RecordLocation)], dropped: &[u64]) -> Result<()> {
        let mut changes = Overlay::default();
        for (lsn, location) in moved {
            changes.writes.insert(chunk_key(*lsn).to_vec(), Some(location.encode().to_vec()));
        }
        for lsn in dropped {
            changes.writes.insert(chunk_key(*lsn).to_vec(), None);
        }
        self.commit(changes, None)
    }

    /// Makes everything committed so far durable (the log stays the truth; this is for
    /// steps that must not be redone from it, such as deleting compacted segments).
    pub(crate) fn flush(&self) -> Result<()> {
        self.db.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }
}

/// Opens fjall. Holding our own LOCK means no other process uses this directory, so a
/// fjall lock conflict can only be an instance of this process that is still shutting
/// down (its worker threads let go shortly after the engine is dropped).
fn open_database(dir: &Path, cache_bytes: u64) -> Result<fjall::Database> {
    const RETRY_FOR_MS: u64 = 5_000;
    const RETRY_EVERY_MS: u64 = 10;
    let mut waited_ms = 0;
    loop {
        let opened = fjall::Database::builder(dir)
            .cache_size(cache_bytes)
            .max_journaling_size(JOURNAL_LIMIT_BYTES)
            .worker_threads(1)
            .open();
        match opened {
            Err(fjall::Error::Locked) if waited_ms < RETRY_FOR_MS => {
                std::thread::sleep(std::time::Duration::from_millis(RETRY_EVERY_MS));
                waited_ms += RETRY_EVERY_MS;
            }
            other => return Ok(other?),
        }
    }
}

/// Uncommitted index changes, layered over the committed tree. Reads see the layers
/// first. Committed as one atomic batch ([`Index::commit`]).
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
}

/// A read view: an overlay (the batch being built) over a lower overlay (changes not
/// yet committed) over the committed tree.
pub struct View<'a> {
    tree: &'a fjall::Keyspace,
    lower: &'a Overlay,
    top: &'a mut Overlay,
    /// Committed entries read (a bound the tests check: a write reads a few, never a
    /// walk over everything under a key).
    tree_reads: std::cell::Cell<u64>,
}

impl View<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.top.writes.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.lower.writes.get(key) {
            return Ok(v.clone());
        }
        self.tree_reads.set(self.tree_reads.get() + 1);
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
        for item in self.tree.prefix(prefix) {
            self.tree_reads.set(self.tree_reads.get() + 1);
            keys.insert(item.key()?.to_vec(), true);
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

    /// The smallest live key starting with `prefix`, as seen through the layers. Reads
    /// the tree only up to its first key no layer removed, not every key.
    fn first_key_with_prefix(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>> {
        let state = |k: &[u8]| self.top.writes.get(k).or_else(|| self.lower.writes.get(k)).map(Option::is_some);
        let mut from_tree = None;
        for item in self.tree.prefix(prefix) {
            self.tree_reads.set(self.tree_reads.get() + 1);
            let k = item.key()?;
            if state(&k) != Some(false) {
                from_tree = Some(k.to_vec());
                break;
            }
        }
        let upper = prefix_successor(prefix);
        let range = (Bound::Included(prefix.to_vec()), upper.map(Bound::Excluded).unwrap_or(Bound::Unbounded));
        let in_layers = self.lower.writes.range(range.clone()).chain(self.top.writes.range(range)).map(|(k, _)| k);
        let from_layers = in_layers.filter(|k| state(k) == Some(true)).min().cloned();
        Ok(match (from_tree, from_layers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn has_prefix(&self, prefix: &[u8]) -> Result<bool> {
        // Fast path: a committed key that no layer removed.
        for item in self.tree.prefix(prefix) {
            let k = item.key()?;
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
) -> Result<Result<Applied, Rejection>> {
    if let Err(rejection) = decide(view, entry)? {
        return Ok(Err(rejection));
    }
    if payload_len > 0 {
        view.insert(chunk_key(lsn).to_vec(), own_location.encode().to_vec());
    }
    let own_chunks = |chunks: &[ChunkPiece], inline: bool| {
        if inline { vec![ChunkPiece { lsn, len: payload_len, offset: 0 }] } else { chunks.to_vec() }
    };
    match entry {
        LogEntry::Chunk => {}
        LogEntry::Object(object) => {
            return Ok(Ok(put_object(view, object, lsn, own_chunks(&object.chunks, object.inline))?));
        }
        LogEntry::Tombstone { bucket, key, version_id: None, deleted_ms, conditions, .. } => {
            if conditions.is_some() && view.get(&object_key(bucket, key))?.is_none() {
                return Ok(Ok(Applied::default())); // a conditional delete of nothing deletes nothing
            }
            return Ok(Ok(delete_latest(view, bucket, key, lsn, deleted_ms.unwrap_or(0))?));
        }
        LogEntry::Tombstone { bucket, key, version_id: Some(version), .. } => {
            return Ok(Ok(delete_version(view, bucket, key, version)?));
        }
        LogEntry::BucketCreate {
            bucket,
            created_ms,
            object_lock,
            owner,
            public_access_block,
            object_ownership,
            acl,
        } => {
            let entry = BucketEntry {
                created_ms: *created_ms,
                lsn,
                // Object lock needs versioning, for good.
                versioning: object_lock.then_some(VersioningStatus::Enabled),
                tags: BTreeMap::new(),
                tags_lsn: None,
                object_lock: *object_lock,
                default_retention: None,
                lock_lsn: None,
                owner: owner.clone(),
                policy: None,
                policy_lsn: None,
                public_access_block: *public_access_block,
                public_access_block_lsn: None,
                object_ownership: *object_ownership,
                ownership_lsn: None,
                acl: acl.clone(),
                acl_lsn: None,
                cors: None,
                cors_lsn: None,
                encryption: None,
                encryption_lsn: None,
                lifecycle: None,
                lifecycle_lsn: None,
            };
            view.insert(bucket_key(bucket), to_json(&entry));
        }
        LogEntry::BucketTagging { bucket, tags } => {
            let k = bucket_key(bucket);
            let mut entry = view.json::<BucketEntry>(&k)?.expect("decide checked that the bucket exists");
            entry.tags = tags.clone();
            entry.tags_lsn = Some(lsn);
            view.insert(k, to_json(&entry));
        }
        LogEntry::ObjectTagging { bucket, key, version_id, tags } => {
            let (k, mut entry) = tagged_version(view, bucket, key, version_id.as_deref())?
                .expect("decide checked that the version exists");
            entry.meta.tags = tags.clone();
            entry.tags_lsn = Some(lsn);
            view.insert(k, to_json(&entry));
        }
        LogEntry::BucketObjectLock { bucket, default_retention } => {
            let k = bucket_key(bucket);
            let mut entry = view.json::<BucketEntry>(&k)?.expect("decide checked that the bucket exists");
            entry.object_lock = true;
            entry.default_retention = *default_retention;
            entry.lock_lsn = Some(lsn);
            view.insert(k, to_json(&entry));
        }
        LogEntry::ObjectRetention { bucket, key, version_id, retention, .. } => {
            let (k, mut entry) = tagged_version(view, bucket, key, version_id.as_deref())?
                .expect("decide checked that the version exists");
            entry.meta.retention = *retention;
            entry.retention_lsn = Some(lsn);
            view.insert(k, to_json(&entry));
        }
        LogEntry::ObjectLegalHold { bucket, key, version_id, on } => {
            let (k, mut entry) = tagged_version(view, bucket, key, version_id.as_deref())?
                .expect("decide checked that the version exists");
            entry.meta.legal_hold = *on;
            entry.legal_hold_lsn = Some(lsn);
            view.insert(k, to_json(&entry));
        }
        LogEntry::BucketAcl { bucket, grants } => {
            let k = bucket_key(bucket);
            let mut entry = view.json::<BucketEntry>(&k)?.expect("decide checked that the bucket exists");
            entry.acl = Some(grants.clone());
            entry.acl_lsn = Some(lsn);
            view.insert(k, to_json(&entry));
        }
        LogEntry::BucketOwnershipControls { bucket, ownership } => {
            let k = bucket_key(bucket);
            let mut entry = view.json::<BucketEntry>(&k)?.expect("decide checked that the bucket exists");
            entry.object_ownership = *ownership;
            entry.ownership_lsn = Some(lsn);
            view.insert(k, to_json(&entry));
        }
        LogEntry::ObjectAcl { bucket, key, version_id, grants } => {
            let (k, mut entry) = tagged_version(view, bucket, key, version_id.as_deref())?
                .expect("decide checked that the version exists");
            entry.meta.acl = Some(grants.clone());
            entry.acl_lsn = Some(lsn);
            view.insert(k, to_json(&entry));
        }
        LogEntry::BucketPublicAccessBlock { bucket, config } => {
            let k = bucket_key(bucket);
            let mut entry = view.json::<BucketEntry>(&k)?.expect("decide checked that the bucket exists");
            entry.public_access_block = *config;
            entry.public_access_block_lsn = Some(lsn);
            view.insert(k, to_json(&entry));
        }
        LogEntry::BucketCors { bucket, rules } => {
            let k = bucket_key(bucket);
            let mut entry = view.json::<BucketEntry>(&k)?.expect("decide checked that the bucket exists");
            entry.cors = rules.clone();
            entry.cors_lsn = rules.as_ref().map(|_| lsn);
            view.insert(k, to_json(&entry));
        }
        LogEntry::BucketLifecycle { bucket, rules } => {
            let k = bucket_key(bucket);
            let mut entry = view.json::<BucketEntry>(&k)?.expect("decide checked that the bucket exists");
            entry.lifecycle = rules.clone();
            entry.lifecycle_lsn = rules.as_ref().map(|_| lsn);
            view.insert(k, to_json(&entry));
        }
        LogEntry::BucketEncryption { bucket, config } => {
            let k = bucket_key(bucket);
            let mut entry = view.json::<BucketEntry>(&k)?.expect("decide checked that the bucket exists");
            entry.encryption = config.clone();
            entry.encryption_lsn = config.as_ref().map(|_| lsn);
            view.insert(k, to_json(&entry));
        }
        LogEntry::BucketPolicy { bucket, policy } => {
            let k = bucket_key(bucket);
            let mut entry = view.json::<BucketEntry>(&k)?.expect("decide checked that the bucket exists");
            entry.policy = policy.clone();
            entry.policy_lsn = policy.as_ref().map(|_| lsn);
            view.insert(k, to_json(&entry));
        }
        LogEntry::BucketVersioning { bucket, status } => {
            let k = bucket_key(bucket);
            let mut entry = view.json::<BucketEntry>(&k)?.expect("decide checked that the bucket exists");
            entry.versioning = Some(*status);
            view.insert(k, to_json(&entry));
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
            let k = part_key(&part.bucket, &part.key, &part.upload_id, part.part_number);
            view.insert(k, to_json(&PartEntry { lsn, part }));
        }
        LogEntry::UploadComplete { upload_id, object } => {
            // The index names the upload an object came from (records written before
            // the field existed lack it): compaction keeps that upload's create record
            // while the object lives, or replay would refuse the completion.
            let mut object = object.clone();
            object.meta.upload_id.get_or_insert_with(|| upload_id.clone());
            let applied = put_object(view, &object, lsn, object.chunks.clone())?;
            remove_upload(view, &object.bucket, &object.key, upload_id)?;
            return Ok(Ok(applied));
        }
        LogEntry::UploadAbort { bucket, key, upload_id } => remove_upload(view, bucket, key, upload_id)?,
        LogEntry::Replaces { .. } => {}
        LogEntry::User { name, change } => apply_user(view, name, change, lsn)?,
        LogEntry::AccessKey { access_key, change } => apply_access_key(view, access_key, change, lsn)?,
    }
    Ok(Ok(Applied::default()))
}

fn user_count(view: &View<'_>) -> Result<u64> {
    Ok(view.get(USER_COUNT_KEY)?.and_then(|v| Some(u64::from_be_bytes(v.as_slice().try_into().ok()?))).unwrap_or(0))
}

fn apply_user(view: &mut View<'_>, name: &str, change: &UserChange, lsn: u64) -> Result<()> {
    let k = user_key(name);
    let count = user_count(view)?;
    match change {
        UserChange::Create { .. } => view.insert(USER_COUNT_KEY.to_vec(), (count + 1).to_be_bytes().to_vec()),
        UserChange::Delete => view.insert(USER_COUNT_KEY.to_vec(), count.saturating_sub(1).to_be_bytes().to_vec()),
        UserChange::Disabled(_) => {}
    }
    match change {
        UserChange::Create { admin, created_ms } => {
            let entry = UserEntry {
                lsn,
                admin: *admin,
                created_ms: *created_ms,
                disabled: false,
                disabled_lsn: None,
                access_keys: BTreeSet::new(),
            };
            view.insert(k, to_json(&entry));
        }
        UserChange::Disabled(disabled) => {
            let mut entry = view.json::<UserEntry>(&k)?.expect("decide checked that the user exists");
            entry.disabled = *disabled;
            entry.disabled_lsn = Some(lsn);
            view.insert(k, to_json(&entry));
        }
        UserChange::Delete => view.remove(k),
    }
    Ok(())
}

fn apply_access_key(view: &mut View<'_>, access_key: &str, change: &KeyChange, lsn: u64) -> Result<()> {
    let k = access_key_key(access_key);
    match change {
        KeyChange::Create { user, sealed_secret, created_ms } => {
            let entry = AccessKeyEntry {
                lsn,
                user: user.clone(),
                sealed_secret: sealed_secret.clone(),
                created_ms: *created_ms,
                disabled: false,
                disabled_lsn: None,
            };
            view.insert(k, to_json(&entry));
            let mut owner = view.json::<UserEntry>(&user_key(user))?.expect("decide checked that the user exists");
            owner.access_keys.insert(access_key.to_owned());
            view.insert(user_key(user), to_json(&owner));
        }
        KeyChange::Disabled(disabled) => {
            let mut entry = view.json::<AccessKeyEntry>(&k)?.expect("decide checked that the key exists");
            entry.disabled = *disabled;
            entry.disabled_lsn = Some(lsn);
            view.insert(k, to_json(&entry));
        }
        KeyChange::Delete => {
            let entry = view.json::<AccessKeyEntry>(&k)?.expect("decide checked that the key exists");
            let mut owner = view.json::<UserEntry>(&user_key(&entry.user))?.expect("a key's user outlives it");
            owner.access_keys.remove(access_key);
            view.insert(user_key(&entry.user), to_json(&owner));
            view.remove(k);
        }
    }
    Ok(())
}

/// Whether a user or key change may take effect.
fn decide_identity(view: &View<'_>, entry: &LogEntry) -> Result<Result<(), Rejection>> {
    let user = |name: &str| view.json::<UserEntry>(&user_key(name));
    Ok(match entry {
        LogEntry::User { name, change: UserChange::Create { .. } } if user(name)?.is_some() => {
            Err(Rejection::EntityAlreadyExists)
        }
        LogEntry::User { change: UserChange::Create { .. }, .. } if user_count(view)? >= MAX_USERS => {
            Err(Rejection::LimitExceeded)
        }
        LogEntry::User { change: UserChange::Create { .. }, .. } => Ok(()),
        LogEntry::User { name, change } => match user(name)? {
            None => Err(Rejection::NoSuchEntity),
            Some(found) if *change == UserChange::Delete && !found.access_keys.is_empty() => {
                Err(Rejection::DeleteConflict)
            }
            Some(_) if *change == UserChange::Delete && owns_a_bucket(view, name)? => Err(Rejection::DeleteConflict),
            Some(_) => Ok(()),
        },
        LogEntry::AccessKey { access_key, change } => {
            let existing = view.get(&access_key_key(access_key))?;
            match change {
                KeyChange::Create { .. } if existing.is_some() => Err(Rejection::EntityAlreadyExists),
                KeyChange::Create { user: name, .. } => match user(name)? {
                    None => Err(Rejection::NoSuchEntity),
                    Some(found) if found.access_keys.len() >= MAX_ACCESS_KEYS_PER_USER => Err(Rejection::LimitExceeded),
                    Some(_) => Ok(()),
                },
                _ if existing.is_none() => Err(Rejection::NoSuchEntity),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    })
}

fn owns_a_bucket(view: &View<'_>, user: &str) -> Result<bool> {
    for k in view.keys_with_prefix(&[BUCKET])? {
        if view.json::<BucketEntry>(&k)?.is_some_and(|b| b.owner.as_deref() == Some(user)) {
            return Ok(true);
        }
    }
    Ok(false)
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
        // A delete of one version for good: object lock, then the conditions.
        LogEntry::Tombstone {
            bucket,
            key,
            version_id: Some(version),
            deleted_ms,
            bypass_governance,
            conditions,
            ..
        } => {
            let target = match VersionId::parse(version) {
                Some(version) => find_version(view, bucket, key, version)?,
                None => None,
            };
            match target {
                Some(target) if locked(&target.meta, deleted_ms.unwrap_or(0), *bypass_governance) => {
                    Err(Rejection::ObjectLocked)
                }
                Some(target) if conditions.as_ref().is_some_and(|c| !c.hold_for(&target.meta)) => {
                    Err(Rejection::PreconditionFailed)
                }
                _ => Ok(()),
            }
        }
        // A delete of the latest version (it adds a delete marker, or removes the key).
        LogEntry::Tombstone { bucket, key, version_id: None, conditions: Some(conditions), .. } => {
            match view.json::<ObjectEntry>(&object_key(bucket, key))? {
                Some(latest) if !conditions.hold_for(&latest.meta) => Err(Rejection::PreconditionFailed),
                _ => Ok(()),
            }
        }
        LogEntry::Chunk | LogEntry::Tombstone { .. } | LogEntry::Replaces { .. } => Ok(()),
        LogEntry::User { .. } | LogEntry::AccessKey { .. } => decide_identity(view, entry)?,
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
        LogEntry::BucketDelete { bucket } if view.has_prefix(&version_prefix_bytes(bucket.as_bytes()))? => {
            Err(Rejection::BucketNotEmpty)
        }
        LogEntry::BucketVersioning { bucket, .. }
        | LogEntry::BucketTagging { bucket, .. }
        | LogEntry::BucketPolicy { bucket, .. }
        | LogEntry::BucketCors { bucket, .. }
        | LogEntry::BucketEncryption { bucket, .. }
        | LogEntry::BucketLifecycle { bucket, .. }
        | LogEntry::BucketPublicAccessBlock { bucket, .. }
        | LogEntry::BucketAcl { bucket, .. }
        | LogEntry::BucketOwnershipControls { bucket, .. }
            if !bucket_exists(bucket)? =>
        {
            Err(Rejection::NoSuchBucket)
        }
        LogEntry::BucketTagging { .. }
        | LogEntry::BucketPolicy { .. }
        | LogEntry::BucketCors { .. }
        | LogEntry::BucketEncryption { .. }
        | LogEntry::BucketLifecycle { .. }
        | LogEntry::BucketPublicAccessBlock { .. }
        | LogEntry::BucketAcl { .. }
        | LogEntry::BucketOwnershipControls { .. } => Ok(()),
        // Object lock can be turned on later for a bucket whose versioning is enabled.
        LogEntry::BucketObjectLock { bucket, .. } => match view.json::<BucketEntry>(&bucket_key(bucket))? {
            None => Err(Rejection::NoSuchBucket),
            Some(entry) if !entry.object_lock && entry.versioning != Some(VersioningStatus::Enabled) => {
                Err(Rejection::InvalidBucketState)
            }
            Some(_) => Ok(()),
        },
        LogEntry::ObjectRetention { bucket, key, version_id, retention, bypass_governance, at_ms } => {
            if !lock_enabled(view, bucket)? {
                return Ok(Err(Rejection::InvalidBucketState));
            }
            match tagged_version(view, bucket, key, version_id.as_deref())? {
                None => Err(Rejection::NoSuchKey),
                Some((_, target)) => match target.meta.retention.filter(|r| r.active_at(*at_ms)) {
                    Some(current) if !may_replace(current, *retention, *bypass_governance) => {
                        Err(Rejection::ObjectLocked)
                    }
                    _ => Ok(()),
                },
            }
        }
        LogEntry::ObjectLegalHold { bucket, key, version_id, .. } => {
            if !lock_enabled(view, bucket)? {
                return Ok(Err(Rejection::InvalidBucketState));
            }
            match tagged_version(view, bucket, key, version_id.as_deref())? {
                Some(_) => Ok(()),
                None => Err(Rejection::NoSuchKey),
            }
        }
        LogEntry::ObjectTagging { bucket, key, version_id, .. }
        | LogEntry::ObjectAcl { bucket, key, version_id, .. } => {
            match tagged_version(view, bucket, key, version_id.as_deref())? {
                Some(_) => Ok(()),
                None => Err(Rejection::NoSuchKey),
            }
        }
        LogEntry::BucketVersioning { bucket, status: VersioningStatus::Suspended } if lock_enabled(view, bucket)? => {
            Err(Rejection::InvalidBucketState)
        }
        LogEntry::BucketVersioning { .. } => Ok(()),
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
    let Some(bucket) = view.json::<BucketEntry>(&bucket_key(&object.bucket))? else {
        return Ok(Err(Rejection::NoSuchBucket));
    };
    if (object.meta.retention.is_some() || object.meta.legal_hold) && !bucket.object_lock {
        return Ok(Err(Rejection::InvalidBucketState));
    }
    if !object.if_none_match && object.if_none_match_etag.is_none() && object.if_match.is_none() {
        return Ok(Ok(()));
    }
    let existing = view.json::<ObjectEntry>(&object_key(&object.bucket, &object.key))?.filter(|e| !e.delete_marker);
    if object.if_none_match && existing.is_some() {
        return Ok(Err(Rejection::PreconditionFailed));
    }
    if let (Some(unwanted), Some(e)) = (&object.if_none_match_etag, &existing)
        && &e.meta.etag == unwanted
    {
        return Ok(Err(Rejection::PreconditionFailed));
    }
    match (&object.if_match, &existing) {
        // If-Match of a key without a current object: S3 answers 404 NoSuchKey.
        (Some(_), None) => return Ok(Err(Rejection::NoSuchKey)),
        (Some(want), Some(e)) if want != "*" && &e.meta.etag != want => {
            return Ok(Err(Rejection::PreconditionFailed));
        }
        _ => {}
    }
    Ok(Ok(()))
}

fn put_object(view: &mut View<'_>, object: &ObjectRecord, lsn: u64, chunks: Vec<ChunkPiece>) -> Result<Applied> {
    let k = object_key(&object.bucket, &object.key);
    let existing = view.json::<ObjectEntry>(&k)?;
    if existing.as_ref().is_some_and(|e| e.lsn >= lsn) {
        return Ok(Applied::default()); // already holds a newer version (idempotent replay)
    }
    let total: u64 = chunks.iter().map(|c| c.len).sum();
    assert_eq!(
        total,
        object.meta.stored_size_bytes(),
        "object {}/{}: chunks do not add up to its stored size",
        object.bucket,
        object.key
    );
    let versioning = bucket_versioning(view, &object.bucket)?;
    retire_latest(view, &object.bucket, &object.key, existing, versioning)?;
    let versioned = versioning == Some(VersioningStatus::Enabled);
    let entry = ObjectEntry::new(lsn, object.meta.clone(), chunks, versioned, false);
    let applied = Applied { version: versioning.map(|_| entry.version_id()), delete_marker: false };
    view.insert(k, to_json(&entry));
    Ok(applied)
}

/// A delete without a version id: removes the key in a bucket never versioned, else
/// makes a delete marker its latest version.
fn delete_latest(view: &mut View<'_>, bucket: &str, key: &str, lsn: u64, deleted_ms: i64) -> Result<Applied> {
    let k = object_key(bucket, key);
    let existing = view.json::<ObjectEntry>(&k)?;
    if existing.as_ref().is_some_and(|e| e.lsn >= lsn) {
        return Ok(Applied::default()); // idempotent replay
    }
    let Some(versioning) = bucket_versioning(view, bucket)? else {
        if existing.is_some() {
            view.remove(k);
        }
        return Ok(Applied::default());
    };
    retire_latest(view, bucket, key, existing, Some(versioning))?;
    let meta = ObjectMeta { last_modified_ms: deleted_ms, ..ObjectMeta::default() };
    let marker = ObjectEntry::new(lsn, meta, Vec::new(), versioning == VersioningStatus::Enabled, true);
    let applied = Applied { version: Some(marker.version_id()), delete_marker: true };
    view.insert(k, to_json(&marker));
    Ok(applied)
}

/// Removes one version for good. Removing the latest promotes the newest noncurrent
/// version. A version that does not exist (or an id never issued) changes nothing.
fn delete_version(view: &mut View<'_>, bucket: &str, key: &str, version: &str) -> Result<Applied> {
    let Some(version) = VersionId::parse(version) else { return Ok(Applied::default()) };
    let k = object_key(bucket, key);
    if let Some(latest) = view.json::<ObjectEntry>(&k)?
        && latest.version_id() == version
    {
        view.remove(k.clone());
        if let Some(newest) = view.first_key_with_prefix(&key_versions_prefix(bucket, key))? {
            let promoted = view.json::<ObjectEntry>(&newest)?.expect("a listed key has a value");
            remove_noncurrent(view, bucket, key, newest, &promoted);
            view.insert(k, to_json(&promoted));
        }
        return Ok(Applied { version: Some(version), delete_marker: latest.delete_marker });
    }
    let found = match version {
        VersionId::Lsn(lsn) => {
            let vk = version_key(bucket, key, lsn);
            view.json::<ObjectEntry>(&vk)?.map(|entry| (vk, entry))
        }
        VersionId::Null => noncurrent_null(view, bucket, key)?,
    };
    let Some((vk, entry)) = found else { return Ok(Applied::default()) };
    remove_noncurrent(view, bucket, key, vk, &entry);
    Ok(Applied { version: Some(version), delete_marker: entry.delete_marker })
}

/// The latest version `existing` stops being the latest: in a bucket never versioned it
/// is simply replaced; with versioning enabled it becomes noncurrent; when suspended the
/// null version (wherever it is) is replaced and any other becomes noncurrent.
fn retire_latest(
    view: &mut View<'_>,
    bucket: &str,
    key: &str,
    existing: Option<ObjectEntry>,
    versioning: Option<VersioningStatus>,
) -> Result<()> {
    let Some(versioning) = versioning else { return Ok(()) };
    if versioning == VersioningStatus::Suspended
        && let Some((vk, null)) = noncurrent_null(view, bucket, key)?
    {
        remove_noncurrent(view, bucket, key, vk, &null);
    }
    if let Some(existing) = existing
        && (existing.versioned || versioning == VersioningStatus::Enabled)
    {
        if !existing.versioned {
            view.insert(null_version_key(bucket, key), existing.lsn.to_be_bytes().to_vec());
        }
        view.insert(version_key(bucket, key, existing.lsn), to_json(&existing));
    }
    Ok(())
}

/// Removes a noncurrent version (and, for the null version, the `N` entry naming it).
fn remove_noncurrent(view: &mut View<'_>, bucket: &str, key: &str, vk: Vec<u8>, entry: &ObjectEntry) {
    if !entry.versioned {
        view.remove(null_version_key(bucket, key));
    }
    view.remove(vk);
}

/// Whether object lock keeps a version with this metadata at `at_ms`: a legal hold
/// always; a retention in force unless it is GOVERNANCE and the request bypasses it.
pub fn locked(meta: &ObjectMeta, at_ms: i64, bypass_governance: bool) -> bool {
    meta.legal_hold
        || meta.retention.is_some_and(|r| r.active_at(at_ms) && !(r.mode == LockMode::Governance && bypass_governance))
}

/// Whether a retention in force (`current`) may become `new`: by keeping the mode and
/// extending the date; under GOVERNANCE anything else needs the bypass (a mode change
/// included); under COMPLIANCE nothing else is possible.
fn may_replace(current: Retention, new: Option<Retention>, bypass_governance: bool) -> bool {
    let extends = new.is_some_and(|n| n.mode == current.mode && n.retain_until_ms >= current.retain_until_ms);
    extends || (current.mode == LockMode::Governance && bypass_governance)
}

fn lock_enabled(view: &View<'_>, bucket: &str) -> Result<bool> {
    Ok(view.json::<BucketEntry>(&bucket_key(bucket))?.is_some_and(|b| b.object_lock))
}

/// One version of a key as the view sees it: the latest, or a noncurrent one.
fn find_version(view: &View<'_>, bucket: &str, key: &str, version: VersionId) -> Result<Option<ObjectEntry>> {
    if let Some(latest) = view.json::<ObjectEntry>(&object_key(bucket, key))?
        && latest.version_id() == version
    {
        return Ok(Some(latest));
    }
    Ok(match version {
        VersionId::Lsn(lsn) => view.json::<ObjectEntry>(&version_key(bucket, key, lsn))?,
        VersionId::Null => noncurrent_null(view, bucket, key)?.map(|(_, entry)| entry),
    })
}

/// The version a tagging record names (the latest when none is named) and its index
/// key; `None` when it does not exist or is a delete marker (which has no tags).
fn tagged_version(
    view: &View<'_>,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<Option<(Vec<u8>, ObjectEntry)>> {
    let latest_key = object_key(bucket, key);
    let found = match version {
        None => view.json::<ObjectEntry>(&latest_key)?.map(|entry| (latest_key, entry)),
        Some(version) => {
            let Some(version) = VersionId::parse(version) else { return Ok(None) };
            match view.json::<ObjectEntry>(&latest_key)? {
                Some(latest) if latest.version_id() == version => Some((latest_key, latest)),
                _ => match version {
                    VersionId::Lsn(lsn) => {
                        let vk = version_key(bucket, key, lsn);
                        view.json::<ObjectEntry>(&vk)?.map(|entry| (vk, entry))
                    }
                    VersionId::Null => noncurrent_null(view, bucket, key)?,
                },
            }
        }
    };
    Ok(found.filter(|(_, entry)| !entry.delete_marker))
}

/// The null version among a key's noncurrent versions: one read through `N`.
fn noncurrent_null(view: &View<'_>, bucket: &str, key: &str) -> Result<Option<(Vec<u8>, ObjectEntry)>> {
    let Some(lsn) = view.get(&null_version_key(bucket, key))?.and_then(|v| lsn_of(&v)) else { return Ok(None) };
    let vk = version_key(bucket, key, lsn);
    let entry = view.json::<ObjectEntry>(&vk)?.ok_or_else(|| {
        crate::Error::Corrupt(format!("the index names a null version of {bucket}/{key} that it does not hold"))
    })?;
    Ok(Some((vk, entry)))
}

fn lsn_of(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

fn bucket_versioning(view: &View<'_>, bucket: &str) -> Result<Option<VersioningStatus>> {
    Ok(view.json::<BucketEntry>(&bucket_key(bucket))?.and_then(|b| b.versioning))
}

fn remove_upload(view: &mut View<'_>, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
    for part in view.keys_with_prefix(&part_prefix(bucket, key, upload_id))? {
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

    use proptest::prelude::*;

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        // NUL, the escape bytes and 0xFF are the interesting ones: weight them.
        proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), any::<u8>()], 0..12)
    }

    fn index_key() -> impl Strategy<Value = IndexKey> {
        prop_oneof![
            bytes().prop_map(|bucket| IndexKey::Bucket { bucket }),
            (bytes(), bytes()).prop_map(|(bucket, key)| IndexKey::Object { bucket, key }),
            (bytes(), bytes(), any::<u64>()).prop_map(|(bucket, key, lsn)| IndexKey::Version { bucket, key, lsn }),
            (bytes(), bytes()).prop_map(|(bucket, key)| IndexKey::NullVersion { bucket, key }),
            (bytes(), bytes(), bytes()).prop_map(|(bucket, key, upload_id)| IndexKey::Upload {
                bucket,
                key,
                upload_id
            }),
            (bytes(), bytes(), bytes(), any::<u32>()).prop_map(|(bucket, key, upload_id, part_number)| {
                IndexKey::Part { bucket, key, upload_id, part_number }
            }),
            any::<u64>().prop_map(|lsn| IndexKey::Chunk { lsn }),
            any::<u64>().prop_map(|segment_id| IndexKey::DeadSince { segment_id }),
        ]
    }

    fn bucket_of(key: &IndexKey) -> Option<&[u8]> {
        match key {
            IndexKey::Object { bucket, .. } | IndexKey::Upload { bucket, .. } => Some(bucket),
            _ => None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// decode(encode(x)) == x, so distinct keys have distinct encodings.
        #[test]
        fn keys_round_trip(key in index_key()) {
            let encoded = key.encode();
            prop_assert_eq!(IndexKey::decode(&encoded), Some(key.clone()), "decode of {:?}", encoded);
        }

        #[test]
        fn distinct_keys_never_collide(a in index_key(), b in index_key()) {
            prop_assert_eq!(a == b, a.encode() == b.encode(), "{:?} vs {:?}", a, b);
        }

        /// A bucket's object and upload scans see exactly that bucket's entries.
        #[test]
        fn prefix_scans_stay_in_their_bucket(key in index_key(), bucket in bytes()) {
            let encoded = key.encode();
            let in_objects = encoded.starts_with(&object_prefix_bytes(&bucket));
            let in_uploads = encoded.starts_with(&upload_prefix_bytes(&bucket));
            let mine = bucket_of(&key) == Some(bucket.as_slice());
            prop_assert_eq!(in_objects, mine && matches!(key, IndexKey::Object { .. }), "{:?} in objects of {:?}", key, bucket);
            prop_assert_eq!(in_uploads, mine && matches!(key, IndexKey::Upload { .. }), "{:?} in uploads of {:?}", key, bucket);
        }

        /// Parts are found only under their own (bucket, key, upload id).
        #[test]
        fn part_scans_stay_in_their_upload(key in index_key(), bucket in bytes(), object in bytes(), id in bytes()) {
            let in_parts = key.encode().starts_with(&part_prefix_bytes(&bucket, &object, &id));
            let mine = matches!(&key, IndexKey::Part { bucket: b, key: k, upload_id: u, .. } if *b == bucket && *k == object && *u == id);
            prop_assert_eq!(in_parts, mine, "{:?} in parts of {:?}/{:?}/{:?}", key, bucket, object, id);
        }

        /// Listing relies on key order: objects of a bucket sort as their keys do, and
        /// uploads as (key, upload id).
        #[test]
        fn order_is_kept(bucket in bytes(), a in bytes(), b in bytes(), ia in bytes(), ib in bytes()) {
            prop_assert_eq!(object_key_bytes(&bucket, &a).cmp(&object_key_bytes(&bucket, &b)), a.cmp(&b));
            prop_assert_eq!(
                upload_key_bytes(&bucket, &a, &ia).cmp(&upload_key_bytes(&bucket, &b, &ib)),
                (&a, &ia).cmp(&(&b, &ib))
            );
        }
    }

    /// Writes and deletes in a versioned bucket read a few index entries, however many
    /// versions the key has: the writer must not walk them (it did, to find the null
    /// version, on every write to a suspended bucket).
    #[test]
    fn users_made_at_run_time_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (index, _) = Index::open(dir.path(), 1 << 20).unwrap();
        let mut lsn = 0;
        let mut apply_one = |name: &str, change: UserChange| {
            lsn += 1;
            let lower = Overlay::default();
            let mut top = Overlay::default();
            let mut view = index.view(&lower, &mut top);
            let location = RecordLocation { segment_id: 1, offset: lsn * 100, record_len: 100 };
            let applied = apply(&mut view, &LogEntry::User { name: name.into(), change }, lsn, location, 0).unwrap();
            index.commit(top, None).unwrap();
            applied.map(|_| ())
        };
        let create = || UserChange::Create { admin: false, created_ms: 0 };
        for i in 0..MAX_USERS {
            apply_one(&format!("u{i}"), create()).unwrap();
        }
        assert_eq!(apply_one("one-too-many", create()), Err(Rejection::LimitExceeded));
        apply_one("u0", UserChange::Delete).unwrap();
        assert_eq!(apply_one("one-too-many", create()), Ok(()), "a deleted user's place is free again");
        assert_eq!(index.users().unwrap().len() as u64, MAX_USERS);
    }

    #[test]
    fn versioned_writes_read_a_bounded_number_of_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (index, _) = Index::open(dir.path(), 1 << 20).unwrap();
        let last_lsn = std::cell::Cell::new(0u64);
        let apply_one = |entry: LogEntry| -> u64 {
            let lsn = last_lsn.get() + 1;
            last_lsn.set(lsn);
            let lower = Overlay::default();
            let mut top = Overlay::default();
            let mut view = index.view(&lower, &mut top);
            let location = RecordLocation { segment_id: 1, offset: lsn * 100, record_len: 100 };
            apply(&mut view, &entry, lsn, location, 1).unwrap().unwrap();
            let reads = view.tree_reads.get();
            index.commit(top, None).unwrap();
            reads
        };
        let put = || {
            let meta = ObjectMeta { size_bytes: 1, etag: "e".into(), ..ObjectMeta::default() };
            let mut object = ObjectRecord::new("b", "k", meta);
            object.inline = true;
            LogEntry::Object(object)
        };
        let versioning = |status| LogEntry::BucketVersioning { bucket: "b".into(), status };
        apply_one(LogEntry::BucketCreate {
            bucket: "b".into(),
            created_ms: 0,
            object_lock: false,
            owner: None,
            public_access_block: None,
            object_ownership: None,
            acl: None,
        });
        apply_one(put()); // the null version
        apply_one(versioning(VersioningStatus::Enabled));
        for _ in 0..2_000 {
            apply_one(put());
        }
        apply_one(versioning(VersioningStatus::Suspended));
        let reads = apply_one(put());
        assert!(reads <= 16, "a write to a suspended bucket read {reads} entries of a key with 2,001 versions");
        assert!(index.version("b", "k", VersionId::Null).unwrap().is_some_and(|v| v.lsn == last_lsn.get()));
        let delete_latest = LogEntry::Tombstone {
            bucket: "b".into(),
            key: "k".into(),
            origin: None,
            version_id: Some(VersionId::Null.to_string()),
            deleted_ms: Some(0),
            conditions: None,
            bypass_governance: false,
        };
        let reads = apply_one(delete_latest);
        assert!(reads <= 16, "deleting the latest of 2,001 versions read {reads} entries");
        assert_eq!(
            index.latest("b", "k").unwrap().map(|v| v.lsn),
            Some(last_lsn.get() - 3),
            "the newest noncurrent one"
        );
    }

    #[test]
    fn positions_round_trip() {
        let loc = RecordLocation { segment_id: 7, offset: 1 << 40, record_len: 99 };
        assert_eq!(RecordLocation::decode(&loc.encode()), Some(loc));
        let pos = AppliedPosition { lsn: 5, segment_id: 3, end_offset: 1234 };
        assert_eq!(AppliedPosition::decode(&pos.encode()), Some(pos));
    }
}
