//! S3 Select (SelectObjectContent) through aws-sdk-s3's event stream: CSV, JSON and
//! Parquet input, CSV and JSON output, header modes, column names and positions, CAST,
//! LIMIT, aggregates, JSON FROM paths (`S3Object[*].Records[*]`) and list indexes, GZIP
//! and BZIP2, ScanRange, RequestProgress, the Stats and End events, and errors with S3
//! Select's codes.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::operation::select_object_content::builders::SelectObjectContentFluentBuilder;
use aws_sdk_s3::types::{
    CompressionType, CsvInput, CsvOutput, ExpressionType, FileHeaderInfo, InputSerialization, JsonInput, JsonOutput,
    JsonType, OutputSerialization, ParquetInput, Progress, RequestProgress, ScanRange, SelectObjectContentEventStream,
    Stats,
};
use aws_smithy_types::event_stream::RawMessage;
use quarry_sql::datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use quarry_sql::datafusion::arrow::datatypes::{DataType, Field, Schema};
use quarry_sql::datafusion::parquet::arrow::ArrowWriter;

use crate::harness::*;

const PEOPLE_CSV: &str = "Name,City,Age\nAlice,Paris,30\nBob,\"New York, NY\",25\nCarol,Berlin,41\n";
const PEOPLE_JSON_LINES: &str = "{\"Name\":\"Alice\",\"City\":\"Paris\",\"Age\":30,\"Team\":{\"color\":\"red\"}}\n\
                                 {\"Name\":\"Bob\",\"City\":\"New York, NY\",\"Age\":25,\"Team\":{\"color\":\"blue\"}}\n\
                                 {\"Name\":\"Carol\",\"City\":\"Berlin\",\"Age\":41,\"Team\":{\"color\":\"red\"}}\n";
const PEOPLE_JSON_DOCUMENT: &str = "{\n  \"Name\": \"Alice\",\n  \"City\": \"Paris\",\n  \"Age\": 30\n}\n\
                                    {\n  \"Name\": \"Bob\",\n  \"City\": \"New York, NY\",\n  \"Age\": 25\n}\n\
                                    {\n  \"Name\": \"Carol\",\n  \"City\": \"Berlin\",\n  \"Age\": 41\n}\n";

fn people_parquet() -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("Name", DataType::Utf8, false),
        Field::new("City", DataType::Utf8, false),
        Field::new("Age", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["Alice", "Bob", "Carol"])),
        Arc::new(StringArray::from(vec!["Paris", "New York, NY", "Berlin"])),
        Arc::new(Int64Array::from(vec![30, 25, 41])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("people batch");
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, None).expect("Parquet writer");
    writer.write(&batch).expect("write people.parquet");
    writer.close().expect("close people.parquet");
    out
}

fn csv_in(header: FileHeaderInfo) -> InputSerialization {
    InputSerialization::builder().csv(CsvInput::builder().file_header_info(header).build()).build()
}

fn compressed_csv_in(header: FileHeaderInfo, compression: CompressionType) -> InputSerialization {
    InputSerialization::builder()
        .csv(CsvInput::builder().file_header_info(header).build())
        .compression_type(compression)
        .build()
}

fn json_in(kind: JsonType) -> InputSerialization {
    InputSerialization::builder().json(JsonInput::builder().r#type(kind).build()).build()
}

fn parquet_in() -> InputSerialization {
    InputSerialization::builder().parquet(ParquetInput::builder().build()).build()
}

fn csv_out() -> OutputSerialization {
    OutputSerialization::builder().csv(CsvOutput::builder().build()).build()
}

fn json_out() -> OutputSerialization {
    OutputSerialization::builder().json(JsonOutput::builder().build()).build()
}

/// What a successful S3 Select returned.
#[derive(Debug, Default)]
struct Selected {
    records: String,
    stats: Option<Stats>,
    progress: Vec<Progress>,
    /// The event kinds in the order they came.
    events: Vec<&'static str>,
}

impl Selected {
    /// (BytesScanned, BytesProcessed, BytesReturned) of the Stats event.
    fn stats(&self) -> (i64, i64, i64) {
        let stats = self.stats.as_ref().expect("a Stats event");
        (
            stats.bytes_scanned.expect("Stats BytesScanned"),
            stats.bytes_processed.expect("Stats BytesProcessed"),
            stats.bytes_returned.expect("Stats BytesReturned"),
        )
    }
}

#[derive(Debug)]
enum SelectFailure {
    /// The request was answered with an HTTP error.
    Http { status: Option<u16>, code: Option<String>, message: String },
    /// The response started (HTTP 200) and an error event came.
    Event { code: Option<String>, message: String },
}

impl SelectFailure {
    fn code(&self) -> Option<&str> {
        match self {
            SelectFailure::Http { code, .. } | SelectFailure::Event { code, .. } => code.as_deref(),
        }
    }

    fn message(&self) -> &str {
        match self {
            SelectFailure::Http { message, .. } | SelectFailure::Event { message, .. } => message,
        }
    }
}

/// Sends the request and reads its event stream to the end, checking that Stats then End
/// close it and nothing follows End.
async fn try_select(request: SelectObjectContentFluentBuilder) -> Result<Selected, SelectFailure> {
    let mut output = match request.send().await {
        Ok(output) => output,
        Err(e) => {
            return Err(SelectFailure::Http {
                status: err_status(&e),
                code: e.code().map(str::to_owned),
                message: e.message().map(str::to_owned).unwrap_or_else(|| DisplayErrorContext(&e).to_string()),
            });
        }
    };
    let mut selected = Selected::default();
    let mut records = Vec::new();
    loop {
        let event = match output.payload.recv().await {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(e) => {
                let (code, message) = match error_event(&e) {
                    Some(found) => found,
                    None => (
                        e.code().map(str::to_owned),
                        e.message().map(str::to_owned).unwrap_or_else(|| DisplayErrorContext(&e).to_string()),
                    ),
                };
                return Err(SelectFailure::Event { code, message });
            }
        };
        assert!(
            selected.events.last() != Some(&"End"),
            "S3 Select: an event came after End: {event:?} (events so far: {:?})",
            selected.events
        );
        match event {
            SelectObjectContentEventStream::Records(r) => {
                selected.events.push("Records");
                records.extend_from_slice(r.payload.as_ref().map(|b| b.as_ref()).unwrap_or_default());
            }
            SelectObjectContentEventStream::Stats(s) => {
                selected.events.push("Stats");
                selected.stats = s.details;
            }
            SelectObjectContentEventStream::Progress(p) => {
                selected.events.push("Progress");
                selected.progress.extend(p.details);
            }
            SelectObjectContentEventStream::Cont(_) => selected.events.push("Cont"),
            SelectObjectContentEventStream::End(_) => selected.events.push("End"),
            other => panic!("S3 Select: unexpected event {other:?}"),
        }
    }
    let n = selected.events.len();
    assert!(
        n >= 2 && selected.events[n - 2..] == ["Stats", "End"],
        "S3 Select: the stream should close with Stats then End, got events {:?}",
        selected.events
    );
    selected.records = String::from_utf8(records).expect("S3 Select records are UTF-8");
    let (_, _, returned) = selected.stats();
    assert_eq!(
        returned,
        selected.records.len() as i64,
        "S3 Select: Stats BytesReturned vs the bytes of the Records events"
    );
    Ok(selected)
}

/// The code and message of an S3 Select error event. S3 sends them as a message of
/// `:message-type` `error` with `:error-code` and `:error-message` headers, which the Rust
/// SDK does not model (it knows `event` and `exception`): it hands over the raw message.
fn error_event<E>(e: &aws_sdk_s3::error::SdkError<E, RawMessage>) -> Option<(Option<String>, String)> {
    let Some(RawMessage::Decoded(message)) = e.raw_response() else { return None };
    let header = |name: &str| {
        message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|v| v.as_str().to_owned())
    };
    (header(":message-type").as_deref() == Some("error"))
        .then(|| (header(":error-code"), header(":error-message").unwrap_or_default()))
}

