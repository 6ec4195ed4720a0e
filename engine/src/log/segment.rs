//! One segment of a log: a `.log` file of batches and its two sparse indexes, all named by the
//! segment's base offset in 20 digits (`00000000000000000000.log`), as Kafka names them.
//!
//! Appends go to the end of the `.log` file through the page cache; every
//! `index_interval_bytes` an entry goes to the offset index (last offset of the batch, position
//! where it starts) and, when the segment's largest timestamp grew, to the time index. Lookups use
//! the indexes as hints and confirm every position by reading the batch header there, so a
//! damaged index can cost a longer scan but never a wrong answer.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{BatchHeader, HEADER_BYTES};
use super::index::{self, Entry, IndexFile, IndexKind};
use super::scan::{
    self, First, ScanError, ScanStop, ScannedBatch, Scanner, Verify, READ_ATTEMPTS_MAX,
};
use crate::io::{Disk, File};

pub const LOG_SUFFIX: &str = "log";
pub const INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";

/// `dir/{base_offset:020}.{suffix}`.
pub fn segment_path(dir: &Path, base_offset: u64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// `segment_path` with `.{stage}` appended when a stage is given.
pub fn staged_path(dir: &Path, base_offset: u64, suffix: &str, stage: Option<&str>) -> PathBuf {
    match stage {
        Some(stage) => dir.join(format!("{base_offset:020}.{suffix}.{stage}")),
        None => segment_path(dir, base_offset, suffix),
    }
}

/// The base offset named by a segment file name, and its suffix.
pub fn parse_segment_name(name: &str) -> Option<(u64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix))
}

/// Whether a segment's indexes have been checked since the segment was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexState {
    /// Opened from disk below the recovery point: not yet looked at.
    Unchecked,
    /// Built by this process, or checked and found sound.
    Trusted,
}

/// What an append tells the segment about the batch it writes.
#[derive(Debug, Clone, Copy)]
pub struct AppendedBatch {
    pub last_offset: u64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: u64,
}

/// Past this many bytes, a segment whose batches begin later must have offset index entries.
const SPARSE_INDEX_BYTES: u64 = 64 * 1024;

pub struct Segment<F: File> {
    base_offset: u64,
    dir: PathBuf,
    log: Arc<F>,
    /// Bytes of whole, valid batches: the append position.
    bytes: u64,
    index: IndexFile<F>,
    time_index: IndexFile<F>,
    index_state: IndexState,
    /// How many times this segment's indexes were rebuilt from the log.
    index_rebuilds: u64,
    bytes_since_index_entry: u64,
    /// The largest timestamp in the segment and the offset carrying it (-1 when unknown/empty).
    max_timestamp: i64,
    offset_of_max_timestamp: u64,
    /// The max timestamp of the first batch, which starts the segment's roll.ms clock.
    first_batch_timestamp: Option<i64>,
    /// Byte ranges (sorted, disjoint) whose batches this process has verified: written by it
    /// (validated before the write), scanned by recovery, or checked by a read. Zero-copy reads
    /// send only verified ranges; others are verified first.
    verified: Vec<(u64, u64)>,
    /// Whether compaction may have left holes between batches (see `Scanner::allowing_holes`).
    holes: bool,
    /// Every offset of this segment is below this: the next segment's base offset (`u64::MAX`
    /// while it is the last). Set by the log (`set_offset_limit`).
    offset_limit: u64,
    /// Damaged ranges found so far, by position (see `skip_damage`); in memory only, so each
    /// process finds them again when it first reads there.
    damage: BTreeMap<u64, Damage>,
}

/// Bytes of a segment that fail verification however often they are read (rot at rest, a
/// latent sector error), and the offsets they held: lost. Reads go on at `resume`, the next
/// batch that verifies, so the damage costs its own batches and no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    pub position: u64,
    pub bytes: u64,
    /// The lowest offset the damaged bytes may have held.
    pub first_offset: u64,
    /// Where batches verify again; `None` when nothing does before the segment's end.
    pub resume: Option<ScannedBatch>,
}

/// How many damaged ranges one lookup passes before it gives up (and answers an error).
pub const DAMAGE_SKIPS_MAX: u32 = 8;

/// What recovering a segment's tail found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailRecovery {
    pub next_offset: Option<u64>,
    /// Bytes cut off the end, with the reason, when the tail was torn or corrupt.
    pub truncated: Option<(u64, ScanStop)>,
    /// Flushed bytes (below the recovery point) failed verification: damage, not a torn tail.
    pub damaged_durable: bool,
}

impl<F: File> Segment<F> {
    /// Creates an empty segment's three files. The caller syncs the directory.
    ///
    /// # Errors
    /// IO errors; `AlreadyExists` if the segment's files exist.
    pub fn create<D: Disk<File = F>>(
        disk: &D,
        dir: &Path,
        base_offset: u64,
        index_bytes_max: usize,
    ) -> io::Result<Segment<F>> {
        Segment::create_staged(disk, dir, base_offset, index_bytes_max, None)
    }

