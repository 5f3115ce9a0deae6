//! Data integrity: flexible checksums (CRC32 default, CRC32C, CRC64NVME, SHA-1,
//! SHA-256) sent as headers (in-memory bodies) and as aws-chunked trailers
//! (streaming bodies); checksum mode on GET/HEAD; Content-MD5 and checksum
//! mismatches are rejected without writing anything; a body corrupted in transit
//! is rejected without writing anything.

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};

use crate::harness::*;

/// Error codes S3-compatible servers use for "the body does not match the
/// checksum/digest you sent".
const DIGEST_MISMATCH_CODES: &[&str] =
    &["BadDigest", "XAmzContentChecksumMismatch", "InvalidRequest", "XAmzContentSHA256Mismatch"];

/// The checksum value of `alg` reported by an output type with the usual
/// `checksum_*` accessors.
macro_rules! checksum_of {
    ($out:expr, $alg:expr) => {
        match &$alg {
            ChecksumAlgorithm::Crc32 => $out.checksum_crc32(),
            ChecksumAlgorithm::Crc32C => $out.checksum_crc32_c(),
            ChecksumAlgorithm::Crc64Nvme => $out.checksum_crc64_nvme(),
            ChecksumAlgorithm::Sha1 => $out.checksum_sha1(),
            ChecksumAlgorithm::Sha256 => $out.checksum_sha256(),
            other => panic!("test bug: unexpected algorithm {other:?}"),
        }
        .map(str::to_string)
    };
}

/// Locally computed expected value (only for the CRCs; SHA values are checked by
/// consistency + the SDK's own response validation).
fn local_checksum(alg: &ChecksumAlgorithm, data: &[u8]) -> Option<String> {
    match alg {
        ChecksumAlgorithm::Crc32 => Some(crc32_b64(data)),
        ChecksumAlgorithm::Crc32C => Some(crc32c_b64(data)),
        ChecksumAlgorithm::Crc64Nvme => Some(crc64nvme_b64(data)),
        _ => None,
    }
}

#[test]
fn local_crc_implementations_match_reference_check_values() {
    // Standard "123456789" check values.
    let check = b"123456789";
    assert_eq!(crc32_b64(check), base64(&0xCBF4_3926u32.to_be_bytes()), "CRC32 check value");
    assert_eq!(crc32c_b64(check), base64(&0xE306_9283u32.to_be_bytes()), "CRC32C check value");
    assert_eq!(crc64nvme_b64(check), base64(&0xAE8B_1486_0A79_9888u64.to_be_bytes()), "CRC64/NVME check value");
}

