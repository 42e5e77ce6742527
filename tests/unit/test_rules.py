"""The arithmetic of CONTRACT.md section 2 (projections.rules), value by value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.payloads import DurationType
from projections import rules
from tests.support.examples import examples
from tests.unit.event_factory import T0, at

TIMING = DurationType.TIMING
ACTIVITY = DurationType.ACTIVITY
US = timedelta(microseconds=1)


# --- elapsed_seconds ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (0, 0, 0),
        (0, 0.999999, 0),
        (0, 1, 1),
        (0, 59.5, 59),
        (0.5, 2.4, 1),
        (0.5, 2.5, 2),
        (0.7, 3.2, 2),
        (10, 5, 0),  # stop before start: never below 0
        (10, 9.999999, 0),
        (0, 86400 * 3 + 0.25, 86400 * 3),
    ],
)
def test_elapsed_seconds_floors_whole_seconds(since: float, until: float, expected: int) -> None:
    assert rules.elapsed_seconds(at(since), at(until)) == expected


def test_elapsed_seconds_compares_instants_across_offsets() -> None:
    shanghai = timezone(timedelta(hours=8))
    since = datetime(2024, 5, 1, 16, 0, 0, tzinfo=shanghai)  # 08:00 UTC
    until = datetime(2024, 5, 1, 8, 1, 30, 500000, tzinfo=UTC)
    assert rules.elapsed_seconds(since, until) == 90


# --- remaining_seconds --------------------------------------------------------------


@pytest.mark.parametrize(
    ("granted", "charged", "starts", "now", "expected"),
    [
        (100, 0, [], 50, 100),
        (100, 30, [], 50, 70),
        (100, 0, [0], 40, 60),
        (100, 0, [0], 40.9, 60),  # floor per session
        (100, 0, [0.5, 0.7], 10.6, 100 - 10 - 9),  # each session floored on its own
        (100, 0, [0, 10], 55, 0),
        (100, 0, [0, 10], 54.99, 2),  # 54 + 44 used
        (100, 0, [0], 1000, 0),  # never below 0
        (100, 150, [], 0, 0),  # refund below charged
        (100, 20, [0, 0, 0], 10, 50),  # three concurrent sessions
        (100, 0, [50], 10, 100),  # a start after now counts nothing
        (0, 0, [], 0, 0),
    ],
)
def test_remaining_seconds_timing(
    granted: int, charged: int, starts: list[float], now: float, expected: int
) -> None:
    open_starts = [at(s) for s in starts]
    assert rules.remaining_seconds(TIMING, granted, charged, open_starts, at(now)) == expected


@pytest.mark.parametrize(
    ("granted", "charged", "starts"),
    [(0, 0, []), (1000, 0, []), (1000, 10, [0]), (5, 0, [0, 1])],
)
def test_remaining_seconds_activity_is_always_zero(
    granted: int, charged: int, starts: list[float]
) -> None:
    assert rules.remaining_seconds(ACTIVITY, granted, charged, [at(s) for s in starts], at(9)) == 0


# --- status --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "granted", "charged", "starts", "activity_end", "now", "expected"),
    [
        # timing: remaining 0 wins over an open session
        (TIMING, 100, 0, [], None, 10, rules.FREE),
        (TIMING, 100, 0, [0], None, 10, rules.TRAINING),
        (TIMING, 100, 0, [0], None, 99.9, rules.TRAINING),
        (TIMING, 100, 0, [0], None, 100, rules.OUT_OF_TIME),
        (TIMING, 100, 100, [], None, 10, rules.OUT_OF_TIME),
        (TIMING, 0, 0, [], None, 0, rules.OUT_OF_TIME),
        (TIMING, 100, 0, [0, 10], None, 55, rules.OUT_OF_TIME),
        (TIMING, 100, 0, [0, 10], None, 54, rules.TRAINING),
        # activity: out of time only once activityEndTime has passed
        (ACTIVITY, 0, 0, [], None, 10, rules.FREE),
        (ACTIVITY, 0, 0, [0], None, 10**6, rules.TRAINING),
        (ACTIVITY, 0, 0, [], 100, 99, rules.FREE),
        (ACTIVITY, 0, 0, [0], 100, 99, rules.TRAINING),
        (ACTIVITY, 0, 0, [0], 100, 101, rules.OUT_OF_TIME),
        (ACTIVITY, 0, 0, [], 100, 101, rules.OUT_OF_TIME),
    ],
)
def test_status_first_match_wins(
    kind: DurationType,
    granted: int,
    charged: int,
    starts: list[float],
    activity_end: float | None,
    now: float,
    expected: str,
) -> None:
    end = None if activity_end is None else at(activity_end)
    got = rules.status(kind, granted, charged, [at(s) for s in starts], end, at(now))
    assert got == expected


# --- charge_for ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "granted", "charged", "expected"),
    [
        (10, 100, 0, 10),
        (100, 100, 0, 100),
        (150, 100, 0, 100),
        (50, 100, 80, 20),
        (50, 100, 100, 0),
        (50, 100, 130, 0),  # refunded below what was charged: nothing left, never negative
        (0, 100, 0, 0),
        (0, 0, 0, 0),
        (7, -20, 0, 0),
    ],
)
def test_charge_for_never_more_than_is_left(
    length: int, granted: int, charged: int, expected: int
) -> None:
    assert rules.charge_for(length, granted, charged) == expected


# --- exhaustion_instant --------------------------------------------------------------


def _used(starts: list[datetime], instant: datetime) -> int:
    return sum(rules.elapsed_seconds(start, instant) for start in starts)


def _brute_force_exhaustion(budget: int, starts: list[datetime], not_before: datetime) -> datetime:
    """The first instant >= not_before with used >= budget, by scanning every step point.

    `used` only changes at start + k seconds, so the answer is `not_before` or one of
    those instants; scanning them all second by second finds it exactly.
    """
    if budget <= 0 or _used(starts, not_before) >= budget:
        return not_before
    candidates = sorted(start + timedelta(seconds=k) for start in starts for k in range(budget + 2))
    for instant in candidates:
        if instant >= not_before and _used(starts, instant) >= budget:
            return instant
    raise AssertionError("no exhaustion found")


@pytest.mark.parametrize(
    ("budget", "starts", "not_before", "expected"),
    [
        (100, [0], 0, 100),
        (100, [0, 10], 10, 55),  # the contract's example: t and t+10, granted 100
        (100, [0, 10], 30, 55),
        (3, [0.5, 0.7], 0.7, 2.5),
        (1, [0.25], 0.25, 1.25),
        (10, [0, 0, 0, 0, 0], 0, 2),
        (0, [0], 5, 5),  # nothing left: exhausted at once
        (-10, [0], 5, 5),
        (50, [0], 80, 80),  # already used up at not_before
    ],
)
def test_exhaustion_instant_table(
    budget: int, starts: list[float], not_before: float, expected: float
) -> None:
    got = rules.exhaustion_instant(budget, [at(s) for s in starts], at(not_before))
    assert got == at(expected)


@settings(max_examples=examples(200), deadline=None)
@given(
    budget=st.integers(min_value=-2, max_value=40),
    offsets_us=st.lists(st.integers(min_value=0, max_value=20_000_000), min_size=1, max_size=4),
    not_before_extra_us=st.integers(min_value=0, max_value=5_000_000),
)
def test_exhaustion_instant_matches_brute_force(
    budget: int, offsets_us: list[int], not_before_extra_us: int
) -> None:
    starts = [T0 + timedelta(microseconds=us) for us in offsets_us]
    not_before = max(starts) + timedelta(microseconds=not_before_extra_us)
    got = rules.exhaustion_instant(budget, starts, not_before)
    assert got == _brute_force_exhaustion(budget, starts, not_before)
    assert got >= not_before
    if budget > 0:
        assert _used(starts, got) >= budget
        if got > not_before:
            assert _used(starts, got - US) < budget


ZONES = [UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=5, minutes=30))]


@settings(max_examples=examples(200), deadline=None)
@given(
    budget=st.integers(min_value=1, max_value=40),
    offsets_us=st.lists(st.integers(min_value=0, max_value=20_000_000), min_size=2, max_size=4),
    zones=st.lists(st.sampled_from(ZONES), min_size=5, max_size=5),
    not_before_extra_us=st.integers(min_value=0, max_value=5_000_000),
)
def test_exhaustion_instant_with_times_in_any_zone(
    budget: int, offsets_us: list[int], zones: list[timezone], not_before_extra_us: int
) -> None:
    """Starts and `not_before` in other zones than UTC, or in different zones: the same
    instant, told in UTC unless it is `not_before` itself."""
    starts = [
        (T0 + timedelta(microseconds=us)).astimezone(zone)
        for us, zone in zip(offsets_us, zones, strict=False)
    ]
    not_before = (max(starts) + timedelta(microseconds=not_before_extra_us)).astimezone(zones[-1])
    got = rules.exhaustion_instant(budget, starts, not_before)
    assert got is not None
    assert got == _brute_force_exhaustion(budget, starts, not_before)
    assert got is not_before or got.tzinfo is UTC


@settings(max_examples=examples(200), deadline=None)
@given(
    budgets=st.lists(st.integers(min_value=-2, max_value=40), min_size=1, max_size=4),
    offsets_us=st.lists(st.integers(min_value=0, max_value=20_000_000), min_size=1, max_size=4),
    zones=st.lists(st.sampled_from(ZONES), min_size=5, max_size=5),
    not_before_extra_us=st.integers(min_value=0, max_value=5_000_000),
)
def test_exhaustion_instants_is_one_search_per_budget(
    budgets: list[int], offsets_us: list[int], zones: list[timezone], not_before_extra_us: int
) -> None:
    """The exhaustion and the crossings ahead share one search: each budget's answer is
    the brute force's, whatever the other budgets, the number of sessions or the zones."""
    starts = [
        (T0 + timedelta(microseconds=us)).astimezone(zone)
        for us, zone in zip(offsets_us, zones, strict=False)
    ]
    not_before = (max(starts) + timedelta(microseconds=not_before_extra_us)).astimezone(zones[-1])
    got = rules.exhaustion_instants(budgets, starts, not_before)
    assert got == [_brute_force_exhaustion(budget, starts, not_before) for budget in budgets]
    assert got == [rules.exhaustion_instant(budget, starts, not_before) for budget in budgets]


