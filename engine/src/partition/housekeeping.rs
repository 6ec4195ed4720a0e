//! What a partition does to its log beside the requests: retention, producer expiry and
//! snapshots (from the broker's housekeeping), compaction (the log cleaner), and DeleteRecords.

use super::{settle, Partition};
use crate::io::Disk;
use crate::log::compaction::CompactionOutcome;
use crate::log::{Log, LogError};

impl<D: Disk> Partition<D> {
    /// Applies retention, forgets producers idle for longer than `producer_expiration_ms`, and
    /// snapshots the producers when the log is wholly durable. Returns the log start offset
    /// when retention moved it; `Ok(None)` when it did not or the partition is closed.
    ///
    /// # Errors
    /// IO errors from retention (what was deleted before the error stays deleted).
    pub fn apply_retention(
        &self,
        now_ms: i64,
        producer_expiration_ms: i64,
    ) -> Result<Option<u64>, LogError> {
        let mut guard = self.log();
        let Some(log) = guard.as_mut() else {
            return Ok(None);
        };
        let before = log.log_start_offset();
        let retained = log.apply_retention(now_ms);
        settle(log);
        self.producers().expire(now_ms, producer_expiration_ms);
        self.snapshot_producers_if_durable(log);
        retained?;
        let after = log.log_start_offset();
        debug_assert!(after >= before, "retention never moves the log start back");
        Ok((after > before).then_some(after))
    }

    /// Runs one compaction pass when the dirty ratio calls for it, holding the log's lock for
    /// the whole pass (produce and fetch on this partition wait for it; others do not).
    /// `Ok(None)` when no pass was due.
    ///
    /// # Errors
    /// IO errors; the swap is crash-safe, so the log holds the old segments or the new ones.
    pub fn compact_if_due(&self, now_ms: i64) -> Result<Option<CompactionOutcome>, LogError> {
        let mut guard = self.log();
        let Some(log) = guard.as_mut().filter(|log| log.compaction_due(now_ms)) else {
            return Ok(None);
        };
        let bounds_before = (log.log_start_offset(), log.next_offset());
        let outcome = log.compact(now_ms)?;
        debug_assert_eq!(
            bounds_before,
            (log.log_start_offset(), log.next_offset()),
            "compaction removes records, never offsets"
        );
        Ok(Some(outcome))
    }

    /// DeleteRecords: moves the log start offset up to `offset` (the high watermark when
    /// `None`), durably, and deletes the segments wholly below it. Returns the new log start;
    /// `None` when closed. Errors: `OffsetOutOfRange` above the high watermark; IO errors.
    pub fn delete_records(&self, offset: Option<u64>) -> Option<Result<u64, LogError>> {
        let mut guard = self.log();
        let log = guard.as_mut()?;
        Some(delete_records(log, offset))
    }
}

fn delete_records<D: Disk>(log: &mut Log<D>, offset: Option<u64>) -> Result<u64, LogError> {
    let high_watermark = log.high_watermark();
    let offset = offset.unwrap_or(high_watermark);
    if offset > high_watermark {
        return Err(LogError::OffsetOutOfRange {
            offset,
            log_start_offset: log.log_start_offset(),
            next_offset: high_watermark,
        });
    }
    let deleted = log.delete_records_before(offset);
    settle(log);
    let log_start_offset = deleted?;
    debug_assert!(log_start_offset >= offset);
    Ok(log_start_offset)
}
