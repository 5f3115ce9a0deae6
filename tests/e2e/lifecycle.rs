//! Bucket lifecycle: the configuration API with S3's checks, and the background pass
//! that carries the rules out — current versions expire (a delete marker in a
//! versioned bucket), noncurrent versions and lone delete markers go, incomplete
//! uploads are aborted — with a lifecycle day shortened to two seconds.

use std::time::Duration;

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, Transition,
    TransitionStorageClass, VersioningConfiguration,
};

use crate::harness::*;

const DAY_SECS: u64 = 2;

fn rule(id: &str, prefix: &str) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
}

async fn put_lifecycle(s3: &aws_sdk_s3::Client, bucket: &str, rules: Vec<LifecycleRule>) {
    let config = BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build().unwrap();
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(config)
        .send()
        .await
        .ok_or_panic(format!("PutBucketLifecycleConfiguration {bucket}"));
}

/// Waits (up to a minute) until `done` holds, polling every half second.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..120 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{what}: still not done after a minute of lifecycle passes");
}

async fn versions_of(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (usize, usize) {
    let listed = s3.list_object_versions().bucket(bucket).prefix(key).send().await.ok_or_panic("ListObjectVersions");
    (listed.versions().len(), listed.delete_markers().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_rules_are_checked_and_carried_out() {
    let mut server = Server::start_with(ServerOptions {
        extra_args: vec![
            "--lifecycle-interval-secs".into(),
            "1".into(),
            "--lifecycle-day-secs".into(),
            DAY_SECS.to_string(),
        ],
        ..Default::default()
    });
    let s3 = server.client();
    create_bucket(&s3, "plain").await;

    // The configuration API and S3's checks.
    let missing = s3.get_bucket_lifecycle_configuration().bucket("plain").send().await;
    expect_s3_error(missing, 404, &["NoSuchLifecycleConfiguration"], "GetBucketLifecycleConfiguration before any");
    let zero_days = rule("r", "x/").expiration(LifecycleExpiration::builder().days(0).build()).build().unwrap();
    let config = BucketLifecycleConfiguration::builder().rules(zero_days).build().unwrap();
    let refused = s3.put_bucket_lifecycle_configuration().bucket("plain").lifecycle_configuration(config).send().await;
    expect_s3_error(refused, 400, &["InvalidArgument"], "an expiration of 0 days");
    let transition = rule("t", "x/")
        .transitions(Transition::builder().days(30).storage_class(TransitionStorageClass::Glacier).build())
        .build()
        .unwrap();
    let config = BucketLifecycleConfiguration::builder().rules(transition).build().unwrap();
    let refused = s3.put_bucket_lifecycle_configuration().bucket("plain").lifecycle_configuration(config).send().await;
    expect_s3_error(refused, 501, &["NotImplemented"], "a transition to GLACIER");

    // Unversioned: logs/ expires after a day, keep/ stays; an old upload is aborted.
    put(&s3, "plain", "logs/a.txt", b"old log").await;
    put(&s3, "plain", "keep/b.txt", b"kept").await;
    let upload = s3.create_multipart_upload().bucket("plain").key("logs/big").send().await.ok_or_panic("upload");
    put_lifecycle(
        &s3,
        "plain",
        vec![
            rule("logs", "logs/")
                .expiration(LifecycleExpiration::builder().days(1).build())
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build(),
                )
                .build()
                .unwrap(),
        ],
    )
    .await;
    let got = s3.get_bucket_lifecycle_configuration().bucket("plain").send().await.ok_or_panic("Get");
    assert_eq!(got.rules().len(), 1, "the rule reads back");
    assert_eq!(got.rules()[0].id(), Some("logs"), "the rule's ID reads back");
    eventually("logs/a.txt expires", || async { list_all_keys(&s3, "plain").await == vec!["keep/b.txt".to_owned()] })
        .await;
    let uploads = s3.list_multipart_uploads().bucket("plain").send().await.ok_or_panic("ListMultipartUploads");
    assert!(
        uploads.uploads().iter().all(|u| u.upload_id() != upload.upload_id()),
        "the incomplete upload under logs/ should be aborted with the object: {uploads:?}"
    );

    // Versioned: the current version expires into a delete marker, noncurrent versions
    // go a day after they were replaced, and then the lone delete marker goes too.
    create_bucket(&s3, "versions").await;
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning().bucket("versions").versioning_configuration(enabled).send().await.ok_or_panic("V");
    put(&s3, "versions", "doc", b"one").await;
    put(&s3, "versions", "doc", b"two").await;
    assert_eq!(versions_of(&s3, "versions", "doc").await, (2, 0), "two versions before the rules");
    put_lifecycle(
        &s3,
        "versions",
        vec![
            rule("all", "")
                .expiration(LifecycleExpiration::builder().days(1).build())
                .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(1).build())
                .build()
                .unwrap(),
            rule("markers", "")
                .id("markers")
                .expiration(LifecycleExpiration::builder().expired_object_delete_marker(true).build())
                .build()
                .unwrap(),
        ],
    )
    .await;
    eventually("every version and then the delete marker of doc go", || async {
        versions_of(&s3, "versions", "doc").await == (0, 0)
    })
    .await;

    // The rules are in the log: they survive kill -9.
    server.restart();
    let s3 = server.client();
    let got = s3.get_bucket_lifecycle_configuration().bucket("versions").send().await.ok_or_panic("Get after kill -9");
    assert_eq!(got.rules().len(), 2, "both rules after kill -9");
    s3.delete_bucket_lifecycle().bucket("versions").send().await.ok_or_panic("DeleteBucketLifecycle");
    put(&s3, "versions", "doc", b"three").await;
    tokio::time::sleep(Duration::from_secs(3 * DAY_SECS)).await;
    assert_eq!(get(&s3, "versions", "doc").await, b"three", "no rule, no expiry");
}
