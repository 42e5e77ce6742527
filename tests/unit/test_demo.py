"""The demo's simulated scheduler (`ledger dev --demo`), its waits shortened a hundredfold:
every start carries a lease, every training alive heartbeats every lease/2 until its stop,
and the training that crashes goes silent and never stops. Its stream is folded by the
contract's rules: the crashed session lapses at its lease end. The real thing, end to end:
tests/e2e/test_dev.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from datetime import timedelta
from typing import Any

from events.parse import Refusal, parse_event, parse_object
from projections import rules
from projections.fold import fold, status_at
from projections.leases import lapses
from projections.state import LedgerEntry
from services.demo import CRASH_PACK, LEASE_SECONDS, DemoScheduler, describe_notice

SCALE = 0.01


async def demo_stream(seconds: float) -> list[dict[str, Any]]:
    """What the demo publishes in `seconds` of its (shortened) time."""
    events: list[dict[str, Any]] = []

    async def publish(event: dict[str, Any]) -> None:
        events.append(event)

    async def sleep(duration: float) -> None:
        await asyncio.sleep(duration * SCALE)

    task = asyncio.create_task(DemoScheduler(publish, sleep=sleep).run())
    await asyncio.sleep(seconds * SCALE)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return events


async def test_trainings_have_leases_and_heartbeat_and_one_crashes() -> None:
    events = await demo_stream(90)
    for event in events:  # all valid events of the contract
        assert not isinstance(parse_event(json.dumps(event)), Refusal), event
    by_train: dict[int, list[str]] = defaultdict(list)
    for event in events:
        if event["type"].startswith("infinite.training."):
            by_train[event["data"]["trainId"]].append(event["type"].rsplit(".", 1)[1])
    starts = [e for e in events if e["type"] == "infinite.training.started"]
    assert len(starts) >= 5
    assert all(e["data"]["leaseSeconds"] == LEASE_SECONDS for e in starts)

    crashed = [e for e in starts if e["data"]["userPackId"] == CRASH_PACK]
    assert len(crashed) == 1  # pack 9006: only the training that crashes
    history = by_train[crashed[0]["data"]["trainId"]]
    # Started, heartbeats for 12 s (every 5 s: two), then nothing: no stop, ever.
    assert history[0] == "started" and "stopped" not in history
    assert history.count("heartbeat") == 2, history
    # Folded by the contract's rules: the crashed session lapses 10 s after its last
    # heartbeat (events are timed by the clock: the heartbeats came fast, the lease is
    # 10 s of it), and nothing else on its pack runs then.
    of_pack = [
        LedgerEntry(n, parse_object(e))
        for n, e in enumerate(events, start=1)
        if e["data"]["userPackId"] == CRASH_PACK
    ]
    state = fold(CRASH_PACK, of_pack).state
    last_beat = max(entry.event.time for entry in of_pack)
    end = last_beat + timedelta(seconds=LEASE_SECONDS)
    assert [(lapse.train_id, lapse.lapsed_at) for lapse in lapses(state, end)] == [
        (crashed[0]["data"]["trainId"], end)
    ]
    assert lapses(state, end - timedelta(microseconds=1)) == []
    assert status_at(state, end) == rules.FREE
    # Every training that stopped heartbeated while it ran: at least one heartbeat per
    # lease/2 of the (shortened) time it ran.
    heartbeating = [h for t, h in by_train.items() if len(h) > 2 and h[-1] == "stopped"]
    assert heartbeating, by_train
    for history in heartbeating:
        assert set(history[1:-1]) == {"heartbeat"}, history


def test_the_lapse_notice_is_told_in_words() -> None:
    line = describe_notice(
        {
            "type": "infinite.training.lapsed",
            "data": {"userPackId": 9006, "trainId": 50003, "lapsedAt": "2026-12-01T12:00:10Z"},
        }
    )
    assert "training 50003 on pack 9006 lapsed at 2026-12-01T12:00:10Z" in line
