//! Engine errors. `Rejected` is a logical refusal decided while applying a record
//! (nothing was written); everything else is a failure of the machinery.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Rejected(Rejection),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("index error: {0}")]
    Index(#[from] fjall::Error),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Locked(String),
    #[error("the storage engine has shut down")]
    Closed,
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The body is encrypted and the reader has no key for it (or the wrong one).
    #[error("{0}")]
    Encrypted(String),
}

impl Error {
    /// True when the failure is the disk being full (ENOSPC / EDQUOT).
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::Io(e) if matches!(e.raw_os_error(), Some(28) | Some(122)))
    }
}

/// Why a record was refused when applied. Decided by the writer in log order, so the
/// decision is free of races and the same on replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the bucket does not exist")]
    NoSuchBucket,
    #[error("the bucket already exists")]
    BucketAlreadyExists,
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    #[error("the multipart upload does not exist")]
    NoSuchUpload,
    #[error("a precondition of the write did not hold")]
    PreconditionFailed,
    /// Object lock: the version is under retention or legal hold.
    #[error("the object version is protected by object lock")]
    ObjectLocked,
    /// The bucket's state does not allow it (object lock on a bucket without it,
    /// suspending versioning of a bucket with object lock).
    #[error("the bucket's state does not allow this request")]
    InvalidBucketState,
    /// A write conditional on the current object (If-Match) found none.
    #[error("the key has no current object")]
    NoSuchKey,
    #[error("the stored pieces this write refers to are gone (retry the request)")]
    MissingChunks,
    /// A user or access key of that name exists already.
    #[error("a user or access key of that name exists already")]
    EntityAlreadyExists,
    #[error("no such user or access key")]
    NoSuchEntity,
    /// A user that still has access keys or owns buckets is not deleted.
    #[error("the user still has access keys or owns buckets")]
    DeleteConflict,
    /// A user has as many access keys as it may.
    #[error("the user has as many access keys as it may")]
    LimitExceeded,
}
