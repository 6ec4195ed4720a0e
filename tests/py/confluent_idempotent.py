"""confluent-kafka (librdkafka) with enable.idempotence=true against keel, across broker crashes.

Modes:
- `produce`: creates a --partitions topic and produces as fast as it can for --seconds (message i
  to partition i % partitions), so that requests are always in flight when the test kills keel,
  then prints "PRODUCED n". Every delivery report must succeed: librdkafka retries what was in
  flight when the broker died, and keel must acknowledge a retry of a batch it had already
  written at its first offset without writing it again.
- `verify`: reads every partition from the beginning: it must hold exactly its messages of
  0..--count, in order, each once: no duplicates and no gaps.
"""

import argparse
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import Deadline, fail


def value(i):
    return f"idempotent-{i:08d}".encode() + b"." * 200


def produce(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap, "broker.address.family": "v4"})
    futures = admin.create_topics([NewTopic(args.topic, num_partitions=args.partitions)])
    try:
        futures[args.topic].result(timeout=30)
    except Exception as err:  # noqa: BLE001 - any failure is the test's failure
        fail(f"CreateTopics: {err!r}")
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "broker.address.family": "v4",
            "enable.idempotence": True,
            "linger.ms": 2,
            "message.timeout.ms": 120000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
        }
    )
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    deadline = Deadline(args.seconds)
    count = 0
    while not deadline.expired():
        try:
            producer.produce(
                args.topic, value=value(count), partition=count % args.partitions, on_delivery=report
            )
            count += 1
        except BufferError:
            producer.poll(0.01)
    remaining = producer.flush(120)
    if remaining or failures:
        fail(f"{remaining} messages undelivered, {len(failures)} failed: {failures[:3]}")
    print(f"PRODUCED {count}")


def verify(args):
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "broker.address.family": "v4",
            "group.id": "verify-unused",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in range(args.partitions)])
    got = {p: [] for p in range(args.partitions)}
    at_end = set()
    deadline = Deadline(60)
    while len(at_end) < args.partitions:
        if deadline.expired():
            fail(f"partitions {sorted(set(got) - at_end)} not read to the end in 60 s")
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
                continue
            fail(f"consume: {msg.error()}")
        got[msg.partition()].append(msg.value())
    consumer.close()
    for p in range(args.partitions):
        expected = [value(i) for i in range(p, args.count, args.partitions)]
        if got[p] != expected:
            dupes = len(got[p]) - len(set(got[p]))
            lost = len(set(expected) - set(got[p]))
            fail(f"partition {p}: {len(got[p])} messages, expected {len(expected)}: {dupes} duplicates, {lost} missing")
    print(f"OK every partition holds its messages once, in order ({args.count} messages)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", required=True, choices=["produce", "verify"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=4)
    args = parser.parse_args()
    produce(args) if args.mode == "produce" else verify(args)


if __name__ == "__main__":
    main()
