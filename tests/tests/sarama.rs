//! Go's sarama (Debian's 1.22, protocol version 2.0) against keel, through
//! tests/go/sarama_client: a SyncProducer with snappy batches of up to 100 messages, a partition
//! consumer, and a consumer group. sarama writes -1 as every batch's max timestamp, which keel
//! once refused as INVALID_RECORD on the very first send; Kafka takes the maximum from the
//! records, and so does keel now.

use keel_tests::{go, unique_name, Broker};

fn sarama(args: &[&str]) -> String {
    go("sarama_client", args)
}

/// 1000 messages sent by a SyncProducer are acknowledged at offsets 0..999, and a consumer
/// reading the partition from the oldest offset gets exactly those messages there, with nothing
/// after them (the high watermark is 1000).
#[test]
fn a_sync_producers_messages_are_read_back_at_their_offsets() {
    let broker = Broker::start(&[]);
    let address = broker.address();
    let topic = unique_name("sarama");
    let produced = sarama(&[
        "produce", "--broker", &address, "--topic", &topic, "--count", "1000",
    ]);
    assert!(
        produced.contains("produce: 1000 messages at offsets 0..999"),
        "{produced}"
    );
    let consumed = sarama(&[
        "consume", "--broker", &address, "--topic", &topic, "--count", "1000",
    ]);
    assert!(
        consumed.contains("consume: 1000 messages at offsets 0..999"),
        "{consumed}"
    );
}

/// A consumer group reads all 500 messages from the oldest offset and commits when it closes:
/// OffsetFetch then answers 500, and a second run of the group, after 500 more messages, starts
/// at the commit and reads exactly the new ones (a lost commit would start it at 0 again).
#[test]
fn a_consumer_group_reads_everything_and_resumes_from_its_commit() {
    let broker = Broker::start(&[]);
    let address = broker.address();
    let topic = unique_name("sarama-group");
    let group = unique_name("sarama-group");
    let common = ["--broker", address.as_str(), "--topic", topic.as_str()];
    let run = |args: &[&str]| sarama(&[args, &common[..]].concat());
    let produced = run(&["produce", "--count", "500"]);
    assert!(produced.contains("offsets 0..499"), "{produced}");
    let read = run(&["group", "--group", &group, "--first", "0", "--count", "500"]);
    assert!(
        read.contains("group: 500 messages at offsets 0..499"),
        "{read}"
    );
    let committed = run(&["committed", "--group", &group]);
    assert!(committed.contains("committed: 500"), "{committed}");

    let produced = run(&["produce", "--first", "500", "--count", "500"]);
    assert!(produced.contains("offsets 500..999"), "{produced}");
    let read = run(&[
        "group", "--group", &group, "--first", "500", "--count", "500",
    ]);
    assert!(
        read.contains("group: 500 messages at offsets 500..999"),
        "{read}"
    );
    let committed = run(&["committed", "--group", &group]);
    assert!(committed.contains("committed: 1000"), "{committed}");
}
