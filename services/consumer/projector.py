"""Brings the read models of the packs touched by a batch up to date, inside its transaction.

The common case applies the new events to each pack's state (from the in-memory cache,
else from its stored snapshot and the ledger entries the snapshot lags behind) and
updates only the columns events change, the snapshot every SNAPSHOT_EVERY events. A pack
whose new events come before what it already applied (a late event), or whose purchase
just arrived (its parked events wait in the ledger), is re-folded from all its ledger
entries and written whole.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from events.envelope import PurchasedEvent, StartedEvent
from events.parse import parse_object
from projections.fold import apply_in_order, event_of, fold
from projections.read_models import (
    PackDynamics,
    PackRow,
    UsageRow,
    pack_dynamics,
    pack_row,
    usage_row,
)
from projections.resume import resume
from projections.state import LedgerEntry, PackState
from services.consumer.state_cache import StateCache
from services.store import ledger_sql, projection_sql
from services.store.connection import Conn

SNAPSHOT_EVERY = 32
"""A pack's stored snapshot is rewritten when its event count passes a multiple of this
(and whenever the pack is re-folded); in between, the columns alone are updated. A
process without the state in memory resumes from the snapshot and at most about this
many ledger entries (`projections.resume`)."""


@dataclass(slots=True)
class ProjectionOutcome:
    packs_written: int = 0
    packs_refolded: int = 0
    packs_parked: int = 0
    packs_resumed: int = 0  # from a snapshot that lagged behind the ledger
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
    if missing:
        in_batch = {entry.position for entries in by_pack.values() for entry in entries}
        stored = await projection_sql.load_states(conn, missing, suffix)
        ready, outcome.packs_resumed = await _resume(conn, stored, versions, in_batch)
        states.update(ready)

    dynamics: list[PackDynamics] = []
    new_usage: list[UsageRow] = []
    closed_usage: list[UsageRow] = []
    to_refold: list[int] = []
    for pack_id, entries in by_pack.items():
        state = states.get(pack_id)
        if state is None:
            if pack_id in versions or any(
                isinstance(entry.event, PurchasedEvent) for entry in entries
            ):
                to_refold.append(pack_id)
            else:
                outcome.packs_parked += 1  # no purchase yet: the ledger keeps them
            continue
        changes = apply_in_order(state, entries)
        if changes is None:
            to_refold.append(pack_id)
            continue
        snapshot_due = versions[pack_id] // SNAPSHOT_EVERY != state.event_count // SNAPSHOT_EVERY
        dynamics.append(pack_dynamics(state, with_snapshot=snapshot_due))
        outcome.states[pack_id] = state
        opened = {event_of(e).id for e in entries if isinstance(e.event, StartedEvent)}
        for record in changes.values():
            rows = new_usage if record.start_event_id in opened else closed_usage
            rows.append(usage_row(state, record))

    full_rows: list[PackRow] = []
    known = {entry.position: entry for pack_id in to_refold for entry in by_pack[pack_id]}
    refolded = await _refold(conn, to_refold, known, full_rows, new_usage, outcome.states)
    outcome.packs_refolded = len(refolded)
    await projection_sql.write_pack_dynamics(conn, dynamics, suffix)
    await projection_sql.write_packs(conn, full_rows, suffix)
    await projection_sql.write_usage(conn, refolded, new_usage, closed_usage, suffix)
    outcome.packs_written = len(dynamics) + len(full_rows)
    return outcome


async def _resume(
    conn: Conn,
    stored: dict[int, PackState],
    versions: dict[int, int],
    in_batch: set[int],
) -> tuple[dict[int, PackState], int]:
    """The states as of the stored event counts, and how many of them were resumed from
    a lagging snapshot; a pack missing from the result (its snapshot and ledger do not
    add up) is re-folded by the caller."""
    lagging = {
        pack_id: state.max_position
        for pack_id, state in stored.items()
        if state.event_count != versions[pack_id]
    }
    ready = {pack_id: state for pack_id, state in stored.items() if pack_id not in lagging}
    tails: dict[int, list[LedgerEntry]] = {pack_id: [] for pack_id in lagging}
    for pack_id, position, envelope in await ledger_sql.load_pack_tails(conn, lagging):
        if position not in in_batch:  # this batch's own entries are applied next
            tails[pack_id].append(LedgerEntry(position, parse_object(envelope)))
    resumed = 0
    for pack_id, tail in tails.items():
        state = resume(stored[pack_id], tail, versions[pack_id])
        if state is not None:
            ready[pack_id] = state
            resumed += 1
    return ready, resumed


async def _refold(
    conn: Conn,
    pack_ids: list[int],
    known: dict[int, LedgerEntry],
    pack_rows: list[PackRow],
    usage_rows: list[UsageRow],
    states: dict[int, PackState],
) -> list[int]:
    """Re-fold packs from the ledger (the entries `known` by position are not parsed
    again); returns the ids of those that now have a read model."""
    if not pack_ids:
        return []
    entries: dict[int, list[LedgerEntry]] = defaultdict(list)
    rows = await ledger_sql.load_pack_entries(conn, pack_ids, list(known))
    for pack_id, position, envelope in rows:
        entry = known.get(position) if envelope is None else None
        entries[pack_id].append(entry or LedgerEntry(position, parse_object(envelope)))
    refolded: list[int] = []
    for pack_id in pack_ids:
        result = fold(pack_id, entries[pack_id])
        if result.state.purchase is None:
            continue
        refolded.append(pack_id)
        pack_rows.append(pack_row(result.state))
        states[pack_id] = result.state
        usage_rows.extend(usage_row(result.state, record) for record in result.records.values())
    return refolded
