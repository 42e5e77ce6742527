"""Publishes `infinite.pack.exhausted` when running sessions drive a timing pack to 0, and
for each training started on it while that exhaustion lasts (a notice of its own).

Each pack row carries the instant its open sessions exhaust it and the notice id derived
from that fact. The notifier keeps the instants that fall due soon in memory (an
`ExhaustionSchedule`): the consumer hands over those of every batch it commits, and a
periodic scan of `packs` adds those no live process has in memory (written by another
process, by a replay, before a restart). A loop a few times a second records the
notices of the scheduled packs that fell due in an outbox table (at most once per id, so
a replay or a second consumer adds nothing) and publishes the unpublished ones to
`pack-events.out`. A start on an exhausted pack leaves its `exhausts_at` in the past:
the batch that applied it hands the pack over, due at once, and the next pass records
the start's notice (`notice_sql.UNNOTIFIED_STARTS`). There is no index on
`packs.exhausts_at`: it would make every pack update a non-HOT update (docs/decisions.md).

Two more schedules work the same way, fed by the packs every writer's batch changed (the
consumer's NOTIFY, heard on a LISTEN connection) and by the rescans: low-balance
crossings (`infinite.pack.low`, same outbox) and lapses of sessions whose lease ended
before their stop (`infinite.training.lapsed`, outbox `lapse_notices`, `lapse_sql`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from events.envelope import ExhaustedEvent, LapsedEvent, LowEvent
from events.payloads import PackExhausted, PackLow, TrainingLapsed
from projections import rules
from services.consumer import failures, metrics
from services.consumer.exhaustion_schedule import ExhaustionSchedule
from services.consumer.outages import Outages
from services.retry import Backoff
from services.settings import Settings
from services.store import lapse_sql, live_sql, notice_sql, outbox_sql
from services.store.connection import Conn, connect

log = logging.getLogger("ledger.notices")

_DATABASE_DOWN = failures.DATABASE_DOWN


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


def low_payload(
    notice_id: str,
    user_pack_id: int,
    threshold: int,
    crossed_at: datetime,
    train_ids: list[int],
    exhausts_at: datetime | None,
) -> dict[str, Any]:
    event = LowEvent(
        id=notice_id,
        time=crossed_at,
        subject=str(user_pack_id),
        data=PackLow(
            userPackId=user_pack_id,
            thresholdSeconds=threshold,
            crossedAt=crossed_at,
            trainIds=sorted(train_ids),
            exhaustsAt=exhausts_at,
        ),
    )
    return event.model_dump(mode="json")


def lapse_payload(lapse: lapse_sql.Lapse) -> tuple[str, dict[str, Any]]:
    """The notice id and the CloudEvent of one lapse."""
    user_pack_id, train_id, log_id, lapsed_at = lapse
    notice_id = rules.lapse_notice_id(user_pack_id, log_id, lapsed_at)
    event = LapsedEvent(
        id=notice_id,
        time=lapsed_at,
        subject=str(user_pack_id),
        data=TrainingLapsed(
            userPackId=user_pack_id, trainId=train_id, logId=log_id, lapsedAt=lapsed_at
        ),
    )
    return notice_id, event.model_dump(mode="json")


async def publish_due(
    conn: Conn,
    broker: KafkaBroker,
    topic: str,
    now: datetime,
    pack_ids: list[int],
    low_pack_ids: list[int] | None = None,
    lapse_pack_ids: list[int] | None = None,
) -> int:
    """One pass: record the due notices of `pack_ids` (exhaustions), `low_pack_ids`
    (low-balance crossings) and `lapse_pack_ids` (lapses), publish every unpublished
    notice (also those another process recorded and did not publish); returns how many
    went out."""
    if pack_ids or low_pack_ids or lapse_pack_ids:
        async with conn.transaction():
            noticed: set[int] = set()
            lapses = await lapse_sql.due_lapses(conn, lapse_pack_ids or [], now)
            recorded = []
            for lapse in lapses:
                notice_id, payload = lapse_payload(lapse)
                recorded.append((notice_id, lapse, payload))
            await lapse_sql.record_lapses(conn, recorded)
            # A lapse frees the pack (status, remaining) with no event to announce it.
            noticed.update(pack_id for pack_id, *_ in lapses)
            lows = await notice_sql.due_lows(conn, low_pack_ids or [], now)
            await notice_sql.record_notices(
                conn,
                [
                    (notice_id, pack, at, trains, low_payload(notice_id, pack, t, at, trains, due))
                    for pack, t, at, notice_id, trains, due in lows
                ],
            )
            noticed.update(pack_id for pack_id, *_ in lows)
            # The exhaustions first: a start its notice names needs no notice of its own.
            for find in (notice_sql.due_exhaustions, notice_sql.due_starts):
                due = await find(conn, pack_ids, now)
                noticed.update(pack_id for pack_id, _, _, _ in due)
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
            # An exhaustion, a crossing or a lapse changes what the stream shows, no event.
            await live_sql.notify_changed(conn, sorted(noticed))
    async with conn.transaction():
        claimed_lapses = await outbox_sql.claim_unpublished(conn, "lapse_notices")
        claimed = await outbox_sql.claim_unpublished(conn, "exhaustion_notices") + claimed_lapses
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
        metrics.observe_notices(str(payload["type"]) for _, _, payload in claimed)
        lapse_ids = {notice_id for notice_id, _, _ in claimed_lapses}
        await outbox_sql.mark_published(
            conn,
            "exhaustion_notices",
            [notice_id for notice_id, _, _ in claimed if notice_id not in lapse_ids],
        )
        await outbox_sql.mark_published(conn, "lapse_notices", sorted(lapse_ids))
    return len(claimed)


class Due(NamedTuple):
    """The packs of one pass, per schedule: in `publish_due`'s order of arguments."""

    exhaustions: list[int]
    lows: list[int]
    lapses: list[int]

    @property
    def total(self) -> int:
        return len(self.exhaustions) + len(self.lows) + len(self.lapses)

    def each(self) -> list[Due]:
        """One `Due` per pack and schedule: a pass one by one."""
        return (
            [Due([p], [], []) for p in self.exhaustions]
            + [Due([], [p], []) for p in self.lows]
            + [Due([], [], [p]) for p in self.lapses]
        )


