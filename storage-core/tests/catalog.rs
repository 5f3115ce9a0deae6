//! The Parquet catalog: changes show up in the journal and inventory within seconds,
//! a crash loses and doubles no journal row, catalog compaction keeps the inventory,
//! and segment compaction never rewrites changes the catalog has not taken in.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use storage_core::catalog::{Catalog, CatalogConfig};
use storage_core::{CompactionOptions, Engine, EngineConfig, ObjectMeta, ObjectRecord};

fn config(dir: &Path, flush_interval_ms: u64) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.chunk_size_bytes = 4096;
    config.segment_size_limit_bytes = 64 * 1024;
    config.disk_reserve_bytes = 0;
    config.catalog = Some(CatalogConfig { flush_interval_ms, ..Default::default() });
    config
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn put(engine: &Engine, key: &str, len: usize) {
    put_at(engine, key, len, now_ms()).await
}

async fn put_at(engine: &Engine, key: &str, len: usize, last_modified_ms: i64) {
    let mut writer = engine.body_writer();
    writer.write(Bytes::from(vec![7u8; len])).await.unwrap();
    let body = writer.finish().await.unwrap();
    let mut meta = ObjectMeta {
        size_bytes: len as u64,
        etag: format!("etag-{key}-{len}"),
        last_modified_ms,
        ..Default::default()
    };
    meta.user_metadata.insert("owner".into(), format!("team-{}", len % 3));
    meta.content_type = Some("text/plain".into());
    let record = ObjectRecord::new("b", key, meta);
    engine.put_object(record, body).await.unwrap();
}

