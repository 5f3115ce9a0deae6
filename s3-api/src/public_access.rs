//! Put/Get/DeletePublicAccessBlock: a bucket's Block Public Access settings. New
//! buckets start with all four on unless the server is started with
//! `--block-public-access false`. What they block is decided where the public access
//! would be granted: PutBucketPolicy (BlockPublicPolicy) and `access.rs`
//! (RestrictPublicBuckets); ACLs are private-only, so the ACL settings have nothing
//! more to block.

use crate::QuarryS3;
use crate::error::engine_error;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use storage_core::PublicAccessBlock;

fn no_configuration() -> s3s::S3Error {
    let mut error = s3s::S3Error::with_message(
        s3s::S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
        "The public access block configuration was not found",
    );
    error.set_status_code(http::StatusCode::NOT_FOUND);
    error
}

pub async fn put_public_access_block(
    s3: &QuarryS3,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let input = req.input;
    s3.require_bucket(&input.bucket)?;
    let c = input.public_access_block_configuration;
    if c.block_public_acls.is_none()
        && c.ignore_public_acls.is_none()
        && c.block_public_policy.is_none()
        && c.restrict_public_buckets.is_none()
    {
        return Err(s3_error!(InvalidRequest, "Must specify at least one configuration."));
    }
    // An absent setting is off, as on S3.
    let config = PublicAccessBlock {
        block_public_acls: c.block_public_acls == Some(true),
        ignore_public_acls: c.ignore_public_acls == Some(true),
        block_public_policy: c.block_public_policy == Some(true),
        restrict_public_buckets: c.restrict_public_buckets == Some(true),
    };
    s3.engine.set_public_access_block(&input.bucket, Some(config)).await.map_err(engine_error)?;
    Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
}

pub async fn get_public_access_block(
    s3: &QuarryS3,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let bucket = s3.require_bucket(&req.input.bucket)?;
    let config = bucket.public_access_block.ok_or_else(no_configuration)?;
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(config.block_public_acls),
            ignore_public_acls: Some(config.ignore_public_acls),
            block_public_policy: Some(config.block_public_policy),
            restrict_public_buckets: Some(config.restrict_public_buckets),
        }),
    }))
}

pub async fn delete_public_access_block(
    s3: &QuarryS3,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    let bucket = s3.require_bucket(&req.input.bucket)?;
    if bucket.public_access_block.is_some() {
        s3.engine.set_public_access_block(&req.input.bucket, None).await.map_err(engine_error)?;
    }
    Ok(S3Response::new(DeletePublicAccessBlockOutput::default()))
}
