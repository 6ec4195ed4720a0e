//! Log compaction (cleanup.policy=compact): closed segments are rewritten so that each key keeps
//! only its record with the highest offset, as Kafka's log cleaner does.
//!
//! - **What is cleaned.** The cleanable range is the longest run of closed segments, from the
//!   oldest, that lie wholly below the recovery point and whose newest record is older than
//!   `min.compaction.lag.ms`. The active segment is never touched, and neither is anything not yet
//!   durable: a newer value that a power loss could still take away must not be what an older,
//!   durable one is dropped for.
//! - **The map.** One pass over the cleanable range builds key → highest offset (full keys in a
//!   `BTreeMap`, no hashing, so no collision can drop a live key), bounded by
//!   `KEY_MAP_BYTES_MAX`: when it fills, the range ends after the segment that filled it.
//! - **What stays.** A record stays when its offset is its key's latest, unless it is a tombstone
//!   (null value) whose batch's max timestamp is more than `delete.retention.ms` old. A pass is
//!   due again when the first tombstone it kept expires, even if nothing new was written. Records
//!   without a key (written before the topic became compacted; `check_keys` refuses new ones) are
//!   removed, as Kafka does. Control batches are kept as they are.
//! - **Offsets are kept.** A batch keeps its base offset and last offset delta; a batch losing
//!   some records is rebuilt with the same codec and producer fields (`batch::rebuild`); a batch
//!   losing all its records is dropped, except the last batch of a segment, which is kept empty so
//!   that every segment still ends where it did (recovery's check that each segment starts where
//!   the previous ends stays as strong as before), and an idempotent producer's last batch in the
//!   cleaned range, kept empty as Kafka keeps it, since replaying batch headers rebuilds the
//!   producers' sequence state (`partition::producers`). The log then has holes between batches and
//!   inside them; it says so durably with `COMPACTED_MARKER_FILE`, written before the first swap,
//!   after which scans accept holes (offsets must still increase strictly).
//! - **Grouping.** Adjacent cleanable segments are cleaned into one while together they fit in
//!   `segment.bytes` (and u32 relative offsets), named by the first one's base offset, as Kafka
//!   groups them; otherwise a log of small updates would only ever gain segments.
//! - **Order.** Groups are cleaned oldest first, one swap each. A crash between two swaps leaves
//!   older segments cleaned and newer ones not, which never loses a key's latest value and never
//!   brings back a value a removed tombstone had deleted (its older values went first).
//!
//! # The swap, and its recovery
//! 1. The cleaned segment is written to `B.log.cleaned`, `B.index.cleaned`, `B.timeindex.cleaned`
//!    and each is synced.
//! 2. The two indexes are renamed to `.swap`, the directory synced; then the log is renamed to
//!    `B.log.swap` and the directory synced. `B.log.swap` on disk is the commit point.
//! 3. The other segments of the group are removed and the index `.swap` files renamed over
//!    `B.index` and `B.timeindex`; the directory is synced; then `B.log.swap` is renamed over
//!    `B.log` and the directory synced again. (A rename replaces its target atomically, so
//!    removing B's old files first would only open a window with no file at all; the sync before
//!    the last rename makes sure that a durable new `B.log` never coexists with the segments
//!    merged into it.)
//!
//! `Log::open` first calls `finish_interrupted_swaps`: for every `B.log.swap` the new set
//! replaces the old: segments whose base lies inside the swap's offsets are removed, an index
//! whose `.swap` is missing is removed and rebuilt from the log (so a stale one is never paired
//! with the new log), and the `.swap` files take their final names. Index `.swap` files without
//! their log are removed; then the usual leftover removal deletes `.cleaned` files. A crash at
//! any point thus leaves the old segments or the new one, never a mix.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::batch::{self, BatchError, BatchHeader, DecodedRecord};
use super::scan::{First, ScanError, Scanner, Verify, READ_ATTEMPTS_MAX};
use super::segment::{
    self, staged_path, AppendedBatch, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use super::{Log, LogError};
use crate::io::{Disk, File};

/// Present in a log's directory once compaction has swapped a segment: the log may have holes.
pub const COMPACTED_MARKER_FILE: &str = "compacted";
/// The stage suffix of a cleaned segment being written.
pub const CLEANED_STAGE: &str = "cleaned";
/// The stage suffix of a cleaned segment committed but not yet in place.
pub const SWAP_STAGE: &str = "swap";
/// The key map of one compaction pass holds at most this many bytes of keys (plus overhead).
pub const KEY_MAP_BYTES_MAX: usize = 64 * 1024 * 1024;
/// What one map entry costs beside its key bytes (offset, node, vector header), roughly.
const KEY_ENTRY_OVERHEAD_BYTES: usize = 64;
/// Kafka's message when a compacted topic receives a record without a key (it adds the
/// partition's name, as `check_keys` does).
pub const KEYLESS_RECORD_REASON: &str = "Compacted topic cannot accept message without key";

/// Refuses a batch holding records without a key: a compacted topic cannot keep them (Kafka's
/// INVALID_RECORD), and each is named by its index in the batch with Kafka's message, which
/// names `partition` ("topic-0"). Control batches pass. The produce path calls this for
/// compacted topics.
///
/// # Errors
/// `RecordErrors` listing every keyless record; CRC, framing or compression errors (the same
/// `append` would report).
pub fn check_keys(batch: &[u8], partition: &str) -> Result<(), BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.is_control() {
        return Ok(());
    }
    if !batch::crc_ok(batch, &header) {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed: batch::compute_crc(batch),
        });
    }
    let keyless: Vec<batch::RecordError> = batch::decode_records(batch)?
        .iter()
        .enumerate()
        .filter(|(_, record)| record.key.is_none())
        .map(|(index, _)| batch::RecordError {
            // At most records_count (an i32) records decode.
            batch_index: index as i32,
            message: format!("{KEYLESS_RECORD_REASON} in topic partition {partition}."),
        })
        .collect();
    if keyless.is_empty() {
        Ok(())
    } else {
        Err(BatchError::RecordErrors(keyless))
    }
}

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    /// Segments read to build the key map and considered for cleaning.
    pub segments_considered: usize,
    /// Segments rewritten and swapped in.
    pub segments_cleaned: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
}

