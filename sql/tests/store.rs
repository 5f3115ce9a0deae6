//! `BucketStore`, DataFusion's view of a bucket, against what was stored: ranged reads
//! (one range, many ranges, suffix and offset), HEAD, listing by prefix with and without
//! a delimiter, keys `object_store` cannot name, and refused writes.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use quarry_sql::BucketStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use storage_core::{Engine, EngineConfig, EngineStats, ObjectMeta, ObjectRecord};

async fn put(engine: &Engine, bucket: &str, key: &str, body: &[u8]) {
    let mut writer = engine.body_writer();
    // Several writes, so a multi-chunk object is read across chunk boundaries.
    for piece in body.chunks(700 * 1024) {
        writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    let body_ref = writer.finish().await.unwrap();
    let meta = ObjectMeta {
        size_bytes: body.len() as u64,
        etag: format!("etag-{key}"),
        last_modified_ms: 1_700_000_000_000,
        ..Default::default()
    };
    engine.put_object(ObjectRecord::new(bucket, key, meta), body_ref).await.unwrap();
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_reads_ranges_and_lists_like_an_object_store() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    engine.create_bucket("b", 0).await.unwrap();
    let big = pattern(3 * 1024 * 1024 + 17);
    put(&engine, "b", "data/big.bin", &big).await;
    put(&engine, "b", "data/small.txt", b"hello").await;
    put(&engine, "b", "data/sub/deep.txt", b"deep").await;
    put(&engine, "b", "database.txt", b"not under data/").await;
    put(&engine, "b", "odd//key", b"empty part").await;
    put(&engine, "b", "with space %41.txt", b"encoded").await;

    let read_bytes = Arc::new(AtomicU64::new(0));
    let store = BucketStore::new(engine.clone(), "b", Some(read_bytes.clone()));

    // Whole object, ranges inside and across chunks, suffix and offset.
    let location = Path::from("data/big.bin");
    let whole = store.get(&location).await.unwrap().bytes().await.unwrap();
    assert_eq!(whole.len(), big.len(), "whole object length");
    assert!(whole[..] == big[..], "whole object bytes differ");
    for range in [0..1, 5..1000, 1024 * 1024 - 3..1024 * 1024 + 5, 2_000_000..big.len() as u64] {
        let got = store.get_range(&location, range.clone()).await.unwrap();
        assert!(got[..] == big[range.start as usize..range.end as usize], "range {range:?}");
    }
    let ranges = store.get_ranges(&location, &[0..10, 3_000_000..3_000_010]).await.unwrap();
    assert!(ranges[0][..] == big[0..10] && ranges[1][..] == big[3_000_000..3_000_010], "get_ranges");

    // Many small adjacent ranges (as Parquet pages come), out of order, some overlapping:
    // each is right, and the chunk records they share are read once, not once per range.
    let mut small: Vec<_> = (0..200u64).rev().map(|i| i * 10_000..(i + 1) * 10_000).collect();
    small.extend((0..20u64).map(|i| i * 100_000 + 5_000..i * 100_000 + 25_000));
    let records_before = EngineStats::get(&engine.stats().chunk_read_bytes);
    let got = store.get_ranges(&location, &small).await.unwrap();
    let records_read = EngineStats::get(&engine.stats().chunk_read_bytes) - records_before;
    for (range, bytes) in small.iter().zip(&got) {
        assert!(bytes[..] == big[range.start as usize..range.end as usize], "range {range:?} of many");
    }
    assert!(
        records_read <= 2 * 1024 * 1024,
        "220 ranges within 2 MiB read {records_read} bytes of chunk records; expected at most the 2 records they touch"
    );
    let past_end = big.len() as u64 + 1..big.len() as u64 + 2;
    let err = store.get_ranges(&location, &[0..1, past_end]).await.expect_err("a range past the end");
    assert!(err.to_string().contains("is not within"), "past-the-end error: {err}");
    let suffix =
        store.get_opts(&location, GetOptions { range: Some(GetRange::Suffix(8)), ..Default::default() }).await.unwrap();
    assert_eq!(suffix.range, big.len() as u64 - 8..big.len() as u64);
    assert!(suffix.bytes().await.unwrap()[..] == big[big.len() - 8..], "suffix range");
    let offset = store
        .get_opts(&location, GetOptions { range: Some(GetRange::Offset(3_145_728)), ..Default::default() })
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(offset[..] == big[3_145_728..], "offset range");
    assert!(read_bytes.load(Ordering::Relaxed) >= big.len() as u64, "read bytes are counted");

    // HEAD, and a missing object.
    let head = store.head(&location).await.unwrap();
    assert_eq!((head.size, head.e_tag.as_deref()), (big.len() as u64, Some("\"etag-data/big.bin\"")));
    let missing = store.head(&Path::from("data/nope")).await.unwrap_err();
    assert!(matches!(missing, object_store::Error::NotFound { .. }), "missing object: {missing:?}");

    // Listing by prefix: whole path parts only (`database.txt` is not under `data/`).
    let mut listed: Vec<String> =
        store.list(Some(&Path::from("data"))).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
    listed.sort();
    assert_eq!(listed, ["data/big.bin", "data/small.txt", "data/sub/deep.txt"]);
    let level = store.list_with_delimiter(Some(&Path::from("data"))).await.unwrap();
    let objects: Vec<String> = level.objects.iter().map(|m| m.location.to_string()).collect();
    let prefixes: Vec<String> = level.common_prefixes.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        (objects, prefixes),
        (vec!["data/big.bin".to_owned(), "data/small.txt".to_owned()], vec!["data/sub".to_owned()])
    );

    // Every key is listed, percent-encoded where object_store encodes, except the one
    // with an empty part (no path names it), and each listed path reads its own object.
    let all: Vec<Path> = store.list(None).map_ok(|m| m.location).try_collect().await.unwrap();
    let names: Vec<String> = all.iter().map(quarry_sql::store::key_of).collect();
    assert_eq!(names, ["data/big.bin", "data/small.txt", "data/sub/deep.txt", "database.txt", "with space %41.txt"]);
    let encoded = all.iter().find(|p| p.as_ref().starts_with("with")).unwrap();
    assert_eq!(store.get(encoded).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"encoded"));

    // Read-only.
    let refused = store.put(&Path::from("new"), Bytes::from_static(b"x").into()).await.unwrap_err();
    assert!(matches!(refused, object_store::Error::NotSupported { .. }), "put: {refused:?}");
    engine.close().await.unwrap();
}
