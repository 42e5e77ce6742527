"""Reads at `now` with leases: the SQL the API runs = the Python rules = the fold with the
lapses applied.

Histories of one pack with leases and heartbeats are drawn, folded and written as the
consumer writes them (sessions whose lease end passed stay open in the read model until
a later event of the pack is applied). At drawn instants after the last event:
- the read functions of `services.store.schema` (`ledger_remaining`, `ledger_status`,
  `ledger_running`, `ledger_session_end`, `ledger_session_seconds`) give what
  `projections.rules` / `projections.fold` give for the same state;
- and those give what the fold gives once the lapses are applied: the fold of the same
  events and one more that changes nothing (a heartbeat of a training never started) at
  that instant.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.envelope import AnyPackEvent
from projections import rules
from projections.fold import FoldResult, fold, remaining_at, status_at
from projections.leases import running_train_ids
from projections.read_models import pack_row, usage_row
from services.consumer.ingest import ingest
from services.consumer.records import SourceRecord
from services.store import projection_sql
from services.store.connection import connect
from tests.api.support import (
    LOG_DETAIL,
    LOG_LIST,
    PACK_DETAIL,
    PACK_LIST,
    FixedClock,
    asgi_client,
    bearer,
    ok,
    shanghai,
)
from tests.support.examples import examples
from tests.support.histories import histories
from tests.unit.event_factory import PACK, entries, heartbeat

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
PAGE = {"order": [], "pageNum": 1, "pageSize": 10}
NOBODY = 999  # a training that never starts: its heartbeat only moves the fold to `at`

PACK_READS = """
SELECT ledger_remaining(duration_type, granted, charged, open_starts, open_lease_ends, %(at)s),
       ledger_status(duration_type, granted, charged, open_starts, open_lease_ends,
                     activity_end_time, %(at)s),
       ledger_running(open_starts, open_lease_ends, %(at)s),
       ledger_running_train_ids(open_train_ids, open_lease_ends, %(at)s)
FROM packs
"""
RECORD_READS = """
SELECT log_id, ledger_session_end(end_time, lease_ends_at, %(at)s),
       ledger_session_seconds(start_time, end_time, lease_ends_at, %(at)s), lease_ends_at
