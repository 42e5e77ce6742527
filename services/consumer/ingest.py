"""One batch committed on a connection the caller owns: for replay from Kafka, the
re-drive of refused records and tests. No retries (the consumer's `LedgerSink` adds
them); a batch whose content fails is split like the consumer's (`committer.py`)."""

from __future__ import annotations

from projections.terms import DEFAULT_TERMS, Terms
from services.consumer.ahead import Ahead, Handoff
from services.consumer.committer import Committer
from services.consumer.outcome import BatchOutcome
from services.consumer.parsing import ParsedBatch, parsed
from services.consumer.records import SourceRecord
from services.consumer.state_cache import StateCache
from services.consumer.transaction import BatchTransaction
from services.store.batch_store import PostgresBatchStore
from services.store.connection import Conn

__all__ = ["BatchOutcome", "ingest", "ingest_once", "ingest_parsed"]


async def ingest(
    conn: Conn,
    group: str,
    records: list[SourceRecord],
    cache: StateCache | None = None,
    *,
    terms: Terms = DEFAULT_TERMS,
) -> BatchOutcome:
    """Commit one batch; raises (and commits nothing) when the database fails."""
    return await ingest_parsed(conn, group, parsed(records), cache, terms=terms)


async def ingest_parsed(
    conn: Conn,
    group: str,
    batch: ParsedBatch,
    cache: StateCache | None = None,
    ahead: Ahead | None = None,
    handoff: Handoff | None = None,
    *,
    terms: Terms = DEFAULT_TERMS,
) -> BatchOutcome:
    """`ingest` of a batch already parsed, maybe planned `ahead`; its plan is handed to
    the next batch through `handoff`."""
    store = PostgresBatchStore(group, conn=conn)
    return await Committer(store, cache, terms=terms).commit_or_split(batch, ahead, handoff)


async def ingest_once(
    conn: Conn,
    group: str,
    batch: ParsedBatch,
    cache: StateCache | None = None,
    *,
    terms: Terms = DEFAULT_TERMS,
) -> BatchOutcome:
    """The batch's transaction alone: no split, any failure raised. A batch without
    offsets (`ledger refused redrive`) takes no partition lock and stores no offset."""
    transaction = BatchTransaction(PostgresBatchStore(group, conn=conn), cache, terms=terms)
    return await transaction.commit(batch)
