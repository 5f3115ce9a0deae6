//! The catalog's tables as Rust rows and as Arrow: schemas, and the conversions both
//! ways.
//!
//! Columns are only ever added, at the end of a schema, and nullable: a file written
//! before a column existed reads with the column empty (null, or no tags), never
//! misread and never refused.

use super::parquet_error;
use crate::error::{Error, Result};
use crate::log_entry::{LockMode, ObjectMeta};
use arrow_array::builder::{MapBuilder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, BooleanArray, MapArray, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One row of the `journal` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRow {
    pub sequence_number: u64,
    /// "CREATE" | "DELETE" | "DELETE_VERSION" | "UPDATE_TAGS" | "UPDATE_RETENTION" |
    /// "UPDATE_LEGAL_HOLD"
    pub record_type: String,
    pub record_timestamp_ms: i64,
    pub bucket: String,
    pub key: String,
    /// The version the change made or changed: none in a bucket never versioned, and
    /// none for a tag or lock change of "the latest version" whose target the catalog
    /// can no longer tell.
    pub version_id: Option<String>,
    /// A DELETE that made a delete marker (a versioned or suspended bucket).
    pub is_delete_marker: bool,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub last_modified_ms: Option<i64>,
    pub user_metadata: BTreeMap<String, String>,
    pub requester: Option<String>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    /// The version's tags after a CREATE or UPDATE_TAGS; none for other changes.
    pub tags: Option<BTreeMap<String, String>>,
    /// What a CREATE, UPDATE_RETENTION or UPDATE_LEGAL_HOLD set; empty for others.
    pub lock: LockColumns,
}

/// An object version's lock state, as columns. In the inventory every field is known
/// except in rows written before the catalog carried locks; in the journal a change
/// fills what it set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockColumns {
    /// "GOVERNANCE" | "COMPLIANCE"
    pub mode: Option<String>,
    pub retain_until_ms: Option<i64>,
    pub legal_hold: Option<bool>,
}

impl LockColumns {
    pub fn of(meta: &ObjectMeta) -> LockColumns {
        LockColumns {
            mode: meta.retention.map(|r| lock_mode_name(r.mode).to_owned()),
            retain_until_ms: meta.retention.map(|r| r.retain_until_ms),
            legal_hold: Some(meta.legal_hold),
        }
    }
}

pub fn lock_mode_name(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Governance => "GOVERNANCE",
        LockMode::Compliance => "COMPLIANCE",
    }
}

/// One row of the `inventory` table: the current version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryRow {
    pub bucket: String,
    pub key: String,
    /// None in a bucket never versioned; "null" for the null version.
    pub version_id: Option<String>,
    pub size: u64,
    pub etag: String,
    pub content_type: Option<String>,
    pub last_modified_ms: i64,
    pub user_metadata: BTreeMap<String, String>,
    pub sequence_number: u64,
    /// None in rows written before the catalog carried tags.
    pub tags: Option<BTreeMap<String, String>>,
    pub lock: LockColumns,
}

impl InventoryRow {
    /// The row of version `version_id` of `bucket/key` with `meta`, as of change `lsn`.
    pub fn of(bucket: &str, key: &str, version_id: Option<String>, meta: &ObjectMeta, lsn: u64) -> InventoryRow {
        InventoryRow {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id,
            size: meta.size_bytes,
            etag: meta.etag.clone(),
            content_type: meta.content_type.clone(),
            last_modified_ms: meta.last_modified_ms,
            user_metadata: meta.user_metadata.clone(),
            sequence_number: lsn,
            tags: Some(meta.tags.clone()),
            lock: LockColumns::of(meta),
        }
    }
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn string_map_type() -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(
            vec![Field::new("keys", DataType::Utf8, false), Field::new("values", DataType::Utf8, true)].into(),
        ),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

/// The lock columns, last in both tables (added with object lock).
fn tag_and_lock_fields() -> [Field; 4] {
    [
        Field::new("tags", string_map_type(), true),
        Field::new("object_lock_mode", DataType::Utf8, true),
        Field::new("object_lock_retain_until", timestamp_type(), true),
        Field::new("object_lock_legal_hold", DataType::Boolean, true),
    ]
}

pub fn journal_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("sequence_number", DataType::UInt64, false),
        Field::new("record_type", DataType::Utf8, false),
        Field::new("record_timestamp", timestamp_type(), false),
        Field::new("bucket", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("version_id", DataType::Utf8, true),
        Field::new("is_delete_marker", DataType::Boolean, false),
        Field::new("size", DataType::UInt64, true),
        Field::new("etag", DataType::Utf8, true),
        Field::new("content_type", DataType::Utf8, true),
        Field::new("last_modified", timestamp_type(), true),
        Field::new("user_metadata", string_map_type(), true),
        // Who made the change (null for records written before the log carried it).
        Field::new("requester", DataType::Utf8, true),
        Field::new("source_ip", DataType::Utf8, true),
        Field::new("request_id", DataType::Utf8, true),
    ];
    fields.extend(tag_and_lock_fields());
    Arc::new(Schema::new(fields))
}

