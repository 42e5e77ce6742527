"""The notifier's in-memory schedule: the latest instant per pack, due packs earliest first."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from services.consumer.exhaustion_schedule import ExhaustionSchedule

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_due_packs_come_earliest_first_and_leave_the_schedule() -> None:
    schedule = ExhaustionSchedule()
    schedule.watch(3, at(30))
    schedule.watch(1, at(10))
    schedule.watch(2, at(20))
    schedule.watch(4, at(40))

    assert schedule.pop_due(at(5), 10) == []
    assert schedule.pop_due(at(30), 10) == [1, 2, 3]  # due at `now` included
    assert len(schedule) == 1
    assert 3 not in schedule and 4 in schedule
    assert schedule.pop_due(at(30), 10) == []
    assert schedule.pop_due(at(100), 10) == [4]
    assert len(schedule) == 0


def test_at_most_limit_per_call_the_rest_stays() -> None:
    schedule = ExhaustionSchedule()
    for pack in range(10):
        schedule.watch(pack, at(pack))
    assert schedule.pop_due(at(100), 3) == [0, 1, 2]
    assert schedule.pop_due(at(100), 3) == [3, 4, 5]
    assert schedule.pop_due(at(100), 100) == [6, 7, 8, 9]


def test_the_latest_watch_of_a_pack_replaces_the_earlier_one() -> None:
    schedule = ExhaustionSchedule()
    schedule.watch(1, at(10))
    schedule.watch(1, at(50))  # a top-up moved it later
    schedule.watch(2, at(60))
    schedule.watch(2, at(20))  # a second training moved it earlier
    assert schedule.when(1) == at(50) and schedule.when(2) == at(20)

    assert schedule.pop_due(at(15), 10) == []  # the superseded instant is not due
    assert schedule.pop_due(at(20), 10) == [2]
    assert schedule.pop_due(at(59), 10) == [1]
    assert schedule.pop_due(at(1000), 10) == []  # pack 2's superseded 60 s neither


def test_back_to_an_earlier_instant_and_watched_again_after_popping() -> None:
    schedule = ExhaustionSchedule()
    schedule.watch(1, at(10))
    schedule.watch(1, at(20))
    schedule.watch(1, at(10))
    assert schedule.pop_due(at(30), 10) == [1]  # once, though three entries
    assert schedule.pop_due(at(30), 10) == []
    schedule.watch(1, at(20))  # its exhaustion again (e.g. found by a rescan)
    assert schedule.pop_due(at(30), 10) == [1]


def test_superseded_entries_do_not_count_against_the_limit() -> None:
    schedule = ExhaustionSchedule()
    for instant in range(50):  # every event of a pack moves its exhaustion
        schedule.watch(1, at(instant))
    schedule.watch(2, at(60))
    assert schedule.pop_due(at(100), 1) == [1]
    assert schedule.pop_due(at(100), 1) == [2]


def test_a_busy_pack_does_not_grow_the_heap_without_bound() -> None:
    schedule = ExhaustionSchedule()
    n = 100_000
    for instant in range(n):
        schedule.watch(instant % 3, at(instant))
    assert len(schedule._heap) <= 2 * 3 + 1024 + 1
    last = [(n - 3) % 3, (n - 2) % 3, (n - 1) % 3]  # by their latest instants
    assert schedule.pop_due(at(n), 10) == last


def test_matches_a_plain_model() -> None:
    """Random watches and pops against the obvious (slow) implementation."""
    rng = random.Random(3)
    schedule = ExhaustionSchedule()
    model: dict[int, datetime] = {}
    for step in range(20_000):
        if rng.random() < 0.8:
            pack, instant = rng.randrange(200), at(rng.randrange(step, step + 500))
            schedule.watch(pack, instant)
            model[pack] = instant
        else:
            now, limit = at(step), rng.randrange(1, 20)
            due = sorted((instant, pack) for pack, instant in model.items() if instant <= now)
            want = [pack for _, pack in due[:limit]]
            assert schedule.pop_due(now, limit) == want
            for pack in want:
                del model[pack]
        assert len(schedule) == len(model)
