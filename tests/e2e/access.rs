//! Access control from the config file: bucket-limited read-only and read-write
//! keys, extra admin keys.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use crate::harness::*;

const RO_KEY: &str = "readonlykey";
const RO_SECRET: &str = "readonlysecret123";
const RW_KEY: &str = "readwritekey";
const RW_SECRET: &str = "readwritesecret123";
const OTHER_ADMIN_KEY: &str = "otheradmin";
const OTHER_ADMIN_SECRET: &str = "otheradminsecret1";

const CONFIG: &str = r#"
[[keys]]
access_key = "readonlykey"
secret_key = "readonlysecret123"
buckets = ["shared"]
access = "read-only"

[[keys]]
access_key = "readwritekey"
secret_key = "readwritesecret123"
buckets = ["shared"]
access = "read-write"

[[keys]]
access_key = "otheradmin"
secret_key = "otheradminsecret1"
admin = true
"#;

/// Starts a server with the config above, buckets "shared" and "private" each
/// holding one object.
async fn setup() -> (Server, aws_sdk_s3::Client) {
    let server = Server::start_with(ServerOptions { config_toml: Some(CONFIG.to_string()), ..Default::default() });
    let admin = server.client();
    create_bucket(&admin, "shared").await;
    create_bucket(&admin, "private").await;
    put(&admin, "shared", "doc.txt", b"shared document").await;
    put(&admin, "private", "secret.txt", b"private document").await;
    (server, admin)
}

const DENIED: &[&str] = &["AccessDenied"];

