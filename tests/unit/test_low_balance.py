"""Low-balance crossings (`infinite.pack.low`) against brute force.

The brute force knows nothing of the fold's bookkeeping: it evaluates `remaining(t)` at
every instant where it can change (each event, each whole second after each start),
from the fold of the events up to that instant, and lists each instant at which it fell
from above a threshold to it or below (a pack bought at or below a threshold never
crossed it; what the sessions used by an instant counts before its events). The fold's
side is what the notifier would record: after each event, the crossings `low_crossings`
reports that fall due before the next event changes the row.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from events.envelope import AnyPackEvent
from projections import rules
from projections.fold import fold, instant_order, low_crossings, remaining_at, step_of
from projections.snapshot import from_snapshot, to_snapshot
from projections.terms import Terms
from tests.support.examples import examples
from tests.support.histories import every_grant, histories
from tests.unit.event_factory import PACK, adjusted, entries, purchased, started

THRESHOLDS = (5, 20)
SECOND = timedelta(seconds=1)


TERMS = Terms(low_balance_seconds=THRESHOLDS)  # the fold's input, as the settings give it


def _remaining(events: list[AnyPackEvent], instant: datetime) -> list[int]:
    """`remaining(instant)` before the events of that instant, then after each of them in
    fold order: several events of one instant may cross a threshold between them (a
    top-up, then a larger refund), and what the running sessions used by an instant comes
    before its events (a session reaching a threshold at the very instant of a top-up
    crossed it: the notifier, driven by time, announces it before it can know of an
    event of that instant, so the crossing does not depend on the batches)."""
    purchase, *rest = events  # applied first whatever its time
    before = [purchase, *(e for e in rest if e.time < instant)]
    at_instant = {e.id: e for e in rest if e.time == instant}
    state = fold(PACK, entries(before), terms=TERMS).state
    steps = [step_of(entry) for entry in entries(at_instant.values())]
    ordered = [at_instant[step[3]] for step in instant_order(state, steps)]
    prefixes = [ordered[:n] for n in range(len(ordered) + 1)]
    return [
        remaining_at(fold(PACK, entries(before + prefix), terms=TERMS).state, instant)
        for prefix in prefixes
    ]


def brute_force(events: list[AnyPackEvent], now: datetime) -> set[tuple[int, datetime]]:
    granted = events[0].data.durationSeconds or 0  # type: ignore[union-attr]
    budget = every_grant(events) + 2
    steps = {
        e.time + SECOND * k for e in events if e.type.endswith("started") for k in range(budget)
    }
    instants = sorted(t for t in steps | {e.time for e in events} if t <= now)
    crossings = set()
    for threshold in THRESHOLDS:
        above = granted > threshold
        for instant in instants:
            for remaining in _remaining(events, instant):
                if above and remaining <= threshold:
                    crossings.add((threshold, instant))
                above = remaining > threshold
    return crossings


def recorded(
    events: list[AnyPackEvent], now: datetime, ends: set[int]
) -> set[tuple[int, datetime]]:
    """What the notifier records when the consumer writes the row after the events of
    each batch (a batch ends after each index in `ends`, never inside an instant): each
    crossing a row lists that falls due before the next batch's first event (the first
    moment the row may be stale)."""
    found = set()
    cuts = sorted(
        i
        for i in {e for e in ends if e < len(events)} | {len(events) - 1}
        if i + 1 == len(events) or events[i + 1].time != events[i].time
    )
    for cut in cuts:
        state = fold(PACK, entries(events[: cut + 1]), terms=TERMS).state
        until = events[cut + 1].time if cut + 1 < len(events) else now
        found |= {(t, at) for t, at in low_crossings(state) if at <= until}
    return found


@settings(max_examples=examples(300), deadline=None)
@given(history=histories(), ends=st.sets(st.integers(0, 6)))
def test_one_notice_per_crossing_exact_to_the_microsecond(
    history: tuple[list[AnyPackEvent], datetime], ends: set[int]
) -> None:
    """Whatever the batches, every crossing and no other, each at its exact instant."""
    events, now = history
    assert recorded(events, now, ends) == brute_force(events, now)


@settings(max_examples=examples(300), deadline=None)
@given(history=histories(leases=True), ends=st.sets(st.integers(0, 8)))
def test_sessions_that_lapse_cross_only_while_they_run(
    history: tuple[list[AnyPackEvent], datetime], ends: set[int]
) -> None:
    """With leases and heartbeats: a session stops using the budget at its lease end."""
    events, now = history
    assert recorded(events, now, ends) == brute_force(events, now)


@settings(max_examples=examples(100), deadline=None)
@given(history=histories())
def test_the_crossings_survive_the_snapshot(history: tuple[list[AnyPackEvent], datetime]) -> None:
    state = fold(PACK, entries(history[0]), terms=TERMS).state
    assert from_snapshot(to_snapshot(state)).lows == state.lows


def test_a_refund_crosses_at_its_instant_and_a_top_up_rearms() -> None:
    # 100 s; -85 leaves 15 (20 crossed at 10); +30 makes 45 (20 re-armed); -40 leaves 5
    # (20 and 5 crossed at 30). All in one batch: every crossing is still listed.
    events = [purchased(0, seconds=100), adjusted(10, -85), adjusted(20, 30), adjusted(30, -40)]
    state = fold(PACK, entries(events), terms=TERMS).state
    first, last = events[1].time, events[3].time
    assert state.lows == ((5, False, (last,)), (20, False, (first, last)))
    assert low_crossings(state) == [(5, last), (20, first), (20, last)]


def test_running_sessions_cross_at_the_instant_the_budget_above_is_used() -> None:
    events = [purchased(0, seconds=60), started(10.5, 1), started(12, 2)]
    state = fold(PACK, entries(events), terms=TERMS).state
    # 40 s lie above 20: the two sessions have used them 31.5 s in (21 + 19).
    crossings = dict(low_crossings(state))
    assert remaining_at(state, crossings[20]) == 20
    assert remaining_at(state, crossings[20] - timedelta(microseconds=1)) > 20
    assert remaining_at(state, crossings[5]) == 5


def test_a_threshold_reached_at_the_instant_of_a_top_up_was_crossed() -> None:
    """Found by the property above: 6 s, a session from 0; at 1 it has used 1 s (5 left:
    threshold 5 reached) and a +2 top-up at that same instant re-arms it. The crossing at
    1 stands, in one batch as in two (the notifier announced it at 1, before the top-up
    could be known)."""
    events = [purchased(0, seconds=6), started(0, 1), adjusted(1, 2)]
    now = events[2].time
    expected = {(5, now)}
    assert brute_force(events, now) == expected
    assert recorded(events, now, set()) == recorded(events, now, {1}) == expected
    state = fold(PACK, entries(events), terms=TERMS).state
    assert [(t, armed) for t, armed, _ in state.lows] == [(5, True)]  # re-armed at 1 (7 left)


def test_a_pack_bought_below_a_threshold_never_crossed_it() -> None:
    state = fold(PACK, entries([purchased(0, seconds=10), started(1, 1)]), terms=TERMS).state
    assert state.lows == ((5, True, ()),)
    assert [t for t, _ in low_crossings(state)] == [5]


def test_notice_ids_name_the_instant_in_any_zone_alike() -> None:
    at = datetime.fromisoformat("2024-05-01T20:00:00.5+08:00")
    utc = at.astimezone(UTC)
    assert rules.low_notice_id(1, 600, at) == rules.low_notice_id(1, 600, utc, utc.isoformat())
    assert rules.low_notice_id(1, 600, at) == rules.low_notice_id(1, 600, at, at.isoformat())
    assert rules.low_notice_id(1, 600, at) != rules.low_notice_id(1, 60, at)
    assert rules.low_notice_id(1, 600, at) != rules.low_notice_id(2, 600, at)
