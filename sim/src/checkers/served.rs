//! Served batches: every batch a node serves passes its CRC and record checks, offsets are dense
//! and increasing, the first batch holds the offset asked for, and every record's value names the
//! producer record it came from. Corrupt bytes must never reach a client.

use keel::log::batch::{self, BatchHeader};

use super::Violation;
use crate::history::{Event, RecordId, TimedEvent};

const CHECKER: &str = "served";

/// Checks one fetch reply for `offset`; returns its records (offset, id) from `offset` on.
///
/// # Errors
/// The violation, naming the offset.
pub fn check_fetch(offset: u64, bytes: &[u8]) -> Result<Vec<(u64, RecordId)>, Violation> {
    let violation = |message: String| Violation {
        checker: CHECKER,
        message,
    };
    let mut records = Vec::new();
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
        let info = batch::validate(one, true).map_err(|e| {
            violation(format!(
                "fetch at {offset}: batch at offset {} is corrupt: {e}",
                header.base_offset
            ))
        })?;
        let base = info.header.base_offset as u64;
        match expected_base {
            None if base > offset || (info.header.last_offset() as u64) < offset => {
                return Err(violation(format!(
                    "fetch at {offset} returned a first batch {base}..={}",
                    info.header.last_offset()
                )))
            }
            Some(expected) if base != expected => {
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
            if record.offset as u64 >= offset {
                records.push((record.offset as u64, id));
            }
        }
        expected_base = Some(info.header.last_offset() as u64 + 1);
        position += total;
    }
    Ok(records)
}

/// The value a producer writes for a record: its id, then padding.
pub fn value_for(id: RecordId, padding_bytes: usize) -> Vec<u8> {
    let mut value = format!("{id}|").into_bytes();
    value.resize(value.len() + padding_bytes, b'.');
    value
}

fn parse_value(value: &[u8]) -> Option<RecordId> {
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