FROM usage_records ORDER BY log_id
"""


async def _write(url: str, result: FoldResult) -> None:
    state = result.state
    rows = [usage_row(state, record) for record in result.records.values()]
    conn = await connect(url)
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM usage_records")
            await conn.execute("DELETE FROM packs")
            await projection_sql.write_packs(conn, [pack_row(state)])
            await projection_sql.write_usage(conn, [], projection_sql.usage_lines(rows), b"")
    finally:
        await conn.close()


def _sql_reads(url: str, instant: datetime) -> tuple[Any, list[Any]]:
    with psycopg.connect(url) as conn:
        (pack,) = conn.execute(PACK_READS, {"at": instant}).fetchall()
        records = conn.execute(RECORD_READS, {"at": instant}).fetchall()
    return tuple(pack), [tuple(row) for row in records]


def _python_reads(result: FoldResult, instant: datetime) -> tuple[Any, list[Any]]:
    state = result.state
    pack = (
        remaining_at(state, instant),
        status_at(state, instant),
        rules.running_at(state.open_lease_ends, instant),
        running_train_ids(state, instant),
    )
    records = [
        (
            log_id,
            rules.session_end(r.end_time, r.lease_ends_at, instant),
            rules.session_seconds(r.start_time, r.end_time, r.lease_ends_at, instant),
            r.lease_ends_at,
        )
        for log_id, r in sorted(result.records.items())
    ]
    return pack, records


def _lapses_applied(events: list[AnyPackEvent], instant: datetime) -> tuple[Any, list[Any]]:
    """The reads of the fold with one more event at `instant` (applied before the lapses
    due at that very instant: they are reads' to take, `<= now`)."""
    probed = fold(PACK, entries([*events, heartbeat(instant, NOBODY, event_id="probe")]))
    state = probed.state
    running = sum(
        1
        for r in state.open_sessions.values()
        if r.lease_ends_at is None or r.lease_ends_at > instant
    )
    pack = (
        remaining_at(state, instant),
        status_at(state, instant),
        running,
        running_train_ids(state, instant),
    )
    records = [
        (
            log_id,
            rules.session_end(r.end_time, r.lease_ends_at, instant),
            rules.elapsed_seconds(
                r.start_time, rules.session_end(r.end_time, r.lease_ends_at, instant) or instant
            ),
            r.lease_ends_at,
        )
        for log_id, r in sorted(probed.records.items())
    ]
    return pack, records


@settings(
    max_examples=examples(80),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(leases=True), later=st.lists(st.sampled_from([0, 0.5, 3, 11.75, 40])))
def test_reads_at_now_agree_in_sql_python_and_the_fold(
    history: tuple[list[AnyPackEvent], datetime], later: list[float], db_url: str
) -> None:
    events, now = history
    result = fold(PACK, entries(events))
    asyncio.run(_write(db_url, result))
    for instant in [now, *(now + timedelta(seconds=s) for s in later)]:
        python = _python_reads(result, instant)
        assert _sql_reads(db_url, instant) == python
        assert _lapses_applied(events, instant) == python


# --- the four endpoints, live and as of an instant -------------------------------------


async def test_a_silent_session_through_the_endpoints_live_and_as_of(
    db_url: str, make_app: Callable[..., FastAPI], clock: FixedClock
) -> None:
    """A training with a 600 s lease heartbeats once, 5 minutes in, then goes silent: from
    its lease end on (25 minutes after the purchase) the pack is free, its time stops
    falling, and its usage record ends then - live, and as of any later instant."""
    tag = uuid.uuid4().hex[:12]
    owner, pack = random.randint(10**6, 10**9), random.randint(10**9, 10**15)
    started, beat = T0 + timedelta(minutes=10), T0 + timedelta(minutes=15)
    lease_end = beat + timedelta(seconds=600)
    docs = [
        _doc(
            f"{tag}-p",
            "infinite.pack.purchased",
            T0,
            pack,
            userId=owner,
            packName="p",
            packDurationType="type.timing",
            durationSeconds=7200,
            nodeList=[],
        ),
        _doc(
            f"{tag}-s",
            "infinite.training.started",
            started,
            pack,
            trainId=1,
            trainName="t",
            userId=owner,
            userName="u",
            leaseSeconds=600,
        ),
        _doc(f"{tag}-h", "infinite.training.heartbeat", beat, pack, trainId=1),
    ]
    records = [
        SourceRecord(f"leases-{tag}", 0, n, b"k", orjson.dumps(doc)) for n, doc in enumerate(docs)
    ]
    conn = await connect(db_url)
    try:
        assert (await ingest(conn, "leases", records)).appended == 3
    finally:
        await conn.close()
    log_id = rules.log_id_for(f"{tag}-s")
    headers = bearer(owner)

    async def answers(**extra: Any) -> tuple[dict[str, Any], ...]:
        async with asgi_client(make_app()) as client:
            detail = await ok(client, PACK_DETAIL, {"userPackId": pack, **extra}, headers)
            free = await ok(client, PACK_LIST, {"isFreeStatus": True, **extra}, headers)
            logs = await ok(client, LOG_LIST, {**PAGE, **extra}, headers)
            one = await ok(client, LOG_DETAIL, {"logId": log_id, **extra}, headers)
        return detail, free, logs, one

    clock.set(T0 + timedelta(minutes=40))
    detail, free, logs, one = await answers()
    assert (detail["userPackStatus"], detail["duration"]) == ("status.free", 7200 - 900)
    assert [item["userPackId"] for item in free["userPackList"]] == [str(pack)]
    (item,) = logs["list"]
    assert (item["endTime"], item["leaseEndsAt"], item["duration"]) == (
        shanghai(lease_end),
        shanghai(lease_end),
        "15分0秒",
    )
    assert (one["endTime"], one["leaseEndsAt"], one["duration"]) == (
        shanghai(lease_end),
        shanghai(lease_end),
        900,
    )
    assert await answers(asOf=shanghai(T0 + timedelta(minutes=40))) == (detail, free, logs, one)

    detail, free, logs, one = await answers(asOf=shanghai(T0 + timedelta(minutes=20)))
    assert (detail["userPackStatus"], detail["duration"]) == ("status.training", 7200 - 600)
    assert free["userPackList"] == []
    assert (one["endTime"], one["leaseEndsAt"], one["duration"]) == (None, shanghai(lease_end), 600)
    # As of before the heartbeat, the lease ended 10 minutes after the start.
    _, _, _, early = await answers(asOf=shanghai(T0 + timedelta(minutes=12)))
    assert early["leaseEndsAt"] == shanghai(started + timedelta(seconds=600))


def _doc(id_: str, type_: str, time: datetime, pack: int, **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": id_,
        "source": "tests",
        "type": type_,
        "time": time.isoformat(),
        "data": {"userPackId": pack, **data},
    }
