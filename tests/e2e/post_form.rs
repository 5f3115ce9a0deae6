//! Browser uploads (POST Object) signed with SigV4, as a web page's form sends them: the
//! AWS field names `acl` and `tagging` (a Tagging XML document) applied and still
//! covered by the policy's conditions, and S3's refusals of a policy expiration that
//! is not an ISO 8601 UTC date-time, of a form giving one setting both ways, and of a
//! field value no header could carry.

use base64::Engine as _;

use crate::harness::*;

const BUCKET: &str = "forms";

/// A SigV4-signed form: `fields` (then the signing fields, the policy and its
/// signature, then the file) under a policy whose expiration is `expiration` and whose
/// conditions are `conditions` plus the signing fields'.
fn signed_form(expiration: &str, conditions: &[&str], fields: &[(&str, &str)], file: &str) -> (String, String) {
    signed_form_with(expiration, conditions, fields, file, true)
}

/// `signed_form`, with or without the policy's condition on `x-amz-date`.
fn signed_form_with(
    expiration: &str,
    conditions: &[&str],
    fields: &[(&str, &str)],
    file: &str,
    date_condition: bool,
) -> (String, String) {
    let now = std::time::SystemTime::now();
    let at = aws_smithy_types::DateTime::from(now);
    let iso = at.fmt(aws_smithy_types::date_time::Format::DateTime).expect("ISO date");
    let amz_date: String =
        iso.split('.').next().unwrap_or(&iso).chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let amz_date = format!("{}Z", amz_date.trim_end_matches('Z'));
    let credential = format!("{ADMIN_ACCESS_KEY}/{}/{REGION}/s3/aws4_request", &amz_date[..8]);
    let mut all_conditions: Vec<String> = conditions.iter().map(|c| c.to_string()).collect();
    all_conditions.push(format!(r#"{{"bucket":"{BUCKET}"}}"#));
    all_conditions.push(format!(r#"{{"x-amz-credential":"{credential}"}}"#));
    all_conditions.push(r#"{"x-amz-algorithm":"AWS4-HMAC-SHA256"}"#.into());
    if date_condition {
        all_conditions.push(format!(r#"{{"x-amz-date":"{amz_date}"}}"#));
    }
    let policy = format!(r#"{{"expiration":"{expiration}","conditions":[{}]}}"#, all_conditions.join(","));
    let policy = base64::engine::general_purpose::STANDARD.encode(policy);
    let key = aws_sigv4::sign::v4::generate_signing_key(ADMIN_SECRET_KEY, now, REGION, "s3");
    let signature = aws_sigv4::sign::v4::calculate_signature(key, policy.as_bytes());
    let boundary = "quarry-post-form";
    let mut body = String::new();
    let signing = [
        ("x-amz-credential", credential.as_str()),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
        ("x-amz-date", amz_date.as_str()),
        ("policy", policy.as_str()),
        ("x-amz-signature", signature.as_str()),
    ];
    for (name, value) in fields.iter().chain(&signing) {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n{file}\r\n--{boundary}--\r\n"
    ));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post(server: &Server, (content_type, body): (String, String)) -> RawResponse {
    let url = server_url(server, BUCKET);
    raw_request("POST", &url, &[("content-type", content_type.as_str())], body).await
}

const LATER: &str = "2099-01-01T00:00:00.000Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_with_an_sse_c_key_over_plain_http_is_refused() {
    let server = Server::start();
    create_bucket(&server.client(), BUCKET).await;
    let (key, md5) = customer_key_b64(5);
    let fields = [
        ("key", "secret.txt"),
        ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
        ("x-amz-server-side-encryption-customer-key", key.as_str()),
        ("x-amz-server-side-encryption-customer-key-md5", md5.as_str()),
    ];
    let conditions = [
        r#"{"key":"secret.txt"}"#,
        r#"["starts-with","$x-amz-server-side-encryption-customer-algorithm",""]"#,
        r#"["starts-with","$x-amz-server-side-encryption-customer-key",""]"#,
        r#"["starts-with","$x-amz-server-side-encryption-customer-key-md5",""]"#,
    ];
    let refused = post(&server, signed_form(LATER, &conditions, &fields, "secret")).await;
    expect_error_document(&refused, 400, "InvalidRequest", "a form with an SSE-C key over plain HTTP");
    let missing = server.client().head_object().bucket(BUCKET).key("secret.txt").send().await;
    expect_s3_error(missing, 404, &[], "the refused form stored nothing");
}
const TAGS: &str = "<Tagging><TagSet><Tag><Key>project</Key><Value>a&amp;b</Value></Tag>\
                    <Tag><Key>tier</Key><Value>gold</Value></Tag></TagSet></Tagging>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_forms_apply_acl_and_tagging_fields_under_the_policy() {
    let server = Server::start_with(ServerOptions {
        extra_args: ["--block-public-access", "false", "--object-ownership", "ObjectWriter"].map(String::from).to_vec(),
        ..Default::default()
    });
    let s3 = server.client();
    create_bucket(&s3, BUCKET).await;
    let conditions =
        [r#"["starts-with","$key","uploads/"]"#, r#"{"acl":"public-read"}"#, r#"["starts-with","$tagging",""]"#];

    // `acl` and `tagging`, the field names AWS documents for forms, are applied.
    let fields = [("key", "uploads/a.txt"), ("acl", "public-read"), ("tagging", TAGS)];
    let uploaded = post(&server, signed_form(LATER, &conditions, &fields, "from a page")).await;
    assert_eq!(uploaded.status, 204, "a signed form with acl and tagging: {}", uploaded.body_str());
    assert_eq!(get(&s3, BUCKET, "uploads/a.txt").await, b"from a page");
    let tags = s3.get_object_tagging().bucket(BUCKET).key("uploads/a.txt").send().await.ok_or_panic("tags");
    let mut tags: Vec<(&str, &str)> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    tags.sort();
    assert_eq!(tags, [("project", "a&b"), ("tier", "gold")], "the tagging field's tags");
    let anonymous = raw_request("GET", &server_url(&server, "forms/uploads/a.txt"), &[], "").await;
    assert_eq!(anonymous.status, 200, "the acl field made the object public-read: {}", anonymous.body_str());

    // The fields are still under the policy's conditions, by their own names.
    let fields = [("key", "uploads/b.txt"), ("acl", "private"), ("tagging", TAGS)];
    let refused = post(&server, signed_form(LATER, &conditions, &fields, "b")).await;
    expect_error_document(&refused, 403, "AccessDenied", "an acl field the policy's condition does not allow");
    let fields = [("key", "uploads/b.txt"), ("acl", "public-read")];
    let uncovered = post(&server, signed_form(LATER, &[conditions[0], conditions[2]], &fields, "b")).await;
    expect_error_document(&uncovered, 403, "AccessDenied", "an acl field no condition names");

    // Every signing field needs its condition too.
    let fields = [("key", "uploads/b.txt"), ("acl", "public-read")];
    let undated = post(&server, signed_form_with(LATER, &conditions[..2], &fields, "b", false)).await;
    expect_error_document(&undated, 403, "AccessDenied", "a policy without a condition on x-amz-date");

    // One setting given both ways, or a tagging field that is not a Tagging document.
    let both = [("key", "uploads/b.txt"), ("acl", "public-read"), ("x-amz-acl", "public-read")];
    let with_both = [conditions[0], conditions[1], r#"{"x-amz-acl":"public-read"}"#];
    let refused = post(&server, signed_form(LATER, &with_both, &both, "b")).await;
    expect_error_document(&refused, 400, "InvalidArgument", "acl and x-amz-acl in one form");
    let fields = [("key", "uploads/b.txt"), ("acl", "public-read"), ("tagging", "<Tagging><TagSet>")];
    let refused = post(&server, signed_form(LATER, &conditions, &fields, "b")).await;
    expect_error_document(&refused, 400, "MalformedXML", "a tagging field that is not XML");
    let missing = s3.head_object().bucket(BUCKET).key("uploads/b.txt").send().await;
    expect_s3_error(missing, 404, &[], "the refused forms wrote nothing");

    // The policy's expiration is an ISO 8601 UTC date-time, or the form is refused.
    let fields = [("key", "uploads/c.txt"), ("acl", "public-read")];
    for expiration in ["2099-01-01 00:00:00.000000+00:00", "2099-01-01T00:00:00+01:00", "2099-01-01"] {
        let refused = post(&server, signed_form(expiration, &conditions[..2], &fields, "c")).await;
        expect_error_document(&refused, 400, "InvalidPolicyDocument", format!("a policy expiring {expiration:?}"));
    }
    let accepted = post(&server, signed_form("2099-01-01T00:00:00Z", &conditions[..2], &fields, "c")).await;
    assert_eq!(accepted.status, 204, "an expiration without fraction: {}", accepted.body_str());

    // A checksum field (named by a condition, as every field must be) is verified and
    // kept, as PutObject's header would be.
    let checked = [conditions[0], conditions[1], r#"["starts-with","$x-amz-checksum-sha256",""]"#];
    let digest = {
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b"checked"))
    };
    let fields = [("key", "uploads/e.txt"), ("acl", "public-read"), ("x-amz-checksum-sha256", digest.as_str())];
    let stored = post(&server, signed_form(LATER, &checked, &fields, "checked")).await;
    assert_eq!(stored.status, 204, "a form with the file's SHA-256: {}", stored.body_str());
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("uploads/e.txt")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .ok_or_panic("HeadObject with checksums");
    assert_eq!(head.checksum_sha256(), Some(digest.as_str()), "the form's checksum is the object's");
    let fields = [("key", "uploads/f.txt"), ("acl", "public-read"), ("x-amz-checksum-sha256", digest.as_str())];
    let refused = post(&server, signed_form(LATER, &checked, &fields, "not what was summed")).await;
    assert_eq!(refused.status, 400, "a form whose file does not match its checksum: {}", refused.body_str());
    let missing = s3.head_object().bucket(BUCKET).key("uploads/f.txt").send().await;
    expect_s3_error(missing, 404, &[], "the form with a wrong checksum wrote nothing");

    // A field can hold CR LF, a header cannot: such a value would make the object
    // unreadable, so it is refused.
    let typed = [conditions[0], conditions[1], r#"["starts-with","$Content-Type",""]"#];
    let fields = [("key", "uploads/d.txt"), ("acl", "public-read"), ("Content-Type", "text/html\r\nX-Injected: 1")];
    let refused = post(&server, signed_form(LATER, &typed, &fields, "d")).await;
    let message = expect_error_document(&refused, 400, "InvalidArgument", "a Content-Type field holding CR LF");
    assert!(message.contains("Content-Type"), "the refusal names the field: {message}");
    let missing = s3.head_object().bucket(BUCKET).key("uploads/d.txt").send().await;
    expect_s3_error(missing, 404, &[], "the refused form wrote nothing");
}
