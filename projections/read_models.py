"""The persisted read models, as plain rows derived from a pack's state.

Each row class is the declaration of its table's columns: a field is a column of that
name, and its `column` metadata gives the SQL type and whether the column changes after
it is first written (a pack's events after its purchase; a usage record's stop).
`services.store.projection_sql` derives every column list, staging table, UPDATE and COPY
format from these declarations, and `api.as_of` and `ledger verify` read them too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from projections.fold import exhausts_at, low_crossings
from projections.rules import exhaustion_notice_id, low_notice_id
from projections.snapshot import to_snapshot
from projections.state import PackState, UsageRecord


def column(sql_type: str, *, changes: bool = False, null_keeps: bool = False) -> Any:
    """A column of the row's table: its SQL type; `changes` if later events update it;
    `null_keeps` if an update with NULL keeps the stored value (a snapshot not due)."""
    return field(metadata={"sql": sql_type, "changes": changes, "null_keeps": null_keeps})


@dataclass(frozen=True, slots=True)
class PackRow:
    """A row of `packs`: the purchase's columns, then those its later events change."""

    user_pack_id: int = column("bigint")
    user_id: int = column("bigint")
    user_name: str | None = column("text")
    pack_name: str = column("text")
    duration_type: str = column("text")
    buy_datetime: datetime = column("timestamptz")
    activity_end_time: datetime | None = column("timestamptz")
    node_list: list[dict[str, Any]] = column("jsonb")
    granted: int = column("bigint", changes=True)
    charged: int = column("bigint", changes=True)
    open_starts: list[datetime] = column("timestamptz[]", changes=True)
    open_train_ids: list[int] = column("bigint[]", changes=True)
    # The lease end of each open session (NULL: no lease), beside `open_starts`: reads
    # count a session up to min(now, lease end), and not as running once it has passed.
    open_lease_ends: list[datetime | None] = column("timestamptz[]", changes=True)
    exhausts_at: datetime | None = column("timestamptz", changes=True)
    exhaustion_notice_id: str | None = column("text", changes=True)
    low_balance: list[dict[str, Any]] = column("jsonb", changes=True)
    snapshot: dict[str, Any] = column("jsonb", changes=True, null_keeps=True)
    event_count: int = column("bigint", changes=True)


# UsageRow and PackDynamics are built for every event the consumer applies: not frozen,
# since a frozen dataclass sets each field through object.__setattr__ (a 14-field
# UsageRow took 1.8 us to build frozen, 0.3 us not). Treat them as read-only all the same.
@dataclass(slots=True)
class UsageRow:
    """A row of `usage_records`: written when the session opens; a stop sets the columns
    marked `changes`."""

    log_id: int = column("bigint")
    user_pack_id: int = column("bigint")
    owner_user_id: int = column("bigint")
    train_id: int = column("bigint")
    train_name: str = column("text")
    user_id: int = column("bigint")
    user_name: str = column("text")
    start_time: datetime = column("timestamptz")
    end_time: datetime | None = column("timestamptz", changes=True)
    charged_seconds: int | None = column("bigint", changes=True)
    overrun_seconds: int | None = column("bigint", changes=True)
    stop_reason: str | None = column("text", changes=True)
    start_event_id: str = column("text")
    stop_event_id: str | None = column("text", changes=True)
    lease_seconds: int | None = column("integer")
    # Heartbeats move it; while the record is open, reads take a lease end that has
    # passed for its end (the session lapsed then, `rules.session_end`).
    lease_ends_at: datetime | None = column("timestamptz", changes=True)


@dataclass(slots=True)
class PackDynamics:
    """The columns of a pack's read model that its events after the purchase change, its
    times as `datetime.isoformat` text (each open session's start is formatted once, the
    exhaustion instant once for its column and its notice id)."""

    user_pack_id: int
    granted: int
    charged: int
    open_starts: list[str]
    open_train_ids: list[int]
    open_lease_ends: list[str | None]
    exhausts_at: str | None
    exhaustion_notice_id: str | None
    low_balance: list[dict[str, Any]]
    snapshot: dict[str, Any] | None  # None: the stored snapshot stays
    event_count: int


