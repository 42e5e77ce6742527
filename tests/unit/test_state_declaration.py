"""Pack state's persisted form is declared once (`projections.state`, `read_models`):
the copy for a plan, the snapshot and the SQL of the read models all follow it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta

import pytest

from projections.read_models import PackDynamics, PackRow, UsageRow, changing
from projections.snapshot import from_snapshot, to_snapshot
from projections.state import (
    STATE_FIELDS,
    Audit,
    Kind,
    PackState,
    UsageRecord,
    check_declared,
    detached,
    kept,
)
from services.store import as_of_sql, projection_sql
from tests.unit.event_factory import fold_arrivals, purchased, started, stopped


def _busy_state() -> PackState:
    """A state in which every persisted field differs from its default."""
    state = fold_arrivals(
        [
            purchased(0, seconds=10),
            purchased(5, seconds=99),  # a conflict
            started(1, 1),
            started(2, 1),  # a duplicate
            stopped(3, 7),  # an orphan
            stopped(3.5, 1),  # charged
            started(4, 2),
        ]
    ).state
    state.adjustments = 5
    state.exhausted_since = datetime(2024, 5, 1, tzinfo=UTC)
    state.lows = ((60, True, ()), (600, False, (datetime(2024, 5, 1, 0, 0, 1, 5, tzinfo=UTC),)))
    return state


def test_every_persisted_field_of_the_busy_state_is_set() -> None:
    state, blank = _busy_state(), PackState(0)
    for name, _, _ in STATE_FIELDS:
        assert getattr(state, name) != getattr(blank, name), name


def test_detached_copies_every_field_and_shares_nothing_that_changes_in_place() -> None:
    state = _busy_state()
    twin = detached(state)
    for f in fields(PackState):
        assert getattr(twin, f.name) == getattr(state, f.name), f.name
    assert twin.open_sessions is not state.open_sessions
    for train, record in state.open_sessions.items():
        assert twin.open_sessions[train] == record
        assert twin.open_sessions[train] is not record
    assert twin.audit is not state.audit
    for f in fields(Audit):
        assert getattr(twin.audit, f.name) is not getattr(state.audit, f.name)


def test_the_snapshot_round_trip_keeps_every_declared_field() -> None:
    state = _busy_state()
    restored = from_snapshot(json.loads(json.dumps(to_snapshot(state))))
    for name, _, kind in STATE_FIELDS:
        assert getattr(restored, name) == getattr(state, name), name
        assert kind is not Kind.DERIVED


def test_the_snapshot_keys_are_the_declared_ones() -> None:
    document = to_snapshot(_busy_state())
    assert set(document) == {"v"} | {key for _, key, _ in STATE_FIELDS}


def test_a_field_without_a_declaration_is_refused() -> None:
    @dataclass
    class Grown:
        kept_one: int = field(default=0, metadata=kept("keptOne"))
        forgotten: int = 0

    with pytest.raises(TypeError, match="forgotten"):
        check_declared(Grown)


def test_pack_dynamics_are_the_changing_columns_of_a_pack_row() -> None:
    assert [f.name for f in fields(PackDynamics)] == changing(PackRow)


def test_sql_column_lists_follow_the_row_declarations() -> None:
    assert projection_sql.PACK_COLUMNS.split(", ") == [f.name for f in fields(PackRow)]
    assert projection_sql.USAGE_COLUMNS.split(", ") == [f.name for f in fields(UsageRow)]
    assert projection_sql.CLOSE_COLUMNS.split(", ") == changing(UsageRow)
    assert list(as_of_sql.PACK_COLUMNS) == [f.name for f in fields(PackRow)]
    for name in changing(PackRow)[1:]:
        assert f"{name} = " in projection_sql.UPDATE_DYNAMICS
        assert f"{name} = excluded.{name}" in projection_sql.UPSERT_PACKS
    for name in changing(UsageRow)[1:]:
        assert f"{name} = s.{name}" in projection_sql.CLOSE_USAGE


def test_copy_text_of_a_usage_record_follows_its_columns() -> None:
    start = datetime(2024, 5, 1, 8, tzinfo=UTC)
    row = UsageRow(
        1, 2, 3, 4, "a\tb", 5, "u", start, start + timedelta(seconds=9), 9, 0, None, "e1", "e2",
        60, start + timedelta(seconds=60),
    )  # fmt: skip
    assert projection_sql.usage_fields(row) == (
        "1", "2", "3", "4", "a\\tb", "5", "u", start.isoformat(),
        (start + timedelta(seconds=9)).isoformat(), "9", "0", "\\N", "e1", "e2",
        "60", (start + timedelta(seconds=60)).isoformat(),
    )  # fmt: skip
    open_record = UsageRecord(1, 4, "t", 5, "u", start, "e1")
    assert open_record.is_open
