//! DeleteObject and DeleteObjects: a tombstone per deleted key.

use crate::QuarryS3;
use crate::error::engine_error;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use storage_core::DeleteConditions;

/// S3 accepts at most this many keys per DeleteObjects request.
const MAX_KEYS_PER_DELETE: usize = 1000;

pub async fn delete_object(
    s3: &QuarryS3,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let origin = crate::origin(&req);
    let input = req.input;
    let conditions = conditions(
        input.if_match.as_ref().map(|m| match m {
            ETagCondition::Any => "*".to_owned(),
            ETagCondition::ETag(tag) => tag.value().to_owned(),
        }),
        input.if_match_last_modified_time.as_ref(),
        input.if_match_size,
    )?;
    let version_id = input.version_id.as_deref();
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    let applied = delete_one(s3, &input.bucket, &input.key, version_id, conditions, bypass, origin).await?;
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: applied.delete_marker.then_some(true),
        version_id: crate::version::made(&applied),
        ..Default::default()
    }))
}

/// The conditions of a conditional delete (If-Match, x-amz-if-match-last-modified-time,
/// x-amz-if-match-size; in DeleteObjects an object's ETag, LastModifiedTime and Size).
fn conditions(
    if_match: Option<String>,
    last_modified: Option<&Timestamp>,
    size: Option<i64>,
) -> S3Result<Option<DeleteConditions>> {
    let size_bytes = size
        .map(|size| {
            u64::try_from(size).map_err(|_| s3_error!(InvalidArgument, "x-amz-if-match-size must not be negative"))
        })
        .transpose()?;
    let conditions =
        DeleteConditions { if_match, last_modified_ms: last_modified.map(crate::meta::millis), size_bytes };
    Ok((conditions != DeleteConditions::default()).then_some(conditions))
}

/// Deletes a key (a delete marker once the bucket has had versioning) or, given a
/// version id, that version for good; if `conditions` hold for what it deletes.
async fn delete_one(
    s3: &QuarryS3,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    conditions: Option<DeleteConditions>,
    bypass_governance: bool,
    origin: storage_core::Origin,
) -> S3Result<storage_core::Applied> {
    let deleted = match crate::version::requested(version_id)? {
        None => s3.engine.delete_object_by(bucket, key, conditions, Some(origin)).await,
        Some(version) => {
            s3.engine.delete_version(bucket, key, version, conditions, bypass_governance, Some(origin)).await
        }
    };
    deleted.map_err(engine_error)
}

pub async fn delete_objects(
    s3: &QuarryS3,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let origin = crate::origin(&req);
    let input = req.input;
    s3.require_bucket(&input.bucket)?;
    let objects = input.delete.objects;
    if objects.len() > MAX_KEYS_PER_DELETE {
        return Err(s3_error!(MalformedXML, "A DeleteObjects request may name at most {MAX_KEYS_PER_DELETE} keys"));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for object in objects {
        let version_id = object.version_id.as_deref();
        let outcome = match conditions(
            object.e_tag.as_ref().map(|tag| tag.value().to_owned()),
            object.last_modified_time.as_ref(),
            object.size,
        ) {
            Ok(conditions) => {
                delete_one(s3, &input.bucket, &object.key, version_id, conditions, bypass, origin.clone()).await
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(_) if quiet => {}
            Ok(applied) => deleted.push(DeletedObject {
                key: Some(object.key),
                // A version named is echoed; a delete marker made or removed is named.
                version_id: object.version_id.clone(),
                delete_marker: applied.delete_marker.then_some(true),
                delete_marker_version_id: applied.delete_marker.then(|| crate::version::made(&applied)).flatten(),
            }),
            Err(e) => {
                errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(object.key),
                    message: e.message().map(str::to_owned),
                    version_id: object.version_id,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
}
