//! Segment compaction: space comes back, live data stays byte-identical, deleted data
//! never comes back (not even after an index rebuild), concurrent writes win, a failure
//! at any step leaves a store that restarts correctly, and deleted bytes are erased.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use storage_core::io::SimDir;
use storage_core::{
    Body, CompactionOptions, Engine, EngineConfig, ListQuery, ObjectMeta, ObjectRecord, PartRecord, UploadRecord,
};

const CHUNK: usize = 4096;

fn config(dir: &Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.chunk_size_bytes = CHUNK;
    config.segment_size_limit_bytes = 64 * 1024;
    config.disk_reserve_bytes = 0;
    config
}

fn record(key: &str, size: u64) -> ObjectRecord {
    ObjectRecord::new("b", key, ObjectMeta { size_bytes: size, etag: "e".into(), ..Default::default() })
}

fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn put(engine: &Engine, key: &str, data: &[u8]) {
    let mut writer = engine.body_writer();
    writer.write(Bytes::copy_from_slice(data)).await.unwrap();
    let body = writer.finish().await.unwrap();
    engine.put_object(record(key, data.len() as u64), body).await.unwrap();
}

async fn copy(engine: &Engine, from: &str, to: &str) {
    let source = engine.object("b", from).unwrap().unwrap();
    engine.put_object(record(to, source.meta.size_bytes), Body::Chunks(source.chunks)).await.unwrap();
}

async fn read(engine: &Engine, key: &str) -> Option<Vec<u8>> {
    let entry = engine.object("b", key).unwrap()?;
    let mut reader = engine.read(&entry, 0..entry.meta.size_bytes);
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk().await {
        out.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("reading {key}: {e}")));
    }
    Some(out)
}

async fn contents(engine: &Engine) -> BTreeMap<String, Vec<u8>> {
    let page = engine.list_objects("b", &ListQuery { max_keys: 1_000_000, ..Default::default() }).unwrap();
    let mut out = BTreeMap::new();
    for (key, _) in page.objects {
        out.insert(key.clone(), read(engine, &key).await.unwrap());
    }
    out
}

fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn force() -> CompactionOptions {
    CompactionOptions { force: true, max_output_bytes: 256 * 1024, ..Default::default() }
}

#[tokio::test]
async fn space_comes_back_and_live_data_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    for i in 0..400u64 {
        put(&engine, &format!("k{i:03}"), &body(i, [100, 3000, 9000, 20000][i as usize % 4])).await;
    }
    // A copy shares its source's chunks; then the source goes.
    copy(&engine, "k003", "copy-of-k003").await;
    // An upload in progress: its parts must survive.
    engine
        .create_upload(UploadRecord {
            bucket: "b".into(),
            key: "mp".into(),
            upload_id: "u1".into(),
            initiated_ms: 0,
            meta: ObjectMeta::default(),
            checksum_algorithm: None,
            checksum_type: None,
        })
        .await
        .unwrap();
    let part_data = body(777, 10_000);
    let mut writer = engine.body_writer();
    writer.write(Bytes::from(part_data.clone())).await.unwrap();
    let part_body = writer.finish().await.unwrap();
    let part = PartRecord {
        bucket: "b".into(),
        key: "mp".into(),
        upload_id: "u1".into(),
        part_number: 1,
        size_bytes: part_data.len() as u64,
        etag: "p".into(),
        last_modified_ms: 0,
        checksum: None,
        chunks: vec![],
        inline: false,
        sealed_data_key: None,
    };
    engine.put_part(part, part_body).await.unwrap();
    // Delete 90%.
    for i in 0..400u64 {
        if i % 10 != 0 {
            engine.delete_object("b", &format!("k{i:03}")).await.unwrap();
        }
    }
    let expected = contents(&engine).await;
    let live_bytes: u64 = expected.values().map(|v| v.len() as u64).sum::<u64>() + part_data.len() as u64;
    let before = segment_bytes(dir.path());

    let report = engine.compact(force()).await.unwrap();
    assert!(!report.segments_in.is_empty(), "something was compacted: {report:?}");
    let after = segment_bytes(dir.path());
    assert_eq!(contents(&engine).await, expected, "live objects after compaction");
    // Record framing and headers cost a little over the object bytes themselves.
    assert!(
        (after as f64) <= live_bytes as f64 * 1.10 + 64.0 * 1024.0,
        "disk use after compaction: {after} bytes for {live_bytes} live bytes (was {before})"
    );

    // The part still completes into the right object.
    let chunks = engine.index().parts("b", "mp", "u1").unwrap()[0].part.chunks.clone();
    let mut object = record("mp", part_data.len() as u64);
    object.chunks = chunks;
    engine.complete_upload("u1", object).await.unwrap();
    assert_eq!(read(&engine, "mp").await.unwrap(), part_data);
    let mut expected = expected;
    expected.insert("mp".into(), part_data);
    engine.close().await.unwrap();
    drop(engine);

    // A rebuild from the compacted log sees exactly the same (nothing deleted returns).
    let mut rebuild = config(dir.path());
    rebuild.rebuild_index = true;
    let engine = Engine::open(rebuild).unwrap();
    assert_eq!(contents(&engine).await, expected, "after compaction and an index rebuild");
}

