//! Attacks on the engine's bookkeeping: index keys that one bucket's key could make
//! collide with another bucket's (NUL bytes in keys and upload ids), and damaged
//! records served as if they were whole.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::*;

const SCOPED_KEY: &str = "bucketbkey";
const SCOPED_SECRET: &str = "bucketbsecret123";

const CONFIG: &str = r#"
[[keys]]
access_key = "bucketbkey"
secret_key = "bucketbsecret123"
buckets = ["bucketb"]
access = "read-write"
"#;

const NO_SUCH_UPLOAD: &[&str] = &["NoSuchUpload"];

/// A key limited to `bucketb` tries to add a part to `bucketc`'s upload through an
/// upload id and a key with NUL bytes, which the old index layout (`U<bucket>\0<key>\0<id>`,
/// `P<id>\0<part>`) could not tell apart from the victim's entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_cannot_inject_a_part_into_another_buckets_upload() {
    let server = Server::start_with(ServerOptions { config_toml: Some(CONFIG.to_string()), ..Default::default() });
    let admin = server.client();
    let attacker = server.client_with(SCOPED_KEY, SCOPED_SECRET);
    create_bucket(&admin, "bucketb").await;
    create_bucket(&admin, "bucketc").await;

    // The victim's upload in bucketc, with one part of its own.
    let victim_id = admin
        .create_multipart_upload()
        .bucket("bucketc")
        .key("victim.bin")
        .send()
        .await
        .ok_or_panic("CreateMultipartUpload bucketc/victim.bin")
        .upload_id()
        .expect("an UploadId")
        .to_string();
    let victim_bytes = b"the victim's own bytes".to_vec();
    let victim_etag = admin
        .upload_part()
        .bucket("bucketc")
        .key("victim.bin")
        .upload_id(&victim_id)
        .part_number(1)
        .body(ByteStream::from(victim_bytes.clone()))
        .send()
        .await
        .ok_or_panic("UploadPart 1 of the victim's upload")
        .e_tag()
        .unwrap_or_default()
        .to_string();

    // The attacker, allowed only bucketb: an upload whose key embeds the victim's id. Such a
    // key is refused outright (XML 1.0 cannot carry a NUL); the forged upload id below must
    // fail on its own as well, so the attacker's own id comes from an ordinary upload.
    let created = attacker.create_multipart_upload().bucket("bucketb").key(format!("k\0{victim_id}")).send().await;
    expect_s3_error(created, 400, &["InvalidArgument"], "attacker: CreateMultipartUpload of a key holding a NUL");
    let attacker_id = attacker
        .create_multipart_upload()
        .bucket("bucketb")
        .key("k")
        .send()
        .await
        .ok_or_panic("attacker: CreateMultipartUpload bucketb/k")
        .upload_id()
        .expect("an UploadId")
        .to_string();
    let forged_id = format!("{victim_id}\0{attacker_id}");
    let injected = attacker
        .upload_part()
        .bucket("bucketb")
        .key("k")
        .upload_id(&forged_id)
        .part_number(1)
        .body(ByteStream::from_static(b"ATTACKER BYTES"))
        .send()
        .await;
    expect_s3_error(injected, 404, NO_SUCH_UPLOAD, "attacker: UploadPart with upload id <victim id><NUL><own id>");

    // An upload id that exists, but for another bucket or key, is no upload here.
    let cross = attacker
        .upload_part()
        .bucket("bucketb")
        .key("victim.bin")
        .upload_id(&victim_id)
        .part_number(2)
        .body(ByteStream::from_static(b"ATTACKER BYTES"))
        .send()
        .await;
    expect_s3_error(cross, 404, NO_SUCH_UPLOAD, "attacker: UploadPart to bucketb with bucketc's upload id");
    let other_key = admin.list_parts().bucket("bucketc").key("other.bin").upload_id(&victim_id).send().await;
    expect_s3_error(other_key, 404, NO_SUCH_UPLOAD, "ListParts of the victim's upload id under another key");
    let abort_other_key =
        admin.abort_multipart_upload().bucket("bucketc").key("other.bin").upload_id(&victim_id).send().await;
    expect_s3_error(abort_other_key, 404, NO_SUCH_UPLOAD, "AbortMultipartUpload of the victim's id under another key");

    // The victim's upload holds exactly its own part.
    let parts = admin
        .list_parts()
        .bucket("bucketc")
        .key("victim.bin")
        .upload_id(&victim_id)
        .send()
        .await
        .ok_or_panic("ListParts");
    let listed: Vec<(Option<i32>, Option<i64>)> = parts.parts().iter().map(|p| (p.part_number(), p.size())).collect();
    assert_eq!(
        listed,
        vec![(Some(1), Some(victim_bytes.len() as i64))],
        "the victim's upload must list only the victim's part (number, size)"
    );
    admin
        .complete_multipart_upload()
        .bucket("bucketc")
        .key("victim.bin")
        .upload_id(&victim_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(&victim_etag).build())
                .build(),
        )
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload of the victim's upload");
    assert_bytes_eq(&get(&admin, "bucketc", "victim.bin").await, &victim_bytes, "bucketc/victim.bin after completion");
}