# Where a rescan starts: before every (exhausts_at, user_pack_id).
_BEFORE_ALL = (datetime.min.replace(tzinfo=UTC), -(2**63))

# A crossing this far ahead of our clock or more cannot be recorded yet (a notifier
# records one once its instant has passed); a nearer one may be, by a notifier whose
# clock runs ahead of ours: the database decides for those.
CROSSING_SURELY_AHEAD = timedelta(seconds=10)


class ExhaustionNotifier:
    """Every `interval` seconds: the scheduled packs that fell due are checked against the
    database, their notices recorded and published.

    What is scheduled: the exhaustions the consumer hands over (`watch`) that fall due
    within `horizon_seconds`, and what a rescan of `packs` finds (at start, then every
    `rescan_seconds`): every exhaustion within the horizon whose notice is not recorded.
    The crossings (`lows`) and lapses (`lapses`) of the packs any writer changed (LISTEN)
    and those a rescan finds within the horizon have schedules of their own. The packs
    this process's own batches wrote (`own_writer`: the backend of their connection, the
    notifying one) have their crossings handed over too (`watch_crossings`): those surely
    ahead are scheduled from memory, without a look-up per pack.
    The horizon must exceed the rescan period, so that every exhaustion written by no
    live process is scheduled by a rescan before it falls due (if it was written at
    least one period earlier). At most `limit` packs per pass, and per page of a rescan.

    A pass that fails waits `backoff` (0.25 s doubling to 10 s) before the next; an
    outage of the database or the broker is logged when it starts and when it ends
    (`Outages`), not at every retry.
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
        backoff: tuple[float, float] = (0.25, 10.0),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        own_writer: Callable[[], int | None] = lambda: None,
    ) -> None:
        rescan = settings.notice_rescan_seconds if rescan_seconds is None else rescan_seconds
        horizon = settings.notice_horizon_seconds if horizon_seconds is None else horizon_seconds
        if not 0 < rescan < horizon:
            raise ValueError(
                f"the notifier's horizon ({horizon} s) must exceed its rescan period"
                f" ({rescan} s), which must be positive"
            )
        self._settings = settings
        self._thresholds = settings.low_balance_thresholds
        self._broker = broker
        self._interval = interval
        self._rescan_seconds = rescan
        self._horizon = timedelta(seconds=horizon)
        self._limit = limit
        # After a failed pass: the first wait, doubling up to the last (seconds).
        self._backoff = Backoff(*backoff, sleep=sleep)
        self._sleep = sleep
        self._outages = Outages(log, "notifier")
        self.schedule = ExhaustionSchedule()
        # Low-balance crossings: a schedule of their own, fed by the packs each batch
        # changed (the consumer's NOTIFY, `_listen`) and by the rescans.
        self.lows = ExhaustionSchedule()
        # Lapses: the same, by the lease ends of the packs' sessions (`lapse_sql`). A
        # heartbeat moves a lease end later: the batch that applied it is heard, and the
        # pack rescheduled; an entry left stale by it selects nothing when it falls due.
        self.lapses = ExhaustionSchedule()
        self._changed: set[int] = set()  # next crossing and next lapse to look up
        self._own_writer = own_writer
        self._lapses_changed: set[int] = set()  # own writes: their crossings handed over
        self._next_rescan = 0.0  # time.monotonic() of the next rescan: at once
        self._rescan_after: tuple[datetime, int] | None = None  # a rescan in progress
        self._lapses_after: tuple[datetime, int] | None = None  # its lapses in progress
        self._fed_during_rescan: set[int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None

    def watch(self, exhaustions: Iterable[tuple[int, datetime]]) -> None:
        """(pack, exhausts_at) of packs a batch just committed; those beyond the horizon
        are left to a later rescan."""
        until = datetime.now(UTC) + self._horizon
        for pack_id, at in exhaustions:
            if self._fed_during_rescan is not None:
                self._fed_during_rescan.add(pack_id)
            if at <= until:
                self.schedule.watch(pack_id, at)

    def watch_crossings(self, crossings: Iterable[tuple[int, list[datetime]]]) -> None:
        """(pack, instants of its crossings under way or ahead) of packs a batch of this
        process just committed. A crossing surely ahead is not recorded: the earliest is
        the pack's next; a pack with one under way, or near, is looked up (its recorded
        ones are not its next). Those beyond the horizon are left to a later rescan."""
        if not self._thresholds:
            return
        now = datetime.now(UTC)
        sure, until = now + CROSSING_SURELY_AHEAD, now + self._horizon
        for pack_id, instants in crossings:
            if not instants:
                continue  # none to announce: an entry left stale selects nothing
            first = min(instants)
            if first <= sure:
                self._changed.add(pack_id)
            elif first <= until:
                self.lows.watch(pack_id, first)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="exhaustion-notifier")
        # Always: any start may carry a lease (or LEDGER_DEFAULT_LEASE_SECONDS gives one).
        self._listener = asyncio.create_task(self._listen(), name="notifier-listen")

    async def stop(self) -> None:
        for task in (self._task, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _listen(self) -> None:
        """The packs every writer's batch changed (`live_sql`), whoever wrote them: their
        next crossings are scheduled on the next pass. While this connection is down,
        rescans (one at once when it is back) find what it missed."""
        while True:
            try:
                conn = await connect(self._settings.psycopg_url, application_name="ledger-notices")
                async with conn:
                    await conn.execute(live_sql.LISTEN)
                    self._next_rescan = 0.0
                    async for notification in conn.notifies():
                        packs = live_sql.parse_payload(notification.payload)
                        if notification.pid == self._own_writer():
                            self._lapses_changed.update(packs)  # crossings handed over
                        else:
                            self._changed.update(packs)
            except _DATABASE_DOWN as error:  # the pass logs the outage; this only waits
                log.debug("notifier: LISTEN connection lost: %s", error)
            await asyncio.sleep(1.0)

    async def _run(self) -> None:
        conn: Conn | None = None
        while True:
            try:
                if conn is None or conn.closed:
                    conn = await connect(
                        self._settings.psycopg_url, application_name="ledger-notices"
                    )
                await self._pass(conn)  # counted where published (`publish_due`)
            except _DATABASE_DOWN as error:
                self._outages.failed("database", error)
                conn = None
            except KafkaError as error:
                # The publish comes after the database's part of the pass: it answered.
                self._outages.ended("database")
                self._outages.failed("broker", error)
            except Exception:
                log.exception("notifier: a pass failed; retrying with backoff")
            else:
                self._outages.ended()
                self._backoff.reset()
                await self._sleep(self._interval)
                continue
            await self._backoff.wait()

    async def _pass(self, conn: Conn) -> int:
        now = datetime.now(UTC)
        try:
            await self._rescan(conn, now)
        except Exception as error:
            if failures.is_outage(error):
                raise
            # A row it cannot read (an instant the database cannot give back, written
            # before the consumer refused those) must not stop every other notice: this
            # rescan is abandoned, the next one starts over.
            log.exception("notifier: rescan failed; publishing what is scheduled")
            self._rescan_after = self._lapses_after = None
        await self._schedule_changed(conn, now)
        due = Due(
            self.schedule.pop_due(now, self._limit),
            self.lows.pop_due(now, self._limit),
            self.lapses.pop_due(now, self._limit),
        )
        topic = self._settings.out_topic
        try:
            published = await publish_due(conn, self._broker, topic, now, *due)
        except BaseException as error:
            if due.total and isinstance(error, Exception) and not failures.is_outage(error):
                # One pack's row may be at fault: each on its own, and the packs that
                # still fail are left out (logged), not retried on every pass.
                log.exception("notifier: %d due packs failed; one by one", due.total)
                return await self._one_by_one(conn, now, due)
            self._put_back(due, now)
            raise
        self._look_again(due)
        return published

    def _look_again(self, done: Due) -> None:
        """The next lapse of each pack whose due lapses a pass recorded: another session
        of the pack may lapse later, and an entry that a rescan's page made stale (a
        heartbeat moved the lease end since) recorded nothing. Looked up on the next
        pass, by pack; a pack left out after failing is not looked up again."""
        self._changed.update(done.lapses)

    async def _schedule_changed(self, conn: Conn, now: datetime) -> None:
        """Schedule the next crossing and the next lapse of each pack a batch changed
        since the last pass."""
        if not self._changed and not self._lapses_changed:
            return
        changed, self._changed = self._changed, set()
        lapses_changed, self._lapses_changed = self._lapses_changed, set()
        try:
            lows = await notice_sql.next_lows(conn, sorted(changed)) if self._thresholds else []
            lapses = await lapse_sql.next_lapses(conn, sorted(changed | lapses_changed))
        except BaseException:
            self._changed |= changed
            self._lapses_changed |= lapses_changed
            raise
        until = now + self._horizon
        for schedule, found in ((self.lows, lows), (self.lapses, lapses)):
            for pack_id, at in found:
                if at <= until:
                    schedule.watch(pack_id, at)

    async def _one_by_one(self, conn: Conn, now: datetime, due: Due) -> int:
        published = 0
        each = due.each()
        for index, one in enumerate(each):
            try:
                published += await publish_due(
                    conn, self._broker, self._settings.out_topic, now, *one
                )
                self._look_again(one)
            except Exception as error:
                if failures.is_outage(error):
                    for rest in each[index:]:
                        self._put_back(rest, now)
                    raise
                pack_id = next(p for packs in one for p in packs)
                log.exception("notifier: pack %d left out: its due notice failed", pack_id)
        return published

    def _put_back(self, due: Due, now: datetime) -> None:
        # Again next pass, unless a batch scheduled them meanwhile.
        for schedule, packs in zip((self.schedule, self.lows, self.lapses), due, strict=True):
            for pack_id in packs:
                if pack_id not in schedule:
                    schedule.watch(pack_id, now)

    async def _rescan(self, conn: Conn, now: datetime) -> None:
        """One page of the rescan in progress, or of a new one when it is time."""
        if self._rescan_after is None and self._lapses_after is None:
            if time.monotonic() < self._next_rescan:
                return
            self._next_rescan = time.monotonic() + self._rescan_seconds
            self._rescan_after = self._lapses_after = _BEFORE_ALL
            if self._thresholds:  # the crossings: one page, earliest
                until = now + self._horizon
                for pack_id, at in await notice_sql.lows_until(conn, until, self._limit):
                    self.lows.watch(pack_id, at)
        if self._lapses_after is not None:
            await self._rescan_lapses(conn, now, self._lapses_after)
        if self._rescan_after is None:
            return
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

    async def _rescan_lapses(self, conn: Conn, now: datetime, after: tuple[datetime, int]) -> None:
        """One page of the lapses not recorded, open or persisted by a consumer, due
        within the horizon (a backlog after an outage: page by page, one per pass)."""
        page = await lapse_sql.lapses_until(conn, now + self._horizon, after, self._limit)
        for pack_id, at in page:
            if pack_id not in self.lapses:  # a batch's newer instant wins over the page's
                self.lapses.watch(pack_id, at)
        self._lapses_after = None if len(page) < self._limit else (page[-1][1], page[-1][0])
