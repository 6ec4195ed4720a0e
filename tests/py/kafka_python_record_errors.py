"""kafka-python 3 and per-record errors (KIP-467) from keel, with the broker's messages.

Creates a one-partition topic with cleanup.policy=compact and sends --count messages in one
batch (linger_ms long enough that they all wait for the same request), of which those at
--keyless (indexes, comma-separated) have no key. The broker refuses the batch with
INVALID_RECORD and names each keyless record in record_errors with Kafka's reason. kafka-python
fails each named send with InvalidRecordError carrying that reason ("Compacted topic cannot
accept message without key in topic partition T-0.") and every other send of the batch with a
plain KafkaError of its own saying the batch held invalid records. Without record_errors, every
send fails alike with InvalidRecordError.

Then the keyed messages alone are sent again and must get offsets 0..k-1: nothing of the refused
batch was written. They go through a new producer: kafka-python's idempotent producer (its
default) takes a refused batch as a fatal error and fails every later send with the batch's
message. Prints a one-line summary; exits 1 on any mismatch.
"""

import argparse

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import InvalidRecordError, KafkaError

from common import Mismatches, fail


def create_topic(args):
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=30000)
    topic = NewTopic(args.topic, 1, 1, topic_configs={"cleanup.policy": "compact"})
    try:
        admin.create_topics([topic], timeout_ms=30000)
    except Exception as err:  # noqa: BLE001 - any failure is the test's failure
        fail(f"CreateTopics {args.topic} (compacted): {err!r}")
    admin.close()


def send(producer, args, messages):
    """Sends (index, key, value) triples; returns {index: offset or the exception}."""
    futures = [
        (i, producer.send(args.topic, key=key, value=value, partition=0))
        for i, key, value in messages
    ]
    producer.flush(60)
    outcomes = {}
    for i, future in futures:
        try:
            outcomes[i] = future.get(timeout=30).offset
        except KafkaError as err:
            outcomes[i] = err
    return outcomes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--keyless", default="0,7,8,19")
    args = parser.parse_args()
    keyless = {int(i) for i in args.keyless.split(",")}
    reason = f"Compacted topic cannot accept message without key in topic partition {args.topic}-0."

    create_topic(args)
    # Every message waits for the same request: one batch.
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=500)
    messages = [
        (i, None if i in keyless else f"key-{i}".encode(), f"value-{i}".encode())
        for i in range(args.count)
    ]
    outcomes = send(producer, args, messages)
    mismatches = Mismatches("outcomes of the mixed batch")
    for i in range(args.count):
        got = outcomes[i]
        if i in keyless:
            ok = type(got) is InvalidRecordError and got.args == (reason,)
            expected = f"InvalidRecordError({reason!r})"
        else:
            ok = type(got) is KafkaError and "invalid records" in str(got)
            expected = "KafkaError(... a batch which had one more more invalid records)"
        if not ok:
            mismatches.add(f"message {i} (key {messages[i][1]!r}): {got!r}, expected {expected}")
    mismatches.check()

    producer.close()
    keyed = [m for m in messages if m[1] is not None]
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5)
    again = send(producer, args, keyed)
    mismatches = Mismatches("offsets of the keyed messages sent again")
    for n, (i, _, _) in enumerate(keyed):
        if again[i] != n:
            mismatches.add(f"message {i}: {again[i]!r}, expected offset {n}")
    mismatches.check()
    producer.close()
    print(
        f"record errors: of {args.count} messages in one batch, the {len(keyless)} keyless "
        f"failed with InvalidRecordError({reason!r}) and the other {len(keyed)} as part of that "
        f"batch; sent again alone, the keyed ones got offsets 0..{len(keyed) - 1}"
    )


if __name__ == "__main__":
    main()