/// Upload ids are the server's own: anything else is NoSuchUpload, whatever the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_ids_not_of_the_servers_format_are_no_such_upload() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "ids").await;
    let real = s3
        .create_multipart_upload()
        .bucket("ids")
        .key("k")
        .send()
        .await
        .ok_or_panic("CreateMultipartUpload")
        .upload_id()
        .expect("an UploadId")
        .to_string();
    for bad in [format!("{real}\0"), format!("{real}x"), real.to_uppercase(), "..%2f".to_string(), "a".repeat(4096)] {
        let put = s3
            .upload_part()
            .bucket("ids")
            .key("k")
            .upload_id(&bad)
            .part_number(1)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        expect_s3_error(put, 404, NO_SUCH_UPLOAD, format!("UploadPart with upload id {bad:?}"));
        let list = s3.list_parts().bucket("ids").key("k").upload_id(&bad).send().await;
        expect_s3_error(list, 404, NO_SUCH_UPLOAD, format!("ListParts with upload id {bad:?}"));
        let abort = s3.abort_multipart_upload().bucket("ids").key("k").upload_id(&bad).send().await;
        expect_s3_error(abort, 404, NO_SUCH_UPLOAD, format!("AbortMultipartUpload with upload id {bad:?}"));
    }
    // The real one still works.
    s3.abort_multipart_upload().bucket("ids").key("k").upload_id(&real).send().await.ok_or_panic("Abort real id");
}

/// Flips one byte of the first occurrence of `marker` in the segment files of `data_dir`.
fn flip_byte_of(data_dir: &std::path::Path, marker: &[u8]) {
    for entry in std::fs::read_dir(data_dir.join("segments")).expect("segments dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "seg") {
            continue;
        }
        let mut bytes = std::fs::read(&path).expect("read segment");
        if let Some(at) = bytes.windows(marker.len()).position(|w| w == marker) {
            bytes[at + marker.len() / 2] ^= 0x40;
            std::fs::write(&path, &bytes).expect("write segment");
            return;
        }
    }
    panic!("marker not found in any segment file");
}

