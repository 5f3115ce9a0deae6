//! Bucket CORS: Put/Get/DeleteBucketCors, preflights (OPTIONS) answered from the rules,
//! `Access-Control-*` headers on a browser's requests (errors included), S3's checks
//! of a configuration, and the rules surviving kill -9.

use aws_sdk_s3::types::{CorsConfiguration, CorsRule};

use crate::harness::*;

fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
    let mut rule = CorsRule::builder().max_age_seconds(600).expose_headers("ETag");
    for o in origins {
        rule = rule.allowed_origins(*o);
    }
    for m in methods {
        rule = rule.allowed_methods(*m);
    }
    for h in headers {
        rule = rule.allowed_headers(*h);
    }
    rule.build().expect("a CORS rule")
}

fn configuration(rules: Vec<CorsRule>) -> CorsConfiguration {
    CorsConfiguration::builder().set_cors_rules(Some(rules)).build().expect("a CORS configuration")
}

/// An OPTIONS preflight of `url` from `origin` for `method` (and `headers`, if any).
async fn preflight(url: &str, origin: &str, method: &str, headers: &str) -> RawResponse {
    let mut asked = vec![("origin", origin), ("access-control-request-method", method)];
    if !headers.is_empty() {
        asked.push(("access-control-request-headers", headers));
    }
    raw_request("OPTIONS", url, &asked, "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_rules_answer_preflights_and_browser_requests_and_survive_kill9() {
    let mut server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "site").await;
    put(&s3, "site", "index.html", b"<html></html>").await;
    let missing = s3.get_bucket_cors().bucket("site").send().await;
    expect_s3_error(missing, 404, &["NoSuchCORSConfiguration"], "GetBucketCors before any");

    // S3's checks of a configuration.
    let bad_method = configuration(vec![rule(&["*"], &["PATCH"], &[])]);
    let refused = s3.put_bucket_cors().bucket("site").cors_configuration(bad_method).send().await;
    expect_s3_error(refused, 400, &["InvalidRequest"], "a CORS rule with method PATCH");
    let two_wildcards = configuration(vec![rule(&["https://*.*.example"], &["GET"], &[])]);
    let refused = s3.put_bucket_cors().bucket("site").cors_configuration(two_wildcards).send().await;
    expect_s3_error(refused, 400, &["InvalidRequest"], "an origin with two wildcards");
    let too_many = configuration((0..101).map(|_| rule(&["*"], &["GET"], &[])).collect());
    let refused = s3.put_bucket_cors().bucket("site").cors_configuration(too_many).send().await;
    expect_s3_error(refused, 400, &["MalformedXML"], "101 CORS rules");

    let rules = configuration(vec![
        rule(&["https://*.example.com"], &["GET", "HEAD"], &[]),
        rule(&["https://upload.example.org"], &["PUT", "POST"], &["content-type", "x-amz-*"]),
    ]);
    s3.put_bucket_cors().bucket("site").cors_configuration(rules).send().await.ok_or_panic("PutBucketCors");
    let got = s3.get_bucket_cors().bucket("site").send().await.ok_or_panic("GetBucketCors");
    assert_eq!(got.cors_rules().len(), 2, "the rules read back: {got:?}");
    assert_eq!(got.cors_rules()[1].allowed_headers(), ["content-type", "x-amz-*"]);

    let url = server_url(&server, "site/index.html");
    let options = |origin, method, headers| preflight(&url, origin, method, headers);
    let allowed = options("https://www.example.com", "GET", "").await;
    assert_eq!(allowed.status, 200, "a preflight a rule allows: {}", allowed.body_str());
    assert_eq!(allowed.header("access-control-allow-origin").as_deref(), Some("https://www.example.com"));
    assert_eq!(allowed.header("access-control-allow-methods").as_deref(), Some("GET, HEAD"));
    assert_eq!(allowed.header("access-control-max-age").as_deref(), Some("600"));
    let upload = options("https://upload.example.org", "PUT", "Content-Type, X-Amz-Date").await;
    assert_eq!(upload.status, 200, "a preflight with allowed headers: {}", upload.body_str());
    assert_eq!(upload.header("access-control-allow-headers").as_deref(), Some("content-type, x-amz-date"));
    for (origin, method, headers, what) in [
        ("https://evil.example.net", "GET", "", "an origin no rule names"),
        ("https://www.example.com", "PUT", "", "a method its rule does not allow"),
        ("https://upload.example.org", "PUT", "authorization", "a header its rule does not allow"),
    ] {
        let refused = options(origin, method, headers).await;
        assert_eq!(
            (refused.status, refused.xml_tag("Code").as_deref()),
            (403, Some("AccessForbidden")),
            "a preflight with {what}"
        );
        assert_eq!(refused.header("access-control-allow-origin"), None, "no grant for {what}");
    }
    assert_eq!(
        allowed.header("vary").as_deref(),
        Some("Origin, Access-Control-Request-Headers, Access-Control-Request-Method"),
        "a preflight's answer varies with what it asked"
    );
    // Virtual-hosted style: the bucket is the Host's, the path is the key.
    let host = format!("site.localhost:{}", server.addr().port());
    let vhost_url = format!("{}/index.html", server.endpoint());
    let vhost = raw_request(
        "OPTIONS",
        &vhost_url,
        &[("host", host.as_str()), ("origin", "https://www.example.com"), ("access-control-request-method", "GET")],
        "",
    )
    .await;
    assert_eq!(vhost.status, 200, "a virtual-hosted preflight: {}", vhost.body_str());
    assert_eq!(vhost.header("access-control-allow-origin").as_deref(), Some("https://www.example.com"));
    let no_method = raw_request("OPTIONS", &url, &[("origin", "https://www.example.com")], "").await;
    assert_eq!(no_method.status, 400, "a preflight without Access-Control-Request-Method");

    // A browser's own requests carry the headers, error answers too; others do not.
    let anonymous_site = raw_request("GET", &url, &[("origin", "https://www.example.com")], "").await;
    assert_eq!(anonymous_site.status, 403, "the bucket is private");
    assert_eq!(
        anonymous_site.header("access-control-allow-origin").as_deref(),
        Some("https://www.example.com"),
        "an error answer to a browser carries the CORS headers"
    );
    assert_eq!(anonymous_site.header("access-control-expose-headers").as_deref(), Some("ETag"));
    let other = raw_request("GET", &url, &[("origin", "https://evil.example.net")], "").await;
    assert_eq!(other.header("access-control-allow-origin"), None, "an origin no rule names");
    let plain = raw_request("GET", &url, &[], "").await;
    assert_eq!(plain.header("access-control-allow-origin"), None, "a request without Origin");
    let presigned = s3
        .get_object()
        .bucket("site")
        .key("index.html")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let signed = send_presigned_to(&presigned, presigned.uri(), &[("origin", "https://www.example.com")], "").await;
    assert_eq!(signed.status, 200, "a presigned GET from a page: {}", signed.body_str());
    assert_eq!(signed.header("access-control-allow-origin").as_deref(), Some("https://www.example.com"));
    let presigned = s3
        .put_object()
        .bucket("site")
        .key("upload.txt")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let signed =
        send_presigned_to(&presigned, presigned.uri(), &[("origin", "https://upload.example.org")], "up").await;
    assert_eq!(signed.status, 200, "a presigned PUT from a page: {}", signed.body_str());
    assert_eq!(signed.header("access-control-allow-origin").as_deref(), Some("https://upload.example.org"));
    assert_eq!(signed.header("access-control-allow-methods").as_deref(), Some("PUT, POST"));
    assert_eq!(signed.header("access-control-allow-credentials").as_deref(), Some("true"));
    assert_eq!(get(&s3, "site", "upload.txt").await, b"up", "the presigned PUT stored its body");

    // The rules are in the log.
    server.restart();
    let url = server_url(&server, "site/index.html");
    let options = |origin, method, headers| preflight(&url, origin, method, headers);
    let allowed = options("https://www.example.com", "GET", "").await;
    assert_eq!(allowed.status, 200, "the preflight after kill -9: {}", allowed.body_str());
    let s3 = server.client();
    s3.delete_bucket_cors().bucket("site").send().await.ok_or_panic("DeleteBucketCors");
    let refused = options("https://www.example.com", "GET", "").await;
    assert_eq!(refused.status, 403, "a preflight once the rules are deleted");
    server.restart();
    let missing = server.client().get_bucket_cors().bucket("site").send().await;
    expect_s3_error(missing, 404, &["NoSuchCORSConfiguration"], "GetBucketCors after delete and kill -9");
}
