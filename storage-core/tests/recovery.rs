//! Recovery on real files: rebuilds from sidecars and from scans agree, bad sidecars
//! fall back to scanning, damage in sealed segments is reported and contained.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::Path;
use storage_core::segment::{list_segments, segment_name};
use storage_core::sidecar::sidecar_name;
use storage_core::{Engine, EngineConfig, EngineStats, ListQuery, ObjectMeta, ObjectRecord};

fn config(dir: &Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.chunk_size_bytes = 4096;
    config.segment_size_limit_bytes = 64 * 1024;
    config
}

fn body(i: usize) -> Vec<u8> {
    let len = [10, 700, 5000, 13000][i % 4];
    (0..len).map(|j| (j as u8) ^ (i as u8).wrapping_mul(7)).collect()
}

async fn put(engine: &Engine, key: &str, data: &[u8]) {
    let mut writer = engine.body_writer();
    writer.write(Bytes::copy_from_slice(data)).await.unwrap();
    let body = writer.finish().await.unwrap();
    let record = ObjectRecord::new(
        "b",
        key,
        ObjectMeta { size_bytes: data.len() as u64, etag: "e".into(), ..Default::default() },
    );
    engine.put_object(record, body).await.unwrap();
}

async fn read(engine: &Engine, key: &str) -> storage_core::Result<Option<Vec<u8>>> {
    let Some(entry) = engine.object("b", key)? else { return Ok(None) };
    let mut reader = engine.read(&entry, 0..entry.meta.size_bytes);
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(Some(out))
}

/// Every key with its bytes.
async fn contents(engine: &Engine) -> BTreeMap<String, Vec<u8>> {
    let page = engine.list_objects("b", &ListQuery { max_keys: 100_000, ..Default::default() }).unwrap();
    let mut out = BTreeMap::new();
    for (key, _) in page.objects {
        let data = read(engine, &key).await.unwrap().unwrap();
        out.insert(key, data);
    }
    out
}

/// Writes 300 objects over many segments, overwrites and deletes some, and closes.
async fn populate(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let engine = Engine::open(config(dir)).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    for i in 0..300 {
        put(&engine, &format!("k{i:04}"), &body(i)).await;
    }
    for i in (0..300).step_by(7) {
        engine.delete_object("b", &format!("k{i:04}")).await.unwrap();
    }
    for i in (1..300).step_by(11) {
        put(&engine, &format!("k{i:04}"), &body(i + 1)).await;
    }
    let expected = contents(&engine).await;
    engine.close().await.unwrap();
    drop(engine); // joins the sidecar builder
    expected
}

fn segments(dir: &Path) -> Vec<u64> {
    list_segments(&storage_core::io::FsDir::new(dir.join("segments")).unwrap()).unwrap()
}

#[tokio::test]
async fn rebuild_from_sidecars_equals_rebuild_by_scan() {
    let dir = tempfile::tempdir().unwrap();
    let expected = populate(dir.path()).await;
    let ids = segments(dir.path());
    assert!(ids.len() > 5, "the test needs many sealed segments, got {}", ids.len());
    for id in &ids[..ids.len() - 1] {
        assert!(dir.path().join("segments").join(sidecar_name(*id)).exists(), "sealed segment {id} has no sidecar");
    }

    // Rebuild with sidecars.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(
        EngineStats::get(&engine.stats().sidecar_hits),
        ids.len() as u64 - 1,
        "every sealed segment via sidecar"
    );
    assert_eq!(EngineStats::get(&engine.stats().sidecar_misses), 0);
    assert_eq!(contents(&engine).await, expected, "rebuild via sidecars");
    drop(engine);

    // Rebuild by scanning: no sidecars.
    for id in &ids {
        let _ = std::fs::remove_file(dir.path().join("segments").join(sidecar_name(*id)));
    }
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(EngineStats::get(&engine.stats().sidecar_hits), 0);
    assert_eq!(EngineStats::get(&engine.stats().sidecar_misses), ids.len() as u64 - 1);
    assert_eq!(contents(&engine).await, expected, "rebuild by scan");
    drop(engine);
    // ...and the missing sidecars were written again in the background.
    for id in &ids[..ids.len() - 1] {
        assert!(dir.path().join("segments").join(sidecar_name(*id)).exists(), "sidecar of {id} rebuilt");
    }
}

