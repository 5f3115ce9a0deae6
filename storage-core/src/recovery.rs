//! Start-up: bring the index up to date with the log.
//!
//! The index records the position through which it has applied the log. Replay reads
//! every record after it, in order, and applies it with the same `index::apply` the
//! writer uses. A sealed segment is read from its sidecar when it has a valid one
//! (headers and locations only), else scanned record by record.
//!
//! Damage: a record cut off at the end of the last segment (a crash mid-write; never
//! acknowledged, since acknowledgement follows fsync) is truncated away. Any other
//! damage — inside a sealed segment, or with valid records after it — is reported
//! (log, counter, `Recovered::damaged`) and skipped; the records around it are kept.

use crate::error::{Error, Result};
use crate::index::{self, AppliedPosition, Index, Overlay, RecordLocation};
use crate::io::SegmentDir;
use crate::log_entry::LogEntry;
use crate::segment::{self, DamagedRange, segment_name};
use crate::sidecar;
use crate::stats::EngineStats;

/// Replay commits the index every this many records, to bound memory.
const REPLAY_BATCH_RECORDS: u64 = 4096;

#[derive(Debug, Clone)]
pub struct Recovered {
    pub active_segment_id: u64,
    pub active_len_bytes: u64,
    pub next_lsn: u64,
    pub records_replayed: u64,
    pub torn_bytes_truncated: u64,
    pub damaged: Vec<DamagedRange>,
}

/// Applies records in order, committing the index every `REPLAY_BATCH_RECORDS`.
struct Replayer<'a> {
    index: &'a Index,
    overlay: Overlay,
    empty: Overlay,
    position: Option<AppliedPosition>,
    max_lsn: u64,
    /// Records at or below this LSN are already in the index: skipped.
    skip_through_lsn: u64,
    replayed: u64,
}

impl Replayer<'_> {
    fn apply(&mut self, entry: &LogEntry, lsn: u64, location: RecordLocation, payload_len: u64) -> Result<()> {
        if matches!(entry, LogEntry::Replaces { .. }) {
            return Ok(()); // a compaction output's header: no LSN of its own, no effect
        }
        if lsn <= self.skip_through_lsn {
            return Ok(());
        }
        if lsn <= self.max_lsn {
            return Err(Error::Corrupt(format!(
                "LSN {lsn} in segment {} at {} is not above {}",
                location.segment_id, location.offset, self.max_lsn
            )));
        }
        let mut view = self.index.view(&self.empty, &mut self.overlay);
        // A record in the log holds its bytes whatever its logical fate: keep them addressable.
        if payload_len > 0 {
            view.register_chunk(lsn, location);
        }
        if let Err(rejection) = index::apply(&mut view, entry, lsn, location, payload_len)? {
            tracing::warn!(lsn, "replay: record rejected ({rejection}); it has no effect");
        }
        self.max_lsn = lsn;
        self.replayed += 1;
        self.position = Some(AppliedPosition {
            lsn,
            segment_id: location.segment_id,
            end_offset: location.offset + location.record_len,
        });
        if self.replayed.is_multiple_of(REPLAY_BATCH_RECORDS) {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.index.commit(std::mem::take(&mut self.overlay), self.position)
    }
}

