//! The SQL endpoint (`POST /?sql`) and `quarry sql` on the real server: `inventory` and
//! `journal` right after writes and deletes, `read_parquet` over a prefix (flat and
//! Hive-partitioned) against local DataFusion, errors, who may see what, the four result
//! formats, the CLI, and the time and memory limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use quarry_sql::datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use quarry_sql::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use quarry_sql::datafusion::arrow::ipc::reader::StreamReader;
use quarry_sql::datafusion::arrow::util::display::array_value_to_string;
use quarry_sql::datafusion::arrow::util::pretty::pretty_format_batches;
use quarry_sql::datafusion::parquet::arrow::ArrowWriter;
use quarry_sql::datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quarry_sql::datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::harness::*;

/// Rows as text, `None` for NULL: the common form every result format is compared in.
type Rows = Vec<Vec<Option<String>>>;

fn rows(values: &[&[Option<&str>]]) -> Rows {
    values.iter().map(|row| row.iter().map(|v| v.map(str::to_owned)).collect()).collect()
}

/// The rows of Arrow batches, each value as Arrow displays it.
fn batch_rows(batches: &[RecordBatch]) -> Rows {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            out.push(
                batch
                    .columns()
                    .iter()
                    .map(|column| {
                        (!column.is_null(row))
                            .then(|| array_value_to_string(column, row).expect("display an Arrow value"))
                    })
                    .collect(),
            );
        }
    }
    out
}

fn decode_arrow(body: &[u8], what: &str) -> (SchemaRef, Vec<RecordBatch>) {
    let reader = StreamReader::try_new(body, None)
        .unwrap_or_else(|e| panic!("{what}: the body ({} bytes) is not an Arrow IPC stream: {e}", body.len()));
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{what}: a batch of the Arrow IPC stream does not decode: {e}"));
    (schema, batches)
}

fn decode_parquet(body: Bytes, what: &str) -> (SchemaRef, Vec<RecordBatch>) {
    let len = body.len();
    let builder = ParquetRecordBatchReaderBuilder::try_new(body)
        .unwrap_or_else(|e| panic!("{what}: the body ({len} bytes) is not a Parquet file: {e}"));
    let schema = builder.schema().clone();
    let batches = builder
        .build()
        .unwrap_or_else(|e| panic!("{what}: cannot read the Parquet body: {e}"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{what}: a row group of the Parquet body does not decode: {e}"));
    (schema, batches)
}

/// A small RFC 4180 reader: the header and the rows (an empty unquoted field is NULL).
fn parse_csv(text: &str, what: &str) -> (Vec<String>, Rows) {
    let mut records: Vec<Vec<Option<String>>> = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut in_quotes, mut at_field_start) = (false, false, true);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                quoted = true;
                at_field_start = false;
            }
            ',' | '\n' => {
                let value = std::mem::take(&mut field);
                record.push((quoted || !value.is_empty()).then_some(value));
                quoted = false;
                at_field_start = true;
                if c == '\n' {
                    records.push(std::mem::take(&mut record));
                }
            }
            c => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    assert!(
        field.is_empty() && record.is_empty() && !in_quotes,
        "{what}: the CSV does not end with a complete record: {text:?}"
    );
    assert!(!records.is_empty(), "{what}: the CSV has no header line: {text:?}");
    let header = records.remove(0).into_iter().map(|h| h.unwrap_or_default()).collect();
    (header, records)
}

/// JSON lines as rows over `columns` (a missing or null field is NULL).
fn parse_json_lines(text: &str, columns: &[&str], what: &str) -> Rows {
    text.lines()
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: line {line:?} is not JSON: {e}"));
            let object = value.as_object().unwrap_or_else(|| panic!("{what}: line {line:?} is not a JSON object"));
            let unknown: Vec<_> = object.keys().filter(|k| !columns.contains(&k.as_str())).collect();
            assert!(unknown.is_empty(), "{what}: line {line:?} has fields {unknown:?} not among {columns:?}");
            columns
                .iter()
                .map(|c| match object.get(*c) {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(other) => Some(other.to_string()),
                })
                .collect()
        })
        .collect()
}

