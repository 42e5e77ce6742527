"""When each pack the notifier watches runs out: an in-memory schedule, earliest first.

The exhaustion notifier used to find due packs with an index on `packs.exhausts_at`;
that index made every pack update a non-HOT update (docs/decisions.md). It now keeps
the instants in memory instead: the consumer hands over the packs each batch wrote, a
periodic scan of `packs` adds those no live process has in memory. An entry may be
stale (the pack's exhaustion moved or went away since): the notifier checks each due
pack against the database, so a stale entry costs a look-up and publishes nothing.
"""

from __future__ import annotations

import heapq
from datetime import datetime


class ExhaustionSchedule:
    """The latest instant handed over per pack, and the packs due at a given instant.

    A dict holds each pack's latest instant; a heap holds (instant, pack) entries, those
    superseded by a later `watch` of the same pack included: they are skipped when they
    reach the top (lazy deletion), and the heap is rebuilt when they outnumber the live
    ones.
    """

    __slots__ = ("_heap", "_latest")

    def __init__(self) -> None:
        self._latest: dict[int, datetime] = {}
        self._heap: list[tuple[datetime, int]] = []

    def __len__(self) -> int:
        return len(self._latest)

    def __contains__(self, pack_id: int) -> bool:
        return pack_id in self._latest

    def when(self, pack_id: int) -> datetime | None:
        """The instant `pack_id` is scheduled for, if it is."""
        return self._latest.get(pack_id)

    def watch(self, pack_id: int, at: datetime) -> None:
        """Schedule `pack_id` for `at`, replacing what it was scheduled for."""
        if self._latest.get(pack_id) == at:
            return
        self._latest[pack_id] = at
        heapq.heappush(self._heap, (at, pack_id))
        if len(self._heap) > 2 * len(self._latest) + 1024:
            self._heap = [(instant, pack) for pack, instant in self._latest.items()]
            heapq.heapify(self._heap)

    def pop_due(self, now: datetime, limit: int) -> list[int]:
        """Up to `limit` packs whose latest instant is at or before `now`, earliest first;
        they leave the schedule."""
        due: list[int] = []
        heap = self._heap
        while heap and len(due) < limit and heap[0][0] <= now:
            at, pack_id = heapq.heappop(heap)
            if self._latest.get(pack_id) == at:
                del self._latest[pack_id]
                due.append(pack_id)
        return due
