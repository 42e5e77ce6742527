"""Running figures of the consumer, logged every few seconds for operators."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from services.consumer.outcome import BatchOutcome

log = logging.getLogger("ledger.consumer")


@dataclass(slots=True)
class ConsumerStats:
    interval: float = 10.0
    batches: int = 0
    records: int = 0
    appended: int = 0
    duplicates: int = 0
    refused: int = 0
    packs_written: int = 0
    packs_planned_ahead: int = 0
    busy_seconds: float = 0.0
    since: float = field(default_factory=time.monotonic)

    def add(self, outcome: BatchOutcome, seconds: float) -> None:
        self.batches += 1
        self.records += outcome.received
        self.appended += outcome.appended
        self.duplicates += outcome.duplicates
        self.refused += len(outcome.refused)
        self.packs_written += outcome.packs_written
        self.packs_planned_ahead += outcome.packs_planned_ahead
        self.busy_seconds += seconds
        elapsed = time.monotonic() - self.since
        if elapsed >= self.interval:
            log.info(
                "%d records in %.1fs (%.0f/s): %d batches of %.0f on average, %.0f ms each; "
                "%d appended, %d duplicates, %d refused; %d packs written, %d planned ahead",
                self.records,
                elapsed,
                self.records / elapsed,
                self.batches,
                self.records / self.batches,
                1000 * self.busy_seconds / self.batches,
                self.appended,
                self.duplicates,
                self.refused,
                self.packs_written,
                self.packs_planned_ahead,
            )
            self.batches = self.records = self.appended = self.duplicates = self.refused = 0
            self.packs_written = self.packs_planned_ahead = 0
            self.busy_seconds = 0.0
            self.since = time.monotonic()