fn field_names(schema: &Schema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

// ---------------------------------------------------------------------------
// 1. inventory and journal see every acknowledged change at once
// ---------------------------------------------------------------------------

const WRITER_KEY: &str = "writerkey";
const WRITER_SECRET: &str = "writersecret123";

/// The background flusher is effectively off (one hour, a million changes): only the
/// query's own flush can put the changes in the catalog.
const NO_BACKGROUND_FLUSH: &str = r#"
catalog_flush_interval_ms = 3600000
catalog_flush_after_changes = 1000000

[[keys]]
access_key = "writerkey"
secret_key = "writersecret123"
buckets = ["lake"]
access = "read-write"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_inventory_and_journal_show_acknowledged_writes_and_deletes_at_once() {
    let server =
        Server::start_with(ServerOptions { config_toml: Some(NO_BACKGROUND_FLUSH.into()), ..Default::default() });
    let admin = server.client();
    let writer = server.client_with(WRITER_KEY, WRITER_SECRET);
    create_bucket(&admin, "lake").await;

    let inventory_sql = "SELECT key, size, etag, content_type FROM inventory WHERE bucket = 'lake' ORDER BY key";
    assert_eq!(sql_csv(&server, inventory_sql).await, "key,size,etag,content_type\n", "inventory of an empty bucket");

    admin
        .put_object()
        .bucket("lake")
        .key("a.txt")
        .content_type("text/plain")
        .metadata("color", "blue")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .ok_or_panic("PUT lake/a.txt");
    admin
        .put_object()
        .bucket("lake")
        .key("dir/b.csv")
        .content_type("text/csv")
        .body(ByteStream::from_static(b"x,y\n"))
        .send()
        .await
        .ok_or_panic("PUT lake/dir/b.csv");
    assert_eq!(
        sql_csv(&server, inventory_sql).await,
        format!(
            "key,size,etag,content_type\na.txt,5,{},text/plain\ndir/b.csv,4,{},text/csv\n",
            md5_hex(b"hello"),
            md5_hex(b"x,y\n")
        ),
        "inventory right after two acknowledged PUTs"
    );
    let metadata = sql_ok(&server, "json", "SELECT key, user_metadata FROM inventory WHERE key = 'a.txt'").await;
    assert_eq!(
        metadata.body_str(),
        "{\"key\":\"a.txt\",\"user_metadata\":{\"color\":\"blue\"}}\n",
        "user metadata of lake/a.txt in the inventory"
    );
    let metadata = sql_csv(&server, "SELECT key, user_metadata FROM inventory WHERE key = 'a.txt'").await;
    assert_eq!(metadata, "key,user_metadata\na.txt,{color: blue}\n", "user metadata (a map) in a CSV result");

    // An overwrite replaces the row; a delete removes it. Both by the bucket-limited key.
    writer
        .put_object()
        .bucket("lake")
        .key("a.txt")
        .content_type("text/plain")
        .body(ByteStream::from_static(b"hello, world"))
        .send()
        .await
        .ok_or_panic("PUT lake/a.txt again as writerkey");
    assert_eq!(
        sql_csv(&server, inventory_sql).await,
        format!(
            "key,size,etag,content_type\na.txt,12,{},text/plain\ndir/b.csv,4,{},text/csv\n",
            md5_hex(b"hello, world"),
            md5_hex(b"x,y\n")
        ),
        "inventory right after an overwrite"
    );
    writer.delete_object().bucket("lake").key("a.txt").send().await.ok_or_panic("DELETE lake/a.txt as writerkey");
    assert_eq!(
        sql_csv(&server, inventory_sql).await,
        format!("key,size,etag,content_type\ndir/b.csv,4,{},text/csv\n", md5_hex(b"x,y\n")),
        "inventory right after DELETE lake/a.txt"
    );

    let journal_sql = "SELECT record_type, key, size, requester, source_ip FROM journal \
                       WHERE bucket = 'lake' ORDER BY sequence_number";
    let expected_journal = "record_type,key,size,requester,source_ip\n\
                            CREATE,a.txt,5,quarryadmin,127.0.0.1\n\
                            CREATE,dir/b.csv,4,quarryadmin,127.0.0.1\n\
                            CREATE,a.txt,12,writerkey,127.0.0.1\n\
                            DELETE,a.txt,,writerkey,127.0.0.1\n";
    assert_eq!(sql_csv(&server, journal_sql).await, expected_journal, "journal of bucket lake (as the admin)");
    // The bucket's own key sees the same rows.
    let as_writer = sql_ok_as(&server, WRITER_KEY, WRITER_SECRET, "csv", journal_sql).await.body_str();
    assert_eq!(as_writer, expected_journal, "journal of bucket lake as writerkey");

    // The inventory row of a live key is the journal's latest CREATE of it.
    let joined = sql_csv(
        &server,
        "SELECT i.key, j.record_type FROM inventory i JOIN journal j ON i.sequence_number = j.sequence_number \
         WHERE i.bucket = 'lake'",
    )
    .await;
    assert_eq!(joined, "key,record_type\ndir/b.csv,CREATE\n", "inventory joined to the journal by sequence_number");
}

/// Versions, delete markers, tags and object lock in the catalog: `tags['project']`
/// filters the inventory, and the journal names each version and marker as the S3 API
/// does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_the_catalog_carries_versions_markers_tags_and_locks() {
    use aws_sdk_s3::types::{BucketVersioningStatus, ObjectLockLegalHoldStatus, VersioningConfiguration};
    let server =
        Server::start_with(ServerOptions { config_toml: Some(NO_BACKGROUND_FLUSH.into()), ..Default::default() });
    let s3 = server.client();
    create_bucket(&s3, "lake").await;
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning().bucket("lake").versioning_configuration(enabled).send().await.unwrap();
    let put = |key: &'static str, tagging: &'static str| {
        s3.put_object().bucket("lake").key(key).tagging(tagging).body(ByteStream::from_static(b"data")).send()
    };
    let v1 = put("a.csv", "project=x&team=red").await.ok_or_panic("PUT a.csv v1").version_id.unwrap();
    let v2 = put("a.csv", "project=y").await.ok_or_panic("PUT a.csv v2").version_id.unwrap();
    put("b.csv", "project=x").await.ok_or_panic("PUT b.csv");
    put("c.csv", "").await.ok_or_panic("PUT c.csv");
    let marker = s3.delete_object().bucket("lake").key("c.csv").send().await.ok_or_panic("DELETE c.csv");
    let marker = marker.version_id.unwrap();

    let tagged = "SELECT key, version_id FROM inventory WHERE bucket = 'lake' AND tags['project'] = 'x' ORDER BY key";
    assert_eq!(
        sql_csv(&server, tagged).await,
        "key,version_id
b.csv,"
            .to_owned()
            + &latest_id(&s3, "b.csv").await
            + "
"
    );
    let journal = "SELECT record_type, key, version_id, is_delete_marker FROM journal WHERE bucket = 'lake' \
                   ORDER BY sequence_number";
    let b = latest_id(&s3, "b.csv").await;
    let c = s3.list_object_versions().bucket("lake").prefix("c.csv").send().await.unwrap();
    let c = c.versions()[0].version_id().unwrap().to_owned();
    assert_eq!(
        sql_csv(&server, journal).await,
        format!(
            "record_type,key,version_id,is_delete_marker\n\
             CREATE,a.csv,{v1},false\nCREATE,a.csv,{v2},false\nCREATE,b.csv,{b},false\n\
             CREATE,c.csv,{c},false\nDELETE,c.csv,{marker},true\n"
        ),
        "the journal names every version and the delete marker"
    );

    // Retagging the current version moves it out of the filter; tags of an old one do not.
    let retag = aws_sdk_s3::types::Tagging::builder()
        .tag_set(aws_sdk_s3::types::Tag::builder().key("project").value("z").build().unwrap())
        .build()
        .unwrap();
    s3.put_object_tagging().bucket("lake").key("b.csv").tagging(retag.clone()).send().await.unwrap();
    s3.put_object_tagging().bucket("lake").key("a.csv").version_id(&v1).tagging(retag).send().await.unwrap();
    assert_eq!(
        sql_csv(&server, tagged).await,
        "key,version_id
",
        "no current version is tagged project=x"
    );
    let changes = "SELECT key, version_id, tags['project'] AS project FROM journal \
                   WHERE record_type = 'UPDATE_TAGS' ORDER BY sequence_number";
    assert_eq!(sql_csv(&server, changes).await, format!("key,version_id,project\nb.csv,{b},z\na.csv,{v1},z\n"));

    // Object lock: the inventory shows the current version's retention and legal hold.
    s3.create_bucket().bucket("vault").object_lock_enabled_for_bucket(true).send().await.unwrap();
    s3.put_object()
        .bucket("vault")
        .key("deed")
        .object_lock_mode(aws_sdk_s3::types::ObjectLockMode::Governance)
        .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(4_102_444_800))
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"deed"))
        .send()
        .await
        .ok_or_panic("PUT vault/deed with a lock");
    let locks = "SELECT key, object_lock_mode, CAST(object_lock_retain_until AS VARCHAR) AS until, \
                 object_lock_legal_hold FROM inventory WHERE bucket = 'vault'";
    assert_eq!(
        sql_csv(&server, locks).await,
        "key,object_lock_mode,until,object_lock_legal_hold\ndeed,GOVERNANCE,2100-01-01T00:00:00Z,true\n"
    );
}

async fn latest_id(s3: &aws_sdk_s3::Client, key: &str) -> String {
    let head = s3.head_object().bucket("lake").key(key).send().await.ok_or_panic("HEAD for a version id");
    head.version_id.expect("a version id")
}

// ---------------------------------------------------------------------------
// 2. read_parquet over a prefix == local DataFusion over the same files
// ---------------------------------------------------------------------------

const PARQUET_FILES: usize = 100;
const ROWS_PER_FILE: i64 = 10;

/// File `i` of the data set: ids `i*10 .. i*10+9`, some names NULL, amounts that add up
/// exactly in binary floating point (so any summation order gives the same total).
fn data_file(i: usize) -> RecordBatch {
    let ids: Vec<i64> = (0..ROWS_PER_FILE).map(|j| i as i64 * ROWS_PER_FILE + j).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("part", DataType::Int32, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, false),
        Field::new("flag", DataType::Boolean, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(Int32Array::from(ids.iter().map(|id| (id % 7) as i32).collect::<Vec<_>>())),
        Arc::new(StringArray::from(
            ids.iter().map(|id| (id % 11 != 0).then(|| format!("name, {id:04}"))).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(ids.iter().map(|id| *id as f64 * 1.25 - 3.5).collect::<Vec<_>>())),
        Arc::new(BooleanArray::from(ids.iter().map(|id| id % 3 == 0).collect::<Vec<_>>())),
    ];
    RecordBatch::try_new(schema, columns).expect("data file batch")
}

fn parquet_bytes(batch: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), None).expect("Parquet writer");
    writer.write(batch).expect("write a Parquet batch");
    writer.close().expect("close the Parquet writer");
    out
}

/// Asserts two results have the same columns (names and types) and the same rows in the
/// same order; on a difference, shows the first differing row.
#[track_caller]
fn assert_same_result(
    got: &[RecordBatch],
    got_schema: &Schema,
    want: &[RecordBatch],
    want_schema: &Schema,
    what: &str,
) {
    let columns = |s: &Schema| s.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect::<Vec<_>>();
    assert_eq!(columns(got_schema), columns(want_schema), "{what}: columns through the endpoint vs local DataFusion");
    let (got_rows, want_rows) = (batch_rows(got), batch_rows(want));
    if let Some(i) = (0..got_rows.len().max(want_rows.len())).find(|&i| got_rows.get(i) != want_rows.get(i)) {
        panic!(
            "{what}: {} rows through the endpoint, {} locally; first difference at row {i}: endpoint {:?}, local {:?}\n\
             endpoint result (head):\n{}",
            got_rows.len(),
            want_rows.len(),
            got_rows.get(i),
            want_rows.get(i),
            pretty_format_batches(&got.iter().map(|b| b.slice(0, b.num_rows().min(20))).collect::<Vec<_>>())
                .map(|t| t.to_string())
                .unwrap_or_default()
        );
    }
}

