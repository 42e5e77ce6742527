"""A pack's state survives its JSON snapshot: the next events apply to it as to the original."""

from __future__ import annotations

import json
from datetime import timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings

from events.envelope import AnyPackEvent
from projections.fold import FoldResult, apply, exhausts_at, remaining_at, status_at
from projections.snapshot import VERSION, from_snapshot, to_snapshot
from projections.state import LedgerEntry, PackState, UsageRecord
from tests.support.examples import examples
from tests.unit.event_factory import (
    PACK,
    adjusted,
    at,
    describe,
    fold_arrivals,
    purchased,
    seconds,
    started,
    stopped,
)
from tests.unit.test_fold_properties import History, by_pack, histories, in_order, ledger

SHANGHAI = timezone(timedelta(hours=8))


def round_trip(state: PackState) -> PackState:
    return from_snapshot(json.loads(json.dumps(to_snapshot(state))))


STATES: dict[str, list[AnyPackEvent]] = {
    "purchased only": [purchased(0, seconds=100)],
    "activity pack with end and buy time": [
        purchased(0, activity=True, activity_end=500, buy=-30),
        started(5, 1),
    ],
    "open sessions, fractional and in another offset": [
        purchased(0, seconds=1000),
        started(0.25, 1),
        started(at(10.5).astimezone(SHANGHAI), 2),
        started(12, 3),
        stopped(20, 3),
    ],
    "audit of every kind": [
        purchased(0, seconds=1000),
        purchased(1, seconds=5),
        started(2, 1),
        started(3, 1),
        stopped(4, 2),
        adjusted(5, -7),
    ],
    "exhaustion under way": [
        purchased(0, seconds=100),
        started(0, 1),
        started(10, 2),
        stopped(60, 1),
    ],
    "exhaustion ahead": [purchased(0, seconds=100), started(0, 1), started(10, 2)],
    "start on an exhausted pack": [
        purchased(0, seconds=10),
        started(0, 1),
        stopped(20, 1),
        started(30, 2),
    ],
    "parked, no purchase": [started(3, 1), adjusted(4, 10)],
}


@pytest.mark.parametrize("events", [pytest.param(v, id=k) for k, v in STATES.items()])
def test_round_trip_keeps_the_state(events: list[AnyPackEvent]) -> None:
    state = fold_arrivals(events).state
    restored = round_trip(state)
    assert restored == state
    assert restored.open_sessions.keys() == state.open_sessions.keys()
    for train, record in state.open_sessions.items():
        assert restored.open_sessions[train] == record
        assert restored.open_sessions[train].start_time.utcoffset() == (
            record.start_time.utcoffset()
        )
    if state.purchase is not None:
        assert exhausts_at(restored) == exhausts_at(state)
        for now in (0, 30, 55, 60, 1000):
            assert remaining_at(restored, at(now)) == remaining_at(state, at(now))
            assert status_at(restored, at(now)) == status_at(state, at(now))


def test_snapshot_document_is_stable() -> None:
    state = fold_arrivals(STATES["audit of every kind"]).state
    document = to_snapshot(state)
    assert to_snapshot(from_snapshot(document)) == document
    assert document["v"] == VERSION
    assert document["audit"] == {
        "conflictingPurchases": [STATES["audit of every kind"][1].id],
        "duplicateStarts": [STATES["audit of every kind"][3].id],
        "orphanStops": [STATES["audit of every kind"][4].id],
        "orphanHeartbeats": [],
    }


def test_exhaustion_marker_survives() -> None:
    state = fold_arrivals(STATES["exhaustion under way"]).state
    assert seconds(state.exhausted_since) == 55
    restored = round_trip(state)
    assert seconds(restored.exhausted_since) == 55
    assert seconds(exhausts_at(restored)) == 55
    document = to_snapshot(state)
    assert document["exhaustedSince"] == at(55).isoformat()
    assert document["lastTime"] == at(60).isoformat()
    assert [item["trainId"] for item in document["open"]] == [2]
    assert document["charged"] == 60


def test_closed_sessions_are_not_in_the_snapshot() -> None:
    state = fold_arrivals(STATES["open sessions, fractional and in another offset"]).state
    document = to_snapshot(state)
    assert sorted(item["trainId"] for item in document["open"]) == [1, 2]
    assert document["charged"] == 8


