//! One partition's log: an ordered set of segments holding Kafka RecordBatch v2 bytes, with the
//! offsets the broker assigned.
//!
//! # The durability contract
//! - `append` validates the batch (length, magic, CRC, records, timestamps), assigns its offsets
//!   and writes it into the page cache. When it returns, the batch is readable and survives a
//!   process crash (kill -9), but not a power loss.
//! - `flush` makes every appended batch durable, with its indexes, and then records the new
//!   recovery point in the checkpoint. When it returns, everything below `next_offset` survives
//!   a power loss. `flush_due` says when the log's `FlushPolicy` wants a flush: the caller
//!   flushes before acknowledging (`always`), on a timer or count (`interval`), or leaves it to
//!   the page cache and replication (`none`, Kafka's default). Rolled segments are always
//!   flushed soon after the roll, which bounds recovery work.
//! - `open` recovers: segments below the recovery point are trusted (their indexes are checked
//!   on first use); from the recovery point on, every batch is read back and its CRC checked, and
//!   a torn or corrupt tail is cut off with a log line saying how many bytes went. Recovery reads
//!   the bytes after the recovery point, not the whole log. A clean-shutdown marker lets even
//!   that scan be skipped, but only when it was written after the flush it vouches for.
//! - `truncate_to`, retention and compaction are durable when they return. Compaction reads and
//!   rewrites only segments wholly below the recovery point, and swaps each cleaned segment in
//!   so that a crash leaves the old or the new one (see `compaction`).
//!
//! The log is synchronous and single-writer; the caller serialises access. A flush may be split
//! (`begin_flush`, `PendingFlush::sync`, `finish_flush`) so that the caller need not hold the
//! log through the slow sync of the data.

pub mod batch;
pub mod checkpoint;
pub mod compaction;
pub mod config;
pub mod dump;
pub mod index;
#[cfg(any(test, feature = "fuzz"))]
pub mod model;
mod recovery;
mod retention;
pub use self::retention::RetentionOutcome;
pub mod scan;
pub mod segment;
use self::scan::REPLAY_READ_ATTEMPTS_MAX;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::batch::{BatchError, BatchHeader};
use self::checkpoint::{Checkpoint, CheckpointFile, CleanShutdown};
pub use self::config::{CleanupPolicy, Compression, FlushPolicy, LogConfig, TimestampType};
use self::segment::{AppendedBatch, Segment};
use crate::io::{Disk, File};

/// Why a log operation failed.
#[derive(Debug)]
pub enum LogError {
    Io(io::Error),
    /// The batch was refused; nothing was written.
    InvalidBatch(BatchError),
    BatchTooLarge {
        bytes: usize,
        bytes_max: usize,
    },
    OffsetOutOfRange {
        offset: u64,
        log_start_offset: u64,
        next_offset: u64,
    },
    /// Stored bytes failed verification on read; they are not served.
    Corrupt {
        offset: u64,
        reason: String,
    },
    Config(String),
    /// A CreateTime record's timestamp lies outside the topic's
    /// message.timestamp.before.max.ms / after.max.ms window; nothing was written.
    TimestampOutOfRange {
        /// The record's index in its batch.
        record: usize,
        timestamp: i64,
        min: i64,
        max: i64,
    },
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Io(e) => write!(f, "IO error: {e}"),
            LogError::InvalidBatch(e) => write!(f, "invalid batch: {e}"),
            LogError::BatchTooLarge { bytes, bytes_max } => {
                write!(
                    f,
                    "batch of {bytes} bytes exceeds max.message.bytes {bytes_max}"
                )
            }
            LogError::OffsetOutOfRange {
                offset,
                log_start_offset,
                next_offset,
            } => write!(
                f,
                "offset {offset} is outside the log [{log_start_offset}, {next_offset}]"
            ),
            LogError::Corrupt { offset, reason } => {
                write!(f, "corrupt data at offset {offset}: {reason}")
            }
            LogError::Config(why) => write!(f, "invalid log configuration: {why}"),
            LogError::TimestampOutOfRange {
                record,
                timestamp,
                min,
                max,
            } => write!(
                f,
                "Timestamp {timestamp} of record {record} of the batch is out of range. The timestamp should be within [{min}, {max}]"
            ),
        }
    }
}

impl std::error::Error for LogError {}

impl From<io::Error> for LogError {
    fn from(e: io::Error) -> LogError {
        LogError::Io(e)
    }
}

impl From<BatchError> for LogError {
    fn from(e: BatchError) -> LogError {
        LogError::InvalidBatch(e)
    }
}

/// What `append` did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: u64,
    pub last_offset: u64,
    pub records: u32,
    /// The batch's max timestamp as stored (the broker's clock under LogAppendTime).
    pub max_timestamp: i64,
    pub log_append_time: Option<i64>,
}