/// Runs `query` with `{t}` as `source` through the endpoint and as table `t` in `local`,
/// and asserts the two results are the same.
async fn assert_same_as_local(server: &Server, source: &str, local: &SessionContext, query: &str) {
    let remote_sql = query.replace("{t}", source);
    let local_sql = query.replace("{t}", "t");
    let (got_schema, got) = decode_arrow(&sql_ok(server, "arrow", &remote_sql).await.body, &remote_sql);
    let frame = local.sql(&local_sql).await.unwrap_or_else(|e| panic!("local DataFusion: {local_sql}: {e}"));
    let want_schema = frame.schema().inner().clone();
    let want = frame.collect().await.unwrap_or_else(|e| panic!("local DataFusion: {local_sql}: {e}"));
    assert_same_result(&got, &got_schema, &want, &want_schema, &remote_sql);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_read_parquet_over_a_prefix_equals_local_datafusion_over_the_same_files() {
    let server = Server::start();
    let admin = server.client();
    create_bucket(&admin, "lake").await;
    let local_dir = server.temp_path().join("parquet-data");
    std::fs::create_dir_all(&local_dir).expect("create the local data dir");

    let files: Vec<(String, Vec<u8>)> =
        (0..PARQUET_FILES).map(|i| (format!("part-{i:03}.parquet"), parquet_bytes(&data_file(i)))).collect();
    for (name, bytes) in &files {
        std::fs::write(local_dir.join(name), bytes).expect("write a local Parquet file");
    }
    // A file without the extension under the prefix (ignored by both sides), and a
    // Parquet object outside the prefix (which must not be read).
    std::fs::write(local_dir.join("_notes.txt"), b"not parquet").expect("write the local notes file");
    put(&admin, "lake", "data/_notes.txt", b"not parquet").await;
    put(&admin, "lake", "elsewhere/part-000.parquet", &parquet_bytes(&data_file(PARQUET_FILES))).await;
    let uploads = files.iter().map(|(name, bytes)| {
        let admin = admin.clone();
        async move { put(&admin, "lake", &format!("data/{name}"), bytes).await }
    });
    futures::future::join_all(uploads).await;

    let local = SessionContext::new();
    local
        .register_parquet("t", local_dir.to_str().expect("UTF-8 temp path"), ParquetReadOptions::default())
        .await
        .expect("register the local Parquet files");

    let queries = [
        "SELECT * FROM {t} ORDER BY id",
        "SELECT part, count(*) AS n, count(name) AS named, sum(amount) AS total, min(name) AS first, max(id) AS last \
         FROM {t} GROUP BY part ORDER BY part",
        "SELECT id, name, amount FROM {t} WHERE flag AND amount > 500 ORDER BY id DESC LIMIT 25",
        "SELECT count(*) AS n, count(DISTINCT part) AS parts, sum(amount) AS total, avg(id) AS mean FROM {t}",
    ];
    for query in queries {
        assert_same_as_local(&server, "read_parquet('s3://lake/data/')", &local, query).await;
    }
    // And the whole set really went through: 100 files of 10 rows.
    let count = sql_csv(&server, "SELECT count(*) AS n FROM read_parquet('s3://lake/data/')").await;
    assert_eq!(count, format!("n\n{}\n", PARQUET_FILES as i64 * ROWS_PER_FILE), "rows under s3://lake/data/");
}

/// A file of the Hive-partitioned set: `rows` ids from `first_id`, each with a `blob` of
/// `blob_bytes` hex digits (so a file's size is set by what a query must read of it).
fn sales_file(first_id: i64, rows: i64, blob_bytes: usize) -> RecordBatch {
    let ids: Vec<i64> = (first_id..first_id + rows).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("blob", DataType::Utf8, false),
    ]));
    let blob = |id: i64| {
        let bytes = seeded_bytes(id as u64, blob_bytes / 2);
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(Float64Array::from(ids.iter().map(|id| *id as f64 * 0.5).collect::<Vec<_>>())),
        Arc::new(StringArray::from(ids.iter().map(|id| blob(*id)).collect::<Vec<_>>())),
    ];
    RecordBatch::try_new(schema, columns).expect("sales file batch")
}

/// `quarry_chunk_read_bytes_total`: the object bytes the server has read and verified.
async fn chunk_read_bytes(server: &Server) -> u64 {
    let response = raw_request("GET", &format!("{}/metrics", server.endpoint()), &[], Bytes::new()).await;
    let text = response.body_str();
    text.lines()
        .find_map(|line| line.strip_prefix("quarry_chunk_read_bytes_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no quarry_chunk_read_bytes_total in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_read_parquet_over_a_hive_layout_has_its_keys_as_columns_and_skips_filtered_out_directories() {
    let server = Server::start();
    let admin = server.client();
    create_bucket(&admin, "lake").await;
    let local_dir = server.temp_path().join("hive-data");

    // 2023's files are large (8 MiB of blobs each), 2024's small: a query on 2024 alone
    // reads less than one 2023 file, unless it reads 2023's data too.
    let mut files = Vec::new();
    for (i, (year, region)) in [("2023", "eu"), ("2023", "us"), ("2024", "eu"), ("2024", "us")].into_iter().enumerate()
    {
        let (rows, blob_bytes) = if year == "2023" { (1024, 8192) } else { (10, 16) };
        let key = format!("year={year}/region={region}/part-0.parquet");
        files.push((key, parquet_bytes(&sales_file(i as i64 * 10_000, rows, blob_bytes))));
    }
    for (key, bytes) in &files {
        let path = local_dir.join(key);
        std::fs::create_dir_all(path.parent().expect("a parent dir")).expect("create a local partition dir");
        std::fs::write(&path, bytes).expect("write a local Parquet file");
        put(&admin, "lake", &format!("sales/{key}"), bytes).await;
    }
    let big_file_bytes = files[0].1.len() as u64;
    assert!(big_file_bytes > 8 << 20, "a 2023 file is over 8 MiB ({big_file_bytes} bytes)");

    // The same layout on local disk, its partition columns given explicitly.
    let local = SessionContext::new();
    let partitions = vec![("year".to_owned(), DataType::Utf8), ("region".to_owned(), DataType::Utf8)];
    let options = ParquetReadOptions { table_partition_cols: partitions, ..Default::default() };
    local
        .register_parquet("t", local_dir.to_str().expect("UTF-8 temp path"), options)
        .await
        .expect("register the local Hive layout");
    let queries = [
        "SELECT year, region, count(*) AS n, sum(amount) AS total, min(id) AS first FROM {t} \
         GROUP BY year, region ORDER BY year, region",
        "SELECT id, year, region FROM {t} WHERE year = '2024' AND region <> 'eu' ORDER BY id",
    ];
    for query in queries {
        assert_same_as_local(&server, "read_parquet('s3://lake/sales/')", &local, query).await;
    }
    assert_eq!(
        sql_csv(
            &server,
            "SELECT year, count(*) AS n FROM read_parquet('s3://lake/sales/') GROUP BY year ORDER BY year"
        )
        .await,
        "year,n\n2023,2048\n2024,20\n",
        "rows per year= directory"
    );

    // A filter on a key skips the other directories' data: only their footers are read
    // (schema inference), not their blobs.
    let blobs = "SELECT count(*) AS n, max(length(blob)) AS longest FROM read_parquet('s3://lake/sales/')";
    let before = chunk_read_bytes(&server).await;
    let filtered = sql_csv(&server, &format!("{blobs} WHERE year = '2024'")).await;
    let filtered_bytes = chunk_read_bytes(&server).await - before;
    assert_eq!(filtered, "n,longest\n20,16\n", "the 2024 rows");
    assert!(
        filtered_bytes < big_file_bytes,
        "a query on year = '2024' read {filtered_bytes} bytes: it read 2023's data too (one 2023 file is \
         {big_file_bytes} bytes)"
    );
    let before = chunk_read_bytes(&server).await;
    let everything = sql_csv(&server, blobs).await;
    let everything_bytes = chunk_read_bytes(&server).await - before;
    assert_eq!(everything, "n,longest\n2068,8192\n", "all rows");
    assert!(
        everything_bytes > 2 * (8 << 20),
        "the same query without the filter must read both 2023 files' blobs, read {everything_bytes} bytes"
    );

    // A prefix that is not all `key=value` directories at one depth has no key columns,
    // and every object under it is still read.
    put(&admin, "lake", "mixed/top.parquet", &parquet_bytes(&data_file(0))).await;
    put(&admin, "lake", "mixed/k=1/inner.parquet", &parquet_bytes(&data_file(1))).await;
    assert_eq!(
        sql_csv(&server, "SELECT * FROM read_parquet('s3://lake/mixed/') ORDER BY id LIMIT 0").await.trim_end(),
        "id,part,name,amount,flag",
        "columns of a prefix with objects at two depths"
    );
    assert_eq!(
        sql_csv(&server, "SELECT count(*) AS n FROM read_parquet('s3://lake/mixed/')").await,
        format!("n\n{}\n", 2 * ROWS_PER_FILE),
        "rows of a prefix with objects at two depths"
    );
}

// ---------------------------------------------------------------------------
// 3. errors
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_bad_queries_are_400_invalid_query_naming_the_problem() {
    let server = Server::start();
    let admin = server.client();
    create_bucket(&admin, "lake").await;
    put(&admin, "lake", "t.parquet", &parquet_bytes(&data_file(0))).await;

    // (SQL, a word the message must contain)
    let cases = [
        ("SELEC key FROM inventory", "SELEC"),
        ("SELECT key FROM inventory WHERE", "Expected"),
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("SELECT no_such_column FROM inventory", "no_such_column"),
        ("SELECT no_such_function(key) FROM inventory", "no_such_function"),
        ("SELECT sum(key) FROM inventory", "sum"),
        ("SELECT 1; SELECT 2", "one SQL statement"),
        ("SELECT missing FROM read_parquet('s3://lake/t.parquet')", "missing"),
        ("SELECT * FROM read_parquet('/etc/passwd')", "/etc/passwd"),
        ("SELECT * FROM read_parquet(42)", "s3://"),
    ];
    for (sql, needle) in cases {
        let response = sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "csv", sql).await;
        let message = expect_error_document(&response, 400, "InvalidQuery", format!("query {sql:?}"));
        assert!(
            message.contains(needle) && !message.is_empty(),
            "query {sql:?}: the InvalidQuery message should name {needle:?}, got {message:?}"
        );
    }

    // An object or prefix that is not there: the client's mistake, not the server's.
    for (sql, url) in [
        ("SELECT * FROM read_parquet('s3://lake/no-such-object.parquet')", "s3://lake/no-such-object.parquet"),
        ("SELECT * FROM read_parquet('s3://no-such-bucket/data/')", "s3://no-such-bucket"),
    ] {
        let response = sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "csv", sql).await;
        let message = expect_error_document(&response, 400, "InvalidQuery", format!("query {sql:?}"));
        assert!(message.contains(url), "query {sql:?}: the InvalidQuery message should name {url}, got {message:?}");
    }

    // Not SQL problems, but still clear 400s.
    let empty = sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "csv", "  ").await;
    expect_error_document(&empty, 400, "InvalidRequest", "an empty SQL body");
    let format = sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "xml", "SELECT 1").await;
    let message = expect_error_document(&format, 400, "InvalidArgument", "format=xml");
    assert!(message.contains("xml"), "format=xml: the message should name the format, got {message:?}");
}

