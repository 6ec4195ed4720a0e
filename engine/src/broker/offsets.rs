//! Committed offsets on disk: records in the internal topic `__consumer_offsets`, in Kafka's own
//! format, so the topic reads the same as Kafka's:
//! - key: version 1 (i16), group, topic (i16-length strings), partition (i32);
//! - value: version 3 (i16), offset (i64), leader epoch (i32), metadata (string), commit
//!   timestamp (i64); a deletion is the key with a null value (a tombstone).
//!
//! A group's records go to partition `abs(javaHashCode(group)) % partitions`, as Kafka places
//! them. At start every partition is read back, and the last record of each key wins (the
//! topic is compacted, which keeps exactly those).

use std::collections::BTreeMap;

use super::topics::Topic;
use crate::bytes::Reader;
use crate::io::Disk;
use crate::log::batch::{decode_records, BatchBuilder, BatchHeader, NewRecord};
use crate::log::LogError;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 3;
/// Bytes read per step when the offsets are loaded.
const LOAD_READ_BYTES: u64 = 1024 * 1024;

/// One group's committed offsets by (topic, partition).
pub type GroupOffsets = BTreeMap<(String, i32), Committed>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// Java's `String.hashCode` (over UTF-16 code units), which Kafka uses to place a group.
pub fn java_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition that holds `group`'s records.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    (java_hash(group) & 0x7fff_ffff) % partitions.max(1)
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(i16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as i16).to_be_bytes());
    out.extend_from_slice(bytes);
}

pub fn encode_key(key: &OffsetKey) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_string(&mut out, &key.group);
    put_string(&mut out, &key.topic);
    out.extend_from_slice(&key.partition.to_be_bytes());
    out
}

pub fn encode_value(value: &Committed) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&value.offset.to_be_bytes());
    out.extend_from_slice(&value.leader_epoch.to_be_bytes());
    put_string(&mut out, &value.metadata);
    out.extend_from_slice(&value.commit_timestamp.to_be_bytes());
    out
}

/// The offset key of a record key; `None` for other record kinds (group metadata, version 2)
/// and for bytes that do not decode.
pub fn decode_key(bytes: &[u8]) -> Option<OffsetKey> {
    let mut reader = Reader(bytes);
    let version = reader.i16()?;
    if version != 0 && version != 1 {
        return None;
    }
    Some(OffsetKey {
        group: reader.string()?,
        topic: reader.string()?,
        partition: reader.i32()?,
    })
}

/// A committed offset from a record value, versions 0 to 3 (1 adds an expiry, 3 the leader
/// epoch).
pub fn decode_value(bytes: &[u8]) -> Option<Committed> {
    let mut reader = Reader(bytes);
    let version = reader.i16()?;
    let offset = reader.i64()?;
    let leader_epoch = if version >= 3 { reader.i32()? } else { -1 };
    let metadata = reader.string()?;
    let commit_timestamp = reader.i64()?;
    if version == 1 {
        reader.i64()?;
    }
    (0..=3).contains(&version).then_some(Committed {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

/// One batch of offset records (tombstones where the value is `None`).
///
/// # Errors
/// None in practice: the batch is uncompressed.
pub fn batch(entries: &[(OffsetKey, Option<Committed>)], timestamp: i64) -> Vec<u8> {
    let records: Vec<NewRecord> = entries
        .iter()
        .map(|(key, value)| NewRecord {
            timestamp,
            key: Some(encode_key(key)),
            value: value.as_ref().map(encode_value),
            headers: Vec::new(),
        })
        .collect();
    BatchBuilder::default()
        .build(&records)
        .expect("an uncompressed batch always builds")
}

/// Every group's committed offsets, read back from the topic's partitions.
///
/// # Errors
/// IO errors. A corrupt batch ends the reading of its partition there, with a warning.
pub fn load<D: Disk>(topic: &Topic<D>) -> Result<BTreeMap<String, GroupOffsets>, LogError> {
    let mut offsets: BTreeMap<String, GroupOffsets> = BTreeMap::new();
    let mut records_read = 0u64;
    for partition in &topic.partitions {
        let mut guard = partition.log();
        let Some(log) = guard.as_mut() else { continue };
        let end = log.next_offset();
        let mut next = log.log_start_offset();
        while next < end {
            let bytes = match log.replay_copy(next, LOAD_READ_BYTES, end) {
                Ok(bytes) if !bytes.is_empty() => bytes,
                Ok(_) => break,
                Err(e @ LogError::Corrupt { .. }) => {
                    tracing::warn!(partition = partition.index, offset = next, error = %e, "committed offsets not read past a damaged batch");
                    break;
                }
                // An IO error says nothing about the data: the open fails (and may be tried
                // again) rather than go on with commits forgotten.
                Err(e) => return Err(e),
            };
            let mut pos = 0;
            while let Ok(header) = BatchHeader::parse(&bytes[pos..]) {
                let Some(size) = header.total_bytes().filter(|s| pos + s <= bytes.len()) else {
                    break;
                };
                let records = decode_records(&bytes[pos..pos + size]).unwrap_or_default();
                for record in records {
                    records_read += 1;
                    let Some(key) = record.key.as_deref().and_then(decode_key) else {
                        continue;
                    };
                    let group = offsets.entry(key.group).or_default();
                    match record.value.as_deref().and_then(decode_value) {
                        Some(value) => {
                            group.insert((key.topic, key.partition), value);
                        }
                        None => {
                            group.remove(&(key.topic, key.partition));
                        }
                    }
                }
                next = next.max(header.last_offset() as u64 + 1);
                pos += size;
            }
        }
    }
    offsets.retain(|_, o| !o.is_empty());
    tracing::info!(
        groups = offsets.len(),
        records = records_read,
        "committed offsets loaded"
    );
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_placed_as_kafka_places_them() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("ab"), 97 * 31 + 98);
        assert_eq!(java_hash("hello"), 99_162_322);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        // A negative hash is masked, as Kafka's Utils.abs does.
        let h = java_hash("polygenelubricants");
        assert!(h < 0);
        assert_eq!(
            partition_for("polygenelubricants", 50),
            (h & 0x7fff_ffff) % 50
        );
    }

    #[test]
    fn keys_and_values_round_trip() {
        let key = OffsetKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
        };
        let value = Committed {
            offset: 42,
            leader_epoch: -1,
            metadata: "meta".into(),
            commit_timestamp: 1_700_000_000_000,
        };
        assert_eq!(decode_key(&encode_key(&key)), Some(key));
        assert_eq!(decode_value(&encode_value(&value)), Some(value));
        assert_eq!(decode_key(&[0, 2, 0, 1, b'g']), None);
        assert_eq!(decode_value(&[0, 3, 1]), None);
    }
}
