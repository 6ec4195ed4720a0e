"""Static group membership (KIP-345) with confluent-kafka (librdkafka) against keel.

Mode `static` (the test): two members with distinct group.instance.id share a four-partition
topic, with --strategy: the eager range assignor (any rebalance revokes every partition of every
member) or cooperative-sticky (a newcomer that starts owning nothing must still get the old
member's partitions without a rebalance). Once both are assigned and the group is Stable, member b is killed with SIGKILL and a new
process with b's instance id starts; later member a is closed cleanly (librdkafka sends no
LeaveGroup for a static member) and a new process with a's instance id starts. Each replacement
comes back well within session.timeout.ms, so one of the two covers the group's leader. Then
b's process is paused (SIGSTOP), replaced, and resumed: the zombie's member id is fenced
(FENCED_INSTANCE_ID, a fatal error in librdkafka) and the group goes on. Checks, after each
replacement:
- the other member saw no revocation and no new assignment (its callbacks were not called);
- the new process got exactly the partitions of the one it replaced, under a new member id, and
  the group (DescribeGroups) is Stable with two members, one per instance id;
- messages produced afterwards are consumed by the member whose assignment covers their
  partition, and every one of them is consumed.

With --client kafka-python the members are kafka-python consumers (range only), and the zombie
step is left out (kafka-python reports a fencing from its heartbeat thread, not from poll).

Mode `member`: one static member. It prints "ASSIGN p,p" and "REVOKE p,p" from its rebalance
callbacks, "MEMBER id" once assigned, and "CONSUMED partition offset value" per message (it
commits synchronously after printing). It stops when --stop-file appears: closes and prints
"CLOSED".
"""

import argparse
import os
import signal
import subprocess
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common import Deadline, fail

SESSION_TIMEOUT_MS = 30000
PARTITIONS = 4


def admin(args):
    return AdminClient({"bootstrap.servers": args.bootstrap, "broker.address.family": "v4"})


def create_topic(args):
    client = admin(args)  # kept alive until the futures are done
    futures = client.create_topics(
        [NewTopic(args.topic, num_partitions=PARTITIONS, replication_factor=1)]
    )
    try:
        futures[args.topic].result(timeout=30)
    except Exception as err:  # noqa: BLE001 - any failure is the test's failure
        fail(f"CreateTopics {args.topic}: {err!r}")


def value(i):
    return f"message-{i}".encode()


def produce(args, first, count):
    """Messages first..count, message i to partition i % PARTITIONS."""
    producer = Producer({"bootstrap.servers": args.bootstrap, "broker.address.family": "v4"})
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    for i in range(first, count):
        producer.produce(args.topic, value=value(i), partition=i % PARTITIONS, on_delivery=report)
    if producer.flush(60) != 0 or failures:
        fail(f"produce: {len(failures)} failed deliveries, first {failures[:3]}")


def partitions_text(partitions):
    return ",".join(str(p.partition) for p in sorted(partitions, key=lambda p: p.partition))


def run_kafka_python_member(args):
    """The member of run_member, as a kafka-python consumer (JoinGroup v7, SyncGroup v5,
    Heartbeat v4, OffsetCommit v8: each with the instance id)."""
    from kafka import ConsumerRebalanceListener, KafkaConsumer
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.structs import OffsetAndMetadata

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            if revoked:  # kafka-python also reports the empty revocation before a first join
                print(f"REVOKE {partitions_text(revoked)}", flush=True)

        def on_partitions_assigned(self, assigned):
            print(f"ASSIGN {partitions_text(assigned)}", flush=True)
            shown["member"] = False

    shown = {"member": False}
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        group_instance_id=args.instance,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=500,
        partition_assignment_strategy=[RangePartitionAssignor],
    )
    consumer.subscribe([args.topic], listener=Listener())
    deadline = Deadline(args.seconds)
    while not os.path.exists(args.stop_file) and not deadline.expired():
        batches = consumer.poll(timeout_ms=200)
        if not shown["member"] and consumer.assignment():
            print(f"MEMBER {consumer._coordinator.group_metadata().member_id}", flush=True)
            shown["member"] = True
        for tp, messages in batches.items():
            for msg in messages:
                print(f"CONSUMED {tp.partition} {msg.offset} {msg.value.decode()}", flush=True)
                try:
                    consumer.commit({tp: OffsetAndMetadata(msg.offset + 1, "", -1)})
                except Exception as err:  # noqa: BLE001 - reported, the test decides
                    print(f"COMMIT FAILED {err!r}", flush=True)
    consumer.close()
    print("CLOSED", flush=True)