// ---------------------------------------------------------------------------
// 4. who may see what
// ---------------------------------------------------------------------------

const ALICE_KEY: &str = "alicekey";
const ALICE_SECRET: &str = "alicesecret123";
const NOBODY_KEY: &str = "nobodykey";
const NOBODY_SECRET: &str = "nobodysecret123";

const ACCESS_CONFIG: &str = r#"
[[keys]]
access_key = "alicekey"
secret_key = "alicesecret123"
buckets = ["alpha"]
access = "read-only"

[[keys]]
access_key = "nobodykey"
secret_key = "nobodysecret123"
buckets = []
access = "read-only"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_a_key_sees_only_its_buckets_and_unsigned_or_forged_requests_are_refused() {
    let server = Server::start_with(ServerOptions { config_toml: Some(ACCESS_CONFIG.into()), ..Default::default() });
    let admin = server.client();
    create_bucket(&admin, "alpha").await;
    create_bucket(&admin, "beta").await;
    put(&admin, "alpha", "a.parquet", &parquet_bytes(&data_file(1))).await;
    put(&admin, "beta", "b.parquet", &parquet_bytes(&data_file(2))).await;
    put(&admin, "beta", "gone.txt", b"soon deleted").await;
    admin.delete_object().bucket("beta").key("gone.txt").send().await.ok_or_panic("DELETE beta/gone.txt");

    let alice = |sql: &'static str| sql_as(&server, ALICE_KEY, ALICE_SECRET, "csv", sql);
    let buckets_sql = [
        ("inventory", "SELECT bucket, count(*) AS n FROM inventory GROUP BY bucket ORDER BY bucket"),
        ("journal", "SELECT bucket, count(*) AS n FROM journal GROUP BY bucket ORDER BY bucket"),
    ];
    let admin_sees = ["bucket,n\nalpha,1\nbeta,1\n", "bucket,n\nalpha,1\nbeta,3\n"];
    let alice_sees = ["bucket,n\nalpha,1\n", "bucket,n\nalpha,1\n"];
    for (((table, sql), admin_rows), alice_rows) in buckets_sql.iter().zip(admin_sees).zip(alice_sees) {
        assert_eq!(sql_csv(&server, sql).await, admin_rows, "{table} per bucket as the admin");
        assert_eq!(
            sql_ok_as(&server, ALICE_KEY, ALICE_SECRET, "csv", sql).await.body_str(),
            alice_rows,
            "{table} per bucket as alicekey (limited to alpha)"
        );
        assert_eq!(
            sql_ok_as(&server, NOBODY_KEY, NOBODY_SECRET, "csv", sql).await.body_str(),
            "bucket,n\n",
            "{table} per bucket as nobodykey (no buckets)"
        );
    }
    // A filter on the other bucket finds nothing, rather than reaching around the scope.
    let beta_rows = alice("SELECT count(*) AS n FROM journal WHERE bucket = 'beta' OR key = 'gone.txt'").await;
    assert_eq!(beta_rows.body_str(), "n\n0\n", "alicekey counting beta's journal rows: HTTP {}", beta_rows.status);
    // The unfiltered tables behind the views are not reachable by name.
    for sql in ["SELECT count(*) FROM inventory_changes", "SELECT count(*) FROM inventory_tombstones"] {
        let response = sql_as(&server, ALICE_KEY, ALICE_SECRET, "csv", sql).await;
        expect_error_document(&response, 400, "InvalidQuery", format!("alicekey: {sql}"));
    }

    // Objects of a bucket the key may not read: refused, however they are named.
    assert_eq!(
        sql_ok_as(&server, ALICE_KEY, ALICE_SECRET, "csv", "SELECT count(*) AS n FROM read_parquet('s3://alpha/')")
            .await
            .body_str(),
        "n\n10\n",
        "alicekey reading her own bucket's Parquet"
    );
    for sql in [
        "SELECT * FROM read_parquet('s3://beta/b.parquet')",
        "SELECT * FROM read_parquet('s3://beta/')",
        "SELECT * FROM read_csv('s3://beta/gone.txt')",
        "SELECT * FROM read_json('s3://beta/')",
        "SELECT key FROM inventory WHERE size IN (SELECT id FROM read_parquet('s3://beta/'))",
        "SELECT * FROM read_parquet('s3://alpha/') UNION ALL SELECT * FROM read_parquet('s3://beta/')",
    ] {
        let response = sql_as(&server, ALICE_KEY, ALICE_SECRET, "csv", sql).await;
        let message = expect_error_document(&response, 403, "AccessDenied", format!("alicekey: {sql}"));
        assert!(message.contains("beta"), "alicekey: {sql}: the AccessDenied message should name beta: {message:?}");
    }
    // A URL used as a table name is not a way around read_parquet's check.
    let response = sql_as(&server, ALICE_KEY, ALICE_SECRET, "csv", "SELECT * FROM 's3://beta/b.parquet'").await;
    assert!(
        matches!(response.status, 400 | 403) && response.xml_tag("Code").is_some(),
        "alicekey: SELECT * FROM 's3://beta/b.parquet': expected a 400/403 error document, got HTTP {}: {}",
        response.status,
        response.body_str()
    );

    // Requests that are not signed by a known key with its secret.
    let url = format!("{}/?sql&format=csv", server.endpoint());
    let sql = "SELECT key FROM inventory";
    let unsigned = raw_request("POST", &url, &[], sql).await;
    expect_error_document(&unsigned, 403, "AccessDenied", "an unsigned SQL request");
    let forged = sigv4_headers("POST", &url, sql.as_bytes(), ALICE_KEY, "not-alices-secret");
    let forged: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    expect_error_document(
        &raw_request("POST", &url, &forged, sql).await,
        403,
        "SignatureDoesNotMatch",
        "a SQL request signed with the wrong secret",
    );
    let unknown = sigv4_headers("POST", &url, sql.as_bytes(), "nosuchkey", "nosuchsecret123");
    let unknown: Vec<(&str, &str)> = unknown.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    expect_error_document(
        &raw_request("POST", &url, &unknown, sql).await,
        403,
        "InvalidAccessKeyId",
        "a SQL request signed with an unknown key",
    );
    // A signed query swapped for another one on the way: the payload hash gives it away.
    let signed = sigv4_headers("POST", &url, b"SELECT 1", ALICE_KEY, ALICE_SECRET);
    let signed: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let swapped = raw_request("POST", &url, &signed, "SELECT * FROM journal").await;
    assert!(
        swapped.status == 400 && swapped.xml_tag("Code").is_some(),
        "a SQL body that is not the signed one: expected an HTTP 400 error document, got HTTP {}: {}",
        swapped.status,
        swapped.body_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_ddl_dml_and_local_files_are_refused_even_for_the_admin() {
    let server = Server::start();
    let targets: Vec<_> = ["copied.csv", "copied", "copied.parquet", "explained.parquet"]
        .iter()
        .map(|name| server.temp_path().join(name))
        .collect();
    let copies = [
        format!("COPY (SELECT 1 AS one) TO '{}' STORED AS CSV", targets[0].display()),
        format!("COPY (SELECT 1) TO '{}'", targets[1].display()),
        format!("COPY (SELECT 1 AS one) TO '{}'", targets[2].display()),
        format!("EXPLAIN ANALYZE COPY (SELECT 1 AS one) TO '{}'", targets[3].display()),
    ];
    let statements = [
        // STORED AS CSV does not even parse in the endpoint's dialect; PARQUET and
        // TEXTFILE do, and reach DataFusion's read-only guard.
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/passwd'",
        "CREATE EXTERNAL TABLE x (line VARCHAR) STORED AS TEXTFILE LOCATION '/etc/passwd'",
        "EXPLAIN ANALYZE CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/passwd'",
        copies[0].as_str(),
        copies[1].as_str(),
        copies[2].as_str(),
        copies[3].as_str(),
        "CREATE TABLE t AS SELECT 1 AS one",
        "CREATE VIEW v AS SELECT 1 AS one",
        "DROP VIEW inventory",
        "INSERT INTO journal SELECT * FROM journal",
        "SET datafusion.execution.target_partitions = 1",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_csv('file:///etc/passwd')",
    ];
    for sql in statements {
        let response = sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "csv", sql).await;
        expect_error_document(&response, 400, "InvalidQuery", sql);
        assert!(!response.body_str().contains("root:"), "{sql}: the answer shows /etc/passwd: {}", response.body_str());
    }
    for target in &targets {
        assert!(!target.exists(), "COPY ... TO {} was refused but wrote the file", target.display());
    }
    // The views are still there and still answer.
    assert_eq!(sql_csv(&server, "SELECT count(*) AS n FROM inventory").await, "n\n0\n", "inventory after the DDL");
}

// ---------------------------------------------------------------------------
// 5. the four result formats
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_csv_json_arrow_and_parquet_results_hold_the_same_rows() {
    let server = Server::start();
    let admin = server.client();
    create_bucket(&admin, "fmt").await;
    put(&admin, "fmt", "plain.txt", b"abc").await;
    put(&admin, "fmt", "with,comma \"quoted\".txt", b"0123456789").await;
    put(&admin, "fmt", "nested/\u{fc}n\u{ef}code.bin", &[7u8; 300]).await;

    let sql = "SELECT key, size, CASE WHEN size > 5 THEN 'big' END AS label FROM inventory \
               WHERE bucket = 'fmt' ORDER BY key";
    let expected = rows(&[
        &[Some("nested/\u{fc}n\u{ef}code.bin"), Some("300"), Some("big")],
        &[Some("plain.txt"), Some("3"), None],
        &[Some("with,comma \"quoted\".txt"), Some("10"), Some("big")],
    ]);
    let columns = ["key", "size", "label"];

    let csv = sql_ok(&server, "csv", sql).await;
    assert_eq!(csv.header("content-type").as_deref(), Some("text/csv; charset=utf-8"), "CSV content type");
    assert_eq!(
        csv.body_str(),
        "key,size,label\nnested/\u{fc}n\u{ef}code.bin,300,big\nplain.txt,3,\n\"with,comma \"\"quoted\"\".txt\",10,big\n",
        "CSV result"
    );
    let (header, csv_rows) = parse_csv(&csv.body_str(), "CSV result");
    assert_eq!((header, &csv_rows), (columns.map(String::from).to_vec(), &expected), "CSV result, parsed");

    let json = sql_ok(&server, "json", sql).await;
    assert_eq!(json.header("content-type").as_deref(), Some("application/x-ndjson"), "JSON content type");
    assert_eq!(parse_json_lines(&json.body_str(), &columns, "JSON result"), expected, "JSON lines result");

    let arrow = sql_ok(&server, "arrow", sql).await;
    assert_eq!(
        arrow.header("content-type").as_deref(),
        Some("application/vnd.apache.arrow.stream"),
        "Arrow content type"
    );
    let (arrow_schema, arrow_batches) = decode_arrow(&arrow.body, "Arrow result");
    assert_eq!(field_names(&arrow_schema), columns, "Arrow result columns");
    assert_eq!(batch_rows(&arrow_batches), expected, "Arrow result rows");

    let parquet = sql_ok(&server, "parquet", sql).await;
    assert_eq!(parquet.header("content-type").as_deref(), Some("application/vnd.apache.parquet"), "Parquet type");
    let (parquet_schema, parquet_batches) = decode_parquet(parquet.body.clone(), "Parquet result");
    assert_eq!(field_names(&parquet_schema), columns, "Parquet result columns");
    let types = |s: &Schema| s.fields().iter().map(|f| f.data_type().clone()).collect::<Vec<_>>();
    assert_eq!(types(&parquet_schema), types(&arrow_schema), "column types: Parquet result vs Arrow result");
    assert_eq!(batch_rows(&parquet_batches), expected, "Parquet result rows");

    // The format named by Accept, when the query string has none.
    let url = format!("{}/?sql", server.endpoint());
    let mut headers = sigv4_headers("POST", &url, sql.as_bytes(), ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
    headers.push(("accept".into(), "application/vnd.apache.arrow.stream".into()));
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let accepted = raw_request("POST", &url, &headers, sql).await;
    assert_eq!(accepted.status, 200, "Accept: arrow: {}", accepted.body_str());
    assert_eq!(batch_rows(&decode_arrow(&accepted.body, "Accept: arrow").1), expected, "Accept: arrow rows");

    // Every column of the tables, in every format (maps and timestamps included).
    for (table, n) in [("inventory", 3), ("journal", 3)] {
        let star = format!("SELECT * FROM {table} WHERE bucket = 'fmt' ORDER BY key");
        let (arrow_schema, batches) = decode_arrow(&sql_ok(&server, "arrow", &star).await.body, &star);
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), n, "{star}: Arrow rows");
        let (parquet_schema, p) = decode_parquet(sql_ok(&server, "parquet", &star).await.body, &star);
        assert_eq!(batch_rows(&p), batch_rows(&batches), "{star}: Parquet rows vs Arrow rows");
        assert_eq!(field_names(&parquet_schema), field_names(&arrow_schema), "{star}: Parquet vs Arrow columns");
        let csv = sql_ok(&server, "csv", &star).await.body_str();
        let (header, csv_rows) = parse_csv(&csv, &star);
        assert_eq!(header, field_names(&arrow_schema), "{star}: CSV header");
        assert_eq!(csv_rows.len(), n, "{star}: CSV rows");
        let json = sql_ok(&server, "json", &star).await.body_str();
        assert_eq!(json.lines().count(), n, "{star}: JSON lines: {json}");
    }

    // An empty result is still a well-formed answer in each format.
    let none = "SELECT key, size FROM inventory WHERE bucket = 'no-such-bucket'";
    assert_eq!(sql_ok(&server, "csv", none).await.body_str(), "key,size\n", "empty CSV result");
    assert_eq!(sql_ok(&server, "json", none).await.body_str(), "", "empty JSON result");
    let (schema, batches) = decode_arrow(&sql_ok(&server, "arrow", none).await.body, "empty Arrow result");
    assert_eq!(
        (field_names(&schema), batch_rows(&batches)),
        (vec!["key".into(), "size".into()], vec![]),
        "empty Arrow"
    );
    let (schema, batches) = decode_parquet(sql_ok(&server, "parquet", none).await.body, "empty Parquet result");
    assert_eq!(
        (field_names(&schema), batch_rows(&batches)),
        (vec!["key".into(), "size".into()], vec![]),
        "empty Parquet"
    );

    // A result of many batches (and more than one Parquet row group).
    let many = "SELECT value FROM generate_series(1, 100000) ORDER BY value";
    let csv = sql_ok(&server, "csv", many).await.body_str();
    let values: Vec<&str> = csv.lines().collect();
    assert_eq!(
        (values.len(), values[0], values[1], values[100000]),
        (100001, "value", "1", "100000"),
        "CSV of 100k rows"
    );
    let json = sql_ok(&server, "json", many).await.body_str();
    assert_eq!(
        (json.lines().count(), json.lines().last()),
        (100000, Some("{\"value\":100000}")),
        "JSON lines of 100k rows"
    );
    let sum_of = |batches: &[RecordBatch]| -> i64 {
        batches
            .iter()
            .map(|b| {
                b.column(0).as_any().downcast_ref::<Int64Array>().expect("Int64 values").iter().flatten().sum::<i64>()
            })
            .sum()
    };
    let (_, batches) = decode_arrow(&sql_ok(&server, "arrow", many).await.body, many);
    assert_eq!(sum_of(&batches), 100000 * 100001 / 2, "sum of the Arrow result of 100k rows");
    let (_, batches) = decode_parquet(sql_ok(&server, "parquet", many).await.body, many);
    assert_eq!(sum_of(&batches), 100000 * 100001 / 2, "sum of the Parquet result of 100k rows");
}

