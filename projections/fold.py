"""The fold: a pack's state is a pure function of its events (CONTRACT.md section 2).

Fold order (CONTRACT.md section 2): the winning purchase (earliest `time`, then smallest
`id`) first; then every other event by `time`; the events of one instant in tie classes -
adjustments, stops of trainings with an open session, heartbeats, starts, the remaining
stops - and within a class by `id`. Lapses (a session whose lease ends before its stop)
take their place at their lease end, after the events of that instant, several at one
instant by `trainId`: the fold applies them before the first event that follows them, and
at the end of each instant those due then. A lapse is not an event: it is not counted and
does not move `last_time`. Arrival (the ledger `position`) never decides anything: it only
tells which entries a snapshot already holds.

The fold's settings (`projections.terms.Terms`) are an input like the events.

`fold` rebuilds a pack from all its entries; `apply_in_order` adds entries to a state when
they all come after every instant already applied, which is the live consumer's common
case. Both run `_apply_steps`, so replay and the consumer agree.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from events.envelope import (
    AdjustedEvent,
    AnyPackEvent,
    HeartbeatEvent,
    PurchasedEvent,
    StartedEvent,
    StoppedEvent,
)
from events.payloads import DurationType
from projections import rules
from projections.state import LedgerEntry, PackState, Purchase, UsageRecord
from projections.terms import DEFAULT_TERMS, Terms

Changes = MutableMapping[int, UsageRecord]
"""Usage records touched by an application, by logId."""

ADJUST: Final = 1
START: Final = 2
STOP: Final = 3
HEARTBEAT: Final = 4
LAPSE: Final = 5  # not an event: a session's lease ended (`_lapse_due`)

Step = tuple[datetime, int, int, str, int, str | None, int, str | None, int | None]
"""An event after the purchase, as the fold applies it: (time, position, kind, event id,
number, text, user id, user name, lease) with kind ADJUST (number = deltaSeconds), START
(number = trainId, text = trainName, the user who runs it, lease = leaseSeconds or None),
HEARTBEAT (number = trainId) or STOP (number = trainId, text = reason). Tuples sort by
time (then position, which only keeps the sort cheap: the order within an instant is
`instant_order`'s)."""


@dataclass(slots=True)
class FoldResult:
    state: PackState
    records: dict[int, UsageRecord] = field(default_factory=dict)


def event_of(entry: LedgerEntry) -> AnyPackEvent:
    return entry.event  # type: ignore[return-value]


def fold(
    user_pack_id: int, entries: Iterable[LedgerEntry], *, terms: Terms = DEFAULT_TERMS
) -> FoldResult:
    """All entries of one pack, in any order, to its state and every usage record."""
    purchases: list[LedgerEntry] = []
    steps: list[Step] = []
    for entry in entries:
        if isinstance(entry.event, PurchasedEvent):
            purchases.append(entry)
        else:
            steps.append(step_of(entry))
    return fold_steps(user_pack_id, purchases, steps, terms=terms)


def fold_steps(
    user_pack_id: int,
    purchases: list[LedgerEntry],
    steps: list[Step],
    *,
    terms: Terms = DEFAULT_TERMS,
) -> FoldResult:
    """`fold` for entries already split into purchases and steps (`step_of`).

    Replay builds steps straight from stored columns, without an event object per entry.
    Sorts both lists in place.
    """
    state = PackState(user_pack_id)
    result = FoldResult(state)
    purchases.sort(key=purchase_order)
    for entry in purchases:
        _apply_purchase(state, entry, terms)
    if state.purchase is None:
        # Parked: the events wait in the ledger until the purchase arrives.
        state.event_count = len(steps)
        return result
    steps.sort()  # by time; positions are unique, so nothing after them is compared
    _apply_steps(state, steps, result.records, terms)
    return result


def purchase_order(entry: LedgerEntry) -> tuple[datetime, str]:
    """The winning purchase is the first by this key: earliest `time`, then smallest `id`
    (str order is code point order, which is UTF-8 byte order)."""
    event = event_of(entry)
    return (event.time, event.id)


def instant_order(state: PackState, steps: list[Step]) -> list[Step]:
    """The steps of one instant in fold order, given the state before that instant:
    adjustments; the stop of each training with an open session (its smallest `id`);
    heartbeats; starts; then the remaining stops - each class by `id`. So a stop and a
    restart of one training at one instant close the old session and open a new one, a
    start and a stop at one instant make a 0-second session, and a heartbeat at the
    instant of a stop or a start renews nothing (the session closed; the lease starts
    from that instant anyway)."""
    by_id = sorted(steps, key=_step_id)
    adjustments = [step for step in by_id if step[2] == ADJUST]
    closing: list[Step] = []
    remaining_stops: list[Step] = []
    closed: set[int] = set()
    for step in by_id:
        if step[2] != STOP:
            continue
        train_id = step[4]
        if train_id in state.open_sessions and train_id not in closed:
            closed.add(train_id)
            closing.append(step)
        else:
            remaining_stops.append(step)
    heartbeats = [step for step in by_id if step[2] == HEARTBEAT]
    starts = [step for step in by_id if step[2] == START]
    return adjustments + closing + heartbeats + starts + remaining_stops


def _step_id(step: Step) -> str:
    return step[3]


def _apply_steps(state: PackState, steps: list[Step], records: Changes, terms: Terms) -> None:
    """Apply steps sorted by time, each instant's in `instant_order`, and the lapses in
    their place: those due before an instant ahead of it, those due at it after it."""
    count = len(steps)
    index = 0
    while index < count:
        step = steps[index]
        end = index + 1
        at = step[0]
        while end < count and steps[end][0] == at:
            end += 1
        if state.open_sessions:
            _lapse_due(state, at, records, terms, at_the_instant=False)
        if end == index + 1:  # the common case: one event at its instant
            _apply_step(state, step, records, terms)
        else:
            for tied in instant_order(state, steps[index:end]):
                _apply_step(state, tied, records, terms)
        index = end
    # The lapses due at the last instant come after its events. (Those due at an earlier
    # instant are applied before the next one, with those due in between, in the same
    # order: by lease end.)
    if count and state.open_sessions:
        _lapse_due(state, steps[-1][0], records, terms, at_the_instant=True)


def _lapse_due(
    state: PackState, at: datetime, changes: Changes, terms: Terms, *, at_the_instant: bool
) -> None:
    """Lapse the open sessions whose lease ends before `at` (or at it, once the events of
    that instant are applied: `at_the_instant`), in fold order: by lease end, then by
    trainId. No lapse makes a lease end, so one pass finds them all."""
    due = None
    for train_id, record in state.open_sessions.items():  # mostly one or two, no lease due
        end = record.lease_ends_at
        if end is not None and (end < at or (at_the_instant and end == at)):
            if due is None:
                due = []
            due.append((end, train_id))
    if due is None:
        return
    due.sort()
    for lease_end, train_id in due:
        lapse: Step = (lease_end, 0, LAPSE, "", train_id, rules.LEASE_EXPIRED, 0, None, None)
        _change(state, lapse, changes, terms)


def step_of(entry: LedgerEntry) -> Step:
    """An adjustment, start, heartbeat or stop as the fold applies it."""
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
            started.leaseSeconds,
        )
    if isinstance(event, StoppedEvent):
        stopped = event.data
        reason = stopped.reason
        return (event.time, entry.position, STOP, event.id, stopped.trainId, reason, 0, None, None)
    if isinstance(event, HeartbeatEvent):
        train = event.data.trainId
        return (event.time, entry.position, HEARTBEAT, event.id, train, None, 0, None, None)
    if isinstance(event, AdjustedEvent):
        delta = event.data.deltaSeconds
        return (event.time, entry.position, ADJUST, event.id, delta, None, 0, None, None)
    raise TypeError(f"not an adjustment, start, heartbeat or stop: {type(event).__name__}")