/// A body held in one record (an inline object, or one piece of a larger one) is read
/// and verified before the status line: damage is a 500, never a 200 with a cut body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_single_record_body_is_500_not_a_truncated_200() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "dmg").await;
    let mut small = seeded_bytes(7, 3000);
    let marker = b"--the-marker-of-the-damaged-object--";
    small[1000..1000 + marker.len()].copy_from_slice(marker);
    put(&s3, "dmg", "damaged", &small).await;
    let healthy = seeded_bytes(8, 2000);
    put(&s3, "dmg", "healthy", &healthy).await;
    flip_byte_of(server.data_dir(), marker);

    for (what, range) in [("GET", None), ("GET with a Range", Some("bytes=10-20"))] {
        let got = s3.get_object().bucket("dmg").key("damaged").set_range(range.map(str::to_owned)).send().await;
        match got {
            Ok(out) => {
                let body = out.body.collect().await.map(|b| b.into_bytes().len());
                panic!("{what} of a damaged object: expected HTTP 500 InternalError, got 200 (body read: {body:?})")
            }
            Err(e) => {
                let (status, code) = (err_status(&e), e.code().map(str::to_owned));
                assert_eq!(
                    (status, code.as_deref()),
                    (Some(500), Some("InternalError")),
                    "{what} of a damaged object: expected HTTP 500 InternalError"
                );
            }
        }
    }
    assert_bytes_eq(&get(&s3, "dmg", "healthy").await, &healthy, "GET of an undamaged object next to it");
}

/// Runs `quarry admin compact` against the server: (success, stdout, stderr).
fn admin_compact(server: &Server) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["admin", "compact", "--endpoint", server.endpoint()])
        .env("QUARRY_ACCESS_KEY", ADMIN_ACCESS_KEY)
        .env("QUARRY_SECRET_KEY", ADMIN_SECRET_KEY)
        .output()
        .expect("run quarry admin compact");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

/// One flipped byte in a sealed segment used to make every compaction fail (500), so
/// deleted bytes stayed on disk. Now the damage is reported and the rest is compacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_segment_does_not_stop_admin_compact_or_erasure() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "cmp").await;
    let mut victim = seeded_bytes(11, 2000);
    let victim_marker = b"--victim-record-of-the-compaction-test--";
    victim[500..500 + victim_marker.len()].copy_from_slice(victim_marker);
    put(&s3, "cmp", "victim", &victim).await;
    let neighbour = seeded_bytes(12, 2000);
    put(&s3, "cmp", "neighbour", &neighbour).await;
    put(&s3, "cmp", "first-garbage", &seeded_bytes(13, 2000)).await;
    s3.delete_object().bucket("cmp").key("first-garbage").send().await.ok_or_panic("DELETE first-garbage");
    // Seals the active segment and rewrites it: victim and neighbour now live in a sealed segment.
    let (ok, out, err) = admin_compact(&server);
    assert!(ok, "first quarry admin compact: expected success\nstdout: {out}\nstderr: {err}");
    // Dead bytes next to the victim make its segment a compaction candidate.
    s3.delete_object().bucket("cmp").key("neighbour").send().await.ok_or_panic("DELETE neighbour");
    flip_byte_of(server.data_dir(), victim_marker);

    let marker = random_bytes(48);
    let mut secret = seeded_bytes(14, 3000);
    secret[1000..1048].copy_from_slice(&marker);
    put(&s3, "cmp", "secret", &secret).await;
    let keeper = seeded_bytes(15, 5000);
    put(&s3, "cmp", "keeper", &keeper).await;
    s3.delete_object().bucket("cmp").key("secret").send().await.ok_or_panic("DELETE secret");

    let (ok, out, err) = admin_compact(&server);
    assert!(ok, "quarry admin compact with a damaged segment: expected success\nstdout: {out}\nstderr: {err}");
    assert!(out.contains("left as it is"), "the compaction report must name the damage, got:\n{out}");
    if let Some(file) = file_containing(server.data_dir(), &marker) {
        panic!("after quarry admin compact the deleted object's bytes are still in {file}");
    }
    assert_bytes_eq(&get(&s3, "cmp", "keeper").await, &keeper, "GET keeper after compaction");
    let damaged = s3.get_object().bucket("cmp").key("victim").send().await;
    expect_s3_error(damaged, 500, &["InternalError"], "GET of the damaged object after compaction");
}
