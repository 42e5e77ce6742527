"""Realistic event histories for tests, and what the pure fold says they must give."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from events.parse import parse_object
from projections.fold import fold
from projections.read_models import UsageRow, pack_row, usage_row
from projections.state import LedgerEntry

BASE = datetime(2026, 11, 1, tzinfo=UTC)


def envelope(event_id: str, type_: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "tests/scheduler",
        "type": type_,
        "time": at.isoformat(),
        "subject": str(data["userPackId"]),
        "data": data,
    }


def purchase(pack: int, owner: int, at: datetime, seconds: int, tag: str = "") -> dict[str, Any]:
    return envelope(
        f"{tag}buy-{pack}",
        "infinite.pack.purchased",
        at,
        {
            "userPackId": str(pack),
            "userId": owner,
            "userName": f"user{owner}",
            "packName": f"pack {pack}",
            "packDurationType": "type.timing",
            "durationSeconds": seconds,
            "nodeList": [
                {
                    "nodeId": pack * 10 + 1,
                    "nodeName": "gpu-a",
                    "nodeType": "nodeType.master",
                    "cpuCount": 8,
                    "gpuCount": 2,
                    "memorySize": 64,
                }
            ],
        },
    )


def stream(
    packs: int, events_per_pack: int, seed: int = 7, tag: str = "", *, leases: bool = False
) -> list[dict[str, Any]]:
    """Purchases, top-ups and training sessions (some overlapping) on `packs` packs.

    Events of one pack have distinct times; their arrival order is shuffled a little
    (late events) and a few are sent twice (duplicates by id). With `leases`, starts may
    carry a lease (some lapse, some are renewed) and running trainings heartbeat.
    """
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for pack in range(1, packs + 1):
        owner = 1000 + pack % 17
        at = BASE + timedelta(minutes=pack)
        history = [purchase(pack, owner, at, rng.randint(600, 7200), tag)]
        open_trains: list[int] = []
        next_train = pack * 1000
        for n in range(events_per_pack - 1):
            at += timedelta(seconds=rng.randint(1, 400), microseconds=rng.randint(0, 999_999))
            roll = rng.random()
            event_id = f"{tag}e-{pack}-{n}"
            if roll < 0.1:
                data = {
                    "userPackId": pack,
                    "deltaSeconds": rng.choice([600, -120, 3600]),
                    "reason": "top-up",
                }
                history.append(envelope(event_id, "infinite.pack.adjusted", at, data))
            elif leases and roll < 0.3 and open_trains:
                data = {"userPackId": pack, "trainId": rng.choice(open_trains)}
                history.append(envelope(event_id, "infinite.training.heartbeat", at, data))
            elif roll < 0.55 or not open_trains:
                next_train += 1
                open_trains.append(next_train)
                data = {
                    "userPackId": pack,
                    "trainId": next_train,
                    "trainName": f"job {next_train}",
                    "userId": owner,
                    "userName": f"user{owner}",
                }
                if leases and rng.random() < 0.7:
                    data["leaseSeconds"] = rng.choice([200, 600, 1800])
                history.append(envelope(event_id, "infinite.training.started", at, data))
            else:
                train = open_trains.pop(rng.randrange(len(open_trains)))
                data = {"userPackId": pack, "trainId": train, "reason": "completed"}
                history.append(envelope(event_id, "infinite.training.stopped", at, data))
        for i in range(len(history) - 1):  # a few late arrivals
            if rng.random() < 0.05:
                history[i], history[i + 1] = history[i + 1], history[i]
        for item in list(history):
            if rng.random() < 0.03:
                history.append(item)  # a redelivery
        out.extend(history)
    # Interleave packs while keeping each pack's own arrival order.
    by_pack: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in out:
        by_pack[str(item["data"]["userPackId"])].append(item)
    queues = list(by_pack.values())
    mixed: list[dict[str, Any]] = []
    while queues:
        queue = rng.choice(queues)
        mixed.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return mixed


def tied_stream(packs: int, events_per_pack: int, seed: int = 7) -> list[dict[str, Any]]:
    """Histories whose events share instants on purpose (schedulers stamp whole seconds):
    a restart at the stop's instant, a start and its stop at one instant, a top-up at a
    stop's instant, conflicting purchases (earlier, equal and later than the first),
    event ids not in time order - each pack's events shuffled, some delivered twice."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for pack in range(1, packs + 1):
        owner = 1000 + pack % 17
        bought = BASE + timedelta(minutes=pack)
        history = [purchase(pack, owner, bought, rng.randint(30, 400), f"{rng.randint(0, 9)}")]
        for n in range(rng.choice([0, 0, 1, 2])):
            other = purchase(pack, owner, bought, rng.randint(30, 400), f"{rng.randint(0, 9)}x{n}")
            other["time"] = (bought + timedelta(seconds=rng.choice([-3, 0, 0, 3]))).isoformat()
            history.append(other)
        at = bought
        trains = [pack * 1000 + k for k in range(1, 4)]
        for n in range(events_per_pack):
            at += timedelta(seconds=rng.choice([0, 0, 1, 2, 5, 30]))
            train = rng.choice(trains)
            event_id = f"{rng.randint(0, 99):02d}-{pack}-{n}"  # id order is not time order
            kind = rng.choice(["start", "start", "stop", "stop", "adjust", "restart", "flash"])
            if kind == "adjust":
                delta = {
                    "userPackId": pack,
                    "deltaSeconds": rng.choice([60, -20, 300]),
                    "reason": "x",
                }
                history.append(envelope(event_id, "infinite.pack.adjusted", at, delta))
                continue
            stop = {"userPackId": pack, "trainId": train, "reason": "completed"}
            start = {
                "userPackId": pack,
                "trainId": train,
                "trainName": f"job {train}",
                "userId": owner,
                "userName": f"user{owner}",
            }
            if kind in ("stop", "restart"):
                history.append(envelope(event_id + "s", "infinite.training.stopped", at, stop))
            if kind in ("start", "restart", "flash"):
                history.append(envelope(event_id + "a", "infinite.training.started", at, start))
            if kind == "flash":
                history.append(envelope(event_id + "z", "infinite.training.stopped", at, stop))
        rng.shuffle(history)
        history.extend([item for item in history if rng.random() < 0.05])  # redeliveries
        out.extend(history)
    rng.shuffle(out)
    return out


