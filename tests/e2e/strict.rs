//! Nothing silently accepted: requests for features Quarry lacks (ACL grants under
//! BucketOwnerEnforced, dual-layer KMS encryption, object lock on a bucket without it,
//! website redirects), encryption headers that contradict each other, and tags beyond S3's limits get
//! the S3 error AWS gives instead of a 200
//! that drops them; storage classes are kept as given; metadata that could not be sent
//! back is refused at upload; listings answer max-keys=0 and an empty delimiter as S3 does.

use aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder;
use aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketCannedAcl, CompletedMultipartUpload, CompletedPart, ObjectCannedAcl, ObjectLockLegalHoldStatus,
    ObjectLockMode, ObjectOwnership, ServerSideEncryption, StorageClass,
};

use crate::harness::*;

/// A customer key for SSE-C headers: (algorithm, key, key MD5), all as S3 wants them.
fn sse_c_key() -> (String, String, String) {
    let key = [7u8; 32];
    ("AES256".to_owned(), base64(&key), base64(&md5_bytes(&key)))
}

/// SSE-C headers whose MD5 is not the key's.
fn sse_c_key_with_wrong_md5() -> (String, String, String) {
    let (algorithm, key, _) = sse_c_key();
    (algorithm, key, base64(&md5_bytes(b"another key")))
}

fn retain_until() -> DateTime {
    DateTime::from_secs(4_102_444_800) // 2100-01-01
}

/// One refused variant of a request: what it adds, the status and code AWS answers.
type Case<B> = (&'static str, fn(B) -> B, u16, &'static str);

fn object_write_cases<B>() -> Vec<Case<B>>
where
    B: ObjectWriteBuilder,
{
    vec![
        ("x-amz-acl: public-read", |b| b.acl(ObjectCannedAcl::PublicRead), 400, "AccessControlListNotSupported"),
        (
            "x-amz-acl: authenticated-read",
            |b| b.acl(ObjectCannedAcl::AuthenticatedRead),
            400,
            "AccessControlListNotSupported",
        ),
        (
            "x-amz-grant-read",
            |b| b.grant_read("uri=http://acs.amazonaws.com/groups/global/AllUsers"),
            400,
            "AccessControlListNotSupported",
        ),
        ("SSE aws:kms:dsse", |b| b.server_side_encryption(ServerSideEncryption::AwsKmsDsse), 501, "NotImplemented"),
        (
            "SSE of an unknown method",
            |b| b.server_side_encryption(ServerSideEncryption::from("aes:kms")),
            400,
            "InvalidArgument",
        ),
        (
            "SSE-C with SSE AES256",
            |b| b.sse_c(sse_c_key()).server_side_encryption(ServerSideEncryption::Aes256),
            400,
            "InvalidArgument",
        ),
        ("SSE-C of another key's MD5", |b| b.sse_c(sse_c_key_with_wrong_md5()), 400, "InvalidArgument"),
        ("object lock retention", |b| b.lock(), 400, "InvalidRequest"),
        ("object lock legal hold", |b| b.legal_hold(), 400, "InvalidRequest"),
        ("x-amz-tagging of 11 tags", |b| b.tagging("a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11"), 400, "InvalidTag"),
        ("x-amz-tagging with a key twice", |b| b.tagging("a=1&a=2"), 400, "InvalidTag"),
        ("website redirect", |b| b.website_redirect_location("/elsewhere"), 501, "NotImplemented"),
        ("unknown storage class", |b| b.storage_class(StorageClass::from("FAST")), 400, "InvalidStorageClass"),
    ]
}

/// The option setters PutObject, CopyObject and CreateMultipartUpload share.
trait ObjectWriteBuilder: Sized {
    fn acl(self, acl: ObjectCannedAcl) -> Self;
    fn grant_read(self, grant: &str) -> Self;
    fn server_side_encryption(self, sse: ServerSideEncryption) -> Self;
    fn sse_c(self, key: (String, String, String)) -> Self;
    fn lock(self) -> Self;
    fn legal_hold(self) -> Self;
    fn tagging(self, tagging: &str) -> Self;
    fn website_redirect_location(self, location: &str) -> Self;
    fn storage_class(self, class: StorageClass) -> Self;
}

