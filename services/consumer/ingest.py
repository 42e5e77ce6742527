"""One batch of records in, one database transaction out.

The transaction appends the new events to the ledger (idempotent by event `id`), keeps
refused records with their reason, brings the read models up to date and stores the
next offset of every partition in the batch. The offsets stored with the writes are
the truth: after a crash the consumer resumes from them, so nothing is lost and nothing
is counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from projections.fold import exhausts_at
from projections.state import LedgerEntry
from services.consumer import projector
from services.consumer.ahead import Ahead, Handoff, Planned, new_entries
from services.consumer.parsing import Accepted, ParsedBatch, parsed, refusal
from services.consumer.records import SourceRecord
from services.consumer.state_cache import StateCache
from services.store import ledger_sql, projection_sql
from services.store.connection import Conn


@dataclass(slots=True)
class BatchOutcome:
    received: int = 0
    appended: int = 0
    duplicates: int = 0
    refused: list[ledger_sql.RefusedRecord] = field(default_factory=list)
    packs_written: int = 0
    packs_refolded: int = 0
    packs_parked: int = 0
    packs_resumed: int = 0
    packs_planned_ahead: int = 0  # planned before the transaction (`ahead`), checked in it
    # (pack, exhausts_at) of the packs written that run out: for the notifier's schedule.
    exhaustions: list[tuple[int, datetime]] = field(default_factory=list)


async def ingest(
    conn: Conn, group: str, records: list[SourceRecord], cache: StateCache | None = None
) -> BatchOutcome:
    """Commit one batch; raises (and commits nothing) when the database fails."""
    return await ingest_parsed(conn, group, parsed(records), cache)


async def ingest_parsed(
    conn: Conn,
    group: str,
    batch: ParsedBatch,
    cache: StateCache | None = None,
    ahead: Ahead | None = None,
    handoff: Handoff | None = None,
) -> BatchOutcome:
    """`ingest` of a batch already parsed (`parse_batch`), maybe planned `ahead`; its
    plan is handed to the next batch through `handoff`."""
    accepted, refused = batch.accepted, batch.refused
    try:
        return await _commit(conn, group, batch, accepted, refused, cache, ahead, handoff)
    except psycopg.DataError:
        # Some value the parser accepted is not storable (e.g. a lone surrogate escape in
        # a string). Find it record by record, refuse it with the database's words, and
        # commit the rest: a bad record never stops the stream.
        if handoff is not None:
            handoff.retried()
        accepted, more_refused = await _storable(conn, accepted)
        return await _commit(conn, group, batch, accepted, refused + more_refused, cache)
    finally:  # planned or not, the next batch must not wait for this one's plan
        if handoff is not None:
            handoff.ended()


async def _commit(
    conn: Conn,
    group: str,
    batch: ParsedBatch,
    accepted: list[Accepted],
    refused: list[ledger_sql.RefusedRecord],
    cache: StateCache | None,
    ahead: Ahead | None = None,
    handoff: Handoff | None = None,
) -> BatchOutcome:
    outcome = BatchOutcome(received=len(batch.records), refused=refused)
    offsets = batch.offsets
    async with conn.transaction():
        await ledger_sql.lock_partitions(conn, group, list(offsets))
        await ledger_sql.record_refusals(conn, refused)
        if ahead is None:
            numbered = await ledger_sql.claim_positions(conn, [item.staged for item in accepted])
            entries = new_entries(accepted, numbered)
            grouped = projector.by_pack(entries)
        else:
            numbered, entries, grouped = ahead.numbered, ahead.new_entries, ahead.grouped
        outcome.appended = len(entries)
        outcome.duplicates = len(accepted) - len(entries)
        versions = await projection_sql.lock_versions(conn, list(grouped))
        if ahead is not None and not ahead.holds(versions):
            # Another writer moved a pack: plan here, the states from the database.
            ahead = None
        rest = grouped if ahead is None else _without(grouped, ahead.packs)
        loaded = await projector.bring(conn, rest, versions, cache)
        # The server appends the events while this process applies what is left to plan.
        planned = await ledger_sql.copy_events(conn, numbered, lambda: projector.plan(loaded))
        if ahead is not None:
            outcome.packs_planned_ahead = len(ahead.packs)
            loaded = projector.joined(ahead.loaded, loaded)
            planned = projector.merged([ahead.plan, planned])
        if handoff is not None:
            ids = {staged.event_id for _, staged in numbered}
            handoff.planned(Planned(ids, set(grouped), planned.states))
        projected = await projector.write(conn, loaded, planned)
        outcome.packs_written = projected.packs_written
        outcome.packs_refolded = projected.packs_refolded
        outcome.packs_parked = projected.packs_parked
        outcome.packs_resumed = projected.packs_resumed
        outcome.exhaustions = [
            (pack_id, at)
            for pack_id, state in projected.states.items()
            if (at := exhausts_at(state)) is not None
        ]
        await ledger_sql.store_offsets(conn, group, offsets)
    if cache is not None:  # committed: these states are now the stored ones
        cache.put(projected.states)
    return outcome


def _without(
    grouped: dict[int, list[LedgerEntry]], planned: set[int]
) -> dict[int, list[LedgerEntry]]:
    return {pack_id: entries for pack_id, entries in grouped.items() if pack_id not in planned}


async def _storable(
    conn: Conn, accepted: list[Accepted]
) -> tuple[list[Accepted], list[ledger_sql.RefusedRecord]]:
    keep: list[Accepted] = []
    refused: list[ledger_sql.RefusedRecord] = []
    for item in accepted:
        try:
            async with conn.transaction():
                await conn.execute("SELECT %s::jsonb", (item.staged.envelope,))
        except psycopg.DataError as error:
            refused.append(refusal(item.record, f"not storable as JSON: {error}"))
        else:
            keep.append(item)
    return keep, refused
