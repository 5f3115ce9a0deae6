//! How many queries (SQL endpoint and S3 Select together) run at once. Each holds a
//! permit from planning until its result is delivered or dropped; a query that finds
//! none free within [`QUEUE_WAIT`] is answered 503 SlowDown. Memory is bounded apart from
//! this: all queries draw from one budget (`quarry_sql::MemoryBudget`,
//! `--query-memory-total-bytes`), each within `--query-memory-bytes`.

use s3s::{S3Result, s3_error};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a query waits for a free slot before it is refused.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct QueryGate {
    permits: Arc<Semaphore>,
}

impl QueryGate {
    pub fn new(max_concurrent: usize) -> QueryGate {
        QueryGate { permits: Arc::new(Semaphore::new(max_concurrent.max(1))) }
    }

    /// A slot for one query, held until the permit is dropped.
    pub async fn admit(&self) -> S3Result<OwnedSemaphorePermit> {
        match tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(s3_error!(SlowDown, "Too many queries are running at once; please retry")),
        }
    }
}