fn request(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    sql: &str,
    input: InputSerialization,
    output: OutputSerialization,
) -> SelectObjectContentFluentBuilder {
    client
        .select_object_content()
        .bucket(bucket)
        .key(key)
        .expression(sql)
        .expression_type(ExpressionType::Sql)
        .input_serialization(input)
        .output_serialization(output)
}

/// Runs one S3 Select, panicking with its error unless it succeeds.
async fn select(
    client: &aws_sdk_s3::Client,
    key: &str,
    sql: &str,
    input: InputSerialization,
    output: OutputSerialization,
) -> Selected {
    match try_select(request(client, "sel", key, sql, input, output)).await {
        Ok(selected) => selected,
        Err(e) => panic!("S3 Select on sel/{key}: {sql}\nexpected success, got {e:?}"),
    }
}

async fn records(
    client: &aws_sdk_s3::Client,
    key: &str,
    sql: &str,
    input: InputSerialization,
    output: OutputSerialization,
) -> String {
    select(client, key, sql, input, output).await.records
}

/// Asserts the request fails as a client error (HTTP 400, or an error event after the
/// response started) whose code satisfies `code_ok`; returns the failure.
#[track_caller]
fn expect_client_error(
    result: Result<Selected, SelectFailure>,
    code_ok: impl Fn(&str) -> bool,
    expected: &str,
    what: &str,
) -> SelectFailure {
    match result {
        Ok(selected) => panic!("{what}: expected {expected}, got success: {:?}", selected.records),
        Err(failure) => {
            let status_ok = match &failure {
                SelectFailure::Http { status, .. } => *status == Some(400),
                SelectFailure::Event { .. } => true,
            };
            assert!(
                status_ok && failure.code().is_some_and(&code_ok),
                "{what}: expected HTTP 400 (or an error event) with {expected}, got {failure:?}"
            );
            failure
        }
    }
}

