"""Requests first: the stream's fan-out gives way to the requests being answered.

A request and the stream share the process's event loop, and the loop runs whatever is
ready in order: a request that becomes ready while the hub has just woken a slice of
stream clients waits for their writes, at each of its steps (read, query, answer). The
stream's budget is about a second; a request's is milliseconds. So the hub, before each
slice of its work, waits until no request is in flight - at most `GIVE_WAY_SECONDS`, so
that under a steady stream of requests the stream still moves (a slice at least every
few milliseconds). `benchmarks/stream_bench.py` measures the list's tail with and
without stream clients.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Receive, Scope, Send

GIVE_WAY_SECONDS = 0.002


class InFlight:
    """How many requests (streams excluded) are being answered."""

    __slots__ = ("count", "idle")

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def begin(self) -> None:
        self.count += 1
        self.idle.clear()

    def end(self) -> None:
        self.count -= 1
        if not self.count:
            self.idle.set()

    async def give_way(self, at_most: float = GIVE_WAY_SECONDS) -> None:
        """Return once no request is in flight, or after `at_most` seconds."""
        if self.count:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(at_most):
                    await self.idle.wait()


class CountInFlight:
    """ASGI middleware: counts the HTTP requests in flight, except the paths in `exclude`
    (a stream is in flight for as long as its client listens)."""

    def __init__(self, app: ASGIApp, in_flight: InFlight, exclude: frozenset[str]) -> None:
        self.app = app
        self.in_flight = in_flight
        self.exclude = exclude

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exclude:
            await self.app(scope, receive, send)
            return
        self.in_flight.begin()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight.end()
