//! The S3 benchmark. One command runs Quarry's release build and a null server (the same
//! HTTP stack answering without doing any work: the limit of client + HTTP on this
//! machine), drives both with the same SigV4 client at the same concurrency, and prints
//! ops/s, MiB/s, p50/p99 and the ratio Quarry / null server per workload, then the space
//! and memory figures of many small objects. `bench/s3.sh` builds and runs it.

mod client;
mod load;
mod null_server;
mod server;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use client::S3Client;
use http::{Method, StatusCode};
use load::Outcome;
use server::Process;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "S3 benchmark: Quarry against a null server, same client, same run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every workload on Quarry and on the null server and prints the tables.
    Run {
        /// The quarry binary (a release build).
        #[arg(long)]
        quarry: PathBuf,
        /// Seconds each throughput workload runs on each server.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// 1 KiB objects for the space, memory, listing and rebuild figures [default: 200000,
        /// 0 with `--only`]; 0 skips them.
        #[arg(long)]
        small_objects: Option<u64>,
        /// Where the data directories go (a temporary directory under it).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Runs only the throughput rows whose name contains this (repeatable; GET, HEAD
        /// and DELETE rows read what the PUT row of their size wrote, so name it too).
        /// Skips the small-object figures unless `--small-objects` is given.
        #[arg(long)]
        only: Vec<String>,
    },
    /// Serves as the null server (started by `run` as a process of its own).
    NullServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        address: SocketAddr,
    },
}

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::NullServer { address } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
            if let Err(e) = runtime.block_on(null_server::serve(address)) {
                eprintln!("null server: {e}");
                std::process::exit(1);
            }
        }
        Command::Run { quarry, seconds, small_objects, dir, only } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
            let small_objects = small_objects.unwrap_or(if only.is_empty() { 200_000 } else { 0 });
            let settings = Settings { quarry, duration: Duration::from_secs(seconds), small_objects, dir, only };
            if let Err(e) = runtime.block_on(run(settings)) {
                eprintln!("benchmark failed: {e}");
                std::process::exit(1);
            }
        }
    }
}

struct Settings {
    quarry: PathBuf,
    duration: Duration,
    small_objects: u64,
    dir: Option<PathBuf>,
    only: Vec<String>,
}

/// One throughput workload: its name, concurrency, object size and what it does.
#[derive(Clone, Copy)]
enum Kind {
    Put,
    Get,
    Head,
    Delete,
    /// 70% GETs of existing objects, 30% PUTs of new ones.
    Mixed,
}

struct Row {
    name: String,
    quarry: Outcome,
    null: Outcome,
    size_bytes: usize,
    /// For a PUT row: the ops/s the disk allows at this object size (its sequential write
    /// rate with fdatasync over the object size). A durable PUT cannot go faster.
    disk_ops_per_second: Option<f64>,
}

/// Bytes written (1 MiB at a time) to measure the disk's sequential write rate.
const DISK_PROBE_BYTES: usize = 1024 * MIB;
/// An fdatasync after every this many bytes of the probe, as a PUT of this size would.
const DISK_PROBE_SYNC_BYTES: usize = 64 * MIB;

