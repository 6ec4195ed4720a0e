//! An in-memory `Disk` for unit tests: every write is immediately durable and nothing fails
//! unless a test asks (`fill`, `rot_reads`, `fail_create`). It models no crash; the simulator's disk (keel-sim)
//! is the one that loses page cache. Tests may still corrupt or cut files through
//! `MemDisk::file_bytes` and `MemDisk::set_file_bytes`. Like Linux, it refuses a path with a
//! component longer than `FILE_NAME_BYTES_MAX` bytes (ENAMETOOLONG), so a name that would not
//! fit on a real disk fails in tests too.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{Disk, File, Mapping, FILE_NAME_BYTES_MAX};

type Bytes = Arc<Mutex<Vec<u8>>>;

#[derive(Default)]
struct Tree {
    files: BTreeMap<PathBuf, Bytes>,
    dirs: std::collections::BTreeSet<PathBuf>,
}

impl Tree {
    /// The files and directories directly inside `dir`. Paths order by component, so what
    /// lies under `dir` is one range after it: a listing costs what the directory holds, not
    /// the whole disk (tests open thousands of partitions).
    fn entries<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a PathBuf> + 'a {
        let start = dir.to_path_buf();
        let files = self.files.range(start.clone()..).map(|(p, _)| p);
        let dirs = self.dirs.range(start..);
        let under = move |p: &&PathBuf| p.starts_with(dir);
        files
            .take_while(under)
            .chain(dirs.take_while(under))
            .filter(move |p| p.parent() == Some(dir))
    }
}

/// Waits while `MemDisk::hold_syncs` holds syncs (of files and of directories).
fn wait_while_held(shared: &Shared) {
    let mut held = shared.syncs_held.lock().expect("sync hold lock");
    if *held {
        shared.syncs_waiting.fetch_add(1, Ordering::SeqCst);
        while *held {
            held = shared.syncs_released.wait(held).expect("sync hold lock");
        }
        shared.syncs_waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A file system held in memory. Clones share the same tree.
#[derive(Clone, Default)]
pub struct MemDisk {
    tree: Arc<Mutex<Tree>>,
    shared: Arc<Shared>,
}

/// What the disk and all its file handles share, for tests that watch or pause IO.
#[derive(Default)]
struct Shared {
    /// Bytes returned by reads of any file.
    bytes_read: AtomicU64,
    /// While true, `sync_data` waits (see `MemDisk::hold_syncs`).
    syncs_held: Mutex<bool>,
    syncs_released: Condvar,
    syncs_waiting: AtomicU64,
    /// Reads still to come back rotten (see `MemDisk::rot_reads`).
    rotten_reads: AtomicU64,
    /// While true, writes fail with ENOSPC (see `MemDisk::fill`).
    full: std::sync::atomic::AtomicBool,
    /// File creations asked for so far, failed ones included.
    creates: AtomicU64,
    /// The number (in `creates`) of the creation that fails; 0 for none (see `fail_create`).
    failing_create: AtomicU64,
}

impl MemDisk {
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().expect("mem disk lock poisoned")
    }

    /// How many bytes reads of its files have returned so far.
    pub fn bytes_read(&self) -> u64 {
        self.shared.bytes_read.load(Ordering::Relaxed)
    }

    /// Makes every `sync_data` and `sync_dir` wait until `release_syncs`: a test can then look at what the
    /// rest of the system may do while a flush is syncing.
    pub fn hold_syncs(&self) {
        *self.shared.syncs_held.lock().expect("sync hold lock") = true;
    }

    pub fn release_syncs(&self) {
        *self.shared.syncs_held.lock().expect("sync hold lock") = false;
        self.shared.syncs_released.notify_all();
    }

    /// How many `sync_data` calls are waiting on `hold_syncs` now.
    pub fn syncs_waiting(&self) -> u64 {
        self.shared.syncs_waiting.load(Ordering::SeqCst)
    }

    /// Makes the next `count` reads that return bytes come back with their last byte flipped,
    /// the file itself intact: transient rot, for tests of what reads again. 0 ends it.
    pub fn rot_reads(&self, count: u64) {
        self.shared.rotten_reads.store(count, Ordering::SeqCst);
    }

    /// Makes every write fail with ENOSPC (a full disk) while `full` is true.
    pub fn fill(&self, full: bool) {
        self.shared.full.store(full, Ordering::SeqCst);
    }

    /// Makes the `nth` file creation from now (1 is the next) fail with EMFILE, "Too many open
    /// files", as creations fail when the process runs out of descriptors; later ones succeed.
    pub fn fail_create(&self, nth: u64) {
        let at = self.creates() + nth;
        self.shared.failing_create.store(at, Ordering::SeqCst);
    }

    /// How many file creations were asked for so far, failed ones included.
    pub fn creates(&self) -> u64 {
        self.shared.creates.load(Ordering::SeqCst)
    }

    /// How many of the reads `rot_reads` asked for are still to come.
    pub fn rotten_reads_left(&self) -> u64 {
        self.shared.rotten_reads.load(Ordering::SeqCst)
    }

    /// Every file and directory on the disk, in order.
    pub fn paths(&self) -> Vec<PathBuf> {
        let tree = self.tree();
        let mut paths: Vec<PathBuf> = tree.files.keys().chain(&tree.dirs).cloned().collect();
        paths.sort();
        paths
    }

    /// A copy of the bytes of `path`, if it exists.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let tree = self.tree();
        let bytes = tree.files.get(path)?;
        let copy = bytes.lock().expect("mem file lock poisoned").clone();
        Some(copy)
    }

    /// Replaces the bytes of `path`, creating it if needed (tests cut and corrupt files this way).
    pub fn set_file_bytes(&self, path: &Path, data: Vec<u8>) {
        let mut tree = self.tree();
        match tree.files.get(path) {
            Some(bytes) => *bytes.lock().expect("mem file lock poisoned") = data,
            None => {
                tree.files
                    .insert(path.to_path_buf(), Arc::new(Mutex::new(data)));
            }
        }
    }
}

