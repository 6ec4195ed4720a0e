"""kafka-python 3 against keel: what describe_configs, describe_log_dirs, describe_cluster and
alter_replica_log_dirs report.

Checks: every topic setting comes with its KIP-569 type (retention.bytes is LONG, not
UNKNOWN; cleanup.policy LIST; segment.bytes INT; min.cleanable.dirty.ratio DOUBLE;
preallocate BOOLEAN; compression.type STRING), an override's source is DYNAMIC_TOPIC_CONFIG with
the broker setting as its next synonym; the broker resource reports its settings with types;
deprecated settings Kafka 3.x still takes (message.format.version) are taken; an unknown
setting stays INVALID_CONFIG; describe_log_dirs names the data directory and each partition's
size; alter_replica_log_dirs to that directory succeeds and to another is LOG_DIR_NOT_FOUND.
Exits 1 on any mismatch and prints a one-line summary otherwise.
"""

import argparse
import time

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import InvalidConfigurationError, LogDirNotFoundError, NoError

from common import fail

EXPECTED_TYPES = {
    "retention.bytes": "LONG",
    "retention.ms": "LONG",
    "cleanup.policy": "LIST",
    "segment.bytes": "INT",
    "min.cleanable.dirty.ratio": "DOUBLE",
    "preallocate": "BOOLEAN",
    "compression.type": "STRING",
    "message.format.version": "STRING",
    "min.insync.replicas": "INT",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--data-dir", required=True, help="the broker's log.dirs, as it was given")
    args = parser.parse_args()
    started = time.monotonic()
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics(
        [
            NewTopic(
                args.topic,
                num_partitions=2,
                replication_factor=1,
                topic_configs={"retention.ms": "3600000", "message.format.version": "2.8-IV1"},
            )
        ]
    )
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    for i in range(50):
        producer.send(args.topic, value=b"x" * 100, partition=0)
    producer.flush(timeout=30)
    producer.close(timeout=10)

    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, args.topic), ConfigResource(ConfigResourceType.BROKER, "0")],
        include_synonyms=True,
        config_filter="all",
    )
    topic = described["topic"][args.topic]
    for name, expected in EXPECTED_TYPES.items():
        got = topic.get(name, {}).get("config_type")
        if got != expected:
            fail(f"{name}: config_type {got!r}, expected {expected} (all: {sorted(topic)})")
    retention = topic["retention.ms"]
    if retention["value"] != "3600000" or retention["config_source"] != "DYNAMIC_TOPIC_CONFIG":
        fail(f"retention.ms override: {retention}")
    names = [s["name"] for s in retention["synonyms"]]
    if names != ["retention.ms", "log.retention.ms"]:
        fail(f"retention.ms synonyms {names}, expected the override then log.retention.ms")
    if topic["message.format.version"]["value"] != "2.8-IV1":
        fail(f"message.format.version: {topic['message.format.version']}")
    broker = described["broker"]["0"]
    for name, expected in (("log.retention.bytes", "LONG"), ("num.partitions", "INT"), ("auto.create.topics.enable", "BOOLEAN")):
        if broker.get(name, {}).get("config_type") != expected:
            fail(f"broker {name}: {broker.get(name)}, expected type {expected}")

    try:
        admin.create_topics([NewTopic(args.topic + "-bad", 1, 1, topic_configs={"no.such.setting": "1"})])
        fail("an unknown topic setting was accepted")
    except InvalidConfigurationError:
        pass

    dirs = admin.describe_log_dirs()
    log_dirs = [d for broker in dirs for d in broker["log_dirs"]]
    if [d["log_dir"] for d in log_dirs] != [args.data_dir]:
        fail(f"describe_log_dirs: {[d['log_dir'] for d in log_dirs]}, expected [{args.data_dir}]")
    partitions = {
        p["partition_index"]: p["partition_size"]
        for t in log_dirs[0]["topics"]
        if t["name"] == args.topic
        for p in t["partitions"]
    }
    if sorted(partitions) != [0, 1] or partitions[0] <= 5000 or partitions[1] != 0:
        fail(f"describe_log_dirs sizes for {args.topic}: {partitions}")

    moved = admin.alter_replica_log_dirs({(args.topic, 0, 0): args.data_dir, (args.topic, 1, 0): "/nowhere"})
    outcome = {tpr.partition: error for tpr, error in moved.items()}
    if outcome != {0: NoError, 1: LogDirNotFoundError}:
        fail(f"alter_replica_log_dirs: {outcome}")

    cluster = admin.describe_cluster()
    if cluster["controller_id"] != 0 or [b["broker_id"] for b in cluster["brokers"]] != [0]:
        fail(f"describe_cluster: {cluster}")
    admin.close()
    print(f"ok: kafka-python configs, log dirs and cluster ({time.monotonic() - started:.2f}s)")


if __name__ == "__main__":
    main()
