//! One DataFusion session per query: bounded memory (no spilling), the caller's buckets
//! as the only `s3://` stores, and SQL limited to reading.

use crate::store::{BucketScope, QuarryStores};
use datafusion::error::Result;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use storage_core::Engine;

/// What one query may use.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Memory for the query's operators (sorts, joins, aggregates); past it the query
    /// fails: nothing spills to disk.
    pub memory_bytes: usize,
    /// Wall-clock time from planning to the last result row.
    pub timeout_ms: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits { memory_bytes: 1024 * 1024 * 1024, timeout_ms: 5 * 60 * 1000 }
    }
}

/// Queries only read: no DDL (which could name local files), no DML, no SET.
pub fn read_only() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

/// A fresh session for one query. `scanned_bytes`, when given, counts the object bytes
/// the query reads. `in_object_order` runs the query on one partition, so rows come out
/// in the order they are stored (S3 Select's promise; SQL without ORDER BY has none).
pub fn new_context(
    engine: &Engine,
    scope: BucketScope,
    limits: &QueryLimits,
    scanned_bytes: Option<Arc<AtomicU64>>,
    in_object_order: bool,
) -> Result<SessionContext> {
    assert!(limits.memory_bytes > 0 && limits.timeout_ms > 0, "query limits are positive");
    let stores = QuarryStores::new(engine.clone(), scope, scanned_bytes);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limits.memory_bytes, 1.0)
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
        .with_object_store_registry(Arc::new(stores))
        .build_arc()?;
    let mut config = SessionConfig::new().with_information_schema(true);
    if in_object_order {
        config = config.with_target_partitions(1);
    }
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// Characters kept as they are in an `s3://bucket/key` URL; the rest is percent-encoded
/// (the key is not a URL path: `?`, `#` and `%` are ordinary characters in it).
const URL_KEY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The URL DataFusion reads an object, or a prefix of objects, by.
pub fn object_url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{}", utf8_percent_encode(key, URL_KEY))
}