    /// Creates an empty segment whose three files carry the extra suffix `stage` when given
    /// (`00000000000000000000.log.cleaned`): compaction writes a segment there before it swaps
    /// it in. The caller syncs the directory.
    ///
    /// # Errors
    /// IO errors; `AlreadyExists` if the `.log` file exists.
    pub fn create_staged<D: Disk<File = F>>(
        disk: &D,
        dir: &Path,
        base_offset: u64,
        index_bytes_max: usize,
        stage: Option<&str>,
    ) -> io::Result<Segment<F>> {
        let path = |suffix| staged_path(dir, base_offset, suffix, stage);
        let log = disk.create(&path(LOG_SUFFIX))?;
        let index = create_or_open(disk, &path(INDEX_SUFFIX))?;
        let time_index = create_or_open(disk, &path(TIME_INDEX_SUFFIX))?;
        Ok(Segment {
            base_offset,
            dir: dir.to_path_buf(),
            log: Arc::new(log),
            bytes: 0,
            index: IndexFile::open_mutable(IndexKind::Offset, index, 0, index_bytes_max)?,
            time_index: IndexFile::open_mutable(IndexKind::Time, time_index, 0, index_bytes_max)?,
            index_state: IndexState::Trusted,
            index_rebuilds: 0,
            bytes_since_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: None,
            verified: Vec::new(),
            damage: BTreeMap::new(),
            holes: false,
            offset_limit: u64::MAX,
        })
    }

    /// Opens an existing segment whose `.log` is trusted as it stands (it lies below the recovery
    /// point, or a valid clean-shutdown marker vouches for it). Indexes are mapped as found and
    /// checked on first use; a missing index file is created empty and rebuilt on first use.
    ///
    /// # Errors
    /// IO errors.
    pub fn open_trusted<D: Disk<File = F>>(
        disk: &D,
        dir: &Path,
        base_offset: u64,
    ) -> io::Result<Segment<F>> {
        let log = disk.open(&segment_path(dir, base_offset, LOG_SUFFIX))?;
        let bytes = log.len()?;
        let index = create_or_open(disk, &segment_path(dir, base_offset, INDEX_SUFFIX))?;
        let time_index = create_or_open(disk, &segment_path(dir, base_offset, TIME_INDEX_SUFFIX))?;
        let mut segment = Segment {
            base_offset,
            dir: dir.to_path_buf(),
            log: Arc::new(log),
            bytes,
            index: IndexFile::open_immutable(IndexKind::Offset, index)?,
            time_index: IndexFile::open_immutable(IndexKind::Time, time_index)?,
            index_state: IndexState::Unchecked,
            index_rebuilds: 0,
            bytes_since_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: None,
            verified: Vec::new(),
            damage: BTreeMap::new(),
            holes: false,
            offset_limit: u64::MAX,
        };
        segment.load_max_timestamp();
        Ok(segment)
    }

    /// The time index's last entry is the segment's largest timestamp (a closed segment gets a
    /// final entry at roll). Checked only loosely here; `check_indexes` judges the whole file.
    fn load_max_timestamp(&mut self) {
        let valid = index::valid_prefix(IndexKind::Time, self.time_index.bytes(), u64::MAX);
        if let Some(last) = valid.checked_sub(1).map(|i| self.time_index.entry(i)) {
            self.max_timestamp = last.key;
            self.offset_of_max_timestamp = self.base_offset + u64::from(last.value);
        }
    }

    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Lets scans of this segment accept holes between batches (the log has been compacted).
    pub fn set_holes(&mut self, holes: bool) {
        self.holes = holes;
    }

    /// Tells the segment the base offset of the one after it (`u64::MAX`: none), above which
    /// no batch of its own can lie: every scan of it, and the search for where batches go on
    /// after damage, takes a batch reaching it for damage (see `scan::Expect::below`).
    pub fn set_offset_limit(&mut self, limit: u64) {
        self.offset_limit = limit;
    }

    pub fn offset_limit(&self) -> u64 {
        self.offset_limit
    }

