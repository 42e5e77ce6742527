"""A simulated scheduler for `ledger dev --demo`: a realistic stream of pack events.

Three users buy packs; trainings start and stop on them every few seconds; one small
pack runs out while two trainings run on it (the ledger announces the exhaustion on
`pack-events.out`), the scheduler stops them and tops the pack up, and trainings resume.
Every event is timed `now`, as a real scheduler would send it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from events.publisher import EventPublisher, build_event

log = logging.getLogger("ledger.demo")

DEMO_USER = 1001
USERS = {1001: "张三", 1002: "李四", 1003: "王五"}
SOURCE = "demo/scheduler"


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


class DemoScheduler:
    def __init__(self, publish: Callable[[dict[str, Any]], Awaitable[Any]], seed: int = 1):
        self._publish = publish
        self._rng = random.Random(seed)
        self._next_train = 50_000
        self._running: dict[int, list[int]] = {}

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
                },
                source=SOURCE,
            )
        )
        self._running.setdefault(pack, []).append(train)
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

    async def top_up(self, pack: int, seconds: int, reason: str) -> None:
        await self._publish(
            build_event(
                "infinite.pack.adjusted",
                {"userPackId": pack, "deltaSeconds": seconds, "reason": reason},
                source=SOURCE,
            )
        )

    async def run(self, pause: float = 3.0) -> None:
        for event in purchases():
            await self._publish(event)
        log.info("demo: 5 packs purchased")
        # The small pack runs out: two trainings share its 40 seconds.
        first = await self.start(9003, DEMO_USER, "bert-finetune")
        second = await self.start(9003, DEMO_USER, "resnet-sweep")
        await asyncio.sleep(22)
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
            await asyncio.sleep(pause)


async def run_demo(bootstrap_servers: str, topic: str) -> None:
    async with EventPublisher(bootstrap_servers, topic, client_id="ledger-demo") as publisher:
        await DemoScheduler(publisher.publish).run()
