//! Benchmark: rebuilding the index from the log, with sidecars vs by scanning every
//! segment, in the same run on the same data.
//!
//!   cargo bench -p storage-core --bench rebuild
//!
//! QUARRY_BENCH_OBJECTS (default 100000) objects of QUARRY_BENCH_OBJECT_BYTES (default
//! 4096) are written through the engine into segments of QUARRY_BENCH_SEGMENT_BYTES
//! (default 32 MiB, so most of the log is sealed), then the index is deleted and
//! rebuilt three times each way. Before each rebuild the page cache is dropped when possible (root
//! on Linux), so both read from disk; the report says whether that happened.

use bytes::Bytes;
use std::path::Path;
use std::time::{Duration, Instant};
use storage_core::{Engine, EngineConfig, EngineStats, ObjectMeta, ObjectRecord};

const ROUNDS: usize = 3;
const CONCURRENT_WRITERS: usize = 64;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn drop_page_cache() -> bool {
    sync_filesystems();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

fn sync_filesystems() {
    let _ = std::process::Command::new("sync").status();
}

fn config(dir: &Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.segment_size_limit_bytes = env("QUARRY_BENCH_SEGMENT_BYTES", 32 << 20);
    config
}

async fn populate(dir: &Path, objects: u64, object_bytes: usize) -> Duration {
    let engine = Engine::open(config(dir)).unwrap();
    engine.create_bucket("bench", 0).await.unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..CONCURRENT_WRITERS as u64 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = writer;
            while i < objects {
                let data = Bytes::from(vec![(i % 251) as u8; object_bytes]);
                let mut body = engine.body_writer();
                body.write(data).await.unwrap();
                let body = body.finish().await.unwrap();
                let meta = ObjectMeta {
                    size_bytes: object_bytes as u64,
                    etag: format!("{i:032x}"),
                    last_modified_ms: 1_700_000_000_000 + i as i64,
                    content_type: Some("application/octet-stream".into()),
                    ..Default::default()
                };
                let record = ObjectRecord::new("bench", format!("prefix-{:02}/object-{i:09}", i % 97), meta);
                engine.put_object(record, body).await.unwrap();
                i += CONCURRENT_WRITERS as u64;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    engine.close().await.unwrap();
    drop(engine); // joins the sidecar builder
    elapsed
}

fn rebuild(dir: &Path) -> (Duration, u64, u64, u64) {
    let mut config = config(dir);
    config.rebuild_index = true;
    let cache_dropped = drop_page_cache();
    let started = Instant::now();
    let engine = Engine::open(config).unwrap();
    let elapsed = started.elapsed();
    let stats = engine.stats();
    let result = (
        elapsed,
        engine.recovery().records_replayed,
        EngineStats::get(&stats.sidecar_hits),
        EngineStats::get(&stats.sidecar_misses),
    );
    assert!(engine.object("bench", "prefix-00/object-000000000").unwrap().is_some(), "rebuilt index is complete");
    drop(engine);
    let _ = cache_dropped;
    result
}

fn sidecars(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let objects = env("QUARRY_BENCH_OBJECTS", 100_000);
    let object_bytes = env("QUARRY_BENCH_OBJECT_BYTES", 4096) as usize;
    let dir = tempfile::tempdir_in(std::env::var("QUARRY_BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let write_time = runtime.block_on(populate(dir.path(), objects, object_bytes));
    let segment_bytes: u64 = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let sidecar_files = sidecars(dir.path());
    let sidecar_bytes: u64 = sidecar_files.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    let cache_dropped = drop_page_cache();

    let mut with_sidecars = Vec::new();
    let mut records = 0;
    let mut hits = 0;
    for _ in 0..ROUNDS {
        let (elapsed, n, h, _) = rebuild(dir.path());
        with_sidecars.push(elapsed);
        records = n;
        hits = h;
    }
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> =
        sidecar_files.iter().map(|p| (p.clone(), std::fs::read(p).unwrap())).collect();
    let mut by_scan = Vec::new();
    let mut misses = 0;
    for _ in 0..ROUNDS {
        for (path, _) in &saved {
            let _ = std::fs::remove_file(path);
        }
        let (elapsed, _, _, m) = rebuild(dir.path());
        by_scan.push(elapsed);
        misses = m;
        // The engine rebuilds missing sidecars in the background; remove them again next round.
    }

    let sidecar_time = median(with_sidecars.clone());
    let scan_time = median(by_scan.clone());
    println!("rebuild benchmark: {objects} objects of {object_bytes} bytes ({records} records)");
    println!(
        "  written in {:.2} s ({:.0} objects/s, {CONCURRENT_WRITERS} concurrent writers)",
        write_time.as_secs_f64(),
        objects as f64 / write_time.as_secs_f64()
    );
    println!(
        "  segments: {:.1} MiB; sidecars: {} files, {:.1} MiB",
        segment_bytes as f64 / 1048576.0,
        saved.len(),
        sidecar_bytes as f64 / 1048576.0
    );
    println!(
        "  page cache dropped before each rebuild: {}",
        if cache_dropped { "yes" } else { "no (not root?): figures are from a warm cache" }
    );
    println!(
        "  rebuild with sidecars ({hits} sealed segments via sidecar): median {:.3} s  (runs: {:?})",
        sidecar_time.as_secs_f64(),
        with_sidecars
    );
    println!(
        "  rebuild by scan ({misses} segments scanned):              median {:.3} s  (runs: {:?})",
        scan_time.as_secs_f64(),
        by_scan
    );
    println!("  ratio scan / sidecars: {:.2}x", scan_time.as_secs_f64() / sidecar_time.as_secs_f64());
}
