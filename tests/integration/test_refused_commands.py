"""`ledger refused list / show / redrive` against records the real consumer refused: a
poison record (its application fails, by a trigger) and one that is not JSON. After the
fix (the trigger dropped), a re-drive applies the poison record through the consumer's
own transaction while the consumer keeps running; the consumer's next event of the same
pack builds on it (its cached state is stale, and it reloads instead of overwriting);
the stored offsets never move."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.consumer.ingest import ingest
from services.consumer.records import SourceRecord
from services.infra.testing import run_coroutine
from services.replay.verify import verify
from services.store.connection import connect
from tests.support import poison
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import actual_rows, query, scalar
from tests.support.exactly_once import stored_offsets, topic_ends
from tests.support.kafka import produce
from tests.support.streams import envelope, expected_rows, purchase, stream
from tests.support.waiting import wait_until

JUNK = b"{not json"


def ledger_refused(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "refused", *args],
        env={**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_LOG_FORMAT": "text"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def listed(url: str, *args: str) -> list[dict[str, object]]:
    done = ledger_refused(url, "list", "--json", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_list_show_and_redrive_after_a_fix_beside_the_running_consumer(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    url = ledger_database
    events = stream(packs=12, events_per_pack=20, seed=81, tag="redrive-")
    # An adjustment: its effect (granted) shows whether a later write of its pack kept it.
    bad = next(e for e in events[len(events) // 3 :] if e["type"] == "infinite.pack.adjusted")
    pack = int(bad["data"]["userPackId"])
    poison.install(url, [bad["id"]])
    run_coroutine(lambda: produce(kafka_bootstrap, unique_topic, [*events, JUNK]))
    consumer = consumer_factory()
    consumer.start()
    ends = {p: o for p, o in topic_ends(kafka_bootstrap, unique_topic).items() if o > 0}
    wait_until(lambda: stored_offsets(url, unique_topic) == ends, 60, consumer.tail())
    copies = sum(e["id"] == bad["id"] for e in events)

    # list: a table, JSON lines, filters.
    table = ledger_refused(url, "list")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "REFUSED", "AT", "(UTC)", "RECORD", "STATUS", "REASON"]
    assert f"apply failed: RaiseException: poison record {bad['id']}" in table.stdout
    assert "not valid JSON" in table.stdout
    assert lines[-1] == f"{copies + 1} refused records"
    rows = listed(url)
    assert len(rows) == copies + 1
    assert all(row["status"] == "refused" and row["lastRedrive"] is None for row in rows)
    poisoned = listed(url, "--reason", "POISON record")  # any case
    assert [row["key"] for row in poisoned] == [str(pack)] * copies
    assert {row["topic"] for row in poisoned} == {unique_topic}
    partition = int(poisoned[0]["partition"])  # type: ignore[call-overload]
    assert listed(url, "--partition", str(partition), "--reason", "poison") == poisoned
    assert listed(url, "--partition", str((partition + 1) % 4), "--reason", "poison") == []
    assert listed(url, "--topic", "elsewhere") == []
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert listed(url, "--since", tomorrow) == []
    assert len(listed(url, "--until", tomorrow)) == copies + 1
    target = int(poisoned[0]["id"])  # type: ignore[call-overload]

    # show: the raw record and its reason.
    shown = ledger_refused(url, "show", str(target))
    assert shown.returncode == 0, shown.stderr
    assert f"{unique_topic}/{partition}@{poisoned[0]['offset']}" in shown.stdout
    assert f"key:        {pack}" in shown.stdout
    assert "headers:    (none)" in shown.stdout  # produced without any
    assert bad["id"] in shown.stdout and "poison record" in shown.stdout
    raw = json.loads(ledger_refused(url, "show", str(target), "--json").stdout)
    assert json.loads(raw["value"]) == bad
    assert raw["redriveHistory"] == []
    assert ledger_refused(url, "show", "999999").returncode == 1

    # A re-drive before the fix: refused again, with its new reason; nothing applied.
    offsets = stored_offsets(url, unique_topic)
    again = ledger_refused(url, "redrive", str(target))
    assert again.returncode == 1, again.stdout + again.stderr
    assert f"{target}: refused (event {bad['id']}): apply failed: RaiseException" in again.stdout
    assert listed(url, "--reason", "poison")[0]["status"] == "refused again"
    assert scalar(url, "SELECT count(*) FROM ledger_events WHERE event_id = %s", (bad["id"],)) == 0

    # The fix, then the re-drive: applied, beside the running consumer.
    poison.remove(url)
    before = scalar(url, "SELECT event_count FROM packs WHERE user_pack_id = %s", (pack,))
    done = ledger_refused(url, "redrive", str(target))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{target}: applied (event {bad['id']})" in done.stdout
    assert scalar(url, "SELECT count(*) FROM ledger_events WHERE event_id = %s", (bad["id"],)) == 1
    assert scalar(url, "SELECT event_count FROM packs WHERE user_pack_id = %s", (pack,)) == (
        before + 1
    )
    assert expected_rows(events) == actual_rows(url)
    assert listed(url, "--reason", "poison")[0]["status"] == "redriven (applied)"
    assert stored_offsets(url, unique_topic) == offsets  # neither backwards nor forwards

    # Again: a duplicate, nothing changes. --all finds nothing of it left to re-drive.
    projected = actual_rows(url)
    twice = ledger_refused(url, "redrive", str(target))
    assert twice.returncode == 0 and f"{target}: duplicate" in twice.stdout, twice.stdout
    assert actual_rows(url) == projected
    # --all: the other copies of the poison record (a redelivery), duplicates; then none.
    rest = ledger_refused(url, "redrive", "--all", "--reason", "poison")
    assert rest.returncode == 0, rest.stdout
    assert f"0 applied, {copies - 1} duplicate, 0 refused" in rest.stdout
    assert ledger_refused(url, "redrive", "--all", "--reason", "poison").stdout.endswith(
        "redrove 0 records: 0 applied, 0 duplicate, 0 refused, 0 unknown\n"
    )
    assert actual_rows(url) == projected
    history = json.loads(ledger_refused(url, "show", str(target), "--json").stdout)
    assert [d["outcome"] for d in history["redriveHistory"]] == ["refused", "applied", "duplicate"]
    junk = ledger_refused(url, "redrive", "--all")  # the record that is not JSON
    assert junk.returncode == 1 and "1 refused" in junk.stdout, junk.stdout

    # The live consumer's next event of that pack builds on the re-driven one.
    last = max(datetime.fromisoformat(str(e["time"])) for e in events)
    top_up = envelope(
        "redrive-after",
        "infinite.pack.adjusted",
        last + timedelta(hours=1),
        {"userPackId": pack, "deltaSeconds": 7, "reason": "after the re-drive"},
    )
    run_coroutine(lambda: produce(kafka_bootstrap, unique_topic, [top_up]))
    wait_until(
        lambda: (
            scalar(
                url, "SELECT count(*) FROM ledger_events WHERE event_id = %s", ("redrive-after",)
            )
            == 1
        ),
        30,
        consumer.tail(),
    )
    wait_until(lambda: expected_rows([*events, top_up]) == actual_rows(url), 10, "projection")
    consumer.stop()
    report = verify(url, progress=False)
    assert report.clean, report.summary()
    with psycopg.connect(url, autocommit=True) as conn:  # re-drives are kept for good
        for statement in ("UPDATE redrives SET outcome = 'applied'", "DELETE FROM redrives"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_a_binary_mode_record_keeps_its_headers_and_is_redriven_with_them(
    ledger_database: str,
) -> None:
    """A binary-mode CloudEvent (attributes in `ce_*` headers, `data` as the value)
    refused by its application is shown with its headers, and a re-drive reads it again
    from them. Straight through `ingest`, as the consumer's transaction runs it."""
    url = ledger_database
    bought = purchase(3, 9, datetime(2026, 11, 1, tzinfo=UTC), 600)
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"binary-buy-3"),
        ("ce_source", b"tests/binary"),
        ("ce_type", b"infinite.pack.purchased"),
        ("ce_time", bought["time"].encode()),
        ("content-type", b"application/json"),
    ]
    record = SourceRecord("pack-events", 1, 40, b"3", json.dumps(bought["data"]).encode(), headers)
    poison.install(url, ["binary-buy-3"])

    async def consume() -> None:
        conn = await connect(url)
        try:
            outcome = await ingest(conn, "binary", [record])
        finally:
            await conn.close()
        assert [r.reason for r in outcome.refused] == [
            "apply failed: RaiseException: poison record binary-buy-3"
        ]

    run_coroutine(consume)
    [row] = listed(url)
    shown = ledger_refused(url, "show", str(row["id"]))
    assert "headers:    6" in shown.stdout and "    ce_id: binary-buy-3" in shown.stdout
    raw = json.loads(ledger_refused(url, "show", str(row["id"]), "--json").stdout)
    assert [(h["name"], h["value"]) for h in raw["headers"]][:2] == [
        ("ce_specversion", "1.0"),
        ("ce_id", "binary-buy-3"),
    ]
    poison.remove(url)
    done = ledger_refused(url, "redrive", str(row["id"]))
    assert done.returncode == 0 and "applied (event binary-buy-3)" in done.stdout, done.stdout
    assert query(url, "SELECT user_pack_id, granted FROM packs") == [(3, 600)]
    assert scalar(url, "SELECT count(*) FROM consumer_offsets WHERE consumer_group = 'ledger'") == 0