/// The disk's sequential write rate in MiB/s: 1 GiB to a new file in `dir` in 1 MiB
/// writes with an fdatasync every 64 MiB (what durable PUTs of large objects need).
fn disk_write_mib_per_second(dir: &std::path::Path) -> Result<f64, String> {
    use std::io::Write;
    let path = dir.join("disk-probe");
    let mut file = std::fs::File::create(&path).map_err(|e| format!("disk probe: {e}"))?;
    let block = vec![0xa5u8; MIB];
    let started = Instant::now();
    for written in (MIB..=DISK_PROBE_BYTES).step_by(MIB) {
        file.write_all(&block).map_err(|e| format!("disk probe: {e}"))?;
        if written % DISK_PROBE_SYNC_BYTES == 0 {
            file.sync_data().map_err(|e| format!("disk probe: {e}"))?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path).map_err(|e| format!("disk probe: {e}"))?;
    Ok(DISK_PROBE_BYTES as f64 / MIB as f64 / seconds)
}

async fn run(settings: Settings) -> Result<(), String> {
    let parent = settings.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new().prefix("quarry-bench.").tempdir_in(&parent).map_err(|e| e.to_string())?;
    let null = Process::null_server(work.path())?;
    let quarry = Process::quarry(&settings.quarry, &work.path().join("throughput"))?;
    println!("quarry {} (pid {}), null server {} (pid {})", quarry.address, quarry.pid(), null.address, null.pid());
    let on_quarry = S3Client::new(quarry.address, 64, None)?;
    let on_null = S3Client::new(null.address, 64, None)?;
    for client in [&on_quarry, &on_null] {
        expect_ok(client.send(Method::PUT, "/bench", Bytes::new()).await?, "CreateBucket bench")?;
        expect_ok(client.send(Method::PUT, "/bench-sse", Bytes::new()).await?, "CreateBucket bench-sse")?;
    }
    // Every object written to bench-sse is encrypted (SSE-S3) by the bucket's default.
    let sse_s3_default = Bytes::from_static(
        b"<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>\
          <SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>\
          </ServerSideEncryptionConfiguration>",
    );
    expect_ok(on_quarry.send(Method::PUT, "/bench-sse?encryption", sse_s3_default).await?, "PutBucketEncryption")?;

    let disk_mib_per_second = disk_write_mib_per_second(work.path())?;
    println!(
        "disk: {disk_mib_per_second:.0} MiB/s sequential write ({} MiB in 1 MiB writes, fdatasync every {} MiB), the bound on durable PUT bytes",
        DISK_PROBE_BYTES / MIB,
        DISK_PROBE_SYNC_BYTES / MIB
    );
    let mut rows = Vec::new();
    use Transport::{Http, Https};
    let plan: [(&str, Kind, usize, usize, &str, Transport); 17] = [
        ("PUT 4 KiB", Kind::Put, 4 * KIB, 16, "bench", Http),
        ("GET 4 KiB", Kind::Get, 4 * KIB, 16, "bench", Http),
        ("GET 4 KiB, c1", Kind::Get, 4 * KIB, 1, "bench", Http),
        ("HEAD 4 KiB", Kind::Head, 4 * KIB, 16, "bench", Http),
        ("mixed 70% GET / 30% PUT, 4 KiB", Kind::Mixed, 4 * KIB, 16, "bench", Http),
        ("PUT 1 MiB", Kind::Put, MIB, 8, "bench", Http),
        ("GET 1 MiB", Kind::Get, MIB, 8, "bench", Http),
        ("PUT 1 MiB, SSE-S3", Kind::Put, MIB, 8, "bench-sse", Http),
        ("GET 1 MiB, SSE-S3", Kind::Get, MIB, 8, "bench-sse", Http),
        // A second Quarry serving HTTPS; the null server stays plain HTTP, so the ratio
        // includes what TLS costs (compare with the plain row of the same size).
        ("PUT 4 KiB, TLS", Kind::Put, 4 * KIB, 16, "bench", Https),
        ("GET 4 KiB, TLS", Kind::Get, 4 * KIB, 16, "bench", Https),
        ("PUT 1 MiB, TLS", Kind::Put, MIB, 8, "bench", Https),
        ("GET 1 MiB, TLS", Kind::Get, MIB, 8, "bench", Https),
        ("PUT 64 MiB", Kind::Put, 64 * MIB, 4, "bench", Http),
        ("GET 64 MiB", Kind::Get, 64 * MIB, 4, "bench", Http),
        ("DELETE 4 KiB", Kind::Delete, 4 * KIB, 16, "bench", Http),
        ("PUT 1 MiB, c1", Kind::Put, MIB, 1, "bench", Http),
    ];
    // Objects each bucket and size has on each server, so GET/HEAD/DELETE find what PUT
    // wrote.
    let mut written: std::collections::HashMap<(Transport, &str, usize), [u64; 2]> = Default::default();
    let chosen = |name: &str| settings.only.is_empty() || settings.only.iter().any(|o| name.contains(o.as_str()));
    let mut quarry_tls: Option<(Process, S3Client)> = None;
    for (name, kind, size_bytes, concurrency, bucket, transport) in plan.into_iter().filter(|row| chosen(row.0)) {
        let on_quarry = match transport {
            Http => on_quarry.clone(),
            Https => match &quarry_tls {
                Some((_, client)) => client.clone(),
                None => {
                    let (process, cert_pem) = Process::quarry_tls(&settings.quarry, &work.path().join("tls"))?;
                    println!("quarry over TLS {} (pid {})", process.address, process.pid());
                    let client = S3Client::new(process.address, 64, Some(&cert_pem))?;
                    expect_ok(client.send(Method::PUT, "/bench", Bytes::new()).await?, "CreateBucket bench (TLS)")?;
                    quarry_tls.insert((process, client)).1.clone()
                }
            },
        };
        let mut outcomes = Vec::new();
        for (side, client) in [&on_quarry, &on_null].into_iter().enumerate() {
            let existing = written.get(&(transport, bucket, size_bytes)).map_or(0, |w| w[side]);
            let target = Target { bucket, size_bytes, existing };
            let outcome = workload(client.clone(), kind, target, concurrency, settings.duration, name).await?;
            if matches!(kind, Kind::Put) {
                let entry = written.entry((transport, bucket, size_bytes)).or_default();
                entry[side] = entry[side].max(outcome.ops);
            }
            outcomes.push(outcome);
        }
        let null_outcome = outcomes.pop().expect("two sides");
        let quarry_outcome = outcomes.pop().expect("two sides");
        let disk_ops_per_second =
            matches!(kind, Kind::Put).then(|| disk_mib_per_second * MIB as f64 / size_bytes as f64);
        let row =
            Row { name: name.to_owned(), quarry: quarry_outcome, null: null_outcome, size_bytes, disk_ops_per_second };
        println!("{}", row_line(&row));
        rows.push(row);
    }
    let quarry_rss = quarry.rss_bytes();
    drop(quarry);

    println!();
    println!("{HEADER}");
    for row in &rows {
        println!("{}", row_line(row));
    }
    println!("\nQuarry RSS after the throughput workloads: {} MiB", quarry_rss / MIB as u64);

    if settings.small_objects > 0 {
        small_objects(&settings, work.path(), &on_null).await?;
    }
    Ok(())
}

/// How the client reaches Quarry in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Transport {
    Http,
    Https,
}

