//! Conditional GET / HEAD: If-Match, If-None-Match, If-Modified-Since,
//! If-Unmodified-Since (and the precedence rules between them).

use aws_sdk_s3::primitives::DateTime;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_get_and_head() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "conditional";
    let key = "obj";
    create_bucket(&s3, bucket).await;
    let data = b"conditional body".to_vec();
    let etag = put(&s3, bucket, key, &data).await;
    assert_eq!(etag, etag_of(&data), "PutObject ETag");
    let head = s3.head_object().bucket(bucket).key(key).send().await.ok_or_panic("HeadObject");
    let last_modified = *head.last_modified().expect("HeadObject Last-Modified");
    let lm = last_modified.secs();
    let past = DateTime::from_secs(lm - 86_400);
    let future = DateTime::from_secs(lm + 86_400);
    let wrong_etag = "\"0123456789abcdef0123456789abcdef\"";

    // ---- If-Match ----
    let out =
        s3.get_object().bucket(bucket).key(key).if_match(&etag).send().await.ok_or_panic("GET If-Match: matching ETag");
    let body = collect_body(out.body, "GET If-Match matching").await;
    assert_bytes_eq(&body, &data, "GET If-Match matching");
    s3.get_object().bucket(bucket).key(key).if_match("*").send().await.ok_or_panic("GET If-Match: *");
    s3.head_object().bucket(bucket).key(key).if_match(&etag).send().await.ok_or_panic("HEAD If-Match: matching ETag");
    expect_s3_error(
        s3.get_object().bucket(bucket).key(key).if_match(wrong_etag).send().await,
        412,
        &["PreconditionFailed"],
        "GET If-Match: mismatching ETag",
    );
    expect_s3_error(
        s3.head_object().bucket(bucket).key(key).if_match(wrong_etag).send().await,
        412,
        &[],
        "HEAD If-Match: mismatching ETag",
    );

    // ---- If-None-Match ----
    expect_s3_error(
        s3.get_object().bucket(bucket).key(key).if_none_match(&etag).send().await,
        304,
        &[],
        "GET If-None-Match: matching ETag",
    );
    expect_s3_error(
        s3.head_object().bucket(bucket).key(key).if_none_match(&etag).send().await,
        304,
        &[],
        "HEAD If-None-Match: matching ETag",
    );
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .if_none_match(wrong_etag)
        .send()
        .await
        .ok_or_panic("GET If-None-Match: other ETag");
    let body = collect_body(out.body, "GET If-None-Match other").await;
    assert_bytes_eq(&body, &data, "GET If-None-Match other ETag");

    // ---- If-Modified-Since ----
    expect_s3_error(
        s3.get_object().bucket(bucket).key(key).if_modified_since(future).send().await,
        304,
        &[],
        "GET If-Modified-Since: date after Last-Modified",
    );
    expect_s3_error(
        s3.head_object().bucket(bucket).key(key).if_modified_since(future).send().await,
        304,
        &[],
        "HEAD If-Modified-Since: date after Last-Modified",
    );
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .if_modified_since(past)
        .send()
        .await
        .ok_or_panic("GET If-Modified-Since: date before Last-Modified");
    let body = collect_body(out.body, "GET If-Modified-Since past").await;
    assert_bytes_eq(&body, &data, "GET If-Modified-Since past");

    // ---- If-Unmodified-Since ----
    expect_s3_error(
        s3.get_object().bucket(bucket).key(key).if_unmodified_since(past).send().await,
        412,
        &["PreconditionFailed"],
        "GET If-Unmodified-Since: date before Last-Modified",
    );
    expect_s3_error(
        s3.head_object().bucket(bucket).key(key).if_unmodified_since(past).send().await,
        412,
        &[],
        "HEAD If-Unmodified-Since: date before Last-Modified",
    );
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .if_unmodified_since(future)
        .send()
        .await
        .ok_or_panic("GET If-Unmodified-Since: date after Last-Modified");

    // ---- Precedence (as documented for GetObject) ----
    // If-Match true + If-Unmodified-Since false => 200.
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .if_match(&etag)
        .if_unmodified_since(past)
        .send()
        .await
        .ok_or_panic("GET If-Match (true) + If-Unmodified-Since (false) must be 200");
    // If-None-Match false + If-Modified-Since true => 304.
    expect_s3_error(
        s3.get_object().bucket(bucket).key(key).if_none_match(&etag).if_modified_since(past).send().await,
        304,
        &[],
        "GET If-None-Match (false) + If-Modified-Since (true)",
    );

    // Conditions on a missing key are still 404.
    expect_s3_error(
        s3.get_object().bucket(bucket).key("missing").if_match(&etag).send().await,
        404,
        &["NoSuchKey"],
        "GET If-Match on a missing key",
    );
}