pub fn inventory_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("bucket", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("version_id", DataType::Utf8, true),
        Field::new("size", DataType::UInt64, false),
        Field::new("etag", DataType::Utf8, false),
        Field::new("content_type", DataType::Utf8, true),
        Field::new("last_modified", timestamp_type(), false),
        Field::new("user_metadata", string_map_type(), true),
        Field::new("sequence_number", DataType::UInt64, false),
    ];
    fields.extend(tag_and_lock_fields());
    Arc::new(Schema::new(fields))
}

pub fn tombstone_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("bucket", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("sequence_number", DataType::UInt64, false),
    ]))
}

/// A map column of `string_map_type()`; a `None` row is null.
fn map_array<'a>(rows: impl Iterator<Item = Option<&'a BTreeMap<String, String>>>) -> Result<ArrayRef> {
    let mut builder = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for map in rows {
        for (k, v) in map.into_iter().flatten() {
            builder.keys().append_value(k);
            builder.values().append_value(v);
        }
        builder.append(map.is_some()).map_err(parquet_error)?;
    }
    // The builder names its fields like `string_map_type()`; cast the nullability to match.
    let built = builder.finish();
    let (_, offsets, entries, nulls, ordered) = built.into_parts();
    let field = match string_map_type() {
        DataType::Map(field, _) => field,
        _ => unreachable!("string_map_type is a map"),
    };
    let entries = arrow_array::StructArray::try_new(
        match field.data_type() {
            DataType::Struct(fields) => fields.clone(),
            _ => unreachable!("map entries are a struct"),
        },
        entries.columns().to_vec(),
        None,
    )
    .map_err(parquet_error)?;
    Ok(Arc::new(MapArray::try_new(field, offsets, entries, nulls, ordered).map_err(parquet_error)?))
}

fn timestamps(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from(values.collect::<Vec<_>>()))
}

/// The four tag and lock columns of rows with `tags` and `lock`.
fn tag_and_lock_columns<'a>(
    rows: impl Iterator<Item = (Option<&'a BTreeMap<String, String>>, &'a LockColumns)> + Clone,
) -> Result<[ArrayRef; 4]> {
    Ok([
        map_array(rows.clone().map(|(tags, _)| tags))?,
        strings(rows.clone().map(|(_, lock)| lock.mode.as_deref())),
        timestamps(rows.clone().map(|(_, lock)| lock.retain_until_ms).collect()),
        Arc::new(BooleanArray::from(rows.map(|(_, lock)| lock.legal_hold).collect::<Vec<_>>())),
    ])
}

pub fn journal_batch(rows: &[JournalRow]) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.sequence_number))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.record_type.as_str()))),
        timestamps(rows.iter().map(|r| Some(r.record_timestamp_ms)).collect()),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.bucket.as_str()))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.key.as_str()))),
        strings(rows.iter().map(|r| r.version_id.as_deref())),
        Arc::new(BooleanArray::from(rows.iter().map(|r| r.is_delete_marker).collect::<Vec<_>>())),
        Arc::new(UInt64Array::from(rows.iter().map(|r| r.size).collect::<Vec<_>>())),
        strings(rows.iter().map(|r| r.etag.as_deref())),
        strings(rows.iter().map(|r| r.content_type.as_deref())),
        timestamps(rows.iter().map(|r| r.last_modified_ms).collect()),
        map_array(rows.iter().map(|r| Some(&r.user_metadata)))?,
        strings(rows.iter().map(|r| r.requester.as_deref())),
        strings(rows.iter().map(|r| r.source_ip.as_deref())),
        strings(rows.iter().map(|r| r.request_id.as_deref())),
    ];
    columns.extend(tag_and_lock_columns(rows.iter().map(|r| (r.tags.as_ref(), &r.lock)))?);
    RecordBatch::try_new(journal_schema(), columns).map_err(parquet_error)
}

