"""kafka-python 3 against keel: KafkaAdminClient create_topics / delete_topics and what Metadata
says after each.

Checks, in order: creating topic A (3 partitions) succeeds and Metadata lists it with 3
partitions, each led by node 0; creating A again fails with TopicAlreadyExistsError; a few
messages produced to A are readable (end offsets > 0); deleting A succeeds and Metadata (all
topics, and A by name) then no longer lists it and does not re-create it; deleting A again fails
with UnknownTopicOrPartitionError; creating A again (1 partition) gives an empty topic: deleted
data does not come back. --deleted-topic goes through the same steps up to its deletion and is
not re-created, so the caller can check that its files left the disk. Exits 1 on any mismatch and
prints a one-line summary otherwise.
"""

import argparse
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from common import Deadline, fail

UNKNOWN_TOPIC_OR_PARTITION = 3


def describe(admin, topic):
    """The Metadata entry for `topic` asked by name (no auto-creation), or None."""
    described = admin.describe_topics([topic])
    return next((t for t in described if t["name"] == topic), None)


def end_offsets(bootstrap, topic, partitions):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    offsets = consumer.end_offsets(tps)
    consumer.close()
    return [offsets[tp] for tp in tps]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True, help="topic A: created, deleted, re-created")
    parser.add_argument("--deleted-topic", required=True, help="created, written and deleted")
    args = parser.parse_args()
    started = time.monotonic()
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    a, gone = args.topic, args.deleted_topic

    for name in (a, gone):
        admin.create_topics({name: {"num_partitions": 3, "replication_factor": 1}}, wait_for_metadata=True)
        if name not in admin.list_topics():
            fail(f"Metadata (all topics) does not list {name} after CreateTopics: {admin.list_topics()}")
        entry = describe(admin, name)
        if entry is None or entry["error_code"] != 0:
            fail(f"Metadata for {name} after CreateTopics: {entry!r}")
        partitions = sorted((p["partition_index"], p["leader_id"], p["error_code"]) for p in entry["partitions"])
        if partitions != [(0, 0, 0), (1, 0, 0), (2, 0, 0)]:
            fail(f"Metadata for {name}: partitions (index, leader, error) {partitions}, expected 3 led by node 0")

    try:
        admin.create_topics({a: {"num_partitions": 3, "replication_factor": 1}})
        fail(f"creating {a} a second time succeeded; expected TopicAlreadyExistsError")
    except TopicAlreadyExistsError:
        pass

    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=False)
    for topic in (a, gone):
        for i in range(30):
            producer.send(topic, key=str(i).encode(), value=b"x" * 100, partition=i % 3)
    producer.flush(timeout=30)
    producer.close(timeout=10)
    for topic in (a, gone):
        offsets = end_offsets(args.bootstrap, topic, 3)
        if offsets != [10, 10, 10]:
            fail(f"{topic}: end offsets {offsets} after 30 messages over 3 partitions")

    for topic in (a, gone):
        result = admin.delete_topics([topic])
        errors = [t.get("error_code") for t in result["topics"]]
        if errors != [0]:
            fail(f"DeleteTopics {topic}: {result}")
        deadline = Deadline(10)
        while topic in admin.list_topics():
            if deadline.expired():
                fail(f"Metadata (all topics) still lists {topic} 10 s after DeleteTopics")
            time.sleep(0.1)
        entry = describe(admin, topic)
        if entry is None or entry["error_code"] != UNKNOWN_TOPIC_OR_PARTITION:
            fail(f"Metadata for deleted {topic} by name: {entry!r}, expected UNKNOWN_TOPIC_OR_PARTITION")
        if topic in admin.list_topics():
            fail(f"Metadata by name re-created deleted {topic} (allow_auto_topic_creation was false)")

    try:
        admin.delete_topics([a])
        fail(f"deleting {a} a second time succeeded; expected UnknownTopicOrPartitionError")
    except UnknownTopicOrPartitionError:
        pass

    admin.create_topics({a: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True)
    entry = describe(admin, a)
    if entry is None or len(entry["partitions"]) != 1:
        fail(f"re-created {a} with 1 partition; Metadata says {entry!r}")
    offsets = end_offsets(args.bootstrap, a, 1)
    if offsets != [0]:
        fail(f"re-created {a} is not empty: end offsets {offsets} (deleted data came back)")
    admin.close()
    print(
        f"ok: kafka-python admin: create, duplicate create refused, delete, Metadata without the "
        f"topic, duplicate delete refused, re-create empty ({time.monotonic() - started:.2f}s)"
    )


if __name__ == "__main__":
    main()