macro_rules! impl_object_write_builder {
    ($($builder:ty),*) => {$(
        impl ObjectWriteBuilder for $builder {
            fn acl(self, acl: ObjectCannedAcl) -> Self { <$builder>::acl(self, acl) }
            fn grant_read(self, grant: &str) -> Self { <$builder>::grant_read(self, grant) }
            fn server_side_encryption(self, sse: ServerSideEncryption) -> Self {
                <$builder>::server_side_encryption(self, sse)
            }
            fn sse_c(self, (algorithm, key, md5): (String, String, String)) -> Self {
                self.sse_customer_algorithm(algorithm).sse_customer_key(key).sse_customer_key_md5(md5)
            }
            fn lock(self) -> Self {
                self.object_lock_mode(ObjectLockMode::Governance).object_lock_retain_until_date(retain_until())
            }
            fn legal_hold(self) -> Self { self.object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On) }
            fn tagging(self, tagging: &str) -> Self { <$builder>::tagging(self, tagging) }
            fn website_redirect_location(self, location: &str) -> Self {
                <$builder>::website_redirect_location(self, location)
            }
            fn storage_class(self, class: StorageClass) -> Self { <$builder>::storage_class(self, class) }
        }
    )*};
}
impl_object_write_builder!(PutObjectFluentBuilder, CopyObjectFluentBuilder, CreateMultipartUploadFluentBuilder);

