//! Server-side encryption: SSE-C, SSE-S3, SSE-KMS and a bucket's default encryption,
//! on PUT, GET (whole, ranges, part numbers), HEAD, multipart and copies; the bytes on
//! disk never hold the plaintext; everything readable again after kill -9.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};

use crate::harness::*;

/// True when `needle` occurs in any file under `dir`.
fn found_on_disk(dir: &std::path::Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            return found_on_disk(&path, needle);
        }
        std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    })
}

async fn get_with_key(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    customer: &(String, String),
    range: Option<&str>,
) -> Vec<u8> {
    let response = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&customer.0)
        .sse_customer_key_md5(&customer.1)
        .set_range(range.map(str::to_owned))
        .send()
        .await
        .ok_or_panic(format!("GET {key} with its SSE-C key (range {range:?})"));
    assert_eq!(response.sse_customer_algorithm(), Some("AES256"), "GET {key}: the SSE-C algorithm reported");
    assert_eq!(response.sse_customer_key_md5(), Some(customer.1.as_str()), "GET {key}: the key MD5 reported");
    collect_body(response.body, format!("GET {key}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_objects_are_served_only_with_their_key_and_survive_kill9() {
    // SSE-C keys travel over TLS only, as on S3.
    let mut server = Server::start_with(ServerOptions { tls: true, ..Default::default() });
    let s3 = server.client();
    create_bucket(&s3, "vault").await;
    // Over a megabyte: several frames and several chunk records.
    let data = seeded_bytes(7, 1_500_000);
    let key_a = customer_key_b64(1);
    let key_b = customer_key_b64(2);
    let put = put_with_customer_key(&s3, "vault", "secret.bin", data.clone(), &key_a)
        .send()
        .await
        .ok_or_panic("PUT with SSE-C");
    assert_eq!(put.sse_customer_key_md5(), Some(key_a.1.as_str()), "PUT reports the key's MD5");
    assert_ne!(put.e_tag(), Some(etag_of(&data).as_str()), "an SSE-C ETag must not be the plaintext's MD5");
    assert!(!found_on_disk(server.data_dir(), &data[4096..4160]), "the plaintext is on disk");

    let no_key = s3.get_object().bucket("vault").key("secret.bin").send().await;
    expect_s3_error(no_key, 400, &["InvalidRequest"], "GET of an SSE-C object without its key");
    let head = s3.head_object().bucket("vault").key("secret.bin").send().await;
    expect_s3_error(head, 400, &[], "HEAD of an SSE-C object without its key");
    let wrong = s3
        .get_object()
        .bucket("vault")
        .key("secret.bin")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key_b.0)
        .sse_customer_key_md5(&key_b.1)
        .send()
        .await;
    expect_s3_error(wrong, 403, &["AccessDenied"], "GET of an SSE-C object with another key");
    let bad_md5 = s3
        .put_object()
        .bucket("vault")
        .key("x")
        .body(ByteStream::from_static(b"x"))
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key_a.0)
        .sse_customer_key_md5(&key_b.1)
        .send()
        .await;
    expect_s3_error(bad_md5, 400, &["InvalidArgument"], "PUT with a key MD5 that is not the key's");

    assert_bytes_eq(&get_with_key(&s3, "vault", "secret.bin", &key_a, None).await, &data, "GET with the key");
    // A range across a frame boundary (64 KiB) and one inside the last frame.
    let ranged = get_with_key(&s3, "vault", "secret.bin", &key_a, Some("bytes=65530-200000")).await;
    assert_bytes_eq(&ranged, &data[65530..=200000], "a range across frames");
    let tail = get_with_key(&s3, "vault", "secret.bin", &key_a, Some("bytes=-10")).await;
    assert_bytes_eq(&tail, &data[data.len() - 10..], "the last ten bytes");
    let head = s3
        .head_object()
        .bucket("vault")
        .key("secret.bin")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key_a.0)
        .sse_customer_key_md5(&key_a.1)
        .send()
        .await
        .ok_or_panic("HEAD with the key");
    assert_eq!(head.content_length(), Some(data.len() as i64), "HEAD reports the plaintext's length");

    // Copies: to SSE-S3 (the frames are shared, their keys sealed again) and to
    // unencrypted (the bytes are written anew).
    let source_key = |copy: aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder| {
        copy.copy_source("vault/secret.bin")
            .copy_source_sse_customer_algorithm("AES256")
            .copy_source_sse_customer_key(&key_a.0)
            .copy_source_sse_customer_key_md5(&key_a.1)
    };
    let without = s3.copy_object().bucket("vault").key("copy-none").copy_source("vault/secret.bin").send().await;
    expect_s3_error(without, 400, &["InvalidRequest"], "a copy of an SSE-C source without its key");
    let copied = source_key(s3.copy_object().bucket("vault").key("copy-s3"))
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .ok_or_panic("copy SSE-C -> SSE-S3");
    assert_eq!(copied.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "the copy's encryption");
    source_key(s3.copy_object().bucket("vault").key("copy-plain")).send().await.ok_or_panic("copy SSE-C -> none");
    let plain = s3.get_object().bucket("vault").key("copy-plain").send().await.ok_or_panic("GET the plain copy");
    assert_eq!(plain.server_side_encryption(), None, "the plain copy reports no encryption");
    assert_eq!(plain.e_tag(), Some(etag_of(&data).as_str()), "the plain copy's ETag is its MD5");
    assert_bytes_eq(&collect_body(plain.body, "plain copy").await, &data, "the plain copy");

    server.restart();
    let s3 = server.client();
    assert_bytes_eq(&get_with_key(&s3, "vault", "secret.bin", &key_a, None).await, &data, "SSE-C after kill -9");
    assert_bytes_eq(&get(&s3, "vault", "copy-s3").await, &data, "the SSE-S3 copy after kill -9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_s3_sse_kms_and_bucket_default_encryption() {
    let mut server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "enc").await;
    let data = seeded_bytes(9, 200_000);

    let put = s3
        .put_object()
        .bucket("enc")
        .key("s3")
        .body(ByteStream::from(data.clone()))
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .ok_or_panic("PUT with SSE-S3");
    assert_eq!(put.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "PUT SSE-S3 reported");
    assert_eq!(put.e_tag(), Some(etag_of(&data).as_str()), "an SSE-S3 ETag is the MD5, as on S3");
    let put = s3
        .put_object()
        .bucket("enc")
        .key("kms")
        .body(ByteStream::from(data.clone()))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("team-key")
        .send()
        .await
        .ok_or_panic("PUT with SSE-KMS");
    assert_eq!(put.ssekms_key_id(), Some("team-key"), "PUT SSE-KMS reports its key id");
    assert!(!found_on_disk(server.data_dir(), &data[1000..1064]), "the plaintext is on disk");
    let got = s3.get_object().bucket("enc").key("kms").send().await.ok_or_panic("GET SSE-KMS");
    assert_eq!(got.server_side_encryption(), Some(&ServerSideEncryption::AwsKms), "GET SSE-KMS reported");
    assert_eq!(got.ssekms_key_id(), Some("team-key"), "GET reports the key id");
    assert_bytes_eq(&collect_body(got.body, "GET kms").await, &data, "SSE-KMS body");

    let conflict = s3
        .put_object()
        .bucket("enc")
        .key("x")
        .body(ByteStream::from_static(b"x"))
        .server_side_encryption(ServerSideEncryption::Aes256)
        .ssekms_key_id("team-key")
        .send()
        .await;
    expect_s3_error(conflict, 400, &["InvalidArgument"], "SSE-S3 with a KMS key id");

    // A bucket's default encryption applies to writes that name none.
    let missing = s3.get_bucket_encryption().bucket("enc").send().await;
    expect_s3_error(missing, 404, &["ServerSideEncryptionConfigurationNotFoundError"], "no default encryption");
    let by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::AwsKms)
        .kms_master_key_id("bucket-key")
        .build()
        .unwrap();
    let rule = ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(by_default).build();
    let config = ServerSideEncryptionConfiguration::builder().rules(rule).build().unwrap();
    s3.put_bucket_encryption()
        .bucket("enc")
        .server_side_encryption_configuration(config)
        .send()
        .await
        .ok_or_panic("PutBucketEncryption");
    let put = s3
        .put_object()
        .bucket("enc")
        .key("defaulted")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .ok_or_panic("PUT under the default");
    assert_eq!(put.ssekms_key_id(), Some("bucket-key"), "the default's key encrypts a plain PUT");

    // Multipart under the default (SSE-KMS), one part copied from the SSE-S3 object.
    let part1 = seeded_bytes(11, 5 * 1024 * 1024 + 3);
    let upload = s3.create_multipart_upload().bucket("enc").key("mp").send().await.ok_or_panic("CreateMultipartUpload");
    assert_eq!(upload.ssekms_key_id(), Some("bucket-key"), "the upload reports the default's key");
    let upload_id = upload.upload_id().unwrap();
    let p1 = s3
        .upload_part()
        .bucket("enc")
        .key("mp")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from(part1.clone()))
        .send()
        .await
        .ok_or_panic("UploadPart 1");
    let p2 = s3
        .upload_part_copy()
        .bucket("enc")
        .key("mp")
        .upload_id(upload_id)
        .part_number(2)
        .copy_source("enc/s3")
        .copy_source_range("bytes=100-149999")
        .send()
        .await
        .ok_or_panic("UploadPartCopy from the SSE-S3 object");
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(p1.e_tag().unwrap()).build())
        .parts(CompletedPart::builder().part_number(2).e_tag(p2.copy_part_result().unwrap().e_tag().unwrap()).build())
        .build();
    s3.complete_multipart_upload()
        .bucket("enc")
        .key("mp")
        .upload_id(upload_id)
        .multipart_upload(parts)
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload");
    let whole: Vec<u8> = [&part1[..], &data[100..150_000]].concat();
    assert_bytes_eq(&get(&s3, "enc", "mp").await, &whole, "the encrypted multipart object");
    let second = s3.get_object().bucket("enc").key("mp").part_number(2).send().await.ok_or_panic("GET part 2");
    assert_bytes_eq(&collect_body(second.body, "part 2").await, &data[100..150_000], "part 2");
    let past_the_last = s3.get_object().bucket("enc").key("mp").part_number(3).send().await;
    expect_s3_error(past_the_last, 400, &["InvalidPart"], "GET of part 3 of 2 of an encrypted object");
    let across = format!("bytes={}-{}", part1.len() - 5, part1.len() + 5);
    let ranged = s3.get_object().bucket("enc").key("mp").range(across).send().await.ok_or_panic("GET across parts");
    let start = part1.len() - 5;
    assert_bytes_eq(&collect_body(ranged.body, "across").await, &whole[start..start + 11], "a range across parts");

    s3.delete_bucket_encryption().bucket("enc").send().await.ok_or_panic("DeleteBucketEncryption");
    let plain = seeded_bytes(13, 5000);
    let put = s3
        .put_object()
        .bucket("enc")
        .key("plain")
        .body(ByteStream::from(plain.clone()))
        .send()
        .await
        .ok_or_panic("PUT after the default is gone");
    assert_eq!(put.server_side_encryption(), None, "no encryption once the default is deleted");
    // The check that finds no plaintext above finds an unencrypted body.
    assert!(found_on_disk(server.data_dir(), &plain[1000..1064]), "an unencrypted body is not found on disk");

    server.restart();
    let s3 = server.client();
    for (key, want) in [("s3", &data), ("kms", &data), ("defaulted", &data), ("mp", &whole)] {
        assert_bytes_eq(&get(&s3, "enc", key).await, want, format!("{key} after kill -9"));
    }
    let missing = s3.get_bucket_encryption().bucket("enc").send().await;
    expect_s3_error(missing, 404, &["ServerSideEncryptionConfigurationNotFoundError"], "deleted default after kill -9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_endpoint_reads_server_encrypted_objects_and_refuses_sse_c_ones() {
    // Plain HTTP (the SQL requests here are raw ones), so SSE-C keys are let through.
    let server =
        Server::start_with(ServerOptions { extra_args: vec!["--allow-sse-c-over-http".into()], ..Default::default() });
    let s3 = server.client();
    create_bucket(&s3, "tables").await;
    let csv = b"city,people\nLyon,522000\nNantes,320000\n";
    s3.put_object()
        .bucket("tables")
        .key("kms.csv")
        .body(ByteStream::from_static(csv))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .send()
        .await
        .ok_or_panic("PUT an SSE-KMS CSV");
    put_with_customer_key(&s3, "tables", "sse-c.csv", ByteStream::from_static(csv), &customer_key_b64(3))
        .send()
        .await
        .ok_or_panic("PUT an SSE-C CSV");
    let answer = sql_csv(&server, "SELECT sum(people) AS n FROM read_csv('s3://tables/kms.csv')").await;
    assert_eq!(answer, "n\n842000\n", "SQL over an SSE-KMS object reads its plaintext");
    let response =
        sql_as(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, "csv", "SELECT * FROM read_csv('s3://tables/sse-c.csv')")
            .await;
    assert_ne!(response.status, 200, "SQL over an SSE-C object without its key: {}", response.body_str());
    assert!(
        response.body_str().contains("customer-provided key"),
        "the refusal should say the object needs its customer key: HTTP {}: {}",
        response.status,
        response.body_str()
    );
    assert!(!response.body_str().contains("Lyon"), "plaintext of an SSE-C object leaked: {}", response.body_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_keys_over_plain_http_are_refused_unless_allowed() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "plain").await;
    put(&s3, "plain", "source.txt", b"plain source").await;
    let customer = customer_key_b64(4);
    let (key, md5) = (&customer.0, &customer.1);
    const NEEDS_TLS: &[&str] = &["InvalidRequest"];
    let put_secret = |s3: &aws_sdk_s3::Client| {
        put_with_customer_key(s3, "plain", "secret.txt", b"secret".to_vec(), &customer).send()
    };

    expect_s3_error(put_secret(&s3).await, 400, NEEDS_TLS, "PutObject with an SSE-C key over plain HTTP");
    let missing = s3.head_object().bucket("plain").key("secret.txt").send().await;
    expect_s3_error(missing, 404, &[], "the refused PUT stored nothing");
    let refused = s3
        .get_object()
        .bucket("plain")
        .key("source.txt")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(key)
        .sse_customer_key_md5(md5)
        .send()
        .await;
    expect_s3_error(refused, 400, NEEDS_TLS, "GetObject with an SSE-C key over plain HTTP");
    let refused = s3
        .copy_object()
        .bucket("plain")
        .key("copy.txt")
        .copy_source("plain/source.txt")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(key)
        .copy_source_sse_customer_key_md5(md5)
        .send()
        .await;
    expect_s3_error(refused, 400, NEEDS_TLS, "CopyObject with a source SSE-C key over plain HTTP");
    let refused = s3
        .create_multipart_upload()
        .bucket("plain")
        .key("parts.bin")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(key)
        .sse_customer_key_md5(md5)
        .send()
        .await;
    expect_s3_error(refused, 400, NEEDS_TLS, "CreateMultipartUpload with an SSE-C key over plain HTTP");
    // Requests without a customer key are not affected.
    assert_eq!(get(&s3, "plain", "source.txt").await, b"plain source");

    // --allow-sse-c-over-http: for TLS that ends in a proxy in front of the server.
    let allowed =
        Server::start_with(ServerOptions { extra_args: vec!["--allow-sse-c-over-http".into()], ..Default::default() });
    let s3 = allowed.client();
    create_bucket(&s3, "plain").await;
    put_secret(&s3).await.ok_or_panic("PutObject with an SSE-C key over plain HTTP, allowed by the flag");
    assert_eq!(get_with_key(&s3, "plain", "secret.txt", &customer, None).await, b"secret");
}
