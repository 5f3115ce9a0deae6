//! Engine errors as S3 errors.

use s3s::{S3Error, S3ErrorCode, s3_error};
use storage_core::{Error, Rejection};

pub fn engine_error(error: Error) -> S3Error {
    match error {
        Error::Rejected(Rejection::NoSuchBucket) => {
            s3_error!(NoSuchBucket, "The specified bucket does not exist")
        }
        Error::Rejected(Rejection::BucketAlreadyExists) => s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
        ),
        Error::Rejected(Rejection::BucketNotEmpty) => {
            s3_error!(BucketNotEmpty, "The bucket you tried to delete is not empty")
        }
        Error::Rejected(Rejection::NoSuchUpload) => s3_error!(
            NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID might be invalid, or the upload might have been aborted or completed."
        ),
        Error::Rejected(Rejection::PreconditionFailed) => {
            s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold")
        }
        Error::Rejected(Rejection::ObjectLocked) => {
            s3_error!(AccessDenied, "Access Denied because object protected by object lock.")
        }
        Error::Rejected(Rejection::InvalidBucketState) => {
            s3_error!(InvalidBucketState, "The request is not valid for the current state of the bucket.")
        }
        Error::Rejected(Rejection::NoSuchKey) => s3_error!(NoSuchKey, "The specified key does not exist."),
        Error::Rejected(Rejection::MissingChunks) => s3_error!(
            OperationAborted,
            "The data this request refers to was reclaimed while the request ran. Please try again."
        ),
        e if e.is_no_space() => insufficient_storage(),
        Error::Corrupt(what) => {
            tracing::error!("refusing to serve damaged data: {what}");
            s3_error!(InternalError, "The stored data failed its integrity check; it is not served.")
        }
        Error::Closed => s3_error!(ServiceUnavailable, "The server is shutting down"),
        other => {
            tracing::error!("internal error: {other}");
            s3_error!(InternalError, "{other}")
        }
    }
}

/// 507: the data disk is full. Reads and deletes still work.
pub fn insufficient_storage() -> S3Error {
    custom(
        "InsufficientStorage",
        http::StatusCode::INSUFFICIENT_STORAGE,
        "The server's data disk is full; writes are refused until space is freed.",
    )
}

/// An S3 error code that s3s does not list.
pub fn custom(code: &str, status: http::StatusCode, message: impl Into<std::borrow::Cow<'static, str>>) -> S3Error {
    let code: S3ErrorCode = code.parse().expect("any code parses");
    let mut error = S3Error::with_message(code, message);
    error.set_status_code(status);
    error
}
