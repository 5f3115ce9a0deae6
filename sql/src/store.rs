//! DataFusion's view of Quarry's objects: an [`ObjectStore`] per bucket over storage-core.
//!
//! Queries read objects in-process, through `Engine::read`, so every byte is checksum
//! verified and ranged reads (Parquet footers, row groups) read only the chunks they
//! cover. The store is read-only: SQL never writes objects.
//!
//! An object's path is its key split at `/`, each part percent-encoded by `object_store`
//! (`Path::from`). Keys that do not survive that mapping (empty parts such as `a//b`,
//! or a trailing `/`) are left out of listings: DataFusion could not name them.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::ObjectStoreRegistry;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use storage_core::{Engine, ListQuery, ObjectEntry};

/// How many keys one listing step reads from the index.
const LIST_PAGE_KEYS: usize = 1000;
/// `get_ranges` reads ranges that overlap or touch (Parquet's pages and adjacent column
/// chunks) as one. Merging across gaps too, as object_store does for remote stores,
/// measured slower here: with a 1 MiB gap the 1 GiB `note LIKE` benchmark query took
/// 1.0-1.4 s against 0.95 s, each merged read pulling a whole row group serially.
const COALESCE_GAP_BYTES: u64 = 0;

/// The data keys of one encrypted object that the engine cannot open by itself (SSE-C:
/// they come from the request's customer key), tied to the version they open.
#[derive(Debug, Clone)]
pub struct ObjectKeys {
    pub lsn: u64,
    pub keys: Vec<storage_core::encryption::DataKey>,
}

/// `engine.read`, or `read_decrypted` with `keys` when they are this version's.
pub fn read_object(
    engine: &Engine,
    entry: &ObjectEntry,
    range: std::ops::Range<u64>,
    keys: Option<&ObjectKeys>,
) -> storage_core::ObjectReader {
    match keys {
        Some(keys) if keys.lsn == entry.lsn && entry.meta.encryption.is_some() => {
            engine.read_decrypted(entry, range, keys.keys.clone())
        }
        _ => engine.read(entry, range),
    }
}

/// One bucket's objects as an `ObjectStore` (read-only).
#[derive(Clone)]
pub struct BucketStore {
    engine: Engine,
    bucket: String,
    /// The keys of an SSE-C object the query may read (S3 Select with the key).
    object_keys: Option<Arc<ObjectKeys>>,
    /// Counts the object bytes read, when someone asks (S3 Select's BytesScanned).
    read_bytes: Option<Arc<AtomicU64>>,
    /// Decides each object read (and, when `list_by_key`, each key listed) for a
    /// caller that is not an admin.
    access: Option<Arc<dyn KeyAccess>>,
    list_by_key: bool,
}

impl BucketStore {
    pub fn new(engine: Engine, bucket: impl Into<String>, read_bytes: Option<Arc<AtomicU64>>) -> BucketStore {
        BucketStore { engine, bucket: bucket.into(), object_keys: None, read_bytes, access: None, list_by_key: false }
    }

    /// The store that also reads one SSE-C object, with its keys.
    pub fn with_object_keys(mut self, keys: Option<Arc<ObjectKeys>>) -> BucketStore {
        self.object_keys = keys;
        self
    }

    /// The store as a caller who is not an admin sees it.
    pub fn checked(mut self, access: Arc<dyn KeyAccess>, list_by_key: bool) -> BucketStore {
        self.access = Some(access);
        self.list_by_key = list_by_key;
        self
    }

