//! The file layer under the log: a directory of named files with positioned reads and
//! writes. The server uses real files ([`FsDir`]); tests use [`SimDir`], which keeps
//! what was synced apart from what was only written, so a simulated crash can drop
//! unsynced writes and tear the last one — the failures that real power loss causes.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub trait SegmentDir: Send + Sync + 'static {
    /// Names of the files in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Opens an existing file (`create: false`) or creates a new one, failing if it
    /// exists (`create: true`).
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn SegmentFile>>;
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations, renames and removals durable.
    fn sync_dir(&self) -> io::Result<()>;
}

pub trait SegmentFile: Send + Sync {
    fn len_bytes(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`; `UnexpectedEof` if the file is shorter.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// fdatasync: everything written so far survives a crash.
    fn sync(&self) -> io::Result<()>;
}

/// Real files in a real directory.
pub struct FsDir {
    path: PathBuf,
}

impl FsDir {
    pub fn new(path: PathBuf) -> io::Result<FsDir> {
        std::fs::create_dir_all(&path)?;
        Ok(FsDir { path })
    }
}

impl SegmentDir for FsDir {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn SegmentFile>> {
        let path = self.path.join(name);
        let file = if create {
            OpenOptions::new().read(true).write(true).create_new(true).open(path)?
        } else {
            OpenOptions::new().read(true).write(true).open(path)?
        };
        Ok(Arc::new(FsFile(file)))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path.join(from), self.path.join(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path.join(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.path)?.sync_all()
    }
}

struct FsFile(File);

impl SegmentFile for FsFile {
    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.0, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.0, buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

/// An in-memory directory that models what survives a crash.
///
/// Each file has its current contents and its durable contents (as of its last sync).
/// A file created or renamed is durable only after `sync_dir`. [`SimDir::crash`]
/// replaces every file by what a crash would leave: the durable contents, plus — if
/// asked — a torn prefix of the bytes written after the last sync.
#[derive(Clone, Default)]
pub struct SimDir {
    state: Arc<Mutex<SimState>>,
}

#[derive(Default)]
struct SimState {
    files: BTreeMap<String, Arc<Mutex<SimFileData>>>,
    /// The names as of the last sync_dir.
    durable_names: BTreeMap<String, Arc<Mutex<SimFileData>>>,
    /// Operations (writes, syncs, set_len) left before the disk fails; `None`: never.
    ops_before_failure: Option<u64>,
    failed: bool,
}

#[derive(Clone)]
struct SimFileData {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// The lowest offset written or truncated since the last sync.
    dirty_from: usize,
}

impl Default for SimFileData {
    fn default() -> SimFileData {
        SimFileData { current: Vec::new(), durable: Vec::new(), dirty_from: usize::MAX }
    }
}

impl SimFileData {
    fn clean(contents: Vec<u8>) -> SimFileData {
        SimFileData { current: contents.clone(), durable: contents, dirty_from: usize::MAX }
    }
}

struct SimFile {
    data: Arc<Mutex<SimFileData>>,
    dir: SimDir,
}

fn sim_failure() -> io::Error {
    io::Error::other("simulated disk failure")
}

impl SimDir {
    pub fn new() -> SimDir {
        SimDir::default()
    }

    /// Every write, sync or truncation after the next `ops` ones fails (the disk "dies").
    pub fn fail_after(&self, ops: u64) {
        self.state.lock().unwrap().ops_before_failure = Some(ops);
    }

    /// Counts one mutating operation; errors once the disk has failed.
    fn tick(&self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        if state.failed {
            return Err(sim_failure());
        }
        if let Some(left) = state.ops_before_failure.as_mut() {
            if *left == 0 {
                state.failed = true;
                return Err(sim_failure());
            }
            *left -= 1;
        }
        Ok(())
    }

    /// Simulates power loss and reboot. `torn_fraction` (0.0..=1.0) of each file's
    /// unsynced tail survives (a torn write); 0.0 drops every unsynced byte.
    pub fn crash(&self, torn_fraction: f64) {
        let mut state = self.state.lock().unwrap();
        let mut survivors = BTreeMap::new();
        for (name, data) in &state.durable_names {
            let mut d = data.lock().unwrap();
            let mut after = std::mem::take(&mut d.durable);
            // Only appended-after-sync bytes can survive partially; an overwrite of
            // synced bytes is simply lost.
            if d.current.len() > after.len() && d.dirty_from >= after.len() {
                let tail = &d.current[after.len()..];
                let keep = ((tail.len() as f64) * torn_fraction.clamp(0.0, 1.0)) as usize;
                after.extend_from_slice(&tail[..keep]);
            }
            *d = SimFileData::clean(after);
            survivors.insert(name.clone(), data.clone());
        }
        state.files = survivors.clone();
        state.durable_names = survivors;
        state.ops_before_failure = None;
        state.failed = false;
    }

    /// Flips one bit of a file's contents (durable and current): media corruption.
    pub fn corrupt(&self, name: &str, offset: u64) {
        let state = self.state.lock().unwrap();
        let mut d = state.files[name].lock().unwrap();
        let i = offset as usize;
        d.current[i] ^= 0x40;
        if i < d.durable.len() {
            d.durable[i] ^= 0x40;
        }
    }

    /// The current contents of a file (for tests that look at bytes on "disk").
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        let state = self.state.lock().unwrap();
        state.files.get(name).map(|d| d.lock().unwrap().current.clone())
    }
}

impl SegmentDir for SimDir {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.state.lock().unwrap().files.keys().cloned().collect())
    }

    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn SegmentFile>> {
        if create {
            self.tick()?;
        }
        let mut state = self.state.lock().unwrap();
        let data = match (state.files.get(name), create) {
            (Some(_), true) => return Err(io::Error::new(ErrorKind::AlreadyExists, name.to_owned())),
            (Some(data), false) => data.clone(),
            (None, false) => return Err(io::Error::new(ErrorKind::NotFound, name.to_owned())),
            (None, true) => {
                let data = Arc::new(Mutex::new(SimFileData::default()));
                state.files.insert(name.to_owned(), data.clone());
                data
            }
        };
        Ok(Arc::new(SimFile { data, dir: self.clone() }))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.tick()?;
        let mut state = self.state.lock().unwrap();
        let data = state.files.remove(from).ok_or_else(|| io::Error::new(ErrorKind::NotFound, from.to_owned()))?;
        state.files.insert(to.to_owned(), data);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.tick()?;
        let mut state = self.state.lock().unwrap();
        state.files.remove(name).map(|_| ()).ok_or_else(|| io::Error::new(ErrorKind::NotFound, name.to_owned()))
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.tick()?;
        let mut state = self.state.lock().unwrap();
        state.durable_names = state.files.clone();
        Ok(())
    }
}

impl SegmentFile for SimFile {
    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.data.lock().unwrap().current.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let d = self.data.lock().unwrap();
        let start = offset as usize;
        let end = start + buf.len();
        if end > d.current.len() {
            return Err(io::Error::new(ErrorKind::UnexpectedEof, "read past the end"));
        }
        buf.copy_from_slice(&d.current[start..end]);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.dir.tick()?;
        let mut d = self.data.lock().unwrap();
        let start = offset as usize;
        d.dirty_from = d.dirty_from.min(start);
        if d.current.len() < start + buf.len() {
            d.current.resize(start + buf.len(), 0);
        }
        d.current[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.dir.tick()?;
        let mut d = self.data.lock().unwrap();
        d.dirty_from = d.dirty_from.min(len as usize);
        d.current.resize(len as usize, 0);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.dir.tick()?;
        let mut d = self.data.lock().unwrap();
        let keep = d.dirty_from.min(d.durable.len()).min(d.current.len());
        d.durable.truncate(keep);
        let SimFileData { current, durable, .. } = &mut *d;
        durable.extend_from_slice(&current[keep..]);
        d.dirty_from = usize::MAX;
        Ok(())
    }
}