def expected_rows(arrivals: list[dict[str, Any]]) -> tuple[dict[int, Any], dict[int, Any]]:
    """Per pack (granted, charged, open trainIds) and per logId the usage record fields,
    as the pure fold computes them from the first arrival of each event id."""
    seen: set[str] = set()
    by_pack: dict[int, list[LedgerEntry]] = defaultdict(list)
    for position, item in enumerate(arrivals, start=1):
        if item["id"] in seen:
            continue
        seen.add(item["id"])
        event = parse_object(item)
        by_pack[event.data.userPackId].append(LedgerEntry(position, event))
    packs: dict[int, Any] = {}
    usage: dict[int, Any] = {}
    for pack_id, entries in by_pack.items():
        result = fold(pack_id, entries)
        if result.state.purchase is None:
            continue
        row = pack_row(result.state)
        packs[pack_id] = (row.granted, row.charged, sorted(row.open_train_ids))
        for record in result.records.values():
            u = usage_row(result.state, record)
            usage[u.log_id] = usage_compared(u)
    return packs, usage


def usage_compared(u: UsageRow) -> tuple[Any, ...]:
    """The fields of a usage record that `expected_rows` compares."""
    return (
        u.user_pack_id,
        u.train_id,
        u.start_time,
        u.end_time,
        u.charged_seconds,
        u.overrun_seconds,
        u.stop_reason,
        u.lease_seconds,
        u.lease_ends_at,
    )
