"""Fold order through the real broker and database: events that share instants, and
conflicting purchases, give the pure fold's state whatever order they arrive in.

The consumer's incremental path (states in memory, snapshots, re-folds at a shared
instant) runs on small batches, then `verify`, `replay` and the projections must all
say what the pure fold of the set of events says.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from services.replay.rebuild import ReplayOptions, replay
from services.replay.verify import verify
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import actual_rows, scalar
from tests.support.kafka import produce
from tests.support.streams import expected_rows, tied_stream
from tests.support.waiting import wait_until


def test_tied_stream_is_arrival_order_independent_in_the_pure_fold() -> None:
    """The expectation itself: another arrival order of the same facts, the same rows."""
    events = tied_stream(packs=40, events_per_pack=30, seed=5)
    shuffled = list(events)
    random.Random(9).shuffle(shuffled)
    assert expected_rows(shuffled) == expected_rows(events)
    assert expected_rows(list(reversed(events))) == expected_rows(events)


async def test_shared_instants_and_conflicting_purchases_through_the_consumer(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    events = tied_stream(packs=40, events_per_pack=30, seed=5)
    consumer = consumer_factory()
    consumer.start()
    distinct = len({e["id"] for e in events})
    # Several sends, so that later events meet states in memory and stored snapshots.
    step = max(1, len(events) // 6)
    for begin in range(0, len(events), step):
        await produce(kafka_bootstrap, unique_topic, events[begin : begin + step])
        sent = len({e["id"] for e in events[: begin + step]})
        wait_until(
            lambda sent=sent: scalar(ledger_database, "SELECT count(*) FROM ledger_events") == sent,
            60,
            f"{sent} ledger events\n{consumer.tail()}",
        )
    assert scalar(ledger_database, "SELECT count(*) FROM ledger_events") == distinct

    want = expected_rows(events)
    assert actual_rows(ledger_database) == want
    report = verify(ledger_database, progress=False)
    assert report.clean, report.shown
    consumer.stop()

    replay(ledger_database, ReplayOptions(progress=False))
    assert actual_rows(ledger_database) == want
    assert verify(ledger_database, progress=False).clean