@pytest.mark.parametrize("budget", [10**12, 10**15, 10**30])
def test_exhaustion_beyond_the_calendar_is_never(budget: int) -> None:
    assert rules.exhaustion_instant(budget, [at(0), at(10)], at(10)) is None


def test_exhaustion_near_the_end_of_the_calendar_is_exact() -> None:
    start = datetime(9999, 12, 30, 23, 0, 0, tzinfo=UTC)
    # the naive upper bound (start + budget + 1 s) would overflow; the answer does not
    got = rules.exhaustion_instant(3599, [start], start)
    assert got == start + timedelta(seconds=3599)
    # 9999-12-30 23:59:59.999999 UTC is the contract's last instant: 3599 whole seconds
    assert rules.exhaustion_instant(3600, [start], start) is None
    two = [start, start + timedelta(seconds=1)]
    assert rules.exhaustion_instant(7197, two, two[1]) == start + timedelta(seconds=3599)
    assert rules.exhaustion_instant(7199, two, two[1]) is None


@pytest.mark.parametrize("zone", [*ZONES, timezone(timedelta(hours=14))])
@pytest.mark.parametrize("year", [9994, 9995, 9996, 9997, 9998])
@pytest.mark.parametrize("years", [0, 1, 2, 3])
def test_one_session_either_side_of_the_calendar_shortcut(
    zone: timezone, year: int, years: int
) -> None:
    """One session skips the calendar checks far from its end: the same answers on both
    sides of where the shortcut stops (start + budget, or never past LAST_INSTANT)."""
    start = datetime(year, 12, 31, 20, tzinfo=zone)
    for budget in (years * 366 * 86_400 - 1, years * 366 * 86_400 + 7_200):
        if budget <= 0:
            continue
        try:
            reached: datetime | None = start + timedelta(seconds=budget)
        except OverflowError:
            reached = None
        expected = reached if reached is not None and reached < rules.LAST_INSTANT else None
        assert rules.exhaustion_instant(budget, [start], start) == expected