const HEADER: &str = "| workload | Quarry ops/s | MiB/s | p50 ms | p99 ms | null ops/s | MiB/s | p50 ms | p99 ms | ratio | disk-bound ops/s | ratio to the lower bound |\n|---|---|---|---|---|---|---|---|---|---|---|---|";

fn row_line(row: &Row) -> String {
    let q = &row.quarry;
    let n = &row.null;
    let throughput = |o: &Outcome| {
        if row.size_bytes >= MIB { format!("{:.0}", o.mib_per_second()) } else { format!("{:.1}", o.mib_per_second()) }
    };
    let errors = if q.errors + n.errors > 0 {
        format!(" (errors: quarry {} {:?}, null {})", q.errors, q.first_error, n.errors)
    } else {
        String::new()
    };
    // The lower of the two bounds: the null server (client + HTTP) and, for PUTs, the disk.
    let bound = row.disk_ops_per_second.map_or(n.ops_per_second(), |disk| disk.min(n.ops_per_second()));
    let disk = row.disk_ops_per_second.map_or("-".to_owned(), |d| format!("{d:.0}"));
    format!(
        "| {} | {:.0} | {} | {:.2} | {:.2} | {:.0} | {} | {:.2} | {:.2} | {:.3}{} | {disk} | {:.3} |",
        row.name,
        q.ops_per_second(),
        throughput(q),
        q.percentile_ms(50.0),
        q.percentile_ms(99.0),
        n.ops_per_second(),
        throughput(n),
        n.percentile_ms(50.0),
        n.percentile_ms(99.0),
        q.ops_per_second() / n.ops_per_second(),
        errors,
        q.ops_per_second() / bound,
    )
}

fn object_path(bucket: &str, size_bytes: usize, n: u64) -> String {
    format!("/{bucket}/obj/{size_bytes}/{n}")
}

/// The objects a workload works on: `existing` objects of `size_bytes` in `bucket`.
#[derive(Clone, Copy)]
struct Target {
    bucket: &'static str,
    size_bytes: usize,
    existing: u64,
}

