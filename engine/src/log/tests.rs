//! Tests of the log against the durability contract and a Vec-of-records model.

use super::model::LogModel;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::batch::{self, BatchBuilder, NewRecord};
use super::checkpoint::CLEAN_SHUTDOWN_FILE;
use super::segment::{segment_path, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use super::*;
use crate::io::mem::MemDisk;

const DIR: &str = "/data/topic-0";

fn dir() -> PathBuf {
    PathBuf::from(DIR)
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_index_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn open(disk: &MemDisk, config: LogConfig) -> Log<MemDisk> {
    Log::open(disk.clone(), &dir(), config, 0).expect("open")
}

fn value(offset: u64, len: usize) -> Vec<u8> {
    let mut v = format!("value-{offset}-").into_bytes();
    v.resize(len.max(v.len()), b'x');
    v
}

/// Appends a batch of `count` records whose values name their offsets.
fn append(log: &mut Log<MemDisk>, count: usize, value_bytes: usize, timestamp: i64) -> AppendInfo {
    append_sized(log, count, value_bytes, timestamp).0
}

/// `append`, and the size of the batch it wrote.
fn append_sized(
    log: &mut Log<MemDisk>,
    count: usize,
    value_bytes: usize,
    timestamp: i64,
) -> (AppendInfo, u64) {
    let first = log.next_offset();
    let records: Vec<NewRecord> = (0..count as u64)
        .map(|i| NewRecord {
            timestamp: timestamp + i as i64,
            key: Some(format!("k{}", first + i).into_bytes()),
            value: Some(value(first + i, value_bytes)),
            headers: vec![],
        })
        .collect();
    let mut bytes = BatchBuilder::default().build(&records).unwrap();
    let size = bytes.len() as u64;
    (log.append(&mut bytes, timestamp).expect("append"), size)
}

/// Every record from the log start to the end, through `read_copy`, checking offsets are dense.
fn read_all(log: &mut Log<MemDisk>) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.next_offset() {
        let bytes = log.read_copy(offset, 1000, u64::MAX).expect("read");
        assert!(
            !bytes.is_empty(),
            "no data at {offset} < {}",
            log.next_offset()
        );
        let mut position = 0;
        while position < bytes.len() {
            let header = batch::BatchHeader::parse(&bytes[position..]).unwrap();
            let total = header.total_bytes().unwrap();
            for record in batch::decode_records(&bytes[position..position + total]).unwrap() {
                if record.offset as u64 >= offset {
                    out.push((record.offset as u64, record.value.unwrap()));
                }
            }
            position += total;
            offset = header.last_offset() as u64 + 1;
        }
    }
    out
}

fn expect_offsets(log: &mut Log<MemDisk>, range: std::ops::Range<u64>) {
    let records = read_all(log);
    let offsets: Vec<u64> = records.iter().map(|r| r.0).collect();
    assert_eq!(offsets, range.collect::<Vec<_>>());
    for (offset, v) in records {
        assert!(v.starts_with(format!("value-{offset}-").as_bytes()));
    }
}

#[test]
fn appends_get_dense_offsets_and_read_back() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    let a = append(&mut log, 3, 10, 1000);
    let b = append(&mut log, 2, 10, 2000);
    assert_eq!((a.base_offset, a.last_offset), (0, 2));
    assert_eq!((b.base_offset, b.last_offset), (3, 4));
    assert_eq!(log.next_offset(), 5);
    expect_offsets(&mut log, 0..5);
    assert!(log.read(5, 1000, u64::MAX).unwrap().is_none());
    assert!(matches!(
        log.read(6, 1000, u64::MAX),
        Err(LogError::OffsetOutOfRange { offset: 6, .. })
    ));
}

#[test]
fn reads_respect_the_offset_limit_and_return_whole_batches() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    for _ in 0..5 {
        append(&mut log, 2, 10, 1000);
    }
    let slice = log.read(0, 1_000_000, 4).unwrap().unwrap();
    assert_eq!((slice.first_offset, slice.next_offset), (0, 4));
    let slice = log.read(3, 1, u64::MAX).unwrap().unwrap();
    assert_eq!(
        (slice.first_offset, slice.next_offset),
        (2, 4),
        "one whole batch"
    );
    assert!(log.read(4, 1000, 4).unwrap().is_none());
}

#[test]
fn a_read_touches_headers_not_record_bytes() {
    // Batches of 64 KiB, as producers with large batches write them: finding the slice for a
    // 1 MiB fetch must read a few headers near index entries, not the records in between, and a
    // batch that crosses the byte limit must not be read again as if it were torn.
    let disk = MemDisk::new();
    let config = LogConfig {
        segment_bytes: 64 << 20,
        segment_index_bytes: 1 << 20,
        index_interval_bytes: 4096,
        ..LogConfig::default()
    };
    let mut log = open(&disk, config);
    for _ in 0..64 {
        append(&mut log, 16, 4096, 1000);
    }
    for (offset, bytes_max) in [
        (0, 1 << 20),
        (200, 1 << 20),
        (300, 1_000_000),
        (700, 300_000),
    ] {
        let before = disk.bytes_read();
        let slice = log.read(offset, bytes_max, u64::MAX).unwrap().unwrap();
        let read = disk.bytes_read() - before;
        assert!(slice.bytes <= bytes_max && slice.bytes > bytes_max / 2);
        assert!(
            slice.first_offset <= offset && slice.next_offset > offset,
            "{}..{} for {offset}",
            slice.first_offset,
            slice.next_offset
        );
        // The first batch's header, the header at the index entry near the limit and the one
        // after it: three reads of 4 KiB and the 61-byte header read that confirms the entry.
        assert!(
            read <= 16 * 1024,
            "a {bytes_max}-byte read at {offset} read {read} bytes"
        );
    }
}

#[test]
fn segments_roll_by_size_and_reads_cross_them() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    for _ in 0..40 {
        append(&mut log, 4, 100, 1000);
    }
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    expect_offsets(&mut log, 0..160);
    for offset in 0..160 {
        let slice = log.read(offset, 1, u64::MAX).unwrap().unwrap();
        assert!(slice.first_offset <= offset && offset < slice.next_offset);
    }
    for base in log.segment_base_offsets() {
        assert!(disk.exists(&segment_path(&dir(), base, LOG_SUFFIX)));
    }
}

#[test]
fn oversized_and_corrupt_batches_are_refused_without_writing() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    append(&mut log, 1, 10, 1000);
    let records = [NewRecord {
        value: Some(vec![1; 100]),
        ..NewRecord::default()
    }];
    let mut big = BatchBuilder::default().build(&records).unwrap();
    log.config.message_bytes_max = 50;
    assert!(matches!(
        log.append(&mut big, 0),
        Err(LogError::BatchTooLarge { .. })
    ));
    log.config.message_bytes_max = 1 << 20;
    let last = big.len() - 1;
    big[last] ^= 1;
    assert!(matches!(
        log.append(&mut big, 0),
        Err(LogError::InvalidBatch(
            batch::BatchError::CrcMismatch { .. }
        ))
    ));
    assert_eq!(log.next_offset(), 1);
    expect_offsets(&mut log, 0..1);
}

/// A producer's max timestamp claim that the records contradict (sarama's -1) is replaced by the
/// records' maximum and the CRC re-sealed, as Kafka does; a right claim leaves the batch's bytes
/// as produced (only the base offset, outside the CRC, changes).
#[test]
fn a_wrong_max_timestamp_is_resealed_and_a_right_one_kept() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    let records: Vec<NewRecord> = [5_000, 5_009, 5_004]
        .iter()
        .map(|&timestamp| NewRecord {
            timestamp,
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: vec![],
        })
        .collect();
    let produced = BatchBuilder::default().build(&records).unwrap();
    for (claim, base_offset) in [(-1, 0u64), (5_009, 3)] {
        let mut sent = produced.clone();
        batch::set_max_timestamp(&mut sent, claim, false);
        let info = log.append(&mut sent.clone(), 5_000).expect("append");
        assert_eq!((info.base_offset, info.max_timestamp), (base_offset, 5_009));
        let stored = log.read_copy(base_offset, 1, u64::MAX).unwrap();
        let valid = batch::validate(&stored, true).expect("the stored batch is sealed");
        assert_eq!(valid.header.max_timestamp, 5_009, "claim {claim}");
        if claim == 5_009 {
            assert_eq!(
                stored[8..],
                sent[8..],
                "a right claim is stored as produced"
            );
        }
    }
    assert_eq!(log.offset_for_timestamp(5_005).unwrap(), Some((1, 5_009)));
}

#[test]
fn truncation_cuts_at_batch_boundaries_durably() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    for _ in 0..30 {
        append(&mut log, 3, 100, 1000);
    }
    log.truncate_to(45).unwrap();
    assert_eq!(log.next_offset(), 45);
    expect_offsets(&mut log, 0..45);
    log.truncate_to(40).unwrap();
    assert_eq!(log.next_offset(), 39, "40 is inside the batch 39..41");
    append(&mut log, 2, 100, 1000);
    expect_offsets(&mut log, 0..41);
    drop(log);
    let mut log = open(&disk, small_config());
    expect_offsets(&mut log, 0..41);
}

