//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
//! GetBucketLocation, plus the /health endpoint.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoint_returns_200() {
    let server = Server::start();
    let resp = raw_request("GET", &format!("{}/health", server.endpoint()), &[], Vec::new()).await;
    assert_eq!(resp.status, 200, "GET /health status (body: {})", resp.body_str());
}

/// ListBuckets pages with max-buckets and a continuation token, filters by prefix and
/// bucket-region, and refuses a page size S3 refuses (it used to ignore all of these).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_buckets_is_paginated() {
    let server = Server::start();
    let s3 = server.client();
    let page = s3.list_buckets().max_buckets(1).send().await.ok_or_panic("ListBuckets max-buckets=1, no buckets");
    assert!(page.buckets().is_empty() && page.continuation_token().is_none(), "empty server: {page:?}");

    let names = ["page-a", "page-b", "page-c", "other-d"];
    for b in names {
        create_bucket(&s3, b).await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = s3
            .list_buckets()
            .max_buckets(1)
            .set_continuation_token(token.clone())
            .send()
            .await
            .ok_or_panic("ListBuckets max-buckets=1");
        let listed: Vec<String> = page.buckets().iter().filter_map(|b| b.name()).map(str::to_owned).collect();
        assert_eq!(listed.len(), 1, "each page holds one bucket, got {listed:?} after {seen:?}");
        seen.extend(listed);
        token = page.continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
        assert!(seen.len() < names.len(), "a continuation token after the last bucket: {seen:?}");
    }
    assert_eq!(seen, ["other-d", "page-a", "page-b", "page-c"], "pages in name order");

    let page = s3.list_buckets().prefix("page-").max_buckets(2).send().await.ok_or_panic("ListBuckets prefix");
    let listed: Vec<&str> = page.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(listed, ["page-a", "page-b"], "first page of prefix page-");
    let token = page.continuation_token().expect("a token: page-c remains").to_owned();
    let page = s3.list_buckets().prefix("page-").continuation_token(token).send().await.ok_or_panic("second page");
    let listed: Vec<&str> = page.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!((listed, page.continuation_token()), (vec!["page-c"], None), "second page of prefix page-");

    let elsewhere = s3.list_buckets().bucket_region("eu-west-1").send().await.ok_or_panic("bucket-region");
    assert!(elsewhere.buckets().is_empty(), "no bucket is in eu-west-1: {elsewhere:?}");
    let here = s3.list_buckets().bucket_region("us-east-1").send().await.ok_or_panic("bucket-region us-east-1");
    assert_eq!(here.buckets().len(), names.len(), "every bucket is in us-east-1");

    for bad in [0, 10_001] {
        expect_s3_error(
            s3.list_buckets().max_buckets(bad).send().await,
            400,
            &["InvalidArgument"],
            format!("ListBuckets max-buckets={bad}"),
        );
    }
    expect_s3_error(
        s3.list_buckets().continuation_token("not base64!").send().await,
        400,
        &["InvalidArgument"],
        "ListBuckets with a token the server did not make",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_head_location_delete() {
    let server = Server::start();
    let s3 = server.client();

    let before = s3.list_buckets().send().await.ok_or_panic("ListBuckets on a fresh server");
    let names: Vec<&str> = before.buckets().iter().filter_map(|b| b.name()).collect();
    assert!(names.is_empty(), "ListBuckets on a fresh server: expected no buckets, got {names:?}");

    let buckets = ["alpha-bucket", "beta.bucket", "gamma-123"];
    for b in buckets {
        create_bucket(&s3, b).await;
    }

    let listed = s3.list_buckets().send().await.ok_or_panic("ListBuckets");
    let mut names: Vec<String> = listed.buckets().iter().map(|b| b.name().unwrap_or_default().to_string()).collect();
    names.sort();
    assert_eq!(names, buckets.to_vec(), "ListBuckets names after creating {buckets:?}");
    for b in listed.buckets() {
        assert!(b.creation_date().is_some(), "ListBuckets: bucket {:?} has no CreationDate", b.name());
    }

    for b in buckets {
        s3.head_bucket().bucket(b).send().await.ok_or_panic(format!("HeadBucket {b}"));

        let loc = s3.get_bucket_location().bucket(b).send().await.ok_or_panic(format!("GetBucketLocation {b}"));
        let constraint = loc.location_constraint().map(|c| c.as_str().to_string());
        assert!(
            matches!(constraint.as_deref(), None | Some("") | Some("us-east-1")),
            "GetBucketLocation {b}: expected empty LocationConstraint (us-east-1), got {constraint:?}"
        );
    }

    s3.delete_bucket().bucket("beta.bucket").send().await.ok_or_panic("DeleteBucket beta.bucket");
    expect_s3_error(
        s3.head_bucket().bucket("beta.bucket").send().await,
        404,
        &[],
        "HeadBucket after DeleteBucket beta.bucket",
    );
    let listed = s3.list_buckets().send().await.ok_or_panic("ListBuckets after delete");
    let mut names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    names.sort();
    assert_eq!(names, vec!["alpha-bucket", "gamma-123"], "ListBuckets after deleting beta.bucket");

    // A deleted bucket's name can be reused, and the new bucket starts empty.
    put(&s3, "alpha-bucket", "k", b"v").await;
    s3.delete_object().bucket("alpha-bucket").key("k").send().await.ok_or_panic("DeleteObject");
    create_bucket(&s3, "beta.bucket").await;
    let keys = list_all_keys(&s3, "beta.bucket").await;
    assert!(keys.is_empty(), "re-created bucket beta.bucket: expected no keys, got {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_existing_own_bucket_is_200_in_us_east_1_and_409_elsewhere() {
    // us-east-1 (the default region): S3's legacy answer, 200, and nothing changes.
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "dup-bucket").await;
    put(&s3, "dup-bucket", "keep-me", b"still here").await;
    s3.create_bucket().bucket("dup-bucket").send().await.ok_or_panic("CreateBucket of an own bucket in us-east-1");
    let body = get(&s3, "dup-bucket", "keep-me").await;
    assert_bytes_eq(&body, b"still here", "GET dup-bucket/keep-me after a repeated CreateBucket");

    // Any other region: 409 BucketAlreadyOwnedByYou.
    let server = Server::start_with(ServerOptions {
        extra_args: vec!["--region".into(), "eu-west-1".into()],
        ..Default::default()
    });
    let s3 = aws_sdk_s3::Client::from_conf(
        server
            .config_builder(ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY)
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .build(),
    );
    let in_region = || {
        aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
            .build()
    };
    s3.create_bucket()
        .bucket("dup-bucket")
        .create_bucket_configuration(in_region())
        .send()
        .await
        .ok_or_panic("CreateBucket in eu-west-1");
    put(&s3, "dup-bucket", "keep-me", b"still here").await;
    expect_s3_error(
        s3.create_bucket().bucket("dup-bucket").create_bucket_configuration(in_region()).send().await,
        409,
        &["BucketAlreadyOwnedByYou"],
        "CreateBucket of an own bucket in eu-west-1",
    );
    let body = get(&s3, "dup-bucket", "keep-me").await;
    assert_bytes_eq(&body, b"still here", "GET dup-bucket/keep-me after a refused CreateBucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bucket_names_are_rejected() {
    let server = Server::start();
    let s3 = server.client();
    let too_long = "a".repeat(64);
    let invalid = [
        "ab",               // shorter than 3
        too_long.as_str(),  // longer than 63
        "UpperCase",        // uppercase
        "under_score",      // underscore
        "-leading-hyphen",  // must start with letter or digit
        "trailing-hyphen-", // must end with letter or digit
        ".leading-dot",
        "trailing-dot.",
        "double..dots",
        "192.168.5.4", // formatted as an IP address
        "has space",
    ];
    for name in invalid {
        expect_s3_error(
            s3.create_bucket().bucket(name).send().await,
            400,
            &["InvalidBucketName"],
            format!("CreateBucket {name:?}"),
        );
    }
    let listed = s3.list_buckets().send().await.ok_or_panic("ListBuckets");
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert!(names.is_empty(), "ListBuckets after only invalid CreateBuckets: expected none, got {names:?}");

    // Boundary cases that are valid.
    let longest = "b".repeat(63);
    for name in ["abc", longest.as_str(), "my.dotted-bucket1", "0numeric-start"] {
        create_bucket(&s3, name).await;
        s3.head_bucket().bucket(name).send().await.ok_or_panic(format!("HeadBucket {name}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_bucket_with_objects_is_bucket_not_empty() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "full-bucket").await;
    put(&s3, "full-bucket", "a/b/c.txt", b"data").await;

    expect_s3_error(
        s3.delete_bucket().bucket("full-bucket").send().await,
        409,
        &["BucketNotEmpty"],
        "DeleteBucket on a bucket with one object",
    );
    let body = get(&s3, "full-bucket", "a/b/c.txt").await;
    assert_bytes_eq(&body, b"data", "object after failed DeleteBucket");

    s3.delete_object().bucket("full-bucket").key("a/b/c.txt").send().await.ok_or_panic("DeleteObject");
    s3.delete_bucket().bucket("full-bucket").send().await.ok_or_panic("DeleteBucket after emptying it");
    expect_s3_error(s3.head_bucket().bucket("full-bucket").send().await, 404, &[], "HeadBucket after DeleteBucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_on_missing_bucket_are_no_such_bucket() {
    let server = Server::start();
    let s3 = server.client();
    let b = "no-such-bucket";
    expect_s3_error(s3.head_bucket().bucket(b).send().await, 404, &[], "HeadBucket missing");
    expect_s3_error(s3.delete_bucket().bucket(b).send().await, 404, &["NoSuchBucket"], "DeleteBucket missing");
    expect_s3_error(
        s3.get_bucket_location().bucket(b).send().await,
        404,
        &["NoSuchBucket"],
        "GetBucketLocation missing",
    );
    expect_s3_error(s3.list_objects_v2().bucket(b).send().await, 404, &["NoSuchBucket"], "ListObjectsV2 missing");
    expect_s3_error(s3.list_objects().bucket(b).send().await, 404, &["NoSuchBucket"], "ListObjects missing");
    expect_s3_error(
        s3.put_object().bucket(b).key("k").body(b"x".to_vec().into()).send().await,
        404,
        &["NoSuchBucket"],
        "PutObject into missing bucket",
    );
    expect_s3_error(
        s3.get_object().bucket(b).key("k").send().await,
        404,
        &["NoSuchBucket"],
        "GetObject from missing bucket",
    );
    expect_s3_error(
        s3.create_multipart_upload().bucket(b).key("k").send().await,
        404,
        &["NoSuchBucket"],
        "CreateMultipartUpload in missing bucket",
    );
    // The failed PutObject must not have created the bucket implicitly.
    expect_s3_error(s3.head_bucket().bucket(b).send().await, 404, &[], "HeadBucket after failed PutObject");
}
