//! The catalog: every change to an object as a row in Parquet, derived from the log.
//!
//! A flusher thread tails the durable part of the log (up to the index's applied
//! position) and, every `flush_interval_ms`, writes what it found as Parquet files:
//!
//! ```text
//! <data>/catalog/manifest.json                           what the catalog is made of, and the LSN it covers
//! <data>/catalog/journal/<first>-<last>.parquet          one row per change (CREATE | DELETE)
//! <data>/catalog/inventory/delta-<first>-<last>.parquet  latest state of keys created or overwritten
//! <data>/catalog/inventory/tombstones-<first>-<last>.parquet  keys deleted
//! <data>/catalog/inventory/base-<lsn>.parquet            compacted inventory (base ∪ deltas − tombstones)
//! ```
//!
//! Each file is written under a temporary name, fsynced and renamed; then the manifest
//! is replaced the same way. The manifest is the commit point: a file it does not name
//! is an orphan of a crash and is removed at start, and the flusher resumes from the
//! manifest's LSN, so no change is lost or written twice. The catalog is derived data:
//! deleting the directory rebuilds it from the log (as far as the log still holds
//! history). Segment compaction never rewrites records the catalog has not covered.

mod merge;

use crate::error::{Error, Result};
use crate::index::Index;
use crate::io::SegmentDir;
use crate::log_entry::{LogEntry, ObjectRecord, Origin};
use crate::segment::{self, segment_name};
use arrow_array::builder::{MapBuilder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, BooleanArray, MapArray, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How often the flusher looks whether `flush_after_changes` have piled up.
const CHECK_EVERY_MS: u64 = 100;
/// Rows per Parquet row group: small enough for statistics to prune by key.
const ROWS_PER_ROW_GROUP: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct CatalogConfig {
    /// A change appears in the catalog within about this long.
    pub flush_interval_ms: u64,
    /// ...or sooner, once this many records wait; also the most one flush takes.
    pub flush_after_changes: u64,
    /// Journal rows older than this are dropped when the journal is compacted.
    pub journal_retention_ms: i64,
}

impl Default for CatalogConfig {
    fn default() -> CatalogConfig {
        CatalogConfig {
            flush_interval_ms: 1000,
            flush_after_changes: 100_000,
            journal_retention_ms: 30 * 24 * 60 * 60 * 1000,
        }
    }
}

/// One row of the `journal` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRow {
    pub sequence_number: u64,
    /// "CREATE" | "UPDATE_METADATA" | "DELETE"
    pub record_type: String,
    pub record_timestamp_ms: i64,
    pub bucket: String,
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub last_modified_ms: Option<i64>,
    pub user_metadata: BTreeMap<String, String>,
    pub requester: Option<String>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
}

/// One row of the `inventory` table: a live object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryRow {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub content_type: Option<String>,
    pub last_modified_ms: i64,
    pub user_metadata: BTreeMap<String, String>,
    pub sequence_number: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    /// Every record with an LSN at or below this is in the catalog files.
    covered_lsn: u64,
    /// Where the flusher reads next (an optimization: records at or below
    /// `covered_lsn` are skipped wherever they are found).
    segment_id: u64,
    offset: u64,
    base: Option<String>,
    inventory_deltas: Vec<String>,
    tombstones: Vec<String>,
    journal: Vec<String>,
}

impl Manifest {
    fn files(&self) -> impl Iterator<Item = &String> {
        self.base.iter().chain(&self.inventory_deltas).chain(&self.tombstones).chain(&self.journal)
    }
}

/// What a change contributes to the catalog.
enum Change {
    Put(JournalRow, InventoryRow),
    Delete(JournalRow),
}

pub struct Catalog {
    dir: PathBuf,
    config: CatalogConfig,
    manifest: Mutex<Manifest>,
    covered_lsn: Arc<AtomicU64>,
    /// Failure injection for tests: file operations left before one fails (u64::MAX: never).
    operations_before_failure: AtomicU64,
    /// One clone per live [`CatalogSnapshot`]: files compaction replaced stay on disk
    /// while any snapshot (a running query) may still read them.
    pins: Arc<()>,
    /// Files no manifest names any more, removed once no snapshot is pinned. The lock
    /// also orders pinning against removal.
    retired: Mutex<Vec<String>>,
    /// Damaged regions of the log the flusher skipped (their changes are not in the
    /// catalog; scrub names the objects), each reported once.
    damaged_regions: Mutex<Vec<segment::DamagedRange>>,
}