// ---------------------------------------------------------------------------
// 6. quarry sql
// ---------------------------------------------------------------------------

struct CliOutput {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `quarry sql ARGS` with the given credentials (None: no credentials at all).
async fn quarry_sql(
    server: &Server,
    credentials: Option<(&str, &str)>,
    args: &[&str],
    stdin: Option<&str>,
) -> CliOutput {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quarry"));
    cmd.arg("sql").arg("--endpoint").arg(server.endpoint()).args(args);
    for var in [
        "QUARRY_ENDPOINT",
        "QUARRY_ACCESS_KEY",
        "QUARRY_SECRET_KEY",
        "QUARRY_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
    ] {
        cmd.env_remove(var);
    }
    if let Some((access, secret)) = credentials {
        cmd.env("QUARRY_ACCESS_KEY", access).env("QUARRY_SECRET_KEY", secret);
    }
    cmd.env("NO_COLOR", "1").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let stdin = stdin.map(str::to_owned);
    let what = format!("quarry sql {args:?}");
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
        let mut input = child.stdin.take().expect("piped stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write the SQL to stdin");
        }
        drop(input);
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{what}: {e}"));
        CliOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("quarry sql thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_cli_prints_tables_csv_json_and_readable_errors() {
    let server = Server::start();
    let admin = server.client();
    create_bucket(&admin, "lake").await;
    put(&admin, "lake", "a.txt", b"hello").await;
    put(&admin, "lake", "b.txt", b"hello, world").await;
    let sql = "SELECT key, size FROM inventory WHERE bucket = 'lake' ORDER BY key";
    let admin_key = Some((ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY));
    let ok = |out: &CliOutput, what: &str| {
        assert_eq!(out.code, Some(0), "{what}: exit code; stderr: {}", out.stderr);
    };

    let table = quarry_sql(&server, admin_key, &[sql], None).await;
    ok(&table, "quarry sql (table)");
    assert_eq!(
        table.stdout,
        "+-------+------+\n\
         | key   | size |\n\
         +-------+------+\n\
         | a.txt | 5    |\n\
         | b.txt | 12   |\n\
         +-------+------+\n\
         2 rows\n",
        "quarry sql: the default table output"
    );

    let csv = quarry_sql(&server, admin_key, &["--format", "csv", sql], None).await;
    ok(&csv, "quarry sql --format csv");
    assert_eq!(csv.stdout, "key,size\na.txt,5\nb.txt,12\n", "quarry sql --format csv");

    let json = quarry_sql(&server, admin_key, &["--format", "json", sql], None).await;
    ok(&json, "quarry sql --format json");
    assert_eq!(
        json.stdout, "{\"key\":\"a.txt\",\"size\":5}\n{\"key\":\"b.txt\",\"size\":12}\n",
        "quarry sql --format json"
    );

    let from_stdin = quarry_sql(&server, admin_key, &["--format", "csv", "-"], Some(sql)).await;
    ok(&from_stdin, "quarry sql --format csv - (SQL on stdin)");
    assert_eq!(from_stdin.stdout, "key,size\na.txt,5\nb.txt,12\n", "quarry sql with the SQL on stdin");

    let one_row = quarry_sql(&server, admin_key, &["SELECT count(*) AS n FROM inventory"], None).await;
    ok(&one_row, "quarry sql (one row)");
    assert_eq!(one_row.stdout, "+---+\n| n |\n+---+\n| 2 |\n+---+\n1 row\n", "quarry sql: a one-row table");

    let empty = quarry_sql(&server, admin_key, &["SELECT key FROM inventory WHERE bucket = 'none'"], None).await;
    ok(&empty, "quarry sql (no rows)");
    assert_eq!(empty.stdout, "+-----+\n| key |\n+-----+\n+-----+\n0 rows\n", "quarry sql: an empty table");

    let bad = quarry_sql(&server, admin_key, &["SELECT * FROM no_such_table"], None).await;
    assert!(
        bad.code.is_some_and(|c| c != 0) && bad.stdout.is_empty(),
        "quarry sql with bad SQL: expected a non-zero exit and no output, got {:?}, stdout {:?}",
        bad.code,
        bad.stdout
    );
    assert!(
        bad.stderr.contains("InvalidQuery: ") && bad.stderr.contains("no_such_table") && !bad.stderr.contains('<'),
        "quarry sql with bad SQL: stderr should read `InvalidQuery: ...no_such_table...` (no XML), got {:?}",
        bad.stderr
    );

    let wrong_secret = quarry_sql(&server, Some((ADMIN_ACCESS_KEY, "wrong-secret-123")), &[sql], None).await;
    assert!(
        wrong_secret.code.is_some_and(|c| c != 0) && wrong_secret.stderr.contains("SignatureDoesNotMatch"),
        "quarry sql with a wrong secret: expected a non-zero exit naming SignatureDoesNotMatch, got {:?}: {:?}",
        wrong_secret.code,
        wrong_secret.stderr
    );
    let no_keys = quarry_sql(&server, None, &[sql], None).await;
    assert!(
        no_keys.code.is_some_and(|c| c != 0) && no_keys.stderr.contains("QUARRY_ACCESS_KEY"),
        "quarry sql without credentials: expected a non-zero exit asking for QUARRY_ACCESS_KEY, got {:?}: {:?}",
        no_keys.code,
        no_keys.stderr
    );
}

// ---------------------------------------------------------------------------
// 7. time and memory limits
// ---------------------------------------------------------------------------

/// CPU time (user + system) the process has used, from /proc/PID/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat has (comm)") + 2..].split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

const QUERY_TIMEOUT_MS: u64 = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_queries_past_their_time_or_memory_limit_are_cancelled() {
    let server = Server::start_with(ServerOptions {
        extra_args: vec![
            "--query-timeout-ms".into(),
            QUERY_TIMEOUT_MS.to_string(),
            "--query-memory-bytes".into(),
            (8 * MIB).to_string(),
        ],
        ..Default::default()
    });
    let light = "SELECT count(*) AS n FROM generate_series(1, 1000)";
    assert_eq!(sql_csv(&server, light).await, "n\n1000\n", "a light query under the limits");

    // Counting 10^12 rows takes hours: only the time limit ends it.
    let heavy = "SELECT count(*) AS n FROM generate_series(1, 1000000000000)";
    let started = Instant::now();
    let response = sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "csv", heavy).await;
    let took = started.elapsed();
    let message = expect_error_document(&response, 400, "QueryTimeout", "a query longer than the time limit");
    assert!(message.contains(&QUERY_TIMEOUT_MS.to_string()), "QueryTimeout should name the limit: {message:?}");
    assert!(
        took >= Duration::from_millis(QUERY_TIMEOUT_MS) && took < Duration::from_millis(QUERY_TIMEOUT_MS + 5000),
        "the timed-out query answered after {took:?}, expected soon after the {QUERY_TIMEOUT_MS} ms limit"
    );
    // Cancelled, not only answered: the server stops spending CPU on it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (cpu_before, wall) = (cpu_time(server.pid()), Instant::now());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let busy = cpu_time(server.pid()) - cpu_before;
    assert!(
        busy < Duration::from_millis(400),
        "after the timeout the server still used {busy:?} of CPU in {:?}: the query kept running",
        wall.elapsed()
    );

