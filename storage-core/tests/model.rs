//! Reference-model property test with crash injection.
//!
//! Random sequences of put / overwrite / delete / copy / multipart / versioning on and
//! suspended / deleting one version / tagging / object lock (retention, legal hold, in a
//! bucket created with it) / forced compaction / clean restart / crash run against the engine (on
//! the fault-injecting `SimDir`) and against a plain map of each key's versions. After
//! every step both must agree on every version of every key (its bytes, whether it is a
//! delete marker or the null version, its tags, their order), on the upload a multipart object was
//! completed from (a retried CompleteMultipartUpload is answered by it), on the bucket's
//! versioning state and on the listing.
//!
//! A crash happens at a random point: the simulated disk fails after N more writes or
//! syncs (so an operation can die half-way), then the machine "loses power": unsynced
//! bytes are dropped or torn. An operation that returned Ok was acknowledged and must
//! survive; one that failed may or may not have happened — the model allows both and
//! then learns which from the engine.
//!
//! `QUARRY_PROPTEST_CASES` sets the number of cases (default 48).

use bytes::Bytes;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use storage_core::encryption::{DataKey, FrameSealer};
use storage_core::io::SimDir;
use storage_core::{
    Body, BucketEncryption, CompactionOptions, CorsRule, Encryption, Engine, EngineConfig, Grant, Grantee, KeyChange,
    LifecycleFilter, LifecycleRule, ListQuery, LockMode, NewBucket, ObjectEntry, ObjectMeta, ObjectOwnership,
    ObjectRecord, PartRecord, Permission, PublicAccessBlock, Retention, SseScheme, UploadRecord, UserChange, VersionId,
    VersionQuery, VersioningStatus,
};

const BUCKET: &str = "model";
const KEYS: u8 = 6;
const CHUNK_BYTES: usize = 1024;
const FRAME_BYTES: usize = storage_core::encryption::FRAME_PLAINTEXT_BYTES as usize;

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: u8,
        len: usize,
        seed: u8,
    },
    /// A put whose body is stored encrypted (server-side encryption) under a data key
    /// made from `seed`; read back through decryption.
    PutEncrypted {
        key: u8,
        len: usize,
        seed: u8,
    },
    /// Sets the bucket's default encryption from `seed`, or deletes it when
    /// `seed % 3 == 0`.
    SetEncryption {
        seed: u8,
    },
    /// Sets the bucket's lifecycle rules from `seed`, or deletes them when
    /// `seed % 3 == 0`.
    SetLifecycle {
        seed: u8,
    },
    Delete {
        key: u8,
    },
    /// Removes the `nth` (modulo their number) version of a key for good (refused while
    /// object lock keeps it; `bypass` lifts GOVERNANCE).
    DeleteVersion {
        key: u8,
        nth: u8,
        bypass: bool,
    },
    /// Object lock: a retention of a day from now on a key's latest or `nth` version.
    Retain {
        key: u8,
        nth: Option<u8>,
        compliance: bool,
    },
    /// Object lock: a legal hold on or off.
    Hold {
        key: u8,
        nth: Option<u8>,
        on: bool,
    },
    SetVersioning {
        enabled: bool,
    },
    /// Sets the bucket's policy (a document made from `seed`), or deletes it when
    /// `seed % 3 == 0`.
    SetPolicy {
        seed: u8,
    },
    /// Sets the bucket's Block Public Access settings from the bits of `seed`, or
    /// deletes them when `seed >= 16`.
    SetPublicAccessBlock {
        seed: u8,
    },
    /// A change to the users made at run time or to their access keys (`action`:
    /// see `Harness::intended_users`), naming user `u{user}` and key `AK{key}`.
    Identity {
        user: u8,
        key: u8,
        action: u8,
        seed: u8,
    },
    /// A forced compaction pass: rewrites every sealed segment holding dead bytes.
    Compact,
    /// Sets the tags of a key's latest version, or of its `nth` (modulo their number)
    /// version; `seed % 4 == 0` removes them.
    Tag {
        key: u8,
        nth: Option<u8>,
        seed: u8,
        /// Sets the version's ACL (`acl_for(seed)`) instead of its tags.
        acl: bool,
    },
    /// Sets the bucket's ACL (even `seed`) or its Object Ownership (odd), from `seed / 2`.
    SetBucketAccess {
        seed: u8,
    },
    /// Sets the bucket's CORS rules from `seed`, or deletes them when `seed % 3 == 0`.
    SetCors {
        seed: u8,
    },
    Copy {
        from: u8,
        to: u8,
    },
    Multipart {
        key: u8,
        part_lens: Vec<usize>,
        seed: u8,
        abort: bool,
    },
    Restart,
    Crash {
        torn_percent: u8,
        lose_index: bool,
    },
    /// Run `op` with the disk failing after `after_ops` writes/syncs, then crash.
    FailDuring {
        op: Box<Op>,
        after_ops: u8,
        torn_percent: u8,
        lose_index: bool,
    },
}