async fn start_with_people() -> (Server, aws_sdk_s3::Client) {
    let server = Server::start();
    let client = server.client();
    create_bucket(&client, "sel").await;
    put(&client, "sel", "people.csv", PEOPLE_CSV.as_bytes()).await;
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_csv_input_to_csv_and_json_output_ends_with_stats_and_end() {
    let (_server, client) = start_with_people().await;
    let sql = "SELECT s.Name, s.City FROM S3Object s WHERE CAST(s.Age AS INT) > 26";

    let csv = select(&client, "people.csv", sql, csv_in(FileHeaderInfo::Use), csv_out()).await;
    assert_eq!(csv.records, "Alice,Paris\nCarol,Berlin\n", "CSV → CSV: {sql}");
    let len = PEOPLE_CSV.len() as i64;
    assert_eq!(csv.stats(), (len, len, csv.records.len() as i64), "CSV → CSV Stats (scanned, processed, returned)");
    assert!(csv.progress.is_empty(), "no Progress events unless asked for: {:?}", csv.events);

    let json = select(&client, "people.csv", sql, csv_in(FileHeaderInfo::Use), json_out()).await;
    assert_eq!(
        json.records, "{\"Name\":\"Alice\",\"City\":\"Paris\"}\n{\"Name\":\"Carol\",\"City\":\"Berlin\"}\n",
        "CSV → JSON: {sql}"
    );
    assert_eq!(json.stats(), (len, len, json.records.len() as i64), "CSV → JSON Stats");

    let all = "SELECT * FROM S3Object";
    assert_eq!(
        records(&client, "people.csv", all, csv_in(FileHeaderInfo::Use), csv_out()).await,
        "Alice,Paris,30\nBob,\"New York, NY\",25\nCarol,Berlin,41\n",
        "CSV → CSV: {all} (a field with a comma is quoted)"
    );
    assert_eq!(
        records(&client, "people.csv", all, csv_in(FileHeaderInfo::Use), json_out()).await,
        "{\"Name\":\"Alice\",\"City\":\"Paris\",\"Age\":\"30\"}\n\
         {\"Name\":\"Bob\",\"City\":\"New York, NY\",\"Age\":\"25\"}\n\
         {\"Name\":\"Carol\",\"City\":\"Berlin\",\"Age\":\"41\"}\n",
        "CSV → JSON: {all} (CSV values are strings)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_csv_header_use_ignore_none_and_names_positions_and_quoted_names() {
    let (_server, client) = start_with_people().await;
    let cases = [
        (FileHeaderInfo::Use, "SELECT s.\"Name\" FROM S3Object s", "Alice\nBob\nCarol\n"),
        (FileHeaderInfo::Use, "SELECT name FROM S3Object WHERE city = 'Paris'", "Alice\n"),
        (FileHeaderInfo::Use, "SELECT s.name, s.AGE FROM S3Object AS s WHERE s.CITY <> 'Paris'", "Bob,25\nCarol,41\n"),
        (FileHeaderInfo::Use, "SELECT s._2 FROM S3Object s WHERE s._1 = 'Bob'", "\"New York, NY\"\n"),
        (FileHeaderInfo::Ignore, "SELECT s._1, s._3 FROM S3Object s", "Alice,30\nBob,25\nCarol,41\n"),
        (FileHeaderInfo::Ignore, "SELECT count(*) FROM S3Object", "3\n"),
        (FileHeaderInfo::None, "SELECT _1 FROM S3Object", "Name\nAlice\nBob\nCarol\n"),
        (FileHeaderInfo::None, "SELECT count(*) FROM S3Object", "4\n"),
        (FileHeaderInfo::None, "SELECT s._3 FROM S3Object s WHERE s._1 = 'Carol'", "41\n"),
    ];
    for (header, sql, expected) in cases {
        let got = records(&client, "people.csv", sql, csv_in(header.clone()), csv_out()).await;
        assert_eq!(got, expected, "FileHeaderInfo {header:?}: {sql}");
    }
    let positional = records(
        &client,
        "people.csv",
        "SELECT s._1 FROM S3Object s LIMIT 1",
        csv_in(FileHeaderInfo::Ignore),
        json_out(),
    )
    .await;
    assert_eq!(positional, "{\"_1\":\"Alice\"}\n", "FileHeaderInfo IGNORE, JSON output: columns are _1, _2, ...");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_cast_limit_count_and_sum() {
    let (_server, client) = start_with_people().await;
    let cases = [
        ("SELECT count(*) FROM S3Object", "3\n", "{\"_1\":3}\n"),
        ("SELECT COUNT(*) FROM S3Object s WHERE s.City = 'Berlin'", "1\n", "{\"_1\":1}\n"),
        (
            "SELECT sum(CAST(s.Age AS INT)), max(CAST(s.Age AS INT)) FROM S3Object s",
            "96,41\n",
            "{\"_1\":96,\"_2\":41}\n",
        ),
        ("SELECT CAST(s.Age AS INT) + 1 FROM S3Object s LIMIT 1", "31\n", "{\"_1\":31}\n"),
        (
            "SELECT s.Name FROM S3Object s WHERE CAST(s.Age AS FLOAT) < 30.5 LIMIT 5",
            "Alice\nBob\n",
            "{\"Name\":\"Alice\"}\n{\"Name\":\"Bob\"}\n",
        ),
        (
            "SELECT * FROM S3Object s LIMIT 2",
            "Alice,Paris,30\nBob,\"New York, NY\",25\n",
            "{\"Name\":\"Alice\",\"City\":\"Paris\",\"Age\":\"30\"}\n{\"Name\":\"Bob\",\"City\":\"New York, NY\",\"Age\":\"25\"}\n",
        ),
    ];
    for (sql, csv, json) in cases {
        assert_eq!(records(&client, "people.csv", sql, csv_in(FileHeaderInfo::Use), csv_out()).await, csv, "{sql}");
        assert_eq!(records(&client, "people.csv", sql, csv_in(FileHeaderInfo::Use), json_out()).await, json, "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_json_lines_and_document_input() {
    let (_server, client) = start_with_people().await;
    put(&client, "sel", "people.jsonl", PEOPLE_JSON_LINES.as_bytes()).await;
    put(&client, "sel", "people.json", PEOPLE_JSON_DOCUMENT.as_bytes()).await;
    let sql = "SELECT s.Name, s.Age FROM S3Object s WHERE s.Age > 26";
    for (key, kind, len) in [
        ("people.jsonl", JsonType::Lines, PEOPLE_JSON_LINES.len()),
        ("people.json", JsonType::Document, PEOPLE_JSON_DOCUMENT.len()),
    ] {
        let csv = select(&client, key, sql, json_in(kind.clone()), csv_out()).await;
        assert_eq!(csv.records, "Alice,30\nCarol,41\n", "JSON {kind:?} → CSV: {sql}");
        let len = len as i64;
        assert_eq!(csv.stats(), (len, len, csv.records.len() as i64), "JSON {kind:?} → CSV Stats");
        let json = records(&client, key, sql, json_in(kind.clone()), json_out()).await;
        assert_eq!(json, "{\"Name\":\"Alice\",\"Age\":30}\n{\"Name\":\"Carol\",\"Age\":41}\n", "JSON {kind:?} → JSON");
        let count = records(&client, key, "SELECT count(*) FROM S3Object", json_in(kind.clone()), csv_out()).await;
        assert_eq!(count, "3\n", "JSON {kind:?}: count(*)");
    }
    let nested = records(
        &client,
        "people.jsonl",
        "SELECT s.Name FROM S3Object s WHERE s.Team.color = 'red'",
        json_in(JsonType::Lines),
        csv_out(),
    )
    .await;
    assert_eq!(nested, "Alice\nCarol\n", "JSON LINES: a nested field in WHERE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_missing_json_fields_are_null_and_empty_objects_answer_nothing() {
    let (_server, client) = start_with_people().await;
    put(&client, "sel", "sparse.jsonl", b"{\"id\":1,\"extra\":\"x\"}\n{\"id\":2}\n").await;
    put(&client, "sel", "empty.jsonl", b"").await;
    put(&client, "sel", "empty.csv", b"").await;
    // A field some records lack is NULL there; a field no record has is NULL everywhere
    // (S3 Select's MISSING), not an error.
    let sql = "SELECT s.id, s.extra, s.nowhere FROM S3Object s";
    let csv = records(&client, "sparse.jsonl", sql, json_in(JsonType::Lines), csv_out()).await;
    assert_eq!(csv, "1,x,\n2,,\n", "JSON LINES with missing fields → CSV: {sql}");
    let json = records(
        &client,
        "sparse.jsonl",
        "SELECT s.id FROM S3Object s WHERE s.nowhere IS NULL AND s.extra IS NULL",
        json_in(JsonType::Lines),
        json_out(),
    )
    .await;
    assert_eq!(json, "{\"id\":2}\n", "WHERE on missing fields");
    // Objects without records: no rows, then Stats and End, whatever the query names.
    for (key, input) in [("empty.jsonl", json_in(JsonType::Lines)), ("empty.csv", csv_in(FileHeaderInfo::Use))] {
        let selected =
            select(&client, key, "SELECT s.id, s._3 FROM S3Object s WHERE s.age > 3", input.clone(), csv_out()).await;
        assert_eq!(selected.records, "", "{key}: no records expected");
        assert_eq!(selected.stats(), (0, 0, 0), "{key}: Stats of an empty object");
        let count = records(&client, key, "SELECT count(*) FROM S3Object", input, csv_out()).await;
        assert_eq!(count, "0\n", "{key}: count(*)");
    }
}

/// A CloudTrail-style log: one JSON document whose `Records` array holds the events.
const TRAIL_DOCUMENT: &str = r#"{
  "Records": [
    {"eventSource": "s3.amazonaws.com", "eventName": "PutObject", "userIdentity": {"userName": "alice"}},
    {"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances", "userIdentity": {"userName": "bob"}},
    {"eventSource": "s3.amazonaws.com", "eventName": "DeleteObject", "userIdentity": {"userName": "carol"}}
  ]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_json_from_paths_and_list_indexes_work_as_s3_documents_them() {
    let (_server, client) = start_with_people().await;
    put(&client, "sel", "trail.json", TRAIL_DOCUMENT.as_bytes()).await;
    // The S3 Select reference's own examples: where a path finds nothing, the record is
    // MISSING, written as an empty record; list indexes count from 0; a nested field is
    // named after its last part.
    let rules = "{ \"Rules\": [ {\"id\": \"1\"}, {\"expr\": \"y > x\"}, {\"id\": \"2\", \"expr\": \"z = DEBUG\"} ]}\n\
                 { \"created\": \"June 27\", \"modified\": \"July 6\" }\n";
    put(&client, "sel", "rules.json", rules.as_bytes()).await;
    let susan = r#"{"name": "Susan Smith", "org": "engineering", "projects": [
        {"project_name": "project1", "completed": false}, {"project_name": "project2", "completed": true}]}"#;
    put(&client, "sel", "susan.json", susan.as_bytes()).await;

    let trail_by_s3 = "SELECT r.eventName, r.userIdentity.userName FROM S3Object[*].Records[*] r WHERE r.eventSource = 's3.amazonaws.com'";
    let rule_ids = "SELECT id FROM S3Object[*].Rules[*].id";
    // (object, SQL, JSON output (else CSV), expected records)
    let cases = [
        ("trail.json", trail_by_s3.to_owned(), false, "PutObject,alice\nDeleteObject,carol\n"),
        (
            "trail.json",
            trail_by_s3.to_owned(),
            true,
            "{\"eventName\":\"PutObject\",\"userName\":\"alice\"}\n{\"eventName\":\"DeleteObject\",\"userName\":\"carol\"}\n",
        ),
        ("trail.json", "SELECT count(*) FROM S3Object[*].Records[*]".to_owned(), false, "3\n"),
        (
            "trail.json",
            "SELECT _1.eventName FROM S3Object[*].Records[2]".to_owned(),
            true,
            "{\"eventName\":\"DeleteObject\"}\n",
        ),
        ("rules.json", rule_ids.to_owned(), true, "{\"id\":\"1\"}\n{}\n{\"id\":\"2\"}\n{}\n"),
        ("rules.json", format!("{rule_ids} WHERE id IS NOT MISSING"), true, "{\"id\":\"1\"}\n{\"id\":\"2\"}\n"),
        (
            "susan.json",
            "Select s.projects[0].project_name from S3Object s".to_owned(),
            true,
            "{\"project_name\":\"project1\"}\n",
        ),
        (
            "susan.json",
            "SELECT s.name FROM S3Object s WHERE s.projects[1].completed AND NOT s.projects[0].completed".to_owned(),
            false,
            "Susan Smith\n",
        ),
        // An index past the end is MISSING.
        ("susan.json", "SELECT s.projects[5].project_name FROM S3Object s".to_owned(), true, "{}\n"),
    ];
    for (key, sql, json, expected) in cases {
        let output = if json { json_out() } else { csv_out() };
        let got = records(&client, key, &sql, json_in(JsonType::Document), output).await;
        assert_eq!(got, expected, "{key}: {sql}");
    }

    // A path is for JSON only, and must start with the wildcard.
    for (sql, key, input) in [
        ("SELECT * FROM S3Object[*].Records[*]", "people.csv", csv_in(FileHeaderInfo::Use)),
        ("SELECT * FROM S3Object.Records", "trail.json", json_in(JsonType::Document)),
    ] {
        let result = try_select(request(&client, "sel", key, sql, input, csv_out())).await;
        expect_client_error(result, |c| c == "InvalidDataSource", "InvalidDataSource", sql);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_parquet_input_to_csv_and_json_output() {
    let (_server, client) = start_with_people().await;
    let parquet = people_parquet();
    put(&client, "sel", "people.parquet", &parquet).await;
    let sql = "SELECT s.Name, s.City FROM S3Object s WHERE s.Age > 26";

    let csv = select(&client, "people.parquet", sql, parquet_in(), csv_out()).await;
    assert_eq!(csv.records, "Alice,Paris\nCarol,Berlin\n", "Parquet → CSV: {sql}");
    let (scanned, processed, returned) = csv.stats();
    assert!(
        scanned > 0 && scanned <= parquet.len() as i64 && processed > 0 && returned == csv.records.len() as i64,
        "Parquet → CSV Stats (scanned {scanned}, processed {processed}, returned {returned}) for a {}-byte object",
        parquet.len()
    );

    let json = records(&client, "people.parquet", sql, parquet_in(), json_out()).await;
    assert_eq!(
        json, "{\"Name\":\"Alice\",\"City\":\"Paris\"}\n{\"Name\":\"Carol\",\"City\":\"Berlin\"}\n",
        "Parquet → JSON"
    );
    let all = records(&client, "people.parquet", "SELECT * FROM S3Object LIMIT 2", parquet_in(), json_out()).await;
    assert_eq!(
        all,
        "{\"Name\":\"Alice\",\"City\":\"Paris\",\"Age\":30}\n{\"Name\":\"Bob\",\"City\":\"New York, NY\",\"Age\":25}\n",
        "Parquet → JSON: SELECT * ... LIMIT 2 (numbers stay numbers)"
    );
    let agg = "SELECT count(*), sum(s.Age) FROM S3Object s";
    assert_eq!(records(&client, "people.parquet", agg, parquet_in(), csv_out()).await, "3,96\n", "Parquet: {agg}");
    assert_eq!(
        records(&client, "people.parquet", "SELECT s._1 FROM S3Object s WHERE s.age = 25", parquet_in(), csv_out())
            .await,
        "Bob\n",
        "Parquet: a positional column and a case-insensitive name"
    );
}

fn numbers_csv(rows: usize) -> String {
    let mut text = String::from("id,name,value\n");
    for i in 0..rows {
        text.push_str(&format!("{i},name-{i},{}\n", i % 100));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_records_come_in_object_order_across_batches() {
    let (_server, client) = start_with_people().await;
    // Several decoder batches (8192 rows each): a parallel plan would interleave them.
    const ROWS: usize = 30_000;
    put(&client, "sel", "ordered.csv", numbers_csv(ROWS).as_bytes()).await;
    let input = || csv_in(FileHeaderInfo::Use);
    let sql = "SELECT s.id FROM S3Object s WHERE CAST(s.value AS INT) = 7";
    let expected: String = (0..ROWS).filter(|i| i % 100 == 7).map(|i| format!("{i}\n")).collect();
    for run in 0..3 {
        let got = records(&client, "ordered.csv", sql, input(), csv_out()).await;
        assert!(
            got == expected,
            "run {run}: matches out of object order; first lines: {:?}",
            got.lines().take(3).collect::<Vec<_>>()
        );
    }
    let sql = "SELECT s.id FROM S3Object s WHERE CAST(s.value AS INT) = 99 LIMIT 3";
    assert_eq!(records(&client, "ordered.csv", sql, input(), csv_out()).await, "99\n199\n299\n", "{sql}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_gzip_and_bzip2_input() {
    let (_server, client) = start_with_people().await;
    const ROWS: usize = 20_000;
    let raw = numbers_csv(ROWS);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(raw.as_bytes()).expect("gzip");
    let gzip = gzip.finish().expect("gzip");
    let mut bzip2 = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bzip2.write_all(raw.as_bytes()).expect("bzip2");
    let bzip2 = bzip2.finish().expect("bzip2");
    put(&client, "sel", "numbers.csv", raw.as_bytes()).await;
    put(&client, "sel", "numbers.csv.gz", &gzip).await;
    put(&client, "sel", "numbers.csv.bz2", &bzip2).await;

    let expected_sum: usize = (0..ROWS).map(|i| i % 100).sum();
    for (key, compression, stored) in [
        ("numbers.csv", CompressionType::None, raw.len()),
        ("numbers.csv.gz", CompressionType::Gzip, gzip.len()),
        ("numbers.csv.bz2", CompressionType::Bzip2, bzip2.len()),
    ] {
        let input = || compressed_csv_in(FileHeaderInfo::Use, compression.clone());
        let sql = "SELECT count(*), sum(CAST(s.value AS INT)) FROM S3Object s";
        let total = select(&client, key, sql, input(), csv_out()).await;
        assert_eq!(total.records, format!("{ROWS},{expected_sum}\n"), "{compression:?} {key}: {sql}");
        let (scanned, processed, _) = total.stats();
        assert_eq!(
            (scanned, processed),
            (stored as i64, raw.len() as i64),
            "{compression:?} {key}: Stats (BytesScanned = stored bytes, BytesProcessed = uncompressed bytes)"
        );
        let one =
            records(&client, key, "SELECT s.name FROM S3Object s WHERE s.id = '12345'", input(), json_out()).await;
        assert_eq!(one, "{\"name\":\"name-12345\"}\n", "{compression:?} {key}: one row by id");
    }

    // Bytes that are not what the request says they are.
    for (compression, code_hint) in [(CompressionType::Gzip, "gzip"), (CompressionType::Bzip2, "bzip2")] {
        let result = try_select(request(
            &client,
            "sel",
            "numbers.csv",
            "SELECT count(*) FROM S3Object",
            compressed_csv_in(FileHeaderInfo::Use, compression.clone()),
            csv_out(),
        ))
        .await;
        expect_client_error(
            result,
            |c| c == "InvalidCompressionFormat",
            "InvalidCompressionFormat",
            &format!("plain CSV read as {code_hint}"),
        );
    }
}

/// `count` records `"<i>,<padding>\n"` of varying lengths, and each one's offset.
fn ranged_records(count: usize, json: bool) -> (String, Vec<(u64, String)>) {
    let mut text = String::new();
    let mut records = Vec::new();
    for i in 0..count {
        let record = if json {
            format!("{{\"id\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 5 + 1))
        } else {
            format!("{i},{}\n", "x".repeat(i % 5 + 1))
        };
        records.push((text.len() as u64, record.clone()));
        text.push_str(&record);
    }
    (text, records)
}

/// The records S3 Select processes for a ScanRange: those whose first byte is in the
/// range, both ends inclusive (RFC 2616 byte ranges; End defaults to the last byte; End
/// alone means the last End bytes).
fn in_range(records: &[(u64, String)], size: u64, start: Option<u64>, end: Option<u64>) -> Vec<usize> {
    let (first, last) = match (start, end) {
        (Some(s), Some(e)) => (s, e),
        (Some(s), None) => (s, size - 1),
        (None, Some(n)) => (size.saturating_sub(n), size - 1),
        (None, None) => (0, size - 1),
    };
    records.iter().enumerate().filter(|(_, (at, _))| *at >= first && *at <= last).map(|(i, _)| i).collect()
}

fn scan_range(start: Option<u64>, end: Option<u64>) -> ScanRange {
    let mut range = ScanRange::builder();
    if let Some(s) = start {
        range = range.start(s as i64);
    }
    if let Some(e) = end {
        range = range.end(e as i64);
    }
    range.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_scan_range_processes_the_records_starting_in_the_range() {
    let (_server, client) = start_with_people().await;
    let (csv, csv_records) = ranged_records(40, false);
    let (jsonl, json_records) = ranged_records(40, true);
    put(&client, "sel", "ranged.csv", csv.as_bytes()).await;
    put(&client, "sel", "ranged.jsonl", jsonl.as_bytes()).await;

    for (key, text, records, json) in
        [("ranged.csv", &csv, &csv_records, false), ("ranged.jsonl", &jsonl, &json_records, true)]
    {
        let size = text.len() as u64;
        let at = |i: usize| records[i].0;
        let ranges = [
            (Some(0), Some(0)),
            (Some(0), Some(size - 1)),
            (Some(1), Some(at(3))),
            (Some(at(3)), Some(at(3))),
            (Some(at(3) + 1), Some(at(5))),
            (Some(at(5) - 1), Some(at(7) - 1)),
            (Some(at(10) - 1), None),
            (None, Some(size - at(30))),
            (None, Some(size - at(30) - 1)),
        ];
        // A range inside the last record holds no record start: nothing is processed.
        let empty = (!json).then_some((Some(at(39) + 1), Some(size - 1)));
        for (start, end) in ranges.into_iter().chain(empty) {
            let expected_ids = in_range(records, size, start, end);
            let (input, sql) = if json {
                (json_in(JsonType::Lines), "SELECT s.id FROM S3Object s")
            } else {
                (csv_in(FileHeaderInfo::None), "SELECT s._1 FROM S3Object s")
            };
            let got =
                try_select(request(&client, "sel", key, sql, input, csv_out()).scan_range(scan_range(start, end)))
                    .await
                    .unwrap_or_else(|e| panic!("{key} ScanRange start {start:?} end {end:?}: {e:?}"));
            let got_ids: Vec<usize> = got.records.lines().map(|l| l.parse().expect("an id")).collect();
            assert_eq!(
                got_ids, expected_ids,
                "{key} ({size} bytes) ScanRange start {start:?} end {end:?}: ids of the records processed \
                 (those whose first byte is in the range, End inclusive)"
            );
        }
    }

    // A header still names the columns when the range starts past it.
    let with_header = format!("id,pad\n{csv}");
    put(&client, "sel", "ranged-header.csv", with_header.as_bytes()).await;
    let header_len = "id,pad\n".len() as u64;
    let (start, end) = (header_len + csv_records[20].0, header_len + csv_records[22].0);
    let got = try_select(
        request(
            &client,
            "sel",
            "ranged-header.csv",
            "SELECT s.id FROM S3Object s",
            csv_in(FileHeaderInfo::Use),
            csv_out(),
        )
        .scan_range(scan_range(Some(start), Some(end))),
    )
    .await
    .unwrap_or_else(|e| panic!("ranged-header.csv ScanRange {start}..={end}: {e:?}"));
    assert_eq!(got.records, "20\n21\n22\n", "header USE with a ScanRange starting after the header");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_request_progress_sends_progress_events_before_stats() {
    let (_server, client) = start_with_people().await;
    let raw = numbers_csv(5000);
    put(&client, "sel", "numbers.csv", raw.as_bytes()).await;
    let sql = "SELECT s.id FROM S3Object s WHERE s.value = '7'";
    let selected = try_select(
        request(&client, "sel", "numbers.csv", sql, csv_in(FileHeaderInfo::Use), csv_out())
            .request_progress(RequestProgress::builder().enabled(true).build()),
    )
    .await
    .unwrap_or_else(|e| panic!("RequestProgress enabled: {e:?}"));
    assert_eq!(selected.records.lines().count(), 50, "ids with value 7 among 5000 rows");
    let stats_at = selected.events.iter().position(|e| *e == "Stats").expect("a Stats event");
    let progress_at: Vec<usize> =
        selected.events.iter().enumerate().filter(|(_, e)| **e == "Progress").map(|(i, _)| i).collect();
    assert!(
        !progress_at.is_empty() && progress_at.iter().all(|&i| i < stats_at),
        "RequestProgress enabled: expected Progress events before Stats, got events {:?}",
        selected.events
    );
    let last = selected.progress.last().expect("a Progress event with details");
    let (scanned, processed, returned) = selected.stats();
    assert_eq!(
        (last.bytes_scanned, last.bytes_processed, last.bytes_returned),
        (Some(scanned), Some(processed), Some(returned)),
        "the last Progress event vs the Stats event"
    );
    assert_eq!((scanned, processed), (raw.len() as i64, raw.len() as i64), "Stats of a whole uncompressed object");

    let disabled = try_select(
        request(&client, "sel", "numbers.csv", sql, csv_in(FileHeaderInfo::Use), csv_out())
            .request_progress(RequestProgress::builder().enabled(false).build()),
    )
    .await
    .unwrap_or_else(|e| panic!("RequestProgress disabled: {e:?}"));
    assert!(disabled.progress.is_empty(), "RequestProgress disabled: got Progress events {:?}", disabled.events);
}

const OUTSIDER_CONFIG: &str = r#"
[[keys]]
access_key = "outsiderkey"
secret_key = "outsidersecret123"
buckets = ["elsewhere"]
access = "read-only"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_bad_sql_and_unknown_names_are_client_errors_with_select_codes() {
    let server = Server::start_with(ServerOptions { config_toml: Some(OUTSIDER_CONFIG.into()), ..Default::default() });
    let client = server.client();
    create_bucket(&client, "sel").await;
    put(&client, "sel", "people.csv", PEOPLE_CSV.as_bytes()).await;

    let parse = |c: &str| c.starts_with("Parse");
    let binding = |c: &str| c == "EvaluatorBindingDoesNotExist";
    type CodeCheck<'a> = &'a dyn Fn(&str) -> bool;
    // (SQL, acceptable codes, what they are, a word the message must contain)
    let cases: [(&str, CodeCheck, &str, &str); 9] = [
        ("SELEC * FROM S3Object", &parse, "a Parse* code", "SELEC"),
        ("SELECT * FROM S3Object WHERE", &parse, "a Parse* code", ""),
        ("SELECT s.nosuch FROM S3Object s", &binding, "EvaluatorBindingDoesNotExist", "nosuch"),
        ("SELECT s.\"name\" FROM S3Object s", &binding, "EvaluatorBindingDoesNotExist", "name"),
        ("SELECT nosuch FROM S3Object", &binding, "EvaluatorBindingDoesNotExist", "nosuch"),
        ("SELECT s._9 FROM S3Object s", &|c| c == "InvalidColumnIndex", "InvalidColumnIndex", "_9"),
        ("SELECT * FROM Elsewhere", &|c| c == "InvalidDataSource", "InvalidDataSource", "Elsewhere"),
        ("DELETE FROM S3Object", &|c| c == "UnsupportedSqlOperation", "UnsupportedSqlOperation", ""),
        ("SELECT no_such_fn(s.Name) FROM S3Object s", &|_| true, "any error code", "no_such_fn"),
    ];
    for (sql, code_ok, expected, needle) in cases {
        let result =
            try_select(request(&client, "sel", "people.csv", sql, csv_in(FileHeaderInfo::Use), csv_out())).await;
        let failure = expect_client_error(result, code_ok, expected, sql);
        assert!(
            matches!(failure, SelectFailure::Http { .. }),
            "{sql}: a planning error should be an HTTP 400, not an error event after HTTP 200: {failure:?}"
        );
        assert!(failure.message().contains(needle), "{sql}: the message should name {needle:?}: {failure:?}");
    }

    // A value that does not CAST: found while running, still the client's error.
    let result = try_select(request(
        &client,
        "sel",
        "people.csv",
        "SELECT CAST(s.Name AS INT) FROM S3Object s",
        csv_in(FileHeaderInfo::Use),
        csv_out(),
    ))
    .await;
    expect_client_error(result, |c| c == "CastFailed", "CastFailed", "CAST(Name AS INT)");

    // Input that is not what the request says it is.
    for (input, expected, what) in [
        (json_in(JsonType::Lines), "JSONParsingError", "CSV read as JSON LINES"),
        (parquet_in(), "any code", "CSV read as Parquet"),
    ] {
        let result =
            try_select(request(&client, "sel", "people.csv", "SELECT * FROM S3Object", input, csv_out())).await;
        let check = |c: &str| expected == "any code" || c == expected;
        expect_client_error(result, check, expected, what);
    }

    // No such object or bucket; a key without access to the bucket.
    let sql = "SELECT * FROM S3Object";
    let missing = try_select(request(&client, "sel", "nope.csv", sql, csv_in(FileHeaderInfo::Use), csv_out())).await;
    assert!(
        matches!(&missing, Err(SelectFailure::Http { status: Some(404), code: Some(c), .. }) if c == "NoSuchKey"),
        "S3 Select on a missing key: expected 404 NoSuchKey, got {missing:?}"
    );
    let no_bucket = try_select(request(&client, "nope", "x.csv", sql, csv_in(FileHeaderInfo::Use), csv_out())).await;
    assert!(
        matches!(&no_bucket, Err(SelectFailure::Http { status: Some(404), code: Some(c), .. }) if c == "NoSuchBucket"),
        "S3 Select in a missing bucket: expected 404 NoSuchBucket, got {no_bucket:?}"
    );
    let outsider = server.client_with("outsiderkey", "outsidersecret123");
    let denied = try_select(request(&outsider, "sel", "people.csv", sql, csv_in(FileHeaderInfo::Use), csv_out())).await;
    assert!(
        matches!(&denied, Err(SelectFailure::Http { status: Some(403), code: Some(c), .. }) if c == "AccessDenied"),
        "S3 Select by a key without access to the bucket: expected 403 AccessDenied, got {denied:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_refuses_expressions_too_deep_and_the_server_lives_on() {
    let (server, client) = start_with_people().await;
    // 300 chained CASTs are 300 levels deep: this overflowed a worker's stack and killed
    // the process. 48 nested CASTs sit near the parser's recursion limit, where parsing
    // took minutes.
    let chained = format!("SELECT {} FROM S3Object s", vec!["CAST(s.Age AS INT)"; 300].join(" + "));
    let nested = format!("SELECT {}s.Age{} FROM S3Object s", "CAST(".repeat(48), " AS INT)".repeat(48));
    // 12 subscripts after dotted names: sqlparser backtracked over them for half a minute.
    let backtracking = format!("SELECT {} FROM S3Object s", "s.x.y[".repeat(12));
    for (what, sql) in
        [("300 chained CASTs", chained), ("48 nested CASTs", nested), ("12 nested subscripts", backtracking)]
    {
        let started = std::time::Instant::now();
        let result =
            try_select(request(&client, "sel", "people.csv", &sql, csv_in(FileHeaderInfo::Use), csv_out())).await;
        expect_client_error(result, |c| c == "UnsupportedSqlStructure", "UnsupportedSqlStructure", what);
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(10), "{what}: refused only after {took:?}");
        let health = raw_request("GET", &format!("{}/health", server.endpoint()), &[], Vec::new()).await;
        assert_eq!(health.status, 200, "/health after {what}");
    }
    // Within the bounds: 250 chained and 30 nested CASTs run.
    let chained = format!("SELECT {} FROM S3Object s", vec!["CAST(s.Age AS INT)"; 250].join(" + "));
    let out = records(&client, "people.csv", &chained, csv_in(FileHeaderInfo::Use), csv_out()).await;
    assert_eq!(out, "7500\n6250\n10250\n", "250 chained CASTs of Age");
    let nested = format!("SELECT {}s.Age{} FROM S3Object s", "CAST(".repeat(30), " AS INT)".repeat(30));
    let out = records(&client, "people.csv", &nested, csv_in(FileHeaderInfo::Use), csv_out()).await;
    assert_eq!(out, "30\n25\n41\n", "30 nested CASTs of Age");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_on_a_malformed_parquet_footer_is_an_error_not_a_dropped_connection() {
    let (_server, client) = start_with_people().await;
    let mut parquet = people_parquet();
    let len = parquet.len();
    // The footer says the metadata is as long as the whole file (the parquet crate panicked).
    parquet[len - 8..len - 4].copy_from_slice(&(len as u32).to_le_bytes());
    put(&client, "sel", "bad.parquet", &parquet).await;
    let sql = "SELECT count(*) FROM S3Object s";
    let result = try_select(request(&client, "sel", "bad.parquet", sql, parquet_in(), csv_out())).await;
    expect_client_error(result, |c| c == "ParquetParsingError", "ParquetParsingError", "a malformed Parquet footer");
    let out = records(&client, "people.csv", sql, csv_in(FileHeaderInfo::Use), csv_out()).await;
    assert_eq!(out, "3\n", "S3 Select after the malformed footer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_refuses_an_inflating_record_over_the_limit_as_it_is_read() {
    use std::io::Write;
    let (server, client) = start_with_people().await;
    // A 64 MiB JSON LINES record (valid JSON, no newline) compressed to a few KiB: it must
    // be refused at S3's 1 MiB record limit while it is read, not buffered whole.
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(b"{\"a\":\"").unwrap();
    let chunk = vec![b'x'; MIB];
    for _ in 0..64 {
        gzip.write_all(&chunk).unwrap();
    }
    gzip.write_all(b"\"}\n").unwrap();
    let compressed = gzip.finish().unwrap();
    put(&client, "sel", "bomb.json.gz", &compressed).await;
    let rss_before = server.rss_bytes();
    let input = InputSerialization::builder()
        .json(JsonInput::builder().r#type(JsonType::Lines).build())
        .compression_type(CompressionType::Gzip)
        .build();
    let result =
        try_select(request(&client, "sel", "bomb.json.gz", "SELECT count(*) FROM S3Object s", input, csv_out())).await;
    expect_client_error(result, |c| c == "OverMaxRecordSize", "OverMaxRecordSize", "a 64 MiB JSON LINES record");
    let grown = server.peak_rss_bytes().saturating_sub(rss_before);
    assert!(grown < 48 * MIB as u64, "reading the inflating record grew peak RSS by {} MiB", grown / MIB as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_refuses_a_json_document_record_over_the_limit_as_it_is_read() {
    use std::io::Write;
    let (server, client) = start_with_people().await;
    // One 64 MiB JSON DOCUMENT record, spread over many short lines (so no line is long),
    // compressed to a few hundred KiB: refused at S3's 1 MiB record limit as it is read.
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(b"{\"a\": [\n").unwrap();
    let line = format!("\"{}\",\n", "x".repeat(1024));
    for _ in 0..64 * 1024 {
        gzip.write_all(line.as_bytes()).unwrap();
    }
    gzip.write_all(b"\"end\"]}\n").unwrap();
    let compressed = gzip.finish().unwrap();
    put(&client, "sel", "doc.json.gz", &compressed).await;
    // A document of many small records is fine.
    let small: String = (0..2000).map(|i| format!("{{\n  \"n\": {i}\n}}\n")).collect();
    put(&client, "sel", "small.json", small.as_bytes()).await;
    let input = |compression| {
        InputSerialization::builder()
            .json(JsonInput::builder().r#type(JsonType::Document).build())
            .compression_type(compression)
            .build()
    };
    let sql = "SELECT count(*) FROM S3Object s";
    let ok = records(&client, "small.json", sql, input(CompressionType::None), csv_out()).await;
    assert_eq!(ok, "2000\n", "a document of 2000 small records");
    let rss_before = server.rss_bytes();
    let result = try_select(request(&client, "sel", "doc.json.gz", sql, input(CompressionType::Gzip), csv_out())).await;
    expect_client_error(result, |c| c == "OverMaxRecordSize", "OverMaxRecordSize", "a 64 MiB JSON DOCUMENT record");
    let grown = server.peak_rss_bytes().saturating_sub(rss_before);
    assert!(grown < 48 * MIB as u64, "reading the big document grew peak RSS by {} MiB", grown / MIB as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_stops_decompressing_at_the_decompressed_size_limit() {
    use std::io::Write;
    let limit = 8 * MIB;
    let server = Server::start_with(ServerOptions {
        extra_args: vec!["--select-max-decompressed-bytes".into(), limit.to_string()],
        ..Default::default()
    });
    let client = server.client();
    create_bucket(&client, "sel").await;
    // 64 MiB of short CSV records in well under a MiB of gzip or bzip2.
    let mut raw = Vec::with_capacity(64 * MIB);
    while raw.len() < 64 * MIB {
        raw.extend_from_slice(b"1,2,3,4,5,6,7\n");
    }
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&raw).unwrap();
    put(&client, "sel", "big.csv.gz", &gzip.finish().unwrap()).await;
    let mut bzip2 = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    bzip2.write_all(&raw).unwrap();
    put(&client, "sel", "big.csv.bz2", &bzip2.finish().unwrap()).await;
    let mut small = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    small.write_all(&raw[..MIB - MIB % 14]).unwrap();
    put(&client, "sel", "small.csv.gz", &small.finish().unwrap()).await;

    let sql = "SELECT count(*) FROM S3Object s";
    let input = |c: CompressionType| compressed_csv_in(FileHeaderInfo::None, c);
    let out = records(&client, "small.csv.gz", sql, input(CompressionType::Gzip), csv_out()).await;
    assert_eq!(out, format!("{}\n", MIB / 14), "a gzip object under the limit");
    for (key, compression) in [("big.csv.gz", CompressionType::Gzip), ("big.csv.bz2", CompressionType::Bzip2)] {
        let started = Instant::now();
        let result = try_select(request(&client, "sel", key, sql, input(compression), csv_out())).await;
        let failure = expect_client_error(result, |c| c == "OverMaxDecompressedSize", "OverMaxDecompressedSize", key);
        assert!(failure.message().contains(&limit.to_string()), "{key}: the message names the limit: {failure:?}");
        assert!(started.elapsed() < Duration::from_secs(20), "{key}: stopped after {:?}", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_planning_is_bounded_by_the_deadline_and_leaves_the_runtime_free() {
    let timeout_ms = 1000;
    let server = Server::start_with(ServerOptions {
        extra_args: vec!["--query-timeout-ms".into(), timeout_ms.to_string()],
        ..Default::default()
    });
    let client = server.client();
    create_bucket(&client, "sel").await;
    put(&client, "sel", "people.csv", PEOPLE_CSV.as_bytes()).await;
    // Within S3 Select's 256 KiB and every bound of shape.rs, and seconds to plan.
    let slow = format!(
        "SELECT {} FROM S3Object s",
        (0..12_000).map(|i| format!("{i} AS c{i}")).collect::<Vec<_>>().join(", ")
    );
    let at_once = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    let started = Instant::now();
    let queries: Vec<_> = (0..at_once)
        .map(|_| {
            let (client, slow) = (client.clone(), slow.clone());
            tokio::spawn(async move {
                let result =
                    try_select(request(&client, "sel", "people.csv", &slow, csv_in(FileHeaderInfo::Use), csv_out()))
                        .await;
                (result, Instant::now())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_health_answers_promptly(&server, "selects plan").await;
    for query in queries {
        let (result, answered) =
            tokio::time::timeout(Duration::from_secs(60), query).await.expect("the slow select is answered").unwrap();
        expect_client_error(result, |c| c == "QueryTimeout", "QueryTimeout", "a select still planning at its deadline");
        let took = answered - started;
        assert!(
            took < Duration::from_millis(timeout_ms + 2000),
            "the select still planning at its {timeout_ms} ms deadline was answered after {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_reads_encrypted_objects_and_sse_c_ones_only_with_their_key() {
    // SSE-C keys travel over TLS only.
    let server = Server::start_with(ServerOptions { tls: true, ..Default::default() });
    let client = server.client();
    create_bucket(&client, "sel").await;
    client
        .put_object()
        .bucket("sel")
        .key("kms.csv")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(PEOPLE_CSV.as_bytes()))
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .send()
        .await
        .ok_or_panic("PUT an SSE-KMS CSV");
    let sql = "SELECT s.Name FROM S3Object s WHERE CAST(s.Age AS INT) > 28";
    let got = records(&client, "kms.csv", sql, csv_in(FileHeaderInfo::Use), csv_out()).await;
    assert_eq!(got, "Alice\nCarol\n", "S3 Select over an SSE-KMS object reads its plaintext");

    let customer = customer_key_b64(9);
    let (key, md5) = (&customer.0, &customer.1);
    put_with_customer_key(&client, "sel", "sse-c.csv", PEOPLE_CSV.as_bytes().to_vec(), &customer)
        .send()
        .await
        .ok_or_panic("PUT an SSE-C CSV");
    let select = || {
        client
            .select_object_content()
            .bucket("sel")
            .key("sse-c.csv")
            .expression(sql)
            .expression_type(ExpressionType::Sql)
            .input_serialization(csv_in(FileHeaderInfo::Use))
            .output_serialization(csv_out())
    };
    let without_key = select().send().await;
    expect_s3_error(without_key, 400, &["InvalidRequest"], "S3 Select of an SSE-C object without its key");
    let (other_key, other_md5) = customer_key_b64(10);
    let wrong_key = select()
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&other_key)
        .sse_customer_key_md5(&other_md5)
        .send()
        .await;
    expect_s3_error(wrong_key, 403, &["AccessDenied"], "S3 Select of an SSE-C object with another key");

    // With its key, the records of the plaintext: CSV, and Parquet (ranged reads of pages).
    let with_key = |builder: SelectObjectContentFluentBuilder| {
        builder.sse_customer_algorithm("AES256").sse_customer_key(key).sse_customer_key_md5(md5)
    };
    let got = try_select(with_key(select())).await.expect("S3 Select of an SSE-C CSV with its key");
    assert_eq!(got.records, "Alice\nCarol\n", "S3 Select over an SSE-C CSV with its key");
    put_with_customer_key(&client, "sel", "sse-c.parquet", people_parquet(), &customer)
        .send()
        .await
        .ok_or_panic("PUT an SSE-C Parquet object");
    let sql = "SELECT s.Name, s.City FROM S3Object s WHERE s.Age > 26";
    let parquet = request(&client, "sel", "sse-c.parquet", sql, parquet_in(), csv_out());
    let got = try_select(with_key(parquet)).await.expect("S3 Select of an SSE-C Parquet object with its key");
    assert_eq!(got.records, "Alice,Paris\nCarol,Berlin\n", "S3 Select over an SSE-C Parquet object with its key");
    let no_key = try_select(request(&client, "sel", "sse-c.parquet", sql, parquet_in(), csv_out())).await;
    assert!(no_key.is_err(), "S3 Select of an SSE-C Parquet object without its key must fail");
}
