"""`ledger consume` killed with SIGKILL again and again while events flow: after it has
caught up, every event is applied exactly once and the read models equal the pure fold.

The helpers (a paced background producer, the catch-up wait and the exactly-once
assertions) are in `tests/support/exactly_once.py`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from tests.support.consumer_process import ConsumerProcess
from tests.support.exactly_once import (
    PacedProducer,
    applied,
    assert_applied_exactly_once,
    assignments,
    open_transactions,
    since_last_start,
    wait_caught_up,
)
from tests.support.streams import stream
from tests.support.waiting import wait_until

KILLS = 5


@pytest.mark.slow
def test_sigkill_during_a_stream_loses_nothing_and_counts_nothing_twice(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    events = stream(packs=300, events_per_pack=100, seed=2026, tag="crash-")
    segment = len(events) // (KILLS + 2)
    rng = random.Random(424242)
    consumer = consumer_factory()
    kills: list[tuple[int, int, int]] = []  # (records sent, events applied, open transactions)

    with PacedProducer(kafka_bootstrap, unique_topic, events, allowed=segment) as producer:
        consumer.start()
        for _ in range(KILLS):
            # A SIGKILLed member stays in the group until its session times out (~10 s):
            # wait for this start to be given its partitions, let it work for a while and
            # kill it, most likely in the middle of a batch's transaction.
            wait_until(
                lambda: bool(assignments(since_last_start(consumer))),
                45,
                f"partitions for start #{consumer.starts}\n{consumer.tail()}",
            )
            before = applied(ledger_database)
            producer.allow(segment)
            # Kill it once it works on the new records: a restarted member first waits for
            # the rebalance and its first fetch, which on a loaded machine took longer than
            # any fixed pause (the kills then all hit a consumer that had applied nothing).
            wait_until(
                lambda before=before: applied(ledger_database) > before,
                45,
                f"progress after start #{consumer.starts}\n{consumer.tail()}",
            )
            time.sleep(rng.uniform(0.0, 1.0))
            busy = _wait_for_a_transaction(ledger_database, seconds=3.0)
            kills.append((producer.sent, applied(ledger_database), busy))
            consumer.kill()
            consumer.start()
        producer.finish()

    ends = wait_caught_up(ledger_database, kafka_bootstrap, unique_topic, 90, consumer.tail)
    assert consumer.process is not None and consumer.process.poll() is None, consumer.tail()

    distinct = len({item["id"] for item in events})
    # The kills hit a flowing stream: mid-way through the records, with progress between
    # them, and at least one of them inside a batch's transaction.
    assert all(0 < sent < len(events) for sent, _, _ in kills), kills
    assert all(done < distinct for _, done, _ in kills), kills
    assert 0 < kills[1][1] < kills[-1][1], kills
    assert any(busy for _, _, busy in kills), kills
    assert consumer.starts == KILLS + 1

    assert_applied_exactly_once(ledger_database, unique_topic, events, ends)


def _wait_for_a_transaction(url: str, seconds: float) -> int:
    """Open transactions of the consumer, polled until there is one (or `seconds` pass):
    a batch takes milliseconds, so a kill at a random instant would mostly hit the
    consumer between batches."""
    deadline = time.monotonic() + seconds
    while True:
        busy = open_transactions(url)
        if busy or time.monotonic() > deadline:
            return busy
