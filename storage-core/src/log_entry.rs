//! What a record says: the typed header of every record kind, and the object metadata
//! it carries. These types are the durable log format (JSON in the record header), so
//! fields are only ever added, with serde defaults.

use crate::record::RecordKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One piece of an object's body: bytes `[offset, offset + len)` of the payload of the
/// record with this LSN (a chunk, an inline object, or an inline part). The offset is
/// non-zero only when a copy took part of a record (UploadPartCopy with a range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPiece {
    pub lsn: u64,
    pub len: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The pieces that hold bytes `range` of a body made of `pieces` (no byte is copied:
/// the result points into the same records).
pub fn slice_pieces(pieces: &[ChunkPiece], range: std::ops::Range<u64>) -> Vec<ChunkPiece> {
    let mut out = Vec::new();
    let mut start = 0u64;
    for piece in pieces {
        let end = start + piece.len;
        let from = range.start.max(start);
        let to = range.end.min(end);
        if from < to {
            out.push(ChunkPiece { lsn: piece.lsn, len: to - from, offset: piece.offset + (from - start) });
        }
        start = end;
    }
    out
}

/// A checksum the client asked for (x-amz-checksum-*), verified and kept with the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChecksum {
    /// "CRC32" | "CRC32C" | "CRC64NVME" | "SHA1" | "SHA256"
    pub algorithm: String,
    /// base64 of the digest; composite multipart checksums end in "-N"
    pub value: String,
    /// "FULL_OBJECT" | "COMPOSITE"
    pub checksum_type: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub size_bytes: u64,
    /// Unquoted: hex MD5 of the body, or for multipart hex MD5 of the part MD5s + "-N".
    pub etag: String,
    pub last_modified_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// The Expires header as unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<StoredChecksum>,
    /// For a multipart object: the size of each part, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_sizes: Option<Vec<u64>>,
    /// For a multipart object with a checksum: each part's checksum value (of the
    /// object checksum's algorithm), in order, for GETs of one part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_checksums: Option<Vec<String>>,
    /// The S3 storage class the object was written with; `None` is STANDARD (and what
    /// records written before the field existed read back as).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// For an object CompleteMultipartUpload made: the upload's id. A retried Complete
    /// of that upload is answered with this object, as S3 does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// The object's tags (S3 object tagging), at most 10.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Object lock: the version cannot be deleted until then (see [`Retention`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Object lock: a legal hold keeps the version until it is lifted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub legal_hold: bool,
    /// The version's ACL grants; none: its owner's FULL_CONTROL only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<Grant>>,
    /// The user who owns the version, when not the bucket's owner (an object writer's
    /// upload to another user's bucket under ObjectWriter ownership).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Server-side encryption: how the stored body is encrypted (`None`: it is not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

impl ObjectMeta {
    /// The size of the body as stored: the plaintext size, or what its encryption adds.
    pub fn stored_size_bytes(&self) -> u64 {
        match &self.encryption {
            None => self.size_bytes,
            Some(_) => self.stream_sizes().iter().map(|&s| crate::encryption::sealed_len(s)).sum(),
        }
    }

    /// The plaintext size of each body stream: each part of a multipart object, or the
    /// whole body.
    pub fn stream_sizes(&self) -> Vec<u64> {
        self.part_sizes.clone().unwrap_or_else(|| vec![self.size_bytes])
    }
}

/// Which server-side encryption an object (or an upload, or a bucket's default) uses,
/// as S3 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SseScheme {
    /// SSE-S3: `x-amz-server-side-encryption: AES256`, keys the server holds.
    #[serde(rename = "sse-s3")]
    S3,
    /// SSE-KMS: `aws:kms`, under a named key of the server's built-in key service.
    #[serde(rename = "sse-kms")]
    Kms,
    /// SSE-C: the client's own key, sent with every request and never stored.
    #[serde(rename = "sse-c")]
    Customer,
}

/// One rule of a bucket's lifecycle configuration, as PutBucketLifecycleConfiguration
/// took it (checked by the caller). The filter keeps the form it came in (a rule-level
/// `Prefix`, or a `Filter`), so the configuration reads back as it was put.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub id: String,
    pub enabled: bool,
    /// The rule-level `Prefix` of the older form (no `Filter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<LifecycleFilter>,
    /// Expiration: days after an object's creation, or a date (unix ms, midnight UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date_ms: Option<i64>,
    /// Expiration: remove a delete marker that is a key's only version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_object_delete_marker: Option<bool>,
    /// NoncurrentVersionExpiration: days after a version became noncurrent, keeping the
    /// `newer_noncurrent_versions` newest noncurrent ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_noncurrent_versions: Option<u32>,
    /// AbortIncompleteMultipartUpload: days after an upload was initiated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_upload_days: Option<u32>,
}

