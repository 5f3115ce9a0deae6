//! S3 Select (SelectObjectContent): one S3 Select SQL query over one object (CSV, JSON
//! or Parquet), its result encoded as CSV or JSON records and streamed as events
//! (Records, Progress, Stats, End). The S3 layer maps these types onto the wire.

use crate::decode::{self, CsvInput, DecodedPartition, HeaderInfo};
use crate::input::{
    ChunkReader, CountingReader, DecompressedLimit, JsonRecordGuard, RecordLengthGuard, ScanRangeReader,
    read_limit_error,
};
use crate::session::{QueryLimits, new_context};
use crate::store::BucketScope;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::ParquetReadOptions;
use futures::StreamExt;
pub use quarry_sql_text::SelectError;
use quarry_sql_text::dialect::{SelectQuery, TABLE};
use quarry_sql_text::json_path::FromPath;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use storage_core::{Engine, ObjectEntry};
use tokio::sync::mpsc;

/// How often a Progress event is sent, when the request asks for them.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Events that may wait for the client.
const EVENTS_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone)]
pub enum InputFormat {
    Csv(CsvInput),
    /// JSON objects separated by whitespace (LINES or DOCUMENT).
    Json {
        lines: bool,
    },
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
}

#[derive(Debug, Clone)]
pub struct CsvOutput {
    pub field_delimiter: u8,
    pub record_delimiter: String,
    pub quote: u8,
    pub escape: u8,
    /// QuoteFields ALWAYS (else ASNEEDED).
    pub always_quote: bool,
}

impl Default for CsvOutput {
    fn default() -> Self {
        CsvOutput {
            field_delimiter: b',',
            record_delimiter: "\n".into(),
            quote: b'"',
            escape: b'"',
            always_quote: false,
        }
    }
}

#[derive(Debug, Clone)]
pub enum OutputFormat {
    Csv(CsvOutput),
    Json { record_delimiter: String },
}