/// Writes and deletes much garbage after what came before, seals it, and compacts with
/// settings that rewrite the garbage segments only (not the older, live ones).
async fn compact_garbage_after(engine: &Engine) {
    for i in 0..40u64 {
        put(engine, &format!("garbage{i:02}"), &body(200 + i, 5000)).await;
    }
    for i in 0..40u64 {
        engine.delete_object("b", &format!("garbage{i:02}")).await.unwrap();
    }
    engine.roll().await.unwrap();
    let options = CompactionOptions { dead_ratio_threshold: 0.5, max_output_bytes: 256 * 1024, ..Default::default() };
    let report = engine.compact(options).await.unwrap();
    assert!(!report.segments_in.is_empty(), "the garbage segments were compacted: {report:?}");
}

#[tokio::test]
async fn a_tombstone_stays_while_an_older_version_survives() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    // Old segments: "victim" among much live data (not worth compacting on its own).
    put(&engine, "victim", &body(1, 3000)).await;
    for i in 0..40u64 {
        put(&engine, &format!("live{i:02}"), &body(100 + i, 5000)).await;
    }
    // Newer segments: the tombstone, among much garbage.
    engine.delete_object("b", "victim").await.unwrap();
    compact_garbage_after(&engine).await;
    let expected = contents(&engine).await;
    assert!(!expected.contains_key("victim"));
    engine.close().await.unwrap();
    drop(engine);
    for round in 0..2 {
        let mut rebuild = config(dir.path());
        rebuild.rebuild_index = true;
        let engine = Engine::open(rebuild).unwrap();
        assert_eq!(contents(&engine).await, expected, "round {round}: a deleted object came back after a rebuild");
        // Second round: compact everything (the old version goes, then the tombstone may).
        engine.compact(force()).await.unwrap();
        engine.compact(force()).await.unwrap();
        engine.close().await.unwrap();
    }
}

