"""The rules of CONTRACT.md section 2 through the fold, one table per rule.

Each case is a pack's events in arrival order and the exact values the fold must give.
Times are seconds after `T0`; usage records are (trainId, start, end, charged, overrun).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta, timezone
from typing import Any

import pytest

from events.envelope import AnyPackEvent
from projections import rules
from projections.fold import (
    FoldResult,
    applies_in_order,
    apply,
    exhausts_at,
    fold,
    remaining_at,
    status_at,
)
from projections.state import LedgerEntry, UsageRecord
from tests.unit.event_factory import (
    PACK,
    T0,
    adjusted,
    at,
    describe,
    entries,
    fold_arrivals,
    purchased,
    record_views,
    seconds,
    started,
    stopped,
)

FREE, TRAINING, OUT = rules.FREE, rules.TRAINING, rules.OUT_OF_TIME


@dataclass
class Case:
    """Arrivals and the exact outcome; only the fields given are checked."""

    id: str
    arrivals: list[AnyPackEvent]
    granted: int | None = None
    charged: int | None = None
    open: set[int] | None = None
    records: list[tuple[int, float, float | None, int | None, int | None]] | None = None
    remaining: dict[float, int] = field(default_factory=dict)
    status: dict[float, str] = field(default_factory=dict)
    exhausts_at: float | str | None = "unchecked"
    orphans: int | None = None
    duplicates: int | None = None
    conflicts: int | None = None


def check(case: Case) -> FoldResult:
    result = fold_arrivals(case.arrivals)
    state = result.state
    if case.granted is not None:
        assert state.granted == case.granted
    if case.charged is not None:
        assert state.charged == case.charged
    if case.open is not None:
        assert set(state.open_sessions) == case.open
    if case.records is not None:
        assert record_views(result.records.values()) == case.records
    for now, expected in case.remaining.items():
        assert remaining_at(state, at(now)) == expected, f"remaining at {now}"
    for now, expected_status in case.status.items():
        assert status_at(state, at(now)) == expected_status, f"status at {now}"
    if case.exhausts_at != "unchecked":
        assert seconds(exhausts_at(state)) == case.exhausts_at
    if case.orphans is not None:
        assert len(state.audit.orphan_stops) == case.orphans
    if case.duplicates is not None:
        assert len(state.audit.duplicate_starts) == case.duplicates
    if case.conflicts is not None:
        assert len(state.audit.conflicting_purchases) == case.conflicts
    assert_incremental_agrees(case.arrivals, result)
    return result


def assert_incremental_agrees(arrivals: list[AnyPackEvent], folded: FoldResult) -> None:
    """The live consumer's path (apply when in order, else re-fold) ends where fold does."""
    seen: list[LedgerEntry] = []
    state = fold(PACK, []).state
    records: dict[int, UsageRecord] = {}
    for entry in entries(arrivals):
        seen.append(entry)
        if applies_in_order(state, entry):
            apply(state, entry, records)
        else:
            refolded = fold(PACK, seen)
            state, records = refolded.state, dict(refolded.records)
    nows = [0, 50, 100, 1000]
    assert describe(state, records, nows) == describe(folded.state, folded.records, nows)