def run_member(args):
    if args.client == "kafka-python":
        return run_kafka_python_member(args)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "broker.address.family": "v4",
            "group.id": args.group,
            "group.instance.id": args.instance,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": args.strategy,
        }
    )
    shown = {"member": False}

    def on_assign(c, partitions):
        print(f"ASSIGN {partitions_text(partitions)}", flush=True)
        shown["member"] = False

    def on_revoke(c, partitions):
        print(f"REVOKE {partitions_text(partitions)}", flush=True)

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    deadline = Deadline(args.seconds)
    while not os.path.exists(args.stop_file) and not deadline.expired():
        msg = consumer.poll(0.2)
        if not shown["member"] and consumer.assignment():
            print(f"MEMBER {consumer.memberid()}", flush=True)
            shown["member"] = True
        if msg is None:
            continue
        if msg.error():
            if msg.error().fatal() or msg.error().code() == KafkaError._FATAL:
                # FENCED_INSTANCE_ID: a newer process of this instance took its place.
                print(f"FATAL {msg.error()}", flush=True)
                break
            if msg.error().code() != KafkaError._PARTITION_EOF:
                print(f"ERROR {msg.error()}", flush=True)
            continue
        print(f"CONSUMED {msg.partition()} {msg.offset()} {msg.value().decode()}", flush=True)
        try:
            consumer.commit(message=msg, asynchronous=False)
        except KafkaException as err:
            print(f"COMMIT FAILED {err}", flush=True)
    consumer.close()
    print("CLOSED", flush=True)


class Member:
    """A member process (one instance id, one run) and what it printed so far."""

    def __init__(self, args, instance, run):
        self.name = f"{instance}#{run}"
        self.stop_file = f"{args.stop_file}.{instance}.{run}"
        self.stdout_path = f"{self.stop_file}.out"
        self.out = open(self.stdout_path, "w")
        command = [
            sys.executable, os.path.abspath(__file__), "--mode", "member",
            "--bootstrap", args.bootstrap, "--topic", args.topic, "--group", args.group,
            "--instance", instance, "--stop-file", self.stop_file, "--strategy", args.strategy,
            "--client", args.client,
        ]
        self.process = subprocess.Popen(command, stdout=self.out, stderr=subprocess.STDOUT)

    def lines(self):
        with open(self.stdout_path) as f:
            return f.read().splitlines()

    def events(self):
        """The rebalance callbacks so far, in order: ("ASSIGN" | "REVOKE", {partitions})."""
        found = []
        for line in self.lines():
            kind, _, rest = line.partition(" ")
            if kind in ("ASSIGN", "REVOKE"):
                found.append((kind, {int(p) for p in rest.split(",") if p}))
        return found

    def assignment(self):
        """The partitions held now according to the callbacks (None before the first): an eager
        assignor revokes all and assigns all, a cooperative one revokes and assigns changes."""
        held = None
        for kind, partitions in self.events():
            held = (held or set()) | partitions if kind == "ASSIGN" else (held or set()) - partitions
        return held

    def member_id(self):
        ids = [line.split(" ", 1)[1] for line in self.lines() if line.startswith("MEMBER ")]
        return ids[-1] if ids else None

    def consumed(self):
        found = []
        for line in self.lines():
            parts = line.split(" ")
            if parts[0] == "CONSUMED":
                found.append((int(parts[1]), int(parts[2]), parts[3]))
        return found

    def stop(self):
        open(self.stop_file, "w").close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            fail(f"member {self.name} did not close within 30 s")
        if "CLOSED" not in self.lines():
            fail(f"member {self.name} did not close cleanly: {self.lines()[-5:]}")

    def kill(self):
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def pause(self):
        os.kill(self.process.pid, signal.SIGSTOP)


def wait_for(what, condition, seconds):
    deadline = Deadline(seconds)
    while not condition():
        if deadline.expired():
            fail(f"not within {seconds} s: {what}")
        time.sleep(0.2)


def describe(args):
    client = admin(args)  # kept alive until the future is done
    futures = client.describe_consumer_groups([args.group], request_timeout=20)
    return futures[args.group].result(timeout=30)


def check_group(args, members):
    """DescribeGroups: Stable, and exactly `members` (instance id -> member id)."""
    group = describe(args)
    state = str(group.state)
    found = {m.group_instance_id: m.member_id for m in group.members}
    if "STABLE" not in state.upper() or found != members:
        fail(f"the group is {state} with members {found}, expected Stable with {members}")


