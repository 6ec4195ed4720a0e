//! The settings of one log, with Kafka's names and defaults.

use std::fmt;
use std::str::FromStr;

use crate::compression::Codec;

pub const INDEX_INTERVAL_BYTES_DEFAULT: u64 = 4096;
pub const SEGMENT_BYTES_DEFAULT: u64 = 1024 * 1024 * 1024;
pub const SEGMENT_INDEX_BYTES_DEFAULT: usize = 10 * 1024 * 1024;
/// 7 days, Kafka's log.retention.hours = 168.
pub const RETENTION_MS_DEFAULT: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's message.max.bytes default (1 MiB plus record overhead).
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 1_048_588;
/// Positions in the offset index are u32 and Kafka's segment.bytes is an int.
pub const SEGMENT_BYTES_LIMIT: u64 = i32::MAX as u64;
/// The smallest segment Kafka allows (segment.bytes >= 14: one batch header must fit).
pub const SEGMENT_BYTES_MIN: u64 = 14;
/// delete.retention.ms: how long tombstones stay readable after compaction (Kafka: one day).
pub const DELETE_RETENTION_MS_DEFAULT: i64 = 24 * 60 * 60 * 1000;
/// min.cleanable.dirty.ratio (Kafka's default).
pub const MIN_CLEANABLE_DIRTY_RATIO_DEFAULT: f64 = 0.5;
/// The smallest index file: one page (Kafka refuses less than one entry's 8 bytes; keel maps
/// whole pages).
pub const SEGMENT_INDEX_BYTES_MIN: i32 = 4096;
/// message.timestamp.type's values.
pub const TIMESTAMP_TYPES: [&str; 2] = ["CreateTime", "LogAppendTime"];

/// What a topic does with the codec of produced batches (Kafka's compression.type): `producer`
/// keeps each batch as its producer compressed it; a codec makes the broker recompress batches
/// that use another one, as Kafka does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Producer,
    Codec(Codec),
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Producer => f.write_str("producer"),
            Compression::Codec(codec) => f.write_str(codec.name()),
        }
    }
}

impl FromStr for Compression {
    type Err = String;

    /// Kafka's names: producer, uncompressed or none, gzip, snappy, lz4, zstd.
    fn from_str(s: &str) -> Result<Compression, String> {
        match s.trim() {
            "producer" => Ok(Compression::Producer),
            "uncompressed" => Ok(Compression::Codec(Codec::None)),
            other => other.parse().map(Compression::Codec).map_err(|_| {
                "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer".to_owned()
            }),
        }
    }
}

/// What happens to old segments (Kafka's cleanup.policy): deleted by retention, compacted by key,
/// or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.compact, self.delete) {
            (true, true) => write!(f, "compact,delete"),
            (true, false) => write!(f, "compact"),
            _ => write!(f, "delete"),
        }
    }
}

impl FromStr for CleanupPolicy {
    type Err = String;

    /// A comma-separated list of `delete` and `compact`, in any order (Kafka's syntax).
    fn from_str(s: &str) -> Result<CleanupPolicy, String> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for word in s.split(',').map(str::trim) {
            match word {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                other => {
                    return Err(format!(
                        "cleanup.policy '{other}' (delete, compact, or compact,delete)"
                    ))
                }
            }
        }
        Ok(policy)
    }
}

/// When appended data is made durable. The contract each choice gives is in `Log`'s doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Never fsync on the write path: rely on the page cache and replication (Kafka's default).
    None,
    /// fsync once `messages` records are unflushed or `ms` milliseconds have passed since the last
    /// flush (Kafka's flush.messages / flush.ms); 0 disables that trigger.
    Interval { ms: u64, messages: u64 },
    /// fsync before acknowledging (group-committed by the caller).
    Always,
}

impl fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushPolicy::None => write!(f, "none"),
            FlushPolicy::Interval { ms, messages } => {
                write!(f, "interval(flush.ms={ms}, flush.messages={messages})")
            }
            FlushPolicy::Always => write!(f, "always"),
        }
    }
}

impl FromStr for FlushPolicy {
    type Err = String;

    /// `none`, `always`, or `interval` (with defaults 1000 ms, no message trigger).
    fn from_str(s: &str) -> Result<FlushPolicy, String> {
        match s {
            "none" => Ok(FlushPolicy::None),
            "always" => Ok(FlushPolicy::Always),
            "interval" => Ok(FlushPolicy::Interval {
                ms: 1000,
                messages: 0,
            }),
            other => Err(format!(
                "unknown flush policy '{other}' (none, interval, always)"
            )),
        }
    }
}

