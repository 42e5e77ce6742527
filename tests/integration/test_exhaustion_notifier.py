"""The exhaustion notifier's schedule against the real database and broker: exhaustions no
live process handed over are found by the periodic rescan and announced on time; a stale
schedule entry publishes nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from faststream.kafka import KafkaBroker
from sqlalchemy import create_engine

from services.consumer.ingest import BatchOutcome, ingest
from services.consumer.notices import ExhaustionNotifier
from services.consumer.records import SourceRecord
from services.infra.testing import create_topic, delete_topic
from services.settings import Settings
from services.store.connection import connect
from services.store.migrate import alembic_config, migrate
from tests.support.db import query, scalar
from tests.support.kafka import read_all
from tests.support.streams import envelope, purchase

GROUP = "notifier-test"


@pytest.fixture
def out_topic(kafka_bootstrap: str, unique_topic: str) -> Iterator[str]:
    name = f"{unique_topic}.out"
    create_topic(kafka_bootstrap, name, partitions=1)
    yield name
    delete_topic(kafka_bootstrap, name)


@pytest.fixture
async def broker(kafka_bootstrap: str) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(kafka_bootstrap)
    await broker.start()
    yield broker
    await broker.stop()


class Writer:
    """Batches straight into the database through `ingest`, as a consumer would."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.offset = 0

    async def write(self, *events: dict[str, Any]) -> BatchOutcome:
        records = []
        for item in events:
            key = str(item["data"]["userPackId"]).encode()
            records.append(SourceRecord("t", 0, self.offset, key, json.dumps(item).encode()))
            self.offset += 1
        conn = await connect(self.url)
        try:
            return await ingest(conn, GROUP, records)
        finally:
            await conn.close()


def start(pack: int, train: int, at: datetime) -> dict[str, Any]:
    data = {"userPackId": pack, "trainId": train, "trainName": "t", "userId": 9, "userName": "u"}
    return envelope(f"start-{train}", "infinite.training.started", at, data)


