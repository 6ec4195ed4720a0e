//! `SimDisk`: the simulator's disk, a `keel::io::Disk` that forgets what was not synced.
//!
//! # State
//! One `SimDisk` value per simulated node; clones are handles on the same disk. Files are inodes:
//! each has a `durable` byte vector (what is on the platter), a `cached` one (the page cache, which
//! every read sees) and the set of 4 KiB blocks dirtied since its last `sync_data`. Directories map
//! names to inodes twice: the visible namespace (what the process sees) and the durable one, plus
//! the log of namespace operations not yet made durable by `sync_dir`. Because names point at
//! inodes, a rename keeps the data, and an open `SimFile` keeps working after its file is removed
//! or renamed, as an fd does. Directories themselves are durable as soon as `create_dir_all`
//! returns (a simplification: the engine creates its directories once, before any data matters).
//! Paths are compared as given (no `..` resolution); a file's parent must have been created with
//! `create_dir_all`, and `/` always exists.
//!
//! # Crash and power loss
//! - `crash()` kills the process: nothing is lost, the page cache survives. Every open `SimFile`
//!   and `SimMapping` goes stale: its operations fail ("stale handle after crash") and mapping
//!   writes are dropped, so an engine that keeps using pre-crash handles is caught rather than
//!   silently served. Removed files that only an open handle kept alive are freed.
//! - `power_loss(rng)` loses the page cache. For each file, each block dirtied since the last sync
//!   independently reaches the platter (probability `BLOCK_SURVIVAL`) or not; blocks are atomic,
//!   so tearing is at 4 KiB granularity. If the length changed since the last sync, the file comes
//!   back either at its durable length or at its cached length (even chances): a grown file may
//!   come back long with zero-filled blocks where data did not arrive (delayed allocation), and an
//!   unsynced shrink may be undone, the cut blocks holding old data or zeros. For each directory, a
//!   random prefix of its unsynced namespace operations survives (from none to all): the journal
//!   commits in order, so a later rename never survives without the earlier create. A rename
//!   within one directory is one operation (atomic); across directories it is an unlink in one and
//!   a link in the other, and each may survive alone (file lost, or present under both names).
//!   Power loss also makes every handle stale.
//!
//! Synced state is never lost: after `sync_data` returns Ok, the file's bytes and length survive
//! every power loss; after `sync_dir` returns Ok, the directory's entries do. A correct system
//! must recover from any mixture of old and new blocks in unsynced regions (checksums), from files
//! longer than their data (zero tails), and from unsynced creates, renames and removes undone.
//! It never sees a file length between the durable and the cached one; the cut-inside-a-record
//! tail comes from torn writes instead.
//!
//! # Faults on demand
//! `FaultConfig` gives a probability per operation for each kind (all 0 by default); the disk draws
//! them from its own `SimRng`, seeded at `SimDisk::new`. Empty reads and writes never fault.
//! - torn write: `write_at` writes a random strict prefix of the buffer to the page cache and
//!   fails with EIO (the error-returning kind; silent tearing is what power loss models). The
//!   engine must treat the file past its last good position as garbage.
//! - bit rot: a `read_at` that brings a block from the platter into the page cache (the first
//!   read since the last power loss of a block not written since) returns one flipped bit in it;
//!   the stored bytes are intact and the block is then cached, so a retry reads it right
//!   (transient corruption, caught by checksums). Reads served from the page cache never rot. `SimDisk::rot` flips a bit
//!   in both the durable and cached bytes for good.
//! - slow fsync: a flush's data sync takes `DiskLatency::slow_sync_ms` more (an outlier), counted
//!   as `slow_fsyncs`.
//! - enospc: `write_at` (any write: copy-on-write file systems fail overwrites too) and growing
//!   `set_len` fail with `StorageFull` without changing anything.
//! - misdirected read: like bit rot, a `read_at` that brings a block from the platter returns
//!   instead the bytes of another block of the same file (the device read the wrong sector);
//!   the page cache keeps the true contents. The bytes are well-formed, checksums included, but
//!   belong elsewhere: only a check of where they belong (offsets) catches them.
//! - read eio: `read_at` fails with EIO and reads nothing (a transient media error: the same read
//!   may succeed next time). The engine must answer an error for that read, never take the
//!   bytes it could not read for damage, nor cut the log there.
//! - eio: `sync_data` (and so `Mapping::flush`) and `sync_dir` fail with EIO; nothing new becomes
//!   durable and the dirty state is kept. The cache keeps the data, so a later sync that succeeds
//!   persists it: kinder than Linux, which may drop the dirty pages, but the engine can no more
//!   rely on either outcome than on an unsynced write, so it must treat a failed sync as fatal for
//!   the data it covered.
//! - `fail_syncs_after(n)`: after `n` more syncs, every sync fails with EIO (counted as eio) until
//!   lifted: the harness follows it with a power loss, which then cuts a multi-step operation
//!   after a chosen number of durable steps.
//! - `lying_fsync`: syncs report success and make nothing durable. No correct system survives
//!   that; it exists to prove the checkers notice.
//!
//! # Time
//! The disk has no clock, but it tells the engine how long each flush's data sync takes
//! (`Disk::sync_latency`): a latency drawn around the run's `DiskLatency::sync_us`, with slow
//! outliers, split at random into the time before the sync takes effect and the time after it
//! until the caller hears. The engine waits it out asynchronously, so appends, reads,
//! truncations and other flushes interleave with a sync as they do on a real disk.
//!
//! `FaultCounts` counts every fault injected, crashes and power losses included, for the runner's
//! summary. Mapping writes never fault (a store to memory cannot fail); their flush can.
//!
//! Everything is deterministic: ordered maps only, no clock, no thread-local randomness.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use std::time::Duration;

