//! Benchmark: SQL through Quarry's query path (`quarry_sql::run_query`, what `POST /?sql`
//! runs) against DuckDB running the same SQL on the same Parquet files on local disk, in
//! the same run.
//!
//!   bench/sql_vs_duckdb.sh          (installs DuckDB from PyPI into a venv, then runs this)
//!
//! 1. `inventory`: QUARRY_BENCH_OBJECTS (default 1,000,000) objects PUT through the engine
//!    into 10 buckets of uneven sizes, the catalog compacted into one base file, then
//!    `SELECT bucket, count(*), sum(size) FROM inventory GROUP BY bucket`. DuckDB runs the
//!    same SQL twice: with `inventory` a plain view over the base file, and with
//!    `inventory` defined as Quarry defines it (latest row per key, tombstoned keys
//!    removed: a window and an anti join), over the same files.
//! 2. Parquet objects: DuckDB writes QUARRY_BENCH_PARQUET_BYTES (default 1 GiB) of Parquet
//!    in QUARRY_BENCH_PARQUET_FILES (16) files, each also PUT into Quarry under
//!    `s3://bench/trips/`; a filter + aggregate (and a filter on the widest column, which
//!    makes both read every byte) through `read_parquet('s3://bench/trips/')` in Quarry and
//!    `read_parquet('<dir>/*.parquet')` in DuckDB.
//!
//! Every query runs once to warm up, then QUARRY_BENCH_RUNS (5) times on each side,
//! alternating Quarry and DuckDB so that other load on the machine hits both; the median
//! is reported, and the ratio is Quarry's median / DuckDB's median (above 1: Quarry is
//! slower). Both sides are timed from the SQL text to the last result row fetched, with
//! the files in the page cache. Both answers are compared (and the inventory's with the
//! counts and sizes the bench wrote); a mismatch stops the benchmark.
//!
//! Other settings: QUARRY_BENCH_PYTHON (a python with the duckdb module; default
//! `python3`), QUARRY_BENCH_DIR (where the temporary directory goes; default the system's
//! temporary directory), QUARRY_BENCH_EXPLAIN=1 (also print Quarry's EXPLAIN ANALYZE of
//! each query). 0 objects or 0 Parquet bytes skips that part.

use bytes::Bytes;
use futures::StreamExt;
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

/// Quarry's `inventory` view (sql/src/catalog_tables.rs) in DuckDB's spelling (`ANTI JOIN`
/// for DataFusion's `LEFT ANTI JOIN`), over tables in the schema `as_quarry`.
const INVENTORY_VIEW_AS_QUARRY: &str = "
    CREATE VIEW as_quarry.inventory AS
    SELECT bucket, key, version_id, size, etag, content_type, last_modified, user_metadata, sequence_number
    FROM (
        SELECT c.*, row_number() OVER (PARTITION BY c.bucket, c.key ORDER BY c.sequence_number DESC) AS newest
        FROM as_quarry.inventory_changes c
        ANTI JOIN as_quarry.inventory_tombstones t
            ON c.bucket = t.bucket AND c.key = t.key AND t.sequence_number > c.sequence_number
    ) latest
    WHERE newest = 1";

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
    duckdb_ms: Vec<f64>,
}

