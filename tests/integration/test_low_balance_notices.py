"""Low-balance notices end to end: a real broker and `ledger consume` processes.

Thresholds 10 and 20 s. A running session crosses them with no event arriving then; a
refund crosses at its instant; a top-up re-arms and the next refund crosses again. Each
notice is published once, within about a second of `crossedAt`, and neither a second
delivery of the events nor a restart of the consumer publishes another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tests.support.api_process import free_port
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import query
from tests.support.kafka import produce, read_all
from tests.support.metrics import scrape
from tests.support.streams import envelope, purchase

OWNER = 77


def start(pack: int, train: int, at: datetime) -> dict[str, Any]:
    data = {"userPackId": pack, "trainId": train, "trainName": "t", "userId": OWNER}
    return envelope(
        f"low-start-{pack}-{train}", "infinite.training.started", at, data | {"userName": "u"}
    )


def adjust(pack: int, n: int, delta: int, at: datetime) -> dict[str, Any]:
    data = {"userPackId": pack, "deltaSeconds": delta, "reason": "test"}
    return envelope(f"low-adjust-{pack}-{n}", "infinite.pack.adjusted", at, data)


def notices(url: str) -> list[tuple[Any, ...]]:
    return query(
        url,
        "SELECT user_pack_id, payload, exhausted_at, published_at FROM exhaustion_notices"
        " WHERE notice_id LIKE 'low-%%' ORDER BY exhausted_at, notice_id",
    )


async def _until(url: str, count: int, seconds: float) -> list[tuple[Any, ...]]:
    for _ in range(int(seconds / 0.2)):
        found = notices(url)
        if len(found) >= count and all(row[3] is not None for row in found):
            return found
        await asyncio.sleep(0.2)
    packs = query(url, "SELECT user_pack_id, low_balance, snapshot->'lows' FROM packs")
    raise AssertionError(f"{count} notices expected: {found}; packs {packs}")


async def test_each_crossing_is_announced_once_within_a_second(
    consumer_factory: Callable[[], ConsumerProcess],
    ledger_database: str,
    kafka_bootstrap: str,
    unique_topic: str,
) -> None:
    consumer = consumer_factory()
    consumer.env["LEDGER_LOW_BALANCE_SECONDS"] = "20,10"
    metrics_port = free_port()
    consumer.env["LEDGER_CONSUMER_METRICS_PORT"] = str(metrics_port)
    consumer.start()
    now = datetime.now(UTC)
    refunds = [
        purchase(2, OWNER, now - timedelta(minutes=1), 100),
        adjust(2, 1, -85, now),  # 15 left: 20 crossed now
        adjust(2, 2, 30, now + timedelta(seconds=1)),  # 45: both armed again
        adjust(2, 3, -40, now + timedelta(seconds=2)),  # 5: 20 and 10 crossed again
    ]
    await produce(kafka_bootstrap, unique_topic, refunds)
    found = await _until(ledger_database, 3, 60)  # the consumer joins its group first
    assert [(row[1]["data"]["thresholdSeconds"], row[2]) for row in found] == [
        (20, now),
        (10, now + timedelta(seconds=2)),
        (20, now + timedelta(seconds=2)),
    ]

    # A running session: 25 s, so 20 is crossed 5 s after the start and 10 after 15 s.
    started = datetime.now(UTC)
    await produce(
        kafka_bootstrap,
        unique_topic,
        [purchase(1, OWNER, started - timedelta(minutes=1), 25), start(1, 9, started)],
    )
    found = await _until(ledger_database, 5, 30)
    running = [row for row in found if row[0] == 1]
    assert [(row[1]["data"]["thresholdSeconds"], row[2]) for row in running] == [
        (20, started + timedelta(seconds=5)),
        (10, started + timedelta(seconds=15)),
    ]
    for _, payload, crossed, published in running:
        assert published - crossed < timedelta(seconds=1.5), (crossed, published)
        assert payload["data"]["trainIds"] == [9]
        assert payload["data"]["exhaustsAt"] == (started + timedelta(seconds=25)).isoformat()
        assert payload["id"].startswith("low-1-") and payload["type"] == "infinite.pack.low"

    # Each one counted once by its type (this consumer published them all).
    published = scrape(metrics_port)
    assert published['ledger_notices_published_total{type="infinite.pack.low"}'] == 5
    assert 'ledger_notices_published_total{type="infinite.pack.exhausted"}' not in published
    assert published["ledger_exhaustion_notices_published_total"] == 5

    # The events again, and a restarted consumer (its rescan): nothing new.
    await produce(kafka_bootstrap, unique_topic, refunds)
    consumer.stop()
    consumer_factory().start()
    await asyncio.sleep(8)
    assert len(notices(ledger_database)) == 5
    out = await read_all(kafka_bootstrap, f"{unique_topic}.out", wait_seconds=5)
    lows = [orjson.loads(record.value) for record in out]
    lows = [notice for notice in lows if notice["type"] == "infinite.pack.low"]
    assert sorted(notice["id"] for notice in lows) == sorted(row[1]["id"] for row in found)
