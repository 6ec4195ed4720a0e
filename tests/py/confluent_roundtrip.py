"""confluent-kafka (librdkafka) against keel: create a topic, produce, consume it all back and check it.

Modes: `roundtrip` (create + produce + verify), `produce` (create + produce), `append` (produce
messages --from..--count into the existing topic) and `verify` (messages 0..--count), so a test
can crash or stop the broker between producing and verifying. Message i goes to partition
i % partitions, at offset i // partitions, with the key, value, headers and CreateTime timestamp
of common.message(i).

Checks: the topic is created with the asked partition count; every delivery report succeeds and,
with acks 1/all, reports the offsets a dense log would assign (0, 1, ... per partition); the
consumer reads from the beginning exactly the produced messages, in order, with offsets 0..n-1 per
partition, equal keys, values, headers and timestamps (type CreateTime); the watermarks are
(0, n). Exits 1 on any mismatch and prints a one-line summary otherwise.
"""

import argparse
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from common import Deadline, Mismatches, expected_by_partition, fail, message, short

def create_topic(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap, "broker.address.family": "v4"})
    futures = admin.create_topics(
        [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)],
        operation_timeout=30,
        request_timeout=30,
    )
    try:
        futures[args.topic].result(timeout=30)
    except Exception as err:  # noqa: BLE001 - any failure is the test's failure
        fail(f"CreateTopics {args.topic} ({args.partitions} partitions): {err!r}")
    deadline = Deadline(20)
    while True:
        metadata = admin.list_topics(topic=args.topic, timeout=10)
        topic = metadata.topics.get(args.topic)
        if topic is not None and topic.error is None and len(topic.partitions) == args.partitions:
            return
        if deadline.expired():
            fail(
                f"Metadata after CreateTopics: topic {args.topic} "
                f"error={getattr(topic, 'error', 'missing')} "
                f"partitions={sorted(topic.partitions) if topic else None}, "
                f"expected {args.partitions}"
            )
        time.sleep(0.2)