fn data_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS, 0usize..4000, any::<u8>()).prop_map(|(key, len, seed)| Op::Put { key, len, seed }),
        2 => (0..KEYS).prop_map(|key| Op::Delete { key }),
        1 => (0..KEYS, any::<u8>(), any::<bool>()).prop_map(|(key, nth, bypass)| Op::DeleteVersion { key, nth, bypass }),
        1 => (0..KEYS, prop::option::of(any::<u8>()), any::<bool>())
            .prop_map(|(key, nth, compliance)| Op::Retain { key, nth, compliance }),
        1 => (0..KEYS, prop::option::of(any::<u8>()), any::<bool>()).prop_map(|(key, nth, on)| Op::Hold { key, nth, on }),
        1 => any::<bool>().prop_map(|enabled| Op::SetVersioning { enabled }),
        1 => any::<u8>().prop_map(|seed| Op::SetPolicy { seed }),
        1 => (0u8..20).prop_map(|seed| Op::SetPublicAccessBlock { seed }),
        1 => Just(Op::Compact),
        2 => (0u8..3, 0u8..4, 0u8..8, any::<u8>()).prop_map(|(user, key, action, seed)| Op::Identity { user, key, action, seed }),
        1 => (0..KEYS, prop::option::of(any::<u8>()), any::<u8>(), any::<bool>())
            .prop_map(|(key, nth, seed, acl)| Op::Tag { key, nth, seed, acl }),
        1 => any::<u8>().prop_map(|seed| Op::SetBucketAccess { seed }),
        1 => any::<u8>().prop_map(|seed| Op::SetCors { seed }),
        1 => any::<u8>().prop_map(|seed| Op::SetEncryption { seed }),
        1 => any::<u8>().prop_map(|seed| Op::SetLifecycle { seed }),
        1 => (0..KEYS, 0usize..(FRAME_BYTES + 2000), any::<u8>()).prop_map(|(key, len, seed)| Op::PutEncrypted { key, len, seed }),
        1 => (0..KEYS, 0..KEYS).prop_map(|(from, to)| Op::Copy { from, to }),
        1 => (0..KEYS, prop::collection::vec(0usize..2500, 1..4), any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(key, part_lens, seed, abort)| Op::Multipart { key, part_lens, seed, abort }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => data_op(),
        1 => Just(Op::Restart),
        1 => (0u8..=100, prop::bool::weighted(0.3)).prop_map(|(torn_percent, lose_index)| Op::Crash { torn_percent, lose_index }),
        2 => (data_op(), 0u8..12, 0u8..=100, prop::bool::weighted(0.3)).prop_map(|(op, after_ops, torn_percent, lose_index)| {
            Op::FailDuring { op: Box::new(op), after_ops, torn_percent, lose_index }
        }),
    ]
}

fn bytes_for(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add(seed)).collect()
}

fn key_name(key: u8) -> String {
    format!("dir/key-{key}")
}

/// An object's content: its bytes, and for an object CompleteMultipartUpload made, the upload's id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    data: Vec<u8>,
    upload_id: Option<String>,
}

impl Stored {
    fn written(data: Vec<u8>) -> Stored {
        Stored { data, upload_id: None }
    }
}

/// One version of a key: its content, or `None` for a delete marker, and its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    null: bool,
    content: Option<Stored>,
    tags: BTreeMap<String, String>,
    acl: Option<Vec<Grant>>,
    /// Object lock (retentions end a day after the test, so in force throughout).
    retention: Option<LockMode>,
    legal_hold: bool,
}

impl Version {
    fn new(null: bool, content: Option<Stored>) -> Version {
        Version { null, content, tags: BTreeMap::new(), acl: None, retention: None, legal_hold: false }
    }

    /// Object lock refuses deleting it.
    fn locked(&self, bypass: bool) -> bool {
        let retained = match self.retention {
            Some(LockMode::Compliance) => true,
            Some(LockMode::Governance) => !bypass,
            None => false,
        };
        retained || self.legal_hold
    }
}

/// An ACL: public-read, a user's READ_ACP, or the owner's only.
fn acl_for(seed: u8) -> Vec<Grant> {
    match seed % 3 {
        0 => vec![],
        1 => vec![Grant { grantee: Grantee::AllUsers, permission: Permission::Read }],
        _ => vec![Grant { grantee: Grantee::User { id: format!("{seed:064x}") }, permission: Permission::ReadAcp }],
    }
}

fn tags_for(seed: u8) -> BTreeMap<String, String> {
    match seed % 4 {
        0 => BTreeMap::new(),
        n => (0..n).map(|i| (format!("tag-{i}"), format!("{seed}"))).collect(),
    }
}

/// Every version of a key, newest first (empty: no object, no marker).
type Versions = Vec<Version>;

/// What the model allows for one key: every version list it may have (usually one).
type Allowed = Vec<Versions>;

/// A key's versions after a write (`Some`) or a delete (`None`), as S3 defines it for
/// each bucket versioning state.
fn after_write(versions: &Versions, content: Option<Stored>, versioning: Option<VersioningStatus>) -> Versions {
    match versioning {
        // Never versioned: the key holds one null version, or nothing.
        None => content.map(|content| vec![Version::new(true, Some(content))]).unwrap_or_default(),
        Some(VersioningStatus::Enabled) => {
            let mut out = vec![Version::new(false, content)];
            out.extend(versions.iter().cloned());
            out
        }
        // Suspended: the null version, wherever it is, is replaced by the new latest.
        Some(VersioningStatus::Suspended) => {
            let mut out = vec![Version::new(true, content)];
            out.extend(versions.iter().filter(|v| !v.null).cloned());
            out
        }
    }
}

