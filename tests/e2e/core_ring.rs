//! Core S3 behaviour the public ceph/s3-tests suite checks: GET/HEAD of a part number
//! past the last part, non-ASCII user metadata returned as sent, a part re-uploaded
//! while an earlier upload of it is in flight, and an XML body of unknown length past
//! the XML limit.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use http_body_util::BodyExt;

use crate::harness::*;

/// A request whose body is sent frame by frame as `frames` yields them (with the headers
/// given: `content-length` makes it sized, without it hyper sends it chunked).
async fn streamed_request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    frames: tokio::sync::mpsc::Receiver<bytes::Bytes>,
) -> RawResponse {
    let frames = Box::pin(futures::stream::unfold(frames, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(b)), rx))
    }));
    let body = http_body_util::StreamBody::new(frames);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<_>();
    let mut builder = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let response = client.request(builder.body(body).expect("streamed request")).await.expect("streamed request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("response body").to_bytes();
    RawResponse { status, headers, body }
}

/// SigV4 headers (the admin key's) for a request that also sends and signs `extra`.
fn signed_with(method: &str, url: &str, body: &[u8], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    sigv4_headers_with(method, url, body, extra, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY)
}

/// S3 answers a part number past the object's last part with 400 InvalidPart, for GET
/// and HEAD, for a multipart object and for a plain one (which has one part).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_number_past_the_last_part_is_a_400() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "ring-part-number";
    create_bucket(&s3, bucket).await;
    put(&s3, bucket, "plain", b"plain body").await;
    let upload = s3.create_multipart_upload().bucket(bucket).key("multi").send().await.ok_or_panic("Create");
    let upload_id = upload.upload_id().expect("upload id");
    let part = s3
        .upload_part()
        .bucket(bucket)
        .key("multi")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"one part"))
        .send()
        .await
        .ok_or_panic("UploadPart 1");
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key("multi")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap_or_default()).build())
                .build(),
        )
        .send()
        .await
        .ok_or_panic("Complete");
    for key in ["plain", "multi"] {
        let first = s3.get_object().bucket(bucket).key(key).part_number(1).send().await.ok_or_panic("GET part 1");
        assert_eq!(first.parts_count(), if key == "multi" { Some(1) } else { None }, "{key}: PartsCount");
        for n in [2, 5] {
            let got = s3.get_object().bucket(bucket).key(key).part_number(n).send().await;
            expect_s3_error(got, 400, &["InvalidPart"], format!("GET {key}?partNumber={n}"));
            let head = s3.head_object().bucket(bucket).key(key).part_number(n).send().await;
            expect_s3_error(head, 400, &[], format!("HEAD {key}?partNumber={n}"));
        }
    }
}

/// User metadata sent as raw UTF-8 in `x-amz-meta-*` comes back byte for byte as sent
/// (S3 does not encode it as RFC 2047 words).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_user_metadata_comes_back_as_sent() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "ring-meta-utf8";
    create_bucket(&s3, bucket).await;
    let value = "Ünïcödé ☃ 日本語 plain";
    let url = format!("{}/{bucket}/k", server.endpoint());
    let headers = signed_with("PUT", &url, b"body", &[("x-amz-meta-name", value), ("x-amz-meta-ascii", "plain")]);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let put = raw_request("PUT", &url, &headers, "body").await;
    assert_eq!(put.status, 200, "PUT with UTF-8 metadata: {}", put.body_str());
    for method in ["GET", "HEAD"] {
        let headers = signed_with(method, &url, b"", &[]);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let got = raw_request(method, &url, &headers, "").await;
        assert_eq!(got.status, 200, "{method}: {}", got.body_str());
        let raw = got.headers.get("x-amz-meta-name").map(|v| v.as_bytes().to_vec());
        assert_eq!(
            raw.as_deref(),
            Some(value.as_bytes()),
            "{method}: x-amz-meta-name must be the bytes sent, got {:?}",
            raw.as_deref().map(String::from_utf8_lossy)
        );
        assert_eq!(got.header("x-amz-meta-ascii").as_deref(), Some("plain"), "{method}: x-amz-meta-ascii");
    }
    // The SDK reads it back as the same text.
    let head = s3.head_object().bucket(bucket).key("k").send().await.ok_or_panic("HeadObject");
    assert_eq!(head.metadata().and_then(|m| m.get("name")).map(String::as_str), Some(value), "SDK metadata");
}

