"""Resuming a pack's state from a stored snapshot that may lag behind its ledger.

The consumer writes a pack's snapshot every few events, not on every batch (writing it
was a fifth of the hot path). A snapshot knows how many entries it reflects
(`event_count`) and the largest position among them (`max_position`); the entries it
misses are those of the pack above that position, provided the counts add up.
"""

from __future__ import annotations

from collections.abc import Iterable

from projections.fold import apply_in_order
from projections.state import LedgerEntry, PackState
from projections.terms import DEFAULT_TERMS, Terms


def resume(
    snapshot: PackState,
    tail: Iterable[LedgerEntry],
    event_count: int,
    *,
    terms: Terms = DEFAULT_TERMS,
) -> PackState | None:
    """`snapshot` brought up to `event_count` applied entries by `tail`, the pack's ledger
    entries with a position above `snapshot.max_position`; `snapshot` is changed in place.

    None when the two do not account for exactly `event_count` entries (an entry with a
    smaller position was committed after the snapshot was taken) or when the tail does not
    apply after the snapshot (a late event): the caller re-folds the pack from all its
    entries. The usage records the tail touches are already stored: they are not returned.
    """
    entries = list(tail)
    if snapshot.event_count + len(entries) != event_count:
        return None
    return snapshot if apply_in_order(snapshot, entries, terms=terms) is not None else None
