//! The partition's own promises: what an acknowledgement under each flush policy means, what
//! consumers are shown, and that the high watermark they were shown is what the checkpoint keeps.

use std::path::Path;

use super::{Acks, AppendError, Partition};
use crate::compression::Codec;
use crate::io::mem::MemDisk;
use crate::io::os::block_on;
use crate::io::Clock;
use crate::log::batch::{BatchBuilder, BatchHeader, NewRecord};
use crate::log::{Compression, FlushPolicy, Log, LogConfig, LogError};

use crate::io::mem::FixedClock as TestClock;

const DIR: &str = "/data/t-0";

fn open(disk: &MemDisk, config: LogConfig) -> Partition<MemDisk> {
    let log = Log::open(disk.clone(), Path::new(DIR), config, TestClock.now_ms()).unwrap();
    Partition::open("t".into(), 0, 1, disk, log).unwrap()
}

fn batch(builder: BatchBuilder, values: &[&[u8]]) -> (Vec<u8>, BatchHeader) {
    let records: Vec<NewRecord> = values
        .iter()
        .map(|value| NewRecord {
            timestamp: TestClock.now_ms(),
            key: Some(b"k".to_vec()),
            value: Some(value.to_vec()),
            headers: vec![],
        })
        .collect();
    let bytes = builder.build(&records).unwrap();
    let header = BatchHeader::parse(&bytes).unwrap();
    (bytes, header)
}

fn plain(values: &[&[u8]]) -> (Vec<u8>, BatchHeader) {
    batch(BatchBuilder::default(), values)
}

fn append(partition: &Partition<MemDisk>, acks: Acks, values: &[&[u8]]) -> super::Appended {
    let (bytes, header) = plain(values);
    block_on(partition.append(&bytes, &header, acks, Compression::Producer, &TestClock)).unwrap()
}

fn config(flush: FlushPolicy) -> LogConfig {
    LogConfig {
        flush,
        ..LogConfig::default()
    }
}

#[test]
fn under_flush_always_an_acknowledged_batch_is_durable_and_only_durable_batches_are_shown() {
    let disk = MemDisk::new();
    let partition = open(&disk, config(FlushPolicy::Always));
    let appended = append(&partition, Acks::Leader, &[b"a", b"b"]);
    assert_eq!((appended.base_offset, appended.last_offset), (0, 1));
    assert!(appended.synced.is_some(), "the ack waited for a sync");
    let bounds = partition.bounds().unwrap();
    assert_eq!(bounds.recovery_point, 2);
    assert_eq!(bounds.high_watermark, 2);
    assert_eq!(bounds.log_end_offset, 2);
}

#[test]
fn under_flush_none_consumers_see_the_log_end_before_it_is_durable() {
    let disk = MemDisk::new();
    let partition = open(&disk, config(FlushPolicy::None));
    let appended = append(&partition, Acks::All, &[b"a"]);
    assert!(appended.synced.is_none());
    let bounds = partition.bounds().unwrap();
    assert_eq!((bounds.recovery_point, bounds.high_watermark), (0, 1));
    assert!(block_on(partition.flush_if_due(&TestClock))
        .unwrap()
        .is_none());
    assert!(block_on(partition.flush(None, &TestClock))
        .unwrap()
        .is_some());
    assert_eq!(partition.bounds().unwrap().recovery_point, 1);
}

#[test]
fn the_checkpoint_keeps_the_high_watermark_consumers_were_shown() {
    let disk = MemDisk::new();
    let partition = open(&disk, config(FlushPolicy::None));
    append(&partition, Acks::Leader, &[b"a", b"b", b"c"]);
    block_on(partition.flush(None, &TestClock)).unwrap();
    drop(partition.take_log());
    // Read the checkpoint through a bare log: the partition would settle it again on open.
    let log = Log::open(
        disk.clone(),
        Path::new(DIR),
        config(FlushPolicy::None),
        TestClock.now_ms(),
    )
    .unwrap();
    assert_eq!(log.high_watermark(), 3);
}

