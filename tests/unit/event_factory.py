"""Terse builders for the four inbound events and ledger entries, for the domain tests.

Times are given as seconds (int or float) after a fixed epoch `T0`, or as datetimes.
Ids of events are generated unless given; every builder returns a validated event.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from events.envelope import (
    AdjustedEvent,
    AnyPackEvent,
    HeartbeatEvent,
    PurchasedEvent,
    StartedEvent,
    StoppedEvent,
)
from events.parse import parse_object
from projections.fold import FoldResult, exhausts_at, fold, remaining_at, status_at
from projections.state import LedgerEntry, PackState, UsageRecord

T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
PACK = 1001
OWNER = 7

_counter = itertools.count(1)

When = float | int | datetime


def at(when: When) -> datetime:
    """`when` seconds after T0 (or a datetime as given)."""
    if isinstance(when, datetime):
        return when
    return T0 + timedelta(seconds=when)


def _envelope(kind: str, when: When, data: dict[str, Any], event_id: str | None) -> AnyPackEvent:
    return parse_object(
        {
            "specversion": "1.0",
            "id": event_id or f"evt-{next(_counter)}",
            "source": "scheduler/test",
            "type": kind,
            "time": at(when).isoformat(),
            "data": data,
        }
    )


def purchased(
    when: When = 0,
    *,
    pack: int = PACK,
    seconds: int | None = 3600,
    activity: bool = False,
    activity_end: When | None = None,
    buy: When | None = None,
    user: int = OWNER,
    event_id: str | None = None,
) -> PurchasedEvent:
    data: dict[str, Any] = {
        "userPackId": pack,
        "userId": user,
        "userName": "owner",
        "packName": f"pack {pack}",
        "packDurationType": "type.activity" if activity else "type.timing",
        "nodeList": [
            {
                "nodeId": 1,
                "nodeName": "node-1",
                "nodeType": "nodeType.master",
                "cpuCount": 8,
                "gpuCount": 1,
                "memorySize": 64,
            }
        ],
    }
    if seconds is not None and not activity:
        data["durationSeconds"] = seconds
    if activity_end is not None:
        data["activityEndTime"] = at(activity_end).isoformat()
    if buy is not None:
        data["buyDatetime"] = at(buy).isoformat()
    event = _envelope("infinite.pack.purchased", when, data, event_id)
    assert isinstance(event, PurchasedEvent)
    return event


def adjusted(
    when: When, delta: int, *, pack: int = PACK, event_id: str | None = None
) -> AdjustedEvent:
    data = {"userPackId": pack, "deltaSeconds": delta, "reason": "test"}
    event = _envelope("infinite.pack.adjusted", when, data, event_id)
    assert isinstance(event, AdjustedEvent)
    return event


def started(
    when: When,
    train: int,
    *,
    pack: int = PACK,
    user: int = OWNER,
    event_id: str | None = None,
    lease: int | None = None,
) -> StartedEvent:
    data: dict[str, Any] = {
        "userPackId": pack,
        "trainId": train,
        "trainName": f"train {train}",
        "userId": user,
        "userName": f"user {user}",
    }
    if lease is not None:
        data["leaseSeconds"] = lease
    event = _envelope("infinite.training.started", when, data, event_id)
    assert isinstance(event, StartedEvent)
    return event


def heartbeat(
    when: When, train: int, *, pack: int = PACK, event_id: str | None = None
) -> HeartbeatEvent:
    data = {"userPackId": pack, "trainId": train}
    event = _envelope("infinite.training.heartbeat", when, data, event_id)
    assert isinstance(event, HeartbeatEvent)
    return event


def stopped(
    when: When,
    train: int,
    *,
    pack: int = PACK,
    reason: str | None = "completed",
    event_id: str | None = None,
) -> StoppedEvent:
    data: dict[str, Any] = {"userPackId": pack, "trainId": train}
    if reason is not None:
        data["reason"] = reason
    event = _envelope("infinite.training.stopped", when, data, event_id)
    assert isinstance(event, StoppedEvent)
    return event


def entries(events: Iterable[AnyPackEvent]) -> list[LedgerEntry]:
    """Ledger entries in the given (arrival) order, positions 1, 2, 3..."""
    return [LedgerEntry(position, event) for position, event in enumerate(events, start=1)]


def fold_arrivals(events: Sequence[AnyPackEvent], pack: int = PACK) -> FoldResult:
    """Fold the events of one pack as they arrived in the given order."""
    return fold(pack, entries(events))


def seconds(instant: datetime | None) -> float | None:
    """An instant as seconds after T0 (None stays None)."""
    return None if instant is None else (instant - T0).total_seconds()


RecordView = tuple[int, float, float | None, int | None, int | None]
"""A usage record as (trainId, start, end, charged, overrun), times in seconds after T0."""


def record_views(records: Iterable[UsageRecord]) -> list[RecordView]:
    """Usage records, terse and ordered by (start, trainId)."""
    views = [
        (
            r.train_id,
            (r.start_time - T0).total_seconds(),
            seconds(r.end_time),
            r.charged_seconds,
            r.overrun_seconds,
        )
        for r in records
    ]
    return sorted(views, key=lambda view: (view[1], view[0]))


def describe(
    state: PackState, records: dict[int, UsageRecord], nows: Iterable[When] = ()
) -> dict[str, Any]:
    """Everything arrival order must not change: state, usage records, reads at `nows`.

    Ledger positions (`last_position`, the purchase's `position`) are left out: where an
    event sits in the ledger does depend on arrival order.
    """
    purchase = None if state.purchase is None else replace(state.purchase, position=0)
    view: dict[str, Any] = {
        "purchase": purchase,
        "granted": state.granted,
        "adjustments": state.adjustments,
        "charged": state.charged,
        "open": {
            train: (
                r.log_id,
                r.start_time,
                r.start_event_id,
                r.train_name,
                r.user_id,
                r.lease_seconds,
                r.lease_ends_at,
            )
            for train, r in sorted(state.open_sessions.items())
        },
        "last_time": state.last_time,
        "exhausted_since": state.exhausted_since,
        "event_count": state.event_count,
        "audit": (
            state.audit.conflicting_purchases,
            state.audit.duplicate_starts,
            state.audit.orphan_stops,
            state.audit.orphan_heartbeats,
        ),
        "lows": state.lows,
        "records": {log_id: _record_fields(r) for log_id, r in sorted(records.items())},
    }
    if state.purchase is not None:
        view["exhausts_at"] = exhausts_at(state)
        view["reads"] = [(remaining_at(state, at(now)), status_at(state, at(now))) for now in nows]
    return view


def _record_fields(record: UsageRecord) -> tuple[Any, ...]:
    return (
        record.log_id,
        record.train_id,
        record.train_name,
        record.user_id,
        record.user_name,
        record.start_time,
        record.start_event_id,
        record.end_time,
        record.stop_event_id,
        record.stop_reason,
        record.charged_seconds,
        record.overrun_seconds,
        record.lease_seconds,
        record.lease_ends_at,
    )