/// The current object of a key: its latest version, unless that is a delete marker.
fn current(versions: &Versions) -> Option<&Stored> {
    versions.first().and_then(|v| v.content.as_ref())
}

/// The user the model's bucket belongs to.
const OWNER: &str = "model-owner";

/// What the model knows of the bucket itself.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BucketState {
    versioning: Option<VersioningStatus>,
    policy: Option<String>,
    public_access_block: Option<PublicAccessBlock>,
    acl: Option<Vec<Grant>>,
    object_ownership: Option<ObjectOwnership>,
    cors: Option<Vec<CorsRule>>,
    encryption: Option<BucketEncryption>,
    lifecycle: Option<Vec<LifecycleRule>>,
    /// Not the bucket's, but kept with it: the users made at run time.
    users: BTreeMap<String, ModelUser>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelUser {
    admin: bool,
    disabled: bool,
    /// access key -> (sealed secret, disabled)
    keys: BTreeMap<String, (String, bool)>,
}

fn ownership_for(seed: u8) -> Option<ObjectOwnership> {
    match seed % 4 {
        0 => None,
        1 => Some(ObjectOwnership::BucketOwnerEnforced),
        2 => Some(ObjectOwnership::BucketOwnerPreferred),
        _ => Some(ObjectOwnership::ObjectWriter),
    }
}

fn public_access_block_for(seed: u8) -> Option<PublicAccessBlock> {
    (seed < 16).then_some(PublicAccessBlock {
        block_public_acls: seed & 1 != 0,
        ignore_public_acls: seed & 2 != 0,
        block_public_policy: seed & 4 != 0,
        restrict_public_buckets: seed & 8 != 0,
    })
}

/// The CORS rules `Op::SetCors { seed }` sets (none: it deletes them).
fn cors_for(seed: u8) -> Option<Vec<CorsRule>> {
    (!seed.is_multiple_of(3)).then(|| {
        vec![CorsRule {
            id: None,
            allowed_methods: vec!["GET".into()],
            allowed_origins: vec![format!("https://site{seed}.example")],
            allowed_headers: Vec::new(),
            expose_headers: Vec::new(),
            max_age_seconds: Some(seed as i32),
        }]
    })
}

/// The default encryption `Op::SetEncryption { seed }` sets (none: it deletes it).
fn encryption_for(seed: u8) -> Option<BucketEncryption> {
    (!seed.is_multiple_of(3)).then(|| BucketEncryption {
        scheme: if seed.is_multiple_of(2) { SseScheme::S3 } else { SseScheme::Kms },
        kms_key_id: (seed % 2 == 1).then(|| format!("key-{seed}")),
        bucket_key_enabled: seed.is_multiple_of(5),
    })
}

/// The lifecycle rules `Op::SetLifecycle { seed }` sets (none: it deletes them).
fn lifecycle_for(seed: u8) -> Option<Vec<LifecycleRule>> {
    (!seed.is_multiple_of(3)).then(|| {
        vec![LifecycleRule {
            id: format!("rule-{seed}"),
            enabled: seed.is_multiple_of(2),
            legacy_prefix: None,
            filter: Some(LifecycleFilter { prefix: Some(format!("p{seed}/")), ..Default::default() }),
            expiration_days: Some(u32::from(seed) + 1),
            expiration_date_ms: None,
            expired_object_delete_marker: None,
            noncurrent_days: None,
            newer_noncurrent_versions: None,
            abort_upload_days: seed.is_multiple_of(5).then_some(7),
        }]
    })
}

/// The data key `Op::PutEncrypted { seed }` encrypts with.
fn data_key_for(seed: u8) -> DataKey {
    DataKey::from_bytes(&[seed; 32]).expect("32 bytes")
}

/// The policy document `Op::SetPolicy { seed }` sets (none: it deletes the policy).
fn policy_for(seed: u8) -> Option<String> {
    (!seed.is_multiple_of(3)).then(|| {
        format!(
            r#"{{"Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/p{seed}/*"}}]}}"#
        )
    })
}

struct Harness {
    dir: tempfile::TempDir,
    sim: SimDir,
    engine: Option<Engine>,
    model: BTreeMap<String, Allowed>,
    /// The bucket-level states the model allows (usually one).
    bucket: Vec<BucketState>,
    /// The bucket was created with object lock.
    object_lock: bool,
    upload_counter: u64,
}

impl Harness {
    fn new(object_lock: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimDir::new();
        let bucket = vec![BucketState {
            versioning: object_lock.then_some(VersioningStatus::Enabled),
            policy: None,
            public_access_block: Some(PublicAccessBlock::ALL),
            acl: None,
            object_ownership: Some(ObjectOwnership::BucketOwnerEnforced),
            cors: None,
            encryption: None,
            lifecycle: None,
            users: BTreeMap::new(),
        }];
        let mut harness =
            Harness { dir, sim, engine: None, model: BTreeMap::new(), bucket, object_lock, upload_counter: 0 };
        harness.open();
        harness
    }

