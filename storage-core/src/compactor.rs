//! Segment compaction: rewrite sealed segments keeping only live records, so deleted
//! and overwritten bytes leave the disk.
//!
//! The discipline (ARCHITECTURE.md, "Compaction"):
//! * A run of adjacent sealed segments `a..=b` is rewritten into one output with id
//!   `b + 1` (the next generation), so sorting segment ids still sorts LSNs. Records keep
//!   their LSNs. The output's first record, `Replaces { segments }`, names its inputs.
//! * The output is written under a temporary name, fsynced, then read back and verified
//!   (every record's checksum, the exact list of LSNs) before anything points to it.
//! * The writer installs it: it refuses if a record written since the compactor's
//!   snapshot references a chunk the output drops; else it renames the output into place
//!   (the commit point) and repoints the index in one batch. Only then are the inputs
//!   deleted. A crash anywhere leaves either the inputs or the output in charge
//!   (`finish_interrupted` completes a committed swap at start-up).
//! * What is kept: current commit records (objects, buckets, uploads, parts), every
//!   record whose payload a current object or part references (as a plain chunk if its
//!   own header is no longer current, so a rebuild cannot bring it back to life), chunks
//!   of bodies still uploading, and each tombstone for which an older record of its key
//!   survives anywhere. Everything else goes.
//! * Erasure: a segment (the active one included) that holds dead payload bytes for half
//!   the erasure deadline is compacted whatever its dead ratio.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::index::{Index, RecordLocation};
use crate::io::SegmentDir;
use crate::log_entry::LogEntry;
use crate::record::{self, RecordKind};
use crate::segment::{self, DamagedRange, GENERATIONS, segment_name};
use crate::sidecar::{self, SidecarEntry, sidecar_name};
use crate::stats::EngineStats;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct CompactionOptions {
    /// Rewrite a sealed segment once this fraction of its bytes is dead.
    pub dead_ratio_threshold: f64,
    /// Dead object bytes leave the disk within this time.
    pub erasure_deadline_ms: u64,
    /// Rewrite every segment holding anything dead, now (the admin command).
    pub force: bool,
    /// Pace reads and writes to this rate.
    pub max_bytes_per_sec: Option<u64>,
    /// Outputs are cut at about this size.
    pub max_output_bytes: u64,
}

impl Default for CompactionOptions {
    fn default() -> CompactionOptions {
        CompactionOptions {
            dead_ratio_threshold: 0.5,
            erasure_deadline_ms: 24 * 60 * 60 * 1000,
            force: false,
            max_bytes_per_sec: None,
            max_output_bytes: 256 * 1024 * 1024,
        }
    }
}

/// How much of a segment is live.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentUsage {
    pub id: u64,
    pub bytes: u64,
    pub live_bytes: u64,
    pub dead_bytes: u64,
    /// Bytes of object data that no object references any more.
    pub dead_payload_bytes: u64,
    pub sealed: bool,
    pub dead_since_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CompactionReport {
    pub started_ms: i64,
    pub elapsed_ms: u64,
    pub segments_in: Vec<u64>,
    pub segments_out: Vec<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub records_kept: u64,
    pub records_dropped: u64,
    /// Outputs not installed because a concurrent write referenced a dropped chunk.
    pub conflicts: u64,
    /// Damaged regions met, and what was done with each (compacted around, re-encoded
    /// from the sidecar, or the segment left as it is).
    pub damaged_regions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    KeepAsChunk,
    Drop,
    /// Tombstone-like: kept unless no older record of its key survives.
    Deletion,
}

struct SegmentPlan {
    id: u64,
    bytes: u64,
    entries: Vec<SidecarEntry>,
    decoded: Vec<LogEntry>,
    fates: Vec<Fate>,
    /// Regions a scan could not read (only for a sealed segment without a sidecar).
    damaged: Vec<DamagedRange>,
    /// Index chunk locations that point into `damaged` (dropped with it).
    damaged_lsns: Vec<u64>,
    /// A damaged region may hold a live record: the segment stays as it is.
    keep_as_is: bool,
    /// Holds a record the catalog has not taken in yet: it must stay where it is.
    unflushed: bool,
    /// Its records were let go after measuring (`entries`, `decoded` and `fates` are
    /// empty): it cannot be rewritten in this pass, and a plan holds the records of
    /// the segments it may rewrite only, not of the whole log.
    light: bool,
}

impl SegmentPlan {
    fn live_bytes(&self) -> u64 {
        self.entries
            .iter()
            .zip(&self.fates)
            .filter(|(_, f)| **f != Fate::Drop)
            .map(|(e, _)| e.location.record_len)
            .sum()
    }

