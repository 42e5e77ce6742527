"""The exhaustion notifier's schedule against the real database and broker: exhaustions no
live process handed over are found by the periodic rescan and announced on time; a stale
schedule entry publishes nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from faststream.kafka import KafkaBroker
from sqlalchemy import create_engine

from projections import rules
from services.consumer.ingest import BatchOutcome, ingest
from services.consumer.notices import ExhaustionNotifier
from services.consumer.records import SourceRecord
from services.settings import Settings
from services.store.connection import connect
from services.store.migrate import alembic_config, migrate
from tests.integration.test_consumer_db_outage import TcpProxy, through
from tests.support.db import query, scalar
from tests.support.kafka import read_all
from tests.support.streams import envelope, purchase

GROUP = "notifier-test"


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


def start(pack: int, train: int, at: datetime, event_id: str = "") -> dict[str, Any]:
    data = {"userPackId": pack, "trainId": train, "trainName": "t", "userId": 9, "userName": "u"}
    return envelope(event_id or f"start-{train}", "infinite.training.started", at, data)


def stop(pack: int, train: int, at: datetime) -> dict[str, Any]:
    data = {"userPackId": pack, "trainId": train, "reason": "completed"}
    return envelope(f"stop-{train}", "infinite.training.stopped", at, data)


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


async def test_an_exhaustion_notice_names_the_running_trainings_not_a_lapsed_one(
    kafka_bootstrap: str, ledger_database: str, out_topic: str, started_notifier: Notifiers
) -> None:
    # 20 s; two trainings at t0, one with a 5 s lease and no heartbeat: both use 10 s by
    # t0 + 5 s, where it lapses; the other uses the last 10 s alone. Nothing follows, so
    # the stored row still lists both as open: the notice must leave the lapsed one out.
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    leased = start(7, 71, t0)
    leased["data"]["leaseSeconds"] = 5
    outcome = await Writer(ledger_database).write(
        purchase(7, 9, t0 - timedelta(hours=1), 20), leased, start(7, 72, t0)
    )
    assert outcome.exhaustions == [(7, t0 + timedelta(seconds=15))]
    await started_notifier(0.5, 1.5)
    await eventually(lambda: published(ledger_database, 7), 10, "the notice")

    assert list(outbox(ledger_database).values()) == [(7, t0 + timedelta(seconds=15), [72], True)]
    records = await read_all(kafka_bootstrap, out_topic, wait_seconds=3, expect=2)
    bodies = {json.loads(record.value)["type"]: json.loads(record.value) for record in records}
    assert sorted(bodies) == ["infinite.pack.exhausted", "infinite.training.lapsed"]
    assert bodies["infinite.pack.exhausted"]["data"]["trainIds"] == [72]
    assert bodies["infinite.training.lapsed"]["data"]["trainId"] == 71


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


def outbox(url: str) -> dict[str, tuple[int, datetime, list[int], bool]]:
    """{notice id: (pack, exhausted_at, sorted train_ids, published)} of the outbox."""
    rows = query(
        url,
        "SELECT notice_id, user_pack_id, exhausted_at, train_ids, published_at IS NOT NULL"
        " FROM exhaustion_notices",
    )
    return {row[0]: (row[1], row[2], sorted(row[3]), row[4]) for row in rows}


def start_notice(pack: int, start_event_id: str) -> str:
    return rules.start_notice_id(pack, rules.log_id_for(start_event_id))


async def test_a_start_during_an_exhaustion_gets_a_notice_of_its_own_once(
    kafka_bootstrap: str, ledger_database: str, out_topic: str, started_notifier: Notifiers
) -> None:
    # A long rescan period: after its first rescan, this notifier learns of the packs
    # only from the batches handed over, as in `ledger consume`.
    notifier = await started_notifier(60, 120)
    writer = Writer(ledger_database)
    t0 = datetime.now(UTC)
    bought = t0 - timedelta(hours=1)
    s = timedelta(seconds=1)
    # Pack 1: 4 s shared by trainings 11 and 14 from t0 - 10 s: exhausted at t0 - 8 s;
    # 14 stops at t0 - 2 s, 11 runs on. Pack 2: nothing left; 21 and 22 start on it at
    # once, which begins its exhaustion (named by its notice, none of their own).
    outcome = await writer.write(
        purchase(1, 9, bought, 4),
        start(1, 11, t0 - 10 * s),
        start(1, 14, t0 - 10 * s),
        stop(1, 14, t0 - 2 * s),
        purchase(2, 9, bought, 0),
        start(2, 21, t0 - 3 * s),
        start(2, 22, t0 - 3 * s),
    )
    notifier.watch(outcome.exhaustions)  # what app.report does after a commit
    first = {
        rules.exhaustion_notice_id(1, t0 - 8 * s): (1, t0 - 8 * s, [11], True),
        rules.exhaustion_notice_id(2, t0 - 3 * s): (2, t0 - 3 * s, [21, 22], True),
    }
    await eventually(lambda: outbox(ledger_database) == first, 5, "the exhaustions' notices")

    # Pack 1: 12 starts (late: before the stop already applied) during the exhaustion,
    # 13 at its very instant (not named by its notice, recorded before). Pack 2: 23.
    outcome = await writer.write(
        start(1, 12, t0 - 5 * s), start(1, 13, t0 - 8 * s), start(2, 23, t0 - s)
    )
    committed = datetime.now(UTC)
    notifier.watch(outcome.exhaustions)
    second = {
        **first,
        start_notice(1, "start-12"): (1, t0 - 8 * s, [11, 12, 13], True),
        start_notice(1, "start-13"): (1, t0 - 8 * s, [11, 12, 13], True),
        start_notice(2, "start-23"): (2, t0 - 3 * s, [21, 22, 23], True),
    }
    await eventually(lambda: outbox(ledger_database) == second, 5, "the starts' notices")
    latest = scalar(ledger_database, "SELECT max(published_at) FROM exhaustion_notices")
    assert latest - committed < timedelta(seconds=1)
    await notifier.stop()

    # A restart: a new notifier (its first rescan reads `packs`) meets a start that no
    # live process handed over, and publishes that one alone.
    await writer.write(start(2, 24, t0))
    notifier = await started_notifier(60, 120)
    third = {**second, start_notice(2, "start-24"): (2, t0 - 3 * s, [21, 22, 23, 24], True)}
    await eventually(lambda: outbox(ledger_database) == third, 5, "the rescan's notice")
    await asyncio.sleep(1)  # four more passes
    await notifier.stop()

    records = await read_all(kafka_bootstrap, out_topic, wait_seconds=3, expect=len(third) + 1)
    bodies = [json.loads(record.value) for record in records]
    assert sorted(body["id"] for body in bodies) == sorted(third)  # each once
    for record, body in zip(records, bodies, strict=True):
        pack, exhausted_at, train_ids, _ = third[body["id"]]
        assert record.key == str(pack).encode()
        assert body["type"] == "infinite.pack.exhausted"
        assert body["data"] == {
            "userPackId": pack,
            "trainIds": train_ids,
            "exhaustedAt": body["time"],
        }
        assert datetime.fromisoformat(body["time"]) == exhausted_at


async def test_a_database_outage_is_logged_once_and_the_notifier_recovers(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    out_topic: str,
    broker: KafkaBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ledger.notices")
    target = urlsplit(ledger_database)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        settings = Settings(
            kafka_bootstrap_servers=kafka_bootstrap,
            database_url=through(ledger_database, proxy.port),
            events_topic=unique_topic,
        )
        notifier = ExhaustionNotifier(settings, broker, rescan_seconds=0.5, horizon_seconds=5)
        await notifier.start()
        try:
            await eventually(lambda: proxy.accepted > 0, 5, "the notifier to connect")
            await asyncio.sleep(0.5)
            cut_at = time.time()
            proxy.cut()
            await asyncio.sleep(4)  # 0.25 + 0.5 + 1 + 2: four or five failed passes
            restored_at = time.time()
            proxy.restore()
            # Written meanwhile, straight to the database: the rescan finds it.
            t0 = datetime.now(UTC)
            await Writer(ledger_database).write(
                purchase(3, 9, t0 - timedelta(hours=1), 1), start(3, 31, t0 - timedelta(seconds=5))
            )
            await eventually(lambda: published(ledger_database, 3), 15, "the notice")
        finally:
            await notifier.stop()

    lines = [r for r in caplog.records if r.name == "ledger.notices"]
    logged = [(r.levelno, r.getMessage()) for r in lines]
    assert [level for level, _ in logged] == [logging.WARNING, logging.INFO], logged
    assert "notifier: database outage started (" in logged[0][1]
    ended = float(logged[1][1].removeprefix("notifier: database outage ended after ")[:-2])
    # The outage runs from the first failed pass (at or after the cut) until a pass
    # after the restore, at most the longest wait (10 s) after it; 0.05 s is the
    # rounding of the logged duration.
    started = lines[0].created
    assert cut_at <= started < restored_at
    assert restored_at - started - 0.05 <= ended < restored_at - started + 10 + 0.05
    records = await read_all(kafka_bootstrap, out_topic, wait_seconds=3, expect=1)
    assert [record.key for record in records] == [b"3"]


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

    # Up to the head (0004 or any later revision).
    assert migrate(fresh_database) == ScriptDirectory.from_config(config).get_current_head()
    assert scalar(fresh_database, "SELECT to_regclass('packs_exhausts_idx')") is None
    assert scalar(
        fresh_database, "SELECT reloptions FROM pg_class WHERE oid = 'packs'::regclass"
    ) == ["fillfactor=70"]


async def test_a_row_the_notifier_cannot_read_does_not_stop_the_other_notices(
    kafka_bootstrap: str, ledger_database: str, out_topic: str, started_notifier: Notifiers
) -> None:
    """A pack row with an instant psycopg cannot give back (before year 1 in UTC; the
    consumer now refuses the records that would write one, older rows may hold one)."""
    writer = Writer(ledger_database)
    t0 = datetime.now(UTC)
    bought = t0 - timedelta(hours=1)
    outcome = await writer.write(
        purchase(5, 9, bought, 2), start(5, 51, t0), purchase(6, 9, bought, 2), start(6, 61, t0)
    )
    assert {pack for pack, _ in outcome.exhaustions} == {5, 6}
    with psycopg.connect(ledger_database, autocommit=True) as conn:
        conn.execute(
            "UPDATE packs SET exhausts_at = '0001-01-01 00:00:00+01' WHERE user_pack_id = 6"
        )
    notifier = await started_notifier(0.5, 5)  # its first rescan meets the bad row
    notifier.watch(outcome.exhaustions)  # and both are scheduled, due together
    await eventually(lambda: published(ledger_database, 5), 10, "pack 5's notice")
    assert not published(ledger_database, 6)
    assert notifier._task is not None and not notifier._task.done()
