//! Deletion is deletion: the bytes of a deleted (or overwritten) object are physically
//! gone from every file under the data directory — after `quarry admin compact`, and,
//! with no trigger at all, within the configured erasure deadline.

use crate::harness::*;
use std::time::{Duration, Instant};

/// Objects whose bodies carry `marker`: one small (stored inline), one of several chunks.
async fn store_marked_objects(client: &aws_sdk_s3::Client, bucket: &str, marker: &[u8]) {
    create_bucket(client, bucket).await;
    for (key, len) in [("small-secret", 600usize), ("large-secret", 3 * 1024 * 1024 + 77)] {
        let mut data = random_bytes(len);
        let at = len / 2;
        data[at..at + marker.len()].copy_from_slice(marker);
        put(client, bucket, key, &data).await;
    }
    put(client, bucket, "keeper", &random_bytes(200_000)).await;
}

async fn delete_marked_objects(client: &aws_sdk_s3::Client, bucket: &str) {
    client.delete_object().bucket(bucket).key("small-secret").send().await.unwrap();
    // An overwrite kills the old bytes as surely as a delete.
    put(client, bucket, "large-secret", b"nothing to see").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_bytes_are_gone_after_admin_compact() {
    let server = Server::start();
    let client = server.client();
    let marker = random_bytes(48);
    store_marked_objects(&client, "erasure", &marker).await;
    assert!(file_containing(server.data_dir(), &marker).is_some(), "the marker must be on disk to begin with");
    delete_marked_objects(&client, "erasure").await;

    let output = admin_compact(&server);
    assert!(
        output.status.success(),
        "quarry admin compact: expected success, got {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if let Some(file) = file_containing(server.data_dir(), &marker) {
        panic!("after quarry admin compact the deleted bytes are still in {file}");
    }
    assert_eq!(get(&client, "erasure", "large-secret").await, b"nothing to see");
    assert_eq!(list_all_keys(&client, "erasure").await, vec!["keeper".to_string(), "large-secret".to_string()]);

    // A non-admin key may not compact.
    let denied = std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["admin", "status", "--endpoint", server.endpoint()])
        .env("QUARRY_ACCESS_KEY", "nobody")
        .env("QUARRY_SECRET_KEY", "nobody-secret")
        .output()
        .unwrap();
    assert!(!denied.status.success(), "an unknown key must be refused by the admin API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_bytes_are_gone_within_the_erasure_deadline() {
    const DEADLINE_SECS: u64 = 4;
    let server = Server::start_with(ServerOptions {
        // A dead ratio no segment reaches: only the deadline can trigger compaction.
        config_toml: Some(format!(
            "erasure_deadline_secs = {DEADLINE_SECS}\ncompaction_interval_secs = 1\ncompaction_dead_ratio = 2.0\n"
        )),
        ..Default::default()
    });
    let client = server.client();
    let marker = random_bytes(48);
    store_marked_objects(&client, "deadline", &marker).await;
    delete_marked_objects(&client, "deadline").await;
    let deleted_at = Instant::now();
    // The deadline, plus one compaction interval of slack for a loaded CI machine.
    let limit = Duration::from_secs(DEADLINE_SECS + 2);
    while let Some(file) = file_containing(server.data_dir(), &marker) {
        assert!(
            deleted_at.elapsed() < limit,
            "{:.1} s after the delete the bytes are still in {file} (erasure deadline {DEADLINE_SECS} s)",
            deleted_at.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("erasure: deleted bytes gone {:.1} s after the delete", deleted_at.elapsed().as_secs_f64());
    assert_eq!(get(&client, "deadline", "large-secret").await, b"nothing to see");
    assert_eq!(get(&client, "deadline", "keeper").await.len(), 200_000);
}

/// Compaction moves live records into a new segment and deletes the old ones. The
/// index's new locations must be on disk before the old segments go: a kill -9 right
/// after `quarry admin compact` answers must leave every live object readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill9_right_after_compaction_loses_nothing() {
    let mut server = Server::start();
    let client = server.client();
    create_bucket(&client, "moved").await;
    let mut kept = Vec::new();
    for i in 0..20u64 {
        let data = seeded_bytes(i, 1000 + 5000 * i as usize);
        put(&client, "moved", &format!("keep-{i}"), &data).await;
        put(&client, "moved", &format!("drop-{i}"), &random_bytes(20_000)).await;
        kept.push(data);
    }
    for i in 0..20 {
        client.delete_object().bucket("moved").key(format!("drop-{i}")).send().await.unwrap();
    }
    let output = admin_compact(&server);
    server.kill9();
    assert!(output.status.success(), "quarry admin compact: {}", String::from_utf8_lossy(&output.stderr));
    server.restart();
    let client = server.client();
    for (i, data) in kept.iter().enumerate() {
        let got = client.get_object().bucket("moved").key(format!("keep-{i}")).send().await;
        let got = match got {
            Ok(out) => collect_body(out.body, format!("keep-{i}")).await,
            Err(e) => panic!(
                "keep-{i} after compaction and kill -9: expected its {} bytes, got {e:?}\n{}",
                data.len(),
                server.logs_tail()
            ),
        };
        assert_bytes_eq(&got, data, format!("keep-{i} after compaction and kill -9"));
    }
}
