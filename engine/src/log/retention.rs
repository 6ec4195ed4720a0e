//! Retention: deleting whole closed segments that are too old (retention.ms), that the log no
//! longer has room for (retention.bytes), or that lie wholly below the log start offset (after
//! DeleteRecords). The active segment is never deleted. Time and size apply only when
//! cleanup.policy includes `delete`.
//!
//! Order matters for crash safety: the new log start offset is checkpointed first, then the files
//! are removed and the directory synced. A crash in between leaves files that the next open sees
//! below the log start offset and deletes again; it never resurrects records a reader was told
//! are gone.

use super::{Log, LogError};
use crate::io::Disk;

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
}

impl<D: Disk> Log<D> {
    /// Deletes the closed segments that retention no longer keeps, oldest first.
    ///
    /// # Errors
    /// IO errors; what was deleted before the error stays deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome, LogError> {
        let doomed = self.segments_to_delete(Some(now_ms));
        self.delete_oldest(doomed)
    }

    /// How many of the oldest segments retention removes: a prefix, since retention never leaves
    /// a hole in the middle of a log. Without `now_ms`, only size and the log start count.
    fn segments_to_delete(&self, now_ms: Option<i64>) -> usize {
        let closed: Vec<(u64, u64, i64)> = self
            .segments
            .values()
            .rev()
            .skip(1)
            .rev()
            .map(|s| (s.base_offset(), s.bytes(), s.max_timestamp()))
            .collect();
        let bases: Vec<u64> = self.segments.keys().copied().collect();
        // Under cleanup.policy=compact alone, time and size do not delete: compaction keeps the
        // latest value of every key however old. Records below the log start still go.
        let by_retention = self.config.cleanup_policy.delete;
        let retention_ms = if by_retention {
            self.config.retention_ms
        } else {
            -1
        };
        let limit = if by_retention {
            self.config.retention_bytes
        } else {
            -1
        };
        let mut excess_bytes = (limit >= 0).then(|| self.size_bytes() as i64 - limit);
        let mut count = 0;
        for (i, &(_, bytes, max_timestamp)) in closed.iter().enumerate() {
            let next_base = bases[i + 1];
            let expired = now_ms.is_some_and(|now_ms| {
                retention_ms >= 0
                    && max_timestamp >= 0
                    && now_ms.saturating_sub(max_timestamp) > retention_ms
            });
            let oversize = excess_bytes.is_some_and(|excess| excess >= bytes as i64);
            let below_start = next_base <= self.log_start_offset;
            if !(expired || oversize || below_start) {
                break;
            }
            excess_bytes = excess_bytes.map(|excess| excess - bytes as i64);
            count += 1;
        }
        count
    }

    fn delete_oldest(&mut self, count: usize) -> Result<RetentionOutcome, LogError> {
        let mut outcome = RetentionOutcome::default();
        if count == 0 {
            return Ok(outcome);
        }
        let new_start = *self
            .segments
            .keys()
            .nth(count)
            .expect("active segment stays");
        self.log_start_offset = self.log_start_offset.max(new_start);
        self.write_checkpoint(self.recovery_point)?;
        for _ in 0..count {
            let (_, segment) = self.segments.pop_first().expect("counted above");
            outcome.bytes_deleted += segment.bytes();
            outcome.segments_deleted += 1;
            segment.delete(&self.disk)?;
        }
        self.disk.sync_dir(&self.dir)?;
        tracing::info!(
            dir = %self.dir.display(),
            segments = outcome.segments_deleted,
            bytes = outcome.bytes_deleted,
            log_start_offset = self.log_start_offset,
            "retention deleted segments"
        );
        Ok(outcome)
    }

    /// Moves the log start offset up to `offset` (Kafka's DeleteRecords), durably, and deletes
    /// the segments that fall wholly below it.
    ///
    /// # Errors
    /// `OffsetOutOfRange` beyond the log end; IO errors.
    pub fn delete_records_before(&mut self, offset: u64) -> Result<u64, LogError> {
        if offset > self.next_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                next_offset: self.next_offset,
            });
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            self.write_checkpoint(self.recovery_point)?;
        }
        let doomed = self.segments_to_delete(None);
        self.delete_oldest(doomed)?;
        Ok(self.log_start_offset)
    }
}
