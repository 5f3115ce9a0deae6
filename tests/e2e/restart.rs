//! Crash safety: everything acknowledged before a `kill -9` is there after a
//! restart on the same data directory, byte for byte; deleted objects stay
//! deleted; nothing else appears.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::StreamExt;
use rand::{Rng, SeedableRng};

use crate::harness::*;

/// What an object should contain: regenerated from `seed` on demand so the
/// test does not keep every body in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    seed: u64,
    len: usize,
}

impl Spec {
    fn data(&self) -> Vec<u8> {
        seeded_bytes(self.seed, self.len)
    }
}

/// Reads every object in `expected` back concurrently and compares it.
async fn verify_objects(s3: &aws_sdk_s3::Client, bucket: &str, expected: &BTreeMap<String, Spec>, when: &str) {
    let results: Vec<Option<String>> = futures::stream::iter(expected.iter())
        .map(|(key, spec)| {
            let s3 = s3.clone();
            let bucket = bucket.to_string();
            let key = key.clone();
            let spec = *spec;
            let when = when.to_string();
            async move {
                let res = s3.get_object().bucket(&bucket).key(&key).send().await;
                let out = match res {
                    Ok(out) => out,
                    Err(e) => {
                        return Some(format!(
                            "{key}: GET failed {when}: {}",
                            aws_sdk_s3::error::DisplayErrorContext(&e)
                        ));
                    }
                };
                let body = match out.body.collect().await {
                    Ok(b) => b.into_bytes(),
                    Err(e) => return Some(format!("{key}: reading body failed {when}: {e}")),
                };
                let want = spec.data();
                if body.as_ref() != want.as_slice() {
                    return Some(format!(
                        "{key}: content mismatch {when}: got {}, want {}",
                        describe(&body),
                        describe(&want)
                    ));
                }
                None
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let failures: Vec<String> = results.into_iter().flatten().collect();
    assert!(
        failures.is_empty(),
        "{} of {} objects wrong {when}; first 20:\n{}",
        failures.len(),
        expected.len(),
        failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[track_caller]
fn assert_same_keys(got: &[String], want: &BTreeSet<String>, what: &str) {
    let got_set: BTreeSet<String> = got.iter().cloned().collect();
    let missing: Vec<&String> = want.difference(&got_set).take(20).collect();
    let extra: Vec<&String> = got_set.difference(want).take(20).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && got_set.len() == got.len(),
        "{what}: got {} keys ({} distinct), want {}; missing (first 20): {missing:?}; unexpected (first 20): {extra:?}",
        got.len(),
        got_set.len(),
        want.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill9_and_restart() {
    let mut server = Server::start();
    let s3 = server.client();
    let bucket = "durable";
    create_bucket(&s3, bucket).await;
    create_bucket(&s3, "durable-empty").await;
    create_bucket(&s3, "doomed-bucket").await;

    // 1,000 objects: ~20 multi-chunk ones of 2-4 MiB, the rest 100 B - 10 KiB.
    let mut rng = rand::rngs::StdRng::seed_from_u64(rand::random());
    let mut expected: BTreeMap<String, Spec> = BTreeMap::new();
    for i in 0..1000usize {
        let len = if i % 50 == 7 { rng.random_range(2 * MIB..=4 * MIB) } else { rng.random_range(100..=10 * 1024) };
        let key = format!("obj/{:02}/{i:04}-{:08x}", i % 17, rng.random::<u32>());
        expected.insert(key, Spec { seed: rng.random(), len });
    }
    let large = expected.values().filter(|s| s.len >= 2 * MIB).count();
    assert_eq!(large, 20, "test bug: expected 20 multi-chunk objects");

    let write_all = |specs: Vec<(String, Spec)>| {
        let s3 = s3.clone();
        async move {
            futures::stream::iter(specs)
                .map(|(key, spec)| {
                    let s3 = s3.clone();
                    async move {
                        let data = spec.data();
                        let etag = put(&s3, bucket, &key, &data).await;
                        assert_eq!(etag, etag_of(&data), "PutObject {key}: ETag");
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<()>>()
                .await;
        }
    };
    write_all(expected.iter().map(|(k, s)| (k.clone(), *s)).collect()).await;

    // Overwrite 50 of them with new content: the new content must survive.
    let overwritten: Vec<String> = expected.keys().skip(3).step_by(20).cloned().collect();
    assert_eq!(overwritten.len(), 50, "test bug: overwrite count");
    for key in &overwritten {
        let len = rng.random_range(100..=5000);
        expected.insert(key.clone(), Spec { seed: rng.random(), len });
    }
    write_all(overwritten.iter().map(|k| (k.clone(), expected[k])).collect()).await;

    // Delete 100 of them.
    let deleted: Vec<String> = expected.keys().skip(1).step_by(10).cloned().collect();
    assert_eq!(deleted.len(), 100, "test bug: delete count");
    futures::stream::iter(deleted.clone())
        .map(|key| {
            let s3 = s3.clone();
            async move {
                s3.delete_object().bucket(bucket).key(&key).send().await.ok_or_panic(format!("DeleteObject {key}"));
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    for key in &deleted {
        expected.remove(key);
    }

    // One completed multipart upload.
    let mpu_key = "multipart/completed.bin".to_string();
    let part1 = Spec { seed: rng.random(), len: 5 * MIB };
    let part2 = Spec { seed: rng.random(), len: MIB + 3 };
    let upload_id = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(&mpu_key)
        .send()
        .await
        .ok_or_panic("CreateMultipartUpload")
        .upload_id()
        .unwrap()
        .to_string();
    let mut parts = Vec::new();
    for (n, spec) in [(1, part1), (2, part2)] {
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key(&mpu_key)
            .upload_id(&upload_id)
            .part_number(n)
            .body(spec.data().into())
            .send()
            .await
            .ok_or_panic(format!("UploadPart {n}"));
        parts.push(CompletedPart::builder().part_number(n).e_tag(out.e_tag().unwrap_or_default()).build());
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(&mpu_key)
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload");
    let mpu_data = [part1.data(), part2.data()].concat();
    let mpu_etag = multipart_etag(&[&part1.data(), &part2.data()]);

    s3.delete_bucket().bucket("doomed-bucket").send().await.ok_or_panic("DeleteBucket doomed-bucket");

    let want_keys: BTreeSet<String> = expected.keys().cloned().chain(std::iter::once(mpu_key.clone())).collect();
    // Sanity check before the crash.
    assert_same_keys(&list_all_keys(&s3, bucket).await, &want_keys, "ListObjectsV2 before kill -9");

    server.restart();
    let s3 = server.client();

    let mut buckets: Vec<String> = s3
        .list_buckets()
        .send()
        .await
        .ok_or_panic("ListBuckets after restart")
        .buckets()
        .iter()
        .map(|b| b.name().unwrap_or_default().to_string())
        .collect();
    buckets.sort();
    assert_eq!(
        buckets,
        vec!["durable".to_string(), "durable-empty".to_string()],
        "ListBuckets after kill -9 and restart"
    );
    assert_same_keys(&list_all_keys(&s3, bucket).await, &want_keys, "ListObjectsV2 after kill -9 and restart");
    verify_objects(&s3, bucket, &expected, "after kill -9 and restart").await;

    let out =
        s3.get_object().bucket(bucket).key(&mpu_key).send().await.ok_or_panic("GET multipart object after restart");
    assert_eq!(out.e_tag(), Some(mpu_etag.as_str()), "multipart object ETag after restart");
    let body = collect_body(out.body, "GET multipart object after restart").await;
    assert_bytes_eq(&body, &mpu_data, "multipart object after restart");

    for key in &deleted {
        expect_s3_error(
            s3.head_object().bucket(bucket).key(key).send().await,
            404,
            &[],
            format!("HeadObject of {key}, deleted before kill -9"),
        );
    }

    // Still fully functional: write, read, delete.
    put(&s3, bucket, "after-restart", b"fresh").await;
    let body = get(&s3, bucket, "after-restart").await;
    assert_bytes_eq(&body, b"fresh", "object written after restart");
    s3.delete_object().bucket(bucket).key("after-restart").send().await.ok_or_panic("DeleteObject after restart");

    // A second crash/restart cycle (recovery must be repeatable).
    server.restart();
    let s3 = server.client();
    assert_same_keys(&list_all_keys(&s3, bucket).await, &want_keys, "ListObjectsV2 after a second kill -9 and restart");
    let sample: BTreeMap<String, Spec> = expected
        .iter()
        .step_by(7)
        .map(|(k, s)| (k.clone(), *s))
        .chain(expected.iter().filter(|(_, s)| s.len >= 2 * MIB).map(|(k, s)| (k.clone(), *s)))
        .collect();
    verify_objects(&s3, bucket, &sample, "after a second kill -9 and restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_concurrent_writes_keeps_acknowledged_objects() {
    let mut server = Server::start();
    let s3 = server.client();
    let bucket = "inflight";
    create_bucket(&s3, bucket).await;

    let attempted: Arc<Mutex<HashMap<String, Spec>>> = Arc::default();
    let acked: Arc<Mutex<BTreeMap<String, Spec>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let s3 = s3.clone();
        let attempted = attempted.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(rand::random::<u64>() ^ w);
            for i in 0.. {
                let len = if i % 10 == 9 { rng.random_range(MIB..=2 * MIB) } else { rng.random_range(1..=64 * 1024) };
                let spec = Spec { seed: rng.random(), len };
                let key = format!("w{w}/{i:06}");
                attempted.lock().unwrap().insert(key.clone(), spec);
                let res = s3.put_object().bucket(bucket).key(&key).body(spec.data().into()).send().await;
                match res {
                    Ok(_) => {
                        acked.lock().unwrap().insert(key, spec);
                    }
                    Err(_) => return, // the server was killed
                }
            }
        }));
    }

    // Let a few hundred writes complete, then pull the plug mid-flight.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let n = acked.lock().unwrap().len();
        if n >= 300 {
            break;
        }
        assert!(Instant::now() < deadline, "only {n} writes acknowledged after 180 s\n{}", server.logs_tail());
        if writers.iter().all(|h| h.is_finished()) {
            panic!("all writers stopped early (after {n} acknowledged writes)\n{}", server.logs_tail());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9();
    for h in &writers {
        h.abort();
    }
    for h in writers {
        let _ = h.await;
    }
    let acked = acked.lock().unwrap().clone();
    let attempted = attempted.lock().unwrap().clone();
    assert!(
        attempted.len() > acked.len(),
        "test bug: no write was in flight when the server was killed ({} attempted, {} acknowledged)",
        attempted.len(),
        acked.len()
    );

    server.restart();
    let s3 = server.client();

    // Every acknowledged write is there; anything else that shows up must be a
    // write that was in flight at the time of the kill, and complete.
    let listed = list_all_keys(&s3, bucket).await;
    let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
    let missing: Vec<&String> = acked.keys().filter(|k| !listed_set.contains(*k)).take(20).collect();
    assert!(
        missing.is_empty(),
        "acknowledged objects missing from ListObjectsV2 after kill -9 ({} acked); first 20: {missing:?}",
        acked.len()
    );
    let unknown: Vec<&String> = listed.iter().filter(|k| !attempted.contains_key(*k)).take(20).collect();
    assert!(unknown.is_empty(), "ListObjectsV2 after kill -9 shows keys never written: {unknown:?}");

    verify_objects(&s3, bucket, &acked, "(acknowledged before kill -9)").await;
    let in_flight: BTreeMap<String, Spec> =
        listed.iter().filter(|k| !acked.contains_key(*k)).map(|k| (k.clone(), attempted[k])).collect();
    verify_objects(&s3, bucket, &in_flight, "(in flight during kill -9 and listed afterwards)").await;
}
