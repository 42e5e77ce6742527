"""Re-driving a refused record: parse it again and apply it through the consumer's own
transaction (`services.consumer.ingest.ingest_once`), idempotent by event `id`.

Each attempt leaves a row in `redrives` (append-only), in the same transaction as what
it applied: `applied` (the event is now in the ledger and the projections),
`duplicate` (an event with its id is there already: nothing changes) or `refused` with
the new reason (nothing applied). Nothing is published by hand, and the consumer
group's stored offsets are neither read nor written: the batch carries no offsets, so
the transaction takes no partition lock and stores none (the offsets belong to the live
consumer, which has long passed the record).

Alongside a running consumer: the transaction locks the pack rows it writes
(`FOR UPDATE`, in id order) exactly as a consumer batch does, so the two serialise per
pack; the event's new position is drawn from the same sequence. The live consumer's
in-memory state of that pack then carries an older `event_count` than the stored row,
so its next batch of the pack reloads the state from the database instead of
overwriting the re-driven event's effect (`StateCache.take`); a plan made ahead on the
old state fails its check under the lock the same way (`Ahead.holds`).
"""

from __future__ import annotations

from dataclasses import dataclass

from projections.terms import DEFAULT_TERMS, Terms
from services.consumer import failures
from services.consumer.ingest import ingest_once
from services.consumer.parsing import ParsedBatch, sort_out
from services.consumer.records import SourceRecord
from services.store import refused_sql
from services.store.connection import Conn


@dataclass(frozen=True, slots=True)
class Outcome:
    refused_id: int
    outcome: str  # applied | duplicate | refused | unknown (no such refused record)
    reason: str | None = None
    event_id: str | None = None


async def redrive(conn: Conn, refused_id: int, *, terms: Terms = DEFAULT_TERMS) -> Outcome:
    """Apply one refused record again; an outage of the database raises (nothing of
    this attempt is kept: run it again)."""
    raw = await refused_sql.load_record(conn, refused_id)
    if raw is None:
        return Outcome(refused_id, "unknown", "no such refused record")
    # The raw record as it came: a binary-mode event's attributes are in its headers
    # (not kept for records refused before migration 0005).
    headers = raw.headers or ()
    record = SourceRecord(raw.topic, raw.partition, raw.offset, raw.key, raw.value, headers)
    accepted, refused = sort_out([record])
    if refused:
        return await _refused_again(conn, refused_id, refused[0].reason, None)
    event_id = accepted[0].staged.event_id
    batch = ParsedBatch([record], accepted, [], {})  # no offsets: see the module's doc
    races = 0
    while True:
        try:
            async with conn.transaction():
                applied = await ingest_once(conn, "", batch, terms=terms)
                outcome = "applied" if applied.appended else "duplicate"
                await refused_sql.record_redrive(conn, refused_id, outcome, None, event_id)
            return Outcome(refused_id, outcome, None, event_id)
        except Exception as error:
            if failures.is_race(error) and races < failures.RACE_RETRIES:
                races += 1  # a consumer appended the same id meanwhile: it is found now
                continue
            if failures.is_outage(error):
                raise
            return await _refused_again(conn, refused_id, failures.reason(error), event_id)


async def _refused_again(conn: Conn, refused_id: int, reason: str, event_id: str | None) -> Outcome:
    async with conn.transaction():
        await refused_sql.record_redrive(conn, refused_id, "refused", reason, event_id)
    return Outcome(refused_id, "refused", reason, event_id)
