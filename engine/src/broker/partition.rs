//! One partition on this broker: its log and its idempotent producers, each behind a lock held
//! only for synchronous work. Lock order: the log, then the producers.
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

/// The highest offset (exclusive) a consumer may read; see the module doc.
pub fn high_watermark<D: Disk>(log: &Log<D>) -> u64 {
    match log.config().flush {
        FlushPolicy::Always => log.recovery_point().min(log.next_offset()),
        _ => log.next_offset(),
    }
}
