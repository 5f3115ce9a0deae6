//! Running out of disk without losing the ability to delete.
//!
//! The engine keeps a reserve file of zeros in the data directory. The first time a
//! write fails because the disk is full, the reserve is released and the engine
//! enters "disk full" mode: anything that adds data is refused at once, while deletes
//! (whose records and index updates need a little room) go through. Once the file
//! system has room again the reserve is re-created and writes are accepted again.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often, at most, disk-full mode looks for free space again.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

pub struct SpaceGuard {
    reserve_path: PathBuf,
    reserve_bytes: u64,
    full: AtomicBool,
    last_check: std::sync::Mutex<Instant>,
}

impl SpaceGuard {
    /// Creates the reserve (if `reserve_bytes` > 0). A failure to create it at start is
    /// not fatal: the engine then runs without a reserve.
    pub fn new(reserve_path: PathBuf, reserve_bytes: u64) -> SpaceGuard {
        let guard = SpaceGuard {
            reserve_path,
            reserve_bytes,
            full: AtomicBool::new(false),
            last_check: std::sync::Mutex::new(Instant::now()),
        };
        if let Err(e) = guard.create_reserve() {
            tracing::warn!("could not create the disk reserve ({e}); starting in disk-full mode");
            let _ = std::fs::remove_file(&guard.reserve_path);
            guard.full.store(true, Ordering::SeqCst);
        }
        guard
    }

    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    fn create_reserve(&self) -> std::io::Result<()> {
        if self.reserve_bytes == 0 {
            return Ok(());
        }
        if std::fs::metadata(&self.reserve_path).is_ok_and(|m| m.len() == self.reserve_bytes) {
            return Ok(());
        }
        let mut file = OpenOptions::new().create(true).truncate(true).write(true).open(&self.reserve_path)?;
        // Real zeros, not a sparse file: the blocks must actually be taken.
        let block = vec![0u8; 1 << 20];
        let mut left = self.reserve_bytes;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            file.write_all(&block[..n])?;
            left -= n as u64;
        }
        file.sync_all()
    }

    /// Called when a write failed with ENOSPC: release the reserve, enter disk-full mode.
    pub fn on_no_space(&self) {
        if !self.full.swap(true, Ordering::SeqCst) {
            tracing::error!(
                "the data disk is full: writes are refused, reads and deletes go on; releasing the {} byte reserve",
                self.reserve_bytes
            );
            let _ = std::fs::remove_file(&self.reserve_path);
            *self.last_check.lock().unwrap() = Instant::now();
        }
    }

    /// In disk-full mode, at most once per `RECHECK_EVERY`: if the file system has room
    /// for the reserve twice over, re-create it and leave disk-full mode.
    pub fn recheck(&self) {
        if !self.is_full() {
            return;
        }
        {
            let mut last = self.last_check.lock().unwrap();
            if last.elapsed() < RECHECK_EVERY {
                return;
            }
            *last = Instant::now();
        }
        let dir = self.reserve_path.parent().unwrap_or(std::path::Path::new("."));
        let available = match rustix::fs::statvfs(dir) {
            Ok(s) => s.f_bavail.saturating_mul(s.f_frsize),
            Err(_) => return,
        };
        let needed = self.reserve_bytes.saturating_mul(2).max(1 << 20);
        if available < needed {
            return;
        }
        match self.create_reserve() {
            Ok(()) => {
                self.full.store(false, Ordering::SeqCst);
                tracing::info!("the data disk has room again ({available} bytes free): accepting writes");
            }
            Err(e) => {
                let _ = std::fs::remove_file(&self.reserve_path);
                tracing::warn!("still no room for the disk reserve: {e}");
            }
        }
    }
}
