//! kafka-python 3 against keel, through tests/py/kafka_python_*.py: produce and consume (no
//! idempotence, no groups), ListOffsets by timestamp, and topic administration.

use keel_tests::{now_ms, python, unique_name, Broker};

fn roundtrip(acks: &str, compression: &str) {
    let broker = Broker::start(&[]);
    let topic = unique_name(&format!("kafka-python-{compression}-acks{acks}"));
    python(
        "kafka_python_roundtrip.py",
        &[
            "--bootstrap",
            &broker.address(),
            "--topic",
            &topic,
            "--partitions",
            "3",
            "--count",
            "2000",
            "--acks",
            acks,
            "--compression",
            compression,
            "--base-ts",
            &now_ms().to_string(),
        ],
    );
}

/// Produced with acks=all and no compression, every message comes back from the beginning of
/// each partition, dense, in order, with equal keys, values, headers and timestamps.
#[test]
fn roundtrip_acks_all() {
    roundtrip("all", "none");
}

/// The same with acks=1 and gzip batches (the one codec kafka-python needs no extra package for).
#[test]
fn roundtrip_acks1_gzip() {
    roundtrip("1", "gzip");
}

/// The same with acks=0: keel must send no response, and still append everything.
#[test]
fn roundtrip_acks0() {
    roundtrip("0", "none");
}

fn offsets_for_times(targets: &str) {
    let broker = Broker::start(&[]);
    python(
        "kafka_python_offsets_for_times.py",
        &[
            "--bootstrap",
            &broker.address(),
            "--topic",
            &unique_name("kafka-python-times"),
            "--base-ts",
            &now_ms().to_string(),
            "--targets",
            targets,
        ],
    );
}

/// offsets_for_times answers the first offset at or after each timestamp up to the last one
/// (inside batches too, with that record's timestamp); beginning/end offsets are 0 and the count.
#[test]
fn offsets_for_times_finds_the_first_offset_at_or_after() {
    offsets_for_times("within");
}

/// offsets_for_times past the last timestamp answers None: Kafka replies offset -1, timestamp -1
/// (UNKNOWN_OFFSET) when no record is that recent.
#[test]
fn offsets_for_times_past_the_last_timestamp_is_none() {
    offsets_for_times("past-end");
}

/// create_topics / delete_topics: duplicates refused, Metadata follows each change (and does not
/// re-create a deleted topic), a re-created topic starts empty, and a deleted topic's partition
/// directories are gone from the data directory.
#[test]
fn admin_creates_and_deletes_topics() {
    let broker = Broker::start(&[]);
    let topic = unique_name("kafka-python-admin");
    let deleted = unique_name("kafka-python-deleted");
    python(
        "kafka_python_admin.py",
        &[
            "--bootstrap",
            &broker.address(),
            "--topic",
            &topic,
            "--deleted-topic",
            &deleted,
        ],
    );
    for partition in 0..3 {
        let dir = broker.partition_dir(&deleted, partition);
        assert!(
            !dir.exists(),
            "{} still exists after DeleteTopics",
            dir.display()
        );
    }
    assert!(
        broker.partition_dir(&topic, 0).is_dir(),
        "the re-created topic has no partition directory"
    );
    for partition in 1..3 {
        let dir = broker.partition_dir(&topic, partition);
        assert!(
            !dir.exists(),
            "{} (of the deleted 3-partition incarnation) survived deletion and re-creation with 1 partition",
            dir.display()
        );
    }
}
