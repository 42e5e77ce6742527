"""The one retry mechanism (`services/retry.py`): its delays, what it retries, what it
logs, and its cap."""

from __future__ import annotations

import logging

import pytest

from services.retry import Backoff, retrying


class Waits:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def test_the_delays_double_up_to_the_limit_and_a_success_resets_them() -> None:
    waits = Waits()
    backoff = Backoff(0.2, 30.0, sleep=waits)
    for _ in range(10):
        await backoff.wait()
    assert waits.seconds == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]
    backoff.reset()
    await backoff.wait()
    assert waits.seconds[-1] == 0.2


async def test_failures_named_are_retried_with_a_line_each_others_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits = Waits()
    failures = [ConnectionError("gone"), ConnectionError("still gone")]
    dropped: list[BaseException] = []

    async def work() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    async def drop(error: BaseException) -> None:
        dropped.append(error)

    def why(error: BaseException) -> str | None:
        return f"database unavailable ({error})" if isinstance(error, ConnectionError) else None

    with caplog.at_level(logging.WARNING):
        result = await retrying(
            work, why, Backoff(0.2, 30.0, sleep=waits), logging.getLogger("t"), before_retry=drop
        )
    assert result == "done"
    assert waits.seconds == [0.2, 0.4]
    assert len(dropped) == 2
    assert [r.getMessage() for r in caplog.records] == [
        "database unavailable (gone); retrying in 0.2s",
        "database unavailable (still gone); retrying in 0.4s",
    ]

    async def bug() -> str:
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        await retrying(bug, why, Backoff(sleep=waits), logging.getLogger("t"))
    assert len(waits.seconds) == 2  # not waited: raised at once


async def test_attempts_cap_the_retries() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("broken")

    with pytest.raises(ConnectionError):
        await retrying(
            broken, lambda e: "broken", Backoff(0.0, 0.0), logging.getLogger("t"), attempts=2
        )
    assert calls == 2
