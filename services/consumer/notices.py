"""Publishes `infinite.pack.exhausted` when running sessions drive a timing pack to 0.

Each pack row carries the instant its open sessions exhaust it and the notice id derived
from that fact. The notifier keeps the instants that fall due soon in memory (an
`ExhaustionSchedule`): the consumer hands over those of every batch it commits, and a
periodic scan of `packs` adds those no live process has in memory (written by another
process, by a replay, before a restart). A loop a few times a second records the
notices of the scheduled packs that fell due in an outbox table (at most once per id, so
a replay or a second consumer adds nothing) and publishes the unpublished ones to
`pack-events.out`. There is no index on `packs.exhausts_at`: it would make every pack
update a non-HOT update (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from faststream.kafka import KafkaBroker

from events.envelope import ExhaustedEvent
from events.payloads import PackExhausted
from services.consumer import metrics
from services.consumer.exhaustion_schedule import ExhaustionSchedule
from services.settings import Settings
from services.store import notice_sql
from services.store.connection import Conn, connect

log = logging.getLogger("ledger.notices")


def notice_payload(
    notice_id: str, user_pack_id: int, exhausted_at: datetime, train_ids: list[int]
) -> dict[str, Any]:
    event = ExhaustedEvent(
        id=notice_id,
        time=exhausted_at,
        subject=str(user_pack_id),
        data=PackExhausted(
            userPackId=user_pack_id, trainIds=sorted(train_ids), exhaustedAt=exhausted_at
        ),
    )
    return event.model_dump(mode="json")


async def publish_due(
    conn: Conn, broker: KafkaBroker, topic: str, now: datetime, pack_ids: list[int]
) -> int:
    """One pass: record the due notices of `pack_ids`, publish every unpublished notice
    (also those another process recorded and did not publish); returns how many went out."""
    if pack_ids:
        async with conn.transaction():
            due = await notice_sql.due_exhaustions(conn, pack_ids, now)
            await notice_sql.record_notices(
                conn,
                [
                    (
                        notice_id,
                        pack_id,
                        at,
                        train_ids,
                        notice_payload(notice_id, pack_id, at, train_ids),
                    )
                    for pack_id, at, notice_id, train_ids in due
                ],
            )
    async with conn.transaction():
        claimed = await notice_sql.claim_unpublished(conn)
        # Concurrently: the producer batches them; a backlog of thousands of notices (a
        # first run over old history) must not hold the event loop for seconds.
        await asyncio.gather(
            *(
                broker.publish(
                    orjson.dumps(payload),
                    topic=topic,
                    key=str(pack_id).encode(),
                    headers={"content-type": "application/cloudevents+json"},
                )
                for _, pack_id, payload in claimed
            )
        )
        await notice_sql.mark_published(conn, [notice_id for notice_id, _, _ in claimed])
    return len(claimed)


# Where a rescan starts: before every (exhausts_at, user_pack_id).
_BEFORE_ALL = (datetime.min.replace(tzinfo=UTC), -(2**63))


class ExhaustionNotifier:
    """Every `interval` seconds: the scheduled packs that fell due are checked against the
    database, their notices recorded and published.

    What is scheduled: the exhaustions the consumer hands over (`watch`) that fall due
    within `horizon_seconds`, and what a rescan of `packs` finds (at start, then every
    `rescan_seconds`): every exhaustion within the horizon whose notice is not recorded.
    The horizon must exceed the rescan period, so that every exhaustion written by no
    live process is scheduled by a rescan before it falls due (if it was written at
    least one period earlier). At most `limit` packs per pass, and per page of a rescan.
    """

    def __init__(
        self,
        settings: Settings,
        broker: KafkaBroker,
        interval: float = 0.25,
        *,
        rescan_seconds: float | None = None,
        horizon_seconds: float | None = None,
        limit: int = 1000,
    ) -> None:
        rescan = settings.notice_rescan_seconds if rescan_seconds is None else rescan_seconds
        horizon = settings.notice_horizon_seconds if horizon_seconds is None else horizon_seconds
        if not 0 < rescan < horizon:
            raise ValueError(
                f"the notifier's horizon ({horizon} s) must exceed its rescan period"
                f" ({rescan} s), which must be positive"
            )
        self._settings = settings
        self._broker = broker
        self._interval = interval
        self._rescan_seconds = rescan
        self._horizon = timedelta(seconds=horizon)
        self._limit = limit
        self.schedule = ExhaustionSchedule()
        self._next_rescan = 0.0  # time.monotonic() of the next rescan: at once
        self._rescan_after: tuple[datetime, int] | None = None  # a rescan in progress
        self._fed_during_rescan: set[int] | None = None
        self._task: asyncio.Task[None] | None = None

    def watch(self, exhaustions: Iterable[tuple[int, datetime]]) -> None:
        """(pack, exhausts_at) of packs a batch just committed; those beyond the horizon
        are left to a later rescan."""
        until = datetime.now(UTC) + self._horizon
        for pack_id, at in exhaustions:
            if self._fed_during_rescan is not None:
                self._fed_during_rescan.add(pack_id)
            if at <= until:
                self.schedule.watch(pack_id, at)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="exhaustion-notifier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        conn: Conn | None = None
        while True:
            try:
                if conn is None or conn.closed:
                    conn = await connect(
                        self._settings.psycopg_url, application_name="ledger-notices"
                    )
                metrics.NOTICES.inc(await self._pass(conn))
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                log.warning("notifier: database unavailable (%s)", error)
                conn = None
            except Exception:
                log.exception("notifier: publishing failed; will retry")
            await asyncio.sleep(self._interval)

    async def _pass(self, conn: Conn) -> int:
        now = datetime.now(UTC)
        await self._rescan(conn, now)
        due = self.schedule.pop_due(now, self._limit)
        try:
            return await publish_due(conn, self._broker, self._settings.out_topic, now, due)
        except BaseException:
            for pack_id in due:  # again next pass, unless a batch scheduled it meanwhile
                if pack_id not in self.schedule:
                    self.schedule.watch(pack_id, now)
            raise

    async def _rescan(self, conn: Conn, now: datetime) -> None:
        """One page of the rescan in progress, or of a new one when it is time."""
        if self._rescan_after is None:
            if time.monotonic() < self._next_rescan:
                return
            self._next_rescan = time.monotonic() + self._rescan_seconds
            self._rescan_after = _BEFORE_ALL
        # A batch committed while the page is read may have moved a pack's exhaustion
        # after the page's snapshot: what the batch handed over is the newer fact.
        fed: set[int] = set()
        self._fed_during_rescan = fed
        try:
            page = await notice_sql.exhaustions_until(
                conn, now + self._horizon, self._rescan_after, self._limit
            )
        finally:
            self._fed_during_rescan = None
        for pack_id, at in page:
            if pack_id not in fed:
                self.schedule.watch(pack_id, at)
        if len(page) < self._limit:
            self._rescan_after = None
        else:  # a backlog: the next page on the next pass, not all of it now
            self._rescan_after = (page[-1][1], page[-1][0])
