//! An object's bytes as a blocking `Read`, for the CSV and JSON decoders of S3 Select:
//! fed chunk by chunk from `Engine::read` (each chunk verified), with ScanRange record
//! boundaries and decompression on top, and byte counters for the Stats event.

use bytes::{Buf, Bytes};
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use storage_core::{Engine, ObjectEntry};
use tokio::sync::mpsc;

/// How many verified chunks may wait between the engine and the decoder.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Reads `range` of an object from the engine on a tokio task, handing the chunks to a
/// blocking reader. Dropping the reader stops the task at its next chunk.
pub struct ChunkReader {
    chunks: mpsc::Receiver<storage_core::Result<Bytes>>,
    current: Bytes,
    scanned_bytes: Arc<AtomicU64>,
}

impl ChunkReader {
    pub fn spawn(
        engine: &Engine,
        entry: &ObjectEntry,
        range: std::ops::Range<u64>,
        scanned_bytes: Arc<AtomicU64>,
        keys: Option<&crate::store::ObjectKeys>,
    ) -> ChunkReader {
        let (sender, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let mut reader = crate::store::read_object(engine, entry, range, keys);
        tokio::spawn(async move {
            while let Some(chunk) = reader.next_chunk().await {
                let failed = chunk.is_err();
                if sender.send(chunk).await.is_err() || failed {
                    return;
                }
            }
        });
        ChunkReader { chunks, current: Bytes::new(), scanned_bytes }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => {
                    self.scanned_bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    self.current = chunk;
                }
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.current.len());
        self.current.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

/// The records that *start* inside a scan range, as S3 Select defines it: reading begins
/// one byte before `start`, skips to just past the first record delimiter (unless that
/// is where `start` is), and stops after the first delimiter at or past `end - 1`, so a
/// record that starts in the range is read to its end.
pub struct ScanRangeReader<R> {
    inner: R,
    delimiter: u8,
    /// Absolute offset of the next byte `inner` yields.
    position: u64,
    end: u64,
    skipping: bool,
    done: bool,
}

impl<R: Read> ScanRangeReader<R> {
    /// `inner` yields the object from `start.saturating_sub(1)` on.
    pub fn new(inner: R, start: u64, end: u64, delimiter: u8) -> ScanRangeReader<R> {
        ScanRangeReader { inner, delimiter, position: start.saturating_sub(1), end, skipping: start > 0, done: false }
    }

    /// The offset `inner` must start at for a range starting at `start`.
    pub fn read_from(start: u64) -> u64 {
        start.saturating_sub(1)
    }
}

impl<R: Read> Read for ScanRangeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            let n = self.inner.read(buf)?;
            if n == 0 {
                return Ok(0);
            }
            let first = self.position;
            self.position += n as u64;
            let mut from = 0;
            if self.skipping {
                match buf[..n].iter().position(|&b| b == self.delimiter) {
                    // That delimiter ends the record the range starts inside of; if it is
                    // already at or past `end - 1`, no record starts in the range.
                    Some(i) if first + i as u64 >= self.end.saturating_sub(1) => {
                        self.done = true;
                        return Ok(0);
                    }
                    Some(i) => {
                        self.skipping = false;
                        from = i + 1;
                    }
                    None => continue,
                }
            }
            // Stop after the first delimiter at an offset >= end - 1.
            let stop_at = self.end.saturating_sub(1);
            let mut to = n;
            let search_from = from.max(stop_at.saturating_sub(first).min(n as u64) as usize);
            if first + (n as u64) > stop_at
                && let Some(i) = buf[search_from..n].iter().position(|&b| b == self.delimiter)
            {
                to = search_from + i + 1;
                self.done = true;
            }
            if from >= to {
                if self.done {
                    return Ok(0);
                }
                continue;
            }
            buf.copy_within(from..to, 0);
            return Ok(to - from);
        }
    }
}

/// Counts the bytes passing through (BytesProcessed: after decompression).
pub struct CountingReader<R> {
    pub inner: R,
    pub count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The read error of a [`RecordLengthGuard`]: a record longer than the limit.
#[derive(Debug)]
pub struct RecordTooLong {
    pub max_bytes: usize,
}

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a record is longer than {} bytes", self.max_bytes)
    }
}

impl std::error::Error for RecordTooLong {}

