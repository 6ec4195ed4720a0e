//! A power loss at every durable step of a compaction swap, not by chance: the pass is run once
//! for each number of syncs it may complete (the disk fails every sync after that many, as a
//! dying machine's does), then the power goes, with several draws of which unsynced writes and
//! renames survive. After each, the reopened log must hold every key's latest value at its
//! offset with its bytes, invent nothing, leave no staged file behind, pass `keel check`, and
//! compact to exactly what compaction promises.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keel::io::Disk;
use keel::log::batch::{self, BatchBuilder, NewRecord};
use keel::log::{CleanupPolicy, Log, LogConfig};
use keel_sim::disk::SimDisk;
use keel_sim::rng::SimRng;

const DIR: &str = "/data/topic-0";
/// Draws of what a power loss keeps, per step.
const DRAWS: u64 = 8;
/// More syncs than any pass here makes: the enumeration must end with a pass that finished.
const STEPS_MAX: u64 = 200;

/// (offset, key, value); a `None` value is a tombstone.
type Keyed = (u64, Vec<u8>, Option<Vec<u8>>);

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_index_bytes: 4096,
        index_interval_bytes: 256,
        cleanup_policy: CleanupPolicy::COMPACT,
        delete_retention_ms: 10_000,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

fn open(disk: &SimDisk) -> Log<SimDisk> {
    Log::open(disk.clone(), Path::new(DIR), config(), 0).expect("open")
}

/// Appends one batch of keyed records whose values name their offsets.
fn append(log: &mut Log<SimDisk>, keys: &[(u32, bool)]) -> Vec<Keyed> {
    let first = log.next_offset();
    let records: Vec<NewRecord> = keys
        .iter()
        .enumerate()
        .map(|(i, &(key, tombstone))| NewRecord {
            timestamp: 0,
            key: Some(format!("key-{key}").into_bytes()),
            value: (!tombstone)
                .then(|| format!("value-{}-{:x<32}", first + i as u64, "").into_bytes()),
            headers: vec![],
        })
        .collect();
    let mut bytes = BatchBuilder::default().build(&records).expect("build");
    let info = log.append(&mut bytes, 0).expect("append");
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (info.base_offset + i as u64, r.key.expect("keyed"), r.value))
        .collect()
}

/// Every record the log serves, read from each offset in turn (a read in a hole serves the
/// next batch).
fn read_all(log: &mut Log<SimDisk>) -> Vec<Keyed> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.next_offset() {
        let bytes = log.read_copy(offset, 1000, u64::MAX).expect("read");
        if bytes.is_empty() {
            break;
        }
        let mut position = 0;
        while position < bytes.len() {
            let header = batch::BatchHeader::parse(&bytes[position..]).expect("header");
            let total = header.total_bytes().expect("length");
            let one = &bytes[position..position + total];
            for record in batch::decode_records(one).expect("records") {
                if record.offset as u64 >= offset {
                    out.push((
                        record.offset as u64,
                        record.key.expect("keyed"),
                        record.value,
                    ));
                }
            }
            position += total;
            offset = header.last_offset() as u64 + 1;
        }
    }
    out
}

/// Below `end` each key's latest record (tombstones gone), and everything from `end` on.
fn compacted(records: &[Keyed], end: u64) -> Vec<Keyed> {
    let mut latest = BTreeMap::new();
    for r in records.iter().filter(|r| r.0 < end) {
        latest.insert(r.1.clone(), r.0);
    }
    records
        .iter()
        .filter(|r| r.0 >= end || (latest[&r.1] == r.0 && r.2.is_some()))
        .cloned()
        .collect()
}

/// Each key's latest live value: (offset, value).
fn latest_values(records: &[Keyed]) -> BTreeMap<Vec<u8>, (u64, Vec<u8>)> {
    let mut latest = BTreeMap::new();
    for (offset, key, value) in records {
        match value {
            Some(value) => latest.insert(key.clone(), (*offset, value.clone())),
            None => latest.remove(key),
        };
    }
    latest
}

/// A flushed log of 7 keys rewritten many times (one tombstone), already compacted once segment
/// by segment, so that the next pass merges segments; the records written and the end of what
/// may be cleaned.
fn prepared(disk: &SimDisk) -> (Log<SimDisk>, Vec<Keyed>, u64) {
    disk.create_dir_all(Path::new(DIR)).expect("dir");
    let mut log = open(disk);
    let mut written = Vec::new();
    for i in 0..80u32 {
        let keys: Vec<(u32, bool)> = (0..4)
            .map(|j| ((i * 4 + j) % 7, i == 20 && j == 0))
            .collect();
        written.extend(append(&mut log, &keys));
    }
    log.flush(0).expect("flush");
    let bases = log.segment_base_offsets();
    let end = bases[bases.len() - 1];
    log.compact(0).expect("a first pass");
    (log, written, end)
}

#[test]
fn a_power_loss_after_every_durable_step_of_a_compaction_swap_loses_nothing() {
    for step in 0..STEPS_MAX {
        let mut finished = false;
        for draw in 0..DRAWS {
            let disk = SimDisk::new(draw);
            let (mut log, written, end) = prepared(&disk);
            disk.fail_syncs_after(Some(step));
            finished = log.compact(1_000_000).is_ok();
            drop(log);
            disk.power_loss(&mut SimRng::new(step * DRAWS + draw));
            disk.fail_syncs_after(None);
            let context = format!("power loss after {step} syncs of the pass, draw {draw}");

            let mut log = open(&disk);
            let names = disk.list(Path::new(DIR)).expect("list");
            assert!(
                names
                    .iter()
                    .all(|n| !n.ends_with(".cleaned") && !n.ends_with(".swap")),
                "{context}: staged files left: {names:?}"
            );
            let read = read_all(&mut log);
            for record in &read {
                assert!(written.contains(record), "{context}: invented {record:?}");
            }
            for record in compacted(&written, end) {
                assert!(read.contains(&record), "{context}: lost {record:?}");
            }
            assert_eq!(
                latest_values(&read),
                latest_values(&written),
                "{context}: latest values"
            );
            let report = keel::log::dump::check_dir(&disk, &PathBuf::from(DIR)).expect("check");
            assert_eq!(report.problems, vec![], "{context}: keel check");
            // The interrupted pass is finished by the next one.
            while log.compact(1_000_000).expect("compact").segments_cleaned > 0 {}
            assert_eq!(read_all(&mut log), compacted(&written, end), "{context}");
        }
        if finished {
            assert!(step > 5, "only {step} steps were cut");
            return;
        }
    }
    panic!("the pass did not finish within {STEPS_MAX} syncs");
}
