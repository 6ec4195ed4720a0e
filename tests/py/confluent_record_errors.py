"""confluent-kafka (librdkafka 2.16) and per-record errors (KIP-467) from keel.

Creates a one-partition topic with cleanup.policy=compact and sends --count messages in one
batch (linger.ms long enough that they all wait for the same request), of which those at
--keyless (indexes, comma-separated) have no key. A compacted topic cannot take a record without
a key, so the broker refuses the batch with INVALID_RECORD and names each keyless record by its
index in record_errors. librdkafka reads those: it fails the named messages with INVALID_RECORD
and every other message of the batch with _INVALID_DIFFERENT_RECORD ("an invalid record in the
same batch caused the failure of this message too"). Without record_errors, every message of
the batch fails alike with INVALID_RECORD. (librdkafka keeps each record's message from the
broker where only its C API reaches it; confluent-kafka's KafkaError carries the code's text.)

Then the keyed messages alone are sent again and must be delivered at offsets 0..k-1: nothing of
the refused batch was written. Prints a one-line summary; exits 1 on any mismatch.
"""

import argparse

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common import Mismatches, fail


def create_topic(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap, "broker.address.family": "v4"})
    futures = admin.create_topics(
        [NewTopic(args.topic, num_partitions=1, replication_factor=1,
                  config={"cleanup.policy": "compact"})],
        operation_timeout=30,
        request_timeout=30,
    )
    try:
        futures[args.topic].result(timeout=30)
    except Exception as err:  # noqa: BLE001 - any failure is the test's failure
        fail(f"CreateTopics {args.topic} (compacted): {err!r}")


def producer(args):
    return Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "broker.address.family": "v4",
            "acks": "all",
            "enable.idempotence": False,
            # Every message waits for the same request: one batch.
            "linger.ms": 500,
            "message.timeout.ms": 30000,
        }
    )


def send(p, args, messages):
    """Sends (index, key, value) triples; returns {index: (error or None, offset)}."""
    reports = {}

    def report(i):
        def on_delivery(err, msg):
            reports[i] = (err, msg.offset())

        return on_delivery

    for i, key, value in messages:
        p.produce(args.topic, key=key, value=value, partition=0, on_delivery=report(i))
    if p.flush(60):
        fail("flush: messages still undelivered after 60 s")
    if sorted(reports) != sorted(i for i, _, _ in messages):
        fail(f"delivery reports for {sorted(reports)}, sent {[i for i, _, _ in messages]}")
    return reports


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--keyless", default="0,7,8,19")
    args = parser.parse_args()
    keyless = {int(i) for i in args.keyless.split(",")}

    create_topic(args)
    p = producer(args)
    messages = [
        (i, None if i in keyless else f"key-{i}".encode(), f"value-{i}".encode())
        for i in range(args.count)
    ]
    reports = send(p, args, messages)
    mismatches = Mismatches("delivery reports of the mixed batch")
    for i in range(args.count):
        err = reports[i][0]
        if i in keyless:
            expected = KafkaError.INVALID_RECORD
        else:
            expected = KafkaError._INVALID_DIFFERENT_RECORD
        if err is None or err.code() != expected:
            got = "delivered" if err is None else f"{err.name()} ({err.str()})"
            mismatches.add(f"message {i} (key {messages[i][1]!r}): {got}, expected "
                           f"{KafkaError(expected).name()}")
    mismatches.check()

    keyed = [m for m in messages if m[1] is not None]
    again = send(p, args, keyed)
    mismatches = Mismatches("delivery reports of the keyed messages sent again")
    for n, (i, _, _) in enumerate(keyed):
        err, offset = again[i]
        if err is not None or offset != n:
            mismatches.add(f"message {i}: {err}, offset {offset}, expected offset {n}")
    mismatches.check()
    print(
        f"record errors: of {args.count} messages in one batch, the {len(keyless)} keyless "
        f"failed with INVALID_RECORD and the other {len(keyed)} with _INVALID_DIFFERENT_RECORD; "
        f"sent again alone, the keyed ones got offsets 0..{len(keyed) - 1}"
    )


if __name__ == "__main__":
    main()