/// What happens to one batch of a segment being cleaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Keep,
    Drop,
    /// Some records go: rebuilt with the rest.
    Rebuild,
    /// Every record goes but the batch ends the segment: kept with no records.
    Empty,
}

/// Key → highest offset over the segments mapped so far, and each idempotent producer's last
/// batch among them.
#[derive(Default)]
struct KeyMap {
    latest: BTreeMap<Vec<u8>, u64>,
    bytes: usize,
    /// Producer id → base offset of its last batch in the mapped segments.
    producer_last: BTreeMap<i64, i64>,
    /// When the first tombstone in the mapped segments that is not yet expired will be.
    next_tombstone_expiry_ms: Option<i64>,
}

impl KeyMap {
    fn insert(&mut self, key: &[u8], offset: u64) {
        match self.latest.get_mut(key) {
            Some(latest) => *latest = (*latest).max(offset),
            None => {
                self.bytes += key.len() + KEY_ENTRY_OVERHEAD_BYTES;
                self.latest.insert(key.to_vec(), offset);
            }
        }
    }

    fn is_latest(&self, key: &[u8], offset: u64) -> bool {
        self.latest.get(key).is_none_or(|&latest| latest <= offset)
    }
}

impl<D: Disk> Log<D> {
    /// Whether compaction has work by `min.cleanable.dirty.ratio`: the share of the cleanable
    /// bytes not yet cleaned by this process reaches the ratio (Kafka's dirty ratio).
    pub fn compaction_due(&self, now_ms: i64) -> bool {
        if !self.config.cleanup_policy.compact || self.compaction_blocked {
            return false;
        }
        if self.tombstones_expire_at_ms.is_some_and(|at| now_ms > at) {
            return true;
        }
        let mut total = 0;
        let mut dirty = 0;
        let mut overdue = false;
        let lag_max_ms = self.config.max_compaction_lag_ms;
        for base in self.cleanable_bases(now_ms) {
            let segment = &self.segments[&base];
            let bytes = segment.bytes();
            total += bytes;
            if base >= self.cleaned_to {
                dirty += bytes;
                // max.compaction.lag.ms: a dirty record this old is cleaned whatever the ratio.
                overdue |= segment
                    .first_batch_timestamp()
                    .is_some_and(|first| now_ms.saturating_sub(first) >= lag_max_ms);
            }
        }
        if dirty > 0 && overdue {
            return true;
        }
        dirty > 0 && dirty as f64 >= self.config.min_cleanable_dirty_ratio * total as f64
    }