pub fn inventory_batch(rows: &[InventoryRow]) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.bucket.as_str()))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.key.as_str()))),
        strings(rows.iter().map(|r| r.version_id.as_deref())),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.size))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.etag.as_str()))),
        strings(rows.iter().map(|r| r.content_type.as_deref())),
        timestamps(rows.iter().map(|r| Some(r.last_modified_ms)).collect()),
        map_array(rows.iter().map(|r| Some(&r.user_metadata)))?,
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.sequence_number))),
    ];
    columns.extend(tag_and_lock_columns(rows.iter().map(|r| (r.tags.as_ref(), &r.lock)))?);
    RecordBatch::try_new(inventory_schema(), columns).map_err(parquet_error)
}

pub fn tombstone_batch(rows: &[(String, String, u64)]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1.as_str()))),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.2))),
    ];
    RecordBatch::try_new(tombstone_schema(), columns).map_err(parquet_error)
}

pub fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    optional_column(batch, name)?.ok_or_else(|| Error::Corrupt(format!("catalog file without a usable {name} column")))
}

/// A column added after the first files were written: None in those files.
fn optional_column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<Option<&'a T>> {
    match batch.column_by_name(name) {
        None => Ok(None),
        Some(c) => c
            .as_any()
            .downcast_ref::<T>()
            .map(Some)
            .ok_or_else(|| Error::Corrupt(format!("catalog file whose {name} column has another type"))),
    }
}

fn map_at(maps: &MapArray, row: usize) -> BTreeMap<String, String> {
    let entries = maps.value(row);
    let keys = entries.column(0).as_any().downcast_ref::<StringArray>();
    let values = entries.column(1).as_any().downcast_ref::<StringArray>();
    match (keys, values) {
        (Some(k), Some(v)) => (0..k.len()).map(|i| (k.value(i).to_owned(), v.value(i).to_owned())).collect(),
        _ => BTreeMap::new(),
    }
}

fn text(a: &StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_owned())
}

/// The tag and lock columns of a file, each absent in files older than it.
struct TagAndLock<'a> {
    tags: Option<&'a MapArray>,
    mode: Option<&'a StringArray>,
    retain_until: Option<&'a TimestampMillisecondArray>,
    legal_hold: Option<&'a BooleanArray>,
}

