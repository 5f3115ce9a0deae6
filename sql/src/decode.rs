//! CSV and JSON object contents as Arrow record batches, decoded on a blocking thread and
//! handed to DataFusion as a one-partition streaming table (so an object larger than
//! memory streams through a query).

use crate::select::SelectError;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use quarry_sql_text::json_path::FromPath;
use std::io::{BufReader, Read};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Rows per record batch.
const BATCH_ROWS: usize = 8192;
/// Decoded batches that may wait for the query.
const BATCHES_IN_FLIGHT: usize = 2;
/// JSON records read to infer the schema.
const JSON_SCHEMA_RECORDS: usize = 1000;
/// S3 Select's limit on one record, input or output.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderInfo {
    /// The first record names the columns.
    Use,
    /// The first record is skipped; columns are `_1`, `_2`, ...
    Ignore,
    /// No header; columns are `_1`, `_2`, ...
    None,
}

#[derive(Debug, Clone)]
pub struct CsvInput {
    pub header: HeaderInfo,
    pub field_delimiter: u8,
    /// `\n` also accepts `\r\n` (and `\r`).
    pub record_delimiter: u8,
    pub quote: u8,
    pub escape: Option<u8>,
    pub comment: Option<u8>,
}

impl Default for CsvInput {
    fn default() -> Self {
        CsvInput {
            header: HeaderInfo::None,
            field_delimiter: b',',
            record_delimiter: b'\n',
            quote: b'"',
            escape: None,
            comment: None,
        }
    }
}

impl CsvInput {
    fn reader<R: Read>(&self, input: R, has_headers: bool) -> csv::Reader<R> {
        let terminator = match self.record_delimiter {
            b'\n' | b'\r' => csv::Terminator::CRLF,
            other => csv::Terminator::Any(other),
        };
        csv::ReaderBuilder::new()
            .has_headers(has_headers)
            .delimiter(self.field_delimiter)
            .quote(self.quote)
            .escape(self.escape)
            .double_quote(true)
            .comment(self.comment)
            .terminator(terminator)
            .flexible(true)
            .from_reader(input)
    }

    /// The column names: read from the header (`Use`) or numbered after the first record.
    /// None when there is no record at all.
    pub fn columns(&self, first_bytes: impl Read) -> Result<Option<Vec<String>>, SelectError> {
        let mut reader = self.reader(first_bytes, false);
        let mut record = csv::StringRecord::new();
        let found = reader.read_record(&mut record).map_err(csv_error)?;
        if !found {
            return Ok(None);
        }
        Ok(Some(match self.header {
            HeaderInfo::Use => record.iter().map(str::to_owned).collect(),
            HeaderInfo::Ignore | HeaderInfo::None => (1..=record.len()).map(|i| format!("_{i}")).collect(),
        }))
    }

    /// Decodes `input` into batches of string columns (every CSV value is a string;
    /// queries CAST). Missing trailing fields are null, extra fields are dropped.
    pub fn decode(self, input: impl Read + Send + 'static, schema: SchemaRef, skip_header: bool) -> BatchReceiver {
        spawn_decoder(schema.clone(), move |send| {
            let mut reader = self.reader(input, skip_header);
            let mut record = csv::StringRecord::new();
            let width = schema.fields().len();
            loop {
                let mut columns: Vec<StringBuilder> = (0..width).map(|_| StringBuilder::new()).collect();
                let mut rows = 0;
                while rows < BATCH_ROWS && reader.read_record(&mut record).map_err(csv_error)? {
                    if record.as_slice().len() > MAX_RECORD_BYTES {
                        return Err(SelectError::new(
                            "OverMaxRecordSize",
                            format!("a record is longer than {MAX_RECORD_BYTES} bytes"),
                        ));
                    }
                    for (i, column) in columns.iter_mut().enumerate() {
                        column.append_option(record.get(i));
                    }
                    rows += 1;
                }
                if rows == 0 {
                    return Ok(());
                }
                let arrays: Vec<ArrayRef> = columns.iter_mut().map(|c| Arc::new(c.finish()) as ArrayRef).collect();
                if !send(RecordBatch::try_new(schema.clone(), arrays).map_err(internal)?) {
                    return Ok(());
                }
            }
        })
    }
}

pub fn string_schema(columns: &[String]) -> SchemaRef {
    Arc::new(Schema::new(columns.iter().map(|c| Field::new(c, DataType::Utf8, true)).collect::<Vec<_>>()))
}

/// S3 Select's error for a record over [`MAX_RECORD_BYTES`].
pub fn over_max_record_size() -> SelectError {
    SelectError::new("OverMaxRecordSize", format!("a record is longer than {MAX_RECORD_BYTES} bytes"))
}

fn csv_error(e: csv::Error) -> SelectError {
    let limit = match e.kind() {
        csv::ErrorKind::Io(io) => crate::input::read_limit_error(io),
        _ => crate::input::read_limit_error(&e),
    };
    if let Some(limit) = limit {
        return limit;
    }
    match e.kind() {
        csv::ErrorKind::Io(_) => SelectError::new("InternalError", format!("reading the object failed: {e}")),
        _ => SelectError::new("CSVParsingError", format!("the object is not valid CSV: {e}")),
    }
}