def apply_in_order(
    state: PackState, entries: Iterable[LedgerEntry], *, terms: Terms = DEFAULT_TERMS
) -> Changes | None:
    """Apply entries (in any order) after what `state` holds, in fold order; the usage
    records they touch, or None when they do not all come after it (the pack must then be
    re-folded, and `state`, maybe partly changed, be dropped).

    They come after it when the pack is purchased, none of them is a purchase (a second
    purchase may win: re-fold) and each is timed after the last instant applied: an event
    at that very instant may belong before events of it already applied. Lapses need no
    check of their own: the fold applies a lapse only once an event at or after its
    instant is applied, so an event timed before an applied lapse is timed before the
    last instant too."""
    if state.purchase is None:
        return None
    steps: list[Step] = []
    for entry in entries:
        if isinstance(entry.event, PurchasedEvent):
            return None
        steps.append(step_of(entry))
    if len(steps) > 1:  # a batch brings one, mostly
        steps.sort()
    last = state.last_time
    if steps and last is not None and steps[0][0] <= last:
        return None
    changes: dict[int, UsageRecord] = {}
    _apply_steps(state, steps, changes, terms)
    return changes


def applies_in_order(state: PackState, entry: LedgerEntry) -> bool:
    """Whether `apply` may add `entry` to `state` (else the pack must be re-folded)."""
    if state.purchase is None or isinstance(entry.event, PurchasedEvent):
        return False
    return state.last_time is None or event_of(entry).time > state.last_time


