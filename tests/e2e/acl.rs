//! ACLs and Object Ownership with three callers: the bucket's owner (alice), another
//! user (bob) and anonymous requests (plain HTTP, no signature).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketCannedAcl, ObjectCannedAcl, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
    PublicAccessBlockConfiguration,
};

use crate::harness::*;

const CONFIG: &str = TWO_OWNERS_CONFIG;
const DENIED: &[&str] = &["AccessDenied"];

async fn canonical_id(s3: &aws_sdk_s3::Client) -> String {
    let out = s3.list_buckets().send().await.ok_or_panic("ListBuckets for the caller's id");
    out.owner().and_then(|o| o.id()).expect("an owner id").to_owned()
}

/// (grantee id or group uri, permission) of every grant, sorted.
fn grants(list: &[aws_sdk_s3::types::Grant]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list
        .iter()
        .map(|g| {
            let grantee = g.grantee().expect("a grantee");
            let who = grantee.id().or(grantee.uri()).unwrap_or_default().to_owned();
            (who, g.permission().map(|p| p.as_str().to_owned()).unwrap_or_default())
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_grant_users_and_anonymous_callers_under_object_writer_ownership() {
    let mut server = Server::start_with(ServerOptions { config_toml: Some(CONFIG.into()), ..Default::default() });
    let alice = server.client_with("alicekey", "alicesecret123");
    let bob = server.client_with("bobkey", "bobsecret12345");
    let (alice_id, bob_id) = (canonical_id(&alice).await, canonical_id(&bob).await);
    const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

    // A bucket with ACLs on (ObjectWriter) and the default public block lifted.
    let create = alice.create_bucket().bucket("shelf").object_ownership(ObjectOwnership::ObjectWriter);
    create.send().await.ok_or_panic("CreateBucket ObjectWriter");
    let controls = alice.get_bucket_ownership_controls().bucket("shelf").send().await.unwrap();
    let rule = &controls.ownership_controls().unwrap().rules()[0];
    assert_eq!(rule.object_ownership(), &ObjectOwnership::ObjectWriter);
    let blocked = alice.put_bucket_acl().bucket("shelf").acl(BucketCannedAcl::PublicRead).send().await;
    expect_s3_error(blocked, 403, DENIED, "a public bucket ACL under the default Block Public Access");
    alice.delete_public_access_block().bucket("shelf").send().await.ok_or_panic("DeletePublicAccessBlock");

    // A public-read bucket ACL lets anyone list; the owner keeps FULL_CONTROL.
    alice.put_bucket_acl().bucket("shelf").acl(BucketCannedAcl::PublicRead).send().await.ok_or_panic("PutBucketAcl");
    let acl = alice.get_bucket_acl().bucket("shelf").send().await.ok_or_panic("GetBucketAcl");
    assert_eq!(
        grants(acl.grants()),
        vec![(alice_id.clone(), "FULL_CONTROL".into()), (ALL_USERS.into(), "READ".into())],
        "the bucket's grants"
    );
    assert_eq!(acl.owner().and_then(|o| o.display_name()), Some("alicekey"));
    put(&alice, "shelf", "private.txt", b"mine").await;
    let listing = raw_request("GET", &server_url(&server, "shelf?list-type=2"), &[], "").await;
    assert_eq!(listing.status, 200, "anonymous LIST of a public-read bucket: {}", listing.body_str());
    assert!(listing.body_str().contains("private.txt"), "the listing names the key");
    let read = raw_request("GET", &server_url(&server, "shelf/private.txt"), &[], "").await;
    assert_eq!(read.status, 403, "a private object in a public-read bucket");
    let write = raw_request("PUT", &server_url(&server, "shelf/graffiti"), &[], "x").await;
    assert_eq!(write.status, 403, "anonymous PUT without WRITE");

    // Re-creating one's own bucket with an ACL changes nothing: 409, as S3 answers.
    let recreate = alice.create_bucket().bucket("shelf").acl(BucketCannedAcl::PublicRead).send().await;
    expect_s3_error(recreate, 409, &["BucketAlreadyExists"], "re-creating one's bucket with an ACL");
    // x-amz-expected-bucket-owner: refused unless it names the owner.
    let wrong = alice.list_objects_v2().bucket("shelf").expected_bucket_owner(bob_id.clone()).send().await;
    expect_s3_error(wrong, 403, DENIED, "x-amz-expected-bucket-owner of another user");
    let right = alice.list_objects_v2().bucket("shelf").expected_bucket_owner(alice_id.clone()).send().await;
    right.ok_or_panic("x-amz-expected-bucket-owner of the owner");

    // Object ACLs: a public-read object, and one granted to bob by canonical id.
    let public = alice.put_object().bucket("shelf").key("public.txt").acl(ObjectCannedAcl::PublicRead);
    public.body(ByteStream::from_static(b"for everyone")).send().await.ok_or_panic("PUT public-read");
    let read = raw_request("GET", &server_url(&server, "shelf/public.txt"), &[], "").await;
    assert_eq!((read.status, read.body_str().as_str()), (200, "for everyone"), "anonymous GET of public-read");
    expect_s3_error(bob.get_object().bucket("shelf").key("private.txt").send().await, 403, DENIED, "bob GET private");
    let grant = alice.put_object_acl().bucket("shelf").key("private.txt").grant_read(format!("id={bob_id}"));
    grant.send().await.ok_or_panic("PutObjectAcl grant-read to bob");
    assert_eq!(get(&bob, "shelf", "private.txt").await, b"mine", "bob reads what he was granted");
    let acl = alice.get_object_acl().bucket("shelf").key("private.txt").send().await.ok_or_panic("GetObjectAcl");
    assert_eq!(grants(acl.grants()), vec![(bob_id.clone(), "READ".into())], "grant headers replace the ACL");
    let bob_grant = acl.grants().iter().find_map(|g| g.grantee()).unwrap();
    assert_eq!(bob_grant.display_name(), Some("bobkey"), "a grantee's display name");
    let by_bob = bob.get_object_acl().bucket("shelf").key("private.txt").send().await;
    expect_s3_error(by_bob, 403, DENIED, "READ does not give READ_ACP");
    let email = alice.put_object_acl().bucket("shelf").key("private.txt").grant_read("emailAddress=\"a@b.c\"");
    expect_s3_error(email.send().await, 400, &["UnresolvableGrantByEmailAddress"], "a grant by e-mail");

    // WRITE on the bucket lets bob upload; under ObjectWriter he owns what he writes.
    let write = alice.put_bucket_acl().bucket("shelf").grant_write(format!("id={bob_id}"));
    write.grant_full_control(format!("id={alice_id}")).send().await.ok_or_panic("PutBucketAcl grant-write");
    put(&bob, "shelf", "from-bob.txt", b"bob's").await;
    let acl = bob.get_object_acl().bucket("shelf").key("from-bob.txt").send().await.ok_or_panic("bob's own ACL");
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(bob_id.as_str()), "the writer owns the object");
    assert_eq!(get(&bob, "shelf", "from-bob.txt").await, b"bob's");
    // As on S3, the bucket's owner reads another's object (or its ACL) only if granted,
    // but may still delete it.
    let by_alice = alice.get_object().bucket("shelf").key("from-bob.txt").send().await;
    expect_s3_error(by_alice, 403, DENIED, "alice GET of bob's object in her bucket");
    let by_alice = alice.get_object_acl().bucket("shelf").key("from-bob.txt").send().await;
    expect_s3_error(by_alice, 403, DENIED, "alice GetObjectAcl of bob's object in her bucket");
    put(&bob, "shelf", "bob-temp.txt", b"temporary").await;
    alice.delete_object().bucket("shelf").key("bob-temp.txt").send().await.ok_or_panic("alice deletes bob's object");
    let grant = bob.put_object_acl().bucket("shelf").key("from-bob.txt").grant_read(format!("id={alice_id}"));
    grant.send().await.ok_or_panic("bob grants alice READ");
    assert_eq!(get(&alice, "shelf", "from-bob.txt").await, b"bob's", "alice reads what bob granted her");
    let upload = bob.create_multipart_upload().bucket("shelf").key("bob-parts").send().await.unwrap();
    let parts = bob.list_parts().bucket("shelf").key("bob-parts").upload_id(upload.upload_id().unwrap()).send().await;
    let parts = parts.ok_or_panic("bob's ListParts");
    assert_eq!(parts.owner().and_then(|o| o.id()), Some(bob_id.as_str()), "an upload belongs to its writer");
    expect_s3_error(bob.list_objects_v2().bucket("shelf").send().await, 403, DENIED, "WRITE does not give READ");

    // ACLs are in the log: they survive kill -9.
    server.restart();
    let (alice, bob) =
        (server.client_with("alicekey", "alicesecret123"), server.client_with("bobkey", "bobsecret12345"));
    let read = raw_request("GET", &server_url(&server, "shelf/public.txt"), &[], "").await;
    assert_eq!(read.status, 200, "anonymous GET of public-read after kill -9");
    assert_eq!(get(&bob, "shelf", "private.txt").await, b"mine", "bob's grant after kill -9");

    // BlockPublicAcls refuses a public ACL; IgnorePublicAcls makes existing ones count for nothing.
    let block = PublicAccessBlockConfiguration::builder().block_public_acls(true).ignore_public_acls(true).build();
    alice.put_public_access_block().bucket("shelf").public_access_block_configuration(block).send().await.unwrap();
    let public = alice.put_object_acl().bucket("shelf").key("private.txt").acl(ObjectCannedAcl::PublicRead);
    expect_s3_error(public.send().await, 403, DENIED, "a public ACL under BlockPublicAcls");
    let read = raw_request("GET", &server_url(&server, "shelf/public.txt"), &[], "").await;
    assert_eq!(read.status, 403, "a public-read object under IgnorePublicAcls");
    assert_eq!(get(&bob, "shelf", "private.txt").await, b"mine", "a grant to a user is not public");
    alice.delete_public_access_block().bucket("shelf").send().await.unwrap();

    // BucketOwnerEnforced turns ACLs off: refused while the bucket ACL grants others,
    // then every object ACL stops counting and non-owner ACLs are refused.
    let enforced = OwnershipControls::builder()
        .rules(OwnershipControlsRule::builder().object_ownership(ObjectOwnership::BucketOwnerEnforced).build().unwrap())
        .build()
        .unwrap();
    let put_enforced = || alice.put_bucket_ownership_controls().bucket("shelf").ownership_controls(enforced.clone());
    expect_s3_error(
        put_enforced().send().await,
        400,
        &["InvalidBucketAclWithObjectOwnership"],
        "Enforced while the bucket ACL grants others",
    );
    alice.put_bucket_acl().bucket("shelf").acl(BucketCannedAcl::Private).send().await.ok_or_panic("private bucket ACL");
    put_enforced().send().await.ok_or_panic("PutBucketOwnershipControls BucketOwnerEnforced");
    // With ACLs off every request that sets an ACL is refused, even one of the owner alone.
    let set = alice.put_bucket_acl().bucket("shelf").acl(BucketCannedAcl::Private).send().await;
    expect_s3_error(set, 400, &["AccessControlListNotSupported"], "PutBucketAcl private, ACLs off");
    let set = alice.put_object_acl().bucket("shelf").key("public.txt").acl(ObjectCannedAcl::Private).send().await;
    expect_s3_error(set, 400, &["AccessControlListNotSupported"], "PutObjectAcl private, ACLs off");
    let read = raw_request("GET", &server_url(&server, "shelf/public.txt"), &[], "").await;
    assert_eq!(read.status, 403, "object ACLs no longer count under BucketOwnerEnforced");
    expect_s3_error(bob.get_object().bucket("shelf").key("private.txt").send().await, 403, DENIED, "bob's grant");
    let public = alice
        .put_object()
        .bucket("shelf")
        .key("x")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"));
    expect_s3_error(public.send().await, 400, &["AccessControlListNotSupported"], "PUT public-read, ACLs off");
    // `private` means "the bucket's owner alone" only from the bucket's owner; from
    // another user it would make him the owner, which ACLs off forbids.
    let owner_private = alice.put_object().bucket("shelf").key("a").acl(ObjectCannedAcl::Private);
    owner_private.body(ByteStream::from_static(b"a")).send().await.ok_or_panic("the owner's PUT private, ACLs off");
    let policy = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"bobkey"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::shelf/*"}]}"#;
    alice.put_bucket_policy().bucket("shelf").policy(policy).send().await.ok_or_panic("a policy for bob's PUTs");
    let bob_private = bob.put_object().bucket("shelf").key("b").acl(ObjectCannedAcl::Private);
    let bob_private = bob_private.body(ByteStream::from_static(b"b")).send().await;
    expect_s3_error(bob_private, 400, &["AccessControlListNotSupported"], "another user's PUT private, ACLs off");
    let bob_full = bob.put_object().bucket("shelf").key("b").acl(ObjectCannedAcl::BucketOwnerFullControl);
    bob_full.body(ByteStream::from_static(b"b")).send().await.ok_or_panic("bob's PUT bucket-owner-full-control");
    let acl = alice.get_object_acl().bucket("shelf").key("b").send().await.ok_or_panic("GetObjectAcl of bob's upload");
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(alice_id.as_str()), "ACLs off: the bucket's owner owns it");
    alice.delete_bucket_policy().bucket("shelf").send().await.unwrap();
    alice.delete_bucket_ownership_controls().bucket("shelf").send().await.ok_or_panic("DeleteBucketOwnershipControls");
    let none = alice.get_bucket_ownership_controls().bucket("shelf").send().await;
    expect_s3_error(none, 404, &["OwnershipControlsNotFoundError"], "no ownership controls after the delete");
    let read = raw_request("GET", &server_url(&server, "shelf/public.txt"), &[], "").await;
    assert_eq!(read.status, 200, "without controls (ObjectWriter) the object's public-read counts again");
}
