"""kafka-python 3 against keel: create a topic with KafkaAdminClient, produce (with acks=all
idempotence is on, kafka-python's default; it needs acks=all), consume every partition from the
beginning (no group: group_id=None and manual assignment) and check everything.

Message i goes to partition i % partitions, at offset i // partitions, with the key, value,
headers and CreateTime timestamp of common.message(i). Checks: every send's metadata names that
partition and (acks 1/all) that offset; the consumer gets exactly those messages in order with
equal keys, values, headers, timestamps (type CreateTime); beginning/end offsets are 0 and n.
Exits 1 on any mismatch and prints a one-line summary otherwise.
"""

import argparse
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from common import Deadline, Mismatches, expected_by_partition, fail, message, short

CREATE_TIME = 0


def create_topic(args):
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=30000)
    try:
        result = admin.create_topics(
            {args.topic: {"num_partitions": args.partitions, "replication_factor": 1}},
            timeout_ms=30000,
            wait_for_metadata=True,
        )
    except Exception as err:  # noqa: BLE001 - any failure is the test's failure
        fail(f"CreateTopics {args.topic}: {err!r}")
    for topic in result["topics"]:
        if topic.get("error_code", 0) != 0:
            fail(f"CreateTopics {args.topic}: {topic}")
    described = admin.describe_topics([args.topic])
    partitions = described[0]["partitions"] if described else []
    if len(partitions) != args.partitions:
        fail(f"describe_topics after CreateTopics: {described!r:.500}")
    admin.close()


def produce(args):
    acks = "all" if args.acks == "all" else int(args.acks)
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        acks=acks,
        compression_type=None if args.compression == "none" else args.compression,
        enable_idempotence=acks == "all",
        linger_ms=10,
        request_timeout_ms=30000,
    )
    started = time.monotonic()
    futures = []
    for i in range(args.count):
        key, value, headers, timestamp = message(i, args.base_ts, kafka_python=True)
        futures.append(
            producer.send(
                args.topic,
                key=key,
                value=value,
                headers=headers,
                partition=i % args.partitions,
                timestamp_ms=timestamp,
            )
        )
    producer.flush(timeout=60)
    mismatches = Mismatches("send results")
    for i, future in enumerate(futures):
        try:
            metadata = future.get(timeout=30)
        except Exception as err:  # noqa: BLE001
            mismatches.add(f"message {i}: {err!r}")
            continue
        if metadata.partition != i % args.partitions:
            mismatches.add(f"message {i}: partition {metadata.partition}")
        elif args.acks != "0" and metadata.offset != i // args.partitions:
            mismatches.add(
                f"message {i}: offset {metadata.offset}, expected {i // args.partitions}"
            )
    mismatches.check()
    producer.close(timeout=10)
    return time.monotonic() - started


def verify(args):
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        request_timeout_ms=30000,
    )
    partitions = [TopicPartition(args.topic, p) for p in range(args.partitions)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    expected = expected_by_partition(args.count, args.partitions)
    received = {p: [] for p in range(args.partitions)}
    total = 0
    started = time.monotonic()
    deadline = Deadline(60)
    while total < args.count:
        if deadline.expired():
            fail(
                f"consumed {total} of {args.count} within 60 s; per partition "
                f"{({p: len(r) for p, r in received.items()})}"
            )
        for tp, records in consumer.poll(timeout_ms=500, max_records=2000).items():
            received[tp.partition].extend(records)
            total += len(records)
    elapsed = time.monotonic() - started

    mismatches = Mismatches("consumed records")
    for p in range(args.partitions):
        got, want = received[p], expected[p]
        if len(got) != len(want):
            mismatches.add(f"partition {p}: {len(got)} records, expected {len(want)}")
        for position, (record, i) in enumerate(zip(got, want)):
            key, value, headers, timestamp = message(i, args.base_ts, kafka_python=True)
            where = f"partition {p} offset {record.offset} (message {i})"
            if record.offset != position:
                mismatches.add(f"{where}: offset {record.offset}, expected {position}")
            if record.key != key:
                mismatches.add(f"{where}: key {short(record.key)}, expected {short(key)}")
            if record.value != value:
                mismatches.add(f"{where}: value {short(record.value)}, expected {short(value)}")
            if list(record.headers) != headers:
                mismatches.add(f"{where}: headers {record.headers!r:.200}, expected {headers!r:.200}")
            if (record.timestamp_type, record.timestamp) != (CREATE_TIME, timestamp):
                mismatches.add(
                    f"{where}: timestamp type {record.timestamp_type} {record.timestamp}, "
                    f"expected CreateTime {timestamp}"
                )
    beginning = consumer.beginning_offsets(partitions)
    end = consumer.end_offsets(partitions)
    for tp in partitions:
        want = (0, len(expected[tp.partition]))
        if (beginning[tp], end[tp]) != want:
            mismatches.add(f"partition {tp.partition}: offsets ({beginning[tp]}, {end[tp]}), expected {want}")
    mismatches.check()
    consumer.close()
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--acks", choices=["0", "1", "all"], default="all")
    # kafka-python compresses with gzip by itself; snappy, lz4 and zstd need extra packages.
    parser.add_argument("--compression", choices=["none", "gzip"], default="none")
    parser.add_argument("--base-ts", type=int, required=True)
    args = parser.parse_args()
    create_topic(args)
    produced = produce(args)
    consumed = verify(args)
    print(
        f"ok: kafka-python roundtrip acks={args.acks} compression={args.compression}: "
        f"{args.count} messages over {args.partitions} partitions: produced in {produced:.2f}s, "
        f"consumed and checked in {consumed:.2f}s"
    )


if __name__ == "__main__":
    main()