    /// The closed segments compaction may clean now, oldest first (see the module doc).
    fn cleanable_bases(&self, now_ms: i64) -> Vec<u64> {
        let bases: Vec<u64> = self.segments.keys().copied().collect();
        let lag_ms = self.config.min_compaction_lag_ms;
        let mut cleanable = Vec::new();
        for pair in bases.windows(2) {
            let (base, next_base) = (pair[0], pair[1]);
            let max_timestamp = self.segments[&base].max_timestamp();
            let old_enough = lag_ms == 0
                || (max_timestamp >= 0 && now_ms.saturating_sub(max_timestamp) >= lag_ms);
            if next_base > self.recovery_point || !old_enough {
                break;
            }
            cleanable.push(base);
        }
        cleanable
    }

    /// One compaction pass over the cleanable segments, each swapped in durably when it changed.
    /// Holding the log for the whole pass is the caller's choice (the broker holds the
    /// partition's lock throughout).
    ///
    /// # Errors
    /// IO errors, or `Corrupt` when a batch to be cleaned fails verification: then nothing more
    /// is cleaned, and what was swapped before stays swapped (each swap is whole).
    pub fn compact(&mut self, now_ms: i64) -> Result<CompactionOutcome, LogError> {
        let mut outcome = CompactionOutcome::default();
        if !self.config.cleanup_policy.compact || self.compaction_blocked {
            return Ok(outcome);
        }
        let mut bases = self.cleanable_bases(now_ms);
        if bases.is_empty() {
            return Ok(outcome);
        }
        let map = self.build_key_map(&mut bases, now_ms)?;
        // Tombstones kept now must go once they expire, with or without new writes.
        self.tombstones_expire_at_ms = map.next_tombstone_expiry_ms;
        outcome.segments_considered = bases.len();
        for group in self.groups(&bases) {
            self.clean_group(&group, &map, now_ms, &mut outcome)?;
        }
        let last = *bases.last().expect("non-empty");
        self.cleaned_to = self
            .segments
            .range(last + 1..)
            .next()
            .map_or(last, |(&b, _)| b);
        if outcome.segments_cleaned > 0 {
            tracing::info!(
                dir = %self.dir.display(),
                segments = outcome.segments_cleaned,
                bytes_before = outcome.bytes_before,
                bytes_after = outcome.bytes_after,
                records_removed = outcome.records_removed,
                tombstones_removed = outcome.tombstones_removed,
                "compaction cleaned segments"
            );
        }
        Ok(outcome)
    }

    /// The key map over `bases`, which is cut after the segment that fills the map.
    fn build_key_map(&self, bases: &mut Vec<u64>, now_ms: i64) -> Result<KeyMap, LogError> {
        let retention_ms = self.config.delete_retention_ms;
        let mut map = KeyMap::default();
        let mut mapped = 0;
        for &base in bases.iter() {
            for_each_batch(&self.segments[&base], |header, bytes| {
                if header.producer_id >= 0 {
                    map.producer_last
                        .insert(header.producer_id, header.base_offset);
                }
                if !header.is_control() {
                    for record in batch::decode_records(bytes)? {
                        if let Some(key) = &record.key {
                            map.insert(key, record.offset as u64);
                        }
                        let expiry = header.max_timestamp.saturating_add(retention_ms);
                        if record.value.is_none() && expiry >= now_ms {
                            let next = map.next_tombstone_expiry_ms.get_or_insert(expiry);
                            *next = (*next).min(expiry);
                        }
                    }
                }
                Ok(())
            })?;
            mapped += 1;
            if map.bytes >= KEY_MAP_BYTES_MAX {
                break;
            }
        }
        bases.truncate(mapped);
        Ok(map)
    }

    fn retains(
        &self,
        map: &KeyMap,
        header: &BatchHeader,
        record: &DecodedRecord,
        now_ms: i64,
    ) -> bool {
        let Some(key) = &record.key else {
            return false;
        };
        if !map.is_latest(key, record.offset as u64) {
            return false;
        }
        let tombstone_expired = record.value.is_none()
            && now_ms.saturating_sub(header.max_timestamp) > self.config.delete_retention_ms;
        !tombstone_expired
    }

