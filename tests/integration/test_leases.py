"""Leases through the real broker into the real database, by the real `ledger consume`:
a training whose scheduler goes silent is free again within a second of its lease end
(the API's own statement, as of now); one that heartbeats stays training; a start
without `leaseSeconds` takes LEDGER_DEFAULT_LEASE_SECONDS; the next event of the silent
pack closes its session in the read model at its lease end (reason leaseExpired)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer

from services.store import read_sql
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import query, scalar
from tests.support.exactly_once import assigned_partitions, assignments, since_last_start
from tests.support.kafka import produce
from tests.support.streams import envelope, purchase
from tests.support.waiting import wait_until

SILENT, BEATING, DEFAULTED = 31, 32, 33  # packs; each runs training 7
LEASE = 2  # seconds


def _start(pack: int, at: datetime, lease: int | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "userPackId": pack,
        "trainId": 7,
        "trainName": "t",
        "userId": 9,
        "userName": "u",
    }
    if lease is not None:
        data["leaseSeconds"] = lease
    return envelope(f"start-{pack}", "infinite.training.started", at, data)


def _status(url: str, pack: int) -> str | None:
    """The pack's `userPackStatus` as the API reads it now."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            read_sql.PACK_DETAIL_ANY_OWNER, {"user_pack_id": pack, "at": datetime.now(UTC)}
        ).fetchall()
    return None if not rows else str(rows[0][6])


async def test_a_silent_training_is_free_within_a_second_of_its_lease_end(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    consumer = consumer_factory()
    consumer.env["LEDGER_DEFAULT_LEASE_SECONDS"] = str(LEASE)
    consumer.start()
    wait_until(
        lambda: any(assigned_partitions(line) for line in assignments(since_last_start(consumer))),
        60,
        f"partitions assigned\n{consumer.tail()}",
    )
    bought = datetime.now(UTC) - timedelta(hours=1)
    await produce(
        kafka_bootstrap,
        unique_topic,
        [purchase(pack, 9, bought, 3600) for pack in (SILENT, BEATING, DEFAULTED)],
    )
    wait_until(
        lambda: scalar(ledger_database, "SELECT count(*) FROM packs") == 3,
        30,
        f"3 packs\n{consumer.tail()}",
    )

    started = datetime.now(UTC)
    lease_end = started + timedelta(seconds=LEASE)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=0, acks="all")
    await producer.start()

    async def send(event: dict[str, Any]) -> None:
        key = str(event["data"]["userPackId"]).encode()
        await producer.send_and_wait(unique_topic, json.dumps(event).encode(), key=key)

    try:
        for pack, lease in ((SILENT, LEASE), (BEATING, LEASE), (DEFAULTED, None)):
            await send(_start(pack, started, lease))
        free_at: dict[int, datetime] = {}  # when first seen free after training
        training: set[int] = set()
        beating: list[tuple[datetime, str | None]] = []
        beat = 0
        next_beat = started
        # Poll the statuses every 50 ms until 3 lease periods have passed; the beating
        # training heartbeats every lease/4 (its events timed when sent).
        while (now := datetime.now(UTC)) < started + timedelta(seconds=3 * LEASE):
            if now >= next_beat:
                beat += 1
                data = {"userPackId": BEATING, "trainId": 7}
                await send(envelope(f"beat-{beat}", "infinite.training.heartbeat", now, data))
                next_beat = now + timedelta(seconds=LEASE / 4)
            for pack in (SILENT, DEFAULTED):
                status = _status(ledger_database, pack)
                if status == "status.training":
                    training.add(pack)  # the start is applied
                elif pack in training and pack not in free_at and status == "status.free":
                    free_at[pack] = datetime.now(UTC)
            status = _status(ledger_database, BEATING)
            if beating or status == "status.training":  # from its start's application on
                beating.append((datetime.now(UTC), status))
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()

    for pack in (SILENT, DEFAULTED):
        assert pack in free_at, f"pack {pack} never free\n{consumer.tail()}"
        # Free at its lease end, not before (it is read as of now from the stored lease
        # end), and within a second of it.
        assert lease_end <= free_at[pack] < lease_end + timedelta(seconds=1), pack
    # Training from its start on, through well over two lease periods.
    assert {status for _, status in beating} == {"status.training"}, beating
    assert beating[0][0] < lease_end and beating[-1][0] > lease_end + timedelta(seconds=LEASE)

    # The silent pack's next event closes its session at the lease end in the read model.
    await produce(
        kafka_bootstrap,
        unique_topic,
        [
            envelope(
                "adj-silent",
                "infinite.pack.adjusted",
                datetime.now(UTC),
                {"userPackId": SILENT, "deltaSeconds": 5, "reason": "probe"},
            )
        ],
    )
    statement = (
        "SELECT end_time, stop_reason, lease_seconds, lease_ends_at, charged_seconds"
        " FROM usage_records WHERE user_pack_id = %s"
    )
    wait_until(
        lambda: query(ledger_database, statement, (SILENT,))[0][0] is not None,
        30,
        f"the lapse applied\n{consumer.tail()}",
    )
    ((end, reason, lease, lease_ends_at, charged),) = query(ledger_database, statement, (SILENT,))
    assert (end, reason, lease, lease_ends_at, charged) == (
        lease_end,
        "leaseExpired",
        LEASE,
        lease_end,
        LEASE,
    )
    (defaulted,) = query(ledger_database, statement, (DEFAULTED,))
    assert defaulted[0] is None and defaulted[2:4] == (LEASE, lease_end)  # open in the table
    ((beating_end, beating_lease_end),) = query(
        ledger_database,
        "SELECT end_time, lease_ends_at FROM usage_records WHERE user_pack_id = %s",
        (BEATING,),
    )
    assert beating_end is None and beating_lease_end > lease_end + timedelta(seconds=LEASE)
