"""kafka-python 3 against keel: ListOffsets by timestamp (KafkaConsumer.offsets_for_times), and
by the earliest and latest specials (beginning_offsets, end_offsets).

Produces to a 2-partition topic: partition 0 gets records at base + 10*k, partition 1 at
base + 5 + 20*k (k = 0, 1, ...), in batches of uneven sizes (several records per batch, so some
targets fall inside a batch). Property: for a target timestamp t, the answer is the first offset
whose timestamp is >= t, with that record's timestamp; None when every timestamp is below t
(Kafka answers offset -1, timestamp -1 there, which kafka-python turns into None). --targets
picks which targets to ask about: `within` (up to the last timestamp) or `past-end` (after it).
Exits 1 on any mismatch and prints a one-line summary otherwise.
"""

import argparse
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from common import Mismatches, fail

PARTITIONS = 2


def timestamps(args):
    """Per partition, the timestamp of each offset."""
    return {
        0: [args.base_ts + 10 * k for k in range(args.count)],
        1: [args.base_ts + 5 + 20 * k for k in range(args.count // 2)],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--base-ts", type=int, required=True)
    parser.add_argument("--targets", choices=["within", "past-end"], default="within")
    args = parser.parse_args()

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    try:
        admin.create_topics(
            {args.topic: {"num_partitions": PARTITIONS, "replication_factor": 1}},
            wait_for_metadata=True,
        )
    except Exception as err:  # noqa: BLE001
        fail(f"CreateTopics {args.topic}: {err!r}")
    admin.close()

    expected = timestamps(args)
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=False, linger_ms=1000
    )
    # Uneven batches: flush after 1 record, then 2, 3, ... 24, then 1 again.
    batch, in_batch = 1, 0
    for p, stamps in expected.items():
        for k, ts in enumerate(stamps):
            producer.send(args.topic, value=f"{p}/{k}".encode(), partition=p, timestamp_ms=ts)
            in_batch += 1
            if in_batch == batch:
                producer.flush(timeout=30)
                batch, in_batch = batch % 24 + 1, 0
    producer.flush(timeout=30)
    producer.close(timeout=10)

    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None, enable_auto_commit=False)
    tps = {p: TopicPartition(args.topic, p) for p in range(PARTITIONS)}
    mismatches = Mismatches("ListOffsets")
    beginning = consumer.beginning_offsets(list(tps.values()))
    end = consumer.end_offsets(list(tps.values()))
    for p, tp in tps.items():
        if (beginning[tp], end[tp]) != (0, len(expected[p])):
            mismatches.add(
                f"partition {p}: earliest/latest ({beginning[tp]}, {end[tp]}), expected (0, {len(expected[p])})"
            )

    # within: before everything, each record's timestamp exactly and +-1 (all for the first 60
    # offsets, every 7th after) and the last timestamp. past-end: just after the last timestamp,
    # and long after.
    lookups = 0
    started = time.monotonic()
    for p, stamps in expected.items():
        if args.targets == "past-end":
            targets = {stamps[-1] + 1, stamps[-1] + 100_000}
        else:
            targets = {stamps[0] - 100_000, stamps[-1] - 1, stamps[-1]}
            for k, ts in enumerate(stamps):
                if k < 60 or k % 7 == 0:
                    targets.update((ts - 1, ts, ts + 1))
            targets = {t for t in targets if t <= stamps[-1]}
        for target in sorted(targets):
            want = next(((k, ts) for k, ts in enumerate(stamps) if ts >= target), None)
            got = consumer.offsets_for_times({tps[p]: target})[tps[p]]
            lookups += 1
            got = None if got is None else (got.offset, got.timestamp)
            if got != want:
                mismatches.add(f"partition {p} timestamp {target} (base+{target - args.base_ts}): got {got}, expected {want}")
    mismatches.check()
    consumer.close()
    print(
        f"ok: kafka-python offsets_for_times ({args.targets}): {lookups} lookups over "
        f"{sum(map(len, expected.values()))} records in {PARTITIONS} partitions, all first-offset-at-or-after "
        f"({time.monotonic() - started:.2f}s)"
    )


if __name__ == "__main__":
    main()