/// Warm-up, then `runs` rounds alternating Quarry and DuckDB; the answers are checked.
fn measure(
    runtime: &tokio::runtime::Runtime,
    engine: &Engine,
    duckdb: &mut DuckDb,
    name: &str,
    quarry_sql: &str,
    duckdb_sql: &str,
    runs: usize,
) -> (Measured, Vec<Vec<String>>) {
    let (mut quarry_ms, mut duckdb_ms) = (Vec::new(), Vec::new());
    let mut answer = Vec::new();
    for round in 0..=runs {
        let (ms, csv) = runtime.block_on(quarry_query(engine, quarry_sql));
        let quarry_rows = csv_rows(&csv);
        let (dms, duckdb_rows) = duckdb.time(duckdb_sql);
        check_same(name, &quarry_rows, &duckdb_rows);
        if round > 0 {
            quarry_ms.push(ms);
            duckdb_ms.push(dms);
        }
        eprintln!("  {name} {}: quarry {ms:.1} ms, duckdb {dms:.1} ms", if round == 0 { "warm-up" } else { "run" });
        answer = quarry_rows;
    }
    if std::env::var_os("QUARRY_BENCH_EXPLAIN").is_some() {
        let (_, plan) = runtime.block_on(quarry_query(engine, &format!("EXPLAIN ANALYZE {quarry_sql}")));
        eprintln!("Quarry's plan for {name}:\n{}", String::from_utf8_lossy(&plan));
    }
    (Measured { name: name.into(), quarry_ms, duckdb_ms }, answer)
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
        let expected = runtime.block_on(load_inventory(&engine, objects));
        let load_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        engine.compact_catalog().unwrap();
        let compact_s = started.elapsed().as_secs_f64();
        let catalog = engine.catalog().unwrap();
        let files = catalog.files();
        let inventory: Vec<PathBuf> = files
            .iter()
            .filter(|f| f.starts_with("inventory/") && !f.contains("/tombstones-"))
            .map(|f| catalog.dir().join(f))
            .collect();
        let tombstones: Vec<PathBuf> =
            files.iter().filter(|f| f.contains("/tombstones-")).map(|f| catalog.dir().join(f)).collect();
        let inventory_bytes: u64 = inventory.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
        notes.push(format!(
            "inventory: {objects} objects in {BUCKETS} buckets PUT in {load_s:.1} s ({:.0} PUT/s, {WRITERS} concurrent), \
             catalog compacted in {compact_s:.1} s into {} inventory file(s) of {:.1} MiB, {} tombstone file(s)",
            objects as f64 / load_s,
            inventory.len(),
            inventory_bytes as f64 / (1 << 20) as f64,
            tombstones.len(),
        ));

        let list = |paths: &[PathBuf]| paths.iter().map(|p| sql_string(p)).collect::<Vec<_>>().join(", ");
        let tombstone_table = if tombstones.is_empty() {
            "CREATE TABLE as_quarry.inventory_tombstones (bucket VARCHAR, key VARCHAR, sequence_number UBIGINT)"
                .to_string()
        } else {
            format!("CREATE VIEW as_quarry.inventory_tombstones AS SELECT * FROM read_parquet([{}])", list(&tombstones))
        };
        duckdb.exec(&[
            "CREATE SCHEMA plain".into(),
            format!("CREATE VIEW plain.inventory AS SELECT * FROM read_parquet([{}])", list(&inventory)),
            "CREATE SCHEMA as_quarry".into(),
            format!("CREATE VIEW as_quarry.inventory_changes AS SELECT * FROM read_parquet([{}])", list(&inventory)),
            tombstone_table,
            INVENTORY_VIEW_AS_QUARRY.into(),
        ]);

        for (schema, label) in [("plain", "DuckDB: plain view over the file"), ("as_quarry", "DuckDB: Quarry's view")] {
            duckdb.exec(&[format!("SET search_path = '{schema}'")]);
            let name = format!("inventory GROUP BY bucket, {objects} objects ({label})");
            let (measured, answer) =
                measure(&runtime, &engine, &mut duckdb, &name, INVENTORY_QUERY, INVENTORY_QUERY, runs);
            // ... and both hold what was written.
            let got: BTreeMap<String, (u64, u64)> =
                answer.iter().map(|r| (r[0].clone(), (r[1].parse().unwrap(), r[2].parse().unwrap()))).collect();
            assert_eq!(got, expected, "the inventory's answer is not what was written");
            results.push(measured);
        }
        duckdb.exec(&["SET search_path = 'main'".into()]);
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
            let (measured, answer) = measure(
                &runtime,
                &engine,
                &mut duckdb,
                &name,
                &template.replace("{source}", quarry_source),
                &template.replace("{source}", &duckdb_source),
                runs,
            );
            let counted: u64 = answer.iter().map(|r| r[1].parse::<u64>().unwrap()).sum();
            assert!(counted > 0 && counted <= rows, "{name}: {counted} rows counted of {rows}");
            results.push(measured);
        }
    }

    println!();
    println!(
        "sql_vs_duckdb: DuckDB {} ({} threads) vs Quarry (DataFusion, 2 tokio workers), {cores} cores; \
         median of {runs} runs after a warm-up, alternating; load average {load_at_start} at start, {} at end",
        info["version"].as_str().unwrap_or("?"),
        info["threads"],
        loadavg()
    );
    for note in &notes {
        println!("  {note}");
    }
    println!();
    println!("| query | Quarry ms | DuckDB ms | Quarry / DuckDB |");
    println!("|---|---|---|---|");
    for m in &results {
        let (q, d) = (median(&m.quarry_ms), median(&m.duckdb_ms));
        println!("| {} | {q:.0} | {d:.0} | {:.1}× |", m.name, q / d);
    }
    println!();
    println!("runs (ms):");
    for m in &results {
        println!("  {}: Quarry {:.0?}, DuckDB {:.0?}", m.name, m.quarry_ms, m.duckdb_ms);
    }
    println!("answers: identical on both sides for every query and run (and the inventory's as written)");
}
