"""The stream's pieces without a server: payload chunks, per-client queues, frames, the
clock's keep-alive and expiry, and one stream's ASGI answer driven by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from api.auth import Caller
from api.db import Database
from api.live import Hub, Subscriber, frame
from api.routes.stream import KEEPALIVE, OVERFLOW, EventStream, next_write
from services.store.live_sql import PAYLOAD_LIMIT, parse_payload, payload_chunks


def test_chunks_stay_under_the_payload_limit_and_keep_every_id() -> None:
    ids = [2**63 - 1 - n for n in range(2000)] + [1, 22, 333]
    chunks = list(payload_chunks(ids))
    assert len(chunks) > 1
    assert all(len(chunk.encode()) <= PAYLOAD_LIMIT < 8000 for chunk in chunks)
    assert [i for chunk in chunks for i in parse_payload(chunk)] == ids
    assert list(payload_chunks([])) == []


def test_a_client_holds_one_frame_per_pack_the_newest() -> None:
    client = Subscriber(Caller(user_id=1, is_admin=False), limit=3)
    client.offer(10, b"a")
    client.offer(11, b"b")
    client.offer(10, b"c")
    assert client.wake.is_set()
    assert client.take() == [b"c", b"b"]
    assert not client.wake.is_set() and not client.dropped


def test_a_client_too_far_behind_is_dropped_and_holds_nothing() -> None:
    client = Subscriber(Caller(user_id=1, is_admin=False), limit=3)
    for pack in range(3):
        client.offer(pack, b"x")
    client.offer(2, b"y")  # a newer state of a pending pack still fits
    assert not client.dropped
    client.offer(3, b"z")
    assert client.dropped and client.pending == {}
    client.offer(4, b"w")
    assert client.pending == {}


def test_a_frame_is_one_event_with_its_json_on_one_line() -> None:
    text = frame("pack", {"packName": "两\n行"})
    event, data, end = text.split(b"\n", 2)
    assert event == b"event: pack"
    assert orjson.loads(data.removeprefix(b"data: ")) == {"packName": "两\n行"}
    assert end == b"\n"


def test_the_clock_wakes_a_quiet_client_and_ends_an_expired_one() -> None:
    quiet = Subscriber(Caller(user_id=1, is_admin=False), limit=3, expires=1_000.0)
    quiet.take()
    written = quiet.taken_at
    quiet.tick(wall=999.0, now=written + 14.9, keepalive=15)
    assert not quiet.wake.is_set()
    quiet.tick(wall=999.0, now=written + 15.0, keepalive=15)
    assert quiet.wake.is_set() and not quiet.expired
    assert next_write(quiet) == (KEEPALIVE, False)

    quiet.tick(wall=1_000.0, now=written, keepalive=15)
    assert quiet.expired and quiet.wake.is_set()
    body, ends = next_write(quiet)
    assert ends and body.startswith(b"event: error\n") and b"General.TokenExpired" in body


def test_a_woken_client_is_sent_its_frames_then_resync_and_overflow_ends_it() -> None:
    client = Subscriber(Caller(user_id=1, is_admin=False), limit=2)
    client.offer(10, b"a")
    client.offer(11, b"b")
    client.resync = True
    assert next_write(client) == (b"ab" + frame("resync", {}), False)
    assert not client.resync
    for pack in range(3):
        client.offer(pack, b"x")
    assert next_write(client) == (OVERFLOW, True)


class _Asgi:
    """The server's side of one stream: what it sent, and the client leaving."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.requested = False

    async def receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


def _hub() -> Hub:
    # Never started: subscribing and offering need no database.
    return Hub("postgresql://unused", Database("postgresql://unused"), lambda: datetime.now(UTC))


async def _soon(condition: Callable[[], bool]) -> None:
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("not within 100 turns of the loop")


async def test_an_event_stream_writes_each_wake_and_stops_when_the_client_leaves() -> None:
    hub, server = _hub(), _Asgi()
    answer = EventStream(hub, Caller(user_id=7, is_admin=False), expires=float("inf"))
    task = asyncio.create_task(answer({"type": "http"}, server.receive, server.send))  # type: ignore[arg-type]
    await _soon(lambda: len(hub) == 1 and len(server.bodies()) == 1)
    assert server.sent[0]["type"] == "http.response.start"
    assert (b"content-type", b"text/event-stream; charset=utf-8") in server.sent[0]["headers"]
    assert server.bodies()[0].endswith(frame("ready", {}))

    (subscriber,) = hub._everyone()
    subscriber.offer(3, b"event: pack\n\n")
    await _soon(lambda: len(server.bodies()) == 2)
    assert server.sent[-1] == {
        "type": "http.response.body",
        "body": b"event: pack\n\n",
        "more_body": True,
    }

    server.gone.set()
    await asyncio.wait_for(task, 1)
    assert len(hub) == 0 and len(server.bodies()) == 2  # nothing written after it left


async def test_an_event_stream_ends_with_the_expiry_error_as_its_last_body() -> None:
    hub, server = _hub(), _Asgi()
    answer = EventStream(hub, Caller(user_id=7, is_admin=False), expires=50.0)
    task = asyncio.create_task(answer({"type": "http"}, server.receive, server.send))  # type: ignore[arg-type]
    await _soon(lambda: len(hub) == 1)
    (subscriber,) = hub._everyone()
    subscriber.tick(wall=50.0, now=0.0, keepalive=15)
    await asyncio.wait_for(task, 1)
    last = server.sent[-1]
    assert last["more_body"] is False and b"General.TokenExpired" in last["body"]
    assert len(hub) == 0


async def test_an_event_stream_cancelled_by_the_servers_shutdown_ends_as_a_stream_ends() -> None:
    hub, server = _hub(), _Asgi()
    answer = EventStream(hub, Caller(user_id=7, is_admin=False), expires=float("inf"))
    task = asyncio.create_task(answer({"type": "http"}, server.receive, server.send))  # type: ignore[arg-type]
    await _soon(lambda: len(server.bodies()) == 1)
    task.cancel()  # what uvicorn does once its shutdown grace is over
    await asyncio.wait_for(task, 1)  # returns: no error for the server to log
    assert server.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert len(hub) == 0
