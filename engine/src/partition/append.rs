//! The produce path, the one way records enter a partition's log (producers' batches and the
//! group coordinator's committed offsets alike): the topic's codec, min.insync.replicas, the
//! compaction key check, the idempotent producers' verdicts, the append, and the flush the
//! policy requires before the acknowledgement. A refused batch leaves the log untouched.

use super::producers::{self, Verdict};
use super::{settle, Partition, Synced};
use crate::io::{Clock, Disk};
use crate::log::batch::{self, BatchHeader};
use crate::log::{Compression, FlushPolicy, LogError};

/// How many replicas must have a batch before it is acknowledged (Produce's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: no answer is sent, but the batch is written as for `Leader`.
    None,
    /// acks=1.
    Leader,
    /// acks=-1 (all): every in-sync replica, and at least min.insync.replicas of them.
    All,
}

impl Acks {
    /// Produce's `acks` field; `None` for values Kafka refuses (INVALID_REQUIRED_ACKS).
    pub fn from_field(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// An acknowledged batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub last_offset: u64,
    /// The broker's timestamp under LogAppendTime.
    pub log_append_time: Option<i64>,
    pub log_start_offset: u64,
    /// A retry of a batch already written, acknowledged at its first offsets.
    pub duplicate: bool,
    /// Bytes written to the log (0 for a duplicate).
    pub bytes: u64,
    /// The flush the acknowledgement waited for, when one synced.
    pub synced: Option<Synced>,
}

/// Why a batch was not acknowledged.
#[derive(Debug)]
pub enum AppendError {
    /// The partition was closed (deleted, or the broker is stopping).
    Closed,
    /// acks=all, with fewer replicas in sync than min.insync.replicas.
    NotEnoughReplicas(String),
    /// The idempotent producer's state refuses it, with this Kafka error code.
    Producer(i16, String),
    /// The log refused the batch or failed to write or flush it.
    Log(LogError),
}

impl From<LogError> for AppendError {
    fn from(e: LogError) -> AppendError {
        AppendError::Log(e)
    }
}

impl<D: Disk> Partition<D> {
    /// Appends one validated-by-header record batch (v2, not transactional), acknowledged
    /// under `acks`; `compression` is the topic's compression.type (the topic's copy of it, so
    /// the batch is recompressed before the log's lock is taken).
    ///
    /// Under flush=always the batch is durable when this returns, and so is a duplicate's
    /// first attempt (which may have been written but not flushed: its flush failed).
    ///
    /// # Errors
    /// See `AppendError`. Nothing is written unless the batch was appended (a failed flush
    /// leaves it in the log, unacknowledged, where a retry finds it as a duplicate).
    pub async fn append<C: Clock>(
        &self,
        produced: &[u8],
        header: &BatchHeader,
        acks: Acks,
        compression: Compression,
        clock: &C,
    ) -> Result<Appended, AppendError> {
        let (mut appended, flush) =
            self.append_unflushed(produced, header, acks, compression, clock)?;
        if let Some(through) = flush {
            appended.synced = self.flush(Some(through), clock).await?;
        }
        Ok(appended)
    }

    /// `append` for callers that must not wait asynchronously (the group coordinator under its
    /// commit lock), flushing with `flush_blocking`.
    ///
    /// # Errors
    /// As `append`.
    pub fn append_blocking<C: Clock>(
        &self,
        produced: &[u8],
        header: &BatchHeader,
        acks: Acks,
        compression: Compression,
        clock: &C,
    ) -> Result<Appended, AppendError> {
        let (mut appended, flush) =
            self.append_unflushed(produced, header, acks, compression, clock)?;
        if let Some(through) = flush {
            appended.synced = self.flush_blocking(Some(through), clock)?;
        }
        Ok(appended)
    }

    /// The append up to its flush: what to answer, and the offset the flush policy wants
    /// durable before the answer (`None`: no flush).
    fn append_unflushed<C: Clock>(
        &self,
        produced: &[u8],
        header: &BatchHeader,
        acks: Acks,
        compression: Compression,
        clock: &C,
    ) -> Result<(Appended, Option<u64>), AppendError> {
        let mut batch = recompressed(compression, produced, header)?;
        let now_ms = clock.now_ms();
        let mut guard = self.log();
        let log = guard.as_mut().ok_or(AppendError::Closed)?;
        // acks=all needs min.insync.replicas in sync (Kafka checks this before appending, so
        // nothing is written).
        let min_insync = log.config().min_insync_replicas;
        if acks == Acks::All && min_insync > self.in_sync.len() as i32 {
            let in_sync: Vec<String> = self.in_sync.iter().map(i32::to_string).collect();
            return Err(AppendError::NotEnoughReplicas(format!(
                "The size of the current ISR Set({}) is insufficient to satisfy the min.isr requirement of {min_insync} for partition {}-{}",
                in_sync.join(", "),
                self.topic,
                self.index
            )));
        }
        if log.config().cleanup_policy.compact {
            let name = format!("{}-{}", self.topic, self.index);
            crate::log::compaction::check_keys(&batch, &name).map_err(LogError::InvalidBatch)?;
        }
        let flush_always = log.config().flush == FlushPolicy::Always;
        let idempotent = producers::is_idempotent(header);
        if idempotent {
            // Bound first: the producers' lock must not be held while the log's is taken again.
            let verdict = self.producers().check(header);
            match verdict {
                Verdict::Append => {}
                Verdict::Duplicate(meta) => {
                    let log_start_offset = log.log_start_offset();
                    drop(guard);
                    tracing::debug!(topic = %self.topic, partition = self.index, producer = header.producer_id, sequence = header.base_sequence, "duplicate batch acknowledged at its first offset");
                    let appended = Appended {
                        base_offset: meta.base_offset,
                        last_offset: meta.last_offset,
                        log_append_time: None,
                        log_start_offset,
                        duplicate: true,
                        bytes: 0,
                        synced: None,
                    };
                    return Ok((appended, flush_always.then_some(meta.last_offset)));
                }
                Verdict::Refuse(code, message) => return Err(AppendError::Producer(code, message)),
            }
        }
        let end_before = log.next_offset();
        let info = log.append(&mut batch, now_ms)?;
        debug_assert_eq!(info.base_offset, end_before, "offsets are dense");
        debug_assert_eq!(log.next_offset(), info.last_offset + 1);
        if idempotent {
            let mut stored = *header;
            stored.base_offset = info.base_offset as i64;
            self.producers().record(&stored);
        }
        settle(log);
        let log_start_offset = log.log_start_offset();
        drop(guard);
        let appended = Appended {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            log_append_time: info.log_append_time,
            log_start_offset,
            duplicate: false,
            bytes: batch.len() as u64,
            synced: None,
        };
        Ok((appended, flush_always.then_some(info.last_offset)))
    }
}

/// The batch as the partition stores it: as produced, or recompressed when the topic's
/// compression.type names another codec than the producer used (control batches stay as they
/// are). Recompression runs before the partition's lock is taken, and only after the batch has
/// passed its CRC check, so that garbage is refused rather than decompressed.
fn recompressed(
    compression: Compression,
    records: &[u8],
    header: &BatchHeader,
) -> Result<Vec<u8>, LogError> {
    let Compression::Codec(codec) = compression else {
        return Ok(records.to_vec());
    };
    let produced = header
        .codec()
        .map_err(|e| LogError::InvalidBatch(e.into()))?;
    if produced == codec || header.is_control() {
        return Ok(records.to_vec());
    }
    batch::validate(records, true)?;
    Ok(batch::recompress(records, codec)?)
}
