//! Golden bytes: a RecordBatch written by hand from Kafka's protocol documentation, checked
//! against keel's builder and validator and against the kafka-protocol crate's decoder, so that
//! the bytes keel stores are provably Kafka's.

use bytes::Bytes;
use kafka_protocol::records::{RecordBatchDecoder, TimestampType};
use keel::log::batch::{self, BatchBuilder, NewRecord};

/// Two records, producer id 7 epoch 1 sequence 5, base offset 100, leader epoch 3, no
/// compression, CreateTime. Fields in the order of the spec; the CRC is filled in below.
fn hand_written() -> Vec<u8> {
    let mut records = Vec::new();
    // Record 0: attributes 0, timestampDelta 0, offsetDelta 0, key "k" (len 1 -> zigzag 2),
    // value "v1" (len 2 -> 4), one header "h" -> "x".
    let record0: &[u8] = &[
        0x00, 0x00, 0x00, 0x02, b'k', 0x04, b'v', b'1', 0x02, 0x02, b'h', 0x02, b'x',
    ];
    records.push(record0.len() as u8 * 2);
    records.extend_from_slice(record0);
    // Record 1: timestampDelta 5 (zigzag 10), offsetDelta 1 (2), null key (-1 -> 1), value "v2",
    // no headers.
    let record1: &[u8] = &[0x00, 0x0a, 0x02, 0x01, 0x04, b'v', b'2', 0x00];
    records.push(record1.len() as u8 * 2);
    records.extend_from_slice(record1);

    let mut b = Vec::new();
    b.extend_from_slice(&100i64.to_be_bytes()); // baseOffset
    b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes()); // batchLength
    b.extend_from_slice(&3i32.to_be_bytes()); // partitionLeaderEpoch
    b.push(2); // magic
    b.extend_from_slice(&[0, 0, 0, 0]); // crc, below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&1i32.to_be_bytes()); // lastOffsetDelta
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // baseTimestamp
    b.extend_from_slice(&1_700_000_000_005i64.to_be_bytes()); // maxTimestamp
    b.extend_from_slice(&7i64.to_be_bytes()); // producerId
    b.extend_from_slice(&1i16.to_be_bytes()); // producerEpoch
    b.extend_from_slice(&5i32.to_be_bytes()); // baseSequence
    b.extend_from_slice(&2i32.to_be_bytes()); // records count
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn same_records() -> Vec<NewRecord> {
    vec![
        NewRecord {
            timestamp: 1_700_000_000_000,
            key: Some(b"k".to_vec()),
            value: Some(b"v1".to_vec()),
            headers: vec![(b"h".to_vec(), Some(b"x".to_vec()))],
        },
        NewRecord {
            timestamp: 1_700_000_000_005,
            key: None,
            value: Some(b"v2".to_vec()),
            headers: vec![],
        },
    ]
}

#[test]
fn keel_builds_exactly_the_hand_written_bytes() {
    let builder = BatchBuilder {
        base_offset: 100,
        producer_id: 7,
        producer_epoch: 1,
        base_sequence: 5,
        partition_leader_epoch: 3,
        ..BatchBuilder::default()
    };
    assert_eq!(builder.build(&same_records()).unwrap(), hand_written());
}

#[test]
fn keel_validates_and_decodes_the_hand_written_batch() {
    let bytes = hand_written();
    let info = batch::validate(&bytes, true).unwrap();
    assert_eq!(info.header.base_offset, 100);
    assert_eq!(info.header.records_count, 2);
    assert_eq!(info.max_record_timestamp, 1_700_000_000_005);
    let records = batch::decode_records(&bytes).unwrap();
    assert_eq!(records[1].offset, 101);
    assert_eq!(records[1].key, None);
    assert_eq!(
        records[0].headers,
        vec![(b"h".to_vec(), Some(b"x".to_vec()))]
    );
}

#[test]
fn kafka_protocol_decodes_the_hand_written_batch_as_keel_does() {
    let mut buf = Bytes::from(hand_written());
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    assert_eq!(set.version, 2);
    let offsets: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [100, 101]);
    let first = &set.records[0];
    assert_eq!(first.producer_id, 7);
    assert_eq!(first.producer_epoch, 1);
    assert_eq!(first.sequence, 5);
    assert_eq!(first.partition_leader_epoch, 3);
    assert_eq!(first.timestamp_type, TimestampType::Creation);
    assert_eq!(first.key.as_deref(), Some(&b"k"[..]));
    assert_eq!(first.value.as_deref(), Some(&b"v1"[..]));
    let (name, value) = first.headers.iter().next().expect("one header");
    assert_eq!(&**name, "h");
    assert_eq!(value.as_deref(), Some(&b"x"[..]));
    let second = &set.records[1];
    assert_eq!(second.timestamp, 1_700_000_000_005);
    assert_eq!(second.key, None);
}

#[test]
fn kafka_protocol_decodes_what_keel_stores_after_offset_assignment() {
    let mut bytes = hand_written();
    batch::set_base_offset(&mut bytes, 9_000);
    batch::set_max_timestamp(&mut bytes, 1_700_000_000_009, true);
    let mut buf = Bytes::from(bytes);
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    assert_eq!(set.records[0].offset, 9_000);
    assert_eq!(set.records[0].timestamp_type, TimestampType::LogAppend);
}
