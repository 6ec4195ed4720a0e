"""confluent-kafka (librdkafka) against a keel cluster: what a user of three nodes sees.

Commands (each bounded by --timeout seconds, exits 1 on any mismatch):
- brokers: waits until Metadata from --bootstrap lists exactly --expect brokers (ids given by
  --ids) and names a controller among them that is not --not-controller; prints
  `controller N`.
- create: CreateTopics of --topic with --partitions and --rf; prints `created` or
  `error CODE_NAME message`.
- leaders: waits until every partition of --topic has a leader (or, with --leaderless N, until
  the partitions whose replica is broker N have none and the others have one); prints
  `partition P leader L replicas R` per partition.
- produce: --count keyed messages with acks=all to --topic; every one must be acknowledged.
- consume: reads --topic with consumer group --group from the earliest offset until --count
  messages arrived, checks each key's values arrive in order, commits, and checks the
  committed offsets are read back.
"""

import argparse
import json
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import Deadline, fail


def admin(args):
    return AdminClient({"bootstrap.servers": args.bootstrap})


def brokers(args):
    deadline = Deadline(args.timeout)
    expected = sorted(int(i) for i in args.ids.split(","))
    last = None
    while not deadline.expired():
        try:
            md = admin(args).list_topics(timeout=max(1.0, min(5.0, deadline.left())))
            ids = sorted(md.brokers)
            last = (ids, md.controller_id)
            if ids == expected and md.controller_id in ids and md.controller_id != args.not_controller:
                print(f"controller {md.controller_id}")
                return
        except KafkaException as e:
            last = str(e)
        time.sleep(0.2)
    fail(f"brokers: wanted {expected} and a controller other than {args.not_controller}; last saw {last}")


def create(args):
    topic = NewTopic(args.topic, args.partitions, args.rf)
    client = admin(args)
    futures = client.create_topics([topic], operation_timeout=args.timeout)
    try:
        futures[args.topic].result(timeout=args.timeout)
        print("created")
    except KafkaException as e:
        error = e.args[0]
        print(f"error {error.name()} {error.str()}")


def leaders(args):
    deadline = Deadline(args.timeout)
    last = None
    while not deadline.expired():
        try:
            md = admin(args).list_topics(topic=args.topic, timeout=max(1.0, min(5.0, deadline.left())))
            topic = md.topics.get(args.topic)
            if topic is not None and topic.error is None and topic.partitions:
                parts = sorted(topic.partitions.values(), key=lambda p: p.id)
                last = [(p.id, p.leader, list(p.replicas)) for p in parts]

                def settled(p):
                    if args.leaderless is not None and args.leaderless in p.replicas:
                        return p.leader == -1
                    return p.leader in p.replicas

                if all(settled(p) for p in parts):
                    for p in parts:
                        print(f"partition {p.id} leader {p.leader} replicas {json.dumps(list(p.replicas))}")
                    return
        except KafkaException as e:
            last = str(e)
        time.sleep(0.2)
    fail(f"leaders of {args.topic} (leaderless {args.leaderless}) did not settle; last saw {last}")


def produce(args):
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5})
    failed = []
    acked = [0]

    def report(err, msg):
        if err is not None:
            failed.append(str(err))
        else:
            acked[0] += 1

    for i in range(args.count):
        while True:
            try:
                producer.produce(args.topic, key=f"k{i % 17}", value=f"{i}", on_delivery=report)
                break
            except BufferError:
                producer.poll(0.1)
    left = producer.flush(args.timeout)
    if left or failed or acked[0] != args.count:
        fail(f"produce: {acked[0]} of {args.count} acknowledged, {left} unsent, errors {failed[:5]}")
    print(f"produced {args.count}")


def consume(args):
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([args.topic])
    deadline = Deadline(args.timeout)
    last_by_key = {}
    seen = 0
    while seen < args.count and not deadline.expired():
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            fail(f"consume: {msg.error()}")
        key, value = msg.key().decode(), int(msg.value())
        if last_by_key.get(key, -1) >= value:
            fail(f"consume: key {key}: {value} after {last_by_key[key]}")
        last_by_key[key] = value
        seen += 1
    if seen != args.count:
        fail(f"consume: {seen} of {args.count} messages within {args.timeout}s")
    consumer.commit(asynchronous=False)
    assignment = consumer.assignment()
    positions = {(p.partition): p.offset for p in consumer.position(assignment)}
    committed = {(p.partition): p.offset for p in consumer.committed(assignment, timeout=10)}
    if committed != positions:
        fail(f"consume: committed {committed} but positions are {positions}")
    consumer.close()
    print(f"consumed {seen}, committed {len(committed)} partitions")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["brokers", "create", "leaders", "produce", "consume"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--ids", default="")
    parser.add_argument("--not-controller", type=int, default=None)
    parser.add_argument("--topic", default="")
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--rf", type=int, default=1)
    parser.add_argument("--leaderless", type=int, default=None)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--group", default="")
    args = parser.parse_args()
    {"brokers": brokers, "create": create, "leaders": leaders, "produce": produce, "consume": consume}[
        args.command
    ](args)


if __name__ == "__main__":
    main()