/// Which objects a lifecycle rule applies to: all of these that are given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_greater_than: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_less_than: Option<i64>,
    /// The filter came as `<And>` (kept to read back as it was put).
    #[serde(default, skip_serializing_if = "is_false")]
    pub and: bool,
}

impl LifecycleRule {
    /// Whether the rule applies to an object of this key, tags and size.
    pub fn applies_to(&self, key: &str, tags: &BTreeMap<String, String>, size_bytes: u64) -> bool {
        if let Some(prefix) = &self.legacy_prefix {
            return key.starts_with(prefix.as_str());
        }
        let Some(filter) = &self.filter else { return true };
        filter.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && filter.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
            && filter.size_greater_than.is_none_or(|n| size_bytes as i64 > n)
            && filter.size_less_than.is_none_or(|n| (size_bytes as i64) < n)
    }

    /// The key prefix every object the rule applies to has.
    pub fn prefix(&self) -> &str {
        self.legacy_prefix.as_deref().or(self.filter.as_ref().and_then(|f| f.prefix.as_deref())).unwrap_or("")
    }
}

/// A bucket's default encryption: what a write that names none gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    pub scheme: SseScheme,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub bucket_key_enabled: bool,
}

/// How a version's body is encrypted at rest (see `encryption.rs` for the frames).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    pub scheme: SseScheme,
    /// The frame format (`encryption::FRAME_FORMAT`); another one is refused.
    pub format: u32,
    /// SSE-KMS: the key's id as the client named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// SSE-KMS: the encryption context (base64 JSON), reported back as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_context: Option<String>,
    /// SSE-C: base64 MD5 of the client's key, reported back and compared on reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_key_md5: Option<String>,
    /// x-amz-server-side-encryption-bucket-key-enabled, reported back as given.
    #[serde(default, skip_serializing_if = "is_false")]
    pub bucket_key_enabled: bool,
    /// The data key of each body stream (one for a PUT, one per part), each sealed
    /// under the key-encryption key. Empty in an upload's metadata: parts carry theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sealed_data_keys: Vec<String>,
}

/// An ACL permission, as S3 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    Read,
    Write,
    ReadAcp,
    WriteAcp,
    FullControl,
}

/// Who an ACL grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Grantee {
    /// A user, by canonical id.
    User { id: String },
    /// Everyone, anonymous requests included (`.../groups/global/AllUsers`).
    AllUsers,
    /// Every signed request (`.../groups/global/AuthenticatedUsers`).
    AuthenticatedUsers,
    /// S3's log delivery group (`.../groups/s3/LogDelivery`).
    LogDelivery,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

/// A bucket's Object Ownership setting, as S3 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectOwnership {
    /// ACLs are disabled: the bucket's owner owns every object.
    BucketOwnerEnforced,
    /// The bucket's owner owns objects uploaded with `bucket-owner-full-control`.
    BucketOwnerPreferred,
    /// The uploader owns what it uploads.
    ObjectWriter,
}

/// What a `User` record does to the user it names (`quarry admin user ...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserChange {
    /// A new user (refused if the name is taken); `admin`: may do everything.
    Create { admin: bool, created_ms: i64 },
    /// Disables (true) or enables (false) the user: a disabled user's keys are refused.
    Disabled(bool),
    /// Removes the user (refused while it has access keys or owns buckets).
    Delete,
}

/// What an `AccessKey` record does to the key it names (`quarry admin key ...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyChange {
    /// A new key of an existing user. The secret is sealed by the server key (the
    /// engine never sees it in the clear).
    Create {
        user: String,
        sealed_secret: String,
        created_ms: i64,
    },
    /// Disables (true) or enables (false) the key.
    Disabled(bool),
    Delete,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// An object lock retention mode, as S3 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockMode {
    /// Deletable before the date only with `x-amz-bypass-governance-retention`.
    Governance,
    /// Deletable by no one before the date; the date can be extended, never shortened.
    Compliance,
}

