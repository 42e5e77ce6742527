"""A Server-Sent Events client for tests: each event as (type, data), in a queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson


class SseClient:
    """Reads a stream in a task; `next` waits for the next event (comments are counted)."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.comments = 0
        self.ended = asyncio.Event()
        self.complete = False  # the answer ended as HTTP says (not cut off)

    async def read(self, http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        try:
            async with http.stream("GET", url, headers=headers) as response:
                assert response.status_code == 200, response.status_code
                assert response.headers["content-type"].startswith("text/event-stream")
                event, data = "message", ""
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        self.comments += 1
                    elif line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data = line[6:]
                    elif line == "" and data:
                        await self.events.put((event, orjson.loads(data)))
                        event, data = "message", ""
            self.complete = True
        finally:
            self.ended.set()

    async def next(self, seconds: float = 5.0) -> tuple[str, Any]:
        return await asyncio.wait_for(self.events.get(), seconds)

    async def until(self, predicate: Any, seconds: float = 5.0) -> tuple[str, Any]:
        """The first event for which `predicate(type, data)` holds."""
        async with asyncio.timeout(seconds):
            while True:
                event, data = await self.events.get()
                if predicate(event, data):
                    return event, data


@contextlib.asynccontextmanager
async def sse(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[SseClient]:
    client = SseClient()
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=60)) as http:
        task = asyncio.create_task(client.read(http, url, headers or {}))
        try:
            yield client
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await task
