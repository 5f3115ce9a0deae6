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

/// How a scan of a segment ended.
#[derive(Debug)]
pub struct ScanEnd {
    /// Offset just past the last valid record.
    pub valid_end: u64,
    pub file_len: u64,
    /// Why the scan stopped before `file_len`, if it did.
    pub damage: Option<String>,
}

/// Reads every record of a segment from `start_offset`, verifying each, and calls
/// `on_record` with its location. Stops at the end of the file or at the first record
/// that is torn or fails verification (reported in `ScanEnd::damage`).
pub fn scan(
    file: &dyn SegmentFile,
    segment_id: u64,
    start_offset: u64,
    mut on_record: impl FnMut(RecordLocation, DecodedRecord) -> Result<()>,
) -> Result<ScanEnd> {
    let file_len = file.len()?;
    let mut offset = start_offset;
    let damage = |offset: u64, what: String| format!("segment {segment_id} at offset {offset}: {what}");
    while offset < file_len {
        let mut prefix_bytes = [0u8; PREFIX_BYTES];
        if offset + PREFIX_BYTES as u64 > file_len {
            return Ok(ScanEnd {
                valid_end: offset,
                file_len,
                damage: Some(damage(offset, "torn record prefix".into())),
            });
        }
        file.read_exact_at(&mut prefix_bytes, offset)?;
        let Some(prefix) = RecordPrefix::decode(&prefix_bytes) else {
            return Ok(ScanEnd {
                valid_end: offset,
                file_len,
                damage: Some(damage(offset, "bad record prefix".into())),
            });
        };
        let record_len = prefix.record_len();
        if offset + record_len > file_len {
            return Ok(ScanEnd { valid_end: offset, file_len, damage: Some(damage(offset, "torn record".into())) });
        }
        let mut bytes = vec![0u8; record_len as usize];
        file.read_exact_at(&mut bytes, offset)?;
        match record::decode(Bytes::from(bytes)) {
            Ok(decoded) => {
                on_record(RecordLocation { segment_id, offset, record_len }, decoded)?;
                offset += record_len;
            }
            Err(e) => return Ok(ScanEnd { valid_end: offset, file_len, damage: Some(damage(offset, e.to_string())) }),
        }
    }
    Ok(ScanEnd { valid_end: offset, file_len, damage: None })
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
