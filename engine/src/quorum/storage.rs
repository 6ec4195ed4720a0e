//! raft-rs's `Storage`, kept in files on the `Disk` seam, durable before raft-rs is told so:
//!
//! - `raft.log`: the entries after the snapshot, one frame each: length (u32), CRC-32C of the
//!   body (u32), the body (the entry in raft's protobuf encoding). Appends are synced before
//!   `append` returns. Entries that conflict with the leader's are cut off (the file truncated at
//!   the first conflicting frame) before the new ones are written. At open, a torn or damaged
//!   frame ends the log there: only an unsynced append can have left one, so nothing that was
//!   acknowledged is cut.
//! - `raft.state`: the hard state (term, vote, commit) and the voters, written atomically
//!   (`io::write_atomically`: a temporary file, synced, renamed, the directory synced), before a
//!   vote or a term is acted on.
//! - `raft.snapshot`: the newest snapshot (index, term, voters, the metadata image), atomically.
//!   Taking one rewrites `raft.log` without the entries it covers (atomically too), so the log's
//!   size stays bounded.
//!
//! The files carry checksums; a damaged `raft.state` or `raft.snapshot` fails the open with an
//! error naming the file, since neither can be rebuilt from the others.

use std::io;
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::records::{Reader, Writer};
use crate::io::{write_atomically, Disk, File};

pub const LOG_FILE: &str = "raft.log";
pub const STATE_FILE: &str = "raft.state";
pub const SNAPSHOT_FILE: &str = "raft.snapshot";

/// Frame header: length and CRC.
const FRAME_HEADER_BYTES: usize = 8;
/// The largest entry body accepted at open (the controller's records are far smaller).
const ENTRY_BYTES_MAX: u32 = 64 << 20;

pub struct DiskStorage<D: Disk> {
    disk: D,
    dir: PathBuf,
    log: D::File,
    /// File position of each entry in `entries`, and the end of the last.
    positions: Vec<u64>,
    end: u64,
    /// The entries after `snapshot`'s index, in order.
    entries: Vec<Entry>,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

fn read_file<D: Disk>(disk: &D, path: &Path) -> io::Result<Option<Vec<u8>>> {
    if !disk.exists(path) {
        return Ok(None);
    }
    let file = disk.open(path)?;
    let mut bytes = vec![0; file.len()? as usize];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(Some(bytes))
}

/// `body` behind its CRC-32C.
fn sealed(body: Vec<u8>) -> Vec<u8> {
    let mut out = crc32c::crc32c(&body).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn unsealed<'a>(path: &Path, bytes: &'a [u8]) -> io::Result<&'a [u8]> {
    if bytes.len() < 4 {
        return Err(corrupt(path, "shorter than its checksum"));
    }
    let (crc, body) = bytes.split_at(4);
    if u32::from_be_bytes(crc.try_into().expect("4")) != crc32c::crc32c(body) {
        return Err(corrupt(path, "checksum mismatch"));
    }
    Ok(body)
}

fn write_voters(w: &mut Writer, conf: &ConfState) {
    w.u32(conf.voters.len() as u32);
    for &v in &conf.voters {
        w.u64(v);
    }
}

fn read_voters(r: &mut Reader) -> Result<ConfState, super::records::DecodeError> {
    let n = r.count()?;
    let voters = (0..n).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
    Ok(ConfState::from((voters, vec![])))
}

