//! ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.

use crate::QuarryS3;
use crate::error::engine_error;
use crate::meta::{now_ms, timestamp};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use storage_core::VersioningStatus;

/// The region where S3 keeps its legacy answers (an empty LocationConstraint, a repeated
/// CreateBucket of one's own bucket answered 200).
const US_EAST_1: &str = "us-east-1";

/// A ListBuckets page holds at most this many buckets (S3's bound for `max-buckets`, and
/// its page size when none is given).
pub const MAX_BUCKETS_PER_PAGE: usize = 10_000;

pub async fn list_buckets(s3: &QuarryS3, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
    let caller = req.credentials.as_ref().map(|c| c.access_key.as_str()).unwrap_or_default();
    let input = req.input;
    let page_size = match input.max_buckets {
        None => MAX_BUCKETS_PER_PAGE,
        Some(n) if (1..=MAX_BUCKETS_PER_PAGE as i32).contains(&n) => n as usize,
        Some(n) => {
            return Err(s3_error!(
                InvalidArgument,
                "max-buckets must be between 1 and {MAX_BUCKETS_PER_PAGE}, not {n}"
            ));
        }
    };
    let resume_after = input.continuation_token.as_deref().map(crate::list::decode_token).transpose()?;
    let prefix = input.prefix.as_deref().unwrap_or("");
    // Every bucket is in the server's one region.
    let in_region = input.bucket_region.as_deref().is_none_or(|region| region == s3.config.region);
    let mut listed = s3
        .engine
        .buckets()
        .map_err(engine_error)?
        .into_iter()
        .filter(|_| in_region)
        .filter(|(name, _)| resume_after.as_ref().is_none_or(|after| name > after))
        .filter(|(name, entry)| name.starts_with(prefix) && s3.keys.lists(caller, name, entry.owner.as_deref()));
    let buckets: Vec<Bucket> = listed
        .by_ref()
        .take(page_size)
        .map(|(name, entry)| Bucket {
            name: Some(name),
            creation_date: Some(timestamp(entry.created_ms)),
            bucket_region: Some(s3.config.region.clone()),
        })
        .collect();
    let more = listed.next().is_some();
    let continuation_token =
        buckets.last().and_then(|b| b.name.as_deref()).filter(|_| more).map(crate::list::encode_token);
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: s3.keys.user(caller).map(|user| user.owner()),
        prefix: input.prefix,
        continuation_token,
    }))
}

pub async fn create_bucket(
    s3: &QuarryS3,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let bucket = &req.input.bucket;
    validate_bucket_name(bucket)?;
    let location = req
        .input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .map(|l| l.as_str().to_owned());
    if let Some(location) = location
        && location != s3.config.region
    {
        return Err(s3_error!(
            InvalidLocationConstraint,
            "This server serves region {}; the bucket cannot be created in {location}",
            s3.config.region
        ));
    }
    let object_lock = req.input.object_lock_enabled_for_bucket == Some(true);
    let caller = req.credentials.as_ref().and_then(|c| s3.keys.user(&c.access_key));
    let owner = caller.as_ref().map(|u| u.name.as_str());
    let input = &req.input;
    let object_ownership = match &input.object_ownership {
        Some(asked) => crate::acl::parse_ownership(asked)?,
        None => s3.config.object_ownership,
    };
    let public_access_block = s3.config.block_public_access.then_some(storage_core::PublicAccessBlock::ALL);
    let mut headers = crate::acl::acl_headers!(input, input.acl.as_ref().map(|a| a.as_str()));
    if let Some(write) = input.grant_write.as_deref() {
        headers.grants.push((storage_core::Permission::Write, write));
    }
    let owner_id = owner.map_or("quarry".to_owned(), |name| crate::auth::owner_named(name).id.unwrap_or_default());
    let acl = headers.resolve(&owner_id, &owner_id)?;
    let beyond_owner = |grants: &Vec<storage_core::Grant>| crate::acl::beyond_owner(grants, &owner_id);
    // A name taken is answered as such first (below); the new bucket's rules apply to
    // new buckets only.
    let exists = s3.engine.bucket(bucket).map_err(engine_error)?.is_some();
    if !exists
        && object_ownership == storage_core::ObjectOwnership::BucketOwnerEnforced
        && acl.as_ref().is_some_and(beyond_owner)
    {
        return Err(s3_error!(
            InvalidBucketAclWithObjectOwnership,
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
        ));
    }
    if !exists
        && public_access_block.is_some_and(|b| b.block_public_acls)
        && acl.as_deref().is_some_and(crate::acl::is_public)
    {
        // S3's code for it; s3s has no constant.
        let mut error = s3s::S3Error::with_message(
            s3s::S3ErrorCode::Custom("InvalidBucketAclWithBlockPublicAccessError".into()),
            "Bucket cannot have public ACLs set with BlockPublicAccess enabled",
        );
        error.set_status_code(http::StatusCode::BAD_REQUEST);
        return Err(error);
    }
    let asks_acl = acl.as_ref().is_some_and(beyond_owner);
    // A bucket without ownership controls behaves as ObjectWriter: one that asks for
    // nothing under an ObjectWriter default gets no controls (as S3's buckets made
    // before the setting, and RGW's).
    let object_ownership = match (&input.object_ownership, object_ownership) {
        (None, storage_core::ObjectOwnership::ObjectWriter) => None,
        (_, ownership) => Some(ownership),
    };
    let new = storage_core::NewBucket {
        object_lock,
        owner: owner.map(str::to_owned),
        public_access_block,
        object_ownership,
        acl,
    };
    match s3.engine.create_bucket_with(bucket, now_ms(), new).await {
        Ok(()) => {}
        Err(storage_core::Error::Rejected(storage_core::Rejection::BucketAlreadyExists)) => {
            let existing = s3.engine.bucket(bucket).map_err(engine_error)?;
            // Buckets made before buckets had owners are the admins'.
            let owned = match existing.as_ref().and_then(|e| e.owner.as_deref()) {
                Some(existing_owner) => Some(existing_owner) == owner,
                None => caller.as_ref().is_some_and(crate::auth::User::is_admin),
            };
            // Re-creating one's own bucket changes nothing; one whose ACL is not the
            // owner's alone, or a request naming such an ACL, is refused as S3 does.
            let public = existing.as_ref().and_then(|e| e.acl.as_ref()).is_some_and(beyond_owner);
            if !owned || asks_acl || public {
                return Err(s3_error!(
                    BucketAlreadyExists,
                    "The requested bucket name is not available. Select a different name and try again."
                ));
            }
            // S3 answers a create of a bucket the caller owns with 200 in us-east-1
            // (changing nothing), with 409 BucketAlreadyOwnedByYou elsewhere.
            if s3.config.region != US_EAST_1 {
                return Err(s3_error!(
                    BucketAlreadyOwnedByYou,
                    "Your previous request to create the named bucket succeeded and you already own it."
                ));
            }
        }
        Err(e) => return Err(engine_error(e)),
    }
    Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{bucket}")) }))
}