    pub fn holes(&self) -> bool {
        self.holes
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    pub fn log_file(&self) -> &Arc<F> {
        &self.log
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// The offset that carries `max_timestamp` (the batch's last offset after an index rebuild).
    pub fn offset_of_max_timestamp(&self) -> u64 {
        self.offset_of_max_timestamp
    }

    pub fn first_batch_timestamp(&self) -> Option<i64> {
        self.first_batch_timestamp
    }

    pub fn index_is_full(&self) -> bool {
        self.index.is_full() || self.time_index.is_full()
    }

    /// Writes `batch` (already validated, offsets assigned) at the end of the `.log` file.
    ///
    /// # Errors
    /// IO errors; after one the segment's size is unchanged, so the partial bytes will be
    /// overwritten by the next append or cut by recovery.
    pub fn append(
        &mut self,
        batch: &[u8],
        appended: AppendedBatch,
        index_interval_bytes: u64,
    ) -> io::Result<()> {
        debug_assert!(appended.last_offset >= self.base_offset);
        debug_assert!(appended.last_offset - self.base_offset <= u64::from(u32::MAX));
        if let Err(e) = self.log.write_at(batch, self.bytes) {
            // A failed write may have left part of the batch behind the end; cut it so the file
            // holds only whole batches (recovery would cut it too, but `keel check` would flag it).
            let _ = self.log.set_len(self.bytes);
            return Err(e);
        }
        self.track_appended(
            self.bytes,
            batch.len() as u64,
            appended,
            index_interval_bytes,
        );
        // The batch was validated (CRC included) before it was written: fetches may send these
        // bytes without reading them back.
        self.mark_verified(self.bytes, self.bytes + batch.len() as u64);
        self.bytes += batch.len() as u64;
        Ok(())
    }

    /// Updates timestamps and indexes for a batch now at `position` (append and rebuild share it).
    fn track_appended(
        &mut self,
        position: u64,
        batch_bytes: u64,
        appended: AppendedBatch,
        index_interval_bytes: u64,
    ) {
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(appended.max_timestamp);
        }
        self.track_timestamp(appended.max_timestamp, appended.offset_of_max_timestamp);
        if self.bytes_since_index_entry > index_interval_bytes {
            self.index.append(Entry {
                key: (appended.last_offset - self.base_offset) as i64,
                value: position as u32,
            });
            self.append_time_entry();
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += batch_bytes;
    }

    /// Counts a batch whose largest timestamp is `max_timestamp`, held at `offset`.
    fn track_timestamp(&mut self, max_timestamp: i64, offset: u64) {
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = offset;
        }
    }

    fn append_time_entry(&mut self) {
        let newer = self
            .time_index
            .last()
            .is_none_or(|last| self.max_timestamp > last.key);
        if newer && self.max_timestamp >= 0 {
            self.time_index.append(Entry {
                key: self.max_timestamp,
                value: (self.offset_of_max_timestamp - self.base_offset) as u32,
            });
        }
    }

    /// The header of the batch at `position`, `None` if there is no plausible batch there.
    ///
    /// # Errors
    /// IO errors.
    pub fn header_at(&self, position: u64) -> io::Result<Option<BatchHeader>> {
        if position + HEADER_BYTES as u64 > self.bytes {
            return Ok(None);
        }
        let mut bytes = [0u8; HEADER_BYTES];
        self.log.read_exact_at(&mut bytes, position)?;
        let Ok(header) = BatchHeader::parse(&bytes) else {
            return Ok(None);
        };
        let fits = header
            .total_bytes()
            .is_some_and(|total| position + total as u64 <= self.bytes);
        Ok((fits && header.base_offset >= self.base_offset as i64).then_some(header))
    }

    /// The first batch whose last offset is at least `offset`, with its position; `None` when
    /// every batch of the segment ends before `offset`.
    ///
    /// # Errors
    /// IO errors, or the segment's bytes stop parsing as batches before the answer.
    pub fn find_batch(&mut self, offset: u64) -> io::Result<Option<ScannedBatch>> {
        let (start, first) = self.index_hint(offset)?;
        let log = Arc::clone(&self.log);
        let mut walk = HeaderWalk::new(start, first, DAMAGE_SKIPS_MAX);
        let mut scanner = walk.scanner(&*log, self);
        loop {
            match self.walk_step(&*log, &mut scanner, &mut walk)? {
                Step::Batch(batch) if batch.header.last_offset() as u64 >= offset => {
                    return Ok(Some(batch))
                }
                Step::Batch(_) | Step::Restarted => {}
                Step::End => return Ok(None),
            }
        }
    }

    /// The next batch of a header walk, going on past damage: a batch known to be damaged is
    /// replaced by where reads resume; at the first stop the walk is made once more from its
    /// start (a header read wrong earlier, its length say, can send it astray, and the place
    /// it stops then reads wrong every time), and only then is the stop judged damage, which
    /// costs its own batches (`damage_after`). `Restarted` tells the caller to forget what the
    /// walk gave it so far.
    ///
    /// # Errors
    /// IO errors, and more damaged ranges than the walk may pass.
    fn walk_step<'a>(
        &mut self,
        log: &'a F,
        scanner: &mut Scanner<'a, F>,
        walk: &mut HeaderWalk,
    ) -> io::Result<Step> {
        let batch = match scanner.next_batch() {
            Ok(Some(batch)) => match self.known_resume(&batch) {
                Some(resumed) => {
                    scanner.resume_after(&resumed);
                    resumed
                }
                None => batch,
            },
            Ok(None) => return Ok(Step::End),
            Err(ScanError::Stop(_)) if !walk.walked_again => {
                walk.walked_again = true;
                walk.previous = None;
                *scanner = walk.scanner(log, self);
                return Ok(Step::Restarted);
            }
            Err(ScanError::Stop(stop)) if walk.skips < walk.skips_max => {
                walk.skips += 1;
                let expected = scanner
                    .expected_base()
                    .or_else(|| first_after(walk.first))
                    .unwrap_or(self.base_offset);
                let Some(resumed) = self.damage_after(walk.previous, stop.position, expected)?
                else {
                    return Ok(Step::End);
                };
                scanner.resume_after(&resumed);
                resumed
            }
            Err(e) => return Err(e.into_io(&self.path(LOG_SUFFIX))),
        };
        walk.previous = Some(batch);
        Ok(Step::Batch(batch))
    }

    /// Where reads go on when `batch` is known to be damaged (see `skip_damage`).
    fn known_resume(&self, batch: &ScannedBatch) -> Option<ScannedBatch> {
        self.damage.get(&batch.position).and_then(|d| d.resume)
    }

    /// A header walk stopped at `position`, after `previous` (the last batch it took, by its
    /// header only). Either the bytes at `position` are damaged, or `previous` is, its length
    /// field included, which sent the walk to the wrong place: its CRC decides, and the search
    /// for the next batch starts at the damaged one, for batches from its own offsets on.
    fn damage_after(
        &mut self,
        previous: Option<ScannedBatch>,
        position: u64,
        expected_base: u64,
    ) -> io::Result<Option<ScannedBatch>> {
        if let Some(previous) = previous {
            if !self.crc_ok(&previous)? {
                // Its offsets may still be found further on: a block the device wrote to the
                // wrong place can hold a copy of them, cut off where the block ends, while the
                // batches themselves lie intact after it.
                let base = previous.header.base_offset as u64;
                return self.skip_damage(previous.position, base, base);
            }
        }
        self.skip_damage(position, expected_base, expected_base)
    }