#[test]
fn retention_by_bytes_and_time_deletes_whole_closed_segments() {
    let disk = MemDisk::new();
    let mut config = small_config();
    let mut log = open(&disk, config.clone());
    for i in 0..40 {
        append(&mut log, 4, 100, 1000 + i);
    }
    let segments = log.segment_count();
    config.retention_bytes = 8192;
    log.set_config(config.clone()).unwrap();
    let outcome = log.apply_retention(2000).unwrap();
    assert!(outcome.segments_deleted > 0);
    assert!(log.size_bytes() <= 8192 + 4096);
    assert_eq!(log.segment_count(), segments - outcome.segments_deleted);
    let start = log.log_start_offset();
    assert_eq!(start, log.segment_base_offsets()[0]);
    expect_offsets(&mut log, start..160);
    config.retention_bytes = -1;
    config.retention_ms = 10;
    log.set_config(config).unwrap();
    log.apply_retention(1_000_000).unwrap();
    assert_eq!(log.segment_count(), 1, "only the active segment survives");
    assert!(matches!(
        log.read(0, 100, u64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn delete_records_moves_the_log_start_durably() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    for _ in 0..40 {
        append(&mut log, 4, 100, 1000);
    }
    assert_eq!(log.delete_records_before(50).unwrap(), 50);
    expect_offsets(&mut log, 50..160);
    assert!(log.segment_base_offsets()[0] <= 50);
    drop(log);
    let mut log = open(&disk, small_config());
    assert_eq!(log.log_start_offset(), 50);
    expect_offsets(&mut log, 50..160);
}

#[test]
fn offsets_are_found_by_timestamp() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    for i in 0..50 {
        append(&mut log, 2, 100, 10_000 + i * 10);
    }
    let cases = [
        (0, Some((0, 10_000))),
        (10_000, Some((0, 10_000))),
        (10_001, Some((1, 10_001))),
        (10_002, Some((2, 10_010))),
        (10_250, Some((50, 10_250))),
        (10_491, Some((99, 10_491))),
        (10_492, None),
    ];
    for (timestamp, expected) in cases {
        assert_eq!(
            log.offset_for_timestamp(timestamp).unwrap(),
            expected,
            "{timestamp}"
        );
    }
}

/// Eight batches of about 100 bytes, so that `small_config` (index.interval.bytes 256) gives an
/// index entry every third one, then a flush and a crash: recovery starts at the last entry below
/// the recovery point, and the batches between the entry before it and that one are trusted and
/// not read again. The fifth batch, between two entries, holds the log's newest timestamp.
fn crashed_with_newest_timestamp_between_index_entries(disk: &MemDisk) -> Log<MemDisk> {
    let mut log = open(disk, small_config());
    for i in 0..8 {
        let timestamp = if i == 4 { 9_000 } else { 1_000 + i };
        append(&mut log, 1, 20, timestamp);
    }
    log.flush(0).unwrap();
    drop(log);
    open(disk, small_config())
}

#[test]
fn a_crash_keeps_timestamps_of_the_batches_recovery_does_not_read_again() {
    let disk = MemDisk::new();
    let mut log = crashed_with_newest_timestamp_between_index_entries(&disk);
    // Every crash recovers again from an index entry: none may lose what the batches say.
    for crash in 0..4 {
        assert_eq!(
            log.offset_for_timestamp(5_000).unwrap(),
            Some((4, 9_000)),
            "after crash {crash}"
        );
        assert_eq!(
            log.max_timestamp_offset().unwrap().map(|(_, t)| t),
            Some(9_000),
            "after crash {crash}"
        );
        drop(log);
        log = open(&disk, small_config());
    }
    // The segment closes with its true newest timestamp: found after a clean reopen too.
    log.roll().unwrap();
    log.close(0).unwrap();
    let mut log = open(&disk, small_config());
    assert_eq!(log.offset_for_timestamp(5_000).unwrap(), Some((4, 9_000)));
}

#[test]
fn time_retention_after_a_crash_judges_a_segment_by_its_newest_timestamp() {
    let disk = MemDisk::new();
    let mut log = crashed_with_newest_timestamp_between_index_entries(&disk);
    log.roll().unwrap();
    let config = LogConfig {
        retention_ms: 5_000,
        ..small_config()
    };
    log.set_config(config).unwrap();
    // 6,000 ms after the older batches, 1,000 after the newest: the segment stays.
    let outcome = log.apply_retention(10_000).unwrap();
    assert_eq!(outcome.segments_deleted, 0);
    expect_offsets(&mut log, 0..8);
}

#[test]
fn a_crash_keeps_the_first_batch_timestamp_that_segment_ms_rolls_by() {
    let disk = MemDisk::new();
    let config = LogConfig {
        segment_ms: 60_000,
        ..small_config()
    };
    let mut log = open(&disk, config.clone());
    append(&mut log, 1, 20, 1_000);
    for _ in 0..7 {
        append(&mut log, 1, 20, 50_000);
    }
    log.flush(0).unwrap();
    drop(log);
    let mut log = open(&disk, config);
    // 64,000 ms after the segment's first batch: the next append starts a new segment.
    append(&mut log, 1, 20, 65_000);
    assert_eq!(log.segment_base_offsets(), vec![0, 8]);
}

#[test]
fn flush_policy_says_when_a_flush_is_due() {
    let disk = MemDisk::new();
    let cases = [
        (FlushPolicy::None, 1, 0, false),
        (FlushPolicy::Always, 1, 0, true),
        (FlushPolicy::Interval { ms: 0, messages: 3 }, 2, 0, false),
        (FlushPolicy::Interval { ms: 0, messages: 3 }, 3, 0, true),
        (
            FlushPolicy::Interval {
                ms: 100,
                messages: 0,
            },
            1,
            99,
            false,
        ),
        (
            FlushPolicy::Interval {
                ms: 100,
                messages: 0,
            },
            1,
            100,
            true,
        ),
    ];
    for (i, (flush, records, now_ms, due)) in cases.into_iter().enumerate() {
        let config = LogConfig {
            flush,
            ..small_config()
        };
        let path = PathBuf::from(format!("/flush/{i}"));
        let mut log = Log::open(disk.clone(), &path, config, 0).unwrap();
        append(&mut log, records, 10, 0);
        assert_eq!(log.flush_due(now_ms), due, "{flush:?} {records} {now_ms}");
        log.flush(now_ms).unwrap();
        assert!(!log.flush_due(now_ms));
        assert_eq!(log.recovery_point(), log.next_offset());
    }
}

#[test]
fn a_flush_in_two_halves_claims_only_what_it_synced() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    append(&mut log, 3, 10, 1000);
    let pending = log.begin_flush();
    // Appended while the sync runs (the log is not held then): not made durable by this flush.
    append(&mut log, 2, 10, 1000);
    pending.sync().unwrap();
    log.finish_flush(pending, 5).unwrap();
    assert_eq!(log.recovery_point(), 3);
    assert_eq!(log.unflushed_messages(), 2);
    // A checkpoint that said 5 would make recovery trust offsets 3 and 4 without reading them.
    drop(log);
    let log = open(&disk, small_config());
    assert!(log.recovery_report().bytes_scanned > 0);

    // A truncation while the sync runs: offsets 3 to 7 are written again after it, so the
    // flush that began before it must not vouch for them.
    let mut log = log;
    append(&mut log, 3, 10, 1000);
    let pending = log.begin_flush();
    assert_eq!(pending.through(), 8);
    log.truncate_to(3).unwrap();
    append(&mut log, 4, 10, 1000);
    pending.sync().unwrap();
    log.finish_flush(pending, 6).unwrap();
    assert_eq!(log.recovery_point(), 3);
    log.flush(7).unwrap();
    assert_eq!(log.recovery_point(), 7);
}

#[test]
fn recovery_that_lowers_the_recovery_point_checkpoints_the_lower_one() {
    // The disk lost flushed data: recovery ends the log below the checkpoint's recovery point.
    // It must write the lower one, or batches appended later would sit below a recovery point
    // that the next open trusts without reading them.
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    append(&mut log, 3, 10, 1000);
    let end_of_first = log.size_bytes() as usize;
    append(&mut log, 3, 10, 1000);
    log.flush(0).unwrap();
    let path = active_log(&log);
    drop(log);
    let mut bytes = disk.file_bytes(&path).unwrap();
    bytes.truncate(end_of_first);
    disk.set_file_bytes(&path, bytes);
    let log = open(&disk, small_config());
    assert_eq!(log.recovery_report().recovery_point_lost, Some((6, 3)));
    assert_eq!(log.recovery_point(), 3);
    drop(log);
    let log = open(&disk, small_config());
    assert_eq!(log.recovery_report().recovery_point_lost, None);
}

#[test]
fn a_clean_close_skips_recovery_and_the_marker_is_used_once() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    for _ in 0..20 {
        append(&mut log, 3, 100, 1000);
    }
    log.close(0).unwrap();
    assert!(disk.exists(&dir().join(CLEAN_SHUTDOWN_FILE)));
    let mut log = open(&disk, small_config());
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.recovery_report().bytes_scanned, 0);
    assert!(!disk.exists(&dir().join(CLEAN_SHUTDOWN_FILE)));
    expect_offsets(&mut log, 0..60);
    append(&mut log, 3, 100, 1000);
    drop(log);
    let mut log = open(&disk, small_config());
    assert!(!log.recovery_report().clean_shutdown);
    expect_offsets(&mut log, 0..63);
}