/// As for an object's tombstone: the deletion of a user or key stays while its create
/// record survives in an older segment that compaction left alone.
#[tokio::test]
async fn a_deleted_user_and_key_stay_deleted_after_compaction_and_a_rebuild() {
    use storage_core::{KeyChange, UserChange};
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    // Old segments: the user and its key among much live data.
    engine.change_user("carol", UserChange::Create { admin: false, created_ms: 1 }).await.unwrap();
    let create = KeyChange::Create { user: "carol".into(), sealed_secret: "sealed".into(), created_ms: 1 };
    engine.change_access_key("AK1", create).await.unwrap();
    for i in 0..40u64 {
        put(&engine, &format!("live{i:02}"), &body(100 + i, 5000)).await;
    }
    // Newer segments: the deletions, among much garbage.
    engine.change_access_key("AK1", KeyChange::Delete).await.unwrap();
    engine.change_user("carol", UserChange::Delete).await.unwrap();
    compact_garbage_after(&engine).await;
    engine.close().await.unwrap();
    drop(engine);
    let mut rebuild = config(dir.path());
    rebuild.rebuild_index = true;
    let engine = Engine::open(rebuild).unwrap();
    assert_eq!(engine.users().unwrap(), vec![], "a deleted user came back after a rebuild");
    assert_eq!(engine.access_keys().unwrap(), vec![], "a deleted access key came back after a rebuild");
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_under_concurrent_writes_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for task in 0..4u64 {
        let (engine, stop) = (engine.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut model: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 50 {
                n += 1;
                let key = format!("t{task}-k{}", n % 12);
                match n % 5 {
                    0..=2 => {
                        let data = body(task * 1_000_000 + n, (n as usize * 977) % 15_000);
                        put(&engine, &key, &data).await;
                        model.insert(key.clone(), Some(data));
                    }
                    3 => {
                        engine.delete_object("b", &key).await.unwrap();
                        model.insert(key.clone(), None);
                    }
                    _ => {
                        let source = format!("t{task}-k{}", (n + 5) % 12);
                        if let Some(Some(data)) = model.get(&source).cloned() {
                            copy(&engine, &source, &key).await;
                            model.insert(key.clone(), Some(data));
                        }
                    }
                }
                // Every read sees exactly what this task last wrote.
                let want = model.get(&key).cloned().flatten();
                assert_eq!(read(&engine, &key).await, want, "task {task} op {n}: read of {key}");
            }
            model
        }));
    }
    let mut passes = 0;
    for _ in 0..15 {
        let report = engine.compact(force()).await.unwrap();
        passes += usize::from(!report.segments_in.is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut expected = BTreeMap::new();
    for writer in writers {
        for (key, value) in writer.await.unwrap() {
            if let Some(value) = value {
                expected.insert(key, value);
            }
        }
    }
    assert!(passes > 0, "compaction ran while writes went on");
    assert_eq!(contents(&engine).await, expected, "final state");
    engine.compact(force()).await.unwrap();
    assert_eq!(contents(&engine).await, expected, "after a final compaction");
}

/// The disk dies at every possible step of a compaction in turn; after the crash the
/// store restarts and holds exactly the same objects.
#[tokio::test]
async fn a_failure_at_any_step_of_compaction_leaves_a_correct_store() {
    let mut step = 0u64;
    loop {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimDir::new();
        let mut cfg = config(dir.path());
        cfg.segment_dir = Some(Arc::new(sim.clone()));
        let engine = Engine::open(cfg.clone()).unwrap();
        engine.create_bucket("b", 1).await.unwrap();
        for i in 0..60u64 {
            put(&engine, &format!("k{i:02}"), &body(i, [500, 6000, 9000][i as usize % 3])).await;
        }
        copy(&engine, "k01", "copy").await;
        for i in (0..60u64).filter(|i| i % 4 != 0) {
            engine.delete_object("b", &format!("k{i:02}")).await.unwrap();
        }
        engine.close().await.unwrap();
        drop(engine);
        let engine = Engine::open(cfg.clone()).unwrap();
        let expected = contents(&engine).await;

        sim.fail_after(step);
        let outcome = engine.compact(force()).await;
        sim.fail_after(0);
        drop(engine);
        sim.crash(0.5);
        let engine = Engine::open(cfg.clone()).unwrap_or_else(|e| panic!("step {step}: restart failed: {e}"));
        assert_eq!(contents(&engine).await, expected, "step {step}: contents after a crash during compaction");
        drop(engine);
        let mut rebuild = cfg.clone();
        rebuild.rebuild_index = true;
        let engine = Engine::open(rebuild).unwrap();
        assert_eq!(contents(&engine).await, expected, "step {step}: contents after an index rebuild");
        if outcome.is_ok() {
            break; // the disk lasted through the whole compaction: every step was covered
        }
        step += 1;
        assert!(step < 10_000, "compaction never finished");
    }
    assert!(step > 5, "too few failure points were exercised ({step})");
}

/// Every file under the data directory, read whole, does not contain `marker`.
fn marker_absent(dir: &Path, marker: &[u8]) -> Result<(), String> {
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(marker.len()).any(|w| w == marker)
        {
            return Err(format!("the marker is still in {}", path.display()));
        }
    }
    Ok(())
}

