//! Durability, exactly per the contract (acks=1 on one node): an acknowledged record is promised
//! to survive process crashes under every flush policy, and power loss once a flush covered it
//! (`flush = always` flushes before the ack). A power loss before that flush voids the promise.
//! Every promised record at or above the final log start must be in the final log, at its
//! offset, with its bytes, unless its batch rotted at rest (then it may be absent, never
//! replaced).

use super::{damaged, durable_upto_by_epoch, is_damaged, protected, FinalLog, Violation};
use crate::history::{Event, TimedEvent};

/// `acks_durable` is the run's `flush = always`: then every acknowledgement promises durability
/// by itself, whatever the node reported flushing, so a node that acks before its fsync is
/// caught. The checker takes it from the run's settings, not from the node.
pub fn check(
    events: &[TimedEvent],
    final_log: &FinalLog,
    final_epoch: u64,
    acks_durable: bool,
) -> Option<Violation> {
    let durable = durable_upto_by_epoch(events);
    let damaged = damaged(events);
    for e in events {
        let Event::Acked { base, ids, epoch } = &e.event else {
            continue;
        };
        for (i, id) in ids.iter().enumerate() {
            let offset = base + i as u64;
            let promised = acks_durable || protected(offset, *epoch, final_epoch, &durable);
            if offset < final_log.log_start || !promised {
                continue;
            }
            let found = final_log.records.get(&offset);
            if found.is_none() && is_damaged(&damaged, offset) {
                continue;
            }
            if found != Some(id) {
                let found = found.map_or("nothing".to_owned(), |f| f.to_string());
                return Some(Violation {
                    checker: "durability",
                    message: format!(
                        "record {id} acknowledged at offset {offset} at {} ms (power epoch {epoch}) \
                         is lost: the log holds {found} there (log {}..{})",
                        e.at_ms, final_log.log_start, final_log.next_offset
                    ),
                });
            }
        }
    }
    None
}