use keel::io::{Disk, File, Mapping, SyncLatency};

use crate::rng::SimRng;

/// The page-cache granularity: power loss keeps or drops whole blocks.
pub const BLOCK: usize = 4096;

/// The chance that a dirty block reached the platter before a power loss.
pub const BLOCK_SURVIVAL: f64 = 0.5;

/// The chance that a file whose length changed comes back at its cached length (else durable).
const NEW_LENGTH_SURVIVAL: f64 = 0.5;

/// The largest file the simulator holds (4 GiB); longer writes fail with `FileTooLarge` instead of
/// exhausting memory.
pub const MAX_FILE_LEN: u64 = 1 << 32;

type InodeId = u64;

/// Per-operation fault probabilities, each in [0, 1] (out-of-range values clamp; NaN is 0).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// `write_at` writes a strict prefix and fails with EIO.
    pub torn_write: f64,
    /// `read_at` returns one flipped bit (the stored bytes stay intact).
    pub bit_rot: f64,
    /// A sync succeeds but counts as slow.
    pub slow_fsync: f64,
    /// `write_at` or growing `set_len` fails with `StorageFull`.
    pub enospc: f64,
    /// A sync fails with EIO and makes nothing durable.
    pub eio: f64,
    /// `read_at` fails with EIO and reads nothing.
    pub read_eio: f64,
    /// `read_at` returns another block's bytes in place of a block it brings from the platter.
    pub misdirected_read: f64,
}

/// How long a flush's data sync takes (see the module doc): drawn per run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskLatency {
    /// The typical sync, in microseconds (each sync takes half to one and a half of it).
    pub sync_us: u64,
    /// What a slow sync (`FaultConfig::slow_fsync`) takes on top.
    pub slow_sync_ms: u64,
}

/// How many faults of each kind were injected since the disk was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub torn_writes: u64,
    pub bit_rots: u64,
    pub slow_fsyncs: u64,
    pub enospc: u64,
    pub eio: u64,
    pub read_eio: u64,
    pub misdirected_reads: u64,
    /// Blocks overwritten on the platter with another block's bytes by `SimDisk::misdirect`.
    pub misdirected_writes: u64,
    /// Syncs that reported success under `lying_fsync` without making anything durable.
    pub lied_fsyncs: u64,
    /// Bits flipped for good by `SimDisk::rot`.
    pub permanent_rots: u64,
    /// Bits flipped on the platter by `SimDisk::rot_at_rest` (latent corruption).
    pub rots_at_rest: u64,
    pub crashes: u64,
    pub power_losses: u64,
    /// Operations refused (or mapping writes dropped) on handles from before a crash: not a fault
    /// but an engine bug, counted so the runner can flag it.
    pub stale_handle_uses: u64,
}