/// How long a version is kept: until `retain_until_ms` (unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: LockMode,
    pub retain_until_ms: i64,
}

impl Retention {
    /// Still in force at `at_ms`.
    pub fn active_at(&self, at_ms: i64) -> bool {
        self.retain_until_ms > at_ms
    }
}

/// One rule of a bucket's CORS configuration, as PutBucketCors took it (checked by the
/// caller: methods among GET PUT HEAD POST DELETE, at most one `*` per origin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

/// S3's Block Public Access settings of a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Requests that would set a public ACL are refused.
    pub block_public_acls: bool,
    /// Public ACL grants are ignored when deciding access.
    pub ignore_public_acls: bool,
    /// PutBucketPolicy of a public policy is refused.
    pub block_public_policy: bool,
    /// While the bucket's policy is public, it lets in only the owner and admins.
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub const ALL: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
}

/// A bucket's default retention: what a version written without its own gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: LockMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<u32>,
}

impl DefaultRetention {
    /// The retention of a version written at `now_ms`.
    pub fn from(&self, now_ms: i64) -> Retention {
        const DAY_MS: i64 = 24 * 60 * 60 * 1000;
        let days = i64::from(self.days.unwrap_or(0)) + 365 * i64::from(self.years.unwrap_or(0));
        Retention { mode: self.mode, retain_until_ms: now_ms.saturating_add(days.saturating_mul(DAY_MS)) }
    }
}

/// Who made a change, as the journal reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The access key id that signed the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// What is put under a key: the metadata and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub bucket: String,
    pub key: String,
    pub meta: ObjectMeta,
    /// The body, in order. For an inline object this is empty in the log (the record's
    /// own payload is the body) and filled with the record's own LSN in the index.
    pub chunks: Vec<ChunkPiece>,
    #[serde(default)]
    pub inline: bool,
    /// Conditional write: fail with PreconditionFailed if the key exists.
    #[serde(default)]
    pub if_none_match: bool,
    /// Conditional write: fail with PreconditionFailed if the current ETag is this.
    /// AWS answers 501 to an ETag here; MinIO and Ceph take it as RFC 7232 does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_none_match_etag: Option<String>,
    /// Conditional write: fail with PreconditionFailed unless the current ETag is this
    /// ("*": unless the key exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

