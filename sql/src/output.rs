//! Query results as bytes, batch by batch: CSV (with a header), JSON lines, Arrow IPC
//! stream, or Parquet. Each writer writes into a buffer that is drained after every
//! batch, so a result is never held whole (Parquet holds at most one row group).

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Rows per Parquet row group in results: also the most rows buffered.
const PARQUET_ROW_GROUP_ROWS: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    Csv,
    Json,
    Arrow,
    Parquet,
}

impl ResultFormat {
    pub fn parse(name: &str) -> Option<ResultFormat> {
        match name.to_ascii_lowercase().as_str() {
            "csv" => Some(ResultFormat::Csv),
            "json" | "jsonl" | "ndjson" => Some(ResultFormat::Json),
            "arrow" | "ipc" => Some(ResultFormat::Arrow),
            "parquet" => Some(ResultFormat::Parquet),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ResultFormat::Csv => "text/csv; charset=utf-8",
            ResultFormat::Json => "application/x-ndjson",
            ResultFormat::Arrow => "application/vnd.apache.arrow.stream",
            ResultFormat::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// A `Write` whose bytes are taken out after each batch.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("buffer lock"))
    }
}

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Writer {
    Csv(datafusion::arrow::csv::Writer<Buffer>),
    Json(datafusion::arrow::json::LineDelimitedWriter<Buffer>),
    Arrow(datafusion::arrow::ipc::writer::StreamWriter<Buffer>),
    Parquet(ArrowWriter<Buffer>),
}

/// Encodes a result, batch by batch.
pub struct ResultEncoder {
    buffer: Buffer,
    writer: Option<Writer>,
    batches: usize,
}

impl ResultEncoder {
    pub fn new(format: ResultFormat, schema: &SchemaRef) -> Result<ResultEncoder> {
        let buffer = Buffer::default();
        let writer = match format {
            ResultFormat::Csv => {
                Writer::Csv(datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(buffer.clone()))
            }
            ResultFormat::Json => Writer::Json(datafusion::arrow::json::LineDelimitedWriter::new(buffer.clone())),
            ResultFormat::Arrow => {
                Writer::Arrow(datafusion::arrow::ipc::writer::StreamWriter::try_new(buffer.clone(), schema)?)
            }
            ResultFormat::Parquet => {
                let properties =
                    WriterProperties::builder().set_max_row_group_row_count(Some(PARQUET_ROW_GROUP_ROWS)).build();
                Writer::Parquet(ArrowWriter::try_new(buffer.clone(), schema.clone(), Some(properties))?)
            }
        };
        Ok(ResultEncoder { buffer, writer: Some(writer), batches: 0 })
    }

    /// The bytes for one more batch (possibly none yet: Parquet writes whole row groups).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        match self.writer.as_mut().expect("encoder not finished") {
            Writer::Csv(w) => w.write(&nested_as_text(batch)?)?,
            Writer::Json(w) => w.write(batch)?,
            Writer::Arrow(w) => w.write(batch)?,
            Writer::Parquet(w) => w.write(batch)?,
        }
        self.batches += 1;
        Ok(self.buffer.take())
    }

    /// The last bytes: an empty CSV result still gets its header, Arrow its end
    /// marker, Parquet its last row group and footer.
    pub fn finish(mut self, schema: &SchemaRef) -> Result<Vec<u8>> {
        match self.writer.take().expect("encoder finished once") {
            Writer::Csv(mut w) if self.batches == 0 => {
                w.write(&nested_as_text(&RecordBatch::new_empty(schema.clone()))?)?
            }
            Writer::Csv(_) => {}
            Writer::Json(mut w) => w.finish()?,
            Writer::Arrow(mut w) => w.finish()?,
            Writer::Parquet(w) => {
                w.close()?;
            }
        }
        Ok(self.buffer.take())
    }
}

/// CSV has no nested values: list, struct and map columns (`inventory.user_metadata`) are
/// written as their text, as `quarry sql` shows them (`{color: blue}`); NULL stays empty.
fn nested_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::array::{Array, ArrayRef, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !field.data_type().is_nested() {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
        let text: StringArray =
            (0..column.len()).map(|row| column.is_valid(row).then(|| formatter.value(row).to_string())).collect();
        fields.push(Field::new(field.name(), DataType::Utf8, field.is_nullable()));
        columns.push(Arc::new(text));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}
