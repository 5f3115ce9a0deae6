//! One DataFusion session per query: bounded memory (its share of one server-wide budget,
//! no spilling), the caller's buckets
//! as the only `s3://` stores, and SQL limited to reading.

use crate::store::{BucketScope, QuarryStores};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryLimit, MemoryPool, MemoryReservation};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use storage_core::Engine;

/// What one query may use.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Memory for the query's operators (sorts, joins, aggregates); past it the query
    /// fails: nothing spills to disk.
    pub memory_bytes: usize,
    /// Wall-clock time from planning to the last result row.
    pub timeout_ms: u64,
    /// The memory all queries of the server share (each also within its `memory_bytes`).
    pub budget: MemoryBudget,
    /// Bytes a GZIP or BZIP2 object may inflate to in one S3 Select.
    pub max_decompressed_bytes: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            memory_bytes: 1024 * 1024 * 1024,
            timeout_ms: 5 * 60 * 1000,
            budget: MemoryBudget::new(DEFAULT_TOTAL_MEMORY_BYTES),
            max_decompressed_bytes: 64 * 1024 * 1024 * 1024,
        }
    }
}

/// What all queries may use together unless configured (`--query-memory-total-bytes`).
pub const DEFAULT_TOTAL_MEMORY_BYTES: usize = 2 * 1024 * 1024 * 1024;

/// The server-wide memory budget all queries draw from: one pool, shared by every query's
/// own pool ([`QueryPool`]).
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    pool: Arc<GreedyMemoryPool>,
    bytes: usize,
}

impl MemoryBudget {
    pub fn new(bytes: usize) -> MemoryBudget {
        MemoryBudget { pool: Arc::new(GreedyMemoryPool::new(bytes)), bytes }
    }

    /// Its size.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// What queries hold of it now.
    pub fn reserved(&self) -> usize {
        self.pool.reserved()
    }
}

/// One query's memory pool: a reservation must fit both the query's own share and what
/// the server-wide budget has left. The budget is taken first and given back when the
/// share refuses, so both counters always agree.
#[derive(Debug)]
struct QueryPool {
    budget: MemoryBudget,
    share: usize,
    used: AtomicUsize,
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueryPool(share {} of {} bytes)", self.share, self.budget.bytes)
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "QueryPool"
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.budget.pool.grow(reservation, additional);
        self.used.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.budget.pool.shrink(reservation, shrink);
        self.used.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let share = self.share;
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(additional).filter(|&total| total <= share)
            })
            .map_err(|used| {
                DataFusionError::ResourcesExhausted(format!(
                    "{} wanted {additional} more bytes; the query holds {used} of its {share}",
                    reservation.consumer().name()
                ))
            })?;
        if self.budget.pool.try_grow(reservation, additional).is_err() {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{} wanted {additional} more bytes; the server-wide query memory budget of {} bytes is in use \
                 ({} reserved by all queries)",
                reservation.consumer().name(),
                self.budget.bytes,
                self.budget.reserved()
            )));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.share)
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
    object_keys: Option<Arc<crate::store::ObjectKeys>>,
) -> Result<SessionContext> {
    assert!(limits.memory_bytes > 0 && limits.timeout_ms > 0, "query limits are positive");
    let stores = QuarryStores::new(engine.clone(), scope, scanned_bytes, object_keys);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(QueryPool {
            budget: limits.budget.clone(),
            share: limits.memory_bytes,
            used: AtomicUsize::new(0),
        }))
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
        .with_object_store_registry(Arc::new(stores))
        .build_arc()?;
    let mut config = SessionConfig::new().with_information_schema(true);
    if in_object_order {
        config = config.with_target_partitions(1);
    }
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    crate::bounded_functions::register(&ctx, limits);
    Ok(ctx)
}

/// Characters kept as they are in an `s3://bucket/key` URL; the rest is percent-encoded
/// (the key is not a URL path: `?`, `#` and `%` are ordinary characters in it).
const URL_KEY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The URL DataFusion reads an object, or a prefix of objects, by.
pub fn object_url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{}", utf8_percent_encode(key, URL_KEY))
}