def changing(row: type) -> list[str]:
    """The key column, then the columns of `row`'s table that change after the first write."""
    names = [f.name for f in fields(row)]
    return [names[0], *(f.name for f in fields(row) if f.metadata["changes"])]


def sql_type(row: type, name: str) -> str:
    return str(next(f for f in fields(row) if f.name == name).metadata["sql"])


if [f.name for f in fields(PackDynamics)] != changing(PackRow):
    raise TypeError("PackDynamics must hold user_pack_id and PackRow's changing columns, in order")


def low_balance(state: PackState) -> list[dict[str, Any]]:
    """The `low_balance` column: each crossing under way or ahead, with its notice id (the
    notifier records the notice once `at` has passed, `services.store.notice_sql`)."""
    if not state.lows:  # activity packs, no threshold configured or none armed
        return []
    column = []
    for threshold, at in low_crossings(state):
        iso = at.isoformat()
        notice_id = low_notice_id(state.user_pack_id, threshold, at, iso)
        column.append({"threshold": threshold, "at": iso, "id": notice_id})
    return column


def pack_dynamics(state: PackState, *, with_snapshot: bool = True) -> PackDynamics:
    """What to update for a pack whose purchase columns are already stored."""
    exhaustion = exhausts_at(state)
    if exhaustion is None:
        exhaustion_text = notice_id = None
    else:
        exhaustion_text = exhaustion.isoformat()
        notice_id = exhaustion_notice_id(state.user_pack_id, exhaustion, exhaustion_text)
    return PackDynamics(
        user_pack_id=state.user_pack_id,
        granted=state.granted,
        charged=state.charged,
        open_starts=state.open_start_texts,
        open_train_ids=list(state.open_sessions),
        open_lease_ends=[None if end is None else end.isoformat() for end in state.open_lease_ends],
        exhausts_at=exhaustion_text,
        exhaustion_notice_id=notice_id,
        low_balance=low_balance(state),
        snapshot=to_snapshot(state, with_purchase=False) if with_snapshot else None,
        event_count=state.event_count,
    )


def pack_row(state: PackState) -> PackRow:
    purchase = state.purchase
    if purchase is None:
        raise ValueError(f"pack {state.user_pack_id} has no purchase: it has no read model")
    exhaustion = exhausts_at(state)
    return PackRow(
        user_pack_id=state.user_pack_id,
        user_id=purchase.user_id,
        user_name=purchase.user_name,
        pack_name=purchase.pack_name,
        duration_type=purchase.duration_type.value,
        buy_datetime=purchase.buy_datetime,
        activity_end_time=purchase.activity_end_time,
        node_list=[node.model_dump(mode="json") for node in purchase.nodes],
        granted=state.granted,
        charged=state.charged,
        open_starts=state.open_starts,
        open_train_ids=list(state.open_sessions),
        open_lease_ends=state.open_lease_ends,
        exhausts_at=exhaustion,
        exhaustion_notice_id=(
            None if exhaustion is None else exhaustion_notice_id(state.user_pack_id, exhaustion)
        ),
        low_balance=low_balance(state),
        snapshot=to_snapshot(state, with_purchase=False),
        event_count=state.event_count,
    )


def usage_row(state: PackState, record: UsageRecord) -> UsageRow:
    assert state.purchase is not None
    return UsageRow(
        log_id=record.log_id,
        user_pack_id=state.user_pack_id,
        owner_user_id=state.purchase.user_id,
        train_id=record.train_id,
        train_name=record.train_name,
        user_id=record.user_id,
        user_name=record.user_name,
        start_time=record.start_time,
        end_time=record.end_time,
        charged_seconds=record.charged_seconds,
        overrun_seconds=record.overrun_seconds,
        stop_reason=record.stop_reason,
        start_event_id=record.start_event_id,
        stop_event_id=record.stop_event_id,
        lease_seconds=record.lease_seconds,
        lease_ends_at=record.lease_ends_at,
    )
