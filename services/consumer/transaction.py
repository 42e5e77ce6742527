"""One batch, one transaction: the steps, the same whether the batch was planned ahead
or not (planning ahead only moves *when* most of the plan is made, `ahead.py`).

1. lock the batch's partitions (a former and a new owner never write at once);
2. keep its refused records;
3. its new events: the ids the ledger does not hold, with positions (drawn ahead, or now);
4. lock their packs and read each one's stored `event_count`;
5. check the plan made ahead: the packs whose base count still holds keep it, the others
   (another writer moved them) are planned again here with everything not planned yet;
6. bring the states of those: from the cache while its `event_count` matches, else from
   the stored snapshot and the ledger entries it lags behind;
7. append the new events, and plan meanwhile (the server appends, this process folds);
8. re-fold the packs with a late event or a purchase just arrived, from their ledger;
9. write the rows, store the partitions' next offsets, announce the changed packs (the
   live stream hears of them on commit); commit; cache the states.

Only the store port (`store_port.BatchStore`) touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping

from projections.fold import exhausts_at, low_crossings
from projections.resume import resume
from projections.state import LedgerEntry, PackState
from projections.terms import DEFAULT_TERMS, Terms
from services.consumer.ahead import Ahead, Handoff, Planned, new_entries
from services.consumer.outcome import BatchOutcome
from services.consumer.parsing import ParsedBatch
from services.consumer.plan import (
    NOTHING_LOADED,
    Loaded,
    Plan,
    Refolded,
    by_pack,
    joined,
    merged,
    plan,
)
from services.consumer.plan import refold as refold_packs
from services.consumer.plan import without as plan_without
from services.consumer.state_cache import StateCache
from services.consumer.store_port import BatchStore


class BatchTransaction:
    def __init__(
        self, store: BatchStore, cache: StateCache | None = None, *, terms: Terms = DEFAULT_TERMS
    ) -> None:
        self.store = store
        self.cache = cache
        self.terms = terms  # the fold's settings: those the cached states were folded with

    async def commit(
        self, batch: ParsedBatch, ahead: Ahead | None = None, handoff: Handoff | None = None
    ) -> BatchOutcome:
        """Commit `batch` (maybe planned `ahead`; its plan handed to the next batch through
        `handoff`); raises, and commits nothing, when anything fails."""
        store = self.store
        outcome = BatchOutcome(received=len(batch.records), refused=batch.refused)
        async with store.transaction():
            await store.lock_partitions(list(batch.offsets))  # 1
            await store.record_refusals(batch.refused)  # 2
            if ahead is None:  # 3
                numbered = await store.claim_positions([item.staged for item in batch.accepted])
                grouped = by_pack(new_entries(batch.accepted, numbered))
                kept, kept_plan = NOTHING_LOADED, Plan(formatted=store.join([]))
            else:
                numbered, grouped = ahead.numbered, ahead.grouped
                kept, kept_plan = ahead.loaded, ahead.plan
            outcome.appended = len(numbered)
            outcome.duplicates = len(batch.accepted) - len(numbered)
            versions = await store.lock_versions(list(grouped))  # 4
            if ahead is not None:  # 5
                stale = ahead.stale(versions)
                kept, kept_plan = plan_without(kept, kept_plan, stale)
                outcome.packs_planned_ahead = len(kept.by_pack)
                outcome.packs_replanned = len(stale)
            rest = {p: entries for p, entries in grouped.items() if p not in kept.by_pack}
            loaded = await self._bring(rest, versions)  # 6
            planned = await store.append_events(  # 7
                numbered, lambda: plan(loaded, store.format, terms=self.terms)
            )
            loaded = joined(kept, loaded)
            planned = merged([kept_plan, planned], store.join)
            # The states after this batch: handed to the next batch now, and completed
            # with the re-folded ones below (a next batch that looks before that leaves
            # those packs to its transaction: `ahead.plan_ahead`).
            states = planned.states
            if handoff is not None:
                ids = {staged.event_id for _, staged in numbered}
                handoff.planned(Planned(ids, set(grouped), states))
            refolded = await self._refold(loaded, planned)  # 8
            states.update(refolded.states)
            await store.write_plan(planned, refolded)  # 9
            outcome.packs_written = planned.packs_updated + len(refolded.pack_rows)
            outcome.packs_refolded = len(refolded.packs)
            outcome.packs_parked = planned.parked
            outcome.packs_resumed = loaded.resumed
            outcome.exhaustions = [
                (pack_id, at) for pack_id, state in states.items() if (at := exhausts_at(state))
            ]
            outcome.crossings = [
                (pack_id, [at for _, at in low_crossings(state)])
                for pack_id, state in states.items()
                if state.lows
            ]
            await store.store_offsets(batch.offsets)
            await store.announce_changes(states)  # delivered on commit: the live stream
        if self.cache is not None:  # committed: these states are now the stored ones
            self.cache.put(states)
        return outcome

    async def _bring(
        self, grouped: dict[int, list[LedgerEntry]], versions: Mapping[int, int]
    ) -> Loaded:
        """The states of the packs of `grouped`, already locked (`versions`: their stored
        event counts): from the cache while current, else from the stored snapshot and
        the ledger entries it lags behind (a pack whose snapshot and ledger do not add
        up is left out: re-folded)."""
        loaded = Loaded(grouped, {p: v for p, v in versions.items() if p in grouped}, {})
        states = loaded.states
        cache = self.cache
        for pack_id in grouped:
            count = versions.get(pack_id)
            cached = cache.take(pack_id, count) if cache is not None and count is not None else None
            if cached is not None:
                states[pack_id] = cached
        missing = [p for p in grouped if p in versions and p not in states]
        if not missing:
            return loaded
        stored = await self.store.load_states(missing)
        lagging = {p: s.max_position for p, s in stored.items() if s.event_count != versions[p]}
        states.update((p, s) for p, s in stored.items() if p not in lagging)
        if lagging:
            in_batch = {entry.position for entries in grouped.values() for entry in entries}
            tails: dict[int, list[LedgerEntry]] = {p: [] for p in lagging}
            for pack_id, entry in await self.store.load_tails(lagging):
                if entry.position not in in_batch:  # this batch's own entries come next
                    tails[pack_id].append(entry)
            for pack_id, tail in tails.items():
                state: PackState | None = resume(
                    stored[pack_id], tail, versions[pack_id], terms=self.terms
                )
                if state is not None:
                    states[pack_id] = state
                    loaded.resumed += 1
        return loaded

    async def _refold(self, loaded: Loaded, planned: Plan) -> Refolded:
        """Re-fold what the plan left, from the ledger (the batch's own entries are not
        read back)."""
        if not planned.to_refold:
            return Refolded()
        known = {e.position: e for p in planned.to_refold for e in loaded.by_pack[p]}
        entries = await self.store.load_entries(planned.to_refold, known)
        return refold_packs(planned.to_refold, entries, terms=self.terms)