/// Which timestamp a batch keeps (Kafka's message.timestamp.type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// segment.bytes: roll when the active segment would exceed it.
    pub segment_bytes: u64,
    /// segment.ms (log.roll.ms): roll when the active segment's first batch is this old.
    pub segment_ms: i64,
    /// segment.index.bytes: preallocated size of each index file.
    pub segment_index_bytes: usize,
    /// index.interval.bytes: bytes of log between index entries.
    pub index_interval_bytes: u64,
    /// retention.ms; -1 keeps everything.
    pub retention_ms: i64,
    /// retention.bytes; -1 keeps everything.
    pub retention_bytes: i64,
    /// max.message.bytes: the largest batch accepted.
    pub message_bytes_max: usize,
    pub flush: FlushPolicy,
    pub timestamp_type: TimestampType,
    /// cleanup.policy: retention by time and size applies with `delete`, compaction with
    /// `compact`.
    pub cleanup_policy: CleanupPolicy,
    /// delete.retention.ms: tombstones older than this (by their batch's max timestamp) are
    /// removed by compaction.
    pub delete_retention_ms: i64,
    /// min.cleanable.dirty.ratio: compaction runs when the uncleaned share of the cleanable bytes
    /// reaches this.
    pub min_cleanable_dirty_ratio: f64,
    /// min.compaction.lag.ms: a segment is compacted only once its newest record is this old.
    pub min_compaction_lag_ms: i64,
    /// max.compaction.lag.ms: a log whose oldest uncleaned record is this old is compacted
    /// whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// compression.type.
    pub compression: Compression,
    /// message.timestamp.before.max.ms: the furthest in the past a CreateTime record may be.
    pub timestamp_before_max_ms: i64,
    /// message.timestamp.after.max.ms: the furthest in the future a CreateTime record may be.
    pub timestamp_after_max_ms: i64,
    /// min.insync.replicas: acks=all needs this many in-sync replicas (the produce path checks
    /// it; the log itself does not use it).
    pub min_insync_replicas: i32,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: RETENTION_MS_DEFAULT,
            segment_index_bytes: SEGMENT_INDEX_BYTES_DEFAULT,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            retention_ms: RETENTION_MS_DEFAULT,
            retention_bytes: -1,
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
            flush: FlushPolicy::None,
            timestamp_type: TimestampType::CreateTime,
            cleanup_policy: CleanupPolicy::DELETE,
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
            min_cleanable_dirty_ratio: MIN_CLEANABLE_DIRTY_RATIO_DEFAULT,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            compression: Compression::Producer,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            min_insync_replicas: 1,
        }
    }
}

impl LogConfig {
    /// Checks the settings against the limits of the on-disk format.
    ///
    /// # Errors
    /// A message naming the setting that is out of range.
    pub fn validate(&self) -> Result<(), String> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_LIMIT).contains(&self.segment_bytes) {
            return Err(format!(
                "segment.bytes {} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_LIMIT}",
                self.segment_bytes
            ));
        }
        if self.segment_index_bytes < SEGMENT_INDEX_BYTES_MIN as usize {
            return Err(format!(
                "segment.index.bytes {} is below 4096",
                self.segment_index_bytes
            ));
        }
        if self.segment_ms <= 0 {
            return Err(format!("segment.ms {} must be positive", self.segment_ms));
        }
        if self.message_bytes_max == 0 {
            return Err("max.message.bytes must be positive".to_owned());
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(format!(
                "min.cleanable.dirty.ratio {} is outside 0..=1",
                self.min_cleanable_dirty_ratio
            ));
        }
        if self.delete_retention_ms < 0 || self.min_compaction_lag_ms < 0 {
            return Err(format!(
                "delete.retention.ms {} and min.compaction.lag.ms {} may not be negative",
                self.delete_retention_ms, self.min_compaction_lag_ms
            ));
        }
        if self.max_compaction_lag_ms < 1 {
            return Err(format!(
                "max.compaction.lag.ms {} must be positive",
                self.max_compaction_lag_ms
            ));
        }
        if self.timestamp_before_max_ms < 0 || self.timestamp_after_max_ms < 0 {
            return Err(format!(
                "message.timestamp.before.max.ms {} and message.timestamp.after.max.ms {} may not be negative",
                self.timestamp_before_max_ms, self.timestamp_after_max_ms
            ));
        }
        if !self.cleanup_policy.delete && !self.cleanup_policy.compact {
            return Err("cleanup.policy names neither delete nor compact".to_owned());
        }
        Ok(())
    }
}
