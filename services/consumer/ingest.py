"""One batch of records in, one database transaction out.

The transaction appends the new events to the ledger (idempotent by event `id`), keeps
refused records with their reason, brings the read models up to date and stores the
next offset of every partition in the batch. The offsets stored with the writes are
the truth: after a crash the consumer resumes from them, so nothing is lost and nothing
is counted twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from events.envelope import AnyPackEvent
from events.parse import Refusal, parse_event
from projections.fold import exhausts_at
from projections.state import LedgerEntry
from services.consumer import projector
from services.consumer.records import Place, SourceRecord, next_offsets
from services.consumer.state_cache import StateCache
from services.store import ledger_sql
from services.store.connection import Conn


@dataclass(frozen=True, slots=True)
class Accepted:
    record: SourceRecord
    staged: ledger_sql.StagedEvent
    event: AnyPackEvent


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
    # (pack, exhausts_at) of the packs written that run out: for the notifier's schedule.
    exhaustions: list[tuple[int, datetime]] = field(default_factory=list)


def sort_out(
    records: list[SourceRecord],
) -> tuple[list[Accepted], list[ledger_sql.RefusedRecord]]:
    """Parse every record: the accepted ones staged for the ledger, the others refused."""
    accepted: list[Accepted] = []
    refused: list[ledger_sql.RefusedRecord] = []
    for record in records:
        result = parse_event(record.value)
        if isinstance(result, Refusal):
            refused.append(_refusal(record, result.reason))
            continue
        event = result
        assert record.value is not None  # parse_event refuses an empty record
        staged = ledger_sql.StagedEvent(
            event_id=event.id,
            user_pack_id=event.data.userPackId,
            event_type=event.type,
            event_time=event.time,
            source=event.source,
            envelope=record.value.decode(),
            kafka_topic=record.topic,
            kafka_partition=record.partition,
            kafka_offset=record.offset,
        )
        accepted.append(Accepted(record, staged, event))
    return accepted, refused


def _refusal(record: SourceRecord, reason: str) -> ledger_sql.RefusedRecord:
    return ledger_sql.RefusedRecord(
        kafka_topic=record.topic,
        kafka_partition=record.partition,
        kafka_offset=record.offset,
        key=record.key,
        value=record.value,
        reason=reason,
    )


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    """A batch after parsing, before any database work."""

    records: list[SourceRecord]
    accepted: list[Accepted]
    refused: list[ledger_sql.RefusedRecord]
    offsets: dict[Place, int]  # per partition, where to resume once committed


def parsed(records: list[SourceRecord]) -> ParsedBatch:
    """`sort_out` of a whole batch at once."""
    accepted, refused = sort_out(records)
    return ParsedBatch(records, accepted, refused, next_offsets(records))


PARSE_CHUNK = 500
"""Records parsed between two yields to the event loop in `parse_batch`."""


async def parse_batch(records: list[SourceRecord]) -> ParsedBatch:
    """`sort_out`, yielding to the event loop every PARSE_CHUNK records: the consumer
    parses a batch while the previous one commits, whose statements must not wait for
    the whole parse to be sent."""
    accepted: list[Accepted] = []
    refused: list[ledger_sql.RefusedRecord] = []
    for start in range(0, len(records), PARSE_CHUNK):
        if start:
            await asyncio.sleep(0)
        more_accepted, more_refused = sort_out(records[start : start + PARSE_CHUNK])
        accepted += more_accepted
        refused += more_refused
    return ParsedBatch(records, accepted, refused, next_offsets(records))


async def ingest(
    conn: Conn, group: str, records: list[SourceRecord], cache: StateCache | None = None
) -> BatchOutcome:
    """Commit one batch; raises (and commits nothing) when the database fails."""
    return await ingest_parsed(conn, group, parsed(records), cache)


async def ingest_parsed(
    conn: Conn, group: str, batch: ParsedBatch, cache: StateCache | None = None
) -> BatchOutcome:
    """`ingest` of a batch already parsed (`parse_batch`)."""
    accepted, refused = batch.accepted, batch.refused
    try:
        return await _commit(conn, group, batch, accepted, refused, cache)
    except psycopg.DataError:
        # Some value the parser accepted is not storable (e.g. a lone surrogate escape in
        # a string). Find it record by record, refuse it with the database's words, and
        # commit the rest: a bad record never stops the stream.
        accepted, more_refused = await _storable(conn, accepted)
        return await _commit(conn, group, batch, accepted, refused + more_refused, cache)


async def _commit(
    conn: Conn,
    group: str,
    batch: ParsedBatch,
    accepted: list[Accepted],
    refused: list[ledger_sql.RefusedRecord],
    cache: StateCache | None,
) -> BatchOutcome:
    outcome = BatchOutcome(received=len(batch.records), refused=refused)
    offsets = batch.offsets
    async with conn.transaction():
        await ledger_sql.lock_partitions(conn, group, list(offsets))
        await ledger_sql.record_refusals(conn, refused)
        numbered = await ledger_sql.claim_positions(conn, [item.staged for item in accepted])
        first: dict[str, Accepted] = {}
        for item in accepted:  # an id repeated within the batch counts once: the first
            first.setdefault(item.staged.event_id, item)
        new_entries = [LedgerEntry(pos, first[staged.event_id].event) for pos, staged in numbered]
        outcome.appended = len(new_entries)
        outcome.duplicates = len(accepted) - len(new_entries)
        loaded = await projector.load(conn, new_entries, cache)
        # The server appends the events while this process applies them in memory.
        planned = await ledger_sql.copy_events(conn, numbered, lambda: projector.plan(loaded))
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
            refused.append(_refusal(item.record, f"not storable as JSON: {error}"))
        else:
            keep.append(item)
    return keep, refused
