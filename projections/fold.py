"""The fold: a pack's state is a pure function of its events (CONTRACT.md section 2).

Events are applied in the order (the winning purchase first, then event `time`, then
arrival `position`). `fold` rebuilds a pack from all its entries; `apply` adds one entry
to a state when it comes after everything already applied, which is the live
consumer's common case. Both run the same rules, so replay and the consumer agree.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime

from events.envelope import (
    AdjustedEvent,
    AnyPackEvent,
    PurchasedEvent,
    StartedEvent,
    StoppedEvent,
)
from events.payloads import DurationType
from projections import rules
from projections.state import LedgerEntry, PackState, Purchase, UsageRecord

Changes = MutableMapping[int, UsageRecord]
"""Usage records touched by an application, by logId."""


@dataclass(slots=True)
class FoldResult:
    state: PackState
    records: dict[int, UsageRecord] = field(default_factory=dict)


def event_of(entry: LedgerEntry) -> AnyPackEvent:
    return entry.event  # type: ignore[return-value]


def fold(user_pack_id: int, entries: Iterable[LedgerEntry]) -> FoldResult:
    """All entries of one pack, in any order, to its state and every usage record."""
    state = PackState(user_pack_id)
    result = FoldResult(state)
    purchases: list[LedgerEntry] = []
    others: list[LedgerEntry] = []
    for entry in entries:
        (purchases if isinstance(entry.event, PurchasedEvent) else others).append(entry)
    purchases.sort(key=lambda entry: entry.position)
    for entry in purchases:
        _apply_purchase(state, entry)
    if state.purchase is None:
        # Parked: the events wait in the ledger until the purchase arrives.
        state.event_count = len(others)
        return result
    others.sort(key=lambda entry: (event_of(entry).time, entry.position))
    for entry in others:
        _apply_in_order(state, entry, result.records)
    return result


def applies_in_order(state: PackState, entry: LedgerEntry) -> bool:
    """Whether `apply` may add `entry` to `state` (else the pack must be re-folded)."""
    if state.purchase is None:
        return False
    event = event_of(entry)
    if isinstance(event, PurchasedEvent):
        return True  # a later purchase is always a conflict
    if state.last_time is None:
        return True
    return (event.time, entry.position) >= (state.last_time, state.last_position)


def apply(state: PackState, entry: LedgerEntry, changes: Changes) -> None:
    """Add one entry that comes after everything in `state` (see `applies_in_order`)."""
    if isinstance(entry.event, PurchasedEvent):
        _apply_purchase(state, entry)
    else:
        _apply_in_order(state, entry, changes)


def _apply_purchase(state: PackState, entry: LedgerEntry) -> None:
    event = entry.event
    assert isinstance(event, PurchasedEvent)
    state.event_count += 1
    state.due_known = False
    if state.purchase is not None:
        if event.id != state.purchase.event_id:
            state.audit.conflicting_purchases.append(event.id)
        return
    data = event.data
    state.purchase = Purchase(
        event_id=event.id,
        position=entry.position,
        user_id=data.userId,
        user_name=data.userName,
        pack_name=data.packName,
        duration_type=data.packDurationType,
        duration_seconds=data.durationSeconds or 0,
        activity_end_time=data.activityEndTime,
        buy_datetime=data.buyDatetime or event.time,
        nodes=tuple(data.nodeList),
    )


def _apply_in_order(state: PackState, entry: LedgerEntry, changes: Changes) -> None:
    event = event_of(entry)
    at = event.time
    _note_exhaustion_before(state, at)
    if isinstance(event, AdjustedEvent):
        state.adjustments += event.data.deltaSeconds
    elif isinstance(event, StartedEvent):
        _start(state, event, changes)
    elif isinstance(event, StoppedEvent):
        _stop(state, event, changes)
    _settle_exhaustion_after(state, at)
    state.last_time = at
    state.last_position = entry.position
    state.event_count += 1
    state.due_known = False


def _start(state: PackState, event: StartedEvent, changes: Changes) -> None:
    data = event.data
    if data.trainId in state.open_sessions:
        state.audit.duplicate_starts.append(event.id)
        return
    record = UsageRecord(
        log_id=rules.log_id_for(event.id),
        train_id=data.trainId,
        train_name=data.trainName,
        user_id=data.userId,
        user_name=data.userName,
        start_time=event.time,
        start_event_id=event.id,
    )
    state.open_sessions[data.trainId] = record
    changes[record.log_id] = record


def _stop(state: PackState, event: StoppedEvent, changes: Changes) -> None:
    record = state.open_sessions.pop(event.data.trainId, None)
    if record is None:
        state.audit.orphan_stops.append(event.id)
        return
    length = rules.elapsed_seconds(record.start_time, event.time)
    charge = rules.charge_for(length, state.granted, state.charged)
    if _is_timing(state):
        state.charged += charge
    else:
        charge = 0  # activity packs are never charged
    record.end_time = event.time
    record.stop_event_id = event.id
    record.stop_reason = event.data.reason
    record.charged_seconds = charge
    record.overrun_seconds = length - charge
    changes[record.log_id] = record


def _is_timing(state: PackState) -> bool:
    return state.purchase is not None and state.purchase.duration_type is DurationType.TIMING


def _note_exhaustion_before(state: PackState, at: datetime) -> None:
    """If the open sessions ran the pack out before this event, the exhaustion began then."""
    if state.exhausted_since is not None or not state.open_sessions or not _is_timing(state):
        return
    instant = exhausts_at(state)
    if instant is not None and instant <= at:
        state.exhausted_since = instant


def _settle_exhaustion_after(state: PackState, at: datetime) -> None:
    """An exhaustion lasts while sessions run on a timing pack with nothing left."""
    if not state.open_sessions or not _is_timing(state):
        state.exhausted_since = None
        return
    remaining = remaining_at(state, at)
    if remaining > 0:
        state.exhausted_since = None
    elif state.exhausted_since is None:
        state.exhausted_since = at  # this very event left nothing (a refund, a start on 0)


def remaining_at(state: PackState, now: datetime) -> int:
    assert state.purchase is not None
    return rules.remaining_seconds(
        state.purchase.duration_type, state.granted, state.charged, state.open_starts, now
    )


def status_at(state: PackState, now: datetime) -> str:
    assert state.purchase is not None
    return rules.status(
        state.purchase.duration_type,
        state.granted,
        state.charged,
        state.open_starts,
        state.purchase.activity_end_time,
        now,
    )


def exhausts_at(state: PackState) -> datetime | None:
    """When the open sessions drive (or drove) a timing pack to 0; None if they never will."""
    if not state.due_known:
        state.due = _exhaustion(state)
        state.due_known = True
    return state.due


def _exhaustion(state: PackState) -> datetime | None:
    if not state.open_sessions or not _is_timing(state):
        return None
    if state.exhausted_since is not None:
        return state.exhausted_since
    assert state.last_time is not None  # open sessions imply an applied start
    return rules.exhaustion_instant(
        state.granted - state.charged, state.open_starts, state.last_time
    )
