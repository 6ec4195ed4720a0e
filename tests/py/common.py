"""Shared by the end-to-end client scripts: deterministic messages and failing loudly.

Every message is a pure function of its index (and the run's base timestamp), so a script that
produces and another that verifies (after a broker crash, say) agree on what must be there.
"""

import random
import sys
import time


def fail(message):
    """Exits 1 with `message` on stderr: the Rust test shows it as the failure."""
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


class Mismatches:
    """Collects mismatches, keeping the first few verbatim, and fails at the end if any."""

    def __init__(self, what, keep=15):
        self.what = what
        self.keep = keep
        self.count = 0
        self.kept = []

    def add(self, message):
        self.count += 1
        if len(self.kept) < self.keep:
            self.kept.append(message)

    def check(self):
        if self.count:
            shown = "\n  ".join(self.kept)
            fail(f"{self.what}: {self.count} mismatches; first {len(self.kept)}:\n  {shown}")


def message(i, base_ts, kafka_python=False):
    """Message number `i`: (key, value, headers, timestamp_ms).

    Exercises what a broker could get wrong: null keys and values, empty values, binary and
    incompressible values, a few large ones, no headers, empty and duplicate header keys, null
    header values, and timestamps that are not in offset order. kafka-python's producer refuses
    null header values and a record whose key and value are both null: `kafka_python` leaves
    those out (an empty value instead of a null one, no null header).
    """
    rng = random.Random(i)
    key = None if i % 50 == 7 else f"key-{i}".encode()
    if i % 97 == 13:
        value = b"" if kafka_python and key is None else None
    elif i % 89 == 5:
        value = b""
    elif i % 500 == 3:
        value = rng.randbytes(100_000)
    elif i % 10 == 0:
        value = rng.randbytes(rng.randrange(1, 3000))
    else:
        value = (f"value-{i}|" * rng.randrange(1, 60)).encode()
    if i % 5 == 0:
        headers = []
    else:
        headers = [("seq", str(i).encode()), ("empty", b""), ("dup", b"1"), ("dup", b"2")]
        if i % 3 == 0:
            headers.append(("bin", rng.randbytes(rng.randrange(0, 64))))
        if not kafka_python and i % 7 == 0:
            headers.append(("null", None))
    # Timestamps move around within a 100 s window after base_ts: CreateTime need not be ordered.
    timestamp = base_ts + (i * 7919) % 100_000
    return key, value, headers, timestamp


def expected_by_partition(count, partitions):
    """Message indexes per partition, in offset order: message i goes to partition i % partitions."""
    return {p: list(range(p, count, partitions)) for p in range(partitions)}


def short(data, limit=60):
    """A printable, bounded rendering of bytes for mismatch messages."""
    if data is None:
        return "None"
    text = repr(bytes(data[:limit]))
    return text + (f"...({len(data)} bytes)" if len(data) > limit else "")


class Deadline:
    """A bounded wait: `left()` seconds remain, `expired()` when none do."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.end
