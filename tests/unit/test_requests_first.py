"""The stream's fan-out gives way to requests in flight (api/requests_first.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
from starlette.types import Receive, Scope, Send

from api.requests_first import CountInFlight, InFlight


def test_giving_way_returns_at_once_when_no_request_is_in_flight() -> None:
    async def main() -> float:
        requests = InFlight()
        started = time.perf_counter()
        await requests.give_way(at_most=5.0)
        return time.perf_counter() - started

    assert asyncio.run(main()) < 1.0


def test_giving_way_waits_for_the_last_request_to_end() -> None:
    async def main() -> list[str]:
        requests = InFlight()
        order: list[str] = []
        requests.begin()
        requests.begin()

        async def answer() -> None:
            await asyncio.sleep(0.01)
            requests.end()
            order.append("first ended")
            await asyncio.sleep(0.01)
            order.append("last ends")
            requests.end()

        task = asyncio.create_task(answer())
        await requests.give_way(at_most=5.0)
        order.append("fan-out goes on")
        await task
        return order

    assert asyncio.run(main()) == ["first ended", "last ends", "fan-out goes on"]


def test_giving_way_waits_no_longer_than_its_bound() -> None:
    async def main() -> tuple[float, int]:
        requests = InFlight()
        requests.begin()  # never ends: a steady stream of requests
        started = time.perf_counter()
        await requests.give_way(at_most=0.05)
        return time.perf_counter() - started, requests.count

    waited, count = asyncio.run(main())
    assert 0.04 <= waited < 2.0
    assert count == 1


def test_requests_are_counted_while_answered_streams_never() -> None:
    requests = InFlight()
    seen: dict[str, int] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen[scope["path"]] = requests.count
        if scope["path"] == "/fails":
            raise RuntimeError("a handler's bug")

    middleware = CountInFlight(app, requests, frozenset({"/stream"}))

    async def call(path: str) -> None:
        async def receive() -> dict[str, object]:
            return {"type": "http.disconnect"}

        async def send(message: object) -> None:
            pass

        await middleware({"type": "http", "path": path}, receive, send)

    async def main() -> None:
        await call("/list")
        await call("/stream")
        with pytest.raises(RuntimeError):
            await call("/fails")

    asyncio.run(main())
    assert seen == {"/list": 1, "/stream": 0, "/fails": 1}
    assert requests.count == 0 and requests.idle.is_set()
