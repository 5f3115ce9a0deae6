//! Connection accounting: how many connections are open and which are idle, so the
//! server can cap them (closing the oldest idle one when a new client arrives at the
//! cap) and close connections that stay idle too long.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// File descriptors kept for everything but client connections (log segments, the
/// catalog, the index): at most half the limit, at most this many.
const FDS_RESERVED_MAX: u64 = 256;

/// The connection cap under a file-descriptor limit of `open_files`: what is left after
/// the reserve, and never more than `configured`.
pub fn connection_cap(configured: usize, open_files: u64) -> usize {
    let reserve = (open_files / 2).min(FDS_RESERVED_MAX);
    let available = usize::try_from(open_files.saturating_sub(reserve)).unwrap_or(usize::MAX);
    configured.min(available).max(1)
}

/// RLIMIT_NOFILE: raises the soft limit to the hard one (as servers usually do) and
/// returns the soft limit now in force.
// rlim_t is u64 on Linux but not on every platform.
#[allow(clippy::unnecessary_cast)]
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return u64::MAX;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur as u64
}

pub struct Connections {
    max: usize,
    epoch: Instant,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
}

/// One open connection, shared by its task and its requests.
pub struct Connection {
    id: u64,
    epoch: Instant,
    in_flight: AtomicUsize,
    /// When the last request finished (or the connection opened), in ms since `epoch`.
    idle_since_ms: AtomicU64,
    /// Set once the connection was picked to be shed.
    shedding: AtomicBool,
    /// Close now (shed at the cap).
    pub close: Notify,
    /// A request started or finished: the idle deadline moved.
    pub activity: Notify,
}

impl Connections {
    pub fn new(max: usize) -> Connections {
        Connections { max, epoch: Instant::now(), open: Mutex::new(HashMap::new()), next_id: AtomicU64::new(0) }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn count(&self) -> usize {
        self.open.lock().expect("connections lock").len()
    }

    /// Registers a new connection. At the cap the oldest idle connection is told to
    /// close to make room; if none is idle the new one is refused (None).
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut open = self.open.lock().expect("connections lock");
        let shedding = open.values().filter(|c| c.shedding.load(Ordering::Relaxed)).count();
        if open.len() - shedding >= self.max {
            let oldest = open
                .values()
                .filter(|c| c.in_flight.load(Ordering::Acquire) == 0 && !c.shedding.load(Ordering::Relaxed))
                .min_by_key(|c| c.idle_since_ms.load(Ordering::Relaxed))?;
            oldest.shedding.store(true, Ordering::Relaxed);
            oldest.close.notify_one();
            tracing::debug!(connections = open.len(), "connection cap reached: closing the oldest idle connection");
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            id,
            epoch: self.epoch,
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(elapsed_ms(self.epoch)),
            shedding: AtomicBool::new(false),
            close: Notify::new(),
            activity: Notify::new(),
        });
        open.insert(id, connection.clone());
        Some(Admitted { connections: self.clone(), connection })
    }
}

/// Removes the connection from the registry when its task ends.
pub struct Admitted {
    connections: Arc<Connections>,
    pub connection: Arc<Connection>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections.open.lock().expect("connections lock").remove(&self.connection.id);
    }
}

impl Connection {
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.activity.notify_one();
    }

    pub fn request_finished(&self) {
        self.idle_since_ms.store(elapsed_ms(self.epoch), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.activity.notify_one();
    }

    /// When the connection, idle now, has been idle for `timeout`; None while a request runs.
    pub fn idle_deadline(&self, timeout: Duration) -> Option<tokio::time::Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let idle_since = self.epoch + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        Some(tokio::time::Instant::from_std(idle_since + timeout))
    }
}

fn elapsed_ms(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_leaves_a_reserve_of_descriptors() {
        assert_eq!(connection_cap(4096, 1024), 768);
        assert_eq!(connection_cap(4096, 256), 128);
        assert_eq!(connection_cap(100, 1_000_000), 100);
        assert_eq!(connection_cap(4096, 1), 1);
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_is_shed() {
        let connections = Arc::new(Connections::new(2));
        let first = connections.admit().expect("first");
        let second = connections.admit().expect("second");
        first.connection.request_started();
        // `first` is busy: `second` is shed for the third.
        let third = connections.admit().expect("third, shedding an idle one");
        assert!(second.connection.shedding.load(Ordering::Relaxed));
        assert!(!first.connection.shedding.load(Ordering::Relaxed));
        // Nothing idle left (third is idle but the cap counts it; first is busy).
        third.connection.request_started();
        assert!(connections.admit().is_none(), "a fourth with every connection busy");
        drop(second);
        assert_eq!(connections.count(), 2);
    }
}