def test_snapshot_is_a_value_not_a_view() -> None:
    """Applying more events to a state must not change a snapshot taken before."""
    state = fold_arrivals(STATES["audit of every kind"]).state
    document = to_snapshot(state)
    frozen = json.loads(json.dumps(document))
    changes: dict[int, UsageRecord] = {}
    for position, event in enumerate(
        [stopped(10, 9), started(11, 1), purchased(12), started(13, 4)], start=100
    ):
        apply(state, LedgerEntry(position, event), changes)
    assert document == frozen


def test_restored_state_is_independent() -> None:
    document = to_snapshot(fold_arrivals(STATES["audit of every kind"]).state)
    frozen = json.loads(json.dumps(document))
    restored = from_snapshot(document)
    apply(restored, LedgerEntry(100, stopped(10, 9)), {})
    apply(restored, LedgerEntry(101, stopped(11, 1)), {})
    assert document == frozen


def test_version_2_documents_are_still_read() -> None:
    """Rows written while the fold also kept the last applied position."""
    state = fold_arrivals(STATES["open sessions, fractional and in another offset"]).state
    document = to_snapshot(state)
    document["v"] = 2
    document["lastPosition"] = 1
    restored = from_snapshot(json.loads(json.dumps(document)))
    assert restored.max_position == state.max_position
    assert restored.open_sessions == state.open_sessions


def test_version_1_documents_are_still_read() -> None:
    """Rows written before maxPosition existed: the last position stands in for it."""
    state = fold_arrivals(STATES["open sessions, fractional and in another offset"]).state
    document = to_snapshot(state)
    document["v"] = 1
    document["lastPosition"] = state.max_position - 1  # version 1 kept the last in fold order
    del document["maxPosition"]
    restored = from_snapshot(json.loads(json.dumps(document)))
    assert restored.max_position == state.max_position - 1
    assert restored.open_sessions == state.open_sessions
    assert restored.event_count == state.event_count


def test_max_position_is_the_largest_applied() -> None:
    """Not the last in fold order: a late event with a larger position counts."""
    state = fold_arrivals(STATES["open sessions, fractional and in another offset"]).state
    apply(state, LedgerEntry(500, started(30, 7)), {})
    assert state.max_position == 500
    assert round_trip(state).max_position == 500


@pytest.mark.parametrize("version", [None, 0, 5, "2"])
def test_unknown_version_is_refused(version: Any) -> None:
    document = to_snapshot(fold_arrivals(STATES["purchased only"]).state)
    document["v"] = version
    with pytest.raises(ValueError, match="snapshot version"):
        from_snapshot(document)


def _continue(result: FoldResult, state: PackState, later: list[AnyPackEvent]) -> dict[str, Any]:
    records = {k: r for k, r in result.records.items()}
    for position, event in enumerate(later, start=1000):
        apply(state, LedgerEntry(position, event), records)
    return describe(state, records, [100, 200, 300])


@pytest.mark.parametrize("name", ["exhaustion ahead", "exhaustion under way"])
def test_next_events_apply_alike_after_a_round_trip(name: str) -> None:
    later: list[AnyPackEvent] = [
        adjusted(70, 30),
        stopped(80, 2),
        started(90, 1),
        adjusted(95, -200),
        stopped(150, 1),
    ]
    direct = fold_arrivals(STATES[name])
    expected = _continue(direct, direct.state, later)
    again = fold_arrivals(STATES[name])
    got = _continue(again, round_trip(again.state), later)
    assert got == expected


@settings(max_examples=examples(100), deadline=None)
@given(histories())
def test_round_trip_of_any_folded_state(history: History) -> None:
    for pack, entries in by_pack(ledger(in_order(history.events))).items():
        from projections.fold import fold

        state = fold(pack, entries).state
        restored = round_trip(state)
        assert restored == state
        assert to_snapshot(restored) == json.loads(json.dumps(to_snapshot(state)))
        assert exhausts_at(restored) == exhausts_at(state)


def test_pack_id_is_kept() -> None:
    assert round_trip(PackState(PACK)).user_pack_id == PACK
