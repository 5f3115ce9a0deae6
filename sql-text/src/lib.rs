//! Client SQL text, checked and rewritten before DataFusion sees it. No DataFusion here:
//! only sqlparser (the version DataFusion parses with), so every step from bytes on the
//! wire to an accepted statement can be fuzzed on its own (`fuzz/`).
//!
//! * [`shape`]: bounds on size, nesting and expression depth, for both doors;
//! * [`dialect`]: the S3 Select dialect (`FROM S3Object[*].path s`, `IS MISSING`, `_1`),
//!   rewritten into DataFusion SQL; [`json_path`] applies its FROM path to JSON records;
//! * [`sources`]: the SQL endpoint's query: one statement, table functions over buckets
//!   the caller may read.

pub mod dialect;
pub mod json_path;
pub mod shape;
pub mod sources;

use std::collections::BTreeSet;
use std::sync::Arc;

/// Who decides, key by key, what a caller may list and read in a bucket (the server's
/// access decision: bucket policies, ACLs).
pub trait KeyAccess: Send + Sync {
    /// May the caller see `key` in a listing (a ListObjects with that prefix)?
    fn may_list(&self, bucket: &str, key: &str) -> bool;
    /// May the caller read the object?
    fn may_read(&self, bucket: &str, key: &str) -> bool;
}

/// The buckets a caller may read.
#[derive(Clone)]
pub enum BucketScope {
    All,
    /// These buckets, whole.
    Only(BTreeSet<String>),
    /// The buckets it may list whole, those it may list only key by key (their policy
    /// may treat keys differently), and who decides each key and each object read.
    Checked {
        whole: BTreeSet<String>,
        by_key: BTreeSet<String>,
        access: Arc<dyn KeyAccess>,
    },
}

impl std::fmt::Debug for BucketScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BucketScope::All => f.write_str("All"),
            BucketScope::Only(buckets) => f.debug_tuple("Only").field(buckets).finish(),
            BucketScope::Checked { whole, by_key, .. } => {
                f.debug_struct("Checked").field("whole", whole).field("by_key", by_key).finish_non_exhaustive()
            }
        }
    }
}

impl BucketScope {
    pub fn allows(&self, bucket: &str) -> bool {
        match self {
            BucketScope::All => true,
            BucketScope::Only(buckets) => buckets.contains(bucket),
            BucketScope::Checked { whole, by_key, .. } => whole.contains(bucket) || by_key.contains(bucket),
        }
    }

    /// Who decides each object read, and whether each key listed, in `bucket`.
    pub fn key_access(&self, bucket: &str) -> Option<(Arc<dyn KeyAccess>, bool)> {
        match self {
            BucketScope::Checked { by_key, access, .. } => Some((access.clone(), by_key.contains(bucket))),
            _ => None,
        }
    }
}

/// An S3 Select failure, with its S3 error code (`ParseUnexpectedToken`, `CSVParsingError`, ...).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SelectError {
    pub code: &'static str,
    pub message: String,
}

impl SelectError {
    pub fn new(code: &'static str, message: impl Into<String>) -> SelectError {
        SelectError { code, message: message.into() }
    }

    /// Whether the client is at fault (400) rather than the server (500).
    pub fn is_client_error(&self) -> bool {
        self.code != "InternalError"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryErrorKind {
    /// The SQL does not parse or plan (unknown table or column, wrong types...).
    InvalidQuery,
    AccessDenied,
    /// The query ran past `QueryLimits::timeout_ms`.
    Timeout,
    /// The query needed more than `QueryLimits::memory_bytes`.
    MemoryLimit,
    Internal,
}

/// A failed SQL endpoint query.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub kind: QueryErrorKind,
    pub message: String,
}

impl QueryError {
    pub fn new(kind: QueryErrorKind, message: impl Into<String>) -> QueryError {
        QueryError { kind, message: message.into() }
    }
}