impl std::ops::AddAssign for FaultCounts {
    fn add_assign(&mut self, o: FaultCounts) {
        self.torn_writes += o.torn_writes;
        self.bit_rots += o.bit_rots;
        self.slow_fsyncs += o.slow_fsyncs;
        self.enospc += o.enospc;
        self.eio += o.eio;
        self.read_eio += o.read_eio;
        self.misdirected_reads += o.misdirected_reads;
        self.misdirected_writes += o.misdirected_writes;
        self.lied_fsyncs += o.lied_fsyncs;
        self.permanent_rots += o.permanent_rots;
        self.rots_at_rest += o.rots_at_rest;
        self.crashes += o.crashes;
        self.power_losses += o.power_losses;
        self.stale_handle_uses += o.stale_handle_uses;
    }
}

impl FaultCounts {
    /// Faults that make a read return wrong bytes or fail (transient ones).
    pub fn read_faults(&self) -> u64 {
        self.bit_rots + self.misdirected_reads + self.read_eio
    }
}

impl fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "torn writes {}, bit rots {} (+{} permanent, {} at rest), misdirected reads {}, \
             misdirected writes {}, slow fsyncs {}, enospc {}, eio {} (+{} on reads), \
             lied fsyncs {}, crashes {}, power losses {}, stale handle uses {}",
            self.torn_writes,
            self.bit_rots,
            self.permanent_rots,
            self.rots_at_rest,
            self.misdirected_reads,
            self.misdirected_writes,
            self.slow_fsyncs,
            self.enospc,
            self.eio,
            self.read_eio,
            self.lied_fsyncs,
            self.crashes,
            self.power_losses,
            self.stale_handle_uses
        )
    }
}

/// The kinds of on-demand fault, to roll and count them in one place.
#[derive(Clone, Copy)]
enum Fault {
    TornWrite,
    BitRot,
    SlowFsync,
    Enospc,
    Eio,
    ReadEio,
    MisdirectedRead,
}

/// A file's contents: on the platter, in the page cache, and which cache blocks differ.
#[derive(Default)]
struct Inode {
    durable: Vec<u8>,
    cached: Vec<u8>,
    /// Blocks whose cached contents may differ from the durable ones (since the last sync).
    dirty: BTreeSet<usize>,
    /// Blocks in the page cache since the last power loss (written or read): bit rot strikes
    /// only reads that bring a block from the platter, and a block once read is served from
    /// memory, as a real page cache serves it.
    warm: BTreeSet<usize>,
}

impl Inode {
    fn mark_dirty(&mut self, start: usize, end: usize) {
        if start < end {
            self.dirty.extend(start / BLOCK..end.div_ceil(BLOCK));
        }
    }

    fn write(&mut self, data: &[u8], pos: usize) {
        let end = pos + data.len();
        if self.cached.len() < end {
            self.cached.resize(end, 0);
        }
        self.cached[pos..end].copy_from_slice(data);
        self.mark_dirty(pos, end);
        self.warm_up(pos, end);
    }

    fn warm_up(&mut self, start: usize, end: usize) {
        if start < end {
            self.warm.extend(start / BLOCK..end.div_ceil(BLOCK));
        }
    }

    /// The first block of [start, end) that is not in the page cache.
    fn first_cold(&self, start: usize, end: usize) -> Option<usize> {
        (start / BLOCK..end.div_ceil(BLOCK)).find(|b| !self.warm.contains(b))
    }

    fn set_len(&mut self, len: usize) {
        // Growth needs no marking: the new cached bytes are zeros, and so is the durable file
        // zero-extended. A shrink marks the cut blocks that hold durable data, since undoing the
        // shrink may bring back either the old data or the zeros.
        let old = self.cached.len();
        self.mark_dirty(len, old.min(self.durable.len()));
        self.cached.resize(len, 0);
    }

    fn sync(&mut self) {
        self.durable.clone_from(&self.cached);
        self.dirty.clear();
    }

    /// Replaces both views with what the platter holds after a power loss (see the module doc).
    fn power_loss(&mut self, rng: &mut SimRng) {
        self.warm.clear();
        let len = if self.cached.len() == self.durable.len() || rng.chance(NEW_LENGTH_SURVIVAL) {
            self.cached.len()
        } else {
            self.durable.len()
        };
        let mut platter = std::mem::take(&mut self.durable);
        platter.resize(len, 0);
        for &block in &self.dirty {
            let start = block * BLOCK;
            if start >= len {
                break;
            }
            if rng.chance(BLOCK_SURVIVAL) {
                // The block's new contents: the cached bytes, zeros past the cached length.
                let end = (start + BLOCK).min(len);
                let new = self.cached.get(start..end.min(self.cached.len()));
                let new = new.unwrap_or_default();
                platter[start..start + new.len()].copy_from_slice(new);
                platter[start + new.len()..end].fill(0);
            }
        }
        self.cached.clone_from(&platter);
        self.durable = platter;
        self.dirty.clear();
    }
}

