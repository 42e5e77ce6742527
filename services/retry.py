"""Retrying with backoff: the one mechanism the consumer's commits, the exhaustion
notifier and the API's reads share.

`Backoff` is the schedule (a first delay doubling up to a limit, reset by a success);
`retrying` runs one piece of work until it succeeds, waiting the schedule's delays
between attempts, for the failures its caller says are worth waiting out (an outage, a
race lost to another writer, a broken connection), and raising every other one at once.
The caller also says what to log: one line per retry names the failure and the delay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Backoff:
    """Exponential backoff between failed attempts, reset by a success."""

    def __init__(
        self,
        first: float = 0.2,
        limit: float = 30.0,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,  # tests count the waits
    ) -> None:
        self._first = first
        self._limit = limit
        self._next = first
        self._sleep = sleep

    @property
    def next_delay(self) -> float:
        return self._next

    async def wait(self) -> None:
        await self._sleep(self._next)
        self._next = min(self._next * 2, self._limit)

    def reset(self) -> None:
        self._next = self._first


Why = Callable[[BaseException], "str | None"]
"""Why a failure is retried (the start of its log line), or None: raise it."""


async def retrying(
    work: Callable[[], Awaitable[T]],
    why: Why,
    backoff: Backoff,
    log: logging.Logger,
    *,
    attempts: int | None = None,
    before_retry: Callable[[BaseException], Awaitable[None]] | None = None,
) -> T:
    """`work()` until it succeeds; a failure `why` names is logged ("<why>; retrying in
    0.4s"), `before_retry` runs (drop a broken connection...), the backoff waits and the
    work runs again, at most `attempts` times in all (None: no limit). Any other failure,
    and the last one past `attempts`, is raised."""
    tried = 0
    while True:
        tried += 1
        try:
            result = await work()
        except Exception as error:
            reason = why(error)
            if reason is None or (attempts is not None and tried >= attempts):
                raise
            log.warning("%s; retrying in %.1fs", reason, backoff.next_delay)
            if before_retry is not None:
                await before_retry(error)
            await backoff.wait()
            continue
        backoff.reset()
        return result
