//! Versioning: PutBucketVersioning / GetBucketVersioning, version ids on PUT, copy and
//! CompleteMultipartUpload, GET / HEAD / DELETE / copy by version id, delete markers
//! (404 or 405 with `x-amz-delete-marker`), the null version of suspended buckets,
//! ListObjectVersions pagination, DeleteObjects with version ids, and all of it after a
//! kill -9.

use aws_sdk_s3::types::{BucketVersioningStatus, Delete, ObjectIdentifier, VersioningConfiguration};

use crate::harness::*;

async fn set_versioning(s3: &aws_sdk_s3::Client, bucket: &str, status: BucketVersioningStatus) {
    let configuration = VersioningConfiguration::builder().status(status).build();
    s3.put_bucket_versioning().bucket(bucket).versioning_configuration(configuration).send().await.unwrap();
}

async fn put_version(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) -> String {
    let out = s3.put_object().bucket(bucket).key(key).body(data.to_vec().into()).send().await.unwrap();
    out.version_id().unwrap_or_else(|| panic!("PUT {key} in a versioned bucket names no version")).to_string()
}

async fn get_version(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, version: &str) -> Vec<u8> {
    let out = s3.get_object().bucket(bucket).key(key).version_id(version).send().await.unwrap();
    assert_eq!(out.version_id(), Some(version), "GET names the version it served");
    collect_body(out.body, format!("GET {key}?versionId={version}")).await
}

