"""`ledger verify`: the live read models against the pure fold of the ledger.

Every pack is recomputed from its ledger entries exactly as the consumer's re-fold does
(each envelope parsed and validated in full, then `projections.fold.fold`) and compared
with its `packs` row (purchase columns, granted, charged, open sessions, exhaustion, event
count, and the fold state kept in its snapshot) and with its `usage_records` (every
column). The ledger and the read models are read in one snapshot (a REPEATABLE READ
transaction), so a consumer committing meanwhile causes no false alarm.

The three streams (ledger entries, pack rows, usage rows) are read in pack order and
merged: memory holds one pack at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from events.parse import Refusal, parse_event
from projections.fold import FoldResult, fold
from projections.read_models import PackRow, UsageRow, pack_row, usage_row
from projections.resume import resume
from projections.snapshot import PurchaseColumns, from_snapshot
from projections.state import STATE_FIELDS, Kind, LedgerEntry, PackState
from projections.terms import DEFAULT_TERMS, Terms
from services.replay.rebuild import SyncConn, connect, progress_bar
from services.replay.stream import Row
from services.store import replay_sql as sql

PACK_FIELDS = [f.name for f in dataclasses.fields(PackRow)]
USAGE_FIELDS = [f.name for f in dataclasses.fields(UsageRow)]
# Compared column by column; the open sessions as (trainId, start) pairs; the snapshot
# as the fold state it holds.
_PACK_COMPARED = [
    name
    for name in PACK_FIELDS
    if name not in ("user_pack_id", "open_starts", "open_train_ids", "open_lease_ends", "snapshot")
]
# Every field the snapshot keeps, as `projections.state` declares them; the purchase
# is compared by the reference a snapshot keeps of it.
_SNAPSHOT_COMPARED = [name for name, _, kind in STATE_FIELDS if kind is not Kind.PURCHASE]


@dataclass(slots=True)
class VerifyReport:
    events: int = 0
    packs: int = 0  # packs with a purchase, per the ledger
    usage_records: int = 0  # per the ledger
    drifted_packs: set[int] = field(default_factory=set)
    differences: int = 0
    shown: list[str] = field(default_factory=list)  # the first differences, readable
    limit: int = 20

    @property
    def clean(self) -> bool:
        return self.differences == 0

    def add(self, pack_id: int, text: str) -> None:
        self.differences += 1
        self.drifted_packs.add(pack_id)
        if len(self.shown) < self.limit:
            self.shown.append(text)

    def summary(self) -> str:
        head = (
            f"checked {self.events:,} events, {self.packs:,} packs, "
            f"{self.usage_records:,} usage records: "
        )
        if self.clean:
            return head + "the read models match the ledger"
        more = self.differences - len(self.shown)
        lines = [
            head + f"{self.differences:,} differences in {len(self.drifted_packs):,} packs",
            *(f"  {line}" for line in self.shown),
        ]
        if more:
            lines.append(f"  ... and {more:,} more")
        return "\n".join(lines)


def verify(
    url: str,
    *,
    limit: int = 20,
    progress: bool = True,
    batch_size: int = 5_000,
    terms: Terms = DEFAULT_TERMS,
) -> VerifyReport:
    """Fold every pack from the ledger with `terms` (those the consumer folds with) and
    compare the read models and snapshots with the result."""
    report = VerifyReport(limit=limit)
    with connect(url, "ledger-verify") as conn:
        conn.execute("SET TimeZone = 'UTC'")
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
            total = int(row[0]) if row else 0
            with progress_bar(total, "verify", progress) as bar:
                entries = _PackStream(_stream(conn, "verify_ledger", sql.ENVELOPES, batch_size))
                packs = _PackStream(_stream(conn, "verify_packs", sql.LIVE_PACKS, batch_size))
                usage = _PackStream(_stream(conn, "verify_usage", sql.LIVE_USAGE, batch_size))
                _compare_all(entries, packs, usage, report, bar.update, terms)
    return report


def _stream(conn: SyncConn, name: str, query: str, batch_size: int) -> Iterator[Row]:
    with conn.cursor(name=name) as cur:
        cur.execute(query)
        while batch := cur.fetchmany(batch_size):
            yield from batch


class _PackStream:
    """Rows ordered by pack (the first column): `take(pack)` returns the rows of `pack`,
    `skipped(pack)` those of packs before it that nobody asked for."""

    def __init__(self, rows: Iterator[Row]) -> None:
        self._rows = rows
        self._next: Row | None = next(rows, None)

    def peek_pack(self) -> int | None:
        return None if self._next is None else int(self._next[0])

    def take_next_pack(self) -> tuple[int, list[Row]]:
        pack = self.peek_pack()
        assert pack is not None
        return pack, self.take(pack)

    def take(self, pack: int) -> list[Row]:
        rows: list[Row] = []
        while self._next is not None and self._next[0] == pack:
            rows.append(self._next)
            self._next = next(self._rows, None)
        return rows

    def skipped(self, pack: int | None) -> Iterator[tuple[int, list[Row]]]:
        """Packs before `pack` (every remaining one when None)."""
        while (head := self.peek_pack()) is not None and (pack is None or head < pack):
            yield self.take_next_pack()


def _compare_all(
    entries: _PackStream,
    packs: _PackStream,
    usage: _PackStream,
    report: VerifyReport,
    on_events: Callable[[int], object],
    terms: Terms,
) -> None:
    while (pack_id := entries.peek_pack()) is not None:
        _extra_rows(packs, usage, pack_id, report)
        _, rows = entries.take_next_pack()
        on_events(len(rows))
        report.events += len(rows)
        _compare_pack(pack_id, rows, packs.take(pack_id), usage.take(pack_id), report, terms)
    _extra_rows(packs, usage, None, report)


def _extra_rows(
    packs: _PackStream, usage: _PackStream, before: int | None, report: VerifyReport
) -> None:
    """Read-model rows of packs the ledger knows nothing about."""
    for pack_id, _ in packs.skipped(before):
        report.add(pack_id, f"pack {pack_id}: in the read model, but the ledger has no event of it")
    for pack_id, rows in usage.skipped(before):
        for row in rows:
            report.add(
                pack_id,
                f"usage record {row[1]} (pack {pack_id}): in the read model, "
                "but the ledger has no event of its pack",
            )


def _fold_rows(pack_id: int, rows: list[Row], terms: Terms) -> tuple[FoldResult, list[LedgerEntry]]:
    entries = []
    for _, position, envelope in rows:
        event = parse_event(envelope)
        if isinstance(event, Refusal):
            raise ValueError(f"ledger entry {position} no longer parses: {event.reason}")
        entries.append(LedgerEntry(int(position), event))
    return fold(pack_id, entries, terms=terms), entries


def _compare_pack(
    pack_id: int,
    ledger_rows: list[Row],
    pack_rows: list[Row],
    usage_rows: list[Row],
    report: VerifyReport,
    terms: Terms,
) -> None:
    result, entries = _fold_rows(pack_id, ledger_rows, terms)
    state = result.state
    live_usage = {int(row[1]): row[1:] for row in usage_rows}  # the pack id, then the columns
    if state.purchase is None:  # parked: no read model yet
        if pack_rows:
            report.add(pack_id, f"pack {pack_id}: in the read model, but not purchased yet")
        for log_id in live_usage:
            report.add(pack_id, f"usage record {log_id} (pack {pack_id}): pack not purchased yet")
        return
    report.packs += 1
    report.usage_records += len(result.records)
    if not pack_rows:
        report.add(pack_id, f"pack {pack_id}: missing from the read model")
    else:
        pack = dict(zip(PACK_FIELDS, pack_rows[0], strict=True))
        _compare_pack_row(pack_id, state, pack, entries, report, terms)
    for log_id, record in result.records.items():
        expected = usage_row(state, record)
        live = live_usage.pop(log_id, None)
        if live is None:
            report.add(pack_id, f"usage record {log_id} (pack {pack_id}): missing")
            continue
        for name, actual in zip(USAGE_FIELDS, live, strict=True):
            wanted = getattr(expected, name)
            if wanted != actual:
                report.add(
                    pack_id,
                    f"usage record {log_id} (pack {pack_id}): {name}: ledger says "
                    f"{_show(wanted)}, read model has {_show(actual)}",
                )
    for log_id in live_usage:
        report.add(pack_id, f"usage record {log_id} (pack {pack_id}): not in the ledger")


def _compare_pack_row(
    pack_id: int,
    state: PackState,
    live: dict[str, Any],
    entries: list[LedgerEntry],
    report: VerifyReport,
    terms: Terms,
) -> None:
    expected = pack_row(state)

    def differs(name: str, wanted: object, actual: object) -> None:
        report.add(
            pack_id,
            f"pack {pack_id}: {name}: ledger says {_show(wanted)}, read model has {_show(actual)}",
        )

    for name in _PACK_COMPARED:
        if getattr(expected, name) != live[name]:
            differs(name, getattr(expected, name), live[name])
    # The open sessions in any order (the arrays are parallel; a NULL lease end: none).
    wanted = (expected.open_train_ids, expected.open_starts, expected.open_lease_ends)
    actual = (live["open_train_ids"], live["open_starts"], live["open_lease_ends"])
    wanted_open = sorted(zip(*wanted, strict=True), key=_open_key)
    actual_open = sorted(zip(*actual, strict=False), key=_open_key)
    if len({len(column) for column in actual}) != 1 or wanted_open != actual_open:
        differs(
            "open sessions (trainId, start, lease end)",
            wanted_open,
            list(zip(*actual, strict=False)),
        )
    _compare_snapshot(state, live, entries, differs, terms)


def _open_key(session: tuple[int, datetime, datetime | None]) -> tuple[int, datetime]:
    return session[0], session[1]


def _compare_snapshot(
    state: PackState,
    live: dict[str, Any],
    entries: list[LedgerEntry],
    differs: Callable[[str, object, object], None],
    terms: Terms,
) -> None:
    """The state the consumer resumes from (the stored snapshot, brought up to date by
    the ledger entries above its max position) must be the fold's own."""
    columns = PurchaseColumns(**{f.name: live[f.name] for f in dataclasses.fields(PurchaseColumns)})
    try:
        snapshot = from_snapshot(live["snapshot"], columns)
    except (KeyError, TypeError, ValueError) as error:
        differs("snapshot", "a readable fold state", f"an unreadable one ({error})")
        return
    tail = [entry for entry in entries if entry.position > snapshot.max_position]
    stored = resume(snapshot, tail, state.event_count, terms=terms)
    if stored is None:
        differs(
            "snapshot",
            f"a state that its {len(tail)} later ledger entries bring to {state.event_count}",
            f"one of {snapshot.event_count} events that they do not",
        )
        return
    for name in _SNAPSHOT_COMPARED:
        if getattr(state, name) != getattr(stored, name):
            differs(f"snapshot.{name}", getattr(state, name), getattr(stored, name))
    assert state.purchase is not None
    if stored.purchase is None or (
        state.purchase.event_id,
        state.purchase.position,
        state.purchase.duration_seconds,
    ) != (stored.purchase.event_id, stored.purchase.position, stored.purchase.duration_seconds):
        differs("snapshot.purchase", state.purchase.event_id, stored.purchase)


def _show(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(item) for item in value) + ")"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 200 else text[:200] + "..."
