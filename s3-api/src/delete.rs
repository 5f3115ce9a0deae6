//! DeleteObject and DeleteObjects: a tombstone per deleted key.

use crate::QuarryS3;
use crate::error::engine_error;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// S3 accepts at most this many keys per DeleteObjects request.
const MAX_KEYS_PER_DELETE: usize = 1000;

pub async fn delete_object(
    s3: &QuarryS3,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let origin = crate::origin(&req);
    let input = req.input;
    let applied = delete_one(s3, &input.bucket, &input.key, input.version_id.as_deref(), origin).await?;
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: applied.delete_marker.then_some(true),
        version_id: crate::version::made(&applied),
        ..Default::default()
    }))
}

/// Deletes a key (a delete marker once the bucket has had versioning) or, given a
/// version id, that version for good.
async fn delete_one(
    s3: &QuarryS3,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    origin: storage_core::Origin,
) -> S3Result<storage_core::Applied> {
    let deleted = match crate::version::requested(version_id)? {
        None => s3.engine.delete_object_by(bucket, key, Some(origin)).await,
        Some(version) => s3.engine.delete_version(bucket, key, version, Some(origin)).await,
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
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for object in objects {
        let version_id = object.version_id.as_deref();
        match delete_one(s3, &input.bucket, &object.key, version_id, origin.clone()).await {
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
