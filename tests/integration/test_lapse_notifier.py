"""The lapse notifier against the real database and broker, with the usage records written
by hand as a consumer writes them (the fold's lease rules are tested elsewhere): a lapse
is found open (its lease end passed, no later event) or closed (persisted by a consumer
with reason leaseExpired), announced once in either form, whichever process finds it, and
a heartbeat that moved the lease end on is met when the old instant falls due.

The end-to-end path (events through the broker, `ledger consume`) is
tests/integration/test_lapse_notices.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from faststream.kafka import KafkaBroker

from projections import rules
from services.consumer.notices import ExhaustionNotifier
from services.settings import Settings
from services.store import live_sql
from tests.integration.test_exhaustion_notifier import eventually
from tests.support.db import query
from tests.support.kafka import read_all

S = timedelta(seconds=1)


Notifiers = Callable[[float, float], Awaitable[ExhaustionNotifier]]


@pytest.fixture
async def notifiers(
    kafka_bootstrap: str, ledger_database: str, unique_topic: str, broker: KafkaBroker
) -> AsyncIterator[Notifiers]:
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=ledger_database,
        events_topic=unique_topic,
        low_balance_seconds="",
    )
    made: list[ExhaustionNotifier] = []

    async def make(rescan: float, horizon: float) -> ExhaustionNotifier:
        notifier = ExhaustionNotifier(
            settings, broker, rescan_seconds=rescan, horizon_seconds=horizon
        )
        made.append(notifier)
        await notifier.start()
        return notifier

    yield make
    for notifier in made:
        await notifier.stop()


def write(url: str, sql: str, params: tuple[Any, ...], notify: int | None = None) -> None:
    """One transaction, as a consumer's batch: the rows, and the NOTIFY of the pack."""
    with psycopg.connect(url) as conn:
        conn.execute(sql, params)
        if notify is not None:
            chunks = list(live_sql.payload_chunks([notify]))
            conn.execute("SELECT pg_notify('ledger_packs', c) FROM unnest(%s::text[]) c", (chunks,))


def open_session(
    url: str, pack: int, train: int, start: datetime, lease_end: datetime, notify: bool = True
) -> int:
    log_id = rules.log_id_for(f"start-{pack}-{train}")
    write(
        url,
        "INSERT INTO usage_records (log_id, user_pack_id, owner_user_id, train_id, train_name,"
        " user_id, user_name, start_time, start_event_id, lease_ends_at, lease_seconds)"
        " VALUES (%s, %s, 9, %s, 't', 9, 'u', %s, %s, %s, 2)",
        (log_id, pack, train, start, f"start-{pack}-{train}", lease_end),
        pack if notify else None,
    )
    return log_id


def lapse(url: str, log_id: int, pack: int, at: datetime, notify: bool = True) -> None:
    """What the consumer persists when it folds an event after the lease end `at` (no
    stop event: a lapse)."""
    write(
        url,
        "UPDATE usage_records SET end_time = %s, lease_ends_at = %s,"
        " stop_reason = 'leaseExpired', charged_seconds = 0, overrun_seconds = 0"
        " WHERE log_id = %s",
        (at, at, log_id),
        pack if notify else None,
    )


def heartbeat(url: str, log_id: int, pack: int, lease_end: datetime) -> None:
    write(
        url,
        "UPDATE usage_records SET lease_ends_at = %s WHERE log_id = %s",
        (lease_end, log_id),
        pack,
    )


def outbox(url: str) -> list[tuple[Any, ...]]:
    return query(
        url,
        "SELECT notice_id, user_pack_id, log_id, train_id, lapsed_at, published_at, payload"
        " FROM lapse_notices ORDER BY lapsed_at, notice_id",
    )


