//! The one writer: appends records to the active segment with group commit.
//!
//! Requests arrive on a bounded channel. The writer takes every request waiting (up to a
//! batch limit), decides each against the index (`index::apply`; a rejected request is
//! answered at once and never written), writes the accepted records with positioned
//! writes, then — if any request asked for durability — fdatasyncs once and commits the
//! batch's index changes plus the applied-LSN watermark in one index batch. Only then are
//! the requests answered.
//!
//! Chunk records (pieces of a body still streaming in) do not ask for durability: they
//! are answered once written, and their index entries wait in `pending` until the next
//! fsync. So the index never gets ahead of what is durable in the log, and an object's
//! chunks are durable no later than its commit record.

use crate::error::{Error, Result};
use crate::index::{self, AppliedPosition, Index, Overlay, RecordLocation};
use crate::io::{SegmentDir, SegmentFile};
use crate::log_entry::LogEntry;
use crate::record::{self, EncodedRecord};
use crate::segment::segment_name;
use crate::space::SpaceGuard;
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Records smaller than this are gathered in memory and written together.
const COALESCE_LIMIT_BYTES: usize = 256 * 1024;

pub struct AppendRequest {
    pub entry: LogEntry,
    pub payload: Bytes,
    pub durable: bool,
    pub reply: oneshot::Sender<Result<Appended>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub lsn: u64,
    /// What the record did (the version it made or removed).
    pub applied: index::Applied,
}

pub enum Command {
    Append(Box<AppendRequest>),
    /// Sync and commit everything, then stop.
    Shutdown(oneshot::Sender<()>),
    /// Start (true) or stop (false) recording which chunk LSNs new records reference.
    TrackReferences(bool, oneshot::Sender<()>),
    /// Seal the active segment now (if it holds anything); answers the sealed id.
    Roll(oneshot::Sender<Result<Option<u64>>>),
    /// Install a compaction output (see `SwapRequest`).
    Swap(Box<SwapRequest>),
}

/// Installs a verified compaction output, done by the writer so that no record can
/// reference a dropped chunk between the check and the commit.
pub struct SwapRequest {
    /// The output, written and fsynced under a temporary name.
    pub temporary_name: String,
    pub final_name: String,
    /// New locations of the records with a payload that were copied.
    pub moved: Vec<(u64, RecordLocation)>,
    /// LSNs of records with a payload that were left behind.
    pub dropped: Vec<u64>,
    pub reply: oneshot::Sender<Result<()>>,
}

