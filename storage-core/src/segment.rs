//! Segment files: naming, scanning them record by record, and verified positioned reads.

use crate::error::{Error, Result};
use crate::index::RecordLocation;
use crate::io::{SegmentDir, SegmentFile};
use crate::record::{self, DecodedRecord, PREFIX_BYTES, RecordPrefix};
use bytes::Bytes;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::{Arc, Mutex};

pub const SEGMENT_EXTENSION: &str = "seg";

/// Segment ids are `major * GENERATIONS + generation`. The writer gives each new segment
/// the next major; compacting a run of sealed segments that ends at id `b` writes its
/// output as `b + 1`, so sorting ids still sorts records by LSN.
pub const GENERATIONS: u64 = 1 << 16;
pub const FIRST_SEGMENT_ID: u64 = GENERATIONS;

pub fn next_major(segment_id: u64) -> u64 {
    (segment_id / GENERATIONS + 1) * GENERATIONS
}

pub fn segment_name(segment_id: u64) -> String {
    format!("{segment_id:020}.{SEGMENT_EXTENSION}")
}

/// The ids of every segment file in `dir`, ascending.
pub fn list_segments(dir: &dyn SegmentDir) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for name in dir.list()? {
        if let Some(stem) = name.strip_suffix(&format!(".{SEGMENT_EXTENSION}"))
            && let Ok(id) = stem.parse::<u64>()
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// A stretch of a segment that holds no valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    pub segment_id: u64,
    pub start: u64,
    pub end: u64,
    pub what: String,
}

impl std::fmt::Display for DamagedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "segment {} bytes {}..{}: {}", self.segment_id, self.start, self.end, self.what)
    }
}

/// How a scan of a segment ended.
#[derive(Debug)]
pub struct ScanEnd {
    /// Offset just past the last valid record.
    pub valid_end: u64,
    pub file_len: u64,
    /// Damage with valid records after it (only when resyncing).
    pub damaged: Vec<DamagedRange>,
    /// Why the scan stopped before `file_len`, if it did: nothing valid follows.
    pub tail_damage: Option<String>,
}

/// Tries to read one verified record at `offset`. `Err(what)` if there is none.
pub fn record_at(
    file: &dyn SegmentFile,
    offset: u64,
    file_len: u64,
) -> Result<std::result::Result<DecodedRecord, String>> {
    if offset + PREFIX_BYTES as u64 > file_len {
        return Ok(Err("torn record prefix".into()));
    }
    let mut prefix_bytes = [0u8; PREFIX_BYTES];
    file.read_exact_at(&mut prefix_bytes, offset)?;
    let Some(prefix) = RecordPrefix::decode(&prefix_bytes) else { return Ok(Err("bad record prefix".into())) };
    let record_len = prefix.record_len();
    if offset + record_len > file_len {
        return Ok(Err("torn record".into()));
    }
    let mut bytes = vec![0u8; record_len as usize];
    file.read_exact_at(&mut bytes, offset)?;
    Ok(record::decode(Bytes::from(bytes)).map_err(|e| e.to_string()))
}

/// After damage at `from`, the offset of the next verified record, if any.
fn next_record(file: &dyn SegmentFile, from: u64, file_len: u64) -> Result<Option<u64>> {
    const WINDOW_BYTES: u64 = 1 << 20;
    let mut window_start = from;
    while window_start < file_len {
        let window_end = (window_start + WINDOW_BYTES + record::MAGIC.len() as u64).min(file_len);
        let mut window = vec![0u8; (window_end - window_start) as usize];
        file.read_exact_at(&mut window, window_start)?;
        for at in window.windows(record::MAGIC.len()).enumerate().filter(|(_, w)| *w == record::MAGIC).map(|(i, _)| i) {
            let offset = window_start + at as u64;
            if record_at(file, offset, file_len)?.is_ok() {
                return Ok(Some(offset));
            }
        }
        window_start += WINDOW_BYTES;
    }
    Ok(None)
}

/// Reads every record of a segment from `start_offset`, verifying each, and calls
/// `on_record` with its location. At a record that is torn or fails verification:
/// without `resync` the scan stops there; with `resync` it looks for the next valid
/// record and goes on, reporting the skipped stretch in `damaged`. Either way, damage
/// with nothing valid after it ends the scan (`tail_damage`).
pub fn scan(
    file: &dyn SegmentFile,
    segment_id: u64,
    start_offset: u64,
    resync: bool,
    mut on_record: impl FnMut(RecordLocation, DecodedRecord) -> Result<()>,
) -> Result<ScanEnd> {
    let file_len = file.len_bytes()?;
    let mut offset = start_offset;
    let mut damaged = Vec::new();
    while offset < file_len {
        match record_at(file, offset, file_len)? {
            Ok(decoded) => {
                let record_len = decoded.prefix.record_len();
                on_record(RecordLocation { segment_id, offset, record_len }, decoded)?;
                offset += record_len;
            }
            Err(what) => {
                let next = if resync { next_record(file, offset + 1, file_len)? } else { None };
                let Some(next) = next else {
                    let tail_damage = Some(format!("segment {segment_id} at offset {offset}: {what}"));
                    return Ok(ScanEnd { valid_end: offset, file_len, damaged, tail_damage });
                };
                damaged.push(DamagedRange { segment_id, start: offset, end: next, what });
                offset = next;
            }
        }
    }
    Ok(ScanEnd { valid_end: offset, file_len, damaged, tail_damage: None })
}