    fn dead_payload_bytes(&self) -> u64 {
        self.entries.iter().zip(&self.fates).filter(|(_, f)| **f == Fate::Drop).map(|(e, _)| e.payload_len).sum()
    }
}

/// What the index says is alive.
struct Liveness {
    /// LSNs of current commit records: objects (every version, delete markers
    /// included), buckets, uploads, parts.
    current: HashSet<u64>,
    /// LSN of each existing bucket's create record: versioning records written since
    /// are all kept (the state each object write saw decides what it made on replay).
    buckets: HashMap<String, u64>,
    /// Uploads whose completed object lives (as any version): their create record is
    /// kept, since replaying the completion needs the upload to exist.
    completed_uploads: HashSet<String>,
    /// Chunk LSNs referenced by current objects and parts.
    referenced: HashSet<u64>,
    /// Unreferenced chunks at or above this LSN belong to bodies still uploading.
    inflight_from: Option<u64>,
}

fn liveness(index: &Index, inflight_from: Option<u64>) -> Result<Liveness> {
    let mut live = Liveness {
        current: HashSet::new(),
        buckets: HashMap::new(),
        completed_uploads: HashSet::new(),
        referenced: HashSet::new(),
        inflight_from,
    };
    for (_, user) in index.users()? {
        live.current.insert(user.lsn);
        live.current.extend(user.disabled_lsn);
    }
    for (_, key) in index.access_keys()? {
        live.current.insert(key.lsn);
        live.current.extend(key.disabled_lsn);
    }
    for (bucket, entry) in index.buckets()? {
        live.current.insert(entry.lsn);
        live.current.extend(entry.tags_lsn);
        live.current.extend(entry.lock_lsn);
        live.current.extend(entry.policy_lsn);
        live.current.extend(entry.public_access_block_lsn);
        live.current.extend(entry.ownership_lsn);
        live.current.extend(entry.acl_lsn);
        live.current.extend(entry.cors_lsn);
        live.current.extend(entry.encryption_lsn);
        live.current.extend(entry.lifecycle_lsn);
        live.buckets.insert(bucket.clone(), entry.lsn);
        let latest = index.objects_from(&bucket, b"");
        for item in latest.chain(index.noncurrent_versions_from(&bucket, b"")) {
            let (_, object) = item?;
            live.current.insert(object.lsn);
            live.current.extend(object.tags_lsn);
            live.current.extend(object.retention_lsn);
            live.current.extend(object.legal_hold_lsn);
            live.current.extend(object.acl_lsn);
            live.referenced.extend(object.chunks.iter().map(|c| c.lsn));
            if let Some(upload_id) = object.meta.upload_id {
                live.completed_uploads.insert(upload_id);
            }
        }
        for upload in index.uploads(&bucket)? {
            live.current.insert(upload.lsn);
            for part in index.parts(&upload.upload.bucket, &upload.upload.key, &upload.upload.upload_id)? {
                live.current.insert(part.lsn);
                live.referenced.extend(part.part.chunks.iter().map(|c| c.lsn));
            }
        }
    }
    Ok(live)
}

fn fate(live: &Liveness, entry: &SidecarEntry, decoded: &LogEntry) -> Fate {
    if matches!(decoded, LogEntry::Replaces { .. }) {
        return Fate::Drop;
    }
    // A tombstone that made a delete marker still there is a version: kept.
    if live.current.contains(&entry.lsn) {
        return Fate::Keep;
    }
    if let LogEntry::UploadCreate(upload) = decoded
        && live.completed_uploads.contains(&upload.upload_id)
    {
        return Fate::Keep;
    }
    if let LogEntry::BucketVersioning { bucket, .. } = decoded {
        let of_live_bucket = live.buckets.get(bucket).is_some_and(|&created| created < entry.lsn);
        return if of_live_bucket { Fate::Keep } else { Fate::Drop };
    }
    if decoded.is_deletion() {
        return Fate::Deletion;
    }
    let referenced = live.referenced.contains(&entry.lsn);
    let uploading = entry.kind == RecordKind::Chunk && live.inflight_from.is_some_and(|from| entry.lsn >= from);
    if entry.payload_len > 0 && (referenced || uploading) {
        return if entry.kind == RecordKind::Chunk { Fate::Keep } else { Fate::KeepAsChunk };
    }
    Fate::Drop
}

/// The records of a segment, from its sidecar or by scanning it, and the regions a
/// scan of a sealed segment found damaged (it resyncs past them).
type SegmentRecords = (u64, Vec<SidecarEntry>, Vec<LogEntry>, Vec<DamagedRange>);

