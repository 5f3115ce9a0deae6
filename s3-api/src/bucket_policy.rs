//! Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus. A policy is checked in full
//! before it is written (MalformedPolicy otherwise), kept in the log as the client sent
//! it, and enforced by `access.rs`.

use crate::QuarryS3;
use crate::error::engine_error;
use crate::policy::Policy;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

pub async fn put_bucket_policy(
    s3: &QuarryS3,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let input = req.input;
    let bucket = s3.require_bucket(&input.bucket)?;
    let policy = Policy::parse(&input.policy, &input.bucket).map_err(|e| s3_error!(MalformedPolicy, "{e}"))?;
    if bucket.public_access_block.is_some_and(|b| b.block_public_policy) && policy.is_public() {
        return Err(s3_error!(AccessDenied, "Block Public Access (BlockPublicPolicy) forbids a public policy"));
    }
    s3.engine.set_bucket_policy(&input.bucket, Some(input.policy)).await.map_err(engine_error)?;
    Ok(S3Response::new(PutBucketPolicyOutput::default()))
}

/// A bucket without a policy answers 404 NoSuchBucketPolicy, as S3 does.
pub async fn get_bucket_policy(
    s3: &QuarryS3,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let bucket = s3.require_bucket(&req.input.bucket)?;
    match bucket.policy {
        Some(policy) => Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy) })),
        None => Err(s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist")),
    }
}

pub async fn delete_bucket_policy(
    s3: &QuarryS3,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let bucket = s3.require_bucket(&req.input.bucket)?;
    if bucket.policy.is_some() {
        s3.engine.set_bucket_policy(&req.input.bucket, None).await.map_err(engine_error)?;
    }
    Ok(S3Response::new(DeleteBucketPolicyOutput::default()))
}

pub async fn get_bucket_policy_status(
    s3: &QuarryS3,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let bucket = s3.require_bucket(&req.input.bucket)?;
    let Some(text) = bucket.policy else {
        return Err(s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"));
    };
    let policy = Policy::parse(&text, &req.input.bucket).map_err(|e| s3_error!(InternalError, "{e}"))?;
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus { is_public: Some(policy.is_public()) }),
    }))
}