/// Fails the read once more than `max_bytes` pass without a record delimiter, before a
/// decoder buffers such a record: a small compressed object can inflate to gigabytes
/// without a newline.
pub struct RecordLengthGuard<R> {
    inner: R,
    delimiter: u8,
    max_bytes: usize,
    since_delimiter: usize,
}

impl<R> RecordLengthGuard<R> {
    pub fn new(inner: R, delimiter: u8, max_bytes: usize) -> RecordLengthGuard<R> {
        RecordLengthGuard { inner, delimiter, max_bytes, since_delimiter: 0 }
    }

    fn check(&self) -> io::Result<()> {
        if self.since_delimiter > self.max_bytes {
            return Err(io::Error::new(io::ErrorKind::InvalidData, RecordTooLong { max_bytes: self.max_bytes }));
        }
        Ok(())
    }
}

impl<R: Read> Read for RecordLengthGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut records = buf[..n].split(|&b| b == self.delimiter);
        if let Some(continued) = records.next() {
            self.since_delimiter += continued.len();
        }
        for started in records {
            self.check()?;
            self.since_delimiter = started.len();
        }
        self.check()?;
        Ok(n)
    }
}

/// The read error of a [`DecompressedLimit`]: the object inflated past the limit.
#[derive(Debug)]
pub struct DecompressedTooLarge {
    pub max_bytes: u64,
}

impl std::fmt::Display for DecompressedTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the object decompresses to more than {} bytes, the limit of one S3 Select", self.max_bytes)
    }
}

impl std::error::Error for DecompressedTooLarge {}

/// The S3 Select error for a read that stopped at one of the limits above, if it did.
pub fn read_limit_error(error: &(dyn std::error::Error + 'static)) -> Option<crate::select::SelectError> {
    let mut current = Some(error);
    while let Some(e) = current {
        let inner = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()).map(|i| i as &dyn std::error::Error);
        for candidate in [Some(e), inner].into_iter().flatten() {
            if candidate.is::<RecordTooLong>() {
                return Some(crate::decode::over_max_record_size());
            }
            if let Some(too_large) = candidate.downcast_ref::<DecompressedTooLarge>() {
                return Some(crate::select::SelectError::new("OverMaxDecompressedSize", too_large.to_string()));
            }
        }
        current = e.source();
    }
    None
}

/// Fails the read once more than `max_bytes` came out of a decompressor: a few KiB of
/// GZIP or BZIP2 can inflate without end.
pub struct DecompressedLimit<R> {
    inner: R,
    max_bytes: u64,
    read: u64,
}

impl<R> DecompressedLimit<R> {
    pub fn new(inner: R, max_bytes: u64) -> DecompressedLimit<R> {
        DecompressedLimit { inner, max_bytes, read: 0 }
    }
}

impl<R: Read> Read for DecompressedLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.max_bytes {
            return Err(io::Error::new(io::ErrorKind::InvalidData, DecompressedTooLarge { max_bytes: self.max_bytes }));
        }
        Ok(n)
    }
}

/// Fails the read once one top-level JSON value (a JSON DOCUMENT record, which may span
/// many lines) grows past `max_bytes`, before serde_json buffers it whole. It follows
/// only what it must: strings (with escapes) and bracket depth.
pub struct JsonRecordGuard<R> {
    inner: R,
    max_bytes: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Bytes of the value being read.
    current: usize,
}

impl<R> JsonRecordGuard<R> {
    pub fn new(inner: R, max_bytes: usize) -> JsonRecordGuard<R> {
        JsonRecordGuard { inner, max_bytes, depth: 0, in_string: false, escaped: false, current: 0 }
    }
}

