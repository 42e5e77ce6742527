"""A simulated scheduler for `ledger dev --demo`: a realistic stream of pack events.

Three users buy packs; trainings start and stop on them every few seconds; one small
pack runs out while two trainings run on it (the ledger announces the exhaustion on
`pack-events.out`), the scheduler stops them and tops the pack up, and trainings resume.
Every training has a lease (`leaseSeconds` on its start) and heartbeats every lease/2,
as docs/events.md advises. One training "crashes": its heartbeats stop and no stop ever
comes; the ledger ends it at its lease end (pack 9006 turns free in the API and on the
live page) and announces the lapse, which the demo logs with the other notices it reads
from `pack-events.out`. Every event is timed `now`, as a real scheduler would send it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from events.publisher import EventPublisher, build_event

log = logging.getLogger("ledger.demo")

DEMO_USER = 1001
USERS = {1001: "张三", 1002: "李四", 1003: "王五"}
SOURCE = "demo/scheduler"
LEASE_SECONDS = 10
"""The demo's lease: short, so that the crash is seen to lapse within seconds."""
CRASH_PACK = 9006


def _node(node_id: int, kind: str, gpus: int) -> dict[str, Any]:
    return {
        "nodeId": node_id,
        "nodeName": f"gpu-{node_id}",
        "nodeType": kind,
        "cpuCount": 16,
        "gpuCount": gpus,
        "memorySize": 128,
    }


def purchases() -> list[dict[str, Any]]:
    """The packs of the demo: timing packs of various sizes, one activity pack."""
    packs = [
        (9001, DEMO_USER, "A100 x2 · 10 小时", "type.timing", 36_000),
        (9002, DEMO_USER, "H100 x8 · 活动期", "type.activity", None),
        (9003, DEMO_USER, "T4 x1 · 体验包 (40 秒)", "type.timing", 40),
        (9004, 1002, "A100 x4 · 100 小时", "type.timing", 360_000),
        (9005, 1003, "V100 x2 · 5 小时", "type.timing", 18_000),
        (CRASH_PACK, DEMO_USER, "RTX 4090 x1 · 2 小时", "type.timing", 7_200),
    ]
    events = []
    for pack_id, owner, name, kind, seconds in packs:
        data: dict[str, Any] = {
            "userPackId": pack_id,
            "userId": owner,
            "userName": USERS[owner],
            "packName": name,
            "packDurationType": kind,
            "nodeList": [
                _node(pack_id * 10 + 1, "nodeType.master", 2),
                _node(pack_id * 10 + 2, "nodeType.worker", 2),
            ],
        }
        if seconds is not None:
            data["durationSeconds"] = seconds
        events.append(build_event("infinite.pack.purchased", data, source=SOURCE))
    return events


Sleep = Callable[[float], Awaitable[None]]


