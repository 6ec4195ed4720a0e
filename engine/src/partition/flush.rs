//! The flush policy of a partition, in one place: the flush before an acknowledgement under
//! `always` (through `append`), the flushes that `interval` and rolled segments make due, and
//! the split flush that syncs without the log's lock.

use super::{closed, settle, Partition};
use crate::io::{Clock, Disk, SyncLatency};
use crate::log::{LogError, PendingFlush};

/// A flush that synced something, and how long it took (for `keel_fsync_seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    pub elapsed_ns: u64,
}

impl<D: Disk> Partition<D> {
    /// Makes the log durable through offset `through` (everything appended so far when `None`),
    /// syncing the data without holding the log's lock: appends, reads and truncations go on
    /// while the device syncs (for the device's time, `Disk::sync_latency`). Flushes of one
    /// partition wait for each other at the flush gate, so a flush that waited usually finds
    /// its offsets already durable. `None` when an earlier flush already covered `through`, so
    /// nothing was synced. Call without the log's lock.
    ///
    /// # Errors
    /// IO errors, also when the partition was closed, and when a truncation during the sync
    /// kept `through` from becoming durable.
    pub async fn flush<C: Clock>(
        &self,
        through: Option<u64>,
        clock: &C,
    ) -> Result<Option<Synced>, LogError> {
        let started_ns = clock.monotonic_ns();
        let _gate = self.flush_gate.lock().await;
        let Some(pending) = self.begin_flush(through)? else {
            return Ok(None);
        };
        let latency = self.disk.sync_latency();
        SyncLatency::wait(latency.before).await;
        // The syncs wait on the device: the data's here, the indexes' and the checkpoint's in
        // `finish_flush`.
        crate::io::blocking(|| pending.sync())?;
        SyncLatency::wait(latency.after).await;
        crate::io::blocking(|| self.finish_flush(pending, through, clock.now_ms()))?;
        Ok(Some(synced_since(started_ns, clock)))
    }

    /// `flush` for callers that must not wait asynchronously (the group coordinator writes
    /// committed offsets under its commit lock): it does not queue at the flush gate behind
    /// another flush (overlapping flushes are harmless: a flush only ever moves the recovery
    /// point forward) and does not wait out the device's simulated latency.
    ///
    /// # Errors
    /// As `flush`.
    pub fn flush_blocking<C: Clock>(
        &self,
        through: Option<u64>,
        clock: &C,
    ) -> Result<Option<Synced>, LogError> {
        let started_ns = clock.monotonic_ns();
        let _gate = self.flush_gate.try_lock().ok();
        let flushed = crate::io::blocking(|| {
            let Some(pending) = self.begin_flush(through)? else {
                return Ok(false);
            };
            pending.sync()?;
            self.finish_flush(pending, through, clock.now_ms())?;
            Ok::<bool, LogError>(true)
        })?;
        Ok(flushed.then(|| synced_since(started_ns, clock)))
    }

    /// Flushes when the flush policy says a flush is due (`interval`'s time or count, or a
    /// rolled segment not yet durable).
    ///
    /// # Errors
    /// As `flush`.
    pub async fn flush_if_due<C: Clock>(&self, clock: &C) -> Result<Option<Synced>, LogError> {
        let due = self
            .log()
            .as_ref()
            .is_some_and(|log| log.flush_due(clock.now_ms()));
        if !due {
            return Ok(None);
        }
        self.flush(None, clock).await
    }

    /// The flush's first half, under the log's lock: `None` when `through` is durable already.
    fn begin_flush(&self, through: Option<u64>) -> Result<Option<PendingFlush<D::File>>, LogError> {
        let guard = self.log();
        let log = guard.as_ref().ok_or_else(closed)?;
        let covered = match through {
            Some(offset) => log.recovery_point() > offset,
            None => log.recovery_point() >= log.next_offset(),
        };
        Ok((!covered).then(|| log.begin_flush()))
    }

    /// The flush's second half, once `pending` was synced: the recovery point moves (see
    /// `Log::finish_flush`) and with it the high watermark.
    fn finish_flush(
        &self,
        pending: PendingFlush<D::File>,
        through: Option<u64>,
        now_ms: i64,
    ) -> Result<(), LogError> {
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
        Ok(())
    }
}

fn synced_since<C: Clock>(started_ns: u64, clock: &C) -> Synced {
    Synced {
        elapsed_ns: clock.monotonic_ns().saturating_sub(started_ns),
    }
}
