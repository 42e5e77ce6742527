"""Planning a batch while the previous one commits.

Most of a batch's Python work is the fold and the formatting of its rows (`plan.plan`);
most of its database work is appending, updating and committing. Done inside the batch's
own transaction, the two cores take turns. Planned ahead, they work at once:
while batch A commits, batch B's new events are found (on a second connection: the ids
the ledger holds, and those A appends), given positions, and applied to the states A's
plan left (copies) or to the states this process cached; B's transaction then only
checks and writes.

The check: a plan made ahead is used only if the batch before it committed on its first
attempt (the states it copied are then the stored ones; else the whole batch is planned
in its transaction), and only for the packs whose stored `event_count` under the lock
is the one the plan started from (`Ahead.stale`: another process wrote the others
meanwhile). Those others are planned again in the transaction, their states loaded from
the database (those taken from the cache are gone: the cache never holds a state a plan
changed before its commit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from projections.state import LedgerEntry, PackState, detached
from projections.terms import DEFAULT_TERMS, Terms
from services.consumer.parsing import Accepted, ParsedBatch
from services.consumer.plan import Loaded, Plan, by_pack, plan_stepwise
from services.consumer.state_cache import StateCache
from services.consumer.store_port import BatchStore, Numbered


@dataclass(frozen=True, slots=True)
class Planned:
    """What a batch's plan leaves for the next batch to plan on, should it commit."""

    ids: Set[str]  # the ids it appends to the ledger
    packs: Set[int]  # the packs of those events
    states: dict[int, PackState]  # their states after it (those it did not leave to re-fold)


NOTHING_IN_FLIGHT = Planned(frozenset(), frozenset(), {})


class Handoff:
    """From a batch in flight to the next: its `Planned` once its plan is made (None if it
    ended without one). Void when the batch needed a second attempt: the second may have
    drawn other positions, and the next batch must not use what it copied from the first."""

    def __init__(self) -> None:
        self._planned: asyncio.Future[Planned | None] = asyncio.get_running_loop().create_future()
        self.void = False

    def planned(self, planned: Planned) -> None:
        if not self._planned.done():
            self._planned.set_result(None if self.void else planned)

    def retried(self) -> None:
        self.void = True
        self.ended()

    def ended(self) -> None:
        if not self._planned.done():
            self._planned.set_result(None)

    async def wait(self) -> Planned | None:
        return await self._planned


@dataclass(slots=True)
class Ahead:
    """A batch planned before its transaction."""

    numbered: Numbered  # new events, their positions drawn
    grouped: dict[int, list[LedgerEntry]]  # the new entries by pack (planned or not)
    loaded: Loaded  # the planned packs: their entries, states and base counts
    plan: Plan

    @property
    def packs(self) -> set[int]:
        """The packs planned ahead."""
        return set(self.loaded.by_pack)

    def stale(self, versions: Mapping[int, int]) -> set[int]:
        """The planned packs whose stored event count (`versions`, read under the packs'
        locks) is no longer the one they were planned on: another writer moved them."""
        return {
            pack_id
            for pack_id, base in self.loaded.versions.items()
            if versions.get(pack_id) != base
        }


def new_entries(accepted: Iterable[Accepted], numbered: Numbered) -> list[LedgerEntry]:
    """The ledger entries of the events new to the ledger (an id repeated within the
    batch counts once: the first)."""
    first: dict[str, Accepted] = {}
    for item in accepted:
        first.setdefault(item.staged.event_id, item)
    return [LedgerEntry(position, first[staged.event_id].event) for position, staged in numbered]


async def plan_ahead(
    side: BatchStore,
    batch: ParsedBatch,
    before: Planned,
    cache: StateCache,
    *,
    terms: Terms = DEFAULT_TERMS,
) -> Ahead:
    """Find the batch's new events (those neither in the ledger nor appended by `before`,
    the batch in flight), draw their positions (on `side`, not the store of the batch in
    flight) and apply them to the states at hand: copies of `before`'s, else the
    cache's. Packs with no state at hand are left to the transaction."""
    staged = [item.staged for item in batch.accepted if item.staged.event_id not in before.ids]
    numbered = await side.claim_positions(staged)
    grouped = by_pack(new_entries(batch.accepted, numbered))
    planned = Loaded({}, {}, {})
    for pack_id, pack_entries in grouped.items():
        state: PackState | None
        if pack_id in before.states:
            state = detached(before.states[pack_id])
        elif pack_id in before.packs:
            continue  # re-folded or parked by the batch in flight: not at hand yet
        else:
            state = cache.take_any(pack_id)
            if state is None:
                continue
        planned.by_pack[pack_id] = pack_entries
        planned.versions[pack_id] = state.event_count
        planned.states[pack_id] = state
    plan = await plan_stepwise(planned, side.format, side.join, terms=terms)
    return Ahead(numbered, grouped, planned, plan)
