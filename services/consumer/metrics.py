"""Prometheus metrics of the consumer, served on their own port by `ledger consume`."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from services.consumer.outcome import BatchOutcome

RECORDS = Counter("ledger_records_consumed_total", "Kafka records the consumer committed")
APPLIED = Counter("ledger_events_applied_total", "Events appended to the ledger (new ids)")
DUPLICATES = Counter("ledger_events_duplicate_total", "Events whose id was already recorded")
REFUSED = Counter("ledger_records_refused_total", "Records refused with a reason")
BATCH_SIZE = Histogram(
    "ledger_batch_records",
    "Records per committed batch",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000),
)
BATCH_SECONDS = Histogram(
    "ledger_batch_seconds",
    "Time to commit one batch (ledger, projections and offsets)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAG = Gauge("ledger_consumer_lag", "Records behind the end of each partition", ["partition"])
PLANNED_AHEAD = Counter(
    "ledger_packs_planned_ahead_total",
    "Packs of committed batches planned while the previous batch committed",
)
WRITTEN = Counter("ledger_packs_written_total", "Pack read models written by committed batches")
OUTAGES = Counter("ledger_database_outages_total", "Database errors the consumer waited out")
SPLITS = Counter(
    "ledger_batches_split_total",
    "Batches whose content failed, split to find the records at fault",
)
SPLIT_ATTEMPTS = Counter(
    "ledger_split_attempts_total", "Transactions tried while splitting failed batches"
)
# Every notice, whatever its type: the counter kept its first name (dashboards use it).
NOTICES = Counter(
    "ledger_exhaustion_notices_published_total",
    "Notices published on the out topic (exhaustion, low-balance and lapse notices alike)",
)
NOTICES_BY_TYPE = Counter(
    "ledger_notices_published_total",
    "Notices published on the out topic, by CloudEvents type",
    ["type"],
)

COLLECTIONS = Histogram(
    "ledger_gc_pass_seconds",
    "The periodic full passes of the garbage collector (the automatic one is off)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
COLLECTED = Counter("ledger_gc_collected_total", "Unreachable objects the periodic passes freed")


def observe_collection(seconds: float, found: int) -> None:
    COLLECTIONS.observe(seconds)
    COLLECTED.inc(found)


def observe_notices(types: Iterable[str]) -> None:
    """The notices one pass published, by type: both counters, in one place."""
    for notice_type in types:
        NOTICES.inc()
        NOTICES_BY_TYPE.labels(notice_type).inc()


def observe_batch(outcome: BatchOutcome, seconds: float) -> None:
    RECORDS.inc(outcome.received)
    APPLIED.inc(outcome.appended)
    DUPLICATES.inc(outcome.duplicates)
    REFUSED.inc(len(outcome.refused))
    PLANNED_AHEAD.inc(outcome.packs_planned_ahead)
    WRITTEN.inc(outcome.packs_written)
    if outcome.split_attempts:
        SPLITS.inc()
        SPLIT_ATTEMPTS.inc(outcome.split_attempts)
    BATCH_SIZE.observe(outcome.received)
    BATCH_SECONDS.observe(seconds)


def observe_lag(lags: dict[int, int]) -> None:
    for partition, lag in lags.items():
        LAG.labels(partition=str(partition)).set(lag)
