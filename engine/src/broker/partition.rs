//! One partition on this broker: its log and its idempotent producers, each behind a lock held
//! only for synchronous work. Lock order: the flush gate, the log, then the producers.
//!
//! A flush syncs the segment files without the log's lock (appends and fetches go on meanwhile)
//! and holds the flush gate instead, so that flushes of one partition follow one another: a
//! producer that waited at the gate usually finds its batch already durable and syncs nothing.
//!
//! With one replica, the high watermark is what a consumer may read: the log end under flush
//! policies `none` and `interval` (what Kafka shows with one replica), and the recovery point
//! under `always`, so that a consumer never reads a record that a power loss could still take
//! back before its producer was acknowledged.

use std::sync::{Mutex, MutexGuard};

use super::producers::ProducerState;
use crate::io::Disk;
use crate::log::{FlushPolicy, Log, LogError};

pub struct Partition<D: Disk> {
    pub topic: String,
    pub index: i32,
    /// `None` once the partition was closed (shutdown or topic deletion).
    log: Mutex<Option<Log<D>>>,
    producers: Mutex<ProducerState>,
    /// Held through a whole flush; see the module doc.
    flush_gate: Mutex<()>,
    /// The log end the last producer snapshot was written at: an unchanged log is not
    /// snapshotted again.
    snapshot_at: Mutex<Option<u64>>,
}

impl<D: Disk> Partition<D> {
    /// A partition over an opened log, with its producer state rebuilt from the log.
    ///
    /// # Errors
    /// IO errors reading the producer snapshot or the log.
    pub fn open(topic: String, index: i32, disk: &D, mut log: Log<D>) -> Result<Self, LogError> {
        let producers = ProducerState::rebuild(disk, &mut log)?;
        Ok(Partition {
            topic,
            index,
            log: Mutex::new(Some(log)),
            producers: Mutex::new(producers),
            flush_gate: Mutex::new(()),
            snapshot_at: Mutex::new(None),
        })
    }

    /// The log, locked; `None` when closed. Hold it only for synchronous work.
    pub fn log(&self) -> MutexGuard<'_, Option<Log<D>>> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The idempotent producers' state, locked. Take it while holding the log's lock when the
    /// two must agree (a produce).
    pub fn producers(&self) -> MutexGuard<'_, ProducerState> {
        self.producers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the log durable through offset `through` (everything appended so far when `None`),
    /// syncing the data without holding the log's lock. Returns whether it synced anything:
    /// `false` when an earlier flush already covered `through`. Call without the log's lock.
    ///
    /// # Errors
    /// IO errors, also when the partition was closed.
    pub fn flush(&self, through: Option<u64>, now_ms: i64) -> Result<bool, LogError> {
        // All of it may wait on the device: on the gate behind another flush's sync, in the
        // sync, and in the index and checkpoint syncs that end it.
        crate::io::blocking(|| self.flush_waiting(through, now_ms))
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
        log.finish_flush(pending, now_ms)?;
        // A truncation during the sync keeps the recovery point where it was: what was asked
        // for is then not durable, and must not be acknowledged as if it were.
        if log.recovery_point() < target {
            return Err(LogError::Io(std::io::Error::other(
                "the log was truncated while it was being flushed",
            )));
        }
        Ok(true)
    }

    /// Takes the log out (to close it); later calls see the partition closed.
    pub fn take_log(&self) -> Option<Log<D>> {
        self.log().take()
    }

    /// Writes the producer snapshot if every byte of `log` is durable (the snapshot must never
    /// describe batches a power loss could take back). Call with the log's lock held.
    pub fn snapshot_producers_if_durable(&self, disk: &D, log: &Log<D>) {
        let end = log.next_offset();
        let mut snapshot_at = self.snapshot_at.lock().unwrap_or_else(|p| p.into_inner());
        if log.recovery_point() < end || *snapshot_at == Some(end) {
            return;
        }
        let producers = self.producers();
        if producers.is_empty() {
            return;
        }
        match producers.write_snapshot(disk, log.dir(), end) {
            Ok(()) => *snapshot_at = Some(end),
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "producer snapshot not written; the next start replays more of the log")
            }
        }
    }
}

fn closed() -> LogError {
    LogError::Io(std::io::Error::other("partition closed before its flush"))
}

/// The highest offset (exclusive) a consumer may read; see the module doc.
pub fn high_watermark<D: Disk>(log: &Log<D>) -> u64 {
    match log.config().flush {
        FlushPolicy::Always => log.recovery_point().min(log.next_offset()),
        _ => log.next_offset(),
    }
}