async def eventually(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Like `wait_until`, but yielding to the event loop the notifier runs on."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)


def notices(url: str) -> list[tuple[Any, ...]]:
    return query(
        url,
        "SELECT user_pack_id, exhausted_at, published_at, notice_id FROM exhaustion_notices"
        " ORDER BY user_pack_id",
    )


def published(url: str, pack: int) -> bool:
    return bool(
        scalar(
            url,
            "SELECT count(*) FROM exhaustion_notices"
            " WHERE user_pack_id = %s AND published_at IS NOT NULL",
            (pack,),
        )
    )


Notifiers = Callable[[float, float], Awaitable[ExhaustionNotifier]]


@pytest.fixture
async def started_notifier(
    kafka_bootstrap: str, ledger_database: str, unique_topic: str, broker: KafkaBroker
) -> AsyncIterator[Notifiers]:
    """Starts a notifier on the test's database and out topic, with the given rescan
    period and horizon; stopped after the test."""
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=ledger_database,
        events_topic=unique_topic,
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


async def test_an_exhaustion_beyond_the_horizon_when_written_is_found_by_a_rescan(
    kafka_bootstrap: str, ledger_database: str, out_topic: str, started_notifier: Notifiers
) -> None:
    notifier = await started_notifier(0.5, 1.5)
    t0 = datetime.now(UTC)
    due = t0 + timedelta(seconds=4)  # 4 s, one training: 2.5 s beyond the horizon
    # Written by "another process": nothing is handed to this notifier.
    outcome = await Writer(ledger_database).write(
        purchase(5, 9, t0 - timedelta(hours=1), 4), start(5, 51, t0)
    )
    assert outcome.exhaustions == [(5, due)]
    assert notifier.schedule.when(5) is None  # beyond the horizon: no rescan takes it

    await eventually(lambda: notifier.schedule.when(5) == due, 10, "the rescan to find it")
    assert datetime.now(UTC) < due, "the rescan scheduled it only after it fell due"
    await eventually(lambda: published(ledger_database, 5), 10, "the notice")
    await notifier.stop()

    [(pack, exhausted, published_at, notice_id)] = notices(ledger_database)
    assert (pack, exhausted) == (5, due)
    assert due <= published_at < due + timedelta(seconds=1.5)
    records = await read_all(kafka_bootstrap, out_topic, wait_seconds=3)
    assert len(records) == 1
    assert records[0].key == b"5"
    body = json.loads(records[0].value)
    assert body["id"] == notice_id
    assert body["type"] == "infinite.pack.exhausted"
    assert body["data"]["trainIds"] == [51]


async def test_a_stale_schedule_entry_publishes_nothing_early(
    kafka_bootstrap: str, ledger_database: str, out_topic: str, started_notifier: Notifiers
) -> None:
    notifier = await started_notifier(1, 5)
    writer = Writer(ledger_database)
    t0 = datetime.now(UTC)
    first = t0 + timedelta(seconds=3)
    bought = t0 - timedelta(hours=1)
    outcome = await writer.write(
        purchase(1, 9, bought, 3), start(1, 11, t0), purchase(2, 9, bought, 3), start(2, 21, t0)
    )
    notifier.watch(outcome.exhaustions)  # what app.on_batch does after a commit
    # Then, in the same process: pack 1's training stops (no exhaustion any more),
    # pack 2 gets 8 more seconds (exhausts at t0 + 11 s, beyond the horizon).
    later = t0 + timedelta(seconds=11)
    outcome = await writer.write(
        envelope(
            "stop-11",
            "infinite.training.stopped",
            t0 + timedelta(seconds=1),
            {"userPackId": 1, "trainId": 11, "reason": "completed"},
        ),
        envelope(
            "adj-2",
            "infinite.pack.adjusted",
            t0 + timedelta(seconds=1),
            {"userPackId": 2, "deltaSeconds": 8, "reason": "top-up"},
        ),
    )
    assert outcome.exhaustions == [(2, later)]
    notifier.watch(outcome.exhaustions)
    # Both packs are still scheduled for their former instant: stale entries.
    assert notifier.schedule.when(1) == first
    assert notifier.schedule.when(2) == first

    await eventually(
        lambda: 1 not in notifier.schedule and notifier.schedule.when(2) != first,
        10,
        "the stale entries to come due",
    )
    assert datetime.now(UTC) >= first
    await asyncio.sleep(0.6)  # more passes: whatever they would record, they have
    assert notices(ledger_database) == []
    assert datetime.now(UTC) < later - timedelta(seconds=5), "the check came too late"

    await eventually(lambda: published(ledger_database, 2), 15, "pack 2's notice")
    await notifier.stop()

    [(pack, exhausted, published_at, _)] = notices(ledger_database)
    assert (pack, exhausted) == (2, later)
    assert later <= published_at < later + timedelta(seconds=1.5)
    records = await read_all(kafka_bootstrap, out_topic, wait_seconds=3)
    assert [record.key for record in records] == [b"2"]


def test_the_horizon_must_exceed_the_rescan_period(kafka_bootstrap: str) -> None:
    broker = KafkaBroker(kafka_bootstrap)
    for rescan, horizon in ((30, 30), (30, 10), (0, 10)):
        with pytest.raises(ValueError, match="horizon"):
            ExhaustionNotifier(Settings(), broker, rescan_seconds=rescan, horizon_seconds=horizon)


def test_migration_0004_drops_the_exhausts_index_and_sets_the_fillfactor(
    fresh_database: str,
) -> None:
    engine = create_engine(fresh_database.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "0003")
            # A database made before revision 0004 has the index and no fillfactor.
            connection.exec_driver_sql(
                "CREATE INDEX IF NOT EXISTS packs_exhausts_idx"
                " ON packs (exhausts_at) WHERE exhausts_at IS NOT NULL"
            )
            connection.exec_driver_sql("ALTER TABLE packs RESET (fillfactor)")
    finally:
        engine.dispose()
    assert scalar(fresh_database, "SELECT to_regclass('packs_exhausts_idx')") is not None

    assert migrate(fresh_database) == "0004"
    assert scalar(fresh_database, "SELECT to_regclass('packs_exhausts_idx')") is None
    assert scalar(
        fresh_database, "SELECT reloptions FROM pg_class WHERE oid = 'packs'::regclass"
    ) == ["fillfactor=70"]