    fn config(&self) -> EngineConfig {
        let mut config = EngineConfig::new(self.dir.path());
        config.segment_dir = Some(Arc::new(self.sim.clone()));
        config.chunk_size_bytes = CHUNK_BYTES;
        config.segment_size_limit_bytes = 8 * 1024;
        config.index_cache_bytes = 1024 * 1024;
        config.disk_reserve_bytes = 0;
        config
    }

    fn open(&mut self) {
        self.engine = Some(Engine::open(self.config()).expect("the engine reopens after any crash"));
    }

    fn engine(&self) -> &Engine {
        self.engine.as_ref().unwrap()
    }

    async fn run(&mut self, op: &Op) {
        match op {
            Op::Restart => {
                self.engine().close().await.unwrap();
                self.engine = None;
                self.open();
            }
            Op::Crash { torn_percent, lose_index } => self.crash(*torn_percent, *lose_index),
            Op::FailDuring { op, after_ops, torn_percent, lose_index } => {
                let intended = self.intended(op);
                let intended_bucket = self.intended_bucket(op);
                self.sim.fail_after(*after_ops as u64);
                let acknowledged = self.apply(op).await.is_ok();
                for (key, value) in intended {
                    if acknowledged {
                        self.set(&key, value);
                    } else {
                        // Not acknowledged: the old state or the new one.
                        let allowed = self.model.entry(key).or_insert_with(|| vec![Vec::new()]);
                        if !allowed.contains(&value) {
                            allowed.push(value);
                        }
                    }
                }
                if let Some(state) = intended_bucket {
                    if acknowledged {
                        self.bucket = vec![state];
                    } else if !self.bucket.contains(&state) {
                        self.bucket.push(state);
                    }
                }
                self.crash(*torn_percent, *lose_index);
            }
            data => {
                let intended = self.intended(data);
                let intended_bucket = self.intended_bucket(data);
                self.apply(data).await.expect("with a healthy disk every operation succeeds");
                for (key, value) in intended {
                    self.set(&key, value);
                }
                if let Some(state) = intended_bucket {
                    self.bucket = vec![state];
                }
            }
        }
    }

    /// What a data operation changes if it takes effect. The model is certain at this
    /// point (every check collapses it to what the engine holds).
    fn intended(&self, op: &Op) -> Vec<(String, Versions)> {
        let versions = |key: u8| self.model.get(&key_name(key)).map(|states| states[0].clone()).unwrap_or_default();
        let versioning = self.bucket[0].versioning;
        let write =
            |key: u8, content: Option<Stored>| (key_name(key), after_write(&versions(key), content, versioning));
        match op {
            Op::Put { key, len, seed } | Op::PutEncrypted { key, len, seed } => {
                vec![write(*key, Some(Stored::written(bytes_for(*len, *seed))))]
            }
            Op::Delete { key } if versioning.is_none() && versions(*key).is_empty() => vec![],
            Op::Delete { key } => vec![write(*key, None)],
            Op::DeleteVersion { key, nth, bypass } => {
                let mut list = versions(*key);
                if list.is_empty() {
                    return vec![];
                }
                let at = *nth as usize % list.len();
                if list[at].locked(*bypass) {
                    return vec![]; // refused: object lock keeps it
                }
                list.remove(at);
                vec![(key_name(*key), list)]
            }
            Op::Retain { key, nth, compliance } => {
                let mode = if *compliance { LockMode::Compliance } else { LockMode::Governance };
                // A retention in force keeps its mode without the bypass (its date only grows).
                self.lock_change(versions(*key), *key, *nth, |v| {
                    if v.retention.is_some_and(|current| current != mode) {
                        return false;
                    }
                    v.retention = Some(mode);
                    true
                })
            }
            Op::Hold { key, nth, on } => self.lock_change(versions(*key), *key, *nth, |v| {
                v.legal_hold = *on;
                true
            }),
            // A copy is a new object: it does not carry the source's upload id.
            Op::Copy { from, to } => match current(&versions(*from)) {
                Some(source) => vec![write(*to, Some(Stored::written(source.data.clone())))],
                None => vec![],
            },
            Op::Multipart { abort: true, .. } => vec![],
            Op::Multipart { key, part_lens, seed, .. } => {
                let whole: Vec<u8> = part_lens
                    .iter()
                    .enumerate()
                    .flat_map(|(i, len)| bytes_for(*len, seed.wrapping_add(i as u8)))
                    .collect();
                let upload_id = Some(upload_id_for(self.upload_counter + 1));
                vec![write(*key, Some(Stored { data: whole, upload_id }))]
            }
            Op::Tag { key, nth, seed, acl } => {
                let mut list = versions(*key);
                let at = match nth {
                    None => 0,
                    Some(_) if list.is_empty() => return vec![],
                    Some(nth) => *nth as usize % list.len(),
                };
                match list.get_mut(at) {
                    Some(version) if version.content.is_some() && *acl => version.acl = Some(acl_for(*seed)),
                    Some(version) if version.content.is_some() => version.tags = tags_for(*seed),
                    _ => return vec![], // nothing to tag: a delete marker, or no version
                }
                vec![(key_name(*key), list)]
            }
            Op::SetVersioning { .. }
            | Op::SetBucketAccess { .. }
            | Op::SetCors { .. }
            | Op::SetEncryption { .. }
            | Op::SetLifecycle { .. }
            | Op::SetPolicy { .. }
            | Op::SetPublicAccessBlock { .. }
            | Op::Identity { .. }
            | Op::Compact
            | Op::Restart
            | Op::Crash { .. }
            | Op::FailDuring { .. } => vec![],
        }
    }