impl<R: Read> Read for JsonRecordGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            let mut ends_value = false;
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    ends_value = self.depth == 0;
                }
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        ends_value = self.depth == 0;
                    }
                    // Between top-level values (or ending a top-level number or literal).
                    b' ' | b'\t' | b'\n' | b'\r' if self.depth == 0 => {
                        self.current = 0;
                        continue;
                    }
                    _ => {}
                }
            }
            self.current += 1;
            if self.current > self.max_bytes {
                return Err(io::Error::new(io::ErrorKind::InvalidData, RecordTooLong { max_bytes: self.max_bytes }));
            }
            if ends_value {
                self.current = 0;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(data: &str, start: u64, end: u64) -> String {
        let from = ScanRangeReader::<&[u8]>::read_from(start) as usize;
        let mut reader = ScanRangeReader::new(&data.as_bytes()[from..], start, end, b'\n');
        let mut out = String::new();
        reader.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn scan_range_keeps_the_records_that_start_inside_it() {
        let data = "aa\nbb\ncc\ndd\n";
        // offsets: aa=0..3, bb=3..6, cc=6..9, dd=9..12
        assert_eq!(scan(data, 0, 12), data);
        assert_eq!(scan(data, 0, 1), "aa\n");
        assert_eq!(scan(data, 1, 4), "bb\n");
        assert_eq!(scan(data, 3, 4), "bb\n");
        assert_eq!(scan(data, 3, 6), "bb\n");
        assert_eq!(scan(data, 3, 7), "bb\ncc\n");
        assert_eq!(scan(data, 4, 6), "");
        assert_eq!(scan(data, 4, 100), "cc\ndd\n");
        assert_eq!(scan(data, 11, 12), "");
    }

    #[test]
    fn scan_range_reads_a_last_record_without_delimiter() {
        assert_eq!(scan("aa\nbb", 2, 5), "bb");
        assert_eq!(scan("aa\nbb", 0, 2), "aa\n");
    }

    #[test]
    fn scan_range_works_one_byte_at_a_time() {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let data = b"aa\nbb\ncc\ndd\n";
        for start in 0..12u64 {
            for end in start + 1..=12 {
                let from = ScanRangeReader::<OneByte>::read_from(start) as usize;
                let mut slow = String::new();
                ScanRangeReader::new(OneByte(&data[from..]), start, end, b'\n').read_to_string(&mut slow).unwrap();
                let text = std::str::from_utf8(data).unwrap();
                assert_eq!(slow, scan(text, start, end), "range {start}..{end}");
                // The reference: records whose first byte is in start..end.
                let expected: String = text
                    .split_inclusive('\n')
                    .scan(0u64, |offset, record| {
                        let at = *offset;
                        *offset += record.len() as u64;
                        Some((at, record))
                    })
                    .filter(|(at, _)| *at >= start && *at < end)
                    .map(|(_, r)| r)
                    .collect();
                assert_eq!(slow, expected, "range {start}..{end}");
            }
        }
    }

    #[test]
    fn record_length_guard_fails_only_past_the_limit() {
        let read_all = |data: &[u8], max: usize| {
            let mut out = Vec::new();
            RecordLengthGuard::new(data, b'\n', max).read_to_end(&mut out).map(|_| out)
        };
        assert!(read_all(b"abc\ndef\n", 3).is_ok());
        assert!(read_all(b"abc\ndefg\n", 3).is_err_and(|e| read_limit_error(&e).is_some()));
        assert!(read_all(b"abcd", 3).is_err());
        assert!(read_all(&[b'x'; 10_000], 9_999).is_err());
        assert!(read_all(&[b'x'; 10_000], 10_000).is_ok());
    }

    #[test]
    fn json_record_guard_measures_whole_values_across_lines() {
        let read_all = |data: &[u8], max: usize| {
            let mut out = Vec::new();
            JsonRecordGuard::new(data, max).read_to_end(&mut out).map(|_| out)
        };
        // Three values of at most 10 bytes, over several lines: fine at 10, not at 9.
        let doc = b"{\n\"a\": 1\n}\n{\"b\":\n[2]}  {\"c\":\"}\"}";
        assert!(read_all(doc, 10).is_ok());
        assert!(read_all(doc, 9).is_err_and(|e| read_limit_error(&e).is_some()));
        // Brackets and escaped quotes inside strings do not end a value.
        assert!(read_all(b"{\"a\":\"}}\\\"}}}}}}\"}", 10).is_err());
        let big = format!("{{\"a\": [\n{}\"x\"]}}", "\"xxxxxxxx\",\n".repeat(1000));
        assert!(read_all(big.as_bytes(), 1000).is_err());
        assert!(read_all(big.as_bytes(), big.len()).is_ok());
    }

    #[test]
    fn decompressed_limit_fails_only_past_the_limit() {
        let mut out = Vec::new();
        assert!(DecompressedLimit::new(&[0u8; 100][..], 100).read_to_end(&mut out).is_ok());
        let e = DecompressedLimit::new(&[0u8; 101][..], 100).read_to_end(&mut out).unwrap_err();
        assert_eq!(read_limit_error(&e).map(|e| e.code), Some("OverMaxDecompressedSize"));
    }
}
