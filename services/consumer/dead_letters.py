"""Refused records copied to the dead-letter topic (`<events topic>.dlq`).

A copy is the record as it came - key, value and every header byte for byte, repeated
names included (a binary-mode CloudEvent's attributes are headers) - plus where and why
it was refused. Sent by a plain aiokafka producer: FastStream's `publish` takes headers
as text only and adds its own.
"""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from services.store.ledger_sql import RefusedRecord

REASON = "ledger-refusal-reason"
SOURCE_TOPIC = "ledger-source-topic"
SOURCE_PARTITION = "ledger-source-partition"
SOURCE_OFFSET = "ledger-source-offset"
_OURS = frozenset({REASON, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET})


def copy_headers(refused: RefusedRecord) -> list[tuple[str, bytes]]:
    """The record's own headers, then where and why it was refused. A record refused
    again (re-driven from the DLQ) carries this refusal's, not both."""
    own = [(name, value) for name, value in refused.headers if name not in _OURS]
    return [
        *own,
        (REASON, refused.reason.encode()),
        (SOURCE_TOPIC, refused.kafka_topic.encode()),
        (SOURCE_PARTITION, str(refused.kafka_partition).encode()),
        (SOURCE_OFFSET, str(refused.kafka_offset).encode()),
    ]


class DeadLetters:
    """Publishes refused records' copies; `start` before, `stop` after."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self._bootstrap_servers = bootstrap_servers
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # Made here, not in __init__: aiokafka binds a producer to the running loop.
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers, client_id="ledger-dlq", acks="all"
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def publish(self, refused: RefusedRecord) -> None:
        if self._producer is None:
            raise RuntimeError("DeadLetters is not started")
        await self._producer.send_and_wait(
            self.topic, refused.value, key=refused.key, headers=copy_headers(refused)
        )
