//! Object operations: PutObject / GetObject / HeadObject round trips, ranges,
//! metadata, ETags, DeleteObject(s) and CopyObject.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{Delete, MetadataDirective, ObjectIdentifier};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_head_round_trip() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "roundtrip";
    create_bucket(&s3, bucket).await;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one-byte", b"x".to_vec()),
        ("small.txt", b"hello, quarry!\n".to_vec()),
        ("exactly-1mib", random_bytes(MIB)),
        ("one-mib-plus-one", random_bytes(MIB + 1)),
        // ~10 MiB: spans several internal 1 MiB chunks, and is not chunk-aligned.
        ("dir/large-10mib.bin", random_bytes(10 * MIB + 12_345)),
    ];

    for (key, data) in &cases {
        let out = s3
            .put_object()
            .bucket(bucket)
            .key(*key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .ok_or_panic(format!("PutObject {key} ({} bytes)", data.len()));
        assert_eq!(
            out.e_tag(),
            Some(etag_of(data).as_str()),
            "PutObject {key}: ETag must be the quoted hex MD5 of the body"
        );
    }

    for (key, data) in &cases {
        let want_len = data.len() as i64;
        let head = s3.head_object().bucket(bucket).key(*key).send().await.ok_or_panic(format!("HeadObject {key}"));
        assert_eq!(head.content_length(), Some(want_len), "HeadObject {key} Content-Length");
        assert_eq!(head.e_tag(), Some(etag_of(data).as_str()), "HeadObject {key} ETag");
        assert!(head.last_modified().is_some(), "HeadObject {key}: Last-Modified missing");

        let got = s3.get_object().bucket(bucket).key(*key).send().await.ok_or_panic(format!("GetObject {key}"));
        assert_eq!(got.content_length(), Some(want_len), "GetObject {key} Content-Length");
        assert_eq!(got.e_tag(), Some(etag_of(data).as_str()), "GetObject {key} ETag");
        assert!(got.last_modified().is_some(), "GetObject {key}: Last-Modified missing");
        assert_eq!(got.content_range(), None, "GetObject {key} without Range: Content-Range");
        let body = collect_body(got.body, format!("GetObject {key}")).await;
        assert_bytes_eq(&body, data, format!("GetObject {key}"));
    }

    // The listing reports the same sizes and ETags.
    let listed = s3.list_objects_v2().bucket(bucket).send().await.ok_or_panic("ListObjectsV2");
    let mut want: Vec<(String, i64, String)> =
        cases.iter().map(|(k, d)| (k.to_string(), d.len() as i64, etag_of(d))).collect();
    want.sort();
    let got: Vec<(String, i64, String)> = listed
        .contents()
        .iter()
        .map(|o| {
            (o.key().unwrap_or_default().to_string(), o.size().unwrap_or(-1), o.e_tag().unwrap_or_default().to_string())
        })
        .collect();
    assert_eq!(got, want, "ListObjectsV2 (key, size, etag) after PutObjects");

    // Overwrite: the second PUT wins, for both a small and a multi-chunk object.
    for (key, len) in [("small.txt", 20usize), ("dir/large-10mib.bin", 2 * MIB + 3)] {
        let data = random_bytes(len);
        let etag = put(&s3, bucket, key, &data).await;
        assert_eq!(etag, etag_of(&data), "overwrite PutObject {key} ETag");
        let body = get(&s3, bucket, key).await;
        assert_bytes_eq(&body, &data, format!("GET {key} after overwrite"));
        let head = s3.head_object().bucket(bucket).key(key).send().await.ok_or_panic("HeadObject");
        assert_eq!(head.content_length(), Some(len as i64), "HeadObject {key} Content-Length after overwrite");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_special_characters_round_trip() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "special-keys";
    create_bucket(&s3, bucket).await;
    let keys = [
        "with space.txt",
        "plus+sign",
        "a/deep/nested/path/file",
        "ünïcödé/日本語.txt",
        "symbols !$&'()*,;=@:~-_.",
        "percent%20literal",
        "question?mark#hash",
        "trailing-slash/",
        "double//slash",
        "tilde~and^caret[brackets]{braces}",
    ];
    for (i, key) in keys.iter().enumerate() {
        let data = format!("body #{i} for key {key}");
        put(&s3, bucket, key, data.as_bytes()).await;
    }
    for (i, key) in keys.iter().enumerate() {
        let want = format!("body #{i} for key {key}");
        let body = get(&s3, bucket, key).await;
        assert_bytes_eq(&body, want.as_bytes(), format!("GET {key:?}"));
    }
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    let got = list_all_keys(&s3, bucket).await;
    assert_eq!(got, want, "ListObjectsV2 keys (lexicographic byte order)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_requests() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "ranges";
    create_bucket(&s3, bucket).await;
    let key = "multi-chunk.bin";
    // 3.5 MiB + 123 bytes: four internal 1 MiB chunks, the last one partial.
    let data = random_bytes(3 * MIB + MIB / 2 + 123);
    let n = data.len();
    put(&s3, bucket, key, &data).await;

    // (Range header, expected first byte, expected last byte inclusive)
    let cases: Vec<(String, usize, usize)> = vec![
        ("bytes=0-9".into(), 0, 9),
        ("bytes=5-".into(), 5, n - 1),
        ("bytes=-7".into(), n - 7, n - 1),
        ("bytes=0-0".into(), 0, 0),
        (format!("bytes={}-{}", n - 1, n - 1), n - 1, n - 1),
        // End past the end of the object: clamped to the last byte.
        (format!("bytes={}-{}", n - 10, n + 100), n - 10, n - 1),
        // Suffix longer than the object: the whole object.
        (format!("bytes=-{}", n + 1000), 0, n - 1),
        // Spanning one chunk boundary.
        (format!("bytes={}-{}", MIB - 5, MIB + 4), MIB - 5, MIB + 4),
        // Exactly one chunk.
        (format!("bytes={}-{}", MIB, 2 * MIB - 1), MIB, 2 * MIB - 1),
        // First byte of a chunk.
        (format!("bytes={}-{}", 2 * MIB, 2 * MIB), 2 * MIB, 2 * MIB),
        // Spanning three chunk boundaries.
        (format!("bytes={}-{}", MIB - 100, 3 * MIB + 100), MIB - 100, 3 * MIB + 100),
        // Open range starting inside the last chunk.
        (format!("bytes={}-", 3 * MIB + 7), 3 * MIB + 7, n - 1),
    ];
    for (range, first, last) in &cases {
        let out = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(range.as_str())
            .send()
            .await
            .ok_or_panic(format!("GET {key} range {range}"));
        let want_len = last - first + 1;
        assert_eq!(
            out.content_range(),
            Some(format!("bytes {first}-{last}/{n}").as_str()),
            "GET {key} range {range}: Content-Range"
        );
        assert_eq!(out.content_length(), Some(want_len as i64), "GET {key} range {range}: Content-Length");
        assert_eq!(out.e_tag(), Some(etag_of(&data).as_str()), "GET {key} range {range}: ETag");
        let body = collect_body(out.body, format!("GET {key} range {range}")).await;
        assert_bytes_eq(&body, &data[*first..=*last], format!("GET {key} range {range}"));
    }

    for range in [format!("bytes={n}-"), format!("bytes={}-{}", n + 5, n + 10)] {
        expect_s3_error(
            s3.get_object().bucket(bucket).key(key).range(range.as_str()).send().await,
            416,
            &["InvalidRange"],
            format!("GET {key} unsatisfiable range {range} (size {n})"),
        );
    }

    // Exact status codes through a raw HTTP client: 206 for a satisfiable range,
    // 416 for an unsatisfiable one, 200 without a Range header.
    let presigned = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
        .await
        .ok_or_panic("presign GetObject");
    let resp = send_presigned_to(&presigned, presigned.uri(), &[("range", "bytes=100-199")], Vec::new()).await;
    assert_eq!(resp.status, 206, "raw GET range bytes=100-199: status (body {})", resp.body_str());
    assert_eq!(
        resp.header("content-range").as_deref(),
        Some(format!("bytes 100-199/{n}").as_str()),
        "raw GET range bytes=100-199: Content-Range"
    );
    assert_bytes_eq(&resp.body, &data[100..200], "raw GET range bytes=100-199");
    let unsatisfiable = format!("bytes={}-", n + 1);
    let resp = send_presigned_to(&presigned, presigned.uri(), &[("range", unsatisfiable.as_str())], Vec::new()).await;
    assert_eq!(resp.status, 416, "raw GET range {unsatisfiable}: status (body {})", resp.body_str());
    assert_eq!(
        resp.xml_tag("Code").as_deref(),
        Some("InvalidRange"),
        "raw GET range {unsatisfiable}: error code in body {}",
        resp.body_str()
    );
    let resp = send_presigned(&presigned, Vec::new()).await;
    assert_eq!(resp.status, 200, "raw GET without Range: status");
    assert_eq!(resp.body.len(), n, "raw GET without Range: body length");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_key_is_no_such_key() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "missing-keys";
    create_bucket(&s3, bucket).await;
    put(&s3, bucket, "present", b"here").await;

    for key in ["absent", "present/child", "presen", "PRESENT"] {
        expect_s3_error(
            s3.get_object().bucket(bucket).key(key).send().await,
            404,
            &["NoSuchKey"],
            format!("GetObject missing key {key:?}"),
        );
        expect_s3_error(
            s3.head_object().bucket(bucket).key(key).send().await,
            404,
            &[],
            format!("HeadObject missing key {key:?}"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_round_trip() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "metadata";
    create_bucket(&s3, bucket).await;
    let key = "doc.bin";
    let data = random_bytes(4096);
    let expires = DateTime::from_secs(1_900_000_000); // 2030-03-17
    let mut meta = HashMap::new();
    meta.insert("color".to_string(), "blue".to_string());
    meta.insert("owner-name".to_string(), "Ada Lovelace".to_string());
    meta.insert("x".to_string(), "1".to_string());
    meta.insert("with-dashes-and-digits-42".to_string(), "value with spaces".to_string());

    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.clone()))
        .content_type("application/x-quarry-test; charset=utf-8")
        .content_encoding("gzip")
        .content_disposition("attachment; filename=\"report.bin\"")
        .content_language("de-CH")
        .cache_control("max-age=3600, must-revalidate")
        .expires(expires)
        .set_metadata(Some(meta.clone()))
        .send()
        .await
        .ok_or_panic("PutObject with metadata");

    let head = s3.head_object().bucket(bucket).key(key).send().await.ok_or_panic("HeadObject");
    let got = s3.get_object().bucket(bucket).key(key).send().await.ok_or_panic("GetObject");

    for (op, content_type, encoding, disposition, language, cache, expires_str, metadata) in [
        (
            "HEAD",
            head.content_type(),
            head.content_encoding(),
            head.content_disposition(),
            head.content_language(),
            head.cache_control(),
            head.expires_string(),
            head.metadata(),
        ),
        (
            "GET",
            got.content_type(),
            got.content_encoding(),
            got.content_disposition(),
            got.content_language(),
            got.cache_control(),
            got.expires_string(),
            got.metadata(),
        ),
    ] {
        assert_eq!(content_type, Some("application/x-quarry-test; charset=utf-8"), "{op} Content-Type");
        assert_eq!(encoding, Some("gzip"), "{op} Content-Encoding");
        assert_eq!(disposition, Some("attachment; filename=\"report.bin\""), "{op} Content-Disposition");
        assert_eq!(language, Some("de-CH"), "{op} Content-Language");
        assert_eq!(cache, Some("max-age=3600, must-revalidate"), "{op} Cache-Control");
        let parsed = expires_str.map(|s| {
            DateTime::from_str(s, DateTimeFormat::HttpDate)
                .unwrap_or_else(|e| panic!("{op} Expires {s:?} is not an HTTP date: {e}"))
        });
        assert_eq!(parsed.map(|d| d.secs()), Some(expires.secs()), "{op} Expires (raw header {expires_str:?})");
        assert_eq!(metadata, Some(&meta), "{op} x-amz-meta-* user metadata");
    }
    let body = collect_body(got.body, "GetObject").await;
    assert_bytes_eq(&body, &data, "GetObject body with metadata");

    // Without an explicit Content-Type, S3 defaults to binary/octet-stream (some
    // servers use application/octet-stream); it must be *something*.
    put(&s3, bucket, "no-type", b"abc").await;
    let head = s3.head_object().bucket(bucket).key("no-type").send().await.ok_or_panic("HeadObject no-type");
    assert!(
        matches!(head.content_type(), Some("binary/octet-stream") | Some("application/octet-stream")),
        "HeadObject without explicit Content-Type: expected binary/octet-stream, got {:?}",
        head.content_type()
    );
    assert!(
        head.metadata().is_none_or(|m| m.is_empty()),
        "HeadObject of an object without user metadata: expected none, got {:?}",
        head.metadata()
    );

    // Overwriting replaces the metadata entirely.
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"new"))
        .metadata("only", "this")
        .send()
        .await
        .ok_or_panic("overwrite PutObject");
    let head = s3.head_object().bucket(bucket).key(key).send().await.ok_or_panic("HeadObject");
    let want: HashMap<String, String> = [("only".to_string(), "this".to_string())].into();
    assert_eq!(head.metadata(), Some(&want), "HeadObject metadata after overwrite");
    assert_eq!(head.content_encoding(), None, "HeadObject Content-Encoding after overwrite without one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_object_is_204_and_idempotent() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "deletes";
    create_bucket(&s3, bucket).await;
    put(&s3, bucket, "victim", b"bye").await;
    put(&s3, bucket, "survivor", b"hi").await;

    // Exact status via a presigned DELETE.
    let presigned = s3
        .delete_object()
        .bucket(bucket)
        .key("victim")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
        .await
        .ok_or_panic("presign DeleteObject");
    let resp = send_presigned(&presigned, Vec::new()).await;
    assert_eq!(resp.status, 204, "DELETE existing object: status (body {})", resp.body_str());
    expect_s3_error(
        s3.get_object().bucket(bucket).key("victim").send().await,
        404,
        &["NoSuchKey"],
        "GetObject after DeleteObject",
    );
    // Deleting again (now missing) is still 204.
    let resp = send_presigned(&presigned, Vec::new()).await;
    assert_eq!(resp.status, 204, "DELETE already-deleted object: status (body {})", resp.body_str());

    s3.delete_object()
        .bucket(bucket)
        .key("never-existed")
        .send()
        .await
        .ok_or_panic("DeleteObject on a key that never existed");

    let keys = list_all_keys(&s3, bucket).await;
    assert_eq!(keys, vec!["survivor".to_string()], "keys left after deletes");
    let body = get(&s3, bucket, "survivor").await;
    assert_bytes_eq(&body, b"hi", "untouched object after deleting another");
}

fn object_ids(keys: &[&str]) -> Vec<ObjectIdentifier> {
    keys.iter().map(|k| ObjectIdentifier::builder().key(*k).build().expect("ObjectIdentifier")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_batch_quiet_and_verbose() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "batch-delete";
    create_bucket(&s3, bucket).await;
    let all = ["a", "b", "c/d", "c/e", "f g", "h+i", "keep-1", "keep-2"];
    for k in all {
        put(&s3, bucket, k, k.as_bytes()).await;
    }

    // Quiet = false: every deleted key (including a missing one, which S3 reports
    // as deleted) is listed, no errors.
    let verbose = ["a", "c/d", "f g", "h+i", "does-not-exist"];
    let out = s3
        .delete_objects()
        .bucket(bucket)
        .delete(Delete::builder().set_objects(Some(object_ids(&verbose))).quiet(false).build().unwrap())
        .send()
        .await
        .ok_or_panic("DeleteObjects quiet=false");
    let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    let mut want = verbose.to_vec();
    want.sort();
    assert_eq!(deleted, want, "DeleteObjects quiet=false: Deleted keys");
    let errors: Vec<_> = out.errors().iter().map(|e| (e.key(), e.code(), e.message())).collect();
    assert!(errors.is_empty(), "DeleteObjects quiet=false: expected no errors, got {errors:?}");
    assert_eq!(
        list_all_keys(&s3, bucket).await,
        vec!["b", "c/e", "keep-1", "keep-2"],
        "keys after DeleteObjects quiet=false"
    );

    // Quiet = true: successful deletions are not listed.
    let out = s3
        .delete_objects()
        .bucket(bucket)
        .delete(
            Delete::builder().set_objects(Some(object_ids(&["b", "c/e", "also-missing"]))).quiet(true).build().unwrap(),
        )
        .send()
        .await
        .ok_or_panic("DeleteObjects quiet=true");
    let deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert!(deleted.is_empty(), "DeleteObjects quiet=true: expected empty Deleted list, got {deleted:?}");
    let errors: Vec<_> = out.errors().iter().map(|e| (e.key(), e.code(), e.message())).collect();
    assert!(errors.is_empty(), "DeleteObjects quiet=true: expected no errors, got {errors:?}");
    assert_eq!(list_all_keys(&s3, bucket).await, vec!["keep-1", "keep-2"], "keys after DeleteObjects quiet=true");
    for k in ["keep-1", "keep-2"] {
        let body = get(&s3, bucket, k).await;
        assert_bytes_eq(&body, k.as_bytes(), format!("GET {k} after batch deletes"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_object_same_and_cross_bucket() {
    let server = Server::start();
    let s3 = server.client();
    let src_bucket = "copy-src";
    let dst_bucket = "copy-dst";
    create_bucket(&s3, src_bucket).await;
    create_bucket(&s3, dst_bucket).await;

    // Multi-chunk source with metadata.
    let src_key = "dir/original.bin";
    let data = random_bytes(2 * MIB + MIB / 2 + 17);
    let src_etag = etag_of(&data);
    let src_meta: HashMap<String, String> =
        [("origin".to_string(), "source".to_string()), ("n".to_string(), "1".to_string())].into();
    s3.put_object()
        .bucket(src_bucket)
        .key(src_key)
        .body(ByteStream::from(data.clone()))
        .content_type("application/x-original")
        .cache_control("no-cache")
        .set_metadata(Some(src_meta.clone()))
        .send()
        .await
        .ok_or_panic("PutObject source");
    let copy_source = format!("{src_bucket}/{src_key}");

    // 1. Same bucket, default directive (COPY).
    let out = s3
        .copy_object()
        .bucket(src_bucket)
        .key("copy-same-bucket.bin")
        .copy_source(&copy_source)
        .send()
        .await
        .ok_or_panic("CopyObject same bucket");
    assert_eq!(
        out.copy_object_result().and_then(|r| r.e_tag()),
        Some(src_etag.as_str()),
        "CopyObject same bucket: CopyObjectResult ETag"
    );
    assert!(
        out.copy_object_result().and_then(|r| r.last_modified()).is_some(),
        "CopyObject same bucket: CopyObjectResult LastModified missing"
    );

    // 2. Across buckets, explicit COPY directive: new metadata in the request is ignored.
    s3.copy_object()
        .bucket(dst_bucket)
        .key("copy-meta-copy.bin")
        .copy_source(&copy_source)
        .metadata_directive(MetadataDirective::Copy)
        .send()
        .await
        .ok_or_panic("CopyObject cross bucket COPY");

    // 3. Across buckets, REPLACE directive: metadata taken from the request.
    let out = s3
        .copy_object()
        .bucket(dst_bucket)
        .key("copy-meta-replace.bin")
        .copy_source(&copy_source)
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/x-replaced")
        .metadata("new", "yes")
        .send()
        .await
        .ok_or_panic("CopyObject cross bucket REPLACE");
    assert_eq!(
        out.copy_object_result().and_then(|r| r.e_tag()),
        Some(src_etag.as_str()),
        "CopyObject REPLACE: CopyObjectResult ETag"
    );

    let replaced_meta: HashMap<String, String> = [("new".to_string(), "yes".to_string())].into();
    let copies: [(&str, &str, &str, &HashMap<String, String>); 3] = [
        (src_bucket, "copy-same-bucket.bin", "application/x-original", &src_meta),
        (dst_bucket, "copy-meta-copy.bin", "application/x-original", &src_meta),
        (dst_bucket, "copy-meta-replace.bin", "text/x-replaced", &replaced_meta),
    ];

    async fn check_copies(
        s3: &aws_sdk_s3::Client,
        copies: &[(&str, &str, &str, &HashMap<String, String>)],
        data: &[u8],
        when: &str,
    ) {
        for (bucket, key, content_type, meta) in copies {
            let out = s3
                .get_object()
                .bucket(*bucket)
                .key(*key)
                .send()
                .await
                .ok_or_panic(format!("GetObject copy {bucket}/{key} {when}"));
            assert_eq!(out.e_tag(), Some(etag_of(data).as_str()), "copy {bucket}/{key} ETag {when}");
            assert_eq!(out.content_type(), Some(*content_type), "copy {bucket}/{key} Content-Type {when}");
            assert_eq!(out.metadata(), Some(*meta), "copy {bucket}/{key} user metadata {when}");
            let body = collect_body(out.body, format!("copy {bucket}/{key}")).await;
            assert_bytes_eq(&body, data, format!("copy {bucket}/{key} bytes {when}"));
        }
    }
    check_copies(&s3, &copies, &data, "after copying").await;

    // Deleting (and overwriting) the source does not affect the copies.
    s3.delete_object().bucket(src_bucket).key(src_key).send().await.ok_or_panic("DeleteObject source");
    check_copies(&s3, &copies, &data, "after deleting the source").await;
    put(&s3, src_bucket, src_key, b"different content").await;
    check_copies(&s3, &copies, &data, "after overwriting the source").await;

    // Source keys with characters that need URL-encoding in x-amz-copy-source.
    let odd_key = "odd dir/sp ace+plus&ünï.txt";
    put(&s3, src_bucket, odd_key, b"odd").await;
    s3.copy_object()
        .bucket(dst_bucket)
        .key("odd-copy")
        .copy_source(format!("{src_bucket}/{}", uri_encode_path(odd_key)))
        .send()
        .await
        .ok_or_panic(format!("CopyObject from {odd_key:?}"));
    let body = get(&s3, dst_bucket, "odd-copy").await;
    assert_bytes_eq(&body, b"odd", "copy of a source key with special characters");

    // Missing source.
    expect_s3_error(
        s3.copy_object()
            .bucket(dst_bucket)
            .key("nope")
            .copy_source(format!("{src_bucket}/does-not-exist"))
            .send()
            .await,
        404,
        &["NoSuchKey"],
        "CopyObject from a missing source key",
    );
    expect_s3_error(
        s3.copy_object().bucket(dst_bucket).key("nope").copy_source("no-such-src-bucket/k").send().await,
        404,
        &["NoSuchBucket"],
        "CopyObject from a missing source bucket",
    );
}

/// Percent-encodes everything except unreserved characters and '/'.
pub fn uri_encode_path(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