/// A part uploaded again while an earlier upload of the same part number is still
/// sending: the upload that finishes last is the part, and completing with its ETag
/// gives its bytes (the ETag of the one that finished first names no part any more).
/// A client that recorded both answers lists the part number twice: the last entry
/// counts, as in S3 (ceph/s3-tests test_multipart_resend_first_finishes_last).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_part_upload_that_finishes_last_is_the_part() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "ring-part-resend";
    let key = "resent";
    create_bucket(&s3, bucket).await;
    let upload = s3.create_multipart_upload().bucket(bucket).key(key).send().await.ok_or_panic("Create");
    let upload_id = upload.upload_id().expect("upload id").to_owned();

    // First upload (A) starts: 3 MiB, sent in two frames with a pause between them.
    let first = seeded_bytes(1, 3 * MIB);
    let url = format!("{}/{bucket}/{key}?partNumber=1&uploadId={upload_id}", server.endpoint());
    let mut headers = sigv4_headers("PUT", &url, &first, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
    headers.push(("content-length".into(), first.len().to_string()));
    let (frames, rx) = tokio::sync::mpsc::channel(4);
    frames.send(bytes::Bytes::copy_from_slice(&first[..2 * MIB])).await.expect("first frame");
    let sending = tokio::spawn({
        let url = url.clone();
        async move { streamed_request("PUT", &url, &headers, rx).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Second upload (B) of part 1 starts later and finishes first.
    let second = seeded_bytes(2, 2 * MIB);
    let b = s3
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from(second.clone()))
        .send()
        .await
        .ok_or_panic("UploadPart B");
    let etag_b = b.e_tag().unwrap_or_default().to_owned();
    assert_eq!(etag_b, etag_of(&second));

    // A finishes last.
    frames.send(bytes::Bytes::copy_from_slice(&first[2 * MIB..])).await.expect("last frame");
    drop(frames);
    let a = sending.await.expect("upload A");
    assert_eq!(a.status, 200, "UploadPart A: {}", a.body_str());
    let etag_a = a.header("etag").expect("ETag of A");
    assert_eq!(etag_a, etag_of(&first));

    let parts = s3.list_parts().bucket(bucket).key(key).upload_id(&upload_id).send().await.ok_or_panic("ListParts");
    let listed: Vec<(Option<i32>, Option<&str>)> = parts.parts().iter().map(|p| (p.part_number(), p.e_tag())).collect();
    assert_eq!(listed, vec![(Some(1), Some(etag_a.as_str()))], "ListParts after both uploads");

    let complete = |etags: &[&str]| {
        let parts = etags.iter().map(|etag| CompletedPart::builder().part_number(1).e_tag(*etag).build());
        s3.complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts.collect())).build())
            .send()
    };
    expect_s3_error(
        complete(&[&etag_b]).await,
        400,
        &["InvalidPart"],
        "Complete with the ETag of the part finished first",
    );
    expect_s3_error(
        complete(&[&etag_a, &etag_b]).await,
        400,
        &["InvalidPart"],
        "Complete listing part 1 twice, the ETag of the part finished first last",
    );
    complete(&[&etag_b, &etag_a]).await.ok_or_panic("Complete listing part 1 twice, the ETag finished last last");
    assert_bytes_eq(&get(&s3, bucket, key).await, &first, "object made of the part finished last");

    // The same after a restart (the index is rebuilt from the log).
    let mut server = server;
    server.kill9();
    std::fs::remove_dir_all(server.data_dir().join("index")).expect("remove the index");
    server.restart();
    assert_bytes_eq(&get(&server.client(), bucket, key).await, &first, "after a restart");
}

