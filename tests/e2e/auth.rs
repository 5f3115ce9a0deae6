//! Authentication: wrong secret key, unknown access key, unauthenticated
//! (anonymous) requests.

use aws_sdk_s3::primitives::ByteStream;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_key_is_signature_does_not_match() {
    let server = Server::start();
    let admin = server.client();
    let bucket = "auth-secret";
    create_bucket(&admin, bucket).await;
    put(&admin, bucket, "obj", b"original").await;

    let bad = server.client_with(ADMIN_ACCESS_KEY, "definitely-not-the-secret");
    expect_s3_error(
        bad.list_buckets().send().await,
        403,
        &["SignatureDoesNotMatch"],
        "ListBuckets with a wrong secret key",
    );
    expect_s3_error(
        bad.get_object().bucket(bucket).key("obj").send().await,
        403,
        &["SignatureDoesNotMatch"],
        "GetObject with a wrong secret key",
    );
    expect_s3_error(
        bad.head_object().bucket(bucket).key("obj").send().await,
        403,
        &[],
        "HeadObject with a wrong secret key",
    );
    expect_s3_error(
        bad.put_object().bucket(bucket).key("obj").body(ByteStream::from_static(b"overwritten")).send().await,
        403,
        &["SignatureDoesNotMatch"],
        "PutObject with a wrong secret key",
    );
    expect_s3_error(
        bad.delete_object().bucket(bucket).key("obj").send().await,
        403,
        &["SignatureDoesNotMatch"],
        "DeleteObject with a wrong secret key",
    );
    expect_s3_error(
        bad.create_bucket().bucket("sneaky-bucket").send().await,
        403,
        &["SignatureDoesNotMatch"],
        "CreateBucket with a wrong secret key",
    );
    let body = get(&admin, bucket, "obj").await;
    assert_bytes_eq(&body, b"original", "object after rejected PUT/DELETE with a wrong secret");
    expect_s3_error(
        admin.head_bucket().bucket("sneaky-bucket").send().await,
        404,
        &[],
        "bucket created with a wrong secret must not exist",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_access_key_is_invalid_access_key_id() {
    let server = Server::start();
    let admin = server.client();
    let bucket = "auth-unknown";
    create_bucket(&admin, bucket).await;
    put(&admin, bucket, "obj", b"original").await;

    let unknown = server.client_with("AKIDONOTEXIST", ADMIN_SECRET_KEY);
    expect_s3_error(
        unknown.list_buckets().send().await,
        403,
        &["InvalidAccessKeyId"],
        "ListBuckets with an unknown access key",
    );
    expect_s3_error(
        unknown.get_object().bucket(bucket).key("obj").send().await,
        403,
        &["InvalidAccessKeyId"],
        "GetObject with an unknown access key",
    );
    expect_s3_error(
        unknown.put_object().bucket(bucket).key("obj").body(ByteStream::from_static(b"overwritten")).send().await,
        403,
        &["InvalidAccessKeyId"],
        "PutObject with an unknown access key",
    );
    let body = get(&admin, bucket, "obj").await;
    assert_bytes_eq(&body, b"original", "object after rejected PUT with an unknown key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_are_denied() {
    let server = Server::start();
    let admin = server.client();
    let bucket = "auth-anon";
    create_bucket(&admin, bucket).await;
    put(&admin, bucket, "obj", b"secret").await;
    let base = server.endpoint();

    let cases = [
        ("GET", format!("{base}/"), "ListBuckets"),
        ("GET", format!("{base}/{bucket}"), "ListObjects"),
        ("GET", format!("{base}/{bucket}?list-type=2"), "ListObjectsV2"),
        ("GET", format!("{base}/{bucket}/obj"), "GetObject"),
        ("PUT", format!("{base}/{bucket}/obj"), "PutObject"),
        ("DELETE", format!("{base}/{bucket}/obj"), "DeleteObject"),
        ("PUT", format!("{base}/anon-bucket"), "CreateBucket"),
        ("DELETE", format!("{base}/{bucket}"), "DeleteBucket"),
    ];
    for (method, url, op) in &cases {
        let resp = raw_request(method, url, &[], b"anonymous data".to_vec()).await;
        assert_eq!(
            resp.status,
            403,
            "anonymous {op} ({method} {url}): expected 403, got {} body {}",
            resp.status,
            resp.body_str()
        );
        assert_eq!(
            resp.xml_tag("Code").as_deref(),
            Some("AccessDenied"),
            "anonymous {op} ({method} {url}): error code in body {}",
            resp.body_str()
        );
        assert!(!resp.body_str().contains("secret"), "anonymous {op}: response leaks object data: {}", resp.body_str());
    }
    // Anonymous HEAD: 403, no body.
    let resp = raw_request("HEAD", &format!("{base}/{bucket}/obj"), &[], Vec::new()).await;
    assert_eq!(resp.status, 403, "anonymous HeadObject status");

    let body = get(&admin, bucket, "obj").await;
    assert_bytes_eq(&body, b"secret", "object after anonymous PUT/DELETE attempts");
    expect_s3_error(
        admin.head_bucket().bucket("anon-bucket").send().await,
        404,
        &[],
        "bucket created anonymously must not exist",
    );
}
