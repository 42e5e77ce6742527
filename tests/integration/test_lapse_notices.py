"""Lapse notices end to end: events through the real broker, `ledger consume` processes.

A silent training with `leaseSeconds` 2 is announced once (`infinite.training.lapsed` on
`pack-events.out`) within about a second of its lease end, with no event arriving then; a
training that heartbeats every second is not. Neither a later event of the pack (the
consumer persists the lapse), nor the events delivered again, nor a restart of the
consumer, nor two consumers at once, nor a replay, publishes a second notice; a lapse that falls due
while no consumer runs is announced by the next one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from projections import rules
from services.replay.rebuild import ReplayOptions, replay
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import query
from tests.support.kafka import produce, read_all
from tests.support.streams import envelope, purchase

OWNER = 77
S = timedelta(seconds=1)


def start(pack: int, train: int, at: datetime, lease: int) -> dict[str, Any]:
    data = {"userPackId": pack, "trainId": train, "trainName": "t", "userId": OWNER}
    return envelope(
        f"lapse-start-{pack}-{train}",
        "infinite.training.started",
        at,
        data | {"userName": "u", "leaseSeconds": lease},
    )


def heartbeat(pack: int, train: int, n: int, at: datetime) -> dict[str, Any]:
    data = {"userPackId": pack, "trainId": train}
    return envelope(f"lapse-beat-{pack}-{train}-{n}", "infinite.training.heartbeat", at, data)


def stop(pack: int, train: int, at: datetime) -> dict[str, Any]:
    data = {"userPackId": pack, "trainId": train, "reason": "completed"}
    return envelope(f"lapse-stop-{pack}-{train}", "infinite.training.stopped", at, data)


def adjust(pack: int, at: datetime) -> dict[str, Any]:
    data = {"userPackId": pack, "deltaSeconds": 60, "reason": "top-up"}
    return envelope(f"lapse-adjust-{pack}", "infinite.pack.adjusted", at, data)


def notices(url: str) -> list[tuple[Any, ...]]:
    return query(
        url,
        "SELECT user_pack_id, train_id, log_id, lapsed_at, published_at, payload"
        " FROM lapse_notices ORDER BY lapsed_at, notice_id",
    )


async def _until(url: str, count: int, seconds: float) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    for _ in range(int(seconds / 0.1)):
        found = notices(url)
        if len(found) >= count and all(row[4] is not None for row in found):
            return found
        await asyncio.sleep(0.1)
    records = query(
        url, "SELECT user_pack_id, train_id, end_time, lease_ends_at FROM usage_records"
    )
    raise AssertionError(f"{count} notices expected: {found}; usage records {records}")


async def test_a_silent_training_is_announced_once_a_heartbeating_one_never(
    consumer_factory: Callable[[], ConsumerProcess],
    ledger_database: str,
    kafka_bootstrap: str,
    unique_topic: str,
) -> None:
    first = consumer_factory()
    first.start()
    bought = datetime.now(UTC) - timedelta(minutes=1)
    purchases: list[Any] = [purchase(pack, OWNER, bought, 3600) for pack in (1, 2, 3)]
    await produce(kafka_bootstrap, unique_topic, purchases)
    # The consumer joins its group first: wait for the purchases to be applied.
    for _ in range(300):
        if query(ledger_database, "SELECT count(*) FROM packs")[0][0] == 3:
            break
        await asyncio.sleep(0.1)

    t0 = datetime.now(UTC)
    silent = start(1, 11, t0, lease=2)
    beating = [start(2, 21, t0, lease=2)]
    await produce(kafka_bootstrap, unique_topic, [silent, beating[0]])
    for n in range(1, 6):  # pack 2: a heartbeat every second (lease/2), then a stop
        await asyncio.sleep(max(0.0, (t0 + n * S - datetime.now(UTC)).total_seconds()))
        beating.append(heartbeat(2, 21, n, datetime.now(UTC)))
        await produce(kafka_bootstrap, unique_topic, [beating[-1]])
    beating.append(stop(2, 21, datetime.now(UTC)))
    await produce(kafka_bootstrap, unique_topic, [beating[-1]])

    [row] = await _until(ledger_database, 1, 10)
    lapsed_at = t0 + 2 * S
    log_id = rules.log_id_for("lapse-start-1-11")
    pack, train, logged, at, published_at, payload = row
    assert (pack, train, logged, at) == (1, 11, log_id, lapsed_at)
    assert lapsed_at <= published_at < lapsed_at + 1.5 * S, published_at - lapsed_at
    assert payload["id"] == rules.lapse_notice_id(1, log_id, lapsed_at)
    assert payload["type"] == "infinite.training.lapsed"
    assert payload["data"] == {
        "userPackId": 1,
        "trainId": 11,
        "logId": log_id,
        "lapsedAt": lapsed_at.isoformat(),
    }
    # Pack 2's session closes at its stop (once applied), not at a lease end.
    for _ in range(100):
        [(end, reason)] = query(
            ledger_database,
            "SELECT end_time, stop_reason FROM usage_records WHERE user_pack_id = 2",
        )
        if end is not None:
            break
        await asyncio.sleep(0.1)
    assert reason == "completed" and end > t0 + 5 * S

    # A later event of pack 1: the consumer persists the lapse - the same lapse.
    later = adjust(1, datetime.now(UTC))
    await produce(kafka_bootstrap, unique_topic, [later])
    for _ in range(100):
        closed = query(
            ledger_database,
            "SELECT end_time, stop_reason FROM usage_records WHERE user_pack_id = 1",
        )
        if closed[0][0] is not None:
            break
        await asyncio.sleep(0.1)
    assert closed == [(lapsed_at, "leaseExpired")]

    # Pack 3: a lease that ends while no consumer runs; the next one announces it.
    t3 = datetime.now(UTC)
    await produce(kafka_bootstrap, unique_topic, [start(3, 31, t3, lease=4)])
    for _ in range(100):
        if query(ledger_database, "SELECT count(*) FROM usage_records WHERE user_pack_id = 3")[0][
            0
        ]:
            break
        await asyncio.sleep(0.1)
    first.stop()
    await asyncio.sleep(max(0.0, (t3 + 5 * S - datetime.now(UTC)).total_seconds()))
    # Everything again, and two consumers at once: their first rescans find pack 3's lapse.
    everything: list[Any] = [*purchases, silent, *beating, later, start(3, 31, t3, lease=4)]
    second, third = consumer_factory(), consumer_factory()
    second.start()
    third.start()
    await produce(kafka_bootstrap, unique_topic, everything)
    found = await _until(ledger_database, 2, 60)
    assert [(row[0], row[3]) for row in found] == [(1, lapsed_at), (3, t3 + 4 * S)]
    await asyncio.sleep(3)  # passes of both: nothing more
    assert len(notices(ledger_database)) == 2
    # A replay rebuilds the read models from the ledger (pack 3's lapse is open again in
    # them, pack 1's closed), the consumers running: the same lapses, nothing new.
    report = await asyncio.to_thread(replay, ledger_database, ReplayOptions(progress=False))
    assert report.events == len({event["id"] for event in everything})
    await asyncio.sleep(3)
    assert len(notices(ledger_database)) == 2

    out = await read_all(kafka_bootstrap, f"{unique_topic}.out", wait_seconds=5)
    lapses = [orjson.loads(record.value) for record in out]
    lapses = [n for n in lapses if n["type"] == "infinite.training.lapsed"]
    assert sorted(n["id"] for n in lapses) == sorted(row[5]["id"] for row in found)
    assert [r.key for r in out if b"infinite.training.lapsed" in r.value] == [b"1", b"3"]


async def test_a_late_heartbeat_after_the_notice_moves_the_lapse_and_a_new_one_follows(
    consumer_factory: Callable[[], ConsumerProcess],
    ledger_database: str,
    kafka_bootstrap: str,
    unique_topic: str,
) -> None:
    """docs/events.md section 9: the first notice stands; the session, extended by a
    heartbeat timed inside its lease, lapses again later - a new notice."""
    consumer_factory().start()
    bought = datetime.now(UTC) - timedelta(minutes=1)
    await produce(kafka_bootstrap, unique_topic, [purchase(4, OWNER, bought, 3600)])
    for _ in range(300):  # the consumer joins its group first
        if query(ledger_database, "SELECT user_pack_id FROM packs"):
            break
        await asyncio.sleep(0.1)
    t0 = datetime.now(UTC)
    await produce(kafka_bootstrap, unique_topic, [start(4, 41, t0, lease=3)])
    [first] = await _until(ledger_database, 1, 60)
    assert first[3] == t0 + 3 * S
    # Delayed in transit: timed before the lease end, it arrives after the notice.
    await produce(kafka_bootstrap, unique_topic, [heartbeat(4, 41, 1, t0 + 2.5 * S)])
    found = await _until(ledger_database, 2, 15)
    assert [row[3] for row in found] == [t0 + 3 * S, t0 + 5.5 * S]
    assert found[0][5]["id"] != found[1][5]["id"]
    assert {row[2] for row in found} == {rules.log_id_for("lapse-start-4-41")}
    second = found[1]
    assert t0 + 5.5 * S <= second[4] < t0 + 7 * S
