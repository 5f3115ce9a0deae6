//! Closed-loop load: `concurrency` tasks, each sending its next request when the last one
//! is answered, until the time is up or the operations run out.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What one workload did on one server.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub ops: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// One per operation, sorted.
    pub latencies_us: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Outcome {
    pub fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    pub fn mib_per_second(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&self, percentile: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((self.latencies_us.len() - 1) as f64 * percentile / 100.0).round() as usize;
        self.latencies_us[rank] as f64 / 1000.0
    }
}

/// Runs `operation(n)` for n = 0, 1, 2, ... on `concurrency` tasks, for `duration` or
/// until n reaches `max_ops`. An operation returns the bytes it moved.
pub async fn run<F, Fut>(concurrency: usize, duration: Duration, max_ops: Option<u64>, operation: F) -> Outcome
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<u64, String>> + Send,
{
    assert!(concurrency > 0, "at least one task");
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let next = next.clone();
        let operation = operation.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            while Instant::now() < until {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if max_ops.is_some_and(|max| n >= max) {
                    break;
                }
                let sent = Instant::now();
                match operation(n).await {
                    Ok(bytes) => {
                        outcome.ops += 1;
                        outcome.bytes += bytes;
                        outcome.latencies_us.push(sent.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        outcome.errors += 1;
                        outcome.first_error.get_or_insert(e);
                    }
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        let outcome = task.await.expect("a load task panicked");
        total.ops += outcome.ops;
        total.bytes += outcome.bytes;
        total.errors += outcome.errors;
        total.latencies_us.extend(outcome.latencies_us);
        if total.first_error.is_none() {
            total.first_error = outcome.first_error;
        }
    }
    total.elapsed = started.elapsed();
    total.latencies_us.sort_unstable();
    total
}
