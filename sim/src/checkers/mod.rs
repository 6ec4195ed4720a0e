//! The invariants a run is judged by, one file each. Each checker names the record (or offset)
//! that broke it.
//!
//! - `served`: every batch served passes its CRC; offsets are dense and increasing; the first
//!   batch holds the offset asked for; every record names its producer (checked as reads happen).
//! - `durability`: the contract table: an acknowledged record whose promise the fault history did
//!   not void is readable at its offset with its bytes, unless retention removed it.
//! - `monotonic_reads`: nothing a reader has read changes or disappears, unless a power loss took
//!   it before it was durable, or retention removed it; within a power epoch every read and
//!   acknowledgement of an offset agrees.
//! - `compaction` (compaction workload, in place of `durability`): each key's latest promised
//!   record is readable unless a newer record of the key is; no promised record is replaced.
//! - `recovery`: the log always opened, and the node never panicked.
//! - `liveness`: after the heal phase the node accepts writes again within a bounded time.
//! - `idempotence`: no record is in the final log twice (idempotent producers resend batches
//!   that got no answer; the broker must not write one twice).
//! - `offsets`: a group's committed offset after the heal phase is at least every acknowledged
//!   commit the contract protects, and readable.

pub mod compaction;
pub mod durability;
pub mod idempotence;
pub mod liveness;
pub mod monotonic_reads;
pub mod offsets;
pub mod recovery;
pub mod served;

use std::collections::BTreeMap;
use std::fmt;

use crate::history::{Event, RecordId, TimedEvent};

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub checker: &'static str,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.checker, self.message)
    }
}

/// What the log held at the end of the run, read back in full after the heal phase.
#[derive(Debug, Clone, Default)]
pub struct FinalLog {
    pub log_start: u64,
    pub next_offset: u64,
    pub records: BTreeMap<u64, RecordId>,
    /// Idempotent batches by base offset: (producer id, first sequence, last sequence).
    pub sequences: BTreeMap<u64, (i64, i32, i32)>,
}

/// Offsets made durable in each power epoch: the highest `Flushed.upto` seen in it.
pub fn durable_upto_by_epoch(events: &[TimedEvent]) -> BTreeMap<u64, u64> {
    let mut durable = BTreeMap::new();
    for e in events {
        if let Event::Flushed { upto, epoch } = e.event {
            let entry = durable.entry(epoch).or_insert(0);
            *entry = upto.max(*entry);
        }
    }
    durable
}

/// The offset ranges of batches that rotted at rest (`Event::Damaged`): their records are
/// truly gone, so their absence from the final log is excused, never another record in their
/// place.
pub fn damaged(events: &[TimedEvent]) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter_map(|e| match e.event {
            Event::Damaged { first, last, .. } => Some((first, last)),
            _ => None,
        })
        .collect()
}

pub fn is_damaged(damaged: &[(u64, u64)], offset: u64) -> bool {
    damaged
        .iter()
        .any(|&(first, last)| (first..=last).contains(&offset))
}

/// Acknowledged records that the final log lacks because their batch rotted at rest: the run's
/// figure of data truly gone (reported, not a violation).
pub fn lost_to_damage(events: &[TimedEvent], final_log: &FinalLog) -> u64 {
    let damaged = damaged(events);
    if damaged.is_empty() {
        return 0;
    }
    let mut lost = std::collections::BTreeSet::new();
    for e in events {
        if let Event::Acked { base, ids, .. } = &e.event {
            for offset in *base..*base + ids.len() as u64 {
                let missing = !final_log.records.contains_key(&offset);
                if missing && offset >= final_log.log_start && is_damaged(&damaged, offset) {
                    lost.insert(offset);
                }
            }
        }
    }
    lost.len() as u64
}

/// Whether the contract protects content seen at `offset` in `epoch`: the epoch is the last one
/// (no power loss came after it: acks=1 with any flush policy survives a process crash), or a
/// flush in that epoch covered the offset.
pub fn protected(offset: u64, epoch: u64, final_epoch: u64, durable: &BTreeMap<u64, u64>) -> bool {
    epoch == final_epoch || durable.get(&epoch).is_some_and(|&upto| offset < upto)
}

/// Runs every post-run checker; the first violation found, if any.
pub fn check_all(
    events: &[TimedEvent],
    final_log: &FinalLog,
    final_epoch: u64,
    acks_durable: bool,
    keys: Option<u32>,
) -> Option<Violation> {
    recovery::check(events)
        .or_else(|| served::check_history(events))
        .or_else(|| match keys {
            Some(keys) => compaction::check(events, final_log, final_epoch, acks_durable, keys),
            None => durability::check(events, final_log, final_epoch, acks_durable),
        })
        .or_else(|| monotonic_reads::check(events, final_log, final_epoch, keys))
        .or_else(|| liveness::check(events))
        .or_else(|| idempotence::check(final_log))
        .or_else(|| idempotence::check_sequences(final_log))
        .or_else(|| offsets::check(events, acks_durable))
}
