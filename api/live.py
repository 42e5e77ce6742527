"""The stream's hub: one LISTEN connection per API process, fan-out in memory.

The consumer (per batch) and the exhaustion notifier (per recorded notice) NOTIFY the
ids of the packs they changed (`services.store.live_sql`). The hub collects the ids of
every notification, and a few times a second reads those packs once (one statement for
all of them, as of one instant) and offers each, as a ready-made SSE frame, to the
subscribers that may see it: its owner's and the admins'.

A subscriber's queue holds at most one frame per pack (a newer state replaces the one
not sent yet) and at most `limit` packs: a client that falls further behind is dropped
(`dropped`), so a slow client costs its own memory only, never the hub's pace or the
other clients'. The hub never waits for a client: offering is a dict assignment.

When the LISTEN connection is lost (the database restarts), notifications may be lost
with it: once listening again, every subscriber is told to read afresh (`resync`).

Once a second the hub's clock goes over the subscribers: a client whose token has expired
is told so (`expired`), a client sent nothing for `keepalive` seconds is woken to send a
keep-alive comment. So a client waits on its `wake` alone, with no timer of its own armed
for each frame (an `asyncio.timeout` around each wait was 17% of the stream writers'
samples in a profile of `benchmarks/stream_bench.py`; the socket write itself 53%).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import psycopg

from api import rows, views
from api.auth import Caller
from api.db import Database
from api.requests_first import InFlight
from services.store import live_sql, read_sql
from services.store.copy_text import int_array

log = logging.getLogger("api.live")

# A fan-out's work between two turns of the event loop (requests are served between,
# and go first: `api.requests_first`).
ROWS_PER_TURN = 8
WAKES_PER_TURN = 4
KEEPALIVE_SECONDS = 15.0  # a comment line after this long without a frame (CONTRACT.md)
TICK_SECONDS = 1.0  # the clock's pace: expiry and keep-alive within a second


def frame(event: str, data: Any) -> bytes:
    """One Server-Sent Event: its type and its JSON data (one line: JSON has no newline)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class Subscriber:
    """One stream client: the frames not sent yet, at most one per pack."""

    __slots__ = (
        "caller",
        "dropped",
        "expired",
        "expires",
        "left",
        "limit",
        "pending",
        "resync",
        "taken_at",
        "wake",
    )

    def __init__(self, caller: Caller, limit: int, expires: float = float("inf")) -> None:
        self.caller = caller
        self.limit = limit
        self.expires = expires  # the token's `exp`, Unix seconds
        self.pending: dict[int, bytes] = {}
        self.resync = False  # changes may have been missed: the client must read afresh
        self.dropped = False  # too far behind: the stream ends
        self.expired = False  # the token expired: the stream ends
        self.left = False  # the client went away: nothing more to send
        self.taken_at = time.monotonic()  # when its writer last took what was pending
        self.wake = asyncio.Event()

    def offer(self, pack_id: int, data: bytes, *, wake: bool = True) -> None:
        """Hold `data` as the pack's next frame; `wake=False`: the caller wakes the client
        later (`wake.set()`)."""
        if self.dropped:
            return
        if pack_id not in self.pending and len(self.pending) >= self.limit:
            self.dropped = True
            self.pending.clear()
        else:
            self.pending[pack_id] = data
        if wake:
            self.wake.set()

    def take(self) -> list[bytes]:
        """What is pending, in the order the packs first changed; the queue empties."""
        taken = list(self.pending.values())
        self.pending.clear()
        self.wake.clear()
        self.taken_at = time.monotonic()
        return taken

    def tick(self, wall: float, now: float, keepalive: float) -> None:
        """The hub's clock (`wall`: Unix seconds, `now`: monotonic): wake the writer when
        the token has expired, or when it has sent nothing for `keepalive` seconds."""
        if wall >= self.expires:
            self.expired = True
            self.wake.set()
        elif now - self.taken_at >= keepalive:
            self.wake.set()

    def leave(self) -> None:
        """The client went away: its writer stops."""
        self.left = True
        self.wake.set()


