"""The fold's settings, as an input of the fold like the events and `now`.

A pack's state depends on them (its low-balance crossings, the lease of a session started
without `leaseSeconds`), so every process that folds - the consumer, replay, verify, the
API's as-of reads, the notifier - passes the same `Terms`, built from the settings
(`services.settings.Settings.terms`). Passing them, rather than setting a module global
once per process, lets one process fold with two sets of terms (a test, a comparison) and
keeps the fold a function of its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.ids import MAX_LEASE_SECONDS


@dataclass(frozen=True, slots=True)
class Terms:
    # Low-balance thresholds in seconds (LEDGER_LOW_BALANCE_SECONDS), distinct and
    # ascending. The fold keeps, per threshold, whether `remaining` stands above it and
    # when it last fell to it.
    low_balance_seconds: tuple[int, ...] = (600,)
    # The lease of a session whose start has no `leaseSeconds`
    # (LEDGER_DEFAULT_LEASE_SECONDS); None: such sessions have no lease.
    default_lease_seconds: int | None = None

    def __post_init__(self) -> None:
        thresholds = self.low_balance_seconds
        if list(thresholds) != sorted(set(thresholds)) or any(t <= 0 for t in thresholds):
            raise ValueError(
                f"low-balance thresholds must be distinct, ascending, > 0: {thresholds}"
            )
        lease = self.default_lease_seconds
        if lease is not None and not 1 <= lease <= MAX_LEASE_SECONDS:
            raise ValueError(f"a default lease is 1-{MAX_LEASE_SECONDS} seconds, not {lease}")

    def lease_for(self, lease_seconds: int | None) -> int | None:
        """A session's lease: its start's `leaseSeconds`, else the default (maybe none)."""
        return self.default_lease_seconds if lease_seconds is None else lease_seconds


DEFAULT_TERMS = Terms()
