//! Users that own buckets, and bucket policies, with three callers: the owner (alice),
//! another user (bob) and anonymous requests (a plain HTTP client, no signature).

use aws_sdk_s3::primitives::ByteStream;

use crate::harness::*;

const CONFIG: &str = TWO_OWNERS_CONFIG;
const DENIED: &[&str] = &["AccessDenied"];

/// Public GET under `public/`, and DELETE denied to everyone but alice.
const POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
     "Resource": "arn:aws:s3:::alice-data/public/*"},
    {"Sid": "BobWrites", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::bobkey:root"},
     "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": "arn:aws:s3:::alice-data/*"},
    {"Sid": "OnlyAliceDeletes", "Effect": "Deny", "NotPrincipal": {"AWS": "alicekey"},
     "Action": "s3:DeleteObject*", "Resource": "arn:aws:s3:::alice-data/*"}
  ]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_and_bucket_policies_decide_for_users_and_anonymous_callers() {
    let mut server = Server::start_with(ServerOptions { config_toml: Some(CONFIG.into()), ..Default::default() });
    let alice = server.client_with("alicekey", "alicesecret123");
    let bob = server.client_with("bobkey", "bobsecret12345");

    // Ownership: the creator owns the bucket; another user cannot take the name.
    create_bucket(&alice, "alice-data").await;
    let taken = bob.create_bucket().bucket("alice-data").send().await;
    expect_s3_error(taken, 409, &["BucketAlreadyExists"], "bob creating alice's bucket name");
    alice.create_bucket().bucket("alice-data").send().await.ok_or_panic("alice re-creating her own bucket (us-east-1)");
    create_bucket(&bob, "bob-data").await;
    let listed = alice.list_buckets().send().await.ok_or_panic("ListBuckets as alice");
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["alice-data"], "alice lists only her own buckets");
    let owner = listed.owner().expect("ListBuckets names its caller");
    assert_eq!(owner.display_name(), Some("alicekey"));
    assert_eq!(owner.id().map(str::len), Some(64), "a canonical user id: {owner:?}");

    put(&alice, "alice-data", "public/hello.txt", b"hello world").await;
    put(&alice, "alice-data", "private/diary.txt", b"dear diary").await;
    let objects = alice.list_objects_v2().bucket("alice-data").fetch_owner(true).send().await.unwrap();
    assert_eq!(objects.contents()[0].owner().and_then(|o| o.id()), owner.id(), "objects list their bucket's owner");

    // Without a policy only the owner gets in.
    expect_s3_error(bob.get_object().bucket("alice-data").key("public/hello.txt").send().await, 403, DENIED, "bob GET");
    expect_s3_error(bob.list_objects_v2().bucket("alice-data").send().await, 403, DENIED, "bob LIST");
    let anonymous = raw_request("GET", &server_url(&server, "alice-data/public/hello.txt"), &[], "").await;
    assert_eq!(anonymous.status, 403, "anonymous GET without a policy: {}", anonymous.body_str());
    expect_s3_error(bob.delete_bucket().bucket("alice-data").send().await, 403, DENIED, "bob DeleteBucket");

    // Malformed documents are refused; bob cannot set a policy on alice's bucket.
    let bad = alice.put_bucket_policy().bucket("alice-data").policy(r#"{"Statement":"nope"}"#).send().await;
    expect_s3_error(bad, 400, &["MalformedPolicy"], "a malformed policy");
    let other_bucket = POLICY.replace("arn:aws:s3:::alice-data/public/*", "arn:aws:s3:::bob-data/*");
    let bad = alice.put_bucket_policy().bucket("alice-data").policy(other_bucket).send().await;
    expect_s3_error(bad, 400, &["MalformedPolicy"], "a policy naming another bucket");
    let by_bob = bob.put_bucket_policy().bucket("alice-data").policy(POLICY).send().await;
    expect_s3_error(by_bob, 403, DENIED, "bob setting alice's policy");
    let none = alice.get_bucket_policy().bucket("alice-data").send().await;
    expect_s3_error(none, 404, &["NoSuchBucketPolicy"], "GetBucketPolicy before one is set");

    // New buckets block public access, as on AWS: a public policy is refused until the
    // owner lifts the block.
    let blocked = alice.put_bucket_policy().bucket("alice-data").policy(POLICY).send().await;
    expect_s3_error(blocked, 403, DENIED, "a public policy under the default Block Public Access");
    let block = alice.get_public_access_block().bucket("alice-data").send().await.ok_or_panic("GetPublicAccessBlock");
    let block = block.public_access_block_configuration().expect("a configuration");
    assert_eq!(
        (
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true)),
        "a new bucket's Block Public Access settings"
    );
    expect_s3_error(
        bob.delete_public_access_block().bucket("alice-data").send().await,
        403,
        DENIED,
        "bob lifting alice's block",
    );
    alice.delete_public_access_block().bucket("alice-data").send().await.ok_or_panic("DeletePublicAccessBlock");
    let gone = alice.get_public_access_block().bucket("alice-data").send().await;
    expect_s3_error(gone, 404, &["NoSuchPublicAccessBlockConfiguration"], "GetPublicAccessBlock after the delete");
    alice.put_bucket_policy().bucket("alice-data").policy(POLICY).send().await.ok_or_panic("PutBucketPolicy");
    let got = alice.get_bucket_policy().bucket("alice-data").send().await.ok_or_panic("GetBucketPolicy");
    assert_eq!(got.policy(), Some(POLICY), "the policy comes back as it was sent");
    let status = alice.get_bucket_policy_status().bucket("alice-data").send().await.unwrap();
    assert_eq!(status.policy_status().and_then(|s| s.is_public()), Some(true), "an Allow to * is public");

    // Anonymous: plain GET under public/ works; elsewhere and other verbs are 403; a
    // missing key under public/ is 404.
    let public = raw_request("GET", &server_url(&server, "alice-data/public/hello.txt"), &[], "").await;
    assert_eq!((public.status, public.body_str().as_str()), (200, "hello world"), "anonymous GET under public/");
    let private = raw_request("GET", &server_url(&server, "alice-data/private/diary.txt"), &[], "").await;
    assert_eq!(private.status, 403, "anonymous GET outside public/");
    let missing = raw_request("GET", &server_url(&server, "alice-data/public/nothing"), &[], "").await;
    assert_eq!((missing.status, missing.xml_tag("Code").as_deref()), (404, Some("NoSuchKey")));
    let list = raw_request("GET", &server_url(&server, "alice-data?list-type=2"), &[], "").await;
    assert_eq!(list.status, 403, "anonymous LIST: not granted");
    let write = raw_request("PUT", &server_url(&server, "alice-data/public/graffiti"), &[], "x").await;
    assert_eq!(write.status, 403, "anonymous PUT");
    let buckets = raw_request("GET", &server_url(&server, ""), &[], "").await;
    assert_eq!(buckets.status, 403, "anonymous ListBuckets");

    // Bob: may read public/, may write, may not delete (explicit deny beats his allow).
    assert_eq!(get(&bob, "alice-data", "public/hello.txt").await, b"hello world");
    put(&bob, "alice-data", "public/from-bob.txt", b"hi alice").await;
    let delete = bob.delete_object().bucket("alice-data").key("public/from-bob.txt").send().await;
    expect_s3_error(delete, 403, DENIED, "bob DELETE under a Deny to all but alice");
    expect_s3_error(
        bob.get_object().bucket("alice-data").key("private/diary.txt").send().await,
        403,
        DENIED,
        "bob GET outside public/",
    );
    expect_s3_error(bob.get_bucket_policy().bucket("alice-data").send().await, 403, DENIED, "bob GetBucketPolicy");
    // Alice deletes; the admin is not subject to bucket policies.
    alice.delete_object().bucket("alice-data").key("public/from-bob.txt").send().await.ok_or_panic("alice DELETE");
    let admin = server.client();
    assert_eq!(get(&admin, "alice-data", "private/diary.txt").await, b"dear diary");

    // RestrictPublicBuckets: while the policy is public, only the owner gets in through it.
    let restrict = aws_sdk_s3::types::PublicAccessBlockConfiguration::builder().restrict_public_buckets(true).build();
    let put_block = alice.put_public_access_block().bucket("alice-data").public_access_block_configuration(restrict);
    put_block.send().await.ok_or_panic("PutPublicAccessBlock RestrictPublicBuckets");
    let anonymous = raw_request("GET", &server_url(&server, "alice-data/public/hello.txt"), &[], "").await;
    assert_eq!(anonymous.status, 403, "anonymous GET under RestrictPublicBuckets");
    let bob_put =
        bob.put_object().bucket("alice-data").key("public/b").body(ByteStream::from_static(b"b")).send().await;
    expect_s3_error(bob_put, 403, DENIED, "bob PUT under RestrictPublicBuckets");
    assert_eq!(get(&alice, "alice-data", "public/hello.txt").await, b"hello world", "the owner still reads");
    alice.delete_public_access_block().bucket("alice-data").send().await.ok_or_panic("DeletePublicAccessBlock");

    // The policy and the owner are in the log: both survive kill -9.
    server.restart();
    let (alice, bob) =
        (server.client_with("alicekey", "alicesecret123"), server.client_with("bobkey", "bobsecret12345"));
    let public = raw_request("GET", &server_url(&server, "alice-data/public/hello.txt"), &[], "").await;
    assert_eq!(public.status, 200, "anonymous GET under public/ after kill -9");
    let taken = bob.create_bucket().bucket("alice-data").send().await;
    expect_s3_error(taken, 409, &["BucketAlreadyExists"], "the owner after kill -9");

    // A policy that denies the owner everything still lets her manage the policy.
    let lockout = r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::alice-data","arn:aws:s3:::alice-data/*"]}]}"#;
    alice.put_bucket_policy().bucket("alice-data").policy(lockout).send().await.ok_or_panic("PutBucketPolicy lockout");
    let read = alice.get_object().bucket("alice-data").key("private/diary.txt").send().await;
    expect_s3_error(read, 403, DENIED, "alice under a Deny to everyone");
    alice.delete_bucket_policy().bucket("alice-data").send().await.ok_or_panic("the owner deletes a lockout policy");
    assert_eq!(get(&alice, "alice-data", "private/diary.txt").await, b"dear diary");
    let anonymous = raw_request("GET", &server_url(&server, "alice-data/public/hello.txt"), &[], "").await;
    assert_eq!(anonymous.status, 403, "anonymous GET once the policy is deleted");
    let upload = bob.put_object().bucket("alice-data").key("x").body(ByteStream::from_static(b"x")).send().await;
    expect_s3_error(upload, 403, DENIED, "bob PUT once the policy is deleted");
}

/// A browser upload (POST Object, multipart/form-data) without a signature, into a
/// bucket whose policy lets anyone write under `uploads/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_post_uploads_are_decided_by_the_policy_for_the_forms_key() {
    let server = Server::start_with(ServerOptions { config_toml: Some(CONFIG.into()), ..Default::default() });
    let alice = server.client_with("alicekey", "alicesecret123");
    create_bucket(&alice, "dropbox").await;
    alice.delete_public_access_block().bucket("dropbox").send().await.ok_or_panic("DeletePublicAccessBlock");
    let policy = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::dropbox/uploads/*"}]}"#;
    alice.put_bucket_policy().bucket("dropbox").policy(policy).send().await.ok_or_panic("PutBucketPolicy");
    let post = |key: &str, content: &str| {
        let boundary = "quarry-form-boundary";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n{key}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
             Content-Type: text/plain\r\n\r\n{content}\r\n--{boundary}--\r\n"
        );
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let url = format!("{}/dropbox", server.endpoint());
        async move { raw_request("POST", &url, &[("content-type", content_type.as_str())], body).await }
    };
    let allowed = post("uploads/hello.txt", "hello from a form").await;
    assert_eq!(allowed.status, 204, "anonymous POST under uploads/: {}", allowed.body_str());
    assert_eq!(get(&alice, "dropbox", "uploads/hello.txt").await, b"hello from a form");
    let refused = post("elsewhere/x.txt", "x").await;
    assert_eq!(refused.status, 403, "anonymous POST outside uploads/: {}", refused.body_str());
    let missing = alice.head_object().bucket("dropbox").key("elsewhere/x.txt").send().await;
    expect_s3_error(missing, 404, &[], "the refused upload wrote nothing");
    // `${filename}` in the key is the file's name (the form above names it a.txt).
    let named = post("uploads/${filename}", "named by the file").await;
    assert_eq!(named.status, 204, "POST with ${{filename}}: {}", named.body_str());
    assert_eq!(get(&alice, "dropbox", "uploads/a.txt").await, b"named by the file");
    // A form with a policy document must be signed: S3 refuses it unsigned.
    let boundary = "quarry-form-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nuploads/p.txt\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"policy\"\r\n\r\neyJjb25kaXRpb25zIjpbXX0=\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.txt\"\r\n\r\np\r\n--{boundary}--\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let url = format!("{}/dropbox", server.endpoint());
    let unsigned = raw_request("POST", &url, &[("content-type", content_type.as_str())], body).await;
    expect_error_document(&unsigned, 400, "InvalidArgument", "a POST form with a policy and no signature");
    // A policy's expiration must be an ISO 8601 UTC time (this one is Python's str()).
    let policy = base64(br#"{"expiration":"2030-01-01 00:00:00+00:00","conditions":[]}"#);
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nuploads/p.txt\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"policy\"\r\n\r\n{policy}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"signature\"\r\n\r\nc2ln\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.txt\"\r\n\r\np\r\n--{boundary}--\r\n"
    );
    let bad_date = raw_request("POST", &url, &[("content-type", content_type.as_str())], body).await;
    expect_error_document(&bad_date, 400, "InvalidPolicyDocument", "a POST policy with a malformed expiration");
}

/// A GET or HEAD of a missing key is 404 for a caller who may list it and 403 for
/// anyone else, so that a denied caller cannot probe which keys exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_is_404_only_to_a_caller_who_may_list_it() {
    let server = Server::start_with(ServerOptions { config_toml: Some(CONFIG.into()), ..Default::default() });
    let alice = server.client_with("alicekey", "alicesecret123");
    create_bucket(&alice, "probe").await;
    let policy = r#"{"Version": "2012-10-17", "Statement": [
      {"Effect": "Allow", "Principal": {"AWS": "bobkey"}, "Action": "s3:ListBucket",
       "Resource": "arn:aws:s3:::probe", "Condition": {"StringLike": {"s3:prefix": "public/*"}}}]}"#;
    alice.put_bucket_policy().bucket("probe").policy(policy).send().await.ok_or_panic("PutBucketPolicy");
    let bob = server.client_with("bobkey", "bobsecret12345");
    let head = bob.head_object().bucket("probe").key("public/none").send().await;
    expect_s3_error(head, 404, &[], "bob HEAD of a missing key he may list");
    let get = bob.get_object().bucket("probe").key("public/none").send().await;
    expect_s3_error(get, 404, &["NoSuchKey"], "bob GET of a missing key he may list");
    let head = bob.head_object().bucket("probe").key("private/none").send().await;
    expect_s3_error(head, 403, &[], "bob HEAD of a missing key he may not list");
    put(&alice, "probe", "public/there", b"x").await;
    let head = bob.head_object().bucket("probe").key("public/there").send().await;
    expect_s3_error(head, 403, &[], "bob HEAD of an existing key he may list but not read");
}

/// The SQL endpoint decides as the S3 API does: bob, let in by alice's policy to list
/// and read `shared/` only, sees those rows of `inventory` and `journal` and reads
/// those objects with `read_csv`; a Deny on `shared/secret/` refuses a query reading it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_endpoint_obeys_bucket_policies_key_by_key() {
    let server = Server::start_with(ServerOptions { config_toml: Some(CONFIG.into()), ..Default::default() });
    let alice = server.client_with("alicekey", "alicesecret123");
    create_bucket(&alice, "lake").await;
    put(&alice, "lake", "shared/a.csv", b"n\n1\n2\n").await;
    put(&alice, "lake", "shared/secret/b.csv", b"n\n40\n").await;
    put(&alice, "lake", "private/c.csv", b"n\n300\n").await;
    let policy = r#"{"Version": "2012-10-17", "Statement": [
      {"Effect": "Allow", "Principal": {"AWS": "bobkey"}, "Action": "s3:ListBucket",
       "Resource": "arn:aws:s3:::lake", "Condition": {"StringLike": {"s3:prefix": "shared/*"}}},
      {"Effect": "Allow", "Principal": {"AWS": "bobkey"}, "Action": "s3:GetObject",
       "Resource": "arn:aws:s3:::lake/shared/*"},
      {"Effect": "Deny", "Principal": {"AWS": "bobkey"}, "Action": "s3:GetObject",
       "Resource": "arn:aws:s3:::lake/shared/secret/*"}]}"#;
    alice.put_bucket_policy().bucket("lake").policy(policy).send().await.ok_or_panic("PutBucketPolicy");
    // The S3 API agrees with what SQL is expected to show.
    let bob = server.client_with("bobkey", "bobsecret12345");
    bob.list_objects_v2().bucket("lake").prefix("shared/").send().await.ok_or_panic("bob lists shared/");
    expect_s3_error(bob.list_objects_v2().bucket("lake").send().await, 403, DENIED, "bob lists the whole bucket");

    let as_bob = |sql: &'static str| sql_as(&server, "bobkey", "bobsecret12345", "csv", sql);
    for table in ["inventory", "journal"] {
        let sql = format!("SELECT key FROM {table} WHERE bucket = 'lake' ORDER BY key");
        let rows = sql_ok_as(&server, "bobkey", "bobsecret12345", "csv", &sql).await.body_str();
        assert_eq!(rows, "key\nshared/a.csv\nshared/secret/b.csv\n", "{table} as bob: the keys he may list");
        let rows = sql_ok_as(&server, "alicekey", "alicesecret123", "csv", &sql).await.body_str();
        assert_eq!(rows, "key\nprivate/c.csv\nshared/a.csv\nshared/secret/b.csv\n", "{table} as alice, the owner");
    }
    let sum = as_bob("SELECT sum(n) AS total FROM read_csv('s3://lake/shared/a.csv')").await;
    assert_eq!((sum.status, sum.body_str()), (200, "total\n3\n".to_owned()), "bob reads shared/a.csv");
    for sql in [
        "SELECT sum(n) FROM read_csv('s3://lake/shared/secret/b.csv')",
        "SELECT sum(n) FROM read_csv('s3://lake/shared/secret/')",
        "SELECT sum(n) FROM read_csv('s3://lake/private/c.csv')",
    ] {
        let response = as_bob(sql).await;
        expect_error_document(&response, 403, "AccessDenied", format!("bob: {sql}"));
    }
    let listed = as_bob("SELECT sum(n) AS total FROM read_csv('s3://lake/shared/')").await;
    assert_eq!((listed.status, listed.body_str()), (200, "total\n3\n".to_owned()), "bob reads the files of shared/");
    let owner = "SELECT sum(n) AS t FROM read_csv('s3://lake/private/')";
    let owner = sql_ok_as(&server, "alicekey", "alicesecret123", "csv", owner).await.body_str();
    assert_eq!(owner, "t\n300\n", "alice reads her private files");
    // Without a policy on it, bob sees nothing of the bucket.
    alice.delete_bucket_policy().bucket("lake").send().await.ok_or_panic("DeleteBucketPolicy");
    let rows = as_bob("SELECT count(*) AS n FROM inventory WHERE bucket = 'lake'").await;
    assert_eq!((rows.status, rows.body_str()), (200, "n\n0\n".to_owned()), "bob's inventory after the policy went");
}
