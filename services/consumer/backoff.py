"""Exponential backoff between failed attempts, reset by a success."""

from __future__ import annotations

import asyncio


class Backoff:
    def __init__(self, first: float = 0.2, limit: float = 30.0) -> None:
        self._first = first
        self._limit = limit
        self._next = first

    async def wait(self) -> None:
        await asyncio.sleep(self._next)
        self._next = min(self._next * 2, self._limit)

    def reset(self) -> None:
        self._next = self._first
