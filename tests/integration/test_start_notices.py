"""A training started on an exhausted pack, through the real broker, the real database and
the real `ledger consume`: it is named in an `infinite.pack.exhausted` notice of its own
within about a second of being applied, once (a restart publishes nothing again)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from projections import rules
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import query, scalar
from tests.support.kafka import produce, read_all
from tests.support.streams import envelope, purchase
from tests.support.waiting import wait_until


def start(train: int, at: datetime) -> dict[str, object]:
    data = {"userPackId": 5, "trainId": train, "trainName": "t", "userId": 9, "userName": "u"}
    return envelope(f"start-{train}", "infinite.training.started", at, data)


def published(url: str) -> int:
    return int(
        scalar(url, "SELECT count(*) FROM exhaustion_notices WHERE published_at IS NOT NULL")
    )


async def test_a_start_on_an_exhausted_pack_is_announced_on_its_own(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    consumer = consumer_factory()
    consumer.start()
    now = datetime.now(UTC)
    exhausted = now - timedelta(seconds=8)  # 2 s granted, training 51 from now - 10 s
    out = f"{unique_topic}.out"
    await produce(
        kafka_bootstrap,
        unique_topic,
        [purchase(5, 9, now - timedelta(hours=1), 2), start(51, now - timedelta(seconds=10))],
    )
    wait_until(lambda: published(ledger_database) == 1, 30, f"the exhaustion\n{consumer.tail()}")
    [first] = await read_all(kafka_bootstrap, out, 10, expect=1)
    assert json.loads(first.value)["id"] == rules.exhaustion_notice_id(5, exhausted)

    # Training 52 starts on the exhausted pack: the first notice went out without it.
    await produce(kafka_bootstrap, unique_topic, [start(52, datetime.now(UTC))])
    wait_until(lambda: published(ledger_database) == 2, 30, f"the start's\n{consumer.tail()}")
    [(applied, sent)] = query(
        ledger_database,
        "SELECT e.recorded_at, n.published_at FROM ledger_events e, exhaustion_notices n"
        " WHERE e.event_id = 'start-52' AND n.notice_id LIKE 'exhausted-5-start-%%'",
    )
    assert sent - applied < timedelta(seconds=1.5)
    records = await read_all(kafka_bootstrap, out, 10, expect=2)
    assert len(records) == 2
    body = json.loads(records[1].value)
    assert records[1].key == b"5"
    assert body["id"] == rules.start_notice_id(5, rules.log_id_for("start-52"))
    assert body["type"] == "infinite.pack.exhausted"
    assert body["data"]["trainIds"] == [51, 52]
    assert datetime.fromisoformat(body["data"]["exhaustedAt"]) == exhausted

    # A restart rescans `packs` and derives the same ids: nothing is published again.
    consumer.stop()
    consumer.start()
    adjusted = envelope(
        "adj-7",
        "infinite.pack.adjusted",
        now,
        {"userPackId": 7, "deltaSeconds": 5, "reason": "unrelated"},
    )
    await produce(kafka_bootstrap, unique_topic, [adjusted])
    wait_until(
        lambda: scalar(ledger_database, "SELECT count(*) FROM ledger_events") == 4,
        30,
        f"the unrelated event\n{consumer.tail()}",
    )
    # Its notifier's first rescan ran at start; two more seconds of passes.
    assert len(await read_all(kafka_bootstrap, out, wait_seconds=2)) == 2
    assert published(ledger_database) == 2
