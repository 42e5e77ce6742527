"""A snapshot that lags behind its ledger resumes to the fold's own state, or says it cannot.

The consumer writes a pack's snapshot only every few events; a process without the
state in memory resumes from the snapshot and the entries above its max position
(`projections.resume`). Whatever the arrival order, the result is the fold of all the
entries, or None (the pack is then re-folded): never a wrong state.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from events.envelope import PurchasedEvent
from projections.fold import fold
from projections.resume import resume
from projections.snapshot import from_snapshot, to_snapshot
from projections.state import LedgerEntry, PackState
from tests.unit.event_factory import PACK, describe, purchased, started, stopped
from tests.unit.test_fold_properties import (
    NOWS,
    PROPERTY,
    by_pack,
    histories,
    in_order,
    ledger,
    split_ledgers,
)


def stored(state: PackState) -> PackState:
    """The state as the database gives it back."""
    return from_snapshot(json.loads(json.dumps(to_snapshot(state))))


def view(state: PackState) -> dict[str, object]:
    return describe(state, {}, NOWS)


@PROPERTY
@given(st.data())
def test_resume_gives_the_fold_of_every_entry_or_none(data: st.DataObject) -> None:
    for pack, pack_entries, taken in split_ledgers(data):
        snapshot = fold(pack, pack_entries[:taken]).state
        if snapshot.purchase is None:
            continue  # parked packs have no snapshot
        tail = [e for e in pack_entries if e.position > snapshot.max_position]
        expected = fold(pack, pack_entries).state
        resumed = resume(stored(snapshot), tail, expected.event_count)
        if resumed is not None:
            assert view(resumed) == view(expected)
            assert resumed.max_position == expected.max_position


@PROPERTY
@given(st.data())
def test_in_order_tails_always_resume(data: st.DataObject) -> None:
    """The consumer's common case: the snapshot lags by events that came after it. Only
    a tail event at the snapshot's last instant (it may belong before what the snapshot
    applied) or a second purchase (it may win) sends the pack to a re-fold."""
    history = data.draw(histories(extra_purchases=data.draw(st.integers(0, 1))))
    entries = ledger(in_order(history.events))
    for pack, pack_entries in by_pack(entries).items():
        taken = data.draw(st.integers(1, len(pack_entries)))
        snapshot = fold(pack, pack_entries[:taken]).state
        expected = fold(pack, pack_entries).state
        tail = [e for e in pack_entries if e.position > snapshot.max_position]
        resumed = resume(stored(snapshot), tail, expected.event_count)
        must_refold = any(
            isinstance(e.event, PurchasedEvent) or e.event.time == snapshot.last_time  # type: ignore[attr-defined]
            for e in tail
        )
        if must_refold:
            assert resumed is None
        else:
            assert resumed is not None
            assert view(resumed) == view(expected)


def test_an_entry_below_the_max_position_committed_later_is_detected() -> None:
    """Two writers: the entry at position 3 committed after a snapshot that applied 4.
    The tail above 4 misses it; the counts do not add up, so the pack is re-folded."""
    entries = [
        LedgerEntry(1, purchased(0, seconds=100)),
        LedgerEntry(2, started(1, 1)),
        LedgerEntry(4, stopped(9, 1)),
        LedgerEntry(3, started(5, 2)),
    ]
    snapshot = fold(PACK, entries[:3]).state
    assert snapshot.max_position == 4
    tail = [e for e in entries if e.position > snapshot.max_position]
    assert tail == []
    assert resume(stored(snapshot), tail, 4) is None


def test_a_late_entry_in_the_tail_is_refused() -> None:
    """An entry earlier in event time than the snapshot's last: only a re-fold is exact."""
    entries = [
        LedgerEntry(1, purchased(0, seconds=100)),
        LedgerEntry(2, started(10, 1)),
        LedgerEntry(3, started(5, 2)),
    ]
    snapshot = fold(PACK, entries[:2]).state
    assert resume(stored(snapshot), entries[2:], 3) is None


def test_resume_does_not_need_the_tail_in_order() -> None:
    entries = [
        LedgerEntry(1, purchased(0, seconds=100)),
        LedgerEntry(2, started(1, 1)),
        LedgerEntry(3, stopped(9, 1)),
        LedgerEntry(4, started(12, 2)),
    ]
    snapshot = fold(PACK, entries[:2]).state
    expected = fold(PACK, entries).state
    resumed = resume(stored(snapshot), [entries[3], entries[2]], 4)
    assert resumed is not None
    assert view(resumed) == view(expected)
