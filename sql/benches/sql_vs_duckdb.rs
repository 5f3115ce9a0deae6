//! Benchmark: SQL through Quarry's query path (`quarry_sql::run_query`, what `POST /?sql`
//! runs) against DuckDB running the same SQL on the same Parquet files on local disk, in
//! the same run.
//!
//!   bench/sql_vs_duckdb.sh          (installs DuckDB from PyPI into a venv, then runs this)
//!
//! 1. `inventory`: QUARRY_BENCH_OBJECTS (default 1,000,000) objects PUT through the engine
//!    into 10 buckets of uneven sizes, then
//!    `SELECT bucket, count(*), sum(size) FROM inventory GROUP BY bucket` in two states of
//!    the catalog: just after catalog compaction (one base file), and after 1% of the
//!    objects were overwritten and 1% deleted over 10 catalog flushes (base + delta and
//!    tombstone files, the state a server's catalog is in between two compactions).
//!    DuckDB gets the same files as the same tables and Quarry's own definition of the
//!    `inventory` view (taken from DataFusion, in DuckDB's spelling).
//! 2. Parquet objects: DuckDB writes QUARRY_BENCH_PARQUET_BYTES (default 1 GiB) of Parquet
//!    in QUARRY_BENCH_PARQUET_FILES (16) files, each also PUT into Quarry under
//!    `s3://bench/trips/`; a filter + aggregate (and a filter on the widest column, which
//!    makes both read every byte) through `read_parquet('s3://bench/trips/')` in Quarry and
//!    `read_parquet('<dir>/*.parquet')` in DuckDB.
//!
//! A third side, "DataFusion alone", runs the same SQL in a new plain DataFusion session
//! per query (as Quarry makes one per query) over the same local files (the same
//! `inventory` definitions), without Quarry's query path: it tells how much of the gap is
//! the engine (DataFusion vs DuckDB) and how much is Quarry's (catalog flush, scoped
//! sessions, reads through the object store).
//!
//! Every query runs once to warm up, then QUARRY_BENCH_RUNS (5) times on each side,
//! taking turns (Quarry, DataFusion, DuckDB) so that other load on the machine hits all;
//! the median is reported, and the ratio is a median over DuckDB's median (above 1:
//! slower than DuckDB). Every side is timed from the SQL text to the last result row
//! fetched, with the files in the page cache. Every answer is compared with Quarry's (and
//! the inventory's with the counts and sizes the bench wrote); a mismatch stops the
//! benchmark. A second table gives the bytes each side read in its last run (`rchar` of
//! /proc/PID/io: read and pread calls, page-cache hits included).
//!
//! Other settings: QUARRY_BENCH_PYTHON (a python with the duckdb module; default
//! `python3`), QUARRY_BENCH_DIR (where the temporary directory goes; default the system's
//! temporary directory), QUARRY_BENCH_EXPLAIN=1 (also print Quarry's EXPLAIN ANALYZE of
//! each query). 0 objects or 0 Parquet bytes skips that part.

use bytes::Bytes;
use futures::StreamExt;
use quarry_sql::datafusion::arrow::csv::WriterBuilder;
use quarry_sql::datafusion::prelude::{ParquetReadOptions, SessionContext};
use quarry_sql::{BucketScope, QueryLimits, ResultFormat, run_query};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;
use storage_core::catalog::CatalogConfig;
use storage_core::{Body, Engine, EngineConfig, ObjectMeta, ObjectRecord};

const BUCKETS: u64 = 10;
/// Concurrent PUTs while loading (the writer group-commits up to 1024 records).
const WRITERS: u64 = 512;
const RUNNER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/sql_vs_duckdb.py");