impl<D: Disk> DiskStorage<D> {
    /// Opens the quorum's files in `dir` (made if missing). A directory without state starts a
    /// fresh log whose voters are `voters`; an existing one keeps its own.
    ///
    /// # Errors
    /// IO errors, and a damaged state or snapshot file.
    pub fn open(disk: D, dir: &Path, voters: &[u64]) -> io::Result<DiskStorage<D>> {
        disk.create_dir_all(dir)?;
        let state_path = dir.join(STATE_FILE);
        let (hard_state, mut conf_state) = match read_file(&disk, &state_path)? {
            None => (
                HardState::default(),
                ConfState::from((voters.to_vec(), vec![])),
            ),
            Some(bytes) => {
                let body = unsealed(&state_path, &bytes)?;
                let mut r = Reader(body);
                let parsed = (|| {
                    let hs = HardState {
                        term: r.u64()?,
                        vote: r.u64()?,
                        commit: r.u64()?,
                        ..HardState::default()
                    };
                    Ok::<_, super::records::DecodeError>((hs, read_voters(&mut r)?))
                })();
                parsed.map_err(|e| corrupt(&state_path, e))?
            }
        };
        let snapshot_path = dir.join(SNAPSHOT_FILE);
        let mut snapshot = Snapshot::default();
        if let Some(bytes) = read_file(&disk, &snapshot_path)? {
            let body = unsealed(&snapshot_path, &bytes)?;
            let mut r = Reader(body);
            let parsed = (|| {
                let index = r.u64()?;
                let term = r.u64()?;
                let conf = read_voters(&mut r)?;
                let data = r.bytes()?.to_vec();
                Ok::<_, super::records::DecodeError>((index, term, conf, data))
            })();
            let (index, term, conf, data) = parsed.map_err(|e| corrupt(&snapshot_path, e))?;
            let meta = snapshot.mut_metadata();
            meta.index = index;
            meta.term = term;
            meta.set_conf_state(conf.clone());
            snapshot.data = data.into();
            conf_state = conf;
        }
        let log_path = dir.join(LOG_FILE);
        let log = if disk.exists(&log_path) {
            disk.open(&log_path)?
        } else {
            let file = disk.create(&log_path)?;
            disk.sync_dir(dir)?;
            file
        };
        let mut storage = DiskStorage {
            disk,
            dir: dir.to_path_buf(),
            log,
            positions: Vec::new(),
            end: 0,
            entries: Vec::new(),
            hard_state,
            conf_state,
            snapshot,
        };
        storage.read_log()?;
        // The commit index is synced with the hard state, the entries with the log: a commit
        // can only name entries that were synced before it was learned.
        let last = storage.last();
        if storage.hard_state.commit > last {
            return Err(corrupt(
                &state_path,
                format!(
                    "commit index {} is past the last entry {last}",
                    storage.hard_state.commit
                ),
            ));
        }
        Ok(storage)
    }

    /// Reads every whole, verified frame of the log; cuts a torn or damaged tail.
    fn read_log(&mut self) -> io::Result<()> {
        let path = self.dir.join(LOG_FILE);
        let len = self.log.len()?;
        let mut bytes = vec![0; len as usize];
        self.log.read_exact_at(&mut bytes, 0)?;
        let mut position = 0usize;
        let snapshot_index = self.snapshot.get_metadata().index;
        let mut cut_reason = None;
        while position < bytes.len() {
            let Some(header) = bytes.get(position..position + FRAME_HEADER_BYTES) else {
                cut_reason = Some("a partial frame header".to_owned());
                break;
            };
            let body_len = u32::from_be_bytes(header[..4].try_into().expect("4"));
            let crc = u32::from_be_bytes(header[4..].try_into().expect("4"));
            let start = position + FRAME_HEADER_BYTES;
            let Some(body) = (body_len <= ENTRY_BYTES_MAX)
                .then(|| bytes.get(start..start + body_len as usize))
                .flatten()
            else {
                cut_reason = Some(format!("a frame of {body_len} bytes past the end"));
                break;
            };
            if crc32c::crc32c(body) != crc {
                cut_reason = Some("a frame whose checksum fails".to_owned());
                break;
            }
            let entry = match Entry::parse_from_bytes(body) {
                Ok(entry) => entry,
                Err(e) => {
                    cut_reason = Some(format!("an entry that does not parse: {e}"));
                    break;
                }
            };
            let expected = snapshot_index + self.entries.len() as u64 + 1;
            if entry.index > snapshot_index {
                if entry.index != expected {
                    cut_reason = Some(format!("entry {} where {expected} was due", entry.index));
                    break;
                }
                self.positions.push(position as u64);
                self.entries.push(entry);
            }
            position = start + body_len as usize;
        }
        self.end = position as u64;
        if let Some(reason) = cut_reason {
            tracing::warn!(
                path = %path.display(),
                position,
                bytes = len - position as u64,
                reason,
                "cutting the metadata log's unsynced tail"
            );
            self.log.set_len(self.end)?;
            self.log.sync_data()?;
        }
        Ok(())
    }

    fn first(&self) -> u64 {
        self.snapshot.get_metadata().index + 1
    }