/// The active segment's `.log` path.
fn active_log(log: &Log<MemDisk>) -> PathBuf {
    let base = *log.segment_base_offsets().last().unwrap();
    segment_path(&dir(), base, LOG_SUFFIX)
}

/// One recovery case: write 30 flushed batches and 10 unflushed ones (3 records each), crash,
/// damage the files, reopen, and expect exactly `survivors` records.
struct RecoveryCase {
    name: &'static str,
    damage: fn(&MemDisk, &Path, &mut Vec<u8>),
    survivors: u64,
}

fn cut(bytes: &mut Vec<u8>, from_end: usize) {
    let len = bytes.len() - from_end;
    bytes.truncate(len);
}

fn run_recovery_case(case: &RecoveryCase) {
    let disk = MemDisk::new();
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        ..small_config()
    };
    let mut log = open(&disk, config.clone());
    for _ in 0..30 {
        append(&mut log, 3, 100, 1000);
    }
    log.flush(0).unwrap();
    for _ in 0..10 {
        append(&mut log, 3, 100, 1000);
    }
    let path = active_log(&log);
    drop(log);
    let mut bytes = disk.file_bytes(&path).unwrap();
    (case.damage)(&disk, &path, &mut bytes);
    disk.set_file_bytes(&path, bytes);
    let mut log = Log::open(disk.clone(), &dir(), config.clone(), 0)
        .unwrap_or_else(|e| panic!("{}: open failed: {e}", case.name));
    assert_eq!(log.next_offset(), case.survivors, "{}", case.name);
    expect_offsets(&mut log, 0..case.survivors);
    // The recovered log takes appends and survives another reopen.
    append(&mut log, 1, 100, 1000);
    drop(log);
    let mut log = Log::open(disk, &dir(), config, 0).unwrap();
    expect_offsets(&mut log, 0..case.survivors + 1);
}

#[test]
fn recovery_cuts_damaged_tails_and_keeps_the_rest() {
    let cases = [
        RecoveryCase {
            name: "intact",
            damage: |_, _, _| {},
            survivors: 120,
        },
        RecoveryCase {
            name: "cut mid-batch",
            damage: |_, _, b| cut(b, 50),
            survivors: 117,
        },
        RecoveryCase {
            name: "cut mid-header",
            damage: |_, _, b| {
                let batch_bytes = b.len() / 40;
                cut(b, batch_bytes - 20)
            },
            survivors: 117,
        },
        RecoveryCase {
            name: "zero-filled tail",
            damage: |_, _, b| b.extend_from_slice(&[0; 8192]),
            survivors: 120,
        },
        RecoveryCase {
            name: "zeroed last pages",
            damage: |_, _, b| {
                let len = b.len();
                b[len - 600..].fill(0);
            },
            survivors: 3 * (40 - 600 / 395 - 1),
        },
        RecoveryCase {
            name: "bit flip in an unflushed batch",
            damage: |_, _, b| {
                let batch_bytes = b.len() / 40;
                b[35 * batch_bytes + 100] ^= 4;
            },
            survivors: 105,
        },
        RecoveryCase {
            name: "missing index",
            damage: |disk, path, _| {
                disk.remove(&path.with_extension(INDEX_SUFFIX)).unwrap();
                disk.remove(&path.with_extension(TIME_INDEX_SUFFIX))
                    .unwrap();
            },
            survivors: 120,
        },
        RecoveryCase {
            name: "garbage index",
            damage: |disk, path, _| {
                disk.set_file_bytes(&path.with_extension(INDEX_SUFFIX), vec![0xab; 4096]);
                disk.set_file_bytes(&path.with_extension(TIME_INDEX_SUFFIX), vec![0xcd; 4096]);
            },
            survivors: 120,
        },
    ];
    for case in &cases {
        run_recovery_case(case);
    }
}

#[test]
fn recovery_reads_only_what_follows_the_recovery_point() {
    let disk = MemDisk::new();
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        ..small_config()
    };
    let mut log = open(&disk, config.clone());
    for _ in 0..200 {
        append(&mut log, 3, 100, 1000);
    }
    log.flush(0).unwrap();
    append(&mut log, 3, 100, 1000);
    let total = log.size_bytes();
    drop(log);
    let log = open(&disk, config);
    let scanned = log.recovery_report().bytes_scanned;
    assert!(
        scanned > 0 && scanned < 2 * 1024,
        "scanned {scanned} of {total}"
    );
}

#[test]
fn a_stale_clean_shutdown_marker_is_not_trusted() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    append(&mut log, 3, 100, 1000);
    log.close(0).unwrap();
    let marker = disk.file_bytes(&dir().join(CLEAN_SHUTDOWN_FILE)).unwrap();
    let mut log = open(&disk, small_config());
    append(&mut log, 3, 100, 1000);
    let path = active_log(&log);
    drop(log);
    // A marker from the earlier shutdown reappears (an undone removal) and the tail is torn.
    disk.set_file_bytes(&dir().join(CLEAN_SHUTDOWN_FILE), marker);
    let mut bytes = disk.file_bytes(&path).unwrap();
    cut(&mut bytes, 10);
    disk.set_file_bytes(&path, bytes);
    let mut log = open(&disk, small_config());
    assert!(!log.recovery_report().clean_shutdown);
    expect_offsets(&mut log, 0..3);
}

#[test]
fn corruption_in_an_early_unflushed_segment_removes_the_later_ones() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    for _ in 0..40 {
        append(&mut log, 4, 100, 1000);
    }
    let bases = log.segment_base_offsets();
    drop(log);
    let victim = segment_path(&dir(), bases[2], LOG_SUFFIX);
    let mut bytes = disk.file_bytes(&victim).unwrap();
    bytes[100] ^= 1;
    disk.set_file_bytes(&victim, bytes);
    let mut log = open(&disk, small_config());
    assert_eq!(log.next_offset(), bases[2]);
    assert_eq!(log.recovery_report().segments_removed, bases.len() - 3);
    expect_offsets(&mut log, 0..bases[2]);
}

