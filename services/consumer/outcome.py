"""What committing one batch did: counts for the metrics and stats, the refusals to
publish to the DLQ, the exhaustions and crossings for the notifier."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.store import ledger_sql


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
    packs_replanned: int = 0  # planned ahead, their plan no longer held: planned again
    split_attempts: int = 0  # transactions tried to split a failed batch (0: it committed)
    # (pack, exhausts_at) of the packs written that run out: for the notifier's schedule.
    exhaustions: list[tuple[int, datetime]] = field(default_factory=list)
    # (pack, instants of its low-balance crossings under way or ahead) of the packs written
    # with a threshold armed: the notifier schedules them without asking the database.
    crossings: list[tuple[int, list[datetime]]] = field(default_factory=list)

    def add(self, part: BatchOutcome) -> None:
        """Count a committed part of a split batch in this (the whole batch's) outcome."""
        self.appended += part.appended
        self.duplicates += part.duplicates
        self.refused += part.refused
        self.packs_written += part.packs_written
        self.packs_refolded += part.packs_refolded
        self.packs_parked += part.packs_parked
        self.packs_resumed += part.packs_resumed
        # A later part's instant is the newer fact; a stale one is harmless (the notifier
        # asks the database before it publishes).
        latest = dict(self.exhaustions)
        latest.update(part.exhaustions)
        self.exhaustions = list(latest.items())
        crossings = dict(self.crossings)
        crossings.update(part.crossings)
        self.crossings = list(crossings.items())