def ids(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


# --- granted = durationSeconds + sum of deltaSeconds --------------------------------

GRANTED = [
    Case("duration only", [purchased(0, seconds=3600)], granted=3600, remaining={10: 3600}),
    Case("zero duration", [purchased(0, seconds=0)], granted=0, remaining={0: 0}, status={0: OUT}),
    Case(
        "top-ups add",
        [purchased(0, seconds=3600), adjusted(5, 600), adjusted(6, 60)],
        granted=4260,
        remaining={10: 4260},
    ),
    Case(
        "refund subtracts",
        [purchased(0, seconds=3600), adjusted(5, 600), adjusted(6, -100)],
        granted=4100,
    ),
    Case(
        "refund below zero",
        [purchased(0, seconds=100), adjusted(5, -300)],
        granted=-200,
        remaining={10: 0},
        status={10: OUT},
    ),
    Case(
        "adjustment before the purchase time still counts",
        [purchased(100, seconds=100), adjusted(5, 50)],
        granted=150,
    ),
]


@pytest.mark.parametrize("case", ids(GRANTED))
def test_granted_is_duration_plus_deltas(case: Case) -> None:
    check(case)


# --- sessions open at a start and close at the stop with the same trainId ------------

SESSIONS = [
    Case(
        "start opens",
        [purchased(), started(10, 1)],
        open={1},
        records=[(1, 10, None, None, None)],
        charged=0,
        status={20: TRAINING},
    ),
    Case(
        "stop with the same trainId closes",
        [purchased(), started(10, 1), stopped(40, 1)],
        open=set(),
        records=[(1, 10, 40, 30, 0)],
        charged=30,
        remaining={50: 3570},
        status={50: FREE},
    ),
    Case(
        "a stop closes only its own trainId",
        [purchased(), started(10, 1), started(20, 2), stopped(40, 2)],
        open={1},
        records=[(1, 10, None, None, None), (2, 20, 40, 20, 0)],
        charged=20,
        remaining={50: 3600 - 20 - 40},
    ),
]


@pytest.mark.parametrize("case", ids(SESSIONS))
def test_sessions_open_and_close_by_train_id(case: Case) -> None:
    check(case)


def test_closed_record_keeps_stop_facts() -> None:
    stop = stopped(40, 1, reason="failed", event_id="stop-1")
    result = fold_arrivals([purchased(), started(10, 1, event_id="start-1"), stop])
    (record,) = result.records.values()
    assert (record.stop_event_id, record.stop_reason) == ("stop-1", "failed")
    assert record.start_event_id == "start-1"
    assert record.train_name == "train 1"


# --- a start for a trainId with an open session is a duplicate ----------------------

DUPLICATE_STARTS = [
    Case(
        "second start of an open trainId changes nothing",
        [purchased(), started(10, 1, event_id="a"), started(20, 1, event_id="b")],
        open={1},
        records=[(1, 10, None, None, None)],
        duplicates=1,
        remaining={30: 3580},
    ),
    Case(
        "the session still runs from the first start",
        [
            purchased(),
            started(10, 1, event_id="a"),
            started(20, 1, event_id="b"),
            stopped(70, 1),
        ],
        records=[(1, 10, 70, 60, 0)],
        charged=60,
        duplicates=1,
    ),
    Case(
        "a late-arriving earlier start is the real one",
        [
            purchased(),
            started(20, 1, event_id="b"),
            started(10, 1, event_id="a"),
            stopped(70, 1),
        ],
        records=[(1, 10, 70, 60, 0)],
        charged=60,
        duplicates=1,
    ),
]


@pytest.mark.parametrize("case", ids(DUPLICATE_STARTS))
def test_duplicate_start_changes_nothing(case: Case) -> None:
    result = check(case)
    open_or_closed = next(iter(result.records.values()))
    assert open_or_closed.log_id == rules.log_id_for("a")
    assert result.state.audit.duplicate_starts == ["b"]


# --- a stop with no open session is an orphan ----------------------------------------

ORPHAN_STOPS = [
    Case(
        "stop of a pack with no sessions",
        [purchased(), stopped(10, 1)],
        open=set(),
        records=[],
        charged=0,
        orphans=1,
        remaining={20: 3600},
        status={20: FREE},
    ),
    Case(
        "stop of another trainId",
        [purchased(), started(5, 1), stopped(10, 2)],
        open={1},
        records=[(1, 5, None, None, None)],
        charged=0,
        orphans=1,
        status={20: TRAINING},
    ),
    Case(
        "second stop of a closed session",
        [purchased(), started(5, 1), stopped(10, 1), stopped(20, 1)],
        records=[(1, 5, 10, 5, 0)],
        charged=5,
        orphans=1,
    ),
    Case(
        "a later start (in time) does not adopt an earlier orphan stop",
        [purchased(), stopped(10, 1), started(20, 1)],
        open={1},
        records=[(1, 20, None, None, None)],
        orphans=1,
    ),
]


@pytest.mark.parametrize("case", ids(ORPHAN_STOPS))
def test_orphan_stop_changes_nothing(case: Case) -> None:
    check(case)


# --- ... unless a start arrives later with an earlier time ---------------------------

ORPHAN_THEN_EARLIER_START = [
    Case(
        "stop first, start second",
        [purchased(), stopped(50, 1), started(10, 1)],
        open=set(),
        records=[(1, 10, 50, 40, 0)],
        charged=40,
        orphans=0,
        status={60: FREE},
    ),
    Case(
        "stop before purchase and start",
        [stopped(50, 1), purchased(), started(10, 1)],
        records=[(1, 10, 50, 40, 0)],
        charged=40,
        orphans=0,
    ),
    Case(
        "two sessions of one trainId, stops first",
        [purchased(), stopped(50, 1), stopped(90, 1), started(60, 1), started(10, 1)],
        records=[(1, 10, 50, 40, 0), (1, 60, 90, 30, 0)],
        charged=70,
        orphans=0,
        open=set(),
    ),
]


@pytest.mark.parametrize("case", ids(ORPHAN_THEN_EARLIER_START))
def test_orphan_stop_closes_a_later_arriving_earlier_start(case: Case) -> None:
    check(case)


# --- several sessions may be open at once; each consumes time ------------------------

CONCURRENT = [
    Case(
        "three running",
        [purchased(seconds=1000), started(0, 1), started(10, 2), started(20, 3)],
        open={1, 2, 3},
        remaining={20: 1000 - 20 - 10, 100: 1000 - 100 - 90 - 80},
        status={100: TRAINING},
    ),
    Case(
        "three closed",
        [
            purchased(seconds=1000),
            started(0, 1),
            started(10, 2),
            started(20, 3),
            stopped(100, 1),
            stopped(100, 2),
            stopped(100, 3),
        ],
        charged=270,
        records=[(1, 0, 100, 100, 0), (2, 10, 100, 90, 0), (3, 20, 100, 80, 0)],
        remaining={200: 730},
    ),
    Case(
        "concurrent sessions overrun together",
        [
            purchased(seconds=100),
            started(0, 1),
            started(0, 2),
            stopped(80, 1),
            stopped(80, 2),
        ],
        charged=100,
        records=[(1, 0, 80, 80, 0), (2, 0, 80, 20, 60)],
        remaining={90: 0},
        status={90: OUT},
    ),
]


@pytest.mark.parametrize("case", ids(CONCURRENT))
def test_concurrent_sessions_each_consume_time(case: Case) -> None:
    check(case)


# --- one trainId, several sessions over time: each its own usage record -------------

REPEATED_TRAIN = [
    Case(
        "stop then start again",
        [purchased(), started(0, 1), stopped(10, 1), started(20, 1), stopped(50, 1)],
        records=[(1, 0, 10, 10, 0), (1, 20, 50, 30, 0)],
        charged=40,
    ),
    Case(
        "third session still open",
        [
            purchased(),
            started(0, 1),
            stopped(10, 1),
            started(20, 1),
            stopped(50, 1),
            started(60, 1),
        ],
        records=[(1, 0, 10, 10, 0), (1, 20, 50, 30, 0), (1, 60, None, None, None)],
        open={1},
        remaining={70: 3600 - 40 - 10},
    ),
]


@pytest.mark.parametrize("case", ids(REPEATED_TRAIN))
def test_one_train_several_sessions(case: Case) -> None:
    result = check(case)
    log_ids = list(result.records)
    assert len(set(log_ids)) == len(log_ids) == len(case.records or [])
    for log_id, record in result.records.items():
        assert log_id == record.log_id == rules.log_id_for(record.start_event_id)


# --- session length: whole seconds, floored, never below 0 --------------------------

LENGTHS = [
    Case("exact", [purchased(), started(0, 1), stopped(10, 1)], records=[(1, 0, 10, 10, 0)]),
    Case(
        "floored",
        [purchased(), started(0.5, 1), stopped(10.4, 1)],
        records=[(1, 0.5, 10.4, 9, 0)],
        charged=9,
    ),
    Case(
        "under one second",
        [purchased(), started(0.9, 1), stopped(1.1, 1)],
        records=[(1, 0.9, 1.1, 0, 0)],
        charged=0,
    ),
    Case(
        "stop at the start instant",
        [purchased(), started(5, 1), stopped(5, 1)],
        records=[(1, 5, 5, 0, 0)],
        charged=0,
    ),
    Case(
        "same instant, stop arrived first",
        [purchased(), stopped(5, 1), started(5, 1)],
        # a start and a stop at one instant make a 0-second session, whatever the arrival
        records=[(1, 5, 5, 0, 0)],
        orphans=0,
    ),
    Case(
        "a day and a bit",
        [purchased(seconds=10**6), started(0, 1), stopped(86400 + 3661.75, 1)],
        records=[(1, 0, 90061.75, 90061, 0)],
    ),
]


@pytest.mark.parametrize("case", ids(LENGTHS))
def test_session_length_is_floored_whole_seconds(case: Case) -> None:
    check(case)


# --- charging: min(length, max(0, granted - charged)); the rest is overrun ----------

CHARGING = [
    Case(
        "within the grant",
        [purchased(seconds=100), started(0, 1), stopped(60, 1)],
        charged=60,
        records=[(1, 0, 60, 60, 0)],
    ),
    Case(
        "exactly the grant",
        [purchased(seconds=100), started(0, 1), stopped(100, 1)],
        charged=100,
        records=[(1, 0, 100, 100, 0)],
    ),
    Case(
        "over the grant",
        [purchased(seconds=100), started(0, 1), stopped(60, 1), started(70, 2), stopped(140, 2)],
        charged=100,
        records=[(1, 0, 60, 60, 0), (2, 70, 140, 40, 30)],
        remaining={150: 0},
    ),
    Case(
        "nothing left at all",
        [
            purchased(seconds=100),
            started(0, 1),
            stopped(130, 1),
            started(200, 2),
            stopped(210, 2),
        ],
        charged=100,
        records=[(1, 0, 130, 100, 30), (2, 200, 210, 0, 10)],
    ),
    Case(
        "a top-up before the stop counts",
        [purchased(seconds=100), started(0, 1), adjusted(50, 40), stopped(130, 1)],
        charged=130,
        records=[(1, 0, 130, 130, 0)],
    ),
    Case(
        "a top-up after the stop does not re-charge",
        [purchased(seconds=100), started(0, 1), stopped(130, 1), adjusted(150, 40)],
        charged=100,
        records=[(1, 0, 130, 100, 30)],
        remaining={160: 40},
    ),
]


@pytest.mark.parametrize("case", ids(CHARGING))
def test_charge_is_capped_and_overrun_kept(case: Case) -> None:
    check(case)


# --- facts are never rejected ---------------------------------------------------------

NEVER_REJECTED = [
    Case(
        "start on a pack with nothing left",
        [purchased(seconds=0), started(10, 1)],
        open={1},
        records=[(1, 10, None, None, None)],
        status={20: OUT},
        remaining={20: 0},
    ),
    Case(
        "and its stop is recorded as overrun",
        [purchased(seconds=0), started(10, 1), stopped(25, 1)],
        records=[(1, 10, 25, 0, 15)],
        charged=0,
    ),
    Case(
        "start after a refund to below zero",
        [purchased(seconds=10), adjusted(1, -50), started(10, 1), stopped(20, 1)],
        records=[(1, 10, 20, 0, 10)],
        charged=0,
    ),
]


@pytest.mark.parametrize("case", ids(NEVER_REJECTED))
def test_facts_are_never_rejected(case: Case) -> None:
    check(case)


# --- remaining(now) for timing packs --------------------------------------------------

REMAINING = [
    Case(
        "idle",
        [purchased(seconds=100), started(0, 1), stopped(30, 1)],
        remaining={30: 70, 1000: 70},
    ),
    Case(
        "open session counts until now",
        [purchased(seconds=100), started(10, 1)],
        remaining={10: 100, 10.999: 100, 11: 99, 60.5: 50, 110: 0, 5000: 0},
    ),
    Case(
        "floored per session",
        [purchased(seconds=100), started(0.6, 1), started(0.8, 2)],
        # at 10.7: 10 + 9 whole seconds
        remaining={10.7: 81, 10.8: 80, 1.5: 100},
    ),
    Case(
        "charged plus open sessions",
        [purchased(seconds=100), started(0, 1), stopped(20, 1), started(30, 2)],
        remaining={30: 80, 50: 60, 110: 0},
    ),
    Case("before any session", [purchased(seconds=100)], remaining={-100: 100}),
]


@pytest.mark.parametrize("case", ids(REMAINING))
def test_remaining_for_timing_packs(case: Case) -> None:
    check(case)


# --- activity packs: remaining 0, never charged --------------------------------------

ACTIVITY = [
    Case(
        "running activity pack",
        [purchased(activity=True), started(0, 1)],
        granted=0,
        remaining={0: 0, 100: 0},
        status={100: TRAINING},
        exhausts_at=None,
    ),
    Case(
        "closed sessions charge nothing",
        [purchased(activity=True), started(0, 1), stopped(500, 1)],
        charged=0,
        records=[(1, 0, 500, 0, 500)],
        status={600: FREE},
    ),
    Case(
        "activityEndTime passed",
        [purchased(activity=True, activity_end=100), started(0, 1)],
        status={99: TRAINING, 100: OUT, 101: OUT},
        remaining={50: 0},
        exhausts_at=None,
    ),
    Case(
        "adjustments do not charge an activity pack",
        [purchased(activity=True), adjusted(1, 100), started(0, 1), stopped(10, 1)],
        charged=0,
        remaining={20: 0},
        status={20: FREE},
    ),
]


@pytest.mark.parametrize("case", ids(ACTIVITY))
def test_activity_packs(case: Case) -> None:
    check(case)


# --- status(now), first match wins ----------------------------------------------------

STATUS = [
    Case("free", [purchased(seconds=100)], status={0: FREE, 10**6: FREE}),
    Case(
        "training, then out of time while the session runs",
        [purchased(seconds=100), started(0, 1)],
        status={-1: TRAINING, 0: TRAINING, 99.99: TRAINING, 100: OUT},
    ),
    Case(
        "out of time without sessions",
        [purchased(seconds=100), started(0, 1), stopped(100, 1)],
        status={100: OUT, 200: OUT},
    ),
    Case(
        "free again after a top-up",
        [purchased(seconds=100), started(0, 1), stopped(120, 1), adjusted(130, 10)],
        status={130: FREE},
        remaining={130: 10},
    ),
    Case(
        "activity end wins over training",
        [purchased(activity=True, activity_end=50), started(10, 1)],
        status={20: TRAINING, 60: OUT},
    ),
]


@pytest.mark.parametrize("case", ids(STATUS))
def test_status_first_match(case: Case) -> None:
    check(case)


# --- buyDatetime defaults to the event time ------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (purchased(42), 42),
        (purchased(42, buy=7.5), 7.5),
        (purchased(-3600), -3600),
    ],
)
def test_buy_datetime_defaults_to_event_time(event: AnyPackEvent, expected: float) -> None:
    purchase = fold_arrivals([event]).state.purchase
    assert purchase is not None
    assert seconds(purchase.buy_datetime) == expected