#[test]
fn corrupt_bytes_below_the_recovery_point_are_never_served() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    for _ in 0..10 {
        append(&mut log, 4, 100, 1000);
    }
    log.flush(0).unwrap();
    let path = segment_path(&dir(), 0, LOG_SUFFIX);
    let mut bytes = disk.file_bytes(&path).unwrap();
    bytes[200] ^= 1;
    disk.set_file_bytes(&path, bytes);
    let copied = log.read_copy(0, 100_000, u64::MAX).unwrap();
    let first = batch::BatchHeader::parse(&copied).unwrap();
    assert_eq!(
        first.base_offset, 4,
        "the damaged batch holds offsets 0..=3"
    );
    assert_eq!(verified_prefix(&copied, 4, false), copied.len());
}

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, value_bytes: usize },
    Read { at: u64 },
    Roll,
    Flush,
    Truncate { back: u64 },
    Retention { bytes: i64 },
    DeleteRecords { at: u64 },
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1..6usize, 0..300usize).prop_map(|(records, value_bytes)| Op::Append { records, value_bytes }),
        2 => any::<u64>().prop_map(|at| Op::Read { at }),
        1 => Just(Op::Roll),
        1 => Just(Op::Flush),
        1 => (0..20u64).prop_map(|back| Op::Truncate { back }),
        1 => (0..20_000i64).prop_map(|bytes| Op::Retention { bytes }),
        1 => any::<u64>().prop_map(|at| Op::DeleteRecords { at }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// The model: the records the log holds, by offset, and what it keeps of them
/// (`log::model`).
struct Model {
    records: Vec<(u64, Vec<u8>)>,
    log: LogModel,
}

fn check_against_model(log: &mut Log<MemDisk>, disk: &MemDisk, model: &Model) {
    let report = super::dump::check_dir(disk, &dir()).unwrap();
    assert_eq!(report.problems, vec![], "keel check on the live directory");
    assert_eq!(log.next_offset(), model.log.next);
    assert_eq!(log.log_start_offset(), model.log.start);
    assert_eq!(
        log.size_bytes(),
        model.log.stored_bytes(),
        "the batches the model says are stored"
    );
    let expected: Vec<_> = model
        .records
        .iter()
        .filter(|r| r.0 >= model.log.start)
        .cloned()
        .collect();
    assert_eq!(read_all(log), expected);
}

fn apply(log: Log<MemDisk>, disk: &MemDisk, model: &mut Model, op: &Op) -> Log<MemDisk> {
    let mut log = log;
    let config = small_config();
    match *op {
        Op::Append {
            records,
            value_bytes,
        } => {
            let (info, bytes) = append_sized(&mut log, records, value_bytes, 1000);
            for offset in info.base_offset..=info.last_offset {
                model.records.push((offset, value(offset, value_bytes)));
            }
            model
                .log
                .appended(info.base_offset, info.last_offset, bytes);
        }
        Op::Read { at } => {
            let span = model.log.next - model.log.start + 1;
            let offset = model.log.start + at % span;
            match log.read(offset, 1, u64::MAX).unwrap() {
                Some(slice) => assert!(slice.first_offset <= offset && offset < slice.next_offset),
                None => assert_eq!(offset, model.log.next),
            }
        }
        Op::Roll => log.roll().unwrap(),
        Op::Flush => log.flush(0).unwrap(),
        Op::Truncate { back } => {
            let target = model.log.next.saturating_sub(back).max(model.log.start);
            log.truncate_to(target).unwrap();
            model.log.truncate(target);
            model.records.retain(|r| r.0 < model.log.next);
        }
        Op::Retention { bytes } => {
            let config = LogConfig {
                retention_bytes: bytes,
                ..config
            };
            log.set_config(config).unwrap();
            // The segments' bounds are the log's (rolling is tested elsewhere); what retention
            // keeps of them is worked out here.
            let bases = log.segment_base_offsets();
            log.apply_retention(0).unwrap();
            model.log.retain(&bases, bytes);
            log.set_config(small_config()).unwrap();
        }
        Op::DeleteRecords { at } => {
            let offset = model.log.start + at % (model.log.next - model.log.start + 1);
            let bases = log.segment_base_offsets();
            log.delete_records_before(offset).unwrap();
            model.log.delete_records_before(offset, &bases);
        }
        Op::Reopen { clean } => {
            if clean {
                log.close(0).unwrap();
            } else {
                drop(log);
            }
            return open(disk, config);
        }
    }
    log
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn the_log_behaves_like_a_vec_of_records(ops in proptest::collection::vec(op(), 1..60)) {
        let disk = MemDisk::new();
        let mut log = open(&disk, small_config());
        let mut model = Model { records: Vec::new(), log: LogModel::default() };
        for op in &ops {
            log = apply(log, &disk, &mut model, op);
            check_against_model(&mut log, &disk, &model);
        }
    }
}

#[test]
fn zero_copy_reads_never_hand_out_unverified_corrupt_bytes() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    for _ in 0..10 {
        append(&mut log, 4, 100, 1000);
    }
    log.close(0).unwrap();
    let path = segment_path(&dir(), 0, LOG_SUFFIX);
    let mut bytes = disk.file_bytes(&path).unwrap();
    bytes[200] ^= 1;
    disk.set_file_bytes(&path, bytes);
    // A fresh process has verified nothing it did not write: the slice is checked first, and
    // the damaged first batch is skipped, never sent.
    let mut log = open(&disk, small_config());
    let slice = log.read(0, 100_000, u64::MAX).unwrap().unwrap();
    assert_eq!(
        slice.first_offset, 4,
        "the damaged batch holds offsets 0..=3"
    );
    let mut sent = vec![0; slice.bytes as usize];
    slice.file.read_exact_at(&mut sent, slice.position).unwrap();
    assert_eq!(verified_prefix(&sent, 4, false), sent.len());
    // Appended batches were validated on the way in and are sent as they are.
    let info = append(&mut log, 2, 10, 1000);
    let slice = log
        .read(info.base_offset, 100_000, u64::MAX)
        .unwrap()
        .unwrap();
    assert_eq!(slice.first_offset, info.base_offset);
}

// ---- Compaction ----

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        delete_retention_ms: 10_000,
        min_cleanable_dirty_ratio: 0.0,
        ..small_config()
    }
}

/// A record of a keyed log: (offset, key, value); a `None` value is a tombstone.
type Keyed = (u64, Vec<u8>, Option<Vec<u8>>);

/// Appends one batch of keyed records (values name their offsets) with `codec`.
fn append_keyed(
    log: &mut Log<MemDisk>,
    keys: &[(u32, bool)],
    codec: crate::compression::Codec,
    timestamp: i64,
) -> Vec<Keyed> {
    let first = log.next_offset();
    let records: Vec<NewRecord> = keys
        .iter()
        .enumerate()
        .map(|(i, &(key, tombstone))| NewRecord {
            timestamp,
            key: Some(format!("key-{key}").into_bytes()),
            value: (!tombstone).then(|| value(first + i as u64, 40)),
            headers: vec![],
        })
        .collect();
    let builder = BatchBuilder {
        codec,
        ..BatchBuilder::default()
    };
    let mut bytes = builder.build(&records).unwrap();
    let info = log.append(&mut bytes, timestamp).expect("append");
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (info.base_offset + i as u64, r.key.unwrap(), r.value))
        .collect()
}

/// Every record of the log through `read_copy`, reading from each offset in turn: a read of an
/// offset in a hole must serve the next batch that ends at or after it.
fn read_keyed(log: &mut Log<MemDisk>) -> Vec<Keyed> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.next_offset() {
        let bytes = log.read_copy(offset, 1000, u64::MAX).expect("read");
        if bytes.is_empty() {
            // A truncation into a hole leaves the log's end above its last batch (as in Kafka):
            // nothing to read there yet. The model comparison catches anything missed.
            break;
        }
        let mut position = 0;
        while position < bytes.len() {
            let header = batch::BatchHeader::parse(&bytes[position..]).unwrap();
            assert!(
                header.last_offset() as u64 >= offset,
                "served a batch ending before {offset}"
            );
            let total = header.total_bytes().unwrap();
            let one = &bytes[position..position + total];
            batch::validate(one, false).expect("a served batch is valid");
            for record in batch::decode_records(one).unwrap() {
                if record.offset as u64 >= offset {
                    out.push((record.offset as u64, record.key.unwrap(), record.value));
                }
            }
            position += total;
            offset = header.last_offset() as u64 + 1;
        }
    }
    out
}

/// What compaction must leave: below `end` each key's latest record (a tombstone only while
/// `keep_tombstones`), and everything from `end` on.
fn compacted_model(records: &[Keyed], end: u64, keep_tombstones: bool) -> Vec<Keyed> {
    let mut latest = std::collections::BTreeMap::new();
    for r in records.iter().filter(|r| r.0 < end) {
        latest.insert(r.1.clone(), r.0);
    }
    records
        .iter()
        .filter(|r| r.0 >= end || (latest[&r.1] == r.0 && (keep_tombstones || r.2.is_some())))
        .cloned()
        .collect()
}

/// The end of what compaction may clean: the base of the first segment not wholly flushed.
fn cleanable_end(log: &Log<MemDisk>) -> u64 {
    let bases = log.segment_base_offsets();
    bases[1..]
        .iter()
        .copied()
        .filter(|&b| b <= log.recovery_point())
        .max()
        .unwrap_or(0)
}

#[test]
fn compaction_keeps_the_latest_value_of_each_key_at_its_offset() {
    use crate::compression::Codec;
    for codec in [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ] {
        let disk = MemDisk::new();
        let mut log = open(&disk, compact_config());
        let mut written = Vec::new();
        // Compressed batches are small: write until there are enough segments (bounded).
        for i in 0..2000u32 {
            let keys: Vec<(u32, bool)> = (0..4).map(|j| ((i * 4 + j) % 13, false)).collect();
            written.extend(append_keyed(&mut log, &keys, codec, 1000));
            if log.segment_count() >= 6 {
                break;
            }
        }
        log.flush(0).unwrap();
        assert!(
            log.segment_count() > 4,
            "{codec:?}: {} segments",
            log.segment_count()
        );
        let active = *log.segment_base_offsets().last().unwrap();
        let active_bytes = disk.file_bytes(&segment_path(&dir(), active, LOG_SUFFIX));
        let end = cleanable_end(&log);
        assert!(log.compaction_due(2000));
        let outcome = log.compact(2000).unwrap();
        assert!(outcome.segments_cleaned > 0, "{codec:?}: {outcome:?}");
        assert!(outcome.bytes_after < outcome.bytes_before);
        let expected = compacted_model(&written, end, true);
        assert_eq!(read_keyed(&mut log), expected, "{codec:?}");
        assert_eq!(
            disk.file_bytes(&segment_path(&dir(), active, LOG_SUFFIX)),
            active_bytes,
            "{codec:?}: the active segment is untouched"
        );
        assert_eq!(log.next_offset(), written.len() as u64);
        assert!(
            !log.compaction_due(2000),
            "{codec:?}: nothing dirty after a pass"
        );
        // Further passes only merge the small cleaned segments, until one changes nothing.
        let segments = log.segment_count();
        let passes = (0..10).take_while(|_| log.compact(2000).unwrap().segments_cleaned > 0);
        assert!(passes.count() < 10, "{codec:?}: passes converge");
        assert!(
            log.segment_count() < segments,
            "{codec:?}: cleaned segments merge"
        );
        assert_eq!(read_keyed(&mut log), expected, "{codec:?}: after merging");
        // Reads at every offset, holes included, land on the next batch that ends at or after it.

        for offset in 0..log.next_offset() {
            let slice = log.read(offset, 1, u64::MAX).unwrap().unwrap();
            assert!(offset < slice.next_offset, "{codec:?}: read of {offset}");
        }
        let report = super::dump::check_dir(&disk, &dir()).unwrap();
        assert_eq!(report.problems, vec![], "{codec:?}: keel check");
        drop(log);
        let mut log = open(&disk, compact_config());
        assert_eq!(read_keyed(&mut log), expected, "{codec:?}: after a crash");
        log.close(0).unwrap();
        let mut log = open(&disk, small_config());
        assert_eq!(
            read_keyed(&mut log),
            expected,
            "{codec:?}: under cleanup.policy=delete"
        );
    }
}

