//! ListObjectsV2, ListObjects (v1) and ListObjectVersions: prefix, delimiter / CommonPrefixes,
//! max-keys, continuation-token / marker pagination, start-after,
//! encoding-type=url, and pagination over thousands of keys.

use std::collections::BTreeSet;

use aws_sdk_s3::types::EncodingType;
use futures::StreamExt;

use crate::harness::*;

const KEYS: &[&str] = &["a.txt", "b/1.txt", "b/2.txt", "b/c/3.txt", "b/c/4.txt", "b0", "d/x", "d/y/z", "e.txt"];

async fn setup(server: &Server, bucket: &str) -> aws_sdk_s3::Client {
    let s3 = server.client();
    create_bucket(&s3, bucket).await;
    for k in KEYS {
        put(&s3, bucket, k, k.as_bytes()).await;
    }
    s3
}

fn keys_of(objs: &[aws_sdk_s3::types::Object]) -> Vec<String> {
    objs.iter().map(|o| o.key().unwrap_or_default().to_string()).collect()
}

fn prefixes_of(cps: &[aws_sdk_s3::types::CommonPrefix]) -> Vec<String> {
    cps.iter().map(|p| p.prefix().unwrap_or_default().to_string()).collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_prefix_delimiter_start_after() {
    let server = Server::start();
    let bucket = "list-v2";
    let s3 = setup(&server, bucket).await;

    // Everything.
    let out = s3.list_objects_v2().bucket(bucket).send().await.ok_or_panic("ListObjectsV2");
    assert_eq!(keys_of(out.contents()), strs(KEYS), "ListObjectsV2 all keys in order");
    assert_eq!(out.key_count(), Some(KEYS.len() as i32), "ListObjectsV2 KeyCount");
    assert_eq!(out.is_truncated(), Some(false), "ListObjectsV2 IsTruncated");
    assert_eq!(out.name(), Some(bucket), "ListObjectsV2 Name");
    for o in out.contents() {
        let k = o.key().unwrap();
        assert_eq!(o.size(), Some(k.len() as i64), "ListObjectsV2 Size of {k}");
        assert_eq!(o.e_tag(), Some(etag_of(k.as_bytes()).as_str()), "ListObjectsV2 ETag of {k}");
        assert!(o.last_modified().is_some(), "ListObjectsV2 LastModified of {k} missing");
    }

    // Prefix.
    let out = s3.list_objects_v2().bucket(bucket).prefix("b/").send().await.ok_or_panic("ListObjectsV2 prefix b/");
    assert_eq!(
        keys_of(out.contents()),
        strs(&["b/1.txt", "b/2.txt", "b/c/3.txt", "b/c/4.txt"]),
        "ListObjectsV2 prefix=b/"
    );
    assert_eq!(out.prefix(), Some("b/"), "ListObjectsV2 prefix=b/ echoes Prefix");
    let out = s3.list_objects_v2().bucket(bucket).prefix("b").send().await.ok_or_panic("ListObjectsV2 prefix b");
    assert_eq!(
        keys_of(out.contents()),
        strs(&["b/1.txt", "b/2.txt", "b/c/3.txt", "b/c/4.txt", "b0"]),
        "ListObjectsV2 prefix=b"
    );
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("nothing-here/")
        .send()
        .await
        .ok_or_panic("ListObjectsV2 prefix nothing-here/");
    assert!(out.contents().is_empty(), "ListObjectsV2 non-matching prefix: contents {:?}", keys_of(out.contents()));
    assert_eq!(out.key_count(), Some(0), "ListObjectsV2 non-matching prefix: KeyCount");

    // Delimiter at the root.
    let out = s3.list_objects_v2().bucket(bucket).delimiter("/").send().await.ok_or_panic("ListObjectsV2 delimiter /");
    assert_eq!(keys_of(out.contents()), strs(&["a.txt", "b0", "e.txt"]), "ListObjectsV2 delimiter=/ Contents");
    assert_eq!(prefixes_of(out.common_prefixes()), strs(&["b/", "d/"]), "ListObjectsV2 delimiter=/ CommonPrefixes");
    assert_eq!(out.key_count(), Some(5), "ListObjectsV2 delimiter=/ KeyCount (keys + common prefixes)");
    assert_eq!(out.delimiter(), Some("/"), "ListObjectsV2 echoes Delimiter");

    // Prefix + delimiter.
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("b/")
        .delimiter("/")
        .send()
        .await
        .ok_or_panic("ListObjectsV2 prefix b/ delimiter /");
    assert_eq!(keys_of(out.contents()), strs(&["b/1.txt", "b/2.txt"]), "ListObjectsV2 prefix=b/ delimiter=/ Contents");
    assert_eq!(
        prefixes_of(out.common_prefixes()),
        strs(&["b/c/"]),
        "ListObjectsV2 prefix=b/ delimiter=/ CommonPrefixes"
    );

    // A non-slash delimiter.
    let out = s3.list_objects_v2().bucket(bucket).delimiter(".").send().await.ok_or_panic("ListObjectsV2 delimiter .");
    assert_eq!(keys_of(out.contents()), strs(&["b0", "d/x", "d/y/z"]), "ListObjectsV2 delimiter=. Contents");
    assert_eq!(
        prefixes_of(out.common_prefixes()),
        strs(&["a.", "b/1.", "b/2.", "b/c/3.", "b/c/4.", "e."]),
        "ListObjectsV2 delimiter=. CommonPrefixes"
    );

    // start-after.
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .start_after("b/2.txt")
        .send()
        .await
        .ok_or_panic("ListObjectsV2 start-after b/2.txt");
    assert_eq!(
        keys_of(out.contents()),
        strs(&["b/c/3.txt", "b/c/4.txt", "b0", "d/x", "d/y/z", "e.txt"]),
        "ListObjectsV2 start-after=b/2.txt"
    );
    // start-after a key that doesn't exist.
    let out =
        s3.list_objects_v2().bucket(bucket).start_after("c").send().await.ok_or_panic("ListObjectsV2 start-after c");
    assert_eq!(
        keys_of(out.contents()),
        strs(&["d/x", "d/y/z", "e.txt"]),
        "ListObjectsV2 start-after=c (not an existing key)"
    );
    // start-after + delimiter: prefixes sorting after start-after only.
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .start_after("b/zzz")
        .delimiter("/")
        .send()
        .await
        .ok_or_panic("ListObjectsV2 start-after b/zzz delimiter /");
    assert_eq!(keys_of(out.contents()), strs(&["b0", "e.txt"]), "start-after=b/zzz delimiter=/ Contents");
    assert_eq!(prefixes_of(out.common_prefixes()), strs(&["d/"]), "start-after=b/zzz delimiter=/ CommonPrefixes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_max_keys_and_continuation() {
    let server = Server::start();
    let bucket = "list-v2-pages";
    let s3 = setup(&server, bucket).await;

    // Plain keys, max-keys 2.
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .ok_or_panic(format!("ListObjectsV2 max-keys 2 page {pages}"));
        pages += 1;
        let page = keys_of(out.contents());
        assert!(page.len() <= 2, "ListObjectsV2 max-keys 2 page {pages}: got {} keys {page:?}", page.len());
        assert_eq!(out.key_count(), Some(page.len() as i32), "ListObjectsV2 page {pages} KeyCount");
        assert_eq!(out.max_keys(), Some(2), "ListObjectsV2 page {pages} MaxKeys");
        assert_eq!(out.continuation_token(), token.as_deref(), "ListObjectsV2 page {pages} echoes ContinuationToken");
        got.extend(page);
        if out.is_truncated() == Some(true) {
            let next = out
                .next_continuation_token()
                .unwrap_or_else(|| panic!("page {pages}: IsTruncated=true without NextContinuationToken"));
            token = Some(next.to_string());
        } else {
            assert_eq!(out.next_continuation_token(), None, "last page: NextContinuationToken");
            break;
        }
        assert!(pages < 100, "ListObjectsV2 pagination does not terminate");
    }
    assert_eq!(got, strs(KEYS), "ListObjectsV2 max-keys 2: all pages concatenated");
    assert_eq!(pages, KEYS.len().div_ceil(2), "ListObjectsV2 max-keys 2: number of pages");

    // First page is truncated with exactly max-keys entries.
    let out = s3.list_objects_v2().bucket(bucket).max_keys(3).send().await.ok_or_panic("ListObjectsV2 max-keys 3");
    assert_eq!(keys_of(out.contents()), strs(&KEYS[..3]), "ListObjectsV2 max-keys 3 first page");
    assert_eq!(out.is_truncated(), Some(true), "ListObjectsV2 max-keys 3 IsTruncated");

    // With a delimiter: common prefixes count towards max-keys; each prefix is
    // returned exactly once across pages.
    let mut got_keys = Vec::new();
    let mut got_prefixes = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .delimiter("/")
            .max_keys(1)
            .set_continuation_token(token.clone())
            .send()
            .await
            .ok_or_panic(format!("ListObjectsV2 delimiter / max-keys 1 page {pages}"));
        pages += 1;
        let n = out.contents().len() + out.common_prefixes().len();
        assert!(n <= 1, "ListObjectsV2 delimiter max-keys 1 page {pages}: got {n} entries");
        got_keys.extend(keys_of(out.contents()));
        got_prefixes.extend(prefixes_of(out.common_prefixes()));
        match (out.is_truncated(), out.next_continuation_token()) {
            (Some(true), Some(t)) => token = Some(t.to_string()),
            (Some(true), None) => panic!("page {pages}: IsTruncated=true without NextContinuationToken"),
            _ => break,
        }
        assert!(pages < 100, "ListObjectsV2 delimiter pagination does not terminate");
    }
    assert_eq!(got_keys, strs(&["a.txt", "b0", "e.txt"]), "delimiter pagination: keys");
    assert_eq!(got_prefixes, strs(&["b/", "d/"]), "delimiter pagination: common prefixes");

    // max-keys 0: nothing returned.
    let out = s3.list_objects_v2().bucket(bucket).max_keys(0).send().await.ok_or_panic("ListObjectsV2 max-keys 0");
    assert!(out.contents().is_empty(), "ListObjectsV2 max-keys 0: contents {:?}", keys_of(out.contents()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v1_prefix_delimiter_marker() {
    let server = Server::start();
    let bucket = "list-v1";
    let s3 = setup(&server, bucket).await;

    let out = s3.list_objects().bucket(bucket).send().await.ok_or_panic("ListObjects");
    assert_eq!(keys_of(out.contents()), strs(KEYS), "ListObjects all keys");
    assert_eq!(out.is_truncated(), Some(false), "ListObjects IsTruncated");

    let out = s3
        .list_objects()
        .bucket(bucket)
        .prefix("b/")
        .delimiter("/")
        .send()
        .await
        .ok_or_panic("ListObjects prefix b/ delimiter /");
    assert_eq!(keys_of(out.contents()), strs(&["b/1.txt", "b/2.txt"]), "ListObjects prefix=b/ delimiter=/ Contents");
    assert_eq!(prefixes_of(out.common_prefixes()), strs(&["b/c/"]), "ListObjects prefix=b/ delimiter=/ CommonPrefixes");

    // Marker: keys strictly after it.
    let out =
        s3.list_objects().bucket(bucket).marker("b/c/3.txt").send().await.ok_or_panic("ListObjects marker b/c/3.txt");
    assert_eq!(
        keys_of(out.contents()),
        strs(&["b/c/4.txt", "b0", "d/x", "d/y/z", "e.txt"]),
        "ListObjects marker=b/c/3.txt"
    );
    assert_eq!(out.marker(), Some("b/c/3.txt"), "ListObjects echoes Marker");

    // max-keys without delimiter: paginate using the last key as the next marker
    // (NextMarker is only guaranteed when a delimiter is given).
    let mut got = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = s3
            .list_objects()
            .bucket(bucket)
            .max_keys(4)
            .set_marker(marker.clone())
            .send()
            .await
            .ok_or_panic(format!("ListObjects max-keys 4 page {pages}"));
        pages += 1;
        let page = keys_of(out.contents());
        assert!(page.len() <= 4, "ListObjects max-keys 4 page {pages}: {} keys", page.len());
        if out.is_truncated() == Some(true) {
            assert_eq!(page.len(), 4, "ListObjects truncated page {pages} must be full");
            let next = out.next_marker().map(str::to_string).unwrap_or_else(|| page.last().unwrap().clone());
            assert_eq!(Some(&next), page.last(), "ListObjects page {pages}: NextMarker should be the last key");
            marker = Some(next);
            got.extend(page);
        } else {
            got.extend(page);
            break;
        }
        assert!(pages < 100, "ListObjects pagination does not terminate");
    }
    assert_eq!(got, strs(KEYS), "ListObjects max-keys 4 pages concatenated");
    assert_eq!(pages, 3, "ListObjects max-keys 4 over {} keys: pages", KEYS.len());

    // With a delimiter, a truncated v1 response must carry NextMarker.
    let mut got_keys = Vec::new();
    let mut got_prefixes = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = s3
            .list_objects()
            .bucket(bucket)
            .delimiter("/")
            .max_keys(2)
            .set_marker(marker.clone())
            .send()
            .await
            .ok_or_panic(format!("ListObjects delimiter / max-keys 2 page {pages}"));
        pages += 1;
        let n = out.contents().len() + out.common_prefixes().len();
        assert!(n <= 2, "ListObjects delimiter max-keys 2 page {pages}: {n} entries");
        got_keys.extend(keys_of(out.contents()));
        got_prefixes.extend(prefixes_of(out.common_prefixes()));
        if out.is_truncated() == Some(true) {
            let next = out.next_marker().unwrap_or_else(|| {
                panic!("ListObjects with delimiter page {pages}: IsTruncated=true but NextMarker missing")
            });
            marker = Some(next.to_string());
        } else {
            break;
        }
        assert!(pages < 100, "ListObjects delimiter pagination does not terminate");
    }
    assert_eq!(got_keys, strs(&["a.txt", "b0", "e.txt"]), "ListObjects delimiter pagination: keys");
    assert_eq!(got_prefixes, strs(&["b/", "d/"]), "ListObjects delimiter pagination: common prefixes");
    assert_eq!(pages, 3, "ListObjects delimiter=/ max-keys 2 over 5 entries: pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_encoding_type_url() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "list-encoding";
    create_bucket(&s3, bucket).await;
    let keys = ["enc dir/a b+c&d=é.txt", "enc dir/plain.txt", "enc dir/sub dir/x", "top level key"];
    for k in keys {
        put(&s3, bucket, k, b"x").await;
    }

    // v2 without encoding: raw keys.
    let out = s3.list_objects_v2().bucket(bucket).send().await.ok_or_panic("ListObjectsV2");
    assert_eq!(keys_of(out.contents()), strs(&keys), "ListObjectsV2 keys without encoding-type");

    // v2 with encoding-type=url. The Rust SDK does not decode the values, so
    // decode them here and compare with the original keys.
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .ok_or_panic("ListObjectsV2 encoding-type=url");
    assert_eq!(out.encoding_type(), Some(&EncodingType::Url), "ListObjectsV2 echoes EncodingType");
    let raw = keys_of(out.contents());
    for r in &raw {
        assert!(
            !r.contains(' ') && !r.contains('é') && !r.contains('&'),
            "ListObjectsV2 encoding-type=url: key {r:?} is not URL-encoded"
        );
    }
    let decoded: Vec<String> = raw.iter().map(|k| url_decode(k)).collect();
    assert_eq!(decoded, strs(&keys), "ListObjectsV2 encoding-type=url: decoded keys (raw: {raw:?})");

    // With prefix + delimiter: CommonPrefixes are encoded too.
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("enc dir/")
        .delimiter("/")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .ok_or_panic("ListObjectsV2 prefix/delimiter encoding-type=url");
    let decoded: Vec<String> = keys_of(out.contents()).iter().map(|k| url_decode(k)).collect();
    assert_eq!(
        decoded,
        strs(&["enc dir/a b+c&d=é.txt", "enc dir/plain.txt"]),
        "ListObjectsV2 prefix+delimiter encoding-type=url: decoded keys"
    );
    let prefixes: Vec<String> = prefixes_of(out.common_prefixes()).iter().map(|p| url_decode(p)).collect();
    assert_eq!(
        prefixes,
        strs(&["enc dir/sub dir/"]),
        "ListObjectsV2 encoding-type=url: decoded CommonPrefixes (raw {:?})",
        prefixes_of(out.common_prefixes())
    );

    // v1 with encoding-type=url.
    let out = s3
        .list_objects()
        .bucket(bucket)
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .ok_or_panic("ListObjects encoding-type=url");
    let raw = keys_of(out.contents());
    let decoded: Vec<String> = raw.iter().map(|k| url_decode(k)).collect();
    assert_eq!(decoded, strs(&keys), "ListObjects encoding-type=url: decoded keys (raw: {raw:?})");

    // Paginating with encoding-type=url: start-after / continuation still work.
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .encoding_type(EncodingType::Url)
            .max_keys(1)
            .set_continuation_token(token.clone())
            .send()
            .await
            .ok_or_panic("ListObjectsV2 encoding-type=url max-keys 1");
        got.extend(keys_of(out.contents()).iter().map(|k| url_decode(k)));
        match out.next_continuation_token() {
            Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
        assert!(got.len() <= keys.len(), "encoded pagination returned too many keys: {got:?}");
    }
    assert_eq!(got, strs(&keys), "ListObjectsV2 encoding-type=url max-keys 1: all pages decoded");
}

/// Creates `n` keys concurrently (32 in flight) and returns them sorted.
async fn create_many(s3: &aws_sdk_s3::Client, bucket: &str, n: usize) -> Vec<String> {
    let keys: Vec<String> = (0..n)
        .map(|i| {
            // A mix of shapes so the order is not simply the creation order.
            let group = ["alpha", "beta/deep", "gamma", "Zeta", "0-digits"][i % 5];
            format!("{group}/item-{:05}-{}", (i * 7919) % n, i % 3)
        })
        .collect();
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), n, "test bug: generated keys are not unique");
    futures::stream::iter(keys.iter().cloned())
        .map(|k| {
            let s3 = s3.clone();
            let bucket = bucket.to_string();
            async move {
                put(&s3, &bucket, &k, k.as_bytes()).await;
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let mut sorted = keys;
    sorted.sort();
    sorted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginate_2500_keys_v2_and_v1() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = "many-keys";
    create_bucket(&s3, bucket).await;
    let n = 2_500;
    let expected = create_many(&s3, bucket, n).await;

    // v2 with the default max-keys (1000) and with 333.
    for max_keys in [None, Some(333)] {
        let page_size = max_keys.unwrap_or(1000) as usize;
        let mut got: Vec<String> = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let out = s3
                .list_objects_v2()
                .bucket(bucket)
                .set_max_keys(max_keys)
                .set_continuation_token(token.clone())
                .send()
                .await
                .ok_or_panic(format!("ListObjectsV2 max-keys {max_keys:?} page {pages}"));
            pages += 1;
            let page = keys_of(out.contents());
            let truncated = out.is_truncated() == Some(true);
            let remaining = n - got.len();
            assert_eq!(
                page.len(),
                remaining.min(page_size),
                "ListObjectsV2 max-keys {max_keys:?} page {pages}: number of keys"
            );
            assert_eq!(
                truncated,
                remaining > page_size,
                "ListObjectsV2 max-keys {max_keys:?} page {pages}: IsTruncated"
            );
            assert_eq!(
                out.key_count(),
                Some(page.len() as i32),
                "ListObjectsV2 max-keys {max_keys:?} page {pages}: KeyCount"
            );
            got.extend(page);
            if !truncated {
                break;
            }
            token = Some(
                out.next_continuation_token()
                    .unwrap_or_else(|| panic!("ListObjectsV2 page {pages}: truncated without NextContinuationToken"))
                    .to_string(),
            );
            assert!(pages <= n, "ListObjectsV2 pagination does not terminate");
        }
        assert_eq!(pages, n.div_ceil(page_size), "ListObjectsV2 max-keys {max_keys:?}: pages");
        if got != expected {
            let got_set: BTreeSet<&String> = got.iter().collect();
            let want_set: BTreeSet<&String> = expected.iter().collect();
            let missing: Vec<_> = want_set.difference(&got_set).take(10).collect();
            let extra: Vec<_> = got_set.difference(&want_set).take(10).collect();
            panic!(
                "ListObjectsV2 max-keys {max_keys:?}: got {} keys, want {n}; missing (first 10) {missing:?}; \
                 unexpected (first 10) {extra:?}; duplicates/order wrong: {}",
                got.len(),
                got_set.len() != got.len() || missing.is_empty() && extra.is_empty()
            );
        }
    }

    // max-keys above 1000 is capped at 1000.
    let out =
        s3.list_objects_v2().bucket(bucket).max_keys(5000).send().await.ok_or_panic("ListObjectsV2 max-keys 5000");
    assert_eq!(out.contents().len(), 1000, "ListObjectsV2 max-keys 5000: keys in the first page (S3 caps at 1000)");
    assert_eq!(out.is_truncated(), Some(true), "ListObjectsV2 max-keys 5000: IsTruncated");

    // v1 with marker pagination (default max-keys), using NextMarker if present,
    // else the last key.
    let mut got: Vec<String> = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = s3
            .list_objects()
            .bucket(bucket)
            .set_marker(marker.clone())
            .send()
            .await
            .ok_or_panic(format!("ListObjects page {pages}"));
        pages += 1;
        let page = keys_of(out.contents());
        let remaining = n - got.len();
        assert_eq!(page.len(), remaining.min(1000), "ListObjects page {pages}: number of keys");
        let truncated = out.is_truncated() == Some(true);
        assert_eq!(truncated, remaining > 1000, "ListObjects page {pages}: IsTruncated");
        let last = page.last().cloned();
        got.extend(page);
        if !truncated {
            break;
        }
        marker = out.next_marker().map(str::to_string).or(last);
        assert!(pages <= n, "ListObjects pagination does not terminate");
    }
    assert_eq!(pages, 3, "ListObjects over {n} keys: pages");
    assert!(got == expected, "ListObjects marker pagination: got {} keys, want {n} (sorted, no duplicates)", got.len());

    // v1 with a delimiter: all keys are under 5 top-level prefixes.
    let out = s3
        .list_objects()
        .bucket(bucket)
        .delimiter("/")
        .send()
        .await
        .ok_or_panic("ListObjects delimiter / over many keys");
    assert!(out.contents().is_empty(), "ListObjects delimiter=/: no top-level keys expected");
    assert_eq!(
        prefixes_of(out.common_prefixes()),
        strs(&["0-digits/", "Zeta/", "alpha/", "beta/", "gamma/"]),
        "ListObjects delimiter=/: CommonPrefixes over {n} keys"
    );

    // v2 start-after in the middle of the big set.
    let pivot = &expected[1234];
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .start_after(pivot)
        .max_keys(10)
        .send()
        .await
        .ok_or_panic("ListObjectsV2 start-after pivot");
    assert_eq!(keys_of(out.contents()), expected[1235..1245].to_vec(), "ListObjectsV2 start-after {pivot} max-keys 10");
}

/// A bucket never versioned: GetBucketVersioning answers an empty configuration (as S3
/// does) and ListObjectVersions lists each object as its one "null" version, latest,
/// paginated by key-marker / version-id-marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unversioned_bucket_lists_null_versions() {
    let server = Server::start();
    let s3 = setup(&server, "versions").await;

    let versioning = s3.get_bucket_versioning().bucket("versions").send().await.unwrap();
    assert_eq!(versioning.status(), None, "a bucket never versioned has no versioning status");
    let missing = s3.get_bucket_versioning().bucket("no-such-bucket-here").send().await;
    assert_eq!(err_status(&missing.unwrap_err()), Some(404), "GetBucketVersioning of a missing bucket");

    // Every key once, version "null", latest; pages of 4 joined by the next markers.
    let mut seen = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket("versions")
            .max_keys(4)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .unwrap();
        assert!(page.delete_markers().is_empty(), "no delete markers without versioning");
        for v in page.versions() {
            assert_eq!(v.version_id(), Some("null"), "version id of {:?}", v.key());
            assert_eq!(v.is_latest(), Some(true), "IsLatest of {:?}", v.key());
            assert_eq!(v.size(), Some(v.key().unwrap().len() as i64), "size of {:?}", v.key());
            seen.push(v.key().unwrap().to_string());
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        assert_eq!(page.next_version_id_marker(), Some("null"), "next version-id marker after an object");
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
        assert!(seen.len() <= KEYS.len(), "pagination does not end: {seen:?}");
    }
    assert_eq!(seen, strs(KEYS));

    // A delimiter groups keys into common prefixes, as in ListObjects.
    let grouped = s3.list_object_versions().bucket("versions").delimiter("/").send().await.unwrap();
    let keys: Vec<String> = grouped.versions().iter().map(|v| v.key().unwrap().to_string()).collect();
    assert_eq!(keys, strs(&["a.txt", "b0", "e.txt"]));
    assert_eq!(prefixes_of(grouped.common_prefixes()), strs(&["b/", "d/"]));

    // A version-id marker needs a key marker, and only "null" names a version here.
    let no_key = s3.list_object_versions().bucket("versions").version_id_marker("null").send().await;
    assert_eq!(err_status(&no_key.unwrap_err()), Some(400), "version-id-marker without key-marker");
    let bad = s3.list_object_versions().bucket("versions").key_marker("a.txt").version_id_marker("v1").send().await;
    assert_eq!(err_status(&bad.unwrap_err()), Some(400), "a version id that does not exist here");
}