    /// The cleanable segments in runs that are cleaned into one segment each (Kafka's grouping by
    /// size): together at most `segment.bytes` and within the u32 range of relative offsets, so
    /// that compaction also bounds the number of segments, which would otherwise only grow.
    fn groups(&self, bases: &[u64]) -> Vec<Vec<u64>> {
        let mut groups: Vec<Vec<u64>> = Vec::new();
        let mut bytes = 0;
        for &base in bases {
            let segment_bytes = self.segments[&base].bytes();
            let end = self
                .segments
                .range(base + 1..)
                .next()
                .map_or(u64::MAX, |(&b, _)| b);
            let joins = groups.last().is_some_and(|group| {
                bytes + segment_bytes <= self.config.segment_bytes
                    && end.saturating_sub(group[0]) <= u64::from(u32::MAX)
            });
            match groups.last_mut() {
                Some(group) if joins => group.push(base),
                _ => {
                    groups.push(vec![base]);
                    bytes = 0;
                }
            }
            bytes += segment_bytes;
        }
        groups
    }

    /// What happens to each batch of each segment of `group`; empty when nothing changes.
    fn plan(
        &self,
        group: &[u64],
        map: &KeyMap,
        now_ms: i64,
    ) -> Result<Vec<Vec<Decision>>, LogError> {
        let mut plan = Vec::new();
        let mut last_was_empty = false;
        for &base in group {
            let mut decisions = Vec::new();
            for_each_batch(&self.segments[&base], |header, bytes| {
                last_was_empty = header.records_count == 0;
                if header.is_control() {
                    decisions.push(Decision::Keep);
                    return Ok(());
                }
                let records = batch::decode_records(bytes)?;
                let kept = records
                    .iter()
                    .filter(|r| self.retains(map, header, r, now_ms))
                    .count();
                // An idempotent producer's last batch stays (empty if need be), as Kafka keeps
                // it: its header is the producer's sequence state when the log is replayed.
                let producer_last = header.producer_id >= 0
                    && map.producer_last.get(&header.producer_id) == Some(&header.base_offset);
                decisions.push(match kept {
                    0 if producer_last => Decision::Empty,
                    0 => Decision::Drop,
                    n if n == records.len() => Decision::Keep,
                    _ => Decision::Rebuild,
                });
                Ok(())
            })?;
            plan.push(decisions);
        }
        // The group's last batch stays, empty if need be, so the cleaned segment ends where
        // the group did.
        let last = plan.last_mut().and_then(|d| d.last_mut());
        if let Some(last) = last.filter(|d| **d == Decision::Drop) {
            *last = if last_was_empty {
                Decision::Keep
            } else {
                Decision::Empty
            };
        }
        let unchanged = plan.iter().flatten().all(|&d| d == Decision::Keep);
        if unchanged && group.len() == 1 {
            plan.clear();
        }
        Ok(plan)
    }

    /// Rewrites the segments of `group` into one if the map makes any of their records go (or
    /// there are several to merge), and swaps it in.
    fn clean_group(
        &mut self,
        group: &[u64],
        map: &KeyMap,
        now_ms: i64,
        outcome: &mut CompactionOutcome,
    ) -> Result<(), LogError> {
        let plan = self.plan(group, map, now_ms)?;
        if plan.is_empty() {
            return Ok(());
        }
        self.mark_compacted()?;
        let staged = self.write_cleaned(group, map, now_ms, &plan, outcome)?;
        let base = group[0];
        for member in group {
            outcome.bytes_before += self.segments[member].bytes();
        }
        outcome.bytes_after += staged;
        let swapped = swap_in(&self.disk, &self.dir, base, &group[1..])
            .and_then(|()| self.reopen_segments(group));
        if let Err(e) = swapped {
            self.settle_failed_swap(group);
            return Err(e.into());
        }
        if let Some(segment) = self.segments.get_mut(&base) {
            // This process wrote and validated every batch of it.
            segment.mark_verified(0, segment.bytes());
        }
        outcome.segments_cleaned += group.len();
        Ok(())
    }