    /// A lock change of a key's latest (or `nth`) version, when the bucket has object
    /// lock and the version is not a delete marker; `change` says whether it was allowed.
    fn lock_change(
        &self,
        mut list: Versions,
        key: u8,
        nth: Option<u8>,
        change: impl FnOnce(&mut Version) -> bool,
    ) -> Vec<(String, Versions)> {
        if !self.object_lock || list.is_empty() {
            return vec![];
        }
        let at = nth.map_or(0, |nth| nth as usize % list.len());
        let Some(version) = list.get_mut(at).filter(|v| v.content.is_some()) else { return vec![] };
        if !change(version) {
            return vec![];
        }
        vec![(key_name(key), list)]
    }

    /// The bucket's state after `op`, if it changes it.
    fn intended_bucket(&self, op: &Op) -> Option<BucketState> {
        let now = self.bucket[0].clone();
        match op {
            // A bucket with object lock stays versioned.
            Op::SetVersioning { enabled: false } if self.object_lock => None,
            Op::SetVersioning { enabled: true } => {
                Some(BucketState { versioning: Some(VersioningStatus::Enabled), ..now })
            }
            Op::SetVersioning { enabled: false } => {
                Some(BucketState { versioning: Some(VersioningStatus::Suspended), ..now })
            }
            Op::SetPolicy { seed } => Some(BucketState { policy: policy_for(*seed), ..now }),
            Op::SetCors { seed } => Some(BucketState { cors: cors_for(*seed), ..now }),
            Op::SetEncryption { seed } => Some(BucketState { encryption: encryption_for(*seed), ..now }),
            Op::SetLifecycle { seed } => Some(BucketState { lifecycle: lifecycle_for(*seed), ..now }),
            Op::SetBucketAccess { seed } if seed % 2 == 0 => Some(BucketState { acl: Some(acl_for(seed / 2)), ..now }),
            Op::SetBucketAccess { seed } => Some(BucketState { object_ownership: ownership_for(seed / 2), ..now }),
            Op::SetPublicAccessBlock { seed } => {
                Some(BucketState { public_access_block: public_access_block_for(*seed), ..now })
            }
            Op::Identity { user, key, action, seed } => {
                let users = intended_users(&now.users, *user, *key, *action, *seed)?;
                Some(BucketState { users, ..now })
            }
            _ => None,
        }
    }

    fn crash(&mut self, torn_percent: u8, lose_index: bool) {
        self.sim.fail_after(0); // power is lost now: nothing more reaches the disk
        self.engine = None; // the writer's last sync fails; the process is "gone"
        self.sim.crash(torn_percent as f64 / 100.0);
        if lose_index {
            std::fs::remove_dir_all(self.dir.path().join("index")).unwrap();
        }
        self.open();
    }

    fn set(&mut self, key: &str, value: Versions) {
        self.model.insert(key.to_owned(), vec![value]);
    }