    fn count(&self, bytes: &Bytes) {
        if let Some(counter) = &self.read_bytes {
            counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
    }

    fn entry(&self, location: &Path) -> object_store::Result<ObjectEntry> {
        let key = key_of(location);
        if let Some(access) = &self.access
            && !access.may_read(&self.bucket, &key)
        {
            return Err(object_store::Error::PermissionDenied {
                path: location.to_string(),
                source: format!("access denied to s3://{}/{key}", self.bucket).into(),
            });
        }
        match self.engine.object(&self.bucket, &key) {
            Ok(Some(entry)) => Ok(entry),
            Ok(None) => Err(object_store::Error::NotFound {
                path: location.to_string(),
                source: format!("no object s3://{}/{key}", self.bucket).into(),
            }),
            Err(e) => Err(generic(e)),
        }
    }

    /// Every object under `prefix` (a whole-part prefix, as `object_store` defines it),
    /// in key order, read page by page from the index.
    /// Bytes `range` of the object (clamped to its end), every record verified.
    async fn read_range(&self, entry: &ObjectEntry, range: std::ops::Range<u64>) -> object_store::Result<Bytes> {
        let end = range.end.min(entry.meta.size_bytes);
        let mut reader = read_object(&self.engine, entry, range.start..end, self.object_keys.as_deref());
        let mut bytes = Vec::with_capacity((end - range.start) as usize);
        while let Some(chunk) = reader.next_chunk().await {
            bytes.extend_from_slice(&chunk.map_err(generic)?);
        }
        let bytes = Bytes::from(bytes);
        self.count(&bytes);
        Ok(bytes)
    }

    fn list_keys(&self, prefix: Option<&Path>, delimiter: bool) -> object_store::Result<(Vec<ObjectMeta>, Vec<Path>)> {
        let key_prefix = match prefix {
            Some(p) if !p.as_ref().is_empty() => format!("{}/", key_of(p)),
            _ => String::new(),
        };
        let mut objects = Vec::new();
        let mut common_prefixes = BTreeSet::new();
        let mut start_after = None;
        loop {
            let query = ListQuery {
                prefix: key_prefix.clone(),
                delimiter: delimiter.then(|| "/".to_owned()),
                start_after: start_after.take(),
                max_keys: LIST_PAGE_KEYS,
            };
            let page = self.engine.list_objects(&self.bucket, &query).map_err(generic)?;
            let access = self.access.as_ref().filter(|_| self.list_by_key);
            for (key, entry) in &page.objects {
                if access.is_some_and(|access| !access.may_list(&self.bucket, key)) {
                    continue;
                }
                if let Some(location) = path_of(key) {
                    objects.push(meta_of(location, entry));
                }
            }
            for prefix in &page.common_prefixes {
                if let Some(location) = path_of(prefix.trim_end_matches('/')) {
                    common_prefixes.insert(location);
                }
            }
            if !page.is_truncated {
                break;
            }
            start_after = page.last;
        }
        Ok((objects, common_prefixes.into_iter().collect()))
    }
}

/// The object key a path names.
pub fn key_of(location: &Path) -> String {
    let parts: Vec<String> = location
        .parts()
        .map(|part| percent_encoding::percent_decode_str(part.as_ref()).decode_utf8_lossy().into_owned())
        .collect();
    parts.join("/")
}

/// The path of a key, when the key maps to one and back unchanged.
fn path_of(key: &str) -> Option<Path> {
    let location = Path::from(key);
    (key_of(&location) == key).then_some(location)
}

fn meta_of(location: Path, entry: &ObjectEntry) -> ObjectMeta {
    ObjectMeta {
        location,
        last_modified: DateTime::<Utc>::from_timestamp_millis(entry.meta.last_modified_ms).unwrap_or_default(),
        size: entry.meta.size_bytes,
        e_tag: Some(format!("\"{}\"", entry.meta.etag)),
        version: None,
    }
}

fn generic(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic { store: "quarry", source: Box::new(e) }
}

fn read_only() -> object_store::Error {
    object_store::Error::NotSupported { source: "Quarry's SQL engine reads objects; it never writes them".into() }
}

impl fmt::Display for BucketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QuarryBucket({})", self.bucket)
    }
}