# --- events of an unpurchased pack are parked ----------------------------------------

PARKED = [
    Case(
        "start and stop before the purchase arrives",
        [started(10, 1), stopped(40, 1), purchased(100, seconds=100)],
        charged=30,
        records=[(1, 10, 40, 30, 0)],
        remaining={200: 70},
    ),
    Case(
        "adjustment and open session before the purchase",
        [adjusted(1, 50), started(10, 1), purchased(100, seconds=100)],
        granted=150,
        open={1},
        remaining={100: 60},
    ),
    Case(
        "events both before and after the purchase",
        [started(10, 1), purchased(100, seconds=100), stopped(200, 1)],
        charged=100,
        records=[(1, 10, 200, 100, 90)],
    ),
]


@pytest.mark.parametrize("case", ids(PARKED))
def test_parked_events_take_effect_with_the_purchase(case: Case) -> None:
    check(case)


def test_without_purchase_nothing_takes_effect() -> None:
    result = fold_arrivals([started(10, 1), adjusted(5, 30), stopped(40, 1)])
    assert result.state.purchase is None
    assert result.records == {}
    assert result.state.charged == 0
    assert result.state.open_sessions == {}
    assert result.state.event_count == 3


# --- one purchase per pack: the earliest (then the smallest id) wins ---------------

