//! Object lock: buckets created with it (versioned for good), default retention,
//! COMPLIANCE (no one deletes a version before its date, which can only be extended),
//! GOVERNANCE (yields to x-amz-bypass-governance-retention), legal holds; a locked
//! version stays readable through `quarry admin compact`, and once its lock ends and it
//! is deleted, compaction erases its bytes.

use std::time::Duration;

use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode, ObjectLockRule,
    VersioningConfiguration,
};

use crate::harness::*;

fn seconds_from_now(seconds: i64) -> DateTime {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    DateTime::from_secs(now + seconds)
}

async fn locked_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.create_bucket().bucket(bucket).object_lock_enabled_for_bucket(true).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_is_kept_from_everyone_then_erased_after_it_ends() {
    let mut server = Server::start();
    let s3 = server.client();
    locked_bucket(&s3, "vault").await;
    let versioning = s3.get_bucket_versioning().bucket("vault").send().await.unwrap();
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled), "object lock turns versioning on");
    let suspend = VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
    let refused = s3.put_bucket_versioning().bucket("vault").versioning_configuration(suspend).send().await;
    expect_s3_error(refused, 409, &["InvalidBucketState"], "suspending versioning of a bucket with object lock");

    let marker = random_bytes(48);
    let until = seconds_from_now(6);
    let put = s3
        .put_object()
        .bucket("vault")
        .key("ledger")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until)
        .body(marker.clone().into())
        .send()
        .await
        .unwrap();
    let version = put.version_id().unwrap().to_owned();
    let head = s3.head_object().bucket("vault").key("ledger").send().await.unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    assert_eq!(head.object_lock_retain_until_date().map(|d| d.secs()), Some(until.secs()));

    // No one deletes it: not with the bypass, not the admin key.
    let delete = s3.delete_object().bucket("vault").key("ledger").version_id(&version).send().await;
    expect_s3_error(delete, 403, &["AccessDenied"], "DELETE of a COMPLIANCE version");
    let bypass =
        s3.delete_object().bucket("vault").key("ledger").version_id(&version).bypass_governance_retention(true).send();
    expect_s3_error(bypass.await, 403, &["AccessDenied"], "DELETE of a COMPLIANCE version with the bypass");
    // Its date can be extended, never shortened, its mode never changed.
    let retention = |mode: ObjectLockRetentionMode, until: DateTime| {
        ObjectLockRetention::builder().mode(mode).retain_until_date(until).build()
    };
    let shorter = s3
        .put_object_retention()
        .bucket("vault")
        .key("ledger")
        .version_id(&version)
        .retention(retention(ObjectLockRetentionMode::Compliance, seconds_from_now(2)))
        .send()
        .await;
    expect_s3_error(shorter, 403, &["AccessDenied"], "shortening a COMPLIANCE retention");
    let to_governance = s3
        .put_object_retention()
        .bucket("vault")
        .key("ledger")
        .version_id(&version)
        .bypass_governance_retention(true)
        .retention(retention(ObjectLockRetentionMode::Governance, seconds_from_now(60)))
        .send()
        .await;
    expect_s3_error(to_governance, 403, &["AccessDenied"], "turning COMPLIANCE into GOVERNANCE");
    let extended_until = seconds_from_now(8);
    s3.put_object_retention()
        .bucket("vault")
        .key("ledger")
        .version_id(&version)
        .retention(retention(ObjectLockRetentionMode::Compliance, extended_until))
        .send()
        .await
        .unwrap();
    let got = s3.get_object_retention().bucket("vault").key("ledger").version_id(&version).send().await.unwrap();
    assert_eq!(got.retention().and_then(|r| r.retain_until_date()).map(|d| d.secs()), Some(extended_until.secs()));

    // A delete without a version id only hides it (a delete marker); the bytes stay
    // through compaction and a kill -9.
    s3.delete_object().bucket("vault").key("ledger").send().await.unwrap();
    let compacted = admin_compact(&server);
    assert!(compacted.status.success(), "quarry admin compact: {}", String::from_utf8_lossy(&compacted.stderr));
    server.restart();
    let s3 = server.client();
    let kept = s3.get_object().bucket("vault").key("ledger").version_id(&version).send().await.unwrap();
    assert_eq!(collect_body(kept.body, "the locked version").await, marker, "readable after compaction");
    let delete = s3.delete_object().bucket("vault").key("ledger").version_id(&version).send().await;
    expect_s3_error(delete, 403, &["AccessDenied"], "DELETE of a COMPLIANCE version after a restart");

    // Once the date passes it can be deleted, and compaction erases its bytes.
    let wait = extended_until.secs() - seconds_from_now(0).secs() + 1;
    tokio::time::sleep(Duration::from_secs(wait.max(0) as u64)).await;
    s3.delete_object().bucket("vault").key("ledger").version_id(&version).send().await.unwrap();
    let compacted = admin_compact(&server);
    assert!(compacted.status.success(), "quarry admin compact: {}", String::from_utf8_lossy(&compacted.stderr));
    if let Some(file) = file_containing(server.data_dir(), &marker) {
        panic!("the expired, deleted version's bytes are still in {file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_yields_to_the_bypass_and_legal_holds_to_no_one() {
    let server = Server::start();
    let s3 = server.client();
    locked_bucket(&s3, "gov").await;
    let missing = s3.get_object_lock_configuration().bucket("gov").send().await.unwrap();
    assert_eq!(
        missing.object_lock_configuration().and_then(|c| c.object_lock_enabled()),
        Some(&ObjectLockEnabled::Enabled)
    );
    // A default retention: what a version written without its own gets.
    let rule = ObjectLockRule::builder()
        .default_retention(DefaultRetention::builder().mode(ObjectLockRetentionMode::Governance).days(1).build())
        .build();
    let configuration =
        ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled).rule(rule).build();
    s3.put_object_lock_configuration().bucket("gov").object_lock_configuration(configuration).send().await.unwrap();
    let got = s3.get_object_lock_configuration().bucket("gov").send().await.unwrap();
    let default = got.object_lock_configuration().and_then(|c| c.rule()).and_then(|r| r.default_retention()).unwrap();
    assert_eq!((default.mode(), default.days()), (Some(&ObjectLockRetentionMode::Governance), Some(1)));

    let put = s3.put_object().bucket("gov").key("k").body(b"governed".to_vec().into()).send().await.unwrap();
    let version = put.version_id().unwrap().to_owned();
    let head = s3.head_object().bucket("gov").key("k").send().await.unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance), "the default retention applies");
    let delete = s3.delete_object().bucket("gov").key("k").version_id(&version).send().await;
    expect_s3_error(delete, 403, &["AccessDenied"], "DELETE of a GOVERNANCE version without the bypass");

    // A legal hold keeps it even from the bypass, until it is lifted.
    let hold = |status: ObjectLockLegalHoldStatus| ObjectLockLegalHold::builder().status(status).build();
    s3.put_object_legal_hold()
        .bucket("gov")
        .key("k")
        .version_id(&version)
        .legal_hold(hold(ObjectLockLegalHoldStatus::On))
        .send()
        .await
        .unwrap();
    let got = s3.get_object_legal_hold().bucket("gov").key("k").version_id(&version).send().await.unwrap();
    assert_eq!(got.legal_hold().and_then(|h| h.status()), Some(&ObjectLockLegalHoldStatus::On));
    let held =
        s3.delete_object().bucket("gov").key("k").version_id(&version).bypass_governance_retention(true).send().await;
    expect_s3_error(held, 403, &["AccessDenied"], "DELETE of a version under legal hold, with the bypass");
    s3.put_object_legal_hold()
        .bucket("gov")
        .key("k")
        .version_id(&version)
        .legal_hold(hold(ObjectLockLegalHoldStatus::Off))
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket("gov")
        .key("k")
        .version_id(&version)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap();
    let gone = s3.get_object().bucket("gov").key("k").version_id(&version).send().await;
    expect_s3_error(gone, 404, &["NoSuchVersion"], "the deleted version");

    // Object lock needs a bucket created with it.
    create_bucket(&s3, "plain").await;
    let no_config = s3.get_object_lock_configuration().bucket("plain").send().await;
    expect_s3_error(no_config, 404, &["ObjectLockConfigurationNotFoundError"], "lock configuration of a plain bucket");
    let locked_put = s3
        .put_object()
        .bucket("plain")
        .key("k")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(seconds_from_now(60))
        .body(b"x".to_vec().into())
        .send()
        .await;
    expect_s3_error(locked_put, 400, &["InvalidRequest"], "a locked PUT into a bucket without object lock");
    // ... or one whose versioning is enabled, which may turn it on later.
    let enable = || {
        let configuration = ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled).build();
        s3.put_object_lock_configuration().bucket("plain").object_lock_configuration(configuration).send()
    };
    expect_s3_error(enable().await, 409, &["InvalidBucketState"], "object lock on a bucket never versioned");
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning().bucket("plain").versioning_configuration(enabled).send().await.unwrap();
    enable().await.unwrap();
    s3.put_object()
        .bucket("plain")
        .key("k")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(seconds_from_now(60))
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
}