    /// Runs a data operation on the engine (the caller updates the model).
    async fn apply(&mut self, op: &Op) -> storage_core::Result<()> {
        let engine = self.engine().clone();
        match op {
            Op::Put { key, len, seed } => {
                let data = bytes_for(*len, *seed);
                let mut writer = engine.body_writer();
                for piece in data.chunks(700) {
                    writer.write(Bytes::copy_from_slice(piece)).await?;
                }
                let body = writer.finish().await?;
                engine.put_object(record(&key_name(*key), data.len() as u64), body).await?;
            }
            Op::PutEncrypted { key, len, seed } => {
                let data = bytes_for(*len, *seed);
                let mut sealer = FrameSealer::new(&data_key_for(*seed));
                let mut writer = engine.body_writer();
                for piece in data.chunks(700) {
                    writer.write(sealer.push(piece)).await?;
                }
                writer.write(sealer.finish()).await?;
                let body = writer.finish().await?;
                let mut object = record(&key_name(*key), data.len() as u64);
                // The model keeps the data key in the clear: sealing it is s3-api's job.
                object.meta.encryption = Some(Encryption {
                    scheme: SseScheme::S3,
                    format: storage_core::encryption::FRAME_FORMAT,
                    kms_key_id: None,
                    kms_context: None,
                    customer_key_md5: None,
                    bucket_key_enabled: false,
                    sealed_data_keys: vec![hex::encode([*seed; 32])],
                });
                engine.put_object(object, body).await?;
            }
            Op::Delete { key } => {
                engine.delete_object(BUCKET, &key_name(*key)).await?;
            }
            Op::DeleteVersion { key, nth, bypass } => {
                let name = key_name(*key);
                let versions = versions_of(&engine, &name)?;
                if versions.is_empty() {
                    return Ok(());
                }
                let version = versions[*nth as usize % versions.len()].version_id();
                refused_by_lock(engine.delete_version(BUCKET, &name, version, None, *bypass, None).await)?;
            }
            Op::SetVersioning { enabled } => {
                let status = if *enabled { VersioningStatus::Enabled } else { VersioningStatus::Suspended };
                refused_by_lock(engine.set_bucket_versioning(BUCKET, status).await)?;
            }
            Op::SetPolicy { seed } => engine.set_bucket_policy(BUCKET, policy_for(*seed)).await?,
            Op::SetCors { seed } => engine.set_bucket_cors(BUCKET, cors_for(*seed)).await?,
            Op::SetEncryption { seed } => engine.set_bucket_encryption(BUCKET, encryption_for(*seed)).await?,
            Op::SetLifecycle { seed } => engine.set_bucket_lifecycle(BUCKET, lifecycle_for(*seed)).await?,
            Op::Identity { user, key, action, seed } => {
                let (user, key) = (format!("u{user}"), format!("AK{key}"));
                let result = match action {
                    0 => engine.change_user(&user, UserChange::Create { admin: seed % 2 == 1, created_ms: 0 }).await,
                    1 | 2 => engine.change_user(&user, UserChange::Disabled(*action == 1)).await,
                    3 => engine.change_user(&user, UserChange::Delete).await,
                    4 => {
                        let sealed_secret = sealed_for(*seed);
                        engine.change_access_key(&key, KeyChange::Create { user, sealed_secret, created_ms: 0 }).await
                    }
                    5 | 6 => engine.change_access_key(&key, KeyChange::Disabled(*action == 5)).await,
                    _ => engine.change_access_key(&key, KeyChange::Delete).await,
                };
                refused_identity_change(result)?;
            }
            Op::SetBucketAccess { seed } if seed % 2 == 0 => engine.set_bucket_acl(BUCKET, acl_for(seed / 2)).await?,
            Op::SetBucketAccess { seed } => engine.set_object_ownership(BUCKET, ownership_for(seed / 2)).await?,
            Op::SetPublicAccessBlock { seed } => {
                engine.set_public_access_block(BUCKET, public_access_block_for(*seed)).await?
            }
            Op::Retain { key, nth, compliance } => {
                let Some(version) = lock_target(&engine, &key_name(*key), *nth)? else { return Ok(()) };
                let mode = if *compliance { LockMode::Compliance } else { LockMode::Governance };
                let retention = Retention { mode, retain_until_ms: now_ms() + DAY_MS };
                refused_by_lock(engine.set_retention(BUCKET, &key_name(*key), version, Some(retention), false).await)?;
            }
            Op::Hold { key, nth, on } => {
                let Some(version) = lock_target(&engine, &key_name(*key), *nth)? else { return Ok(()) };
                refused_by_lock(engine.set_legal_hold(BUCKET, &key_name(*key), version, *on).await)?;
            }
            Op::Tag { key, nth, seed, acl } => {
                let name = key_name(*key);
                let versions = versions_of(&engine, &name)?;
                let target = match nth {
                    None => versions.first(),
                    Some(nth) if !versions.is_empty() => versions.get(*nth as usize % versions.len()),
                    Some(_) => None,
                };
                let Some(target) = target.filter(|v| !v.delete_marker) else { return Ok(()) };
                let version = nth.map(|_| target.version_id());
                if *acl {
                    engine.set_object_acl(BUCKET, &name, version, acl_for(*seed)).await?;
                } else {
                    engine.set_object_tags(BUCKET, &name, version, tags_for(*seed)).await?;
                }
            }
            Op::Compact => {
                // Compaction leaves segments the catalog has not taken in yet alone.
                engine.flush_catalog()?;
                engine.compact(CompactionOptions { force: true, ..Default::default() }).await?;
            }
            Op::Copy { from, to } => {
                let Some(source) = engine.object(BUCKET, &key_name(*from))? else { return Ok(()) };
                let mut object = record(&key_name(*to), source.meta.size_bytes);
                // An encrypted source's frames are shared with their keys (and streams).
                object.meta.encryption = source.meta.encryption.clone();
                object.meta.part_sizes = source.meta.part_sizes.clone();
                engine.put_object(object, Body::Chunks(source.chunks)).await?;
            }
            Op::Multipart { key, part_lens, seed, abort } => {
                self.upload_counter += 1;
                let upload_id = upload_id_for(self.upload_counter);
                let name = key_name(*key);
                engine
                    .create_upload(UploadRecord {
                        bucket: BUCKET.into(),
                        key: name.clone(),
                        upload_id: upload_id.clone(),
                        initiated_ms: 0,
                        meta: ObjectMeta::default(),
                        checksum_algorithm: None,
                        checksum_type: None,
                    })
                    .await?;
                let mut whole = Vec::new();
                let mut chunks = Vec::new();
                for (i, len) in part_lens.iter().enumerate() {
                    let data = bytes_for(*len, seed.wrapping_add(i as u8));
                    let mut writer = engine.body_writer();
                    writer.write(Bytes::from(data.clone())).await?;
                    let body = writer.finish().await?;
                    let part = PartRecord {
                        bucket: BUCKET.into(),
                        key: name.clone(),
                        upload_id: upload_id.clone(),
                        part_number: i as u32 + 1,
                        size_bytes: data.len() as u64,
                        etag: format!("part{i}"),
                        last_modified_ms: 0,
                        checksum: None,
                        chunks: Vec::new(),
                        inline: false,
                        sealed_data_key: None,
                    };
                    engine.put_part(part, body).await?;
                    whole.extend_from_slice(&data);
                }
                if *abort {
                    return engine.abort_upload(BUCKET, &name, &upload_id).await;
                }
                for part in engine.index().parts(BUCKET, &name, &upload_id)? {
                    chunks.extend(part.part.chunks);
                }
                let mut object = record(&name, whole.len() as u64);
                object.chunks = chunks;
                object.meta.upload_id = Some(upload_id.clone());
                engine.complete_upload(&upload_id, object).await?;
            }
            Op::Restart | Op::Crash { .. } | Op::FailDuring { .. } => unreachable!("not a data operation"),
        }
        Ok(())
    }

