//! One partition on this broker: its log, behind a lock held only for synchronous work.
//!
//! With one replica, the high watermark is what a consumer may read: the log end under flush
//! policies `none` and `interval` (what Kafka shows with one replica), and the recovery point
//! under `always`, so that a consumer never reads a record that a power loss could still take
//! back before its producer was acknowledged.

use std::sync::{Mutex, MutexGuard};

use crate::io::Disk;
use crate::log::{FlushPolicy, Log};

pub struct Partition<D: Disk> {
    pub topic: String,
    pub index: i32,
    /// `None` once the partition was closed (shutdown or topic deletion).
    log: Mutex<Option<Log<D>>>,
}

impl<D: Disk> Partition<D> {
    pub fn new(topic: String, index: i32, log: Log<D>) -> Partition<D> {
        Partition {
            topic,
            index,
            log: Mutex::new(Some(log)),
        }
    }

    /// The log, locked; `None` when closed. Hold it only for synchronous work.
    pub fn log(&self) -> MutexGuard<'_, Option<Log<D>>> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the log out (to close it); later calls see the partition closed.
    pub fn take_log(&self) -> Option<Log<D>> {
        self.log().take()
    }
}

/// The highest offset (exclusive) a consumer may read; see the module doc.
pub fn high_watermark<D: Disk>(log: &Log<D>) -> u64 {
    match log.config().flush {
        FlushPolicy::Always => log.recovery_point().min(log.next_offset()),
        _ => log.next_offset(),
    }
}