/// One unsynced namespace operation of a directory: name changes that reach the platter together
/// or not at all (`None` removes the name).
struct NsOp {
    changes: Vec<(String, Option<InodeId>)>,
}

fn apply(names: &mut BTreeMap<String, InodeId>, op: &NsOp) {
    for (name, inode) in &op.changes {
        match inode {
            Some(inode) => names.insert(name.clone(), *inode),
            None => names.remove(name),
        };
    }
}

/// A directory's entries. Invariant: `visible` is `durable` with all of `unsynced` applied.
#[derive(Default)]
struct Dir {
    visible: BTreeMap<String, InodeId>,
    durable: BTreeMap<String, InodeId>,
    unsynced: Vec<NsOp>,
}

impl Dir {
    fn change(&mut self, changes: Vec<(String, Option<InodeId>)>) {
        let op = NsOp { changes };
        apply(&mut self.visible, &op);
        self.unsynced.push(op);
    }

    fn sync(&mut self) {
        self.durable.clone_from(&self.visible);
        self.unsynced.clear();
    }

    fn power_loss(&mut self, rng: &mut SimRng) {
        if self.unsynced.is_empty() {
            return;
        }
        let kept = rng.below(self.unsynced.len() as u64 + 1) as usize;
        for op in &self.unsynced[..kept] {
            apply(&mut self.durable, op);
        }
        self.visible.clone_from(&self.durable);
        self.unsynced.clear();
    }

    fn inodes(&self) -> impl Iterator<Item = InodeId> + '_ {
        let ops = self.unsynced.iter().flat_map(|op| &op.changes);
        let logged = ops.filter_map(|(_, inode)| *inode);
        self.visible
            .values()
            .chain(self.durable.values())
            .copied()
            .chain(logged)
    }
}

struct State {
    /// Bumped by every crash and power loss; handles from older generations are stale.
    generation: u64,
    next_inode: InodeId,
    inodes: BTreeMap<InodeId, Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
    faults: FaultConfig,
    latency: DiskLatency,
    lying_fsync: bool,
    /// Syncs left before every sync fails (a dying machine about to lose power); `None`: no limit.
    syncs_left: Option<u64>,
    rng: SimRng,
    counts: FaultCounts,
}

impl State {
    /// Rolls fault `kind` at its configured probability, counting it when it fires.
    fn fault(&mut self, kind: Fault) -> bool {
        let (p, count) = match kind {
            Fault::TornWrite => (self.faults.torn_write, &mut self.counts.torn_writes),
            Fault::BitRot => (self.faults.bit_rot, &mut self.counts.bit_rots),
            Fault::SlowFsync => (self.faults.slow_fsync, &mut self.counts.slow_fsyncs),
            Fault::Enospc => (self.faults.enospc, &mut self.counts.enospc),
            Fault::Eio => (self.faults.eio, &mut self.counts.eio),
            Fault::ReadEio => (self.faults.read_eio, &mut self.counts.read_eio),
            Fault::MisdirectedRead => (
                self.faults.misdirected_read,
                &mut self.counts.misdirected_reads,
            ),
        };
        let fired = self.rng.chance(p);
        *count += u64::from(fired);
        fired
    }

    /// The common prologue of syncs: slow-fsync accounting, then EIO; `Ok(false)` when the disk
    /// lies and the caller must make nothing durable.
    fn sync_faults(&mut self) -> io::Result<bool> {
        match self.syncs_left {
            Some(0) => {
                self.counts.eio += 1;
                return Err(eio("fsync failed: the machine is dying"));
            }
            Some(left) => self.syncs_left = Some(left - 1),
            None => {}
        }
        if self.fault(Fault::Eio) {
            return Err(eio("fsync failed"));
        }
        if self.lying_fsync {
            self.counts.lied_fsyncs += 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// The inode behind a handle of `generation`, or the stale-handle error.
    fn inode(&mut self, generation: u64, inode: InodeId) -> io::Result<&mut Inode> {
        if generation != self.generation {
            self.counts.stale_handle_uses += 1;
            return Err(io::Error::other("stale handle after crash"));
        }
        // Inodes are freed only when the generation changes, so a current handle finds its own.
        self.inodes
            .get_mut(&inode)
            .ok_or_else(|| io::Error::other("inode vanished"))
    }

    fn dir(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }

    /// The inode `path` names in the visible namespace.
    fn lookup(&self, path: &Path) -> io::Result<InodeId> {
        let (dir, name) = split(path)?;
        let found = self.dirs.get(dir).and_then(|d| d.visible.get(&name));
        found.copied().ok_or_else(|| not_found(path))
    }

    /// Frees inodes no name refers to, visible, durable or pending. Only called when the generation
    /// changes, so no live handle can refer to a freed inode.
    fn collect_garbage(&mut self) {
        let live: BTreeSet<InodeId> = self.dirs.values().flat_map(Dir::inodes).collect();
        self.inodes.retain(|id, _| live.contains(id));
    }

    fn files(&self, durable: bool) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self
            .dirs
            .iter()
            .flat_map(|(dir, d)| {
                let names = if durable { &d.durable } else { &d.visible };
                names.keys().map(move |name| dir.join(name))
            })
            .collect();
        paths.sort();
        paths
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", path.display()),
    )
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("simulated EIO: {what}"))
}