fn internal(e: impl std::fmt::Display) -> SelectError {
    SelectError::new("InternalError", e.to_string())
}

/// JSON input: whitespace-separated JSON values (both LINES and DOCUMENT), objects
/// becoming rows, or, with a FROM path, the records the path finds in each value. The
/// schema is inferred from the first records; later fields that are not in it are ignored.
pub fn json_decode(
    input: impl Read + Send + 'static,
    path: Option<FromPath>,
) -> Result<(SchemaRef, BatchReceiver), SelectError> {
    let roots = serde_json::Deserializer::from_reader(BufReader::new(input)).into_iter::<serde_json::Value>();
    let mut values: Box<dyn Iterator<Item = serde_json::Result<serde_json::Value>> + Send> = match path {
        None => Box::new(roots),
        Some(path) => Box::new(roots.flat_map(move |root| match root {
            Ok(root) => path.records(root).into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        })),
    };
    let mut head = Vec::new();
    for value in values.by_ref().take(JSON_SCHEMA_RECORDS) {
        head.push(value.map_err(json_read_error)?);
    }
    check_objects(&head)?;
    let mut schema =
        datafusion::arrow::json::reader::infer_json_schema_from_iterator(head.iter().map(Ok)).map_err(json_error)?;
    if schema.fields().is_empty() {
        // No records, or only `{}`: one column of nulls, so `SELECT *` and count(*) work.
        schema = Schema::new(vec![Field::new("_1", DataType::Utf8, true)]);
    }
    let schema = Arc::new(schema);
    let decoder_schema = schema.clone();
    let receiver = spawn_decoder(schema.clone(), move |send| {
        let mut decoder = datafusion::arrow::json::ReaderBuilder::new(decoder_schema)
            .with_batch_size(BATCH_ROWS)
            .build_decoder()
            .map_err(json_error)?;
        let mut pending = head;
        loop {
            for value in values.by_ref().take(BATCH_ROWS.saturating_sub(pending.len())) {
                pending.push(value.map_err(json_read_error)?);
            }
            if pending.is_empty() {
                return Ok(());
            }
            check_objects(&pending)?;
            decoder.serialize(&pending).map_err(json_error)?;
            pending.clear();
            if let Some(batch) = decoder.flush().map_err(json_error)?
                && !send(batch)
            {
                return Ok(());
            }
        }
    });
    Ok((schema, receiver))
}

fn check_objects(values: &[serde_json::Value]) -> Result<(), SelectError> {
    match values.iter().find(|v| !v.is_object()) {
        Some(v) => {
            Err(SelectError::new("InvalidJsonType", format!("a JSON record is not an object: {:.80}", v.to_string())))
        }
        None => Ok(()),
    }
}

fn json_error(e: impl std::fmt::Display) -> SelectError {
    SelectError::new("JSONParsingError", format!("the object is not valid JSON: {e}"))
}

/// A JSON read error: a record over the limit, or JSON that does not parse.
fn json_read_error(e: serde_json::Error) -> SelectError {
    if !e.is_io() {
        return json_error(e);
    }
    // serde_json hands back the reader's own error.
    let io = std::io::Error::from(e);
    crate::input::read_limit_error(&io).unwrap_or_else(|| json_error(io))
}

pub type BatchReceiver = mpsc::Receiver<Result<RecordBatch, SelectError>>;

/// Runs `decode` on a blocking thread; it hands each batch to `send`, which answers
/// false once nobody listens (the query finished early, e.g. a LIMIT, or was dropped).
fn spawn_decoder<F>(schema: SchemaRef, decode: F) -> BatchReceiver
where
    F: FnOnce(&dyn Fn(RecordBatch) -> bool) -> Result<(), SelectError> + Send + 'static,
{
    assert!(!schema.fields().is_empty(), "a decoded table has at least one column");
    let (sender, receiver) = mpsc::channel(BATCHES_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let send = |batch: RecordBatch| sender.blocking_send(Ok(batch)).is_ok();
        if let Err(e) = decode(&send) {
            let _ = sender.blocking_send(Err(e));
        }
    });
    receiver
}

/// One decoded object as DataFusion's one and only partition of `S3Object`.
pub struct DecodedPartition {
    schema: SchemaRef,
    batches: Mutex<Option<BatchReceiver>>,
}

impl DecodedPartition {
    pub fn new(schema: SchemaRef, batches: BatchReceiver) -> DecodedPartition {
        DecodedPartition { schema, batches: Mutex::new(Some(batches)) }
    }
}

impl std::fmt::Debug for DecodedPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedPartition").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl PartitionStream for DecodedPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _: Arc<TaskContext>) -> SendableRecordBatchStream {
        let receiver = self.batches.lock().expect("partition lock").take().unwrap_or_else(|| {
            // The object was already read: a plan that scans it twice gets an error, not
            // silently no rows.
            let (sender, receiver) = mpsc::channel(1);
            let error = SelectError::new("UnsupportedSqlStructure", "the query reads S3Object more than once");
            sender.try_send(Err(error)).expect("fresh channel has room");
            receiver
        });
        let stream = futures::stream::unfold(Some(receiver), |receiver| async move {
            let mut receiver = receiver?;
            let item = receiver.recv().await?;
            Some((item.map_err(|e| DataFusionError::External(Box::new(e))), Some(receiver)))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}