/// Positioned, verified reads of records, with open segment files cached.
pub struct SegmentReader {
    dir: Arc<dyn SegmentDir>,
    files: Mutex<HashMap<u64, Arc<dyn SegmentFile>>>,
}

impl SegmentReader {
    pub fn new(dir: Arc<dyn SegmentDir>) -> SegmentReader {
        SegmentReader { dir, files: Mutex::new(HashMap::new()) }
    }

    fn file(&self, segment_id: u64) -> Result<Arc<dyn SegmentFile>> {
        let mut files = self.files.lock().expect("segment file cache poisoned");
        if let Some(file) = files.get(&segment_id) {
            return Ok(file.clone());
        }
        let file = self.dir.open(&segment_name(segment_id), false)?;
        files.insert(segment_id, file.clone());
        Ok(file)
    }

    /// Forgets open files of segments that compaction removed.
    pub fn evict(&self, segment_ids: &[u64]) {
        let mut files = self.files.lock().expect("segment file cache poisoned");
        for id in segment_ids {
            files.remove(id);
        }
    }

    /// Reads the record at `location` and verifies its checksum. Never returns bytes that
    /// failed verification.
    pub fn read(&self, location: RecordLocation) -> Result<DecodedRecord> {
        let file = self.file(location.segment_id)?;
        let mut bytes = vec![0u8; location.record_len as usize];
        file.read_exact_at(&mut bytes, location.offset).map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                Error::Corrupt(format!("segment {} ends before the record at {}", location.segment_id, location.offset))
            } else {
                Error::Io(e)
            }
        })?;
        record::decode(Bytes::from(bytes)).map_err(|e| match e {
            Error::Corrupt(what) => {
                Error::Corrupt(format!("segment {} offset {}: {what}", location.segment_id, location.offset))
            }
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::SimDir;
    use crate::log_entry::LogEntry;

    /// Writes records with payloads of `sizes` bytes; returns their (offset, lsn, payload).
    fn write_records(file: &dyn SegmentFile, sizes: &[usize]) -> Vec<(u64, u64, Bytes)> {
        let mut offset = 0;
        let mut written = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let lsn = i as u64 + 1;
            let payload = Bytes::from((0..size).map(|b| (b as u8).wrapping_mul(lsn as u8 | 1)).collect::<Vec<u8>>());
            let encoded = record::encode(lsn, &LogEntry::Chunk, payload.clone());
            let mut bytes = encoded.head.clone();
            bytes.extend_from_slice(&encoded.payload);
            bytes.extend_from_slice(&encoded.checksum);
            file.write_all_at(&bytes, offset).unwrap();
            written.push((offset, lsn, payload));
            offset += bytes.len() as u64;
        }
        written
    }

    fn scanned(file: &dyn SegmentFile, resync: bool) -> (Vec<(u64, u64, Bytes)>, ScanEnd) {
        let mut seen = Vec::new();
        let end = scan(file, 1, 0, resync, |location, record| {
            seen.push((location.offset, record.prefix.lsn, record.payload));
            Ok(())
        })
        .unwrap();
        (seen, end)
    }

    const MIB: usize = 1 << 20;

    /// Records of many sizes, small and over a mebibyte, come back whole, in order, at
    /// their offsets.
    #[test]
    fn a_scan_reads_every_record_whole_in_order() {
        let dir = SimDir::new();
        let file = dir.open("s.seg", true).unwrap();
        let mut sizes: Vec<usize> = (0..700).map(|i| (i * 37) % 5000).collect();
        sizes.insert(300, 3 * MIB / 2);
        sizes.push(MIB - 10);
        sizes.extend([0, 1, 2]);
        let written = write_records(file.as_ref(), &sizes);
        let (seen, end) = scanned(file.as_ref(), false);
        assert_eq!(seen.len(), written.len(), "records scanned");
        assert_eq!(seen, written, "records scanned, with their offsets and payloads");
        assert_eq!((end.valid_end, end.tail_damage), (file.len_bytes().unwrap(), None));
    }

    /// A damaged record in the middle is skipped (resync) or ends the scan; a torn last
    /// record is tail damage.
    #[test]
    fn a_scan_reports_damage_where_it_is() {
        let dir = SimDir::new();
        let file = dir.open("s.seg", true).unwrap();
        let sizes: Vec<usize> = (0..400).map(|i| 3000 + i).collect();
        let written = write_records(file.as_ref(), &sizes);
        let damaged = 250;
        dir.corrupt("s.seg", written[damaged].0 + 40);
        let (seen, end) = scanned(file.as_ref(), true);
        let expected: Vec<_> =
            written.iter().enumerate().filter(|(i, _)| *i != damaged).map(|(_, r)| r.clone()).collect();
        assert_eq!(seen, expected, "every record but the damaged one");
        assert_eq!(end.damaged.len(), 1, "one damaged range: {:?}", end.damaged);
        assert_eq!((end.damaged[0].start, end.damaged[0].end), (written[damaged].0, written[damaged + 1].0));

        let (seen, end) = scanned(file.as_ref(), false);
        assert_eq!(seen, written[..damaged].to_vec(), "without resync the scan stops at the damage");
        assert_eq!(end.valid_end, written[damaged].0);

        let len = file.len_bytes().unwrap();
        file.set_len(len - 5).unwrap();
        let (seen, end) = scanned(file.as_ref(), true);
        assert_eq!(seen.len(), written.len() - 2, "the torn last record and the damaged one are not read");
        assert!(end.tail_damage.is_some(), "a torn last record is tail damage");
    }
}