#[test]
fn switching_to_flush_always_shows_consumers_only_what_is_durable() {
    let disk = MemDisk::new();
    let partition = open(&disk, config(FlushPolicy::None));
    append(&partition, Acks::Leader, &[b"a"]);
    assert_eq!(partition.bounds().unwrap().high_watermark, 1);
    partition.set_config(config(FlushPolicy::Always)).unwrap();
    assert_eq!(partition.bounds().unwrap().high_watermark, 0);
    block_on(partition.flush_if_due(&TestClock))
        .unwrap()
        .unwrap();
    assert_eq!(partition.bounds().unwrap().high_watermark, 1);
}

#[test]
fn acks_all_above_the_in_sync_replicas_writes_nothing() {
    let disk = MemDisk::new();
    let partition = open(
        &disk,
        LogConfig {
            min_insync_replicas: 2,
            ..LogConfig::default()
        },
    );
    let (bytes, header) = plain(&[b"a"]);
    let refused = block_on(partition.append(
        &bytes,
        &header,
        Acks::All,
        Compression::Producer,
        &TestClock,
    ));
    match refused {
        Err(AppendError::NotEnoughReplicas(message)) => {
            assert!(message.contains("ISR Set(1)"), "{message}");
            assert!(message.contains("t-0"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(partition.bounds().unwrap().log_end_offset, 0);
    append(&partition, Acks::Leader, &[b"a"]);
    assert_eq!(partition.bounds().unwrap().log_end_offset, 1);
}

#[test]
fn a_retried_idempotent_batch_is_acknowledged_at_its_first_offsets_and_not_written_again() {
    let disk = MemDisk::new();
    let partition = open(&disk, config(FlushPolicy::Always));
    append(&partition, Acks::Leader, &[b"other"]);
    let idempotent = BatchBuilder {
        producer_id: 7,
        producer_epoch: 0,
        base_sequence: 0,
        ..BatchBuilder::default()
    };
    let (bytes, header) = batch(idempotent.clone(), &[b"x", b"y"]);
    let send = || {
        block_on(partition.append(
            &bytes,
            &header,
            Acks::All,
            Compression::Producer,
            &TestClock,
        ))
    };
    let first = send().unwrap();
    let retry = send().unwrap();
    assert!(!first.duplicate && retry.duplicate);
    assert_eq!((retry.base_offset, retry.last_offset), (1, 2));
    assert_eq!(partition.bounds().unwrap().log_end_offset, 3);
    let gap = BatchBuilder {
        base_sequence: 5,
        ..idempotent
    };
    let (bytes, header) = batch(gap, &[b"z"]);
    let refused = block_on(partition.append(
        &bytes,
        &header,
        Acks::All,
        Compression::Producer,
        &TestClock,
    ));
    assert!(
        matches!(refused, Err(AppendError::Producer(code, _)) if code == crate::error_codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
    );
}

#[test]
fn a_topic_codec_recompresses_what_producers_send_in_another() {
    let disk = MemDisk::new();
    let partition = open(&disk, LogConfig::default());
    let (bytes, header) = plain(&[b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]);
    block_on(partition.append(
        &bytes,
        &header,
        Acks::Leader,
        Compression::Codec(Codec::Lz4),
        &TestClock,
    ))
    .unwrap();
    let read = partition.read(0, 1 << 20).unwrap();
    let slice = read.records.unwrap().unwrap();
    let mut stored = vec![0; slice.bytes as usize];
    crate::io::File::read_exact_at(&*slice.file, &mut stored, slice.position).unwrap();
    assert_eq!(
        BatchHeader::parse(&stored).unwrap().codec().unwrap(),
        Codec::Lz4
    );
}

#[test]
fn delete_records_stops_at_the_high_watermark() {
    let disk = MemDisk::new();
    let partition = open(&disk, config(FlushPolicy::None));
    append(&partition, Acks::Leader, &[b"a", b"b"]);
    let beyond = partition.delete_records(Some(3)).unwrap();
    assert!(matches!(
        beyond,
        Err(LogError::OffsetOutOfRange { offset: 3, .. })
    ));
    assert_eq!(partition.delete_records(None).unwrap().unwrap(), 2);
    assert_eq!(partition.bounds().unwrap().log_start_offset, 2);
    drop(partition.take_log());
    assert!(partition.delete_records(None).is_none(), "closed");
}