async fn bucket_names(s3: &aws_sdk_s3::Client, who: &str) -> Vec<String> {
    let out = s3.list_buckets().send().await.ok_or_panic(format!("ListBuckets as {who}"));
    let mut names: Vec<String> = out.buckets().iter().map(|b| b.name().unwrap_or_default().to_string()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_key_limited_to_one_bucket() {
    let (server, admin) = setup().await;
    let ro = server.client_with(RO_KEY, RO_SECRET);

    // Allowed: reads on "shared".
    let body = get(&ro, "shared", "doc.txt").await;
    assert_bytes_eq(&body, b"shared document", "read-only key: GET shared/doc.txt");
    ro.head_object().bucket("shared").key("doc.txt").send().await.ok_or_panic("read-only key: HEAD shared/doc.txt");
    ro.head_bucket().bucket("shared").send().await.ok_or_panic("read-only key: HeadBucket shared");
    assert_eq!(list_all_keys(&ro, "shared").await, vec!["doc.txt".to_string()], "read-only key: ListObjectsV2 shared");
    let v1 = ro.list_objects().bucket("shared").send().await.ok_or_panic("read-only key: ListObjects shared");
    assert_eq!(v1.contents().len(), 1, "read-only key: ListObjects shared count");
    assert_eq!(
        bucket_names(&ro, "read-only key").await,
        vec!["shared".to_string()],
        "ListBuckets as a key limited to 'shared'"
    );

    // Denied: writes on "shared".
    expect_s3_error(
        ro.put_object().bucket("shared").key("doc.txt").body(ByteStream::from_static(b"overwritten")).send().await,
        403,
        DENIED,
        "read-only key: PUT shared/doc.txt",
    );
    expect_s3_error(
        ro.put_object().bucket("shared").key("new.txt").body(ByteStream::from_static(b"new")).send().await,
        403,
        DENIED,
        "read-only key: PUT shared/new.txt",
    );
    expect_s3_error(
        ro.delete_object().bucket("shared").key("doc.txt").send().await,
        403,
        DENIED,
        "read-only key: DELETE shared/doc.txt",
    );
    expect_s3_error(
        ro.copy_object().bucket("shared").key("copy.txt").copy_source("shared/doc.txt").send().await,
        403,
        DENIED,
        "read-only key: CopyObject within shared",
    );
    expect_s3_error(
        ro.create_multipart_upload().bucket("shared").key("mpu").send().await,
        403,
        DENIED,
        "read-only key: CreateMultipartUpload in shared",
    );
    // DeleteObjects: either the whole request is denied, or every key is reported
    // with an AccessDenied error. Either way nothing is deleted.
    let res = ro
        .delete_objects()
        .bucket("shared")
        .delete(Delete::builder().objects(ObjectIdentifier::builder().key("doc.txt").build().unwrap()).build().unwrap())
        .send()
        .await;
    match res {
        Ok(out) => {
            let deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
            assert!(deleted.is_empty(), "read-only key: DeleteObjects reported deletions {deleted:?}");
            let codes: Vec<_> = out.errors().iter().map(|e| (e.key(), e.code())).collect();
            assert_eq!(
                codes,
                vec![(Some("doc.txt"), Some("AccessDenied"))],
                "read-only key: DeleteObjects per-key errors"
            );
        }
        Err(e) => {
            expect_s3_error::<(), _>(Err(e), 403, DENIED, "read-only key: DeleteObjects in shared");
        }
    }
    expect_s3_error(
        ro.create_bucket().bucket("ro-new-bucket").send().await,
        403,
        DENIED,
        "read-only key: CreateBucket",
    );
    expect_s3_error(
        ro.delete_bucket().bucket("shared").send().await,
        403,
        DENIED,
        "read-only key: DeleteBucket shared",
    );

    // Denied: anything on another bucket.
    expect_s3_error(
        ro.get_object().bucket("private").key("secret.txt").send().await,
        403,
        DENIED,
        "read-only key: GET private/secret.txt",
    );
    expect_s3_error(
        ro.head_object().bucket("private").key("secret.txt").send().await,
        403,
        &[],
        "read-only key: HEAD private/secret.txt",
    );
    expect_s3_error(
        ro.list_objects_v2().bucket("private").send().await,
        403,
        DENIED,
        "read-only key: ListObjectsV2 private",
    );
    expect_s3_error(ro.head_bucket().bucket("private").send().await, 403, &[], "read-only key: HeadBucket private");

    // Nothing changed.
    let body = get(&admin, "shared", "doc.txt").await;
    assert_bytes_eq(&body, b"shared document", "shared/doc.txt after denied writes");
    assert_eq!(
        list_all_keys(&admin, "shared").await,
        vec!["doc.txt".to_string()],
        "keys in shared after denied writes"
    );
    assert_eq!(
        bucket_names(&admin, "admin").await,
        vec!["private".to_string(), "shared".to_string()],
        "buckets after denied CreateBucket/DeleteBucket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_key_limited_to_one_bucket() {
    let (server, admin) = setup().await;
    let rw = server.client_with(RW_KEY, RW_SECRET);

    // Allowed: reads and writes on "shared".
    put(&rw, "shared", "rw.txt", b"written by rw").await;
    let body = get(&rw, "shared", "rw.txt").await;
    assert_bytes_eq(&body, b"written by rw", "read-write key: GET own write");
    let body = get(&admin, "shared", "rw.txt").await;
    assert_bytes_eq(&body, b"written by rw", "admin: GET object written by the read-write key");
    rw.copy_object()
        .bucket("shared")
        .key("rw-copy.txt")
        .copy_source("shared/rw.txt")
        .send()
        .await
        .ok_or_panic("read-write key: CopyObject within shared");
    let upload_id = rw
        .create_multipart_upload()
        .bucket("shared")
        .key("rw-mpu")
        .send()
        .await
        .ok_or_panic("read-write key: CreateMultipartUpload in shared")
        .upload_id()
        .unwrap()
        .to_string();
    rw.abort_multipart_upload()
        .bucket("shared")
        .key("rw-mpu")
        .upload_id(&upload_id)
        .send()
        .await
        .ok_or_panic("read-write key: AbortMultipartUpload in shared");
    rw.delete_object().bucket("shared").key("rw-copy.txt").send().await.ok_or_panic("read-write key: DELETE in shared");
    assert_eq!(
        list_all_keys(&rw, "shared").await,
        vec!["doc.txt".to_string(), "rw.txt".to_string()],
        "read-write key: ListObjectsV2 shared"
    );
    assert_eq!(
        bucket_names(&rw, "read-write key").await,
        vec!["shared".to_string()],
        "ListBuckets as a read-write key limited to 'shared'"
    );

    // Denied: other buckets, bucket management.
    expect_s3_error(
        rw.put_object().bucket("private").key("intruder.txt").body(ByteStream::from_static(b"intruder")).send().await,
        403,
        DENIED,
        "read-write key: PUT private/intruder.txt",
    );
    expect_s3_error(
        rw.get_object().bucket("private").key("secret.txt").send().await,
        403,
        DENIED,
        "read-write key: GET private/secret.txt",
    );
    expect_s3_error(
        rw.delete_object().bucket("private").key("secret.txt").send().await,
        403,
        DENIED,
        "read-write key: DELETE private/secret.txt",
    );
    // Copying out of a bucket the key cannot read.
    expect_s3_error(
        rw.copy_object().bucket("shared").key("exfiltrated.txt").copy_source("private/secret.txt").send().await,
        403,
        DENIED,
        "read-write key: CopyObject from private into shared",
    );
    expect_s3_error(
        rw.create_bucket().bucket("rw-new-bucket").send().await,
        403,
        DENIED,
        "read-write key: CreateBucket (needs admin)",
    );
    expect_s3_error(
        rw.delete_bucket().bucket("shared").send().await,
        403,
        DENIED,
        "read-write key: DeleteBucket shared (needs admin)",
    );

    assert_eq!(
        list_all_keys(&admin, "private").await,
        vec!["secret.txt".to_string()],
        "keys in private after denied writes"
    );
    let body = get(&admin, "private", "secret.txt").await;
    assert_bytes_eq(&body, b"private document", "private/secret.txt after denied DELETE");
    expect_s3_error(
        admin.head_object().bucket("shared").key("exfiltrated.txt").send().await,
        404,
        &[],
        "denied cross-bucket copy must not create the destination",
    );
    assert_eq!(
        bucket_names(&admin, "admin").await,
        vec!["private".to_string(), "shared".to_string()],
        "buckets after denied CreateBucket/DeleteBucket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_admin_key_has_full_access() {
    let (server, admin) = setup().await;
    let other = server.client_with(OTHER_ADMIN_KEY, OTHER_ADMIN_SECRET);

    assert_eq!(
        bucket_names(&other, "config admin").await,
        vec!["private".to_string(), "shared".to_string()],
        "ListBuckets as a config admin key"
    );
    create_bucket(&other, "other-admins-bucket").await;
    put(&other, "private", "from-other-admin", b"hello").await;
    let body = get(&other, "private", "secret.txt").await;
    assert_bytes_eq(&body, b"private document", "config admin: GET private/secret.txt");
    let body = get(&admin, "private", "from-other-admin").await;
    assert_bytes_eq(&body, b"hello", "env admin: GET object written by config admin");
    assert_eq!(
        bucket_names(&admin, "env admin").await,
        vec!["other-admins-bucket".to_string(), "private".to_string(), "shared".to_string()],
        "env admin sees the bucket created by the config admin"
    );
    other.delete_bucket().bucket("other-admins-bucket").send().await.ok_or_panic("config admin: DeleteBucket");

    // Limited keys still don't see buckets beyond their own.
    let ro = server.client_with(RO_KEY, RO_SECRET);
    assert_eq!(
        bucket_names(&ro, "read-only key").await,
        vec!["shared".to_string()],
        "ListBuckets as read-only key with more buckets present"
    );

    // A config key with the wrong secret is still rejected.
    let bad = server.client_with(OTHER_ADMIN_KEY, "not-the-right-secret");
    expect_s3_error(
        bad.list_buckets().send().await,
        403,
        &["SignatureDoesNotMatch"],
        "config admin key with a wrong secret",
    );
}