async fn workload(
    client: S3Client,
    kind: Kind,
    target: Target,
    concurrency: usize,
    duration: Duration,
    name: &str,
) -> Result<Outcome, String> {
    let Target { bucket, size_bytes, existing } = target;
    let body = Bytes::from(vec![0x5au8; size_bytes]);
    let needs_objects = !matches!(kind, Kind::Put);
    if needs_objects && existing == 0 {
        return Err(format!("{name}: no objects of {size_bytes} bytes were written before"));
    }
    let max_ops = matches!(kind, Kind::Delete).then_some(existing);
    // PUTs of new objects number on from the ones already there.
    let first_new = existing;
    let outcome = load::run(concurrency, duration, max_ops, move |n| {
        let client = client.clone();
        let body = body.clone();
        async move {
            let (method, path, payload) = match kind {
                Kind::Put => (Method::PUT, object_path(bucket, size_bytes, first_new + n), body),
                Kind::Get => (Method::GET, object_path(bucket, size_bytes, spread(n) % existing), Bytes::new()),
                Kind::Head => (Method::HEAD, object_path(bucket, size_bytes, spread(n) % existing), Bytes::new()),
                Kind::Delete => (Method::DELETE, object_path(bucket, size_bytes, n), Bytes::new()),
                Kind::Mixed if n % 10 < 7 => {
                    (Method::GET, object_path(bucket, size_bytes, spread(n) % existing), Bytes::new())
                }
                Kind::Mixed => (Method::PUT, format!("/{bucket}/mixed/{size_bytes}/{n}"), body),
            };
            let sent = payload.len() as u64;
            let (status, received) = client.send(method.clone(), &path, payload).await?;
            if !status.is_success() {
                return Err(format!("{method} {path}: {status}"));
            }
            Ok(sent + received)
        }
    })
    .await;
    if outcome.ops == 0 {
        return Err(format!("{name}: nothing succeeded: {:?}", outcome.first_error));
    }
    Ok(outcome)
}

/// Spreads operation numbers over the objects, so GETs do not walk them in write order.
fn spread(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16
}

fn expect_ok((status, _): (StatusCode, u64), what: &str) -> Result<(), String> {
    if status.is_success() { Ok(()) } else { Err(format!("{what}: {status}")) }
}

