"""Publishing pack events to Kafka: everything a scheduler needs, in one module.

    from events.publisher import EventPublisher, build_event, publish_events

    event = build_event(
        "infinite.training.started",
        {"userPackId": 1001, "trainId": 5001, "trainName": "llama", "userId": 7,
         "userName": "alice"},
        id="cluster-a/train/5001/start",        # stable: reuse it when you retry
        source="scheduler/cluster-a",
        time=started_at,                        # when it happened (aware datetime)
    )

    async with EventPublisher("kafka-1:9092") as publisher:
        await publisher.publish(event)

    publish_events([event], "kafka-1:9092")    # the same, from synchronous code

Every event is validated against the contract (the consumer's own models) before
anything is sent: a bad one raises `InvalidEvent` with the reason the consumer would
give, instead of ending up in the dead-letter topic. The record key is the userPackId
as decimal digits, so all events of a pack keep their order on one partition. The
producer waits for all in-sync replicas (acks="all") and is idempotent, so its own
retries never duplicate a record; the ledger also dedupes by event id.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from events.envelope import AnyPackEvent
from events.parse import Refusal, parse_event

DEFAULT_TOPIC = "pack-events"
DEFAULT_SOURCE = "scheduler"
CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"
"""The record's `content-type` header (CloudEvents Kafka binding, structured mode)."""