    fn last(&self) -> u64 {
        self.snapshot.get_metadata().index + self.entries.len() as u64
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Appends `entries` (cutting any entries from the first one's index on), durably.
    ///
    /// # Errors
    /// IO errors; entries that would leave a gap.
    pub fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        assert!(
            first.index > self.snapshot.get_metadata().index,
            "appending at {} into the snapshot",
            first.index
        );
        if first.index > self.last() + 1 {
            return Err(io::Error::other(format!(
                "entry {} would leave a gap after {}",
                first.index,
                self.last()
            )));
        }
        if first.index <= self.last() {
            let keep = (first.index - self.first()) as usize;
            assert!(
                first.index > self.hard_state.commit,
                "cutting committed entry {} (commit {})",
                first.index,
                self.hard_state.commit
            );
            self.end = self.positions[keep];
            self.positions.truncate(keep);
            self.entries.truncate(keep);
            self.log.set_len(self.end)?;
        }
        let mut bytes = Vec::new();
        let mut positions = Vec::with_capacity(entries.len());
        for entry in entries {
            let body = entry
                .write_to_bytes()
                .map_err(|e| io::Error::other(format!("encoding entry {}: {e}", entry.index)))?;
            positions.push(self.end + bytes.len() as u64);
            bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
            bytes.extend_from_slice(&body);
        }
        self.log.write_at(&bytes, self.end)?;
        self.log.sync_data()?;
        self.end += bytes.len() as u64;
        self.positions.extend(positions);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Makes `hard_state` durable, then takes it.
    ///
    /// # Errors
    /// IO errors.
    pub fn set_hard_state(&mut self, hard_state: HardState) -> io::Result<()> {
        assert!(
            hard_state.term >= self.hard_state.term,
            "the term went back from {} to {}",
            self.hard_state.term,
            hard_state.term
        );
        self.write_state(&hard_state, &self.conf_state.clone())?;
        self.hard_state = hard_state;
        Ok(())
    }

    /// Records a commit index learned after the entries were appended.
    ///
    /// # Errors
    /// IO errors.
    pub fn set_commit(&mut self, commit: u64) -> io::Result<()> {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.set_hard_state(hs)
    }

    fn write_state(&self, hs: &HardState, conf: &ConfState) -> io::Result<()> {
        let mut w = Writer(Vec::new());
        w.u64(hs.term);
        w.u64(hs.vote);
        w.u64(hs.commit);
        write_voters(&mut w, conf);
        write_atomically(&self.disk, &self.dir.join(STATE_FILE), &sealed(w.0))
    }

    fn write_snapshot(&self, snapshot: &Snapshot) -> io::Result<()> {
        let meta = snapshot.get_metadata();
        let mut w = Writer(Vec::new());
        w.u64(meta.index);
        w.u64(meta.term);
        write_voters(&mut w, meta.get_conf_state());
        w.bytes(&snapshot.data);
        write_atomically(&self.disk, &self.dir.join(SNAPSHOT_FILE), &sealed(w.0))
    }

    /// Rewrites the log without its first `covered` entries (now in the snapshot),
    /// atomically. Until the rewrite lands, a restart skips covered entries by their index.
    fn drop_front(&mut self, covered: usize) -> io::Result<()> {
        let start = self.positions.get(covered).copied().unwrap_or(self.end);
        let mut bytes = vec![0; (self.end - start) as usize];
        self.log.read_exact_at(&mut bytes, start)?;
        let path = self.dir.join(LOG_FILE);
        write_atomically(&self.disk, &path, &bytes)?;
        self.log = self.disk.open(&path)?;
        self.entries.drain(..covered);
        self.positions.drain(..covered);
        for p in &mut self.positions {
            *p -= start;
        }
        self.end -= start;
        Ok(())
    }

    /// Takes a snapshot of the state at `index` (applied, so committed): `data` is the image
    /// there. The entries it covers leave the log.
    ///
    /// # Errors
    /// IO errors.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> io::Result<()> {
        assert!(
            index <= self.hard_state.commit,
            "snapshot at {index} past the commit index {}",
            self.hard_state.commit
        );
        if index <= self.snapshot.get_metadata().index {
            return Ok(());
        }
        let term = self.term_of(index).map_err(io::Error::other)?;
        let mut snapshot = Snapshot::default();
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        snapshot.data = data.into();
        self.write_snapshot(&snapshot)?;
        let covered = (index + 1 - self.first()) as usize;
        self.snapshot = snapshot;
        self.drop_front(covered)
    }

    /// Installs a snapshot sent by the leader: the log is emptied (everything in it is older or
    /// conflicts), the state takes the snapshot's voters and commit.
    ///
    /// # Errors
    /// IO errors.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> io::Result<()> {
        let meta = snapshot.get_metadata();
        if meta.index <= self.snapshot.get_metadata().index {
            return Ok(());
        }
        self.write_snapshot(&snapshot)?;
        let conf = meta.get_conf_state().clone();
        let mut hs = self.hard_state.clone();
        hs.commit = hs.commit.max(meta.index);
        hs.term = hs.term.max(meta.term);
        self.write_state(&hs, &conf)?;
        self.hard_state = hs;
        self.conf_state = conf;
        let index = meta.index;
        self.snapshot = snapshot;
        self.drop_front(self.entries.len())?;
        debug_assert_eq!(self.last(), index);
        Ok(())
    }

