"""Cooperative rebalancing (KIP-429) with confluent-kafka's cooperative-sticky assignor against
keel, across subscription changes and unsubscribes.

Mode `cooperative` (the test): topics A (4 partitions) and B (3 partitions), three members
m1, m2, m3 (separate processes, each told what to subscribe to through a command file). Phases:
1. all three subscribe to A;
2. m2 subscribes to A and B;
3. m3 unsubscribes;
4. m3 subscribes to A and B again;
5. m2 unsubscribes.
After each change the test waits until the group has settled (every partition of a subscribed
topic held by exactly one member that subscribes to it, nothing held twice, no change for a few
seconds; a member that keeps a partition must not have seen it revoked: only partitions that
move are), then produces messages to every subscribed topic and checks that each of them is
consumed, exactly once, and by the member holding its partition. The final assignment is
printed and must be complete.

Mode `member`: one member. It reads its command file (`SEQ TOPICS`, TOPICS comma-separated, empty
to unsubscribe, `stop` to close) and prints "SUBSCRIBED SEQ TOPICS" once it acted on it, "HOLD
t:p,..." whenever its whole assignment changes, "ASSIGN"/"REVOKE" from the (incremental)
rebalance callbacks, and "CONSUMED topic partition offset value" after committing a message
synchronously ("COMMIT FAILED ..." when a commit is refused: then it is not printed consumed).
"""

import argparse
import os
import subprocess
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common import Deadline, fail

TOPIC_PARTITIONS = {"A": 4, "B": 3}
MESSAGES_PER_PARTITION = 25
QUIET_S = 4


def topic_name(args, short):
    return f"{args.topic}-{short}"


def create_topics(args):
    client = AdminClient({"bootstrap.servers": args.bootstrap, "broker.address.family": "v4"})
    topics = [
        NewTopic(topic_name(args, t), num_partitions=n, replication_factor=1)
        for t, n in TOPIC_PARTITIONS.items()
    ]
    for name, future in client.create_topics(topics).items():
        try:
            future.result(timeout=30)
        except Exception as err:  # noqa: BLE001 - any failure is the test's failure
            fail(f"CreateTopics {name}: {err!r}")


def held_text(partitions):
    return ",".join(sorted(f"{tp.topic}:{tp.partition}" for tp in partitions))


def run_member(args):
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "broker.address.family": "v4",
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": "cooperative-sticky",
        }
    )
    on_assign = lambda c, ps: print(f"ASSIGN {held_text(ps)}", flush=True)
    on_revoke = lambda c, ps: print(f"REVOKE {held_text(ps)}", flush=True)
    done_seq = None
    shown = None
    deadline = Deadline(args.seconds)
    while not deadline.expired():
        try:
            with open(args.command_file) as f:
                command = f.read().strip()
        except FileNotFoundError:
            command = ""
        if command:
            seq, _, topics = command.partition(" ")
            if topics == "stop":
                break
            if seq != done_seq:
                wanted = [topic_name(args, t) for t in topics.split(",") if t]
                if wanted:
                    consumer.subscribe(wanted, on_assign=on_assign, on_revoke=on_revoke)
                else:
                    consumer.unsubscribe()
                done_seq = seq
                print(f"SUBSCRIBED {seq} {topics}", flush=True)
        now = held_text(consumer.assignment())
        if now != shown:
            shown = now
            print(f"HOLD {now}", flush=True)
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                print(f"ERROR {msg.error()}", flush=True)
            continue
        try:
            consumer.commit(message=msg, asynchronous=False)
        except KafkaException as err:
            print(f"COMMIT FAILED {msg.topic()} {msg.partition()} {msg.offset()} {err}", flush=True)
            continue
        print(f"CONSUMED {msg.topic()} {msg.partition()} {msg.offset()} {msg.value().decode()}",
              flush=True)
    consumer.close()
    print("CLOSED", flush=True)


