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

mod changes;
mod merge;
mod rows;

pub use rows::{InventoryRow, JournalRow, LockColumns, inventory_schema, journal_schema, tombstone_schema};

use crate::error::{Error, Result};
use crate::index::Index;
use crate::io::SegmentDir;
use crate::segment::{self, segment_name};
use arrow_array::{RecordBatch, StringArray, UInt64Array};
use arrow_schema::SchemaRef;
use changes::{Change, Versioning};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use rows::{column, inventory_batch, inventory_rows, journal_batch, journal_rows, tombstone_batch};
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
    /// Each bucket's versioning state as of `covered_lsn`: what names the versions the
    /// next records make. None in manifests written before the catalog carried
    /// versions: the first flush then takes the index's current state, so rows of
    /// buckets whose versioning changed after that catalog's LSN may name the
    /// wrong kind of version (an LSN id for a null version, or the reverse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    versioning: Option<Versioning>,
}

impl Manifest {
    fn files(&self) -> impl Iterator<Item = &String> {
        self.base.iter().chain(&self.inventory_deltas).chain(&self.tombstones).chain(&self.journal)
    }
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

/// Each bucket's versioning state as the index holds it now.
fn current_versioning(index: &Index) -> Result<Versioning> {
    Ok(index.buckets()?.into_iter().filter_map(|(name, bucket)| bucket.versioning.map(|v| (name, v))).collect())
}

fn parquet_error(e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!("catalog: {e}")))
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
        let mut versioning = match &manifest.versioning {
            Some(versioning) => versioning.clone(),
            // A catalog starting from the beginning follows the log from the beginning.
            None if manifest.covered_lsn == 0 => Versioning::new(),
            None => current_versioning(index)?,
        };
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
                    changes.extend(changes::change(&record.entry, record.prefix.lsn, index, &versioning)?);
                    changes::follow_versioning(&record.entry, &mut versioning);
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
                    upserts.push(inventory.as_ref().clone());
                }
                Change::Delete(row) => {
                    deletes.push((row.bucket.clone(), row.key.clone(), row.sequence_number));
                    journal.push(row.clone());
                }
                Change::Journal(row) => journal.push(row.clone()),
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
        next.versioning = Some(versioning);
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
