"""The lease rules of CONTRACT.md section 2 through the fold, one test per rule.

Times are seconds after `T0`; usage records are (trainId, start, end, charged, overrun)
(`record_views`). Every case is also folded from its events in reverse arrival order,
which must give the same state and records (`_both_ways`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from events.envelope import AnyPackEvent, HeartbeatEvent
from events.publisher import heartbeat_event, validate
from projections import rules
from projections.fold import (
    FoldResult,
    apply_in_order,
    exhausts_at,
    fold,
    low_crossings,
    remaining_at,
    status_at,
)
from projections.leases import closed_lapses, lapses
from projections.snapshot import from_snapshot, to_snapshot
from projections.terms import DEFAULT_TERMS, Terms
from services.cli import main
from services.settings import Settings, get_settings
from tests.unit.event_factory import (
    PACK,
    adjusted,
    at,
    describe,
    entries,
    heartbeat,
    purchased,
    record_views,
    seconds,
    started,
    stopped,
)

FREE, TRAINING, OUT = rules.FREE, rules.TRAINING, rules.OUT_OF_TIME
NOWS = [0, 5, 9.5, 10, 10.5, 15, 20, 30, 100]


def _both_ways(events: list[AnyPackEvent], terms: Terms = DEFAULT_TERMS) -> FoldResult:
    """The fold of `events`, checked against the fold of their reverse arrival."""
    result = fold(PACK, entries(events), terms=terms)
    backwards = fold(PACK, entries(reversed(events)), terms=terms)
    assert describe(backwards.state, backwards.records, NOWS) == describe(
        result.state, result.records, NOWS
    )
    return result


def _lease_ends(result: FoldResult) -> dict[int, float | None]:
    return {r.train_id: seconds(r.lease_ends_at) for r in result.records.values()}


# --- the lease end ------------------------------------------------------------------------


def test_a_start_with_a_lease_ends_it_lease_seconds_later() -> None:
    result = _both_ways([purchased(0), started(1, 1, lease=10)])
    (record,) = result.records.values()
    assert (record.lease_seconds, seconds(record.lease_ends_at)) == (10, 11.0)
    assert record.is_open


@pytest.mark.parametrize(
    ("lease", "default", "expected"),
    [
        (None, None, (None, None)),  # no lease by default
        (None, 30, (30, 31.0)),  # LEDGER_DEFAULT_LEASE_SECONDS
        (5, 30, (5, 6.0)),  # the start's own lease wins
    ],
)
def test_the_default_lease_applies_to_starts_without_one(
    lease: int | None, default: int | None, expected: tuple[int | None, float | None]
) -> None:
    terms = Terms(default_lease_seconds=default)
    result = _both_ways([purchased(0), started(1, 1, lease=lease)], terms)
    (record,) = result.records.values()
    assert (record.lease_seconds, seconds(record.lease_ends_at)) == expected


def test_a_heartbeat_moves_the_lease_end_to_its_time_plus_the_lease() -> None:
    result = _both_ways([purchased(0), started(0, 1, lease=10), heartbeat(4, 1), heartbeat(7, 1)])
    assert _lease_ends(result) == {1: 17.0}
    assert status_at(result.state, at(16.9)) == TRAINING


def test_a_late_heartbeat_timed_inside_the_lease_still_extends_it() -> None:
    """It arrives after an event timed past the original lease end: the pack is re-folded
    and the session did not lapse at 10 but runs on to 18."""
    arrivals = [purchased(0), started(0, 1, lease=10), adjusted(12, 5), heartbeat(8, 1)]
    result = _both_ways(arrivals)
    assert _lease_ends(result) == {1: 18.0}
    assert result.state.open_sessions[1].is_open
    assert remaining_at(result.state, at(30)) == 3600 + 5 - 18


def test_an_earlier_heartbeat_never_shortens_the_lease() -> None:
    result = _both_ways([purchased(0), started(0, 1, lease=10), heartbeat(6, 1), heartbeat(2, 1)])
    assert _lease_ends(result) == {1: 16.0}


def test_a_heartbeat_of_a_session_without_a_lease_changes_nothing() -> None:
    plain = fold(PACK, entries([purchased(0), started(0, 1)]))
    beaten = _both_ways([purchased(0), started(0, 1), heartbeat(5, 1)])
    assert _lease_ends(beaten) == {1: None}
    assert beaten.state.audit.orphan_heartbeats == []
    assert record_views(beaten.records.values()) == record_views(plain.records.values())
    assert beaten.state.event_count == plain.state.event_count + 1  # kept in the ledger


def test_a_lease_end_is_never_past_the_last_instant() -> None:
    late = datetime(9999, 12, 30, 23, 0, tzinfo=timezone(timedelta(hours=14)))
    assert rules.lease_end(late, 86_400) == rules.LAST_INSTANT
    assert rules.lease_end(at(0), 60) == at(60)


# --- the lapse ------------------------------------------------------------------------------


def test_a_session_whose_lease_ends_first_lapses_at_its_lease_end() -> None:
    """Closed exactly as if stopped then (reason leaseExpired, charged up to it), once an
    event after it is applied."""
    result = _both_ways([purchased(0, seconds=100), started(2, 1, lease=10), adjusted(30, 1)])
    (record,) = result.records.values()
    assert record_views([record]) == [(1, 2.0, 12.0, 10, 0)]
    assert (record.stop_reason, record.stop_event_id) == (rules.LEASE_EXPIRED, None)
    assert result.state.charged == 10 and not result.state.open_sessions
    assert closed_lapses(PACK, result.records.values())[0].lapsed_at == at(12)
    assert result.state.event_count == 3  # a lapse is not an event
    assert result.state.last_time == at(30)


def test_a_lapse_is_charged_what_is_left_and_the_rest_is_overrun() -> None:
    result = _both_ways([purchased(0, seconds=4), started(0, 1, lease=10), adjusted(20, 1)])
    assert record_views(result.records.values()) == [(1, 0.0, 10.0, 4, 6)]
    assert remaining_at(result.state, at(20)) == 1


def test_reads_take_a_passed_lease_end_as_a_lapse_before_any_later_event() -> None:
    """Nothing after the lease end is applied yet: the state keeps the session open, and
    reads at `now` count it up to its lease end only and not as running."""
    result = _both_ways([purchased(0, seconds=100), started(0, 1, lease=10)])
    state = result.state
    assert state.open_sessions  # as the fold left it
    assert [(remaining_at(state, at(t)), status_at(state, at(t))) for t in (5, 10, 50)] == [
        (95, TRAINING),
        (90, FREE),
        (90, FREE),
    ]
    assert [(lapse.train_id, seconds(lapse.lapsed_at)) for lapse in lapses(state, at(50))] == [
        (1, 10.0)
    ]
    assert lapses(state, at(9.999)) == []
    assert rules.session_end(None, at(10), at(50)) == at(10)
    assert rules.session_seconds(at(0), None, at(10), at(50)) == 10
    assert rules.session_seconds(at(0), None, at(10), at(7)) == 7


def test_a_stop_at_the_lease_end_is_a_stop() -> None:
    """A lapse comes after the events of its instant."""
    result = _both_ways([purchased(0), started(0, 1, lease=10), stopped(10, 1, reason="failed")])
    (record,) = result.records.values()
    assert (record.stop_reason, seconds(record.end_time)) == ("failed", 10.0)
    assert result.state.audit.orphan_stops == []


def test_a_heartbeat_at_the_lease_end_renews_it() -> None:
    result = _both_ways([purchased(0), started(0, 1, lease=10), heartbeat(10, 1), adjusted(15, 1)])
    assert _lease_ends(result) == {1: 20.0}
    assert result.state.open_sessions


def test_an_adjustment_at_the_lease_end_counts_before_the_lapse() -> None:
    """The lapse at 10 is charged from what the refund at 10 left."""
    events = [purchased(0, seconds=12), started(0, 1, lease=10), adjusted(10, -5), adjusted(20, 1)]
    result = _both_ways(events)
    assert record_views(result.records.values()) == [(1, 0.0, 10.0, 7, 3)]


def test_lapses_at_one_instant_go_in_train_id_order() -> None:
    """Two sessions lapse at 10 on a pack with 15 s: the smaller trainId is charged first."""
    events = [
        purchased(0, seconds=15),
        started(0, 7, lease=10, event_id="a"),
        started(0, 3, lease=10, event_id="b"),
        adjusted(30, 1),
    ]
    result = _both_ways(events)
    assert record_views(result.records.values()) == [(3, 0.0, 10.0, 10, 0), (7, 0.0, 10.0, 5, 5)]


def test_lapses_go_by_lease_end_then_by_train_id() -> None:
    events = [
        purchased(0, seconds=16),
        started(0, 1, lease=9),
        started(0, 2, lease=8),
        adjusted(30, 1),
    ]
    result = _both_ways(events)
    assert record_views(result.records.values()) == [(1, 0.0, 9.0, 8, 1), (2, 0.0, 8.0, 8, 0)]


def test_a_stop_or_heartbeat_of_a_lapsed_session_changes_nothing_and_is_kept() -> None:
    lapsed = [purchased(0), started(0, 1, lease=10)]
    later = [heartbeat(12, 1, event_id="hb"), stopped(14, 1, event_id="st")]
    result = _both_ways(lapsed + later)
    assert record_views(result.records.values()) == [(1, 0.0, 10.0, 10, 0)]
    assert result.state.audit.orphan_heartbeats == ["hb"]
    assert result.state.audit.orphan_stops == ["st"]
    assert result.state.charged == 10


def test_a_new_start_after_a_lapse_opens_a_new_session() -> None:
    events = [purchased(0), started(0, 1, lease=10, event_id="s1"), started(12, 1, event_id="s2")]
    result = _both_ways(events)
    assert record_views(result.records.values()) == [
        (1, 0.0, 10.0, 10, 0),
        (1, 12.0, None, None, None),
    ]
    assert result.state.open_sessions[1].log_id == rules.log_id_for("s2")
    assert result.state.audit.duplicate_starts == []


def test_a_start_at_the_lapse_instant_is_a_duplicate() -> None:
    """The lapse comes after the events of its instant: the session is open at the start."""
    events = [purchased(0), started(0, 1, lease=10, event_id="s1"), started(10, 1, event_id="s2")]
    result = _both_ways(events)
    assert result.state.audit.duplicate_starts == ["s2"]
    assert record_views(result.records.values()) == [(1, 0.0, 10.0, 10, 0)]


# --- heartbeats in the order of one instant -------------------------------------------------


def test_a_heartbeat_at_the_instant_of_a_stop_comes_after_it() -> None:
    events = [purchased(0), started(0, 1, lease=10), stopped(5, 1), heartbeat(5, 1, event_id="h")]
    result = _both_ways(events)
    assert result.state.audit.orphan_heartbeats == ["h"]
    assert record_views(result.records.values()) == [(1, 0.0, 5.0, 5, 0)]


def test_a_heartbeat_at_the_instant_of_a_start_comes_before_it() -> None:
    events = [purchased(0), heartbeat(3, 1, event_id="h"), started(3, 1, lease=10)]
    result = _both_ways(events)
    assert result.state.audit.orphan_heartbeats == ["h"]
    assert _lease_ends(result) == {1: 13.0}


# --- late arrivals ----------------------------------------------------------------------------


def test_an_event_timed_before_an_applied_lapse_refolds_the_pack() -> None:
    state = fold(PACK, entries([purchased(0), started(0, 1, lease=10), adjusted(20, 1)])).state
    assert not state.open_sessions  # lapsed at 10
    late = entries([heartbeat(5, 1)])
    late[0] = type(late[0])(99, late[0].event)
    assert apply_in_order(state, late) is None  # the caller re-folds


# --- forecasts ------------------------------------------------------------------------------


def test_no_exhaustion_when_every_lease_ends_first() -> None:
    state = _both_ways([purchased(0, seconds=100), started(0, 1, lease=30)]).state
    assert exhausts_at(state) is None


def test_the_exhaustion_counts_a_session_only_up_to_its_lease_end() -> None:
    """100 s used by a session lapsing at 30 and one without a lease: 60 s by 30, then the
    second alone uses the 40 s left: exhausted at 70."""
    events = [purchased(0, seconds=100), started(0, 1, lease=30), started(0, 2)]
    state = _both_ways(events).state
    assert seconds(exhausts_at(state)) == 70.0
    assert remaining_at(state, at(70)) == 0 and remaining_at(state, at(69.9)) == 1


def test_low_balance_crossings_count_a_session_only_up_to_its_lease_end() -> None:
    terms = Terms(low_balance_seconds=(50,))
    events = [purchased(0, seconds=100), started(0, 1, lease=30), started(0, 2)]
    state = _both_ways(events, terms).state
    assert [(t, seconds(a)) for t, a in low_crossings(state)] == [(50, 25.0)]  # 2 x 25 s
    alone = _both_ways([purchased(0, seconds=100), started(0, 1, lease=30)], terms).state
    assert low_crossings(alone) == []  # its lease ends with 70 s left


def test_depletion_instant_segments() -> None:
    t = at(0)
    assert rules.depletion_instant(10, [(t, None)], t) == at(10)
    assert rules.depletion_instant(10, [(t, at(5))], t) is None
    assert rules.depletion_instant(10, [(t, at(5)), (t, None)], t) == at(5)
    assert rules.depletion_instant(10, [(t, at(4)), (t, at(20))], t) == at(6)  # 8 + 2
    assert rules.depletion_instant(5, [(t, at(4))], at(6)) is None
    assert rules.depletion_instant(4, [(t, at(4))], at(6)) == at(6)  # used up already


# --- persistence ----------------------------------------------------------------------------


def test_the_snapshot_keeps_the_leases_and_reads_older_documents() -> None:
    state = _both_ways([purchased(0), started(0, 1, lease=10), heartbeat(4, 1)]).state
    document = json.loads(json.dumps(to_snapshot(state)))
    restored = from_snapshot(document)
    assert restored.open_sessions[1].lease_ends_at == at(14)
    assert restored.open_sessions[1].lease_seconds == 10
    older = json.loads(json.dumps(document))
    older["v"] = 3
    for session in older["open"]:
        del session["leaseSeconds"], session["leaseEndsAt"]
    del older["audit"]["orphanHeartbeats"]
    before_leases = from_snapshot(older)
    assert before_leases.open_sessions[1].lease_ends_at is None
    assert before_leases.audit.orphan_heartbeats == []


def test_lapse_notice_ids_are_derived_from_the_facts() -> None:
    instant = datetime(2024, 5, 1, 10, tzinfo=timezone(timedelta(hours=8)))
    same = instant.astimezone(UTC)
    first = rules.lapse_notice_id(1, 42, instant)
    assert first == rules.lapse_notice_id(1, 42, same)
    assert first.startswith("lapsed-1-42-")
    assert len({first, rules.lapse_notice_id(2, 42, same), rules.lapse_notice_id(1, 43, same)}) == 3
    assert first != rules.lapse_notice_id(1, 42, same + timedelta(microseconds=1))


# --- the settings and the publisher -------------------------------------------------------


@pytest.mark.parametrize(("text", "lease"), [("", None), (" ", None), ("60", 60), ("86400", 86400)])
def test_the_default_lease_setting(text: str, lease: int | None) -> None:
    settings = Settings(default_lease_seconds=text, low_balance_seconds="20,10")
    assert settings.terms == Terms(low_balance_seconds=(10, 20), default_lease_seconds=lease)


@pytest.mark.parametrize("text", ["0", "86401", "-5", "1.5", "sixty", "60s"])
def test_a_bad_default_lease_setting_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="LEDGER_DEFAULT_LEASE_SECONDS"):
        _ = Settings(default_lease_seconds=text).terms


def test_terms_refuse_what_settings_would_not_give() -> None:
    with pytest.raises(ValueError):
        Terms(low_balance_seconds=(20, 10))
    with pytest.raises(ValueError):
        Terms(default_lease_seconds=0)


def test_the_heartbeat_helper_builds_a_valid_event_with_a_stable_id() -> None:
    when = at(5)
    event = heartbeat_event(1001, 5001, time=when, source="scheduler/a")
    assert event["id"] == f"scheduler/a/train/5001/heartbeat/{when.isoformat()}"
    assert heartbeat_event(1001, 5001, time=when, source="scheduler/a") == event
    parsed = validate(event)
    assert isinstance(parsed, HeartbeatEvent)
    assert (parsed.data.userPackId, parsed.data.trainId, parsed.time) == (1001, 5001, when)


def test_a_bad_fold_setting_stops_every_command_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEDGER_DEFAULT_LEASE_SECONDS", "0")
    get_settings.cache_clear()
    try:
        assert main(["verify", "--no-progress"]) == 2
    finally:
        get_settings.cache_clear()
    assert "ledger: LEDGER_DEFAULT_LEASE_SECONDS: '0' is not empty" in capsys.readouterr().err