class Hub:
    def __init__(
        self,
        conninfo: str,
        db: Database,
        clock: Callable[[], datetime],
        *,
        interval: float = 0.1,
        limit: int = 1000,
        keepalive: float = KEEPALIVE_SECONDS,
        requests: InFlight | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._db = db
        self._clock = clock
        self._interval = interval  # seconds between fan-outs: the changes coalesce
        self._limit = limit
        self._keepalive = keepalive
        self._requests = requests or InFlight()  # none counted: never waits
        self._by_owner: dict[int, set[Subscriber]] = {}
        self._admins: set[Subscriber] = set()
        self._changed: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()  # set while the LISTEN connection is up

    def __len__(self) -> int:
        return len(self._admins) + sum(len(group) for group in self._by_owner.values())

    def subscribe(self, caller: Caller, expires: float = float("inf")) -> Subscriber:
        subscriber = Subscriber(caller, self._limit, expires)
        if caller.is_admin:
            self._admins.add(subscriber)
        else:
            self._by_owner.setdefault(caller.user_id, set()).add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber.caller.is_admin:
            self._admins.discard(subscriber)
            return
        group = self._by_owner.get(subscriber.caller.user_id)
        if group is not None:
            group.discard(subscriber)
            if not group:
                del self._by_owner[subscriber.caller.user_id]

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="live-listen"),
            asyncio.create_task(self._fan_out(), name="live-fan-out"),
            asyncio.create_task(self._clock_ticks(), name="live-clock"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _listen(self) -> None:
        wait = 0.25
        first = True
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, application_name="ledger-api-live"
                )
                async with conn:
                    await conn.execute(live_sql.LISTEN)
                    self.listening.set()
                    if not first:  # notifications sent while it was down are lost
                        self._resync_all()
                    first = False
                    wait = 0.25
                    async for notification in conn.notifies():
                        self._changed.update(live_sql.parse_payload(notification.payload))
            except psycopg.Error as error:
                log.warning("stream: LISTEN connection lost (%s); again in %.2f s", error, wait)
            self.listening.clear()
            await asyncio.sleep(wait)
            wait = min(wait * 2, 5.0)

    def _resync_all(self) -> None:
        for subscriber in self._everyone():
            subscriber.resync = True
            subscriber.wake.set()

    async def _clock_ticks(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            wall, now = time.time(), time.monotonic()
            for subscriber in self._everyone():
                subscriber.tick(wall, now, self._keepalive)

    def _everyone(self) -> list[Subscriber]:
        return [*self._admins, *(s for group in self._by_owner.values() for s in group)]

    async def _fan_out(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not self._changed:
                continue
            changed, self._changed = self._changed, set()
            try:
                await self._send(sorted(changed))
            except Exception:
                # The pool answers RpcServerError to requests meanwhile; the clients
                # must read afresh, as after a lost notification.
                log.exception("stream: reading %d changed packs failed", len(changed))
                self._resync_all()

    async def _send(self, pack_ids: list[int]) -> None:
        if not len(self):
            return
        params = {
            "at": self._clock(),
            "user_pack_ids": int_array(pack_ids),
            "every_owner": bool(self._admins),
            "owners": int_array(self._by_owner),
        }
        offered: dict[Subscriber, None] = {}  # in the order of their first frame
        # A slice of rows decoded and offered per turn of the loop: requests go between.
        slices = self._db.fetch_slices(
            read_sql.PACKS_BY_ID, params, rows.PACK_STREAM, ROWS_PER_TURN
        )
        async with contextlib.aclosing(slices):  # the connection goes back even on an error
            async for taken in slices:
                for row in taken:
                    owners = self._by_owner.get(row.user_id, ())
                    data = frame("pack", views.pack_list_item(row))
                    for subscriber in (*owners, *self._admins):
                        subscriber.offer(row.user_pack_id, data, wake=False)
                        offered[subscriber] = None
                await self._turn()
        # Woken a slice per turn of the loop: the loop runs whatever is ready in order, so
        # a request answered while a thousand clients were made ready at once would wait
        # for every one of their writes.
        for index, subscriber in enumerate(offered, 1):
            subscriber.wake.set()
            if index % WAKES_PER_TURN == 0:
                await self._turn()

    async def _turn(self) -> None:
        """End this slice of the fan-out: the requests in flight go first."""
        await asyncio.sleep(0)
        await self._requests.give_way()