    fn term_of(&self, index: u64) -> Result<u64, StorageError> {
        let snapshot = self.snapshot.get_metadata();
        if index == snapshot.index {
            return Ok(snapshot.term);
        }
        if index < snapshot.index {
            return Err(StorageError::Compacted);
        }
        match self.entries.get((index - self.first()) as usize) {
            Some(entry) => Ok(entry.term),
            None => Err(StorageError::Unavailable),
        }
    }
}

impl<D: Disk> raft::Storage for DiskStorage<D> {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let from = (low - self.first()) as usize;
        let to = (high - self.first()) as usize;
        let mut entries = self.entries[from..to].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        self.term_of(index).map_err(raft::Error::Store)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemDisk;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: format!("e{index}t{term}").into_bytes().into(),
            ..Entry::default()
        }
    }

    fn dir() -> PathBuf {
        PathBuf::from("/data/__cluster_metadata-0")
    }

    fn terms(s: &DiskStorage<MemDisk>) -> Vec<(u64, u64)> {
        s.entries.iter().map(|e| (e.index, e.term)).collect()
    }

    #[test]
    fn entries_and_state_survive_a_reopen_and_conflicts_are_cut() {
        let disk = MemDisk::new();
        let mut s = DiskStorage::open(disk.clone(), &dir(), &[1, 2, 3]).unwrap();
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]).unwrap();
        let hs = HardState {
            term: 2,
            vote: 3,
            commit: 1,
            ..HardState::default()
        };
        s.set_hard_state(hs.clone()).unwrap();
        s.append(&[entry(2, 2)]).unwrap();
        drop(s);
        let s = DiskStorage::open(disk, &dir(), &[9]).unwrap();
        assert_eq!(terms(&s), vec![(1, 1), (2, 2)]);
        assert_eq!(s.hard_state, hs);
        assert_eq!(s.conf_state.voters, vec![1, 2, 3]);
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_whole_frame() {
        let disk = MemDisk::new();
        let mut s = DiskStorage::open(disk.clone(), &dir(), &[1]).unwrap();
        s.append(&[entry(1, 1), entry(2, 1)]).unwrap();
        let (end, second) = (s.end, s.positions[1]);
        drop(s);
        let path = dir().join(LOG_FILE);
        let mut bytes = disk.file_bytes(&path).unwrap();
        for cut in 1..=(end - second) as usize {
            let mut torn = bytes.clone();
            torn.truncate(end as usize - cut);
            disk.set_file_bytes(&path, torn);
            let s = DiskStorage::open(disk.clone(), &dir(), &[1]).unwrap();
            assert_eq!(terms(&s), vec![(1, 1)], "cut {cut}");
        }
        // A flipped byte in the last frame's body is caught by its checksum.
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        disk.set_file_bytes(&path, bytes);
        let s = DiskStorage::open(disk, &dir(), &[1]).unwrap();
        assert_eq!(terms(&s), vec![(1, 1)]);
    }

    #[test]
    fn a_snapshot_bounds_the_log_and_survives_a_reopen() {
        let disk = MemDisk::new();
        let mut s = DiskStorage::open(disk.clone(), &dir(), &[1]).unwrap();
        let entries: Vec<Entry> = (1..=10).map(|i| entry(i, 1)).collect();
        s.append(&entries).unwrap();
        s.set_commit(8).unwrap();
        s.compact(6, b"image".to_vec()).unwrap();
        assert_eq!(s.first(), 7);
        drop(s);
        let s = DiskStorage::open(disk, &dir(), &[1]).unwrap();
        assert_eq!(terms(&s), vec![(7, 1), (8, 1), (9, 1), (10, 1)]);
        assert_eq!(s.snapshot.get_metadata().index, 6);
        assert_eq!(&s.snapshot.data[..], b"image");
        assert_eq!(
            raft::Storage::term(&s, 6).unwrap(),
            1,
            "the snapshot's term"
        );
        assert!(raft::Storage::term(&s, 5).is_err());
    }

    #[test]
    fn a_damaged_state_file_fails_the_open() {
        let disk = MemDisk::new();
        let mut s = DiskStorage::open(disk.clone(), &dir(), &[1]).unwrap();
        let hs = HardState {
            term: 4,
            ..HardState::default()
        };
        s.set_hard_state(hs).unwrap();
        drop(s);
        let path = dir().join(STATE_FILE);
        let mut bytes = disk.file_bytes(&path).unwrap();
        bytes[6] ^= 1;
        disk.set_file_bytes(&path, bytes);
        let error = DiskStorage::open(disk, &dir(), &[1])
            .err()
            .expect("refused");
        assert!(error.to_string().contains("raft.state"), "{error}");
    }
}
