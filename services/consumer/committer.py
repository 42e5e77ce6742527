"""Commit a batch whatever it meets: an outage, the event-id race, or records at fault.

Why an attempt failed decides what happens (`failures.py`):
- an outage (the server gone, restarting, class 42...) is waited out with backoff
  (0.2 s doubling to 30 s, `services/retry.py`), the same batch tried again;
- the event-id race (another writer appended one of its ids between its look-up and its
  COPY) is retried, RACE_RETRIES times; a retry finds the other writer's id, so a
  fourth loss is the batch's content;
- the batch's content: it is split (`split.settle`), its parts committed in order, each
  in its own transaction with its own offsets, and the records that fail on their own
  refused with the error as their reason, their offsets passed with the refusal.

Only the first attempt uses the plan made ahead; a second one voids what its handoff
gave the next batch (that one is then planned in its transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from projections.terms import DEFAULT_TERMS, Terms
from services.consumer import failures, metrics, split
from services.consumer.ahead import Ahead, Handoff
from services.consumer.outcome import BatchOutcome
from services.consumer.parsing import Accepted, ParsedBatch, refusal
from services.consumer.records import SourceRecord, next_offsets
from services.consumer.state_cache import StateCache
from services.consumer.store_port import BatchStore
from services.consumer.transaction import BatchTransaction
from services.retry import Backoff, retrying
from services.store import ledger_sql

log = logging.getLogger("ledger.consumer")

IsContent = Callable[[BaseException], bool]

CONNECTION_LOST = failures.DATABASE_DOWN


def why_retried(error: BaseException) -> str | None:
    """The start of the log line of a failure waited out, or None: not one."""
    if isinstance(error, CONNECTION_LOST):
        return f"database unavailable ({error})"
    if failures.is_race(error):
        return f"lost the event-id race to another writer: {error}"
    if failures.is_outage(error):
        return f"the database cannot serve the batch: {error}"
    return None


class Committer:
    def __init__(
        self,
        store: BatchStore,
        cache: StateCache | None = None,
        *,
        max_backoff: float = 30.0,
        terms: Terms = DEFAULT_TERMS,
    ) -> None:
        self.store = store
        self.transaction = BatchTransaction(store, cache, terms=terms)
        self._max_backoff = max_backoff

    async def commit(
        self, batch: ParsedBatch, ahead: Ahead | None = None, handoff: Handoff | None = None
    ) -> BatchOutcome:
        """Commit `batch`, retried until it commits (outages, races), split if its
        content fails."""
        attempts = 0
        races = 0
        lost: BaseException = RuntimeError("no race lost")

        async def attempt() -> BatchOutcome:
            nonlocal attempts, races, lost
            attempts += 1
            try:
                if attempts == 1:
                    return await self.commit_or_split(batch, ahead, handoff)
                if handoff is not None:
                    handoff.retried()
                if races > failures.RACE_RETRIES:
                    return await self.split(batch, lost, _content_or_race)
                return await self.commit_or_split(batch)
            except Exception as error:
                if failures.is_race(error):
                    races += 1
                    lost = error
                elif failures.is_outage(error):
                    metrics.OUTAGES.inc()
                raise

        async def drop_connection(error: BaseException) -> None:
            if isinstance(error, CONNECTION_LOST):
                await self.store.reset()

        return await retrying(
            attempt,
            why_retried,
            Backoff(0.2, self._max_backoff),
            log,
            before_retry=drop_connection,
        )

    async def commit_or_split(
        self, batch: ParsedBatch, ahead: Ahead | None = None, handoff: Handoff | None = None
    ) -> BatchOutcome:
        """One attempt: the batch's transaction, split if its content fails; an outage or
        a race is raised (the caller retries the whole batch)."""
        try:
            return await self.transaction.commit(batch, ahead, handoff)
        except Exception as error:
            if not failures.is_content(error):
                raise
            if handoff is not None:  # what this attempt handed over is not what commits
                handoff.retried()
            return await self.split(batch, error)
        finally:  # planned or not, the next batch must not wait for this one's plan
            if handoff is not None:
                handoff.ended()

    async def split(
        self,
        batch: ParsedBatch,
        error: BaseException,
        is_content: IsContent = failures.is_content,
    ) -> BatchOutcome:
        """Commit a batch that failed as a whole with `error`: split it, commit its parts
        in order and refuse the records that fail on their own. An error that is not
        `is_content` propagates; the parts committed so far stay (a retry of the whole
        batch finds their events as duplicates, their refusals and offsets stored)."""
        log.warning(
            "batch of %d records failed (%s); splitting it to find the records at fault",
            len(batch.records),
            failures.reason(error),
        )
        parts = _Parts(batch)
        total = BatchOutcome(received=len(batch.records))

        async def apply(records: Sequence[SourceRecord]) -> None:
            total.add(await self.transaction.commit(parts.of(records)))

        async def refuse(record: SourceRecord, failure: BaseException) -> None:
            last = failure
            for reason in (failures.reason(failure), f"apply failed: {type(failure).__name__}"):
                refused = refusal(record, reason)
                part = ParsedBatch([record], [], [refused], next_offsets([record]))
                try:
                    total.add(await self.transaction.commit(part))
                    return
                except Exception as again:  # the reason itself not storable: the bare type
                    if not is_content(again):
                        raise
                    last = again
            raise last

        settled = await split.settle(batch.records, error, apply, refuse, is_content)
        total.split_attempts = settled.attempts
        log.warning(
            "split a batch of %d records in %d attempts%s: %d refused",
            len(batch.records),
            settled.attempts,
            " (the cap reached: the rest one by one)" if settled.one_by_one else "",
            len(settled.refused),
        )
        return total


def _content_or_race(error: BaseException) -> bool:
    return failures.is_content(error) or failures.is_race(error)


class _Parts:
    """The parse results of a batch's records, to make parts of it."""

    def __init__(self, batch: ParsedBatch) -> None:
        self._accepted = {_key(item.record): item for item in batch.accepted}
        self._refused = {
            (r.kafka_topic, r.kafka_partition, r.kafka_offset): r for r in batch.refused
        }

    def of(self, records: Sequence[SourceRecord]) -> ParsedBatch:
        accepted: list[Accepted] = []
        refused: list[ledger_sql.RefusedRecord] = []
        for record in records:
            key = _key(record)
            if key in self._accepted:
                accepted.append(self._accepted[key])
            else:
                refused.append(self._refused[key])
        return ParsedBatch(list(records), accepted, refused, next_offsets(records))


def _key(record: SourceRecord) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)
