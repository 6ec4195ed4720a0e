"""confluent-kafka (librdkafka) against a compacted keel topic.

Creates a one-partition topic with cleanup.policy=compact (small segments, a tiny dirty ratio and
delete.retention.ms as given), produces --updates updates spread over --keys keys, then a
tombstone for each of the first --tombstones keys, then filler updates of one more key so that
all of the above lands in closed segments the cleaner may clean. Each filler value carries a
digest, which no codec shrinks: the filler fills segments however the client batches it (with
repetitive values and full lz4 batches it once fitted in the active segment, and the updates
before it were never cleaned). A message without a key must be refused (INVALID_RECORD).

Then it reads the partition from the beginning, again and again, until compaction shows (or a
deadline passes):
- every record read is one that was produced, at the offset its delivery report gave (offsets are
  kept), in increasing offsets;
- the last record read for every key is the last one produced for it (the latest value is always
  there, before compaction and after);
- eventually: no key has a record older than its latest below the filler (older values are gone),
  and the tombstoned keys have no record at all (their tombstones went after
  delete.retention.ms).
Prints a one-line summary; exits 1 on any mismatch.
"""

import argparse
import hashlib
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from common import Deadline, Mismatches, fail


def create_topic(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap, "broker.address.family": "v4"})
    config = {
        "cleanup.policy": "compact",
        "segment.bytes": str(args.segment_bytes),
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": str(args.delete_retention_ms),
    }
    futures = admin.create_topics(
        [NewTopic(args.topic, num_partitions=1, replication_factor=1, config=config)],
        operation_timeout=30,
        request_timeout=30,
    )
    try:
        futures[args.topic].result(timeout=30)
    except Exception as err:  # noqa: BLE001 - any failure is the test's failure
        fail(f"CreateTopics {args.topic} with {config}: {err!r}")
    described = admin.describe_configs([ConfigResource("topic", args.topic)])
    for future in described.values():
        entries = future.result(timeout=30)
        for name, value in config.items():
            if entries[name].value != value:
                fail(f"DescribeConfigs {name}: {entries[name].value!r}, expected {value!r}")


def key_of(i, keys):
    return f"key-{i % keys}".encode()


def produce(args):
    """Returns {offset: (key, value)} of everything produced, and the offset of the filler."""
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "broker.address.family": "v4",
            "acks": "all",
            "compression.type": args.compression,
            "enable.idempotence": False,
            "linger.ms": 5,
            # Small batches, so that the small segments roll often and the cleaner has closed
            # segments to work on.
            "batch.num.messages": 20,
            "message.timeout.ms": 30000,
        }
    )
    produced = []
    for i in range(args.updates):
        produced.append((key_of(i, args.keys), f"value-{i}-".encode() + b"x" * 40))
    for k in range(args.tombstones):
        produced.append((key_of(k, args.keys), None))
    filler_from = len(produced)
    for i in range(args.filler):
        digest = hashlib.sha256(b"filler-%d" % i).digest()
        produced.append((b"filler", f"filler-{i}-".encode() + digest + b"y" * 8))

    delivered = {}
    errors = []

    def report(i):
        def on_delivery(err, msg):
            if err is not None:
                errors.append(f"message {i}: {err}")
            else:
                delivered[i] = msg.offset()

        return on_delivery

    for i, (key, value) in enumerate(produced):
        while True:
            try:
                producer.produce(args.topic, key=key, value=value, partition=0, on_delivery=report(i))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(60):
        fail("flush: messages still undelivered after 60 s")
    if errors:
        fail(f"{len(errors)} delivery errors; first: {errors[:5]}")

    keyless = []
    producer.produce(
        args.topic, value=b"no key", partition=0, on_delivery=lambda err, msg: keyless.append(err)
    )
    producer.flush(30)
    if len(keyless) != 1 or keyless[0] is None or keyless[0].code() != KafkaError.INVALID_RECORD:
        fail(f"a message without a key was not refused with INVALID_RECORD: {keyless}")

    by_offset = {delivered[i]: produced[i] for i in range(len(produced))}
    if sorted(by_offset) != list(range(len(produced))):
        fail("delivery reports do not name offsets 0..n-1")
    return by_offset, delivered[filler_from]


def read_all(args, high):
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "broker.address.family": "v4",
            "group.id": "keel-tests-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition(args.topic, 0, OFFSET_BEGINNING)])
    records = []
    deadline = Deadline(60)
    while True:
        msg = consumer.poll(0.5)
        if deadline.expired():
            fail(f"reading the topic: stuck after {len(records)} records")
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                if msg.offset() >= high:
                    break
                continue
            fail(f"consume: {msg.error()}")
        records.append((msg.offset(), msg.key(), msg.value()))
        if msg.offset() + 1 >= high:
            break
    consumer.close()
    return records


def check(args, by_offset, records, filler_at):
    """Checks what must always hold; returns whether compaction has finished its work."""
    mismatches = Mismatches("consumed records")
    previous = -1
    for offset, key, value in records:
        if offset <= previous:
            mismatches.add(f"offset {offset} after {previous}")
        previous = offset
        if by_offset.get(offset) != (key, value):
            mismatches.add(f"offset {offset}: read {key!r}={short(value)}, produced {by_offset.get(offset)!r}")
    latest_produced = {}
    for offset, (key, value) in sorted(by_offset.items()):
        latest_produced[key] = (offset, value)
    latest_read = {}
    for offset, key, value in records:
        latest_read[key] = (offset, value)
    for key, latest in latest_produced.items():
        tombstone_gone = latest[1] is None and key not in latest_read
        if latest_read.get(key) != latest and not tombstone_gone:
            mismatches.add(f"key {key!r}: latest read {latest_read.get(key)!r}, produced {latest!r}")
    mismatches.check()
    stale = [r for r in records if r[0] < filler_at and latest_produced[r[1]][0] != r[0]]
    tombstoned = {key_of(k, args.keys) for k in range(args.tombstones)}
    left = [r for r in records if r[1] in tombstoned]
    return not stale and not left, len(stale), len(left)


def short(value):
    return None if value is None else value[:20]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--tombstones", type=int, default=5)
    parser.add_argument("--filler", type=int, default=400)
    parser.add_argument("--segment-bytes", type=int, default=8192)
    parser.add_argument("--delete-retention-ms", type=int, default=1000)
    parser.add_argument("--compression", default="lz4")
    parser.add_argument("--wait-s", type=float, default=60)
    args = parser.parse_args()

    create_topic(args)
    by_offset, filler_at = produce(args)
    high = len(by_offset)
    first = read_all(args, high)
    check(args, by_offset, first, filler_at)
    deadline = Deadline(args.wait_s)
    while True:
        time.sleep(0.5)
        records = read_all(args, high)
        done, stale, tombstoned = check(args, by_offset, records, filler_at)
        if done:
            break
        if deadline.expired():
            fail(
                f"after {args.wait_s} s, {stale} superseded records and {tombstoned} records of "
                f"deleted keys are still there ({len(records)} records of {high})"
            )
    print(
        f"compaction: {high} records produced ({args.updates} updates of {args.keys} keys, "
        f"{args.tombstones} tombstones, {args.filler} filler); first read {len(first)}, "
        f"after compaction {len(records)}; latest value of every key kept at its offset"
    )


if __name__ == "__main__":
    main()