fn catalog(engine: &Engine) -> &Catalog {
    engine.catalog().expect("the catalog is on")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_the_inventory_within_five_seconds() {
    let dir = tempfile::tempdir().unwrap();
    // The default flush interval, as the server runs it.
    let engine = Engine::open(config(dir.path(), CatalogConfig::default().flush_interval_ms)).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    put(&engine, "fresh", 1234).await;
    let acknowledged = Instant::now();
    while !catalog(&engine).inventory().unwrap().contains_key(&("b".to_owned(), "fresh".to_owned())) {
        assert!(acknowledged.elapsed() < Duration::from_secs(5), "PUT not in the inventory 5 s after its ack");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = catalog(&engine).inventory().unwrap()[&("b".to_owned(), "fresh".to_owned())].clone();
    assert_eq!(
        (row.size, row.etag.as_str(), row.content_type.as_deref()),
        (1234, "etag-fresh-1234", Some("text/plain"))
    );
    assert_eq!(row.user_metadata.get("owner").map(String::as_str), Some("team-1"));

    engine.delete_object("b", "fresh").await.unwrap();
    let deleted = Instant::now();
    while catalog(&engine).inventory().unwrap().contains_key(&("b".to_owned(), "fresh".to_owned())) {
        assert!(deleted.elapsed() < Duration::from_secs(5), "deleted key still in the inventory 5 s after the DELETE");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let journal = catalog(&engine).journal().unwrap();
    let kinds: Vec<&str> = journal.iter().map(|r| r.record_type.as_str()).collect();
    assert_eq!(kinds, ["CREATE", "DELETE"]);
}

/// The journal holds each change exactly once, in LSN order.
fn assert_exactly_once(engine: &Engine, puts: usize, deletes: usize, what: &str) {
    let journal = catalog(engine).journal().unwrap();
    let lsns: Vec<u64> = journal.iter().map(|r| r.sequence_number).collect();
    let mut unique = lsns.clone();
    unique.dedup();
    assert_eq!(unique.len(), lsns.len(), "{what}: doubled journal rows");
    assert!(lsns.windows(2).all(|w| w[0] < w[1]), "{what}: journal out of LSN order");
    let creates = journal.iter().filter(|r| r.record_type == "CREATE").count();
    let removals = journal.iter().filter(|r| r.record_type == "DELETE").count();
    assert_eq!((creates, removals), (puts, deletes), "{what}: journal rows (CREATE, DELETE)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_and_doubles_no_journal_row() {
    let dir = tempfile::tempdir().unwrap();
    // A flush interval far away: the test decides when the catalog flushes.
    let cfg = config(dir.path(), 3_600_000);
    {
        let engine = Engine::open(cfg.clone()).unwrap();
        engine.create_bucket("b", 1).await.unwrap();
        for i in 0..50 {
            put(&engine, &format!("k{i:02}"), 100 + i).await;
        }
        engine.flush_catalog().unwrap();
        for i in 50..100 {
            put(&engine, &format!("k{i:02}"), 100 + i).await;
        }
        for i in 0..10 {
            engine.delete_object("b", &format!("k{i:02}")).await.unwrap();
        }
        // Crash: the engine goes without flushing the catalog (the log has it all).
    }
    // A crash between writing a catalog file and the manifest leaves an orphan.
    std::fs::write(dir.path().join("catalog/journal/00000000000000000001-00000000000000999999.parquet"), b"partial")
        .unwrap();
    let engine = Engine::open(cfg.clone()).unwrap();
    assert!(
        !dir.path().join("catalog/journal/00000000000000000001-00000000000000999999.parquet").exists(),
        "an orphan catalog file survived the restart"
    );
    let written = engine.flush_catalog().unwrap();
    assert_eq!(written, 60, "changes replayed from the log after the crash");
    assert_exactly_once(&engine, 100, 10, "after crash and replay");
    let inventory = catalog(&engine).inventory().unwrap();
    let keys: Vec<String> = inventory.keys().map(|(_, k)| k.clone()).collect();
    let expected: Vec<String> = (10..100).map(|i| format!("k{i:02}")).collect();
    assert_eq!(keys, expected, "inventory after crash and replay");
    assert_eq!(engine.flush_catalog().unwrap(), 0, "a second flush finds nothing new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_compaction_keeps_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path(), 3_600_000)).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    for round in 0..5 {
        for i in 0..40 {
            put(&engine, &format!("k{i:02}"), 10 * round + i).await;
        }
        for i in (round..40).step_by(7) {
            engine.delete_object("b", &format!("k{i:02}")).await.unwrap();
        }
        engine.flush_catalog().unwrap();
    }
    let before: BTreeMap<_, _> = catalog(&engine).inventory().unwrap();
    let journal_before = catalog(&engine).journal().unwrap();
    let files_before = catalog(&engine).files().len();
    catalog(&engine).compact().unwrap();
    assert_eq!(catalog(&engine).inventory().unwrap(), before, "inventory before == after catalog compaction");
    let journal_after = catalog(&engine).journal().unwrap();
    assert_eq!(journal_after.len(), journal_before.len(), "journal rows before and after catalog compaction");
    if let Some((i, (a, b))) = journal_after.iter().zip(&journal_before).enumerate().find(|(_, (a, b))| a != b) {
        panic!("journal row {i} changed by catalog compaction: before {b:?}, after {a:?}");
    }
    let files_after = catalog(&engine).files();
    assert_eq!(files_after.len(), 2, "one base and one journal file remain (was {files_before}): {files_after:?}");
    // Reopening reads the same.
    drop(engine);
    let engine = Engine::open(config(dir.path(), 3_600_000)).unwrap();
    assert_eq!(catalog(&engine).inventory().unwrap(), before, "after a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_compaction_never_rewrites_what_the_catalog_has_not_taken_in() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path(), 3_600_000)).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    let (mut puts, mut deletes) = (0, 0);
    for round in 0..3 {
        for i in 0..60 {
            put(&engine, &format!("r{round}-k{i:02}"), 3000).await;
            puts += 1;
        }
        for i in 0..55 {
            engine.delete_object("b", &format!("r{round}-k{i:02}")).await.unwrap();
            deletes += 1;
        }
        // No flush by the test: compaction must bring the catalog up to date first.
        let report = engine.compact(CompactionOptions { force: true, ..Default::default() }).await.unwrap();
        assert!(!report.segments_in.is_empty(), "round {round}: something was compacted");
        assert_exactly_once(&engine, puts, deletes, &format!("after compaction round {round}"));
    }
    let inventory = catalog(&engine).inventory().unwrap();
    assert_eq!(inventory.len(), 15, "5 live keys per round");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_rows_past_retention_go_at_compaction_and_the_inventory_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 3_600_000);
    cfg.catalog = Some(CatalogConfig {
        flush_interval_ms: 3_600_000,
        journal_retention_ms: 24 * 60 * 60 * 1000,
        ..Default::default()
    });
    let engine = Engine::open(cfg).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    let two_days_ago = now_ms() - 2 * 24 * 60 * 60 * 1000;
    put_at(&engine, "old", 10, two_days_ago).await;
    put(&engine, "new", 20).await;
    engine.flush_catalog().unwrap();
    catalog(&engine).compact().unwrap();
    let journal: Vec<String> = catalog(&engine).journal().unwrap().into_iter().map(|r| r.key).collect();
    assert_eq!(journal, ["new"], "journal after compaction with a one-day retention");
    let inventory: Vec<String> = catalog(&engine).inventory().unwrap().into_keys().map(|(_, k)| k).collect();
    assert_eq!(inventory, ["new", "old"], "the inventory keeps live objects whatever their age");
}

/// A failure (the process dying) at every file operation of a catalog compaction in
/// turn: after a restart the inventory and the journal are exactly what they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_step_of_catalog_compaction_leaves_the_same_catalog() {
    let mut step = 0u64;
    loop {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(config(dir.path(), 3_600_000)).unwrap();
        engine.create_bucket("b", 1).await.unwrap();
        for round in 0..3 {
            for i in 0..20 {
                put(&engine, &format!("k{i:02}"), 10 * round + i).await;
            }
            for i in (round..20).step_by(5) {
                engine.delete_object("b", &format!("k{i:02}")).await.unwrap();
            }
            engine.flush_catalog().unwrap();
        }
        let inventory = catalog(&engine).inventory().unwrap();
        let journal = catalog(&engine).journal().unwrap();

        catalog(&engine).fail_after(step);
        let outcome = catalog(&engine).compact();
        drop(engine); // the process dies here
        let engine = Engine::open(config(dir.path(), 3_600_000)).unwrap();
        assert_eq!(
            catalog(&engine).inventory().unwrap(),
            inventory,
            "step {step}: inventory after a failure and restart"
        );
        let after = catalog(&engine).journal().unwrap();
        assert_eq!(after.len(), journal.len(), "step {step}: journal rows after a failure and restart");
        assert!(after == journal, "step {step}: journal rows changed after a failure and restart");
        if outcome.is_ok() {
            break;
        }
        step += 1;
        assert!(step < 1000, "catalog compaction never completed");
    }
    assert!(step > 5, "too few failure points were exercised ({step})");
}

/// "Every few seconds or N changes": with a long interval, a burst of changes is
/// flushed as soon as enough of them wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_is_flushed_before_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 3_600_000);
    cfg.catalog = Some(CatalogConfig { flush_interval_ms: 3_600_000, flush_after_changes: 20, ..Default::default() });
    let engine = Engine::open(cfg).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    for i in 0..30 {
        put(&engine, &format!("burst-{i:02}"), 10).await;
    }
    let started = Instant::now();
    while catalog(&engine).journal().unwrap().len() < 20 {
        assert!(started.elapsed() < Duration::from_secs(5), "20+ waiting changes were not flushed within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_a_query_pinned_outlive_catalog_compaction_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    // A long interval: only explicit flushes run.
    let engine = Engine::open(config(dir.path(), 3_600_000)).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    for i in 0..3 {
        put(&engine, &format!("k{i}"), 10).await;
        engine.flush_catalog().unwrap();
    }
    let snapshot = catalog(&engine).snapshot();
    assert!(snapshot.files.len() >= 3, "three flushes, three files at least: {:?}", snapshot.files);
    engine.compact_catalog().unwrap();
    let catalog_dir = catalog(&engine).dir().to_path_buf();
    for file in &snapshot.files {
        assert!(catalog_dir.join(file).exists(), "{file} was removed while a snapshot pinned it");
    }
    assert!(catalog(&engine).files().iter().all(|f| !snapshot.files.contains(f)), "compaction replaced every file");
    drop(snapshot);
    put(&engine, "after", 10).await;
    engine.flush_catalog().unwrap();
    for file in catalog(&engine).files() {
        assert!(catalog_dir.join(&file).exists(), "{file} is named by the manifest");
    }
    let on_disk = std::fs::read_dir(catalog_dir.join("inventory")).unwrap().count()
        + std::fs::read_dir(catalog_dir.join("journal")).unwrap().count();
    assert_eq!(on_disk, catalog(&engine).files().len(), "replaced files go once no snapshot pins them");
}

/// Where the record of an inline object is.
fn inline_location(engine: &Engine, key: &str) -> storage_core::index::RecordLocation {
    let entry = engine.object("b", key).unwrap().unwrap();
    assert_eq!(entry.chunks.len(), 1, "{key} must be one record");
    engine.index().chunk_location(entry.chunks[0].lsn).unwrap().unwrap()
}

/// One flipped byte in a sealed segment the catalog has not taken in yet: the flusher
/// skips the damaged record, reports its region, and takes in the records after it (in
/// the same segment and later), and every later write still reaches the catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_does_not_stop_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    // A long interval: only explicit flushes run.
    let engine = Engine::open(config(dir.path(), 3_600_000)).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    put(&engine, "before", 100).await;
    put(&engine, "victim", 100).await;
    let victim = inline_location(&engine, "victim");
    put(&engine, "after", 100).await;
    assert_eq!(inline_location(&engine, "after").segment_id, victim.segment_id, "after must share the segment");
    // Seal the victim's segment.
    let mut i = 0;
    loop {
        put(&engine, &format!("fill{i:03}"), 3000).await;
        if inline_location(&engine, &format!("fill{i:03}")).segment_id != victim.segment_id {
            break;
        }
        i += 1;
        assert!(i < 100, "segment {} never filled up", victim.segment_id);
    }

    let path = dir.path().join("segments").join(storage_core::segment::segment_name(victim.segment_id));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(victim.offset + victim.record_len / 2) as usize] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();

    engine.flush_catalog().unwrap();
    put(&engine, "later", 100).await;
    engine.flush_catalog().unwrap();
    let inventory = catalog(&engine).inventory().unwrap();
    for key in ["before", "after", "later", &format!("fill{i:03}")] {
        assert!(inventory.contains_key(&("b".to_owned(), key.to_owned())), "{key} is not in the inventory");
    }
    assert!(!inventory.contains_key(&("b".to_owned(), "victim".to_owned())), "the damaged record was read");
    let regions = catalog(&engine).damaged_regions();
    assert!(
        regions.iter().any(|r| r.starts_with(&format!("segment {} bytes {}..", victim.segment_id, victim.offset))),
        "the damaged region must be reported, got {regions:?}"
    );
    assert_eq!(engine.flush_catalog().unwrap(), 0, "a second flush finds nothing new");
}

/// Versions, delete markers, tags and locks reach the journal and the inventory, named
/// as the API names them, and the versioning state the flusher follows survives a
/// restart (it is in the manifest, with the LSN it is as of).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_markers_tags_and_locks_reach_the_catalog() {
    use storage_core::{LockMode, Retention, VersionId, VersioningStatus};
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path(), 3_600_000)).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    put(&engine, "plain", 1).await; // never versioned: no version id
    engine.set_bucket_versioning("b", VersioningStatus::Enabled).await.unwrap();
    put(&engine, "k", 2).await;
    let first = engine.object("b", "k").unwrap().unwrap().version_id().to_string();
    engine.flush_catalog().unwrap();
    engine.close().await.unwrap();
    drop(engine);

    // The second half runs in a new process life: the flusher resumes with the
    // bucket's state from the manifest.
    let engine = Engine::open(config(dir.path(), 3_600_000)).unwrap();
    put(&engine, "k", 3).await;
    let second = engine.object("b", "k").unwrap().unwrap().version_id().to_string();
    assert_ne!(first, second);
    let tags = BTreeMap::from([("project".to_owned(), "x".to_owned())]);
    engine.set_object_tags("b", "k", None, tags.clone()).await.unwrap();
    let first_id = VersionId::parse(&first).unwrap();
    engine.set_object_tags("b", "k", Some(first_id), BTreeMap::new()).await.unwrap();
    let until_ms = now_ms() + 3_600_000;
    let retention = Retention { mode: LockMode::Governance, retain_until_ms: until_ms };
    let refused = engine.set_retention("b", "k", None, Some(retention), false).await;
    assert!(refused.is_err(), "retention in a bucket without object lock is refused");
    assert!(engine.set_legal_hold("b", "k", None, true).await.is_err(), "and so is a legal hold");
    engine.delete_object("b", "k").await.unwrap(); // a delete marker
    engine.set_bucket_versioning("b", VersioningStatus::Suspended).await.unwrap();
    put(&engine, "k", 4).await; // the null version, current again
    engine
        .create_bucket_with("locked", 1, storage_core::NewBucket { object_lock: true, ..Default::default() })
        .await
        .unwrap();
    let mut writer = engine.body_writer();
    writer.write(Bytes::from_static(b"x")).await.unwrap();
    let body = writer.finish().await.unwrap();
    let meta = ObjectMeta { size_bytes: 1, etag: "e".into(), last_modified_ms: now_ms(), ..Default::default() };
    engine.put_object(ObjectRecord::new("locked", "l", meta), body).await.unwrap();
    engine.set_retention("locked", "l", None, Some(retention), false).await.unwrap();
    engine.set_legal_hold("locked", "l", None, true).await.unwrap();
    engine.flush_catalog().unwrap();

    let journal = catalog(&engine).journal().unwrap();
    let summary: Vec<(&str, &str, Option<&str>, bool)> = journal
        .iter()
        .map(|r| (r.record_type.as_str(), r.key.as_str(), r.version_id.as_deref(), r.is_delete_marker))
        .collect();
    let locked_id = engine.object("locked", "l").unwrap().unwrap().version_id().to_string();
    let marker = journal.iter().find(|r| r.record_type == "DELETE").unwrap().sequence_number;
    let marker = VersionId::Lsn(marker).to_string();
    assert_eq!(
        summary,
        [
            ("CREATE", "plain", None, false),
            ("CREATE", "k", Some(first.as_str()), false),
            ("CREATE", "k", Some(second.as_str()), false),
            ("UPDATE_TAGS", "k", Some(second.as_str()), false),
            ("UPDATE_TAGS", "k", Some(first.as_str()), false),
            ("DELETE", "k", Some(marker.as_str()), true),
            ("CREATE", "k", Some("null"), false),
            ("CREATE", "l", Some(locked_id.as_str()), false),
            ("UPDATE_RETENTION", "l", Some(locked_id.as_str()), false),
            ("UPDATE_LEGAL_HOLD", "l", Some(locked_id.as_str()), false),
        ],
        "the journal: (type, key, version id, delete marker)"
    );
    let tagged = journal.iter().find(|r| r.record_type == "UPDATE_TAGS").unwrap();
    assert_eq!(tagged.tags.as_ref(), Some(&tags));
    let held = journal.iter().find(|r| r.record_type == "UPDATE_LEGAL_HOLD").unwrap();
    assert_eq!(held.lock.legal_hold, Some(true));

    let inventory = catalog(&engine).inventory().unwrap();
    let k = &inventory[&("b".to_owned(), "k".to_owned())];
    assert_eq!((k.version_id.as_deref(), k.size, k.tags.as_ref()), (Some("null"), 4, Some(&BTreeMap::new())));
    let plain = &inventory[&("b".to_owned(), "plain".to_owned())];
    assert_eq!(plain.version_id, None, "a version made before versioning has no id");
    let l = &inventory[&("locked".to_owned(), "l".to_owned())];
    assert_eq!(
        (l.lock.mode.as_deref(), l.lock.retain_until_ms, l.lock.legal_hold),
        (Some("GOVERNANCE"), Some(until_ms), Some(true)),
        "the inventory carries the current version's lock"
    );
}
