//! The engine's API: what the S3 layer calls.

use crate::catalog::Catalog;
use crate::encryption::{DataKey, DataKeyOpener, SEALED_FRAME_BYTES, StreamRead, open_frame};
use crate::error::{Error, Rejection, Result};
use crate::index::{
    self, AccessKeyEntry, Applied, BucketEntry, Index, ObjectEntry, RecordLocation, UserEntry, VersionPage,
};
use crate::io::{FsDir, SegmentDir};
use crate::listing::{ListPage, ListQuery, VersionQuery, list_objects, list_versions};
use crate::log_entry::{
    BucketEncryption, ChunkPiece, CorsRule, DefaultRetention, DeleteConditions, Grant, KeyChange, LifecycleRule,
    LogEntry, ObjectOwnership, ObjectRecord, PartRecord, PublicAccessBlock, Retention, UploadRecord, UserChange,
    VersioningStatus,
};
use crate::record::DecodedRecord;
use crate::recovery;
use crate::segment::SegmentReader;
use crate::sidecar;
use crate::space::SpaceGuard;
use crate::stats::EngineStats;
use crate::version::VersionId;
use crate::writer::{AppendRequest, Appended, Command, LogEnd, Writer, WriterLimits};
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions, TryLockError};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// What a CreateBucket sets besides the name.
#[derive(Debug, Clone, Default)]
pub struct NewBucket {
    /// Object lock enabled (versioned for good).
    pub object_lock: bool,
    /// The user who owns it (none: the admins).
    pub owner: Option<String>,
    pub public_access_block: Option<PublicAccessBlock>,
    pub object_ownership: Option<ObjectOwnership>,
    pub acl: Option<Vec<Grant>>,
}

#[derive(Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// Where the segment files are: `None` means `<data_dir>/segments` on the real file
    /// system (tests put a fault-injecting `SimDir` here).
    pub segment_dir: Option<Arc<dyn SegmentDir>>,
    /// A segment is sealed once it reaches this size (a batch may overshoot it).
    pub segment_size_limit_bytes: u64,
    /// Bodies are cut into chunk records of this size as they stream in.
    pub chunk_size_bytes: usize,
    /// Group commit takes at most this many bytes / records per fsync.
    pub max_batch_bytes: u64,
    pub max_batch_records: usize,
    /// Requests waiting for the writer; senders wait when it is full.
    pub queue_depth: usize,
    /// Memory the index may use to cache its blocks (besides its bounded memtable).
    pub index_cache_bytes: u64,
    /// Throw the index away and rebuild it from the log (`quarry admin rebuild-index`).
    pub rebuild_index: bool,
    /// Space kept in reserve so deletes still work when the disk fills up (0: none).
    pub disk_reserve_bytes: u64,
    /// The Parquet catalog of changes (`None`: no catalog).
    pub catalog: Option<crate::catalog::CatalogConfig>,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.into(),
            segment_dir: None,
            segment_size_limit_bytes: 256 * 1024 * 1024,
            chunk_size_bytes: 1024 * 1024,
            max_batch_bytes: 16 * 1024 * 1024,
            max_batch_records: 1024,
            queue_depth: 1024,
            index_cache_bytes: 64 * 1024 * 1024,
            rebuild_index: false,
            disk_reserve_bytes: 32 * 1024 * 1024,
            catalog: Some(crate::catalog::CatalogConfig::default()),
        }
    }
}

/// A body ready to be committed: small enough to live in the commit record itself, or
/// already written as chunk records.
#[derive(Debug, Clone)]
pub enum Body {
    Inline(Bytes),
    Chunks(Vec<ChunkPiece>),
    /// Chunks just streamed in, referenced by nothing yet: the guard keeps compaction
    /// from reclaiming them until the commit is done (or the body is dropped).
    Streamed(Vec<ChunkPiece>, Arc<InflightGuard>),
}

/// Chunk records of bodies being uploaded: the smallest LSN of each, so compaction
/// keeps every unreferenced chunk at or above the smallest one.
#[derive(Debug, Default)]
pub struct Inflight {
    first_lsns: Mutex<std::collections::BTreeMap<u64, usize>>,
}

impl Inflight {
    fn register(self: &Arc<Self>, lsn: u64) -> InflightGuard {
        *self.first_lsns.lock().unwrap().entry(lsn).or_insert(0) += 1;
        InflightGuard { registry: self.clone(), lsn }
    }

    /// The smallest chunk LSN of any body not yet committed.
    pub fn min_lsn(&self) -> Option<u64> {
        self.first_lsns.lock().unwrap().keys().next().copied()
    }
}

#[derive(Debug)]
pub struct InflightGuard {
    registry: Arc<Inflight>,
    lsn: u64,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut lsns = self.registry.first_lsns.lock().unwrap();
        if let Some(count) = lsns.get_mut(&self.lsn) {
            *count -= 1;
            if *count == 0 {
                lsns.remove(&self.lsn);
            }
        }
    }
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// What start-up found and did.
#[derive(Debug, Clone)]
pub struct RecoverySummary {
    pub records_replayed: u64,
    pub torn_bytes_truncated: u64,
    pub damaged: Vec<String>,
    pub elapsed_ms: u64,
}