    /// Whether `batch` passes its CRC, reading again before saying no.
    fn crc_ok(&self, batch: &ScannedBatch) -> io::Result<bool> {
        let mut bytes = vec![0u8; batch.total_bytes as usize];
        for _ in 0..READ_ATTEMPTS_MAX {
            self.log.read_exact_at(&mut bytes, batch.position)?;
            if crate::log::batch::crc_ok(&bytes, &batch.header) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Damage found at `position` (bytes that fail verification after every read, holding
    /// records from `lost_from`): records it, logs the range lost, and returns the next batch
    /// that verifies (see `scan::resync`), whose base offset is at least `expected_base`; `None`
    /// when nothing verifies before the segment's end. A range skipped before is not searched
    /// again.
    ///
    /// # Errors
    /// IO errors.
    pub fn skip_damage(
        &mut self,
        position: u64,
        lost_from: u64,
        expected_base: u64,
    ) -> io::Result<Option<ScannedBatch>> {
        self.skip_damage_before(position, lost_from, expected_base, self.bytes)
    }

    /// `skip_damage`, searching the file up to `end` (recovery looks past the bytes it has
    /// taken so far).
    fn skip_damage_before(
        &mut self,
        position: u64,
        lost_from: u64,
        expected_base: u64,
        end: u64,
    ) -> io::Result<Option<ScannedBatch>> {
        // Only a resume point found is kept: "nothing verifies after it" may have been a read
        // that went wrong, and must not make what follows unreachable for good.
        if let Some(resume) = self.damage.get(&position).and_then(|known| known.resume) {
            return Ok(Some(resume));
        }
        let expect = scan::Expect {
            base: expected_base,
            below: self.offset_limit,
            holes: self.holes,
        };
        let resume = scan::resync(&*self.log, position, end, expect)?;
        let end = resume.map_or(end, |batch| batch.position);
        let damage = Damage {
            position,
            bytes: end - position,
            first_offset: lost_from,
            resume,
        };
        match resume {
            Some(batch) => {
                self.mark_verified(batch.position, batch.position + batch.total_bytes);
                tracing::warn!(
                    segment = %self.path(LOG_SUFFIX).display(),
                    position,
                    bytes = damage.bytes,
                    first_lost = lost_from,
                    resumes_at = batch.header.base_offset,
                    "damaged batches skipped: the records from {lost_from} up to {} are lost",
                    batch.header.base_offset
                );
            }
            None => tracing::warn!(
                segment = %self.path(LOG_SUFFIX).display(),
                position,
                bytes = damage.bytes,
                first_lost = lost_from,
                "damaged bytes up to the end of the segment: the records from {lost_from} in it are lost"
            ),
        }
        self.damage.insert(position, damage);
        Ok(resume)
    }

    /// The damaged ranges found so far, in order.
    pub fn damage(&self) -> impl Iterator<Item = &Damage> {
        self.damage.values()
    }

    /// Where to start scanning for `offset`: the index's floor entry, confirmed by the header
    /// found there, or the start of the segment.
    fn index_hint(&mut self, offset: u64) -> io::Result<(u64, First)> {
        self.check_indexes()?;
        let from_start = (0, First::Base(self.base_offset));
        let relative = offset.saturating_sub(self.base_offset);
        let Some(entry) = self.index.floor(relative.saturating_sub(1) as i64) else {
            return Ok(from_start);
        };
        let position = u64::from(entry.value);
        let expected_last = self.base_offset + entry.key as u64;
        match self.batch_ends_at(position, expected_last)? {
            true => Ok((position, First::Last(expected_last))),
            false => {
                tracing::warn!(
                    segment = %self.path(INDEX_SUFFIX).display(),
                    position,
                    "index entry does not match the log; rebuilding the indexes"
                );
                self.rebuild_indexes()?;
                Ok(from_start)
            }
        }
    }

    /// Whether the batch at `position` ends at offset `last`, reading again before saying no.
    fn batch_ends_at(&self, position: u64, last: u64) -> io::Result<bool> {
        for _ in 0..READ_ATTEMPTS_MAX {
            if self
                .header_at(position)?
                .is_some_and(|h| h.last_offset() as u64 == last)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// On first use of a segment opened from disk: if its indexes do not look like what keel
    /// writes, rebuild them from the log.
    fn check_indexes(&mut self) -> io::Result<()> {
        if self.index_state == IndexState::Trusted {
            return Ok(());
        }
        let offset_ok = index::valid_prefix(IndexKind::Offset, self.index.bytes(), self.bytes)
            == self.index.len();
        let time_ok = index::valid_prefix(IndexKind::Time, self.time_index.bytes(), u64::MAX)
            == self.time_index.len();
        // An empty offset index is right for a segment whose batches all begin within the
        // first SPARSE_INDEX_BYTES (one large batch, say): every index.interval.bytes keel
        // takes is below that, and only a batch that begins past the interval gets an entry.
        let sparse = self.index.is_empty()
            && self.bytes > SPARSE_INDEX_BYTES
            && !self.batches_begin_within(SPARSE_INDEX_BYTES)?;
        if offset_ok && time_ok && !sparse {
            self.index_state = IndexState::Trusted;
            return Ok(());
        }
        tracing::warn!(
            segment = %self.path(LOG_SUFFIX).display(),
            "damaged or missing index; rebuilding it from the log"
        );
        self.rebuild_indexes()
    }

    /// Whether every batch of the segment begins within its first `limit` bytes, read from the
    /// headers (a few reads: the walk stops past `limit`). A header that does not read right
    /// says no, and the indexes are rebuilt from a scan that verifies.
    fn batches_begin_within(&self, limit: u64) -> io::Result<bool> {
        let mut position = 0;
        while position < self.bytes {
            if position > limit {
                return Ok(false);
            }
            let Some(size) = self.header_at(position)?.and_then(|h| h.total_bytes()) else {
                return Ok(false);
            };
            position += size as u64;
        }
        Ok(position == self.bytes)
    }

    /// How many times this segment's indexes were rebuilt from the log.
    pub fn index_rebuilds(&self) -> u64 {
        self.index_rebuilds
    }

    /// Rebuilds both indexes of a trusted, closed segment by walking its batch headers.
    fn rebuild_indexes(&mut self) -> io::Result<()> {
        self.index_rebuilds += 1;
        let index_bytes = self.bytes_needed_for_rebuild();
        self.reset_indexes(index_bytes)?;
        let log = Arc::clone(&self.log);
        let interval = crate::log::config::INDEX_INTERVAL_BYTES_DEFAULT;
        // A rebuild never makes readable batches unreachable: it goes on past any damage.
        let mut walk = HeaderWalk::new(0, First::Base(self.base_offset), u32::MAX);
        let mut scanner = walk.scanner(&*log, self);
        loop {
            match self.walk_step(&*log, &mut scanner, &mut walk)? {
                Step::Batch(batch) => self.track_scanned(&batch, interval),
                Step::Restarted => self.reset_indexes(index_bytes)?,
                Step::End => break,
            }
        }
        self.finish_indexes()
    }

    /// Enough index space for one entry per `interval` bytes of log, at least one page.
    fn bytes_needed_for_rebuild(&self) -> usize {
        let entries = (self.bytes / 1024 + 2) as usize;
        (entries * index::TIME_ENTRY_BYTES).max(4096)
    }

    fn reset_indexes(&mut self, index_bytes: usize) -> io::Result<()> {
        self.index.make_mutable(0, index_bytes)?;
        self.time_index.make_mutable(0, index_bytes)?;
        self.bytes_since_index_entry = 0;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.first_batch_timestamp = None;
        Ok(())
    }

    fn track_scanned(&mut self, batch: &ScannedBatch, interval: u64) {
        let header = &batch.header;
        let appended = AppendedBatch {
            last_offset: header.last_offset() as u64,
            max_timestamp: header.max_timestamp,
            offset_of_max_timestamp: header.last_offset() as u64,
        };
        self.track_appended(batch.position, batch.total_bytes, appended, interval);
    }

    /// Closes a rebuilt index: a final time entry, then trim and mark trusted.
    fn finish_indexes(&mut self) -> io::Result<()> {
        self.append_time_entry();
        self.trim_indexes()?;
        self.index_state = IndexState::Trusted;
        Ok(())
    }

    fn trim_indexes(&mut self) -> io::Result<()> {
        self.index.trim()?;
        self.time_index.trim()
    }

    /// Recovers the segment's tail from `position` (a batch boundary below which the bytes are
    /// trusted): every batch from there on must parse and pass its CRC; the first that does not,
    /// and everything after it, is cut off (a torn, unflushed tail). Except below
    /// `durable_below`, the recovery point: bytes that were flushed and fail now are damage, and
    /// recovery goes on at the next batch that verifies and starts below the recovery point, or
    /// at a sound batch right where the walk stopped (`skip_damage`), instead of cutting flushed
    /// records after the damaged ones. Indexes are
    /// rebuilt from `position` on.
    ///
    /// # Errors
    /// IO errors.
    pub fn recover_tail(
        &mut self,
        (position, first): (u64, First),
        index_interval_bytes: u64,
        index_bytes_max: usize,
        durable_below: u64,
    ) -> io::Result<TailRecovery> {
        let file_bytes = self.log.len()?;
        self.keep_index_entries_below(position, index_bytes_max)?;
        let log = Arc::clone(&self.log);
        let mut scanner = Scanner::new(&*log, position, file_bytes, Verify::Crc)
            .expecting(first)
            .allowing_holes(self.holes)
            .ending_below(self.offset_limit);
        let mut next_offset = None;
        let mut damaged_durable = false;
        let stop = loop {
            match scanner.next_batch() {
                Ok(Some(batch)) => {
                    next_offset = Some(batch.header.last_offset() as u64 + 1);
                    self.track_scanned(&batch, index_interval_bytes);
                }
                Ok(None) => break None,
                Err(ScanError::Io(e)) => return Err(e),
                Err(ScanError::Stop(stop)) => {
                    // The failing batch's first offset, or (after an index entry) its last.
                    let (held, expected) = match (scanner.expected_base(), first) {
                        (Some(expected), _) => (expected, expected),
                        (None, First::Base(base)) => (base, base),
                        (None, First::Last(last)) => (last, last + 1),
                    };
                    if held >= durable_below {
                        break Some(stop);
                    }
                    damaged_durable = true;
                    // Recovery goes on at a flushed batch, or at a sound one right where the walk
                    // stopped (after a hole that damage left earlier); not at bytes past a torn,
                    // unflushed stretch, which would keep records newer than lost ones.
                    let resumed = self
                        .skip_damage_before(stop.position, expected, expected, file_bytes)?
                        .filter(|b| {
                            (b.header.base_offset as u64) < durable_below
                                || b.position == stop.position
                        });
                    let Some(resumed) = resumed else {
                        break Some(stop);
                    };
                    scanner.resume_after(&resumed);
                    next_offset = Some(resumed.header.last_offset() as u64 + 1);
                    self.track_scanned(&resumed, index_interval_bytes);
                }
            }
        };
        self.bytes = scanner.position();
        self.mark_verified(position, self.bytes);
        self.clip_verified(self.bytes);
        // Damaged bytes were not verified: reads of them are checked, and skip them again.
        let damaged: Vec<(u64, u64)> = self
            .damage
            .values()
            .map(|d| (d.position, d.position + d.bytes))
            .collect();
        for (start, end) in damaged {
            self.forget_verified(start, end);
        }
        let truncated = match stop {
            Some(stop) => {
                self.log.set_len(self.bytes)?;
                Some((file_bytes - self.bytes, stop))
            }
            None => None,
        };
        self.index_state = IndexState::Trusted;
        Ok(TailRecovery {
            next_offset,
            truncated,
            damaged_durable,
        })
    }

    /// Keeps the index entries that point below `position` (they describe trusted bytes) and
    /// makes the indexes appendable again. The time entries kept end with the last batch the
    /// offset index still names; the trusted batches after it, up to `position`, are counted
    /// again from their headers (`track_trusted`), since the scan from `position` does not see
    /// them.
    fn keep_index_entries_below(
        &mut self,
        position: u64,
        index_bytes_max: usize,
    ) -> io::Result<()> {
        let offset_entries = index::valid_prefix(IndexKind::Offset, self.index.bytes(), position);
        self.index.make_mutable(offset_entries, index_bytes_max)?;
        // The position and last offset of the last batch the offset index still names.
        let indexed = self
            .index
            .last()
            .map(|e| (u64::from(e.value), self.base_offset + e.key as u64));
        let time_valid = index::valid_prefix(IndexKind::Time, self.time_index.bytes(), u64::MAX);
        let time_entries = match indexed {
            // Without an offset entry the walk below counts every batch from the start.
            None => 0,
            Some((_, limit)) => (0..time_valid)
                .take_while(|&i| {
                    self.base_offset + u64::from(self.time_index.entry(i).value) <= limit
                })
                .count(),
        };
        self.time_index
            .make_mutable(time_entries, index_bytes_max)?;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        if let Some(last) = self.time_index.last() {
            self.max_timestamp = last.key;
            self.offset_of_max_timestamp = self.base_offset + u64::from(last.value);
        }
        self.bytes = position;
        let (start, first) = indexed.map_or((0, First::Base(self.base_offset)), |(at, last)| {
            (at, First::Last(last))
        });
        self.track_trusted(start, first, position)
    }

    /// Counts the trusted batches from `start` (the batch `first` names) up to `position` as if
    /// they had just been appended: their largest timestamp, and their bytes towards the next
    /// offset-index entry; and takes the first batch's timestamp (segment.ms rolls by it) from
    /// the segment's start. Headers only, and few: they follow the last index entry kept.
    /// Without this, recovery forgot the timestamps of the batches between that entry and the
    /// recovery start. When one of them held the segment's newest timestamp, time lookups skipped
    /// records, ListOffsets for the max timestamp answered an older record, the final time entry
    /// at roll said less than the segment held, and time retention deleted the segment before
    /// its newest record was retention.ms old.
    ///
    /// # Errors
    /// IO errors.
    fn track_trusted(&mut self, start: u64, first: First, position: u64) -> io::Result<()> {
        assert!(
            start <= position,
            "an index entry kept points below the recovery start"
        );
        self.first_batch_timestamp = None;
        if position > 0 {
            self.first_batch_timestamp = self.header_at(0)?.map(|h| h.max_timestamp);
        }
        let log = Arc::clone(&self.log);
        let mut scanner = Scanner::new(&*log, start, position, Verify::Header)
            .expecting(first)
            .allowing_holes(self.holes)
            .ending_below(self.offset_limit);
        loop {
            match scanner.next_batch() {
                Ok(Some(batch)) => {
                    let header = &batch.header;
                    self.track_timestamp(header.max_timestamp, header.last_offset() as u64);
                }
                Ok(None) => break,
                Err(ScanError::Io(e)) => return Err(e),
                // Damage below the recovery start: what its header says cannot be believed, and
                // the scan from `position` (or recovery of the whole segment) settles it.
                Err(ScanError::Stop(_)) => break,
            }
        }
        // As after an index entry at `start`: its batch and those after it are not indexed yet.
        self.bytes_since_index_entry = position - start;
        Ok(())
    }

    /// The position of the last offset-index entry below `offset` whose batch is there, a batch
    /// boundary from which recovery may start scanning, with what that batch must be; the start
    /// of the segment when there is none.
    pub fn recovery_start(&self, offset: u64) -> (u64, First) {
        let valid = index::valid_prefix(IndexKind::Offset, self.index.bytes(), self.bytes);
        let relative = offset.saturating_sub(self.base_offset) as i64;
        let entry = (0..valid)
            .map(|i| self.index.entry(i))
            .take_while(|e| e.key < relative)
            .last();
        let from_start = (0, First::Base(self.base_offset));
        let Some(entry) = entry else {
            return from_start;
        };
        let position = u64::from(entry.value);
        let last = self.base_offset + entry.key as u64;
        // An index entry is a hint: if the batch there is not the one it names, scan from the
        // start rather than cut good data.
        match self.batch_ends_at(position, last) {
            Ok(true) => (position, First::Last(last)),
            _ => from_start,
        }
    }

    /// Makes the active segment appendable after it was opened as trusted (clean shutdown).
    ///
    /// # Errors
    /// IO errors.
    pub fn make_active(&mut self, index_bytes_max: usize) -> io::Result<()> {
        self.check_indexes()?;
        let entries = self.index.len();
        self.index.make_mutable(entries, index_bytes_max)?;
        let time_entries = self.time_index.len();
        self.time_index
            .make_mutable(time_entries, index_bytes_max)?;
        // Count from the start of the last indexed batch: at most one batch early.
        let last_indexed = self.index.last().map_or(0, |e| u64::from(e.value));
        self.bytes_since_index_entry = self.bytes - last_indexed;
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = self.header_at(0)?.map(|h| h.max_timestamp);
        }
        Ok(())
    }

    /// Cuts the segment so that it keeps only batches ending below `offset`, durably; returns
    /// the base offset of the first batch removed (the new next offset), or `None` when no batch
    /// reaches `offset`.
    ///
    /// # Errors
    /// IO errors.
    pub fn truncate_to(&mut self, offset: u64) -> io::Result<Option<u64>> {
        let Some(batch) = self.find_batch(offset)? else {
            return Ok(None);
        };
        let position = batch.position;
        self.log.set_len(position)?;
        self.log.sync_data()?;
        let end = position;
        let relative = offset.saturating_sub(self.base_offset) as i64;
        let offset_entries = (0..self.index.len())
            .take_while(|&i| {
                let e = self.index.entry(i);
                u64::from(e.value) < end && e.key < relative
            })
            .count();
        self.index.truncate_entries(offset_entries);
        let time_entries = (0..self.time_index.len())
            .take_while(|&i| i64::from(self.time_index.entry(i).value) < relative)
            .count();
        self.time_index.truncate_entries(time_entries);
        self.bytes = end;
        self.clip_verified(end);
        self.recompute_after_truncate()?;
        Ok(Some(batch.header.base_offset as u64))
    }

    /// After a truncation the max timestamp and index spacing must describe what remains.
    fn recompute_after_truncate(&mut self) -> io::Result<()> {
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.first_batch_timestamp = None;
        let log = Arc::clone(&self.log);
        let mut scanner = Scanner::new(&*log, 0, self.bytes, Verify::Header)
            .expecting(First::Base(self.base_offset))
            .allowing_holes(self.holes)
            .ending_below(self.offset_limit);
        let mut since_entry = 0;
        let last_indexed = self.index.last().map(|e| u64::from(e.value));
        while let Some(batch) = scanner
            .next_batch()
            .map_err(|e| e.into_io(&self.path(LOG_SUFFIX)))?
        {
            let header = batch.header;
            if self.first_batch_timestamp.is_none() {
                self.first_batch_timestamp = Some(header.max_timestamp);
            }
            self.track_timestamp(header.max_timestamp, header.last_offset() as u64);
            since_entry = if Some(batch.position) == last_indexed {
                0
            } else {
                since_entry
            } + batch.total_bytes;
        }
        self.bytes_since_index_entry = since_entry;
        Ok(())
    }

    /// The next offset after the last batch (scans from the last index entry).
    ///
    /// # Errors
    /// IO errors or unparsable bytes.
    pub fn next_offset(&mut self) -> io::Result<Option<u64>> {
        let (start, first) = self.index_hint(u64::MAX)?;
        let mut scanner = Scanner::new(&*self.log, start, self.bytes, Verify::Header)
            .expecting(first)
            .allowing_holes(self.holes)
            .ending_below(self.offset_limit);
        let mut next = None;
        while let Some(batch) = scanner
            .next_batch()
            .map_err(|e| e.into_io(&self.path(LOG_SUFFIX)))?
        {
            next = Some(batch.header.last_offset() as u64 + 1);
        }
        Ok(next)
    }

    /// Ends the segment's active life: a final time-index entry, indexes trimmed to their
    /// entries (Kafka's roll).
    ///
    /// # Errors
    /// IO errors.
    pub fn close_active(&mut self) -> io::Result<()> {
        if self.log.len()? > self.bytes {
            self.log.set_len(self.bytes)?;
        }
        self.append_time_entry();
        self.trim_indexes()
    }

    /// Makes the segment's bytes and indexes durable.
    ///
    /// # Errors
    /// IO errors.
    pub fn flush(&self) -> io::Result<()> {
        self.log.sync_data()?;
        self.flush_indexes()
    }

    /// Syncs the two indexes (the log file is synced apart, see `Log::begin_flush`).
    pub fn flush_indexes(&self) -> io::Result<()> {
        self.index.flush()?;
        self.time_index.flush()
    }

    pub fn path(&self, suffix: &str) -> PathBuf {
        segment_path(&self.dir, self.base_offset, suffix)
    }

    /// Removes the segment's files. The caller syncs the directory.
    ///
    /// # Errors
    /// IO errors other than a file already missing.
    pub fn delete<D: Disk<File = F>>(self, disk: &D) -> io::Result<()> {
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            match disk.remove(&self.path(suffix)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Offsets and positions of the offset index, for `keel check`.
    pub fn index_entries(&self) -> (usize, usize) {
        (self.index.len(), self.time_index.len())
    }

    /// The first batch that ends at or after `from_offset` and whose max timestamp is at least
    /// `timestamp`, found through the time index.
    ///
    /// # Errors
    /// IO errors or unparsable bytes.
    pub fn find_by_timestamp(
        &mut self,
        timestamp: i64,
        from_offset: u64,
    ) -> io::Result<Option<ScannedBatch>> {
        self.check_indexes()?;
        // Records up to an entry whose timestamp is below `timestamp` are all older, so the scan
        // may start there. No timestamp is below i64::MIN: then the scan starts at the base.
        let start_offset = timestamp
            .checked_sub(1)
            .and_then(|below| self.time_index.floor(below))
            .map_or(self.base_offset, |e| self.base_offset + u64::from(e.value))
            .max(from_offset);
        let (start, first) = self.index_hint(start_offset)?;
        let mut scanner = Scanner::new(&*self.log, start, self.bytes, Verify::Header)
            .expecting(first)
            .allowing_holes(self.holes)
            .ending_below(self.offset_limit);
        while let Some(batch) = scanner
            .next_batch()
            .map_err(|e| e.into_io(&self.path(LOG_SUFFIX)))?
        {
            let ends_after = batch.header.last_offset() as u64 >= from_offset;
            if ends_after && batch.header.max_timestamp >= timestamp {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }
}

fn create_or_open<D: Disk>(disk: &D, path: &Path) -> io::Result<D::File> {
    match disk.create(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => disk.open(path),
        other => other,
    }
}

impl<F: File> Segment<F> {
    /// Whole batches from `first` on, within `bytes_max` bytes (at least `first` itself) and
    /// ending below `offset_limit`. The offset index supplies a batch boundary near the byte
    /// limit, so only the last few headers are read: the record bytes themselves are not touched.
    ///
    /// # Errors
    /// IO errors, or unparsable bytes where batches should be.
    pub fn slice_from(
        &mut self,
        first: ScannedBatch,
        bytes_max: u64,
        offset_limit: u64,
    ) -> io::Result<super::LogSlice<F>> {
        let limit_position = first.position.saturating_add(bytes_max).min(self.bytes);
        let mut end = first.position + first.total_bytes;
        let mut next_offset = first.header.last_offset() as u64 + 1;
        if let Some(jump) = self.boundary_before(limit_position, offset_limit, end) {
            end = jump.0;
            next_offset = jump.1;
        }
        // The scan runs to the segment's end, not to the byte limit: a batch that crosses the
        // limit ends the slice, and is no reason to read the bytes again as a torn one would be.
        let mut scanner = Scanner::new(&*self.log, end, self.bytes, Verify::Header)
            .expecting(First::Base(next_offset))
            .allowing_holes(self.holes)
            .ending_below(self.offset_limit);
        loop {
            match scanner.next_batch() {
                Ok(Some(batch))
                    if (batch.header.last_offset() as u64) < offset_limit
                        && batch.position + batch.total_bytes <= limit_position =>
                {
                    end = batch.position + batch.total_bytes;
                    next_offset = batch.header.last_offset() as u64 + 1;
                }
                Ok(_) | Err(ScanError::Stop(_)) => break,
                Err(ScanError::Io(e)) => return Err(e),
            }
        }
        Ok(super::LogSlice {
            file: Arc::clone(&self.log),
            position: first.position,
            bytes: end - first.position,
            first_offset: first.header.base_offset as u64,
            next_offset,
        })
    }

    /// The start of the last indexed batch that begins after `after` and lies wholly before both
    /// limits, with the offset it starts at (the previous batch's end). Index entries name a
    /// batch's last offset and start position; the batch before an entry ends where it starts.
    fn boundary_before(
        &self,
        limit_position: u64,
        offset_limit: u64,
        after: u64,
    ) -> Option<(u64, u64)> {
        if self.index_state != IndexState::Trusted {
            return None;
        }
        let (mut low, mut high) = (0, self.index.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if u64::from(self.index.entry(mid).value) <= limit_position {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        let entry = (0..low)
            .rev()
            .map(|i| self.index.entry(i))
            .find(|e| self.base_offset + (e.key as u64) < offset_limit)?;
        let position = u64::from(entry.value);
        if position <= after {
            return None;
        }
        let header = self.header_at(position).ok()??;
        (header.last_offset() as u64 == self.base_offset + entry.key as u64)
            .then_some((position, header.base_offset as u64))
    }
}

impl<F: File> Segment<F> {
    /// Records that the batches in [start, end) were verified.
    pub fn mark_verified(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut start, mut end) = (start, end);
        self.verified.retain(|&(s, e)| {
            let overlaps = s <= end && start <= e;
            if overlaps {
                start = start.min(s);
                end = end.max(e);
            }
            !overlaps
        });
        let at = self.verified.partition_point(|&(s, _)| s < start);
        self.verified.insert(at, (start, end));
    }

    fn clip_verified(&mut self, end: u64) {
        // What was learnt of the bytes past `end` no longer holds: damage included.
        self.damage.retain(|&position, _| position < end);
        for damage in self.damage.values_mut() {
            if damage
                .resume
                .is_some_and(|b| b.position + b.total_bytes > end)
            {
                damage.resume = None;
                damage.bytes = end - damage.position;
            }
        }
        self.verified.retain(|&(s, _)| s < end);
        if let Some(last) = self.verified.last_mut() {
            last.1 = last.1.min(end);
        }
    }

    /// Takes [start, end) out of the verified ranges.
    fn forget_verified(&mut self, start: u64, end: u64) {
        let mut kept = Vec::with_capacity(self.verified.len() + 1);
        for &(s, e) in &self.verified {
            if e <= start || s >= end {
                kept.push((s, e));
                continue;
            }
            if s < start {
                kept.push((s, start));
            }
            if e > end {
                kept.push((end, e));
            }
        }
        self.verified = kept;
    }

    pub fn is_verified(&self, start: u64, end: u64) -> bool {
        let at = self.verified.partition_point(|&(s, _)| s <= start);
        at > 0 && self.verified[at - 1].1 >= end
    }
}

/// A header walk's place in a segment and what it has met (see `Segment::walk_step`).
struct HeaderWalk {
    start: u64,
    first: First,
    previous: Option<ScannedBatch>,
    walked_again: bool,
    skips: u32,
    skips_max: u32,
}

impl HeaderWalk {
    fn new(start: u64, first: First, skips_max: u32) -> HeaderWalk {
        HeaderWalk {
            start,
            first,
            previous: None,
            walked_again: false,
            skips: 0,
            skips_max,
        }
    }

    fn scanner<'a, F: File>(&self, log: &'a F, segment: &Segment<F>) -> Scanner<'a, F> {
        Scanner::new(log, self.start, segment.bytes, Verify::Header)
            .expecting(self.first)
            .allowing_holes(segment.holes)
            .ending_below(segment.offset_limit)
    }
}

/// What one step of a header walk found.
enum Step {
    Batch(ScannedBatch),
    /// The walk starts over from its start.
    Restarted,
    End,
}

/// The lowest base offset of the batch after the one an index entry names.
fn first_after(first: First) -> Option<u64> {
    match first {
        First::Base(base) => Some(base),
        First::Last(last) => Some(last + 1),
    }
}
