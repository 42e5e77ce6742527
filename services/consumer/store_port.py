"""What one batch needs from the database, and nothing more: the store port.

The batch protocol (`services/consumer/transaction.py`, `committer.py`) talks to the
database only through a `BatchStore`. The PostgreSQL adapter is
`services/store/batch_store.py` (the SQL stays in services/store); the unit tests run the
same protocol on an in-memory fake (`tests/unit/fake_store.py`), the way httpx's
transport seam puts a mock behind a client, or a unit of work behind a service.

One store holds one connection: `transaction()` opens the unit of work (commit when the
block ends, rollback when it raises); every other call runs inside it, except
`claim_positions` on the store that plans ahead (outside any transaction).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

from projections.state import LedgerEntry, PackState
from services.consumer.plan import Plan, Refolded
from services.consumer.records import Place
from services.store.ledger_sql import RefusedRecord, StagedEvent

T = TypeVar("T")

Numbered = list[tuple[int, StagedEvent]]
"""New events with the ledger positions drawn for them."""


class BatchStore(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[object]:
        """The unit of work: committed when the block ends, rolled back if it raises."""
        ...

    async def lock_partitions(self, places: Sequence[Place]) -> None:
        """A lock per partition until commit (a former and a new owner never write at
        once during a rebalance)."""
        ...

    async def record_refusals(self, refused: Sequence[RefusedRecord]) -> None: ...

    async def claim_positions(self, staged: Sequence[StagedEvent]) -> Numbered:
        """The events whose id the ledger does not hold (first of each id), with positions."""
        ...

    async def lock_versions(self, pack_ids: Sequence[int]) -> dict[int, int]:
        """{pack: stored event_count} of the packs with a read model, locked until commit."""
        ...

    async def load_states(self, pack_ids: Sequence[int]) -> dict[int, PackState]:
        """The stored states (snapshots) of these packs; they may lag behind the ledger."""
        ...

    async def load_tails(self, after: Mapping[int, int]) -> list[tuple[int, LedgerEntry]]:
        """(pack, entry) of the ledger entries of each pack above a position."""
        ...

    async def load_entries(
        self, pack_ids: Sequence[int], known: Mapping[int, LedgerEntry]
    ) -> dict[int, list[LedgerEntry]]:
        """Every ledger entry of these packs (those `known` by position taken as they are)."""
        ...

    async def append_events(self, numbered: Numbered, meanwhile: Callable[[], T]) -> T:
        """Append the events, and return `meanwhile()`, run while the store appends them."""
        ...

    def format(self, plan: Plan) -> object:
        """The plan's rows in the form `write_plan` sends (PostgreSQL: COPY text); made
        while planning, so that the writing does not wait for it."""
        ...

    def join(self, formatted: Sequence[object]) -> object:
        """One formatted form of several, for disjoint sets of packs."""
        ...

    async def write_plan(self, plan: Plan, refolded: Refolded) -> None:
        """The packs' changed columns, the usage records opened and closed, and the packs
        re-folded written whole."""
        ...

    async def store_offsets(self, offsets: Mapping[Place, int]) -> None: ...

    async def announce_changes(self, pack_ids: Iterable[int]) -> None:
        """Tell the API processes, when the transaction commits, which packs changed."""
        ...

    async def reset(self) -> None:
        """Drop the connection after an outage; the next transaction opens a new one."""
        ...