#[test]
fn tombstones_stay_for_delete_retention_ms_and_then_go() {
    let disk = MemDisk::new();
    let mut log = open(&disk, compact_config());
    let mut written = Vec::new();
    let codec = crate::compression::Codec::None;
    for round in 0..20u32 {
        let keys: Vec<(u32, bool)> = (0..5).map(|k| (k, false)).collect();
        written.extend(append_keyed(
            &mut log,
            &keys,
            codec,
            1000 + i64::from(round),
        ));
    }
    written.extend(append_keyed(&mut log, &[(1, true), (3, true)], codec, 5000));
    log.roll().unwrap();
    append_keyed(&mut log, &[(9, false)], codec, 5000);
    log.flush(0).unwrap();
    let end = cleanable_end(&log);
    assert_eq!(end, written.len() as u64);
    log.compact(5000 + 10_000).unwrap();
    let kept = read_keyed(&mut log);
    assert_eq!(kept[..5], compacted_model(&written, end, true)[..]);
    assert_eq!(
        kept.iter().filter(|r| r.2.is_none()).count(),
        2,
        "tombstones stay"
    );
    // Nothing new is written, yet another pass falls due when the tombstones expire.
    assert!(!log.compaction_due(5000 + 10_000));
    assert!(log.compaction_due(5000 + 10_001));
    let outcome = log.compact(5000 + 10_001).unwrap();
    assert_eq!(outcome.tombstones_removed, 2);
    let kept = read_keyed(&mut log);
    let keys: Vec<&[u8]> = kept.iter().map(|r| &r.1[..]).collect();
    assert_eq!(keys, [&b"key-0"[..], b"key-2", b"key-4", b"key-9"]);
    assert_eq!(kept[..3], compacted_model(&written, end, false)[..]);
}

#[test]
fn compact_alone_keeps_old_segments_that_delete_would_remove() {
    let disk = MemDisk::new();
    let config = LogConfig {
        retention_ms: 10,
        retention_bytes: 1,
        ..compact_config()
    };
    let mut log = open(&disk, config.clone());
    for _ in 0..40 {
        append_keyed(
            &mut log,
            &[(1, false), (2, false)],
            crate::compression::Codec::None,
            1000,
        );
    }
    let segments = log.segment_count();
    assert_eq!(log.apply_retention(1_000_000).unwrap().segments_deleted, 0);
    let both = LogConfig {
        cleanup_policy: CleanupPolicy {
            delete: true,
            compact: true,
        },
        ..config
    };
    log.set_config(both).unwrap();
    let outcome = log.apply_retention(1_000_000).unwrap();
    assert_eq!(outcome.segments_deleted, segments - 1);
}

#[test]
fn keyless_records_are_refused_for_compacted_topics() {
    let record = |key: Option<&str>| NewRecord {
        key: key.map(|k| k.as_bytes().to_vec()),
        value: Some(b"v".to_vec()),
        ..NewRecord::default()
    };
    let mixed = [None, Some("a"), Some("b"), None, Some("c"), None, None];
    let records: Vec<NewRecord> = mixed.iter().map(|&key| record(key)).collect();
    let batch = BatchBuilder::default().build(&records).unwrap();
    let error = super::compaction::check_keys(&batch, "t-0").unwrap_err();
    let batch::BatchError::RecordErrors(errors) = &error else {
        panic!("{error:?}")
    };
    let indexes: Vec<i32> = errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, [0, 3, 5, 6]);
    for e in errors {
        assert_eq!(
            e.message,
            "Compacted topic cannot accept message without key in topic partition t-0."
        );
    }
    // Kafka's message: the count, and the first three.
    assert_eq!(
        error.to_string(),
        "One or more records have been rejected due to 4 record errors in total, and only \
         showing the first three errors at most: [RecordError(batchIndex=0, message='Compacted \
         topic cannot accept message without key in topic partition t-0.'), \
         RecordError(batchIndex=3, message='Compacted topic cannot accept message without key \
         in topic partition t-0.'), RecordError(batchIndex=5, message='Compacted topic cannot \
         accept message without key in topic partition t-0.')]"
    );
    let keyed = BatchBuilder::default().build(&[record(Some("k"))]).unwrap();
    super::compaction::check_keys(&keyed, "t-0").unwrap();
}

/// A `MemDisk` that stops working after `budget` namespace operations and syncs, the way a crash
/// would stop the broker: everything done before it stays (MemDisk loses nothing), nothing after.
/// With `once`, only the operation that finds the budget at zero fails (a transient EIO) and
/// the disk works again after it.
#[derive(Clone)]
struct CrashingDisk {
    inner: MemDisk,
    budget: std::sync::Arc<std::sync::atomic::AtomicI64>,
    once: bool,
}

impl CrashingDisk {
    fn spend(&self) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        let left = self.budget.fetch_sub(1, Ordering::SeqCst);
        if left == 0 || (left < 0 && !self.once) {
            return Err(std::io::Error::other("crashed"));
        }
        Ok(())
    }
}