/// A contiguous range of whole batches in one segment file, ready to be sent as it is (with
/// sendfile in production) or copied.
pub struct LogSlice<F: File> {
    pub file: Arc<F>,
    pub position: u64,
    pub bytes: u64,
    /// The base offset of the first batch in the slice (may be below the offset asked for).
    pub first_offset: u64,
    /// The offset after the last batch in the slice.
    pub next_offset: u64,
}

/// What a flush must sync, taken from the log by `Log::begin_flush`.
pub struct PendingFlush<F: File> {
    files: Vec<Arc<F>>,
    /// The log end when the flush began: what the recovery point moves to.
    through: u64,
    /// `Log::truncations` when the flush began.
    truncations: u64,
    /// Unflushed messages when the flush began: the flush accounts for these.
    messages: u64,
}

impl<F: File> PendingFlush<F> {
    /// Syncs the segment files' data: the slow part of a flush, done without the log.
    ///
    /// # Errors
    /// IO errors.
    pub fn sync(&self) -> io::Result<()> {
        self.files.iter().try_for_each(|file| file.sync_data())
    }

    /// The log end the flush makes durable.
    pub fn through(&self) -> u64 {
        self.through
    }
}

/// A partition log on a `Disk`.
pub struct Log<D: Disk> {
    disk: D,
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<u64, Segment<D::File>>,
    checkpoint_file: CheckpointFile<D::File>,
    log_start_offset: u64,
    next_offset: u64,
    /// Every offset below this is durable.
    recovery_point: u64,
    high_watermark: u64,
    unflushed_messages: u64,
    last_flush_ms: i64,
    recovery: RecoveryReport,
    /// Compaction has cleaned this log, so batches may have holes between them; durable as the
    /// `compaction::COMPACTED_MARKER_FILE` in the log's directory.
    holes: bool,
    /// Compaction's boundary between clean and dirty: segments below it were cleaned by this
    /// process. Kept in memory only, so after a restart the whole log counts as dirty once.
    cleaned_to: u64,
    /// When a tombstone kept by the last compaction pass expires (another pass is then due).
    tombstones_expire_at_ms: Option<i64>,
    /// A compaction swap failed and could not be settled: no more compaction until the log is
    /// opened again (see `compaction`).
    compaction_blocked: bool,
    /// How many truncations the log has had since it was opened: a flush that began before one
    /// must not move the recovery point (see `finish_flush`).
    truncations: u64,
}

/// What `Log::open` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// A valid clean-shutdown marker let the scan be skipped.
    pub clean_shutdown: bool,
    /// Bytes read back and CRC-checked.
    pub bytes_scanned: u64,
    /// Bytes cut off torn or corrupt tails, and segments removed after a corrupt one.
    pub bytes_truncated: u64,
    pub segments_removed: usize,
    /// The checkpoint claimed durability beyond what the disk held (the disk lost flushed data).
    pub recovery_point_lost: Option<(u64, u64)>,
    /// Flushed bytes failed verification (damage): recovery went on past them, or, at the end
    /// of the log, kept their offsets taken.
    pub damaged: bool,
}

impl<D: Disk> Log<D> {
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Changes the settings of an open log; they apply from the next append or roll.
    ///
    /// # Errors
    /// `Config` when a setting is out of range.
    pub fn set_config(&mut self, config: LogConfig) -> Result<(), LogError> {
        config.validate().map_err(LogError::Config)?;
        self.config = config;
        Ok(())
    }

    pub fn log_start_offset(&self) -> u64 {
        self.log_start_offset
    }

    /// The offset the next appended record will get (Kafka's log end offset).
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    pub fn recovery_point(&self) -> u64 {
        self.recovery_point
    }

    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    /// Records the high watermark; it is made durable with the next checkpoint.
    pub fn set_high_watermark(&mut self, offset: u64) {
        self.high_watermark = offset.min(self.next_offset);
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn segment_base_offsets(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }

    /// Bytes of batches in all segments.
    /// How many times segments' indexes were rebuilt from the log since the log was opened.
    pub fn index_rebuilds(&self) -> u64 {
        self.segments.values().map(Segment::index_rebuilds).sum()
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::bytes).sum()
    }

    pub fn unflushed_messages(&self) -> u64 {
        self.unflushed_messages
    }

