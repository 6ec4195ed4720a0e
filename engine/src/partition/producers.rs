//! Idempotent producers: the broker's side of `enable.idempotence`.
//!
//! Each partition keeps, per producer id, the producer's epoch and the sequence numbers and
//! offsets of its last `BATCHES_KEPT` batches (Kafka keeps five, which is why a producer may have
//! at most five requests in flight). A batch is checked before it touches the log:
//! - a batch whose sequence range equals one of those kept is a retry of a batch already written:
//!   it is acknowledged with the offset it got the first time and not written again;
//! - otherwise its first sequence must follow the last one kept (sequences wrap at `i32::MAX`),
//!   or the answer is OUT_OF_ORDER_SEQUENCE_NUMBER and the producer retries in order;
//! - an epoch below the producer's current one is a zombie: INVALID_PRODUCER_EPOCH; a higher
//!   epoch starts over at sequence 0;
//! - a producer id the partition has never seen may start at any sequence (as in Kafka since
//!   KIP-360: its state may have been expired or deleted with old segments).
//!
//! The state is a function of the log: every idempotent batch header carries the producer id,
//! epoch, base sequence and offsets. So it is rebuilt on open by reading batch headers from the
//! latest snapshot's offset to the log end (or from the log start without a usable snapshot).
//! Snapshots (`producer-state` in the partition directory) are written, through a temporary file
//! and a rename, only when every byte of the log below their offset is durable (after a flush
//! that reached the log end, and at clean shutdown), so a snapshot never describes batches that
//! a power loss took out of the log. A snapshot whose offset is above the log end after
//! recovery, or whose bytes fail their CRC, is ignored.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::Path;

use crate::bytes::Reader;
use crate::io::write_atomically;
use crate::io::{Disk, File};
use crate::log::batch::{BatchHeader, HEADER_BYTES};
use crate::log::{Log, LogError};

/// Batches remembered per producer and partition, as in Kafka.
pub const BATCHES_KEPT: usize = 5;
pub const SNAPSHOT_FILE: &str = "producer-state";
const SNAPSHOT_MAGIC: &[u8; 8] = b"KEELPRS1";
/// Bytes read per step when the state is rebuilt from the log.
const REPLAY_READ_BYTES: u64 = 1024 * 1024;
/// Producers remembered per partition; the least recently active are forgotten first.
pub const PRODUCERS_MAX: usize = 100_000;

/// One batch of a producer, as remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: u64,
    pub last_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Producer {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    /// The time of its last batch (the batch's max timestamp): old producers expire.
    last_timestamp: i64,
}

/// What to do with an idempotent batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// New and in order: append it, then `record` it.
    Append,
    /// Already written: acknowledge it at these offsets.
    Duplicate(BatchMeta),
    /// Refused with this Kafka error code and message.
    Refuse(i16, String),
}

pub use crate::error_codes::{INVALID_PRODUCER_EPOCH, OUT_OF_ORDER_SEQUENCE_NUMBER};

/// The last sequence of a batch: its base sequence plus its offset span, wrapping as Kafka does.
fn last_sequence(header: &BatchHeader) -> i32 {
    let last = i64::from(header.base_sequence) + i64::from(header.last_offset_delta);
    if last > i64::from(i32::MAX) {
        (last - i64::from(i32::MAX) - 1) as i32
    } else {
        last as i32
    }
}

fn follows(previous_last: i32, first: i32) -> bool {
    if previous_last == i32::MAX {
        first == 0
    } else {
        first == previous_last + 1
    }
}

/// Whether a batch header belongs to an idempotent producer.
pub fn is_idempotent(header: &BatchHeader) -> bool {
    header.producer_id >= 0
}

/// The producers of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerState {
    producers: BTreeMap<i64, Producer>,
}

impl ProducerState {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Judges an idempotent batch (`is_idempotent(header)`) before it is appended.
    pub fn check(&self, header: &BatchHeader) -> Verdict {
        let first = header.base_sequence;
        if first < 0 {
            return Verdict::Refuse(
                OUT_OF_ORDER_SEQUENCE_NUMBER,
                format!("idempotent batch with base sequence {first}"),
            );
        }
        let Some(producer) = self.producers.get(&header.producer_id) else {
            return Verdict::Append;
        };
        let epoch = header.producer_epoch;
        if epoch < producer.epoch {
            return Verdict::Refuse(
                INVALID_PRODUCER_EPOCH,
                format!(
                    "producer {} epoch {epoch} is older than its current epoch {}",
                    header.producer_id, producer.epoch
                ),
            );
        }
        if epoch > producer.epoch {
            return if first == 0 {
                Verdict::Append
            } else {
                Verdict::Refuse(
                    OUT_OF_ORDER_SEQUENCE_NUMBER,
                    format!("a new epoch {epoch} must start at sequence 0, not {first}"),
                )
            };
        }
        let last = last_sequence(header);
        if let Some(kept) = producer
            .batches
            .iter()
            .find(|b| b.first_sequence == first && b.last_sequence == last)
        {
            return Verdict::Duplicate(*kept);
        }
        match producer.batches.back() {
            Some(latest) if !follows(latest.last_sequence, first) => Verdict::Refuse(
                OUT_OF_ORDER_SEQUENCE_NUMBER,
                format!(
                    "producer {} sent sequence {first} after {}",
                    header.producer_id, latest.last_sequence
                ),
            ),
            _ => Verdict::Append,
        }
    }

