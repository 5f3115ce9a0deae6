//! ACLs and Object Ownership: canned ACLs and `x-amz-grant-*` headers on CreateBucket
//! and object writes, Put/Get Bucket/Object Acl (AccessControlPolicy XML), and
//! Put/Get/DeleteBucketOwnershipControls. What a grant allows is decided in
//! `access.rs` ([`permits`]).
//!
//! Grants are kept as given, the owner's FULL_CONTROL included; no stored ACL means
//! the owner's FULL_CONTROL alone. A bucket without ownership controls (deleted, or
//! made before they existed) behaves as ObjectWriter, as on S3; new buckets get the
//! server's `--object-ownership` (BucketOwnerEnforced by default, as on S3), under
//! which ACLs are disabled: only the owner's own ACL is accepted.

use crate::QuarryS3;
use crate::auth::{User, owner_named};
use crate::error::engine_error;
use s3s::dto::{self, *};
use s3s::{S3Request, S3Response, S3Result, s3_error};
use storage_core::{BucketEntry, Grant, Grantee as StoredGrantee, ObjectOwnership as Ownership, Permission};

pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
pub const LOG_DELIVERY: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";
/// S3 allows at most 100 grants in an ACL.
const MAX_GRANTS: usize = 100;

fn acls_not_supported() -> s3s::S3Error {
    s3_error!(AccessControlListNotSupported, "The bucket does not allow ACLs")
}

pub fn ownership_of(bucket: &BucketEntry) -> Ownership {
    bucket.object_ownership.unwrap_or(Ownership::ObjectWriter)
}

/// The canonical id of a bucket's owner (the admins' for buckets without one).
pub fn bucket_owner_id(bucket: &BucketEntry) -> String {
    bucket.owner.as_deref().map(|name| owner_named(name).id.unwrap_or_default()).unwrap_or_else(|| "quarry".into())
}

fn user_grant(id: &str, permission: Permission) -> Grant {
    Grant { grantee: StoredGrantee::User { id: id.to_owned() }, permission }
}

/// Whether `grants` give anything beyond `owner_id`'s own FULL_CONTROL (what ACLs off
/// forbid).
pub fn beyond_owner(grants: &[Grant], owner_id: &str) -> bool {
    let owner = user_grant(owner_id, Permission::FullControl);
    grants.iter().any(|g| g != &owner)
}

/// A canned ACL as grants, for an owner `owner_id` in a bucket owned by `bucket_owner_id`.
pub fn canned(name: &str, owner_id: &str, bucket_owner_id: &str) -> S3Result<Vec<Grant>> {
    let mut grants = vec![user_grant(owner_id, Permission::FullControl)];
    let group = |grantee: StoredGrantee, permission| Grant { grantee, permission };
    match name {
        "private" | "aws-exec-read" => {}
        "public-read" => grants.push(group(StoredGrantee::AllUsers, Permission::Read)),
        "public-read-write" => {
            grants.push(group(StoredGrantee::AllUsers, Permission::Read));
            grants.push(group(StoredGrantee::AllUsers, Permission::Write));
        }
        "authenticated-read" => grants.push(group(StoredGrantee::AuthenticatedUsers, Permission::Read)),
        "bucket-owner-read" if owner_id != bucket_owner_id => {
            grants.push(user_grant(bucket_owner_id, Permission::Read))
        }
        "bucket-owner-full-control" if owner_id != bucket_owner_id => {
            grants.push(user_grant(bucket_owner_id, Permission::FullControl))
        }
        "bucket-owner-read" | "bucket-owner-full-control" => {}
        "log-delivery-write" => {
            grants.push(group(StoredGrantee::LogDelivery, Permission::Write));
            grants.push(group(StoredGrantee::LogDelivery, Permission::ReadAcp));
        }
        other => return Err(s3_error!(InvalidArgument, "Unknown canned ACL {other:?}")),
    }
    Ok(grants)
}

