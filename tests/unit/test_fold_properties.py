"""Any arrival order and any duplication of a history gives the in-order state.

Histories are realistic: one to three packs, each with one purchase, adjustments, and
starts/stops of a few trainIds at distinct times (so orphans, duplicate starts and
repeated sessions of one trainId all occur). Redelivered events (same `id`) are
deduplicated by the ledger before the fold, keeping the first arrival; positions are
assigned by arrival across all packs, as in the ledger.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from events.envelope import AnyPackEvent, PurchasedEvent
from projections import rules
from projections.fold import (
    applies_in_order,
    apply,
    exhausts_at,
    fold,
    remaining_at,
)
from projections.snapshot import from_snapshot, to_snapshot
from projections.state import LedgerEntry, PackState, UsageRecord
from tests.unit.event_factory import T0, adjusted, describe, purchased, started, stopped

PROPERTY = settings(max_examples=200, deadline=None)
ZONES = [timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]  # noqa: UP017
NOWS = [-10, 0, 30, 60.5, 100, 150, 250, 400, 1000]


@dataclass(frozen=True)
class History:
    events: list[AnyPackEvent]  # every distinct fact, in time order per pack
    packs: list[int]


@st.composite
def pack_events(draw: st.DrawFn, pack: int, extra_purchases: int = 0) -> list[AnyPackEvent]:
    """One pack's facts: a purchase, then adjustments, starts and stops at distinct times."""

    def when(ms: int) -> datetime:
        return (T0 + timedelta(milliseconds=ms)).astimezone(draw(st.sampled_from(ZONES)))

    activity = draw(st.integers(0, 4)) == 0
    buy = draw(st.one_of(st.none(), st.integers(-100_000, 400_000)))
    events: list[AnyPackEvent] = [
        purchased(
            when(draw(st.integers(-100_000, 400_000))),
            pack=pack,
            seconds=draw(st.integers(0, 200)),
            activity=activity,
            activity_end=(draw(st.one_of(st.none(), st.integers(0, 400))) if activity else None),
            buy=None if buy is None else when(buy),
            event_id=f"p{pack}-buy",
        )
    ]
    for n in range(extra_purchases):
        events.append(
            purchased(
                when(draw(st.integers(-100_000, 400_000))),
                pack=pack,
                seconds=draw(st.integers(0, 200)),
                event_id=f"p{pack}-buy-{n}",
            )
        )
    count = draw(st.integers(0, 14))
    times = draw(st.lists(st.integers(0, 400_000), min_size=count, max_size=count, unique=True))
    for n, ms in enumerate(sorted(times)):
        kind = draw(st.sampled_from(["start", "start", "stop", "stop", "adjust"]))
        event_id = f"p{pack}-{n}"
        if kind == "adjust":
            delta = draw(st.integers(-100, 100).filter(bool))
            events.append(adjusted(when(ms), delta, pack=pack, event_id=event_id))
        else:
            train = draw(st.integers(1, 3))
            build = started if kind == "start" else stopped
            events.append(build(when(ms), train, pack=pack, event_id=event_id))
    return events


@st.composite
def histories(draw: st.DrawFn, extra_purchases: int = 0) -> History:
    packs = list(range(1001, 1001 + draw(st.integers(1, 3))))
    events: list[AnyPackEvent] = []
    for pack in packs:
        events.extend(draw(pack_events(pack, extra_purchases)))
    return History(events, packs)


@st.composite
def deliveries(draw: st.DrawFn, events: list[AnyPackEvent]) -> list[AnyPackEvent]:
    """Any arrival order, with some facts delivered more than once."""
    arrivals = list(draw(st.permutations(events)))
    for event in draw(st.lists(st.sampled_from(events), max_size=6)):
        arrivals.insert(draw(st.integers(0, len(arrivals))), event)
    return arrivals


def ledger(arrivals: list[AnyPackEvent]) -> list[LedgerEntry]:
    """What the ledger keeps: the first arrival of each id, positioned by arrival."""
    seen: set[str] = set()
    kept: list[LedgerEntry] = []
    for event in arrivals:
        if event.id not in seen:
            seen.add(event.id)
            kept.append(LedgerEntry(len(kept) + 1, event))
    return kept


def pack_of(entry: LedgerEntry) -> int:
    return entry.event.data.userPackId  # type: ignore[attr-defined, no-any-return]


