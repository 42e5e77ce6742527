"""Brings the read models of the packs touched by a batch up to date, inside its transaction.

The common case applies the new events to each pack's state (from the in-memory cache,
else from its stored snapshot) and updates only the columns events change. A pack whose
new events come before what it already applied (a late event), or whose purchase just
arrived (its parked events wait in the ledger), is re-folded from all its ledger entries
and written whole.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from events.envelope import PurchasedEvent
from events.parse import parse_object
from projections.fold import applies_in_order, apply, event_of, fold
from projections.read_models import (
    PackDynamics,
    PackRow,
    UsageRow,
    pack_dynamics,
    pack_row,
    usage_row,
)
from projections.state import LedgerEntry, PackState, UsageRecord
from services.consumer.state_cache import StateCache
from services.store import ledger_sql, projection_sql
from services.store.connection import Conn


@dataclass(slots=True)
class ProjectionOutcome:
    packs_written: int = 0
    packs_refolded: int = 0
    packs_parked: int = 0
    states: dict[int, PackState] = field(default_factory=dict)  # to cache once committed


async def project(
    conn: Conn,
    new_entries: Iterable[LedgerEntry],
    cache: StateCache | None = None,
    suffix: str = "",
) -> ProjectionOutcome:
    by_pack: dict[int, list[LedgerEntry]] = defaultdict(list)
    for entry in new_entries:
        by_pack[event_of(entry).data.userPackId].append(entry)
    outcome = ProjectionOutcome()
    if not by_pack:
        return outcome

    versions = await projection_sql.lock_versions(conn, list(by_pack), suffix)
    states: dict[int, PackState] = {}
    for pack_id, count in versions.items():
        cached = cache.take(pack_id, count) if cache is not None else None
        if cached is not None:
            states[pack_id] = cached
    missing = [pack_id for pack_id in versions if pack_id not in states]
    states.update(await projection_sql.load_states(conn, missing, suffix))

    dynamics: list[PackDynamics] = []
    usage_rows: dict[int, UsageRow] = {}
    to_refold: list[int] = []
    for pack_id, entries in by_pack.items():
        state = states.get(pack_id)
        if state is None:
            if any(isinstance(entry.event, PurchasedEvent) for entry in entries):
                to_refold.append(pack_id)
            else:
                outcome.packs_parked += 1  # no purchase yet: the ledger keeps them
            continue
        changes = _apply_all(state, entries)
        if changes is None:
            to_refold.append(pack_id)
            continue
        dynamics.append(pack_dynamics(state))
        outcome.states[pack_id] = state
        for record in changes.values():
            usage_rows[record.log_id] = usage_row(state, record)

    full_rows: list[PackRow] = []
    refolded = await _refold(conn, to_refold, full_rows, usage_rows, outcome.states)
    outcome.packs_refolded = len(refolded)
    await projection_sql.write_pack_dynamics(conn, dynamics, suffix)
    await projection_sql.write_packs(conn, full_rows, suffix)
    await projection_sql.replace_usage(conn, refolded, list(usage_rows.values()), suffix)
    outcome.packs_written = len(dynamics) + len(full_rows)
    return outcome


def _apply_all(state: PackState, entries: list[LedgerEntry]) -> dict[int, UsageRecord] | None:
    """Apply entries in fold order; None when one of them comes too late for that."""
    changes: dict[int, UsageRecord] = {}
    for entry in sorted(entries, key=lambda e: (event_of(e).time, e.position)):
        if not applies_in_order(state, entry):
            return None
        apply(state, entry, changes)
    return changes


async def _refold(
    conn: Conn,
    pack_ids: list[int],
    pack_rows: list[PackRow],
    usage_rows: dict[int, UsageRow],
    states: dict[int, PackState],
) -> list[int]:
    """Re-fold packs from the ledger; returns the ids of those that now have a read model."""
    if not pack_ids:
        return []
    entries: dict[int, list[LedgerEntry]] = defaultdict(list)
    for pack_id, position, envelope in await ledger_sql.load_pack_entries(conn, pack_ids):
        entries[pack_id].append(LedgerEntry(position, parse_object(envelope)))
    refolded: list[int] = []
    for pack_id in pack_ids:
        result = fold(pack_id, entries[pack_id])
        if result.state.purchase is None:
            continue
        refolded.append(pack_id)
        pack_rows.append(pack_row(result.state))
        states[pack_id] = result.state
        for record in result.records.values():
            usage_rows[record.log_id] = usage_row(result.state, record)
    return refolded