    fn active(&mut self) -> &mut Segment<D::File> {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    /// Validates `batch`, assigns its offsets (rewriting the base offset in place) and appends it.
    ///
    /// # Errors
    /// `BatchTooLarge` or `InvalidBatch` when the batch is refused (nothing is written); `Io`
    /// when the write fails (the log's end is unchanged; the partial bytes are overwritten by the
    /// next append or cut by recovery).
    pub fn append(&mut self, batch: &mut [u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        if batch.len() > self.config.message_bytes_max {
            return Err(LogError::BatchTooLarge {
                bytes: batch.len(),
                bytes_max: self.config.message_bytes_max,
            });
        }
        let info = batch::validate(batch, true)?;
        let header = info.header;
        if self.config.timestamp_type == TimestampType::CreateTime {
            self.check_timestamps(batch, now_ms)?;
        }
        let log_append_time = match self.config.timestamp_type {
            TimestampType::LogAppendTime => {
                batch::set_max_timestamp(batch, now_ms, true);
                Some(now_ms)
            }
            TimestampType::CreateTime => {
                // Producers disagree on what they put in max_timestamp; Kafka keeps the true
                // maximum, and so does keel (re-sealing the CRC only when it changes).
                if header.max_timestamp != info.max_record_timestamp || header.is_log_append_time()
                {
                    batch::set_max_timestamp(batch, info.max_record_timestamp, false);
                }
                None
            }
        };
        let base_offset = self.next_offset;
        let last_offset = base_offset + header.last_offset_delta as u64;
        batch::set_base_offset(batch, base_offset as i64);
        let max_timestamp = log_append_time.unwrap_or(info.max_record_timestamp);
        let offset_of_max_timestamp = match log_append_time {
            Some(_) => last_offset,
            None => base_offset + info.offset_delta_of_max_timestamp as u64,
        };
        let appended = AppendedBatch {
            last_offset,
            max_timestamp,
            offset_of_max_timestamp,
        };
        self.write_batch(batch, appended, now_ms)?;
        self.unflushed_messages += header.records_count as u64;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            records: header.records_count as u32,
            max_timestamp,
            log_append_time,
        })
    }

    /// Refuses a batch with a CreateTime timestamp outside
    /// [now - message.timestamp.before.max.ms, now + message.timestamp.after.max.ms], as Kafka's
    /// log validator does for each record. Only topics that set a bound pay for the record walk.
    fn check_timestamps(&self, batch: &[u8], now_ms: i64) -> Result<(), LogError> {
        let (before, after) = (
            self.config.timestamp_before_max_ms,
            self.config.timestamp_after_max_ms,
        );
        if before == i64::MAX && after == i64::MAX {
            return Ok(());
        }
        let min = now_ms.saturating_sub(before);
        let max = now_ms.saturating_add(after);
        let records = batch::decode_records(batch)?;
        match records
            .iter()
            .position(|r| !(min..=max).contains(&r.timestamp))
        {
            None => Ok(()),
            Some(record) => Err(LogError::TimestampOutOfRange {
                record,
                timestamp: records[record].timestamp,
                min,
                max,
            }),
        }
    }

    fn write_batch(
        &mut self,
        batch: &[u8],
        appended: AppendedBatch,
        now_ms: i64,
    ) -> Result<(), LogError> {
        self.maybe_roll(batch.len() as u64, appended.last_offset, now_ms)?;
        let interval = self.config.index_interval_bytes;
        self.active().append(batch, appended, interval)?;
        self.next_offset = appended.last_offset + 1;
        Ok(())
    }

    /// Rolls to a new segment when the active one is full by size, age, index space or offset
    /// range (relative offsets are u32).
    fn maybe_roll(
        &mut self,
        batch_bytes: u64,
        last_offset: u64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let segment_bytes = self.config.segment_bytes;
        // A compacted log rolls by max.compaction.lag.ms too, so that no record waits longer
        // than that in the active segment, which is never cleaned (Kafka's maxSegmentMs).
        let segment_ms = if self.config.cleanup_policy.compact {
            self.config
                .segment_ms
                .min(self.config.max_compaction_lag_ms)
        } else {
            self.config.segment_ms
        };
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let full = active.bytes() + batch_bytes > segment_bytes;
        let old = active
            .first_batch_timestamp()
            .is_some_and(|first| now_ms.saturating_sub(first) > segment_ms);
        let offsets_exhausted = last_offset - active.base_offset() > u64::from(u32::MAX);
        if full || old || offsets_exhausted || active.index_is_full() {
            self.roll()?;
        }
        Ok(())
    }

    /// Closes the active segment and starts a new one at `next_offset`. The new segment's files
    /// are made durable in the directory before anything is appended to them.
    ///
    /// # Errors
    /// IO errors.
    pub fn roll(&mut self) -> Result<(), LogError> {
        let base_offset = self.next_offset;
        if self.segments.contains_key(&base_offset) {
            return Ok(());
        }
        self.active().close_active()?;
        let mut segment = Segment::create(
            &self.disk,
            &self.dir,
            base_offset,
            self.config.segment_index_bytes,
        )?;
        segment.set_holes(self.holes);
        self.disk.sync_dir(&self.dir)?;
        self.segments.insert(base_offset, segment);
        self.bound_segments();
        Ok(())
    }