/// The grantees of one `x-amz-grant-*` header: `id="..."`, `uri="..."` or
/// `emailAddress="..."`, comma-separated.
fn header_grantees(value: &str) -> S3Result<Vec<StoredGrantee>> {
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, quoted) =
            part.split_once('=').ok_or_else(|| s3_error!(InvalidArgument, "Invalid grant {part:?}"))?;
        let value = quoted.trim().trim_matches('"');
        out.push(match kind.trim() {
            "id" => StoredGrantee::User { id: known_user(value)? },
            "uri" => group(value)?,
            "emailAddress" => {
                return Err(s3_error!(
                    UnresolvableGrantByEmailAddress,
                    "The e-mail address you provided does not match any account on record."
                ));
            }
            other => return Err(s3_error!(InvalidArgument, "Invalid grantee type {other:?}")),
        });
    }
    Ok(out)
}

/// A grant's canonical id must look like one (64 hex digits); S3 refuses others.
fn known_user(id: &str) -> S3Result<String> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_owned())
    } else {
        Err(s3_error!(InvalidArgument, "Invalid id: {id:?} is not a canonical user id"))
    }
}

fn group(uri: &str) -> S3Result<StoredGrantee> {
    match uri {
        ALL_USERS => Ok(StoredGrantee::AllUsers),
        AUTHENTICATED_USERS => Ok(StoredGrantee::AuthenticatedUsers),
        LOG_DELIVERY => Ok(StoredGrantee::LogDelivery),
        other => Err(s3_error!(InvalidArgument, "Invalid group uri {other:?}")),
    }
}

/// What a request's ACL headers ask for: a canned ACL or grants (not both), or nothing.
pub struct AclHeaders<'a> {
    pub canned: Option<&'a str>,
    /// (permission, header value) of each `x-amz-grant-*` header present.
    pub grants: Vec<(Permission, &'a str)>,
}

/// The ACL headers of an input with the usual S3 field names.
macro_rules! acl_headers {
    ($input:expr, $canned:expr) => {
        $crate::acl::AclHeaders {
            canned: $canned,
            grants: [
                (storage_core::Permission::FullControl, $input.grant_full_control.as_deref()),
                (storage_core::Permission::Read, $input.grant_read.as_deref()),
                (storage_core::Permission::ReadAcp, $input.grant_read_acp.as_deref()),
                (storage_core::Permission::WriteAcp, $input.grant_write_acp.as_deref()),
            ]
            .into_iter()
            .filter_map(|(p, v)| v.map(|v| (p, v)))
            .collect(),
        }
    };
}
pub(crate) use acl_headers;

impl AclHeaders<'_> {
    pub fn is_empty(&self) -> bool {
        self.canned.is_none() && self.grants.is_empty()
    }

    /// The grants asked for (none when the request names no ACL).
    pub fn resolve(&self, owner_id: &str, bucket_owner_id: &str) -> S3Result<Option<Vec<Grant>>> {
        match (self.canned, self.grants.is_empty()) {
            (None, true) => Ok(None),
            (Some(_), false) => {
                Err(s3_error!(InvalidRequest, "Specifying both Canned ACLs and Header Grants is not allowed"))
            }
            (Some(name), true) => canned(name, owner_id, bucket_owner_id).map(Some),
            (None, false) => {
                // In the order S3 documents the headers: read, write, read-acp,
                // write-acp, full-control.
                let rank = |p: &Permission| match p {
                    Permission::Read => 0,
                    Permission::Write => 1,
                    Permission::ReadAcp => 2,
                    Permission::WriteAcp => 3,
                    Permission::FullControl => 4,
                };
                let mut asked: Vec<&(Permission, &str)> = self.grants.iter().collect();
                asked.sort_by_key(|(permission, _)| rank(permission));
                let mut grants = Vec::new();
                for (permission, value) in asked {
                    for grantee in header_grantees(value)? {
                        grants.push(Grant { grantee, permission: *permission });
                    }
                }
                bounded(grants).map(Some)
            }
        }
    }
}

fn bounded(grants: Vec<Grant>) -> S3Result<Vec<Grant>> {
    if grants.len() > MAX_GRANTS {
        return Err(s3_error!(MalformedACLError, "An ACL holds at most {MAX_GRANTS} grants"));
    }
    Ok(grants)
}

