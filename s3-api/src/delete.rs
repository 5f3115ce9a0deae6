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
    crate::version::require_null_version(req.input.version_id.as_deref())?;
    s3.engine.delete_object_by(&req.input.bucket, &req.input.key, Some(origin)).await.map_err(engine_error)?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
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
        let deleted_one = match crate::version::require_null_version(object.version_id.as_deref()) {
            Ok(()) => {
                s3.engine.delete_object_by(&input.bucket, &object.key, Some(origin.clone())).await.map_err(engine_error)
            }
            Err(e) => Err(e),
        };
        match deleted_one {
            Ok(()) if quiet => {}
            Ok(()) => deleted.push(DeletedObject { key: Some(object.key), ..Default::default() }),
            Err(e) => {
                errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(object.key),
                    message: e.message().map(str::to_owned),
                    version_id: None,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
}
