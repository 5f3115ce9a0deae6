//! `--max-object-size-bytes`: PutObject larger than the limit is EntityTooLarge.

use aws_sdk_s3::primitives::ByteStream;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_larger_than_max_object_size_is_entity_too_large() {
    let limit = MIB as u64;
    let server = Server::start_with(ServerOptions { max_object_size_bytes: Some(limit), ..Default::default() });
    let s3 = server.client();
    let bucket = "limited";
    create_bucket(&s3, bucket).await;

    // Exactly at the limit: accepted.
    let at_limit = random_bytes(MIB);
    put(&s3, bucket, "at-limit", &at_limit).await;
    let body = get(&s3, bucket, "at-limit").await;
    assert_bytes_eq(&body, &at_limit, "GET object of exactly --max-object-size-bytes");

    // Above the limit: rejected, nothing stored, existing object untouched.
    for (key, len) in [("two-mib", 2 * MIB), ("limit-plus-one", MIB + 1), ("at-limit", 2 * MIB)] {
        expect_s3_error(
            s3.put_object().bucket(bucket).key(key).body(ByteStream::from(random_bytes(len))).send().await,
            400,
            &["EntityTooLarge"],
            format!("PutObject {key} of {len} bytes with --max-object-size-bytes {limit}"),
        );
    }
    // Streaming (aws-chunked) upload above the limit.
    let big = random_bytes(2 * MIB);
    let stream = file_stream(server.temp_path(), "big-upload", &big).await;
    expect_s3_error(
        s3.put_object().bucket(bucket).key("streamed-two-mib").body(stream).send().await,
        400,
        &["EntityTooLarge"],
        format!("streaming PutObject of {} bytes with --max-object-size-bytes {limit}", big.len()),
    );

    let mut keys = list_all_keys(&s3, bucket).await;
    keys.sort();
    assert_eq!(keys, vec!["at-limit".to_string()], "keys after rejected oversize PUTs");
    let body = get(&s3, bucket, "at-limit").await;
    assert_bytes_eq(&body, &at_limit, "object after a rejected oversize overwrite");

    // Small objects are unaffected.
    put(&s3, bucket, "small", b"tiny").await;
    let body = get(&s3, bucket, "small").await;
    assert_bytes_eq(&body, b"tiny", "small object under the limit");
}

/// A POST Object form is read whole into memory (by s3s) before anything is decided, so
/// the front bounds it from its declared length: over 16 MiB is 400 EntityTooLarge,
/// without a length 411 MissingContentLength, even where anyone may upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_forms_are_bounded_before_they_are_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server =
        Server::start_with(ServerOptions { config_toml: Some(TWO_OWNERS_CONFIG.into()), ..Default::default() });
    let alice = server.client_with("alicekey", "alicesecret123");
    create_bucket(&alice, "drop").await;
    alice.delete_public_access_block().bucket("drop").send().await.ok_or_panic("DeletePublicAccessBlock");
    let policy = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::drop/*"}]}"#;
    alice.put_bucket_policy().bucket("drop").policy(policy).send().await.ok_or_panic("PutBucketPolicy");
    let boundary = "quarry-form-boundary";
    let form = |content: &[u8]| {
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nbig.bin\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        body
    };
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let url = server_url(&server, "drop");
    let small = raw_request("POST", &url, &[("content-type", &content_type)], form(b"small")).await;
    assert_eq!(small.status, 204, "an anonymous form the policy allows: {}", small.body_str());
    let three_mib = raw_request("POST", &url, &[("content-type", &content_type)], form(&vec![b'y'; 3 * MIB])).await;
    assert_eq!(three_mib.status, 204, "a 3 MiB form: {}", three_mib.body_str());
    let stored = get(&alice, "drop", "big.bin").await;
    assert_bytes_eq(&stored, &vec![b'y'; 3 * MIB], "the 3 MiB form's file");
    let big = raw_request("POST", &url, &[("content-type", &content_type)], form(&vec![b'x'; 17 * MIB])).await;
    expect_error_document(&big, 400, "EntityTooLarge", "a 17 MiB POST form");
    // A chunked form declares no length: refused from its head alone (the body is not
    // sent, as the server answers and closes without reading it).
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    let head = format!(
        "POST /drop HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.addr()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(
        answer.starts_with("HTTP/1.1 411") && answer.contains("MissingContentLength"),
        "a chunked POST form: expected 411 MissingContentLength, got {answer}"
    );
}
