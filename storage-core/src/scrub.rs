//! Scrub: re-read every record of every segment, verify it, and report what is
//! damaged — down to the objects whose bytes are affected.

use crate::engine::Engine;
use crate::error::Result;
use crate::index::RecordLocation;
use crate::segment::{self, DamagedRange, segment_name};
use crate::stats::EngineStats;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct ScrubReport {
    pub segments: u64,
    pub records: u64,
    pub bytes: u64,
    pub damaged: Vec<DamagedRange>,
    /// (bucket, key) of every object with a piece in a damaged region.
    pub damaged_objects: Vec<(String, String)>,
    pub elapsed: Duration,
}

impl std::fmt::Display for ScrubReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "scrubbed {} segments, {} records, {} bytes in {:.1} s",
            self.segments,
            self.records,
            self.bytes,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(f, "damaged regions: {}", self.damaged.len())?;
        for range in &self.damaged {
            writeln!(f, "  {range}")?;
        }
        writeln!(f, "damaged objects: {}", self.damaged_objects.len())?;
        for (bucket, key) in &self.damaged_objects {
            writeln!(f, "  {bucket}/{key}")?;
        }
        Ok(())
    }
}

impl ScrubReport {
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

impl Engine {
    /// Verifies every record (blocking; run it off the async runtime). With
    /// `max_bytes_per_sec`, it paces itself so as not to starve client I/O.
    pub fn scrub(&self, max_bytes_per_sec: Option<u64>) -> Result<ScrubReport> {
        let started = Instant::now();
        let dir = self.segments();
        let ids = segment::list_segments(dir.as_ref())?;
        let mut report = ScrubReport::default();
        for (i, &id) in ids.iter().enumerate() {
            let active = i + 1 == ids.len();
            let file = dir.open(&segment_name(id), false)?;
            let end = segment::scan(file.as_ref(), id, 0, true, |location, _record| {
                report.records += 1;
                report.bytes += location.record_len;
                if let Some(rate) = max_bytes_per_sec.filter(|r| *r > 0) {
                    let due = Duration::from_secs_f64(report.bytes as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                Ok(())
            })?;
            report.segments += 1;
            report.damaged.extend(end.damaged);
            // The active segment's tail may be a batch being written right now.
            if let (Some(what), false) = (end.tail_damage, active) {
                report.damaged.push(DamagedRange { segment_id: id, start: end.valid_end, end: end.file_len, what });
            }
        }
        EngineStats::add(&self.stats().scrubbed_bytes, report.bytes);
        EngineStats::add(&self.stats().damaged_regions, report.damaged.len() as u64);
        report.damaged_objects = self.objects_in(&report.damaged)?;
        report.elapsed = started.elapsed();
        for range in &report.damaged {
            tracing::error!("scrub found damage: {range}");
        }
        Ok(report)
    }

    /// The objects that have a piece stored inside one of `ranges`.
    fn objects_in(&self, ranges: &[DamagedRange]) -> Result<Vec<(String, String)>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let inside = |loc: &RecordLocation| {
            ranges
                .iter()
                .any(|r| r.segment_id == loc.segment_id && loc.offset < r.end && loc.offset + loc.record_len > r.start)
        };
        let mut damaged_lsns = BTreeSet::new();
        for item in self.index().chunk_locations() {
            let (lsn, location) = item?;
            if inside(&location) {
                damaged_lsns.insert(lsn);
            }
        }
        let mut objects = Vec::new();
        for (bucket, _) in self.buckets()? {
            let latest = self.index().objects_from(&bucket, b"");
            for item in latest.chain(self.index().noncurrent_versions_from(&bucket, b"")) {
                let (key, entry) = item?;
                if entry.chunks.iter().any(|piece| damaged_lsns.contains(&piece.lsn))
                    && !objects.contains(&(bucket.clone(), key.clone()))
                {
                    objects.push((bucket.clone(), key));
                }
            }
        }
        Ok(objects)
    }
}
