"""Create the ledger's topics when they are missing (the broker's defaults apply)."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

log = logging.getLogger("ledger.consumer")


async def ensure_topics(
    bootstrap_servers: str, names: list[str], partitions: int = 4, replication: int = 1
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            await admin.create_topics([NewTopic(name, partitions, replication) for name in missing])
            log.info("created topics %s", missing)
    finally:
        await admin.close()
