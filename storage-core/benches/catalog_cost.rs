//! Benchmark: what the catalog flusher costs on small PUTs. The same workload runs
//! with the catalog off (the baseline) and on, in this run, in the same directory.
//!
//!   cargo bench -p storage-core --bench catalog_cost
//!
//! QUARRY_BENCH_OBJECTS (default 50000) PUTs of 4 KiB by 64 concurrent writers,
//! alternating the two configurations three times; medians reported.

use bytes::Bytes;
use std::time::Instant;
use storage_core::catalog::CatalogConfig;
use storage_core::{Engine, EngineConfig, ObjectMeta, ObjectRecord};

const WRITERS: u64 = 64;

async fn run(dir: &std::path::Path, objects: u64, catalog: bool) -> f64 {
    let mut config = EngineConfig::new(dir);
    config.disk_reserve_bytes = 0;
    config.catalog = catalog.then(CatalogConfig::default);
    let engine = Engine::open(config).unwrap();
    engine.create_bucket("bench", 0).await.unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = writer;
            while i < objects {
                let mut body = engine.body_writer();
                body.write(Bytes::from(vec![(i % 251) as u8; 4096])).await.unwrap();
                let body = body.finish().await.unwrap();
                let record = ObjectRecord::new(
                    "bench",
                    format!("object-{i:09}"),
                    ObjectMeta { size_bytes: 4096, etag: format!("{i:032x}"), ..Default::default() },
                );
                engine.put_object(record, body).await.unwrap();
                i += WRITERS;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rate = objects as f64 / started.elapsed().as_secs_f64();
    if catalog {
        // Every PUT made it into the catalog (the flush that follows is not timed).
        engine.flush_catalog().unwrap();
        let rows = engine.catalog().unwrap().journal().unwrap().len() as u64;
        assert_eq!(rows, objects, "journal rows");
    }
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let objects: u64 = std::env::var("QUARRY_BENCH_OBJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let base = std::env::var("QUARRY_BENCH_DIR").unwrap_or_else(|_| ".".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        for catalog in [false, true] {
            let dir = tempfile::tempdir_in(&base).unwrap();
            let rate = runtime.block_on(run(dir.path(), objects, catalog));
            if catalog { with.push(rate) } else { without.push(rate) }
        }
    }
    let (a, b) = (median(without.clone()), median(with.clone()));
    println!("catalog cost benchmark: {objects} PUTs of 4 KiB, {WRITERS} concurrent writers, median of 3");
    println!("  without catalog: {a:.0} PUT/s  (runs {without:.0?})");
    println!("  with catalog (1 s flush): {b:.0} PUT/s  (runs {with:.0?})");
    println!("  ratio with / without: {:.3}", b / a);
}