async fn assert_absent(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, what: &str) {
    let res = s3.head_object().bucket(bucket).key(key).send().await;
    expect_s3_error(res, 404, &[], format!("{what}: the refused write must not create {key}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_writes_refuse_features_quarry_lacks() {
    // Over TLS: the SSE-C cases are judged on their headers, not refused for the transport.
    let server = Server::start_with(ServerOptions { tls: true, ..Default::default() });
    let s3 = server.client();
    let bucket = "strict-objects";
    create_bucket(&s3, bucket).await;
    put(&s3, bucket, "source", b"copy me").await;

    for (what, add, status, code) in object_write_cases::<PutObjectFluentBuilder>() {
        let req = s3.put_object().bucket(bucket).key("put").body(ByteStream::from_static(b"data"));
        expect_s3_error(add(req).send().await, status, &[code], format!("PutObject with {what}"));
        assert_absent(&s3, bucket, "put", &format!("PutObject with {what}")).await;
    }
    for (what, add, status, code) in object_write_cases::<CopyObjectFluentBuilder>() {
        let req = s3.copy_object().bucket(bucket).key("copy").copy_source(format!("{bucket}/source"));
        expect_s3_error(add(req).send().await, status, &[code], format!("CopyObject with {what}"));
        assert_absent(&s3, bucket, "copy", &format!("CopyObject with {what}")).await;
    }
    for (what, add, status, code) in object_write_cases::<CreateMultipartUploadFluentBuilder>() {
        let req = s3.create_multipart_upload().bucket(bucket).key("mpu");
        expect_s3_error(add(req).send().await, status, &[code], format!("CreateMultipartUpload with {what}"));
    }
    let uploads = s3.list_multipart_uploads().bucket(bucket).send().await.ok_or_panic("ListMultipartUploads");
    assert!(uploads.uploads().is_empty(), "refused CreateMultipartUpload calls must start no upload, got {uploads:?}");

    // SSE-C naming the key of a copy source that is not encrypted with one.
    let (algorithm, key, md5) = sse_c_key();
    let res = s3
        .copy_object()
        .bucket(bucket)
        .key("copy")
        .copy_source(format!("{bucket}/source"))
        .copy_source_sse_customer_algorithm(algorithm)
        .copy_source_sse_customer_key(key)
        .copy_source_sse_customer_key_md5(md5)
        .send()
        .await;
    expect_s3_error(res, 400, &["InvalidRequest"], "CopyObject with source SSE-C headers");

    // With ACLs off (BucketOwnerEnforced, the default) an ACL that gives the bucket's
    // owner full control and no one else anything passes: bucket-owner-full-control, and
    // `private` from the bucket's owner (as AWS; rclone sends it by default).
    for acl in [ObjectCannedAcl::Private, ObjectCannedAcl::BucketOwnerFullControl] {
        let req = s3.put_object().bucket(bucket).key("owner-only").acl(acl.clone()).body(ByteStream::from_static(b"x"));
        req.send().await.ok_or_panic(format!("PutObject with x-amz-acl: {}", acl.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_bucket_refuses_acls_under_bucket_owner_enforced() {
    let server = Server::start();
    let s3 = server.client();
    let cases: Vec<(&str, aws_sdk_s3::operation::create_bucket::builders::CreateBucketFluentBuilder, u16, &str)> = vec![
        (
            "x-amz-acl: public-read",
            s3.create_bucket().acl(BucketCannedAcl::PublicRead),
            400,
            "InvalidBucketAclWithObjectOwnership",
        ),
        (
            "x-amz-grant-write",
            s3.create_bucket().grant_write(format!("id={}", "a".repeat(64))),
            400,
            "InvalidBucketAclWithObjectOwnership",
        ),
        (
            "an ACL with BucketOwnerEnforced named",
            s3.create_bucket().object_ownership(ObjectOwnership::BucketOwnerEnforced).acl(BucketCannedAcl::PublicRead),
            400,
            "InvalidBucketAclWithObjectOwnership",
        ),
    ];
    for (what, req, status, code) in cases {
        expect_s3_error(req.bucket("strict-bucket").send().await, status, &[code], format!("CreateBucket with {what}"));
        let res = s3.head_bucket().bucket("strict-bucket").send().await;
        expect_s3_error(res, 404, &[], format!("CreateBucket with {what} must not create the bucket"));
    }
    s3.create_bucket()
        .bucket("strict-bucket")
        .acl(BucketCannedAcl::Private)
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .send()
        .await
        .ok_or_panic("CreateBucket with x-amz-acl: private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_class_is_kept_as_given() {
    let mut server = Server::start();
    let s3 = server.client();
    let bucket = "strict-classes";
    create_bucket(&s3, bucket).await;
    let body = || ByteStream::from_static(b"classy");

    s3.put_object()
        .bucket(bucket)
        .key("ia")
        .storage_class(StorageClass::StandardIa)
        .body(body())
        .send()
        .await
        .ok_or_panic("PutObject STANDARD_IA");
    put(&s3, bucket, "plain", b"plain").await;
    // A copy gets the class it names, STANDARD when it names none.
    let source = format!("{bucket}/ia");
    s3.copy_object().bucket(bucket).key("copied").copy_source(&source).send().await.ok_or_panic("CopyObject");
    s3.copy_object()
        .bucket(bucket)
        .key("copied-ir")
        .copy_source(&source)
        .storage_class(StorageClass::GlacierIr)
        .send()
        .await
        .ok_or_panic("CopyObject GLACIER_IR");
    // Copying an object onto itself to change only its class is a legal copy.
    s3.copy_object()
        .bucket(bucket)
        .key("plain")
        .copy_source(format!("{bucket}/plain"))
        .storage_class(StorageClass::ReducedRedundancy)
        .send()
        .await
        .ok_or_panic("CopyObject onto itself with a new storage class");

    let mpu = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key("mpu")
        .storage_class(StorageClass::OnezoneIa)
        .send()
        .await
        .ok_or_panic("CreateMultipartUpload ONEZONE_IA");
    let upload_id = mpu.upload_id().expect("upload id").to_owned();
    let part = s3
        .upload_part()
        .bucket(bucket)
        .key("mpu")
        .upload_id(&upload_id)
        .part_number(1)
        .body(body())
        .send()
        .await
        .ok_or_panic("UploadPart");
    let uploads = s3.list_multipart_uploads().bucket(bucket).send().await.ok_or_panic("ListMultipartUploads");
    let listed: Vec<_> = uploads.uploads().iter().map(|u| u.storage_class().map(|c| c.as_str().to_owned())).collect();
    assert_eq!(listed, [Some("ONEZONE_IA".to_owned())], "ListMultipartUploads storage classes");
    let parts = s3.list_parts().bucket(bucket).key("mpu").upload_id(&upload_id).send().await.ok_or_panic("ListParts");
    assert_eq!(parts.storage_class().map(|c| c.as_str()), Some("ONEZONE_IA"), "ListParts storage class");
    let completed = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().expect("part etag")).build())
        .build();
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key("mpu")
        .upload_id(&upload_id)
        .multipart_upload(completed)
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload");

    let expected = [
        ("copied", "STANDARD"),
        ("copied-ir", "GLACIER_IR"),
        ("ia", "STANDARD_IA"),
        ("mpu", "ONEZONE_IA"),
        ("plain", "REDUCED_REDUNDANCY"),
    ];
    check_classes(&server.client(), bucket, &expected, "before restart").await;
    // The class is part of the object's record: it survives a restart (index rebuilt from the log).
    server.restart();
    check_classes(&server.client(), bucket, &expected, "after restart").await;
}

async fn check_classes(s3: &aws_sdk_s3::Client, bucket: &str, expected: &[(&str, &str)], when: &str) {
    for (key, class) in expected {
        let head = s3.head_object().bucket(bucket).key(*key).send().await.ok_or_panic(format!("HEAD {key}"));
        // S3 sends x-amz-storage-class for every class but STANDARD.
        let want = (*class != "STANDARD").then_some(*class);
        assert_eq!(head.storage_class().map(|c| c.as_str()), want, "HEAD {key} storage class {when}");
        let get = s3.get_object().bucket(bucket).key(*key).send().await.ok_or_panic(format!("GET {key}"));
        assert_eq!(get.storage_class().map(|c| c.as_str()), want, "GET {key} storage class {when}");
    }
    let v2 = s3.list_objects_v2().bucket(bucket).send().await.ok_or_panic("ListObjectsV2");
    let listed: Vec<(&str, &str)> = v2
        .contents()
        .iter()
        .map(|o| (o.key().unwrap_or_default(), o.storage_class().map(|c| c.as_str()).unwrap_or_default()))
        .collect();
    assert_eq!(listed, expected, "ListObjectsV2 storage classes {when}");
    let v1 = s3.list_objects().bucket(bucket).send().await.ok_or_panic("ListObjects");
    let listed: Vec<(&str, &str)> = v1
        .contents()
        .iter()
        .map(|o| (o.key().unwrap_or_default(), o.storage_class().map(|c| c.as_str()).unwrap_or_default()))
        .collect();
    assert_eq!(listed, expected, "ListObjects storage classes {when}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_that_cannot_be_sent_back_is_refused() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "strict-meta";
    create_bucket(&s3, bucket).await;
    // RFC 2047 encoded words reach the metadata decoded: these carry CR/LF, NUL and ESC.
    for (what, value) in [
        ("CR LF", "=?UTF-8?B?YQ0KYjogYw==?="),
        ("LF", "=?UTF-8?B?YQpi?="),
        ("NUL", "=?UTF-8?B?YQBi?="),
        ("ESC", "=?UTF-8?B?G1sybQ==?="),
    ] {
        let res = s3
            .put_object()
            .bucket(bucket)
            .key("meta")
            .metadata("note", value)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        expect_s3_error(res, 400, &["InvalidArgument"], format!("PutObject with {what} in metadata"));
        assert_absent(&s3, bucket, "meta", &format!("PutObject with {what} in metadata")).await;
        let res = s3.create_multipart_upload().bucket(bucket).key("meta").metadata("note", value).send().await;
        expect_s3_error(res, 400, &["InvalidArgument"], format!("CreateMultipartUpload with {what} in metadata"));
    }
    // Ordinary metadata, even RFC 2047 encoded, still goes through.
    let res = s3
        .put_object()
        .bucket(bucket)
        .key("fine")
        .metadata("note", "=?UTF-8?B?aGVsbG8=?=")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    res.ok_or_panic("PutObject with plain metadata");
    let head = s3.head_object().bucket(bucket).key("fine").send().await.ok_or_panic("HEAD fine");
    assert_eq!(head.metadata().and_then(|m| m.get("note")).map(String::as_str), Some("hello"), "plain metadata");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_max_keys_zero_and_empty_delimiter() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "strict-list";
    create_bucket(&s3, bucket).await;
    for key in ["a/1", "a/2", "b"] {
        put(&s3, bucket, key, b"x").await;
    }
    let v2 = s3.list_objects_v2().bucket(bucket).max_keys(0).send().await.ok_or_panic("ListObjectsV2 max-keys=0");
    assert_eq!(v2.is_truncated(), Some(false), "ListObjectsV2 max-keys=0 is not truncated");
    assert!(v2.contents().is_empty(), "ListObjectsV2 max-keys=0 lists nothing, got {:?}", v2.contents());
    let v1 = s3.list_objects().bucket(bucket).max_keys(0).send().await.ok_or_panic("ListObjects max-keys=0");
    assert_eq!(v1.is_truncated(), Some(false), "ListObjects max-keys=0 is not truncated");
    assert!(v1.contents().is_empty(), "ListObjects max-keys=0 lists nothing, got {:?}", v1.contents());

    // An empty delimiter is no delimiter: all keys, no common prefixes, not echoed.
    let url = format!("{}/{bucket}?list-type=2&delimiter=", server.endpoint());
    let headers = sigv4_headers("GET", &url, b"", ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = raw_request("GET", &url, &headers, "").await;
    let xml = res.body_str();
    assert_eq!(res.status, 200, "ListObjectsV2 with delimiter= : {xml}");
    assert_eq!(xml.matches("<Key>").count(), 3, "ListObjectsV2 with delimiter= lists every key: {xml}");
    assert!(!xml.contains("<CommonPrefixes>"), "ListObjectsV2 with delimiter= has no common prefixes: {xml}");
    assert!(!xml.contains("<Delimiter"), "ListObjectsV2 does not echo an empty delimiter: {xml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_xml_cannot_carry_are_refused() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "strict-keys";
    create_bucket(&s3, bucket).await;
    put(&s3, bucket, "source", b"x").await;
    for key in ["nul\0key", "bell\u{7}", "esc\u{1b}[0m", "non-char\u{FFFF}"] {
        let res = s3.put_object().bucket(bucket).key(key).body(ByteStream::from_static(b"x")).send().await;
        expect_s3_error(res, 400, &["InvalidArgument"], format!("PutObject {key:?}"));
        let res = s3.copy_object().bucket(bucket).key(key).copy_source(format!("{bucket}/source")).send().await;
        expect_s3_error(res, 400, &["InvalidArgument"], format!("CopyObject to {key:?}"));
        let res = s3.create_multipart_upload().bucket(bucket).key(key).send().await;
        expect_s3_error(res, 400, &["InvalidArgument"], format!("CreateMultipartUpload {key:?}"));
    }
    // Tab, newline and CR are XML characters: such keys are fine and list without encoding-type.
    put(&s3, bucket, "line\nbreak\ttab", b"x").await;
    let out = s3.list_objects_v2().bucket(bucket).send().await.ok_or_panic("ListObjectsV2 without encoding-type");
    let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["line\nbreak\ttab", "source"], "keys listed without encoding-type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_objects_v1_echoes_prefix_unencoded() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "strict-v1-prefix";
    create_bucket(&s3, bucket).await;
    put(&s3, bucket, "a b/c d", b"x").await;
    // S3 encodes keys, Delimiter and markers with encoding-type=url, but ListObjects (v1)
    // echoes Prefix as sent (botocore decodes v1 Prefix only in CommonPrefixes).
    let v1 = s3
        .list_objects()
        .bucket(bucket)
        .prefix("a b/")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .ok_or_panic("ListObjects encoding-type=url");
    assert_eq!(v1.prefix(), Some("a b/"), "ListObjects Prefix with encoding-type=url");
    let keys: Vec<&str> = v1.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a%20b/c%20d"], "ListObjects keys with encoding-type=url");
    let v2 = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("a b/")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .ok_or_panic("ListObjectsV2 encoding-type=url");
    assert_eq!(v2.prefix(), Some("a%20b/"), "ListObjectsV2 Prefix with encoding-type=url");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_complete_multipart_body_is_a_client_error() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "strict-big-xml";
    create_bucket(&s3, bucket).await;
    let upload = s3.create_multipart_upload().bucket(bucket).key("k").send().await.ok_or_panic("CreateMultipartUpload");
    let upload_id = upload.upload_id().expect("upload id");
    let body = oversized_complete_multipart_body();
    let url = format!("{}/{bucket}/k?uploadId={upload_id}", server.endpoint());
    let signed = sigv4_headers("POST", &url, body.as_bytes(), ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
    let mut headers: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let length = body.len().to_string();
    headers.push(("content-length", &length));
    let res = raw_request("POST", &url, &headers, body).await;
    let code = res.xml_tag("Code");
    assert!(
        res.status == 400 && matches!(code.as_deref(), Some("MaxMessageLengthExceeded" | "MalformedXML")),
        "CompleteMultipartUpload with a {length}-byte body: expected 400 MaxMessageLengthExceeded or MalformedXML, got {} {code:?}: {}",
        res.status,
        res.body_str()
    );
    server.client().head_bucket().bucket(bucket).send().await.ok_or_panic("the server still answers");
}

/// A SigV4 header signature over `Date` (no `x-amz-date`), as SigV4 allows.
fn sign_with_date(server: &Server, path: &str, secret_key: &str, utc_as: &str) -> Vec<(String, String)> {
    use aws_smithy_types::date_time::Format;
    use sha2::Digest;
    // Whole seconds: both date headers carry no fraction.
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(since_epoch.as_secs());
    let at = aws_smithy_types::DateTime::from(now);
    // "GMT" as HTTP writes it, or "-0000" as RFC 2822 (and botocore) may.
    let http_date = at.fmt(Format::HttpDate).expect("HTTP date");
    let date = format!("{} {utc_as}", http_date.strip_suffix(" GMT").expect("HTTP dates end in GMT"));
    let iso = at.fmt(Format::DateTime).expect("ISO date");
    let amz_date: String = iso.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let day = &amz_date[..8];
    let host = server.addr().to_string();
    let canonical = format!(
        "GET\n{path}\n\ndate:{date}\nhost:{host}\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n\n\
         date;host;x-amz-content-sha256\nUNSIGNED-PAYLOAD"
    );
    let scope = format!("{day}/{REGION}/s3/aws4_request");
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(sha2::Sha256::digest(canonical.as_bytes())));
    let key = aws_sigv4::sign::v4::generate_signing_key(secret_key, now, REGION, "s3");
    let signature = aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes());
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={ADMIN_ACCESS_KEY}/{scope}, SignedHeaders=date;host;x-amz-content-sha256, Signature={signature}"
    );
    vec![
        ("date".into(), date),
        ("x-amz-content-sha256".into(), "UNSIGNED-PAYLOAD".into()),
        ("authorization".into(), authorization),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4_may_sign_date_instead_of_x_amz_date() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "strict-date";
    create_bucket(&s3, bucket).await;
    put(&s3, bucket, "k", b"dated").await;
    let path = format!("/{bucket}/k");
    let url = format!("{}{path}", server.endpoint());

    for utc_as in ["GMT", "-0000", "+0000"] {
        let signed = sign_with_date(&server, &path, ADMIN_SECRET_KEY, utc_as);
        let headers: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let res = raw_request("GET", &url, &headers, "").await;
        assert_eq!(
            (res.status, res.body_str()),
            (200, "dated".to_owned()),
            "GET signed over a Date ending in {utc_as}, without x-amz-date"
        );
    }

    // The signature is still checked.
    let wrong = sign_with_date(&server, &path, "not-the-secret", "GMT");
    let headers: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = raw_request("GET", &url, &headers, "").await;
    assert_eq!(res.status, 403, "GET signed over Date with a wrong secret: {}", res.body_str());
}

/// PUT with `Transfer-Encoding: chunked` and no Content-Length (a body of unknown length).
async fn chunked_put(url: &str, headers: &[(String, String)], chunks: Vec<bytes::Bytes>) -> (u16, String) {
    use http_body_util::BodyExt;
    let frames = chunks.into_iter().map(|c| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(c)));
    let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<_>();
    let mut builder = http::Request::builder().method("PUT").uri(url);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let response = client.request(builder.body(body).expect("chunked request")).await.expect("chunked PUT sent");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("response body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_of_unknown_length_is_stored() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "strict-chunked";
    create_bucket(&s3, bucket).await;
    let data = seeded_bytes(7, 300_000);
    let chunks: Vec<bytes::Bytes> = data.chunks(64 * 1024).map(bytes::Bytes::copy_from_slice).collect();
    let url = format!("{}/{bucket}/streamed", server.endpoint());
    // Signed over the payload's SHA-256, as botocore does.
    let headers = sigv4_headers("PUT", &url, &data, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
    let (status, body) = chunked_put(&url, &headers, chunks.clone()).await;
    assert_eq!(status, 200, "chunked PUT without Content-Length: {body}");
    assert_bytes_eq(&get(&s3, bucket, "streamed").await, &data, "object written by a chunked PUT");

    // The payload hash is still verified.
    let other = seeded_bytes(8, 300_000);
    let headers = sigv4_headers("PUT", &url, &other, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
    let (status, body) = chunked_put(&url, &headers, chunks).await;
    assert!(
        status == 400 || status == 403,
        "chunked PUT whose body does not match the signed hash: got {status} {body}"
    );
    assert_bytes_eq(&get(&s3, bucket, "streamed").await, &data, "object after a refused chunked PUT");
}

/// GetObjectTorrent: a missing key or bucket is a 404 as on S3 (ceph/s3-tests
/// test_get_object_torrent); for an object that exists, 501 NotImplemented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torrent_of_a_missing_object_is_404_and_of_an_existing_one_501() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "torrents").await;
    put(&s3, "torrents", "here", b"x").await;
    expect_s3_error(
        s3.get_object_torrent().bucket("torrents").key("missing").send().await,
        404,
        &["NoSuchKey"],
        "GetObjectTorrent of a missing key",
    );
    expect_s3_error(
        s3.get_object_torrent().bucket("no-such-bucket-here").key("k").send().await,
        404,
        &["NoSuchBucket"],
        "GetObjectTorrent in a missing bucket",
    );
    expect_s3_error(
        s3.get_object_torrent().bucket("torrents").key("here").send().await,
        501,
        &["NotImplemented"],
        "GetObjectTorrent of an existing object",
    );
}

/// CORS preflights to a bucket without a CORS configuration get S3's answers: 400
/// without an Origin, 403 with one; never a 200 that would let a browser go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_refused_as_for_a_bucket_without_cors() {
    let server = Server::start();
    create_bucket(&server.client(), "preflight").await;
    let url = server_url(&server, "preflight/key");
    let bare = raw_request("OPTIONS", &url, &[], "").await;
    assert_eq!((bare.status, bare.xml_tag("Code").as_deref()), (400, Some("BadRequest")), "OPTIONS without Origin");
    let headers = [("origin", "https://example.com"), ("access-control-request-method", "GET")];
    let with_origin = raw_request("OPTIONS", &url, &headers, "").await;
    assert_eq!(
        (with_origin.status, with_origin.xml_tag("Code").as_deref()),
        (403, Some("AccessForbidden")),
        "OPTIONS with an Origin"
    );
    assert_eq!(with_origin.header("access-control-allow-origin"), None, "no CORS grant");
}

/// An empty Content-MD5 is not a digest: S3 answers 400 InvalidDigest (s3s reads an
/// empty header as none).
#[tokio::test]
async fn an_empty_content_md5_is_refused_as_an_invalid_digest() {
    let server = Server::start();
    create_bucket(&server.client(), "md5").await;
    let url = server_url(&server, "md5/k");
    let headers = sigv4_headers_with("PUT", &url, b"bar", &[("content-md5", "")], ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let response = raw_request("PUT", &url, &headers, "bar").await;
    expect_error_document(&response, 400, "InvalidDigest", "PUT with an empty Content-MD5");
}

/// An object uploaded without a Content-Type is served as binary/octet-stream, the type
/// S3 keeps for it (the SDKs send one; boto3 and curl need not).
#[tokio::test]
async fn an_object_uploaded_without_a_content_type_is_binary_octet_stream() {
    let server = Server::start();
    create_bucket(&server.client(), "untyped").await;
    let url = server_url(&server, "untyped/k");
    let headers = sigv4_headers("PUT", &url, b"bar", ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
    assert!(!headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")), "the PUT must carry no type");
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let response = raw_request("PUT", &url, &headers, "bar").await;
    assert_eq!(response.status, 200, "PUT without a Content-Type: {}", response.body_str());
    let head = server.client().head_object().bucket("untyped").key("k").send().await.ok_or_panic("HeadObject");
    assert_eq!(head.content_type(), Some("binary/octet-stream"), "the type of an untyped upload");
}
