"""Batches planned while the previous one commits (`services/consumer/ahead.py`), in the
real database: the projections equal the fold of every event; a plan made on states
another writer moved meanwhile, or on a batch that needed a second attempt, is not used."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import psycopg
import pytest

from services.consumer.ahead import NOTHING_IN_FLIGHT, Handoff, plan_ahead
from services.consumer.ingest import BatchOutcome, ingest, ingest_parsed
from services.consumer.parsing import parsed
from services.consumer.records import SourceRecord
from services.consumer.state_cache import StateCache
from services.replay.verify import verify
from services.store.batch_store import PostgresBatchStore
from services.store.connection import connect
from tests.support.db import actual_rows
from tests.support.streams import expected_rows, stream


def _records(arrivals: list[dict[str, Any]], topic: str = "ahead") -> list[SourceRecord]:
    return [
        SourceRecord(topic, 0, offset, b"k", json.dumps(doc).encode())
        for offset, doc in enumerate(arrivals)
    ]


async def test_batches_planned_ahead_project_every_event_exactly(ledger_database: str) -> None:
    arrivals = stream(packs=15, events_per_pack=80, seed=21)
    records = _records(arrivals)
    rng = random.Random(3)
    cache = StateCache()
    conn, side = await connect(ledger_database), await connect(ledger_database)
    planned_ahead = written = 0
    try:
        in_flight: asyncio.Task[BatchOutcome] | None = None
        previous: Handoff | None = None
        start = 0
        while start < len(records):
            size = rng.randint(1, 40)
            batch_records = records[start : start + size]
            start += size
            # As the consumer does: plan on what the batch in flight leaves, then commit.
            before = NOTHING_IN_FLIGHT if previous is None else await previous.wait()
            assert before is not None
            ahead = await plan_ahead(
                PostgresBatchStore("ahead", conn=side), parsed(batch_records), before, cache
            )
            if in_flight is not None:
                outcome = await in_flight
                planned_ahead += outcome.packs_planned_ahead
                written += outcome.packs_written
            handoff = Handoff()
            in_flight = asyncio.create_task(
                ingest_parsed(conn, "ahead", parsed(batch_records), cache, ahead, handoff)
            )
            previous = handoff
        assert in_flight is not None
        await in_flight
    finally:
        await conn.close()
        await side.close()

    assert planned_ahead > written // 2, f"{planned_ahead} of {written} packs planned ahead"
    assert actual_rows(ledger_database) == expected_rows(arrivals)
    report = verify(ledger_database, progress=False)
    assert report.clean, report.summary()


async def test_a_plan_on_a_pack_another_writer_moved_is_not_used(ledger_database: str) -> None:
    arrivals = stream(packs=4, events_per_pack=30, seed=5)
    first, second = arrivals[:60], arrivals[60:90]
    theirs_ids = {doc["id"] for doc in second}
    third = [doc for doc in arrivals[90:] if doc["id"] not in theirs_ids]
    ours, theirs = StateCache(), StateCache()
    conn, side, other = [await connect(ledger_database) for _ in range(3)]
    try:
        await ingest(conn, "ahead", _records(first), ours)
        ahead = await plan_ahead(
            PostgresBatchStore("ahead", conn=side),
            parsed(_records(third, "later")),
            NOTHING_IN_FLIGHT,
            ours,
        )
        assert ahead.packs, "nothing was planned ahead"
        # Another consumer (a rebalance) writes events of the same packs meanwhile.
        await ingest(other, "ahead", _records(second, "theirs"), theirs)
        outcome = await ingest_parsed(conn, "ahead", parsed(_records(third, "later")), ours, ahead)
    finally:
        for c in (conn, side, other):
            await c.close()

    assert outcome.packs_planned_ahead == 0  # the plan was dropped, the packs planned anew
    assert outcome.appended == len({doc["id"] for doc in third} - {doc["id"] for doc in first})
    assert actual_rows(ledger_database) == expected_rows(first + second + third)
    assert verify(ledger_database, progress=False).clean


async def test_an_id_another_writer_appended_meanwhile_fails_the_batch_whole(
    ledger_database: str,
) -> None:
    arrivals = stream(packs=3, events_per_pack=20, seed=9)
    first, rest = arrivals[:30], arrivals[30:]
    cache = StateCache()
    conn, side, other = [await connect(ledger_database) for _ in range(3)]
    try:
        await ingest(conn, "ahead", _records(first), cache)
        ahead = await plan_ahead(
            PostgresBatchStore("ahead", conn=side),
            parsed(_records(rest, "later")),
            NOTHING_IN_FLIGHT,
            cache,
        )
        # The same events reach the ledger through another writer before this batch.
        await ingest(other, "ahead", _records(rest[:5], "theirs"))
        with pytest.raises(psycopg.errors.UniqueViolation):
            await ingest_parsed(conn, "ahead", parsed(_records(rest, "later")), cache, ahead)
        # The consumer rewinds and fetches the batch again: planned in its transaction.
        outcome = await ingest(conn, "ahead", _records(rest, "later"), cache)
    finally:
        for c in (conn, side, other):
            await c.close()

    assert outcome.duplicates >= 5
    assert actual_rows(ledger_database) == expected_rows(arrivals)
    assert verify(ledger_database, progress=False).clean


async def test_a_plan_dropped_after_its_predecessor_committed_leaves_the_cache_right(
    ledger_database: str,
) -> None:
    # One pack: batch A commits; B is planned on A's states and dropped (it failed, or
    # a rebalance took it); another writer appends as many events as B had; then C. If
    # planning B had changed the states A cached, C would start from A+B, with the
    # stored event count, and project events the ledger does not hold.
    unique: dict[str, dict[str, Any]] = {}
    for doc in stream(packs=1, events_per_pack=40, seed=13):
        unique.setdefault(doc["id"], doc)
    events = list(unique.values())
    a, theirs, b, c = events[:20], events[20:25], events[25:30], events[30:]
    ours = StateCache()
    conn, side, other = [await connect(ledger_database) for _ in range(3)]
    try:
        handoff = Handoff()
        await ingest_parsed(conn, "ahead", parsed(_records(a)), ours, None, handoff)
        before = await handoff.wait()
        assert before is not None and before.states
        dropped = await plan_ahead(
            PostgresBatchStore("ahead", conn=side), parsed(_records(b, "b")), before, ours
        )
        assert dropped.packs, "B was not planned ahead"
        await ingest(other, "ahead", _records(theirs, "theirs"))
        await ingest(conn, "ahead", _records(c, "c"), ours)
    finally:
        for conn_ in (conn, side, other):
            await conn_.close()

    assert actual_rows(ledger_database) == expected_rows(a + theirs + c)
    assert verify(ledger_database, progress=False).clean


async def test_a_batch_retried_voids_its_handoff() -> None:
    handoff = Handoff()
    handoff.retried()
    assert handoff.void
    assert await handoff.wait() is None

    planned_then_retried = Handoff()
    planned_then_retried.planned(NOTHING_IN_FLIGHT)
    planned_then_retried.retried()
    assert planned_then_retried.void  # the next batch checks this before using its plan
    assert await planned_then_retried.wait() is NOTHING_IN_FLIGHT

    ended = Handoff()
    ended.ended()
    ended.planned(NOTHING_IN_FLIGHT)  # too late: the next batch stopped waiting
    assert await ended.wait() is None and not ended.void