/// Grants that reach beyond named users (what Block Public Access calls public).
pub fn is_public(grants: &[Grant]) -> bool {
    grants.iter().any(|g| matches!(g.grantee, StoredGrantee::AllUsers | StoredGrantee::AuthenticatedUsers))
}

/// Whether `grants` give `caller` `permission` (FULL_CONTROL gives every one).
/// `ignore_public`: IgnorePublicAcls, group grants count for nothing.
pub fn permits(grants: &[Grant], caller: Option<&User>, permission: Permission, ignore_public: bool) -> bool {
    grants.iter().any(|g| {
        let grantee = match &g.grantee {
            StoredGrantee::AllUsers => !ignore_public,
            StoredGrantee::AuthenticatedUsers => !ignore_public && caller.is_some(),
            StoredGrantee::User { id } => caller.is_some_and(|u| &u.canonical_id == id),
            StoredGrantee::LogDelivery => false,
        };
        grantee && (g.permission == permission || g.permission == Permission::FullControl)
    })
}

/// An object write's ACL and owner under the bucket's Object Ownership: the grants to
/// keep (none: the owner's alone) and the owner when it is not the bucket's.
pub fn for_object_write(
    bucket: &BucketEntry,
    writer: Option<&User>,
    headers: &AclHeaders<'_>,
) -> S3Result<(Option<Vec<Grant>>, Option<String>)> {
    let ownership = ownership_of(bucket);
    // The common case (ACLs off, none asked for) needs no ids.
    if ownership == Ownership::BucketOwnerEnforced && headers.is_empty() {
        return Ok((None, None));
    }
    let bucket_owner_id = bucket_owner_id(bucket);
    let to_bucket_owner = matches!(headers.canned, Some("bucket-owner-full-control"));
    if ownership == Ownership::BucketOwnerEnforced {
        // ACLs disabled: only an ACL that gives the bucket's owner full control and no
        // one else anything passes (bucket-owner-full-control, or `private` from the
        // bucket's owner), as on S3.
        let writer_id = writer.map_or(bucket_owner_id.clone(), |u| u.canonical_id.clone());
        let only_owner = match headers.resolve(&writer_id, &bucket_owner_id)? {
            None => true,
            Some(_) if to_bucket_owner => true,
            Some(grants) => !beyond_owner(&grants, &bucket_owner_id),
        };
        return if only_owner { Ok((None, None)) } else { Err(acls_not_supported()) };
    }
    let writer_name = writer.map(|u| u.name.clone());
    let owner = match ownership {
        Ownership::BucketOwnerPreferred if to_bucket_owner => None,
        _ if writer_name.is_some() && writer_name != bucket.owner => writer_name,
        _ => None,
    };
    let owner_id = owner.as_deref().map_or(bucket_owner_id.clone(), |name| owner_named(name).id.unwrap_or_default());
    let grants = headers.resolve(&owner_id, &bucket_owner_id)?;
    if let Some(grants) = &grants {
        block_public(bucket, grants)?;
    }
    Ok((grants, owner))
}

/// BlockPublicAcls refuses an ACL that grants a group anything.
pub fn block_public(bucket: &BucketEntry, grants: &[Grant]) -> S3Result<()> {
    if bucket.public_access_block.is_some_and(|b| b.block_public_acls) && is_public(grants) {
        return Err(s3_error!(AccessDenied, "Block Public Access (BlockPublicAcls) forbids a public ACL"));
    }
    Ok(())
}

