//! Version ids on requests and responses. An id is `null` or one Quarry issued
//! (`storage_core::VersionId`); any other string is one this server never issued, which
//! S3 answers with 400 InvalidArgument.

use crate::QuarryS3;
use crate::error::engine_error;
use s3s::{S3Result, s3_error};
use storage_core::{ObjectEntry, VersionId};

/// The version a request names, if it names one.
pub fn requested(version_id: Option<&str>) -> S3Result<Option<VersionId>> {
    version_id
        .map(|text| VersionId::parse(text).ok_or_else(|| s3_error!(InvalidArgument, "Invalid version id specified")))
        .transpose()
}

/// What `x-amz-version-id` says of `entry`: its id once its bucket has had versioning;
/// nothing in a bucket never versioned (S3 names no version there).
pub fn header(s3: &QuarryS3, bucket: &str, entry: &ObjectEntry) -> S3Result<Option<String>> {
    if entry.versioned {
        return Ok(Some(entry.version_id().to_string()));
    }
    let versioning = s3.engine.bucket(bucket).map_err(engine_error)?.and_then(|b| b.versioning);
    Ok(versioning.map(|_| VersionId::Null.to_string()))
}

/// `x-amz-version-id` of a PUT, copy or CompleteMultipartUpload: the new version's id
/// while versioning is enabled; none for the null version a bucket never versioned or
/// suspended makes (S3 names no version there).
pub fn of_write(entry: &ObjectEntry) -> Option<String> {
    entry.versioned.then(|| entry.version_id().to_string())
}

/// `x-amz-version-id` of a delete, from what the engine says it made or removed.
pub fn made(applied: &storage_core::Applied) -> Option<String> {
    applied.version.map(|v| v.to_string())
}