/// A path's parent directory and file name.
fn split(path: &Path) -> io::Result<(&Path, String)> {
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )
    };
    let dir = path.parent().ok_or_else(invalid)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(invalid)?;
    Ok((dir, name.to_owned()))
}

/// `pos` as an index, checking that `pos + len` stays within `MAX_FILE_LEN`.
fn span(pos: u64, len: usize) -> io::Result<usize> {
    let end = pos
        .checked_add(len as u64)
        .filter(|&end| end <= MAX_FILE_LEN);
    match end.and_then(|_| usize::try_from(pos).ok()) {
        Some(pos) => Ok(pos),
        None => Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            "past the simulator's largest file",
        )),
    }
}

/// A simulated disk. Clones share the same disk; see the module doc for the model.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

impl SimDisk {
    /// An empty disk (only `/` exists) whose on-demand faults draw from a generator seeded with
    /// `seed`. No faults are configured.
    pub fn new(seed: u64) -> SimDisk {
        let mut dirs = BTreeMap::new();
        dirs.insert(PathBuf::from("/"), Dir::default());
        let state = State {
            generation: 0,
            next_inode: 0,
            inodes: BTreeMap::new(),
            dirs,
            faults: FaultConfig::default(),
            latency: DiskLatency::default(),
            lying_fsync: false,
            syncs_left: None,
            rng: SimRng::new(seed),
            counts: FaultCounts::default(),
        };
        SimDisk {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere (a failing test thread) must not hide the disk from the checkers.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the per-operation fault probabilities.
    pub fn set_faults(&self, faults: FaultConfig) {
        self.lock().faults = faults;
    }

    /// The configured fault probabilities.
    pub fn faults(&self) -> FaultConfig {
        self.lock().faults
    }

    /// Whether any fault is configured: an operation may fail now for no fault of the engine.
    pub fn faults_on(&self) -> bool {
        self.faults() != FaultConfig::default()
    }

    /// Sets how long flushes' data syncs take.
    pub fn set_latency(&self, latency: DiskLatency) {
        self.lock().latency = latency;
    }

    /// Makes every sync report success without making anything durable (or stops doing so).
    pub fn set_lying_fsync(&self, lying: bool) {
        self.lock().lying_fsync = lying;
    }

    /// After `syncs` more syncs (`sync_data`, `sync_dir`, mapping flushes), every sync fails with
    /// EIO until this is called with `None`: the disk of a machine about to lose power, so that a
    /// power loss can land in the middle of a multi-step operation (a compaction swap) with exactly
    /// its first `syncs` syncs durable.
    pub fn fail_syncs_after(&self, syncs: Option<u64>) {
        self.lock().syncs_left = syncs;
    }

    /// How many faults of each kind were injected so far.
    pub fn fault_counts(&self) -> FaultCounts {
        self.lock().counts
    }

    /// Frees every file and directory at the end of a run: handles that outlive the run (held
    /// by tasks the runtime never drops) then hold nothing but the disk's counters.
    pub fn release(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.inodes = BTreeMap::new();
        state.dirs = BTreeMap::new();
    }

    /// Kills the process: nothing is lost, every open handle goes stale.
    pub fn crash(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.counts.crashes += 1;
        state.collect_garbage();
    }

    /// Cuts the power: unsynced data and namespace changes are partly lost, drawn from `rng`, and
    /// every open handle goes stale. See the module doc for exactly what may be lost.
    pub fn power_loss(&self, rng: &mut SimRng) {
        let mut state = self.lock();
        for inode in state.inodes.values_mut() {
            inode.power_loss(rng);
        }
        for dir in state.dirs.values_mut() {
            dir.power_loss(rng);
        }
        state.generation += 1;
        state.counts.power_losses += 1;
        state.collect_garbage();
    }

    /// Flips one bit (chosen by the disk's generator) of byte `pos` of `path`, in both the durable
    /// and the cached bytes: rot that persists across reads, crashes and power losses.
    ///
    /// # Errors
    /// `NotFound` when `path` names no file; `InvalidInput` when `pos` is past both its durable
    /// and its cached length.
    pub fn rot(&self, path: &Path, pos: u64) -> io::Result<()> {
        let mut state = self.lock();
        let id = state.lookup(path)?;
        let mask = 1u8 << state.rng.below(8);
        let inode = state.inodes.get_mut(&id).ok_or_else(|| not_found(path))?;
        let pos = usize::try_from(pos).unwrap_or(usize::MAX);
        let mut flipped = false;
        for bytes in [&mut inode.durable, &mut inode.cached] {
            if let Some(byte) = bytes.get_mut(pos) {
                *byte ^= mask;
                flipped = true;
            }
        }
        if !flipped {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "rot past end of file",
            ));
        }
        state.counts.permanent_rots += 1;
        Ok(())
    }

