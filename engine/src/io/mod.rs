//! The seams between keel's logic and the world: disk, network, clock and randomness.
//!
//! Everything in the engine that would touch the operating system goes through these traits, so
//! that the same storage code runs on real files (`os.rs`, the only module that uses the
//! standard file system, memory maps or nix) and on the simulator's disk, which loses unsynced
//! page cache on power loss, tears writes and rots bits. A call that bypasses these traits is
//! invisible to the simulator and voids its guarantees; `cargo xtask tidy` refuses such calls.
//!
//! The durability model every implementation must honour (the simulator checks the engine against
//! exactly this, so the real implementation must be at least this strong):
//! - `File::write_at` puts bytes in the page cache: they survive a process crash but not a power
//!   loss.
//! - `File::sync_data` makes every earlier write to that file, and its length, durable.
//! - `Disk::sync_dir` makes earlier creates, renames and removes of entries in that directory
//!   durable. Until then a power loss may undo any of them.
//! - `Mapping` writes behave like `write_at` on the mapped file; `Mapping::flush` like
//!   `sync_data`.

pub mod mem;
pub mod net;
pub mod os;

/// Runs `f`, which may wait on the device (an fsync, a segment rewrite), without stalling the
/// other tasks of an async worker: on the multi-threaded production runtime the worker first
/// hands its queued tasks to another thread (`block_in_place`). In the simulator, on a
/// current-thread runtime or outside any runtime, `f` just runs: the simulator's disk never
/// waits, and there is no other worker to hand tasks to.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(not(madsim))]
    {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let multi_thread = Handle::try_current()
            .is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::MultiThread);
        if multi_thread {
            return tokio::task::block_in_place(f);
        }
    }
    f()
}

use std::io;
use std::path::Path;

/// Linux's NAME_MAX: the bytes one component of a path may hold (ext4, xfs, btrfs and tmpfs
/// all have it). Every file name keel derives from a client's input must fit.
pub const FILE_NAME_BYTES_MAX: usize = 255;

/// A directory tree of files: the real file system or a simulated one.
pub trait Disk: Clone + Send + Sync + 'static {
    type File: File;

    /// Creates `path` (empty), failing if it exists. Not durable until `sync_dir` of the parent.
    ///
    /// # Errors
    /// `AlreadyExists`, or any IO error of the device.
    fn create(&self, path: &Path) -> io::Result<Self::File>;

    /// Opens an existing file for reading and writing.
    ///
    /// # Errors
    /// `NotFound`, or any IO error of the device.
    fn open(&self, path: &Path) -> io::Result<Self::File>;

    /// Removes a file. Not durable until `sync_dir` of the parent.
    ///
    /// # Errors
    /// `NotFound`, or any IO error of the device.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Renames a file, replacing `to` if it exists. Not durable until `sync_dir`.
    ///
    /// # Errors
    /// `NotFound`, or any IO error of the device.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// The names of the entries of `dir` (files and directories), sorted.
    ///
    /// # Errors
    /// `NotFound`, or any IO error of the device.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Creates `dir` and its missing parents. Durable once the parent is `sync_dir`ed.
    ///
    /// # Errors
    /// Any IO error of the device.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Removes an empty directory. Durable once the parent is `sync_dir`ed.
    ///
    /// # Errors
    /// `NotFound`, a directory that is not empty, or any IO error of the device.
    fn remove_dir(&self, dir: &Path) -> io::Result<()>;

    /// Makes creates, renames and removes of entries of `dir` durable.
    ///
    /// # Errors
    /// Any IO error of the device.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Whether `path` names an existing file or directory.
    fn exists(&self, path: &Path) -> bool;

    /// The time the device takes over the next data sync of a flush, as time for the caller
    /// to wait (asynchronously, so that other tasks append and read meanwhile). A real device
    /// spends its time inside `sync_data` and answers zero; the simulator's disk answers the
    /// latency it draws, so that its syncs interleave with appends, reads and truncations as
    /// a real disk's do.
    fn sync_latency(&self) -> SyncLatency {
        SyncLatency::default()
    }
}