/// Without versioning every object is its own "null" version: GET, HEAD and DELETE
/// naming "null" act on it; an id Quarry never issues is 400 InvalidArgument, and is
/// never taken to mean the current object (a DELETE of another version deleted it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_null_version_id_names_an_object() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "nullversion").await;
    put(&s3, "nullversion", "k", b"hello").await;
    let other = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY";

    let got = s3.get_object().bucket("nullversion").key("k").version_id("null").send().await.unwrap();
    assert_eq!(collect_body(got.body, "GET ?versionId=null").await, b"hello");
    s3.head_object().bucket("nullversion").key("k").version_id("null").send().await.unwrap();
    let get_other = s3.get_object().bucket("nullversion").key("k").version_id(other).send().await;
    assert_eq!(err_status(&get_other.unwrap_err()), Some(400), "GET of a version id never issued");
    let head_other = s3.head_object().bucket("nullversion").key("k").version_id(other).send().await;
    assert_eq!(err_status(&head_other.unwrap_err()), Some(400), "HEAD of a version id never issued");

    let delete_other = s3.delete_object().bucket("nullversion").key("k").version_id(other).send().await;
    assert_eq!(err_status(&delete_other.unwrap_err()), Some(400), "DELETE of a version id never issued");
    let batch = aws_sdk_s3::types::Delete::builder()
        .objects(aws_sdk_s3::types::ObjectIdentifier::builder().key("k").version_id(other).build().unwrap())
        .build()
        .unwrap();
    let out = s3.delete_objects().bucket("nullversion").delete(batch).send().await.unwrap();
    assert_eq!(out.errors().len(), 1, "DeleteObjects of a version id never issued reports an error");
    assert_eq!(out.errors()[0].code(), Some("InvalidArgument"));
    assert_eq!(get(&s3, "nullversion", "k").await, b"hello", "the object is still there");

    s3.delete_object().bucket("nullversion").key("k").version_id("null").send().await.unwrap();
    assert!(list_all_keys(&s3, "nullversion").await.is_empty(), "DELETE ?versionId=null deletes the object");
}