#[tokio::test]
async fn deleted_bytes_are_erased_by_compaction_and_by_the_deadline() {
    for by_deadline in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(config(dir.path())).unwrap();
        engine.create_bucket("b", 1).await.unwrap();
        let marker: Vec<u8> = body(rand_seed(), 32);
        for (key, len) in [("small", 100usize), ("big", 3 * CHUNK + 10)] {
            let mut data = body(9, len);
            data[len / 2..len / 2 + 32].copy_from_slice(&marker);
            put(&engine, key, &data).await;
        }
        put(&engine, "other", &body(10, 5000)).await;
        engine.delete_object("b", "small").await.unwrap();
        put(&engine, "big", b"overwritten").await;
        assert!(marker_absent(dir.path(), &marker).is_err(), "the marker is on disk before compaction");
        if by_deadline {
            // The background task's job: compaction passes with a short deadline and
            // a threshold the garbage never reaches.
            let options =
                CompactionOptions { dead_ratio_threshold: 1.1, erasure_deadline_ms: 400, ..Default::default() };
            let started = std::time::Instant::now();
            while marker_absent(dir.path(), &marker).is_err() {
                assert!(started.elapsed().as_secs() < 10, "the marker outlived the erasure deadline");
                engine.compact(options).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        } else {
            engine.compact(force()).await.unwrap();
        }
        marker_absent(dir.path(), &marker).unwrap();
        assert_eq!(read(&engine, "big").await.unwrap(), b"overwritten");
        assert_eq!(read(&engine, "other").await.unwrap(), body(10, 5000));
        assert_eq!(read(&engine, "small").await, None);
    }
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// The scale: 1 GB of objects (default chunk and segment sizes), 90% deleted,
/// one compaction: the segment files come back to within 10% of the live data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_90_percent_of_1_gb_and_compacting_returns_the_space() {
    const OBJECTS: u64 = 1000;
    const OBJECT_BYTES: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EngineConfig::new(dir.path());
    cfg.disk_reserve_bytes = 0;
    let engine = Engine::open(cfg).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    let block = Bytes::from(body(5, OBJECT_BYTES));
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let (engine, block) = (engine.clone(), block.clone());
        tasks.push(tokio::spawn(async move {
            for i in (t..OBJECTS).step_by(8) {
                let mut writer = engine.body_writer();
                writer.write(block.clone()).await.unwrap();
                let body = writer.finish().await.unwrap();
                engine.put_object(record(&format!("o{i:04}"), OBJECT_BYTES as u64), body).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for i in (0..OBJECTS).filter(|i| i % 10 != 0) {
        engine.delete_object("b", &format!("o{i:04}")).await.unwrap();
    }
    let before = segment_bytes(dir.path());
    let live_bytes = (OBJECTS / 10) * OBJECT_BYTES as u64;
    engine.compact(CompactionOptions { force: true, ..Default::default() }).await.unwrap();
    let after = segment_bytes(dir.path());
    eprintln!("1 GB test: {before} bytes of segments before, {after} after, {live_bytes} live");
    assert!(before >= OBJECTS * OBJECT_BYTES as u64, "all the data was written ({before} bytes)");
    assert!(
        after as f64 <= live_bytes as f64 * 1.10,
        "after deleting 90% and compacting: {after} bytes of segments for {live_bytes} live bytes"
    );
    let keep = read(&engine, "o0500").await.unwrap();
    assert_eq!(keep.len(), OBJECT_BYTES);
    assert_eq!(keep, block.to_vec());
    assert_eq!(read(&engine, "o0501").await, None);
}

/// Puts filler objects until the active segment is no longer `segment_id`; returns
/// the new active segment.
async fn fill_past(engine: &Engine, segment_id: u64, prefix: &str) -> u64 {
    for i in 0..100 {
        let key = format!("{prefix}{i:03}");
        put(engine, &key, &body(i, 5000)).await;
        let entry = engine.object("b", &key).unwrap().unwrap();
        let last = engine.index().chunk_location(entry.chunks.last().unwrap().lsn).unwrap().unwrap().segment_id;
        if last != segment_id {
            return last;
        }
    }
    panic!("segment {segment_id} never filled up");
}

/// Where the record of an inline object is.
fn inline_location(engine: &Engine, key: &str) -> storage_core::index::RecordLocation {
    let entry = engine.object("b", key).unwrap().unwrap();
    assert_eq!(entry.chunks.len(), 1, "{key} must be one record");
    engine.index().chunk_location(entry.chunks[0].lsn).unwrap().unwrap()
}

fn flip_byte(dir: &Path, location: storage_core::index::RecordLocation) {
    let path = dir.join("segments").join(storage_core::segment::segment_name(location.segment_id));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(location.offset + location.record_len / 2) as usize] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
}

/// One flipped byte in a sealed segment must not stop compaction: other segments are
/// compacted, and a damaged segment is rewritten around its damage when nothing live
/// is lost with it (else it is left as it is). Deleted bytes are erased either way.
#[tokio::test]
async fn a_damaged_record_does_not_stop_compaction_or_erasure() {
    // `live`: the damaged record is a live object (sidecar mode: found when copied).
    // `dead`: it is a deleted object's record in a segment without a sidecar (scan mode),
    // next to another deleted object whose bytes must go.
    for case in ["live", "dead"] {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(config(dir.path())).unwrap();
        engine.create_bucket("b", 1).await.unwrap();
        let marker: Vec<u8> = body(rand_seed(), 32);
        let mut secret = body(3, 3000);
        secret[1000..1032].copy_from_slice(&marker);

        put(&engine, "victim", &body(1, 100)).await;
        let victim = inline_location(&engine, "victim");
        if case == "dead" {
            put(&engine, "secret", &secret).await; // same segment as the victim
        }
        fill_past(&engine, victim.segment_id, "f").await;
        if case == "live" {
            put(&engine, "secret", &secret).await; // another segment
        }
        let secret_segment = inline_location(&engine, "secret").segment_id;
        fill_past(&engine, secret_segment.max(victim.segment_id + 1), "g").await;
        engine.delete_object("b", "secret").await.unwrap();
        if case == "dead" {
            engine.delete_object("b", "victim").await.unwrap();
        } else {
            // Dead bytes next to the damaged live record: its segment is wanted too.
            let f000 = engine.object("b", "f000").unwrap().unwrap().chunks[0].lsn;
            let f000 = engine.index().chunk_location(f000).unwrap().unwrap();
            assert_eq!(f000.segment_id, victim.segment_id, "f000 must be next to the victim");
            engine.delete_object("b", "f000").await.unwrap();
        }
        let expected = contents(&engine).await;
        // The catalog has taken in every record (it reads the log, and would stop at the damage).
        let flushing = engine.clone();
        tokio::task::spawn_blocking(move || flushing.flush_catalog()).await.unwrap().unwrap();
        flip_byte(dir.path(), victim);
        if case == "dead" {
            // Make the plan scan the segment (a sidecar would name the dead record
            // without compaction ever reading it).
            let sidecar = dir.path().join("segments").join(storage_core::sidecar::sidecar_name(victim.segment_id));
            let started = std::time::Instant::now();
            while !sidecar.exists() && started.elapsed().as_secs() < 5 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            let _ = std::fs::remove_file(&sidecar);
        }
        let counted_before = storage_core::EngineStats::get(&engine.stats().damaged_regions);

        let report = engine.compact(force()).await.unwrap_or_else(|e| panic!("{case}: compaction failed: {e}"));
        assert!(
            report.damaged_regions.iter().any(|r| r.contains(&format!("segment {} ", victim.segment_id))),
            "{case}: the damage in segment {} must be reported, got {:?}",
            victim.segment_id,
            report.damaged_regions
        );
        if let Err(e) = marker_absent(dir.path(), &marker) {
            panic!("{case}: a deleted object's bytes survived compaction: {e}");
        }
        if case == "dead" {
            assert!(
                report.segments_in.contains(&victim.segment_id),
                "dead: the damaged segment is rewritten around its damage: {report:?}"
            );
            assert!(
                storage_core::EngineStats::get(&engine.stats().damaged_regions) > counted_before,
                "dead: the damaged region is counted"
            );
        }
        // Everything else reads back exactly, before and after an index rebuild.
        let check = |engine: Engine, when: &'static str| {
            let expected = expected.clone();
            async move {
                for (key, want) in &expected {
                    if key == "victim" {
                        continue;
                    }
                    assert_eq!(read(&engine, key).await.as_ref(), Some(want), "{case} {when}: {key}");
                }
                assert_eq!(engine.object("b", "secret").unwrap(), None, "{case} {when}: secret stays deleted");
                if case == "dead" {
                    assert_eq!(engine.object("b", "victim").unwrap(), None, "{case} {when}: victim stays deleted");
                }
            }
        };
        check(engine.clone(), "after compaction").await;
        engine.close().await.unwrap();
        drop(engine);
        let mut cfg = config(dir.path());
        cfg.rebuild_index = true;
        let engine = Engine::open(cfg).unwrap();
        check(engine.clone(), "after an index rebuild").await;
        if let Err(e) = marker_absent(dir.path(), &marker) {
            panic!("{case}: after the rebuild: {e}");
        }
    }
}

/// Waits until segment `id` has its sidecar and returns its entries.
async fn sidecar_of(dir: &Path, id: u64) -> Vec<storage_core::sidecar::SidecarEntry> {
    let segments = storage_core::io::FsDir::new(dir.join("segments")).unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Some(entries) = storage_core::sidecar::read(&segments, id).unwrap() {
            return entries;
        }
        assert!(started.elapsed().as_secs() < 5, "no sidecar for segment {id}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A damaged tombstone that is still needed (an older record of its key survives in a
/// segment left as it is) is re-encoded from its sidecar, never dropped: the deleted
/// object does not come back, not even after an index rebuild.
#[tokio::test]
async fn a_damaged_needed_tombstone_is_kept_from_its_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    // Segment A: a live object (to be damaged, so A stays as it is) and the old "t".
    put(&engine, "victim", &body(1, 100)).await;
    let victim = inline_location(&engine, "victim");
    put(&engine, "t", &body(2, 100)).await;
    assert_eq!(inline_location(&engine, "t").segment_id, victim.segment_id, "t next to the victim");
    let tomb_segment = fill_past(&engine, victim.segment_id, "f").await;
    // Segment B: the tombstone of "t", and dead bytes so that B is rewritten.
    engine.delete_object("b", "t").await.unwrap();
    fill_past(&engine, tomb_segment, "g").await;
    engine.delete_object("b", "g000").await.unwrap();
    let entries = sidecar_of(dir.path(), tomb_segment).await;
    let tomb = entries
        .iter()
        .find(|e| matches!(e.entry().unwrap(), storage_core::log_entry::LogEntry::Tombstone { ref key, .. } if key == "t"))
        .unwrap_or_else(|| panic!("the tombstone of t must be in segment {tomb_segment}"));
    let flushing = engine.clone();
    tokio::task::spawn_blocking(move || flushing.flush_catalog()).await.unwrap().unwrap();
    flip_byte(dir.path(), victim);
    flip_byte(dir.path(), tomb.location);

    let report = engine.compact(force()).await.unwrap_or_else(|e| panic!("compaction failed: {e}"));
    assert!(report.segments_in.contains(&tomb_segment), "the tombstone's segment is rewritten: {report:?}");
    assert!(!report.segments_in.contains(&victim.segment_id), "the victim's segment stays: {report:?}");
    assert_eq!(engine.object("b", "t").unwrap(), None, "t stays deleted after compaction");
    engine.close().await.unwrap();
    drop(engine);
    for rebuild in [false, true] {
        let mut cfg = config(dir.path());
        cfg.rebuild_index = rebuild;
        let engine = Engine::open(cfg).unwrap();
        assert_eq!(engine.object("b", "t").unwrap(), None, "t stays deleted after a restart (rebuild {rebuild})");
        drop(engine);
    }
    assert!(
        report.damaged_regions.iter().any(|r| r.contains("re-encoded from the sidecar")),
        "the damaged tombstone must be reported as re-encoded, got {:?}",
        report.damaged_regions
    );
}

/// Completes a multipart upload of `parts` under `key`.
async fn multipart(engine: &Engine, key: &str, upload_id: &str, parts: &[Vec<u8>]) {
    let upload = UploadRecord {
        bucket: "b".into(),
        key: key.into(),
        upload_id: upload_id.into(),
        initiated_ms: 0,
        meta: ObjectMeta::default(),
        checksum_algorithm: None,
        checksum_type: None,
    };
    engine.create_upload(upload).await.unwrap();
    for (i, data) in parts.iter().enumerate() {
        let mut writer = engine.body_writer();
        writer.write(Bytes::copy_from_slice(data)).await.unwrap();
        let part = PartRecord {
            bucket: "b".into(),
            key: key.into(),
            upload_id: upload_id.into(),
            part_number: i as u32 + 1,
            size_bytes: data.len() as u64,
            etag: "p".into(),
            last_modified_ms: 0,
            checksum: None,
            chunks: Vec::new(),
            inline: false,
            sealed_data_key: None,
        };
        engine.put_part(part, writer.finish().await.unwrap()).await.unwrap();
    }
    let chunks = engine.index().parts("b", key, upload_id).unwrap().into_iter().flat_map(|p| p.part.chunks).collect();
    let size = parts.iter().map(|p| p.len() as u64).sum();
    let object = ObjectRecord { chunks, ..record(key, size) };
    engine.complete_upload(upload_id, object).await.unwrap();
}

/// Found by the model test's compaction step: compaction dropped the create record of a
/// completed upload (nothing current named it), so a rebuild refused the completion
/// (NoSuchUpload) and the object was gone.
#[tokio::test]
async fn a_completed_upload_survives_compaction_and_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    let parts = vec![body(1, 6000), body(2, 0), body(3, 100)];
    multipart(&engine, "mp", "u-1", &parts).await;
    for i in 0..40u64 {
        put(&engine, "churn", &body(i, 9000)).await; // dead bytes, so the segments are rewritten
    }
    engine.compact(force()).await.unwrap();
    let expected = contents(&engine).await;
    assert_eq!(expected.get("mp"), Some(&parts.concat()), "before the rebuild");
    engine.close().await.unwrap();
    drop(engine);
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(contents(&engine).await, expected, "after a rebuild from the compacted log");
}

/// Found by the model test: a rebuild left the applied position in the last segment that
/// held records, though a newer (empty) segment was active; compaction then replaced
/// that segment and the next start refused the store ("refers to segment … which is
/// missing").
#[tokio::test]
async fn compaction_after_a_rebuild_leaves_a_store_that_starts() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    for i in 0..30u64 {
        put(&engine, &format!("k{}", i % 3), &body(i, 9000)).await;
    }
    engine.roll().await.unwrap(); // the active segment is new and empty
    let expected = contents(&engine).await;
    engine.close().await.unwrap();
    drop(engine);
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    engine.compact(force()).await.unwrap();
    engine.close().await.unwrap();
    drop(engine);
    let engine = Engine::open(config(dir.path())).expect("the store starts after the compaction");
    assert_eq!(contents(&engine).await, expected);
}

/// Versions and compaction: noncurrent versions and delete markers are live (their bytes
/// stay, and a rebuild gives the same versions); a version deleted for good is dead.
#[tokio::test]
async fn noncurrent_versions_and_delete_markers_survive_compaction_and_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    put(&engine, "v", &body(100, 5000)).await; // the null version, from before versioning
    engine.set_bucket_versioning("b", storage_core::VersioningStatus::Enabled).await.unwrap();
    for i in 0..3u64 {
        put(&engine, "v", &body(i, 9000)).await;
    }
    engine.delete_object("b", "v").await.unwrap(); // a delete marker on top
    for i in 0..40u64 {
        put(&engine, "churn", &body(i, 9000)).await;
    }
    let versions = |engine: &Engine| {
        let query = storage_core::VersionQuery { max_keys: 1000, prefix: "v".into(), ..Default::default() };
        engine.list_object_versions("b", &query).unwrap().versions
    };
    let before = versions(&engine);
    assert_eq!(before.len(), 5, "a marker, three versions and the null version");
    assert!(before[0].1.delete_marker && before[0].2, "the latest is the marker");
    engine.compact(force()).await.unwrap();
    let read_version = |engine: Engine, entry: storage_core::ObjectEntry| async move {
        let mut reader = engine.read(&entry, 0..entry.meta.size_bytes);
        let mut out = Vec::new();
        while let Some(chunk) = reader.next_chunk().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    };
    let oldest = before[4].1.clone();
    assert_eq!(read_version(engine.clone(), oldest.clone()).await, body(100, 5000), "the null version's bytes");
    engine.close().await.unwrap();
    drop(engine);
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(versions(&engine), before, "versions after compaction and a rebuild");

    // Deleting the null version for good makes its bytes dead: compaction erases them.
    engine.delete_version("b", "v", storage_core::VersionId::Null, None, false, None).await.unwrap();
    let report = engine.compact(force()).await.unwrap();
    assert!(report.records_dropped > 0, "the deleted version's records go: {report:?}");
    assert_eq!(versions(&engine), before[..4].to_vec(), "the other versions stay");
    assert!(engine.version("b", "v", storage_core::VersionId::Null).unwrap().is_none());
}