fn segment_records(dir: &dyn SegmentDir, id: u64, sealed: bool) -> Result<SegmentRecords> {
    let file = dir.open(&segment_name(id), false)?;
    let bytes = file.len_bytes()?;
    if sealed && let Ok(Some(entries)) = sidecar::read(dir, id) {
        let covers = entries.last().map_or(0, |e| e.location.offset + e.location.record_len) == bytes;
        let decoded: Result<Vec<LogEntry>> = entries.iter().map(SidecarEntry::entry).collect();
        if let (true, Ok(decoded)) = (covers, decoded) {
            return Ok((bytes, entries, decoded, Vec::new()));
        }
    }
    let mut entries = Vec::new();
    let mut decoded = Vec::new();
    // The active segment's tail is still being written: no resync there.
    let end = segment::scan(file.as_ref(), id, 0, sealed, |location, record| {
        entries.push(SidecarEntry {
            lsn: record.prefix.lsn,
            location,
            payload_len: record.prefix.payload_len,
            kind: record.prefix.kind,
            header: bytes::Bytes::new(),
        });
        decoded.push(record.entry);
        Ok(())
    })?;
    let mut damaged = end.damaged;
    if let (Some(what), true) = (end.tail_damage, sealed) {
        damaged.push(DamagedRange { segment_id: id, start: end.valid_end, end: end.file_len, what });
    }
    // The active segment is measured up to what is fully written.
    let measured = if sealed { bytes } else { end.valid_end.min(bytes) };
    Ok((measured, entries, decoded, damaged))
}

