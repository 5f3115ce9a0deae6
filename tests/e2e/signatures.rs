//! What a signature may and may not do beyond what s3s checks: SigV2 off by default and,
//! when allowed, bound to a recent Date and kept off the SQL endpoint; presigned SigV4 URLs
//! live at most seven days; a signed aws-chunked body must end with its final chunk.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use sha2::{Digest as _, Sha256};

use crate::harness::*;

/// HMAC-SHA1 (RFC 2104), for SigV2 signatures.
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    use sha1::Digest as _;
    const BLOCK_BYTES: usize = 64;
    let mut block = [0u8; BLOCK_BYTES];
    if key.len() > BLOCK_BYTES {
        block[..20].copy_from_slice(&sha1::Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = sha1::Sha1::new().chain_update(pad(0x36)).chain_update(message).finalize();
    sha1::Sha1::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// The headers of a SigV2-signed request (`Authorization: AWS key:signature`) with this
/// `Date`, for a request without Content-MD5, Content-Type or x-amz-* headers.
fn sigv2_headers(method: &str, resource: &str, date: &str) -> Vec<(String, String)> {
    let string_to_sign = format!("{method}\n\n\n{date}\n{resource}");
    let signature = base64(&hmac_sha1(ADMIN_SECRET_KEY.as_bytes(), string_to_sign.as_bytes()));
    vec![("authorization".into(), format!("AWS {ADMIN_ACCESS_KEY}:{signature}")), ("date".into(), date.into())]
}

async fn send(method: &str, url: &str, headers: &[(String, String)], body: Vec<u8>) -> RawResponse {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    raw_request(method, url, &headers, body).await
}

fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv2_is_refused_unless_allowed() {
    let server = Server::start();
    create_bucket(&server.client(), "sigv2").await;
    let url = format!("{}/sigv2", server.endpoint());
    let headers = sigv2_headers("GET", "/sigv2", &http_date(SystemTime::now()));
    let response = send("GET", &url, &headers, Vec::new()).await;
    let message = expect_error_document(&response, 400, "InvalidRequest", "a SigV2-signed ListObjects by default");
    assert!(message.contains("AWS4-HMAC-SHA256"), "the refusal should name the scheme to use, got {message:?}");

    // A presigned SigV2 URL is refused the same way.
    let expires = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + 600;
    let string_to_sign = format!("GET\n\n\n{expires}\n/sigv2");
    let signature = base64(&hmac_sha1(ADMIN_SECRET_KEY.as_bytes(), string_to_sign.as_bytes()));
    let presigned = format!(
        "{url}?AWSAccessKeyId={ADMIN_ACCESS_KEY}&Expires={expires}&Signature={}",
        signature.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
    );
    let response = raw_request("GET", &presigned, &[], Vec::new()).await;
    expect_error_document(&response, 400, "InvalidRequest", "a presigned SigV2 URL by default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv2_when_allowed_needs_a_recent_date_and_stays_off_the_sql_endpoint() {
    let server = Server::start_with(ServerOptions { extra_args: vec!["--allow-sigv2".into()], ..Default::default() });
    create_bucket(&server.client(), "sigv2").await;
    let url = format!("{}/sigv2", server.endpoint());

    let now = SystemTime::now();
    let response = send("GET", &url, &sigv2_headers("GET", "/sigv2", &http_date(now)), Vec::new()).await;
    assert_eq!(response.status, 200, "a SigV2 ListObjects dated now, with --allow-sigv2: {}", response.body_str());
    // botocore signs a path-style bucket request over `/bucket/` but sends `/bucket`.
    let response = send("GET", &url, &sigv2_headers("GET", "/sigv2/", &http_date(now)), Vec::new()).await;
    assert_eq!(
        response.status,
        200,
        "a SigV2 ListObjects signed over /sigv2/, sent as /sigv2: {}",
        response.body_str()
    );
    let response = send("GET", &url, &sigv2_headers("GET", "/other/", &http_date(now)), Vec::new()).await;
    expect_error_document(&response, 403, "SignatureDoesNotMatch", "a SigV2 request signed over another bucket");

    for (date, status, code) in [
        ("Thu, 01 Jan 1970 00:00:00 GMT".to_string(), 403, "RequestTimeTooSkewed"),
        (http_date(now - Duration::from_secs(16 * 60)), 403, "RequestTimeTooSkewed"),
        (http_date(now + Duration::from_secs(16 * 60)), 403, "RequestTimeTooSkewed"),
        ("garbage".to_string(), 403, "AccessDenied"),
    ] {
        // Correctly signed over this Date: only the date itself is wrong.
        let response = send("GET", &url, &sigv2_headers("GET", "/sigv2", &date), Vec::new()).await;
        expect_error_document(&response, status, code, format!("a SigV2 request signed with Date: {date}"));
    }

    // SigV2 signs neither the body nor `?sql`: one captured signature would run any query.
    let sql_url = format!("{}/?sql&format=csv", server.endpoint());
    let response = send("POST", &sql_url, &sigv2_headers("POST", "/", &http_date(now)), b"SELECT 1".to_vec()).await;
    expect_error_document(&response, 400, "InvalidRequest", "a SigV2-signed SQL query");
}

/// A presigned SigV4 URL for `GET url`, valid for `expires_in`.
fn presign(url: &str, expires_in: Duration) -> String {
    let identity = aws_credential_types::Credentials::new(ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, None, None, "e2e").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires_in);
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("SigV4 signing params")
        .into();
    let signable = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::UnsignedPayload)
        .expect("a request to presign");
    let (instructions, _) = sign(signable, &params).expect("presigning").into_parts();
    let mut request = http::Request::builder().uri(url).body(()).expect("request");
    instructions.apply_to_request_http1x(&mut request);
    request.uri().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_live_at_most_a_week() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "presign").await;
    put(&s3, "presign", "k", b"payload").await;
    let url = format!("{}/presign/k", server.endpoint());

    let week = Duration::from_secs(604_800);
    let response = raw_request("GET", &presign(&url, week), &[], Vec::new()).await;
    assert_eq!(response.status, 200, "a URL presigned for exactly a week: {}", response.body_str());
    assert_eq!(&response.body[..], b"payload");

    let response = raw_request("GET", &presign(&url, week + Duration::from_secs(1)), &[], Vec::new()).await;
    let message = expect_error_document(
        &response,
        403,
        "AuthorizationQueryParametersError",
        "a correctly signed URL presigned for a week and a second",
    );
    assert!(message.contains("604800"), "the message should give the limit, got {message:?}");
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A signed aws-chunked PUT (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) of `data` in chunks of
/// `chunk_bytes`: the headers and the encoded body, with or without the final zero-length chunk.
fn signed_chunked_put(
    url: &str,
    data: &[u8],
    chunk_bytes: usize,
    final_chunk: bool,
) -> (Vec<(String, String)>, Vec<u8>) {
    let now = SystemTime::now();
    let chunks: Vec<&[u8]> = data.chunks(chunk_bytes).collect();
    let signature_line_bytes = ";chunk-signature=".len() + 64 + 2;
    let mut encoded_len: usize =
        chunks.iter().map(|c| format!("{:x}", c.len()).len() + signature_line_bytes + c.len() + 2).sum();
    if final_chunk {
        encoded_len += 1 + signature_line_bytes + 2;
    }
    let decoded_len = data.len().to_string();
    let content_len = encoded_len.to_string();
    let signed_headers = [
        ("content-encoding", "aws-chunked"),
        ("content-length", content_len.as_str()),
        ("x-amz-decoded-content-length", decoded_len.as_str()),
    ];

    let identity = aws_credential_types::Credentials::new(ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, None, None, "e2e").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(now)
        .settings(settings)
        .build()
        .expect("SigV4 signing params")
        .into();
    let signable = SignableRequest::new(
        "PUT",
        url,
        signed_headers.iter().copied(),
        SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()),
    )
    .expect("a request to sign");
    let (instructions, seed_signature) = sign(signable, &params).expect("signing").into_parts();
    let mut request = http::Request::builder().method("PUT").uri(url).body(()).expect("request");
    for (name, value) in signed_headers {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    instructions.apply_to_request_http1x(&mut request);
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let amz_date = request.headers()["x-amz-date"].to_str().unwrap().to_owned();
    let scope = format!("{}/{REGION}/s3/aws4_request", &amz_date[..8]);
    let signing_key = aws_sigv4::sign::v4::generate_signing_key(ADMIN_SECRET_KEY, now, REGION, "s3");

    let mut previous = seed_signature;
    let mut body = Vec::new();
    let mut all: Vec<&[u8]> = chunks;
    if final_chunk {
        all.push(&[]);
    }
    for chunk in all {
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{}\n{}",
            sha256_hex(b""),
            sha256_hex(chunk)
        );
        let signature = aws_sigv4::sign::v4::calculate_signature(signing_key.as_ref(), string_to_sign.as_bytes());
        body.extend_from_slice(format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
        previous = signature;
    }
    assert_eq!(body.len(), encoded_len, "the announced Content-Length must match the encoded body");
    (headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_aws_chunked_upload_without_its_final_chunk_is_refused() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "chunked").await;
    let data = seeded_bytes(7, 200_000);

    let url = format!("{}/chunked/complete", server.endpoint());
    let (headers, body) = signed_chunked_put(&url, &data, 65_536, true);
    let response = send("PUT", &url, &headers, body).await;
    assert_eq!(response.status, 200, "a complete signed aws-chunked PUT: {}", response.body_str());
    assert_bytes_eq(&get(&s3, "chunked", "complete").await, &data, "object of a complete aws-chunked PUT");

    let url = format!("{}/chunked/truncated", server.endpoint());
    let (headers, body) = signed_chunked_put(&url, &data, 65_536, false);
    let response = send("PUT", &url, &headers, body).await;
    expect_error_document(&response, 400, "IncompleteBody", "a signed aws-chunked PUT without its final chunk");
    expect_s3_error(
        s3.head_object().bucket("chunked").key("truncated").send().await,
        404,
        &[],
        "the object of a refused truncated aws-chunked PUT must not exist",
    );
}
