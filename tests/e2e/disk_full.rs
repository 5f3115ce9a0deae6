//! Disk full, on a real small file system (a tmpfs this test mounts): writes are
//! refused with 507 InsufficientStorage, reads, listings and deletes go on, nothing
//! acknowledged is damaged, and writes succeed again once space is freed.
//!
//! Mounting needs root on Linux; elsewhere the test says loudly that it skipped.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DISK_MIB: u64 = 64;
const RESERVE_BYTES: u64 = 4 * 1024 * 1024;

/// A tmpfs of a fixed size, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, size_mib: u64) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(SmallDisk { path: path.to_owned() })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes to `path` until the file system has no byte left.
fn fill_to_the_brim(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    for block in [1usize << 20, 64 << 10, 4 << 10, 1] {
        let buf = vec![1u8; block];
        while file.write_all(&buf).is_ok() {}
    }
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_serves_reads_and_deletes_then_recovers() {
    let outer = tempfile::tempdir().unwrap();
    let mount_point = outer.path().join("small-disk");
    let disk = match SmallDisk::mount(&mount_point, DISK_MIB) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!(
                "\n!!!!!!!! SKIPPED full_disk test: cannot mount a {DISK_MIB} MiB tmpfs ({why}). \
                 Run the tests as root on Linux to cover disk-full behaviour. !!!!!!!!\n"
            );
            return;
        }
    };
    let mut server = Server::start_with(ServerOptions {
        data_dir: Some(disk.path.join("data")),
        config_toml: Some(format!("disk_reserve_bytes = {RESERVE_BYTES}\nscrub_interval_secs = 0\n")),
        ..Default::default()
    });
    let client = server.client();
    create_bucket(&client, "full").await;
    let mut stored: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..8u64 {
        let key = format!("obj-{i:03}");
        let data = seeded_bytes(i, 1 << 20);
        put(&client, "full", &key, &data).await;
        stored.push((key, data));
    }

    // Something else fills the disk to the last byte (the server still holds its reserve).
    let ballast = disk.path.join("ballast");
    fill_to_the_brim(&ballast);

    let refusal = client.put_object().bucket("full").key("one-more").body(vec![7u8; 1 << 20].into()).send().await;
    expect_s3_error(refusal, 507, &["InsufficientStorage"], "PUT on a full disk");
    // Still refused (quickly, without touching the disk), also for small objects.
    let small = client.put_object().bucket("full").key("small").body(b"tiny".to_vec().into()).send().await;
    expect_s3_error(small, 507, &["InsufficientStorage"], "small PUT on a full disk");
    let ready = raw_request("GET", &format!("{}/ready", server.endpoint()), &[], Vec::new()).await;
    assert_eq!(ready.status, 503, "/ready on a full disk: {}", ready.body_str());

    // Reads and listings work; nothing acknowledged is damaged.
    for (key, data) in &stored {
        assert_bytes_eq(&get(&client, "full", key).await, data, format!("GET {key} on a full disk"));
    }
    let keys = list_all_keys(&client, "full").await;
    assert_eq!(keys, stored.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), "listing on a full disk");

    // Deletes work.
    let (deleted, kept) = stored.split_at(stored.len() / 2);
    for (key, _) in deleted {
        client
            .delete_object()
            .bucket("full")
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {key} on a full disk: expected 204, got {e:?}"));
    }

    // Free space: writes are accepted again (the server looks again within a second).
    std::fs::remove_file(&ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.put_object().bucket("full").key("after").body(b"room again".to_vec().into()).send().await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("PUT after freeing the ballast: expected success within 10 s, got {e:?}"),
        }
    }
    assert_eq!(get(&client, "full", "after").await, b"room again");
    let ready = raw_request("GET", &format!("{}/ready", server.endpoint()), &[], Vec::new()).await;
    assert_eq!(ready.status, 200, "/ready once space is back: {}", ready.body_str());

    // Everything acknowledged survives a crash, deletes included.
    server.restart();
    let client = server.client();
    for (key, data) in kept {
        assert_bytes_eq(&get(&client, "full", key).await, data, format!("GET {key} after restart"));
    }
    let mut want: Vec<String> = kept.iter().map(|(k, _)| k.clone()).collect();
    want.push("after".into());
    want.sort();
    assert_eq!(list_all_keys(&client, "full").await, want, "listing after restart: deleted keys stay deleted");
    drop(server);
    drop(disk);
}