CONFLICTS = [
    (
        Case(
            "second purchase with another id",
            [purchased(0, seconds=100), purchased(10, seconds=5000)],
            granted=100,
            conflicts=1,
        ),
        0,
    ),
    (
        Case(
            "an earlier purchase arriving second wins",
            [purchased(50, seconds=100), purchased(0, seconds=5000)],
            granted=5000,
            conflicts=1,
        ),
        1,
    ),
    (
        Case(
            "equal times: the smallest id wins, whatever arrives first",
            [
                purchased(0, seconds=100, event_id="buy-b"),
                purchased(0, seconds=5000, event_id="buy-a"),
            ],
            granted=5000,
            conflicts=1,
        ),
        1,
    ),
    (
        Case(
            "ids compare as UTF-8 bytes: 'B' before 'a'",
            [
                purchased(0, seconds=100, event_id="buy-a"),
                purchased(0, seconds=5000, event_id="buy-B"),
            ],
            granted=5000,
            conflicts=1,
        ),
        1,
    ),
    (
        Case(
            "a conflicting activity purchase does not change the type",
            [purchased(0, seconds=100), started(0, 1), purchased(1, activity=True)],
            conflicts=1,
            remaining={40: 60},
        ),
        0,
    ),
]


@pytest.mark.parametrize(("case", "winner"), [pytest.param(*c, id=c[0].id) for c in CONFLICTS])
def test_second_purchase_is_a_conflict(case: Case, winner: int) -> None:
    result = check(case)
    purchase = result.state.purchase
    assert purchase is not None
    assert purchase.event_id == case.arrivals[winner].id
    purchases = [e for e in case.arrivals if e.type == "infinite.pack.purchased"]
    assert result.state.audit.conflicting_purchases == [
        e.id for e in purchases if e.id != purchase.event_id
    ]


