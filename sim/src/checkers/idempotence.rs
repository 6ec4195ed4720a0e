//! Exactly once per record: every record names its producer, batch and index, and no record may
//! be at two offsets of the final log. Plain producers never resend, so a duplicate can only be a
//! resent batch of an idempotent producer that the broker wrote again (or a broker that copied
//! bytes).

use std::collections::BTreeMap;

use super::{FinalLog, Violation};

/// Per producer id, the broker appends a batch only if its first sequence follows the last one
/// it has (`partition::producers`), so in the final log each producer id's batches carry
/// consecutive sequences, in offset order: a sequence out of order or skipped means a batch was
/// written early (before the one it follows) or twice. Offsets the final read did not see end a
/// run of batches.
pub fn check_sequences(final_log: &FinalLog) -> Option<Violation> {
    let mut last: BTreeMap<i64, (u64, i32)> = BTreeMap::new();
    for (&base, &(producer_id, first, last_sequence)) in &final_log.sequences {
        if let Some(&(previous_base, previous_last)) = last.get(&producer_id) {
            // Offsets the final read did not see between them (rot at rest, or the log start
            // moving while it read) may have held this producer's batches.
            let unseen = (previous_base..base).any(|o| !final_log.records.contains_key(&o));
            let follows =
                first == previous_last.wrapping_add(1) || (previous_last == i32::MAX && first == 0);
            if !follows && !unseen {
                return Some(Violation {
                    checker: "idempotence",
                    message: format!(
                        "producer id {producer_id}: the batch at offset {base} has sequences \
                         {first}..={last_sequence} after one at offset {previous_base} ending at \
                         sequence {previous_last}"
                    ),
                });
            }
        }
        last.insert(producer_id, (base, last_sequence));
    }
    None
}

pub fn check(final_log: &FinalLog) -> Option<Violation> {
    let mut first_seen = BTreeMap::new();
    for (&offset, id) in &final_log.records {
        if let Some(earlier) = first_seen.insert(*id, offset) {
            return Some(Violation {
                checker: "idempotence",
                message: format!(
                    "record {id} is in the log twice: at offsets {earlier} and {offset}"
                ),
            });
        }
    }
    None
}
