//! Virtual-hosted-style requests (`Host: <bucket>.localhost:PORT`), as aws-sdk-js v3,
//! s3fs and s3cmd send them by default. `*.localhost` need not resolve on the test
//! machine, so the SDK reaches the server through it as an HTTP proxy: the request
//! still carries `Host: <bucket>.localhost:PORT`, as signed.

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use std::time::Duration;

use crate::harness::*;

/// A client addressing buckets as `http://<bucket>.localhost:PORT`.
fn virtual_hosted_client(server: &Server) -> aws_sdk_s3::Client {
    let proxy = aws_smithy_http_client::proxy::ProxyConfig::http(server.endpoint()).expect("proxy config");
    let http = aws_smithy_http_client::Builder::new().build_with_connector_fn(move |_, _| {
        aws_smithy_http_client::Connector::builder().proxy_config(proxy.clone()).build_http()
    });
    let config = server
        .config_builder(ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY)
        .endpoint_url(format!("http://localhost:{}", server.addr().port()))
        .force_path_style(false)
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosted_style_crud_and_listing() {
    let server = Server::start();
    let vh = virtual_hosted_client(&server);
    let path_style = server.client();

    vh.create_bucket().bucket("photos").send().await.ok_or_panic("CreateBucket photos (virtual-hosted)");
    let buckets = path_style.list_buckets().send().await.ok_or_panic("ListBuckets");
    let names: Vec<_> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["photos"], "buckets after a virtual-hosted CreateBucket");

    for (key, data) in [("a.jpg", &b"first"[..]), ("dir/b.jpg", b"second"), ("dir/c d.jpg", b"third")] {
        vh.put_object()
            .bucket("photos")
            .key(key)
            .body(ByteStream::from_static(data))
            .send()
            .await
            .ok_or_panic(format!("PutObject {key} (virtual-hosted)"));
        assert_eq!(get(&path_style, "photos", key).await, data, "{key} read path-style");
        assert_eq!(get(&vh, "photos", key).await, data, "{key} read virtual-hosted");
    }
    let mut keys = list_all_keys(&vh, "photos").await;
    keys.sort();
    assert_eq!(keys, ["a.jpg", "dir/b.jpg", "dir/c d.jpg"], "ListObjectsV2 (virtual-hosted)");
    let listed = vh.list_objects_v2().bucket("photos").delimiter("/").send().await.ok_or_panic("list with /");
    let prefixes: Vec<_> = listed.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["dir/"], "CommonPrefixes (virtual-hosted)");

    vh.delete_object().bucket("photos").key("a.jpg").send().await.ok_or_panic("DeleteObject a.jpg");
    let mut keys = list_all_keys(&path_style, "photos").await;
    keys.sort();
    assert_eq!(keys, ["dir/b.jpg", "dir/c d.jpg"], "keys after a virtual-hosted DeleteObject");

    // A presigned URL in virtual-hosted style, sent with its own Host header.
    let presigned = vh
        .get_object()
        .bucket("photos")
        .key("dir/b.jpg")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .expect("presign");
    assert!(presigned.uri().starts_with("http://photos.localhost:"), "presigned URL {}", presigned.uri());
    let path_and_query = &presigned.uri()[presigned.uri().find("/dir").expect("key in the URL")..];
    let host = format!("photos.localhost:{}", server.addr().port());
    let mut headers: Vec<(&str, &str)> = presigned.headers().collect();
    headers.push(("host", &host));
    let response = raw_request("GET", &format!("{}{path_and_query}", server.endpoint()), &headers, "").await;
    assert_eq!(response.status, 200, "presigned virtual-hosted GET: {}", response.body_str());
    assert_eq!(&response.body[..], b"second");
}

/// The sequence that used to create and then delete a bucket named after the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosted_empty_put_and_delete_touch_only_the_object() {
    let server = Server::start();
    let vh = virtual_hosted_client(&server);
    let path_style = server.client();
    create_bucket(&path_style, "photos").await;
    create_bucket(&path_style, "marker").await;
    put(&path_style, "marker", "precious", b"must survive").await;

    vh.put_object()
        .bucket("photos")
        .key("marker")
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .ok_or_panic("empty PutObject(photos, marker) virtual-hosted");
    assert_eq!(
        list_all_keys(&path_style, "photos").await,
        ["marker"],
        "keys of photos after PutObject(photos, marker)"
    );

    let listed = vh.list_objects_v2().bucket("photos").send().await.ok_or_panic("ListObjectsV2 photos");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["marker"], "virtual-hosted ListObjectsV2 of photos (not ListAllMyBuckets)");

    vh.delete_object().bucket("photos").key("marker").send().await.ok_or_panic("DeleteObject(photos, marker)");
    assert!(list_all_keys(&path_style, "photos").await.is_empty(), "photos after DeleteObject(photos, marker)");
    assert_eq!(get(&path_style, "marker", "precious").await, b"must survive", "bucket `marker` was touched");
    let buckets = path_style.list_buckets().send().await.ok_or_panic("ListBuckets");
    let mut names: Vec<_> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    names.sort();
    assert_eq!(names, ["marker", "photos"], "buckets after the virtual-hosted sequence");
}

/// A Host under no configured domain is path-style, whatever its shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_hosts_stay_path_style() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "plain").await;
    put(&s3, "plain", "k", b"v").await;
    for host in ["quarry.internal.example:9000", "storage", "127.0.0.1"] {
        let url = format!("{}/plain/k", server.endpoint());
        let mut headers =
            sigv4_headers("GET", &format!("http://{host}/plain/k"), b"", ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
        headers.retain(|(name, _)| name != "host");
        headers.push(("host".into(), host.into()));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let response = raw_request("GET", &url, &headers, "").await;
        assert_eq!(response.status, 200, "GET /plain/k with Host: {host}: {}", response.body_str());
        assert_eq!(&response.body[..], b"v", "Host: {host}");
    }
}

/// `/health` on a bucket's host is an object of that bucket, not the server's health check
/// (a plain signed GET without a query, as curl or s3fs send it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_paths_on_a_bucket_host_are_objects() {
    let server = Server::start();
    create_bucket(&server.client(), "photos").await;
    let host = format!("photos.localhost:{}", server.addr().port());
    for key in ["health", "ready", "metrics"] {
        put(&server.client(), "photos", key, format!("object {key}").as_bytes()).await;
        let mut headers =
            sigv4_headers("GET", &format!("http://{host}/{key}"), b"", ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY);
        headers.push(("host".into(), host.clone()));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let response = raw_request("GET", &format!("{}/{key}", server.endpoint()), &headers, "").await;
        assert_eq!(
            (response.status, response.body_str()),
            (200, format!("object {key}")),
            "GET /{key} with Host: {host}: expected the object"
        );
    }
}
