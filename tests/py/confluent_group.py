"""A confluent-kafka (librdkafka) consumer group against keel.

Modes:
- `group`: create a --partitions topic, produce messages 0..--count (message i to partition
  i % partitions), then run three group members as separate processes (mode `member`). Once a
  third of the messages are consumed, one member is killed with SIGKILL (no LeaveGroup: the
  broker must notice its session timing out) and a fourth member joins. Checks that every message
  is consumed at least once, that consumed values are the messages at their offsets, that the
  group settles with the partitions shared among the live members, and that after the members
  close the committed offset of every partition is its end offset.
- `resume`: produce messages --from..--count into the topic, then one new member of the same
  group must start exactly at the committed offsets: it reads messages --from..--count and none
  before (the test restarts the broker between `group` and `resume`).
- `member`: one group member (used by the two modes above): consumes, prints each message as "CONSUMED partition offset value" and then commits it synchronously, and prints "ASSIGNED p,p,..." on
  every assignment; it closes cleanly (LeaveGroup) when --stop-file appears.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import Deadline, fail


def create_topic(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap, "broker.address.family": "v4"})
    futures = admin.create_topics(
        [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)]
    )
    try:
        futures[args.topic].result(timeout=30)
    except Exception as err:  # noqa: BLE001 - any failure is the test's failure
        fail(f"CreateTopics {args.topic}: {err!r}")


def value(i):
    return f"message-{i}".encode()


def produce(args, first, count):
    producer = Producer(
        {"bootstrap.servers": args.bootstrap, "broker.address.family": "v4", "linger.ms": 5}
    )
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    for i in range(first, count):
        while True:
            try:
                producer.produce(
                    args.topic, value=value(i), partition=i % args.partitions, on_delivery=report
                )
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(60) != 0 or failures:
        fail(f"produce: {len(failures)} failed deliveries, first {failures[:3]}")


def member_config(args):
    return {
        "bootstrap.servers": args.bootstrap,
        "broker.address.family": "v4",
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "partition.assignment.strategy": args.strategy,
    }


def run_member(args):
    consumer = Consumer(member_config(args))
    consumer.subscribe([args.topic])
    deadline = Deadline(args.seconds)
    shown = None
    while not os.path.exists(args.stop_file) and not deadline.expired():
        # The whole current assignment (cooperative assignors hand out increments).
        now = ",".join(str(p) for p in sorted(tp.partition for tp in consumer.assignment()))
        if now != shown:
            shown = now
            print(f"ASSIGNED {now}", flush=True)
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                print(f"ERROR {msg.error()}", flush=True)
            continue
        # Processed (printed) before committed: at least once.
        print(f"CONSUMED {msg.partition()} {msg.offset()} {msg.value().decode()}", flush=True)
        try:
            consumer.commit(message=msg, asynchronous=False)
        except KafkaException as err:
            # A commit refused during a rebalance: the message may be delivered again.
            print(f"COMMIT FAILED {err}", flush=True)
    consumer.close()
    print("CLOSED", flush=True)


class Member:
    """A member process and what it printed so far."""

    def __init__(self, args, name):
        self.name = name
        self.stdout_path = f"{args.stop_file}.{name}.out"
        self.out = open(self.stdout_path, "w")
        command = [
            sys.executable, os.path.abspath(__file__), "--mode", "member",
            "--bootstrap", args.bootstrap, "--topic", args.topic, "--group", args.group,
            "--strategy", args.strategy, "--stop-file", args.stop_file,
            "--seconds", str(args.seconds),
        ]
        self.process = subprocess.Popen(command, stdout=self.out, stderr=subprocess.STDOUT)

    def lines(self):
        with open(self.stdout_path) as f:
            return f.read().splitlines()

    def consumed(self):
        found = []
        for line in self.lines():
            parts = line.split(" ")
            if parts[0] == "CONSUMED":
                found.append((int(parts[1]), int(parts[2]), parts[3]))
        return found

    def last_assignment(self):
        assigned = [line for line in self.lines() if line.startswith("ASSIGNED")]
        if not assigned:
            return None
        text = assigned[-1][len("ASSIGNED "):]
        return {int(p) for p in text.split(",") if p}


def check_consumed(members, partitions, first, count):
    """Every message first..count consumed at least once, at its own offset."""
    seen = set()
    for member in members:
        for partition, offset, text in member.consumed():
            index = offset * partitions + partition
            if text != value(index).decode():
                fail(f"{member.name}: partition {partition} offset {offset} holds {text!r}, expected message {index}")
            seen.add(index)
    return set(range(first, count)) - seen


def committed(args, partitions):
    consumer = Consumer(member_config(args))
    asked = [TopicPartition(args.topic, p) for p in range(partitions)]
    found = consumer.committed(asked, timeout=20)
    consumer.close()
    return {tp.partition: tp.offset for tp in found}


def run_group(args):
    create_topic(args)
    produce(args, 0, args.count)
    members = [Member(args, name) for name in ("a", "b", "c")]
    deadline = Deadline(100)
    while sum(len(m.consumed()) for m in members) < args.count // 3:
        if deadline.expired():
            fail("a third of the messages were not consumed within 100 s")
        time.sleep(0.2)
    victim = members[0]
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.process.wait()
    print(f"member a killed after {len(victim.consumed())} messages", flush=True)
    members.append(Member(args, "d"))
    live = members[1:]
    while True:
        missing = check_consumed(members, args.partitions, 0, args.count)
        assignments = [m.last_assignment() for m in live]
        settled = all(a is not None for a in assignments) and sorted(
            p for a in assignments for p in a
        ) == list(range(args.partitions))
        if not missing and settled:
            break
        if deadline.expired():
            fail(
                f"not done within 100 s: {len(missing)} messages never consumed "
                f"(first {sorted(missing)[:5]}), assignments {assignments}"
            )
        time.sleep(0.2)
    print(f"live members settled on assignments {[sorted(a) for a in assignments]}", flush=True)
    open(args.stop_file, "w").close()
    for member in live:
        try:
            member.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            member.process.kill()
            fail(f"member {member.name} did not close within 30 s")
        if "CLOSED" not in member.lines():
            fail(f"member {member.name} did not close cleanly: {member.lines()[-5:]}")
    os.remove(args.stop_file)
    ends = {p: len(range(p, args.count, args.partitions)) for p in range(args.partitions)}
    found = committed(args, args.partitions)
    if found != ends:
        fail(f"committed offsets {found}, expected the end offsets {ends}")
    total = sum(len(m.consumed()) for m in members)
    print(f"OK group: {args.count} messages consumed ({total} deliveries) by 4 members, commits at the ends {ends}")


def run_resume(args):
    produce(args, args.first, args.count)
    member = Member(args, "resumed")
    deadline = Deadline(90)
    while check_consumed([member], args.partitions, args.first, args.count):
        if deadline.expired():
            fail(f"the resumed member consumed only {len(member.consumed())} messages in 90 s")
        time.sleep(0.2)
    open(args.stop_file, "w").close()
    member.process.wait(timeout=30)
    os.remove(args.stop_file)
    before = [c for c in member.consumed() if c[1] * args.partitions + c[0] < args.first]
    if before:
        fail(f"the resumed member read {len(before)} messages below the committed offsets: {before[:5]}")
    print(f"OK resume: messages {args.first}..{args.count} consumed from the committed offsets")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", required=True, choices=["group", "resume", "member"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--strategy", default="range")
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--seconds", type=float, default=150)
    args = parser.parse_args()
    if args.mode == "member":
        run_member(args)
    elif args.mode == "group":
        run_group(args)
    else:
        run_resume(args)


if __name__ == "__main__":
    main()
