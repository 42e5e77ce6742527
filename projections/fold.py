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
from typing import Final

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

ADJUST: Final = 1
START: Final = 2
STOP: Final = 3

Step = tuple[datetime, int, int, str, int, str | None, int, str | None]
"""An event after the purchase, as the fold applies it: (time, position, kind, event id,
number, text, user id, user name) with kind ADJUST (number = deltaSeconds), START
(number = trainId, text = trainName, the user who runs it) or STOP (number = trainId,
text = reason). Tuples sort in fold order: by time, then position."""


@dataclass(slots=True)
class FoldResult:
    state: PackState
    records: dict[int, UsageRecord] = field(default_factory=dict)


def event_of(entry: LedgerEntry) -> AnyPackEvent:
    return entry.event  # type: ignore[return-value]


def fold(user_pack_id: int, entries: Iterable[LedgerEntry]) -> FoldResult:
    """All entries of one pack, in any order, to its state and every usage record."""
    purchases: list[LedgerEntry] = []
    steps: list[Step] = []
    for entry in entries:
        if isinstance(entry.event, PurchasedEvent):
            purchases.append(entry)
        else:
            steps.append(step_of(entry))
    return fold_steps(user_pack_id, purchases, steps)


def fold_steps(user_pack_id: int, purchases: list[LedgerEntry], steps: list[Step]) -> FoldResult:
    """`fold` for entries already split into purchases and steps (`step_of`).

    Replay builds steps straight from stored columns, without an event object per entry.
    Sorts both lists in place.
    """
    state = PackState(user_pack_id)
    result = FoldResult(state)
    purchases.sort(key=lambda entry: entry.position)
    for entry in purchases:
        _apply_purchase(state, entry)
    if state.purchase is None:
        # Parked: the events wait in the ledger until the purchase arrives.
        state.event_count = len(steps)
        return result
    steps.sort()  # by (time, position): positions are unique, so nothing else is compared
    records = result.records
    for step in steps:
        _apply_step(state, step, records)
    return result


def step_of(entry: LedgerEntry) -> Step:
    """An adjustment, start or stop as the fold applies it."""
    event = entry.event
    if isinstance(event, StartedEvent):
        started = event.data
        return (
            event.time,
            entry.position,
            START,
            event.id,
            started.trainId,
            started.trainName,
            started.userId,
            started.userName,
        )
    if isinstance(event, StoppedEvent):
        stopped = event.data
        reason = stopped.reason
        return (event.time, entry.position, STOP, event.id, stopped.trainId, reason, 0, None)
    if isinstance(event, AdjustedEvent):
        delta = event.data.deltaSeconds
        return (event.time, entry.position, ADJUST, event.id, delta, None, 0, None)
    raise TypeError(f"not an adjustment, start or stop: {type(event).__name__}")


def fold_order(entry: LedgerEntry) -> tuple[datetime, int]:
    """The sort key of entries after the purchase: event time, then arrival position."""
    return (event_of(entry).time, entry.position)


def apply_in_order(state: PackState, entries: Iterable[LedgerEntry]) -> Changes | None:
    """Apply entries (in any order) after what `state` holds, in fold order; the usage
    records they touch, or None as soon as one comes too late (the pack must then be
    re-folded, and `state`, partly changed, be dropped)."""
    changes: dict[int, UsageRecord] = {}
    if not isinstance(entries, list) or len(entries) > 1:  # a batch brings one, mostly
        entries = sorted(entries, key=fold_order)
    for entry in entries:  # applies_in_order and apply, inlined: this runs for every event
        event = event_of(entry)
        if state.purchase is None:
            return None
        if isinstance(event, PurchasedEvent):
            _apply_purchase(state, entry)
            continue
        last = state.last_time
        if last is not None and (event.time, entry.position) < (last, state.last_position):
            return None
        _apply_step(state, step_of(entry), changes)
    return changes


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
        _apply_step(state, step_of(entry), changes)


def _apply_purchase(state: PackState, entry: LedgerEntry) -> None:
    event = entry.event
    assert isinstance(event, PurchasedEvent)
    state.event_count += 1
    state.max_position = max(state.max_position, entry.position)
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


def _apply_step(state: PackState, step: Step, changes: Changes) -> None:
    at = step[0]
    purchase = state.purchase
    timing = purchase is not None and purchase.duration_type is DurationType.TIMING
    # `left`: granted - charged - what the open sessions used by `at` (remaining_at before
    # its floor at 0), computed once per event; each kind of step below moves it exactly.
    left = 0
    if timing and state.open_sessions:
        left = _left(state, at)
        if left <= 0 and state.exhausted_since is None:
            # The open sessions ran the pack out before this event: the exhaustion began
            # then. (While time is left at `at`, the instant lies after `at`.)
            instant = exhausts_at(state)
            if instant is not None and instant <= at:
                state.exhausted_since = instant
    elif timing:
        left = state.granted - state.charged  # no session uses anything
    kind = step[2]
    if kind == START:
        _start(state, step, changes)  # a session starting at `at` has used nothing yet
    elif kind == STOP:
        left += _stop(state, step, changes, timing)
    else:
        delta = step[4]
        state.adjustments += delta
        left += delta
    # An exhaustion lasts while sessions run on a timing pack with nothing left.
    if not timing or not state.open_sessions or left > 0:
        state.exhausted_since = None
    elif state.exhausted_since is None:
        state.exhausted_since = at  # this very event left nothing (a refund, a start on 0)
    state.last_time = at
    state.last_position = step[1]
    if step[1] > state.max_position:
        state.max_position = step[1]
    state.event_count += 1
    state.due_known = False


def _left(state: PackState, at: datetime) -> int:
    """A timing pack's granted - charged - the whole seconds its open sessions used by
    `at`: `rules.remaining_seconds` without the floor at 0, inlined for the hot path."""
    assert state.purchase is not None
    left = state.purchase.duration_seconds + state.adjustments - state.charged
    for record in state.open_sessions.values():
        elapsed = at - record.start_time
        used = elapsed.days * 86_400 + elapsed.seconds  # whole seconds, floored
        if used > 0:
            left -= used
    return left


def _start(state: PackState, step: Step, changes: Changes) -> None:
    _, _, _, event_id, train_id, train_name, user_id, user_name = step
    if train_id in state.open_sessions:
        state.audit.duplicate_starts.append(event_id)
        return
    assert train_name is not None and user_name is not None
    record = UsageRecord(
        log_id=rules.log_id_for(event_id),
        train_id=train_id,
        train_name=train_name,
        user_id=user_id,
        user_name=user_name,
        start_time=step[0],
        start_event_id=event_id,
    )
    state.open_sessions[train_id] = record
    changes[record.log_id] = record


def _stop(state: PackState, step: Step, changes: Changes, timing: bool) -> int:
    """Close the session; returns what that gives back to `left` (its length, less the
    charge)."""
    at, _, _, event_id, train_id, reason, _, _ = step
    record = state.open_sessions.pop(train_id, None)
    if record is None:
        state.audit.orphan_stops.append(event_id)
        return 0
    length = rules.elapsed_seconds(record.start_time, at)
    charge = rules.charge_for(length, state.granted, state.charged)
    if timing:
        state.charged += charge
    else:
        charge = 0  # activity packs are never charged
    record.end_time = at
    record.stop_event_id = event_id
    record.stop_reason = reason
    record.charged_seconds = charge
    record.overrun_seconds = length - charge
    changes[record.log_id] = record
    return length - charge


def _is_timing(state: PackState) -> bool:
    return state.purchase is not None and state.purchase.duration_type is DurationType.TIMING


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
