"""Transactional producers against keel, which has no transaction coordinator: they must fail
fast with keel's reason, not retry until their timeout.

- confluent-kafka (librdkafka, FindCoordinator v2): `init_transactions(60)` must raise within
  --seconds-max, with a fatal error whose text says that keel does not support transactions.
- kafka-python (FindCoordinator v4+, batched coordinator keys): `init_transactions()` must fail
  within --seconds-max as well (its error text is the client's own: it does not show the
  broker's message).
"""

import argparse
import time

from confluent_kafka import KafkaException, Producer

from common import fail

INIT_TIMEOUT_S = 60


def confluent(args):
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "broker.address.family": "v4",
            "transactional.id": "keel-test-confluent",
        }
    )
    started = time.monotonic()
    try:
        producer.init_transactions(INIT_TIMEOUT_S)
    except KafkaException as err:
        elapsed = time.monotonic() - started
        error = err.args[0]
        text = str(error)
        print(f"confluent-kafka: init_transactions failed after {elapsed:.2f}s: {text} "
              f"(fatal={error.fatal()}, retriable={error.retriable()})", flush=True)
        if elapsed > args.seconds_max:
            fail(f"confluent-kafka took {elapsed:.1f}s to fail, more than {args.seconds_max}s")
        if "keel does not support transactions" not in text:
            fail(f"confluent-kafka's error does not give keel's reason: {text}")
        if not error.fatal() or error.retriable():
            fail(f"confluent-kafka's error is not fatal, or retriable: {text}")
        return
    fail("confluent-kafka: init_transactions succeeded against a broker without transactions")


def kafka_python(args):
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        transactional_id="keel-test-kafka-python",
        max_block_ms=INIT_TIMEOUT_S * 1000,
    )
    started = time.monotonic()
    try:
        producer.init_transactions()
    except Exception as err:  # noqa: BLE001 - any error is what is expected here
        elapsed = time.monotonic() - started
        print(f"kafka-python: init_transactions failed after {elapsed:.2f}s: {err!r}", flush=True)
        if elapsed > args.seconds_max:
            fail(f"kafka-python took {elapsed:.1f}s to fail, more than {args.seconds_max}s")
        return
    finally:
        producer.close(timeout=5)
    fail("kafka-python: init_transactions succeeded against a broker without transactions")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--seconds-max", type=float, default=10)
    args = parser.parse_args()
    confluent(args)
    kafka_python(args)
    print("OK transactions refused at once by both clients")


if __name__ == "__main__":
    main()
