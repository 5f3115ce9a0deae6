//! Engine-level tests: the API over a real data directory, with restarts.

use bytes::Bytes;
use storage_core::{Body, Engine, EngineConfig, Error, ListQuery, ObjectMeta, ObjectRecord, Rejection};

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.chunk_size_bytes = 1024;
    config.segment_size_limit_bytes = 64 * 1024;
    config
}

fn record(bucket: &str, key: &str, size: u64) -> ObjectRecord {
    ObjectRecord::new(bucket, key, ObjectMeta { size_bytes: size, etag: format!("etag-{key}"), ..Default::default() })
}

async fn put(engine: &Engine, bucket: &str, key: &str, data: &[u8]) {
    let mut writer = engine.body_writer();
    for piece in data.chunks(700) {
        writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    let body = writer.finish().await.unwrap();
    engine.put_object(record(bucket, key, data.len() as u64), body).await.unwrap();
}

async fn get(engine: &Engine, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let entry = engine.object(bucket, key).unwrap()?;
    let mut reader = engine.read(&entry, 0..entry.meta.size_bytes);
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    Some(out)
}

fn body(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test]
async fn objects_survive_restart_and_deletes_stay_deleted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(config(dir.path())).unwrap();
        engine.create_bucket("b", 1).await.unwrap();
        for i in 0..50u8 {
            put(&engine, "b", &format!("k{i:02}"), &body(i, i as usize * 211)).await;
        }
        engine.delete_object("b", "k07").await.unwrap();
        put(&engine, "b", "k08", b"overwritten").await;
        // no close(): simulate a crash as far as the index is concerned
        drop(engine);
    }
    let engine = Engine::open(config(dir.path())).unwrap();
    for i in 0..50u8 {
        let key = format!("k{i:02}");
        let want = match i {
            7 => None,
            8 => Some(b"overwritten".to_vec()),
            _ => Some(body(i, i as usize * 211)),
        };
        assert_eq!(get(&engine, "b", &key).await, want, "content of {key} after restart");
    }
    let segments = storage_core::io::FsDir::new(dir.path().join("segments")).unwrap();
    assert!(storage_core::segment::list_segments(&segments).unwrap().len() > 1, "segments rolled");
}

#[tokio::test]
async fn index_rebuilt_from_log_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(config(dir.path())).unwrap();
        engine.create_bucket("b", 1).await.unwrap();
        put(&engine, "b", "a", &body(1, 5000)).await;
        put(&engine, "b", "small", b"x").await;
        engine.close().await.unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(get(&engine, "b", "a").await, Some(body(1, 5000)));
    assert_eq!(get(&engine, "b", "small").await, Some(b"x".to_vec()));
}

#[tokio::test]
async fn torn_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(config(dir.path())).unwrap();
        engine.create_bucket("b", 1).await.unwrap();
        put(&engine, "b", "a", b"hello").await;
        engine.close().await.unwrap();
    }
    let segments = storage_core::io::FsDir::new(dir.path().join("segments")).unwrap();
    let last = *storage_core::segment::list_segments(&segments).unwrap().last().unwrap();
    let path = dir.path().join("segments").join(storage_core::segment::segment_name(last));
    let mut bytes = std::fs::read(&path).unwrap();
    let good_len = bytes.len();
    bytes.extend_from_slice(b"QRY1\x02\0\0\0garbage-torn-record");
    std::fs::write(&path, &bytes).unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, good_len, "torn tail cut off");
    assert_eq!(get(&engine, "b", "a").await, Some(b"hello".to_vec()));
    put(&engine, "b", "after", b"more").await;
    assert_eq!(get(&engine, "b", "after").await, Some(b"more".to_vec()));
}