/// Whether a damaged region of `plan` may hold a live record: a live LSN that no
/// segment holds lies between the LSNs of the records around the region.
fn damage_may_hide_live(plan: &SegmentPlan, range: &DamagedRange, live: &Liveness, seen: &HashSet<u64>) -> bool {
    let before = plan.entries.iter().filter(|e| e.location.offset < range.start).map(|e| e.lsn).max().unwrap_or(0);
    let after = plan.entries.iter().filter(|e| e.location.offset >= range.end).map(|e| e.lsn).min().unwrap_or(u64::MAX);
    let hidden = |lsn: &u64| *lsn > before && *lsn < after && !seen.contains(lsn);
    live.current.iter().any(hidden)
        || live.referenced.iter().any(hidden)
        || live.inflight_from.is_some_and(|from| after > from)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The state of every segment and the runs of sealed segments to rewrite.
struct Plan {
    segments: Vec<SegmentPlan>,
    usage: Vec<SegmentUsage>,
    /// Indexes into `segments` of each run to rewrite.
    runs: Vec<Vec<usize>>,
    /// The active segment holds dead bytes that must go: seal it and plan again.
    roll_active: bool,
}

fn plan(engine: &Engine, options: &CompactionOptions, excluded: &HashSet<u64>) -> Result<Plan> {
    let dir = engine.segments();
    let index = engine.index();
    let live = liveness(index, engine.inflight_min_lsn())?;
    let ids = segment::list_segments(dir.as_ref())?;
    let now = now_ms();
    let mut segments = Vec::with_capacity(ids.len());
    let mut usage = Vec::with_capacity(ids.len());
    let erasure_due = |u: &SegmentUsage| {
        u.dead_payload_bytes > 0 && u.dead_since_ms.is_some_and(|t| now - t >= options.erasure_deadline_ms as i64 / 2)
    };
    let wanted_by_usage = |u: &SegmentUsage| {
        u.dead_bytes > 0
            && (options.force || u.dead_bytes as f64 >= options.dead_ratio_threshold * u.bytes as f64 || erasure_due(u))
    };
    // Records the catalog has not taken in yet must stay where they are.
    let covered = engine.catalog_covered_lsn();
    for (i, &id) in ids.iter().enumerate() {
        let sealed = i + 1 < ids.len();
        let (bytes, entries, decoded, damaged) = segment_records(dir.as_ref(), id, sealed)?;
        let fates = entries.iter().zip(&decoded).map(|(e, d)| fate(&live, e, d)).collect();
        let unflushed = entries.iter().any(|e| e.lsn > covered && e.kind != RecordKind::Replaces);
        let mut plan = SegmentPlan {
            id,
            bytes,
            entries,
            decoded,
            fates,
            damaged,
            damaged_lsns: Vec::new(),
            keep_as_is: excluded.contains(&id),
            unflushed,
            light: false,
        };
        let dead_payload = plan.dead_payload_bytes();
        let dead_since = if dead_payload > 0 {
            match index.dead_since_ms(id)? {
                Some(since) => Some(since),
                None => {
                    index.set_dead_since_ms(id, Some(now))?;
                    Some(now)
                }
            }
        } else {
            index.set_dead_since_ms(id, None)?;
            None
        };
        let live_bytes = plan.live_bytes();
        usage.push(SegmentUsage {
            id,
            bytes,
            live_bytes,
            dead_bytes: bytes.saturating_sub(live_bytes),
            dead_payload_bytes: dead_payload,
            sealed,
            dead_since_ms: dead_since,
        });
        let may_be_rewritten = sealed && !plan.keep_as_is && !plan.unflushed && wanted_by_usage(usage.last().unwrap());
        if !may_be_rewritten && plan.damaged.is_empty() {
            plan.entries = Vec::new();
            plan.decoded = Vec::new();
            plan.fates = Vec::new();
            plan.light = true;
        }
        segments.push(plan);
    }
    // Damage found by scanning: rewrite around it only if it cannot hide a live record.
    let damaged_ids: HashSet<u64> = segments.iter().filter(|p| !p.damaged.is_empty()).map(|p| p.id).collect();
    // Every LSN in the log: read again (light segments let their records go), and only
    // when there is damage to judge.
    let mut seen: HashSet<u64> = HashSet::new();
    if !damaged_ids.is_empty() {
        for_each_segment(dir.as_ref(), &ids, |_, entries, _| seen.extend(entries.iter().map(|e| e.lsn)))?;
    }
    let mut damaged_locations: HashMap<u64, Vec<(u64, RecordLocation)>> = HashMap::new();
    if !damaged_ids.is_empty() {
        for item in index.chunk_locations() {
            let (lsn, location) = item?;
            if damaged_ids.contains(&location.segment_id) {
                damaged_locations.entry(location.segment_id).or_default().push((lsn, location));
            }
        }
    }
    for plan in segments.iter_mut().filter(|p| !p.damaged.is_empty()) {
        if plan.damaged.iter().any(|range| damage_may_hide_live(plan, range, &live, &seen)) {
            plan.keep_as_is = true;
        }
        let in_damage = |l: &RecordLocation| plan.damaged.iter().any(|r| l.offset >= r.start && l.offset < r.end);
        plan.damaged_lsns = damaged_locations
            .get(&plan.id)
            .map(|found| found.iter().filter(|(_, l)| in_damage(l)).map(|(lsn, _)| *lsn).collect())
            .unwrap_or_default();
    }
    // A light segment let its records go: it is not rewritten in this pass.
    let not_rewritable: HashSet<u64> = segments.iter().filter(|p| p.keep_as_is || p.light).map(|p| p.id).collect();
    let wanted = |u: &SegmentUsage| !not_rewritable.contains(&u.id) && wanted_by_usage(u);
    let roll_active = usage.last().is_some_and(|u| u.dead_payload_bytes > 0 && (options.force || erasure_due(u)));
    let mut runs: Vec<Vec<usize>> = Vec::new();
    let mut run: Vec<usize> = Vec::new();
    let mut run_live = 0u64;
    for (i, u) in usage.iter().enumerate().filter(|(_, u)| u.sealed) {
        let continues = run.last().is_some_and(|&last| last + 1 == i);
        if !wanted(u) || !continues || run_live + u.live_bytes > options.max_output_bytes {
            if !run.is_empty() {
                runs.push(std::mem::take(&mut run));
            }
            run_live = 0;
        }
        if wanted(u) {
            run.push(i);
            run_live += u.live_bytes;
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    // An output needs a free generation after its last input.
    runs.retain(|run| !(segments[*run.last().unwrap()].id + 1).is_multiple_of(GENERATIONS));
    decide_deletions(dir.as_ref(), &ids, &mut segments, &runs)?;
    Ok(Plan { segments, usage, runs, roll_active })
}

/// Calls `each` with the records of every segment in `ids`, one segment at a time.
fn for_each_segment(
    dir: &dyn SegmentDir,
    ids: &[u64],
    mut each: impl FnMut(u64, &[SidecarEntry], &[LogEntry]),
) -> Result<()> {
    for (i, &id) in ids.iter().enumerate() {
        let (_, entries, decoded, _) = segment_records(dir, id, i + 1 < ids.len())?;
        each(id, &entries, &decoded);
    }
    Ok(())
}

/// What a deletion record cancels: the keys, buckets and uploads whose oldest surviving
/// record decides whether it may go.
#[derive(Default)]
struct Cancelled {
    /// bucket → key → oldest surviving LSN (nested so lookups borrow, never clone).
    objects: HashMap<String, HashMap<String, u64>>,
    buckets: HashMap<String, u64>,
    uploads: HashMap<String, u64>,
    users: HashMap<String, u64>,
    access_keys: HashMap<String, u64>,
}

/// Lowers the oldest LSN noted under `key`, if `key` is tracked.
fn lower(map: &mut HashMap<String, u64>, key: &str, lsn: u64) {
    if let Some(oldest) = map.get_mut(key) {
        *oldest = (*oldest).min(lsn);
    }
}

impl Cancelled {
    fn object(&self, bucket: &str, key: &str) -> Option<&u64> {
        self.objects.get(bucket).and_then(|keys| keys.get(key))
    }

    /// Notes a surviving record at `lsn`, if it is of something a deletion cancels.
    fn note(&mut self, decoded: &LogEntry, lsn: u64) {
        match decoded {
            LogEntry::Object(o) | LogEntry::UploadComplete { object: o, .. } => {
                if let Some(keys) = self.objects.get_mut(o.bucket.as_str()) {
                    lower(keys, &o.key, lsn);
                }
                lower(&mut self.buckets, &o.bucket, lsn);
            }
            LogEntry::BucketCreate { bucket, .. } => lower(&mut self.buckets, bucket, lsn),
            LogEntry::UploadCreate(u) => {
                lower(&mut self.uploads, &u.upload_id, lsn);
                lower(&mut self.buckets, &u.bucket, lsn);
            }
            LogEntry::Part(p) => lower(&mut self.uploads, &p.upload_id, lsn),
            LogEntry::User { name, .. } => lower(&mut self.users, name, lsn),
            LogEntry::AccessKey { access_key, .. } => lower(&mut self.access_keys, access_key, lsn),
            // A surviving tombstone may be a delete marker that a later version delete
            // removed: that delete must survive too.
            LogEntry::Tombstone { bucket, key, .. } => {
                if let Some(keys) = self.objects.get_mut(bucket.as_str()) {
                    lower(keys, key, lsn);
                }
            }
            _ => {}
        }
    }
}

/// A deletion record may go only if no older record that it cancels survives anywhere
/// (else a rebuild from the log would resurrect what it deleted). Segments the plan let
/// go of are read again, one at a time, and only when a rewritten segment holds a
/// deletion.
fn decide_deletions(
    dir: &dyn SegmentDir,
    ids: &[u64],
    segments: &mut [SegmentPlan],
    runs: &[Vec<usize>],
) -> Result<()> {
    let rewritten: HashSet<usize> = runs.iter().flatten().copied().collect();
    let mut cancelled = Cancelled::default();
    for &i in &rewritten {
        let plan = &segments[i];
        for (decoded, fate) in plan.decoded.iter().zip(&plan.fates) {
            if *fate != Fate::Deletion {
                continue;
            }
            match decoded {
                LogEntry::Tombstone { bucket, key, .. } => {
                    cancelled.objects.entry(bucket.clone()).or_default().insert(key.clone(), u64::MAX);
                }
                LogEntry::BucketDelete { bucket } => {
                    cancelled.buckets.insert(bucket.clone(), u64::MAX);
                }
                LogEntry::UploadAbort { upload_id, .. } => {
                    cancelled.uploads.insert(upload_id.clone(), u64::MAX);
                }
                LogEntry::User { name, .. } => {
                    cancelled.users.insert(name.clone(), u64::MAX);
                }
                LogEntry::AccessKey { access_key, .. } => {
                    cancelled.access_keys.insert(access_key.clone(), u64::MAX);
                }
                _ => {}
            }
        }
    }
    let any_deletion = !(cancelled.objects.is_empty()
        && cancelled.buckets.is_empty()
        && cancelled.uploads.is_empty()
        && cancelled.users.is_empty()
        && cancelled.access_keys.is_empty());
    if any_deletion {
        let light: HashSet<u64> = segments.iter().filter(|p| p.light).map(|p| p.id).collect();
        for (i, plan) in segments.iter().enumerate() {
            for ((entry, decoded), fate) in plan.entries.iter().zip(&plan.decoded).zip(&plan.fates) {
                if !rewritten.contains(&i) || *fate == Fate::Keep {
                    cancelled.note(decoded, entry.lsn);
                }
            }
        }
        // Light segments are never rewritten: every record in them survives.
        let light_ids: Vec<u64> = ids.iter().copied().filter(|id| light.contains(id)).collect();
        let last = ids.last().copied();
        for &id in &light_ids {
            let (_, entries, decoded, _) = segment_records(dir, id, Some(id) != last)?;
            for (entry, decoded) in entries.iter().zip(&decoded) {
                cancelled.note(decoded, entry.lsn);
            }
        }
    }
    let older = |oldest: Option<&u64>, lsn: u64| oldest.is_some_and(|&oldest| oldest < lsn);
    let mut decisions: Vec<(usize, usize, Fate)> = Vec::new();
    for &i in &rewritten {
        let plan = &segments[i];
        for (j, (entry, decoded)) in plan.entries.iter().zip(&plan.decoded).enumerate() {
            if plan.fates[j] != Fate::Deletion {
                continue;
            }
            let needed = match decoded {
                LogEntry::Tombstone { bucket, key, .. } => older(cancelled.object(bucket, key), entry.lsn),
                LogEntry::BucketDelete { bucket } => older(cancelled.buckets.get(bucket.as_str()), entry.lsn),
                LogEntry::UploadAbort { upload_id, .. } => older(cancelled.uploads.get(upload_id.as_str()), entry.lsn),
                LogEntry::User { name, .. } => older(cancelled.users.get(name.as_str()), entry.lsn),
                LogEntry::AccessKey { access_key, .. } => {
                    older(cancelled.access_keys.get(access_key.as_str()), entry.lsn)
                }
                _ => true,
            };
            decisions.push((i, j, if needed { Fate::Keep } else { Fate::Drop }));
        }
    }
    for (i, j, fate) in decisions {
        segments[i].fates[j] = fate;
    }
    // Outside rewritten segments deletions simply stay.
    for plan in segments.iter_mut() {
        for fate in plan.fates.iter_mut().filter(|f| **f == Fate::Deletion) {
            *fate = Fate::Keep;
        }
    }
    Ok(())
}

/// A verified output waiting to be installed.
struct Output {
    inputs: Vec<u64>,
    output_id: u64,
    temporary_name: String,
    moved: Vec<(u64, RecordLocation)>,
    dropped: Vec<u64>,
    bytes_in: u64,
    bytes_out: u64,
    records_kept: u64,
    records_dropped: u64,
    /// Damaged regions of the inputs that the output was written around.
    damaged: Vec<DamagedRange>,
}

/// What writing an output came to.
enum Written {
    Output(Output),
    /// A record to keep failed verification and holds bytes that cannot be rebuilt:
    /// its segment must stay as it is (the caller plans again without it).
    Damaged(DamagedRange),
}

/// Paces I/O to a rate.
struct Pacer {
    started: Instant,
    bytes: u64,
    rate: Option<u64>,
}

impl Pacer {
    fn add(&mut self, bytes: u64) {
        self.bytes += bytes;
        if let Some(rate) = self.rate.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(self.bytes as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
}

fn write_output(dir: &dyn SegmentDir, run: &[&SegmentPlan], rate: Option<u64>) -> Result<Written> {
    assert!(run.iter().all(|p| !p.light), "a run holds only segments whose records the plan kept");
    let inputs: Vec<u64> = run.iter().map(|p| p.id).collect();
    let output_id = inputs.last().unwrap() + 1;
    assert!(!output_id.is_multiple_of(GENERATIONS), "no free generation after segment {}", output_id - 1);
    if dir.list()?.contains(&segment_name(output_id)) {
        return Err(Error::Corrupt(format!("compaction output {output_id} exists already")));
    }
    let temporary_name = format!("{}.tmp", segment_name(output_id));
    let _ = dir.remove(&temporary_name);
    let result = (|| {
        let out = dir.open(&temporary_name, true)?;
        let first_lsn = run.iter().flat_map(|p| p.entries.first()).map(|e| e.lsn).next().unwrap_or(1).max(1);
        let header = record::encode(first_lsn, &LogEntry::Replaces { segments: inputs.clone() }, bytes::Bytes::new());
        let mut offset = 0u64;
        let write = |rec: &record::EncodedRecord, at: u64| -> Result<()> {
            out.write_all_at(&rec.head, at)?;
            out.write_all_at(&rec.payload, at + rec.head.len() as u64)?;
            out.write_all_at(&rec.checksum, at + rec.head.len() as u64 + rec.payload.len() as u64)?;
            Ok(())
        };
        write(&header, offset)?;
        offset += header.len();
        let mut pacer = Pacer { started: Instant::now(), bytes: 0, rate };
        let mut output = Output {
            inputs: inputs.clone(),
            output_id,
            temporary_name: temporary_name.clone(),
            moved: Vec::new(),
            dropped: Vec::new(),
            bytes_in: run.iter().map(|p| p.bytes).sum(),
            bytes_out: 0,
            records_kept: 0,
            records_dropped: 0,
            damaged: Vec::new(),
        };
        let mut expected_lsns = vec![first_lsn];
        for plan in run {
            let input = dir.open(&segment_name(plan.id), false)?;
            let input_len = input.len_bytes()?;
            // Scanned damage: nothing live in it (else the plan kept the segment as is).
            output.damaged.extend(plan.damaged.iter().cloned());
            output.dropped.extend(&plan.damaged_lsns);
            for ((entry, fate), decoded) in plan.entries.iter().zip(&plan.fates).zip(&plan.decoded) {
                if *fate == Fate::Drop {
                    output.records_dropped += 1;
                    if entry.payload_len > 0 {
                        output.dropped.push(entry.lsn);
                    }
                    continue;
                }
                // Read back verified: compaction never copies a damaged record.
                let rec = match segment::record_at(input.as_ref(), entry.location.offset, input_len)? {
                    Ok(original) => {
                        let entry_out = if *fate == Fate::KeepAsChunk { LogEntry::Chunk } else { original.entry };
                        record::encode(entry.lsn, &entry_out, original.payload)
                    }
                    Err(what) => {
                        let range = DamagedRange {
                            segment_id: plan.id,
                            start: entry.location.offset,
                            end: entry.location.offset + entry.location.record_len,
                            what: format!("record lsn {}: {what}", entry.lsn),
                        };
                        // A record without payload is all header, and the sidecar
                        // (checksummed, written from a verified scan) holds that header.
                        if entry.payload_len > 0 || entry.header.is_empty() {
                            return Ok(Written::Damaged(range));
                        }
                        output.damaged.push(DamagedRange {
                            what: format!("{} (re-encoded from the sidecar)", range.what),
                            ..range
                        });
                        record::encode(entry.lsn, decoded, bytes::Bytes::new())
                    }
                };
                write(&rec, offset)?;
                if entry.payload_len > 0 {
                    output
                        .moved
                        .push((entry.lsn, RecordLocation { segment_id: output_id, offset, record_len: rec.len() }));
                }
                offset += rec.len();
                output.records_kept += 1;
                expected_lsns.push(entry.lsn);
                pacer.add(entry.location.record_len * 2);
            }
        }
        out.sync()?;
        output.bytes_out = offset;
        // Verify before anything points at it: read every record back.
        let mut found = Vec::with_capacity(expected_lsns.len());
        let end = segment::scan(out.as_ref(), output_id, 0, false, |_, record| {
            found.push(record.prefix.lsn);
            Ok(())
        })?;
        if end.tail_damage.is_some() || end.valid_end != offset || found != expected_lsns {
            return Err(Error::Corrupt(format!(
                "compaction output {output_id} failed verification ({} records read back, {} expected)",
                found.len(),
                expected_lsns.len()
            )));
        }
        Ok(Written::Output(output))
    })();
    if !matches!(result, Ok(Written::Output(_))) {
        let _ = dir.remove(&temporary_name);
    }
    result
}

impl Engine {
    /// Measures how much of each segment is live (for `quarry admin status`).
    pub fn segment_usage(&self) -> Result<Vec<SegmentUsage>> {
        Ok(plan(self, &CompactionOptions::default(), &HashSet::new())?.usage)
    }

    /// Runs one compaction pass. One at a time; concurrent reads and writes go on.
    pub async fn compact(&self, options: CompactionOptions) -> Result<CompactionReport> {
        let _one_at_a_time = self.compaction_lock().lock().await;
        let started = Instant::now();
        let mut report = CompactionReport { started_ms: now_ms(), ..Default::default() };
        self.track_references(true).await?;
        let result = self.compact_tracked(options, &mut report).await;
        self.track_references(false).await?;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        result?;
        self.set_last_compaction(report.clone());
        Ok(report)
    }

    async fn compact_tracked(&self, options: CompactionOptions, report: &mut CompactionReport) -> Result<()> {
        // Segments found damaged while copying stay as they are; the rest is planned again.
        let mut excluded: HashSet<u64> = HashSet::new();
        let mut reported: HashSet<u64> = HashSet::new();
        'pass: loop {
            // Bring the catalog up to date first: compaction may only rewrite what it holds.
            let engine = self.clone();
            tokio::task::spawn_blocking(move || engine.flush_catalog()).await.map_err(join_error)??;
            let (engine, skip) = (self.clone(), excluded.clone());
            let mut planned =
                tokio::task::spawn_blocking(move || plan(&engine, &options, &skip)).await.map_err(join_error)??;
            if planned.roll_active {
                self.roll().await?;
                let engine = self.clone();
                tokio::task::spawn_blocking(move || engine.flush_catalog()).await.map_err(join_error)??;
                let (engine, skip) = (self.clone(), excluded.clone());
                planned =
                    tokio::task::spawn_blocking(move || plan(&engine, &options, &skip)).await.map_err(join_error)??;
            }
            for kept in planned.segments.iter().filter(|p| p.keep_as_is && !excluded.contains(&p.id)) {
                if !reported.insert(kept.id) {
                    continue;
                }
                for range in &kept.damaged {
                    tracing::error!("compaction: segment left as it is, its damage may hide a live record: {range}");
                    report.damaged_regions.push(format!("{range} (may hold a live record: segment left as it is)"));
                }
            }
            let planned = std::sync::Arc::new(planned);
            for r in 0..planned.runs.len() {
                let (engine, plan) = (self.clone(), planned.clone());
                let written = tokio::task::spawn_blocking(move || {
                    let run: Vec<&SegmentPlan> = plan.runs[r].iter().map(|&i| &plan.segments[i]).collect();
                    write_output(engine.segments().as_ref(), &run, options.max_bytes_per_sec)
                })
                .await
                .map_err(join_error)??;
                let output = match written {
                    Written::Output(output) => output,
                    Written::Damaged(range) => {
                        // Bounded: each time one more segment is left out.
                        tracing::error!("compaction: a live record is damaged, segment left as it is: {range}");
                        report.damaged_regions.push(format!("{range} (a live record: segment left as it is)"));
                        excluded.insert(range.segment_id);
                        continue 'pass;
                    }
                };
                let final_name = segment_name(output.output_id);
                match self
                    .install(output.temporary_name.clone(), final_name, output.moved.clone(), output.dropped.clone())
                    .await
                {
                    Ok(()) => {}
                    Err(Error::Rejected(_)) => {
                        let _ = self.segments().remove(&output.temporary_name);
                        report.conflicts += 1;
                        continue;
                    }
                    Err(e) => {
                        let _ = self.segments().remove(&output.temporary_name);
                        return Err(e);
                    }
                }
                // Installed: the inputs may go.
                let engine = self.clone();
                let (inputs, output_id) = (output.inputs.clone(), output.output_id);
                tokio::task::spawn_blocking(move || engine.remove_compacted(&inputs, output_id))
                    .await
                    .map_err(join_error)??;
                for range in &output.damaged {
                    tracing::error!("compaction: damaged region left out of output {}: {range}", output.output_id);
                    report.damaged_regions.push(format!("{range} (compacted around)"));
                }
                // Counted here once: the region is gone from the disk now.
                EngineStats::add(&self.stats().damaged_regions, output.damaged.len() as u64);
                report.segments_in.extend(&output.inputs);
                report.segments_out.push(output.output_id);
                report.bytes_in += output.bytes_in;
                report.bytes_out += output.bytes_out;
                report.records_kept += output.records_kept;
                report.records_dropped += output.records_dropped;
            }
            return Ok(());
        }
    }

    fn remove_compacted(&self, inputs: &[u64], output_id: u64) -> Result<()> {
        let dir = self.segments();
        self.evict_segments(inputs);
        for &id in inputs {
            dir.remove(&segment_name(id))?;
            match dir.remove(&sidecar_name(id)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            self.index().set_dead_since_ms(id, None)?;
        }
        dir.sync_dir()?;
        if let Err(e) = sidecar::build(dir.as_ref(), output_id) {
            tracing::warn!(segment = output_id, "sidecar of a compaction output not written: {e}");
        }
        Ok(())
    }
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Io(std::io::Error::other(e))
}

/// At start-up, before replay: a compaction output present under its final name was
/// installed, so inputs it names that still exist (a crash came before their removal)
/// are removed, and the index is pointed at the output. Temporary outputs are removed.
pub fn finish_interrupted(dir: &dyn SegmentDir, index: &Index) -> Result<()> {
    for name in dir.list()? {
        if name.ends_with(".seg.tmp") {
            dir.remove(&name)?;
        }
    }
    let ids = segment::list_segments(dir)?;
    let present: HashSet<u64> = ids.iter().copied().collect();
    for &id in &ids {
        let file = dir.open(&segment_name(id), false)?;
        let len = file.len_bytes()?;
        let Ok(first) = segment::record_at(file.as_ref(), 0, len)? else { continue };
        let LogEntry::Replaces { segments } = first.entry else { continue };
        let leftovers: Vec<u64> = segments.into_iter().filter(|s| present.contains(s)).collect();
        if leftovers.is_empty() {
            continue;
        }
        tracing::warn!(output = id, ?leftovers, "finishing an interrupted compaction");
        let mut moved = Vec::new();
        segment::scan(file.as_ref(), id, 0, false, |location, record| {
            if record.prefix.payload_len > 0 {
                moved.push((record.prefix.lsn, location));
            }
            Ok(())
        })?;
        // Locations of dropped records pointed into the leftovers: forget them.
        let moved_lsns: HashSet<u64> = moved.iter().map(|(lsn, _)| *lsn).collect();
        let mut dropped = Vec::new();
        for item in index.chunk_locations() {
            let (lsn, location) = item?;
            if leftovers.contains(&location.segment_id) && !moved_lsns.contains(&lsn) {
                dropped.push(lsn);
            }
        }
        index.relocate_chunks(&moved, &dropped)?;
        index.flush()?;
        for leftover in &leftovers {
            dir.remove(&segment_name(*leftover))?;
            let _ = dir.remove(&sidecar_name(*leftover));
        }
        dir.sync_dir()?;
    }
    Ok(())
}