    /// After a swap failed part way, the directory may hold a committed `.swap` and the log's
    /// segments may no longer match their files. Left so, a later pass could clean the same
    /// offsets again under another name, and the next open would then finish the stale swap
    /// beside the newer segment. So the swap is finished or rolled back now, as `Log::open`
    /// would, and the group's segments are opened again from what the directory holds; if that
    /// fails too, compaction stops until the log is opened again (reads and appends go on: the
    /// open segments' files stay readable through their handles).
    fn settle_failed_swap(&mut self, group: &[u64]) {
        let settled = finish_interrupted_swaps(&self.disk, &self.dir)
            .and_then(|()| self.disk.sync_dir(&self.dir))
            .and_then(|()| self.reopen_segments(group));
        if let Err(e) = settled {
            tracing::error!(
                dir = %self.dir.display(),
                error = %e,
                "a compaction swap failed and could not be settled; compaction stops until the log is opened again"
            );
            self.compaction_blocked = true;
        }
    }

    /// Opens the segments at `bases` again from the directory (those that still exist).
    fn reopen_segments(&mut self, bases: &[u64]) -> io::Result<()> {
        for base in bases {
            self.segments.remove(base);
        }
        for &base in bases {
            if self
                .disk
                .exists(&segment::segment_path(&self.dir, base, LOG_SUFFIX))
            {
                let mut segment = Segment::open_trusted(&self.disk, &self.dir, base)?;
                segment.set_holes(self.holes);
                self.segments.insert(base, segment);
            }
        }
        self.bound_segments();
        Ok(())
    }

    /// Writes and syncs the cleaned segment's staged files; returns its size in bytes.
    fn write_cleaned(
        &self,
        group: &[u64],
        map: &KeyMap,
        now_ms: i64,
        plan: &[Vec<Decision>],
        outcome: &mut CompactionOutcome,
    ) -> Result<u64, LogError> {
        let base = group[0];
        let stage = Some(CLEANED_STAGE);
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_present(&self.disk, &staged_path(&self.dir, base, suffix, stage))?;
        }
        let index_bytes = self.config.segment_index_bytes;
        let mut staged = Segment::create_staged(&self.disk, &self.dir, base, index_bytes, stage)?;
        staged.set_holes(true);
        let interval = self.config.index_interval_bytes;
        let mut next_offset = base;
        for (member, decisions) in group.iter().zip(plan) {
            let mut i = 0;
            for_each_batch(&self.segments[member], |header, bytes| {
                // Offsets must increase across the whole group: a cleaned segment is never
                // written out of order, whatever the segments it comes from hold.
                if (header.base_offset as u64) < next_offset {
                    return Err(LogError::Corrupt {
                        offset: header.base_offset as u64,
                        reason: format!(
                            "segment {member} holds offsets below {next_offset}, where the segments before it end"
                        ),
                    });
                }
                next_offset = header.last_offset() as u64 + 1;
                let decision = decisions.get(i).copied().unwrap_or(Decision::Keep);
                i += 1;
                let Some(cleaned) =
                    self.clean_batch(header, bytes, decision, map, now_ms, outcome)?
                else {
                    return Ok(());
                };
                append_cleaned(&mut staged, header, &cleaned, interval)
            })?;
            if i != decisions.len() {
                return Err(LogError::Corrupt {
                    offset: *member,
                    reason: "the segment changed while it was being cleaned".to_owned(),
                });
            }
        }
        staged.close_active()?;
        staged.flush()?;
        Ok(staged.bytes())
    }

    /// The bytes that replace one batch (`None`: the batch goes).
    fn clean_batch(
        &self,
        header: &BatchHeader,
        bytes: &[u8],
        decision: Decision,
        map: &KeyMap,
        now_ms: i64,
        outcome: &mut CompactionOutcome,
    ) -> Result<Option<Vec<u8>>, LogError> {
        if decision == Decision::Keep {
            return Ok(Some(bytes.to_vec()));
        }
        let records = batch::decode_records(bytes)?;
        let kept: Vec<DecodedRecord> = match decision {
            Decision::Rebuild => records
                .iter()
                .filter(|r| self.retains(map, header, r, now_ms))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        count_removed(&records, &kept, outcome);
        if decision == Decision::Drop {
            return Ok(None);
        }
        let rebuilt = batch::rebuild(header, &kept).map_err(BatchError::from)?;
        Ok(Some(rebuilt))
    }

    /// Writes the durable marker that this log may have holes, once, before the first swap.
    fn mark_compacted(&mut self) -> Result<(), LogError> {
        if self.holes {
            return Ok(());
        }
        let path = self.dir.join(COMPACTED_MARKER_FILE);
        match self.disk.create(&path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e.into()),
            _ => {}
        }
        self.disk.sync_dir(&self.dir)?;
        self.holes = true;
        for segment in self.segments.values_mut() {
            segment.set_holes(true);
        }
        Ok(())
    }
}