def by_pack(entries: list[LedgerEntry]) -> dict[int, list[LedgerEntry]]:
    grouped: dict[int, list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        grouped[pack_of(entry)].append(entry)
    return grouped


def split_ledgers(data: st.DataObject) -> Iterator[tuple[int, list[LedgerEntry], int]]:
    """For a drawn history delivered in a drawn order: each pack of at least two ledger
    entries, its entries and a drawn split point (the entries before it applied first)."""
    history = data.draw(histories())
    entries = ledger(data.draw(deliveries(history.events)))
    for pack, pack_entries in by_pack(entries).items():
        if len(pack_entries) >= 2:
            yield pack, pack_entries, data.draw(st.integers(1, len(pack_entries) - 1))


def in_order(events: list[AnyPackEvent]) -> list[AnyPackEvent]:
    """The arrival order that needs no re-fold: purchases first, then by time."""
    return sorted(events, key=lambda e: (not isinstance(e, PurchasedEvent), e.time))


def folded_views(entries: list[LedgerEntry], packs: list[int]) -> dict[int, dict[str, Any]]:
    grouped = by_pack(entries)
    views = {}
    for pack in packs:
        result = fold(pack, grouped[pack])
        views[pack] = describe(result.state, result.records, NOWS)
    return views


def consume(
    entries: list[LedgerEntry], batch_ends: list[bool]
) -> tuple[dict[int, PackState], dict[int, dict[int, UsageRecord]]]:
    """The live consumer: apply in-order entries, else re-fold the pack from the ledger.

    Between batches each touched state goes through its JSON snapshot and the usage
    records are copied, as if they had been written to and read back from the database.
    """
    states: dict[int, PackState] = {}
    records: dict[int, dict[int, UsageRecord]] = defaultdict(dict)
    seen: dict[int, list[LedgerEntry]] = defaultdict(list)
    touched: set[int] = set()
    for entry, batch_ends_here in zip(entries, batch_ends, strict=True):
        pack = pack_of(entry)
        seen[pack].append(entry)
        touched.add(pack)
        state = states.get(pack) or PackState(pack)
        if applies_in_order(state, entry):
            apply(state, entry, records[pack])
        else:
            result = fold(pack, seen[pack])
            state = result.state
            records[pack] = dict(result.records)  # a re-fold replaces the pack's records
        states[pack] = state
        if batch_ends_here:
            for pack in touched:
                document = json.loads(json.dumps(to_snapshot(states[pack])))
                states[pack] = from_snapshot(document)
                records[pack] = {k: replace(r) for k, r in records[pack].items()}
            touched.clear()
    return states, records


def consume_sorted_batches(
    entries: list[LedgerEntry], batch_ends: list[bool]
) -> tuple[dict[int, PackState], dict[int, dict[int, UsageRecord]]]:
    """The projector's way: per batch and pack, load the snapshot, apply the batch's
    entries sorted by (time, position) if every one applies in order, else re-fold."""
    snapshots: dict[int, dict[str, Any]] = {}
    records: dict[int, dict[int, UsageRecord]] = defaultdict(dict)
    seen: dict[int, list[LedgerEntry]] = defaultdict(list)
    batch: list[LedgerEntry] = []
    for entry, batch_ends_here in zip(entries, [*batch_ends[:-1], True], strict=True):
        batch.append(entry)
        if not batch_ends_here:
            continue
        for pack, pack_entries in by_pack(batch).items():
            seen[pack].extend(pack_entries)
            state: PackState | None = None
            if pack in snapshots:
                state = from_snapshot(json.loads(json.dumps(snapshots[pack])))
                changes: dict[int, UsageRecord] = {}
                for item in sorted(pack_entries, key=lambda e: (e.event.time, e.position)):  # type: ignore[attr-defined]
                    if not applies_in_order(state, item):
                        state = None
                        break
                    apply(state, item, changes)
                if state is not None:
                    records[pack].update({k: replace(r) for k, r in changes.items()})
            if state is None:
                result = fold(pack, seen[pack])
                if result.state.purchase is None:
                    continue  # parked
                state = result.state
                records[pack] = {k: replace(r) for k, r in result.records.items()}
            snapshots[pack] = to_snapshot(state)
        batch = []
    return {pack: from_snapshot(doc) for pack, doc in snapshots.items()}, records


@PROPERTY
@given(st.data())
def test_any_arrival_order_and_duplication_gives_the_in_order_state(data: st.DataObject) -> None:
    history = data.draw(histories())
    expected = folded_views(ledger(in_order(history.events)), history.packs)
    arrivals = data.draw(deliveries(history.events))
    assert folded_views(ledger(arrivals), history.packs) == expected


@PROPERTY
@given(st.data())
def test_incremental_consumer_agrees_with_a_single_fold(data: st.DataObject) -> None:
    history = data.draw(histories())
    entries = ledger(data.draw(deliveries(history.events)))
    batch_ends = data.draw(st.lists(st.booleans(), min_size=len(entries), max_size=len(entries)))
    states, records = consume(entries, batch_ends)
    expected = folded_views(ledger(in_order(history.events)), history.packs)
    got = {pack: describe(states[pack], records[pack], NOWS) for pack in history.packs}
    assert got == expected


@PROPERTY
@given(st.data())
def test_sorted_batches_agree_with_a_single_fold(data: st.DataObject) -> None:
    history = data.draw(histories())
    entries = ledger(data.draw(deliveries(history.events)))
    batch_ends = data.draw(st.lists(st.booleans(), min_size=len(entries), max_size=len(entries)))
    states, records = consume_sorted_batches(entries, batch_ends)
    expected = folded_views(ledger(in_order(history.events)), history.packs)
    got = {pack: describe(states[pack], records[pack], NOWS) for pack in history.packs}
    assert got == expected


@PROPERTY
@given(st.data())
def test_in_order_consumer_never_refolds(data: st.DataObject) -> None:
    """Arrivals in (purchase, time) order always apply: no re-fold is needed."""
    history = data.draw(histories())
    grouped = by_pack(ledger(in_order(history.events)))
    for pack, pack_entries in grouped.items():
        records: dict[int, UsageRecord] = {}
        first, *rest = pack_entries
        state = fold(pack, [first]).state
        for entry in rest:
            assert applies_in_order(state, entry)
            apply(state, entry, records)


@PROPERTY
@given(st.data())
def test_conflicting_purchases_first_arrival_wins(data: st.DataObject) -> None:
    history = data.draw(histories(extra_purchases=2))
    entries = ledger(data.draw(deliveries(history.events)))
    batch_ends = data.draw(st.lists(st.booleans(), min_size=len(entries), max_size=len(entries)))
    states, records = consume(entries, batch_ends)
    grouped = by_pack(entries)
    for pack in history.packs:
        purchases = [e.event for e in grouped[pack] if isinstance(e.event, PurchasedEvent)]
        result = fold(pack, grouped[pack])
        state = result.state
        assert state.purchase is not None
        assert state.purchase.event_id == purchases[0].id
        assert state.audit.conflicting_purchases == [p.id for p in purchases[1:]]
        assert state.granted - state.adjustments == (purchases[0].data.durationSeconds or 0)
        assert describe(states[pack], records[pack], NOWS) == describe(state, result.records, NOWS)


@PROPERTY
@given(histories())
def test_accounting_invariants(history: History) -> None:
    for pack, pack_entries in by_pack(ledger(in_order(history.events))).items():
        result = fold(pack, pack_entries)
        state = result.state
        assert state.purchase is not None
        timing = state.purchase.duration_type.value == "type.timing"
        closed = [r for r in result.records.values() if not r.is_open]
        opened = [r for r in result.records.values() if r.is_open]
        assert {r.train_id: r for r in opened} == state.open_sessions
        assert sum(r.charged_seconds or 0 for r in closed) == state.charged
        for record in closed:
            assert record.end_time is not None
            length = rules.elapsed_seconds(record.start_time, record.end_time)
            assert record.charged_seconds is not None and record.overrun_seconds is not None
            assert record.charged_seconds >= 0 and record.overrun_seconds >= 0
            assert record.charged_seconds + record.overrun_seconds == length
            if not timing:
                assert record.charged_seconds == 0
        for log_id, record in result.records.items():
            assert log_id == record.log_id == rules.log_id_for(record.start_event_id)
            assert 1 <= log_id < 2**63
        if not timing:
            assert state.charged == 0
            assert exhausts_at(state) is None
        instant = exhausts_at(state)
        if instant is not None:
            assert state.last_time is not None
            if state.exhausted_since is None:
                # still ahead: time is left until that very instant, and none at it
                assert instant >= state.last_time
                assert remaining_at(state, instant) == 0
                assert remaining_at(state, instant - timedelta(microseconds=1)) > 0
            else:
                # under way (a later top-up too small to cover the overrun keeps it so)
                assert instant == state.exhausted_since <= state.last_time
                assert remaining_at(state, state.last_time) == 0


@PROPERTY
@given(histories())
def test_one_notice_per_exhaustion(history: History) -> None:
    """While an exhaustion lasts, later events never move its instant (nor its notice id)."""
    for pack, pack_entries in by_pack(ledger(in_order(history.events))).items():
        first, *rest = pack_entries
        state = fold(pack, [first]).state
        records: dict[int, UsageRecord] = {}
        for entry in rest:
            before = exhausts_at(state)
            apply(state, entry, records)
            at = entry.event.time  # type: ignore[attr-defined]
            still_exhausted = bool(state.open_sessions) and remaining_at(state, at) == 0
            if before is not None and before <= at and still_exhausted:
                assert exhausts_at(state) == before
                assert state.exhausted_since == before
            if not state.open_sessions:
                assert exhausts_at(state) is None
