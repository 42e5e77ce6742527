"""Producing and reading records on the real broker, for tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def produce(bootstrap: str, topic: str, items: list[dict[str, Any] | bytes]) -> None:
    """Events (keyed by their userPackId) or raw values (poison, keyed 'junk'), in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = []
        for item in items:
            if isinstance(item, bytes):
                key, value = b"junk", item
            else:
                key, value = str(item["data"]["userPackId"]).encode(), json.dumps(item).encode()
            futures.append(await producer.send(topic, value, key=key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_all(
    bootstrap: str, topic: str, wait_seconds: float = 5.0, expect: int | None = None
) -> list[Any]:
    """Records of `topic` from the beginning: until `expect` of them arrived, else all that
    arrive within `wait_seconds`."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for items in batch.values():
                records.extend(items)
            if expect is not None and len(records) >= expect:
                break
    finally:
        await consumer.stop()
    return records