def apply(
    state: PackState, entry: LedgerEntry, changes: Changes, *, terms: Terms = DEFAULT_TERMS
) -> None:
    """Add one entry that comes after everything in `state` (see `applies_in_order`; a
    purchase added this way is kept as a conflict)."""
    if isinstance(entry.event, PurchasedEvent):
        _apply_purchase(state, entry, terms)
    else:
        _apply_steps(state, [step_of(entry)], changes, terms)


def _apply_purchase(state: PackState, entry: LedgerEntry, terms: Terms) -> None:
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
    if data.packDurationType is DurationType.TIMING:
        # Armed: the thresholds the grant stands above (one at or below it never crossed).
        granted = state.granted
        state.lows = tuple((t, True, ()) for t in terms.low_balance_seconds if granted > t)


def _apply_step(state: PackState, step: Step, changes: Changes, terms: Terms) -> None:
    """Apply one event: its change, then the bookkeeping of an applied event."""
    _change(state, step, changes, terms)
    state.last_time = step[0]
    if step[1] > state.max_position:
        state.max_position = step[1]
    state.event_count += 1


def _change(state: PackState, step: Step, changes: Changes, terms: Terms) -> None:
    """What an event - or a lapse - at its instant changes: the pack's balance, its
    sessions, its low-balance thresholds and its exhaustion."""
    at = step[0]
    purchase = state.purchase
    timing = purchase is not None and purchase.duration_type is DurationType.TIMING
    # `left`: granted - charged - what the open sessions used by `at` (remaining_at before
    # its floor at 0), computed once per event; each kind of step below moves it exactly.
    # (Every open session's lease ends at `at` or later: those due before were lapsed.)
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
    thresholds = terms.low_balance_seconds
    lows = _lows_before(state, left) if timing and thresholds else _UNUSED
    kind = step[2]
    if kind == START:
        _start(state, step, changes, terms)  # a session starting at `at` has used nothing yet
    elif kind in (STOP, LAPSE):
        left += _stop(state, step, changes, timing)
    elif kind == HEARTBEAT:
        _heartbeat(state, step, changes)  # what the sessions used is what they used
    else:
        delta = step[4]
        state.adjustments += delta
        left += delta
    if lows is not _UNUSED:
        state.lows = _lows_after(state, lows, left, at, thresholds)
    # An exhaustion lasts while sessions run on a timing pack with nothing left.
    if not timing or not state.open_sessions or left > 0:
        state.exhausted_since = None
    elif state.exhausted_since is None:
        state.exhausted_since = at  # this very event left nothing (a refund, a start on 0)
    state.due_known = False


Lows = dict[int, tuple[bool, tuple[datetime, ...]]]
# `_lows_before`'s answers besides a changed copy: thresholds not kept (an activity pack,
# none configured), or none crossed since the last event (the common case, no copy made).
_UNUSED: Lows = {}
_UNCROSSED: Lows = {}