impl ObjectRecord {
    /// An unconditional put of `meta` under `bucket/key`; the body is attached when it
    /// is committed (`Engine::put_object`).
    pub fn new(bucket: impl Into<String>, key: impl Into<String>, meta: ObjectMeta) -> ObjectRecord {
        ObjectRecord {
            bucket: bucket.into(),
            key: key.into(),
            meta,
            chunks: Vec::new(),
            inline: false,
            if_none_match: false,
            if_none_match_etag: None,
            if_match: None,
            origin: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: i64,
    /// Metadata given at CreateMultipartUpload (size and ETag are filled at completion).
    pub meta: ObjectMeta,
    /// x-amz-checksum-algorithm / x-amz-checksum-type given at creation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub part_number: u32,
    pub size_bytes: u64,
    /// Unquoted hex MD5 of the part.
    pub etag: String,
    pub last_modified_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<StoredChecksum>,
    pub chunks: Vec<ChunkPiece>,
    #[serde(default)]
    pub inline: bool,
    /// The part's data key, sealed, when its upload is encrypted (`size_bytes` is then
    /// the plaintext size and the chunks hold `encryption::sealed_len` of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_data_key: Option<String>,
}

/// What a conditional delete requires of the version it removes or hides (the latest,
/// or the one it names; a delete marker is a version). A delete whose target does not
/// exist meets them all and changes nothing: deleting what is not there succeeds, and
/// makes no delete marker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteConditions {
    /// Unquoted ETag, or "*" (any version that exists, a delete marker included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
    /// Compared at whole seconds, as HTTP dates are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

impl DeleteConditions {
    /// Whether a version with this metadata meets every condition.
    pub fn hold_for(&self, meta: &ObjectMeta) -> bool {
        let etag = self.if_match.as_deref().is_none_or(|want| want == "*" || want == meta.etag);
        let modified =
            self.last_modified_ms.is_none_or(|ms| ms.div_euclid(1000) == meta.last_modified_ms.div_euclid(1000));
        let size = self.size_bytes.is_none_or(|size| size == meta.size_bytes);
        etag && modified && size
    }
}

/// A bucket's versioning state. A bucket starts unversioned (`None` where it is kept)
/// and, once versioning was enabled, is only ever Enabled or Suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersioningStatus {
    Enabled,
    Suspended,
}

/// The typed header of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogEntry {
    /// A piece of a body being streamed in; the payload is the bytes.
    Chunk,
    Object(ObjectRecord),
    /// Without a version: deletes the key (in a versioned bucket, by adding a delete
    /// marker). With one: removes that version for good.
    Tombstone {
        bucket: String,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
        /// "null" or a version id ([`crate::version::VersionId`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version_id: Option<String>,
        /// When the delete was asked: a delete marker's Last-Modified. Absent in records
        /// written before versioning existed (they never made markers).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deleted_ms: Option<i64>,
        /// A conditional delete: refused (PreconditionFailed) unless the version it
        /// removes or hides meets these.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conditions: Option<DeleteConditions>,
        /// x-amz-bypass-governance-retention: a version under GOVERNANCE retention may
        /// be removed.
        #[serde(default, skip_serializing_if = "is_false")]
        bypass_governance: bool,
    },
    BucketCreate {
        bucket: String,
        created_ms: i64,
        /// Object lock enabled (the bucket is versioned from the start, for good).
        #[serde(default, skip_serializing_if = "is_false")]
        object_lock: bool,
        /// The user who created it and owns it (absent in records written before
        /// buckets had owners: those belong to the admins).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        /// The Block Public Access settings it starts with (the server's default then).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_access_block: Option<PublicAccessBlock>,
        /// Its Object Ownership (absent in records written before it existed: such
        /// buckets behave as BucketOwnerEnforced).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        object_ownership: Option<ObjectOwnership>,
        /// Its ACL grants (none: the owner's FULL_CONTROL only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        acl: Option<Vec<Grant>>,
    },
    /// PutBucketAcl: the bucket's grants from here on.
    BucketAcl {
        bucket: String,
        grants: Vec<Grant>,
    },
    /// PutObjectAcl of one version (the latest when `version_id` is none).
    ObjectAcl {
        bucket: String,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version_id: Option<String>,
        grants: Vec<Grant>,
    },
    /// Put/DeleteBucketOwnershipControls (none: deleted, which S3 treats as ObjectWriter).
    BucketOwnershipControls {
        bucket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ownership: Option<ObjectOwnership>,
    },
    /// Put/DeleteBucketCors: the bucket's CORS rules from here on (none: deleted).
    BucketCors {
        bucket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rules: Option<Vec<CorsRule>>,
    },
    /// Put/DeleteBucketLifecycle: the bucket's lifecycle rules from here on (none:
    /// deleted).
    BucketLifecycle {
        bucket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rules: Option<Vec<LifecycleRule>>,
    },
    /// Put/DeleteBucketEncryption: the bucket's default encryption from here on (none:
    /// deleted).
    BucketEncryption {
        bucket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<BucketEncryption>,
    },
    /// Put/DeletePublicAccessBlock: the bucket's settings from here on (none: deleted).
    BucketPublicAccessBlock {
        bucket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<PublicAccessBlock>,
    },
    BucketDelete {
        bucket: String,
    },
    /// Put/DeleteObjectTagging: the tags of one version (the latest when `version_id`
    /// is none) become `tags` (empty: none).
    ObjectTagging {
        bucket: String,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version_id: Option<String>,
        tags: BTreeMap<String, String>,
    },
    /// Put/DeleteBucketTagging: the bucket's tags become `tags` (empty: none).
    BucketTagging {
        bucket: String,
        tags: BTreeMap<String, String>,
    },
    /// PutObjectLockConfiguration: object lock on (for a bucket created with it, or one
    /// whose versioning is enabled), with this default retention.
    BucketObjectLock {
        bucket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default_retention: Option<DefaultRetention>,
    },
    /// PutObjectRetention of one version (the latest when `version_id` is none), asked
    /// at `at_ms`: the time its lock rules are judged at, so replay judges the same.
    ObjectRetention {
        bucket: String,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retention: Option<Retention>,
        #[serde(default, skip_serializing_if = "is_false")]
        bypass_governance: bool,
        at_ms: i64,
    },
    /// PutObjectLegalHold of one version (the latest when `version_id` is none).
    ObjectLegalHold {
        bucket: String,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version_id: Option<String>,
        on: bool,
    },
    /// Put/DeleteBucketPolicy: the bucket's policy document from here on (none: deleted).
    /// The text is kept as the client sent it, checked before it was written.
    BucketPolicy {
        bucket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
    },
    /// A change to a user made at run time (users from the config file are not here).
    User {
        name: String,
        change: UserChange,
    },
    /// A change to an access key made at run time.
    AccessKey {
        access_key: String,
        change: KeyChange,
    },
    /// PutBucketVersioning: the bucket's versioning state from here on.
    BucketVersioning {
        bucket: String,
        status: VersioningStatus,
    },
    UploadCreate(UploadRecord),
    Part(PartRecord),
    UploadComplete {
        upload_id: String,
        object: ObjectRecord,
    },
    UploadAbort {
        bucket: String,
        key: String,
        upload_id: String,
    },
    /// First record of a compaction output: the segments it replaces. Its presence under
    /// its final name means they may be deleted. No effect on the index.
    Replaces {
        segments: Vec<u64>,
    },
}