impl Disk for CrashingDisk {
    type File = crate::io::mem::MemFile;
    fn create(&self, path: &Path) -> std::io::Result<Self::File> {
        self.spend()?;
        self.inner.create(path)
    }
    fn open(&self, path: &Path) -> std::io::Result<Self::File> {
        self.inner.open(path)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.spend()?;
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.spend()?;
        self.inner.rename(from, to)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn remove_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.spend()?;
        self.inner.remove_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.spend()?;
        self.inner.sync_dir(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
}

#[test]
fn a_crash_at_any_step_of_compaction_leaves_the_old_or_the_new_segments() {
    let codec = crate::compression::Codec::None;
    let mut step = 0;
    loop {
        let disk = MemDisk::new();
        let budget = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
        let crashing = CrashingDisk {
            inner: disk.clone(),
            budget: budget.clone(),
            once: false,
        };
        let mut log = Log::open(crashing, &dir(), compact_config(), 0).unwrap();
        let mut written = Vec::new();
        for i in 0..80u32 {
            let keys: Vec<(u32, bool)> = (0..4)
                .map(|j| ((i * 4 + j) % 7, i == 20 && j == 0))
                .collect();
            written.extend(append_keyed_on(&mut log, &keys, codec));
        }
        log.flush(0).unwrap();
        let bases = log.segment_base_offsets();
        let end = bases[bases.len() - 1];
        // A first pass cleans each segment alone; the pass that crashes merges them.
        log.compact(0).unwrap();
        budget.store(step, std::sync::atomic::Ordering::SeqCst);
        let finished = log.compact(1_000_000).is_ok();
        drop(log);
        let mut log = open(&disk, compact_config());
        let names = disk.list(&dir()).unwrap();
        assert!(
            names
                .iter()
                .all(|n| !n.ends_with(".cleaned") && !n.ends_with(".swap")),
            "step {step}: {names:?}"
        );
        let read = read_keyed(&mut log);
        let after = compacted_model(&written, end, false);
        // Every record compaction keeps is there, at its offset, with its bytes; what else is
        // there is an older record that a crash kept from going, never a mix within a batch.
        for record in &after {
            assert!(read.contains(record), "step {step}: lost {record:?}");
        }
        for record in &read {
            assert!(written.contains(record), "step {step}: invented {record:?}");
        }
        let latest_of = |records: &[Keyed]| {
            let mut latest = std::collections::BTreeMap::new();
            for r in records {
                latest.insert(r.1.clone(), (r.0, r.2.clone()));
            }
            latest
        };
        let mut expected_latest = latest_of(&written);
        expected_latest.retain(|_, (_, value)| value.is_some());
        let mut read_latest = latest_of(&read);
        read_latest.retain(|_, (_, value)| value.is_some());
        assert_eq!(read_latest, expected_latest, "step {step}: latest values");
        let report = super::dump::check_dir(&disk, &dir()).unwrap();
        assert_eq!(report.problems, vec![], "step {step}: keel check");
        if finished {
            assert_eq!(read, after);
            break;
        }
        step += 1;
    }
    assert!(step > 10, "the crash hit {step} steps");
}

fn append_keyed_on<D: Disk>(
    log: &mut Log<D>,
    keys: &[(u32, bool)],
    codec: crate::compression::Codec,
) -> Vec<Keyed> {
    let first = log.next_offset();
    let records: Vec<NewRecord> = keys
        .iter()
        .enumerate()
        .map(|(i, &(key, tombstone))| NewRecord {
            timestamp: 1000,
            key: Some(format!("key-{key}").into_bytes()),
            value: (!tombstone).then(|| value(first + i as u64, 40)),
            headers: vec![],
        })
        .collect();
    let builder = BatchBuilder {
        codec,
        ..BatchBuilder::default()
    };
    let mut bytes = builder.build(&records).unwrap();
    let info = log.append(&mut bytes, 1000).expect("append");
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (info.base_offset + i as u64, r.key.unwrap(), r.value))
        .collect()
}

#[derive(Debug, Clone)]
enum CompactOp {
    Append { keys: Vec<(u32, bool)> },
    Roll,
    Flush,
    Compact { late: bool },
    Truncate { back: u64 },
    Reopen { clean: bool },
}

fn compact_op() -> impl Strategy<Value = CompactOp> {
    let key = (0..6u32, proptest::bool::weighted(0.15));
    prop_oneof![
        6 => proptest::collection::vec(key, 1..6).prop_map(|keys| CompactOp::Append { keys }),
        1 => Just(CompactOp::Roll),
        2 => Just(CompactOp::Flush),
        2 => any::<bool>().prop_map(|late| CompactOp::Compact { late }),
        1 => (0..10u64).prop_map(|back| CompactOp::Truncate { back }),
        1 => any::<bool>().prop_map(|clean| CompactOp::Reopen { clean }),
    ]
}

fn apply_compact(
    log: Log<MemDisk>,
    disk: &MemDisk,
    model: &mut Vec<Keyed>,
    op: &CompactOp,
) -> Log<MemDisk> {
    let mut log = log;
    match op {
        CompactOp::Append { keys } => {
            model.extend(append_keyed(
                &mut log,
                keys,
                crate::compression::Codec::Snappy,
                1000,
            ));
        }
        CompactOp::Roll => log.roll().unwrap(),
        CompactOp::Flush => log.flush(0).unwrap(),
        CompactOp::Compact { late } => {
            let end = cleanable_end(&log);
            let now_ms = if *late { 1_000_000 } else { 0 };
            log.compact(now_ms).unwrap();
            *model = compacted_model(model, end, !late);
        }
        CompactOp::Truncate { back } => {
            log.truncate_to(log.next_offset().saturating_sub(*back))
                .unwrap();
            model.retain(|r| r.0 < log.next_offset());
        }
        CompactOp::Reopen { clean } => {
            if *clean {
                log.close(0).unwrap();
            } else {
                drop(log);
            }
            return open(disk, compact_config());
        }
    }
    log
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn a_compacted_log_keeps_what_the_model_keeps(ops in proptest::collection::vec(compact_op(), 1..60)) {
        let disk = MemDisk::new();
        let mut log = open(&disk, LogConfig { segment_bytes: 600, ..compact_config() });
        let mut model = Vec::new();
        for op in &ops {
            log = apply_compact(log, &disk, &mut model, op);
            let report = super::dump::check_dir(&disk, &dir()).unwrap();
            prop_assert_eq!(report.problems, vec![], "keel check after {:?}", op);
            prop_assert_eq!(read_keyed(&mut log), model.clone(), "after {:?}", op);
        }
    }
}

#[test]
fn a_swap_that_fails_part_way_is_settled_and_compaction_goes_on() {
    let codec = crate::compression::Codec::None;
    for step in 0..40 {
        let disk = MemDisk::new();
        let budget = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
        let failing = CrashingDisk {
            inner: disk.clone(),
            budget: budget.clone(),
            once: true,
        };
        let mut log = Log::open(failing, &dir(), compact_config(), 0).unwrap();
        let mut written = Vec::new();
        for i in 0..80u32 {
            let keys: Vec<(u32, bool)> = (0..4).map(|j| ((i * 4 + j) % 7, false)).collect();
            written.extend(append_keyed_on(&mut log, &keys, codec));
        }
        log.flush(0).unwrap();
        let bases = log.segment_base_offsets();
        let end = bases[bases.len() - 1];
        log.compact(0).unwrap();
        // One operation of the merging pass fails; the pass after it must still leave a sound
        // log, in this process and after a restart.
        budget.store(step, std::sync::atomic::Ordering::SeqCst);
        let _ = log.compact(0);
        budget.store(i64::MAX, std::sync::atomic::Ordering::SeqCst);
        while log.compact(0).unwrap().segments_cleaned > 0 {}
        let expected = compacted_model(&written, end, true);
        let mut read = Vec::new();
        let mut offset = 0;
        while let Ok(bytes) = log.read_copy(offset, 100_000, u64::MAX) {
            if bytes.is_empty() {
                break;
            }
            let mut position = 0;
            while position < bytes.len() {
                let header = batch::BatchHeader::parse(&bytes[position..]).unwrap();
                let total = header.total_bytes().unwrap();
                for r in batch::decode_records(&bytes[position..position + total]).unwrap() {
                    if r.offset as u64 >= offset {
                        read.push((r.offset as u64, r.key.unwrap(), r.value));
                    }
                }
                position += total;
                offset = header.last_offset() as u64 + 1;
            }
        }
        assert_eq!(read, expected, "step {step}: in the process");
        drop(log);
        let mut log = open(&disk, compact_config());
        assert_eq!(
            read_keyed(&mut log),
            expected,
            "step {step}: after a restart"
        );
        let report = super::dump::check_dir(&disk, &dir()).unwrap();
        assert_eq!(report.problems, vec![], "step {step}: keel check");
    }
}

#[test]
fn a_replay_read_outlasts_rot_that_fails_one_read_copy() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    append(&mut log, 3, 10, 1000);
    let intact = log.read_copy(0, 1 << 20, 3).unwrap();
    // Every read rotten: `read_copy`'s attempts give up after their own re-reads (and it then
    // looks for batches after the damage). Count the reads the attempts made.
    disk.rot_reads(1_000);
    let failed = log.copy_attempts(0, 1 << 20, 3, scan::READ_ATTEMPTS_MAX, false);
    assert!(
        matches!(failed, Err(LogError::Corrupt { .. })),
        "{failed:?}"
    );
    let reads = 1_000 - disk.rotten_reads_left();
    // Rot lasting exactly that long fails one `read_copy`; the replay reads again and gets the
    // batches (stopping there would forget the producers and commits after them).
    disk.rot_reads(reads);
    assert_eq!(log.replay_copy(0, 1 << 20, 3).unwrap(), intact);
    // Rot that lasts is damage, which the replays skip: with every byte rotten, nothing
    // verifies, so nothing is returned (never rotten bytes, never an IO error).
    disk.rot_reads(1_000);
    let lasting = log.replay_copy(0, 1 << 20, 3);
    assert!(
        matches!(&lasting, Ok(bytes) if bytes.is_empty()),
        "{lasting:?}"
    );
    disk.rot_reads(0);
    assert_eq!(log.replay_copy(0, 1 << 20, 3).unwrap(), intact);
}

/// A damaged batch is read a bounded number of times: the attempts of `read`, `read_copy` and
/// `replay_copy` do not multiply through the layers below (they once nested to 27 reads and
/// more). Each attempt is at most a lookup (a header read, and a first use's index check), a
/// verification and a copy.
#[test]
fn reads_of_a_damaged_batch_are_bounded_in_total() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    for _ in 0..3 {
        append(&mut log, 3, 10, 1000);
    }
    let intact = log.read_copy(0, 1 << 20, u64::MAX).unwrap();
    log.close(0).unwrap();
    // Reopened, nothing is verified in memory: every read goes to the bytes, and every one
    // comes back rotten. What a call returns is damage or a prefix of what is stored, never
    // other bytes, and it has read a bounded number of times.
    type Call<'a> = &'a mut dyn FnMut(&mut Log<MemDisk>) -> Result<Vec<u8>, LogError>;
    let reads_of = |call: Call| {
        let mut log = open(&disk, small_config());
        disk.rot_reads(1_000);
        let outcome = call(&mut log);
        let reads = 1_000 - disk.rotten_reads_left();
        disk.rot_reads(0);
        match outcome {
            Ok(bytes) => assert!(intact.starts_with(&bytes), "rotten bytes were served"),
            Err(LogError::Corrupt { .. }) => {}
            Err(e) => panic!("a rotten read gave {e:?}"),
        }
        reads
    };
    let per_attempt = 4;
    let bound = u64::from(scan::READ_ATTEMPTS_MAX) * per_attempt;
    let read_copy = reads_of(&mut |log| log.read_copy(0, 1 << 20, u64::MAX));
    assert!(read_copy <= bound, "read_copy read {read_copy} times");
    let replay = reads_of(&mut |log| log.replay_copy(0, 1 << 20, u64::MAX));
    let replay_bound = u64::from(scan::REPLAY_READ_ATTEMPTS_MAX) * per_attempt;
    assert!(replay <= replay_bound, "replay_copy read {replay} times");
}

