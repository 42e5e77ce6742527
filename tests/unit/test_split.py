"""The splitting rule of a failed batch (`services/consumer/split.py`), with a fake apply:
which records are refused, that the rest commits in order, and the bound on attempts."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence

import pytest

from services.consumer.split import Settled, settle


class Outage(Exception):
    pass


class FakeLedger:
    """Commits segments of ints; a segment holding a poison item fails as a whole."""

    def __init__(self, poison: set[int], outage_at: int | None = None) -> None:
        self.poison = poison
        self.committed: list[int] = []
        self.refused: list[int] = []
        self.attempts = 0
        self.outage_at = outage_at

    async def apply(self, segment: Sequence[int]) -> None:
        self.attempts += 1
        if self.attempts == self.outage_at:
            raise Outage("the database went away")
        bad = [item for item in segment if item in self.poison]
        if bad:
            raise OverflowError(f"date value out of range ({bad[0]})")
        self.committed.extend(segment)

    async def refuse(self, item: int, error: BaseException) -> None:
        self.refused.append(item)

    def run(self, items: list[int], max_attempts: int = 64) -> Settled[int]:
        return asyncio.run(
            settle(
                items,
                OverflowError("the whole batch"),
                self.apply,
                self.refuse,
                lambda error: not isinstance(error, Outage),
                max_attempts,
            )
        )


def bound(n: int, k: int) -> int:
    return k * (2 * math.ceil(math.log2(n)) + 1)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 1000, 50_000])
def test_one_poison_record_is_refused_the_rest_commits_in_order(n: int) -> None:
    for poison in {0, n // 3, n - 1}:
        ledger = FakeLedger({poison})
        settled = ledger.run(list(range(n)))
        assert ledger.refused == [poison]
        assert [e for e, _ in settled.refused] == [poison]
        # Its own error (a batch of one failed with it already: no second attempt).
        want = "the whole batch" if n == 1 else "date value out of range"
        assert want in str(settled.refused[0][1])
        assert ledger.committed == [i for i in range(n) if i != poison]
        assert settled.committed == n - 1
        assert settled.attempts == ledger.attempts <= max(1, bound(n, 1))
        assert not settled.one_by_one


def test_several_poison_records_cost_about_k_log_n_attempts() -> None:
    rng = random.Random(5)
    for _ in range(30):
        n = rng.randint(2, 5000)
        poison = set(rng.sample(range(n), rng.randint(1, min(n, 5))))
        ledger = FakeLedger(poison)
        settled = ledger.run(list(range(n)), max_attempts=10_000)
        assert ledger.refused == sorted(poison)
        assert ledger.committed == [i for i in range(n) if i not in poison]
        assert settled.attempts <= bound(n, len(poison)), (n, poison, settled.attempts)


def test_past_the_cap_the_rest_goes_one_by_one_and_still_refuses_exactly() -> None:
    n = 400
    poison = set(range(0, n, 7))  # 58 of them: far past any bisection budget
    ledger = FakeLedger(poison)
    settled = ledger.run(list(range(n)), max_attempts=20)
    assert settled.one_by_one
    assert ledger.refused == sorted(poison)
    assert ledger.committed == [i for i in range(n) if i not in poison]
    assert settled.attempts <= 20 + n


def test_every_record_failing_refuses_every_record() -> None:
    ledger = FakeLedger(set(range(50)))
    settled = ledger.run(list(range(50)))
    assert ledger.refused == list(range(50))
    assert ledger.committed == []
    assert settled.attempts <= 64 + 50


def test_an_outage_while_splitting_propagates_and_keeps_what_committed() -> None:
    ledger = FakeLedger({70}, outage_at=3)
    with pytest.raises(Outage):
        ledger.run(list(range(100)))
    assert ledger.refused == []
    assert ledger.committed == list(range(len(ledger.committed)))  # a prefix, in order
    # Run again (the consumer retries the batch): the rest settles the same way.
    again = FakeLedger({70})
    again.run([i for i in range(100) if i not in ledger.committed])
    assert again.refused == [70]


def test_a_failure_only_of_the_whole_commits_everything_in_parts() -> None:
    # The whole failed (e.g. a conflict inside one transaction), no part fails on its own.
    ledger = FakeLedger(set())
    settled = ledger.run(list(range(10)))
    assert ledger.refused == []
    assert ledger.committed == list(range(10))
    # The right halves are inferred to fail, split, and their single last items tried.
    assert settled.attempts <= bound(10, 1)