/// An AccessControlPolicy body as grants.
fn policy_grants(policy: &AccessControlPolicy) -> S3Result<Vec<Grant>> {
    let mut grants = Vec::new();
    for grant in policy.grants.iter().flatten() {
        let (Some(grantee), Some(permission)) = (&grant.grantee, &grant.permission) else {
            return Err(s3_error!(MalformedACLError, "A grant needs a Grantee and a Permission"));
        };
        let permission = match permission.as_str() {
            "READ" => Permission::Read,
            "WRITE" => Permission::Write,
            "READ_ACP" => Permission::ReadAcp,
            "WRITE_ACP" => Permission::WriteAcp,
            "FULL_CONTROL" => Permission::FullControl,
            other => return Err(s3_error!(MalformedACLError, "Unknown permission {other:?}")),
        };
        let grantee = match grantee.type_.as_str() {
            dto::Type::CANONICAL_USER => match &grantee.id {
                Some(id) => StoredGrantee::User { id: known_user(id)? },
                None => return Err(s3_error!(InvalidArgument, "A CanonicalUser grantee needs an ID")),
            },
            dto::Type::GROUP => group(grantee.uri.as_deref().unwrap_or_default())?,
            dto::Type::AMAZON_CUSTOMER_BY_EMAIL => {
                return Err(s3_error!(
                    UnresolvableGrantByEmailAddress,
                    "The e-mail address you provided does not match any account on record."
                ));
            }
            other => return Err(s3_error!(MalformedACLError, "Unknown grantee type {other:?}")),
        };
        grants.push(Grant { grantee, permission });
    }
    bounded(grants)
}

/// The grants a Put*Acl asks for: a body, a canned ACL, or grant headers (one of them).
fn put_grants(
    body: Option<&AccessControlPolicy>,
    headers: &AclHeaders<'_>,
    owner_id: &str,
    bucket_owner_id: &str,
) -> S3Result<Vec<Grant>> {
    match (body, headers.is_empty()) {
        (Some(_), false) => Err(s3_error!(UnexpectedContent, "This request does not support content with ACL headers")),
        (Some(policy), true) => {
            if let Some(id) = policy.owner.as_ref().and_then(|o| o.id.as_deref())
                && id != owner_id
            {
                return Err(s3_error!(AccessDenied, "The ACL's owner is not the resource's owner"));
            }
            policy_grants(policy)
        }
        (None, false) => Ok(headers.resolve(owner_id, bucket_owner_id)?.unwrap_or_default()),
        (None, true) => Err(s3_error!(MissingSecurityHeader, "Your request was missing a required header: x-amz-acl")),
    }
}

/// The grants as Get*Acl lists them: group grants first, then users, each in the order
/// they were given (S3 sets no order; RGW lists groups first and clients written
/// against it expect that).
fn dto_grants(s3: &QuarryS3, grants: &[Grant]) -> Vec<dto::Grant> {
    let mut ordered: Vec<&Grant> = grants.iter().collect();
    ordered.sort_by_key(|g| matches!(g.grantee, StoredGrantee::User { .. }));
    ordered
        .into_iter()
        .map(|g| {
            let grantee = match &g.grantee {
                StoredGrantee::User { id } => dto::Grantee {
                    display_name: s3.keys.user_by_canonical_id(id).map(|u| u.name.clone()),
                    id: Some(id.clone()),
                    type_: dto::Type::from_static(dto::Type::CANONICAL_USER),
                    email_address: None,
                    uri: None,
                },
                group => dto::Grantee {
                    display_name: None,
                    id: None,
                    type_: dto::Type::from_static(dto::Type::GROUP),
                    email_address: None,
                    uri: Some(
                        match group {
                            StoredGrantee::AllUsers => ALL_USERS,
                            StoredGrantee::AuthenticatedUsers => AUTHENTICATED_USERS,
                            _ => LOG_DELIVERY,
                        }
                        .to_owned(),
                    ),
                },
            };
            let permission = match g.permission {
                Permission::Read => dto::Permission::READ,
                Permission::Write => dto::Permission::WRITE,
                Permission::ReadAcp => dto::Permission::READ_ACP,
                Permission::WriteAcp => dto::Permission::WRITE_ACP,
                Permission::FullControl => dto::Permission::FULL_CONTROL,
            };
            dto::Grant { grantee: Some(grantee), permission: Some(dto::Permission::from_static(permission)) }
        })
        .collect()
}

pub async fn get_bucket_acl(
    s3: &QuarryS3,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let bucket = s3.require_bucket(&req.input.bucket)?;
    let owner_id = bucket_owner_id(&bucket);
    let grants = bucket.acl.clone().unwrap_or_else(|| vec![user_grant(&owner_id, Permission::FullControl)]);
    Ok(S3Response::new(GetBucketAclOutput {
        owner: Some(s3.bucket_owner(&req.input.bucket)?),
        grants: Some(dto_grants(s3, &grants)),
    }))
}

