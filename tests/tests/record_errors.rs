//! Per-record errors (KIP-467): a batch mixing keyed and keyless records sent to a compacted
//! topic is refused with INVALID_RECORD, and the answer names each keyless record by its index
//! in the batch with Kafka's reason. Each client shows what it makes of that
//! (tests/py/*_record_errors.py): librdkafka fails the named messages with INVALID_RECORD and the
//! rest of the batch with _INVALID_DIFFERENT_RECORD; kafka-python fails the named ones with the
//! broker's reason. Before keel sent record_errors, every message of the batch failed alike.
//! Either way nothing of the batch is written: the keyed messages sent again get offsets from 0.

use keel_tests::{python, unique_name, Broker};

#[test]
fn confluent_kafka_fails_only_the_keyless_messages_as_invalid() {
    let broker = Broker::start(&[]);
    let topic = unique_name("record-errors-confluent");
    let summary = python(
        "confluent_record_errors.py",
        &["--bootstrap", &broker.address(), "--topic", &topic],
    );
    assert!(
        summary.contains("the 4 keyless failed with INVALID_RECORD"),
        "{summary}"
    );
}

#[test]
fn kafka_python_fails_the_keyless_messages_with_the_brokers_reason() {
    let broker = Broker::start(&[]);
    let topic = unique_name("record-errors-kafka-python");
    let summary = python(
        "kafka_python_record_errors.py",
        &["--bootstrap", &broker.address(), "--topic", &topic],
    );
    assert!(
        summary.contains("Compacted topic cannot accept message without key"),
        "{summary}"
    );
}