/// The files of one manifest, kept on disk for as long as this value lives.
pub struct CatalogSnapshot {
    pub files: Vec<String>,
    _pin: Arc<()>,
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn metadata_type() -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(
            vec![Field::new("keys", DataType::Utf8, false), Field::new("values", DataType::Utf8, true)].into(),
        ),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

pub fn journal_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sequence_number", DataType::UInt64, false),
        Field::new("record_type", DataType::Utf8, false),
        Field::new("record_timestamp", timestamp_type(), false),
        Field::new("bucket", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("version_id", DataType::Utf8, true),
        Field::new("is_delete_marker", DataType::Boolean, false),
        Field::new("size", DataType::UInt64, true),
        Field::new("etag", DataType::Utf8, true),
        Field::new("content_type", DataType::Utf8, true),
        Field::new("last_modified", timestamp_type(), true),
        Field::new("user_metadata", metadata_type(), true),
        // Who made the change (null for records written before the log carried it).
        Field::new("requester", DataType::Utf8, true),
        Field::new("source_ip", DataType::Utf8, true),
        Field::new("request_id", DataType::Utf8, true),
    ]))
}

pub fn inventory_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("bucket", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("version_id", DataType::Utf8, true),
        Field::new("size", DataType::UInt64, false),
        Field::new("etag", DataType::Utf8, false),
        Field::new("content_type", DataType::Utf8, true),
        Field::new("last_modified", timestamp_type(), false),
        Field::new("user_metadata", metadata_type(), true),
        Field::new("sequence_number", DataType::UInt64, false),
    ]))
}

pub fn tombstone_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("bucket", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("sequence_number", DataType::UInt64, false),
    ]))
}

fn parquet_error(e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!("catalog: {e}")))
}

fn metadata_array<'a>(rows: impl Iterator<Item = &'a BTreeMap<String, String>>) -> Result<ArrayRef> {
    let mut builder = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for map in rows {
        for (k, v) in map {
            builder.keys().append_value(k);
            builder.values().append_value(v);
        }
        builder.append(true).map_err(parquet_error)?;
    }
    // The builder names its fields like `metadata_type()`; cast the nullability to match.
    let built = builder.finish();
    let (_, offsets, entries, nulls, ordered) = built.into_parts();
    let field = match metadata_type() {
        DataType::Map(field, _) => field,
        _ => unreachable!("metadata_type is a map"),
    };
    let entries = arrow_array::StructArray::try_new(
        match field.data_type() {
            DataType::Struct(fields) => fields.clone(),
            _ => unreachable!("map entries are a struct"),
        },
        entries.columns().to_vec(),
        None,
    )
    .map_err(parquet_error)?;
    Ok(Arc::new(MapArray::try_new(field, offsets, entries, nulls, ordered).map_err(parquet_error)?))
}

fn timestamps(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
}

fn journal_batch(rows: &[JournalRow]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.sequence_number))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.record_type.as_str()))),
        timestamps(rows.iter().map(|r| Some(r.record_timestamp_ms)).collect()),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.bucket.as_str()))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.key.as_str()))),
        Arc::new(StringArray::from(vec![None::<&str>; rows.len()])),
        Arc::new(BooleanArray::from(vec![false; rows.len()])),
        Arc::new(UInt64Array::from(rows.iter().map(|r| r.size).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| r.etag.as_deref()).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| r.content_type.as_deref()).collect::<Vec<_>>())),
        timestamps(rows.iter().map(|r| r.last_modified_ms).collect()),
        metadata_array(rows.iter().map(|r| &r.user_metadata))?,
        Arc::new(StringArray::from(rows.iter().map(|r| r.requester.as_deref()).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| r.source_ip.as_deref()).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| r.request_id.as_deref()).collect::<Vec<_>>())),
    ];
    RecordBatch::try_new(journal_schema(), columns).map_err(parquet_error)
}