struct Inner {
    recovery: RecoverySummary,
    index: Index,
    stats: Arc<EngineStats>,
    segments: Arc<dyn SegmentDir>,
    reader: SegmentReader,
    commands: mpsc::Sender<Command>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    sidecar_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    space: Arc<SpaceGuard>,
    inflight: Arc<Inflight>,
    compaction: tokio::sync::Mutex<()>,
    last_compaction: Mutex<Option<crate::compactor::CompactionReport>>,
    catalog: Option<Arc<Catalog>>,
    /// Dropping it stops the catalog flusher.
    catalog_stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    catalog_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    chunk_size_bytes: usize,
    /// Opens the data keys of server-managed encryption (SSE-S3, SSE-KMS), so that
    /// `read` serves those objects' plaintext to every reader (the SQL engine too).
    data_key_opener: std::sync::OnceLock<Arc<dyn DataKeyOpener>>,
    _lock: File,
}

impl Engine {
    /// Opens (or creates) a data directory: takes its lock, opens the index, replays the
    /// log past the index's applied position, and starts the writer.
    pub fn open(config: EngineConfig) -> Result<Engine> {
        assert!(config.chunk_size_bytes > 0 && config.chunk_size_bytes as u64 <= crate::record::MAX_PAYLOAD_BYTES);
        std::fs::create_dir_all(&config.data_dir)?;
        let segments: Arc<dyn SegmentDir> = match &config.segment_dir {
            Some(dir) => dir.clone(),
            None => Arc::new(FsDir::new(config.data_dir.join("segments"))?),
        };
        let lock_path = config.data_dir.join("LOCK");
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked(format!(
                    "{} is locked: another quarry process is using this data directory",
                    config.data_dir.display()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(Error::Io(e)),
        }
        crate::data_format::check_and_stamp(&config.data_dir)?;
        let index_dir = config.data_dir.join("index");
        if config.rebuild_index && index_dir.exists() {
            tracing::info!("removing the index to rebuild it from the log");
            std::fs::remove_dir_all(&index_dir)?;
        }
        let (index, cleared) = match Index::open(&index_dir, config.index_cache_bytes) {
            Ok(opened) => opened,
            Err(e) if index_dir.exists() => {
                // The index is derived data: set the unreadable one aside and rebuild.
                let aside = config.data_dir.join(format!("index.unreadable-{}", now_ms()));
                tracing::error!("the index cannot be opened ({e}); moving it to {} and rebuilding it", aside.display());
                std::fs::rename(&index_dir, &aside)?;
                Index::open(&index_dir, config.index_cache_bytes)?
            }
            Err(e) => return Err(e),
        };
        if let Some(found) = cleared {
            tracing::warn!(
                "the index has layout version {found}, this build uses {}: rebuilding it from the log",
                index::FORMAT_VERSION
            );
        }
        let stats = Arc::new(EngineStats::default());
        sidecar::remove_partials(segments.as_ref())?;
        crate::compactor::finish_interrupted(segments.as_ref(), &index)?;
        let started = std::time::Instant::now();
        let recovered = recovery::replay(segments.as_ref(), &index, &stats)?;
        tracing::info!(
            records = recovered.records_replayed,
            torn_bytes = recovered.torn_bytes_truncated,
            damaged_regions = recovered.damaged.len(),
            sidecar_hits = EngineStats::get(&stats.sidecar_hits),
            sidecar_misses = EngineStats::get(&stats.sidecar_misses),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "log replayed into the index"
        );

        // Sealed segments without a sidecar (sealed just before a crash, or whose
        // sidecar was lost) get one in the background.
        let (sealed, sealed_receiver) = std::sync::mpsc::channel();
        let existing: std::collections::HashSet<String> = segments.list()?.into_iter().collect();
        for id in crate::segment::list_segments(segments.as_ref())? {
            if id != recovered.active_segment_id && !existing.contains(&sidecar::sidecar_name(id)) {
                let _ = sealed.send(id);
            }
        }
        let sidecar_thread = {
            let (dir, stats) = (segments.clone(), stats.clone());
            std::thread::Builder::new()
                .name("quarry-sidecars".into())
                .spawn(move || sidecar::run_builder(dir, stats, sealed_receiver))?
        };
        let limits = WriterLimits {
            segment_size_limit_bytes: config.segment_size_limit_bytes,
            max_batch_bytes: config.max_batch_bytes,
            max_batch_records: config.max_batch_records,
        };
        let space = Arc::new(SpaceGuard::new(config.data_dir.join("reserve"), config.disk_reserve_bytes));
        let writer = Writer::open(
            segments.clone(),
            index.clone(),
            LogEnd {
                active_segment_id: recovered.active_segment_id,
                active_len_bytes: recovered.active_len_bytes,
                next_lsn: recovered.next_lsn,
            },
            limits,
            sealed,
            space.clone(),
        )?;
        let (catalog, catalog_stop, catalog_thread) = match config.catalog {
            None => (None, None, None),
            Some(catalog_config) => {
                let catalog = Arc::new(Catalog::open(config.data_dir.join("catalog"), catalog_config)?);
                let (stop, stopped) = std::sync::mpsc::channel();
                let (flushing, dir, index) = (catalog.clone(), segments.clone(), index.clone());
                let thread = std::thread::Builder::new()
                    .name("quarry-catalog".into())
                    .spawn(move || crate::catalog::run_flusher(flushing, dir, index, stopped))?;
                (Some(catalog), Some(stop), Some(thread))
            }
        };
        let (commands, receiver) = mpsc::channel(config.queue_depth);
        let writer_thread =
            std::thread::Builder::new().name("quarry-writer".into()).spawn(move || writer.run(receiver))?;
        Ok(Engine {
            inner: Arc::new(Inner {
                recovery: RecoverySummary {
                    records_replayed: recovered.records_replayed,
                    torn_bytes_truncated: recovered.torn_bytes_truncated,
                    damaged: recovered.damaged.iter().map(ToString::to_string).collect(),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                },
                index,
                stats,
                segments: segments.clone(),
                reader: SegmentReader::new(segments),
                commands,
                writer_thread: Mutex::new(Some(writer_thread)),
                sidecar_thread: Mutex::new(Some(sidecar_thread)),
                space,
                inflight: Arc::new(Inflight::default()),
                compaction: tokio::sync::Mutex::new(()),
                last_compaction: Mutex::new(None),
                catalog,
                catalog_stop: Mutex::new(catalog_stop),
                catalog_thread: Mutex::new(catalog_thread),
                chunk_size_bytes: config.chunk_size_bytes,
                data_key_opener: std::sync::OnceLock::new(),
                _lock: lock,
            }),
        })
    }

    /// Sets how `read` opens the data keys of objects the server encrypted with its own
    /// keys (once; the server sets it at start).
    pub fn set_data_key_opener(&self, opener: Arc<dyn DataKeyOpener>) {
        let _ = self.inner.data_key_opener.set(opener);
    }

    pub fn index(&self) -> &Index {
        &self.inner.index
    }

    pub fn recovery(&self) -> &RecoverySummary {
        &self.inner.recovery
    }

    pub fn stats(&self) -> &EngineStats {
        &self.inner.stats
    }

    /// True while the data disk is full (writes refused, reads and deletes served).
    pub fn disk_full(&self) -> bool {
        self.inner.space.is_full()
    }

    pub(crate) fn segments(&self) -> Arc<dyn SegmentDir> {
        self.inner.segments.clone()
    }

    // ---- for the compactor ----

    /// The Parquet catalog, if this engine keeps one.
    pub fn catalog(&self) -> Option<&Arc<Catalog>> {
        self.inner.catalog.as_ref()
    }

    /// Writes everything durable to the catalog now (blocking).
    pub fn flush_catalog(&self) -> Result<usize> {
        match &self.inner.catalog {
            Some(catalog) => catalog.flush(self.inner.segments.as_ref(), &self.inner.index),
            None => Ok(0),
        }
    }

    /// Merges the catalog's deltas into its base (blocking): see `Catalog::compact`.
    pub fn compact_catalog(&self) -> Result<()> {
        match &self.inner.catalog {
            Some(catalog) => {
                catalog.flush(self.inner.segments.as_ref(), &self.inner.index)?;
                catalog.compact()
            }
            None => Ok(()),
        }
    }

    /// Records at or below this LSN are in the catalog (all of them without a catalog).
    pub(crate) fn catalog_covered_lsn(&self) -> u64 {
        self.inner.catalog.as_ref().map_or(u64::MAX, |c| c.covered_lsn())
    }

    pub(crate) fn inflight_min_lsn(&self) -> Option<u64> {
        self.inner.inflight.min_lsn()
    }

    pub(crate) fn compaction_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.compaction
    }