def check_routing(args, members, first, count):
    """Every message first..count is consumed, by the member whose assignment covers it."""
    owner = {}
    for member in members:
        for p in member.assignment():
            owner[p] = member

    def missing():
        seen = set()
        for member in members:
            for partition, offset, text in member.consumed():
                index = offset * PARTITIONS + partition
                if text != value(index).decode():
                    fail(f"{member.name}: partition {partition} offset {offset} holds {text!r}")
                if first <= index < count:
                    if owner[partition] is not member:
                        fail(f"message {index} (partition {partition}) consumed by {member.name}, "
                             f"but {owner[partition].name} holds that partition")
                    seen.add(index)
        return set(range(first, count)) - seen

    wait_for(f"messages {first}..{count} consumed", lambda: not missing(), 60)


def replace(args, members, index, how, run):
    """Stops members[index] (`how`: kill or close), starts its instance again, and checks that
    the other member saw nothing and the new process took the old one's place."""
    old = members[index]
    other = members[1 - index]
    instance = old.name.split("#")[0]
    other_events = other.events()
    old_assignment = old.assignment()
    old_id = old.member_id()
    if how == "kill":
        old.kill()
    elif how == "pause":
        old.pause()
    else:
        old.stop()
    print(f"{old.name} stopped ({how}) holding {sorted(old_assignment)}", flush=True)
    new = Member(args, instance, run)
    members[index] = new
    wait_for(f"{new.name} assigned", lambda: new.assignment() and new.member_id(), 30)
    # A rebalance would reach the other member within a heartbeat interval or two; give it
    # several before concluding there was none.
    time.sleep(4)
    if other.events() != other_events:
        fail(f"{other.name} saw a rebalance when {instance} came back: "
             f"{other.events()[len(other_events):]}")
    if new.assignment() != old_assignment or len(new.events()) != 1:
        fail(f"{new.name} got {new.events()}, expected the partitions {sorted(old_assignment)} of "
             f"{old.name} in one assignment")
    if new.member_id() == old_id:
        fail(f"{new.name} kept the old member id {old_id}")
    check_group(args, {m.name.split("#")[0]: m.member_id() for m in members})
    print(f"{new.name} took {instance}'s place with {sorted(old_assignment)} under a new member "
          f"id; {other.name} saw no rebalance", flush=True)


def run_static(args):
    create_topic(args)
    produce(args, 0, 400)
    members = [Member(args, "a", 1), Member(args, "b", 1)]
    settled = lambda: all(m.assignment() for m in members) and sorted(
        p for m in members for p in m.assignment()
    ) == list(range(PARTITIONS))
    wait_for("both members assigned, all partitions covered", settled, 60)
    # The members may still be mid-rebalance (b joining after a): wait until nothing changes.
    quiet = Deadline(60)
    events = [m.events() for m in members]
    while True:
        time.sleep(3)
        now = [m.events() for m in members]
        if now == events and settled():
            break
        if quiet.expired():
            fail(f"the group did not settle: {now}")
        events = now
    print(f"settled: a {sorted(members[0].assignment())}, b {sorted(members[1].assignment())}",
          flush=True)
    check_group(args, {"a": members[0].member_id(), "b": members[1].member_id()})
    check_routing(args, members, 0, 400)
    replace(args, members, 1, "kill", 2)
    produce(args, 400, 800)
    check_routing(args, members, 400, 800)
    replace(args, members, 0, "close", 2)
    produce(args, 800, 1200)
    check_routing(args, members, 800, 1200)
    # A zombie: b#2 is paused (no heartbeats), replaced by b#3, then resumed. Its member id is
    # fenced: librdkafka gets FENCED_INSTANCE_ID and stops with a fatal error, and the group
    # goes on with b#3 undisturbed.
    if args.client != "confluent":
        for member in members:
            member.stop()
        print("OK static: two replacements, no rebalance of the other member, assignments kept")
        return
    zombie = members[1]
    replace(args, members, 1, "pause", 3)
    os.kill(zombie.process.pid, signal.SIGCONT)
    wait_for(f"{zombie.name} fenced", lambda: any(
        l.startswith("FATAL") and "FENCED" in l.upper() for l in zombie.lines()), 30)
    zombie.process.wait(timeout=30)
    print(f"{zombie.name} resumed and was fenced: "
          f"{[l for l in zombie.lines() if l.startswith('FATAL')][0]}", flush=True)
    produce(args, 1200, 1600)
    check_routing(args, members, 1200, 1600)
    check_group(args, {m.name.split("#")[0]: m.member_id() for m in members})
    for member in members:
        member.stop()
    print("OK static: three replacements, no rebalance of the other member, assignments kept, "
          "the resumed zombie fenced")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", required=True, choices=["static", "member"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--instance")
    parser.add_argument("--strategy", default="range")
    parser.add_argument("--client", default="confluent", choices=["confluent", "kafka-python"])
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--seconds", type=float, default=150)
    args = parser.parse_args()
    if args.mode == "member":
        run_member(args)
    else:
        run_static(args)


if __name__ == "__main__":
    main()
