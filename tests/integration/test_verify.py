"""`ledger verify`: clean after the consumer ran (also while it runs), a non-zero exit
naming the pack or the usage record when a read model drifted from the ledger."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import psycopg

from services.infra.testing import run_coroutine
from services.replay.verify import verify
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import query, scalar
from tests.support.exactly_once import PacedProducer
from tests.support.kafka import produce
from tests.support.streams import stream
from tests.support.waiting import wait_until


def ledger_verify(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "verify", "--no-progress", *args],
        env={**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_LOG_FORMAT": "text"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def consumed(
    url: str, bootstrap: str, topic: str, make: Callable[[], ConsumerProcess], packs: int
) -> ConsumerProcess:
    events = stream(packs=packs, events_per_pack=20, seed=13)
    run_coroutine(lambda: produce(bootstrap, topic, list(events)))
    consumer = make()
    consumer.start()
    count = len({item["id"] for item in events})
    wait_until(
        lambda: scalar(url, "SELECT count(*) FROM ledger_events") == count,
        60,
        f"{count} ledger events\n{consumer.tail()}",
    )
    return consumer


def test_clean_after_the_consumer_then_each_kind_of_drift_is_named(
    ledger_database: str,
    kafka_bootstrap: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    url = ledger_database
    consumer = consumed(url, kafka_bootstrap, unique_topic, consumer_factory, packs=30)
    consumer.stop()
    clean = ledger_verify(url)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    events = scalar(url, "SELECT count(*) FROM ledger_events")
    assert f"checked {events:,} events, 30 packs" in clean.stdout
    assert "the read models match the ledger" in clean.stdout

    closed, pack_of_closed = query(
        url,
        "SELECT log_id, user_pack_id FROM usage_records WHERE end_time IS NOT NULL"
        " ORDER BY log_id LIMIT 1",
    )[0]
    running = scalar(
        url, "SELECT log_id FROM usage_records WHERE end_time IS NULL ORDER BY log_id LIMIT 1"
    )
    gone = scalar(
        url, "SELECT log_id FROM usage_records WHERE log_id <> %s ORDER BY log_id DESC LIMIT 1",
        (running,),
    )  # fmt: skip
    tampering = [
        "UPDATE packs SET charged = charged + 7 WHERE user_pack_id = 3",
        "UPDATE packs SET pack_name = 'renamed' WHERE user_pack_id = 4",
        "UPDATE packs SET snapshot = jsonb_set(snapshot, '{adjustments}', '1') WHERE"
        " user_pack_id = 5",
        f"UPDATE usage_records SET charged_seconds = charged_seconds + 1 WHERE log_id = {closed}",
        f"UPDATE usage_records SET end_time = start_time WHERE log_id = {running}",
        f"DELETE FROM usage_records WHERE log_id = {gone}",
        "INSERT INTO packs (user_pack_id, user_id, user_name, pack_name, duration_type,"
        " buy_datetime, activity_end_time, node_list, granted, charged, open_starts,"
        " open_train_ids, open_lease_ends, exhausts_at, exhaustion_notice_id, low_balance,"
        " snapshot, event_count, updated_at)"
        " SELECT 999, user_id, user_name, pack_name, duration_type,"
        " buy_datetime, activity_end_time, node_list, granted, charged, open_starts,"
        " open_train_ids, open_lease_ends, exhausts_at, exhaustion_notice_id, low_balance,"
        " snapshot, event_count, updated_at"
        " FROM packs WHERE user_pack_id = 6",
    ]
    for statement in tampering:
        query_no_rows(url, statement)

    drift = ledger_verify(url, "--limit", "50")
    assert drift.returncode == 1
    out = drift.stdout
    assert "7 differences in" in out
    assert "pack 3: charged: ledger says" in out
    assert "pack 4: pack_name: ledger says 'pack 4', read model has 'renamed'" in out
    assert "pack 5: snapshot.adjustments: ledger says" in out
    assert f"usage record {closed} (pack {pack_of_closed}): charged_seconds: ledger says" in out
    assert f"usage record {running} " in out and "end_time: ledger says NULL" in out
    assert f"usage record {gone} " in out and "missing" in out
    assert "pack 999: in the read model, but the ledger has no event of it" in out

    bounded = ledger_verify(url, "--limit", "2")
    assert bounded.returncode == 1
    assert "... and 5 more" in bounded.stdout
    assert len(bounded.stdout.strip().splitlines()) == 4  # summary, two lines, the rest

    # A replay repairs the read models (the stray pack has no ledger: it goes too).
    repaired = subprocess.run(
        [sys.executable, "-m", "services.cli", "replay", "--no-progress"],
        env={**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_LOG_FORMAT": "text"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert repaired.returncode == 0, repaired.stderr
    assert "30 packs" in repaired.stdout
    assert ledger_verify(url).returncode == 0


def query_no_rows(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute(statement).rowcount == 1, statement


def test_no_false_alarm_while_the_consumer_writes(
    ledger_database: str,
    kafka_bootstrap: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    url = ledger_database
    consumer = consumed(url, kafka_bootstrap, unique_topic, consumer_factory, packs=20)
    more = stream(packs=60, events_per_pack=40, seed=14, tag="more-")
    reports = []
    producer = PacedProducer(kafka_bootstrap, unique_topic, more, allowed=len(more), chunk=100)
    with producer:
        while not producer.done or len(reports) < 3:  # about five seconds of traffic
            reports.append(verify(url, progress=False))
            assert len(reports) < 500, consumer.tail()
    assert all(report.clean for report in reports), [r.summary() for r in reports]
    # They saw different moments of the stream, each one consistent.
    assert len({report.events for report in reports}) > 1