/// A closed segment holding one large batch has an empty offset index, and that is right (only
/// a batch that begins past index.interval.bytes gets an entry): reopening and reading it
/// rebuilds nothing. A segment whose later batches lack entries is still rebuilt.
#[test]
fn an_empty_index_of_one_large_batch_is_no_damage() {
    let disk = MemDisk::new();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let mut log = open(&disk, config.clone());
    append(&mut log, 1, 100_000, 1000);
    log.roll().unwrap();
    append(&mut log, 1, 10, 1000);
    log.close(0).unwrap();
    let mut log = open(&disk, config.clone());
    expect_offsets(&mut log, 0..2);
    assert_eq!(
        log.index_rebuilds(),
        0,
        "a false alarm: the empty index was right"
    );
    // Two large batches and an empty index: the second begins past any interval, so the index
    // is missing entries and is rebuilt.
    drop(log);
    let disk = MemDisk::new();
    let mut log = open(&disk, config.clone());
    append(&mut log, 1, 100_000, 1000);
    append(&mut log, 1, 100_000, 1000);
    log.roll().unwrap();
    log.close(0).unwrap();
    let first_index = segment_path(&dir(), 0, INDEX_SUFFIX);
    let bytes = disk.file_bytes(&first_index).unwrap();
    disk.set_file_bytes(&first_index, vec![0; bytes.len()]);
    let mut log = open(&disk, config);
    expect_offsets(&mut log, 0..2);
    assert_eq!(log.index_rebuilds(), 1, "the emptied index was rebuilt");
}

/// Where each batch of a segment file starts, with its offsets, read from intact bytes.
fn batch_positions(bytes: &[u8]) -> Vec<(usize, u64, u64)> {
    let mut out = Vec::new();
    let mut position = 0;
    while let Ok(header) = batch::BatchHeader::parse(&bytes[position..]) {
        let total = header.total_bytes().unwrap();
        out.push((
            position,
            header.base_offset as u64,
            header.last_offset() as u64,
        ));
        position += total;
        if position >= bytes.len() {
            break;
        }
    }
    out
}

/// `batches` batches of four records in the first segment, flushed, then no clean shutdown (the
/// next open recovers the active segment) and a bit flipped in the records of batch `victim`.
/// Returns the log end and the damaged batch's first and last offsets.
fn flushed_then_damaged(
    disk: &MemDisk,
    config: &LogConfig,
    batches: usize,
    victim: usize,
) -> (u64, u64, u64) {
    let mut log = open(disk, config.clone());
    for _ in 0..batches {
        append(&mut log, 4, 100, 1000);
    }
    assert_eq!(log.segment_count(), 1, "the batches share one segment");
    log.flush(0).unwrap();
    let end = log.next_offset();
    drop(log);
    let path = segment_path(&dir(), 0, LOG_SUFFIX);
    let mut bytes = disk.file_bytes(&path).unwrap();
    let (position, first, last) = batch_positions(&bytes)[victim];
    bytes[position + 100] ^= 0x04;
    disk.set_file_bytes(&path, bytes);
    (end, first, last)
}

/// Every offset readable from the log start, through `read_copy` and through `read` (the
/// zero-copy ranges), which must agree; values must name their offsets.
fn readable_offsets(log: &mut Log<MemDisk>) -> Vec<u64> {
    let copied: Vec<u64> = read_all(log).into_iter().map(|r| r.0).collect();
    let mut ranged = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.next_offset() {
        let Some(slice) = log.read(offset, 1000, u64::MAX).expect("read") else {
            break;
        };
        let mut bytes = vec![0; slice.bytes as usize];
        slice
            .file
            .read_exact_at(&mut bytes, slice.position)
            .unwrap();
        let mut position = 0;
        while position < bytes.len() {
            let header = batch::BatchHeader::parse(&bytes[position..]).unwrap();
            let total = header.total_bytes().unwrap();
            let batch_bytes = &bytes[position..position + total];
            assert!(
                batch::crc_ok(batch_bytes, &header),
                "a corrupt batch was served"
            );
            for record in batch::decode_records(batch_bytes).unwrap() {
                let value = record.value.unwrap();
                assert!(value.starts_with(format!("value-{}-", record.offset).as_bytes()));
                if record.offset as u64 >= offset {
                    ranged.push(record.offset as u64);
                }
            }
            position += total;
            offset = header.last_offset() as u64 + 1;
        }
    }
    assert_eq!(copied, ranged, "read_copy and read disagree");
    copied
}

/// Ten batches of four records in closed segments; damages batch `victim` of the first
/// segment with `damage` (given the batch's bytes at its position), and returns the offsets
/// the log should still serve (all but the victim's) and the victim's offsets.
fn damaged_closed_segment(
    disk: &MemDisk,
    victim: usize,
    damage: impl FnOnce(&mut [u8]),
) -> (Vec<u64>, std::ops::RangeInclusive<u64>) {
    let config = LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 128,
        ..small_config()
    };
    let mut log = open(disk, config.clone());
    for _ in 0..10 {
        append(&mut log, 4, 100, 1000);
    }
    log.roll().unwrap();
    append(&mut log, 1, 10, 1000);
    let end = log.next_offset();
    log.close(0).unwrap();
    let path = segment_path(&dir(), 0, LOG_SUFFIX);
    let mut bytes = disk.file_bytes(&path).unwrap();
    let (position, first, last) = batch_positions(&bytes)[victim];
    damage(&mut bytes[position..]);
    disk.set_file_bytes(&path, bytes);
    let kept = (0..end).filter(|o| !(first..=last).contains(o)).collect();
    (kept, first..=last)
}

fn expect_damage_costs_only_its_batch(damage: impl FnOnce(&mut [u8])) {
    let disk = MemDisk::new();
    let (kept, lost) = damaged_closed_segment(&disk, 3, damage);
    let config = LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 128,
        ..small_config()
    };
    for round in 0..2 {
        let mut log = open(&disk, config.clone());
        // A read that lands on the damage goes on after it.
        let slice = log.read(*lost.start(), 1000, u64::MAX).unwrap().unwrap();
        assert_eq!(slice.first_offset, lost.end() + 1, "round {round}");
        assert_eq!(readable_offsets(&mut log), kept, "round {round}");
        let damage = log.damage();
        assert!(!damage.is_empty(), "round {round}: the damage is known");
        assert!(damage.iter().all(|(_, d)| d
            .resume
            .is_some_and(|b| b.header.base_offset as u64 == lost.end() + 1)));
        assert!(
            damage.iter().all(|(_, d)| d.first_offset == *lost.start()),
            "round {round}: the damage names the first offset lost: {damage:?}"
        );
        drop(log);
    }
    let report = super::dump::check_dir(&disk, &dir()).unwrap();
    assert!(
        report.problems.iter().any(|p| p.reason.contains(&format!(
            "offsets {}..{} lost",
            lost.start(),
            lost.end() + 1
        ))),
        "{:?}",
        report.problems
    );
    assert_eq!(
        report.records,
        kept.len() as u64,
        "keel check counts what verifies"
    );
}

#[test]
fn a_flipped_bit_in_a_batch_costs_that_batch_not_the_segment() {
    expect_damage_costs_only_its_batch(|batch| batch[200] ^= 0x10);
}

#[test]
fn a_damaged_base_offset_costs_that_batch_not_the_segment() {
    expect_damage_costs_only_its_batch(|batch| batch[7] ^= 0x01);
}

#[test]
fn a_damaged_length_field_costs_that_batch_not_the_segment() {
    expect_damage_costs_only_its_batch(|batch| {
        batch[8..12].copy_from_slice(&0x7fff_ff00u32.to_be_bytes())
    });
}

#[test]
fn damage_below_the_recovery_point_does_not_cut_the_flushed_batches_after_it() {
    let disk = MemDisk::new();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let (end, first, last) = flushed_then_damaged(&disk, &config, 10, 6);
    let mut log = open(&disk, config);
    assert_eq!(
        log.next_offset(),
        end,
        "nothing flushed after the damage was cut"
    );
    assert_eq!(log.recovery_report().bytes_truncated, 0);
    let kept: Vec<u64> = (0..end).filter(|o| !(first..=last).contains(o)).collect();
    assert_eq!(readable_offsets(&mut log), kept);
    // The log takes appends after the damage as before.
    let info = append(&mut log, 2, 10, 1000);
    assert_eq!(info.base_offset, end);
}

#[test]
fn a_torn_unflushed_tail_is_still_cut() {
    let disk = MemDisk::new();
    let mut log = open(&disk, small_config());
    append(&mut log, 4, 100, 1000);
    log.flush(0).unwrap();
    append(&mut log, 4, 100, 1000);
    append(&mut log, 4, 100, 1000);
    drop(log);
    let path = segment_path(&dir(), 0, LOG_SUFFIX);
    let mut bytes = disk.file_bytes(&path).unwrap();
    let (position, first, _) = batch_positions(&bytes)[1];
    bytes[position + 100] ^= 0x04;
    disk.set_file_bytes(&path, bytes);
    let log = open(&disk, small_config());
    assert_eq!(
        log.next_offset(),
        first,
        "unflushed: cut at the damage, as a torn tail"
    );
    assert!(log.damage().is_empty());
}

