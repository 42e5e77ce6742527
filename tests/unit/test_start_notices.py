"""Which starts get an `infinite.pack.exhausted` notice of their own (CONTRACT.md section 2):
the open sessions that started after their pack's ongoing exhaustion began, one table.

Times are seconds after `T0`. The notifier's SQL (`services.store.notice_sql`) applies the
same rule to the stored read model: tests/integration/test_exhaustion_notifier.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from events.envelope import AnyPackEvent
from projections import rules
from projections.fold import apply_in_order, exhausts_at, fold, started_during_exhaustion
from projections.state import LedgerEntry, PackState
from tests.unit.event_factory import (
    PACK,
    adjusted,
    at,
    entries,
    fold_arrivals,
    purchased,
    seconds,
    started,
    stopped,
)


@dataclass
class Case:
    id: str
    arrivals: list[AnyPackEvent]
    own_notice: list[tuple[int, float]]  # (trainId, start) of the sessions that get one
    exhausted_at: float | None  # the exhaustion's instant (`exhausts_at`), for the reader


def views(state: PackState) -> list[tuple[int, float | None]]:
    return sorted(
        (record.train_id, seconds(record.start_time)) for record in started_during_exhaustion(state)
    )


# A 10-second pack whose training 1 ran 0..20: nothing left, no session open.
SPENT = [purchased(seconds=10), started(0, 1), stopped(20, 1)]
# Two trainings share 100 seconds from 0 and 10: exhausted at 55, both still running.
SHARED = [purchased(seconds=100), started(0, 1), started(10, 2)]

CASES = [
    Case(
        "a start on a pack with nothing left begins the exhaustion",
        [*SPENT, started(30, 2)],
        [],
        30,
    ),
    Case(
        "a second start on it, later: its own notice",
        [*SPENT, started(30, 2), started(40, 3)],
        [(3, 40)],
        30,
    ),
    Case(
        "two starts at the instant the exhaustion begins: its notice names both",
        [*SPENT, started(30, 2), started(30, 3)],
        [],
        30,
    ),
    Case("sessions run out: nothing of its own yet", SHARED, [], 55),
    Case(
        "a start after the open sessions ran the pack out",
        [*SHARED, started(60, 3)],
        [(3, 60)],
        55,
    ),
    Case(
        "a start at the very instant they ran it out: named by the exhaustion's notice",
        [*SHARED, started(55, 3)],
        [],
        55,
    ),
    Case(
        "a training restarted during the exhaustion: the new session gets one",
        [*SHARED, stopped(60, 1), started(70, 1)],
        [(1, 70)],
        55,
    ),
    Case(
        "a start during the exhaustion that has stopped since: nothing to stop",
        [*SHARED, started(60, 3), stopped(61, 3)],
        [],
        55,
    ),
    Case(
        "a top-up ends the exhaustion: the start is no longer on an exhausted pack",
        [*SHARED, started(60, 3), adjusted(65, 1000)],
        [],
        # 1100 granted, nothing charged; 65 + 55 + 5 used at 65, three sessions: 390
        390,
    ),
    Case(
        "a start before the exhaustion began is part of it",
        [*SHARED, started(50, 3)],
        [],
        # 100 s: 50 + 40 used at 50, then three sessions: 10 / 3 s later, whole seconds
        54,
    ),
    Case(
        "an activity pack never gets one",
        [purchased(seconds=None, activity=True), started(0, 1), started(10, 2)],
        [],
        None,
    ),
]


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_which_starts_get_a_notice_of_their_own(case: Case) -> None:
    state = fold_arrivals(case.arrivals).state
    assert views(state) == case.own_notice
    assert seconds(exhausts_at(state)) == case.exhausted_at


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_arrival_order_and_the_consumers_path_change_nothing(case: Case) -> None:
    # Late arrivals (a start timed before events already applied) included: every order.
    for order in itertools.permutations(case.arrivals):
        assert views(fold_arrivals(list(order)).state) == case.own_notice
    # The consumer's incremental path: the purchase, then each instant's events as a batch.
    head, *rest = case.arrivals
    state = fold(PACK, entries([head])).state
    position = 1
    for _, batch in itertools.groupby(sorted(rest, key=lambda e: e.time), key=lambda e: e.time):
        applied = []
        for event in batch:
            position += 1
            applied.append(LedgerEntry(position, event))
        assert apply_in_order(state, applied) is not None
    assert views(state) == case.own_notice


def test_the_notice_id_is_derived_from_the_session_and_never_an_exhaustions() -> None:
    arrivals = [*SHARED, started(60, 3, event_id="start-3")]
    [record] = started_during_exhaustion(fold_arrivals(arrivals).state)
    notice_id = rules.start_notice_id(PACK, record.log_id)
    assert notice_id == f"exhausted-{PACK}-start-{rules.log_id_for('start-3')}"
    # Replayed in another order: the same id.
    [again] = started_during_exhaustion(fold_arrivals(arrivals[::-1]).state)
    assert rules.start_notice_id(PACK, again.log_id) == notice_id
    # An exhaustion's id is `exhausted-<pack>-<24 hex digits>`: "start" is not hex.
    exhaustion_id = rules.exhaustion_notice_id(PACK, at(55))
    assert exhaustion_id.startswith(f"exhausted-{PACK}-")
    assert all(c in "0123456789abcdef" for c in exhaustion_id.rsplit("-", 1)[1])
    assert notice_id != exhaustion_id
    assert rules.start_notice_id(PACK, 1) != rules.start_notice_id(PACK + 1, 1)