pub fn replay(segments: &dyn SegmentDir, index: &Index, stats: &EngineStats) -> Result<Recovered> {
    let ids = segment::list_segments(segments)?;
    let applied = index.applied_position()?;
    let Some(&last_id) = ids.last() else {
        if applied.is_some_and(|a| a.lsn > 0) {
            return Err(Error::Corrupt("the index has applied records but there are no segment files".into()));
        }
        return Ok(Recovered {
            active_segment_id: segment::FIRST_SEGMENT_ID,
            active_len_bytes: 0,
            next_lsn: 1,
            records_replayed: 0,
            torn_bytes_truncated: 0,
            damaged: Vec::new(),
        });
    };
    let mut skip_through_lsn = 0;
    let (start_segment, start_offset) = match applied {
        Some(a) if ids.contains(&a.segment_id) => (a.segment_id, a.end_offset),
        Some(a) => {
            // Earlier builds could leave the position in a sealed segment that compaction
            // then replaced: its records are in the next segment (compaction outputs keep
            // LSN order), up to the applied LSN.
            let Some(&next) = ids.iter().find(|&&id| id > a.segment_id) else {
                return Err(Error::Corrupt(format!("the index refers to segment {} which is missing", a.segment_id)));
            };
            tracing::warn!(
                missing = a.segment_id,
                next,
                "the applied position names a compacted segment; resuming at the next"
            );
            skip_through_lsn = a.lsn;
            (next, 0)
        }
        None => (ids[0], 0),
    };

    let mut replayer = Replayer {
        index,
        overlay: Overlay::default(),
        empty: Overlay::default(),
        position: None,
        max_lsn: applied.map_or(0, |a| a.lsn),
        skip_through_lsn,
        replayed: 0,
    };
    let mut torn = 0u64;
    let mut active_len = 0u64;
    let mut damaged = Vec::new();
    for &id in ids.iter().filter(|&&id| id >= start_segment) {
        let file = segments.open(&segment_name(id), false)?;
        let from = if id == start_segment { start_offset } else { 0 };
        let file_len = file.len_bytes()?;
        if from > file_len {
            return Err(Error::Corrupt(format!(
                "the index has applied segment {id} up to byte {from} but the file has only {file_len} bytes"
            )));
        }
        let sealed = id != last_id;
        let from = if sealed && from < file_len {
            let from = replay_from_sidecar(segments, id, from, file_len, &mut replayer, stats)?;
            if from == file_len {
                continue;
            }
            from
        } else {
            from
        };
        let end = segment::scan(file.as_ref(), id, from, true, |location, record| {
            replayer.apply(&record.entry, record.prefix.lsn, location, record.prefix.payload_len)
        })?;
        damaged.extend(end.damaged);
        if let Some(what) = end.tail_damage {
            if sealed {
                damaged.push(DamagedRange { segment_id: id, start: end.valid_end, end: end.file_len, what });
            } else {
                // The unacknowledged tail of the last segment: cut it off.
                tracing::warn!("truncating a torn tail ({} bytes): {what}", end.file_len - end.valid_end);
                torn = end.file_len - end.valid_end;
                file.set_len(end.valid_end)?;
                file.sync()?;
            }
        }
        active_len = if sealed { end.file_len } else { end.valid_end };
    }
    // The position names the last segment even when its records end earlier (a roll
    // leaves the new segment empty): a position in a sealed segment would dangle once
    // compaction replaced that segment.
    if replayer.max_lsn > 0 {
        replayer.position =
            Some(AppliedPosition { lsn: replayer.max_lsn, segment_id: last_id, end_offset: active_len });
    }
    replayer.commit()?;
    index.flush()?;
    for range in &damaged {
        tracing::error!("damaged log region, skipped: {range}");
    }
    EngineStats::add(&stats.damaged_regions, damaged.len() as u64);
    Ok(Recovered {
        active_segment_id: last_id,
        active_len_bytes: active_len,
        next_lsn: replayer.max_lsn + 1,
        records_replayed: replayer.replayed,
        torn_bytes_truncated: torn,
        damaged,
    })
}

/// Replays a sealed segment's records from `from` using its sidecar, and returns the
/// offset the rest must be scanned from: the segment's length when the sidecar covered
/// it, `from` when there is no usable sidecar, or where a sidecar that went bad midway
/// stopped (the entries before were valid and are applied once).
fn replay_from_sidecar(
    segments: &dyn SegmentDir,
    id: u64,
    from: u64,
    file_len: u64,
    replayer: &mut Replayer<'_>,
    stats: &EngineStats,
) -> Result<u64> {
    let sidecar = match sidecar::open(segments, id) {
        Ok(Some(sidecar)) if sidecar.covered_bytes() == file_len => sidecar,
        Ok(Some(_)) => {
            EngineStats::add(&stats.sidecar_misses, 1);
            tracing::warn!(segment = id, "sidecar does not match its segment; scanning the segment");
            return Ok(from);
        }
        Ok(None) => {
            EngineStats::add(&stats.sidecar_misses, 1);
            tracing::info!(segment = id, "no sidecar; scanning the segment");
            return Ok(from);
        }
        Err(e) => {
            EngineStats::add(&stats.sidecar_misses, 1);
            tracing::warn!(segment = id, "unusable sidecar ({e}); scanning the segment");
            return Ok(from);
        }
    };
    let mut resume = from;
    let mut apply_error = None;
    let walked = sidecar.for_each(|e| {
        if e.location.offset < from {
            return Ok(());
        }
        let entry = e.entry()?;
        if let Err(error) = replayer.apply(&entry, e.lsn, e.location, e.payload_len) {
            apply_error = Some(error);
            return Err(Error::Corrupt("replay stopped".into()));
        }
        resume = e.location.offset + e.location.record_len;
        Ok(())
    });
    if let Some(error) = apply_error {
        return Err(error);
    }
    match walked {
        Ok(()) => {
            EngineStats::add(&stats.sidecar_hits, 1);
            Ok(file_len)
        }
        Err(e) => {
            EngineStats::add(&stats.sidecar_misses, 1);
            tracing::warn!(segment = id, "sidecar went bad at byte {resume} ({e}); scanning the rest");
            Ok(resume)
        }
    }
}
