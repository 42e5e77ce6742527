"""Realistic event histories for tests, and what the pure fold says they must give."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from events.parse import parse_object
from projections.fold import fold
from projections.read_models import pack_row, usage_row
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


def stream(packs: int, events_per_pack: int, seed: int = 7, tag: str = "") -> list[dict[str, Any]]:
    """Purchases, top-ups and training sessions (some overlapping) on `packs` packs.

    Events of one pack have distinct times; their arrival order is shuffled a little
    (late events) and a few are sent twice (duplicates by id).
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
            usage[u.log_id] = (
                u.user_pack_id,
                u.train_id,
                u.start_time,
                u.end_time,
                u.charged_seconds,
                u.overrun_seconds,
            )
    return packs, usage
