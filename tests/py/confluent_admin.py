"""confluent-kafka (librdkafka 2.16) administration against keel, as a new user tries it.

Checks, in order:
- AdminClient.list_topics() answers (librdkafka >= 2.12 sends its Metadata v12 "all topics"
  request with 3 spare bytes after the body, which keel used to refuse by closing the
  connection: "Broker transport failure");
- a consumer subscribed by regex (the same Metadata request) reads what was produced to the
  matching topic;
- describe_cluster() names this node as the only broker and as the controller;
- CreateTopics with a manual replica assignment naming this node creates those partitions,
  and CreatePartitions with an assignment adds them; an assignment naming another broker is
  refused with INVALID_REPLICA_ASSIGNMENT;
- describe_configs() of the broker resource lists `--set log.segment.bytes` with its value,
  STATIC_BROKER_CONFIG and read-only, and every other broker setting keel has;
- incremental_alter_configs() APPEND and SUBTRACT on cleanup.policy;
- min.insync.replicas=2 on one replica refuses acks=all but takes acks=1, and
  message.timestamp.before.max.ms refuses a record an hour old but takes a recent one;
- a topic with compression.type=lz4 accepts uncompressed batches (the caller checks the stored
  codec with keel dump-log).
Exits 1 on any mismatch and prints a one-line summary otherwise.
"""

import argparse
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from common import Deadline, fail

STATIC_BROKER_CONFIG = ConfigSource.STATIC_BROKER_CONFIG.value
TOPIC_CONFIG = ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def produce(bootstrap, topic, count, partition=None):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    errors = []
    for i in range(count):
        kwargs = {"key": f"k{i}".encode(), "value": f"v{i}".encode(), "on_delivery": lambda e, m: e and errors.append(e)}
        if partition is not None:
            kwargs["partition"] = partition
        producer.produce(topic, **kwargs)
    if producer.flush(30) != 0 or errors:
        fail(f"producing {count} messages to {topic}: {errors[:3]} (left {len(producer)})")