pub async fn put_bucket_acl(
    s3: &QuarryS3,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let input = &req.input;
    let bucket = s3.require_bucket(&input.bucket)?;
    let owner_id = bucket_owner_id(&bucket);
    let mut headers = acl_headers!(input, input.acl.as_ref().map(|a| a.as_str()));
    if let Some(write) = input.grant_write.as_deref() {
        headers.grants.push((Permission::Write, write));
    }
    let grants = put_grants(input.access_control_policy.as_ref(), &headers, &owner_id, &owner_id)?;
    // With ACLs off, S3 refuses every request that sets an ACL (uploads may still name
    // bucket-owner-full-control, see `for_object_write`).
    if ownership_of(&bucket) == Ownership::BucketOwnerEnforced {
        return Err(acls_not_supported());
    }
    block_public(&bucket, &grants)?;
    s3.engine.set_bucket_acl(&input.bucket, grants).await.map_err(engine_error)?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}

/// The version an object ACL call is about, and its owner's name (none: the bucket's).
fn acl_target(
    s3: &QuarryS3,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<(storage_core::ObjectEntry, Option<storage_core::VersionId>)> {
    let version = crate::version::requested(version_id)?;
    let found = match version {
        Some(v) => s3.engine.version(bucket, key, v),
        None => s3.engine.object(bucket, key),
    };
    match found.map_err(engine_error)? {
        Some(entry) if !entry.delete_marker => Ok((entry, version)),
        Some(_) => Err(s3_error!(MethodNotAllowed, "The specified method is not allowed against this resource.")),
        None if version.is_some() => Err(s3_error!(NoSuchVersion, "The specified version does not exist.")),
        None => Err(s3_error!(NoSuchKey, "The specified key does not exist.")),
    }
}

pub async fn get_object_acl(
    s3: &QuarryS3,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let input = &req.input;
    let bucket = s3.require_bucket(&input.bucket)?;
    let (entry, _) = acl_target(s3, &input.bucket, &input.key, input.version_id.as_deref())?;
    let (owner, owner_id) = match &entry.meta.owner {
        Some(name) => (owner_named(name), owner_named(name).id.unwrap_or_default()),
        None => (s3.bucket_owner(&input.bucket)?, bucket_owner_id(&bucket)),
    };
    let grants = entry.meta.acl.clone().unwrap_or_else(|| vec![user_grant(&owner_id, Permission::FullControl)]);
    Ok(S3Response::new(GetObjectAclOutput {
        owner: Some(owner),
        grants: Some(dto_grants(s3, &grants)),
        request_charged: None,
    }))
}

pub async fn put_object_acl(
    s3: &QuarryS3,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let input = &req.input;
    let bucket = s3.require_bucket(&input.bucket)?;
    let (entry, version) = acl_target(s3, &input.bucket, &input.key, input.version_id.as_deref())?;
    let bucket_owner_id = bucket_owner_id(&bucket);
    let owner_id =
        entry.meta.owner.as_deref().map_or(bucket_owner_id.clone(), |n| owner_named(n).id.unwrap_or_default());
    let headers = acl_headers!(input, input.acl.as_ref().map(|a| a.as_str()));
    let grants = put_grants(input.access_control_policy.as_ref(), &headers, &owner_id, &bucket_owner_id)?;
    if ownership_of(&bucket) == Ownership::BucketOwnerEnforced {
        return Err(acls_not_supported());
    }
    block_public(&bucket, &grants)?;
    s3.engine.set_object_acl(&input.bucket, &input.key, version, grants).await.map_err(engine_error)?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

fn ownership_name(ownership: Ownership) -> &'static str {
    match ownership {
        Ownership::BucketOwnerEnforced => ObjectOwnership::BUCKET_OWNER_ENFORCED,
        Ownership::BucketOwnerPreferred => ObjectOwnership::BUCKET_OWNER_PREFERRED,
        Ownership::ObjectWriter => ObjectOwnership::OBJECT_WRITER,
    }
}

pub fn parse_ownership(value: &ObjectOwnership) -> S3Result<Ownership> {
    match value.as_str() {
        ObjectOwnership::BUCKET_OWNER_ENFORCED => Ok(Ownership::BucketOwnerEnforced),
        ObjectOwnership::BUCKET_OWNER_PREFERRED => Ok(Ownership::BucketOwnerPreferred),
        ObjectOwnership::OBJECT_WRITER => Ok(Ownership::ObjectWriter),
        other => Err(s3_error!(InvalidArgument, "Unknown object ownership {other:?}")),
    }
}

pub async fn get_bucket_ownership_controls(
    s3: &QuarryS3,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    let bucket = s3.require_bucket(&req.input.bucket)?;
    let Some(ownership) = bucket.object_ownership else {
        return Err(s3_error!(OwnershipControlsNotFoundError, "The bucket ownership controls were not found"));
    };
    let rule = OwnershipControlsRule { object_ownership: ObjectOwnership::from_static(ownership_name(ownership)) };
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls { rules: vec![rule] }),
    }))
}

