"""Brings the read models of the packs touched by a batch up to date, inside its transaction.

The common case applies the new events to each pack's state (from the in-memory cache,
else from its stored snapshot and the ledger entries the snapshot lags behind) and
updates only the columns events change, the snapshot every SNAPSHOT_EVERY events. A pack
whose new events come before what it already applied (a late event), or whose purchase
just arrived (its parked events wait in the ledger), is re-folded from all its ledger
entries and written whole.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from events.envelope import PurchasedEvent, StartedEvent
from events.parse import parse_stored
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


@dataclass(slots=True)
class Loaded:
    """A batch's new entries by pack, with the packs locked and their states at hand."""

    by_pack: dict[int, list[LedgerEntry]]
    versions: dict[int, int]  # {pack: stored event_count} of the packs with a read model
    states: dict[int, PackState]  # current states (a pack missing here is re-folded)
    resumed: int = 0


@dataclass(slots=True)
class Plan:
    """What applying a batch in memory gave: the rows to write (as COPY text), the packs
    to re-fold."""

    packs_updated: int = 0
    dynamics_lines: bytes = b""
    new_usage_lines: bytes = b""
    closed_usage_lines: bytes = b""
    to_refold: list[int] = field(default_factory=list)
    parked: int = 0
    states: dict[int, PackState] = field(default_factory=dict)


def by_pack(new_entries: Iterable[LedgerEntry]) -> dict[int, list[LedgerEntry]]:
    """New entries grouped by pack, in the given order."""
    grouped: dict[int, list[LedgerEntry]] = defaultdict(list)
    for entry in new_entries:
        grouped[event_of(entry).data.userPackId].append(entry)
    return grouped


async def bring(
    conn: Conn,
    grouped: dict[int, list[LedgerEntry]],
    versions: dict[int, int],
    cache: StateCache | None = None,
    suffix: str = "",
) -> Loaded:
    """The states of the packs of `grouped`, already locked (`versions`: their stored
    event counts): from the in-memory cache while current, else from the stored
    snapshot and the ledger entries it lags behind."""
    loaded = Loaded(grouped, versions, {})
    states = loaded.states
    for pack_id in grouped:
        count = versions.get(pack_id)
        cached = cache.take(pack_id, count) if cache is not None and count is not None else None
        if cached is not None:
            states[pack_id] = cached
    missing = [pack_id for pack_id in grouped if pack_id in versions and pack_id not in states]
    if missing:
        in_batch = {entry.position for entries in grouped.values() for entry in entries}
        stored = await projection_sql.load_states(conn, missing, suffix)
        ready, loaded.resumed = await _resume(conn, stored, versions, in_batch)
        states.update(ready)
    return loaded


def plan(loaded: Loaded) -> Plan:
    """Apply the new entries to the states in memory and format the rows to write. No
    database work: the caller may have a COPY running on the connection meanwhile. Packs
    whose entries come too late, or whose purchase just arrived, are left to re-fold."""
    result = Plan()
    versions = loaded.versions
    dynamics: list[PackDynamics] = []
    new_usage: list[UsageRow] = []
    closed_usage: list[UsageRow] = []
    for pack_id, entries in loaded.by_pack.items():
        state = loaded.states.get(pack_id)
        if state is None:
            if pack_id in versions or any(
                isinstance(entry.event, PurchasedEvent) for entry in entries
            ):
                result.to_refold.append(pack_id)
            else:
                result.parked += 1  # no purchase yet: the ledger keeps them
            continue
        changes = apply_in_order(state, entries)
        if changes is None:
            result.to_refold.append(pack_id)
            continue
        snapshot_due = versions[pack_id] // SNAPSHOT_EVERY != state.event_count // SNAPSHOT_EVERY
        dynamics.append(pack_dynamics(state, with_snapshot=snapshot_due))
        result.states[pack_id] = state
        opened = {event_of(e).id for e in entries if isinstance(e.event, StartedEvent)}
        for record in changes.values():
            rows = new_usage if record.start_event_id in opened else closed_usage
            rows.append(usage_row(state, record))
    result.packs_updated = len(dynamics)
    result.dynamics_lines = projection_sql.dynamics_lines(dynamics)
    result.new_usage_lines = projection_sql.usage_lines(new_usage)
    result.closed_usage_lines = projection_sql.close_lines(closed_usage)
    return result


PLAN_STEP = 50
"""Entries planned between two yields to the event loop in `plan_stepwise`."""


async def plan_stepwise(loaded: Loaded) -> Plan:
    """`plan`, yielding to the event loop every PLAN_STEP entries or so: it runs while
    the previous batch commits, whose statements must not wait for the whole plan."""
    parts: list[Plan] = []
    step: dict[int, list[LedgerEntry]] = {}
    size = 0
    for pack_id, entries in loaded.by_pack.items():
        step[pack_id] = entries
        size += len(entries)
        if size >= PLAN_STEP:
            parts.append(plan(Loaded(step, loaded.versions, loaded.states)))
            step, size = {}, 0
            await asyncio.sleep(0)
    parts.append(plan(Loaded(step, loaded.versions, loaded.states)))
    return merged(parts)


def merged(plans: Iterable[Plan]) -> Plan:
    """One plan of several, for disjoint sets of packs."""
    result = Plan()
    dynamics: list[bytes] = []
    new_usage: list[bytes] = []
    closed_usage: list[bytes] = []
    for part in plans:
        result.packs_updated += part.packs_updated
        dynamics.append(part.dynamics_lines)
        new_usage.append(part.new_usage_lines)
        closed_usage.append(part.closed_usage_lines)
        result.to_refold += part.to_refold
        result.parked += part.parked
        result.states.update(part.states)
    result.dynamics_lines = b"".join(dynamics)
    result.new_usage_lines = b"".join(new_usage)
    result.closed_usage_lines = b"".join(closed_usage)
    return result


def joined(first: Loaded, second: Loaded) -> Loaded:
    """One `Loaded` of two, for disjoint sets of packs."""
    return Loaded(
        {**first.by_pack, **second.by_pack},
        {**first.versions, **second.versions},
        {**first.states, **second.states},
        first.resumed + second.resumed,
    )


async def write(conn: Conn, loaded: Loaded, planned: Plan, suffix: str = "") -> ProjectionOutcome:
    """Re-fold what `plan` left, then write every changed row."""
    outcome = ProjectionOutcome(
        packs_parked=planned.parked, packs_resumed=loaded.resumed, states=planned.states
    )
    full_rows: list[PackRow] = []
    refolded_usage: list[UsageRow] = []
    known = {
        entry.position: entry for pack_id in planned.to_refold for entry in loaded.by_pack[pack_id]
    }
    refolded = await _refold(
        conn, planned.to_refold, known, full_rows, refolded_usage, outcome.states
    )
    outcome.packs_refolded = len(refolded)
    await projection_sql.write_pack_dynamics(conn, planned.dynamics_lines, suffix)
    await projection_sql.write_packs(conn, full_rows, suffix)
    new_lines = planned.new_usage_lines + projection_sql.usage_lines(refolded_usage)
    await projection_sql.write_usage(conn, refolded, new_lines, planned.closed_usage_lines, suffix)
    outcome.packs_written = planned.packs_updated + len(full_rows)
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
            tails[pack_id].append(LedgerEntry(position, parse_stored(envelope)))
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
        if envelope is None:
            entries[pack_id].append(known[position])
        else:
            entries[pack_id].append(LedgerEntry(position, parse_stored(envelope)))
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
