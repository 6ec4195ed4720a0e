//! One partition on this broker: everything it does to its log. The produce path (`append`:
//! the topic's codec, min.insync.replicas, the compaction key check, the idempotent producers'
//! verdicts, and the flush the policy requires before the acknowledgement), the flush policy as
//! a whole (`flush`, `flush_if_due`), the high watermark, retention, DeleteRecords, compaction,
//! producer snapshots and the clean close. Protocol handlers and the group coordinator call
//! these and translate what they return; none of them touches the log's writing side directly.
//! Replication adds the leader and follower roles, the ISR and leader epochs here.
//!
//! Locks, in this order: the flush gate, the log, then the producers; the log's and the
//! producers' are held only for synchronous work. A flush syncs the segment files without the
//! log's lock (appends, fetches and truncations go on meanwhile, in the simulator too, where
//! the disk's sync takes simulated time) and holds the flush gate, an async lock, instead, so
//! that flushes of one partition follow one another: a producer that waited at the gate
//! usually finds its batch already durable and syncs nothing (group commit).
//!
//! With one replica, the high watermark is what a consumer may read: the log end under flush
//! policies `none` and `interval` (what Kafka shows with one replica), and the recovery point
//! under `always`, so that a consumer never reads a record that a power loss could still take
//! back before its producer was acknowledged. The partition is the only writer of the log's
//! high watermark (`settle`, after every change of the log), so the checkpoint carries it.

mod append;
mod flush;
mod housekeeping;
pub mod producers;
#[cfg(test)]
mod tests;

use std::sync::{Mutex, MutexGuard};

pub use self::append::{Acks, AppendError, Appended};
pub use self::flush::Synced;
use self::producers::ProducerState;
use crate::io::Disk;
use crate::log::{FlushPolicy, Log, LogConfig, LogError, LogSlice, RecoveryReport};

pub struct Partition<D: Disk> {
    pub topic: String,
    pub index: i32,
    /// The replicas in sync with the leader: with one replica, this node alone.
    in_sync: Vec<i32>,
    disk: D,
    /// `None` once the partition was closed (shutdown or topic deletion).
    log: Mutex<Option<Log<D>>>,
    producers: Mutex<ProducerState>,
    /// Held through a whole flush, across its wait for the device; see the module doc.
    flush_gate: tokio::sync::Mutex<()>,
    /// The log end the last producer snapshot was written at: an unchanged log is not
    /// snapshotted again.
    snapshot_at: Mutex<Option<u64>>,
}

/// Where a partition's log stands, read under its lock in one go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub log_start_offset: u64,
    pub high_watermark: u64,
    /// The log end offset: the offset the next record gets.
    pub log_end_offset: u64,
    /// Everything below is durable.
    pub recovery_point: u64,
}

/// What a consumer's read found: the partition's bounds, and the batches from the offset asked
/// for, as a range of a segment file (sent with sendfile where the platform has it).
pub struct Read<F: crate::io::File> {
    pub bounds: Bounds,
    /// `Ok(None)`: nothing to read yet at that offset.
    pub records: Result<Option<LogSlice<F>>, LogError>,
}

impl<D: Disk> Partition<D> {
    /// A partition over an opened log, led by `replica` (this node), with its producer state
    /// rebuilt from the log.
    ///
    /// # Errors
    /// IO errors reading the producer snapshot or the log.
    pub fn open(
        topic: String,
        index: i32,
        replica: i32,
        disk: &D,
        mut log: Log<D>,
    ) -> Result<Self, LogError> {
        let producers = ProducerState::rebuild(disk, &mut log)?;
        settle(&mut log);
        Ok(Partition {
            topic,
            index,
            in_sync: vec![replica],
            disk: disk.clone(),
            log: Mutex::new(Some(log)),
            producers: Mutex::new(producers),
            flush_gate: tokio::sync::Mutex::new(()),
            snapshot_at: Mutex::new(None),
        })
    }