pub async fn put_bucket_ownership_controls(
    s3: &QuarryS3,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
    let input = req.input;
    let bucket = s3.require_bucket(&input.bucket)?;
    let [rule] = input.ownership_controls.rules.as_slice() else {
        return Err(s3_error!(MalformedXML, "Ownership controls hold exactly one rule"));
    };
    let ownership = parse_ownership(&rule.object_ownership)?;
    // ACLs cannot be turned off while the bucket's own ACL grants beyond its owner.
    if ownership == Ownership::BucketOwnerEnforced
        && let Some(grants) = &bucket.acl
        && beyond_owner(grants, &bucket_owner_id(&bucket))
    {
        return Err(s3_error!(
            InvalidBucketAclWithObjectOwnership,
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
        ));
    }
    s3.engine.set_object_ownership(&input.bucket, Some(ownership)).await.map_err(engine_error)?;
    Ok(S3Response::new(PutBucketOwnershipControlsOutput::default()))
}

pub async fn delete_bucket_ownership_controls(
    s3: &QuarryS3,
    req: S3Request<DeleteBucketOwnershipControlsInput>,
) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
    let bucket = s3.require_bucket(&req.input.bucket)?;
    if bucket.object_ownership.is_some() {
        s3.engine.set_object_ownership(&req.input.bucket, None).await.map_err(engine_error)?;
    }
    Ok(S3Response::new(DeleteBucketOwnershipControlsOutput::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> String {
        format!("{n:064x}")
    }

    #[test]
    fn grant_headers_are_bounded_and_exclusive_with_canned_acls() {
        let many: String = (0..=MAX_GRANTS as u8).map(|n| format!("id=\"{}\"", id(n))).collect::<Vec<_>>().join(",");
        let headers = AclHeaders { canned: None, grants: vec![(Permission::Read, many.as_str())] };
        let refused = headers.resolve(&id(0), &id(0)).unwrap_err();
        assert_eq!(refused.code(), &s3s::S3ErrorCode::MalformedACLError, "{} grants", MAX_GRANTS + 1);
        let one = format!("id=\"{}\"", id(1));
        let both = AclHeaders { canned: Some("private"), grants: vec![(Permission::Read, one.as_str())] };
        assert_eq!(both.resolve(&id(0), &id(0)).unwrap_err().code(), &s3s::S3ErrorCode::InvalidRequest);
    }

    #[test]
    fn canned_acls_and_what_acls_off_allow() {
        let (owner, other) = (id(1), id(2));
        assert!(!beyond_owner(&canned("private", &owner, &owner).unwrap(), &owner));
        assert!(beyond_owner(&canned("public-read", &owner, &owner).unwrap(), &owner));
        // bucket-owner-full-control from another writer names both.
        let to_bucket_owner = canned("bucket-owner-full-control", &other, &owner).unwrap();
        assert_eq!(to_bucket_owner.len(), 2);
        assert!(is_public(&canned("authenticated-read", &owner, &owner).unwrap()));
        assert!(canned("everyone-please", &owner, &owner).is_err());
        let bad_id = AclHeaders { canned: None, grants: vec![(Permission::Read, "id=\"someone\"")] };
        assert!(bad_id.resolve(&owner, &owner).is_err(), "a grant to something that is no canonical id");
    }
}
