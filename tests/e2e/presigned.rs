//! Presigned URLs (SigV4 query authentication), performed with a raw hyper client:
//! GET and PUT round trips, expiry, tampering.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};

use crate::harness::*;

fn presign_cfg(secs: u64) -> PresigningConfig {
    PresigningConfig::expires_in(Duration::from_secs(secs)).expect("PresigningConfig")
}

/// Replaces the value of query parameter `name` in `uri`.
fn replace_query_param(uri: &str, name: &str, f: impl Fn(&str) -> String) -> String {
    let (base, query) = uri.split_once('?').expect("presigned URI has a query");
    let params: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if k == name => format!("{k}={}", f(v)),
            _ => kv.to_string(),
        })
        .collect();
    let out = format!("{base}?{}", params.join("&"));
    assert_ne!(out, uri, "test bug: query parameter {name} not found in {uri}");
    out
}

/// Flips the last hex digit of a signature.
fn flip_last_hex(sig: &str) -> String {
    let mut s = sig.to_string();
    let last = s.pop().expect("non-empty signature");
    s.push(if last == '0' { '1' } else { '0' });
    s
}

fn assert_error(resp: &RawResponse, status: u16, code: &str, what: &str) {
    assert_eq!(
        resp.status,
        status,
        "{what}: expected HTTP {status} {code}, got {} body {}",
        resp.status,
        resp.body_str()
    );
    assert_eq!(
        resp.xml_tag("Code").as_deref(),
        Some(code),
        "{what}: expected error code {code} in body {}",
        resp.body_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_get_and_put() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "presigned";
    create_bucket(&s3, bucket).await;
    let data = random_bytes(150_000);
    put(&s3, bucket, "dir/existing obj.bin", &data).await;

    // GET.
    let req = s3
        .get_object()
        .bucket(bucket)
        .key("dir/existing obj.bin")
        .presigned(presign_cfg(300))
        .await
        .ok_or_panic("presign GetObject");
    assert_eq!(req.method(), "GET", "presigned GetObject method");
    let resp = send_presigned(&req, Vec::new()).await;
    assert_eq!(resp.status, 200, "presigned GET: status (body {})", resp.body_str());
    assert_bytes_eq(&resp.body, &data, "presigned GET body");
    assert_eq!(resp.header("etag"), Some(etag_of(&data)), "presigned GET ETag header");
    assert_eq!(resp.header("content-length"), Some(data.len().to_string()), "presigned GET Content-Length header");
    // The same URL works more than once until it expires.
    let resp = send_presigned(&req, Vec::new()).await;
    assert_eq!(resp.status, 200, "presigned GET, second use: status");

    // PUT of a new object.
    let new_data = random_bytes(70_001);
    let req = s3
        .put_object()
        .bucket(bucket)
        .key("uploaded via presigned.bin")
        .presigned(presign_cfg(300))
        .await
        .ok_or_panic("presign PutObject");
    assert_eq!(req.method(), "PUT", "presigned PutObject method");
    let resp = send_presigned(&req, new_data.clone()).await;
    assert_eq!(resp.status, 200, "presigned PUT: status (body {})", resp.body_str());
    assert_eq!(resp.header("etag"), Some(etag_of(&new_data)), "presigned PUT ETag header");
    let body = get(&s3, bucket, "uploaded via presigned.bin").await;
    assert_bytes_eq(&body, &new_data, "SDK GET of object uploaded with a presigned PUT");

    // HEAD via a presigned URL.
    let req = s3
        .head_object()
        .bucket(bucket)
        .key("uploaded via presigned.bin")
        .presigned(presign_cfg(300))
        .await
        .ok_or_panic("presign HeadObject");
    let resp = raw_request("HEAD", req.uri(), &req.headers().collect::<Vec<_>>(), Vec::new()).await;
    assert_eq!(resp.status, 200, "presigned HEAD: status");
    assert_eq!(resp.header("content-length"), Some(new_data.len().to_string()), "presigned HEAD Content-Length");

    // Presigned GET of a missing key: authenticated, so NoSuchKey.
    let req = s3
        .get_object()
        .bucket(bucket)
        .key("missing")
        .presigned(presign_cfg(300))
        .await
        .ok_or_panic("presign GetObject missing");
    let resp = send_presigned(&req, Vec::new()).await;
    assert_error(&resp, 404, "NoSuchKey", "presigned GET of a missing key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_presigned_url_is_access_denied() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "presigned-expiry";
    create_bucket(&s3, bucket).await;
    put(&s3, bucket, "obj", b"data").await;

    fn check_expired(resp: &RawResponse, what: &str) {
        assert_error(resp, 403, "AccessDenied", what);
        let message = resp.xml_tag("Message").unwrap_or_default();
        assert!(
            message.to_lowercase().contains("expired"),
            "{what}: expected a 'Request has expired' message, got body {}",
            resp.body_str()
        );
    }

    // Signed an hour ago, valid for one minute.
    let cfg = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(3600))
        .expires_in(Duration::from_secs(60))
        .build()
        .expect("PresigningConfig");
    let req = s3
        .get_object()
        .bucket(bucket)
        .key("obj")
        .presigned(cfg.clone())
        .await
        .ok_or_panic("presign GetObject (past start time)");
    check_expired(&send_presigned(&req, Vec::new()).await, "GET with a presigned URL that expired an hour ago");

    let req = s3
        .put_object()
        .bucket(bucket)
        .key("obj")
        .presigned(cfg)
        .await
        .ok_or_panic("presign PutObject (past start time)");
    check_expired(
        &send_presigned(&req, b"overwritten".to_vec()).await,
        "PUT with a presigned URL that expired an hour ago",
    );
    let body = get(&s3, bucket, "obj").await;
    assert_bytes_eq(&body, b"data", "object after an expired presigned PUT");

    // Valid for one second: works now, not after two seconds.
    let req = s3
        .get_object()
        .bucket(bucket)
        .key("obj")
        .presigned(presign_cfg(1))
        .await
        .ok_or_panic("presign GetObject (1 s)");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    check_expired(&send_presigned(&req, Vec::new()).await, "GET 2.5 s after a 1 s presigned URL was made");
}

async fn check_tampered(req: &PresignedRequest, uri: &str, body: Vec<u8>, what: &str) {
    let resp = send_presigned_to(req, uri, &[], body).await;
    assert_error(&resp, 403, "SignatureDoesNotMatch", what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_presigned_url_is_signature_does_not_match() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "presigned-tamper";
    create_bucket(&s3, bucket).await;
    put(&s3, bucket, "obj", b"data").await;
    put(&s3, bucket, "other", b"other data").await;

    let get_req =
        s3.get_object().bucket(bucket).key("obj").presigned(presign_cfg(300)).await.ok_or_panic("presign GetObject");
    let uri = get_req.uri().to_string();

    let tampered_sig = replace_query_param(&uri, "X-Amz-Signature", flip_last_hex);
    check_tampered(&get_req, &tampered_sig, Vec::new(), "GET with a tampered X-Amz-Signature").await;

    let longer = replace_query_param(&uri, "X-Amz-Expires", |_| "604800".to_string());
    check_tampered(&get_req, &longer, Vec::new(), "GET with a tampered X-Amz-Expires").await;

    let other_key = uri.replacen("/obj?", "/other?", 1);
    assert_ne!(other_key, uri, "test bug: key not found in {uri}");
    check_tampered(&get_req, &other_key, Vec::new(), "GET of another key with a URL presigned for obj").await;

    // Using a GET URL for a PUT (method is part of the signature).
    let resp = raw_request("PUT", &uri, &get_req.headers().collect::<Vec<_>>(), b"overwritten".to_vec()).await;
    assert_error(&resp, 403, "SignatureDoesNotMatch", "PUT with a URL presigned for GET");

    // Tampered presigned PUT writes nothing.
    let put_req =
        s3.put_object().bucket(bucket).key("obj").presigned(presign_cfg(300)).await.ok_or_panic("presign PutObject");
    let tampered_put = replace_query_param(put_req.uri(), "X-Amz-Signature", flip_last_hex);
    check_tampered(&put_req, &tampered_put, b"overwritten".to_vec(), "PUT with a tampered X-Amz-Signature").await;
    let body = get(&s3, bucket, "obj").await;
    assert_bytes_eq(&body, b"data", "object after tampered presigned PUT");

    // A URL presigned with the wrong secret key.
    let bad = server.client_with(ADMIN_ACCESS_KEY, "wrong-secret-key-value");
    let req = bad
        .get_object()
        .bucket(bucket)
        .key("obj")
        .presigned(presign_cfg(300))
        .await
        .ok_or_panic("presign GetObject with a wrong secret");
    let resp = send_presigned(&req, Vec::new()).await;
    assert_error(&resp, 403, "SignatureDoesNotMatch", "GET with a URL presigned with a wrong secret");

    // The untampered URL still works.
    let resp = send_presigned(&get_req, Vec::new()).await;
    assert_eq!(resp.status, 200, "untampered presigned GET: status (body {})", resp.body_str());
    assert_bytes_eq(&resp.body, b"data", "untampered presigned GET body");
}