fn count_removed(
    records: &[DecodedRecord],
    kept: &[DecodedRecord],
    outcome: &mut CompactionOutcome,
) {
    let tombstones = |rs: &[DecodedRecord]| rs.iter().filter(|r| r.value.is_none()).count() as u64;
    outcome.records_removed += (records.len() - kept.len()) as u64;
    outcome.tombstones_removed += tombstones(records) - tombstones(kept);
}

/// Checks a cleaned batch as strictly as an appended one (offsets aside) and writes it.
fn append_cleaned<F: File>(
    staged: &mut Segment<F>,
    original: &BatchHeader,
    cleaned: &[u8],
    interval: u64,
) -> Result<(), LogError> {
    let info = batch::validate(cleaned, false)?;
    let header = info.header;
    assert_eq!(header.base_offset, original.base_offset);
    assert_eq!(header.last_offset(), original.last_offset());
    let last_offset = header.last_offset() as u64;
    let (max_timestamp, offset_of_max_timestamp) =
        if header.is_log_append_time() || header.records_count == 0 {
            (header.max_timestamp, last_offset)
        } else {
            let delta = info.offset_delta_of_max_timestamp as u64;
            (info.max_record_timestamp, header.base_offset as u64 + delta)
        };
    let appended = AppendedBatch {
        last_offset,
        max_timestamp,
        offset_of_max_timestamp,
    };
    staged.append(cleaned, appended, interval)?;
    Ok(())
}

/// Calls `each` with every batch of `segment`, in order, each one validated (CRC, framing,
/// records) after reading it; bytes that fail are read again up to `READ_ATTEMPTS_MAX` times
/// before they are judged corrupt.
fn for_each_batch<F: File>(
    segment: &Segment<F>,
    mut each: impl FnMut(&BatchHeader, &[u8]) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let file = segment.log_file();
    let mut scanner = Scanner::new(&**file, 0, segment.bytes(), Verify::Header)
        .expecting(First::Base(segment.base_offset()))
        .allowing_holes(segment.holes())
        .ending_below(segment.offset_limit());
    loop {
        let found = match scanner.next_batch() {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(()),
            Err(ScanError::Io(e)) => return Err(e.into()),
            Err(ScanError::Stop(stop)) => {
                return Err(LogError::Corrupt {
                    offset: segment.base_offset(),
                    reason: format!("position {}: {}", stop.position, stop.reason),
                })
            }
        };
        let mut bytes = vec![0u8; found.total_bytes as usize];
        let mut valid = Err(BatchError::BadRecords("not read".to_owned()));
        for _ in 0..READ_ATTEMPTS_MAX {
            file.read_exact_at(&mut bytes, found.position)?;
            valid = batch::validate(&bytes, false);
            if valid.as_ref().is_ok_and(|info| info.header == found.header) {
                break;
            }
        }
        match valid {
            Ok(info) if info.header == found.header => each(&info.header, &bytes)?,
            Ok(_) => {
                return Err(LogError::Corrupt {
                    offset: found.header.base_offset as u64,
                    reason: "the batch header changed between two reads".to_owned(),
                })
            }
            Err(e) => {
                return Err(LogError::Corrupt {
                    offset: found.header.base_offset as u64,
                    reason: e.to_string(),
                })
            }
        }
    }
}