_CORE_ATTRIBUTES = frozenset(
    {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"}
)

EventLike = Mapping[str, Any] | bytes | str | BaseModel
"""An event as a dict, as JSON text, or as one of the contract's pydantic models."""


class InvalidEvent(ValueError):
    """The event breaks the contract; `reason` is what the consumer would say."""

    def __init__(self, reason: str, *, position: int | None = None) -> None:
        self.reason = reason
        self.position = position
        where = f"event {position}: " if position is not None else ""
        super().__init__(f"{where}{reason}")


@dataclass(frozen=True, slots=True)
class Published:
    """Where one event was written."""

    id: str
    key: bytes
    topic: str
    partition: int
    offset: int


def build_event(
    type: str,
    data: Mapping[str, Any],
    *,
    id: str | None = None,
    source: str = DEFAULT_SOURCE,
    time: datetime | str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A CloudEvents 1.0 envelope around `data`, ready for `encode`/`publish`.

    Fills `specversion`, `id` (a random UUID when none is given: pass your own stable id
    if you may retry, the ledger dedupes by it), `time` (now, UTC, when none: pass the
    time the fact happened whenever you know it), `subject` (the userPackId) and
    `datacontenttype`. `extensions` are extra CloudEvents attributes (e.g. `traceparent`).
    The result is not validated here; `encode` and the publishers do that.
    """
    event: dict[str, Any] = {}
    for name, value in (extensions or {}).items():
        if name in _CORE_ATTRIBUTES:
            raise InvalidEvent(f"extension {name!r} would replace a core attribute")
        event[name] = value
    event.update(
        {
            "specversion": "1.0",
            "id": id if id is not None else str(uuid.uuid4()),
            "source": source,
            "type": type,
            "time": _time_text(time),
            "datacontenttype": "application/json",
            "data": dict(data),
        }
    )
    subject = _pack_digits(data.get("userPackId"))
    if subject is not None:
        event["subject"] = subject
    return event


def encode(event: EventLike) -> tuple[bytes, bytes]:
    """Validate `event` against the contract -> (record key, record value).

    Raises `InvalidEvent` with the consumer's reason when the event would be refused.
    JSON text is sent exactly as given; dicts are serialised to compact UTF-8 JSON.
    """
    key, value, _ = _encode(event)
    return key, value


def check_value(value: bytes | str) -> AnyPackEvent | Refusal:
    """A record value as the consumer will judge it: the event, or why it is refused."""
    return parse_event(value)


def validate(event: EventLike) -> AnyPackEvent:
    """The event as the consumer will read it; raises `InvalidEvent` if it is refused."""
    return _encode(event)[2]


class EventPublisher:
    """An async Kafka producer of pack events (aiokafka), as an async context manager."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = DEFAULT_TOPIC,
        *,
        client_id: str = "pack-event-publisher",
        linger_ms: int = 5,
        **producer_options: Any,
    ) -> None:
        self.topic = topic
        self._options: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            **producer_options,
        }
        self._producer: Any = None

    async def start(self) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(**self._options)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer

    async def stop(self) -> None:
        """Flush what is pending and close the connections."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def publish(self, event: EventLike) -> Published:
        """Validate, send and wait until the record is acknowledged by all replicas."""
        key, value, parsed = _encode(event)
        future = await self._send(key, value)
        return self._published(parsed.id, key, await future)

    async def publish_many(self, events: Iterable[EventLike]) -> list[Published]:
        """Validate every event first (all or nothing: one bad event sends none), then
        send them in the given order and wait for every acknowledgement."""
        encoded = _encode_all(events)
        futures = [await self._send(key, value) for key, value, _ in encoded]
        metadata = await asyncio.gather(*futures)
        return [
            self._published(parsed.id, key, meta)
            for (key, _, parsed), meta in zip(encoded, metadata, strict=True)
        ]

    async def _send(self, key: bytes, value: bytes) -> Any:
        if self._producer is None:
            raise RuntimeError("EventPublisher is not started: use `async with` or start()")
        return await self._producer.send(
            self.topic, value=value, key=key, headers=[("content-type", CONTENT_TYPE.encode())]
        )

    def _published(self, event_id: str, key: bytes, meta: Any) -> Published:
        return Published(
            id=event_id,
            key=key,
            topic=str(meta.topic),
            partition=int(meta.partition),
            offset=int(meta.offset),
        )


def publish_events(
    events: Iterable[EventLike],
    bootstrap_servers: str,
    topic: str = DEFAULT_TOPIC,
    **producer_options: Any,
) -> list[Published]:
    """Synchronous `publish_many` (runs its own event loop: not for use inside one).
    Every event is validated before connecting: one bad event sends none."""
    batch = list(events)
    _encode_all(batch)

    async def run() -> list[Published]:
        async with EventPublisher(bootstrap_servers, topic, **producer_options) as publisher:
            return await publisher.publish_many(batch)

    return asyncio.run(run())


def _encode_all(events: Iterable[EventLike]) -> list[tuple[bytes, bytes, AnyPackEvent]]:
    encoded = []
    for position, event in enumerate(events, start=1):
        try:
            encoded.append(_encode(event))
        except InvalidEvent as error:
            raise InvalidEvent(error.reason, position=position) from None
    return encoded


def _encode(event: EventLike) -> tuple[bytes, bytes, AnyPackEvent]:
    if isinstance(event, bytes):
        value = event
    elif isinstance(event, str):
        value = event.encode("utf-8")
    elif isinstance(event, BaseModel):
        value = event.model_dump_json(exclude_none=True).encode("utf-8")
    elif isinstance(event, Mapping):
        try:
            value = orjson.dumps(dict(event))
        except TypeError as error:  # orjson.JSONEncodeError is a TypeError
            raise InvalidEvent(f"not serialisable as JSON: {error}") from None
    else:
        raise InvalidEvent(f"not an event: {type(event).__name__}")
    parsed = check_value(value)
    if isinstance(parsed, Refusal):
        raise InvalidEvent(parsed.reason)
    return str(parsed.data.userPackId).encode("ascii"), value, parsed


def _time_text(time: datetime | str | None) -> str:
    if time is None:
        return datetime.now(UTC).isoformat()
    if isinstance(time, datetime):
        if time.tzinfo is None or time.utcoffset() is None:
            raise InvalidEvent("time has no offset: pass an aware datetime")
        return time.isoformat()
    return time


def _pack_digits(value: Any) -> str | None:
    """The subject for a userPackId, normalised as the consumer compares it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return str(int(value))
    return None
