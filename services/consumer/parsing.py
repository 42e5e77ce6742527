"""A batch of records parsed: the accepted events staged for the ledger, the others
refused with their reason. No database work: the consumer parses a batch while the
previous one commits."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from events.binary import structured_value
from events.envelope import AnyPackEvent
from events.parse import Refusal, parse_event
from services.consumer.records import Place, SourceRecord, next_offsets
from services.store import ledger_sql


@dataclass(slots=True)  # not frozen: one per record, built ~2x faster
class Accepted:
    record: SourceRecord
    staged: ledger_sql.StagedEvent
    event: AnyPackEvent


def sort_out(
    records: list[SourceRecord],
) -> tuple[list[Accepted], list[ledger_sql.RefusedRecord]]:
    """Parse every record: the accepted ones staged for the ledger, the others refused."""
    accepted: list[Accepted] = []
    refused: list[ledger_sql.RefusedRecord] = []
    for record in records:
        # Most records are structured: their value is the event. The headers are only
        # looked at when there are some (binary content mode puts attributes there).
        value = structured_value(record.headers, record.value) if record.headers else record.value
        result = value if isinstance(value, Refusal) else parse_event(value)
        if isinstance(result, Refusal):
            refused.append(refusal(record, result.reason))
            continue
        event = result
        assert isinstance(value, bytes)  # parse_event refuses an empty record
        staged = ledger_sql.StagedEvent(
            event_id=event.id,
            user_pack_id=event.data.userPackId,
            event_type=event.type,
            event_time=event.time,
            source=event.source,
            envelope=value.decode(),
            kafka_topic=record.topic,
            kafka_partition=record.partition,
            kafka_offset=record.offset,
        )
        accepted.append(Accepted(record, staged, event))
    return accepted, refused


def refusal(record: SourceRecord, reason: str) -> ledger_sql.RefusedRecord:
    return ledger_sql.RefusedRecord(
        kafka_topic=record.topic,
        kafka_partition=record.partition,
        kafka_offset=record.offset,
        key=record.key,
        value=record.value,
        reason=reason,
        headers=record.headers,
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


PARSE_CHUNK = 50
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