    /// The log, locked, for inspection (`None` when closed). Every change goes through the
    /// partition's own methods, which keep the high watermark, the producers and the flush
    /// gate consistent with it. Hold it only for synchronous work.
    pub fn log(&self) -> MutexGuard<'_, Option<Log<D>>> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn producers(&self) -> MutexGuard<'_, ProducerState> {
        self.producers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The partition's bounds; `None` when closed.
    pub fn bounds(&self) -> Option<Bounds> {
        self.log().as_ref().map(bounds)
    }

    /// The bytes its segments hold (a sum over them: not for the fetch path); `None` when closed.
    pub fn size_bytes(&self) -> Option<u64> {
        self.log().as_ref().map(Log::size_bytes)
    }

    /// How the log's last open went; `None` when closed.
    pub fn recovery_report(&self) -> Option<RecoveryReport> {
        self.log().as_ref().map(|log| log.recovery_report().clone())
    }

    /// A consumer's read: whole batches from the one holding `offset`, up to `bytes_max` (at
    /// least one batch), below the high watermark. `None` when closed.
    pub fn read(&self, offset: u64, bytes_max: u64) -> Option<Read<D::File>> {
        let mut guard = self.log();
        let log = guard.as_mut()?;
        let bounds = bounds(log);
        let records = log.read(offset, bytes_max, bounds.high_watermark);
        Some(Read { bounds, records })
    }

    /// The first offset below the high watermark whose record timestamp is at least
    /// `timestamp`, with that timestamp (ListOffsets by time). `Ok(None)` when there is none
    /// yet; `None` when closed.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Option<Result<Option<(u64, i64)>, LogError>> {
        let mut guard = self.log();
        let log = guard.as_mut()?;
        let high_watermark = log.high_watermark();
        let found = log.offset_for_timestamp(timestamp);
        Some(found.map(|found| found.filter(|&(offset, _)| offset < high_watermark)))
    }

    /// The offset and timestamp of the record with the largest timestamp (KIP-734); `Ok(None)`
    /// when the log is empty, `None` when closed.
    pub fn max_timestamp_offset(&self) -> Option<Result<Option<(u64, i64)>, LogError>> {
        Some(self.log().as_mut()?.max_timestamp_offset())
    }

    /// Runs the topic's new settings (a closed partition has none to run).
    ///
    /// # Errors
    /// Settings the log cannot take (see `Log::set_config`).
    pub fn set_config(&self, config: LogConfig) -> Result<(), LogError> {
        let mut guard = self.log();
        let Some(log) = guard.as_mut() else {
            return Ok(());
        };
        log.set_config(config)?;
        settle(log);
        Ok(())
    }

    /// Closes the log (for a topic's deletion); later calls see the partition closed.
    pub fn take_log(&self) -> Option<Log<D>> {
        self.log().take()
    }

    /// Closes the log cleanly: a final flush, the producer snapshot, the clean-shutdown
    /// marker. Later calls see the partition closed.
    ///
    /// # Errors
    /// IO errors; the next start then recovers as after a crash.
    pub fn close(&self, now_ms: i64) -> Result<(), LogError> {
        // A flush still syncing finds the partition closed when it finishes, and fails.
        let _gate = self.flush_gate.try_lock().ok();
        let Some(mut log) = self.take_log() else {
            return Ok(());
        };
        if log.flush(now_ms).is_ok() {
            self.snapshot_producers_if_durable(&log);
        }
        log.close(now_ms)
    }

    /// Writes the producer snapshot if every byte of `log` is durable (the snapshot must never
    /// describe batches a power loss could take back). Call with the log's lock held.
    fn snapshot_producers_if_durable(&self, log: &Log<D>) {
        let end = log.next_offset();
        let mut snapshot_at = self.snapshot_at.lock().unwrap_or_else(|p| p.into_inner());
        if log.recovery_point() < end || *snapshot_at == Some(end) {
            return;
        }
        let producers = self.producers();
        if producers.is_empty() {
            return;
        }
        match producers.write_snapshot(&self.disk, log.dir(), end) {
            Ok(()) => *snapshot_at = Some(end),
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "producer snapshot not written; the next start replays more of the log")
            }
        }
    }
}

fn bounds<D: Disk>(log: &Log<D>) -> Bounds {
    Bounds {
        log_start_offset: log.log_start_offset(),
        high_watermark: log.high_watermark(),
        log_end_offset: log.next_offset(),
        recovery_point: log.recovery_point(),
    }
}

/// Moves the log's high watermark to what consumers may now read (see the module doc). Called
/// after every change of the log's end, recovery point, start or settings.
fn settle<D: Disk>(log: &mut Log<D>) {
    let readable = match log.config().flush {
        FlushPolicy::Always => log.recovery_point().min(log.next_offset()),
        _ => log.next_offset(),
    };
    log.set_high_watermark(readable.max(log.log_start_offset()));
    debug_assert!(log.log_start_offset() <= log.high_watermark());
    debug_assert!(log.high_watermark() <= log.next_offset());
}

fn closed() -> LogError {
    LogError::Io(std::io::Error::other("the partition is closed"))
}