def consume_all(bootstrap, subscription, count, group):
    """Values read by a group member subscribed to `subscription` until `count` arrived."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    consumer.subscribe([subscription])
    values = []
    deadline = Deadline(60)
    while len(values) < count and not deadline.expired():
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                continue
            fail(f"consuming {subscription}: {message.error()}")
        values.append(message.value().decode())
    consumer.close()
    return values


def check_list_topics(admin, topics):
    listed = admin.list_topics(timeout=15)
    missing = [t for t in topics if t not in listed.topics]
    if missing:
        fail(f"AdminClient.list_topics() lists {sorted(listed.topics)}, missing {missing}")
    if list(listed.brokers) != [0]:
        fail(f"list_topics() brokers {listed.brokers}, expected node 0 alone")


def check_cluster(admin, bootstrap):
    cluster = admin.describe_cluster(include_authorized_operations=True).result(timeout=15)
    nodes = [(n.id, f"{n.host}:{n.port}") for n in cluster.nodes]
    if nodes != [(0, bootstrap)]:
        fail(f"describe_cluster nodes {nodes}, expected [(0, {bootstrap})]")
    if cluster.controller is None or cluster.controller.id != 0:
        fail(f"describe_cluster controller {cluster.controller}, expected node 0")
    if not cluster.cluster_id:
        fail("describe_cluster: no cluster id")


def check_assignments(admin, topic):
    created = admin.create_topics([NewTopic(topic, 2, replica_assignment=[[0], [0]])])
    created[topic].result(timeout=15)
    grown = admin.create_partitions([NewPartitions(topic, 4, replica_assignment=[[0], [0]])])
    grown[topic].result(timeout=15)
    deadline = Deadline(10)
    while len(admin.list_topics(topic, timeout=10).topics[topic].partitions) != 4:
        if deadline.expired():
            fail(f"{topic} does not have 4 partitions after CreatePartitions")
        time.sleep(0.1)
    refused = admin.create_topics([NewTopic(topic + "-elsewhere", 1, replica_assignment=[[7]])])
    try:
        refused[topic + "-elsewhere"].result(timeout=15)
        fail("a replica assignment naming broker 7 was accepted")
    except KafkaException as e:
        if e.args[0].code() != KafkaError.INVALID_REPLICA_ASSIGNMENT:
            fail(f"an assignment naming broker 7: {e}, expected INVALID_REPLICA_ASSIGNMENT")


def check_broker_configs(admin, segment_bytes):
    resource = ConfigResource(ResourceType.BROKER, "0")
    configs = admin.describe_configs([resource])[resource].result(timeout=15)
    entry = configs.get("log.segment.bytes")
    if entry is None:
        fail(f"the broker's configs lack log.segment.bytes: {sorted(configs)}")
    if entry.value != segment_bytes or entry.source != STATIC_BROKER_CONFIG or not entry.is_read_only:
        fail(f"log.segment.bytes: value {entry.value} source {entry.source} read-only {entry.is_read_only}")
    for name in ("advertised.listeners", "log.retention.ms", "num.partitions", "log.dirs", "message.max.bytes"):
        if name not in configs:
            fail(f"the broker's configs lack {name}")
    if configs["log.retention.ms"].value != "604800000":
        fail(f"log.retention.ms is {configs['log.retention.ms'].value}")


def topic_config(admin, topic, name):
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([resource])[resource].result(timeout=15)[name]


def alter(admin, topic, name, value, op):
    resource = ConfigResource(
        ResourceType.TOPIC, topic, incremental_configs=[ConfigEntry(name, value, incremental_operation=op)]
    )
    admin.incremental_alter_configs([resource])[resource].result(timeout=15)


def check_append_subtract(admin, topic):
    admin.create_topics([NewTopic(topic, 1)])[topic].result(timeout=15)
    alter(admin, topic, "cleanup.policy", "compact", AlterConfigOpType.APPEND)
    entry = topic_config(admin, topic, "cleanup.policy")
    if set(entry.value.split(",")) != {"compact", "delete"} or entry.source != TOPIC_CONFIG:
        fail(f"cleanup.policy after APPEND compact: {entry.value} (source {entry.source})")
    alter(admin, topic, "cleanup.policy", "delete", AlterConfigOpType.SUBTRACT)
    entry = topic_config(admin, topic, "cleanup.policy")
    if entry.value != "compact":
        fail(f"cleanup.policy after SUBTRACT delete: {entry.value}")
    try:
        alter(admin, topic, "retention.ms", "5", AlterConfigOpType.APPEND)
        fail("APPEND on retention.ms (a LONG) was accepted")
    except KafkaException as e:
        if e.args[0].code() != KafkaError.INVALID_CONFIG:
            fail(f"APPEND on retention.ms: {e}, expected INVALID_CONFIG")


def deliver(producer, topic, value, **kwargs):
    """Produces one message and waits for it; its error code, or None."""
    outcome = []
    producer.produce(topic, value, on_delivery=lambda e, m: outcome.append(e.code() if e else None), **kwargs)
    producer.flush(15)
    if len(outcome) != 1:
        fail(f"no delivery report for {value!r} to {topic}")
    return outcome[0]


def check_topic_rules(admin, bootstrap, prefix):
    """min.insync.replicas above the one replica refuses acks=all (librdkafka retries
    NOT_ENOUGH_REPLICAS until message.timeout.ms), not acks=1; a record older than
    message.timestamp.before.max.ms is INVALID_TIMESTAMP, a recent one is taken."""
    guarded, recent = f"{prefix}-guarded", f"{prefix}-recent"
    created = admin.create_topics(
        [
            NewTopic(guarded, 1, config={"min.insync.replicas": "2"}),
            NewTopic(recent, 1, config={"message.timestamp.before.max.ms": "60000"}),
        ]
    )
    for future in created.values():
        future.result(timeout=15)
    all_acks = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 2000})
    code = deliver(all_acks, guarded, b"needs two replicas")
    if code is None:
        fail("acks=all was acknowledged with min.insync.replicas=2 on one replica")
    one_ack = Producer({"bootstrap.servers": bootstrap, "acks": "1"})
    if deliver(one_ack, guarded, b"one replica is enough") is not None:
        fail("acks=1 failed on a topic with min.insync.replicas=2")
    now_ms = int(time.time() * 1000)
    if deliver(one_ack, recent, b"now", timestamp=now_ms) is not None:
        fail("a record stamped now was refused under message.timestamp.before.max.ms=60000")
    code = deliver(one_ack, recent, b"an hour old", timestamp=now_ms - 3_600_000)
    if code != KafkaError.INVALID_TIMESTAMP:
        fail(f"a record an hour old gave {code}, expected INVALID_TIMESTAMP")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True, help="names of the topics this run makes")
    parser.add_argument("--segment-bytes", required=True, help="the broker's --set log.segment.bytes")
    args = parser.parse_args()
    started = time.monotonic()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    regex_topic = f"{args.prefix}-regex-a"
    produce(args.bootstrap, regex_topic, 20)
    check_list_topics(admin, [regex_topic])
    values = consume_all(args.bootstrap, f"^{args.prefix}-regex-.*", 20, f"{args.prefix}-group")
    if sorted(values) != sorted(f"v{i}" for i in range(20)):
        fail(f"regex subscription read {len(values)} values: {values[:5]}...")
    check_cluster(admin, args.bootstrap)
    check_assignments(admin, f"{args.prefix}-assigned")
    check_broker_configs(admin, args.segment_bytes)
    check_append_subtract(admin, f"{args.prefix}-lists")
    check_topic_rules(admin, args.bootstrap, args.prefix)
    squeezed = f"{args.prefix}-lz4"
    admin.create_topics([NewTopic(squeezed, 1, config={"compression.type": "lz4"})])[squeezed].result(timeout=15)
    produce(args.bootstrap, squeezed, 200, partition=0)
    values = consume_all(args.bootstrap, squeezed, 200, f"{args.prefix}-lz4-group")
    if sorted(values) != sorted(f"v{i}" for i in range(200)):
        fail(f"the lz4 topic gave back {len(values)} values")
    print(
        f"ok: confluent-kafka admin: list_topics, regex subscription, describe_cluster, manual "
        f"assignments, broker configs, APPEND/SUBTRACT, min.insync.replicas, timestamps, compression.type ({time.monotonic() - started:.2f}s)"
    )


if __name__ == "__main__":
    main()
