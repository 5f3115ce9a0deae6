//! Version ids on requests. No bucket is versioned yet, so every object is its own
//! `null` version: a request naming `null` acts on it, and any other id is one this
//! server never issued. S3 answers such an id with 400 InvalidArgument; acting on the
//! current object instead would serve or delete the wrong thing.

use s3s::{S3Result, s3_error};

/// The id of the version an object gets while its bucket was never versioned.
pub const NULL_VERSION_ID: &str = "null";

/// Accepts no version id or `null`; refuses any other.
pub fn require_null_version(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        None | Some(NULL_VERSION_ID) => Ok(()),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid version id specified")),
    }
}