#[tokio::test]
async fn corrupt_truncated_or_foreign_sidecars_fall_back_to_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let expected = populate(dir.path()).await;
    let ids = segments(dir.path());
    let seg_dir = dir.path().join("segments");
    // Flip a byte in one, truncate another, give a third the sidecar of a fourth.
    let flipped = seg_dir.join(sidecar_name(ids[0]));
    let mut bytes = std::fs::read(&flipped).unwrap();
    bytes[20] ^= 0xFF;
    std::fs::write(&flipped, bytes).unwrap();
    let truncated = seg_dir.join(sidecar_name(ids[1]));
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::copy(seg_dir.join(sidecar_name(ids[3])), seg_dir.join(sidecar_name(ids[2]))).unwrap();

    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(EngineStats::get(&engine.stats().sidecar_misses), 3, "three bad sidecars");
    assert_eq!(contents(&engine).await, expected);
}

/// A sidecar with a valid checksum whose entry goes bad midway (a header that does not
/// decode): the entries before it are applied once, and the segment is scanned from
/// that entry on, so the rebuild still equals the log.
#[tokio::test]
async fn a_sidecar_that_goes_bad_midway_is_resumed_by_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let expected = populate(dir.path()).await;
    let ids = segments(dir.path());
    let segments_dir = storage_core::io::FsDir::new(dir.path().join("segments")).unwrap();
    let mut entries = storage_core::sidecar::read(&segments_dir, ids[1]).unwrap().expect("a sidecar");
    assert!(entries.len() >= 3, "the test needs a sidecar of 3 entries or more, got {}", entries.len());
    let middle = entries.len() / 2;
    entries[middle].header = Bytes::from(vec![b'x'; entries[middle].header.len()]);
    std::fs::write(dir.path().join("segments").join(sidecar_name(ids[1])), storage_core::sidecar::encode(&entries))
        .unwrap();

    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(EngineStats::get(&engine.stats().sidecar_misses), 1, "one sidecar went bad");
    assert_eq!(EngineStats::get(&engine.stats().sidecar_hits), ids.len() as u64 - 2, "the others were used");
    assert_eq!(contents(&engine).await, expected);
}

#[tokio::test]
async fn damage_in_a_sealed_segment_is_contained_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let expected = populate(dir.path()).await;
    // Flip a byte inside a chunk of a live object ("k0002": 13000 bytes, never
    // overwritten or deleted) in a sealed segment.
    let location = {
        let engine = Engine::open(config(dir.path())).unwrap();
        let entry = engine.object("b", "k0002").unwrap().expect("k0002 is live");
        engine.index().chunk_location(entry.chunks[1].lsn).unwrap().unwrap()
    };
    let ids = segments(dir.path());
    assert_ne!(location.segment_id, *ids.last().unwrap(), "the chunk must be in a sealed segment");
    let path = dir.path().join("segments").join(segment_name(location.segment_id));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(location.offset + location.record_len / 2) as usize] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();

    for rebuild in [false, true] {
        let mut config = config(dir.path());
        config.rebuild_index = rebuild;
        let engine = Engine::open(config).expect("damage in a sealed segment does not stop the server");
        let report = tokio::task::spawn_blocking({
            let engine = engine.clone();
            move || engine.scrub(None)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(report.damaged.len(), 1, "one damaged region: {report}");
        assert_eq!(report.damaged[0].segment_id, location.segment_id);
        assert_eq!(report.damaged_objects, vec![("b".to_owned(), "k0002".to_owned())], "{report}");
        let mut errors = 0;
        for (key, want) in &expected {
            match read(&engine, key).await {
                Ok(Some(got)) => assert_eq!(&got, want, "{key}: an undamaged object reads back exactly"),
                Ok(None) => panic!("{key} vanished (rebuild {rebuild})"),
                Err(e) => {
                    errors += 1;
                    assert!(
                        report.damaged_objects.iter().any(|(_, k)| k == key),
                        "{key} failed to read ({e}) but scrub did not name it"
                    );
                }
            }
        }
        assert_eq!(errors, 1, "reading the damaged object must fail, not return wrong bytes");
        assert!(EngineStats::get(&engine.stats().corrupt_reads) >= 1);
        drop(engine);
    }
}

#[tokio::test]
async fn a_second_engine_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Engine::open(config(dir.path())).unwrap();
    let second = Engine::open(config(dir.path()));
    let message = second.err().expect("the second open must fail").to_string();
    assert!(message.contains("another quarry process"), "unclear message: {message}");
}