impl LogEntry {
    /// Records that only take data away: still accepted when the disk is full.
    pub fn is_deletion(&self) -> bool {
        matches!(
            self,
            LogEntry::Tombstone { .. }
                | LogEntry::BucketDelete { .. }
                | LogEntry::UploadAbort { .. }
                | LogEntry::User { change: UserChange::Delete, .. }
                | LogEntry::AccessKey { change: KeyChange::Delete, .. }
        )
    }

    pub fn kind(&self) -> RecordKind {
        match self {
            LogEntry::Chunk => RecordKind::Chunk,
            LogEntry::Object(_) => RecordKind::Object,
            LogEntry::Tombstone { .. } => RecordKind::Tombstone,
            LogEntry::BucketCreate { .. } => RecordKind::BucketCreate,
            LogEntry::BucketDelete { .. } => RecordKind::BucketDelete,
            LogEntry::UploadCreate(_) => RecordKind::UploadCreate,
            LogEntry::Part(_) => RecordKind::Part,
            LogEntry::UploadComplete { .. } => RecordKind::UploadComplete,
            LogEntry::UploadAbort { .. } => RecordKind::UploadAbort,
            LogEntry::Replaces { .. } => RecordKind::Replaces,
            LogEntry::BucketVersioning { .. } => RecordKind::BucketVersioning,
            LogEntry::ObjectTagging { .. } => RecordKind::ObjectTagging,
            LogEntry::BucketTagging { .. } => RecordKind::BucketTagging,
            LogEntry::BucketObjectLock { .. } => RecordKind::BucketObjectLock,
            LogEntry::ObjectRetention { .. } => RecordKind::ObjectRetention,
            LogEntry::ObjectLegalHold { .. } => RecordKind::ObjectLegalHold,
            LogEntry::BucketPolicy { .. } => RecordKind::BucketPolicy,
            LogEntry::BucketPublicAccessBlock { .. } => RecordKind::BucketPublicAccessBlock,
            LogEntry::BucketAcl { .. } => RecordKind::BucketAcl,
            LogEntry::ObjectAcl { .. } => RecordKind::ObjectAcl,
            LogEntry::BucketOwnershipControls { .. } => RecordKind::BucketOwnershipControls,
            LogEntry::BucketCors { .. } => RecordKind::BucketCors,
            LogEntry::BucketEncryption { .. } => RecordKind::BucketEncryption,
            LogEntry::BucketLifecycle { .. } => RecordKind::BucketLifecycle,
            LogEntry::User { .. } => RecordKind::User,
            LogEntry::AccessKey { .. } => RecordKind::AccessKey,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slicing_pieces_keeps_offsets() {
        let pieces = [ChunkPiece { lsn: 1, len: 10, offset: 0 }, ChunkPiece { lsn: 2, len: 10, offset: 5 }];
        assert_eq!(slice_pieces(&pieces, 0..20), pieces.to_vec());
        assert_eq!(
            slice_pieces(&pieces, 8..13),
            vec![ChunkPiece { lsn: 1, len: 2, offset: 8 }, ChunkPiece { lsn: 2, len: 3, offset: 5 }]
        );
        assert_eq!(slice_pieces(&pieces, 12..12), vec![]);
    }
}