    /// Flips one bit of byte `pos` of `path` on the platter, for good: latent corruption the
    /// drive does not report (rot at rest). The page cache keeps a block it holds (a process
    /// that wrote or read it reads it right until a power loss empties the cache); a block not
    /// in the cache reads rotten from now on. A dirty block is left alone (its next sync would
    /// overwrite the platter anyway). Returns whether a bit flipped.
    ///
    /// # Errors
    /// `NotFound` when `path` names no file.
    pub fn rot_at_rest(&self, path: &Path, pos: u64) -> io::Result<bool> {
        let mut state = self.lock();
        let id = state.lookup(path)?;
        let mask = 1u8 << state.rng.below(8);
        let inode = state.inodes.get_mut(&id).ok_or_else(|| not_found(path))?;
        let pos = usize::try_from(pos).unwrap_or(usize::MAX);
        let block = pos / BLOCK;
        if pos >= inode.durable.len() || inode.dirty.contains(&block) {
            return Ok(false);
        }
        inode.durable[pos] ^= mask;
        if !inode.warm.contains(&block) {
            if let Some(byte) = inode.cached.get_mut(pos) {
                *byte ^= mask;
            }
        }
        state.counts.rots_at_rest += 1;
        Ok(true)
    }

    /// A misdirected write: block `block` of `path` on the platter gets the platter's bytes of
    /// block `source_block` of `source` (a write meant for there landed here), for good. As with
    /// `rot_at_rest`, a block the page cache holds reads right until a power loss, and a dirty
    /// block is left alone. Returns whether the block's bytes changed.
    ///
    /// # Errors
    /// `NotFound` when either path names no file.
    pub fn misdirect(
        &self,
        path: &Path,
        block: usize,
        source: &Path,
        source_block: usize,
    ) -> io::Result<bool> {
        let mut state = self.lock();
        let (id, source_id) = (state.lookup(path)?, state.lookup(source)?);
        let bytes = {
            let inode = state
                .inodes
                .get(&source_id)
                .ok_or_else(|| not_found(source))?;
            let from = (source_block * BLOCK).min(inode.durable.len());
            let to = (from + BLOCK).min(inode.durable.len());
            inode.durable[from..to].to_vec()
        };
        let inode = state.inodes.get_mut(&id).ok_or_else(|| not_found(path))?;
        let start = block * BLOCK;
        if start >= inode.durable.len() || inode.dirty.contains(&block) {
            return Ok(false);
        }
        let end = (start + BLOCK).min(inode.durable.len());
        let mut landed = vec![0u8; end - start];
        let n = bytes.len().min(landed.len());
        landed[..n].copy_from_slice(&bytes[..n]);
        if inode.durable[start..end] == landed[..] {
            return Ok(false);
        }
        inode.durable[start..end].copy_from_slice(&landed);
        if !inode.warm.contains(&block) && inode.cached.len() >= end {
            inode.cached[start..end].copy_from_slice(&landed);
        }
        state.counts.misdirected_writes += 1;
        Ok(true)
    }