/// (key, version id, is latest, is a delete marker) of every version, page by page.
async fn all_versions(s3: &aws_sdk_s3::Client, bucket: &str, page_size: i32) -> Vec<(String, String, bool, bool)> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .max_keys(page_size)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .unwrap();
        let mut rows: Vec<(String, String, bool, bool)> = page
            .versions()
            .iter()
            .map(|v| (v.key().unwrap().into(), v.version_id().unwrap().into(), v.is_latest().unwrap(), false))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key().unwrap().into(), m.version_id().unwrap().into(), m.is_latest().unwrap(), true)),
            )
            .collect();
        assert!(rows.len() <= page_size as usize, "a page of {} entries for max-keys {page_size}", rows.len());
        // The XML lists versions and markers apart: put them back in listing order (key,
        // the latest, then newest first: ids of one key are issued in increasing order,
        // and these tests list a `null` version only as the latest).
        rows.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)).then_with(|| b.1.cmp(&a.1)));
        out.extend(rows);
        if page.is_truncated() != Some(true) {
            return out;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
        assert!(key_marker.is_some(), "a truncated page names where the next starts");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_versions_a_delete_marker_and_a_restore() {
    let mut server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "vers").await;
    set_versioning(&s3, "vers", BucketVersioningStatus::Enabled).await;
    let got = s3.get_bucket_versioning().bucket("vers").send().await.unwrap();
    assert_eq!(got.status(), Some(&BucketVersioningStatus::Enabled));

    let ids = [
        put_version(&s3, "vers", "k", b"one").await,
        put_version(&s3, "vers", "k", b"two").await,
        put_version(&s3, "vers", "k", b"three").await,
    ];
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && !ids.contains(&"null".to_string()), "distinct ids: {ids:?}");
    assert_eq!(get(&s3, "vers", "k").await, b"three", "the latest version");
    assert_eq!(get_version(&s3, "vers", "k", &ids[0]).await, b"one");
    let head = s3.head_object().bucket("vers").key("k").version_id(&ids[1]).send().await.unwrap();
    assert_eq!((head.content_length(), head.version_id()), (Some(3), Some(ids[1].as_str())));

    // A delete without a version id adds a delete marker: the key is gone from GET and
    // from listings, every version stays.
    let deleted = s3.delete_object().bucket("vers").key("k").send().await.unwrap();
    assert_eq!(deleted.delete_marker(), Some(true), "DELETE answers x-amz-delete-marker");
    let marker = deleted.version_id().expect("the marker's version id").to_string();
    let gone = s3.get_object().bucket("vers").key("k").send().await.unwrap_err();
    assert_eq!(err_status(&gone), Some(404), "GET of a key whose latest version is a marker");
    let headers = gone.raw_response().unwrap().headers();
    assert_eq!(headers.get("x-amz-delete-marker"), Some("true"), "404 names the delete marker");
    assert_eq!(headers.get("x-amz-version-id"), Some(marker.as_str()));
    let named = s3.get_object().bucket("vers").key("k").version_id(&marker).send().await.unwrap_err();
    assert_eq!(err_status(&named), Some(405), "GET of a delete marker by its id");
    assert!(list_all_keys(&s3, "vers").await.is_empty(), "a key behind a marker is not listed");
    let versions = all_versions(&s3, "vers", 1000).await;
    let expected: Vec<(String, String, bool, bool)> = vec![
        ("k".into(), marker.clone(), true, true),
        ("k".into(), ids[2].clone(), false, false),
        ("k".into(), ids[1].clone(), false, false),
        ("k".into(), ids[0].clone(), false, false),
    ];
    assert_eq!(versions, expected, "a marker and three versions");

    // Everything above is durable.
    server.restart();
    let s3 = server.client();
    assert_eq!(all_versions(&s3, "vers", 2).await, expected, "versions after kill -9, two a page");

    // Deleting the marker (by its id) restores the newest version.
    let restored = s3.delete_object().bucket("vers").key("k").version_id(&marker).send().await.unwrap();
    assert_eq!((restored.delete_marker(), restored.version_id()), (Some(true), Some(marker.as_str())));
    assert_eq!(get(&s3, "vers", "k").await, b"three", "the newest version is current again");
    // Deleting the latest version for good promotes the one before it.
    s3.delete_object().bucket("vers").key("k").version_id(&ids[2]).send().await.unwrap();
    assert_eq!(get(&s3, "vers", "k").await, b"two");
    let missing = s3.get_object().bucket("vers").key("k").version_id(&ids[2]).send().await.unwrap_err();
    assert_eq!(err_status(&missing), Some(404), "a version deleted for good");
    let never = s3.get_object().bucket("vers").key("k").version_id("not-an-id").send().await.unwrap_err();
    assert_eq!(err_status(&never), Some(400), "a version id never issued");

    // A copy from an old version, and CopySource's version echoed.
    let copied = s3
        .copy_object()
        .bucket("vers")
        .key("copy")
        .copy_source(format!("vers/k?versionId={}", ids[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(copied.copy_source_version_id(), Some(ids[0].as_str()));
    assert!(copied.version_id().is_some_and(|v| v != "null"), "the copy is a new version");
    assert_eq!(get(&s3, "vers", "copy").await, b"one");

    // A bucket holding versions is not empty.
    let not_empty = s3.delete_bucket().bucket("vers").send().await.unwrap_err();
    assert_eq!(err_status(&not_empty), Some(409), "DeleteBucket of a bucket holding versions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_bucket_replaces_its_null_version() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "susp").await;
    put(&s3, "susp", "k", b"before versioning").await;
    set_versioning(&s3, "susp", BucketVersioningStatus::Enabled).await;
    let v1 = put_version(&s3, "susp", "k", b"versioned").await;
    set_versioning(&s3, "susp", BucketVersioningStatus::Suspended).await;
    let got = s3.get_bucket_versioning().bucket("susp").send().await.unwrap();
    assert_eq!(got.status(), Some(&BucketVersioningStatus::Suspended));

    // The object from before versioning is the null version; a PUT while suspended
    // replaces it (and keeps the versioned one). S3 names no version in its answer.
    assert_eq!(get_version(&s3, "susp", "k", "null").await, b"before versioning");
    let put = s3.put_object().bucket("susp").key("k").body(b"suspended".to_vec().into()).send().await.unwrap();
    assert_eq!(put.version_id(), None, "a PUT in a suspended bucket makes the null version, unnamed");
    let versions = all_versions(&s3, "susp", 1000).await;
    assert_eq!(
        versions,
        vec![("k".into(), "null".into(), true, false), ("k".into(), v1.clone(), false, false)],
        "the null version replaced, the versioned one kept"
    );
    assert_eq!(get_version(&s3, "susp", "k", "null").await, b"suspended");
    assert_eq!(get_version(&s3, "susp", "k", &v1).await, b"versioned");

    // A delete while suspended puts a null delete marker in the null version's place.
    let deleted = s3.delete_object().bucket("susp").key("k").send().await.unwrap();
    assert_eq!((deleted.delete_marker(), deleted.version_id()), (Some(true), Some("null")));
    let versions = all_versions(&s3, "susp", 1000).await;
    assert_eq!(versions, vec![("k".into(), "null".into(), true, true), ("k".into(), v1, false, false)]);
}

/// ListObjectVersions over 1,500 versions of a few keys, with delete markers among
/// them, joined page by page from the next markers: every version once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_object_versions_pages_through_1500_versions() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "many").await;
    set_versioning(&s3, "many", BucketVersioningStatus::Enabled).await;
    let mut expected: Vec<(String, String, bool, bool)> = Vec::new();
    for key in ["a", "b/c", "d"] {
        let mut ids = Vec::new();
        for i in 0..500 {
            if i % 50 == 49 {
                let marker = s3.delete_object().bucket("many").key(key).send().await.unwrap();
                ids.push((marker.version_id().unwrap().to_string(), true));
            } else {
                ids.push((put_version(&s3, "many", key, format!("{key}-{i}").as_bytes()).await, false));
            }
        }
        let newest_first = ids.iter().rev().enumerate();
        expected.extend(newest_first.map(|(n, (id, marker))| (key.to_string(), id.clone(), n == 0, *marker)));
    }
    for page_size in [1000, 137] {
        let listed = all_versions(&s3, "many", page_size).await;
        assert_eq!(listed.len(), 1500, "versions listed {page_size} a page");
        assert_eq!(listed, expected, "every version once, in order, {page_size} a page");
    }
    // Each key's latest is a marker (the 500th write): nothing is listed as an object.
    assert!(list_all_keys(&s3, "many").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_removes_named_versions() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "batch").await;
    set_versioning(&s3, "batch", BucketVersioningStatus::Enabled).await;
    let old = put_version(&s3, "batch", "k", b"old").await;
    let new = put_version(&s3, "batch", "k", b"new").await;
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("k").version_id(&old).build().unwrap())
        .objects(ObjectIdentifier::builder().key("other").build().unwrap())
        .build()
        .unwrap();
    let out = s3.delete_objects().bucket("batch").delete(delete).send().await.unwrap();
    assert!(out.errors().is_empty(), "errors: {:?}", out.errors());
    let by_key = |key: &str| out.deleted().iter().find(|d| d.key() == Some(key)).unwrap().clone();
    assert_eq!(by_key("k").version_id(), Some(old.as_str()), "the version named is echoed");
    assert_eq!(by_key("other").delete_marker(), Some(true), "a key without a version gets a marker");
    assert!(by_key("other").delete_marker_version_id().is_some());
    let versions = all_versions(&s3, "batch", 1000).await;
    let ids: Vec<&str> = versions.iter().map(|v| v.1.as_str()).collect();
    assert_eq!(ids.len(), 2, "k's newer version and other's marker: {versions:?}");
    assert!(ids.contains(&new.as_str()) && !ids.contains(&old.as_str()));
}

/// Conditional deletes (If-Match, x-amz-if-match-last-modified-time, x-amz-if-match-size)
/// are decided in the writer against the version they remove or hide: 30 concurrent
/// deletes of the current version by its ETag make exactly one delete marker, the others
/// find a marker that does not match (412). Deleting what is not there succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_deletes_have_one_winner() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "cond").await;
    set_versioning(&s3, "cond", BucketVersioningStatus::Enabled).await;
    let put = s3.put_object().bucket("cond").key("k").body(b"data".to_vec().into()).send().await.unwrap();
    let (etag, version) = (put.e_tag().unwrap().to_string(), put.version_id().unwrap().to_string());

    // A conditional delete of a key that has no version succeeds and makes no marker.
    let nothing = s3.delete_object().bucket("cond").key("none").if_match("*").send().await.unwrap();
    assert_eq!(nothing.delete_marker(), None, "no delete marker for a conditional delete of nothing");
    let nothing = s3.delete_object().bucket("cond").key("none").if_match("\"0000\"").send().await;
    assert!(nothing.is_ok(), "a conditional delete of nothing, any ETag: {nothing:?}");

    let wrong = s3.delete_object().bucket("cond").key("k").if_match("\"0000\"").send().await.unwrap_err();
    assert_eq!(err_status(&wrong), Some(412), "If-Match of another ETag");
    let head = s3.head_object().bucket("cond").key("k").send().await.unwrap();
    let wrong_size = s3.delete_object().bucket("cond").key("k").version_id(&version).if_match_size(5).send().await;
    assert_eq!(err_status(&wrong_size.unwrap_err()), Some(412), "x-amz-if-match-size of another size");
    let old_time = aws_sdk_s3::primitives::DateTime::from_secs(1_420_070_400);
    let wrong_time = s3.delete_object().bucket("cond").key("k").if_match_last_modified_time(old_time).send().await;
    assert_eq!(err_status(&wrong_time.unwrap_err()), Some(412), "x-amz-if-match-last-modified-time of another time");

    let mut racers = Vec::new();
    for _ in 0..30 {
        let (s3, etag, modified) = (s3.clone(), etag.clone(), *head.last_modified().unwrap());
        racers.push(tokio::spawn(async move {
            let sent = s3.delete_object().bucket("cond").key("k").if_match(etag).if_match_last_modified_time(modified);
            match sent.send().await {
                Ok(out) => Ok(out.delete_marker() == Some(true)),
                Err(e) => Err(err_status(&e)),
            }
        }));
    }
    let mut outcomes = Vec::new();
    for racer in racers {
        outcomes.push(racer.await.unwrap());
    }
    let winners = outcomes.iter().filter(|o| **o == Ok(true)).count();
    let refused = outcomes.iter().filter(|o| **o == Err(Some(412))).count();
    assert_eq!((winners, refused), (1, 29), "30 conditional deletes of one version: {outcomes:?}");
    let versions = all_versions(&s3, "cond", 1000).await;
    assert_eq!(versions.iter().filter(|v| v.3).count(), 1, "exactly one delete marker: {versions:?}");
    assert!(versions.iter().all(|v| v.0 == "k"), "nothing under the key that had no version: {versions:?}");

    // The version itself, by id with matching conditions; then it is gone, and a
    // conditional delete of what is not there succeeds.
    s3.delete_object()
        .bucket("cond")
        .key("k")
        .version_id(&version)
        .if_match(&etag)
        .if_match_size(4)
        .send()
        .await
        .unwrap();
    let again = s3.delete_object().bucket("cond").key("k").version_id(&version).if_match("\"0000\"").send().await;
    assert!(again.is_ok(), "a conditional delete of a version that is gone: {again:?}");

    // DeleteObjects reports a failed condition per object.
    let put = s3.put_object().bucket("cond").key("batch").body(b"x".to_vec().into()).send().await.unwrap();
    let id = put.version_id().unwrap();
    let object = |etag: &str| ObjectIdentifier::builder().key("batch").version_id(id).e_tag(etag).build().unwrap();
    let refused = s3
        .delete_objects()
        .bucket("cond")
        .delete(Delete::builder().objects(object("\"0000\"")).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.errors().first().and_then(|e| e.code()), Some("PreconditionFailed"));
    let done = s3
        .delete_objects()
        .bucket("cond")
        .delete(Delete::builder().objects(object(put.e_tag().unwrap())).build().unwrap())
        .send()
        .await
        .unwrap();
    assert!(done.errors().is_empty(), "errors: {:?}", done.errors());
    assert_eq!(done.deleted().first().and_then(|d| d.version_id()), Some(id));
}
