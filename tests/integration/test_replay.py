"""`ledger replay`: the read models rebuilt from the ledger and swapped in while the
consumer and the readers go on; `--from-kafka`: the ledger rebuilt from the topic.

Every test checks the result against the pure fold (`ledger verify` and the fold of the
events sent) and, where it matters, the answers of the API as of one fixed instant.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from api.app import create_app
from events.parse import Refusal, parse_event
from services.consumer.ingest import ingest
from services.consumer.records import SourceRecord
from services.infra.testing import run_coroutine, temporary_database
from services.replay import folding, rebuild
from services.replay.rebuild import ReplayOptions, replay
from services.replay.verify import verify
from services.replay.writer import CopyWriter
from services.store import replay_sql
from services.store.connection import connect
from services.store.migrate import migrate
from tests.api.support import (
    LOG_DETAIL,
    LOG_LIST,
    PACK_DETAIL,
    PACK_LIST,
    FixedClock,
    bearer,
    ok,
    settings_for,
)
from tests.integration.test_consumer_flow import POISON
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import actual_rows, query, scalar
from tests.support.exactly_once import stored_offsets, topic_ends
from tests.support.kafka import produce
from tests.support.streams import BASE, expected_rows, stream
from tests.support.waiting import wait_until

QUIET = ReplayOptions(progress=False)
# After every event of the streams below: running sessions have run for a known while.
AS_OF = BASE + timedelta(days=3)
OWNERS = (1003, 1005)  # streams.stream gives pack p to user 1000 + p % 17
LIVE_NAMES = {
    "packs",
    "packs_pkey",
    "packs_owner_buy_idx",
    "packs_buy_idx",
    "usage_records",
    "usage_records_pkey",
    "usage_records_owner_start_idx",
    "usage_records_pack_start_idx",
    "usage_records_start_idx",
    "usage_records_lease_idx",
    "usage_records_open_lease_idx",
    "usage_records_lapsed_idx",
}


@contextlib.asynccontextmanager
async def api_client(db_url: str, instant: datetime = AS_OF) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API app on `db_url`, answering as of `instant`."""
    clock = FixedClock()
    clock.set(instant)
    app = create_app(settings_for(db_url), clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


async def answers_of(client: httpx.AsyncClient) -> dict[str, Any]:
    """What the four endpoints answer to two owners and an admin: every pack list, pack
    detail, usage-record list and usage-record detail."""
    answers: dict[str, Any] = {}
    callers = [(str(owner), bearer(owner)) for owner in OWNERS]
    callers.append(("admin", bearer(1, admin=True)))
    for who, headers in callers:
        packs = await ok(client, PACK_LIST, {"pageNum": 1, "pageSize": 100}, headers)
        answers[f"{who} packs"] = packs
        by_duration = {"pageSize": 100, "order": [{"key": "duration", "sort": "asc"}]}
        answers[f"{who} packs by duration"] = await ok(client, PACK_LIST, by_duration, headers)
        for item in packs["userPackList"]:
            pack = item["userPackId"]
            answers[f"{who} pack {pack}"] = await ok(
                client, PACK_DETAIL, {"userPackId": pack}, headers
            )
        logs = await ok(client, LOG_LIST, {"order": [], "pageNum": 1, "pageSize": 100}, headers)
        answers[f"{who} logs"] = logs
        for item in logs["list"]:
            body = {"logId": item["logId"]}
            answers[f"{who} log {item['logId']}"] = await ok(client, LOG_DETAIL, body, headers)
    return answers


async def api_answers(db_url: str, instant: datetime = AS_OF) -> dict[str, Any]:
    async with api_client(db_url, instant) as client:
        return await answers_of(client)


def read_model_names(url: str) -> set[str]:
    return {
        str(row[0])
        for row in query(
            url,
            "SELECT relname FROM pg_class JOIN pg_namespace n ON n.oid = relnamespace"
            " WHERE n.nspname = 'public'"
            " AND (relname LIKE 'packs%%' OR relname LIKE 'usage_records%%')",
        )
    }


def distinct_ids(events: list[dict[str, Any]]) -> int:
    return len({item["id"] for item in events})


def wait_applied(url: str, count: int, consumer: ConsumerProcess) -> None:
    wait_until(
        lambda: scalar(url, "SELECT count(*) FROM ledger_events") == count,
        60,
        f"{count} ledger events\n{consumer.tail()}",
    )


async def test_replay_keeps_every_answer_and_the_consumer_goes_on(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    events = stream(packs=40, events_per_pack=30, seed=5)
    first, later = events[: len(events) * 3 // 4], events[len(events) * 3 // 4 :]
    await produce(kafka_bootstrap, unique_topic, list(first))
    consumer = consumer_factory()
    consumer.start()
    wait_applied(ledger_database, distinct_ids(first), consumer)

    async with api_client(ledger_database) as client:  # one app, serving all along
        before = await answers_of(client)  # its statements are prepared by now
        rows_before = actual_rows(ledger_database)
        assert rows_before == expected_rows(first)
        # The answers cover something: running and closed sessions, several owners.
        assert len(before["admin packs"]["userPackList"]) == len(rows_before[0])
        assert {p["userPackStatus"] for p in before["admin packs"]["userPackList"]} == {
            "status.outOfTime",  # sessions still running three days later
            "status.free",
        }
        assert any(item["endTime"] is None for item in before["admin logs"]["list"])
        assert all(before[f"{owner} packs"]["userPackList"] for owner in OWNERS)

        report = replay(ledger_database, QUIET)  # the consumer runs all along

        assert await answers_of(client) == before
    assert await api_answers(ledger_database) == before  # and a new app
    assert report.events == distinct_ids(first)
    assert report.packs == len(rows_before[0])
    assert report.usage_records == len(rows_before[1])
    assert actual_rows(ledger_database) == rows_before
    assert read_model_names(ledger_database) == LIVE_NAMES  # nothing _next or _old is left
    # The rebuilt table leaves room for HOT updates, as the migrated one does.
    assert scalar(
        ledger_database, "SELECT reloptions FROM pg_class WHERE oid = 'packs'::regclass"
    ) == ["fillfactor=70"]
    assert verify(ledger_database, progress=False).clean

    # The consumer writes into the swapped-in tables, and the next replay's fresh tables
    # and indexes do not collide with the renamed ones.
    await produce(kafka_bootstrap, unique_topic, list(later))
    wait_applied(ledger_database, distinct_ids(events), consumer)
    assert actual_rows(ledger_database) == expected_rows(events)
    again = replay(ledger_database, QUIET)
    assert again.events == distinct_ids(events)
    assert actual_rows(ledger_database) == expected_rows(events)
    assert read_model_names(ledger_database) == LIVE_NAMES
    assert verify(ledger_database, progress=False).clean


def test_events_appended_during_the_build_and_before_the_swap_are_kept(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # New packs, stops of running sessions, top-ups, late events and redeliveries keep
    # arriving while the replay runs: three segments of one interleaved stream.
    events = stream(packs=40, events_per_pack=30, seed=9, tag="during-")
    third = len(events) // 3
    segments = [events[:third], events[third : 2 * third], events[2 * third :]]
    run_coroutine(lambda: produce(kafka_bootstrap, unique_topic, segments[0]))
    consumer = consumer_factory()
    consumer.start()
    wait_applied(ledger_database, distinct_ids(segments[0]), consumer)

    def deliver(segment: int) -> None:
        run_coroutine(lambda: produce(kafka_bootstrap, unique_topic, segments[segment]))
        so_far = [item for part in segments[: segment + 1] for item in part]
        wait_applied(ledger_database, distinct_ids(so_far), consumer)

    real_build, real_catch_up = rebuild.build, rebuild._catch_up

    def build_after_more_events(*args: Any) -> None:
        deliver(1)  # after the watermark, before the ledger is read: the catch-up's part
        real_build(*args)

    def catch_up_then_more_events(*args: Any) -> int:
        watermark = real_catch_up(*args)
        deliver(2)  # after the last catch-up: the swap's part, under its lock
        return watermark

    monkeypatch.setattr(rebuild, "build", build_after_more_events)
    monkeypatch.setattr(rebuild, "_catch_up", catch_up_then_more_events)
    report = replay(ledger_database, QUIET)

    assert report.events == distinct_ids(segments[0])  # the build saw the first segment
    assert report.caught_up_packs > 0
    assert report.packs == len(expected_rows(events)[0])
    assert actual_rows(ledger_database) == expected_rows(events)
    assert verify(ledger_database, progress=False).clean


def test_readers_see_the_old_tables_or_the_new_ones_never_a_half_built_one(
    ledger_database: str,
    kafka_bootstrap: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = stream(packs=60, events_per_pack=20, seed=3)
    run_coroutine(lambda: produce(kafka_bootstrap, unique_topic, events))
    consumer = consumer_factory()
    consumer.start()
    wait_applied(ledger_database, distinct_ids(events), consumer)
    consumer.stop()
    # usage_records before packs, like the API's record reads (and the swap's lock order):
    # a reader taking them the other way round would deadlock with the swap on every try.
    totals = "SELECT (SELECT count(*) FROM usage_records), (SELECT count(*) FROM packs),"
    totals += " (SELECT sum(overrun_seconds) FROM usage_records), (SELECT sum(charged) FROM packs)"
    want = query(ledger_database, totals)[0]

    seen: list[tuple[Any, ...]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_all_along() -> None:
        with psycopg.connect(ledger_database, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    seen.append(tuple(conn.execute(totals).fetchone() or ()))
                except psycopg.Error as error:
                    errors.append(error)

    # A reader that keeps a transaction open on the live tables when the swap comes:
    # the swap gives up after its lock timeout, waits and tries again.
    held: list[tuple[Any, ...]] = []
    real_swap = rebuild._swap

    def swap_while_a_reader_holds_the_tables(*args: Any) -> None:
        started = threading.Event()

        def hold() -> None:
            with psycopg.connect(ledger_database) as conn:  # one transaction
                held.append(tuple(conn.execute(totals).fetchone() or ()))
                started.set()
                time.sleep(1.0)
                held.append(tuple(conn.execute(totals).fetchone() or ()))

        holder = threading.Thread(target=hold)
        holder.start()
        started.wait(10)
        real_swap(*args)
        holder.join()

    monkeypatch.setattr(rebuild, "_swap", swap_while_a_reader_holds_the_tables)
    reader = threading.Thread(target=read_all_along)
    reader.start()
    try:
        with caplog.at_level(logging.WARNING, logger="ledger.replay"):
            replay(ledger_database, ReplayOptions(progress=False, lock_timeout_ms=200))
        time.sleep(0.3)  # a few reads of the new tables
    finally:
        stop.set()
        reader.join()

    assert errors == []
    assert len(seen) > 10
    assert set(seen) == {want}  # every read, before, during and after the swap
    assert held == [want, want]
    assert any("swap attempt 1" in record.getMessage() for record in caplog.records)
    assert query(ledger_database, totals)[0] == want
    assert verify(ledger_database, progress=False).clean


def test_an_interrupted_replay_leaves_the_live_tables_and_the_next_one_cleans_up(
    ledger_database: str,
    kafka_bootstrap: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = stream(packs=20, events_per_pack=15, seed=4)
    run_coroutine(lambda: produce(kafka_bootstrap, unique_topic, events))
    consumer = consumer_factory()
    consumer.start()
    wait_applied(ledger_database, distinct_ids(events), consumer)
    consumer.stop()
    rows = actual_rows(ledger_database)

    # An operator's Ctrl-C while the rows are being written ...
    real_put = CopyWriter.put
    chunks: list[str] = []

    def put_then_interrupt(self: CopyWriter, statement: str, data: bytes) -> None:
        chunks.append(statement)
        if len(chunks) == 2:
            raise KeyboardInterrupt
        real_put(self, statement, data)

    monkeypatch.setattr(CopyWriter, "put", put_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        replay(ledger_database, ReplayOptions(progress=False, chunk_rows=100))
    monkeypatch.setattr(CopyWriter, "put", real_put)
    assert read_model_names(ledger_database) == LIVE_NAMES
    assert actual_rows(ledger_database) == rows

    # ... and a folding worker that fails: its traceback comes back with the error.
    def fold_packs_then_fail(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("a bug in the fold")

    monkeypatch.setattr(folding, "fold_packs", fold_packs_then_fail)
    with pytest.raises(folding.WorkerFailed, match="a bug in the fold"):
        replay(ledger_database, QUIET)
    monkeypatch.undo()
    assert read_model_names(ledger_database) == LIVE_NAMES
    assert actual_rows(ledger_database) == rows

    # One replay at a time: a second one is refused while the first holds its lock.
    with psycopg.connect(ledger_database, autocommit=True) as first:
        first.execute(replay_sql.TRY_REPLAY_LOCK)
        with pytest.raises(rebuild.ReplayRunning):
            replay(ledger_database, QUIET)
    assert actual_rows(ledger_database) == rows

    # Leftovers of a run killed at a worse moment: dropped by the next replay.
    with psycopg.connect(ledger_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE packs_next (junk int)")
        conn.execute("CREATE TABLE usage_records_old (junk int)")
    replay(ledger_database, QUIET)
    assert read_model_names(ledger_database) == LIVE_NAMES
    assert actual_rows(ledger_database) == rows == expected_rows(events)
    assert verify(ledger_database, progress=False).clean


def _ledger_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env={**os.environ, "LEDGER_LOG_FORMAT": "text", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_from_kafka_rebuilds_the_ledger_and_the_consumer_resumes_after_it(
    database_url: str,
    ledger_database: str,
    kafka_bootstrap: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
    tmp_path: Any,
) -> None:
    events = stream(packs=30, events_per_pack=20, seed=21, tag="kafka-")
    half = len(events) // 2
    run_coroutine(
        lambda: produce(kafka_bootstrap, unique_topic, [*events[:half], *POISON, *events[half:]])
    )
    consumer = consumer_factory()  # the original ledger, built by the consumer
    consumer.start()
    wait_applied(ledger_database, distinct_ids(events), consumer)
    wait_until(
        lambda: scalar(ledger_database, "SELECT count(*) FROM refused_records") == len(POISON),
        30,
        "refusals",
    )
    original = run_coroutine(lambda: api_answers(ledger_database))
    ends = {p: o for p, o in topic_ends(kafka_bootstrap, unique_topic).items() if o > 0}

    with temporary_database(database_url, "rebuilt") as rebuilt:
        migrate(rebuilt)
        env = {
            "LEDGER_DATABASE_URL": rebuilt,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "LEDGER_EVENTS_TOPIC": unique_topic,
            "LEDGER_CONSUMER_GROUP": "rebuilt",
        }
        done = _ledger_cli(["replay", "--from-kafka", "--no-progress"], env)
        assert done.returncode == 0, done.stderr
        total = len(events) + len(POISON)
        assert f"{total:,} records, {distinct_ids(events):,} events appended" in done.stdout
        assert f"{len(POISON)} refused" in done.stdout

        assert actual_rows(rebuilt) == expected_rows(events)
        assert scalar(rebuilt, "SELECT count(*) FROM refused_records") == len(POISON)
        assert stored_offsets(rebuilt, unique_topic) == ends
        assert run_coroutine(lambda: api_answers(rebuilt)) == original
        assert verify(rebuilt, progress=False).clean

        # Run again: it resumes from the stored offsets and finds nothing new.
        again = _ledger_cli(["replay", "--from-kafka", "--no-progress"], env)
        assert again.returncode == 0, again.stderr
        assert "(resumed): 0 records" in again.stdout

        # The consumer of the rebuilt database goes on from where the rebuild stopped.
        more = stream(packs=5, events_per_pack=10, seed=22, tag="after-")
        run_coroutine(lambda: produce(kafka_bootstrap, unique_topic, more))
        follower = ConsumerProcess(
            bootstrap=kafka_bootstrap,
            database_url=rebuilt,
            topic=unique_topic,
            group="rebuilt",
            log=tmp_path / "follower.log",
        )
        follower.start()
        try:
            wait_applied(rebuilt, distinct_ids(events) + distinct_ids(more), follower)
            assert actual_rows(rebuilt) == expected_rows(events + more)
            assert scalar(rebuilt, "SELECT count(*) FROM refused_records") == len(POISON)
        finally:
            follower.stop()

    # A database that holds a ledger of its own is not rebuilt into.
    refused = _ledger_cli(
        ["replay", "--from-kafka", "--no-progress"],
        {
            "LEDGER_DATABASE_URL": ledger_database,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "LEDGER_EVENTS_TOPIC": unique_topic,
            "LEDGER_CONSUMER_GROUP": "another-group",
        },
    )
    assert refused.returncode == 2
    assert "rebuild into an empty, migrated database" in refused.stderr


def _record(offset: int, doc: dict[str, Any]) -> SourceRecord:
    return SourceRecord("spellings", 0, offset, b"k", json.dumps(doc).encode())


async def test_replay_reads_every_spelling_the_contract_accepts(ledger_database: str) -> None:
    """Ids as digit strings, integral floats for seconds, escapes in names,
    absent and null reasons, times with offsets, 'Z', 'z', seven fractional digits: the
    replay's fast path (fields taken out of the stored jsonb) must read them as the
    contract's validation does."""

    def event(id_: str, type_: str, time: str, **data: Any) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": id_,
            "source": "s",
            "type": type_,
            "time": time,
            "data": data,
        }

    node = {"nodeId": "01", "nodeName": "n\t1", "nodeType": "nodeType.master",
            "cpuCount": 1, "gpuCount": 0, "memorySize": 2}  # fmt: skip
    started, stopped = "infinite.training.started", "infinite.training.stopped"
    docs = [
        event("p", "infinite.pack.purchased", "2026-11-01T08:00:00+08:00", userPackId="0042",
              userId="0009", userName="tab\there", packName="p\\1", packDurationType="type.timing",
              durationSeconds=3600.0, nodeList=[node]),
        event("a1", "infinite.pack.adjusted", "2026-11-01T00:00:01Z", userPackId=42,
              deltaSeconds=600.0, reason="x"),
        event("a2", "infinite.pack.adjusted", "2026-11-01T00:00:02z", userPackId=42,
              deltaSeconds=-60.0, reason="y"),
        event("a3", "infinite.pack.adjusted", "2026-11-01T00:00:03+00:00", userPackId=42,
              deltaSeconds=6e2, reason="z"),
        event("s1", started, "2026-11-01t00:00:04.1234567z", userPackId=42, trainId="007",
              trainName="a\tb\\c\nd", userId="9", userName="张三"),
        event("s2", started, "2026-11-01 08:00:05.5+08:00", userPackId=42, trainId=8,
              trainName="\\N", userId=9, userName="\\"),
        event("t1", stopped, "2026-11-01T00:30:00-03:30", userPackId=42, trainId=7),
        event("t2", stopped, "2026-11-01T05:00:00Z", userPackId=42, trainId=7, reason=None),
        event("t3", stopped, "2026-11-01T05:00:01.000001Z", userPackId=42, trainId=8,
              reason="back\\slash\r\n"),
        event("s3", started, "2026-11-01T06:00:00Z", userPackId=42, trainId=9,
              trainName="x", userId=9, userName="still running"),
    ]  # fmt: skip
    records = [_record(offset, doc) for offset, doc in enumerate(docs)]
    assert all(not isinstance(parse_event(r.value), Refusal) for r in records)
    conn = await connect(ledger_database)
    try:
        outcome = await ingest(conn, "spellings", records)
    finally:
        await conn.close()
    assert outcome.appended == len(docs) and not outcome.refused
    projected = actual_rows(ledger_database)
    names = query(ledger_database, "SELECT train_name, user_name, stop_reason FROM usage_records")

    report = replay(ledger_database, QUIET)

    assert report.events == len(docs) and report.usage_records == 3
    assert actual_rows(ledger_database) == projected  # as the consumer projected them
    assert sorted(names) == sorted(
        query(ledger_database, "SELECT train_name, user_name, stop_reason FROM usage_records")
    )
    assert ("a\tb\\c\nd", "张三", None) in names
    assert projected[0][42][0] == 3600 + 600 - 60 + 600  # granted
    assert verify(ledger_database, progress=False).clean  # and as the pure fold says


async def test_replay_and_verify_with_leases_and_heartbeats(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    """Sessions with leases (some lapse in fold order, the others by the read's instant)
    and heartbeats: the consumer, a replay (its SQL extraction of the steps) and
    `ledger verify` (the pure fold of the parsed envelopes) agree, and so do the API's
    answers at an instant every lease has passed."""
    events = stream(packs=30, events_per_pack=30, seed=13, leases=True)
    kinds = {item["type"] for item in events}
    assert "infinite.training.heartbeat" in kinds
    await produce(kafka_bootstrap, unique_topic, events)
    consumer = consumer_factory()
    consumer.start()
    wait_applied(ledger_database, distinct_ids(events), consumer)
    rows = actual_rows(ledger_database)
    assert rows == expected_rows(events)
    reasons = {usage[-3] for usage in rows[1].values()}  # stop_reason
    assert {"leaseExpired", "completed", None} <= reasons  # lapsed, stopped and open ones
    before = await api_answers(ledger_database)
    report = replay(ledger_database, QUIET)
    assert report.events == distinct_ids(events)
    assert actual_rows(ledger_database) == rows
    assert await api_answers(ledger_database) == before
    assert verify(ledger_database, progress=False).clean
