//! Tagging: x-amz-tagging on PUT, copy (COPY / REPLACE directive) and multipart,
//! Put/Get/DeleteObjectTagging (by version too), x-amz-tagging-count on GET and HEAD,
//! Put/Get/DeleteBucketTagging, S3's limits, and all of it after a kill -9.

use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Tag, Tagging, TaggingDirective,
    VersioningConfiguration,
};

use crate::harness::*;

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    let tags = pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap());
    Tagging::builder().set_tag_set(Some(tags.collect())).build().unwrap()
}

async fn tags_of(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, version: Option<&str>) -> Vec<(String, String)> {
    let out = s3.get_object_tagging().bucket(bucket).key(key).set_version_id(version.map(str::to_owned)).send().await;
    let mut tags: Vec<(String, String)> =
        out.unwrap().tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    tags.sort();
    tags
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_tags_on_write_by_call_and_by_version() {
    let mut server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "tags").await;

    // On PUT: the header is URL query parameters; a key without '=' has an empty value.
    s3.put_object()
        .bucket("tags")
        .key("k")
        .tagging("project=quarry&empty&sp%20ace=a%2Fb")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(&s3, "tags", "k", None).await,
        pairs(&[("empty", ""), ("project", "quarry"), ("sp ace", "a/b")])
    );
    let got = s3.get_object().bucket("tags").key("k").send().await.unwrap();
    assert_eq!(got.tag_count(), Some(3), "x-amz-tagging-count on GET");
    let head = s3.head_object().bucket("tags").key("k").send().await.unwrap();
    assert_eq!(head.tag_count(), Some(3), "x-amz-tagging-count on HEAD");

    // PutObjectTagging replaces the set; DeleteObjectTagging empties it.
    s3.put_object_tagging().bucket("tags").key("k").tagging(tagging(&[("a", "1")])).send().await.unwrap();
    assert_eq!(tags_of(&s3, "tags", "k", None).await, pairs(&[("a", "1")]));
    s3.delete_object_tagging().bucket("tags").key("k").send().await.unwrap();
    assert!(tags_of(&s3, "tags", "k", None).await.is_empty());
    let untagged = s3.head_object().bucket("tags").key("k").send().await.unwrap();
    assert_eq!(untagged.tag_count(), None, "no x-amz-tagging-count without tags");

    // S3's limits, each 400 InvalidTag, and the set unchanged.
    let ten: Vec<(String, String)> = (0..10).map(|i| (format!("{i}{}", "k".repeat(127)), "v".repeat(256))).collect();
    let ten_refs: Vec<(&str, &str)> = ten.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    s3.put_object_tagging().bucket("tags").key("k").tagging(tagging(&ten_refs)).send().await.unwrap();
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(257);
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("t{i}"), String::new())).collect();
    let eleven_refs: Vec<(&str, &str)> = eleven.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (what, set) in [
        ("11 tags", tagging(&eleven_refs)),
        ("a key of 129 characters", tagging(&[(long_key.as_str(), "v")])),
        ("a value of 257 characters", tagging(&[("k", long_value.as_str())])),
        ("a key twice", tagging(&[("a", "1"), ("a", "2")])),
    ] {
        let refused = s3.put_object_tagging().bucket("tags").key("k").tagging(set).send().await;
        expect_s3_error(refused, 400, &["InvalidTag"], format!("PutObjectTagging with {what}"));
    }
    assert_eq!(tags_of(&s3, "tags", "k", None).await.len(), 10, "the set at the limits is unchanged");
    let missing = s3.put_object_tagging().bucket("tags").key("missing").tagging(tagging(&[])).send().await;
    expect_s3_error(missing, 404, &["NoSuchKey"], "PutObjectTagging of a missing key");

    // Copy: COPY keeps the source's tags, REPLACE takes the header's.
    s3.put_object_tagging().bucket("tags").key("k").tagging(tagging(&[("src", "1")])).send().await.unwrap();
    s3.copy_object().bucket("tags").key("kept").copy_source("tags/k").send().await.unwrap();
    assert_eq!(tags_of(&s3, "tags", "kept", None).await, pairs(&[("src", "1")]));
    s3.copy_object()
        .bucket("tags")
        .key("replaced")
        .copy_source("tags/k")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("new=2")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&s3, "tags", "replaced", None).await, pairs(&[("new", "2")]));

    // Multipart: tags given at creation.
    let upload = s3.create_multipart_upload().bucket("tags").key("mp").tagging("mp=yes").send().await.unwrap();
    let part = s3
        .upload_part()
        .bucket("tags")
        .key("mp")
        .upload_id(upload.upload_id().unwrap())
        .part_number(1)
        .body(b"part".to_vec().into())
        .send()
        .await
        .unwrap();
    let done = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    s3.complete_multipart_upload()
        .bucket("tags")
        .key("mp")
        .upload_id(upload.upload_id().unwrap())
        .multipart_upload(done)
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&s3, "tags", "mp", None).await, pairs(&[("mp", "yes")]));

    // By version: each version keeps its own set.
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning().bucket("tags").versioning_configuration(enabled).send().await.unwrap();
    let v1 = s3.put_object().bucket("tags").key("v").tagging("n=1").body(b"1".to_vec().into()).send().await.unwrap();
    let v2 = s3.put_object().bucket("tags").key("v").tagging("n=2").body(b"2".to_vec().into()).send().await.unwrap();
    let (v1, v2) = (v1.version_id().unwrap().to_owned(), v2.version_id().unwrap().to_owned());
    let out = s3
        .put_object_tagging()
        .bucket("tags")
        .key("v")
        .version_id(&v1)
        .tagging(tagging(&[("n", "one")]))
        .send()
        .await
        .unwrap();
    assert_eq!(out.version_id(), Some(v1.as_str()), "PutObjectTagging names the version");
    assert_eq!(tags_of(&s3, "tags", "v", Some(&v1)).await, pairs(&[("n", "one")]));
    assert_eq!(tags_of(&s3, "tags", "v", Some(&v2)).await, pairs(&[("n", "2")]));
    assert_eq!(tags_of(&s3, "tags", "v", None).await, pairs(&[("n", "2")]), "the latest version's");

    // Durable.
    server.restart();
    let s3 = server.client();
    assert_eq!(tags_of(&s3, "tags", "v", Some(&v1)).await, pairs(&[("n", "one")]), "after kill -9");
    assert_eq!(tags_of(&s3, "tags", "mp", None).await, pairs(&[("mp", "yes")]), "after kill -9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_tags() {
    let mut server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "btags").await;
    let none = s3.get_bucket_tagging().bucket("btags").send().await;
    expect_s3_error(none, 404, &["NoSuchTagSet"], "GetBucketTagging of a bucket without tags");

    let fifty: Vec<(String, String)> = (0..50).map(|i| (format!("t{i}"), format!("{i}"))).collect();
    let fifty_refs: Vec<(&str, &str)> = fifty.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    s3.put_bucket_tagging().bucket("btags").tagging(tagging(&fifty_refs)).send().await.unwrap();
    let mut with_one_more = fifty_refs.clone();
    with_one_more.push(("t50", "50"));
    let refused = s3.put_bucket_tagging().bucket("btags").tagging(tagging(&with_one_more)).send().await;
    expect_s3_error(refused, 400, &["InvalidTag"], "PutBucketTagging of 51 tags");

    server.restart();
    let s3 = server.client();
    let got = s3.get_bucket_tagging().bucket("btags").send().await.unwrap();
    assert_eq!(got.tag_set().len(), 50, "bucket tags after kill -9");
    s3.delete_bucket_tagging().bucket("btags").send().await.unwrap();
    let gone = s3.get_bucket_tagging().bucket("btags").send().await;
    expect_s3_error(gone, 404, &["NoSuchTagSet"], "GetBucketTagging after DeleteBucketTagging");
}