#[tokio::test]
async fn rejections_and_listing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let err = engine.put_object(record("nope", "k", 0), Body::Inline(Bytes::new())).await.unwrap_err();
    assert!(matches!(err, Error::Rejected(Rejection::NoSuchBucket)), "got {err:?}");
    engine.create_bucket("b", 1).await.unwrap();
    let err = engine.create_bucket("b", 2).await.unwrap_err();
    assert!(matches!(err, Error::Rejected(Rejection::BucketAlreadyExists)), "got {err:?}");
    for key in ["a/1", "a/2", "b/1", "c", "d/e/f"] {
        put(&engine, "b", key, key.as_bytes()).await;
    }
    let err = engine.delete_bucket("b").await.unwrap_err();
    assert!(matches!(err, Error::Rejected(Rejection::BucketNotEmpty)), "got {err:?}");
    let q = ListQuery { delimiter: Some("/".into()), max_keys: 1000, ..Default::default() };
    let page = engine.list_objects("b", &q).unwrap();
    let keys: Vec<_> = page.objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["c"]);
    assert_eq!(page.common_prefixes, ["a/", "b/", "d/"]);
    let q =
        ListQuery { delimiter: Some("/".into()), max_keys: 2, start_after: Some("a/".into()), ..Default::default() };
    let page = engine.list_objects("b", &q).unwrap();
    assert_eq!(page.common_prefixes, ["b/"]);
    assert_eq!(page.objects.len(), 1);
    assert!(page.is_truncated);
    assert_eq!(page.last.as_deref(), Some("c"));
}

/// The index layouts a data directory may hold from earlier versions.
#[derive(Debug, Clone, Copy)]
enum OldIndex {
    /// sled, as layouts 1 (no `Mformat`) and 2 wrote it.
    Sled { version: Option<u32> },
    /// this store, stamped with another layout version (or none).
    Stamped { version: Option<u32> },
}

/// Replaces the index in `dir` with one of `old` layout that holds a bucket the log
/// never created: if it were read instead of rebuilt, "ghost" would show up.
fn make_old_index(dir: &std::path::Path, old: OldIndex) {
    use storage_core::index::IndexKey;
    let ghost = IndexKey::Bucket { bucket: b"ghost".to_vec() }.encode();
    let ghost_value = br#"{"created_ms":1,"lsn":1}"#.as_slice();
    match old {
        OldIndex::Sled { version } => {
            std::fs::remove_dir_all(dir.join("index")).unwrap();
            let db = sled::open(dir.join("index")).unwrap();
            let tree = db.open_tree("index").unwrap();
            tree.insert(ghost, ghost_value).unwrap();
            if let Some(v) = version {
                tree.insert(b"Mformat", &v.to_be_bytes()).unwrap();
            }
            db.flush().unwrap();
            assert!(dir.join("index/conf").is_file() && dir.join("index/db").is_file(), "sled's own files");
        }
        OldIndex::Stamped { version } => {
            let db = fjall::Database::builder(dir.join("index")).open().unwrap();
            let tree = db.keyspace("index", fjall::KeyspaceCreateOptions::default).unwrap();
            tree.insert(ghost, ghost_value).unwrap();
            match version {
                None => tree.remove(b"Mformat".as_slice()).unwrap(),
                Some(v) => tree.insert(b"Mformat".as_slice(), v.to_be_bytes()).unwrap(),
            }
            db.persist(fjall::PersistMode::SyncAll).unwrap();
        }
    }
}

#[tokio::test]
async fn an_index_of_another_layout_is_rebuilt_never_misread() {
    let olds = [
        OldIndex::Sled { version: None },
        OldIndex::Sled { version: Some(2) },
        OldIndex::Stamped { version: None },
        OldIndex::Stamped { version: Some(2) },
        OldIndex::Stamped { version: Some(99) },
    ];
    for old in olds {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = Engine::open(config(dir.path())).unwrap();
            engine.create_bucket("b", 1).await.unwrap();
            put(&engine, "b", "a", &body(1, 5000)).await;
            put(&engine, "b", "small", b"x").await;
            engine.close().await.unwrap();
        }
        make_old_index(dir.path(), old);
        let engine = Engine::open(config(dir.path())).unwrap();
        let what = format!("after opening an index of layout {old:?}");
        assert_eq!(
            engine.index().format_version().unwrap(),
            Some(storage_core::index::FORMAT_VERSION),
            "{what}: format version"
        );
        let buckets: Vec<String> = engine.buckets().unwrap().into_iter().map(|(name, _)| name).collect();
        assert_eq!(buckets, vec!["b".to_string()], "{what}: buckets");
        assert_eq!(get(&engine, "b", "a").await, Some(body(1, 5000)), "{what}: object a");
        assert_eq!(get(&engine, "b", "small").await, Some(b"x".to_vec()), "{what}: object small");
    }
}