impl fmt::Debug for BucketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[async_trait::async_trait]
impl ObjectStore for BucketStore {
    async fn put_opts(&self, _: &Path, _: PutPayload, _: PutOptions) -> object_store::Result<PutResult> {
        Err(read_only())
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only())
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let entry = self.entry(location)?;
        let meta = meta_of(location.clone(), &entry);
        options.check_preconditions(&meta)?;
        let range = match &options.range {
            Some(range) => range.as_range(meta.size).map_err(|e| generic(std::io::Error::other(e.to_string())))?,
            None => 0..meta.size,
        };
        let payload = if options.head {
            futures::stream::empty().boxed()
        } else {
            let reader = read_object(&self.engine, &entry, range.clone(), self.object_keys.as_deref());
            let store = self.clone();
            futures::stream::unfold(reader, |mut reader| async move {
                let chunk = reader.next_chunk().await?;
                Some((chunk.map_err(generic), reader))
            })
            .inspect(move |chunk| {
                if let Ok(bytes) = chunk {
                    store.count(bytes);
                }
            })
            .boxed()
        };
        Ok(GetResult { payload: GetResultPayload::Stream(payload), meta, range, attributes: Default::default() })
    }

    /// Ranges that overlap or touch are read as one: each read verifies whole records,
    /// so reading them one by one would read and hash a shared record again for every
    /// range in it (Parquet asks for many small adjacent pages).
    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        let entry = self.entry(location)?;
        if let Some(range) = ranges.iter().find(|range| range.start > range.end || range.start > entry.meta.size_bytes)
        {
            return Err(generic(std::io::Error::other(format!(
                "range {range:?} is not within {location} ({} bytes)",
                entry.meta.size_bytes
            ))));
        }
        let fetch = |range: std::ops::Range<u64>| {
            let store = self.clone();
            let entry = entry.clone();
            async move { store.read_range(&entry, range).await }
        };
        object_store::coalesce_ranges(ranges, fetch, COALESCE_GAP_BYTES).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations.map(|_| Err(read_only())).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.list_keys(prefix, false) {
            Ok((objects, _)) => futures::stream::iter(objects.into_iter().map(Ok)).boxed(),
            Err(e) => futures::stream::once(async { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let (objects, common_prefixes) = self.list_keys(prefix, true)?;
        Ok(ListResult { common_prefixes, objects })
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> object_store::Result<()> {
        Err(read_only())
    }
}

pub use quarry_sql_text::{BucketScope, KeyAccess};

/// Hands DataFusion a [`BucketStore`] for each `s3://<bucket>` URL the query may read, and
/// the local file system for the catalog's files, whose table paths the server builds
/// itself (a query cannot name a local path: DDL is refused and the table functions take
/// only `s3://` URLs).
pub struct QuarryStores {
    engine: Engine,
    scope: BucketScope,
    local: Arc<dyn ObjectStore>,
    read_bytes: Option<Arc<AtomicU64>>,
    object_keys: Option<Arc<ObjectKeys>>,
}

impl QuarryStores {
    pub fn new(
        engine: Engine,
        scope: BucketScope,
        read_bytes: Option<Arc<AtomicU64>>,
        object_keys: Option<Arc<ObjectKeys>>,
    ) -> QuarryStores {
        let local = Arc::new(object_store::local::LocalFileSystem::new());
        QuarryStores { engine, scope, local, read_bytes, object_keys }
    }
}

impl fmt::Debug for QuarryStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuarryStores").field("scope", &self.scope).finish_non_exhaustive()
    }
}

impl ObjectStoreRegistry for QuarryStores {
    fn register_store(&self, _: &url::Url, _: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        None
    }

    fn get_store(&self, url: &url::Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        match (url.scheme(), url.host_str()) {
            ("file", _) => Ok(self.local.clone()),
            ("s3", Some(bucket)) if self.scope.allows(bucket) => match self.engine.bucket(bucket) {
                Ok(Some(_)) => {
                    let store = BucketStore::new(self.engine.clone(), bucket, self.read_bytes.clone())
                        .with_object_keys(self.object_keys.clone());
                    Ok(Arc::new(match self.scope.key_access(bucket) {
                        Some((access, by_key)) => store.checked(access, by_key),
                        None => store,
                    }))
                }
                Ok(None) => Err(DataFusionError::Plan(format!("no such bucket: s3://{bucket}"))),
                Err(e) => Err(DataFusionError::External(Box::new(e))),
            },
            ("s3", Some(bucket)) => Err(DataFusionError::Plan(format!("access denied to s3://{bucket}"))),
            _ => Err(DataFusionError::Plan(format!("{url} is not an s3://bucket/prefix URL"))),
        }
    }
}
