"""Publishes `infinite.pack.exhausted` when running sessions drive a timing pack to 0.

Each pack row carries the instant its open sessions exhaust it and the notice id derived
from that fact. A loop a few times a second records the notices that fell due in an
outbox table (at most once per id, so a replay or a second consumer adds nothing) and
publishes the unpublished ones to `pack-events.out`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from faststream.kafka import KafkaBroker

from events.envelope import ExhaustedEvent
from events.payloads import PackExhausted
from services.consumer import metrics
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


async def publish_due(conn: Conn, broker: KafkaBroker, topic: str, now: datetime) -> int:
    """One pass: record due notices, publish unpublished ones; returns how many went out."""
    async with conn.transaction():
        due = await notice_sql.due_exhaustions(conn, now)
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


class ExhaustionNotifier:
    def __init__(self, settings: Settings, broker: KafkaBroker, interval: float = 0.25) -> None:
        self._settings = settings
        self._broker = broker
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

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
                published = await publish_due(
                    conn, self._broker, self._settings.out_topic, datetime.now(UTC)
                )
                metrics.NOTICES.inc(published)
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                log.warning("notifier: database unavailable (%s)", error)
                conn = None
            except Exception:
                log.exception("notifier: publishing failed; will retry")
            await asyncio.sleep(self._interval)