class Member:
    def __init__(self, args, name):
        self.name = name
        self.command_file = f"{args.stop_file}.{name}.cmd"
        self.stdout_path = f"{args.stop_file}.{name}.out"
        self.seq = 0
        self.topics = []
        self.out = open(self.stdout_path, "w")
        command = [
            sys.executable, os.path.abspath(__file__), "--mode", "member",
            "--bootstrap", args.bootstrap, "--topic", args.topic, "--group", args.group,
            "--stop-file", args.stop_file, "--command-file", self.command_file,
        ]
        self.process = subprocess.Popen(command, stdout=self.out, stderr=subprocess.STDOUT)

    def lines(self):
        with open(self.stdout_path) as f:
            return f.read().splitlines()

    def subscribe(self, topics):
        """Tells the member to subscribe to `topics` (short names; none: unsubscribe)."""
        self.seq += 1
        self.topics = list(topics)
        with open(self.command_file + ".tmp", "w") as f:
            f.write(f"{self.seq} {','.join(topics)}\n")
        os.replace(self.command_file + ".tmp", self.command_file)
        seq = str(self.seq)
        wait_for(f"{self.name} subscribed to {topics}",
                 lambda: any(l.split(" ")[:2] == ["SUBSCRIBED", seq] for l in self.lines()), 30)

    def held(self):
        """{(topic short name, partition)} held now."""
        holds = [l for l in self.lines() if l.startswith("HOLD")]
        if not holds:
            return set()
        text = holds[-1][len("HOLD"):].strip()
        found = set()
        for item in filter(None, text.split(",")):
            topic, partition = item.rsplit(":", 1)
            found.add((topic.rsplit("-", 1)[1], int(partition)))
        return found

    def revoked_since(self, line_count):
        """{(topic short name, partition)} revoked (or lost) in lines line_count.. of output."""
        found = set()
        for line in self.lines()[line_count:]:
            if line.startswith("REVOKE"):
                for item in filter(None, line[len("REVOKE"):].strip().split(",")):
                    topic, partition = item.rsplit(":", 1)
                    found.add((topic.rsplit("-", 1)[1], int(partition)))
        return found

    def consumed(self):
        found = []
        for line in self.lines():
            parts = line.split(" ")
            if parts[0] == "CONSUMED":
                found.append((parts[1].rsplit("-", 1)[1], int(parts[2]), int(parts[3]), parts[4]))
        return found

    def stop(self):
        with open(self.command_file, "w") as f:
            f.write("0 stop\n")
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            fail(f"member {self.name} did not close within 30 s")
        if "CLOSED" not in self.lines():
            fail(f"member {self.name} did not close cleanly: {self.lines()[-5:]}")


def wait_for(what, condition, seconds):
    deadline = Deadline(seconds)
    while not condition():
        if deadline.expired():
            fail(f"not within {seconds} s: {what}")
        time.sleep(0.2)


def assignment_problems(members):
    """What is wrong with the members' holdings now (empty: a complete, exclusive assignment)."""
    problems = []
    owner = {}
    for member in members:
        for tp in member.held():
            if tp[0] not in member.topics:
                problems.append(f"{member.name} holds {tp} without subscribing to {tp[0]}")
            if tp in owner:
                problems.append(f"{tp} held by {owner[tp].name} and {member.name}")
            owner[tp] = member
    subscribed = {t for m in members for t in m.topics}
    for topic in subscribed:
        for p in range(TOPIC_PARTITIONS[topic]):
            if (topic, p) not in owner:
                problems.append(f"{(topic, p)} held by nobody")
    return problems, owner


def settle(members, what):
    """Waits until the assignment is complete and exclusive and has not changed for QUIET_S."""
    deadline = Deadline(90)
    last = None
    since = time.monotonic()
    while True:
        problems, owner = assignment_problems(members)
        now = {m.name: sorted(m.held()) for m in members}
        if now != last:
            last, since = now, time.monotonic()
        elif not problems and time.monotonic() - since >= QUIET_S:
            print(f"settled after {what}: {now}", flush=True)
            return owner
        if deadline.expired():
            fail(f"no complete assignment within 90 s after {what}: {problems}; holdings {now}")
        time.sleep(0.2)