/// A data sync's simulated duration: `before` passes before the sync takes effect (writes
/// made meanwhile may become durable with it, as fsync allows), `after` between its effect and
/// its answer (a power loss in that moment keeps what it synced, unacknowledged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncLatency {
    pub before: std::time::Duration,
    pub after: std::time::Duration,
}

impl SyncLatency {
    /// Waits out `duration` of the device's time (nothing at all when it is zero).
    pub async fn wait(duration: std::time::Duration) {
        if !duration.is_zero() {
            tokio::time::sleep(duration).await;
        }
    }
}

/// An open file. Positional IO only: the engine keeps its own write positions.
pub trait File: Send + Sync + 'static {
    type Mapping: Mapping;

    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read (0 at end of file).
    ///
    /// # Errors
    /// Any IO error of the device.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;

    /// Writes all of `buf` at `pos`, extending the file if needed (page cache only).
    ///
    /// # Errors
    /// `StorageFull` (ENOSPC) or any IO error of the device; a failed write may have written a
    /// prefix.
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;

    /// Makes earlier writes and the file's length durable (fdatasync).
    ///
    /// # Errors
    /// Any IO error of the device. After a failed sync the page cache state is unknown.
    fn sync_data(&self) -> io::Result<()>;

    /// The file's current length, page cache included.
    ///
    /// # Errors
    /// Any IO error of the device.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty, page cache included.
    ///
    /// # Errors
    /// Any IO error of the device.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Truncates or zero-extends the file (page cache only until `sync_data`).
    ///
    /// # Errors
    /// Any IO error of the device.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Maps the first `len` bytes of the file for reading and writing. The file must be at least
    /// `len` long. Production uses mmap; a simulated disk may back the mapping with memory, as
    /// long as writes reach the file's page cache as `write_at` would.
    ///
    /// # Errors
    /// Any IO error of the device.
    fn map(&self, len: u64) -> io::Result<Self::Mapping>;

    /// Reads exactly `buf.len()` bytes at `pos`.
    ///
    /// # Errors
    /// `UnexpectedEof` when the file ends first, or any IO error of the device.
    fn read_exact_at(&self, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, pos)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => {
                    buf = &mut buf[n..];
                    pos += n as u64;
                }
            }
        }
        Ok(())
    }

    /// The raw file descriptor, for zero-copy transfers (sendfile). `None` on simulated disks.
    fn raw_fd(&self) -> Option<i32> {
        None
    }
}

/// A writable view of the start of a file (the offset and time indexes use these).
pub trait Mapping: Send + Sync + 'static {
    /// The mapped bytes.
    fn bytes(&self) -> &[u8];

    /// Overwrites `data.len()` bytes at `pos` inside the mapping.
    ///
    /// # Panics
    /// When `pos + data.len()` exceeds the mapped length: callers check bounds first.
    fn write(&mut self, pos: usize, data: &[u8]);

    /// Makes the mapping's writes durable (msync).
    ///
    /// # Errors
    /// Any IO error of the device.
    fn flush(&self) -> io::Result<()>;
}

/// Wall-clock and monotonic time, in milliseconds and nanoseconds.
pub trait Clock: Clone + Send + Sync + 'static {
    /// Milliseconds since the Unix epoch (record timestamps, retention).
    fn now_ms(&self) -> i64;
    /// A monotonic reading in nanoseconds (durations, flush intervals).
    fn monotonic_ns(&self) -> u64;
}

/// A source of randomness (jitter, ids). The simulator's is seeded.
pub trait Rng: Clone + Send + Sync + 'static {
    fn next_u64(&self) -> u64;
}

/// Writes `bytes` at `path` atomically and durably: a temporary file (`.tmp`), synced, renamed
/// over `path`, the directory synced. A crash leaves the old file or the new one.
pub fn write_atomically<D: Disk>(disk: &D, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    if disk.exists(&tmp) {
        disk.remove(&tmp)?;
    }
    let file = disk.create(&tmp)?;
    file.write_at(bytes, 0)?;
    file.sync_data()?;
    drop(file);
    disk.rename(&tmp, path)?;
    disk.sync_dir(dir)
}