    /// Remembers a batch that is in the log (`header.base_offset` is its offset there).
    pub fn record(&mut self, header: &BatchHeader) {
        if !is_idempotent(header) || header.base_sequence < 0 {
            return;
        }
        if !self.producers.contains_key(&header.producer_id)
            && self.producers.len() >= PRODUCERS_MAX
        {
            self.forget_oldest();
        }
        let producer = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| Producer {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: header.max_timestamp,
            });
        if header.producer_epoch != producer.epoch {
            producer.epoch = header.producer_epoch;
            producer.batches.clear();
        }
        if producer.batches.len() == BATCHES_KEPT {
            producer.batches.pop_front();
        }
        producer.batches.push_back(BatchMeta {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header),
            base_offset: header.base_offset as u64,
            last_offset: header.last_offset() as u64,
        });
        producer.last_timestamp = producer.last_timestamp.max(header.max_timestamp);
    }

    fn forget_oldest(&mut self) {
        if let Some((&id, _)) = self.producers.iter().min_by_key(|(_, p)| p.last_timestamp) {
            self.producers.remove(&id);
        }
    }

    /// Forgets producers whose last batch is older than `expiration_ms` (Kafka's
    /// producer.id.expiration.ms).
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) {
        self.producers
            .retain(|_, p| p.last_timestamp.saturating_add(expiration_ms) >= now_ms);
    }

    /// Applies the headers of the batches in `bytes` (whole, verified batches) and returns the
    /// offset after the last one.
    fn replay(&mut self, bytes: &[u8], mut next: u64) -> u64 {
        let mut pos = 0;
        while pos + HEADER_BYTES <= bytes.len() {
            let Ok(header) = BatchHeader::parse(&bytes[pos..]) else {
                break;
            };
            let Some(size) = header.total_bytes() else {
                break;
            };
            self.record(&header);
            next = next.max(header.last_offset() as u64 + 1);
            pos += size;
        }
        next
    }

    fn encode(&self, offset: u64) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let p = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&p.epoch.to_be_bytes());
            out.extend_from_slice(&p.last_timestamp.to_be_bytes());
            out.push(p.batches.len() as u8);
            for b in &p.batches {
                out.extend_from_slice(&b.first_sequence.to_be_bytes());
                out.extend_from_slice(&b.last_sequence.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// The state and its offset from snapshot bytes; `None` when they are not a whole, sealed
    /// snapshot.
    fn decode(bytes: &[u8]) -> Option<(ProducerState, u64)> {
        let body_len = bytes.len().checked_sub(4)?;
        let (body, crc) = bytes.split_at(body_len);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut reader = Reader(body);
        if reader.take(8)? != SNAPSHOT_MAGIC {
            return None;
        }
        let offset = reader.u64()?;
        let count = reader.u32()?;
        let mut state = ProducerState::default();
        for _ in 0..count {
            let id = reader.u64()? as i64;
            let epoch = reader.u16()? as i16;
            let last_timestamp = reader.u64()? as i64;
            let batches_count = usize::from(reader.take(1)?[0]);
            if batches_count > BATCHES_KEPT {
                return None;
            }
            let mut batches = VecDeque::with_capacity(batches_count);
            for _ in 0..batches_count {
                batches.push_back(BatchMeta {
                    first_sequence: reader.u32()? as i32,
                    last_sequence: reader.u32()? as i32,
                    base_offset: reader.u64()?,
                    last_offset: reader.u64()?,
                });
            }
            state.producers.insert(
                id,
                Producer {
                    epoch,
                    batches,
                    last_timestamp,
                },
            );
        }
        reader.0.is_empty().then_some((state, offset))
    }

    /// Rebuilds the state of `log`: the snapshot in its directory if it is usable, then every
    /// batch header from there to the log end.
    ///
    /// # Errors
    /// IO errors reading the snapshot or the log. A corrupt batch in the log ends the replay
    /// there (with a warning): the state then misses the producers of the batches after it.
    pub fn rebuild<D: Disk>(disk: &D, log: &mut Log<D>) -> Result<ProducerState, LogError> {
        let end = log.next_offset();
        let start = log.log_start_offset();
        let snapshot = read_snapshot(disk, log.dir())?;
        let (mut state, mut next) = match snapshot {
            Some((state, offset)) if offset <= end && offset >= start => (state, offset),
            Some((_, offset)) => {
                tracing::info!(dir = %log.dir().display(), offset, end, "producer snapshot outside the log; rebuilding from the log start");
                (ProducerState::default(), start)
            }
            None => (ProducerState::default(), start),
        };
        while next < end {
            let bytes = match log.replay_copy(next, REPLAY_READ_BYTES, end) {
                Ok(bytes) => bytes,
                // Damaged for good: what follows is not replayed, so a retry of a batch after
                // this point may be written again. Refusing to start would be worse.
                Err(e @ LogError::Corrupt { .. }) => {
                    tracing::warn!(dir = %log.dir().display(), offset = next, error = %e, "producer state replay stopped at a damaged batch");
                    break;
                }
                // An IO error says nothing about the data: the open fails and may be tried
                // again, rather than go on with producers forgotten.
                Err(e) => return Err(e),
            };
            if bytes.is_empty() {
                break;
            }
            let after = state.replay(&bytes, next);
            if after <= next {
                break;
            }
            next = after;
        }
        Ok(state)
    }

    /// Writes a snapshot for offset `offset`, which must be the log end with every byte below it
    /// durable: temporary file, sync, rename, directory sync.
    ///
    /// # Errors
    /// IO errors; the previous snapshot is then still in place.
    pub fn write_snapshot<D: Disk>(&self, disk: &D, dir: &Path, offset: u64) -> io::Result<()> {
        write_atomically(disk, &dir.join(SNAPSHOT_FILE), &self.encode(offset))
    }
}

fn read_snapshot<D: Disk>(disk: &D, dir: &Path) -> io::Result<Option<(ProducerState, u64)>> {
    let path = dir.join(SNAPSHOT_FILE);
    if !disk.exists(&path) {
        return Ok(None);
    }
    let file = disk.open(&path)?;
    let len = file.len()?;
    if len > 64 * 1024 * 1024 {
        return Ok(None);
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(ProducerState::decode(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 1000,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut state = ProducerState::default();
        let first = header(7, 0, 0, 3, 100);
        assert_eq!(state.check(&first), Verdict::Append);
        state.record(&first);
        let second = header(7, 0, 3, 2, 103);
        assert_eq!(state.check(&second), Verdict::Append);
        state.record(&second);
        let Verdict::Duplicate(meta) = state.check(&header(7, 0, 0, 3, -1)) else {
            panic!("a retry of the first batch is a duplicate");
        };
        assert_eq!((meta.base_offset, meta.last_offset), (100, 102));
        assert!(matches!(
            state.check(&header(7, 0, 3, 2, -1)),
            Verdict::Duplicate(BatchMeta {
                base_offset: 103,
                ..
            })
        ));
    }

    #[test]
    fn gaps_and_zombies_are_refused() {
        let mut state = ProducerState::default();
        state.record(&header(7, 1, 0, 1, 0));
        assert!(matches!(
            state.check(&header(7, 1, 2, 1, -1)),
            Verdict::Refuse(OUT_OF_ORDER_SEQUENCE_NUMBER, _)
        ));
        assert!(matches!(
            state.check(&header(7, 0, 1, 1, -1)),
            Verdict::Refuse(INVALID_PRODUCER_EPOCH, _)
        ));
        assert!(matches!(
            state.check(&header(7, 2, 5, 1, -1)),
            Verdict::Refuse(OUT_OF_ORDER_SEQUENCE_NUMBER, _)
        ));
        assert_eq!(state.check(&header(7, 2, 0, 1, -1)), Verdict::Append);
        assert_eq!(state.check(&header(8, 0, 42, 1, -1)), Verdict::Append);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut state = ProducerState::default();
        for i in 0..7 {
            state.record(&header(1, 0, i, 1, i64::from(i)));
        }
        assert!(matches!(
            state.check(&header(1, 0, 1, 1, -1)),
            Verdict::Refuse(OUT_OF_ORDER_SEQUENCE_NUMBER, _)
        ));
        assert!(matches!(
            state.check(&header(1, 0, 2, 1, -1)),
            Verdict::Duplicate(_)
        ));
        let mut state = ProducerState::default();
        state.record(&header(2, 0, i32::MAX - 1, 2, 0));
        assert_eq!(state.check(&header(2, 0, 0, 1, -1)), Verdict::Append);
    }

    #[test]
    fn snapshots_round_trip_and_reject_damage() {
        let mut state = ProducerState::default();
        for pid in 0..20 {
            for i in 0..(pid % 7) as i32 {
                state.record(&header(
                    pid,
                    (pid % 3) as i16,
                    i * 2,
                    2,
                    pid * 100 + i64::from(i),
                ));
            }
        }
        let bytes = state.encode(1234);
        assert_eq!(ProducerState::decode(&bytes), Some((state.clone(), 1234)));
        for cut in 0..bytes.len() {
            assert_eq!(ProducerState::decode(&bytes[..cut]), None);
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert_eq!(ProducerState::decode(&flipped), None);
    }

    /// At PRODUCERS_MAX a new producer makes room by forgetting the one idle longest, and among
    /// producers idle equally long, the lowest id: the choice is a function of the log, never of
    /// a hasher's seed, so a simulation replays it.
    #[test]
    fn the_full_table_forgets_the_lowest_id_among_the_longest_idle() {
        let mut state = ProducerState::default();
        for pid in (0..PRODUCERS_MAX as i64).rev() {
            state.record(&header(pid + 10, 0, 0, 1, 0));
        }
        assert_eq!(state.len(), PRODUCERS_MAX);
        state.record(&header(1, 0, 0, 1, 0));
        assert_eq!(state.len(), PRODUCERS_MAX);
        // A gap in a known producer's sequence is refused; an unknown producer may start anywhere.
        let known = |pid| matches!(state.check(&header(pid, 0, 5, 1, 0)), Verdict::Refuse(..));
        assert!(!known(10), "the lowest id of the equally idle is forgotten");
        assert!(known(11) && known(1));
    }

    #[test]
    fn expiry_forgets_idle_producers() {
        let mut state = ProducerState::default();
        state.record(&header(1, 0, 0, 1, 0));
        state.expire(1000 + 500, 1000);
        assert_eq!(state.len(), 1);
        state.expire(1000 + 1001, 1000);
        assert!(state.is_empty());
    }
}

#[cfg(test)]
mod rebuild_tests {
    use std::path::Path;

    use super::*;
    use crate::io::mem::MemDisk;
    use crate::log::batch::{BatchBuilder, NewRecord};
    use crate::log::LogConfig;

    fn append(log: &mut Log<MemDisk>, producer_id: i64, sequence: i32) {
        let record = NewRecord {
            timestamp: 1_000,
            key: None,
            value: Some(b"v".to_vec()),
            headers: vec![],
        };
        let builder = BatchBuilder {
            producer_id,
            producer_epoch: 0,
            base_sequence: sequence,
            ..BatchBuilder::default()
        };
        let mut batch = builder.build(&[record]).unwrap();
        log.append(&mut batch, 1_000).unwrap();
    }

    /// A snapshot is trusted only up to the log end: one whose offset is past it (the log lost
    /// a tail it described) is ignored and the state comes from the log alone; one within the
    /// log is the starting point of the replay.
    #[test]
    fn a_snapshot_past_the_log_end_is_ignored() {
        let disk = MemDisk::new();
        let dir = Path::new("/p");
        let mut log = Log::open(disk.clone(), dir, LogConfig::default(), 0).unwrap();
        append(&mut log, 1, 0);
        append(&mut log, 1, 1);
        let from_log = ProducerState::rebuild(&disk, &mut log).unwrap();
        // A snapshot claiming offset 100 and a producer the log never saw.
        let mut stale = from_log.clone();
        stale.record(
            &BatchHeader::parse(&{
                let builder = BatchBuilder {
                    base_offset: 99,
                    producer_id: 7,
                    producer_epoch: 0,
                    base_sequence: 0,
                    ..BatchBuilder::default()
                };
                builder.build(&[NewRecord::default()]).unwrap()
            })
            .unwrap(),
        );
        stale.write_snapshot(&disk, dir, 100).unwrap();
        assert_eq!(ProducerState::rebuild(&disk, &mut log).unwrap(), from_log);
        // A snapshot at offset 1 (after the first batch) plus the replay of the rest.
        let mut first = ProducerState::default();
        let bytes = log.read_copy(0, 1 << 20, 1).unwrap();
        first.replay(&bytes, 0);
        first.write_snapshot(&disk, dir, 1).unwrap();
        assert_eq!(ProducerState::rebuild(&disk, &mut log).unwrap(), from_log);
    }
}
