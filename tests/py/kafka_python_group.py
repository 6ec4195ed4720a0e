"""kafka-python 3: a consumer group with manual commits against keel.

Creates a --partitions topic and produces --count messages with kafka-python's default producer
(idempotence on: InitProducerId and sequence numbers). A first group member consumes about half
of them, commits what it consumed with commit() and closes; a second member of the same group
must then get exactly the other messages: none twice, none lost. The committed offsets the group
reports at the end are the end offsets.
"""

import argparse

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from common import Deadline, fail


def value(i):
    return f"kp-{i}".encode()


def consume(args, wanted, commit):
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
    )
    got = []
    deadline = Deadline(60)
    while len(got) < wanted:
        if deadline.expired():
            fail(f"consumed only {len(got)} of {wanted} in 60 s")
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(r.value for r in records)
    if commit:
        consumer.commit()
    partitions = [TopicPartition(args.topic, p) for p in range(args.partitions)]
    committed = {tp.partition: consumer.committed(tp) for tp in partitions}
    consumer.close()
    return got, committed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--count", type=int, default=600)
    args = parser.parse_args()

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics({args.topic: {"num_partitions": args.partitions, "replication_factor": 1}})
    admin.close()
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5)
    if not producer.config["enable_idempotence"]:
        fail("kafka-python's producer was expected to enable idempotence by default")
    for i in range(args.count):
        producer.send(args.topic, value=value(i), partition=i % args.partitions)
    producer.flush(timeout=60)
    producer.close()

    first, _ = consume(args, args.count // 2, commit=True)
    second, committed = consume(args, args.count - len(first), commit=True)
    everything = sorted(first + second)
    expected = sorted(value(i) for i in range(args.count))
    if everything != expected:
        twice = len(everything) - len(set(everything))
        lost = len(set(expected) - set(everything))
        fail(f"first member {len(first)}, second {len(second)}: {twice} consumed twice, {lost} lost")
    ends = {p: len(range(p, args.count, args.partitions)) for p in range(args.partitions)}
    if committed != ends:
        fail(f"committed offsets {committed}, expected {ends}")
    print(f"OK kafka-python group: {len(first)} then {len(second)} messages, commits at {ends}")


if __name__ == "__main__":
    main()