    /// Whether the flush policy wants a flush now (or a rolled segment awaits its flush).
    pub fn flush_due(&self, now_ms: i64) -> bool {
        if self.recovery_point >= self.next_offset {
            return false;
        }
        let rolled_unflushed = self
            .segments
            .keys()
            .next_back()
            .is_some_and(|&active_base| self.recovery_point < active_base);
        rolled_unflushed
            || match self.config.flush {
                FlushPolicy::None => false,
                FlushPolicy::Always => true,
                FlushPolicy::Interval { ms, messages } => {
                    let by_count = messages > 0 && self.unflushed_messages >= messages;
                    let elapsed = now_ms.saturating_sub(self.last_flush_ms);
                    let by_time = ms > 0 && elapsed >= ms as i64;
                    by_count || by_time
                }
            }
    }

    /// Makes everything appended so far durable, then checkpoints the new recovery point.
    ///
    /// # Errors
    /// IO errors; the recovery point then stays where it was.
    pub fn flush(&mut self, now_ms: i64) -> Result<(), LogError> {
        let pending = self.begin_flush();
        pending.sync()?;
        // Unlike `finish_flush`, never skipped: recovery lowers the recovery point and then
        // relies on this to sync what it cut and rewrite the checkpoint, and a close relies on
        // it to sync the indexes it just trimmed.
        self.record_flush(&pending, now_ms)
    }

    /// The first half of a flush that need not hold the log while the data is synced: the
    /// segment files holding what was appended so far. Sync them (`PendingFlush::sync`), with
    /// the log free for appends and reads meanwhile, then `finish_flush`.
    pub fn begin_flush(&self) -> PendingFlush<D::File> {
        let from = self.segment_floor(self.recovery_point);
        PendingFlush {
            files: self
                .segments
                .range(from..)
                .map(|(_, segment)| Arc::clone(segment.log_file()))
                .collect(),
            through: self.next_offset,
            truncations: self.truncations,
            messages: self.unflushed_messages,
        }
    }

    /// The second half of a flush, after `pending` was synced: the indexes are synced and the
    /// recovery point moves to the log end `begin_flush` saw. Batches appended since then stay
    /// above it; if the log was truncated meanwhile, the offsets synced may since have been
    /// written again, so nothing is claimed (`truncate_to` left its own recovery point).
    ///
    /// # Errors
    /// IO errors; the recovery point then stays where it was.
    pub fn finish_flush(
        &mut self,
        pending: PendingFlush<D::File>,
        now_ms: i64,
    ) -> Result<(), LogError> {
        if pending.truncations != self.truncations || pending.through <= self.recovery_point {
            return Ok(());
        }
        self.record_flush(&pending, now_ms)
    }

    /// Syncs the indexes and checkpoints `pending.through` as the recovery point.
    fn record_flush(
        &mut self,
        pending: &PendingFlush<D::File>,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let from = self.segment_floor(self.recovery_point.min(pending.through));
        for segment in self.segments.range(from..).map(|(_, s)| s) {
            segment.flush_indexes()?;
        }
        self.write_checkpoint(pending.through)?;
        self.recovery_point = pending.through;
        self.unflushed_messages = self.unflushed_messages.saturating_sub(pending.messages);
        self.last_flush_ms = now_ms;
        Ok(())
    }

    /// `read_copy` for the replays at open (producer state, committed offsets), which must not
    /// stop early at a transient error: that would forget whatever follows. It makes
    /// `REPLAY_READ_ATTEMPTS_MAX` attempts (lookup, read and verification) in all, where
    /// `read_copy` makes `READ_ATTEMPTS_MAX`, so rot that outlasts a `read_copy` can still be
    /// read through. Damage that persists is skipped as `read_copy` skips it (the bytes start
    /// after it), also when a lookup met unparsable bytes (which it reports as an
    /// `InvalidData` IO error).
    ///
    /// # Errors
    /// `Corrupt` when damage cannot be passed; other IO errors as they come, for the caller to
    /// fail on.
    pub fn replay_copy(
        &mut self,
        offset: u64,
        bytes_max: u64,
        offset_limit: u64,
    ) -> Result<Vec<u8>, LogError> {
        self.past_damage(offset, |log, offset| {
            log.copy_attempts(
                offset,
                bytes_max,
                offset_limit,
                REPLAY_READ_ATTEMPTS_MAX,
                true,
            )
        })
    }

    fn write_checkpoint(&mut self, recovery_point: u64) -> io::Result<()> {
        self.checkpoint_file.write(Checkpoint {
            recovery_point,
            log_start_offset: self.log_start_offset,
            high_watermark: self.high_watermark,
        })
    }

