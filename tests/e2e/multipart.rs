//! Multipart uploads: CreateMultipartUpload, UploadPart, ListParts,
//! ListMultipartUploads, CompleteMultipartUpload (ETag, content, errors),
//! AbortMultipartUpload, part-number gaps.

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::*;

const PART: usize = 5 * MIB;

async fn create_upload(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    s3.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok_or_panic(format!("CreateMultipartUpload {bucket}/{key}"))
        .upload_id()
        .unwrap_or_else(|| panic!("CreateMultipartUpload {bucket}/{key}: no UploadId"))
        .to_string()
}

async fn upload_part(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, upload_id: &str, n: i32, data: &[u8]) -> String {
    let out = s3
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(n)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .ok_or_panic(format!("UploadPart {key} part {n} ({} bytes)", data.len()));
    let etag = out.e_tag().unwrap_or_default().to_string();
    assert_eq!(etag, etag_of(data), "UploadPart {key} part {n}: ETag must be the quoted MD5 of the part");
    etag
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts.iter().map(|(n, etag)| CompletedPart::builder().part_number(*n).e_tag(*etag).build()).collect(),
        ))
        .build()
}

async fn uploads_in(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, String)> {
    let out =
        s3.list_multipart_uploads().bucket(bucket).send().await.ok_or_panic(format!("ListMultipartUploads {bucket}"));
    out.uploads()
        .iter()
        .map(|u| (u.key().unwrap_or_default().to_string(), u.upload_id().unwrap_or_default().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_full_cycle() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "mpu";
    create_bucket(&s3, bucket).await;
    let key = "videos/big file.bin";

    let upload_id = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type("video/x-test")
        .metadata("purpose", "e2e")
        .send()
        .await
        .ok_or_panic("CreateMultipartUpload")
        .upload_id()
        .expect("CreateMultipartUpload: UploadId")
        .to_string();

    let ups = uploads_in(&s3, bucket).await;
    assert_eq!(ups, vec![(key.to_string(), upload_id.clone())], "ListMultipartUploads after CreateMultipartUpload");

    let p1 = random_bytes(PART);
    let p2 = random_bytes(PART);
    let p3 = random_bytes(MIB + 123);
    let e1 = upload_part(&s3, bucket, key, &upload_id, 1, &p1).await;
    // Upload part 2 twice: the second upload replaces the first.
    upload_part(&s3, bucket, key, &upload_id, 2, &random_bytes(PART + 1)).await;
    let e2 = upload_part(&s3, bucket, key, &upload_id, 2, &p2).await;
    let e3 = upload_part(&s3, bucket, key, &upload_id, 3, &p3).await;

    // ListParts: numbers, sizes, etags.
    let listed = s3.list_parts().bucket(bucket).key(key).upload_id(&upload_id).send().await.ok_or_panic("ListParts");
    let got: Vec<(i32, i64, String)> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap_or(-1), p.size().unwrap_or(-1), p.e_tag().unwrap_or_default().to_string()))
        .collect();
    let want =
        vec![(1, p1.len() as i64, e1.clone()), (2, p2.len() as i64, e2.clone()), (3, p3.len() as i64, e3.clone())];
    assert_eq!(got, want, "ListParts (part number, size, etag)");
    assert_eq!(listed.upload_id(), Some(upload_id.as_str()), "ListParts UploadId");
    assert_eq!(listed.key(), Some(key), "ListParts Key");

    // ListParts pagination with max-parts.
    let first = s3
        .list_parts()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .max_parts(2)
        .send()
        .await
        .ok_or_panic("ListParts max-parts 2");
    let nums: Vec<i32> = first.parts().iter().filter_map(|p| p.part_number()).collect();
    assert_eq!(nums, vec![1, 2], "ListParts max-parts 2: part numbers");
    assert_eq!(first.is_truncated(), Some(true), "ListParts max-parts 2: IsTruncated");
    let marker = first.next_part_number_marker().expect("ListParts max-parts 2: NextPartNumberMarker").to_string();
    let rest = s3
        .list_parts()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .part_number_marker(&marker)
        .send()
        .await
        .ok_or_panic("ListParts part-number-marker");
    let nums: Vec<i32> = rest.parts().iter().filter_map(|p| p.part_number()).collect();
    assert_eq!(nums, vec![3], "ListParts after marker {marker}: part numbers");

    // Not visible as an object before completion.
    expect_s3_error(
        s3.get_object().bucket(bucket).key(key).send().await,
        404,
        &["NoSuchKey"],
        "GetObject of an in-progress multipart upload",
    );
    let keys = list_all_keys(&s3, bucket).await;
    assert!(keys.is_empty(), "ListObjectsV2 during an in-progress upload: expected no keys, got {keys:?}");

    let out = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2), (3, &e3)]))
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload");
    let want_etag = multipart_etag(&[&p1, &p2, &p3]);
    assert_eq!(out.e_tag(), Some(want_etag.as_str()), "CompleteMultipartUpload ETag");
    assert_eq!(out.key(), Some(key), "CompleteMultipartUpload Key");
    assert_eq!(out.bucket(), Some(bucket), "CompleteMultipartUpload Bucket");

    let whole: Vec<u8> = [p1.as_slice(), &p2, &p3].concat();
    let got = s3.get_object().bucket(bucket).key(key).send().await.ok_or_panic("GetObject completed upload");
    assert_eq!(got.e_tag(), Some(want_etag.as_str()), "GetObject completed upload ETag");
    assert_eq!(got.content_length(), Some(whole.len() as i64), "GetObject completed upload Content-Length");
    assert_eq!(got.content_type(), Some("video/x-test"), "GetObject completed upload Content-Type from Create");
    let want_meta: HashMap<String, String> = [("purpose".to_string(), "e2e".to_string())].into();
    assert_eq!(got.metadata(), Some(&want_meta), "GetObject completed upload metadata from Create");
    let body = collect_body(got.body, "GetObject completed upload").await;
    assert_bytes_eq(&body, &whole, "GetObject completed upload: concatenation of parts");

    let head = s3.head_object().bucket(bucket).key(key).send().await.ok_or_panic("HeadObject");
    assert_eq!(head.e_tag(), Some(want_etag.as_str()), "HeadObject completed upload ETag");
    assert_eq!(head.content_length(), Some(whole.len() as i64), "HeadObject completed upload Content-Length");

    // Range across the part 1 / part 2 boundary.
    let (a, b) = (PART - 10, PART + 9);
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(format!("bytes={a}-{b}"))
        .send()
        .await
        .ok_or_panic("ranged GET across part boundary");
    let body = collect_body(out.body, "ranged GET across part boundary").await;
    assert_bytes_eq(&body, &whole[a..=b], format!("GET completed upload range bytes={a}-{b}"));

    // The upload is gone.
    let ups = uploads_in(&s3, bucket).await;
    assert!(ups.is_empty(), "ListMultipartUploads after completion: expected none, got {ups:?}");
    expect_s3_error(
        s3.list_parts().bucket(bucket).key(key).upload_id(&upload_id).send().await,
        404,
        &["NoSuchUpload"],
        "ListParts after completion",
    );

    let listed = s3.list_objects_v2().bucket(bucket).send().await.ok_or_panic("ListObjectsV2");
    let objs: Vec<(String, i64, String)> = listed
        .contents()
        .iter()
        .map(|o| {
            (o.key().unwrap_or_default().to_string(), o.size().unwrap_or(-1), o.e_tag().unwrap_or_default().to_string())
        })
        .collect();
    assert_eq!(
        objs,
        vec![(key.to_string(), whole.len() as i64, want_etag.clone())],
        "ListObjectsV2 after completion (key, size, etag)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_complete_errors() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "mpu-errors";
    create_bucket(&s3, bucket).await;
    let key = "obj";
    let upload_id = create_upload(&s3, bucket, key).await;
    let p1 = random_bytes(PART);
    let p2 = random_bytes(PART);
    let p3 = random_bytes(1000);
    let e1 = upload_part(&s3, bucket, key, &upload_id, 1, &p1).await;
    let e2 = upload_part(&s3, bucket, key, &upload_id, 2, &p2).await;
    let e3 = upload_part(&s3, bucket, key, &upload_id, 3, &p3).await;
    let wrong = etag_of(b"not the part");

    type Case<'a> = (&'a str, Vec<(i32, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        ("wrong ETag for part 2", vec![(1, &e1), (2, &wrong), (3, &e3)], "InvalidPart"),
        ("part 4 was never uploaded", vec![(1, &e1), (2, &e2), (4, &e3)], "InvalidPart"),
        ("parts in descending order", vec![(3, &e3), (2, &e2), (1, &e1)], "InvalidPartOrder"),
    ];
    for (what, parts, code) in &cases {
        expect_s3_error(
            s3.complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(completed(parts))
                .send()
                .await,
            400,
            &[code],
            format!("CompleteMultipartUpload with {what}"),
        );
    }
    expect_s3_error(
        s3.get_object().bucket(bucket).key(key).send().await,
        404,
        &["NoSuchKey"],
        "GetObject after failed completions",
    );

    // A part number outside 1..=10000 is rejected.
    for n in [0, 10_001] {
        expect_s3_error(
            s3.upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(n)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await,
            400,
            &["InvalidArgument"],
            format!("UploadPart with part number {n}"),
        );
    }

    // The failed completions left the upload intact: it still completes.
    let ups = uploads_in(&s3, bucket).await;
    assert_eq!(ups, vec![(key.to_string(), upload_id.clone())], "ListMultipartUploads after failed completions");
    let out = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2), (3, &e3)]))
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload after failed attempts");
    assert_eq!(
        out.e_tag(),
        Some(multipart_etag(&[&p1, &p2, &p3]).as_str()),
        "CompleteMultipartUpload ETag after failed attempts"
    );
    let body = get(&s3, bucket, key).await;
    assert_bytes_eq(&body, &[p1.as_slice(), &p2, &p3].concat(), "GET after completion following errors");

    // EntityTooSmall: a non-last part under 5 MiB.
    let small_key = "too-small";
    let small_id = create_upload(&s3, bucket, small_key).await;
    let s1 = random_bytes(MIB);
    let s2 = random_bytes(MIB);
    let f1 = upload_part(&s3, bucket, small_key, &small_id, 1, &s1).await;
    let f2 = upload_part(&s3, bucket, small_key, &small_id, 2, &s2).await;
    expect_s3_error(
        s3.complete_multipart_upload()
            .bucket(bucket)
            .key(small_key)
            .upload_id(&small_id)
            .multipart_upload(completed(&[(1, &f1), (2, &f2)]))
            .send()
            .await,
        400,
        &["EntityTooSmall"],
        "CompleteMultipartUpload with a 1 MiB non-last part",
    );
    expect_s3_error(
        s3.head_object().bucket(bucket).key(small_key).send().await,
        404,
        &[],
        "HeadObject after EntityTooSmall",
    );
    // ... but a single small part as the only (= last) part is fine.
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(small_key)
        .upload_id(&small_id)
        .multipart_upload(completed(&[(2, &f2)]))
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload with a single small last part");
    let body = get(&s3, bucket, small_key).await;
    assert_bytes_eq(&body, &s2, "GET of an upload completed with only part 2");

    // Complete with an unknown upload id.
    expect_s3_error(
        s3.complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id("this-upload-id-does-not-exist")
            .multipart_upload(completed(&[(1, &e1)]))
            .send()
            .await,
        404,
        &["NoSuchUpload"],
        "CompleteMultipartUpload with an unknown upload id",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_abort() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "mpu-abort";
    create_bucket(&s3, bucket).await;
    let key = "aborted";
    // An existing object under the same key must survive the aborted upload.
    put(&s3, bucket, key, b"previous version").await;

    let upload_id = create_upload(&s3, bucket, key).await;
    let p1 = random_bytes(PART);
    let e1 = upload_part(&s3, bucket, key, &upload_id, 1, &p1).await;
    s3.abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await
        .ok_or_panic("AbortMultipartUpload");

    expect_s3_error(
        s3.upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .part_number(2)
            .body(ByteStream::from(random_bytes(1000)))
            .send()
            .await,
        404,
        &["NoSuchUpload"],
        "UploadPart after AbortMultipartUpload",
    );
    expect_s3_error(
        s3.list_parts().bucket(bucket).key(key).upload_id(&upload_id).send().await,
        404,
        &["NoSuchUpload"],
        "ListParts after AbortMultipartUpload",
    );
    expect_s3_error(
        s3.complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(completed(&[(1, &e1)]))
            .send()
            .await,
        404,
        &["NoSuchUpload"],
        "CompleteMultipartUpload after AbortMultipartUpload",
    );
    let ups = uploads_in(&s3, bucket).await;
    assert!(ups.is_empty(), "ListMultipartUploads after abort: expected none, got {ups:?}");
    let body = get(&s3, bucket, key).await;
    assert_bytes_eq(&body, b"previous version", "existing object after an aborted upload to its key");

    expect_s3_error(
        s3.abort_multipart_upload().bucket(bucket).key(key).upload_id("no-such-upload-id").send().await,
        404,
        &["NoSuchUpload"],
        "AbortMultipartUpload with an unknown upload id",
    );
    expect_s3_error(
        s3.upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id("no-such-upload-id")
            .part_number(1)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        404,
        &["NoSuchUpload"],
        "UploadPart with an unknown upload id",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_part_number_gaps_and_subsets() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "mpu-gaps";
    create_bucket(&s3, bucket).await;

    // Parts 1 and 3 only.
    let key = "gappy";
    let upload_id = create_upload(&s3, bucket, key).await;
    let p1 = random_bytes(PART);
    let p3 = random_bytes(777);
    let e3 = upload_part(&s3, bucket, key, &upload_id, 3, &p3).await;
    let e1 = upload_part(&s3, bucket, key, &upload_id, 1, &p1).await;
    let listed = s3.list_parts().bucket(bucket).key(key).upload_id(&upload_id).send().await.ok_or_panic("ListParts");
    let nums: Vec<i32> = listed.parts().iter().filter_map(|p| p.part_number()).collect();
    assert_eq!(nums, vec![1, 3], "ListParts part numbers (uploaded out of order, with a gap)");
    let out = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(completed(&[(1, &e1), (3, &e3)]))
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload parts 1,3");
    assert_eq!(out.e_tag(), Some(multipart_etag(&[&p1, &p3]).as_str()), "ETag of upload with parts 1,3");
    let body = get(&s3, bucket, key).await;
    assert_bytes_eq(&body, &[p1.as_slice(), &p3].concat(), "GET of upload with parts 1,3");

    // Parts 1, 2, 3 uploaded; completing with 1 and 3 leaves part 2 out.
    let key = "subset";
    let upload_id = create_upload(&s3, bucket, key).await;
    let q1 = random_bytes(PART);
    let q2 = random_bytes(PART);
    let q3 = random_bytes(4321);
    let f1 = upload_part(&s3, bucket, key, &upload_id, 1, &q1).await;
    upload_part(&s3, bucket, key, &upload_id, 2, &q2).await;
    let f3 = upload_part(&s3, bucket, key, &upload_id, 3, &q3).await;
    let out = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(completed(&[(1, &f1), (3, &f3)]))
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload with subset 1,3 of 1,2,3");
    assert_eq!(out.e_tag(), Some(multipart_etag(&[&q1, &q3]).as_str()), "ETag of subset upload");
    let body = get(&s3, bucket, key).await;
    assert_bytes_eq(&body, &[q1.as_slice(), &q3].concat(), "GET of subset upload (part 2 excluded)");
    let head = s3.head_object().bucket(bucket).key(key).send().await.ok_or_panic("HeadObject subset");
    assert_eq!(head.content_length(), Some((q1.len() + q3.len()) as i64), "HeadObject subset Content-Length");

    // A single-part upload has a "-1" ETag.
    let key = "single";
    let upload_id = create_upload(&s3, bucket, key).await;
    let only = random_bytes(12_345);
    let e = upload_part(&s3, bucket, key, &upload_id, 1, &only).await;
    let out = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(completed(&[(1, &e)]))
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload single part");
    assert_eq!(out.e_tag(), Some(multipart_etag(&[&only]).as_str()), "ETag of single-part upload");
    let body = get(&s3, bucket, key).await;
    assert_bytes_eq(&body, &only, "GET of single-part upload");

    // Two concurrent uploads to the same key are independent; the last completed wins.
    let key = "contested";
    let id_a = create_upload(&s3, bucket, key).await;
    let id_b = create_upload(&s3, bucket, key).await;
    assert_ne!(id_a, id_b, "two CreateMultipartUpload calls must return distinct upload ids");
    let a = random_bytes(1000);
    let b = random_bytes(2000);
    let ea = upload_part(&s3, bucket, key, &id_a, 1, &a).await;
    let eb = upload_part(&s3, bucket, key, &id_b, 1, &b).await;
    let mut ups = uploads_in(&s3, bucket).await;
    ups.sort();
    let mut want = vec![(key.to_string(), id_a.clone()), (key.to_string(), id_b.clone())];
    want.sort();
    assert_eq!(ups, want, "ListMultipartUploads with two uploads for one key");
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&id_b)
        .multipart_upload(completed(&[(1, &eb)]))
        .send()
        .await
        .ok_or_panic("complete upload B");
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&id_a)
        .multipart_upload(completed(&[(1, &ea)]))
        .send()
        .await
        .ok_or_panic("complete upload A");
    let body = get(&s3, bucket, key).await;
    assert_bytes_eq(&body, &a, "GET contested key: last completed upload (A) wins");
}

