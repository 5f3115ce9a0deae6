//! A proxy in front of Quarry (`--trusted-proxy`): from it, `X-Forwarded-For` names the
//! client (`aws:SourceIp`, the journal) and `X-Forwarded-Proto: https` counts as TLS
//! (`aws:SecureTransport`, SSE-C); from any other peer both headers are ignored.

use crate::harness::*;

const POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "PublicFromOneNetwork", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
     "Resource": "arn:aws:s3:::alice-proxied/public/*",
     "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}},
    {"Sid": "SecretsOverHttpsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
     "Resource": "arn:aws:s3:::alice-proxied/secret/*",
     "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
  ]
}"#;

fn server_with(extra: &[&str]) -> Server {
    let mut args = vec!["--block-public-access".to_owned(), "false".to_owned()];
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start_with(ServerOptions {
        config_toml: Some(TWO_OWNERS_CONFIG.into()),
        extra_args: args,
        ..Default::default()
    })
}

async fn setup(server: &Server) -> aws_sdk_s3::Client {
    let alice = server.client_with("alicekey", "alicesecret123");
    create_bucket(&alice, "alice-proxied").await;
    put(&alice, "alice-proxied", "public/hello.txt", b"hello").await;
    put(&alice, "alice-proxied", "secret/doc.txt", b"secret").await;
    alice.put_bucket_policy().bucket("alice-proxied").policy(POLICY).send().await.ok_or_panic("PutBucketPolicy");
    alice
}

/// alice's GET of secret/doc.txt, with `X-Forwarded-Proto` set to `proto` if given.
async fn get_secret(alice: &aws_sdk_s3::Client, proto: Option<&'static str>) -> Option<u16> {
    let result = alice
        .get_object()
        .bucket("alice-proxied")
        .key("secret/doc.txt")
        .customize()
        .mutate_request(move |request| {
            if let Some(proto) = proto {
                request.headers_mut().insert("x-forwarded-proto", proto);
            }
        })
        .send()
        .await;
    match result {
        Ok(_) => Some(200),
        Err(e) => err_status(&e),
    }
}

async fn anonymous_get(server: &Server, forwarded_for: Option<&str>) -> u16 {
    let url = server_url(server, "alice-proxied/public/hello.txt");
    let headers: Vec<(&str, &str)> = forwarded_for.map(|f| ("x-forwarded-for", f)).into_iter().collect();
    raw_request("GET", &url, &headers, "").await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client_and_its_transport() {
    let server = server_with(&["--trusted-proxy", "127.0.0.1/32"]);
    let alice = setup(&server).await;

    // aws:SourceIp is the client the proxy names, not the proxy.
    assert_eq!(anonymous_get(&server, Some("203.0.113.5")).await, 200, "a client in 203.0.113.0/24");
    assert_eq!(anonymous_get(&server, Some("198.51.100.1")).await, 403, "a client outside it");
    assert_eq!(anonymous_get(&server, None).await, 403, "the proxy itself (127.0.0.1)");
    // A client-made entry left of the real client is not believed.
    assert_eq!(anonymous_get(&server, Some("203.0.113.5, 198.51.100.1")).await, 403, "spoofed hop on the left");

    // aws:SecureTransport is true when the proxy says it received https.
    assert_eq!(get_secret(&alice, Some("https")).await, Some(200), "GET of a secret via an https proxy");
    assert_eq!(get_secret(&alice, Some("http")).await, Some(403), "GET of a secret via an http proxy");
    assert_eq!(get_secret(&alice, None).await, Some(403), "GET of a secret without X-Forwarded-Proto");

    // SSE-C keys are accepted when the proxy received https.
    let customer = customer_key_b64(6);
    let put_sse_c = |proto: Option<&'static str>| {
        put_with_customer_key(&alice, "alice-proxied", "sse-c.txt", b"sealed".to_vec(), &customer)
            .customize()
            .mutate_request(move |request| {
                request.headers_mut().insert("x-forwarded-for", "203.0.113.77");
                if let Some(proto) = proto {
                    request.headers_mut().insert("x-forwarded-proto", proto);
                }
            })
            .send()
    };
    expect_s3_error(put_sse_c(None).await, 400, &["InvalidRequest"], "SSE-C through a proxy that received http");
    put_sse_c(Some("https")).await.ok_or_panic("SSE-C through a proxy that received https");

    // The journal records the client the proxy named.
    let journal = sql_csv(&server, "SELECT source_ip FROM journal WHERE key = 'sse-c.txt'").await;
    assert_eq!(journal, "source_ip\n203.0.113.77\n", "the journal's source_ip of a proxied PUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    // No --trusted-proxy, then one that does not include the test's address.
    for extra in [&[][..], &["--trusted-proxy", "10.0.0.0/8"][..]] {
        let server = server_with(extra);
        let alice = setup(&server).await;
        assert_eq!(anonymous_get(&server, Some("203.0.113.5")).await, 403, "a claimed address ({extra:?})");
        assert_eq!(get_secret(&alice, Some("https")).await, Some(403), "a claimed https ({extra:?})");
    }
}
