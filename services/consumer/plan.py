"""A batch's plan: its new events applied to the packs' states in memory, and the rows
that brings to write. Pure: no database work (the caller may have a COPY running on the
connection meanwhile, or plan a batch while the previous one commits).

The common case applies the new events to each pack's state and updates only the
columns events change, the snapshot every SNAPSHOT_EVERY events. A pack whose new events
come before what it already applied (a late event), or whose purchase just arrived (its
parked events wait in the ledger), is left to re-fold from all its ledger entries
(`refold`) and written whole.

A plan is data: the rows (`projections.read_models`) a test can inspect, the states
after it, the packs to re-fold; `formatted` is the same rows in the form the store
writes them (its COPY text), made by the store's `format` while planning.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field

from events.envelope import PurchasedEvent, StartedEvent
from projections.fold import apply_in_order, event_of, fold
from projections.read_models import (
    PackDynamics,
    PackRow,
    UsageRow,
    pack_dynamics,
    pack_row,
    usage_row,
)
from projections.state import LedgerEntry, PackState
from projections.terms import DEFAULT_TERMS, Terms

SNAPSHOT_EVERY = 32
"""A pack's stored snapshot is rewritten when its event count passes a multiple of this
(and whenever the pack is re-folded); in between, the columns alone are updated. A
process without the state in memory resumes from the snapshot and at most about this
many ledger entries (`projections.resume`)."""

Format = Callable[["Plan"], object]
"""The store's formatting of a plan's rows (`BatchStore.format`)."""
Join = Callable[[Sequence[object]], object]


@dataclass(slots=True)
class Loaded:
    """A batch's new entries by pack, with the packs locked and their states at hand."""

    by_pack: dict[int, list[LedgerEntry]]
    versions: dict[int, int]  # {pack: stored event_count} the plan starts from
    states: dict[int, PackState]  # current states (a pack missing here is re-folded)
    resumed: int = 0  # states resumed from a snapshot that lagged behind the ledger


NOTHING_LOADED = Loaded({}, {}, {})


@dataclass(slots=True)
class Plan:
    """What applying a batch in memory gave."""

    dynamics: list[PackDynamics] = field(default_factory=list)  # packs already stored
    new_usage: list[UsageRow] = field(default_factory=list)  # records the batch opens
    closed_usage: list[UsageRow] = field(default_factory=list)  # records it closes
    to_refold: list[int] = field(default_factory=list)
    parked: int = 0  # packs with events but no purchase yet: the ledger keeps them
    states: dict[int, PackState] = field(default_factory=dict)  # after the plan
    formatted: object | None = None  # the rows as the store writes them (None: not yet)

    @property
    def packs_updated(self) -> int:
        return len(self.dynamics)


@dataclass(slots=True)
class Refolded:
    """Packs re-folded from all their ledger entries: written whole."""

    packs: list[int] = field(default_factory=list)  # those that now have a read model
    pack_rows: list[PackRow] = field(default_factory=list)
    usage: list[UsageRow] = field(default_factory=list)  # every record of those packs
    states: dict[int, PackState] = field(default_factory=dict)


def by_pack(new_entries: Iterable[LedgerEntry]) -> dict[int, list[LedgerEntry]]:
    """New entries grouped by pack, in the given order."""
    grouped: dict[int, list[LedgerEntry]] = defaultdict(list)
    for entry in new_entries:
        grouped[event_of(entry).data.userPackId].append(entry)
    return grouped


def plan(loaded: Loaded, format: Format | None = None, *, terms: Terms = DEFAULT_TERMS) -> Plan:
    """Apply the new entries to the states in memory and list the rows to write (and
    `format` them). Packs whose entries come too late, or whose purchase just arrived,
    are left to re-fold."""
    result = Plan()
    versions = loaded.versions
    dynamics = result.dynamics
    new_usage = result.new_usage
    closed_usage = result.closed_usage
    for pack_id, entries in loaded.by_pack.items():
        state = loaded.states.get(pack_id)
        if state is None:
            if pack_id in versions or any(
                isinstance(entry.event, PurchasedEvent) for entry in entries
            ):
                result.to_refold.append(pack_id)
            else:
                result.parked += 1
            continue
        changes = apply_in_order(state, entries, terms=terms)
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
    if format is not None:
        result.formatted = format(result)
    return result