/// An XML POST body sent with `Transfer-Encoding: chunked` and no Content-Length that
/// grows past the XML limit is a client error, as with a declared length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsized_xml_body_past_the_limit_is_a_client_error() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "ring-unsized-xml";
    create_bucket(&s3, bucket).await;
    let upload = s3.create_multipart_upload().bucket(bucket).key("k").send().await.ok_or_panic("CreateMultipartUpload");
    let upload_id = upload.upload_id().expect("upload id");
    let body = oversized_complete_multipart_body();
    let url = format!("{}/{bucket}/k?uploadId={upload_id}", server.endpoint());
    let headers = sigv4_headers("POST", &url, body.as_bytes(), ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
    let (frames, rx) = tokio::sync::mpsc::channel(4);
    let feeding = tokio::spawn(async move {
        for piece in body.as_bytes().chunks(MIB) {
            if frames.send(bytes::Bytes::copy_from_slice(piece)).await.is_err() {
                return;
            }
        }
    });
    let res = streamed_request("POST", &url, &headers, rx).await;
    feeding.abort();
    let code = res.xml_tag("Code");
    assert!(
        res.status == 400 && matches!(code.as_deref(), Some("MaxMessageLengthExceeded" | "MalformedXML")),
        "chunked CompleteMultipartUpload past 20 MiB: expected 400 MaxMessageLengthExceeded or MalformedXML, got {} {code:?}: {}",
        res.status,
        res.body_str()
    );
    s3.head_bucket().bucket(bucket).send().await.ok_or_panic("the server still answers");

    // A small chunked XML body still works (here: a list naming no uploaded part).
    let small =
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"e\"</ETag></Part></CompleteMultipartUpload>";
    let headers = sigv4_headers("POST", &url, small.as_bytes(), ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
    let (frames, rx) = tokio::sync::mpsc::channel(4);
    frames.send(bytes::Bytes::from_static(small.as_bytes())).await.expect("frame");
    drop(frames);
    let res = streamed_request("POST", &url, &headers, rx).await;
    assert_eq!(
        (res.status, res.xml_tag("Code").as_deref()),
        (400, Some("InvalidPart")),
        "small chunked CompleteMultipartUpload naming a missing part: {}",
        res.body_str()
    );
}

/// A CompleteMultipartUpload retried after it succeeded gets the same answer (S3 keeps
/// completed uploads answerable, so a client whose first answer was lost can retry);
/// with other parts, or once the object was replaced, the upload is gone (NoSuchUpload).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_complete_gets_the_same_answer() {
    let mut server = Server::start();
    let s3 = server.client();
    let bucket = "ring-complete-twice";
    create_bucket(&s3, bucket).await;
    let upload = s3.create_multipart_upload().bucket(bucket).key("k").send().await.ok_or_panic("Create");
    let upload_id = upload.upload_id().expect("upload id").to_owned();
    let first = seeded_bytes(3, 5 * MIB);
    let second = seeded_bytes(4, 1000);
    let mut parts = Vec::new();
    for (n, data) in [(1, &first), (2, &second)] {
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key("k")
            .upload_id(&upload_id)
            .part_number(n)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .ok_or_panic(format!("UploadPart {n}"));
        parts.push(CompletedPart::builder().part_number(n).e_tag(out.e_tag().unwrap_or_default()).build());
    }
    let complete = |s3: aws_sdk_s3::Client, parts: Vec<CompletedPart>| {
        let upload_id = upload_id.clone();
        async move {
            s3.complete_multipart_upload()
                .bucket(bucket)
                .key("k")
                .upload_id(upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
        }
    };
    let done = complete(s3.clone(), parts.clone()).await.ok_or_panic("Complete");
    let etag = done.e_tag().unwrap_or_default().to_owned();
    assert_eq!(etag, multipart_etag(&[&first, &second]));
    let again = complete(s3.clone(), parts.clone()).await.ok_or_panic("Complete retried");
    assert_eq!(again.e_tag(), Some(etag.as_str()), "the retried Complete's ETag");
    let fewer = complete(s3.clone(), parts[..1].to_vec()).await;
    expect_s3_error(fewer, 404, &["NoSuchUpload"], "Complete of the completed upload with other parts");
    let mut whole = first.clone();
    whole.extend_from_slice(&second);
    assert_bytes_eq(&get(&s3, bucket, "k").await, &whole, "the object after the retries");

    // The answer comes from the log: the same after the index is rebuilt.
    server.kill9();
    std::fs::remove_dir_all(server.data_dir().join("index")).expect("remove the index");
    server.restart();
    let s3 = server.client();
    let again = complete(s3.clone(), parts.clone()).await.ok_or_panic("Complete retried after a restart");
    assert_eq!(again.e_tag(), Some(etag.as_str()), "the retried Complete's ETag after a restart");

    // Once the object is replaced, the upload names nothing.
    put(&s3, bucket, "k", b"replaced").await;
    let late = complete(s3.clone(), parts.clone()).await;
    expect_s3_error(late, 404, &["NoSuchUpload"], "Complete after the object was replaced");
}

/// ListObjectsV2 names each object's owner when asked with fetch-owner=true (and only then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_objects_v2_fetch_owner_names_the_owner() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "ring-fetch-owner";
    create_bucket(&s3, bucket).await;
    put(&s3, bucket, "a/b", b"x").await;
    let with = s3.list_objects_v2().bucket(bucket).fetch_owner(true).send().await.ok_or_panic("fetch-owner=true");
    let owners: Vec<bool> = with.contents().iter().map(|o| o.owner().and_then(|w| w.id()).is_some()).collect();
    assert_eq!(owners, vec![true], "fetch-owner=true: every object has an Owner with an ID");
    let without = s3.list_objects_v2().bucket(bucket).send().await.ok_or_panic("no fetch-owner");
    assert!(without.contents().iter().all(|o| o.owner().is_none()), "without fetch-owner: no Owner");
}