/// Space, memory, listing and rebuild with many 1 KiB objects, on a fresh Quarry.
async fn small_objects(settings: &Settings, work: &std::path::Path, on_null: &S3Client) -> Result<(), String> {
    let objects = settings.small_objects;
    if objects == 0 {
        return Ok(());
    }
    let data_dir = work.join("small");
    let quarry = Process::quarry(&settings.quarry, &data_dir)?;
    let client = S3Client::new(quarry.address, 64, None)?;
    expect_ok(client.send(Method::PUT, "/bench", Bytes::new()).await?, "CreateBucket bench")?;
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak_rss = peak_rss.clone();
        let pid = quarry.pid();
        tokio::spawn(async move {
            loop {
                peak_rss.fetch_max(server::rss_bytes(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let body = Bytes::from(vec![0x5au8; KIB]);
    let populate = load::run(16, Duration::from_secs(24 * 3600), Some(objects), {
        let client = client.clone();
        move |n| {
            let client = client.clone();
            let body = body.clone();
            async move {
                let (status, _) = client.send(Method::PUT, &format!("/bench/small/{n:08}"), body).await?;
                if status.is_success() { Ok(KIB as u64) } else { Err(format!("PUT small/{n:08}: {status}")) }
            }
        }
    })
    .await;
    sampler.abort();
    if populate.errors > 0 {
        return Err(format!("populating: {} errors, first {:?}", populate.errors, populate.first_error));
    }
    let rss_during = peak_rss.load(Ordering::Relaxed);

    // Listing: every key, 1,000 a page, one page at a time.
    let pages = list_all(&client, objects).await?;
    let pages_null = list_pages_null(on_null, pages.latencies_us.len() as u64).await?;

    let segment_bytes = dir_bytes(&data_dir.join("segments"));
    let index_bytes = dir_bytes(&data_dir.join("index"));
    // fjall's journal files are preallocated 64 MiB each and rotate at that size: a
    // fixed cost, not one per object, so it is reported apart.
    let journal_bytes = files_bytes(&data_dir.join("index"), ".jnl");
    let body_bytes = objects * KIB as u64;
    let rss_after_load = quarry.rss_bytes();
    drop(quarry);

    // Full index rebuild: index/ deleted, the time until the server answers.
    std::fs::remove_dir_all(data_dir.join("index")).map_err(|e| format!("deleting index/: {e}"))?;
    let started = Instant::now();
    let quarry = Process::quarry(&settings.quarry, &data_dir)?;
    let rebuild = started.elapsed();
    let rss_after_rebuild = quarry.rss_bytes();
    drop(quarry);

    println!("\n{objects} objects of 1 KiB, PUT at concurrency 16: {:.0} ops/s", populate.ops_per_second());
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| segment bytes per object beyond its body | {:.0} B ({} MiB of segments for {} MiB of bodies) |",
        (segment_bytes.saturating_sub(body_bytes)) as f64 / objects as f64,
        segment_bytes / MIB as u64,
        body_bytes / MIB as u64
    );
    println!(
        "| index bytes per object, without / with its journal | {:.0} B / {:.0} B ({} MiB of tables, {} MiB of journal) |",
        index_bytes.saturating_sub(journal_bytes) as f64 / objects as f64,
        index_bytes as f64 / objects as f64,
        index_bytes.saturating_sub(journal_bytes) / MIB as u64,
        journal_bytes / MIB as u64
    );
    println!(
        "| server RSS: peak during the load / after it / after a full index rebuild | {} / {} / {} MiB |",
        rss_during / MIB as u64,
        rss_after_load / MIB as u64,
        rss_after_rebuild / MIB as u64
    );
    println!("| full index rebuild (index/ deleted), start to first answer | {:.2} s |", rebuild.as_secs_f64());
    println!(
        "| list all keys, 1,000 a page ({} pages) | {:.2} s; per page p50 {:.2} ms, p99 {:.2} ms (null server: p50 {:.2} ms) |",
        pages.latencies_us.len(),
        pages.elapsed.as_secs_f64(),
        pages.percentile_ms(50.0),
        pages.percentile_ms(99.0),
        pages_null.percentile_ms(50.0)
    );
    Ok(())
}

/// Lists every key under `small/` with ListObjectsV2, 1,000 a page.
async fn list_all(client: &S3Client, expected_keys: u64) -> Result<Outcome, String> {
    let mut outcome = Outcome::default();
    let started = Instant::now();
    let mut token: Option<String> = None;
    let mut keys = 0u64;
    loop {
        let mut path = "/bench?list-type=2&prefix=small%2F&max-keys=1000".to_owned();
        if let Some(token) = &token {
            path.push_str("&continuation-token=");
            path.push_str(&percent_encode(token));
        }
        let sent = Instant::now();
        let (status, body) = client.send_collect(Method::GET, &path).await?;
        outcome.latencies_us.push(sent.elapsed().as_micros() as u64);
        if !status.is_success() {
            return Err(format!("ListObjectsV2: {status}"));
        }
        let text = String::from_utf8_lossy(&body);
        keys += text.matches("<Key>").count() as u64;
        outcome.ops += 1;
        outcome.bytes += body.len() as u64;
        token = between(&text, "<NextContinuationToken>", "</NextContinuationToken>").map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    if keys != expected_keys {
        return Err(format!("listing found {keys} keys, {expected_keys} were written"));
    }
    outcome.elapsed = started.elapsed();
    outcome.latencies_us.sort_unstable();
    Ok(outcome)
}

/// The same number of list requests against the null server.
async fn list_pages_null(client: &S3Client, pages: u64) -> Result<Outcome, String> {
    let mut outcome = Outcome::default();
    let started = Instant::now();
    for _ in 0..pages {
        let sent = Instant::now();
        let (status, body) =
            client.send_collect(Method::GET, "/bench?list-type=2&prefix=small%2F&max-keys=1000").await?;
        outcome.latencies_us.push(sent.elapsed().as_micros() as u64);
        expect_ok((status, body.len() as u64), "null ListObjectsV2")?;
        outcome.ops += 1;
    }
    outcome.elapsed = started.elapsed();
    outcome.latencies_us.sort_unstable();
    Ok(outcome)
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Bytes of the files under `dir`, recursively (0 if it does not exist).
/// Bytes of the files under `dir` whose names end with `suffix`.
fn files_bytes(dir: &std::path::Path, suffix: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => files_bytes(&entry.path(), suffix),
            Ok(m) if entry.file_name().to_string_lossy().ends_with(suffix) => m.len(),
            _ => 0,
        })
        .sum()
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