def _lows_before(state: PackState, left: int) -> Lows:
    """The low-balance thresholds just before a step whose instant leaves `left` (the
    step not applied yet): an armed threshold that `left` is at or below was crossed by
    the running sessions since the last event, at the instant they used what lay above
    it (`rules.depletion_instant` of the budget above the threshold)."""
    for threshold, armed, _ in state.lows:
        if armed and left <= threshold:
            break
    else:
        return _UNCROSSED
    lows: Lows = {t: (armed, crossings) for t, armed, crossings in state.lows}
    for threshold, armed, crossings in state.lows:
        if armed and left <= threshold:
            instant = None
            if state.open_sessions and state.last_time is not None:
                budget = state.granted - state.charged - threshold
                instant = _depletion(state, budget, state.last_time)
            at = instant or state.last_time
            assert at is not None  # the purchase is applied before any step
            lows[threshold] = (False, _kept(crossings, at))
    return lows


def _lows_after(
    state: PackState, lows: Lows, left: int, at: datetime, thresholds: tuple[int, ...]
) -> tuple[tuple[int, bool, tuple[datetime, ...]], ...]:
    """The thresholds once a step at `at` left `left`: above a threshold, it is armed
    (again); an armed one at or below it was crossed by this very step (a refund).
    `thresholds`: the fold's terms' (`Terms.low_balance_seconds`)."""
    if lows is _UNCROSSED:
        kept = state.lows
        if len(kept) == len(thresholds):
            for threshold, armed, _ in kept:
                if (left > threshold) is not armed:
                    break
            else:
                return kept  # nothing crossed nor re-armed: most steps
        lows = {t: (armed, crossings) for t, armed, crossings in kept}
    for threshold in thresholds:
        armed, crossings = lows.get(threshold, (False, ()))
        if left > threshold:
            lows[threshold] = (True, crossings)
        elif armed:
            lows[threshold] = (False, _kept(crossings, at))
    return tuple((t, *lows[t]) for t in thresholds if t in lows)


def _kept(crossings: tuple[datetime, ...], at: datetime) -> tuple[datetime, ...]:
    return (*crossings, at)[-rules.LOW_CROSSINGS_KEPT :]


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


def _start(state: PackState, step: Step, changes: Changes, terms: Terms) -> None:
    at, _, _, event_id, train_id, train_name, user_id, user_name, lease = step
    if train_id in state.open_sessions:
        state.audit.duplicate_starts.append(event_id)
        return
    assert train_name is not None and user_name is not None
    lease = terms.lease_for(lease)
    record = UsageRecord(
        log_id=rules.log_id_for(event_id),
        train_id=train_id,
        train_name=train_name,
        user_id=user_id,
        user_name=user_name,
        start_time=at,
        start_event_id=event_id,
        lease_seconds=lease,
        lease_ends_at=None if lease is None else rules.lease_end(at, lease),
    )
    state.open_sessions[train_id] = record
    changes[record.log_id] = record


def _heartbeat(state: PackState, step: Step, changes: Changes) -> None:
    """Renew the lease of the training's open session: it ends no sooner than `at` +
    its lease (a heartbeat timed before a later one, arriving late, moves nothing)."""
    at, _, _, event_id, train_id, _, _, _, _ = step
    record = state.open_sessions.get(train_id)
    if record is None:  # lapsed, stopped, or not started (yet, in fold order)
        state.audit.orphan_heartbeats.append(event_id)
        return
    if record.lease_seconds is None or record.lease_ends_at is None:
        return  # no lease to renew
    end = rules.lease_end(at, record.lease_seconds)
    if end > record.lease_ends_at:
        record.lease_ends_at = end
        changes[record.log_id] = record


def _stop(state: PackState, step: Step, changes: Changes, timing: bool) -> int:
    """Close the session (at a stop, or at its lease end: a lapse, `LAPSE`); returns
    what that gives back to `left` (its length, less the charge)."""
    at, _, kind, event_id, train_id, reason, _, _, _ = step
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
    record.stop_event_id = None if kind == LAPSE else event_id
    record.stop_reason = reason
    record.charged_seconds = charge
    record.overrun_seconds = length - charge
    changes[record.log_id] = record
    return length - charge


def _is_timing(state: PackState) -> bool:
    return state.purchase is not None and state.purchase.duration_type is DurationType.TIMING


def remaining_at(state: PackState, now: datetime) -> int:
    """`remaining(now)`: a session whose lease ended by `now` counts up to its lease end."""
    assert state.purchase is not None
    return rules.remaining_seconds(
        state.purchase.duration_type,
        state.granted,
        state.charged,
        state.open_starts,
        now,
        state.open_lease_ends,
    )