fn inventory_batch(rows: &[InventoryRow]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.bucket.as_str()))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.key.as_str()))),
        Arc::new(StringArray::from(vec![None::<&str>; rows.len()])),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.size))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.etag.as_str()))),
        Arc::new(StringArray::from(rows.iter().map(|r| r.content_type.as_deref()).collect::<Vec<_>>())),
        timestamps(rows.iter().map(|r| Some(r.last_modified_ms)).collect()),
        metadata_array(rows.iter().map(|r| &r.user_metadata))?,
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.sequence_number))),
    ];
    RecordBatch::try_new(inventory_schema(), columns).map_err(parquet_error)
}

fn tombstone_batch(rows: &[(String, String, u64)]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1.as_str()))),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.2))),
    ];
    RecordBatch::try_new(tombstone_schema(), columns).map_err(parquet_error)
}

/// Marks a file whose rows are in (bucket, key, sequence_number) order, so that
/// compaction can merge it as a stream. Files without it (deltas written before the
/// mark existed) are sorted in memory, one at a time: each holds one flush at most.
const SORTED_MARK: (&str, &str) = ("quarry.sorted_by", "bucket,key,sequence_number");

/// Writes `batch` to `dir/name` atomically (temporary name, fsync, rename, dir fsync).
/// `step` is called before each file operation (failure injection in tests).
/// `sorted`: the rows are in (bucket, key, sequence_number) order (see [`SORTED_MARK`]).
fn write_parquet(
    dir: &Path,
    name: &str,
    batch: &RecordBatch,
    sorted: bool,
    step: &dyn Fn() -> Result<()>,
) -> Result<()> {
    let mut writer = ParquetFile::create(dir, name, batch.schema(), sorted, step)?;
    writer.write(batch)?;
    writer.finish().map(|_| ())
}

/// A Parquet file being written batch by batch, installed atomically by `finish`
/// (temporary name, fsync, rename, dir fsync); dropped unfinished, it leaves only a
/// temporary file, which the next start removes.
struct ParquetFile<'a> {
    dir: &'a Path,
    name: String,
    temporary: PathBuf,
    writer: ArrowWriter<std::fs::File>,
    rows: u64,
    step: &'a dyn Fn() -> Result<()>,
}

impl<'a> ParquetFile<'a> {
    fn create(
        dir: &'a Path,
        name: &'a str,
        schema: SchemaRef,
        sorted: bool,
        step: &'a dyn Fn() -> Result<()>,
    ) -> Result<ParquetFile<'a>> {
        let temporary = dir.join(format!("{name}.tmp"));
        step()?;
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROWS_PER_ROW_GROUP))
            .set_statistics_enabled(EnabledStatistics::Page);
        if sorted {
            let (key, value) = SORTED_MARK;
            properties = properties.set_key_value_metadata(Some(vec![KeyValue::new(key.into(), value.to_owned())]));
        }
        let file = std::fs::File::create(&temporary)?;
        let writer = ArrowWriter::try_new(file, schema, Some(properties.build())).map_err(parquet_error)?;
        Ok(ParquetFile { dir, name: name.to_owned(), temporary, writer, rows: 0, step })
    }

    /// Names the file something else when it is installed (a name that depends on
    /// what was written).
    fn install_as(&mut self, name: String) {
        self.name = name;
    }

    /// Gives the file up: its temporary is removed.
    fn abandon(self) {
        let temporary = self.temporary.clone();
        drop(self);
        let _ = std::fs::remove_file(temporary);
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(parquet_error)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Installs the file; returns how many rows it holds.
    fn finish(self) -> Result<u64> {
        (self.step)()?;
        let file = self.writer.into_inner().map_err(parquet_error)?;
        (self.step)()?;
        file.sync_all()?;
        (self.step)()?;
        std::fs::rename(&self.temporary, self.dir.join(&self.name))?;
        (self.step)()?;
        std::fs::File::open(self.dir)?.sync_all()?;
        Ok(self.rows)
    }
}

/// How many rows a Parquet file says it holds (from its footer).
fn parquet_rows(path: &Path) -> Result<u64> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?).map_err(parquet_error)?;
    Ok(builder.metadata().file_metadata().num_rows().max(0) as u64)
}

fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = std::fs::File::open(path)?;
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error)?.build().map_err(parquet_error)?;
    reader.map(|batch| batch.map_err(parquet_error)).collect()
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::Corrupt(format!("catalog file without a usable {name} column")))
}