PLAN_STEP = 50
"""Entries planned between two yields to the event loop in `plan_stepwise`."""


async def plan_stepwise(
    loaded: Loaded,
    format: Format | None = None,
    join: Join | None = None,
    *,
    terms: Terms = DEFAULT_TERMS,
) -> Plan:
    """`plan`, yielding to the event loop every PLAN_STEP entries or so: it runs while
    the previous batch commits, whose statements must not wait for the whole plan."""
    parts: list[Plan] = []
    step: dict[int, list[LedgerEntry]] = {}
    size = 0
    for pack_id, entries in loaded.by_pack.items():
        step[pack_id] = entries
        size += len(entries)
        if size >= PLAN_STEP:
            parts.append(plan(Loaded(step, loaded.versions, loaded.states), format, terms=terms))
            step, size = {}, 0
            await asyncio.sleep(0)
    parts.append(plan(Loaded(step, loaded.versions, loaded.states), format, terms=terms))
    return merged(parts, join)


def merged(plans: Iterable[Plan], join: Join | None = None) -> Plan:
    """One plan of several, for disjoint sets of packs; formatted if they all are."""
    result = Plan()
    formatted: list[object] = []
    whole = True
    for part in plans:
        result.dynamics += part.dynamics
        result.new_usage += part.new_usage
        result.closed_usage += part.closed_usage
        result.to_refold += part.to_refold
        result.parked += part.parked
        result.states.update(part.states)
        if part.formatted is None:
            whole = False
        else:
            formatted.append(part.formatted)
    if whole and join is not None:
        result.formatted = join(formatted)
    return result


def joined(first: Loaded, second: Loaded) -> Loaded:
    """One `Loaded` of two, for disjoint sets of packs."""
    return Loaded(
        {**first.by_pack, **second.by_pack},
        {**first.versions, **second.versions},
        {**first.states, **second.states},
        first.resumed + second.resumed,
    )


def without(loaded: Loaded, planned: Plan, packs: Set[int]) -> tuple[Loaded, Plan]:
    """A plan and what it started from, less the given packs (their plan no longer
    holds: they are planned again). Its rows are formatted again when written."""
    if not packs:
        return loaded, planned
    kept = Loaded(
        {p: e for p, e in loaded.by_pack.items() if p not in packs},
        {p: v for p, v in loaded.versions.items() if p not in packs},
        {p: s for p, s in loaded.states.items() if p not in packs},
        loaded.resumed,
    )
    rest = Plan(
        [row for row in planned.dynamics if row.user_pack_id not in packs],
        [row for row in planned.new_usage if row.user_pack_id not in packs],
        [row for row in planned.closed_usage if row.user_pack_id not in packs],
        [p for p in planned.to_refold if p not in packs],
        planned.parked,  # parked packs have no plan to drop: they wait for a purchase
        {p: s for p, s in planned.states.items() if p not in packs},
    )
    return kept, rest


def refold(
    pack_ids: Sequence[int],
    entries: Mapping[int, list[LedgerEntry]],
    *,
    terms: Terms = DEFAULT_TERMS,
) -> Refolded:
    """Fold packs from all their ledger entries; those with no purchase yet stay parked."""
    result = Refolded()
    for pack_id in pack_ids:
        folded = fold(pack_id, entries.get(pack_id, []), terms=terms)
        if folded.state.purchase is None:
            continue
        result.packs.append(pack_id)
        result.pack_rows.append(pack_row(folded.state))
        result.states[pack_id] = folded.state
        result.usage.extend(usage_row(folded.state, record) for record in folded.records.values())
    return result