/// ENAMETOOLONG when a component of `path` is longer than `FILE_NAME_BYTES_MAX` bytes.
fn check_name(path: &Path) -> io::Result<()> {
    let too_long = path
        .components()
        .any(|c| c.as_os_str().len() > FILE_NAME_BYTES_MAX);
    if too_long {
        return Err(os_error(36, path)); // ENAMETOOLONG
    }
    Ok(())
}

/// The error Linux answers with `errno`, naming `path` as `OsDisk` names the paths of its errors.
fn os_error(errno: i32, path: &Path) -> io::Error {
    let error = io::Error::from_raw_os_error(errno);
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", path.display()),
    )
}

impl Disk for MemDisk {
    type File = MemFile;

    fn create(&self, path: &Path) -> io::Result<MemFile> {
        check_name(path)?;
        let number = self.shared.creates.fetch_add(1, Ordering::SeqCst) + 1;
        if number == self.shared.failing_create.load(Ordering::SeqCst) {
            return Err(os_error(24, path)); // EMFILE
        }
        let mut tree = self.tree();
        if tree.files.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists", path.display()),
            ));
        }
        let bytes: Bytes = Arc::default();
        tree.files.insert(path.to_path_buf(), bytes.clone());
        Ok(MemFile {
            bytes,
            shared: self.shared.clone(),
        })
    }

    fn open(&self, path: &Path) -> io::Result<MemFile> {
        check_name(path)?;
        let tree = self.tree();
        let bytes = tree.files.get(path).ok_or_else(|| not_found(path))?;
        Ok(MemFile {
            bytes: bytes.clone(),
            shared: self.shared.clone(),
        })
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.tree()
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        check_name(to)?;
        let mut tree = self.tree();
        let bytes = tree.files.remove(from).ok_or_else(|| not_found(from))?;
        tree.files.insert(to.to_path_buf(), bytes);
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let tree = self.tree();
        if !tree.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let mut names: Vec<String> = tree
            .entries(dir)
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        check_name(dir)?;
        let mut tree = self.tree();
        for ancestor in dir.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                tree.dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut tree = self.tree();
        let has_entries = tree.entries(dir).next().is_some();
        if has_entries {
            return Err(io::Error::other(format!("{}: not empty", dir.display())));
        }
        if !tree.dirs.remove(dir) {
            return Err(not_found(dir));
        }
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        wait_while_held(&self.shared);
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let tree = self.tree();
        tree.files.contains_key(path) || tree.dirs.contains(path)
    }
}

/// A handle on a `MemDisk` file; it keeps the bytes alive after a remove, like an open fd.
pub struct MemFile {
    bytes: Bytes,
    shared: Arc<Shared>,
}

impl MemFile {
    fn bytes(&self) -> MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().expect("mem file lock poisoned")
    }
}

impl File for MemFile {
    type Mapping = MemMapping;

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let bytes = self.bytes();
        let start = usize::try_from(pos).unwrap_or(usize::MAX).min(bytes.len());
        let n = buf.len().min(bytes.len() - start);
        buf[..n].copy_from_slice(&bytes[start..start + n]);
        self.shared
            .bytes_read
            .fetch_add(n as u64, Ordering::Relaxed);
        let rotten = |left: u64| left.checked_sub(1);
        let rots = &self.shared.rotten_reads;
        if n > 0
            && rots
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, rotten)
                .is_ok()
        {
            buf[n - 1] ^= 0x01;
        }
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        if self.shared.full.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28));
        }
        let mut bytes = self.bytes();
        let start = usize::try_from(pos).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start + buf.len();
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[start..end].copy_from_slice(buf);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        wait_while_held(&self.shared);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.bytes().len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.bytes().resize(len, 0);
        Ok(())
    }

    fn map(&self, len: u64) -> io::Result<MemMapping> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        let bytes = self.bytes();
        if bytes.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "mapping past end of file",
            ));
        }
        Ok(MemMapping {
            view: bytes[..len].to_vec(),
            file: MemFile {
                bytes: self.bytes.clone(),
                shared: self.shared.clone(),
            },
        })
    }
}

/// A mapping over a `MemFile`: a private copy whose writes are also written through to the file,
/// which is what a shared mmap looks like to readers of the file.
pub struct MemMapping {
    view: Vec<u8>,
    file: MemFile,
}

impl Mapping for MemMapping {
    fn bytes(&self) -> &[u8] {
        &self.view
    }

    fn write(&mut self, pos: usize, data: &[u8]) {
        self.view[pos..pos + data.len()].copy_from_slice(data);
        let mut bytes = self.file.bytes();
        if bytes.len() >= pos + data.len() {
            bytes[pos..pos + data.len()].copy_from_slice(data);
        }
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A clock for tests beside `MemDisk`: always 2023-11-14T22:13:20Z, and a monotonic clock that
/// never moves (durations measure 0).
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedClock;

impl FixedClock {
    pub const NOW_MS: i64 = 1_700_000_000_000;
}

impl super::Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        FixedClock::NOW_MS
    }
    fn monotonic_ns(&self) -> u64 {
        0
    }
}