    /// What a power loss would certainly keep of the file `path` names now: its durable bytes.
    /// (The name itself may not be durable yet; see `durable_list_all`.)
    pub fn durable_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let id = state.lookup(path).ok()?;
        state.inodes.get(&id).map(|inode| inode.durable.clone())
    }

    /// What reads of `path` return now (page cache included), without faults.
    pub fn cached_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let id = state.lookup(path).ok()?;
        state.inodes.get(&id).map(|inode| inode.cached.clone())
    }

    /// Every file the process sees, sorted.
    pub fn list_all(&self) -> Vec<PathBuf> {
        self.lock().files(false)
    }

    /// Every file whose name is durable, sorted.
    pub fn durable_list_all(&self) -> Vec<PathBuf> {
        self.lock().files(true)
    }
}

impl Disk for SimDisk {
    type File = SimFile;

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        let mut state = self.lock();
        let (dir, name) = split(path)?;
        if state.dirs.contains_key(path) || state.lookup(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists", path.display()),
            ));
        }
        state.dir(dir)?;
        let id = state.next_inode;
        state.next_inode += 1;
        state.inodes.insert(id, Inode::default());
        state.dir(dir)?.change(vec![(name, Some(id))]);
        Ok(SimFile::new(self, &state, id))
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        let state = self.lock();
        let id = state.lookup(path)?;
        Ok(SimFile::new(self, &state, id))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.lookup(path)?;
        let (dir, name) = split(path)?;
        state.dir(dir)?.change(vec![(name, None)]);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let id = state.lookup(from)?;
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        if state.dirs.contains_key(to) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{}: is a directory", to.display()),
            ));
        }
        state.dir(to_dir)?;
        if from == to {
            return Ok(());
        }
        if from_dir == to_dir {
            let changes = vec![(from_name, None), (to_name, Some(id))];
            state.dir(from_dir)?.change(changes);
        } else {
            state.dir(from_dir)?.change(vec![(from_name, None)]);
            state.dir(to_dir)?.change(vec![(to_name, Some(id))]);
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        let entries = state.dirs.get(dir).ok_or_else(|| not_found(dir))?;
        let subdirs = state.dirs.keys().filter(|d| d.parent() == Some(dir));
        let subdirs = subdirs.filter_map(|d| d.file_name()?.to_str().map(str::to_owned));
        let mut names: Vec<String> = entries.visible.keys().cloned().chain(subdirs).collect();
        names.sort();
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let missing: Vec<&Path> = dir
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty() && !state.dirs.contains_key(*a))
            .collect();
        if let Some(file) = missing.iter().find(|a| state.lookup(a).is_ok()) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: a file is in the way", file.display()),
            ));
        }
        for ancestor in missing {
            state.dirs.insert(ancestor.to_path_buf(), Dir::default());
        }
        Ok(())
    }

    /// Like `create_dir_all`, immediately durable (directories are outside the fault model).
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let entries = state.dir(dir)?.visible.len();
        let subdirs = state.dirs.keys().any(|p| p.parent() == Some(dir));
        if entries > 0 || subdirs {
            return Err(io::Error::other(format!("{}: not empty", dir.display())));
        }
        state.dirs.remove(dir);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.dir(dir)?;
        if state.sync_faults()? {
            state.dir(dir)?.sync();
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let state = self.lock();
        state.dirs.contains_key(path) || state.lookup(path).is_ok()
    }

    fn sync_latency(&self) -> SyncLatency {
        let mut state = self.lock();
        let DiskLatency {
            sync_us,
            slow_sync_ms,
        } = state.latency;
        let mut total_us = sync_us / 2 + state.rng.below(sync_us + 1);
        if state.fault(Fault::SlowFsync) {
            total_us += slow_sync_ms * 1000;
        }
        let before_us = state.rng.below(total_us + 1);
        SyncLatency {
            before: Duration::from_micros(before_us),
            after: Duration::from_micros(total_us - before_us),
        }
    }
}

/// An open file of a `SimDisk`: an inode and the generation it was opened in.
pub struct SimFile {
    disk: SimDisk,
    inode: InodeId,
    generation: u64,
}

impl SimFile {
    fn new(disk: &SimDisk, state: &State, inode: InodeId) -> SimFile {
        SimFile {
            disk: disk.clone(),
            inode,
            generation: state.generation,
        }
    }
}