impl<'a> TagAndLock<'a> {
    fn of(batch: &'a RecordBatch) -> Result<TagAndLock<'a>> {
        Ok(TagAndLock {
            tags: optional_column(batch, "tags")?,
            mode: optional_column(batch, "object_lock_mode")?,
            retain_until: optional_column(batch, "object_lock_retain_until")?,
            legal_hold: optional_column(batch, "object_lock_legal_hold")?,
        })
    }

    fn tags(&self, i: usize) -> Option<BTreeMap<String, String>> {
        self.tags.filter(|t| !t.is_null(i)).map(|t| map_at(t, i))
    }

    fn lock(&self, i: usize) -> LockColumns {
        LockColumns {
            mode: self.mode.and_then(|m| text(m, i)),
            retain_until_ms: self.retain_until.filter(|t| !t.is_null(i)).map(|t| t.value(i)),
            legal_hold: self.legal_hold.filter(|h| !h.is_null(i)).map(|h| h.value(i)),
        }
    }
}

pub fn inventory_rows(batch: &RecordBatch) -> Result<Vec<InventoryRow>> {
    let buckets = column::<StringArray>(batch, "bucket")?;
    let keys = column::<StringArray>(batch, "key")?;
    let versions = column::<StringArray>(batch, "version_id")?;
    let sizes = column::<UInt64Array>(batch, "size")?;
    let etags = column::<StringArray>(batch, "etag")?;
    let content_types = column::<StringArray>(batch, "content_type")?;
    let modified = column::<TimestampMillisecondArray>(batch, "last_modified")?;
    let metadata = column::<MapArray>(batch, "user_metadata")?;
    let lsns = column::<UInt64Array>(batch, "sequence_number")?;
    let tag_and_lock = TagAndLock::of(batch)?;
    Ok((0..batch.num_rows())
        .map(|i| InventoryRow {
            bucket: buckets.value(i).to_owned(),
            key: keys.value(i).to_owned(),
            version_id: text(versions, i),
            size: sizes.value(i),
            etag: etags.value(i).to_owned(),
            content_type: text(content_types, i),
            last_modified_ms: modified.value(i),
            user_metadata: map_at(metadata, i),
            sequence_number: lsns.value(i),
            tags: tag_and_lock.tags(i),
            lock: tag_and_lock.lock(i),
        })
        .collect())
}

pub fn journal_rows(batch: &RecordBatch) -> Result<Vec<JournalRow>> {
    let lsns = column::<UInt64Array>(batch, "sequence_number")?;
    let types = column::<StringArray>(batch, "record_type")?;
    let stamps = column::<TimestampMillisecondArray>(batch, "record_timestamp")?;
    let buckets = column::<StringArray>(batch, "bucket")?;
    let keys = column::<StringArray>(batch, "key")?;
    let versions = column::<StringArray>(batch, "version_id")?;
    let markers = column::<BooleanArray>(batch, "is_delete_marker")?;
    let sizes = column::<UInt64Array>(batch, "size")?;
    let etags = column::<StringArray>(batch, "etag")?;
    let content_types = column::<StringArray>(batch, "content_type")?;
    let modified = column::<TimestampMillisecondArray>(batch, "last_modified")?;
    let metadata = column::<MapArray>(batch, "user_metadata")?;
    let requesters = column::<StringArray>(batch, "requester")?;
    let source_ips = column::<StringArray>(batch, "source_ip")?;
    let request_ids = column::<StringArray>(batch, "request_id")?;
    let tag_and_lock = TagAndLock::of(batch)?;
    Ok((0..batch.num_rows())
        .map(|i| JournalRow {
            sequence_number: lsns.value(i),
            record_type: types.value(i).to_owned(),
            record_timestamp_ms: stamps.value(i),
            bucket: buckets.value(i).to_owned(),
            key: keys.value(i).to_owned(),
            version_id: text(versions, i),
            is_delete_marker: markers.value(i),
            size: (!sizes.is_null(i)).then(|| sizes.value(i)),
            etag: text(etags, i),
            content_type: text(content_types, i),
            last_modified_ms: (!modified.is_null(i)).then(|| modified.value(i)),
            user_metadata: map_at(metadata, i),
            requester: text(requesters, i),
            source_ip: text(source_ips, i),
            request_id: text(request_ids, i),
            tags: tag_and_lock.tags(i),
            lock: tag_and_lock.lock(i),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_row(record_type: &str, tags: Option<BTreeMap<String, String>>, lock: LockColumns) -> JournalRow {
        JournalRow {
            sequence_number: 7,
            record_type: record_type.into(),
            record_timestamp_ms: 1_700_000_000_000,
            bucket: "b".into(),
            key: "k".into(),
            version_id: Some("0000000000000007".into()),
            is_delete_marker: false,
            size: None,
            etag: None,
            content_type: None,
            last_modified_ms: None,
            user_metadata: BTreeMap::new(),
            requester: None,
            source_ip: None,
            request_id: None,
            tags,
            lock,
        }
    }

    #[test]
    fn rows_round_trip_through_arrow() {
        let tags = BTreeMap::from([("project".to_owned(), "x".to_owned())]);
        let retention = LockColumns { mode: Some("COMPLIANCE".into()), retain_until_ms: Some(5), legal_hold: None };
        let hold = LockColumns { legal_hold: Some(true), ..Default::default() };
        let journal = vec![
            journal_row("UPDATE_TAGS", Some(tags.clone()), LockColumns::default()),
            journal_row("UPDATE_RETENTION", None, retention),
            journal_row("UPDATE_LEGAL_HOLD", None, hold),
            journal_row("DELETE", None, LockColumns::default()),
        ];
        assert_eq!(journal_rows(&journal_batch(&journal).unwrap()).unwrap(), journal);

        let mut meta = ObjectMeta { size_bytes: 3, etag: "e".into(), tags, ..Default::default() };
        meta.legal_hold = true;
        let inventory = vec![InventoryRow::of("b", "k", Some("null".into()), &meta, 9)];
        assert_eq!(inventory_rows(&inventory_batch(&inventory).unwrap()).unwrap(), inventory);
    }

    #[test]
    fn files_written_before_the_tag_and_lock_columns_read_with_them_unknown() {
        let meta = ObjectMeta { etag: "e".into(), legal_hold: true, ..Default::default() };
        let row = InventoryRow::of("b", "k", None, &meta, 9);
        let batch = inventory_batch(std::slice::from_ref(&row)).unwrap();
        let old_width = batch.num_columns() - tag_and_lock_fields().len();
        let old = batch.project(&(0..old_width).collect::<Vec<_>>()).unwrap();
        let unknown = InventoryRow { tags: None, lock: LockColumns::default(), ..row };
        assert_eq!(inventory_rows(&old).unwrap(), vec![unknown]);

        let journal = journal_row("CREATE", None, LockColumns::default());
        let batch = journal_batch(std::slice::from_ref(&journal)).unwrap();
        let old = batch.project(&(0..batch.num_columns() - tag_and_lock_fields().len()).collect::<Vec<_>>()).unwrap();
        assert_eq!(journal_rows(&old).unwrap(), vec![journal]);
    }
}
