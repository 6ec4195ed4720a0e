//! Exactly once per record: every record names its producer, batch and index, and no record may
//! be at two offsets of the final log. Plain producers never resend, so a duplicate can only be a
//! resent batch of an idempotent producer that the broker wrote again (or a broker that copied
//! bytes).

use std::collections::BTreeMap;

use super::{FinalLog, Violation};

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
