"""Any arrival order and any duplication of a history gives the in-order state.

Histories are realistic: one to three packs, each with a purchase (and maybe conflicting
ones, earlier, at the same instant or later), adjustments, and starts/stops of a few
trainIds (so orphans, duplicate starts and repeated sessions of one trainId all occur).
Ties are drawn on purpose, as schedulers that stamp whole seconds make them: events of
every kind share instants, a training restarts at its stop's instant, a start and its
stop share one instant, and event ids do not follow time. Redelivered events (same `id`)
are deduplicated by the ledger before the fold, keeping the first arrival; positions are
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
    apply_in_order,
    exhausts_at,
    fold,
    purchase_order,
    remaining_at,
)
from projections.snapshot import from_snapshot, to_snapshot
from projections.state import LedgerEntry, PackState, UsageRecord
from projections.terms import DEFAULT_TERMS, Terms
from tests.support.examples import examples
from tests.unit.event_factory import (
    T0,
    adjusted,
    describe,
    heartbeat,
    purchased,
    started,
    stopped,
)

PROPERTY = settings(max_examples=examples(200), deadline=None)
ZONES = [timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]  # noqa: UP017
NOWS = [-10, 0, 3, 10.5, 20, 30, 45, 60, 61, 100, 400]


@dataclass(frozen=True)
class History:
    events: list[AnyPackEvent]  # every distinct fact, in time order per pack
    packs: list[int]


@st.composite
def pack_events(draw: st.DrawFn, pack: int, extra_purchases: int = 0) -> list[AnyPackEvent]:
    """One pack's facts: purchases, then adjustments, starts and stops, with ties."""

    def when(seconds: int) -> datetime:
        # Mostly whole seconds (ties), sometimes a fraction (sub-second lengths).
        fraction = draw(st.sampled_from([0, 0, 0, 250, 999]))
        instant = T0 + timedelta(seconds=seconds, milliseconds=fraction)
        return instant.astimezone(draw(st.sampled_from(ZONES)))

    def tag() -> str:
        return draw(st.sampled_from("abcdefghij"))  # ids whose order is not time order

    activity = draw(st.integers(0, 4)) == 0
    buy = draw(st.one_of(st.none(), st.integers(-100, 400)))
    bought = draw(st.integers(-100, 60))
    events: list[AnyPackEvent] = [
        purchased(
            when(bought),
            pack=pack,
            seconds=draw(st.integers(0, 90)),
            activity=activity,
            activity_end=(draw(st.one_of(st.none(), st.integers(0, 60))) if activity else None),
            buy=None if buy is None else when(buy),
            event_id=f"p{pack}-{tag()}-buy",
        )
    ]
    for n in range(extra_purchases):
        events.append(
            purchased(
                when(bought + draw(st.sampled_from([-5, 0, 0, 5]))),
                pack=pack,
                seconds=draw(st.integers(0, 90)),
                event_id=f"p{pack}-{tag()}-buy-{n}",
            )
        )
    count = draw(st.integers(0, 14))
    times = sorted(draw(st.lists(st.integers(0, 60), min_size=count, max_size=count)))
    kinds = ["start", "start", "stop", "stop", "adjust", "restart", "flash", "beat", "beat"]
    # Leases short enough that sessions lapse between events, at instants of events and
    # of other lapses (whole seconds), and some sessions without one.
    leases = [None, None, 1, 3, 10, 25]
    for n, second in enumerate(times):
        kind = draw(st.sampled_from(kinds))
        event_id = f"p{pack}-{tag()}-{n}"
        instant = when(second)
        if kind == "adjust":
            delta = draw(st.integers(-30, 30).filter(bool))
            events.append(adjusted(instant, delta, pack=pack, event_id=event_id))
            continue
        train = draw(st.integers(1, 3))
        if kind == "beat":  # renews a lease; of a lapsed or stopped session: kept for audit
            events.append(heartbeat(instant, train, pack=pack, event_id=f"{event_id}-{tag()}h"))
            continue
        if kind in ("stop", "restart"):  # restart: a stop and a start at one instant
            events.append(stopped(instant, train, pack=pack, event_id=f"{event_id}-{tag()}s"))
        if kind in ("start", "restart", "flash"):
            lease = draw(st.sampled_from(leases))
            start_id = f"{event_id}-{tag()}a"
            events.append(started(instant, train, pack=pack, event_id=start_id, lease=lease))
        if kind == "flash":  # a start and its stop at one instant
            events.append(stopped(instant, train, pack=pack, event_id=f"{event_id}-{tag()}z"))
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
    """One arrival order (purchases first, then by time, ties in generation order): the
    reference the others must agree with."""
    return sorted(events, key=lambda e: (not isinstance(e, PurchasedEvent), e.time))


def folded_views(
    entries: list[LedgerEntry], packs: list[int], terms: Terms = DEFAULT_TERMS
) -> dict[int, dict[str, Any]]:
    grouped = by_pack(entries)
    views = {}
    for pack in packs:
        result = fold(pack, grouped[pack], terms=terms)
        views[pack] = describe(result.state, result.records, NOWS)
    return views


