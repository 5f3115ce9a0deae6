//! Start-up: bring the index up to date with the log.
//!
//! The index records the position through which it has applied the log. Replay reads
//! every record after it, in order, and applies it with the same `index::apply` the
//! writer uses. A record cut off at the end of the last segment (a crash mid-write; it
//! was never acknowledged, since acknowledgement follows fsync) is truncated away.
//! Damage anywhere else is an error: it is never silently dropped.

use crate::error::{Error, Result};
use crate::index::{self, AppliedPosition, Index, Overlay, View};
use crate::io::SegmentDir;
use crate::segment::{self, segment_name};

/// Replay commits the index every this many records, to bound memory.
const REPLAY_BATCH_RECORDS: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct Recovered {
    pub active_segment_id: u64,
    pub active_len_bytes: u64,
    pub next_lsn: u64,
    pub records_replayed: u64,
    pub torn_bytes_truncated: u64,
}

pub fn replay(segments: &dyn SegmentDir, index: &Index) -> Result<Recovered> {
    let ids = segment::list_segments(segments)?;
    let applied = index.applied_position()?;
    let Some(&last_id) = ids.last() else {
        if applied.is_some_and(|a| a.lsn > 0) {
            return Err(Error::Corrupt("the index has applied records but there are no segment files".into()));
        }
        return Ok(Recovered {
            active_segment_id: 1,
            active_len_bytes: 0,
            next_lsn: 1,
            records_replayed: 0,
            torn_bytes_truncated: 0,
        });
    };
    let (start_segment, start_offset) = match applied {
        Some(a) => {
            if !ids.contains(&a.segment_id) {
                return Err(Error::Corrupt(format!("the index refers to segment {} which is missing", a.segment_id)));
            }
            (a.segment_id, a.end_offset)
        }
        None => (ids[0], 0),
    };

    let mut max_lsn = applied.map_or(0, |a| a.lsn);
    let mut replayed = 0u64;
    let mut torn = 0u64;
    let mut active_len = 0u64;
    let mut overlay = Overlay::default();
    let mut position: Option<AppliedPosition> = None;
    let empty = Overlay::default();
    for &id in ids.iter().filter(|&&id| id >= start_segment) {
        let file = segments.open(&segment_name(id), false)?;
        let from = if id == start_segment { start_offset } else { 0 };
        let file_len = file.len()?;
        if from > file_len {
            return Err(Error::Corrupt(format!(
                "the index has applied segment {id} up to byte {from} but the file has only {file_len} bytes"
            )));
        }
        let end = segment::scan(file.as_ref(), id, from, |location, record| {
            let lsn = record.prefix.lsn;
            if lsn <= max_lsn {
                return Err(Error::Corrupt(format!("LSN {lsn} in segment {id} is not above {max_lsn}")));
            }
            let mut view = View { tree: &index.tree, lower: &empty, top: &mut overlay };
            let outcome = index::apply(&mut view, &record.entry, lsn, location, record.payload.len() as u64)?;
            if let Err(rejection) = outcome {
                tracing::warn!(lsn, "replay: record rejected ({rejection}); it has no effect");
            }
            max_lsn = max_lsn.max(lsn);
            replayed += 1;
            position = Some(AppliedPosition { lsn, segment_id: id, end_offset: location.offset + location.record_len });
            if replayed.is_multiple_of(REPLAY_BATCH_RECORDS as u64) {
                index.tree.apply_batch(std::mem::take(&mut overlay).into_batch(position))?;
            }
            Ok(())
        })?;
        if let Some(damage) = end.damage {
            if id != last_id {
                return Err(Error::Corrupt(format!("damaged record in sealed segment: {damage}")));
            }
            // The unacknowledged tail of the last segment: cut it off.
            tracing::warn!("truncating a torn tail ({} bytes): {damage}", end.file_len - end.valid_end);
            torn = end.file_len - end.valid_end;
            file.set_len(end.valid_end)?;
            file.sync()?;
        }
        active_len = end.valid_end;
    }
    index.tree.apply_batch(overlay.into_batch(position))?;
    index.tree.flush()?;
    Ok(Recovered {
        active_segment_id: last_id,
        active_len_bytes: active_len,
        next_lsn: max_lsn + 1,
        records_replayed: replayed,
        torn_bytes_truncated: torn,
    })
}