/// A 304 carries the validators a 200 would (RFC 9110 §15.4.5): ETag and Last-Modified,
/// on GET and HEAD (ceph/s3-tests test_get_object_ifnonematch_good and
/// test_get_object_ifmodifiedsince_failed read the ETag of the 304).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_modified_carries_etag_and_last_modified() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "validators").await;
    let etag = put(&s3, "validators", "obj", b"body").await;
    let head = s3.head_object().bucket("validators").key("obj").send().await.ok_or_panic("HeadObject");
    let last_modified = head.last_modified().expect("Last-Modified").fmt(aws_smithy_types::date_time::Format::HttpDate);
    let last_modified = last_modified.expect("an HTTP date");
    let url = format!("{}/validators/obj", server.endpoint());
    for method in ["GET", "HEAD"] {
        for (name, value) in [("if-none-match", etag.as_str()), ("if-modified-since", last_modified.as_str())] {
            let headers = sigv4_headers_with(method, &url, b"", &[(name, value)], ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let response = raw_request(method, &url, &headers, Vec::new()).await;
            let what = format!("{method} with {name}: {value}");
            assert_eq!(response.status, 304, "{what}: status (body: {})", response.body_str());
            assert_eq!(response.header("etag").as_deref(), Some(etag.as_str()), "{what}: ETag of the 304");
            assert_eq!(
                response.header("last-modified").as_deref(),
                Some(last_modified.as_str()),
                "{what}: Last-Modified of the 304"
            );
        }
    }
}

/// Conditional writes: PutObject with If-None-Match: * or If-Match, decided in the
/// writer. 30 writers racing to create one key with If-None-Match: * have exactly one
/// winner; then 30 racing to replace it with If-Match of its ETag have exactly one
/// winner too. If-Match of a key without an object is 404 NoSuchKey (as on S3), also
/// when its latest version is a delete marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_puts_have_one_winner() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "condput").await;

    let missing = s3.put_object().bucket("condput").key("k").if_match("*").body(b"x".to_vec().into()).send().await;
    expect_s3_error(missing, 404, &["NoSuchKey"], "PUT If-Match of a missing key");

    let race = |conditional: fn(
        aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
        &str,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
                etag: String| {
        let s3 = s3.clone();
        async move {
            let mut racers = Vec::new();
            for i in 0..30 {
                let (s3, etag) = (s3.clone(), etag.clone());
                racers.push(tokio::spawn(async move {
                    // Never the body it replaces: a replace with the same bytes keeps the
                    // ETag, and a second If-Match of it would rightly succeed too.
                    let body = format!("writer {i} after {etag}");
                    let put = s3.put_object().bucket("condput").key("k").body(body.into_bytes().into());
                    match conditional(put, &etag).send().await {
                        Ok(out) => Ok(out.e_tag().unwrap().to_string()),
                        Err(e) => Err(err_status(&e)),
                    }
                }));
            }
            let mut outcomes = Vec::new();
            for racer in racers {
                outcomes.push(racer.await.unwrap());
            }
            outcomes
        }
    };
    let created = race(|put, _| put.if_none_match("*"), String::new()).await;
    let winners: Vec<&String> = created.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "30 creates with If-None-Match: * : {created:?}");
    assert_eq!(created.iter().filter(|o| **o == Err(Some(412))).count(), 29, "the others are 412: {created:?}");

    let replaced = race(|put, etag| put.if_match(etag), winners[0].clone()).await;
    assert_eq!(replaced.iter().filter(|o| o.is_ok()).count(), 1, "30 replaces with If-Match: {replaced:?}");
    assert_eq!(replaced.iter().filter(|o| **o == Err(Some(412))).count(), 29, "the others are 412: {replaced:?}");

    // If-None-Match of an ETag (MinIO's and Ceph's extension): replace only if the
    // current object differs; AWS answers 501 to it.
    let current = replaced.iter().find_map(|o| o.as_ref().ok()).unwrap().clone();
    let unchanged = s3.put_object().bucket("condput").key("k").if_none_match(&current).body(b"y".to_vec().into());
    expect_s3_error(unchanged.send().await, 412, &["PreconditionFailed"], "PUT If-None-Match of the current ETag");
    let other = s3.put_object().bucket("condput").key("k").if_none_match("\"0123\"").body(b"y".to_vec().into());
    let other = other.send().await.expect("PUT If-None-Match of another ETag replaces the object");
    let same_again = s3.put_object().bucket("condput").key("k").if_none_match(other.e_tag().unwrap());
    let same_again = same_again.body(b"y".to_vec().into()).send().await;
    expect_s3_error(same_again, 412, &["PreconditionFailed"], "PUT of identical bytes If-None-Match of their ETag");
    let missing = s3.put_object().bucket("condput").key("never-written").if_none_match("\"0123\"");
    missing.body(b"z".to_vec().into()).send().await.expect("If-None-Match of an ETag on a missing key writes it");

    // Behind a delete marker there is no current object.
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    s3.put_bucket_versioning().bucket("condput").versioning_configuration(enabled).send().await.unwrap();
    s3.delete_object().bucket("condput").key("k").send().await.unwrap();
    let behind_marker = s3.put_object().bucket("condput").key("k").if_match("*").body(b"x".to_vec().into());
    expect_s3_error(behind_marker.send().await, 404, &["NoSuchKey"], "PUT If-Match behind a delete marker");
    let create = s3.put_object().bucket("condput").key("k").if_none_match("*").body(b"x".to_vec().into());
    create.send().await.expect("If-None-Match: * behind a delete marker creates the object");
}