# --- events of one instant: adjustments, closing stops, starts, other stops ------------

TIES = [
    Case(
        "a stop and a restart of one training at one instant (start arrives first)",
        [purchased(0, seconds=100), started(10, 1), started(30, 1), stopped(30, 1)],
        records=[(1, 10, 30, 20, 0), (1, 30, None, None, None)],
        open={1},
        remaining={40: 70},
        duplicates=0,
        orphans=0,
    ),
    Case(
        "a start and a stop at one instant make a 0-second session (stop arrives first)",
        [purchased(0, seconds=100), stopped(30, 1), started(30, 1)],
        records=[(1, 30, 30, 0, 0)],
        open=set(),
        remaining={40: 100},
        status={40: FREE},
        orphans=0,
    ),
    Case(
        "a top-up and a stop at one instant: the top-up counts for the charge",
        [purchased(0, seconds=10), started(0, 1), stopped(30, 1), adjusted(30, 50)],
        granted=60,
        charged=30,
        records=[(1, 0, 30, 30, 0)],
        remaining={40: 30},
    ),
    Case(
        "a refund and a stop at one instant: the refund counts for the charge",
        [purchased(0, seconds=100), started(0, 1), stopped(30, 1), adjusted(30, -90)],
        granted=10,
        charged=10,
        records=[(1, 0, 30, 10, 20)],
    ),
    Case(
        "two stops and a start of one training at one instant",
        [
            purchased(0, seconds=100),
            started(10, 1, event_id="s1"),
            stopped(30, 1, event_id="z"),
            started(30, 1, event_id="s2"),
            stopped(30, 1, event_id="a"),
        ],
        # "a" (smallest id) closes the open session, "s2" opens one, "z" closes it.
        records=[(1, 10, 30, 20, 0), (1, 30, 30, 0, 0)],
        open=set(),
        orphans=0,
    ),
    Case(
        "two starts of one training at one instant: the smallest id opens the session",
        [purchased(0, seconds=100), started(30, 1, event_id="b"), started(30, 1, event_id="a")],
        records=[(1, 30, None, None, None)],
        duplicates=1,
    ),
    Case(
        "an instant written in two zones is one instant",
        [
            purchased(0, seconds=100),
            started(10, 1),
            started(at(30).astimezone(timezone(timedelta(hours=8))), 1),
            stopped(30, 1),
        ],
        records=[(1, 10, 30, 20, 0), (1, 30, None, None, None)],
    ),
]