    /// The base offset of the segment that holds `offset` (the first segment if none does).
    fn segment_floor(&self, offset: u64) -> u64 {
        self.segments
            .range(..=offset)
            .next_back()
            .or_else(|| self.segments.iter().next())
            .map_or(0, |(&base, _)| base)
    }

    fn check_range(&self, offset: u64) -> Result<(), LogError> {
        if offset < self.log_start_offset || offset > self.next_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                next_offset: self.next_offset,
            });
        }
        Ok(())
    }

    /// Whole batches from the one holding `offset`, up to `bytes_max` bytes (but always at least
    /// one batch) and only batches that end below `offset_limit` (the high watermark for
    /// consumers, the log end for followers). `None` when there is nothing to read yet. Where
    /// the batch holding `offset` is damaged for good, the batches start after the damage.
    ///
    /// # Errors
    /// `OffsetOutOfRange` outside [log start, log end]; `Corrupt` while damage may still be
    /// transient or cannot be passed; IO errors.
    pub fn read(
        &mut self,
        offset: u64,
        bytes_max: u64,
        offset_limit: u64,
    ) -> Result<Option<LogSlice<D::File>>, LogError> {
        // A lookup misled by a header that read wrong (its offsets are outside the CRC) is
        // caught by the verification of the slice, and the lookup is made again.
        self.past_damage(offset, |log, offset| {
            let mut attempt = 1;
            loop {
                match log.read_once(offset, bytes_max, offset_limit) {
                    Err(LogError::Corrupt { .. }) if attempt < scan::READ_ATTEMPTS_MAX => {
                        attempt += 1
                    }
                    other => return other,
                }
            }
        })
    }

    /// `read` (whatever its attempts) answers `Corrupt` at `offset` only while the damage may be
    /// transient: once every attempt failed, the damaged batches are skipped and the read goes
    /// on at the next batch that verifies, so damage costs its own records and no more (a
    /// consumer moves past the hole as past a compacted one). At most `DAMAGE_SKIPS_MAX` ranges
    /// are passed in one call.
    fn past_damage<T: Default>(
        &mut self,
        mut offset: u64,
        mut read: impl FnMut(&mut Self, u64) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        let mut skips = 0;
        loop {
            match read(self, offset) {
                Err(e @ LogError::Corrupt { .. }) if skips < segment::DAMAGE_SKIPS_MAX => {
                    skips += 1;
                    match self.skip_damaged(offset)? {
                        // Nothing readable after the damage (a "batch" found past the log's
                        // end is not one of its batches).
                        Some(resume) if resume >= self.next_offset => return Ok(T::default()),
                        Some(resume) if resume > offset => offset = resume,
                        Some(_) => return Err(e),
                        None => return Ok(T::default()),
                    }
                }
                other => return other,
            }
        }
    }

    /// The offset reads resume at after the batch holding `offset` failed verification every
    /// time (see `Segment::skip_damage`); `None` when nothing after it verifies in the log yet.
    fn skip_damaged(&mut self, offset: u64) -> Result<Option<u64>, LogError> {
        let base = self.segment_floor(offset);
        let later = self.segments.range(base + 1..).next().map(|(&b, _)| b);
        let Some(segment) = self.segments.get_mut(&base) else {
            return Ok(later);
        };
        let Some(damaged) = segment.find_batch(offset)? else {
            return Ok(later);
        };
        let lost_from = damaged.header.base_offset as u64;
        // From its own offsets on: a copy of them may lie further on (see `damage_after`).
        match segment.skip_damage(damaged.position, lost_from, lost_from)? {
            Some(resumed) => Ok(Some(resumed.header.base_offset as u64)),
            None => Ok(later),
        }
    }

    /// The damaged ranges found so far (reads, index rebuilds, recovery), by segment.
    pub fn damage(&self) -> Vec<(u64, segment::Damage)> {
        let all = self.segments.iter();
        all.flat_map(|(&base, s)| s.damage().map(move |d| (base, *d)))
            .collect()
    }

    fn read_once(
        &mut self,
        offset: u64,
        bytes_max: u64,
        offset_limit: u64,
    ) -> Result<Option<LogSlice<D::File>>, LogError> {
        self.check_range(offset)?;
        let offset_limit = offset_limit.min(self.next_offset);
        let from = self.segment_floor(offset);
        let bases: Vec<u64> = self.segments.range(from..).map(|(&b, _)| b).collect();
        for base in bases {
            if offset >= offset_limit || base >= offset_limit {
                return Ok(None);
            }
            let segment = self.segments.get_mut(&base).expect("listed above");
            let Some(first) = segment.find_batch(offset)? else {
                continue;
            };
            // A header found by a walk over headers alone may be damaged where the CRC covers
            // it: a batch cannot end past the log's end.
            if first.header.last_offset() as u64 >= self.next_offset {
                return Err(LogError::Corrupt {
                    offset: first.header.base_offset as u64,
                    reason: format!(
                        "a batch header claims offsets up to {}, past the log end {}",
                        first.header.last_offset(),
                        self.next_offset
                    ),
                });
            }
            if first.header.last_offset() as u64 >= offset_limit {
                return Ok(None);
            }
            let slice = segment.slice_from(first, bytes_max, offset_limit)?;
            return verify_slice(segment, slice, offset).map(Some);
        }
        Ok(None)
    }

    /// Like `read`, but copies the bytes and checks every batch's CRC (reading again up to
    /// `READ_ATTEMPTS_MAX` times): a first batch damaged for good is skipped (see
    /// `past_damage`), and a corrupt later batch ends the result before it.
    ///
    /// # Errors
    /// As `read`, and `Corrupt` when damage cannot be passed.
    pub fn read_copy(
        &mut self,
        offset: u64,
        bytes_max: u64,
        offset_limit: u64,
    ) -> Result<Vec<u8>, LogError> {
        self.past_damage(offset, |log, offset| {
            log.copy_attempts(
                offset,
                bytes_max,
                offset_limit,
                scan::READ_ATTEMPTS_MAX,
                false,
            )
        })
    }

    /// `read_copy`'s body: up to `attempts` attempts in all, each a lookup, a read and a
    /// verification, so a damaged batch is read a bounded number of times however the layers
    /// below fail (they do not retry on their own). Bytes that fail verification are read
    /// again, lookup included: a transient read error must not be reported as corruption, and
    /// corruption that persists is never served. `lookup_damage_is_corrupt` turns a lookup's
    /// `InvalidData` (unparsable headers) into `Corrupt`, to be tried again.
    fn copy_attempts(
        &mut self,
        offset: u64,
        bytes_max: u64,
        offset_limit: u64,
        attempts: u32,
        lookup_damage_is_corrupt: bool,
    ) -> Result<Vec<u8>, LogError> {
        debug_assert!(attempts >= 1);
        let mut last_failure = None;
        let mut last_error = None;
        for _ in 0..attempts {
            let slice = match self.read_once(offset, bytes_max, offset_limit) {
                Ok(None) => return Ok(Vec::new()),
                Ok(Some(slice)) => slice,
                Err(e @ LogError::Corrupt { .. }) => {
                    last_error = Some(e);
                    continue;
                }
                Err(LogError::Io(e))
                    if lookup_damage_is_corrupt && e.kind() == io::ErrorKind::InvalidData =>
                {
                    last_error = Some(LogError::Corrupt {
                        offset,
                        reason: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut bytes = vec![0u8; slice.bytes as usize];
            slice.file.read_exact_at(&mut bytes, slice.position)?;
            let offsets = (slice.first_offset, slice.next_offset);
            let verified = verified_prefix_holding(&bytes, offsets, offset, self.holes);
            if verified == bytes.len() {
                return Ok(bytes);
            }
            last_failure = Some((bytes, verified, slice.first_offset));
        }
        let Some((mut bytes, verified, first_offset)) = last_failure else {
            return Err(last_error.expect("every attempt failed with an error"));
        };
        if verified == 0 {
            let reason = match BatchHeader::parse(&bytes) {
                Ok(h) => format!("batch at offset {} fails verification", h.base_offset),
                Err(e) => e.to_string(),
            };
            return Err(LogError::Corrupt {
                offset: first_offset,
                reason,
            });
        }
        bytes.truncate(verified);
        Ok(bytes)
    }

    /// The first offset whose record timestamp is at least `timestamp`, with that timestamp
    /// (Kafka's ListOffsets by time). `None` when every record is older.
    ///
    /// # Errors
    /// IO errors, or `Corrupt` when the batch that holds the answer fails verification.
    pub fn offset_for_timestamp(&mut self, timestamp: i64) -> Result<Option<(u64, i64)>, LogError> {
        let bases: Vec<u64> = self.segments.keys().copied().collect();
        for base in bases {
            if let Some(hit) = self.offset_for_timestamp_in(base, timestamp)? {
                return Ok(Some(hit));
            }
        }
        Ok(None)
    }

    /// `offset_for_timestamp` within the segment at `base`. Records below the log start are gone
    /// even where their batch remains, so the search starts at the log start, and goes on past a
    /// batch whose only matches lie below it.
    fn offset_for_timestamp_in(
        &mut self,
        base: u64,
        timestamp: i64,
    ) -> Result<Option<(u64, i64)>, LogError> {
        let mut from = base.max(self.log_start_offset);
        loop {
            let segment = self.segments.get_mut(&base).expect("an existing segment");
            if segment.max_timestamp() >= 0 && segment.max_timestamp() < timestamp {
                return Ok(None);
            }
            let Some(found) = segment.find_by_timestamp(timestamp, from)? else {
                return Ok(None);
            };
            let mut bytes = vec![0u8; found.total_bytes as usize];
            segment
                .log_file()
                .read_exact_at(&mut bytes, found.position)?;
            let corrupt = |reason: String| LogError::Corrupt {
                offset: found.header.base_offset as u64,
                reason,
            };
            if !batch::crc_ok(&bytes, &found.header) {
                return Err(corrupt("batch fails its CRC".to_owned()));
            }
            let records = batch::decode_records(&bytes).map_err(|e| corrupt(e.to_string()))?;
            let hit = records
                .iter()
                .find(|r| r.timestamp >= timestamp && r.offset as u64 >= self.log_start_offset);
            if let Some(record) = hit {
                return Ok(Some((record.offset as u64, record.timestamp)));
            }
            from = found.header.last_offset() as u64 + 1;
        }
    }

    /// The offset holding the largest timestamp in the log, with that timestamp (ListOffsets
    /// with MAX_TIMESTAMP, KIP-734); `None` for a log without timestamps.
    ///
    /// # Errors
    /// None today; the signature leaves room for reading timestamps from disk.
    pub fn max_timestamp_offset(&mut self) -> Result<Option<(u64, i64)>, LogError> {
        let best = self
            .segments
            .values()
            .filter(|s| s.max_timestamp() >= 0)
            .max_by_key(|s| s.max_timestamp())
            .map(|s| (s.offset_of_max_timestamp(), s.max_timestamp()));
        Ok(best.filter(|&(offset, _)| offset >= self.log_start_offset))
    }

    /// Removes every batch that does not end below `offset` (a follower's truncation on leader
    /// change), durably. The new end is at most `offset`, at a batch boundary.
    ///
    /// # Errors
    /// IO errors.
    pub fn truncate_to(&mut self, offset: u64) -> Result<(), LogError> {
        if offset >= self.next_offset {
            return Ok(());
        }
        self.truncations += 1;
        let doomed: Vec<u64> = self.segments.range(offset + 1..).map(|(&b, _)| b).collect();
        for base in doomed {
            if let Some(segment) = self.segments.remove(&base) {
                segment.delete(&self.disk)?;
            }
        }
        self.bound_segments();
        let new_end = match self.segments.values_mut().next_back() {
            Some(active) => active.truncate_to(offset)?.unwrap_or(offset),
            None => offset,
        };
        if self.segments.is_empty() || new_end < self.log_start_offset {
            self.start_fresh_at(offset)?;
        } else {
            let index_bytes = self.config.segment_index_bytes;
            self.active().make_active(index_bytes)?;
            self.next_offset = new_end;
        }
        self.disk.sync_dir(&self.dir)?;
        self.recovery_point = self.recovery_point.min(self.next_offset);
        self.high_watermark = self.high_watermark.min(self.next_offset);
        self.write_checkpoint(self.recovery_point)?;
        Ok(())
    }

    /// Empties the log and starts it again at `offset` (a truncation below the log start).
    fn start_fresh_at(&mut self, offset: u64) -> Result<(), LogError> {
        for (_, segment) in std::mem::take(&mut self.segments) {
            segment.delete(&self.disk)?;
        }
        let mut segment = Segment::create(
            &self.disk,
            &self.dir,
            offset,
            self.config.segment_index_bytes,
        )?;
        segment.set_holes(self.holes);
        self.segments.insert(offset, segment);
        self.bound_segments();
        self.log_start_offset = offset;
        self.next_offset = offset;
        Ok(())
    }

    /// Tells each segment the base offset of the next (see `Segment::set_offset_limit`). Called
    /// after every change of which segments the log has, but for removals at its start, which
    /// change no limit.
    pub(crate) fn bound_segments(&mut self) {
        let mut next = u64::MAX;
        for (&base, segment) in self.segments.iter_mut().rev() {
            segment.set_offset_limit(next);
            next = base;
        }
    }

    /// Flushes everything and writes the clean-shutdown marker, which lets the next `open` skip
    /// recovery. Dropping a log without `close` is a crash as far as the next `open` knows.
    ///
    /// # Errors
    /// IO errors; then no marker is written and the next open recovers.
    pub fn close(mut self, now_ms: i64) -> Result<(), LogError> {
        self.active().close_active()?;
        self.flush(now_ms)?;
        let active = self.segments.values().next_back().expect("active segment");
        let marker = CleanShutdown {
            next_offset: self.next_offset,
            active_base_offset: active.base_offset(),
            active_bytes: active.bytes(),
        };
        checkpoint::write_clean_shutdown(&self.disk, &self.dir, marker)?;
        Ok(())
    }
}

/// Makes sure every batch of `slice` was verified by this process before it is sent without
/// being looked at: bytes it did not write or scan itself are read and checked first (again on
/// failure, up to `READ_ATTEMPTS_MAX` times). A corrupt batch ends the slice before it; a corrupt
/// first batch is an error. Bytes this process appended were validated on the way in, so the
/// steady state costs nothing.
fn verify_slice<F: File>(
    segment: &mut Segment<F>,
    mut slice: LogSlice<F>,
    offset: u64,
) -> Result<LogSlice<F>, LogError> {
    let end = slice.position + slice.bytes;
    if segment.is_verified(slice.position, end) {
        return Ok(slice);
    }
    // One read: the callers (`read`, `read_copy`) make the attempts, so that the reads of a
    // damaged batch add up to a bound rather than multiply.
    let mut bytes = vec![0u8; slice.bytes as usize];
    slice.file.read_exact_at(&mut bytes, slice.position)?;
    let offsets = (slice.first_offset, slice.next_offset);
    let verified = verified_prefix_holding(&bytes, offsets, offset, segment.holes());
    if verified == 0 {
        return Err(LogError::Corrupt {
            offset: slice.first_offset,
            reason: "the batch fails verification".to_owned(),
        });
    }
    segment.mark_verified(slice.position, slice.position + verified as u64);
    if verified < bytes.len() {
        slice.next_offset = prefix_next_offset(&bytes[..verified]);
        slice.bytes = verified as u64;
    }
    Ok(slice)
}

/// `verified_prefix`, and 0 unless the first batch holds `offset`: a lookup misled by a header
/// that read wrong can land on a sound batch that is not the one asked for.
/// Every batch must also end below `offsets.1`, the offset the slice was found to end at (the
/// CRC does not cover a batch's base offset: a flipped bit there gives a batch that verifies
/// with offsets from elsewhere, and in a compacted segment such a jump looks like a hole).
fn verified_prefix_holding(bytes: &[u8], offsets: (u64, u64), offset: u64, holes: bool) -> usize {
    let holds = BatchHeader::parse(bytes).is_ok_and(|h| h.last_offset() as u64 >= offset);
    if holds {
        verified_prefix_below(bytes, offsets.0, offsets.1, holes)
    } else {
        0
    }
}

/// The offset after the last batch of `bytes` (whole, verified batches).
fn prefix_next_offset(bytes: &[u8]) -> u64 {
    let mut position = 0;
    let mut next = 0;
    while let Ok(header) = BatchHeader::parse(&bytes[position..]) {
        next = header.last_offset() as u64 + 1;
        position += header.total_bytes().unwrap_or(bytes.len());
        if position >= bytes.len() {
            break;
        }
    }
    next
}

/// The length of the longest prefix of `bytes` made of whole batches with valid CRCs, headers
/// whose counts and offsets are not negative, and dense offsets (with `holes`, strictly
/// increasing ones), the first starting at `first_offset`.
pub fn verified_prefix(bytes: &[u8], first_offset: u64, holes: bool) -> usize {
    verified_prefix_below(bytes, first_offset, u64::MAX, holes)
}

/// `verified_prefix` of batches whose last offsets lie below `below`.
fn verified_prefix_below(bytes: &[u8], first_offset: u64, below: u64, holes: bool) -> usize {
    let mut position = 0;
    let mut expected_base = first_offset;
    while let Ok(header) = BatchHeader::parse(&bytes[position..]) {
        let base = header.base_offset as u64;
        let in_order = base == expected_base || (holes && base > expected_base);
        // As the scanner refuses it: a batch whose last offset lies below its base (a negative
        // last_offset_delta) is invalid whatever its CRC says, and served it would send a
        // reader back below where it read, even below the log start.
        let negative = header.base_offset < 0 || header.last_offset_delta < 0;
        if !in_order || negative || header.records_count < 0 {
            break;
        }
        if header.last_offset() as u64 >= below {
            break;
        }
        // A jump (a compaction hole) that the next batch's offsets fall back into is a flipped
        // bit in this batch's base offset (see `scan::falls_back_into`).
        let jumps_back = holes
            && base > expected_base
            && header.total_bytes().is_some_and(|total| {
                let next = bytes.get(position + total..).unwrap_or_default();
                scan::falls_back_into(next, expected_base, header.last_offset() as u64)
            });
        if jumps_back {
            break;
        }
        let Some(total) = header.total_bytes() else {
            break;
        };
        let Some(batch) = bytes.get(position..position + total) else {
            break;
        };
        if header.magic != batch::MAGIC_V2 || !batch::crc_ok(batch, &header) {
            break;
        }
        expected_base = header.last_offset() as u64 + 1;
        position += total;
    }
    position
}

#[cfg(test)]
mod tests;