fn metadata_at(maps: &MapArray, row: usize) -> BTreeMap<String, String> {
    let entries = maps.value(row);
    let keys = entries.column(0).as_any().downcast_ref::<StringArray>();
    let values = entries.column(1).as_any().downcast_ref::<StringArray>();
    match (keys, values) {
        (Some(k), Some(v)) => (0..k.len()).map(|i| (k.value(i).to_owned(), v.value(i).to_owned())).collect(),
        _ => BTreeMap::new(),
    }
}

fn inventory_rows(batch: &RecordBatch) -> Result<Vec<InventoryRow>> {
    let buckets = column::<StringArray>(batch, "bucket")?;
    let keys = column::<StringArray>(batch, "key")?;
    let sizes = column::<UInt64Array>(batch, "size")?;
    let etags = column::<StringArray>(batch, "etag")?;
    let content_types = column::<StringArray>(batch, "content_type")?;
    let modified = column::<TimestampMillisecondArray>(batch, "last_modified")?;
    let metadata = column::<MapArray>(batch, "user_metadata")?;
    let lsns = column::<UInt64Array>(batch, "sequence_number")?;
    Ok((0..batch.num_rows())
        .map(|i| InventoryRow {
            bucket: buckets.value(i).to_owned(),
            key: keys.value(i).to_owned(),
            size: sizes.value(i),
            etag: etags.value(i).to_owned(),
            content_type: (!content_types.is_null(i)).then(|| content_types.value(i).to_owned()),
            last_modified_ms: modified.value(i),
            user_metadata: metadata_at(metadata, i),
            sequence_number: lsns.value(i),
        })
        .collect())
}

fn journal_rows(batch: &RecordBatch) -> Result<Vec<JournalRow>> {
    let lsns = column::<UInt64Array>(batch, "sequence_number")?;
    let types = column::<StringArray>(batch, "record_type")?;
    let stamps = column::<TimestampMillisecondArray>(batch, "record_timestamp")?;
    let buckets = column::<StringArray>(batch, "bucket")?;
    let keys = column::<StringArray>(batch, "key")?;
    let sizes = column::<UInt64Array>(batch, "size")?;
    let etags = column::<StringArray>(batch, "etag")?;
    let content_types = column::<StringArray>(batch, "content_type")?;
    let modified = column::<TimestampMillisecondArray>(batch, "last_modified")?;
    let metadata = column::<MapArray>(batch, "user_metadata")?;
    let requesters = column::<StringArray>(batch, "requester")?;
    let source_ips = column::<StringArray>(batch, "source_ip")?;
    let request_ids = column::<StringArray>(batch, "request_id")?;
    let text = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_owned());
    Ok((0..batch.num_rows())
        .map(|i| JournalRow {
            sequence_number: lsns.value(i),
            record_type: types.value(i).to_owned(),
            record_timestamp_ms: stamps.value(i),
            bucket: buckets.value(i).to_owned(),
            key: keys.value(i).to_owned(),
            size: (!sizes.is_null(i)).then(|| sizes.value(i)),
            etag: text(etags, i),
            content_type: text(content_types, i),
            last_modified_ms: (!modified.is_null(i)).then(|| modified.value(i)),
            user_metadata: metadata_at(metadata, i),
            requester: text(requesters, i),
            source_ip: text(source_ips, i),
            request_id: text(request_ids, i),
        })
        .collect())
}