const INVENTORY_QUERY: &str = "SELECT bucket, count(*), sum(size) FROM inventory GROUP BY bucket";
/// `{source}` is `read_parquet('s3://bench/trips/')` in Quarry, the local files in DuckDB.
const FILTER_QUERY: &str = "SELECT category, count(*), avg(amount) FROM {source} WHERE amount > 100 GROUP BY category";
const WIDE_FILTER_QUERY: &str =
    "SELECT category, count(*), max(id), sum(amount) FROM {source} WHERE note LIKE '%ab%' GROUP BY category";

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.replace('_', "").parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Object `i` of the inventory: bucket (half the objects in the first bucket, a quarter
/// in the next, ...), key, and metadata; its body is `size_bytes` bytes (0..511).
fn object(i: u64) -> (String, String, ObjectMeta) {
    let h = splitmix64(i);
    let bucket = format!("bucket-{}", (h.trailing_zeros() as u64).min(BUCKETS - 1));
    let day = 1 + (h >> 8) % 28;
    let key = format!("logs/2024-06-{day:02}/{i:09}-{:08x}.json", (h >> 16) as u32);
    let meta = ObjectMeta {
        size_bytes: (h >> 40) % 512,
        etag: format!("{:016x}{:016x}", h, splitmix64(h)),
        last_modified_ms: 1_717_200_000_000 + i as i64 * 1000,
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    (bucket, key, meta)
}

/// PUTs `objects` objects, many at a time; returns (count, bytes) per bucket.
async fn load_inventory(engine: &Engine, objects: u64) -> BTreeMap<String, (u64, u64)> {
    for b in 0..BUCKETS {
        engine.create_bucket(&format!("bucket-{b}"), 0).await.unwrap();
    }
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = writer;
            while i < objects {
                let (bucket, key, meta) = object(i);
                let body = Body::Inline(Bytes::from(vec![b'q'; meta.size_bytes as usize]));
                engine.put_object(ObjectRecord::new(bucket, key, meta), body).await.unwrap();
                i += WRITERS;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut expected = BTreeMap::new();
    for i in 0..objects {
        let (bucket, _, meta) = object(i);
        let entry = expected.entry(bucket).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += meta.size_bytes;
    }
    expected
}

/// PUTs a local file as one object, streamed in 1 MiB pieces as the S3 layer does.
async fn put_file(engine: &Engine, bucket: &str, key: &str, path: &Path) {
    let mut file = std::fs::File::open(path).unwrap();
    let mut writer = engine.body_writer();
    let mut size = 0;
    loop {
        let mut buffer = vec![0u8; 1024 * 1024];
        let n = file.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        buffer.truncate(n);
        size += n as u64;
        writer.write(Bytes::from(buffer)).await.unwrap();
    }
    let body = writer.finish().await.unwrap();
    let meta = ObjectMeta {
        size_bytes: size,
        etag: format!("{:032x}", splitmix64(size) as u128 * 31 + key.len() as u128),
        last_modified_ms: 1_717_200_000_000,
        content_type: Some("application/vnd.apache.parquet".into()),
        ..Default::default()
    };
    engine.put_object(ObjectRecord::new(bucket, key, meta), body).await.unwrap();
}

/// Flushes the changes since the last catalog compaction are spread over: each flush
/// writes one delta and one tombstone file (a server merges them past 32 catalog files).
const CHANGE_FLUSHES: u64 = 10;

/// After catalog compaction, as a server sees between two: 1% of the objects overwritten
/// (another size) and 1% deleted, over `CHANGE_FLUSHES` catalog flushes. `expected`
/// follows. Returns (overwritten, deleted).
async fn change_inventory(engine: &Engine, objects: u64, expected: &mut BTreeMap<String, (u64, u64)>) -> (u64, u64) {
    let (mut overwritten, mut deleted) = (0, 0);
    for flush in 0..CHANGE_FLUSHES {
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let engine = engine.clone();
            tasks.push(tokio::spawn(async move {
                let (mut overwritten, mut deleted) = (Vec::new(), Vec::new());
                let mut i = flush * WRITERS + writer;
                while i < objects {
                    let (bucket, key, mut meta) = object(i);
                    match splitmix64(i ^ 0x5eed) % 100 {
                        0 => {
                            let old = meta.size_bytes;
                            meta.size_bytes = 512 + (splitmix64(i ^ 0x0b0e) >> 40) % 512;
                            meta.last_modified_ms += 86_400_000;
                            let body = Body::Inline(Bytes::from(vec![b'r'; meta.size_bytes as usize]));
                            let new = meta.size_bytes;
                            engine.put_object(ObjectRecord::new(bucket.clone(), key, meta), body).await.unwrap();
                            overwritten.push((bucket, old, new));
                        }
                        1 => {
                            engine.delete_object(&bucket, &key).await.unwrap();
                            deleted.push((bucket, meta.size_bytes));
                        }
                        _ => {}
                    }
                    i += WRITERS * CHANGE_FLUSHES;
                }
                (overwritten, deleted)
            }));
        }
        for task in tasks {
            let (o, d) = task.await.unwrap();
            for (bucket, old, new) in o {
                let entry = expected.get_mut(&bucket).unwrap();
                entry.1 = entry.1 - old + new;
                overwritten += 1;
            }
            for (bucket, size) in d {
                let entry = expected.get_mut(&bucket).unwrap();
                entry.0 -= 1;
                entry.1 -= size;
                deleted += 1;
            }
        }
        engine.flush_catalog().unwrap();
    }
    expected.retain(|_, (count, _)| *count > 0);
    (overwritten, deleted)
}

/// The inventory query in the catalog's present state. DataFusion alone registers the
/// catalog as Quarry does (`quarry_sql::register_catalog`); DuckDB gets the same files as
/// the same tables and Quarry's own view definitions, as DataFusion holds them, in
/// DuckDB's spelling (`ANTI JOIN` for `LEFT ANTI JOIN`). Returns the measurement and a
/// description of the files.
fn measure_inventory(
    runtime: &tokio::runtime::Runtime,
    engine: &Engine,
    duckdb: &mut DuckDb,
    state: &str,
    expected: &BTreeMap<String, (u64, u64)>,
    runs: usize,
) -> (Measured, String) {
    let catalog = engine.catalog().unwrap();
    let datafusion = SessionContext::new();
    let (snapshot, views) = runtime.block_on(async {
        let snapshot = quarry_sql::register_catalog(&datafusion, catalog).await.unwrap();
        let mut views = Vec::new();
        for view in ["inventory_changes", "inventory"] {
            let provider = datafusion.table_provider(view).await.unwrap();
            let definition = provider.get_table_definition().expect("a view registered from SQL").to_owned();
            views.push(
                definition.replace("CREATE VIEW", "CREATE OR REPLACE VIEW").replace("LEFT ANTI JOIN", "ANTI JOIN"),
            );
        }
        (snapshot, views)
    });
    let files = |prefix: &str| -> Vec<PathBuf> {
        snapshot.files.iter().filter(|f| f.starts_with(prefix)).map(|f| catalog.dir().join(f)).collect()
    };
    let (base, deltas, tombstones) =
        (files("inventory/base-"), files("inventory/delta-"), files("inventory/tombstones-"));
    assert_eq!(base.len(), 1, "one base file after catalog compaction");
    let list = |paths: &[PathBuf]| paths.iter().map(|p| sql_string(p)).collect::<Vec<_>>().join(", ");
    let mut statements =
        vec![format!("CREATE OR REPLACE VIEW inventory_base AS SELECT * FROM read_parquet([{}])", list(&base))];
    statements.push(if deltas.is_empty() {
        format!("CREATE OR REPLACE VIEW inventory_deltas AS SELECT * FROM read_parquet([{}]) LIMIT 0", list(&base))
    } else {
        format!("CREATE OR REPLACE VIEW inventory_deltas AS SELECT * FROM read_parquet([{}])", list(&deltas))
    });
    statements.push(if tombstones.is_empty() {
        "CREATE OR REPLACE VIEW inventory_tombstones AS SELECT CAST(NULL AS VARCHAR) AS bucket, \
         CAST(NULL AS VARCHAR) AS key, CAST(NULL AS UBIGINT) AS sequence_number LIMIT 0"
            .into()
    } else {
        format!("CREATE OR REPLACE VIEW inventory_tombstones AS SELECT * FROM read_parquet([{}])", list(&tombstones))
    });
    statements.extend(views);
    duckdb.exec(&statements);

    let rows: usize = expected.values().map(|(count, _)| *count as usize).sum();
    let query = Query {
        name: format!("inventory GROUP BY bucket, {rows} objects, {state}"),
        quarry_sql: INVENTORY_QUERY.into(),
        datafusion: Tables::Catalog(catalog),
        datafusion_sql: INVENTORY_QUERY.into(),
        duckdb_sql: INVENTORY_QUERY.into(),
    };
    let (measured, answer) = measure(runtime, engine, duckdb, &query, runs);
    let got: BTreeMap<String, (u64, u64)> =
        answer.iter().map(|r| (r[0].clone(), (r[1].parse().unwrap(), r[2].parse().unwrap()))).collect();
    assert_eq!(&got, expected, "the inventory's answer is not what was written");
    let mib = |paths: &[PathBuf]| {
        paths.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum::<u64>() as f64 / (1 << 20) as f64
    };
    let description = format!(
        "base {:.1} MiB, {} delta file(s) {:.2} MiB, {} tombstone file(s) {:.2} MiB",
        mib(&base),
        deltas.len(),
        mib(&deltas),
        tombstones.len(),
        mib(&tombstones)
    );
    drop(snapshot);
    (measured, description)
}

/// One query through Quarry's SQL endpoint code, the whole result drained: (ms, CSV).
async fn quarry_query(engine: &Engine, sql: &str) -> (f64, Vec<u8>) {
    let started = Instant::now();
    let result = run_query(engine, BucketScope::All, sql, ResultFormat::Csv, &QueryLimits::default())
        .await
        .unwrap_or_else(|e| panic!("quarry failed on {sql}: {e}"));
    let mut body = result.body;
    let mut csv = Vec::new();
    while let Some(chunk) = body.next().await {
        csv.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("quarry failed on {sql}: {e}")));
    }
    (started.elapsed().as_secs_f64() * 1000.0, csv)
}