def test_an_exhaustion_past_the_contracts_last_day_is_never() -> None:
    """Even where Python's dates still reach (9999-12-31), and in a zone whose local
    date is already 9999-12-31: the ledger could neither show nor store it."""
    east = timezone(timedelta(hours=14))
    start = datetime(9999, 12, 30, 12, tzinfo=UTC).astimezone(east)
    assert rules.exhaustion_instant(11 * 3600, [start], start) is not None
    assert rules.exhaustion_instant(12 * 3600, [start], start) is None
    assert rules.exhaustion_instant(24 * 3600, [start, start], start) is None


def test_exhaustion_instant_without_sessions_is_not_before() -> None:
    assert rules.exhaustion_instant(100, [], at(3)) == at(3)


# --- derived ids ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "parts",
    [(), ("logId", "a"), ("logId", "b"), ("x",) * 5, (1, 2, 3), ("", ""), ("é", "漢字")],
)
def test_derived_id_positive_below_2_63_and_stable(parts: tuple[object, ...]) -> None:
    value = rules.derived_id(*parts)
    assert 1 <= value < 2**63
    assert rules.derived_id(*parts) == value


@settings(max_examples=examples(200), deadline=None)
@given(st.text(min_size=1, max_size=128))
def test_log_id_in_range_and_stable(event_id: str) -> None:
    log_id = rules.log_id_for(event_id)
    assert 1 <= log_id < 2**63
    assert rules.log_id_for(event_id) == log_id


def test_log_ids_differ_per_start_event() -> None:
    ids = {rules.log_id_for(f"start-{n}") for n in range(2000)}
    assert len(ids) == 2000


def test_derived_id_separates_parts() -> None:
    assert rules.derived_id("ab", "c") != rules.derived_id("a", "bc")


def test_exhaustion_notice_id_stable_and_distinct() -> None:
    instant = at(55)
    same_instant_elsewhere = instant.astimezone(timezone(timedelta(hours=8)))
    notice = rules.exhaustion_notice_id(1001, instant)
    assert notice == rules.exhaustion_notice_id(1001, same_instant_elsewhere)
    assert notice.startswith("exhausted-1001-")
    assert 1 <= len(notice) <= 128  # a valid CloudEvents id of the contract
    assert notice != rules.exhaustion_notice_id(1001, at(56))
    assert notice != rules.exhaustion_notice_id(1002, instant)
    assert notice != rules.exhaustion_notice_id(1001, instant + US)