def all_published(url: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        rows = outbox(url)
        return len(rows) >= count and all(row[5] is not None for row in rows)

    return check


async def test_an_open_lapse_is_announced_once_within_a_second_of_the_lease_end(
    kafka_bootstrap: str, ledger_database: str, out_topic: str, notifiers: Notifiers
) -> None:
    # A long rescan period: after the first rescan, only the NOTIFY schedules the pack.
    notifier = await notifiers(60, 120)
    await asyncio.sleep(0.5)  # its LISTEN connection is up
    t0 = datetime.now(UTC)
    end = t0 + 2 * S
    log_id = open_session(ledger_database, 1, 11, t0, end)
    await eventually(lambda: notifier.lapses.when(1) == end, 3, "the NOTIFY to schedule it")
    await eventually(all_published(ledger_database, 1), 10, "the notice")
    await asyncio.sleep(1)  # four more passes: nothing more

    [(notice_id, pack, logged, train, lapsed_at, published_at, payload)] = outbox(ledger_database)
    assert (pack, logged, train, lapsed_at) == (1, log_id, 11, end)
    assert notice_id == rules.lapse_notice_id(1, log_id, end)
    assert end <= published_at < end + 1.5 * S, published_at - end
    records = await read_all(kafka_bootstrap, out_topic, wait_seconds=3)
    assert [record.key for record in records] == [b"1"]
    body = json.loads(records[0].value)
    assert body == payload
    assert body["id"] == notice_id and body["type"] == "infinite.training.lapsed"
    assert body["subject"] == "1" and body["source"] == "infinite/ledger"
    assert body["data"] == {
        "userPackId": 1,
        "trainId": 11,
        "logId": log_id,
        "lapsedAt": end.isoformat(),
    }
    assert datetime.fromisoformat(body["time"]) == end


async def test_a_heartbeat_moves_the_notice_to_the_new_lease_end(
    ledger_database: str, out_topic: str, notifiers: Notifiers
) -> None:
    notifier = await notifiers(60, 120)
    await asyncio.sleep(0.5)
    t0 = datetime.now(UTC)
    log_id = open_session(ledger_database, 2, 21, t0, t0 + 2 * S)
    await eventually(lambda: notifier.lapses.when(2) == t0 + 2 * S, 3, "the schedule")
    heartbeat(ledger_database, log_id, 2, t0 + 4 * S)  # before the first instant
    await eventually(lambda: notifier.lapses.when(2) == t0 + 4 * S, 3, "the new instant")
    await eventually(lambda: datetime.now(UTC) > t0 + 3 * S, 5, "past the first lease end")
    assert outbox(ledger_database) == []
    await eventually(all_published(ledger_database, 1), 10, "the notice")
    [row] = outbox(ledger_database)
    assert row[4] == t0 + 4 * S


async def test_a_lapse_persisted_with_no_notifier_running_is_found_by_the_rescan(
    kafka_bootstrap: str, ledger_database: str, out_topic: str, notifiers: Notifiers
) -> None:
    t0 = datetime.now(UTC)
    # Pack 3: lapsed an hour ago and persisted by a consumer (a later event); pack 4:
    # open with its lease end passed, nobody listening; pack 5: a lease beyond the horizon.
    closed = open_session(ledger_database, 3, 31, t0 - 2 * 3600 * S, t0 - 3600 * S, False)
    lapse(ledger_database, closed, 3, t0 - 3600 * S, notify=False)
    lapsed = open_session(ledger_database, 4, 41, t0 - 10 * S, t0 - 5 * S, False)
    far = open_session(ledger_database, 5, 51, t0, t0 + 3600 * S, False)
    # A completed session is no lapse; neither is one without a lease.
    write(
        ledger_database,
        "UPDATE usage_records SET end_time = %s, stop_reason = 'completed' WHERE log_id = %s",
        (t0 + 3600 * S, far),
    )
    open_session(ledger_database, 6, 61, t0 - 10 * S, t0 + 3600 * S, False)
    write(ledger_database, "UPDATE usage_records SET lease_ends_at = NULL WHERE train_id = 61", ())

    first = await notifiers(60, 120)
    await eventually(all_published(ledger_database, 2), 10, "the rescan's notices")
    await first.stop()
    assert [(row[1], row[2], row[4]) for row in outbox(ledger_database)] == [
        (3, closed, t0 - 3600 * S),
        (4, lapsed, t0 - 5 * S),
    ]

    # The open lapse of pack 4 is persisted by a consumer now: the same lapse, no new
    # notice, whoever hears it - two notifiers, each with its first rescan.
    lapse(ledger_database, lapsed, 4, t0 - 5 * S)
    await notifiers(60, 120)
    await notifiers(60, 120)
    await asyncio.sleep(1.5)
    assert len(outbox(ledger_database)) == 2
    records = await read_all(kafka_bootstrap, out_topic, wait_seconds=3, expect=3)
    assert sorted(json.loads(r.value)["id"] for r in records) == sorted(
        row[0] for row in outbox(ledger_database)
    )


async def test_two_notifiers_announce_a_lapse_once(
    kafka_bootstrap: str, ledger_database: str, out_topic: str, notifiers: Notifiers
) -> None:
    one = await notifiers(60, 120)
    two = await notifiers(60, 120)
    await asyncio.sleep(0.5)
    t0 = datetime.now(UTC)
    for pack in range(10, 20):
        open_session(ledger_database, pack, pack * 10, t0, t0 + 1.5 * S)
    await eventually(lambda: len(one.lapses) == len(two.lapses) == 10, 3, "both to schedule")
    await eventually(all_published(ledger_database, 10), 10, "the notices")
    await asyncio.sleep(1)
    assert len(outbox(ledger_database)) == 10
    records = await read_all(kafka_bootstrap, out_topic, wait_seconds=3, expect=11)
    assert len(records) == 10
    assert sorted(int(r.key) for r in records) == list(range(10, 20))


async def test_a_later_lapse_of_the_same_session_is_a_new_notice(
    ledger_database: str, out_topic: str, notifiers: Notifiers
) -> None:
    """A late heartbeat, timed inside the lease, arrives after the lapse was announced:
    the session runs on to its new lease end. The first notice stands; the new lapse is
    another fact, announced with its own id (docs/events.md, Lapse notices)."""
    notifier = await notifiers(60, 120)
    await asyncio.sleep(0.5)
    t0 = datetime.now(UTC)
    log_id = open_session(ledger_database, 7, 71, t0 - 5 * S, t0 - S)
    await eventually(all_published(ledger_database, 1), 10, "the first notice")
    heartbeat(ledger_database, log_id, 7, t0 + 2 * S)
    await eventually(lambda: notifier.lapses.when(7) == t0 + 2 * S, 3, "the new lease end")
    await eventually(all_published(ledger_database, 2), 10, "the second notice")
    rows = outbox(ledger_database)
    assert [row[4] for row in rows] == [t0 - S, t0 + 2 * S]
    assert rows[0][0] != rows[1][0]
    assert {row[2] for row in rows} == {log_id}


async def test_two_sessions_of_a_pack_lapse_in_turn_each_announced_and_notified(
    ledger_database: str, out_topic: str, notifiers: Notifiers
) -> None:
    """The schedule holds one instant per pack (its first lapse): once that is recorded,
    the next one is scheduled. Each lapse is NOTIFYed (the live stream shows the pack
    change with no event)."""
    heard: list[tuple[datetime, str]] = []
    listener = await psycopg.AsyncConnection.connect(ledger_database, autocommit=True)
    await listener.execute(live_sql.LISTEN)

    async def listen() -> None:
        async for notification in listener.notifies():
            heard.append((datetime.now(UTC), notification.payload))

    listening = asyncio.create_task(listen())
    try:
        await notifiers(60, 120)
        await asyncio.sleep(0.5)
        t0 = datetime.now(UTC)
        open_session(ledger_database, 8, 81, t0, t0 + 1.5 * S)
        open_session(ledger_database, 8, 82, t0, t0 + 3 * S)
        await eventually(all_published(ledger_database, 2), 10, "both notices")
    finally:
        listening.cancel()
        await listener.close()
    rows = outbox(ledger_database)
    assert [(row[3], row[4]) for row in rows] == [(81, t0 + 1.5 * S), (82, t0 + 3 * S)]
    for _, _, _, _, lapsed_at, published_at, _ in rows:
        assert lapsed_at <= published_at < lapsed_at + 1.5 * S, published_at - lapsed_at
    # Two NOTIFYs of the writes, then one at each lapse, within a second of it.
    after = [at for at, payload in heard if payload == "8" and at >= t0 + 1.5 * S]
    assert len(after) == 2, heard
    assert after[0] < t0 + 2.5 * S and t0 + 3 * S <= after[1] < t0 + 4 * S
