//! Monotonic reads: within a power epoch every read and acknowledgement of an offset names the
//! same record; and a record a reader was served stays at its offset in the final log unless a
//! power loss took it before it was durable, retention removed it, or (compaction workload)
//! compaction removed it for a newer record of its key.

use std::collections::BTreeMap;

use super::{compaction, durable_upto_by_epoch, protected, FinalLog, Violation};
use crate::history::{Event, RecordId, TimedEvent};

const CHECKER: &str = "monotonic_reads";

/// `keys` is the compaction workload's key count: then a read record may be gone from the final
/// log if a newer record of its key is there.
pub fn check(
    events: &[TimedEvent],
    final_log: &FinalLog,
    final_epoch: u64,
    keys: Option<u32>,
) -> Option<Violation> {
    agree_within_epochs(events).or_else(|| reads_survive(events, final_log, final_epoch, keys))
}

fn agree_within_epochs(events: &[TimedEvent]) -> Option<Violation> {
    let mut seen: BTreeMap<(u64, u64), (RecordId, u64)> = BTreeMap::new();
    let mut note = |epoch: u64, offset: u64, id: RecordId, at_ms: u64| {
        let (first, first_ms) = *seen.entry((epoch, offset)).or_insert((id, at_ms));
        (first != id).then(|| Violation {
            checker: CHECKER,
            message: format!(
                "offset {offset} held {first} at {first_ms} ms and {id} at {at_ms} ms \
                 in the same power epoch {epoch}"
            ),
        })
    };
    for e in events {
        let found = match &e.event {
            Event::Read {
                offset, id, epoch, ..
            } => note(*epoch, *offset, *id, e.at_ms),
            Event::Acked { base, ids, epoch } => ids
                .iter()
                .enumerate()
                .find_map(|(i, id)| note(*epoch, base + i as u64, *id, e.at_ms)),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn reads_survive(
    events: &[TimedEvent],
    final_log: &FinalLog,
    final_epoch: u64,
    keys: Option<u32>,
) -> Option<Violation> {
    let durable = durable_upto_by_epoch(events);
    let damaged = super::damaged(events);
    let latest = keys.map(|keys| (keys, compaction::latest_by_key(final_log, keys)));
    events.iter().find_map(|e| {
        let Event::Read {
            reader,
            offset,
            id,
            epoch,
        } = &e.event
        else {
            return None;
        };
        let kept = *offset < final_log.log_start
            || !protected(*offset, *epoch, final_epoch, &durable)
            || final_log.records.get(offset) == Some(id)
            || (!final_log.records.contains_key(offset) && super::is_damaged(&damaged, *offset))
            || (!final_log.records.contains_key(offset)
                && latest.as_ref().is_some_and(|(keys, latest)| {
                    compaction::superseded(latest, *keys, *id, *offset)
                }));
        (!kept).then(|| Violation {
            checker: CHECKER,
            message: format!(
                "reader {reader} read {id} at offset {offset} at {} ms; the final log holds {}",
                e.at_ms,
                final_log
                    .records
                    .get(offset)
                    .map_or("nothing".to_owned(), |f| f.to_string())
            ),
        })
    })
}