/// S3's ScanRange: process the records that start in `start..=end` (both ends inclusive,
/// as in an HTTP byte range; End defaults to the last byte); `end` alone means the last
/// `end` bytes.
#[derive(Debug, Clone, Copy)]
pub struct ScanRange {
    pub start: Option<u64>,
    pub end: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct SelectRequest {
    pub sql: String,
    pub input: InputFormat,
    pub compression: Compression,
    pub output: OutputFormat,
    pub scan_range: Option<ScanRange>,
    pub progress: bool,
    /// The object's data keys when the engine cannot open them (SSE-C, from the
    /// request's key).
    pub object_keys: Option<crate::store::ObjectKeys>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelectStats {
    pub bytes_scanned: u64,
    pub bytes_processed: u64,
    pub bytes_returned: u64,
}

#[derive(Debug, Clone)]
pub enum SelectEvent {
    Records(Bytes),
    Progress(SelectStats),
    Stats(SelectStats),
    End,
}

#[derive(Default)]
struct Counters {
    scanned: Arc<AtomicU64>,
    processed: Arc<AtomicU64>,
    returned: AtomicU64,
    /// Parquet is decoded by DataFusion: what it reads is what it processes.
    parquet: bool,
    /// What planning read of a Parquet object (its footer).
    planning_scanned: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> SelectStats {
        let mut scanned = self.scanned.load(Ordering::Relaxed);
        if self.parquet && scanned == 0 {
            // Answered from the footer alone (e.g. count(*) from its statistics).
            scanned = self.planning_scanned.load(Ordering::Relaxed);
        }
        SelectStats {
            bytes_scanned: scanned,
            bytes_processed: if self.parquet { scanned } else { self.processed.load(Ordering::Relaxed) },
            bytes_returned: self.returned.load(Ordering::Relaxed),
        }
    }
}

/// Plans `request` over the object and starts it. Errors found before any record is
/// produced (bad SQL, unknown columns, an unreadable header) are returned here, so the
/// S3 layer answers them as HTTP errors; later ones arrive in the event stream.
pub async fn select(
    engine: &Engine,
    bucket: &str,
    key: &str,
    entry: &ObjectEntry,
    request: SelectRequest,
    limits: &QueryLimits,
) -> Result<mpsc::Receiver<Result<SelectEvent, SelectError>>, SelectError> {
    // The query's time limit runs from here, and bounds every wait on the client too.
    let deadline = Instant::now() + Duration::from_millis(limits.timeout_ms);
    let mut query = SelectQuery::parse(&request.sql)?;
    let from_path = query.from_path.take();
    if from_path.is_some() && !matches!(request.input, InputFormat::Json { .. }) {
        return Err(SelectError::new("InvalidDataSource", "a path after S3Object[*] is for JSON objects only"));
    }
    let scan = scan_bounds(&request, entry.meta.size_bytes)?;
    let object_keys = request.object_keys.clone().map(Arc::new);
    let counters = Arc::new(Counters { parquet: matches!(request.input, InputFormat::Parquet), ..Counters::default() });
    let ctx = new_context(
        engine,
        BucketScope::Only([bucket.to_owned()].into()),
        limits,
        Some(counters.scanned.clone()),
        true,
        object_keys.clone(),
    )
    .map_err(internal)?;

    // JSON records need not share fields, and an object without records has none:
    // there, a name that is no column is NULL (S3 Select's MISSING), not an error.
    let mut missing_is_null = false;
    let columns: Vec<String> = match &request.input {
        InputFormat::Parquet => {
            let url = crate::session::object_url(bucket, key);
            let options = ParquetReadOptions { file_extension: "", ..Default::default() };
            let unreadable = |e: String| {
                SelectError::new("ParquetParsingError", format!("the object is not a readable Parquet file: {e}"))
            };
            tokio::time::timeout_at(
                deadline.into(),
                crate::unwind::catching(ctx.register_parquet(TABLE, url, options)),
            )
            .await
            .map_err(|_| planning_timeout(limits.timeout_ms))?
            .map_err(unreadable)?
            .map_err(|e| unreadable(e.to_string()))?;
            let table = ctx.table_provider(TABLE).await.map_err(internal)?;
            table.schema().fields().iter().map(|f| f.name().clone()).collect()
        }
        InputFormat::Csv(_) | InputFormat::Json { .. } => {
            let (schema, batches, no_records) =
                open_text(engine, entry, &request, scan, from_path, &counters, limits).await?;
            missing_is_null = no_records || matches!(request.input, InputFormat::Json { .. });
            let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
            let table = StreamingTable::try_new(schema.clone(), vec![Arc::new(DecodedPartition::new(schema, batches))])
                .map_err(internal)?;
            ctx.register_table(TABLE, Arc::new(table)).map_err(internal)?;
            columns
        }
    };

    let statement = query.resolve_statement(&columns, missing_is_null)?;
    // Planning is CPU work whose cost the client chooses: as for the SQL endpoint
    // (`query::run_query`), it runs on a blocking thread driven by this runtime's handle,
    // under the query's deadline, so the workers keep serving other requests.
    let runtime = tokio::runtime::Handle::current();
    let plan_counters = counters.clone();
    let planning = tokio::task::spawn_blocking(move || {
        runtime.block_on(tokio::time::timeout_at(deadline.into(), async move {
            // The resolved statement itself is planned, not its text.
            let statement = datafusion::sql::parser::Statement::Statement(Box::new(statement));
            let plan = ctx.state().statement_to_plan(statement).await.map_err(plan_error)?;
            crate::session::read_only().verify_plan(&plan).map_err(plan_error)?;
            let frame = ctx.execute_logical_plan(plan).await.map_err(plan_error)?;
            if plan_counters.parquet {
                // Planning read the footer (schema, statistics), and the scan reads it again:
                // count the scan's reads, or the footer's if the scan reads nothing.
                let footer = plan_counters.scanned.swap(0, Ordering::Relaxed);
                plan_counters.planning_scanned.store(footer, Ordering::Relaxed);
            }
            frame.execute_stream().await.map_err(plan_error)
        }))
    });
    let stream = match tokio::time::timeout_at(deadline.into(), planning).await {
        Err(_) | Ok(Ok(Err(_))) => return Err(planning_timeout(limits.timeout_ms)),
        Ok(Err(e)) => return Err(internal(e)),
        Ok(Ok(Ok(planned))) => planned?,
    };
    let timeout_ms = limits.timeout_ms;

    let (sender, events) = mpsc::channel(EVENTS_IN_FLIGHT);
    let output = request.output.clone();
    let progress = request.progress;
    tokio::spawn(async move {
        let mut stream = stream;
        let mut last_progress = Instant::now();
        loop {
            let next = match crate::unwind::catching(tokio::time::timeout_at(deadline.into(), stream.next())).await {
                Ok(Ok(next)) => next,
                Err(panic) => {
                    // A reader panicking on a malformed object: an error event, not a cut stream.
                    let message = format!("the object could not be read: {panic}");
                    let _ = send_before(&sender, deadline, Err(SelectError::new("InternalError", message))).await;
                    return;
                }
                Ok(Err(_)) => {
                    let message = format!("the query ran past its limit of {timeout_ms} ms and was cancelled");
                    // Past the deadline: the error still gets a moment to reach a reading client.
                    let error = Err(SelectError::new("QueryTimeout", message));
                    let _ = send_before(&sender, Instant::now() + TIMEOUT_EVENT_GRACE, error).await;
                    return;
                }
            };
            let batch = match next {
                None => break,
                Some(Ok(batch)) => batch,
                Some(Err(e)) => {
                    let _ = send_before(&sender, deadline, Err(execution_error(e))).await;
                    return;
                }
            };
            let records = match encode(&batch, &output) {
                Ok(records) => records,
                Err(e) => {
                    let _ = send_before(&sender, deadline, Err(e)).await;
                    return;
                }
            };
            if !records.is_empty() {
                counters.returned.fetch_add(records.len() as u64, Ordering::Relaxed);
                if !send_before(&sender, deadline, Ok(SelectEvent::Records(records))).await {
                    return;
                }
            }
            if progress && last_progress.elapsed() >= PROGRESS_INTERVAL {
                last_progress = Instant::now();
                if !send_before(&sender, deadline, Ok(SelectEvent::Progress(counters.snapshot()))).await {
                    return;
                }
            }
        }
        if progress {
            let _ = send_before(&sender, deadline, Ok(SelectEvent::Progress(counters.snapshot()))).await;
        }
        let _ = send_before(&sender, deadline, Ok(SelectEvent::Stats(counters.snapshot()))).await;
        let _ = send_before(&sender, deadline, Ok(SelectEvent::End)).await;
    });
    Ok(events)
}

/// The byte range of the object to read, and whether it is a ScanRange (whose first
/// and last records are found by delimiter).
#[derive(Debug, Clone, Copy)]
struct ScanBounds {
    start: u64,
    end: u64,
    partial: bool,
}

/// How long a QueryTimeout event may wait for the client once the deadline has passed.
const TIMEOUT_EVENT_GRACE: Duration = Duration::from_secs(1);

/// Hands an event to the client's side unless the deadline passes first: a client that
/// stops reading must not hold the query (and its memory) past its time limit. False when
/// the event was not delivered; the caller then drops the query.
async fn send_before(
    sender: &mpsc::Sender<Result<SelectEvent, SelectError>>,
    deadline: Instant,
    event: Result<SelectEvent, SelectError>,
) -> bool {
    matches!(tokio::time::timeout_at(deadline.into(), sender.send(event)).await, Ok(Ok(())))
}

fn scan_bounds(request: &SelectRequest, size_bytes: u64) -> Result<ScanBounds, SelectError> {
    let Some(range) = request.scan_range else {
        return Ok(ScanBounds { start: 0, end: size_bytes, partial: false });
    };
    let supported = match &request.input {
        InputFormat::Csv(_) => true,
        InputFormat::Json { lines } => *lines,
        InputFormat::Parquet => false,
    };
    if !supported || request.compression != Compression::None {
        return Err(SelectError::new(
            "UnsupportedScanRangeInput",
            "ScanRange is supported on uncompressed CSV and JSON LINES objects only",
        ));
    }
    let (start, end) = match (range.start, range.end) {
        (Some(start), Some(end)) if start > end => {
            return Err(SelectError::new(
                "InvalidScanRange",
                format!("ScanRange start {start} is after its end {end}"),
            ));
        }
        // End is inclusive; the bounds below are exclusive.
        (Some(start), Some(end)) => (start, end.saturating_add(1)),
        (Some(start), None) => (start, size_bytes),
        (None, Some(last)) => (size_bytes.saturating_sub(last), size_bytes),
        (None, None) => (0, size_bytes),
    };
    Ok(ScanBounds { start: start.min(size_bytes), end: end.min(size_bytes), partial: true })
}

/// Starts decoding a CSV or JSON object on a blocking thread; answers its schema, and
/// whether a CSV object had no record to take columns from.
async fn open_text(
    engine: &Engine,
    entry: &ObjectEntry,
    request: &SelectRequest,
    scan: ScanBounds,
    from_path: Option<FromPath>,
    counters: &Counters,
    limits: &QueryLimits,
) -> Result<(datafusion::arrow::datatypes::SchemaRef, decode::BatchReceiver, bool), SelectError> {
    let max_decompressed = limits.max_decompressed_bytes;
    // A JSON DOCUMENT record found by a FROM path lies inside a larger document, which is
    // read whole: that is bounded by the query's memory share instead.
    let document_limit = if from_path.is_some() { limits.memory_bytes } else { decode::MAX_RECORD_BYTES };
    let delimiter = match &request.input {
        InputFormat::Csv(csv) => csv.record_delimiter,
        _ => b'\n',
    };
    let read_from = if scan.partial { ScanRangeReader::<ChunkReader>::read_from(scan.start) } else { scan.start };
    let keys = request.object_keys.as_ref();
    let raw = ChunkReader::spawn(engine, entry, read_from..entry.meta.size_bytes, counters.scanned.clone(), keys);
    // A header lives at the start of the object, outside a scan range that starts later.
    let header = match &request.input {
        InputFormat::Csv(csv) if scan.partial && scan.start > 0 && csv.header != HeaderInfo::None => {
            let head_end = entry.meta.size_bytes.min(decode::MAX_RECORD_BYTES as u64);
            Some(ChunkReader::spawn(engine, entry, 0..head_end, Arc::new(AtomicU64::new(0)), keys))
        }
        _ => None,
    };
    let input = request.input.clone();
    let compression = request.compression;
    let processed = counters.processed.clone();
    tokio::task::spawn_blocking(move || {
        let bytes: Box<dyn Read + Send> = if scan.partial {
            Box::new(ScanRangeReader::new(raw, scan.start, scan.end, delimiter))
        } else {
            Box::new(raw)
        };
        let bytes: Box<dyn Read + Send> = match compression {
            Compression::None => bytes,
            Compression::Gzip => {
                Box::new(DecompressedLimit::new(flate2::read::MultiGzDecoder::new(bytes), max_decompressed))
            }
            Compression::Bzip2 => {
                Box::new(DecompressedLimit::new(bzip2::read::MultiBzDecoder::new(bytes), max_decompressed))
            }
        };
        let bytes = CountingReader { inner: bytes, count: processed };
        // CSV and JSON LINES records end at a delimiter: one that does not come within S3's
        // record limit is refused as it is read. A JSON DOCUMENT record may span lines: its
        // guard follows the JSON values themselves.
        let bytes: Box<dyn Read + Send> = match input {
            InputFormat::Json { lines: false } => Box::new(JsonRecordGuard::new(bytes, document_limit)),
            _ => Box::new(RecordLengthGuard::new(bytes, delimiter, decode::MAX_RECORD_BYTES)),
        };
        match input {
            InputFormat::Csv(csv) => {
                let (head, rest) = first_record(bytes, csv.record_delimiter).map_err(|e| read_error(e, compression))?;
                let columns = match header {
                    Some(header) => {
                        let (header_bytes, _) =
                            first_record(header, csv.record_delimiter).map_err(|e| read_error(e, compression))?;
                        csv.columns(&header_bytes[..])?
                    }
                    None => csv.columns(&head[..])?,
                };
                let no_records = columns.is_none();
                let schema = decode::string_schema(&columns.unwrap_or_else(|| vec!["_1".to_owned()]));
                let skip_header = csv.header != HeaderInfo::None && !(scan.partial && scan.start > 0);
                let body = std::io::Cursor::new(head).chain(rest);
                Ok((schema.clone(), csv.decode(body, schema, skip_header), no_records))
            }
            InputFormat::Json { .. } => {
                decode::json_decode(bytes, from_path).map(|(schema, batches)| (schema, batches, false))
            }
            InputFormat::Parquet => unreachable!("Parquet objects are read through the object store"),
        }
    })
    .await
    .map_err(internal)?
}

/// Reads up to and including the first record delimiter (at most a record's limit).
fn first_record<R: Read>(mut input: R, delimiter: u8) -> std::io::Result<(Vec<u8>, R)> {
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    while head.len() < decode::MAX_RECORD_BYTES && !head.contains(&delimiter) {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok((head, input))
}

fn read_error(e: std::io::Error, compression: Compression) -> SelectError {
    if let Some(limit) = read_limit_error(&e) {
        return limit;
    }
    match compression {
        Compression::None => SelectError::new("InternalError", format!("reading the object failed: {e}")),
        _ => SelectError::new(
            "InvalidCompressionFormat",
            format!("the object does not decompress as {compression:?}: {e}"),
        ),
    }
}

fn planning_timeout(timeout_ms: u64) -> SelectError {
    SelectError::new("QueryTimeout", format!("the query ran past its limit of {timeout_ms} ms and was cancelled"))
}

fn internal(e: impl std::fmt::Display) -> SelectError {
    SelectError::new("InternalError", e.to_string())
}

/// Errors while planning: the query's fault.
fn plan_error(e: DataFusionError) -> SelectError {
    match e.find_root() {
        DataFusionError::External(inner) if inner.downcast_ref::<SelectError>().is_some() => {
            inner.downcast_ref::<SelectError>().expect("checked").clone()
        }
        DataFusionError::SQL(..) => SelectError::new("ParseUnexpectedToken", e.to_string()),
        DataFusionError::SchemaError(..) => SelectError::new("EvaluatorBindingDoesNotExist", e.to_string()),
        DataFusionError::NotImplemented(_) => SelectError::new("UnsupportedSqlOperation", e.to_string()),
        _ => SelectError::new("UnsupportedSyntax", e.to_string()),
    }
}

/// Errors while running: a decoder's error, a failed CAST, or a limit.
fn execution_error(e: DataFusionError) -> SelectError {
    let message = e.to_string();
    match e.find_root() {
        DataFusionError::External(inner) if inner.downcast_ref::<SelectError>().is_some() => {
            inner.downcast_ref::<SelectError>().expect("checked").clone()
        }
        DataFusionError::ArrowError(err, _) if matches!(**err, datafusion::arrow::error::ArrowError::CastError(_)) => {
            SelectError::new("CastFailed", message)
        }
        DataFusionError::ResourcesExhausted(_) => SelectError::new(
            "QueryMemoryLimitExceeded",
            format!("the query needs more memory than its limit: {message}"),
        ),
        _ => SelectError::new("ExternalEvalException", message),
    }
}

/// One batch of results as S3 Select records.
fn encode(batch: &RecordBatch, output: &OutputFormat) -> Result<Bytes, SelectError> {
    match output {
        OutputFormat::Csv(csv) => encode_csv(batch, csv),
        OutputFormat::Json { record_delimiter } => {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(Vec::new());
            writer.write(batch).map_err(internal)?;
            writer.finish().map_err(internal)?;
            let mut bytes = writer.into_inner();
            // JSON strings never hold a raw newline, so every one ends a record.
            if record_delimiter != "\n" {
                bytes = String::from_utf8(bytes).map_err(internal)?.replace('\n', record_delimiter).into_bytes();
            }
            Ok(Bytes::from(bytes))
        }
    }
}

fn encode_csv(batch: &RecordBatch, csv: &CsvOutput) -> Result<Bytes, SelectError> {
    let options = FormatOptions::default().with_null("");
    let formatters = batch
        .columns()
        .iter()
        .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()
        .map_err(internal)?;
    let mut out = Vec::new();
    let mut value = String::new();
    for row in 0..batch.num_rows() {
        for (i, formatter) in formatters.iter().enumerate() {
            if i > 0 {
                out.push(csv.field_delimiter);
            }
            value.clear();
            std::fmt::Write::write_fmt(&mut value, format_args!("{}", formatter.value(row))).map_err(internal)?;
            write_csv_field(&mut out, &value, csv);
        }
        out.extend_from_slice(csv.record_delimiter.as_bytes());
    }
    Ok(Bytes::from(out))
}

/// Quotes a field when asked to always, or when it holds a delimiter, a quote or a line
/// break; a quote inside is preceded by the escape character.
fn write_csv_field(out: &mut Vec<u8>, value: &str, csv: &CsvOutput) {
    let needs_quotes = csv.always_quote
        || value.bytes().any(|b| b == csv.field_delimiter || b == csv.quote || b == b'\n' || b == b'\r')
        || (!csv.record_delimiter.is_empty() && value.contains(csv.record_delimiter.as_str()));
    if !needs_quotes {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    out.push(csv.quote);
    for &b in value.as_bytes() {
        if b == csv.quote {
            out.push(csv.escape);
        }
        out.push(b);
    }
    out.push(csv.quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_as_needed_or_always() {
        let mut out = Vec::new();
        let csv = CsvOutput::default();
        for value in ["plain", "a,b", "say \"hi\"", "two\nlines"] {
            write_csv_field(&mut out, value, &csv);
            out.push(b'|');
        }
        assert_eq!(String::from_utf8(out).unwrap(), "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"|");
        let mut out = Vec::new();
        write_csv_field(&mut out, "x", &CsvOutput { always_quote: true, ..CsvOutput::default() });
        assert_eq!(out, b"\"x\"");
    }
}
