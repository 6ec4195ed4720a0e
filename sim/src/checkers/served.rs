//! Served batches: every batch a node serves passes its CRC and record checks, offsets are dense
//! and increasing, the first batch holds the offset asked for, and every record's value names the
//! producer record it came from. Corrupt bytes must never reach a client. A compacted log may
//! have holes and empty batches; its offsets must still increase, and every record keeps its key.

use keel::log::batch::{self, BatchHeader};

use super::Violation;
use crate::history::{Event, RecordId, TimedEvent};

const CHECKER: &str = "served";

/// What one fetch reply served: its records (offset, id) from the offset asked for on, and the
/// offset after its last batch (where the next fetch starts: past empty batches too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served {
    pub records: Vec<(u64, RecordId)>,
    pub next_offset: Option<u64>,
    /// The idempotent batches served: (base offset, producer id, first and last sequence).
    pub sequences: Vec<(u64, i64, i32, i32)>,
}

/// Whether every offset in [from, to) lies in a damaged range.
fn all_damaged(from: u64, to: u64, damaged: &[(u64, u64)]) -> bool {
    let mut next = from;
    while next < to {
        match damaged
            .iter()
            .find(|&&(first, last)| (first..=last).contains(&next))
        {
            Some(&(_, last)) => next = last + 1,
            None => return false,
        }
    }
    true
}

/// Checks one fetch reply for `offset`. `keys` is the compaction workload's key count: then
/// batches may have holes between and inside them and may be empty (offsets need only increase,
/// and the first batch need only end at or after `offset`), and every record's key must be the
/// one its producer gave it.
///
/// # Errors
/// The violation, naming the offset.
/// `damaged` are the offset ranges of batches that rotted at rest: the first batch may start
/// past `offset` when every offset it skips is in them (keel skips exactly the damaged batches).
pub fn check_fetch(
    offset: u64,
    bytes: &[u8],
    keys: Option<u32>,
    damaged: &[(u64, u64)],
) -> Result<Served, Violation> {
    let violation = |message: String| Violation {
        checker: CHECKER,
        message,
    };
    let compacted = keys.is_some();
    let mut served = Served::default();
    let mut position = 0;
    let mut expected_base: Option<u64> = None;
    while position < bytes.len() {
        let header = BatchHeader::parse(&bytes[position..]).map_err(|e| {
            violation(format!(
                "fetch at {offset}: batch header at byte {position}: {e}"
            ))
        })?;
        let total = header.total_bytes().unwrap_or(usize::MAX);
        let Some(one) = bytes.get(position..position.saturating_add(total)) else {
            return Err(violation(format!(
                "fetch at {offset}: partial batch at byte {position}"
            )));
        };
        let info = batch::validate(one, !compacted).map_err(|e| {
            violation(format!(
                "fetch at {offset}: batch at offset {} is corrupt: {e}",
                header.base_offset
            ))
        })?;
        let base = info.header.base_offset as u64;
        let last = info.header.last_offset() as u64;
        match expected_base {
            None if (base > offset && !compacted && !all_damaged(offset, base, damaged))
                || last < offset =>
            {
                return Err(violation(format!(
                    "fetch at {offset} returned a first batch {base}..={last}"
                )))
            }
            Some(expected) if base < expected || (base > expected && !compacted) => {
                return Err(violation(format!(
                    "fetch at {offset}: batch at {base} follows one ending at {}",
                    expected - 1
                )))
            }
            _ => {}
        }
        for record in batch::decode_records(one).map_err(|e| violation(e.to_string()))? {
            let id = parse_value(record.value.as_deref().unwrap_or_default()).ok_or_else(|| {
                violation(format!(
                    "record at offset {} has a value no producer wrote",
                    record.offset
                ))
            })?;
            if let Some(keys) = keys.filter(|&k| record.key != Some(key_for(id, k))) {
                return Err(violation(format!(
                    "record {id} at offset {} has key {:?}, not its producer's {:?} ({keys} keys)",
                    record.offset,
                    record.key.as_deref().map(String::from_utf8_lossy),
                    String::from_utf8_lossy(&key_for(id, keys)),
                )));
            }
            if record.offset as u64 >= offset {
                served.records.push((record.offset as u64, id));
            }
        }
        if info.header.producer_id >= 0 && base >= offset {
            let first = info.header.base_sequence;
            let last_sequence = first.wrapping_add(info.header.last_offset_delta);
            served
                .sequences
                .push((base, info.header.producer_id, first, last_sequence));
        }
        expected_base = Some(last + 1);
        served.next_offset = Some(last + 1);
        position += total;
    }
    Ok(served)
}

/// The key of record `id` in the compaction workload: one of `keys`, mixed from the id so that
/// every producer updates every key many times.
pub fn key_for(id: RecordId, keys: u32) -> Vec<u8> {
    format!("key-{}", key_index(id, keys)).into_bytes()
}

/// The index (below `keys`) of `id`'s key.
pub fn key_index(id: RecordId, keys: u32) -> u32 {
    let mix = u64::from(id.producer).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ id.seq.wrapping_mul(0xBF58_476D_1CE4_E5B9)
        ^ u64::from(id.index).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((mix >> 29) % u64::from(keys.max(1))) as u32
}

/// The value a producer writes for a record: its id, then padding.
pub fn value_for(id: RecordId, padding_bytes: usize) -> Vec<u8> {
    let mut value = format!("{id}|").into_bytes();
    value.resize(value.len() + padding_bytes, b'.');
    value
}

pub fn parse_value(value: &[u8]) -> Option<RecordId> {
    let text = std::str::from_utf8(value).ok()?;
    let (id, padding) = text.split_once('|')?;
    if !padding.bytes().all(|b| b == b'.') {
        return None;
    }
    let mut parts = id.split('-');
    let producer = parts.next()?.strip_prefix('p')?.parse().ok()?;
    let seq = parts.next()?.strip_prefix('s')?.parse().ok()?;
    let index = parts.next()?.strip_prefix('r')?.parse().ok()?;
    Some(RecordId {
        producer,
        seq,
        index,
    })
}

/// Violations the workload recorded while it ran.
pub fn check_history(events: &[TimedEvent]) -> Option<Violation> {
    events.iter().find_map(|e| match &e.event {
        Event::Violation { checker, message } => Some(Violation {
            checker,
            message: format!("at {} ms: {message}", e.at_ms),
        }),
        _ => None,
    })
}
