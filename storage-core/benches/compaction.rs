//! Benchmark: segment compaction throughput against the disk's own sequential write
//! speed, both measured in this run, in the same directory.
//!
//!   cargo bench -p storage-core --bench compaction
//!
//! Writes QUARRY_BENCH_MIB (default 1024) MiB of 1 MiB objects, deletes half of them
//! (every other one, so every segment is half dead), and runs one forced compaction.
//! The baseline writes the same number of bytes to a plain file with 1 MiB writes and
//! one fsync at the end.

use bytes::Bytes;
use std::io::Write;
use std::time::Instant;
use storage_core::{CompactionOptions, Engine, EngineConfig, ObjectMeta, ObjectRecord};

fn mib_per_sec(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / seconds
}

fn sequential_write_speed(dir: &std::path::Path, bytes: u64) -> f64 {
    let path = dir.join("baseline.bin");
    let block = vec![0x5Au8; 1 << 20];
    let started = Instant::now();
    let mut file = std::fs::File::create(&path).unwrap();
    for _ in 0..bytes / block.len() as u64 {
        file.write_all(&block).unwrap();
    }
    file.sync_all().unwrap();
    let speed = mib_per_sec(bytes, started.elapsed().as_secs_f64());
    std::fs::remove_file(path).unwrap();
    speed
}

fn main() {
    let mib: u64 = std::env::var("QUARRY_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let dir = tempfile::tempdir_in(std::env::var("QUARRY_BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let disk = sequential_write_speed(dir.path(), mib << 20);

    let mut config = EngineConfig::new(dir.path().join("data"));
    config.disk_reserve_bytes = 0;
    let engine = Engine::open(config).unwrap();
    let report = runtime.block_on(async {
        engine.create_bucket("bench", 0).await.unwrap();
        let block = Bytes::from(vec![0xA5u8; 1 << 20]);
        for i in 0..mib {
            let mut writer = engine.body_writer();
            writer.write(block.clone()).await.unwrap();
            let body = writer.finish().await.unwrap();
            let record = ObjectRecord::new(
                "bench",
                format!("o{i:06}"),
                ObjectMeta { size_bytes: 1 << 20, etag: "e".into(), ..Default::default() },
            );
            engine.put_object(record, body).await.unwrap();
        }
        for i in (0..mib).step_by(2) {
            engine.delete_object("bench", &format!("o{i:06}")).await.unwrap();
        }
        engine.roll().await.unwrap();
        engine.compact(CompactionOptions { force: true, ..Default::default() }).await.unwrap()
    });
    let seconds = report.elapsed_ms as f64 / 1000.0;
    let read_speed = mib_per_sec(report.bytes_in, seconds);
    let write_speed = mib_per_sec(report.bytes_out, seconds);
    println!("compaction benchmark: {mib} MiB of 1 MiB objects, every other one deleted");
    println!("  disk sequential write (1 MiB writes + fsync): {disk:.0} MiB/s");
    println!(
        "  compaction: {} segments in, {} out, {:.0} MiB read, {:.0} MiB written in {seconds:.2} s",
        report.segments_in.len(),
        report.segments_out.len(),
        report.bytes_in as f64 / 1048576.0,
        report.bytes_out as f64 / 1048576.0
    );
    println!("  compaction throughput: {read_speed:.0} MiB/s of input, {write_speed:.0} MiB/s of output");
    println!("  ratio output write speed / disk sequential write: {:.2}", write_speed / disk);
}