class DemoScheduler:
    """`sleep` paces every wait of the script (a test passes a faster one)."""

    def __init__(
        self,
        publish: Callable[[dict[str, Any]], Awaitable[Any]],
        seed: int = 1,
        *,
        lease_seconds: int = LEASE_SECONDS,
        sleep: Sleep = asyncio.sleep,
    ):
        self._publish = publish
        self._rng = random.Random(seed)
        self._next_train = 50_000
        self._running: dict[int, list[int]] = {}
        self._lease = lease_seconds
        self._sleep = sleep
        # The trainings whose process is alive: each heartbeats every lease/2.
        self._alive: dict[int, int] = {}  # trainId -> pack

    async def start(self, pack: int, user: int, name: str) -> int:
        self._next_train += 1
        train = self._next_train
        await self._publish(
            build_event(
                "infinite.training.started",
                {
                    "userPackId": pack,
                    "trainId": train,
                    "trainName": name,
                    "userId": user,
                    "userName": USERS[user],
                    "leaseSeconds": self._lease,
                },
                source=SOURCE,
            )
        )
        self._running.setdefault(pack, []).append(train)
        self._alive[train] = pack
        return train

    async def stop(self, pack: int, train: int, reason: str = "completed") -> None:
        await self._publish(
            build_event(
                "infinite.training.stopped",
                {"userPackId": pack, "trainId": train, "reason": reason},
                source=SOURCE,
            )
        )
        self._running[pack].remove(train)
        self._alive.pop(train, None)

    def crash(self, pack: int, train: int) -> None:
        """The training's process dies with its scheduler's record of it: no heartbeat
        and no stop from now on."""
        self._running[pack].remove(train)
        del self._alive[train]
        log.info(
            "demo: training %d on pack %d crashed: no heartbeat, no stop from now on;"
            " the ledger ends it at its lease end (within %d s) and frees the pack",
            train,
            pack,
            self._lease,
        )

    async def heartbeats(self) -> None:
        """Every lease/2, a heartbeat of each training alive: one lost or late heartbeat
        does not let a lease run out."""
        while True:
            await self._sleep(self._lease / 2)
            for train, pack in list(self._alive.items()):
                await self._publish(
                    build_event(
                        "infinite.training.heartbeat",
                        {"userPackId": pack, "trainId": train},
                        source=SOURCE,
                    )
                )

    async def top_up(self, pack: int, seconds: int, reason: str) -> None:
        await self._publish(
            build_event(
                "infinite.pack.adjusted",
                {"userPackId": pack, "deltaSeconds": seconds, "reason": reason},
                source=SOURCE,
            )
        )

    async def run(self, pause: float = 3.0) -> None:
        heartbeats = asyncio.create_task(self.heartbeats(), name="demo-heartbeats")
        try:
            await self._script(pause)
        finally:
            heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeats

    async def _script(self, pause: float) -> None:
        for event in purchases():
            await self._publish(event)
        log.info("demo: %d packs purchased", len(purchases()))
        # The small pack runs out: two trainings share its 40 seconds. Meanwhile a
        # training on pack 9006 heartbeats, then crashes.
        first = await self.start(9003, DEMO_USER, "bert-finetune")
        second = await self.start(9003, DEMO_USER, "resnet-sweep")
        doomed = await self.start(CRASH_PACK, DEMO_USER, "gan-train (will crash)")
        await self._sleep(12)
        self.crash(CRASH_PACK, doomed)
        await self._sleep(10)
        await self.stop(9003, first, "exhausted")
        await self.stop(9003, second, "exhausted")
        await self.top_up(9003, 600, "top-up after running out")
        log.info("demo: pack 9003 ran out and was topped up")
        owners = {9001: DEMO_USER, 9002: DEMO_USER, 9003: DEMO_USER, 9004: 1002, 9005: 1003}
        while True:
            pack = self._rng.choice(list(owners))
            running = self._running.get(pack, [])
            if running and self._rng.random() < 0.5:
                await self.stop(pack, self._rng.choice(running))
            elif len(running) < 3:
                await self.start(pack, owners[pack], self._rng.choice(["llama-sft", "vit", "asr"]))
            await self._sleep(pause)


def show_log() -> None:
    """The demo's lines on stdout, beside the children's output (`ledger dev` configures
    no logging of its own)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def describe_notice(notice: dict[str, Any]) -> str:
    """One log line for a notice of `pack-events.out`."""
    data = notice.get("data", {})
    kind = notice.get("type")
    if kind == "infinite.training.lapsed":
        return (
            f"training {data.get('trainId')} on pack {data.get('userPackId')} lapsed at"
            f" {data.get('lapsedAt')} (no heartbeat in time): the pack no longer pays for it"
        )
    if kind == "infinite.pack.exhausted":
        return f"pack {data.get('userPackId')} exhausted: stop trainings {data.get('trainIds')}"
    if kind == "infinite.pack.low":
        return f"pack {data.get('userPackId')} at {data.get('thresholdSeconds')} s or less"
    return f"{kind}: {data}"


async def log_notices(bootstrap_servers: str, out_topic: str) -> None:
    """Logs what the ledger announces, as a scheduler listening to it would see it."""
    consumer = AIOKafkaConsumer(
        out_topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="latest"
    )
    await consumer.start()
    try:
        async for record in consumer:
            try:
                notice = orjson.loads(record.value or b"{}")
            except orjson.JSONDecodeError:
                continue
            log.info("demo: the ledger announces: %s", describe_notice(notice))
    finally:
        await consumer.stop()


async def run_demo(bootstrap_servers: str, topic: str, out_topic: str | None = None) -> None:
    watcher = None
    if out_topic is not None:
        watcher = asyncio.create_task(log_notices(bootstrap_servers, out_topic))
    try:
        async with EventPublisher(bootstrap_servers, topic, client_id="ledger-demo") as publisher:
            await DemoScheduler(publisher.publish).run()
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