def consume(
    entries: list[LedgerEntry], batch_ends: list[bool], terms: Terms = DEFAULT_TERMS
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
            apply(state, entry, records[pack], terms=terms)
        else:
            result = fold(pack, seen[pack], terms=terms)
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
    entries: list[LedgerEntry], batch_ends: list[bool], terms: Terms = DEFAULT_TERMS
) -> tuple[dict[int, PackState], dict[int, dict[int, UsageRecord]]]:
    """The projector's way: per batch and pack, load the snapshot, apply the batch's
    entries with `apply_in_order` if they all come after it, else re-fold."""
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
                changes = apply_in_order(state, pack_entries, terms=terms)
                if changes is None:
                    state = None
                else:
                    records[pack].update({k: replace(r) for k, r in changes.items()})
            if state is None:
                result = fold(pack, seen[pack], terms=terms)
                if result.state.purchase is None:
                    continue  # parked
                state = result.state
                records[pack] = {k: replace(r) for k, r in result.records.items()}
            snapshots[pack] = to_snapshot(state)
        batch = []
    return {pack: from_snapshot(doc) for pack, doc in snapshots.items()}, records


# The fold's settings: a default lease for starts without one, low-balance thresholds.
TERMS = st.builds(
    Terms,
    low_balance_seconds=st.sampled_from([(), (10,), (5, 30)]),
    default_lease_seconds=st.sampled_from([None, None, 4]),
)


@PROPERTY
@given(st.data())
def test_any_arrival_order_and_duplication_gives_the_in_order_state(data: st.DataObject) -> None:
    history = data.draw(histories())
    terms = data.draw(TERMS)
    expected = folded_views(ledger(in_order(history.events)), history.packs, terms)
    arrivals = data.draw(deliveries(history.events))
    assert folded_views(ledger(arrivals), history.packs, terms) == expected


@PROPERTY
@given(st.data())
def test_incremental_consumer_agrees_with_a_single_fold(data: st.DataObject) -> None:
    history = data.draw(histories())
    terms = data.draw(TERMS)
    entries = ledger(data.draw(deliveries(history.events)))
    batch_ends = data.draw(st.lists(st.booleans(), min_size=len(entries), max_size=len(entries)))
    states, records = consume(entries, batch_ends, terms)
    expected = folded_views(ledger(in_order(history.events)), history.packs, terms)
    got = {pack: describe(states[pack], records[pack], NOWS) for pack in history.packs}
    assert got == expected


@PROPERTY
@given(st.data())
def test_sorted_batches_agree_with_a_single_fold(data: st.DataObject) -> None:
    history = data.draw(histories())
    terms = data.draw(TERMS)
    entries = ledger(data.draw(deliveries(history.events)))
    batch_ends = data.draw(st.lists(st.booleans(), min_size=len(entries), max_size=len(entries)))
    states, records = consume_sorted_batches(entries, batch_ends, terms)
    expected = folded_views(ledger(in_order(history.events)), history.packs, terms)
    got = {pack: describe(states[pack], records[pack], NOWS) for pack in history.packs}
    assert got == expected


@PROPERTY
@given(st.data())
def test_in_order_consumer_refolds_only_at_a_shared_instant(data: st.DataObject) -> None:
    """Arrivals in time order apply without a re-fold, except an event at the instant of
    the last one applied (it may belong before it) and a second purchase (it may win)."""
    history = data.draw(histories())
    grouped = by_pack(ledger(in_order(history.events)))
    for pack, pack_entries in grouped.items():
        records: dict[int, UsageRecord] = {}
        first, *rest = pack_entries
        state = fold(pack, [first]).state
        seen = [first]
        for entry in rest:
            seen.append(entry)
            event = entry.event
            last = state.last_time
            shared = last is not None and event.time == last  # type: ignore[attr-defined]
            if isinstance(event, PurchasedEvent) or shared:
                assert not applies_in_order(state, entry)
                state = fold(pack, seen).state
            else:
                assert applies_in_order(state, entry)
                apply(state, entry, records)


@PROPERTY
@given(st.data())
def test_conflicting_purchases_earliest_then_smallest_id_wins(data: st.DataObject) -> None:
    history = data.draw(histories(extra_purchases=2))
    entries = ledger(data.draw(deliveries(history.events)))
    batch_ends = data.draw(st.lists(st.booleans(), min_size=len(entries), max_size=len(entries)))
    states, records = consume(entries, batch_ends)
    grouped = by_pack(entries)
    for pack in history.packs:
        ranked = sorted(
            (e for e in grouped[pack] if isinstance(e.event, PurchasedEvent)), key=purchase_order
        )
        purchases = [entry.event for entry in ranked]
        winner = purchases[0]
        assert isinstance(winner, PurchasedEvent)
        result = fold(pack, grouped[pack])
        state = result.state
        assert state.purchase is not None
        assert state.purchase.event_id == winner.id
        assert all((winner.time, winner.id) < (p.time, p.id) for p in purchases[1:])  # type: ignore[attr-defined]
        assert state.audit.conflicting_purchases == [p.id for p in purchases[1:]]  # type: ignore[attr-defined]
        assert state.granted - state.adjustments == (winner.data.durationSeconds or 0)
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
            at = entry.event.time  # type: ignore[attr-defined]
            # Some session runs up to the event: the exhaustion has not ended since (it
            # ends when every open session has lapsed).
            sessions = state.open_sessions.values()
            lasts = any(r.lease_ends_at is None or r.lease_ends_at >= at for r in sessions)
            apply(state, entry, records)
            still_exhausted = bool(state.open_sessions) and remaining_at(state, at) == 0
            if before is not None and before <= at and still_exhausted and lasts:
                assert exhausts_at(state) == before
                assert state.exhausted_since == before
            if not state.open_sessions:
                assert exhausts_at(state) is None