fn remove_if_present<D: Disk>(disk: &D, path: &Path) -> io::Result<()> {
    match disk.remove(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Steps 2 and 3 of the swap in the module doc: commits the staged files of the segment at
/// `base` and puts them in place, with the segments at `merged` (cleaned into it) removed,
/// durably.
///
/// # Errors
/// IO errors; `Log::open` then finishes or rolls back what was done.
pub fn swap_in<D: Disk>(disk: &D, dir: &Path, base: u64, merged: &[u64]) -> io::Result<()> {
    let path = |suffix, stage| staged_path(dir, base, suffix, stage);
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        disk.rename(
            &path(suffix, Some(CLEANED_STAGE)),
            &path(suffix, Some(SWAP_STAGE)),
        )?;
    }
    disk.sync_dir(dir)?;
    disk.rename(
        &path(LOG_SUFFIX, Some(CLEANED_STAGE)),
        &path(LOG_SUFFIX, Some(SWAP_STAGE)),
    )?;
    disk.sync_dir(dir)?;
    put_swap_in_place(disk, dir, base, merged)?;
    disk.sync_dir(dir)
}

/// Removes the segments at `merged`, renames the committed index `.swap` files of `base` over
/// the segment's (an index with no `.swap` is removed, to be rebuilt from the log, rather than
/// trusted), syncs the directory, and only then renames the `.log.swap` over the `.log`: once the
/// old log name holds the new bytes, the merged segments are durably gone, so their records are
/// never there twice. The caller syncs the directory.
fn put_swap_in_place<D: Disk>(disk: &D, dir: &Path, base: u64, merged: &[u64]) -> io::Result<()> {
    for &member in merged {
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_present(disk, &segment::segment_path(dir, member, suffix))?;
        }
    }
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        let swap = staged_path(dir, base, suffix, Some(SWAP_STAGE));
        let target = segment::segment_path(dir, base, suffix);
        if disk.exists(&swap) {
            disk.rename(&swap, &target)?;
        } else {
            remove_if_present(disk, &target)?;
        }
    }
    disk.sync_dir(dir)?;
    disk.rename(
        &staged_path(dir, base, LOG_SUFFIX, Some(SWAP_STAGE)),
        &segment::segment_path(dir, base, LOG_SUFFIX),
    )
}

/// The offset after the last batch of the committed `B.log.swap` (its batches were synced before
/// the commit, so they parse); the base itself if none does.
fn swap_end<D: Disk>(disk: &D, dir: &Path, base: u64) -> io::Result<u64> {
    let file = disk.open(&staged_path(dir, base, LOG_SUFFIX, Some(SWAP_STAGE)))?;
    let mut scanner = Scanner::new(&file, 0, file.len()?, Verify::Crc).allowing_holes(true);
    let mut end = base;
    while let Ok(Some(found)) = scanner.next_batch() {
        end = found.header.last_offset() as u64 + 1;
    }
    Ok(end)
}

/// Finishes the swaps a crash interrupted after their commit point and removes the `.swap`
/// indexes of swaps that never reached it (see the module doc). `.cleaned` files are left to
/// the leftover removal that follows.
///
/// # Errors
/// IO errors.
pub fn finish_interrupted_swaps<D: Disk>(disk: &D, dir: &Path) -> io::Result<()> {
    if !disk.exists(dir) {
        return Ok(());
    }
    let names = disk.list(dir)?;
    let swap_of = |name: &str| {
        let (base, suffix) = segment::parse_segment_name(name)?;
        let suffix = suffix.strip_suffix(SWAP_STAGE)?.strip_suffix('.')?;
        Some((base, suffix.to_owned()))
    };
    let committed: Vec<u64> = names
        .iter()
        .filter_map(|n| swap_of(n))
        .filter(|(_, suffix)| suffix == LOG_SUFFIX)
        .map(|(base, _)| base)
        .collect();
    let mut changed = false;
    let bases: Vec<u64> = names
        .iter()
        .filter_map(|n| segment::parse_segment_name(n))
        .filter(|(_, suffix)| *suffix == LOG_SUFFIX)
        .map(|(base, _)| base)
        .collect();
    for &base in &committed {
        let end = swap_end(disk, dir, base)?;
        let merged: Vec<u64> = bases
            .iter()
            .copied()
            .filter(|&b| b > base && b < end)
            .collect();
        tracing::warn!(dir = %dir.display(), base, ?merged, "finishing a compaction swap a crash interrupted");
        put_swap_in_place(disk, dir, base, &merged)?;
        changed = true;
    }
    for (base, suffix) in names.iter().filter_map(|n| swap_of(n)) {
        if !committed.contains(&base) {
            tracing::info!(dir = %dir.display(), base, suffix, "removing an uncommitted compaction swap file");
            remove_if_present(disk, &staged_path(dir, base, &suffix, Some(SWAP_STAGE)))?;
            changed = true;
        }
    }
    if changed {
        disk.sync_dir(dir)?;
    }
    Ok(())
}