    pub fn last_compaction(&self) -> Option<crate::compactor::CompactionReport> {
        self.inner.last_compaction.lock().unwrap().clone()
    }

    pub(crate) fn set_last_compaction(&self, report: crate::compactor::CompactionReport) {
        *self.inner.last_compaction.lock().unwrap() = Some(report);
    }

    pub(crate) fn evict_segments(&self, ids: &[u64]) {
        self.inner.reader.evict(ids);
    }

    async fn control<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.inner.commands.send(command(reply)).await.map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)
    }

    pub(crate) async fn track_references(&self, on: bool) -> Result<()> {
        self.control(|reply| Command::TrackReferences(on, reply)).await
    }

    /// Seals the active segment (if it holds anything).
    pub async fn roll(&self) -> Result<Option<u64>> {
        self.control(Command::Roll).await?
    }

    pub(crate) async fn install(
        &self,
        temporary_name: String,
        final_name: String,
        moved: Vec<(u64, crate::index::RecordLocation)>,
        dropped: Vec<u64>,
    ) -> Result<()> {
        self.control(|reply| {
            Command::Swap(Box::new(crate::writer::SwapRequest { temporary_name, final_name, moved, dropped, reply }))
        })
        .await?
    }

    /// Syncs and commits everything written, stops the writer, flushes the index.
    pub async fn close(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        if self.inner.commands.send(Command::Shutdown(done)).await.is_ok() {
            let _ = wait.await;
        }
        let thread = self.inner.writer_thread.lock().expect("writer handle poisoned").take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let index = self.inner.index.clone();
        tokio::task::spawn_blocking(move || index.flush()).await.map_err(|e| Error::Io(std::io::Error::other(e)))??;
        Ok(())
    }

    async fn append(&self, entry: LogEntry, payload: Bytes, durable: bool) -> Result<Appended> {
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest { entry, payload, durable, reply };
        self.inner.commands.send(Command::Append(Box::new(request))).await.map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    // ---- buckets ----

    pub async fn create_bucket(&self, bucket: &str, created_ms: i64) -> Result<()> {
        self.create_bucket_with(bucket, created_ms, NewBucket::default()).await
    }

    /// CreateBucket with its settings.
    pub async fn create_bucket_with(&self, bucket: &str, created_ms: i64, new: NewBucket) -> Result<()> {
        let NewBucket { object_lock, owner, public_access_block, object_ownership, acl } = new;
        let entry = LogEntry::BucketCreate {
            bucket: bucket.to_owned(),
            created_ms,
            object_lock,
            owner,
            public_access_block,
            object_ownership,
            acl,
        };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// PutObjectLockConfiguration: turns object lock on (for a bucket created with it, or
    /// one whose versioning is enabled; else Rejected(InvalidBucketState)) and sets its
    /// default retention.
    pub async fn set_default_retention(&self, bucket: &str, default_retention: Option<DefaultRetention>) -> Result<()> {
        let entry = LogEntry::BucketObjectLock { bucket: bucket.to_owned(), default_retention };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// PutObjectRetention of one version (the latest when `version` is none), judged
    /// now: Rejected(ObjectLocked) when the retention in force may not become `retention`.
    pub async fn set_retention(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        retention: Option<Retention>,
        bypass_governance: bool,
    ) -> Result<()> {
        let entry = LogEntry::ObjectRetention {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: version.map(|v| v.to_string()),
            retention,
            bypass_governance,
            at_ms: now_ms() as i64,
        };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// PutObjectLegalHold of one version (the latest when `version` is none).
    pub async fn set_legal_hold(&self, bucket: &str, key: &str, version: Option<VersionId>, on: bool) -> Result<()> {
        let entry = LogEntry::ObjectLegalHold {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: version.map(|v| v.to_string()),
            on,
        };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    pub async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let entry = LogEntry::BucketDelete { bucket: bucket.to_owned() };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// PutBucketVersioning. A bucket never versioned may be left so: suspending it is
    /// recorded (it then makes null versions as before, and answers Suspended).
    pub async fn set_bucket_versioning(&self, bucket: &str, status: VersioningStatus) -> Result<()> {
        let entry = LogEntry::BucketVersioning { bucket: bucket.to_owned(), status };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// PutBucketAcl.
    pub async fn set_bucket_acl(&self, bucket: &str, grants: Vec<Grant>) -> Result<()> {
        let entry = LogEntry::BucketAcl { bucket: bucket.to_owned(), grants };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// PutObjectAcl of one version (the latest when `version` is none): Rejected(NoSuchKey)
    /// if it does not exist.
    pub async fn set_object_acl(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        grants: Vec<Grant>,
    ) -> Result<()> {
        let version_id = version.map(|v| v.to_string());
        let entry = LogEntry::ObjectAcl { bucket: bucket.to_owned(), key: key.to_owned(), version_id, grants };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// Put/DeleteBucketOwnershipControls (none: delete).
    pub async fn set_object_ownership(&self, bucket: &str, ownership: Option<ObjectOwnership>) -> Result<()> {
        let entry = LogEntry::BucketOwnershipControls { bucket: bucket.to_owned(), ownership };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// Put/DeletePublicAccessBlock (none: delete).
    pub async fn set_public_access_block(&self, bucket: &str, config: Option<PublicAccessBlock>) -> Result<()> {
        let entry = LogEntry::BucketPublicAccessBlock { bucket: bucket.to_owned(), config };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// Put/DeleteBucketCors (none: delete). The rules are checked by the caller.
    pub async fn set_bucket_cors(&self, bucket: &str, rules: Option<Vec<CorsRule>>) -> Result<()> {
        let entry = LogEntry::BucketCors { bucket: bucket.to_owned(), rules };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// Put/DeleteBucketLifecycle (none: delete). The rules are checked by the caller.
    pub async fn set_bucket_lifecycle(&self, bucket: &str, rules: Option<Vec<LifecycleRule>>) -> Result<()> {
        let entry = LogEntry::BucketLifecycle { bucket: bucket.to_owned(), rules };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// Put/DeleteBucketEncryption (none: delete). The configuration is checked by the
    /// caller.
    pub async fn set_bucket_encryption(&self, bucket: &str, config: Option<BucketEncryption>) -> Result<()> {
        let entry = LogEntry::BucketEncryption { bucket: bucket.to_owned(), config };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// Put/DeleteBucketPolicy (none: delete). The document is checked by the caller.
    pub async fn set_bucket_policy(&self, bucket: &str, policy: Option<String>) -> Result<()> {
        let entry = LogEntry::BucketPolicy { bucket: bucket.to_owned(), policy };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// Put/DeleteBucketTagging (empty `tags`: delete).
    pub async fn set_bucket_tags(&self, bucket: &str, tags: BTreeMap<String, String>) -> Result<()> {
        let entry = LogEntry::BucketTagging { bucket: bucket.to_owned(), tags };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// Put/DeleteObjectTagging of one version (the latest when `version` is none):
    /// Rejected(NoSuchKey) if it does not exist or is a delete marker.
    pub async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        tags: BTreeMap<String, String>,
    ) -> Result<()> {
        let entry = LogEntry::ObjectTagging {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: version.map(|v| v.to_string()),
            tags,
        };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    pub fn bucket(&self, bucket: &str) -> Result<Option<BucketEntry>> {
        self.inner.index.bucket(bucket)
    }

    pub fn buckets(&self) -> Result<Vec<(String, BucketEntry)>> {
        self.inner.index.buckets()
    }

    // ---- users and access keys made at run time ----

    /// A user change: Rejected(EntityAlreadyExists) for a name taken, NoSuchEntity for
    /// a missing user, DeleteConflict for deleting one that has keys or buckets.
    pub async fn change_user(&self, name: &str, change: UserChange) -> Result<()> {
        let entry = LogEntry::User { name: name.to_owned(), change };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    /// An access key change: Rejected(EntityAlreadyExists) for a key taken,
    /// NoSuchEntity for a missing key or user, LimitExceeded past
    /// `MAX_ACCESS_KEYS_PER_USER`.
    pub async fn change_access_key(&self, access_key: &str, change: KeyChange) -> Result<()> {
        let entry = LogEntry::AccessKey { access_key: access_key.to_owned(), change };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }

    pub fn users(&self) -> Result<Vec<(String, UserEntry)>> {
        self.inner.index.users()
    }

    pub fn access_keys(&self) -> Result<Vec<(String, AccessKeyEntry)>> {
        self.inner.index.access_keys()
    }

    // ---- objects ----

    /// Streams a body into chunk records; see [`BodyWriter`].
    pub fn body_writer(&self) -> BodyWriter {
        BodyWriter {
            engine: self.clone(),
            buffer: BytesMut::new(),
            chunks: Vec::new(),
            size_bytes: 0,
            chunk_size_bytes: self.inner.chunk_size_bytes,
            guard: None,
        }
    }

    /// Makes `record` the current object under its key, atomically and durably.
    pub async fn put_object(&self, mut record: ObjectRecord, body: Body) -> Result<ObjectEntry> {
        let _guard = guard_of(&body);
        let payload = attach_body(&mut record.chunks, &mut record.inline, body);
        let meta = record.meta.clone();
        let chunks = record.chunks.clone();
        let inline = record.inline;
        let appended = self.append(LogEntry::Object(record), payload.clone(), true).await?;
        let chunks =
            if inline { vec![ChunkPiece { lsn: appended.lsn, len: payload.len() as u64, offset: 0 }] } else { chunks };
        Ok(made_version(appended, meta, chunks))
    }

    /// The current object under a key (not a delete marker).
    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectEntry>> {
        self.inner.index.object(bucket, key)
    }

    /// The latest version of a key, which may be a delete marker.
    pub fn latest(&self, bucket: &str, key: &str) -> Result<Option<ObjectEntry>> {
        self.inner.index.latest(bucket, key)
    }

    /// One version of a key, which may be a delete marker.
    pub fn version(&self, bucket: &str, key: &str, version: VersionId) -> Result<Option<ObjectEntry>> {
        self.inner.index.version(bucket, key, version)
    }

    /// Deletes a key (a tombstone in the log). Deleting a missing key is not an error.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<Applied> {
        self.delete_object_by(bucket, key, None, None).await
    }

    /// As `delete_object`, if `conditions` hold for the latest version (decided in the
    /// writer, so concurrent deletes have one winner), recording who asked (for the
    /// journal). In a bucket that has had versioning this adds a delete marker, even when
    /// the key has no object.
    pub async fn delete_object_by(
        &self,
        bucket: &str,
        key: &str,
        conditions: Option<DeleteConditions>,
        origin: Option<crate::Origin>,
    ) -> Result<Applied> {
        let Some(entry) = self.bucket(bucket)? else { return Err(Error::Rejected(Rejection::NoSuchBucket)) };
        // Nothing to delete: no tombstone, except that a bucket that has had versioning
        // gets a delete marker, unless the delete is conditional (its condition names a
        // version, and there is none).
        if (entry.versioning.is_none() || conditions.is_some()) && self.latest(bucket, key)?.is_none() {
            return Ok(Applied::default());
        }
        let entry = LogEntry::Tombstone {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            origin,
            version_id: None,
            deleted_ms: Some(now_ms() as i64),
            conditions,
            bypass_governance: false,
        };
        Ok(self.append(entry, Bytes::new(), true).await?.applied)
    }

    /// Removes one version of a key for good, if `conditions` hold for it and object
    /// lock does not keep it (Rejected(ObjectLocked); GOVERNANCE retention yields to
    /// `bypass_governance`). A version that does not exist is not an error (nothing is
    /// written).
    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version: VersionId,
        conditions: Option<DeleteConditions>,
        bypass_governance: bool,
        origin: Option<crate::Origin>,
    ) -> Result<Applied> {
        if self.bucket(bucket)?.is_none() {
            return Err(Error::Rejected(Rejection::NoSuchBucket));
        }
        if self.version(bucket, key, version)?.is_none() {
            return Ok(Applied::default());
        }
        let entry = LogEntry::Tombstone {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            origin,
            version_id: Some(version.to_string()),
            deleted_ms: Some(now_ms() as i64),
            conditions,
            bypass_governance,
        };
        Ok(self.append(entry, Bytes::new(), true).await?.applied)
    }

    pub fn list_object_versions(&self, bucket: &str, query: &VersionQuery) -> Result<VersionPage> {
        list_versions(&self.inner.index, bucket, query)
    }

    /// Reads `range` of an object's body, chunk by chunk, each verified. An encrypted
    /// body is never handed out as it is stored: it is decrypted when the data key
    /// opener opens its keys, else the reader yields `Error::Encrypted` (an SSE-C
    /// object needs `read_decrypted` with the keys its client's key opens).
    pub fn read(&self, object: &ObjectEntry, range: Range<u64>) -> ObjectReader {
        assert!(range.start <= range.end && range.end <= object.meta.size_bytes, "read range out of bounds");
        let Some(encryption) = &object.meta.encryption else {
            return ObjectReader { inner: ReaderKind::Stored(self.read_stored(object, range)) };
        };
        let opened = match self.inner.data_key_opener.get() {
            Some(opener) => opener.open(encryption),
            None => Err("this engine opens no data keys".to_owned()),
        };
        match opened {
            Ok(keys) => self.read_decrypted(object, range, keys),
            Err(why) => {
                let error = Error::Encrypted(format!("the object of record {} is encrypted: {why}", object.lsn));
                ObjectReader { inner: ReaderKind::Refused(Some(error)) }
            }
        }
    }

    /// Reads plaintext `range` of an encrypted object with the data key of each of its
    /// body streams (in order). A frame that does not open fails the read: bytes are
    /// never served unverified.
    pub fn read_decrypted(&self, object: &ObjectEntry, range: Range<u64>, keys: Vec<DataKey>) -> ObjectReader {
        assert!(range.start <= range.end && range.end <= object.meta.size_bytes, "read range out of bounds");
        let streams = object.meta.stream_sizes();
        assert_eq!(keys.len(), streams.len(), "one data key per body stream");
        let plan: VecDeque<StreamRead> = crate::encryption::plan_read(&streams, range).into();
        ObjectReader {
            inner: ReaderKind::Decrypting(Box::new(DecryptingReader::new(self.clone(), object, plan, keys))),
        }
    }

    /// Reads `range` of the body as stored (ciphertext, when encrypted).
    fn read_stored(&self, object: &ObjectEntry, range: Range<u64>) -> StoredReader {
        assert!(range.end <= object.meta.stored_size_bytes(), "stored range out of bounds");
        let mut pieces = VecDeque::new();
        let mut piece_start = 0u64;
        for piece in &object.chunks {
            let piece_end = piece_start + piece.len;
            let from = range.start.max(piece_start);
            let to = range.end.min(piece_end);
            if from < to {
                pieces.push_back((*piece, (from - piece_start)..(to - piece_start)));
            }
            piece_start = piece_end;
        }
        StoredReader { engine: self.clone(), pieces }
    }

    pub fn list_objects(&self, bucket: &str, query: &ListQuery) -> Result<ListPage> {
        list_objects(&self.inner.index, bucket, query)
    }

    // ---- multipart ----

    pub async fn create_upload(&self, upload: UploadRecord) -> Result<()> {
        self.append(LogEntry::UploadCreate(upload), Bytes::new(), true).await.map(|_| ())
    }

    pub async fn put_part(&self, mut part: PartRecord, body: Body) -> Result<()> {
        let _guard = guard_of(&body);
        let payload = attach_body(&mut part.chunks, &mut part.inline, body);
        self.append(LogEntry::Part(part), payload, true).await.map(|_| ())
    }

    pub async fn complete_upload(&self, upload_id: &str, object: ObjectRecord) -> Result<ObjectEntry> {
        let (meta, chunks) = (object.meta.clone(), object.chunks.clone());
        let entry = LogEntry::UploadComplete { upload_id: upload_id.to_owned(), object };
        let appended = self.append(entry, Bytes::new(), true).await?;
        Ok(made_version(appended, meta, chunks))
    }

    pub async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let entry =
            LogEntry::UploadAbort { bucket: bucket.to_owned(), key: key.to_owned(), upload_id: upload_id.to_owned() };
        self.append(entry, Bytes::new(), true).await.map(|_| ())
    }
}

/// The version an accepted object write made, as the index now holds it.
fn made_version(appended: Appended, meta: crate::ObjectMeta, chunks: Vec<ChunkPiece>) -> ObjectEntry {
    let versioned = matches!(appended.applied.version, Some(VersionId::Lsn(_)));
    ObjectEntry::new(appended.lsn, meta, chunks, versioned, false)
}

fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn guard_of(body: &Body) -> Option<Arc<InflightGuard>> {
    match body {
        Body::Streamed(_, guard) => Some(guard.clone()),
        _ => None,
    }
}

fn attach_body(chunks: &mut Vec<ChunkPiece>, inline: &mut bool, body: Body) -> Bytes {
    match body {
        Body::Inline(bytes) => {
            chunks.clear();
            *inline = true;
            bytes
        }
        Body::Chunks(pieces) | Body::Streamed(pieces, _) => {
            *chunks = pieces;
            *inline = false;
            Bytes::new()
        }
    }
}

/// Writes a streamed body as chunk records of `chunk_size_bytes`, holding at most one
/// chunk in memory. A body that ends before its first chunk is full stays in memory
/// and goes inline into the commit record.
pub struct BodyWriter {
    engine: Engine,
    buffer: BytesMut,
    chunks: Vec<ChunkPiece>,
    size_bytes: u64,
    chunk_size_bytes: usize,
    guard: Option<InflightGuard>,
}

impl BodyWriter {
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    pub async fn write(&mut self, mut data: Bytes) -> Result<()> {
        self.size_bytes += data.len() as u64;
        while !data.is_empty() {
            let room = self.chunk_size_bytes - self.buffer.len();
            let take = room.min(data.len());
            self.buffer.extend_from_slice(&data.split_to(take));
            if self.buffer.len() == self.chunk_size_bytes {
                self.flush_chunk().await?;
            }
        }
        Ok(())
    }

    async fn flush_chunk(&mut self) -> Result<()> {
        let payload = self.buffer.split().freeze();
        let len = payload.len() as u64;
        let appended = self.engine.append(LogEntry::Chunk, payload, false).await?;
        if self.guard.is_none() {
            self.guard = Some(self.engine.inner.inflight.register(appended.lsn));
        }
        self.chunks.push(ChunkPiece { lsn: appended.lsn, len, offset: 0 });
        Ok(())
    }

    pub async fn finish(mut self) -> Result<Body> {
        if self.chunks.is_empty() {
            return Ok(Body::Inline(self.buffer.freeze()));
        }
        if !self.buffer.is_empty() {
            self.flush_chunk().await?;
        }
        let guard = self.guard.take().expect("a body with chunks registered its first one");
        Ok(Body::Streamed(std::mem::take(&mut self.chunks), Arc::new(guard)))
    }
}

/// Yields an object's bytes chunk by chunk; every chunk is checksum-verified (and, when
/// encrypted, opened) before any of its bytes are returned.
pub struct ObjectReader {
    inner: ReaderKind,
}

enum ReaderKind {
    Stored(StoredReader),
    Decrypting(Box<DecryptingReader>),
    Refused(Option<Error>),
}

impl ObjectReader {
    /// True once every piece has been yielded.
    pub fn is_finished(&self) -> bool {
        match &self.inner {
            ReaderKind::Stored(reader) => reader.pieces.is_empty(),
            ReaderKind::Decrypting(reader) => reader.is_finished(),
            ReaderKind::Refused(error) => error.is_none(),
        }
    }

    pub async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        match &mut self.inner {
            ReaderKind::Stored(reader) => reader.next_chunk().await,
            ReaderKind::Decrypting(reader) => reader.next_chunk().await,
            ReaderKind::Refused(error) => error.take().map(Err),
        }
    }
}

/// Decrypts a planned read stream by stream: stored bytes are gathered into whole
/// sealed frames (at most one frame plus one chunk held), each opened before any of its
/// bytes leave.
struct DecryptingReader {
    engine: Engine,
    object: ObjectEntry,
    plan: VecDeque<StreamRead>,
    keys: Vec<DataKey>,
    current: Option<(StreamRead, StoredReader)>,
    /// Sealed bytes of the current stream not yet opened.
    pending: BytesMut,
    /// The next frame of the current stream to open, and plaintext bytes of the
    /// current read already passed (to cut to `wanted`).
    next_frame: u64,
    plain_offset: u64,
}

impl DecryptingReader {
    fn new(engine: Engine, object: &ObjectEntry, plan: VecDeque<StreamRead>, keys: Vec<DataKey>) -> Self {
        DecryptingReader {
            engine,
            object: object.clone(),
            plan,
            keys,
            current: None,
            pending: BytesMut::new(),
            next_frame: 0,
            plain_offset: 0,
        }
    }

    fn is_finished(&self) -> bool {
        self.current.is_none() && self.plan.is_empty()
    }

    async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        loop {
            let (read, mut stored) = match self.current.take() {
                Some(current) => current,
                None => {
                    let read = self.plan.pop_front()?;
                    let stored = self.engine.read_stored(&self.object, read.stored.clone());
                    self.next_frame = read.first_frame;
                    self.plain_offset = 0;
                    self.pending.clear();
                    (read, stored)
                }
            };
            let exhausted = stored.pieces.is_empty();
            let opened = self.open_held_frames(&read, exhausted);
            let out = match opened {
                Ok(out) => out,
                Err(e) => {
                    self.plan.clear();
                    return Some(Err(e));
                }
            };
            if exhausted && !self.pending.is_empty() {
                // Stored bytes ended inside a frame: the record is not what it claims.
                self.plan.clear();
                return Some(Err(Error::Corrupt(format!(
                    "the encrypted body of the object of record {} ends mid-frame",
                    self.object.lsn
                ))));
            }
            if !exhausted {
                if out.is_empty() {
                    match stored.next_chunk().await {
                        Some(Ok(bytes)) => self.pending.extend_from_slice(&bytes),
                        Some(Err(e)) => {
                            self.plan.clear();
                            return Some(Err(e));
                        }
                        None => {}
                    }
                }
                self.current = Some((read, stored));
            }
            if !out.is_empty() {
                return Some(Ok(out.freeze()));
            }
        }
    }

    /// Opens every whole frame held (a stream's last frame only once all its bytes are
    /// in) and returns the wanted part of their plaintext.
    fn open_held_frames(&mut self, read: &StreamRead, exhausted: bool) -> Result<BytesMut> {
        let last_frame = read.stream_frames - 1;
        let mut out = BytesMut::new();
        while !self.pending.is_empty() {
            let is_last = self.next_frame == last_frame;
            let need = if is_last { self.pending.len() } else { SEALED_FRAME_BYTES as usize };
            if self.pending.len() < need || (is_last && !exhausted) {
                break;
            }
            let sealed = self.pending.split_to(need);
            let Some(plain) = open_frame(&self.keys[read.stream], self.next_frame, is_last, &sealed) else {
                EngineStats::add(&self.engine.inner.stats.corrupt_reads, 1);
                return Err(Error::Encrypted(format!(
                    "a frame of the object of record {} does not open with its data key",
                    self.object.lsn
                )));
            };
            self.next_frame += 1;
            let start = self.plain_offset;
            self.plain_offset += plain.len() as u64;
            let from = read.wanted.start.max(start);
            let to = read.wanted.end.min(self.plain_offset);
            if from < to {
                out.extend_from_slice(&plain[(from - start) as usize..(to - start) as usize]);
            }
        }
        Ok(out)
    }
}

/// Reads stored bytes piece by piece.
struct StoredReader {
    engine: Engine,
    pieces: VecDeque<(ChunkPiece, Range<u64>)>,
}

impl StoredReader {
    async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        let (piece, range) = self.pieces.pop_front()?;
        Some(self.read_piece(piece, range).await)
    }

    async fn read_piece(&self, piece: ChunkPiece, range: Range<u64>) -> Result<Bytes> {
        let location = self
            .engine
            .inner
            .index
            .chunk_location(piece.lsn)?
            .ok_or_else(|| Error::Corrupt(format!("no record for chunk lsn {}", piece.lsn)))?;
        let lsn = piece.lsn;
        let read = if location.record_len <= INLINE_READ_MAX_BYTES {
            // A small read of a page most likely cached costs less than the two thread
            // hand-offs of the blocking pool (measured: GET 4 KiB, see BENCHMARKS.md).
            read_chunk_record(&self.engine, location, lsn)
        } else {
            let engine = self.engine.clone();
            tokio::task::spawn_blocking(move || read_chunk_record(&engine, location, lsn))
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))?
        };
        let record = read.inspect_err(|e| {
            if matches!(e, Error::Corrupt(_)) {
                EngineStats::add(&self.engine.inner.stats.corrupt_reads, 1);
            }
            tracing::error!(lsn = piece.lsn, "read of a damaged record refused: {e}");
        })?;
        EngineStats::add(&self.engine.inner.stats.chunk_read_bytes, record.payload.len() as u64);
        if record.prefix.lsn != piece.lsn || (record.payload.len() as u64) < piece.offset + piece.len {
            return Err(Error::Corrupt(format!("record at the location of chunk lsn {} is another record", piece.lsn)));
        }
        let start = (piece.offset + range.start) as usize;
        Ok(record.payload.slice(start..start + (range.end - range.start) as usize))
    }
}

/// Records up to this size are read on the task that asks for them; larger ones on the
/// blocking pool, so a cold multi-megabyte read never holds a runtime worker.
const INLINE_READ_MAX_BYTES: u64 = 64 * 1024;

/// Reads the record of chunk `lsn` at `location`. Compaction may have moved the record
/// and removed its old segment between the lookup and the read: then it is looked up again.
fn read_chunk_record(engine: &Engine, location: RecordLocation, lsn: u64) -> Result<DecodedRecord> {
    match engine.inner.reader.read(location) {
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            let moved = engine
                .inner
                .index
                .chunk_location(lsn)?
                .ok_or_else(|| Error::Corrupt(format!("no record for chunk lsn {lsn}")))?;
            engine.inner.reader.read(moved)
        }
        other => other,
    }
}

impl Drop for Inner {
    /// Stops the writer (it syncs what it has) and waits for it, so that the data
    /// directory is free again once the engine is gone.
    fn drop(&mut self) {
        // The catalog is derived: it stops without a last flush (the next start
        // resumes from its manifest).
        drop(self.catalog_stop.get_mut().ok().and_then(Option::take));
        if let Some(thread) = self.catalog_thread.get_mut().ok().and_then(Option::take) {
            let _ = thread.join();
        }
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.commands, closed));
        if let Some(thread) = self.writer_thread.get_mut().ok().and_then(Option::take) {
            let _ = thread.join();
        }
        // The writer held the last sender: the builder finishes its queue and stops.
        if let Some(thread) = self.sidecar_thread.get_mut().ok().and_then(Option::take) {
            let _ = thread.join();
        }
    }
}