@pytest.mark.parametrize("case", ids(TIES))
def test_events_of_one_instant_in_tie_order(case: Case) -> None:
    check(case)
    for arrivals in (list(reversed(case.arrivals)), case.arrivals[1:] + case.arrivals[:1]):
        assert describe(fold_arrivals(arrivals).state, fold_arrivals(arrivals).records) == (
            describe(fold_arrivals(case.arrivals).state, fold_arrivals(case.arrivals).records)
        )


def test_start_ids_decide_which_start_opens_the_session() -> None:
    result = fold_arrivals(
        [purchased(0), started(30, 1, event_id="b"), started(30, 1, event_id="a")]
    )
    assert result.state.open_sessions[1].start_event_id == "a"
    assert result.state.audit.duplicate_starts == ["b"]


# --- late events leave the state they would have left in order -----------------------

_LATE_HISTORY: list[AnyPackEvent] = [
    purchased(0, seconds=100),
    started(10, 1),
    started(20, 2),
    adjusted(30, 20),
    stopped(60, 1),
    adjusted(65, -10),
    stopped(90, 2),
    started(100, 1),
]

LATE = [
    pytest.param([0, 1, 2, 3, 4, 5, 6, 7], id="in order"),
    pytest.param([0, 1, 2, 4, 5, 6, 7, 3], id="late top-up"),
    pytest.param([0, 1, 2, 3, 5, 6, 7, 4], id="late stop"),
    pytest.param([0, 2, 3, 4, 5, 6, 7, 1], id="late start"),
    pytest.param([7, 6, 5, 4, 3, 2, 1, 0], id="reversed"),
    pytest.param([4, 6, 1, 0, 7, 2, 5, 3], id="shuffled"),
]


