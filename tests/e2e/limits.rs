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