/// The DuckDB process (sql_vs_duckdb.py): one connection for the whole run.
struct DuckDb {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl DuckDb {
    fn start(python: &str) -> DuckDb {
        let mut child = Command::new(python)
            .arg(RUNNER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} {RUNNER}: {e} (set QUARRY_BENCH_PYTHON)"));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        DuckDb { child, stdin, stdout }
    }

    fn call(&mut self, request: Value) -> Value {
        writeln!(self.stdin, "{request}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(
            !line.is_empty(),
            "the DuckDB process ended (is the duckdb module installed? see bench/sql_vs_duckdb.sh)"
        );
        let answer: Value = serde_json::from_str(&line).unwrap();
        if let Some(error) = answer.get("error") {
            panic!("DuckDB failed on {request}: {error}");
        }
        answer
    }

    fn exec(&mut self, statements: &[String]) {
        self.call(json!({"op": "exec", "sql": statements}));
    }

    /// One timed query: (ms, rows).
    fn time(&mut self, sql: &str) -> (f64, Vec<Vec<Value>>) {
        let answer = self.call(json!({"op": "time", "sql": sql}));
        let rows = answer["rows"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().clone()).collect();
        (answer["ms"].as_f64().unwrap(), rows)
    }
}

impl Drop for DuckDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn csv_rows(csv: &[u8]) -> Vec<Vec<String>> {
    let mut reader = ::csv::ReaderBuilder::new().has_headers(true).from_reader(csv);
    let mut rows: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
    rows.sort();
    rows
}

/// Quarry's rows (CSV text) and DuckDB's (JSON values) hold the same answer: strings
/// equal, integers equal, floats within 1e-9 (relative; sums in another order).
fn check_same(what: &str, quarry: &[Vec<String>], duckdb: &[Vec<Value>]) {
    let mut duckdb = duckdb.to_vec();
    duckdb.sort_by_key(|row| row[0].to_string());
    assert_eq!(quarry.len(), duckdb.len(), "{what}: Quarry has {} rows, DuckDB {}", quarry.len(), duckdb.len());
    for (q, d) in quarry.iter().zip(&duckdb) {
        assert_eq!(q.len(), d.len(), "{what}: rows differ: {q:?} / {d:?}");
        for (a, b) in q.iter().zip(d) {
            let same = match b {
                Value::String(s) => a == s,
                Value::Null => a.is_empty(),
                Value::Number(n) if n.is_i64() || n.is_u64() => a.parse::<i128>().ok() == Some(n.as_i128().unwrap()),
                Value::Number(n) => {
                    let (x, y) = (a.parse::<f64>().unwrap_or(f64::NAN), n.as_f64().unwrap());
                    (x - y).abs() <= 1e-9 * y.abs().max(1.0)
                }
                _ => false,
            };
            assert!(same, "{what}: answers differ: Quarry {q:?}, DuckDB {d:?}");
        }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Measured {
    name: String,
    quarry_ms: Vec<f64>,
    datafusion_ms: Vec<f64>,
    duckdb_ms: Vec<f64>,
    /// Bytes each side read (read and pread calls, page cache hits included) in its last run.
    read: [i64; 3],
}

/// Bytes process `pid` ("self": this one) has read so far (`rchar` of /proc/PID/io).
fn bytes_read(pid: &str) -> i64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// One query as each side spells it. `datafusion` says what a plain DataFusion session
/// gets (no Quarry in between: local files), which tells the engine's share of the gap from
/// Quarry's.
struct Query<'a> {
    name: String,
    quarry_sql: String,
    datafusion: Tables<'a>,
    datafusion_sql: String,
    duckdb_sql: String,
}

/// The tables of a DataFusion-alone query.
#[derive(Clone, Copy)]
enum Tables<'a> {
    /// The catalog's tables and views, registered as Quarry registers them.
    Catalog(&'a storage_core::catalog::Catalog),
    /// `name`: the Parquet files of a local directory.
    ParquetDir(&'static str, &'a Path),
}

/// A query in a new plain DataFusion session, as Quarry makes one per query (so no cache
/// of file listings or footers outlives a query), every batch collected and written as
/// CSV: (ms, CSV).
async fn datafusion_query(tables: Tables<'_>, sql: &str) -> (f64, Vec<u8>) {
    let started = Instant::now();
    let ctx = SessionContext::new();
    let batches = async {
        let _snapshot = match tables {
            Tables::Catalog(catalog) => Some(quarry_sql::register_catalog(&ctx, catalog).await?),
            Tables::ParquetDir(name, dir) => {
                ctx.register_parquet(name, dir.to_string_lossy(), ParquetReadOptions::default()).await?;
                None
            }
        };
        ctx.sql(sql).await?.collect().await
    }
    .await
    .unwrap_or_else(|e| panic!("DataFusion failed on {sql}: {e}"));
    let mut csv = Vec::new();
    let mut writer = WriterBuilder::new().with_header(true).build(&mut csv);
    for batch in &batches {
        writer.write(batch).unwrap();
    }
    drop(writer);
    (started.elapsed().as_secs_f64() * 1000.0, csv)
}

/// Warm-up, then `runs` rounds of Quarry, DataFusion, DuckDB in turn; every answer is
/// checked against Quarry's.
fn measure(
    runtime: &tokio::runtime::Runtime,
    engine: &Engine,
    duckdb: &mut DuckDb,
    query: &Query,
    runs: usize,
) -> (Measured, Vec<Vec<String>>) {
    let name = query.name.as_str();
    let (mut quarry_ms, mut datafusion_ms, mut duckdb_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut answer = Vec::new();
    let mut read = [0; 3];
    for round in 0..=runs {
        let before = bytes_read("self");
        let (qms, csv) = runtime.block_on(quarry_query(engine, &query.quarry_sql));
        let quarry_read = bytes_read("self") - before;
        let quarry_rows = csv_rows(&csv);
        let before = bytes_read("self");
        let (fms, csv) = runtime.block_on(datafusion_query(query.datafusion, &query.datafusion_sql));
        let datafusion_read = bytes_read("self") - before;
        let datafusion_rows: Vec<Vec<Value>> =
            csv_rows(&csv).into_iter().map(|r| r.into_iter().map(text_value).collect()).collect();
        let duckdb_pid = duckdb.child.id().to_string();
        let before = bytes_read(&duckdb_pid);
        let (dms, duckdb_rows) = duckdb.time(&query.duckdb_sql);
        let duckdb_read = bytes_read(&duckdb_pid) - before;
        read = [quarry_read, datafusion_read, duckdb_read];
        check_same(&format!("{name} (DataFusion)"), &quarry_rows, &datafusion_rows);
        check_same(&format!("{name} (DuckDB)"), &quarry_rows, &duckdb_rows);
        if round > 0 {
            quarry_ms.push(qms);
            datafusion_ms.push(fms);
            duckdb_ms.push(dms);
        }
        let round = if round == 0 { "warm-up" } else { "run" };
        eprintln!("  {name} {round}: quarry {qms:.1} ms, datafusion {fms:.1} ms, duckdb {dms:.1} ms");
        answer = quarry_rows;
    }
    if std::env::var_os("QUARRY_BENCH_EXPLAIN").is_some() {
        let (_, plan) = runtime.block_on(quarry_query(engine, &format!("EXPLAIN ANALYZE {}", query.quarry_sql)));
        eprintln!("Quarry's plan for {name}:\n{}", String::from_utf8_lossy(&plan));
    }
    (Measured { name: name.into(), quarry_ms, datafusion_ms, duckdb_ms, read }, answer)
}

/// A CSV cell as the JSON value DuckDB would give (numbers compared as numbers).
fn text_value(cell: String) -> Value {
    if let Ok(n) = cell.parse::<i64>() {
        return json!(n);
    }
    if let Ok(n) = cell.parse::<u64>() {
        return json!(n);
    }
    match cell.parse::<f64>() {
        Ok(x) if x.is_finite() && cell.contains(['.', 'e', 'E']) => json!(x),
        _ => Value::String(cell),
    }
}

fn sql_string(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', "''"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let objects = env_u64("QUARRY_BENCH_OBJECTS", 1_000_000);
    let parquet_bytes = env_u64("QUARRY_BENCH_PARQUET_BYTES", 1 << 30);
    let parquet_files = env_u64("QUARRY_BENCH_PARQUET_FILES", 16).max(1);
    let runs = env_u64("QUARRY_BENCH_RUNS", 5).max(1) as usize;
    let python = std::env::var("QUARRY_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let base = std::env::var("QUARRY_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut duckdb = DuckDb::start(&python);
    let info = duckdb.call(json!({"op": "info"}));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_at_start = loadavg();
    eprintln!(
        "sql_vs_duckdb: DuckDB {} ({} threads), {cores} cores, load {load_at_start}",
        info["version"], info["threads"]
    );

    let dir = tempfile::tempdir_in(&base).unwrap();
    let mut config = EngineConfig::new(dir.path().join("engine"));
    config.disk_reserve_bytes = 0;
    config.catalog = Some(CatalogConfig::default());
    let engine = Engine::open(config).unwrap();
    let mut results = Vec::new();
    let mut notes = Vec::new();

    if objects > 0 {
        let started = Instant::now();
        let mut expected = runtime.block_on(load_inventory(&engine, objects));
        let load_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        engine.compact_catalog().unwrap();
        let compact_s = started.elapsed().as_secs_f64();
        notes.push(format!(
            "inventory: {objects} objects in {BUCKETS} buckets PUT in {load_s:.1} s ({:.0} PUT/s, {WRITERS} \
             concurrent), catalog compacted in {compact_s:.1} s",
            objects as f64 / load_s,
        ));
        let (measured, files) =
            measure_inventory(&runtime, &engine, &mut duckdb, "just after catalog compaction", &expected, runs);
        notes.push(format!("inventory just after catalog compaction: {files}"));
        results.push(measured);

        let (overwritten, deleted) = runtime.block_on(change_inventory(&engine, objects, &mut expected));
        let state = format!("+ {overwritten} overwrites, {deleted} deletes in {CHANGE_FLUSHES} flushes");
        let (measured, files) = measure_inventory(&runtime, &engine, &mut duckdb, &state, &expected, runs);
        notes.push(format!("inventory {state}: {files}"));
        results.push(measured);
    }

    if parquet_bytes > 0 {
        let local = dir.path().join("parquet");
        std::fs::create_dir_all(&local).unwrap();
        let generate = |path: &Path, start: u64, end: u64| {
            format!(
                "COPY (SELECT i AS id, \
                   'category-' || lpad(CAST(hash(i) % 24 AS VARCHAR), 2, '0') AS category, \
                   CAST(hash(i, 1) % 100000 AS DOUBLE) / 100.0 AS amount, \
                   TIMESTAMP '2024-01-01' + to_seconds(CAST(hash(i, 2) % 31536000 AS BIGINT)) AS ts, \
                   md5(CAST(i AS VARCHAR)) || md5(CAST(i + 1 AS VARCHAR)) AS note \
                 FROM range({start}, {end}) t(i)) TO {} (FORMAT parquet)",
                sql_string(path)
            )
        };
        // Rows per file from the size of a sample.
        let sample = local.join("sample.parquet");
        duckdb.exec(&[generate(&sample, 0, 200_000)]);
        let bytes_per_row = std::fs::metadata(&sample).unwrap().len() as f64 / 200_000.0;
        std::fs::remove_file(&sample).unwrap();
        let rows_per_file = ((parquet_bytes / parquet_files) as f64 / bytes_per_row).ceil().max(1.0) as u64;
        let started = Instant::now();
        let paths: Vec<PathBuf> = (0..parquet_files).map(|f| local.join(format!("part-{f:03}.parquet"))).collect();
        let statements: Vec<String> = paths
            .iter()
            .enumerate()
            .map(|(f, path)| generate(path, f as u64 * rows_per_file, (f as u64 + 1) * rows_per_file))
            .collect();
        duckdb.exec(&statements);
        let generate_s = started.elapsed().as_secs_f64();
        let total: u64 = paths.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();

        let started = Instant::now();
        runtime.block_on(async {
            engine.create_bucket("bench", 0).await.unwrap();
            for path in &paths {
                let key = format!("trips/{}", path.file_name().unwrap().to_string_lossy());
                put_file(&engine, "bench", &key, path).await;
            }
        });
        engine.flush_catalog().unwrap();
        let put_s = started.elapsed().as_secs_f64();
        let rows = rows_per_file * parquet_files;
        notes.push(format!(
            "Parquet: {parquet_files} files, {rows} rows, {:.1} MiB, written by DuckDB in {generate_s:.1} s, \
             PUT into Quarry in {put_s:.1} s ({:.0} MiB/s)",
            total as f64 / (1 << 20) as f64,
            total as f64 / (1 << 20) as f64 / put_s
        ));

        let quarry_source = "read_parquet('s3://bench/trips/')";
        let duckdb_source = format!("read_parquet({})", sql_string(&local.join("*.parquet")));
        let size = format!("{:.0} MiB", total as f64 / (1 << 20) as f64);
        for (template, label) in
            [(FILTER_QUERY, "amount > 100, GROUP BY category"), (WIDE_FILTER_QUERY, "note LIKE, GROUP BY category")]
        {
            let name = format!("Parquet {size}: {label}");
            let query = Query {
                name: name.clone(),
                quarry_sql: template.replace("{source}", quarry_source),
                datafusion: Tables::ParquetDir("trips", &local),
                datafusion_sql: template.replace("{source}", "trips"),
                duckdb_sql: template.replace("{source}", &duckdb_source),
            };
            let (measured, answer) = measure(&runtime, &engine, &mut duckdb, &query, runs);
            let counted: u64 = answer.iter().map(|r| r[1].parse::<u64>().unwrap()).sum();
            assert!(counted > 0 && counted <= rows, "{name}: {counted} rows counted of {rows}");
            results.push(measured);
        }
    }

    println!();
    println!(
        "sql_vs_duckdb: DuckDB {} ({} threads) vs Quarry (DataFusion, 2 tokio workers), {cores} cores; \
         median of {runs} runs after a warm-up, sides taking turns; load average {load_at_start} at start, {} at end",
        info["version"].as_str().unwrap_or("?"),
        info["threads"],
        loadavg()
    );
    for note in &notes {
        println!("  {note}");
    }
    println!();
    println!("| query | Quarry ms | DataFusion alone ms | DuckDB ms | Quarry / DuckDB | DataFusion alone / DuckDB |");
    println!("|---|---|---|---|---|---|");
    for m in &results {
        let (q, f, d) = (median(&m.quarry_ms), median(&m.datafusion_ms), median(&m.duckdb_ms));
        println!("| {} | {q:.0} | {f:.0} | {d:.0} | {:.1}× | {:.1}× |", m.name, q / d, f / d);
    }
    println!();
    println!("| query | MiB read: Quarry | DataFusion alone | DuckDB |");
    println!("|---|---|---|---|");
    for m in &results {
        let mib = |bytes: i64| bytes as f64 / (1 << 20) as f64;
        println!("| {} | {:.1} | {:.1} | {:.1} |", m.name, mib(m.read[0]), mib(m.read[1]), mib(m.read[2]));
    }
    println!();
    println!("runs (ms):");
    for m in &results {
        println!(
            "  {}: Quarry {:.0?}, DataFusion {:.0?}, DuckDB {:.0?}",
            m.name, m.quarry_ms, m.datafusion_ms, m.duckdb_ms
        );
    }
    println!("answers: the same on every side for every query and run (and the inventory's as written)");
}