def produce_phase(args, phase, topics):
    """MESSAGES_PER_PARTITION messages to every partition of `topics`; returns their
    {(topic, partition, value)}."""
    producer = Producer({"bootstrap.servers": args.bootstrap, "broker.address.family": "v4"})
    sent = set()
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    for topic in topics:
        for p in range(TOPIC_PARTITIONS[topic]):
            for i in range(MESSAGES_PER_PARTITION):
                text = f"phase{phase}-{topic}{p}-{i}"
                producer.produce(topic_name(args, topic), value=text.encode(), partition=p,
                                 on_delivery=report)
                sent.add((topic, p, text))
    if producer.flush(60) != 0 or failures:
        fail(f"produce: {len(failures)} failed deliveries, first {failures[:3]}")
    return sent


def check_phase(members, owner, phase, sent):
    """Every message of `phase` consumed exactly once, by the holder of its partition."""
    prefix = f"phase{phase}-"

    def deliveries():
        found = {}
        for member in members:
            for topic, partition, _offset, text in member.consumed():
                if text.startswith(prefix):
                    found.setdefault((topic, partition, text), []).append(member.name)
        return found

    wait_for(f"phase {phase}: all {len(sent)} messages consumed",
             lambda: set(deliveries()) >= sent, 60)
    time.sleep(1)  # a duplicate delivery would show up by now
    for (topic, partition, text), names in sorted(deliveries().items()):
        holder = owner[(topic, partition)].name
        if names != [holder]:
            fail(f"phase {phase}: {text} consumed by {names}, expected once by {holder}")
    print(f"phase {phase}: {len(sent)} messages consumed once each by their partition's holder",
          flush=True)


def run_cooperative(args):
    create_topics(args)
    members = [Member(args, name) for name in ("m1", "m2", "m3")]
    m1, m2, m3 = members
    steps = [
        ("all subscribe to A", lambda: [m.subscribe(["A"]) for m in members]),
        ("m2 subscribes to A and B", lambda: m2.subscribe(["A", "B"])),
        ("m3 unsubscribes", lambda: m3.subscribe([])),
        ("m3 subscribes to A and B", lambda: m3.subscribe(["A", "B"])),
        ("m2 unsubscribes", lambda: m2.subscribe([])),
    ]
    held = {m.name: set() for m in members}
    marks = {m.name: 0 for m in members}
    for phase, (what, change) in enumerate(steps, start=1):
        change()
        owner = settle(members, what)
        # Cooperative: a member gives up only the partitions that move away from it; one it
        # keeps is never revoked (nor lost: confluent-kafka reports a loss as a revocation).
        for m in members:
            revoked = m.revoked_since(marks[m.name])
            kept = held[m.name] & m.held()
            if revoked & kept:
                fail(f"after {what}: {m.name} kept {sorted(kept)} but saw {sorted(revoked & kept)} "
                     f"revoked")
            held[m.name], marks[m.name] = m.held(), len(m.lines())
        topics = sorted({t for m in members for t in m.topics})
        sent = produce_phase(args, phase, topics)
        check_phase(members, owner, phase, sent)
    problems, owner = assignment_problems(members)
    if problems:
        fail(f"final assignment: {problems}")
    final = {f"{t}{p}": m.name for (t, p), m in sorted(owner.items())}
    for member in members:
        member.stop()
    print(f"OK cooperative: {len(steps)} phases; final assignment {final}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", required=True, choices=["cooperative", "member"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--command-file")
    parser.add_argument("--seconds", type=float, default=170)
    args = parser.parse_args()
    if args.mode == "member":
        run_member(args)
    else:
        run_cooperative(args)


if __name__ == "__main__":
    main()