def status_at(state: PackState, now: datetime) -> str:
    """`status(now)`: a session whose lease ended by `now` has lapsed (is not open)."""
    assert state.purchase is not None
    return rules.status(
        state.purchase.duration_type,
        state.granted,
        state.charged,
        state.open_starts,
        state.purchase.activity_end_time,
        now,
        state.open_lease_ends,
    )


def exhausts_at(state: PackState) -> datetime | None:
    """When the open sessions drive (or drove) a timing pack to 0; None if they never will."""
    if not state.due_known:
        _forecast(state)
    return state.due


def low_crossings(state: PackState) -> list[tuple[int, datetime]]:
    """(threshold, crossing instant) of a timing pack's recent low-balance crossings (the
    last `rules.LOW_CROSSINGS_KEPT` of each threshold: the notifier announces each once,
    from its instant on) and of those the open sessions, as they stand, will make
    (`rules.depletion_instant` of the budget above the threshold, from the last event)."""
    if not state.due_known:
        _forecast(state)
    crossings: list[tuple[int, datetime]] = []
    ahead = state.crossings_ahead
    for threshold, _, past in state.lows:
        for at in past:  # mostly none: a loop, not a generator made for nothing
            crossings.append((threshold, at))
        for crossed, at in ahead:
            if crossed == threshold:
                crossings.append((threshold, at))
    return crossings


def _forecast(state: PackState) -> None:
    """Memo of `exhausts_at` and of the crossings ahead of `low_crossings`: one depletion
    search for the budget and for what lies above each armed threshold."""
    state.due_known = True
    state.due = None
    state.crossings_ahead = ()
    if not state.open_sessions or state.last_time is None:
        return  # nothing runs: no exhaustion, no crossing ahead
    timing = _is_timing(state)
    if timing and state.exhausted_since is not None:
        state.due = state.exhausted_since  # under way: not searched
    left = state.granted - state.charged
    armed = [threshold for threshold, is_armed, _ in state.lows if is_armed]
    budgets = [left - threshold for threshold in armed]
    searched = timing and state.due is None
    if searched:
        budgets.append(left)
    if not budgets:
        return
    # Sessions that lapse before a budget is used stop using it at their lease end: None
    # when every lease ends first (no exhaustion, no crossing, no notice).
    found = _depletions(state, budgets, state.last_time)
    if searched:
        state.due = found.pop()
    ahead = []
    for threshold, at in zip(armed, found, strict=True):
        if at is not None:
            ahead.append((threshold, at))
    state.crossings_ahead = tuple(ahead)


def started_during_exhaustion(state: PackState) -> list[UsageRecord]:
    """The open sessions of a timing pack that started after its ongoing exhaustion began:
    the exhaustion's notice may have gone out before they started, so each gets a notice
    of its own (`rules.start_notice_id`). A start that begins the exhaustion (a start on a
    pack with nothing left), or any start at that very instant, is not one of them: the
    exhaustion's notice, recorded once its instant has passed, names the trainings open
    then. (The notifier also gives a notice of its own to a start at that instant that
    the exhaustion's notice, recorded before it was applied, does not name: that depends
    on the outbox, not on the events; `services.store.notice_sql`.)

    In terms of the pack's read model: its open sessions that start after `exhausts_at`
    (while no exhaustion has begun, `exhausts_at` is at or after the last event)."""
    since = state.exhausted_since
    if since is None or not _is_timing(state):
        return []
    return [record for record in state.open_sessions.values() if record.start_time > since]


def _depletion(state: PackState, budget: int, not_before: datetime) -> datetime | None:
    return _depletions(state, (budget,), not_before)[0]


def _depletions(
    state: PackState, budgets: Sequence[int], not_before: datetime
) -> list[datetime | None]:
    """`rules.depletion_instant` of the open sessions for each of `budgets`; when none has
    a lease (the common case), `rules.exhaustion_instants` of their starts, without
    building their spans."""
    starts = []
    for record in state.open_sessions.values():
        if record.lease_ends_at is not None:
            spans = state.open_spans
            return [rules.depletion_instant(budget, spans, not_before) for budget in budgets]
        starts.append(record.start_time)
    return rules.exhaustion_instants(budgets, starts, not_before)