pub async fn head_bucket(s3: &QuarryS3, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
    if req.input.bucket != crate::CATALOG_BUCKET {
        s3.require_bucket(&req.input.bucket)?;
    }
    Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(s3.config.region.clone()), ..Default::default() }))
}

pub async fn delete_bucket(
    s3: &QuarryS3,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    if req.input.bucket == crate::CATALOG_BUCKET {
        return Err(crate::catalog::read_only());
    }
    s3.engine.delete_bucket(&req.input.bucket).await.map_err(engine_error)?;
    Ok(S3Response::new(DeleteBucketOutput::default()))
}

pub async fn get_bucket_location(
    s3: &QuarryS3,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    s3.require_bucket(&req.input.bucket)?;
    // S3 answers an empty LocationConstraint for us-east-1.
    let location_constraint =
        (s3.config.region != US_EAST_1).then(|| BucketLocationConstraint::from(s3.config.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
}

/// A bucket never versioned answers an empty configuration (no Status), as S3 does.
pub async fn get_bucket_versioning(
    s3: &QuarryS3,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let bucket = s3.require_bucket(&req.input.bucket)?;
    let status = bucket.versioning.map(|status| {
        BucketVersioningStatus::from_static(match status {
            VersioningStatus::Enabled => BucketVersioningStatus::ENABLED,
            VersioningStatus::Suspended => BucketVersioningStatus::SUSPENDED,
        })
    });
    Ok(S3Response::new(GetBucketVersioningOutput { mfa_delete: None, status }))
}

/// PutBucketVersioning: Enabled or Suspended. MFA delete is not offered: asking for it
/// is refused, as a bucket without an MFA device would be.
pub async fn put_bucket_versioning(
    s3: &QuarryS3,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let input = req.input;
    if input.bucket == crate::CATALOG_BUCKET {
        return Err(crate::catalog::read_only());
    }
    s3.require_bucket(&input.bucket)?;
    let configuration = input.versioning_configuration;
    if configuration.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) || input.mfa.is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "MFA delete is not supported: an MFA device cannot be configured on this server"
        ));
    }
    let status = match configuration.status.as_ref().map(BucketVersioningStatus::as_str) {
        Some(BucketVersioningStatus::ENABLED) => VersioningStatus::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => VersioningStatus::Suspended,
        _ => return Err(s3_error!(MalformedXML, "The versioning Status must be Enabled or Suspended")),
    };
    s3.engine.set_bucket_versioning(&input.bucket, status).await.map_err(engine_error)?;
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

/// The S3 bucket naming rules (general purpose buckets).
pub fn validate_bucket_name(name: &str) -> S3Result<()> {
    let invalid = |why: &str| Err(s3_error!(InvalidBucketName, "The specified bucket is not valid: {why}"));
    if !(3..=63).contains(&name.len()) {
        return invalid("a bucket name must be 3 to 63 characters long");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return invalid("only lowercase letters, digits, dots and hyphens are allowed");
    }
    let first_last = [name.as_bytes()[0], name.as_bytes()[name.len() - 1]];
    if !first_last.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return invalid("a bucket name must begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return invalid("dots may not be adjacent to dots or hyphens");
    }
    if name == crate::ADMIN_BUCKET || name == crate::CATALOG_BUCKET {
        return invalid("the name is reserved by this server");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return invalid("a bucket name must not look like an IP address");
    }
    if ["xn--", "sthree-", "amzn-s3-demo-"].iter().any(|p| name.starts_with(p))
        || ["-s3alias", "--ol-s3", ".mrap", "--x-s3"].iter().any(|s| name.ends_with(s))
    {
        return invalid("the name uses a reserved prefix or suffix");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_bucket_name;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.logs", "a1b2c3", &"a".repeat(63)] {
            assert!(validate_bucket_name(ok).is_ok(), "{ok} should be valid");
        }
        for bad in [
            "ab",
            "ABC",
            "-abc",
            "abc-",
            "a..b",
            "a.-b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(validate_bucket_name(bad).is_err(), "{bad} should be invalid");
        }
    }
}