    // Sorting 5 million rows needs ~40 MB; the limit is 8 MiB and nothing spills.
    let hungry = "SELECT value FROM generate_series(1, 5000000) ORDER BY value DESC";
    let response = sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "csv", hungry).await;
    let message = expect_error_document(&response, 400, "QueryMemoryLimitExceeded", "a query over the memory limit");
    assert!(
        message.contains(&(8 * MIB).to_string()),
        "QueryMemoryLimitExceeded should name the limit ({} bytes): {message:?}",
        8 * MIB
    );

    // The server is fine afterwards.
    assert_eq!(sql_csv(&server, light).await, "n\n1000\n", "a light query after the cancelled ones");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_too_deep_or_too_large_are_refused_and_the_server_lives_on() {
    let server = Server::start();
    let chain = |terms: usize| format!("SELECT {}", vec!["1"; terms].join("+"));
    let megabyte_terms = (quarry_sql::query::MAX_SQL_BYTES - "SELECT ".len()) / 2;
    let nested = format!("SELECT {}size{} FROM inventory", "CAST(".repeat(48), " AS INT)".repeat(48));
    // 700 terms overflowed a worker's stack and killed the process; 48 nested CASTs took
    // minutes to parse; a megabyte of terms is the largest text the endpoint takes.
    // 75 bytes on which sqlparser backtracked for half a minute.
    let backtracking = format!("SELECT {}", "s.x.y[".repeat(12));
    for (what, sql) in [
        ("700 terms", chain(700)),
        ("48 nested CASTs", nested),
        ("1 MiB of terms", chain(megabyte_terms)),
        ("12 nested subscripts", backtracking),
    ] {
        let started = Instant::now();
        let response = sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "csv", &sql).await;
        let message = expect_error_document(&response, 400, "InvalidQuery", what);
        assert!(message.contains("too complex"), "{what}: the message should say why, got {message:?}");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "{what}: refused only after {took:?}");
        let health = raw_request("GET", &format!("{}/health", server.endpoint()), &[], Vec::new()).await;
        assert_eq!(health.status, 200, "/health after {what}");
    }
    // Within the bounds: 200 terms run.
    let csv = sql_csv(&server, &format!("{} AS n", chain(200))).await;
    assert_eq!(csv, "n\n200\n", "a 200-term sum");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_is_only_for_admin_keys() {
    let server = Server::start_with(ServerOptions { config_toml: Some(ACCESS_CONFIG.into()), ..Default::default() });
    let admin = server.client();
    create_bucket(&admin, "alpha").await;
    create_bucket(&admin, "beta").await;
    put(&admin, "alpha", "a.parquet", &parquet_bytes(&data_file(1))).await;
    put(&admin, "beta", "hidden-key.parquet", &parquet_bytes(&data_file(2))).await;

    // Plans name the catalog's files in the data directory, and EXPLAIN ANALYZE's pruning
    // metrics count rows of other buckets' keys.
    for sql in [
        "EXPLAIN SELECT key FROM inventory",
        "EXPLAIN ANALYZE SELECT key FROM inventory WHERE key = 'hidden-key.parquet'",
        "EXPLAIN VERBOSE SELECT count(*) FROM read_parquet('s3://alpha/')",
    ] {
        let response = sql_as(&server, ALICE_KEY, ALICE_SECRET, "csv", sql).await;
        let message = expect_error_document(&response, 403, "AccessDenied", format!("{sql} as a limited key"));
        assert!(message.contains("EXPLAIN"), "{sql}: the message should say why, got {message:?}");
    }
    let plan = sql_csv(&server, "EXPLAIN SELECT key FROM inventory").await;
    assert!(plan.contains("plan"), "EXPLAIN as the admin gives the plan, got {plan:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_its_query_slot_only_until_the_deadline() {
    use tokio::io::AsyncWriteExt;
    // Longer than the 2 s a query waits for a slot, so the second query is refused before it.
    let timeout_ms = 4000;
    let server = Server::start_with(ServerOptions {
        extra_args: vec![
            "--query-timeout-ms".into(),
            timeout_ms.to_string(),
            "--max-concurrent-queries".into(),
            "1".into(),
        ],
        ..Default::default()
    });
    // About 30 MB of CSV: more than the socket buffers hold, so the server's sender blocks.
    let big = "SELECT n, repeat('x', 100) AS pad FROM (SELECT unnest(range(0, 300000)) AS n)";
    let url = format!("{}/?sql&format=csv", server.endpoint());
    let headers = sigv4_headers("POST", &url, big.as_bytes(), ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
    let mut request =
        format!("POST /?sql&format=csv HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n", server.addr(), big.len());
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str("\r\n");
    request.push_str(big);
    let mut stalled = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    stalled.write_all(request.as_bytes()).await.expect("send the query");
    // Read only the status line, then nothing more. While the stalled query holds the only
    // slot, another query waits, then is refused.
    let mut head = [0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut stalled, &mut head).await.expect("the stalled query's status line");
    assert_eq!(&head, b"HTTP/1.1 200", "the stalled query started");
    let response = sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "csv", "SELECT 1 AS one").await;
    expect_error_document(&response, 503, "SlowDown", "a query while the only slot is held by a stalled one");
    // Past the stalled query's deadline its slot is free again, though its client never read.
    tokio::time::sleep(Duration::from_millis(timeout_ms)).await;
    let csv = sql_csv(&server, "SELECT 1 AS one").await;
    assert_eq!(csv, "one\n1\n", "a query after the stalled one's deadline");
    drop(stalled);
}

/// A Parquet file whose footer says its metadata is as long as the whole file: the parquet
/// crate's footer decoder overflowed a subtraction on it and panicked.
pub fn parquet_with_an_impossible_footer(mut parquet: Vec<u8>) -> Vec<u8> {
    let len = parquet.len();
    let footer_len = (len as u32).to_le_bytes();
    parquet[len - 8..len - 4].copy_from_slice(&footer_len);
    parquet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_parquet_footer_is_an_error_not_a_dropped_connection() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "badpq").await;
    put(&s3, "badpq", "bad.parquet", &parquet_with_an_impossible_footer(parquet_bytes(&data_file(1)))).await;
    for sql in [
        "SELECT count(*) FROM read_parquet('s3://badpq/bad.parquet')",
        "SELECT count(*) FROM read_parquet('s3://badpq/')",
    ] {
        let response = sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "csv", sql).await;
        expect_error_document(&response, 400, "InvalidQuery", sql);
    }
    let health = raw_request("GET", &format!("{}/health", server.endpoint()), &[], Vec::new()).await;
    assert_eq!(health.status, 200, "/health after the malformed footer");
}