    /// Compares engine and model; where the model allowed several states, it learns
    /// the one the engine is in.
    async fn check(&mut self, step: usize, op: &Op) {
        let engine = self.engine().clone();
        let entry = engine.bucket(BUCKET).unwrap().expect("the bucket");
        assert_eq!(entry.owner.as_deref(), Some(OWNER), "step {step} ({op:?}): the bucket's owner");
        let state = BucketState {
            versioning: entry.versioning,
            policy: entry.policy,
            public_access_block: entry.public_access_block,
            acl: entry.acl,
            object_ownership: entry.object_ownership,
            cors: entry.cors,
            encryption: entry.encryption,
            lifecycle: entry.lifecycle,
            users: engine_users(&engine),
        };
        assert!(
            self.bucket.contains(&state),
            "step {step} ({op:?}): the bucket is {state:?} but the model allows {:?}",
            self.bucket
        );
        self.bucket = vec![state];
        for k in 0..KEYS {
            let name = key_name(k);
            let actual = read_versions(&engine, &name)
                .await
                .unwrap_or_else(|e| panic!("step {step} ({op:?}): reading {name} failed: {e}"));
            let allowed = self.model.get(&name).cloned().unwrap_or_else(|| vec![Vec::new()]);
            assert!(
                allowed.contains(&actual),
                "step {step} ({op:?}): {name} holds {} but the model allows {}",
                describe(&actual),
                allowed.iter().map(describe).collect::<Vec<_>>().join(" or ")
            );
            let object = engine.object(BUCKET, &name).unwrap().map(|entry| entry.lsn);
            let latest = versions_of(&engine, &name).unwrap().first().filter(|e| !e.delete_marker).map(|e| e.lsn);
            assert_eq!(object, latest, "step {step} ({op:?}): {name}'s current object is not its latest version");
            self.set(&name, actual);
        }
        let page = engine.list_objects(BUCKET, &ListQuery { max_keys: 1000, ..Default::default() }).unwrap();
        let listed: Vec<String> = page.objects.into_iter().map(|(k, _)| k).collect();
        let expected: Vec<String> =
            self.model.iter().filter(|(_, v)| current(&v[0]).is_some()).map(|(k, _)| k.clone()).collect();
        assert_eq!(listed, expected, "step {step} ({op:?}): listing disagrees with the model");
    }
}

/// The users after `Op::Identity`, or none if the engine must refuse it.
fn intended_users(
    now: &BTreeMap<String, ModelUser>,
    user: u8,
    key: u8,
    action: u8,
    seed: u8,
) -> Option<BTreeMap<String, ModelUser>> {
    let (user, key) = (format!("u{user}"), format!("AK{key}"));
    let mut users = now.clone();
    let key_exists = users.values().any(|u| u.keys.contains_key(&key));
    fn holder<'a>(users: &'a mut BTreeMap<String, ModelUser>, key: &str) -> Option<&'a mut ModelUser> {
        users.values_mut().find(|u| u.keys.contains_key(key))
    }
    match action {
        0 if users.contains_key(&user) => return None,
        0 => {
            users.insert(user, ModelUser { admin: seed % 2 == 1, disabled: false, keys: BTreeMap::new() });
        }
        1 | 2 => users.get_mut(&user)?.disabled = action == 1,
        3 if !users.get(&user)?.keys.is_empty() => return None,
        3 => {
            users.remove(&user);
        }
        4 if key_exists => return None,
        4 => {
            let owner = users.get_mut(&user)?;
            if owner.keys.len() >= storage_core::index::MAX_ACCESS_KEYS_PER_USER {
                return None;
            }
            owner.keys.insert(key, (sealed_for(seed), false));
        }
        5 | 6 => holder(&mut users, &key)?.keys.get_mut(&key)?.1 = action == 5,
        _ => {
            holder(&mut users, &key)?.keys.remove(&key);
        }
    }
    Some(users)
}

fn sealed_for(seed: u8) -> String {
    format!("sealed-{seed}")
}

/// The users and keys the engine holds, as the model writes them.
fn engine_users(engine: &Engine) -> BTreeMap<String, ModelUser> {
    let mut users: BTreeMap<String, ModelUser> = engine
        .users()
        .unwrap()
        .into_iter()
        .map(|(name, u)| (name, ModelUser { admin: u.admin, disabled: u.disabled, keys: BTreeMap::new() }))
        .collect();
    for (access_key, key) in engine.access_keys().unwrap() {
        let owner =
            users.get_mut(&key.user).unwrap_or_else(|| panic!("key {access_key} of a missing user {}", key.user));
        owner.keys.insert(access_key, (key.sealed_secret, key.disabled));
    }
    for (name, entry) in engine.users().unwrap() {
        let listed: Vec<&String> = users[&name].keys.keys().collect();
        assert_eq!(entry.access_keys.iter().collect::<Vec<_>>(), listed, "user {name}'s list of keys");
    }
    users
}