/// The catalog change a record makes. A version delete may have promoted an older
/// version: the inventory then takes the key as the index holds it now (the index is at
/// or past this record, and any later change of the key follows with a higher LSN).
fn change(entry: &LogEntry, lsn: u64, index: &Index) -> Result<Option<Change>> {
    let who = |origin: &Option<Origin>| {
        let origin = origin.clone().unwrap_or_default();
        (origin.requester, origin.source_ip, origin.request_id)
    };
    let put = |object: &ObjectRecord| {
        let meta = &object.meta;
        let (requester, source_ip, request_id) = who(&object.origin);
        Change::Put(
            JournalRow {
                sequence_number: lsn,
                record_type: "CREATE".into(),
                record_timestamp_ms: meta.last_modified_ms,
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                size: Some(meta.size_bytes),
                etag: Some(meta.etag.clone()),
                content_type: meta.content_type.clone(),
                last_modified_ms: Some(meta.last_modified_ms),
                user_metadata: meta.user_metadata.clone(),
                requester,
                source_ip,
                request_id,
            },
            InventoryRow {
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                size: meta.size_bytes,
                etag: meta.etag.clone(),
                content_type: meta.content_type.clone(),
                last_modified_ms: meta.last_modified_ms,
                user_metadata: meta.user_metadata.clone(),
                sequence_number: lsn,
            },
        )
    };
    Ok(match entry {
        LogEntry::Object(object) | LogEntry::UploadComplete { object, .. } => Some(put(object)),
        LogEntry::Tombstone { bucket, key, origin, version_id, deleted_ms, .. } => {
            let row = JournalRow {
                sequence_number: lsn,
                record_type: if version_id.is_some() { "DELETE_VERSION" } else { "DELETE" }.into(),
                record_timestamp_ms: deleted_ms.unwrap_or_else(now_ms),
                bucket: bucket.clone(),
                key: key.clone(),
                size: None,
                etag: None,
                content_type: None,
                last_modified_ms: None,
                user_metadata: BTreeMap::new(),
                requester: who(origin).0,
                source_ip: who(origin).1,
                request_id: who(origin).2,
            };
            match version_id.as_ref().map(|_| index.object(bucket, key)).transpose()?.flatten() {
                Some(current) => Some(Change::Put(
                    row,
                    InventoryRow {
                        bucket: bucket.clone(),
                        key: key.clone(),
                        size: current.meta.size_bytes,
                        etag: current.meta.etag.clone(),
                        content_type: current.meta.content_type.clone(),
                        last_modified_ms: current.meta.last_modified_ms,
                        user_metadata: current.meta.user_metadata.clone(),
                        sequence_number: lsn,
                    },
                )),
                None => Some(Change::Delete(row)),
            }
        }
        _ => None,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Catalog {
    /// Opens the catalog in `dir`: loads the manifest and removes files a crash left
    /// behind (temporary files, and files no manifest names).
    pub fn open(dir: PathBuf, config: CatalogConfig) -> Result<Catalog> {
        for sub in ["journal", "inventory"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let manifest: Manifest = match std::fs::read(dir.join("manifest.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("catalog manifest does not decode: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
            Err(e) => return Err(e.into()),
        };
        let named: HashSet<&String> = manifest.files().collect();
        for sub in ["journal", "inventory"] {
            for entry in std::fs::read_dir(dir.join(sub))? {
                let name = format!("{sub}/{}", entry?.file_name().to_string_lossy());
                if !named.contains(&name) {
                    tracing::info!("removing catalog file no manifest names: {name}");
                    std::fs::remove_file(dir.join(&name))?;
                }
            }
        }
        let covered_lsn = Arc::new(AtomicU64::new(manifest.covered_lsn));
        Ok(Catalog {
            dir,
            config,
            manifest: Mutex::new(manifest),
            covered_lsn,
            operations_before_failure: AtomicU64::new(u64::MAX),
            pins: Arc::new(()),
            retired: Mutex::new(Vec::new()),
            damaged_regions: Mutex::new(Vec::new()),
        })
    }

    /// Opens a catalog to read it only (e.g. one a running server owns): nothing is
    /// removed or written.
    pub fn read_only(dir: PathBuf) -> Result<Catalog> {
        let manifest: Manifest = match std::fs::read(dir.join("manifest.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("catalog manifest does not decode: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
            Err(e) => return Err(e.into()),
        };
        let covered_lsn = Arc::new(AtomicU64::new(manifest.covered_lsn));
        Ok(Catalog {
            dir,
            config: CatalogConfig::default(),
            manifest: Mutex::new(manifest),
            covered_lsn,
            operations_before_failure: AtomicU64::new(u64::MAX),
            pins: Arc::new(()),
            retired: Mutex::new(Vec::new()),
            damaged_regions: Mutex::new(Vec::new()),
        })
    }

    pub fn config(&self) -> CatalogConfig {
        self.config
    }

    /// Every record up to this LSN is in the catalog.
    pub fn covered_lsn(&self) -> u64 {
        self.covered_lsn.load(Ordering::SeqCst)
    }

    /// The catalog's files, relative to its directory.
    pub fn files(&self) -> Vec<String> {
        self.manifest.lock().unwrap().files().cloned().collect()
    }

    /// The current files, pinned: compaction leaves them on disk until the snapshot is
    /// dropped (a query reading them never finds one gone).
    pub fn snapshot(&self) -> CatalogSnapshot {
        let retired = self.retired.lock().unwrap();
        let pin = self.pins.clone();
        let files = self.files();
        drop(retired);
        CatalogSnapshot { files, _pin: pin }
    }

    /// Removes retired files if no snapshot is pinned (else a later call does).
    fn remove_retired(&self) {
        let mut retired = self.retired.lock().unwrap();
        if Arc::strong_count(&self.pins) > 1 {
            return;
        }
        for name in retired.drain(..) {
            if let Err(e) = self.step().and_then(|()| Ok(std::fs::remove_file(self.dir.join(&name))?)) {
                tracing::warn!("replaced catalog file {name} not removed ({e}); it goes at the next start");
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the `n`-th file operation from now fail (tests: a crash at that step).
    pub fn fail_after(&self, n: u64) {
        self.operations_before_failure.store(n, Ordering::SeqCst);
    }

    /// Counts one file operation; fails once the injected failure point is reached.
    fn step(&self) -> Result<()> {
        let left = self.operations_before_failure.load(Ordering::SeqCst);
        if left == u64::MAX {
            return Ok(());
        }
        if left == 0 {
            return Err(Error::Io(std::io::Error::other("injected catalog failure")));
        }
        self.operations_before_failure.store(left - 1, Ordering::SeqCst);
        Ok(())
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        let temporary = self.dir.join("manifest.json.tmp");
        self.step()?;
        std::fs::write(&temporary, serde_json::to_vec_pretty(manifest).expect("manifest serializes"))?;
        self.step()?;
        std::fs::File::open(&temporary)?.sync_all()?;
        self.step()?;
        std::fs::rename(&temporary, self.dir.join("manifest.json"))?;
        self.step()?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// Reads the durable log past the covered LSN and writes it to the catalog.
    /// Returns the number of changes written.
    pub fn flush(&self, segments: &dyn SegmentDir, index: &Index) -> Result<usize> {
        self.remove_retired();
        let mut manifest = self.manifest.lock().unwrap();
        let Some(applied) = index.applied_position()? else { return Ok(0) };
        if applied.lsn <= manifest.covered_lsn {
            return Ok(0);
        }
        let mut changes = Vec::new();
        let mut last = (manifest.covered_lsn, manifest.segment_id, manifest.offset);
        let ids: Vec<u64> = segment::list_segments(segments)?
            .into_iter()
            .filter(|id| *id >= manifest.segment_id && *id <= applied.segment_id)
            .collect();
        'segments: for id in ids {
            let file = segments.open(&segment_name(id), false)?;
            let from = if id == manifest.segment_id { manifest.offset } else { 0 };
            let limit = if id == applied.segment_id { applied.end_offset } else { u64::MAX };
            let mut full = false;
            // Resync past damage: a damaged record is skipped (and reported), never a
            // reason to stop taking in the records after it.
            let end = segment::scan(file.as_ref(), id, from, true, |location, record| {
                let end = location.offset + location.record_len;
                if full || end > limit || record.prefix.lsn > applied.lsn {
                    full = true; // past what is durable (or enough for one flush)
                    return Ok(());
                }
                if record.prefix.lsn > manifest.covered_lsn {
                    changes.extend(change(&record.entry, record.prefix.lsn, index)?);
                    last = (record.prefix.lsn.max(last.0), id, end);
                    full = changes.len() as u64 >= self.config.flush_after_changes.max(1);
                } else {
                    last = (last.0, id, end);
                }
                Ok(())
            })?;
            let mut damaged = end.damaged;
            if let Some(what) = end.tail_damage {
                damaged.push(segment::DamagedRange { segment_id: id, start: end.valid_end, end: end.file_len, what });
            }
            // Only damage inside the durable log is damage; past it the writer may still
            // be writing.
            self.note_damage(damaged.into_iter().filter(|range| range.start < limit));
            if full {
                break 'segments;
            }
        }
        let (covered, segment_id, offset) = last;
        if covered == manifest.covered_lsn {
            return Ok(0);
        }
        let first = manifest.covered_lsn + 1;
        let mut next = manifest.clone();
        let mut journal = Vec::new();
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for change in &changes {
            match change {
                Change::Put(row, inventory) => {
                    journal.push(row.clone());
                    upserts.push(inventory.clone());
                }
                Change::Delete(row) => {
                    deletes.push((row.bucket.clone(), row.key.clone(), row.sequence_number));
                    journal.push(row.clone());
                }
            }
        }
        if !journal.is_empty() {
            let name = format!("journal/{first:020}-{covered:020}.parquet");
            write_parquet(&self.dir, &name, &journal_batch(&journal)?, false, &|| self.step())?;
            next.journal.push(name);
        }
        // Key order lets compaction merge the deltas as streams.
        upserts.sort_by(|a, b| (&a.bucket, &a.key, a.sequence_number).cmp(&(&b.bucket, &b.key, b.sequence_number)));
        deletes.sort();
        if !upserts.is_empty() {
            let name = format!("inventory/delta-{first:020}-{covered:020}.parquet");
            write_parquet(&self.dir, &name, &inventory_batch(&upserts)?, true, &|| self.step())?;
            next.inventory_deltas.push(name);
        }
        if !deletes.is_empty() {
            let name = format!("inventory/tombstones-{first:020}-{covered:020}.parquet");
            write_parquet(&self.dir, &name, &tombstone_batch(&deletes)?, true, &|| self.step())?;
            next.tombstones.push(name);
        }
        next.covered_lsn = covered;
        next.segment_id = segment_id;
        next.offset = offset;
        self.write_manifest(&next)?;
        *manifest = next;
        self.covered_lsn.store(covered, Ordering::SeqCst);
        Ok(changes.len())
    }

    /// Logs damaged regions not reported before and keeps them for [`Self::damaged_regions`].
    fn note_damage(&self, ranges: impl Iterator<Item = segment::DamagedRange>) {
        let mut known = self.damaged_regions.lock().unwrap();
        for range in ranges {
            if known.iter().any(|k| k.segment_id == range.segment_id && k.start == range.start) {
                continue;
            }
            tracing::error!(
                "catalog: skipping a damaged region of the log (its changes are not in the catalog): {range}"
            );
            known.push(range);
        }
    }

    /// The damaged regions of the log the flusher skipped.
    pub fn damaged_regions(&self) -> Vec<String> {
        self.damaged_regions.lock().unwrap().iter().map(ToString::to_string).collect()
    }

    fn inventory_of(&self, manifest: &Manifest) -> Result<BTreeMap<(String, String), InventoryRow>> {
        let mut latest: BTreeMap<(String, String), (u64, Option<InventoryRow>)> = BTreeMap::new();
        let mut note = |key: (String, String), lsn: u64, row: Option<InventoryRow>| {
            let slot = latest.entry(key).or_insert((0, None));
            if lsn >= slot.0 {
                *slot = (lsn, row);
            }
        };
        for name in manifest.base.iter().chain(&manifest.inventory_deltas) {
            for batch in read_parquet(&self.dir.join(name))? {
                for row in inventory_rows(&batch)? {
                    note((row.bucket.clone(), row.key.clone()), row.sequence_number, Some(row));
                }
            }
        }
        for name in &manifest.tombstones {
            for batch in read_parquet(&self.dir.join(name))? {
                let buckets = column::<StringArray>(&batch, "bucket")?;
                let keys = column::<StringArray>(&batch, "key")?;
                let lsns = column::<UInt64Array>(&batch, "sequence_number")?;
                for i in 0..batch.num_rows() {
                    note((buckets.value(i).to_owned(), keys.value(i).to_owned()), lsns.value(i), None);
                }
            }
        }
        Ok(latest.into_iter().filter_map(|(k, (_, row))| row.map(|r| (k, r))).collect())
    }

    /// The live objects: base ∪ deltas, latest change per key, deleted keys hidden.
    pub fn inventory(&self) -> Result<BTreeMap<(String, String), InventoryRow>> {
        let manifest = self.manifest.lock().unwrap().clone();
        self.inventory_of(&manifest)
    }

    /// Every change, in LSN order.
    pub fn journal(&self) -> Result<Vec<JournalRow>> {
        let manifest = self.manifest.lock().unwrap().clone();
        let mut rows = Vec::new();
        for name in &manifest.journal {
            for batch in read_parquet(&self.dir.join(name))? {
                rows.extend(journal_rows(&batch)?);
            }
        }
        rows.sort_by_key(|r| r.sequence_number);
        Ok(rows)
    }

    /// Catalog compaction: base + deltas − tombstones into one new base (sorted by
    /// bucket and key), the journal into one file (rows past retention dropped), both
    /// streamed ([`merge`]). Each output's row count is checked against its footer before
    /// the manifest points to it; only then are the inputs deleted.
    pub fn compact(&self) -> Result<()> {
        let mut manifest = self.manifest.lock().unwrap();
        if manifest.inventory_deltas.is_empty() && manifest.tombstones.is_empty() && manifest.journal.len() <= 1 {
            return Ok(());
        }
        let mut next = manifest.clone();
        let covered = manifest.covered_lsn;
        let step = || self.step();
        let base = format!("inventory/base-{covered:020}.parquet");
        let mut output = ParquetFile::create(&self.dir, &base, inventory_schema(), true, &step)?;
        let inputs = merge::InventoryInputs {
            base: manifest.base.as_ref(),
            deltas: &manifest.inventory_deltas,
            tombstones: &manifest.tombstones,
        };
        let rows = merge::merge_inventory(&self.dir, inputs, &mut output)?;
        let written = output.finish()?;
        let stored = parquet_rows(&self.dir.join(&base))?;
        if stored != rows || written != rows {
            let _ = std::fs::remove_file(self.dir.join(&base));
            return Err(Error::Corrupt(format!("new catalog base has {stored} rows, expected {rows}")));
        }
        next.base = Some(base);
        next.inventory_deltas.clear();
        next.tombstones.clear();

        let oldest_kept = now_ms() - self.config.journal_retention_ms;
        let merging = format!("journal/merging-{covered:020}.parquet");
        let mut output = ParquetFile::create(&self.dir, &merging, journal_schema(), false, &step)?;
        let (rows, first) = merge::concat_journal(&self.dir, &manifest.journal, oldest_kept, &mut output)?;
        next.journal.clear();
        match first {
            None => output.abandon(),
            Some(first) => {
                let name = format!("journal/{first:020}-{covered:020}.merged.parquet");
                output.install_as(name.clone());
                output.finish()?;
                let stored = parquet_rows(&self.dir.join(&name))?;
                if stored != rows {
                    return Err(Error::Corrupt(format!("merged journal has {stored} rows, expected {rows}")));
                }
                next.journal.push(name);
            }
        }
        self.write_manifest(&next)?;
        // The manifest is the commit point: from here the inputs are orphans, removed now
        // or, if that fails, at the next start.
        // Running queries may still read them: they go once no snapshot is pinned.
        let keep: HashSet<&String> = next.files().collect();
        let inputs: Vec<String> = manifest.files().filter(|f| !keep.contains(f)).cloned().collect();
        *manifest = next;
        drop(manifest);
        self.retired.lock().unwrap().extend(inputs);
        self.remove_retired();
        Ok(())
    }
}

/// Flushes every `flush_interval_ms`, or as soon as `flush_after_changes` records wait,
/// until `stop` is dropped or signalled.
pub fn run_flusher(
    catalog: Arc<Catalog>,
    segments: Arc<dyn SegmentDir>,
    index: Index,
    stop: std::sync::mpsc::Receiver<()>,
) {
    let config = catalog.config();
    let interval = std::time::Duration::from_millis(config.flush_interval_ms.max(10));
    let check = std::time::Duration::from_millis(CHECK_EVERY_MS.min(config.flush_interval_ms.max(10)));
    let mut last_flush = std::time::Instant::now();
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(check) {
        // LSNs count records, so this over-counts changes (chunks are records too):
        // it only makes the flush come a little early.
        let waiting =
            index.applied_position().ok().flatten().map_or(0, |a| a.lsn.saturating_sub(catalog.covered_lsn()));
        if last_flush.elapsed() < interval && waiting < config.flush_after_changes {
            continue;
        }
        last_flush = std::time::Instant::now();
        if let Err(e) = catalog.flush(segments.as_ref(), &index) {
            tracing::warn!("catalog flush failed (will retry): {e}");
        }
    }
}