/// Sends `sql` on a raw connection and reads only the status line: the query has started
/// and, with a result larger than the socket buffers, stays stalled with what it holds.
async fn start_stalled_query(server: &Server, sql: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let url = format!("{}/?sql&format=csv", server.endpoint());
    let headers = sigv4_headers("POST", &url, sql.as_bytes(), ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
    let mut request =
        format!("POST /?sql&format=csv HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n", server.addr(), sql.len());
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str("\r\n");
    request.push_str(sql);
    let mut stalled = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    stalled.write_all(request.as_bytes()).await.expect("send the query");
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(20), tokio::io::AsyncReadExt::read_exact(&mut stalled, &mut head))
        .await
        .expect("the stalled query's status line within 20 s")
        .expect("the stalled query's status line");
    assert_eq!(&head, b"HTTP/1.1 200", "the stalled query started");
    stalled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_queries_share_one_server_wide_memory_budget() {
    // Sorting 5 million rows needs 72 to 80 MiB at its peak and keeps its 40 MB of rows
    // while it streams them: one such query fits its share and the total, two at once do
    // not fit the total.
    let server = Server::start_with(ServerOptions {
        extra_args: vec![
            "--query-memory-bytes".into(),
            (96 * MIB).to_string(),
            "--query-memory-total-bytes".into(),
            (100 * MIB).to_string(),
            "--query-timeout-ms".into(),
            "30000".into(),
        ],
        ..Default::default()
    });
    let sort = "SELECT value FROM generate_series(1, 5000000) ORDER BY value DESC";
    let alone = sql_ok(&server, "csv", sort).await;
    assert!(alone.body_str().starts_with("value\n5000000\n"), "the sort alone fits its share and the total");

    // A client that reads only the status line keeps its sort's memory held.
    let stalled = start_stalled_query(&server, sort).await;
    let started = Instant::now();
    let response = sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "csv", sort).await;
    let message =
        expect_error_document(&response, 400, "QueryMemoryLimitExceeded", "a second sort while the first holds memory");
    assert!(message.contains(&(100 * MIB).to_string()), "the message should name the shared budget: {message:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "refused after {:?}", started.elapsed());

    // Once the stalled query is gone, its memory is back in the budget.
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "csv", sort).await;
        if response.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the budget was not given back: {}", response.body_str());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM line");
    line.split_whitespace().nth(1).expect("VmHWM value").parse::<u64>().expect("VmHWM kB") * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_functions_cannot_allocate_past_the_value_limit() {
    let server = Server::start_with(ServerOptions {
        extra_args: vec!["--query-memory-bytes".into(), (64 * MIB).to_string()],
        ..Default::default()
    });
    let before = peak_rss(server.pid());
    // Each would build a 500 MB string outside the memory pool (it reached 2 GiB RSS).
    for sql in [
        "SELECT length(repeat('x', 500000000)) AS n",
        "SELECT length(lpad('x', 500000000, 'ab')) AS n",
        "SELECT length(rpad('x', 500000000)) AS n",
        "SELECT length(repeat(k, 500000000)) AS n FROM (VALUES ('ab'), ('c')) AS t(k)",
        // replace multiplies: each of 10 million matches becomes 100 bytes.
        "SELECT length(replace(repeat('x', 10000000), 'x', repeat('y', 100))) AS n",
        // Lists: 8 bytes an element, built outside the pool.
        "SELECT cardinality(range(0, 100000000)) AS n",
        "SELECT cardinality(range(100000000)) AS n",
        "SELECT cardinality(generate_series(1, 100000000, 1)) AS n",
        "SELECT cardinality(range(TIMESTAMP '2000-01-01T00:00:00', TIMESTAMP '2030-01-01T00:00:00', INTERVAL '1 second')) AS n",
        // A step mixing signs walks on until the dates overflow (1.3 GB in 20 s).
        "SELECT cardinality(range(DATE '9999-01-01', DATE '0001-01-01', INTERVAL '1 month -30 days')) AS n",
        "SELECT cardinality(array_repeat(1, 100000000)) AS n",
        "SELECT cardinality(array_repeat('abcdefgh', 100000000)) AS n",
        "SELECT cardinality(array_resize([1], 100000000, 7)) AS n",
    ] {
        let started = Instant::now();
        let response = sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "csv", sql).await;
        assert_eq!(response.status, 400, "{sql}: expected a 400, got {}: {}", response.status, response.body_str());
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "{sql}: refused only after {took:?}");
        let grown = peak_rss(server.pid()).saturating_sub(before);
        assert!(grown < 200 * MIB as u64, "{sql}: peak RSS grew by {} MiB", grown / MIB as u64);
    }
    // Within the bound they work.
    assert_eq!(sql_csv(&server, "SELECT length(repeat('x', 1000000)) AS n").await, "n\n1000000\n");
    assert_eq!(sql_csv(&server, "SELECT lpad('7', 3, '0') AS n").await, "n\n007\n");
    assert_eq!(sql_csv(&server, "SELECT replace('a-b-c', '-', '+') AS n").await, "n\na+b+c\n");
    assert_eq!(sql_csv(&server, "SELECT cardinality(range(0, 1000000)) AS n").await, "n\n1000000\n");
    assert_eq!(sql_csv(&server, "SELECT cardinality(generate_series(10, 1, -3)) AS n").await, "n\n4\n");
    let days = "SELECT cardinality(range(DATE '2024-01-01', DATE '2025-01-01', INTERVAL '1 day')) AS n";
    assert_eq!(sql_csv(&server, days).await, "n\n366\n");
    assert_eq!(sql_csv(&server, "SELECT cardinality(array_repeat('ab', 1000)) AS n").await, "n\n1000\n");
    assert_eq!(sql_csv(&server, "SELECT cardinality(array_resize([1, 2], 5, 0)) AS n").await, "n\n5\n");
    // A long series streams from the table function, within the pool.
    assert_eq!(sql_csv(&server, "SELECT count(*) AS n FROM generate_series(1, 3000000)").await, "n\n3000000\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_is_bounded_by_the_deadline_and_leaves_the_runtime_free() {
    let timeout_ms = 1000;
    let server = Server::start_with(ServerOptions {
        extra_args: vec![
            "--query-timeout-ms".into(),
            timeout_ms.to_string(),
            "--max-concurrent-queries".into(),
            "4".into(),
        ],
        ..Default::default()
    });
    // Within every bound of shape.rs, and seconds to plan: 12,000 output columns.
    let slow = format!("SELECT {}", (0..12_000).map(|i| format!("{i} AS c{i}")).collect::<Vec<_>>().join(", "));
    // As many at once as the server has runtime workers (one per core): before, they all
    // planned on the workers and nothing else was answered.
    let at_once = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    let started = Instant::now();
    let queries: Vec<_> = (0..at_once)
        .map(|_| {
            let (endpoint, sql) = (server.endpoint().to_owned(), slow.clone());
            tokio::spawn(async move {
                let url = format!("{endpoint}/?sql&format=csv");
                let headers = sigv4_headers("POST", &url, sql.as_bytes(), ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
                let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                let response = raw_request("POST", &url, &headers, sql.into_bytes()).await;
                (response, Instant::now())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_health_answers_promptly(&server, "queries plan").await;
    for query in queries {
        let (response, answered) = tokio::time::timeout(Duration::from_secs(60), query)
            .await
            .expect("the slow query is answered")
            .expect("query task");
        expect_error_document(&response, 400, "QueryTimeout", "a query still planning at its deadline");
        let took = answered - started;
        assert!(
            took < Duration::from_millis(timeout_ms + 2000),
            "the query still planning at its {timeout_ms} ms deadline was answered after {took:?}"
        );
    }
}