@pytest.mark.parametrize("order", LATE)
def test_late_events_leave_the_in_order_state(order: list[int]) -> None:
    arrivals = [_LATE_HISTORY[i] for i in order]
    result = fold_arrivals(arrivals)
    state = result.state
    # In order: granted 110; train 1 closes at 60 (50 s), train 2 at 90 (70 s, 60 charged).
    assert state.granted == 110
    assert state.charged == 110
    assert record_views(result.records.values()) == [
        (1, 10, 60, 50, 0),
        (2, 20, 90, 60, 10),
        (1, 100, None, None, None),
    ]
    assert set(state.open_sessions) == {1}
    assert seconds(state.last_time) == 100
    # Everything granted is charged when train 1 starts again at 100: exhausted at once.
    assert seconds(exhausts_at(state)) == 100
    in_order = fold_arrivals(_LATE_HISTORY)
    nows = [100, 150]
    assert describe(state, result.records, nows) == describe(in_order.state, in_order.records, nows)
    assert_incremental_agrees(arrivals, result)


# --- logId derived from the start event ----------------------------------------------


def test_log_id_derived_from_start_event() -> None:
    history: list[AnyPackEvent] = [
        purchased(0),
        started(10, 1, event_id="s-1"),
        stopped(20, 1, event_id="t-1"),
    ]
    first = fold_arrivals(history)
    again = fold_arrivals(list(reversed(history)))
    assert list(first.records) == list(again.records) == [rules.log_id_for("s-1")]
    other = fold_arrivals([purchased(0), started(10, 1, event_id="s-2")])
    assert list(other.records) == [rules.log_id_for("s-2")]
    assert rules.log_id_for("s-1") != rules.log_id_for("s-2")
    for log_id in (*first.records, *other.records):
        assert 1 <= log_id < 2**63


# --- refunds below what was charged ---------------------------------------------------

REFUNDS = [
    Case(
        "refund below charged",
        [purchased(seconds=100), started(0, 1), stopped(80, 1), adjusted(90, -50)],
        granted=50,
        charged=80,
        remaining={100: 0},
        status={100: OUT},
    ),
    Case(
        "and a later session is all overrun",
        [
            purchased(seconds=100),
            started(0, 1),
            stopped(80, 1),
            adjusted(90, -50),
            started(100, 2),
            stopped(110, 2),
        ],
        charged=80,
        records=[(1, 0, 80, 80, 0), (2, 100, 110, 0, 10)],
    ),
    Case(
        "a top-up must first cover the refund",
        [
            purchased(seconds=100),
            started(0, 1),
            stopped(80, 1),
            adjusted(90, -50),
            adjusted(95, 40),
        ],
        granted=90,
        remaining={100: 10},
        status={100: FREE},
    ),
]


@pytest.mark.parametrize("case", ids(REFUNDS))
def test_refunds(case: Case) -> None:
    check(case)


# --- exhaustion -------------------------------------------------------------------------