/// A length field damaged by a little sends a header walk into the middle of the next batch (or
/// short of it): the walk must not take the damaged batch's word for where the next begins.
#[test]
fn a_damaged_length_that_points_into_the_next_batch_costs_only_its_batch() {
    let nudge = |delta: i64| {
        move |batch: &mut [u8]| {
            let length = i32::from_be_bytes(batch[8..12].try_into().unwrap());
            let nudged = (i64::from(length) + delta) as i32;
            batch[8..12].copy_from_slice(&nudged.to_be_bytes());
        }
    };
    expect_damage_costs_only_its_batch(nudge(64));
    expect_damage_costs_only_its_batch(nudge(-20));
}

/// Damage to the last flushed batch of the log: its offsets were durable (perhaps
/// acknowledged), so they are never given to other records; the log goes on after a hole, and
/// reads of the lost offsets answer from the next batch.
#[test]
fn damage_to_the_last_flushed_batch_never_lets_its_offsets_be_reused() {
    let disk = MemDisk::new();
    let (end, first, _) = flushed_then_damaged(&disk, &small_config(), 3, 2);
    let mut log = open(&disk, small_config());
    assert_eq!(log.next_offset(), end, "the lost offsets stay taken");
    assert!(log.read(first, 1000, u64::MAX).unwrap().is_none());
    let info = append(&mut log, 2, 10, 1000);
    assert_eq!(info.base_offset, end);
    let slice = log.read(first, 1000, u64::MAX).unwrap().unwrap();
    assert_eq!(
        slice.first_offset, end,
        "a read in the hole answers from after it"
    );
    log.flush(0).unwrap();
    drop(log);
    let mut log = open(&disk, small_config());
    assert_eq!(log.next_offset(), end + 2);
    let kept: Vec<u64> = (0..end + 2).filter(|&o| o < first || o >= end).collect();
    assert_eq!(readable_offsets(&mut log), kept);
}

/// After damage took the last flushed batch, new records follow a hole; a crash before they are
/// flushed must not cut them at the hole (they survived in the page cache).
#[test]
fn records_after_a_hole_left_by_damage_survive_a_crash() {
    let disk = MemDisk::new();
    let (end, first, _) = flushed_then_damaged(&disk, &small_config(), 3, 2);
    let mut log = open(&disk, small_config());
    assert_eq!(log.next_offset(), end);
    append(&mut log, 2, 10, 1000);
    append(&mut log, 3, 10, 1000);
    // A crash: nothing flushed since the hole.
    drop(log);
    let mut log = open(&disk, small_config());
    assert_eq!(
        log.next_offset(),
        end + 5,
        "the records after the hole were kept"
    );
    let kept: Vec<u64> = (0..end + 5).filter(|&o| o < first || o >= end).collect();
    assert_eq!(readable_offsets(&mut log), kept);
}

/// Writes `count` one-record batches of equal size (offsets 0..count) and flushes them, as a
/// process that then died; returns the batches' size.
fn flushed_equal_batches(disk: &MemDisk, config: LogConfig, count: usize) -> usize {
    let mut log = open(disk, config);
    let sizes: Vec<u64> = (0..count)
        .map(|_| append_sized(&mut log, 1, 64, 1_000).1)
        .collect();
    assert!(sizes.iter().all(|&s| s == sizes[0]), "equal batches");
    log.flush(0).unwrap();
    sizes[0] as usize
}

/// A block written to the wrong place by the device, holding batches of the next segment: a
/// segment's search past damage takes no batch at or past the next segment's base offset, so
/// the damage ends the segment and reads go on in the next one.
#[test]
fn damage_is_not_passed_to_copies_of_the_next_segments_batches() {
    let disk = MemDisk::new();
    let size = flushed_equal_batches(&disk, LogConfig::default(), 4);
    let mut log = open(&disk, LogConfig::default());
    log.roll().unwrap();
    for _ in 0..2 {
        append_sized(&mut log, 1, 64, 1_000);
    }
    log.flush(0).unwrap();
    drop(log);
    let first = segment_path(&dir(), 0, LOG_SUFFIX);
    let second = disk
        .file_bytes(&segment_path(&dir(), 4, LOG_SUFFIX))
        .unwrap();
    let mut bytes = disk.file_bytes(&first).unwrap();
    bytes[2 * size..4 * size].copy_from_slice(&second[..2 * size]);
    disk.set_file_bytes(&first, bytes);
    let mut log = open(&disk, LogConfig::default());
    let offsets: Vec<u64> = read_all(&mut log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![0, 1, 4, 5]);
    let damage = log.damage();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert_eq!((damage[0].0, damage[0].1.first_offset), (0, 2));
    assert!(
        damage[0].1.resume.is_none(),
        "the copies in segment 0 were taken: {damage:?}"
    );
}

/// The same in a compacted segment (where a first batch above the segment's base offset looks
/// like a hole), with the copies at the segment's start: reads from offset 0 must not serve
/// them at their offsets, which would skip the segments between, nor may recovery or a scan
/// take them. Found by the simulator (compaction seed 231).
#[test]
fn a_compacted_segment_starting_with_copies_of_a_later_segments_batches_serves_none() {
    let disk = MemDisk::new();
    let size = flushed_equal_batches(&disk, LogConfig::default(), 4);
    let mut log = open(&disk, LogConfig::default());
    for _ in 0..2 {
        log.roll().unwrap();
        for _ in 0..2 {
            append_sized(&mut log, 1, 64, 1_000);
        }
    }
    log.flush(0).unwrap();
    drop(log);
    disk.set_file_bytes(&dir().join(compaction::COMPACTED_MARKER_FILE), Vec::new());
    let first = segment_path(&dir(), 0, LOG_SUFFIX);
    let last = disk
        .file_bytes(&segment_path(&dir(), 6, LOG_SUFFIX))
        .unwrap();
    let mut bytes = disk.file_bytes(&first).unwrap();
    bytes[..2 * size].copy_from_slice(&last[..2 * size]);
    disk.set_file_bytes(&first, bytes);
    let mut log = open(&disk, LogConfig::default());
    let offsets: Vec<u64> = read_all(&mut log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![2, 3, 4, 5, 6, 7]);
}

/// A block written to the wrong place by the device: the bytes of batches 2 and 3 hold copies
/// of batches 6 and 7, which verify and continue each other. Reads must go on at batch 4 (the
/// lowest offsets after the damage), not at the copies, which would make 4 and 5 unreachable.
#[test]
fn misplaced_copies_of_later_batches_do_not_hide_the_batches_after_the_damage() {
    let disk = MemDisk::new();
    let size = flushed_equal_batches(&disk, LogConfig::default(), 8);
    let path = segment_path(&dir(), 0, LOG_SUFFIX);
    let mut bytes = disk.file_bytes(&path).unwrap();
    let copies = bytes[6 * size..8 * size].to_vec();
    bytes[2 * size..4 * size].copy_from_slice(&copies);
    disk.set_file_bytes(&path, bytes);
    let mut log = open(&disk, LogConfig::default());
    let offsets: Vec<u64> = read_all(&mut log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![0, 1, 4, 5, 6, 7]);
}

/// The CRC of a batch does not cover its base offset: in a compacted segment (where offsets may
/// skip) a batch whose base offset had a bit flipped looks like a hole. The batch after it,
/// whose offsets fall back into the jump, gives it away: neither recovery nor reads may serve
/// the batch at its wrong offsets, and the batches after it stay readable.
#[test]
fn a_batch_whose_base_offset_jumps_into_what_follows_is_not_served() {
    let disk = MemDisk::new();
    let size = flushed_equal_batches(&disk, LogConfig::default(), 4);
    disk.set_file_bytes(&dir().join(compaction::COMPACTED_MARKER_FILE), Vec::new());
    let path = segment_path(&dir(), 0, LOG_SUFFIX);
    let mut bytes = disk.file_bytes(&path).unwrap();
    // Batch 1's base offset 1 becomes 3 (bit 1 of its last byte): a jump over 2, which batch 2
    // then holds.
    bytes[size + 7] ^= 2;
    disk.set_file_bytes(&path, bytes);
    let mut log = open(&disk, LogConfig::default());
    assert_eq!(log.next_offset(), 4, "recovery keeps the log end");
    let served = log.read_copy(0, 1 << 20, u64::MAX).unwrap();
    let mut offsets = Vec::new();
    let mut position = 0;
    while let Ok(header) = batch::BatchHeader::parse(&served[position..]) {
        offsets.push(header.base_offset);
        position += header.total_bytes().unwrap();
    }
    assert_eq!(offsets, vec![0], "the read stops before the damaged batch");
    let after = log.read_copy(1, 1 << 20, u64::MAX).unwrap();
    let header = batch::BatchHeader::parse(&after).unwrap();
    assert_eq!(header.base_offset, 2, "reads go on after it");
}