impl File for SimFile {
    type Mapping = SimMapping;

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let mut state = self.disk.lock();
        let inode = state.inode(self.generation, self.inode)?;
        let start = usize::try_from(pos)
            .unwrap_or(usize::MAX)
            .min(inode.cached.len());
        let n = buf.len().min(inode.cached.len() - start);
        if n > 0 && state.fault(Fault::ReadEio) {
            return Err(eio("read failed"));
        }
        let inode = state.inode(self.generation, self.inode)?;
        buf[..n].copy_from_slice(&inode.cached[start..start + n]);
        let cold = inode.first_cold(start, start + n);
        if n > 0 {
            state
                .inode(self.generation, self.inode)?
                .warm_up(start, start + n);
        }
        if let Some(block) = cold.filter(|_| state.fault(Fault::MisdirectedRead)) {
            // The device returned another block of the file for this one.
            let inode = state.inode(self.generation, self.inode)?;
            let blocks = inode.cached.len().div_ceil(BLOCK);
            if blocks > 1 {
                let other = (block + 1 + state.rng.below(blocks as u64 - 1) as usize) % blocks;
                let inode = state.inode(self.generation, self.inode)?;
                let from = (block * BLOCK).max(start);
                let to = ((block + 1) * BLOCK).min(start + n);
                for (i, pos) in (from..to).enumerate() {
                    let source = other * BLOCK + (from % BLOCK) + i;
                    buf[pos - start] = inode.cached.get(source).copied().unwrap_or(0);
                }
            }
        } else if let Some(block) = cold.filter(|_| state.fault(Fault::BitRot)) {
            // The flip lands in the cold block, as the device returned it; the page cache keeps
            // the block's true contents (the device re-reads it right, say after a retry).
            let from = (block * BLOCK).max(start) - start;
            let to = ((block + 1) * BLOCK).min(start + n) - start;
            let bit = from * 8 + state.rng.below((to - from) as u64 * 8) as usize;
            buf[bit / 8] ^= 1 << (bit % 8);
        }
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut state = self.disk.lock();
        state.inode(self.generation, self.inode)?;
        let pos = span(pos, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        if state.fault(Fault::Enospc) {
            return Err(io::ErrorKind::StorageFull.into());
        }
        let (data, result) = if state.fault(Fault::TornWrite) {
            let written = state.rng.below(buf.len() as u64) as usize;
            (&buf[..written], Err(eio("torn write")))
        } else {
            (buf, Ok(()))
        };
        state.inode(self.generation, self.inode)?.write(data, pos);
        result
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.disk.lock();
        state.inode(self.generation, self.inode)?;
        if state.sync_faults()? {
            state.inode(self.generation, self.inode)?.sync();
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut state = self.disk.lock();
        Ok(state.inode(self.generation, self.inode)?.cached.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.disk.lock();
        let current = state.inode(self.generation, self.inode)?.cached.len();
        let len = span(len, 0)?;
        if len > current && state.fault(Fault::Enospc) {
            return Err(io::ErrorKind::StorageFull.into());
        }
        state.inode(self.generation, self.inode)?.set_len(len);
        Ok(())
    }

    fn map(&self, len: u64) -> io::Result<SimMapping> {
        let mut state = self.disk.lock();
        let cached = &state.inode(self.generation, self.inode)?.cached;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let view = cached.get(..len).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "mapping past end of file")
        })?;
        let view = view.to_vec();
        drop(state);
        let file = SimFile {
            disk: self.disk.clone(),
            inode: self.inode,
            generation: self.generation,
        };
        Ok(SimMapping { view, file })
    }
}

/// A mapping of a `SimFile`: a memory copy whose writes also go to the file's page cache, as a
/// shared mmap's would. Unlike a real mmap, `bytes` does not see later `write_at`s to the file;
/// the engine writes a mapped region through the mapping only.
pub struct SimMapping {
    view: Vec<u8>,
    file: SimFile,
}

impl Mapping for SimMapping {
    fn bytes(&self) -> &[u8] {
        &self.view
    }

    /// # Panics
    /// When `pos + data.len()` exceeds the mapped length, as the trait documents.
    fn write(&mut self, pos: usize, data: &[u8]) {
        let end = pos + data.len();
        self.view[pos..end].copy_from_slice(data);
        let mut state = self.file.disk.lock();
        // A stale mapping belongs to a dead process: its stores never happen (and are counted).
        // Past a truncated end of file a real store would fault; the simulator drops it.
        if let Ok(inode) = state.inode(self.file.generation, self.file.inode) {
            if inode.cached.len() >= end {
                inode.write(data, pos);
            }
        }
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}