/// A refused user or key change is an answer the model predicts, not a failure.
fn refused_identity_change(result: storage_core::Result<()>) -> storage_core::Result<()> {
    use storage_core::{Error, Rejection};
    match result {
        Err(Error::Rejected(
            Rejection::EntityAlreadyExists
            | Rejection::NoSuchEntity
            | Rejection::DeleteConflict
            | Rejection::LimitExceeded,
        )) => Ok(()),
        other => other,
    }
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A refusal by object lock (or of a lock request on a bucket without it) is an answer,
/// not a failure: the model predicts it, and the check compares the states after.
fn refused_by_lock<T>(result: storage_core::Result<T>) -> storage_core::Result<()> {
    use storage_core::{Error, Rejection};
    match result {
        Ok(_) | Err(Error::Rejected(Rejection::ObjectLocked | Rejection::InvalidBucketState)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The version a lock change of `nth` names (`Some(None)`: the latest), if there is
/// one that is not a delete marker.
fn lock_target(engine: &Engine, key: &str, nth: Option<u8>) -> storage_core::Result<Option<Option<VersionId>>> {
    let versions = versions_of(engine, key)?;
    let target = match nth {
        None => versions.first(),
        Some(_) if versions.is_empty() => None,
        Some(nth) => versions.get(nth as usize % versions.len()),
    };
    Ok(target.filter(|v| !v.delete_marker).map(|v| nth.map(|_| v.version_id())))
}

/// Every version of `key` in the engine, newest first.
fn versions_of(engine: &Engine, key: &str) -> storage_core::Result<Vec<ObjectEntry>> {
    let query = VersionQuery { prefix: key.to_owned(), max_keys: 1000, ..Default::default() };
    let page = engine.list_object_versions(BUCKET, &query)?;
    assert!(!page.is_truncated, "a key of the model has fewer than 1000 versions");
    Ok(page.versions.into_iter().filter(|(k, _, _)| k == key).map(|(_, entry, _)| entry).collect())
}

async fn read_versions(engine: &Engine, key: &str) -> storage_core::Result<Versions> {
    let mut out = Vec::new();
    for entry in versions_of(engine, key)? {
        let content = if entry.delete_marker { None } else { Some(read_entry(engine, &entry).await?) };
        out.push(Version {
            null: !entry.versioned,
            content,
            tags: entry.meta.tags.clone(),
            acl: entry.meta.acl.clone(),
            retention: entry.meta.retention.map(|r| r.mode),
            legal_hold: entry.meta.legal_hold,
        });
    }
    Ok(out)
}

fn describe(versions: &Versions) -> String {
    if versions.is_empty() {
        return "nothing".into();
    }
    let one = |v: &Version| {
        let id = if v.null { "null" } else { "v" };
        let mut tags = if v.tags.is_empty() { String::new() } else { format!(", tags {:?}", v.tags) };
        if let Some(mode) = v.retention {
            tags.push_str(&format!(", {mode:?} retention"));
        }
        if v.legal_hold {
            tags.push_str(", legal hold");
        }
        match &v.content {
            None => format!("{id}: delete marker"),
            Some(Stored { data, upload_id }) => {
                let from = upload_id.as_ref().map(|id| format!(", completed from {id}")).unwrap_or_default();
                format!("{id}: {} bytes (blake3 {}{from}{tags})", data.len(), &blake3::hash(data).to_hex()[..12])
            }
        }
    };
    format!("[{}]", versions.iter().map(one).collect::<Vec<_>>().join("; "))
}

fn upload_id_for(counter: u64) -> String {
    format!("upload-{counter}")
}

fn record(key: &str, size: u64) -> ObjectRecord {
    ObjectRecord::new(BUCKET, key, ObjectMeta { size_bytes: size, etag: "x".into(), ..Default::default() })
}

async fn read_entry(engine: &Engine, entry: &ObjectEntry) -> storage_core::Result<Stored> {
    let mut reader = match &entry.meta.encryption {
        None => engine.read(entry, 0..entry.meta.size_bytes),
        Some(encryption) => {
            let keys = encryption
                .sealed_data_keys
                .iter()
                .map(|k| DataKey::from_bytes(&hex::decode(k).unwrap()).unwrap())
                .collect();
            engine.read_decrypted(entry, 0..entry.meta.size_bytes, keys)
        }
    };
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(Stored { data: out, upload_id: entry.meta.upload_id.clone() })
}

fn cases() -> u32 {
    std::env::var("QUARRY_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2000,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            "tests/model.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_model_through_crashes(object_lock in prop::bool::weighted(0.3), ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let mut harness = Harness::new(object_lock);
            let new = NewBucket {
                object_lock,
                owner: Some(OWNER.into()),
                public_access_block: Some(PublicAccessBlock::ALL),
                object_ownership: Some(ObjectOwnership::BucketOwnerEnforced),
                acl: None,
            };
            harness.engine().create_bucket_with(BUCKET, 0, new).await.unwrap();
            for (step, op) in ops.iter().enumerate() {
                harness.run(op).await;
                harness.check(step, op).await;
            }
        });
    }
}