EXHAUSTION = [
    Case("one session", [purchased(seconds=100), started(0, 1)], exhausts_at=100),
    Case(
        "two sessions: granted 100, started at t and t+10",
        [purchased(seconds=100), started(0, 1), started(10, 2)],
        exhausts_at=55,
        remaining={54: 2, 55: 0},
    ),
    Case(
        "one of two stops during the exhaustion: same instant",
        [purchased(seconds=100), started(0, 1), started(10, 2), stopped(60, 1)],
        exhausts_at=55,
        charged=60,
        records=[(1, 0, 60, 60, 0), (2, 10, None, None, None)],
    ),
    Case(
        "one of two stops at the exhaustion instant",
        [purchased(seconds=100), started(0, 1), started(10, 2), stopped(55, 1)],
        exhausts_at=55,
    ),
    Case(
        "one of two stops before the exhaustion: it moves",
        [purchased(seconds=100), started(0, 1), started(10, 2), stopped(50, 1)],
        exhausts_at=60,
    ),
    Case(
        "cleared by a sufficient top-up, next exhaustion later",
        [purchased(seconds=100), started(0, 1), adjusted(120, 50)],
        exhausts_at=150,
        remaining={120: 30},
    ),
    Case(
        "a top-up too small to cover the overrun: same exhaustion",
        [purchased(seconds=100), started(0, 1), adjusted(120, 10)],
        exhausts_at=100,
        remaining={120: 0},
    ),
    Case(
        "a top-up before the instant postpones it",
        [purchased(seconds=100), started(0, 1), adjusted(50, 10)],
        exhausts_at=110,
    ),
    Case(
        "a refund exhausts at once",
        [purchased(seconds=100), started(0, 1), adjusted(30, -80)],
        exhausts_at=30,
        status={30: OUT},
    ),
    Case(
        "start on an exhausted pack",
        [purchased(seconds=10), started(0, 1), stopped(20, 1), started(30, 2)],
        exhausts_at=30,
        status={30: OUT},
    ),
    Case(
        "fractional starts",
        [purchased(seconds=3), started(0.5, 1), started(0.7, 2)],
        exhausts_at=2.5,
        remaining={2.49: 1, 2.5: 0},
    ),
    Case(
        "all sessions stopped: no exhaustion",
        [purchased(seconds=100), started(0, 1), stopped(150, 1)],
        exhausts_at=None,
    ),
    Case("no sessions: no exhaustion", [purchased(seconds=0)], exhausts_at=None),
    Case(
        "a grant beyond the calendar never exhausts",
        [purchased(seconds=10**12), started(0, 1), started(10, 2), adjusted(20, 5)],
        exhausts_at=None,
        remaining={20: 10**12 + 5 - 30},
        status={20: TRAINING},
    ),
    Case(
        "a new exhaustion after a stop and a new start",
        [purchased(seconds=100), started(0, 1), stopped(150, 1), started(200, 2)],
        exhausts_at=200,
    ),
]


@pytest.mark.parametrize("case", ids(EXHAUSTION))
def test_exhausts_at(case: Case) -> None:
    check(case)


def _notice(events: list[AnyPackEvent]) -> str | None:
    state = fold_arrivals(events).state
    instant = exhausts_at(state)
    return None if instant is None else rules.exhaustion_notice_id(PACK, instant)


def test_exhaustion_notice_once_per_exhaustion() -> None:
    base: list[AnyPackEvent] = [purchased(seconds=100), started(0, 1), started(10, 2)]
    before = _notice(base)
    assert before == rules.exhaustion_notice_id(PACK, at(55))
    # one of the two sessions stops during the exhaustion: still the same notice
    assert _notice([*base, stopped(60, 1)]) == before
    assert _notice([*base, stopped(60, 1), adjusted(61, 3)]) == before
    # a top-up that covers the overrun ends it; the next exhaustion is another notice
    topped = [*base, stopped(60, 1), adjusted(70, 100)]
    after = _notice(topped)
    assert after is not None and after != before
    state = fold_arrivals(topped).state
    assert state.exhausted_since is None
    # 100 + 100 granted, 60 charged, train 2 from 10: 140 s of it -> 150
    assert seconds(exhausts_at(state)) == 150
    assert after == rules.exhaustion_notice_id(PACK, at(150))


def test_exhausted_since_marks_an_ongoing_exhaustion() -> None:
    state = fold_arrivals(
        [purchased(seconds=100), started(0, 1), started(10, 2), stopped(60, 1)]
    ).state
    assert seconds(state.exhausted_since) == 55
    state = fold_arrivals([purchased(seconds=100), started(0, 1), started(10, 2)]).state
    assert state.exhausted_since is None  # not yet: it is still ahead


# --- fractional-second starts ---------------------------------------------------------

FRACTIONAL = [
    Case(
        "start and stop on fractions",
        [purchased(seconds=100), started(0.25, 1), stopped(30.2, 1)],
        records=[(1, 0.25, 30.2, 29, 0)],
        charged=29,
        remaining={31: 71},
    ),
    Case(
        "open fractional session",
        [purchased(seconds=100), started(0.999999, 1)],
        remaining={1.999998: 100, 1.999999: 99},
        exhausts_at=100.999999,
    ),
]


@pytest.mark.parametrize("case", ids(FRACTIONAL))
def test_fractional_second_starts(case: Case) -> None:
    check(case)


def test_event_count_counts_every_kept_fact() -> None:
    state = fold_arrivals(
        [
            purchased(),
            purchased(),
            started(0, 1),
            started(1, 1),
            stopped(2, 2),
            stopped(3, 1),
            adjusted(4, 5),
        ]
    ).state
    assert state.event_count == 7
    assert seconds(state.last_time) == 4
    assert T0 + (state.last_time - T0) == at(4)  # type: ignore[operator]
