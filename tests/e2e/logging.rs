//! Error documents and the server's log: every S3 error names its Code, Message,
//! Resource and RequestId; each request gets one access line; client errors are not
//! logged as server errors.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_documents_have_code_message_resource_and_request_id() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "docs").await;

    let missing_key = format!("{}/docs/missing", server.endpoint());
    let signed = |method: &str, url: &str, secret: &str| sigv4_headers(method, url, b"", ADMIN_ACCESS_KEY, secret);
    let cases = [
        ("GET", missing_key.clone(), signed("GET", &missing_key, ADMIN_SECRET_KEY), 404, "NoSuchKey"),
        ("GET", missing_key.clone(), signed("GET", &missing_key, "not-the-secret"), 403, "SignatureDoesNotMatch"),
        (
            "PUT",
            format!("{}/Bad_Bucket", server.endpoint()),
            signed("PUT", &format!("{}/Bad_Bucket", server.endpoint()), ADMIN_SECRET_KEY),
            400,
            "InvalidBucketName",
        ),
    ];
    for (method, url, headers, status, code) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let response = raw_request(method, &url, &headers, "").await;
        let what = format!("{method} {url} ({code})");
        let message = expect_error_document(&response, status, code, &what);
        assert!(!message.is_empty(), "{what}: expected a Message, got none: {}", response.body_str());
        assert!(
            response.xml_tag("Resource").is_some_and(|r| !r.is_empty()),
            "{what}: no Resource: {}",
            response.body_str()
        );
        let header_id = response.header("x-amz-request-id");
        assert!(header_id.is_some(), "{what}: no x-amz-request-id header");
        assert_eq!(response.xml_tag("RequestId"), header_id, "{what}: RequestId in the body vs the header");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_line_per_request_and_no_error_line_for_a_client_404() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "logged").await;
    let missing = s3.get_object().bucket("logged").key("nope").send().await;
    assert_eq!(err_status(missing.as_ref().expect_err("GET of a missing key fails")), Some(404));
    let request_id =
        missing.as_ref().err().and_then(|e| e.raw_response()).and_then(|r| r.headers().get("x-amz-request-id"));
    let request_id = request_id.expect("x-amz-request-id on the 404").to_string();

    let log = server.stderr_text();
    let access: Vec<&str> = log.lines().filter(|l| l.contains(&request_id)).collect();
    assert_eq!(access.len(), 1, "expected one log line with request id {request_id}, got {access:?}\n{log}");
    let line = access[0];
    for part in ["GET", "/logged/nope", "404", ADMIN_ACCESS_KEY] {
        assert!(line.contains(part), "access line lacks {part:?}: {line}");
    }
    assert!(line.contains(" INFO "), "expected the access line at INFO: {line}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "expected no ERROR line for a client 404, got:\n{}", errors.join("\n"));
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a log written to a file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_object_per_line() {
    let server = Server::start_with(ServerOptions {
        extra_args: vec!["--log-format".into(), "json".into()],
        ..Default::default()
    });
    let s3 = server.client();
    create_bucket(&s3, "json").await;
    let missing = s3.get_object().bucket("json").key("nope").send().await;
    let request_id = missing
        .as_ref()
        .err()
        .and_then(|e| e.raw_response())
        .and_then(|r| r.headers().get("x-amz-request-id"))
        .expect("x-amz-request-id on the 404")
        .to_string();

    let log = server.stderr_text();
    let mut access = Vec::new();
    for line in log.lines().filter(|l| !l.starts_with("===== e2e harness")) {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("expected every log line to be a JSON object, got {line:?}: {e}\n{log}"));
        if value["fields"]["request_id"] == request_id.as_str() {
            access.push(value);
        }
    }
    assert_eq!(access.len(), 1, "expected one JSON access line for request {request_id}\n{log}");
    let line = &access[0];
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["fields"]["status"], 404, "{line}");
    assert_eq!(line["fields"]["method"], "GET", "{line}");
    assert_eq!(line["fields"]["path"], "/json/nope", "{line}");
}