def produce(args):
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "broker.address.family": "v4",
            "acks": args.acks,
            "compression.type": args.compression,
            "enable.idempotence": False,
            "linger.ms": 10,
            "message.timeout.ms": 30000,
        }
    )
    delivered = {}
    errors = []

    def on_delivery(i):
        def report(err, msg):
            if err is not None:
                errors.append(f"message {i}: {err}")
            else:
                delivered[i] = (msg.partition(), msg.offset())

        return report

    started = time.monotonic()
    for i in range(args.start, args.count):
        key, value, headers, timestamp = message(i, args.base_ts)
        while True:
            try:
                producer.produce(
                    args.topic,
                    key=key,
                    value=value,
                    headers=headers,
                    timestamp=timestamp,
                    partition=i % args.partitions,
                    on_delivery=on_delivery(i),
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    elapsed = time.monotonic() - started
    if remaining:
        fail(f"flush: {remaining} messages still undelivered after 60 s ({len(errors)} errors)")
    if errors:
        fail(f"{len(errors)} delivery errors; first: {errors[:5]}")
    if len(delivered) != args.count - args.start:
        fail(f"{len(delivered)} delivery reports for {args.count - args.start} messages")

    offsets_note = ""
    mismatches = Mismatches("delivery reports")
    for i, (partition, offset) in sorted(delivered.items()):
        if partition != i % args.partitions:
            mismatches.add(f"message {i}: delivered to partition {partition}, asked {i % args.partitions}")
        elif args.acks != "0" and offset != i // args.partitions:
            mismatches.add(
                f"message {i}: partition {partition} offset {offset}, expected {i // args.partitions}"
            )
    mismatches.check()
    if args.acks == "0":
        # librdkafka cannot know the offsets without a response; record what it reports.
        seen = sorted({repr(offset) for _, offset in delivered.values()})
        offsets_note = f" (acks=0: delivery reports carry offset {', '.join(seen[:3])})"
    return elapsed, offsets_note


def verify(args):
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "broker.address.family": "v4",
            # Required by the API; nothing is committed (keel has no consumer groups yet).
            "group.id": "keel-tests-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 100,
        }
    )
    expected = expected_by_partition(args.count, args.partitions)
    consumer.assign(
        [TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in range(args.partitions)]
    )
    received = {p: [] for p in range(args.partitions)}
    eof_at = {}
    total = 0
    started = time.monotonic()
    deadline = Deadline(60)

    def done():
        return total >= args.count and all(
            eof_at.get(p) == len(expected[p]) for p in range(args.partitions)
        )

    while not done():
        if deadline.expired():
            counts = {p: len(msgs) for p, msgs in received.items()}
            fail(
                f"consumed {total} of {args.count} within 60 s; per partition {counts}, "
                f"expected {({p: len(x) for p, x in expected.items()})}; EOF at {eof_at}"
            )
        for msg in consumer.consume(num_messages=1000, timeout=0.5):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    eof_at[msg.partition()] = msg.offset()
                    continue
                fail(f"consume error on partition {msg.partition()}: {err}")
            received[msg.partition()].append(msg)
            total += 1
    elapsed = time.monotonic() - started

    mismatches = Mismatches("consumed messages")
    for p in range(args.partitions):
        got, want = received[p], expected[p]
        if len(got) != len(want):
            mismatches.add(f"partition {p}: {len(got)} messages, expected {len(want)}")
        for position, (msg, i) in enumerate(zip(got, want)):
            key, value, headers, timestamp = message(i, args.base_ts)
            where = f"partition {p} offset {msg.offset()} (message {i})"
            if msg.offset() != position:
                mismatches.add(f"{where}: offset {msg.offset()}, expected {position}")
            if msg.key() != key:
                mismatches.add(f"{where}: key {short(msg.key())}, expected {short(key)}")
            if msg.value() != value:
                mismatches.add(f"{where}: value {short(msg.value())}, expected {short(value)}")
            got_headers = msg.headers() or []
            if got_headers != headers:
                mismatches.add(f"{where}: headers {got_headers!r:.200}, expected {headers!r:.200}")
            if msg.timestamp() != (TIMESTAMP_CREATE_TIME, timestamp):
                mismatches.add(
                    f"{where}: timestamp {msg.timestamp()}, expected CreateTime {timestamp}"
                )
    for p in range(args.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=10)
        if (low, high) != (0, len(expected[p])):
            mismatches.add(f"partition {p}: watermarks ({low}, {high}), expected (0, {len(expected[p])})")
    mismatches.check()
    consumer.close()
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--mode", choices=["roundtrip", "produce", "append", "verify"], default="roundtrip"
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--count", type=int, required=True, help="messages 0..count")
    parser.add_argument(
        "--from", dest="start", type=int, default=0, help="append: the first message to produce"
    )
    parser.add_argument("--acks", choices=["0", "1", "all"], default="all")
    parser.add_argument(
        "--compression", choices=["none", "gzip", "snappy", "lz4", "zstd"], default="none"
    )
    parser.add_argument("--base-ts", type=int, required=True)
    args = parser.parse_args()

    what = (
        f"confluent-kafka {args.mode} acks={args.acks} compression={args.compression}: "
        f"messages {args.start}..{args.count} over {args.partitions} partitions"
    )
    parts = []
    if args.mode in ("roundtrip", "produce"):
        create_topic(args)
    if args.mode in ("roundtrip", "produce", "append"):
        produced, note = produce(args)
        parts.append(f"produced in {produced:.2f}s{note}")
    if args.mode in ("roundtrip", "verify"):
        consumed = verify(args)
        parts.append(f"consumed and checked in {consumed:.2f}s")
    print(f"ok: {what}: {', '.join(parts)}")


if __name__ == "__main__":
    main()