/// Where the log ends (after recovery): the writer appends from here.
#[derive(Debug, Clone, Copy)]
pub struct LogEnd {
    pub active_segment_id: u64,
    pub active_len_bytes: u64,
    pub next_lsn: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct WriterLimits {
    pub segment_size_limit_bytes: u64,
    pub max_batch_bytes: u64,
    pub max_batch_records: usize,
}

struct ActiveSegment {
    id: u64,
    file: Arc<dyn SegmentFile>,
    len_bytes: u64,
}

pub struct Writer {
    segments: Arc<dyn SegmentDir>,
    index: Index,
    active: ActiveSegment,
    next_lsn: u64,
    /// Applied and written, waiting for the next fsync to be committed to the index.
    pending: Overlay,
    pending_applied: Option<AppliedPosition>,
    limits: WriterLimits,
    /// Set after an fsync failure: the state of the file is unknown, so refuse writes
    /// until a restart replays the log.
    poisoned: Option<String>,
    /// Told the id of every segment this writer seals (the sidecar builder listens).
    sealed: std::sync::mpsc::Sender<u64>,
    space: Arc<SpaceGuard>,
    /// While a compaction runs: every chunk LSN referenced by a record written since it
    /// took its snapshot of the index.
    referenced: Option<HashSet<u64>>,
}

impl Writer {
    pub fn open(
        segments: Arc<dyn SegmentDir>,
        index: Index,
        log_end: LogEnd,
        limits: WriterLimits,
        sealed: std::sync::mpsc::Sender<u64>,
        space: Arc<SpaceGuard>,
    ) -> Result<Writer> {
        let LogEnd { active_segment_id, active_len_bytes, next_lsn } = log_end;
        let name = segment_name(active_segment_id);
        let file = match segments.open(&name, false) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let file = segments.open(&name, true)?;
                segments.sync_dir()?;
                file
            }
            Err(e) => return Err(e.into()),
        };
        assert!(file.len_bytes()? == active_len_bytes, "active segment length must be known exactly");
        Ok(Writer {
            segments,
            index,
            active: ActiveSegment { id: active_segment_id, file, len_bytes: active_len_bytes },
            next_lsn,
            pending: Overlay::default(),
            pending_applied: None,
            limits,
            poisoned: None,
            sealed,
            space,
            referenced: None,
        })
    }

    /// Runs until shutdown or until every sender is gone.
    pub fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        while let Some(first) = commands.blocking_recv() {
            let mut batch = Vec::new();
            let mut batch_bytes = 0u64;
            let mut shutdown = None;
            let mut control = None;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append(request) => {
                        batch_bytes += request.payload.len() as u64;
                        batch.push(*request);
                    }
                    Command::Shutdown(done) => {
                        shutdown = Some(done);
                        break;
                    }
                    other => {
                        // Control commands run after the appends received before them.
                        control = Some(other);
                        break;
                    }
                }
                if batch.len() < self.limits.max_batch_records && batch_bytes < self.limits.max_batch_bytes {
                    next = commands.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.process(batch);
            }
            if let Some(command) = control {
                self.control(command);
            }
            if let Some(done) = shutdown {
                self.finish();
                let _ = done.send(());
                return;
            }
        }
        self.finish();
    }

    fn finish(&mut self) {
        if let Err(e) = self.sync_and_commit() {
            tracing::error!("final sync of the log failed: {e}");
        }
    }

    fn process(&mut self, batch: Vec<AppendRequest>) {
        if let Some(why) = &self.poisoned {
            for request in batch {
                let _ = request.reply.send(Err(Error::Io(std::io::Error::other(why.clone()))));
            }
            return;
        }
        // Disk full: refuse at once whatever adds data; deletions go on.
        self.space.recheck();
        let batch: Vec<AppendRequest> = if self.space.is_full() {
            let (allowed, refused): (Vec<_>, Vec<_>) = batch.into_iter().partition(|r| r.entry.is_deletion());
            for request in refused {
                let _ = request.reply.send(Err(no_space()));
            }
            if allowed.is_empty() {
                return;
            }
            allowed
        } else {
            batch
        };
        // Encode first: an LSN per request (a rejected one leaves a gap, which is fine:
        // LSNs only need to increase).
        let last_lsn_before_batch = self.next_lsn - 1;
        let encoded: Vec<EncodedRecord> = batch
            .iter()
            .map(|r| {
                let lsn = self.next_lsn;
                self.next_lsn += 1;
                record::encode(lsn, &r.entry, r.payload.clone())
            })
            .collect();
        let batch_len: u64 = encoded.iter().map(|e| e.len()).sum();
        if self.active.len_bytes > 0
            && self.active.len_bytes + batch_len > self.limits.segment_size_limit_bytes
            && let Err(e) = self.roll_segment(last_lsn_before_batch)
        {
            self.fail_all(batch, &e);
            return;
        }

        let batch_start = self.active.len_bytes;
        let mut offset = batch_start;
        let mut top = Overlay::default();
        let mut accepted = Vec::with_capacity(batch.len());
        let mut write_buf: Vec<u8> = Vec::new();
        let mut write_buf_offset = offset;
        let mut write_error = None;
        for (request, rec) in batch.into_iter().zip(encoded) {
            let prefix = record::decode_prefix(&rec.head).expect("freshly encoded prefix");
            let location = RecordLocation { segment_id: self.active.id, offset, record_len: rec.len() };
            let mut view = self.index.view(&self.pending, &mut top);
            let decision = index::apply(&mut view, &request.entry, prefix.lsn, location, rec.payload.len() as u64);
            let applied = match decision {
                Err(e) => {
                    let _ = request.reply.send(Err(e));
                    continue;
                }
                Ok(Err(rejection)) => {
                    let _ = request.reply.send(Err(Error::Rejected(rejection)));
                    continue;
                }
                Ok(Ok(applied)) => applied,
            };
            if write_error.is_none() {
                write_error = self.write_record(&rec, &mut write_buf, &mut write_buf_offset).err();
            }
            offset += rec.len();
            if let Some(referenced) = self.referenced.as_mut() {
                referenced.extend(referenced_chunks(&request.entry));
            }
            accepted.push((request, Appended { lsn: prefix.lsn, applied }));
        }
        if write_error.is_none() && !write_buf.is_empty() {
            write_error = self.active.file.write_all_at(&write_buf, write_buf_offset).err();
        }
        if let Some(e) = write_error {
            if e.raw_os_error() == Some(ENOSPC) {
                self.space.on_no_space();
            }
            // Nothing of this batch was acknowledged: cut it off and go on.
            if let Err(truncate_error) = self.active.file.set_len(batch_start) {
                self.poisoned = Some(format!("could not cut off a failed write: {truncate_error}"));
            }
            let error = Error::Io(e);
            for (request, _) in accepted {
                let _ = request.reply.send(Err(clone_error(&error)));
            }
            return;
        }
        self.active.len_bytes = offset;
        let Some(last) = accepted.last().map(|(_, a)| a.lsn) else {
            return;
        };
        self.pending.absorb(top);
        self.pending_applied =
            Some(AppliedPosition { lsn: last, segment_id: self.active.id, end_offset: self.active.len_bytes });

        if accepted.iter().any(|(r, _)| r.durable)
            && let Err(e) = self.sync_and_commit()
        {
            for (request, _) in accepted {
                let _ = request.reply.send(Err(clone_error(&e)));
            }
            return;
        }
        for (request, appended) in accepted {
            let _ = request.reply.send(Ok(appended));
        }
    }

    fn control(&mut self, command: Command) {
        match command {
            Command::TrackReferences(on, done) => {
                self.referenced = on.then(HashSet::new);
                let _ = done.send(());
            }
            Command::Roll(done) => {
                let result = if self.active.len_bytes == 0 {
                    Ok(None)
                } else {
                    let id = self.active.id;
                    self.roll_segment(self.next_lsn - 1).map(|()| Some(id))
                };
                let _ = done.send(result);
            }
            Command::Swap(swap) => {
                let result = self.swap(&swap);
                let _ = swap.reply.send(result);
            }
            Command::Append(_) | Command::Shutdown(_) => unreachable!("handled by run"),
        }
    }

    fn swap(&mut self, swap: &SwapRequest) -> Result<()> {
        if let Some(referenced) = &self.referenced
            && let Some(lsn) = swap.dropped.iter().find(|lsn| referenced.contains(lsn))
        {
            return Err(Error::Rejected(crate::error::Rejection::MissingChunks)).inspect_err(|_| {
                tracing::info!(lsn, "compaction output not installed: a new record references a chunk it drops");
            });
        }
        // Everything written so far is made durable and committed first, so the batch
        // below is the only thing changing the index.
        self.sync_and_commit()?;
        // The commit point: from here the output replaces its inputs, even after a crash.
        self.segments.rename(&swap.temporary_name, &swap.final_name)?;
        self.segments.sync_dir()?;
        // The new locations must be on disk before the caller deletes the inputs: index
        // commits are not fsynced, and a crash after the deletion that lost this one
        // would leave the index pointing into deleted segments, past the replay start.
        if let Err(e) = self.index.relocate_chunks(&swap.moved, &swap.dropped).and_then(|()| self.index.flush()) {
            self.poisoned = Some(format!("the index could not take a compaction: {e}"));
            return Err(e);
        }
        Ok(())
    }

    /// Writes one record at the end of the batch so far: small ones are gathered in
    /// `buf` (which starts at `buf_offset`), large ones written straight from their
    /// buffers.
    fn write_record(&self, rec: &EncodedRecord, buf: &mut Vec<u8>, buf_offset: &mut u64) -> std::io::Result<()> {
        if rec.len() as usize <= COALESCE_LIMIT_BYTES {
            buf.extend_from_slice(&rec.head);
            buf.extend_from_slice(&rec.payload);
            buf.extend_from_slice(&rec.checksum);
            return Ok(());
        }
        let file = &self.active.file;
        let mut at = *buf_offset;
        if !buf.is_empty() {
            file.write_all_at(buf, at)?;
            at += buf.len() as u64;
            buf.clear();
        }
        file.write_all_at(&rec.head, at)?;
        at += rec.head.len() as u64;
        file.write_all_at(&rec.payload, at)?;
        at += rec.payload.len() as u64;
        file.write_all_at(&rec.checksum, at)?;
        at += rec.checksum.len() as u64;
        *buf_offset = at;
        Ok(())
    }

    /// Makes everything written durable, then publishes the pending index changes.
    fn sync_and_commit(&mut self) -> Result<()> {
        let Some(applied) = self.pending_applied else {
            return Ok(());
        };
        if let Err(e) = self.active.file.sync() {
            self.poisoned = Some(format!("fdatasync of segment {} failed: {e}", self.active.id));
            return Err(Error::Io(e));
        }
        let pending = std::mem::take(&mut self.pending);
        if let Err(e) = self.index.commit(pending, Some(applied)) {
            // The records are durable but the index lost their changes: only a replay
            // (a restart) makes the index right again.
            self.poisoned = Some(format!("the index could not be updated: {e}"));
            return Err(e);
        }
        self.pending_applied = None;
        Ok(())
    }

    /// Seals the active segment (fsync) and starts the next one. `last_lsn` is the LSN
    /// of the last record written before the roll.
    fn roll_segment(&mut self, last_lsn: u64) -> Result<()> {
        self.sync_and_commit()?;
        self.active.file.sync()?;
        let id = crate::segment::next_major(self.active.id);
        let file = self.segments.open(&segment_name(id), true)?;
        self.segments.sync_dir()?;
        // The applied position moves into the new segment: the sealed one may be
        // compacted away, and replay must not start from a segment that is gone.
        let applied = AppliedPosition { lsn: last_lsn, segment_id: id, end_offset: 0 };
        self.index.commit(Overlay::default(), Some(applied))?;
        tracing::debug!(segment = id, "started a new segment");
        let sealed_id = std::mem::replace(&mut self.active, ActiveSegment { id, file, len_bytes: 0 }).id;
        let _ = self.sealed.send(sealed_id); // no builder (shutting down): the next start builds it
        Ok(())
    }

    fn fail_all(&self, batch: Vec<AppendRequest>, error: &Error) {
        for request in batch {
            let _ = request.reply.send(Err(clone_error(error)));
        }
    }
}

/// The chunk LSNs a record makes an object or part depend on.
fn referenced_chunks(entry: &LogEntry) -> Vec<u64> {
    let pieces = match entry {
        LogEntry::Object(object) => &object.chunks,
        LogEntry::UploadComplete { object, .. } => &object.chunks,
        LogEntry::Part(part) => &part.chunks,
        _ => return Vec::new(),
    };
    pieces.iter().map(|p| p.lsn).collect()
}

const ENOSPC: i32 = 28;

fn no_space() -> Error {
    Error::Io(std::io::Error::from_raw_os_error(ENOSPC))
}

/// Errors go to many requests; keep the OS error code so "disk full" stays visible.
fn clone_error(error: &Error) -> Error {
    match error {
        Error::Io(e) => Error::Io(match e.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(e.kind(), e.to_string()),
        }),
        Error::Rejected(r) => Error::Rejected(*r),
        other => Error::Io(std::io::Error::other(other.to_string())),
    }
}
