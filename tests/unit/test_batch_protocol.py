"""The batch protocol (`services/consumer/transaction.py`, `committer.py`) on the fake
store (`fake_store.py`): what commits, what is retried, what is planned again, what is
refused - no PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from projections.terms import Terms
from services.consumer.ahead import NOTHING_IN_FLIGHT, Handoff, plan_ahead
from services.consumer.committer import Committer
from services.consumer.parsing import parsed
from services.consumer.records import SourceRecord
from services.consumer.state_cache import StateCache
from tests.support.streams import envelope, expected_rows, purchase, stream
from tests.unit.fake_store import FakeDatabase, FakeStore, LostRace


def records(docs: list[dict[str, Any]], topic: str = "t", first: int = 0) -> list[SourceRecord]:
    return [
        SourceRecord(topic, 0, first + i, b"k", json.dumps(doc).encode())
        for i, doc in enumerate(docs)
    ]


def unique(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for doc in docs:
        seen.setdefault(doc["id"], doc)
    return list(seen.values())


async def test_batches_commit_every_event_once_with_their_offsets() -> None:
    arrivals = stream(packs=6, events_per_pack=30, seed=4)
    db = FakeDatabase()
    committer = Committer(FakeStore(db), StateCache())
    for start in range(0, len(arrivals), 25):
        await committer.commit(parsed(records(arrivals[start : start + 25], first=start)))
    assert db.rows() == expected_rows(arrivals)
    assert len(db.tables.ledger) == len({doc["id"] for doc in arrivals})
    assert db.tables.offsets == {("t", 0): len(arrivals)}
    assert db.rollbacks == 0


async def test_each_transaction_announces_the_packs_it_changed() -> None:
    arrivals = stream(packs=4, events_per_pack=10, seed=5)
    db = FakeDatabase()
    store = FakeStore(db)
    committer = Committer(store, StateCache())
    await committer.commit(parsed(records(arrivals[:20])))
    await committer.commit(parsed(records(arrivals[20:], first=20)))
    packs = [
        sorted({int(doc["data"]["userPackId"]) for doc in part})
        for part in (arrivals[:20], arrivals[20:])
    ]
    assert store.announced == packs
    assert db.calls.index("announce_changes") > db.calls.index("store_offsets")


async def test_a_plan_made_ahead_is_used_and_its_rows_can_be_inspected() -> None:
    docs = unique(stream(packs=3, events_per_pack=20, seed=8))
    first, second = docs[:30], docs[30:]
    db = FakeDatabase()
    cache = StateCache()
    committer = Committer(FakeStore(db), cache)
    handoff = Handoff()
    await committer.commit(parsed(records(first)), None, handoff)
    before = await handoff.wait()
    assert before is not None
    ahead = await plan_ahead(FakeStore(db), parsed(records(second, first=30)), before, cache)
    planned_packs = {row.user_pack_id for row in ahead.plan.dynamics}
    assert planned_packs == ahead.packs and planned_packs  # the plan is data
    assert ahead.plan.formatted is not None  # formatted by the store while planning
    outcome = await committer.commit(parsed(records(second, first=30)), ahead)
    assert outcome.packs_planned_ahead == len(planned_packs)
    assert outcome.packs_replanned == 0
    assert db.rows() == expected_rows(docs)


async def test_only_the_packs_another_writer_moved_are_planned_again() -> None:
    docs = unique(stream(packs=3, events_per_pack=24, seed=12))
    by_pack: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_pack.setdefault(str(doc["data"]["userPackId"]), []).append(doc)
    packs = sorted(by_pack)
    first = [doc for p in packs for doc in by_pack[p][:12]]
    theirs = by_pack[packs[1]][12:16]  # another consumer writes one pack meanwhile
    ours = [doc for p in packs for doc in by_pack[p][16:]]
    db = FakeDatabase()
    cache = StateCache()
    committer = Committer(FakeStore(db), cache)
    await committer.commit(parsed(records(first)))
    ahead = await plan_ahead(FakeStore(db), parsed(records(ours, "u")), NOTHING_IN_FLIGHT, cache)
    assert ahead.packs == {int(p) for p in packs}
    await Committer(FakeStore(db), StateCache()).commit(parsed(records(theirs, "o")))
    outcome = await committer.commit(parsed(records(ours, "u")), ahead)
    assert outcome.packs_replanned == 1  # only the pack the other writer moved
    assert outcome.packs_planned_ahead == 2
    assert db.rows() == expected_rows(first + theirs + ours)
    assert db.event_count(int(packs[1])) == 12 + 4 + len(by_pack[packs[1]][16:])


async def test_an_outage_is_waited_out_and_the_batch_committed_once() -> None:
    arrivals = stream(packs=2, events_per_pack=10, seed=3)
    db = FakeDatabase()
    store = FakeStore(db)
    db.fail("lock_versions", psycopg.OperationalError("server closed the connection"), times=2)
    handoff = Handoff()
    outcome = await Committer(store, StateCache(), max_backoff=0.01).commit(
        parsed(records(arrivals)), None, handoff
    )
    assert store.resets == 2  # the broken connection dropped before each retry
    assert db.rollbacks == 2 and db.commits == 1
    assert handoff.void  # the next batch must not plan on the first attempt's states
    assert outcome.split_attempts == 0
    assert db.rows() == expected_rows(arrivals)


@pytest.mark.parametrize(("losses", "split"), [(2, False), (10, True)])
async def test_a_lost_race_is_retried_then_split(losses: int, split: bool) -> None:
    arrivals = unique(stream(packs=2, events_per_pack=8, seed=5))
    db = FakeDatabase()
    db.fail("append_events", LostRace("duplicate key value"), times=losses)
    outcome = await Committer(FakeStore(db), StateCache(), max_backoff=0.01).commit(
        parsed(records(arrivals))
    )
    assert (outcome.split_attempts > 0) == split
    assert db.tables.offsets == {("t", 0): len(arrivals)}


async def test_a_poison_record_is_refused_alone_and_the_rest_commits() -> None:
    arrivals = unique(stream(packs=4, events_per_pack=12, seed=6))
    bad = arrivals[17]
    db = FakeDatabase(poison={bad["id"]})
    outcome = await Committer(FakeStore(db), StateCache()).commit(parsed(records(arrivals)))
    assert [r.kafka_offset for r in db.tables.refused.values()] == [17]
    assert next(iter(db.tables.refused.values())).reason.startswith("apply failed: ValueError")
    assert [r.kafka_offset for r in outcome.refused] == [17]
    assert set(db.tables.ledger) == {doc["id"] for doc in arrivals} - {bad["id"]}
    assert db.tables.offsets == {("t", 0): len(arrivals)}
    assert 0 < outcome.split_attempts <= 2 * 6 + 1  # the bound: 2 x ceil(log2 n) + 1
    rest = [doc for doc in arrivals if doc is not bad]
    assert db.rows() == expected_rows(rest)


async def test_a_split_voids_the_handoff_and_drops_the_cached_states() -> None:
    arrivals = unique(stream(packs=2, events_per_pack=10, seed=2))
    db = FakeDatabase(poison={arrivals[-1]["id"]})
    cache = StateCache()
    handoff = Handoff()
    await Committer(FakeStore(db), cache).commit(parsed(records(arrivals)), None, handoff)
    assert handoff.void
    for pack_id, (count, *_) in db.tables.packs.items():
        state = cache.take_any(pack_id)
        assert state is None or state.event_count == count  # never a state not stored


async def test_a_refusal_that_cannot_be_stored_fails_the_commit_and_writes_nothing() -> None:
    arrivals = unique(stream(packs=2, events_per_pack=6, seed=1))
    db = FakeDatabase(poison={arrivals[3]["id"]}, refusals_fail=True)
    with pytest.raises(ValueError, match="refusal"):
        await Committer(FakeStore(db), StateCache()).commit(parsed(records(arrivals)))
    assert db.tables.refused == {}
    assert db.tables.offsets == {("t", 0): 3}  # the records before it committed, in order


async def test_the_outcome_hands_over_each_armed_packs_crossings() -> None:
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    start = {"trainId": 1, "trainName": "t", "userId": 9, "userName": "u"}
    docs = [
        purchase(1, 9, t0, 1000),  # runs from t0 + 10 s: 600 left at +410 s, 60 at +950 s
        envelope(
            "start-1",
            "infinite.training.started",
            t0 + timedelta(seconds=10),
            start | {"userPackId": 1},
        ),
        purchase(2, 9, t0, 1000),  # nothing runs: no crossing ahead
        purchase(3, 9, t0, 30),  # under both thresholds from its purchase on: none armed
    ]
    committer = Committer(
        FakeStore(FakeDatabase()), StateCache(), terms=Terms(low_balance_seconds=(60, 600))
    )
    outcome = await committer.commit(parsed(records(docs)))
    crossings = dict(outcome.crossings)
    assert sorted(crossings[1]) == [t0 + timedelta(seconds=410), t0 + timedelta(seconds=950)]
    assert crossings[2] == []
    assert 3 not in crossings
