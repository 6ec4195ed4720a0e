//! The flush policy of a partition, in one place: the flush before an acknowledgement under
//! `always` (through `append`), the flushes that `interval` and rolled segments make due, and
//! the split flush that syncs without the log's lock.

use super::{closed, settle, Partition};
use crate::io::{Clock, Disk};
use crate::log::LogError;

/// A flush that synced something, and how long it took (for `keel_fsync_seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    pub elapsed_ns: u64,
}

impl<D: Disk> Partition<D> {
    /// Makes the log durable through offset `through` (everything appended so far when `None`),
    /// syncing the data without holding the log's lock. `None` when an earlier flush already
    /// covered `through`, so nothing was synced. Call without the log's lock.
    ///
    /// # Errors
    /// IO errors, also when the partition was closed, and when a truncation during the sync
    /// kept `through` from becoming durable.
    pub fn flush<C: Clock>(
        &self,
        through: Option<u64>,
        clock: &C,
    ) -> Result<Option<Synced>, LogError> {
        let started_ns = clock.monotonic_ns();
        // All of it may wait on the device: on the gate behind another flush's sync, in the
        // sync, and in the index and checkpoint syncs that end it.
        let synced = crate::io::blocking(|| self.flush_waiting(through, clock.now_ms()))?;
        Ok(synced.then(|| Synced {
            elapsed_ns: clock.monotonic_ns().saturating_sub(started_ns),
        }))
    }

    /// Flushes when the flush policy says a flush is due (`interval`'s time or count, or a
    /// rolled segment not yet durable).
    ///
    /// # Errors
    /// As `flush`.
    pub fn flush_if_due<C: Clock>(&self, clock: &C) -> Result<Option<Synced>, LogError> {
        let due = self
            .log()
            .as_ref()
            .is_some_and(|log| log.flush_due(clock.now_ms()));
        if !due {
            return Ok(None);
        }
        self.flush(None, clock)
    }

    fn flush_waiting(&self, through: Option<u64>, now_ms: i64) -> Result<bool, LogError> {
        let _gate = self
            .flush_gate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let pending = {
            let guard = self.log();
            let log = guard.as_ref().ok_or_else(closed)?;
            let covered = match through {
                Some(offset) => log.recovery_point() > offset,
                None => log.recovery_point() >= log.next_offset(),
            };
            if covered {
                return Ok(false);
            }
            log.begin_flush()
        };
        pending.sync()?;
        let target = through.map_or(pending.through(), |offset| offset + 1);
        let mut guard = self.log();
        let log = guard.as_mut().ok_or_else(closed)?;
        let finished = log.finish_flush(pending, now_ms);
        settle(log);
        finished?;
        // A truncation during the sync keeps the recovery point where it was: what was asked
        // for is then not durable, and must not be acknowledged as if it were.
        if log.recovery_point() < target {
            return Err(LogError::Io(std::io::Error::other(
                "the log was truncated while it was being flushed",
            )));
        }
        Ok(true)
    }
}