/// UploadPartCopy (what `aws s3 cp/mv` uses for large objects) with ranges that cut
/// through internal chunks: every part's ETag is the MD5 of its range, and the completed
/// object equals the source byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_copy_with_unaligned_ranges() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "part-copy";
    create_bucket(&s3, bucket).await;
    let source = seeded_bytes(42, 11 * 1024 * 1024 + 5);
    put(&s3, bucket, "source", &source).await;

    let upload = s3.create_multipart_upload().bucket(bucket).key("copy").send().await.unwrap();
    let upload_id = upload.upload_id().unwrap().to_owned();
    let cut = 5 * 1024 * 1024 + 3;
    let ranges = [(0usize, cut), (cut, source.len())];
    let mut completed = Vec::new();
    for (i, (first, end)) in ranges.iter().enumerate() {
        let part_number = i as i32 + 1;
        let result = s3
            .upload_part_copy()
            .bucket(bucket)
            .key("copy")
            .upload_id(&upload_id)
            .part_number(part_number)
            .copy_source(format!("{bucket}/source"))
            .copy_source_range(format!("bytes={first}-{}", end - 1))
            .send()
            .await
            .unwrap_or_else(|e| panic!("UploadPartCopy of bytes {first}..{end}: expected success, got {e:?}"));
        let etag = result.copy_part_result().and_then(|r| r.e_tag()).unwrap().to_owned();
        assert_eq!(etag, etag_of(&source[*first..*end]), "ETag of copied part {part_number}");
        completed.push(aws_sdk_s3::types::CompletedPart::builder().part_number(part_number).e_tag(etag).build());
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key("copy")
        .upload_id(&upload_id)
        .multipart_upload(aws_sdk_s3::types::CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .unwrap();
    assert_bytes_eq(&get(&s3, bucket, "copy").await, &source, "object assembled from copied ranges");

    // A range past the end of the source is refused.
    let upload = s3.create_multipart_upload().bucket(bucket).key("bad").send().await.unwrap();
    let past_end = s3
        .upload_part_copy()
        .bucket(bucket)
        .key("bad")
        .upload_id(upload.upload_id().unwrap())
        .part_number(1)
        .copy_source(format!("{bucket}/source"))
        .copy_source_range(format!("bytes=0-{}", source.len()))
        .send()
        .await;
    expect_s3_error(past_end, 416, &["InvalidRange"], "UploadPartCopy with a range past the end");
}
