//! The real implementations of the seams, and the only module of the engine that touches the
//! operating system.
//!
//! - Files: `pwrite` into the page cache, `pread`, `fdatasync`; a directory is `fsync`ed through an
//!   fd opened on it, which is what makes creates, renames and removes durable on Linux.
//! - Index files are `mmap`ed (memmap2); `Mapping::flush` is `msync`.
//! - `TcpNetwork` is tokio's TCP; its `send_file` is sendfile(2), for zero-copy fetches.
//! - The clock is the system clock; randomness is seeded from the process's hash keys.
//! - `raise_open_files_limit` raises RLIMIT_NOFILE's soft limit to the hard one at start.

use std::fs::{self, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use memmap2::MmapMut;

use super::{Clock, Disk, File, Mapping, Rng};

/// Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit, as far as the kernel
/// allows, and returns the limit now in force (`None`: unlimited). Every partition holds
/// descriptors for as long as it is open, and a soft limit of 1024 (the default of many
/// systems, whose hard limit is far higher) runs out at a few hundred partitions.
///
/// # Errors
/// When the limit cannot be read.
pub fn raise_open_files_limit() -> io::Result<Option<u64>> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft < hard {
        // Linux refuses a soft limit above fs.nr_open, which an unlimited hard limit is:
        // then the soft limit stays, and the caller logs the one in force.
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            tracing::warn!(soft, hard, error = %e, "the open-files limit could not be raised to the hard limit");
        }
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    Ok((soft != RLIM_INFINITY).then_some(soft))
}

/// The local file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsDisk;

impl Disk for OsDisk {
    type File = OsFile;

    fn create(&self, path: &Path) -> io::Result<OsFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| annotate(e, path))?;
        Ok(OsFile { file })
    }

    fn open(&self, path: &Path) -> io::Result<OsFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| annotate(e, path))?;
        Ok(OsFile { file })
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path).map_err(|e| annotate(e, path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to).map_err(|e| {
            let error = annotate(e, to);
            io::Error::new(error.kind(), format!("{} -> {error}", from.display()))
        })
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| annotate(e, dir))? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir).map_err(|e| annotate(e, dir))
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(dir).map_err(|e| annotate(e, dir))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let handle = fs::File::open(dir).map_err(|e| annotate(e, dir))?;
        handle.sync_all()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// Says which file an error is about: a bare "No such file or directory" helps nobody.
fn annotate(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// An open file on the local file system.
#[derive(Debug)]
pub struct OsFile {
    file: fs::File,
}

impl File for OsFile {
    type Mapping = OsMapping;

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.file.read_at(buf, pos)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.file.write_all_at(buf, pos)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn map(&self, len: u64) -> io::Result<OsMapping> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        if len == 0 {
            return Ok(OsMapping { map: None });
        }
        // SAFETY: keel is the only writer of its index files, and it never truncates an index
        // while a mapping of it is alive (indexes are unmapped before they are trimmed).
        let map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(&self.file)? };
        Ok(OsMapping { map: Some(map) })
    }

    fn raw_fd(&self) -> Option<i32> {
        Some(self.file.as_raw_fd())
    }
}

/// A shared, writable mmap of an index file. `None` maps zero bytes (mmap refuses length 0).
pub struct OsMapping {
    map: Option<MmapMut>,
}

impl Mapping for OsMapping {
    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    fn write(&mut self, pos: usize, data: &[u8]) {
        let map = self.map.as_mut().expect("write to an empty mapping");
        map[pos..pos + data.len()].copy_from_slice(data);
    }

    fn flush(&self) -> io::Result<()> {
        match &self.map {
            Some(map) => map.flush(),
            None => Ok(()),
        }
    }
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsClock;

fn process_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl Clock for OsClock {
    fn now_ms(&self) -> i64 {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
    }

    fn monotonic_ns(&self) -> u64 {
        u64::try_from(process_start().elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A splitmix64 generator seeded from the process's random hash keys. Not cryptographic: keel
/// uses randomness for jitter and ids only.
#[derive(Clone, Debug)]
pub struct OsRng {
    state: Arc<AtomicU64>,
}

impl Default for OsRng {
    fn default() -> OsRng {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(OsClock.monotonic_ns());
        OsRng {
            state: Arc::new(AtomicU64::new(hasher.finish())),
        }
    }
}

impl OsRng {
    /// The same generator from a fixed seed (tests that want repeatable draws).
    pub fn seeded(seed: u64) -> OsRng {
        OsRng {
            state: Arc::new(AtomicU64::new(seed)),
        }
    }
}

impl Rng for OsRng {
    fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// TCP through tokio: the production network (and madsim's simulated TCP under `--cfg madsim`).
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpNetwork;

pub struct TcpListener {
    listener: tokio::net::TcpListener,
}

pub struct TcpConnection {
    stream: tokio::net::TcpStream,
}

impl super::net::Network for TcpNetwork {
    type Listener = TcpListener;
    type Connection = TcpConnection;

    async fn bind(&self, address: &str) -> io::Result<TcpListener> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        Ok(TcpListener { listener })
    }

    async fn connect(&self, address: &str) -> io::Result<TcpConnection> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        #[cfg(not(madsim))]
        stream.set_nodelay(true)?;
        Ok(TcpConnection { stream })
    }
}

impl super::net::Listener for TcpListener {
    type Connection = TcpConnection;

    async fn accept(&self) -> io::Result<(TcpConnection, String)> {
        let (stream, peer) = self.listener.accept().await?;
        #[cfg(not(madsim))]
        stream.set_nodelay(true)?;
        Ok((TcpConnection { stream }, peer.to_string()))
    }

    fn local_address(&self) -> io::Result<String> {
        Ok(self.listener.local_addr()?.to_string())
    }
}

impl tokio::io::AsyncRead for TcpConnection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TcpConnection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl super::net::Connection for TcpConnection {
    async fn send_file<F: File>(&mut self, file: &F, position: u64, len: u64) -> io::Result<()> {
        #[cfg(not(madsim))]
        if let Some(fd) = file.raw_fd() {
            return self.sendfile(fd, position, len).await;
        }
        super::net::copy_file_range(&mut self.stream, file, position, len).await
    }
}

#[cfg(not(madsim))]
impl TcpConnection {
    /// sendfile(2) from `fd` to the socket, waiting for the socket to drain when it is full.
    async fn sendfile(&mut self, fd: i32, mut position: u64, len: u64) -> io::Result<()> {
        use std::os::fd::{AsRawFd, BorrowedFd};
        let socket = self.stream.as_raw_fd();
        let mut left = len;
        while left > 0 {
            self.stream.writable().await?;
            let sent = self.stream.try_io(tokio::io::Interest::WRITABLE, || {
                let mut offset =
                    i64::try_from(position).map_err(|_| io::ErrorKind::InvalidInput)?;
                // SAFETY: both fds stay open for the duration of the call: the socket is owned
                // by `self.stream`, the file by the caller's `&F`.
                let (out, input) =
                    unsafe { (BorrowedFd::borrow_raw(socket), BorrowedFd::borrow_raw(fd)) };
                let count = left.min(1 << 30) as usize;
                Ok(nix::sys::sendfile::sendfile64(
                    out,
                    input,
                    Some(&mut offset),
                    count,
                )?)
            });
            match sent {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    position += n as u64;
                    left -= n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Runs `future` to completion on the calling thread, parking it while the future waits (for
/// tests that call the partition's async flush from plain threads, with `MemDisk`, whose syncs
/// take no time to wait out).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => return output,
            std::task::Poll::Pending => std::thread::park(),
        }
    }
}
