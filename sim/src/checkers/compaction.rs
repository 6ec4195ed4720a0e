//! Compaction: for every key, the latest acknowledged record whose promise the fault history did
//! not void (the durability checker's rules) is readable in the final log, at its offset, with
//! its bytes, unless the final log holds a newer record of that key; so no value older than the
//! latest durable one is ever what the log serves as the key's latest. And no acknowledged,
//! promised record is ever replaced at its offset by another: compaction may leave a hole where
//! an older value of a key was, never a different record.
//!
//! A newer record of the key lost to damage (rot at rest, a misdirected write), acknowledged or
//! not, excuses older ones too: compaction may have removed them while it was readable.
//!
//! This replaces the durability checker for the compaction workload, where older values are
//! expected to go.

use std::collections::BTreeMap;

use super::{durable_upto_by_epoch, protected, served, FinalLog, Violation};
use crate::history::{Event, RecordId, TimedEvent};

const CHECKER: &str = "compaction";

/// The offset of each key's latest record in `final_log`.
pub fn latest_by_key(final_log: &FinalLog, keys: u32) -> BTreeMap<u32, u64> {
    let mut latest = BTreeMap::new();
    for (&offset, &id) in &final_log.records {
        latest.insert(served::key_index(id, keys), offset);
    }
    latest
}

/// Whether compaction may have removed `id` at `offset`: the final log holds a newer record of
/// its key.
pub fn superseded(latest: &BTreeMap<u32, u64>, keys: u32, id: RecordId, offset: u64) -> bool {
    latest
        .get(&served::key_index(id, keys))
        .is_some_and(|&newest| newest > offset)
}

pub fn check(
    events: &[TimedEvent],
    final_log: &FinalLog,
    final_epoch: u64,
    acks_durable: bool,
    keys: u32,
) -> Option<Violation> {
    let durable = durable_upto_by_epoch(events);
    let damaged = super::damaged(events);
    let mut latest = latest_by_key(final_log, keys);
    // A newer record of a key that was truly lost to damage, acknowledged or not, may have let
    // compaction remove the older ones before it rotted: it counts as the key's latest too.
    for e in events {
        if let Event::Damaged { records, .. } = &e.event {
            for &(offset, id) in records {
                let newest = latest.entry(served::key_index(id, keys)).or_insert(offset);
                *newest = (*newest).max(offset);
            }
        }
    }
    for e in events {
        let Event::Acked { base, ids, epoch } = &e.event else {
            continue;
        };
        for (i, &id) in ids.iter().enumerate() {
            let offset = base + i as u64;
            let promised = acks_durable || protected(offset, *epoch, final_epoch, &durable);
            if offset < final_log.log_start || !promised {
                continue;
            }
            let message = match final_log.records.get(&offset) {
                Some(&found) if found == id => continue,
                Some(&found) => format!(
                    "record {id} acknowledged at offset {offset} at {} ms (power epoch {epoch}) \
                     was replaced there by {found}",
                    e.at_ms
                ),
                None if superseded(&latest, keys, id, offset) => continue,
                None if super::is_damaged(&damaged, offset) => continue,
                None => {
                    let key = served::key_index(id, keys);
                    let newest = latest
                        .get(&key)
                        .map_or("nothing".to_owned(), |o| format!("offset {o}"));
                    format!(
                        "record {id} of key-{key}, acknowledged at offset {offset} at {} ms \
                         (power epoch {epoch}), is lost with no newer value of its key: the \
                         key's latest record in the final log is at {newest} (log {}..{})",
                        e.at_ms, final_log.log_start, final_log.next_offset
                    )
                }
            };
            return Some(Violation {
                checker: CHECKER,
                message,
            });
        }
    }
    None
}
