"""The consumer's database side, assembled: the store of the commits (one connection,
every batch retried until it commits: `committer.py`), the store on the side that plans
a batch ahead while the previous one commits (`ahead.py`), and the state cache."""

from __future__ import annotations

import logging
from typing import Protocol

from projections.terms import DEFAULT_TERMS, Terms
from services.consumer.ahead import Ahead, Handoff, Planned, plan_ahead
from services.consumer.committer import CONNECTION_LOST, Committer, why_retried
from services.consumer.outcome import BatchOutcome
from services.consumer.parsing import ParsedBatch
from services.consumer.records import Place
from services.consumer.state_cache import StateCache
from services.consumer.store_port import BatchStore
from services.retry import Backoff, retrying
from services.store.batch_store import PostgresBatchStore

log = logging.getLogger("ledger.consumer")


class Store(BatchStore, Protocol):
    """A batch store that also knows the stored offsets and closes its connection."""

    async def load_offsets(self, topic: str) -> dict[Place, int]: ...

    @property
    def backend_pid(self) -> int | None:
        """The database backend of its open connection (the one that NOTIFYs), if any."""
        ...

    async def close(self) -> None: ...


class LedgerSink:
    def __init__(
        self,
        database_url: str,
        group: str,
        *,
        max_backoff: float = 30.0,
        stores: tuple[Store, Store] | None = None,
        terms: Terms = DEFAULT_TERMS,
    ) -> None:
        """On PostgreSQL at `database_url`, or on the given `stores` (commits, side);
        folding with `terms` (the settings' `Settings.terms`)."""
        self._max_backoff = max_backoff
        self.terms = terms
        if stores is None:
            stores = (
                PostgresBatchStore(group, url=database_url),
                PostgresBatchStore(
                    group, url=database_url, application_name="ledger-consume-ahead"
                ),
            )
        self.store, self.side = stores
        self.cache = StateCache()
        self.committer = Committer(self.store, self.cache, max_backoff=max_backoff, terms=terms)

    def writer_pid(self) -> int | None:
        """The backend of the commits' connection: the notifier knows its announcements
        for the batches' own (`ExhaustionNotifier.watch_crossings`)."""
        return self.store.backend_pid

    async def close(self) -> None:
        await self.store.close()
        await self.side.close()

    async def plan_ahead(self, batch: ParsedBatch, before: Planned) -> Ahead | None:
        """The batch planned ahead of its transaction (`services/consumer/ahead.py`), or
        None if that failed: it is then planned inside its transaction. No retries."""
        try:
            return await plan_ahead(self.side, batch, before, self.cache, terms=self.terms)
        except CONNECTION_LOST as error:
            log.debug("planning ahead skipped: %s", error)
            await self.side.reset()
        except Exception:  # whatever it is, the transaction plans the batch (and meets it)
            log.exception("planning ahead failed; the batch is planned in its transaction")
        return None

    async def commit_parsed(
        self, batch: ParsedBatch, ahead: Ahead | None = None, handoff: Handoff | None = None
    ) -> BatchOutcome:
        """Commit a batch (maybe planned `ahead`), whatever it meets (`committer.py`)."""
        return await self.committer.commit(batch, ahead, handoff)

    async def stored_offsets(self, topic: str) -> dict[Place, int]:
        """The next offset of each partition of `topic` stored with the commits."""

        async def drop_connection(error: BaseException) -> None:
            if isinstance(error, CONNECTION_LOST):
                await self.store.reset()

        return await retrying(
            lambda: self.store.load_offsets(topic),
            why_retried,
            Backoff(0.2, self._max_backoff),
            log,
            before_retry=drop_connection,
        )