/// CompleteMultipartUpload with If-None-Match: * is decided in the writer too: 30
/// uploads of one key completed at once make exactly one object; the others are 412 and
/// their uploads stay, to be completed or aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_completes_have_one_winner() {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "condmpu").await;
    let mut prepared = Vec::new();
    for i in 0..30 {
        let upload = s3.create_multipart_upload().bucket("condmpu").key("k").send().await.unwrap();
        let id = upload.upload_id().unwrap().to_owned();
        let part = s3.upload_part().bucket("condmpu").key("k").upload_id(&id).part_number(1);
        let part = part.body(format!("upload {i}").into_bytes().into()).send().await.unwrap();
        let done = CompletedMultipartUpload::builder()
            .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
            .build();
        prepared.push((id, done));
    }
    let mut racers = Vec::new();
    for (id, done) in prepared {
        let s3 = s3.clone();
        racers.push(tokio::spawn(async move {
            let complete = s3.complete_multipart_upload().bucket("condmpu").key("k").upload_id(id);
            match complete.multipart_upload(done).if_none_match("*").send().await {
                Ok(_) => Ok(()),
                Err(e) => Err(err_status(&e)),
            }
        }));
    }
    let mut outcomes = Vec::new();
    for racer in racers {
        outcomes.push(racer.await.unwrap());
    }
    let winners = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused = outcomes.iter().filter(|o| **o == Err(Some(412))).count();
    assert_eq!((winners, refused), (1, 29), "30 completes with If-None-Match: * : {outcomes:?}");
    let uploads = s3.list_multipart_uploads().bucket("condmpu").send().await.unwrap();
    assert_eq!(uploads.uploads().len(), 29, "the refused uploads are still there");
}

/// CopyObject's destination conditions (If-None-Match: *, If-Match), decided in the
/// writer: 30 copies onto a new key with If-None-Match: * make exactly one object; a
/// copy with If-Match of another ETag is 412, of a missing key 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_copies_have_one_winner() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "condcopy").await;
    for i in 0..30 {
        put(&s3, "condcopy", &format!("source-{i}"), format!("source {i}").as_bytes()).await;
    }
    let mut racers = Vec::new();
    for i in 0..30 {
        let s3 = s3.clone();
        racers.push(tokio::spawn(async move {
            let copy = s3.copy_object().bucket("condcopy").key("target").copy_source(format!("condcopy/source-{i}"));
            match copy.if_none_match("*").send().await {
                Ok(_) => Ok(()),
                Err(e) => Err(err_status(&e)),
            }
        }));
    }
    let mut outcomes = Vec::new();
    for racer in racers {
        outcomes.push(racer.await.unwrap());
    }
    let winners = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused = outcomes.iter().filter(|o| **o == Err(Some(412))).count();
    assert_eq!((winners, refused), (1, 29), "30 copies with If-None-Match: * : {outcomes:?}");

    let wrong = s3.copy_object().bucket("condcopy").key("target").copy_source("condcopy/source-0").if_match("\"0000\"");
    expect_s3_error(wrong.send().await, 412, &["PreconditionFailed"], "CopyObject If-Match of another ETag");
    let missing = s3.copy_object().bucket("condcopy").key("none").copy_source("condcopy/source-0").if_match("*");
    expect_s3_error(missing.send().await, 404, &["NoSuchKey"], "CopyObject If-Match of a missing key");
    let target = s3.head_object().bucket("condcopy").key("target").send().await.unwrap();
    let matching = s3.copy_object().bucket("condcopy").key("target").copy_source("condcopy/source-0");
    matching.if_match(target.e_tag().unwrap()).send().await.expect("CopyObject If-Match of the target's ETag");
}