/// PUT with `alg` (None = SDK default), then verify PUT/GET/HEAD checksum
/// values and the body.
async fn put_and_verify(
    server: &Server,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    data: &[u8],
    alg: Option<ChecksumAlgorithm>,
    streaming: bool,
) {
    let effective = alg.clone().unwrap_or(ChecksumAlgorithm::Crc32);
    let what = format!(
        "{key} ({} bytes, {}, {})",
        data.len(),
        alg.as_ref().map(|a| a.as_str().to_string()).unwrap_or_else(|| "default checksum".into()),
        if streaming { "streaming aws-chunked body with trailer" } else { "in-memory body, checksum header" }
    );
    let body = if streaming {
        file_stream(server.temp_path(), &format!("upload-{}", key.replace('/', "_")), data).await
    } else {
        ByteStream::from(data.to_vec())
    };
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body)
        .set_checksum_algorithm(alg.clone())
        .send()
        .await
        .ok_or_panic(format!("PutObject {what}"));
    assert_eq!(out.e_tag(), Some(etag_of(data).as_str()), "PutObject {what}: ETag");
    let put_sum = checksum_of!(out, effective);
    assert!(put_sum.is_some(), "PutObject {what}: response has no {} checksum", effective.as_str());
    if let Some(want) = local_checksum(&effective, data) {
        assert_eq!(put_sum.as_deref(), Some(want.as_str()), "PutObject {what}: {} value", effective.as_str());
    }

    let got = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .ok_or_panic(format!("GetObject (checksum mode) {what}"));
    assert_eq!(
        checksum_of!(got, effective),
        put_sum,
        "GetObject (checksum mode) {what}: stored {} checksum",
        effective.as_str()
    );
    // The SDK validates the body against the returned checksum while reading it.
    let body = collect_body(got.body, format!("GetObject (checksum mode) {what}")).await;
    assert_bytes_eq(&body, data, format!("GetObject {what}"));

    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .ok_or_panic(format!("HeadObject (checksum mode) {what}"));
    assert_eq!(
        checksum_of!(head, effective),
        put_sum,
        "HeadObject (checksum mode) {what}: stored {} checksum",
        effective.as_str()
    );
    assert_eq!(head.content_length(), Some(data.len() as i64), "HeadObject {what}: Content-Length");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_sdk_checksum_round_trip() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "default-checksum";
    create_bucket(&s3, bucket).await;
    put_and_verify(&server, &s3, bucket, "mem-small", &random_bytes(3000), None, false).await;
    put_and_verify(&server, &s3, bucket, "mem-empty", b"", None, false).await;
    // Multi-chunk streaming upload: aws-chunked, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.
    put_and_verify(&server, &s3, bucket, "stream-3mib", &random_bytes(3 * MIB + 5), None, true).await;
    put_and_verify(&server, &s3, bucket, "stream-small", &random_bytes(100), None, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_checksum_algorithms_round_trip() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "explicit-checksums";
    create_bucket(&s3, bucket).await;
    let algs = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];
    let small = random_bytes(4099);
    let large = random_bytes(MIB + MIB / 2 + 3);
    for alg in algs {
        let name = alg.as_str().to_lowercase();
        put_and_verify(&server, &s3, bucket, &format!("mem-{name}"), &small, Some(alg.clone()), false).await;
        put_and_verify(&server, &s3, bucket, &format!("stream-{name}"), &large, Some(alg.clone()), true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_upload_strips_aws_chunked_content_encoding() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "chunked-encoding";
    create_bucket(&s3, bucket).await;
    let data = random_bytes(200_000);
    let body = file_stream(server.temp_path(), "gz", &data).await;
    s3.put_object()
        .bucket(bucket)
        .key("gz")
        .body(body)
        .content_encoding("gzip")
        .send()
        .await
        .ok_or_panic("streaming PutObject with Content-Encoding gzip");
    let head = s3.head_object().bucket(bucket).key("gz").send().await.ok_or_panic("HeadObject");
    assert_eq!(
        head.content_encoding(),
        Some("gzip"),
        "Content-Encoding of a streaming (aws-chunked) upload must not include aws-chunked"
    );
    assert_eq!(head.content_length(), Some(data.len() as i64), "Content-Length (decoded length)");
    let body = get(&s3, bucket, "gz").await;
    assert_bytes_eq(&body, &data, "GET of streaming upload");

    let body = file_stream(server.temp_path(), "plain", &data).await;
    s3.put_object()
        .bucket(bucket)
        .key("plain")
        .body(body)
        .send()
        .await
        .ok_or_panic("streaming PutObject without Content-Encoding");
    let head = s3.head_object().bucket(bucket).key("plain").send().await.ok_or_panic("HeadObject");
    assert_eq!(
        head.content_encoding(),
        None,
        "Content-Encoding of a streaming upload that set none (aws-chunked must be stripped)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_md5_is_bad_digest_and_writes_nothing() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "bad-md5";
    create_bucket(&s3, bucket).await;
    let original = b"original content".to_vec();
    put(&s3, bucket, "existing", &original).await;

    let new_data = random_bytes(10_000);
    let wrong_md5 = base64(&md5_bytes(b"something else entirely"));
    for key in ["existing", "brand-new"] {
        expect_s3_error(
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(new_data.clone()))
                .content_md5(&wrong_md5)
                .send()
                .await,
            400,
            &["BadDigest"],
            format!("PutObject {key} with a wrong Content-MD5"),
        );
    }
    let body = get(&s3, bucket, "existing").await;
    assert_bytes_eq(&body, &original, "existing object after a rejected overwrite (wrong Content-MD5)");
    expect_s3_error(
        s3.head_object().bucket(bucket).key("brand-new").send().await,
        404,
        &[],
        "HeadObject of a key whose only PUT had a wrong Content-MD5",
    );

    // The correct Content-MD5 is accepted.
    s3.put_object()
        .bucket(bucket)
        .key("brand-new")
        .body(ByteStream::from(new_data.clone()))
        .content_md5(base64(&md5_bytes(&new_data)))
        .send()
        .await
        .ok_or_panic("PutObject with a correct Content-MD5");
    let body = get(&s3, bucket, "brand-new").await;
    assert_bytes_eq(&body, &new_data, "GET after PUT with correct Content-MD5");

    // UploadPart with a wrong Content-MD5 is rejected and the part is not stored.
    let upload_id = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key("mpu")
        .send()
        .await
        .ok_or_panic("CreateMultipartUpload")
        .upload_id()
        .unwrap()
        .to_string();
    expect_s3_error(
        s3.upload_part()
            .bucket(bucket)
            .key("mpu")
            .upload_id(&upload_id)
            .part_number(1)
            .body(ByteStream::from(new_data.clone()))
            .content_md5(&wrong_md5)
            .send()
            .await,
        400,
        &["BadDigest"],
        "UploadPart with a wrong Content-MD5",
    );
    let parts = s3.list_parts().bucket(bucket).key("mpu").upload_id(&upload_id).send().await.ok_or_panic("ListParts");
    let nums: Vec<i32> = parts.parts().iter().filter_map(|p| p.part_number()).collect();
    assert!(nums.is_empty(), "ListParts after a rejected UploadPart: expected no parts, got {nums:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_checksum_value_is_rejected_and_writes_nothing() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "bad-checksum";
    create_bucket(&s3, bucket).await;
    let original = b"original content".to_vec();
    put(&s3, bucket, "existing", &original).await;
    let new_data = random_bytes(5000);

    type Setter = fn(
        aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
    let cases: [(&str, Setter); 4] = [
        ("x-amz-checksum-crc32: AAAAAA==", |b| b.checksum_crc32("AAAAAA==")),
        ("x-amz-checksum-crc32c: AAAAAA==", |b| b.checksum_crc32_c("AAAAAA==")),
        ("x-amz-checksum-crc64nvme: zeros", |b| b.checksum_crc64_nvme("AAAAAAAAAAA=")),
        ("x-amz-checksum-sha256: zeros", |b| b.checksum_sha256("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")),
    ];
    for (what, set) in cases {
        for key in ["existing", "brand-new"] {
            let req = s3.put_object().bucket(bucket).key(key).body(ByteStream::from(new_data.clone()));
            expect_s3_error(
                set(req).send().await,
                400,
                DIGEST_MISMATCH_CODES,
                format!("PutObject {key} with wrong {what}"),
            );
        }
        let body = get(&s3, bucket, "existing").await;
        assert_bytes_eq(&body, &original, format!("existing object after a rejected overwrite ({what})"));
        expect_s3_error(
            s3.head_object().bucket(bucket).key("brand-new").send().await,
            404,
            &[],
            format!("HeadObject of a key whose only PUT had wrong {what}"),
        );
    }

    // The right explicit value is accepted.
    s3.put_object()
        .bucket(bucket)
        .key("brand-new")
        .body(ByteStream::from(new_data.clone()))
        .checksum_crc32(crc32_b64(&new_data))
        .send()
        .await
        .ok_or_panic("PutObject with a correct explicit x-amz-checksum-crc32");
    let body = get(&s3, bucket, "brand-new").await;
    assert_bytes_eq(&body, &new_data, "GET after PUT with correct explicit CRC32");
}

/// Flips one byte of in-memory request bodies *after* the SDK has computed the
/// payload hash, checksum and signature: simulates corruption in transit.
#[derive(Debug)]
struct CorruptBodyInTransit;

impl Intercept for CorruptBodyInTransit {
    fn name(&self) -> &'static str {
        "CorruptBodyInTransit"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = context.request().body().bytes()
            && !bytes.is_empty()
        {
            let mut corrupted = bytes.to_vec();
            let mid = corrupted.len() / 2;
            corrupted[mid] ^= 0x01;
            *context.request_mut().body_mut() = SdkBody::from(corrupted);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_corrupted_in_transit_is_rejected_and_writes_nothing() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "corrupted";
    create_bucket(&s3, bucket).await;
    let original = b"original content".to_vec();
    put(&s3, bucket, "existing", &original).await;

    let corrupting = aws_sdk_s3::Client::from_conf(
        server.config_builder(ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY).interceptor(CorruptBodyInTransit).build(),
    );
    let new_data = random_bytes(100_000);
    for key in ["existing", "brand-new"] {
        let res = corrupting.put_object().bucket(bucket).key(key).body(ByteStream::from(new_data.clone())).send().await;
        // Nothing may be written, whatever the error looks like...
        let body = get(&s3, bucket, "existing").await;
        assert_bytes_eq(&body, &original, format!("existing object after corrupted PUT to {key}"));
        expect_s3_error(
            s3.head_object().bucket(bucket).key("brand-new").send().await,
            404,
            &[],
            format!("HeadObject brand-new after corrupted PUT to {key}"),
        );
        // ...and the error must be a 400 digest mismatch (S3: XAmzContentSHA256Mismatch).
        expect_s3_error(
            res,
            400,
            DIGEST_MISMATCH_CODES,
            format!("PutObject {key} with a body corrupted after signing"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_of_one_part_reports_that_parts_checksum() {
    use aws_sdk_s3::types::{ChecksumType, CompletedMultipartUpload, CompletedPart};
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "parts").await;
    let bodies = [seeded_bytes(21, 5 * MIB), seeded_bytes(22, 1000)];
    let upload = s3
        .create_multipart_upload()
        .bucket("parts")
        .key("mp")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .ok_or_panic("CreateMultipartUpload with SHA256");
    let upload_id = upload.upload_id().unwrap();
    let mut completed = CompletedMultipartUpload::builder();
    let mut part_sums = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let number = i as i32 + 1;
        let part = s3
            .upload_part()
            .bucket("parts")
            .key("mp")
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .ok_or_panic(format!("UploadPart {number}"));
        let sum = part.checksum_sha256().expect("the part's SHA256").to_owned();
        completed = completed.parts(
            CompletedPart::builder().part_number(number).e_tag(part.e_tag().unwrap()).checksum_sha256(&sum).build(),
        );
        part_sums.push(sum);
    }
    s3.complete_multipart_upload()
        .bucket("parts")
        .key("mp")
        .upload_id(upload_id)
        .multipart_upload(completed.build())
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload");
    for (i, body) in bodies.iter().enumerate() {
        let number = i as i32 + 1;
        let got = s3
            .get_object()
            .bucket("parts")
            .key("mp")
            .part_number(number)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .ok_or_panic(format!("GET part {number}"));
        assert_eq!(got.checksum_sha256(), Some(part_sums[i].as_str()), "GET part {number}: its SHA256");
        assert_eq!(got.checksum_type(), Some(&ChecksumType::Composite), "GET part {number}: the checksum type");
        assert_bytes_eq(&collect_body(got.body, format!("part {number}")).await, body, format!("part {number}"));
    }
    let ranged = s3
        .get_object()
        .bucket("parts")
        .key("mp")
        .range("bytes=0-99")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .ok_or_panic("ranged GET");
    assert_eq!(ranged.checksum_sha256(), None, "a range carries no checksum");
    let attributes = s3
        .get_object_attributes()
        .bucket("parts")
        .key("mp")
        .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectParts)
        .send()
        .await
        .ok_or_panic("GetObjectAttributes ObjectParts");
    let listed: Vec<Option<&str>> =
        attributes.object_parts().map(|p| p.parts().iter().map(|p| p.checksum_sha256()).collect()).unwrap_or_default();
    let want: Vec<Option<&str>> = part_sums.iter().map(|s| Some(s.as_str())).collect();
    assert_eq!(listed, want, "GetObjectAttributes lists each part's SHA256");
}
