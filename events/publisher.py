"""Publishing pack events to Kafka: everything a scheduler needs, in one module.

    from events.publisher import EventPublisher, build_event, publish_events

    event = build_event(
        "infinite.training.started",
        {"userPackId": 1001, "trainId": 5001, "trainName": "llama", "userId": 7,
         "userName": "alice", "leaseSeconds": 180},
        id="cluster-a/train/5001/start",        # stable: reuse it when you retry
        source="scheduler/cluster-a",
        time=started_at,                        # when it happened (aware datetime)
    )

    async with EventPublisher("kafka-1:9092") as publisher:
        await publisher.publish(event)
        # ... then, every 60 s (a third of the lease) while the training runs:
        await publisher.publish(heartbeat_event(1001, 5001, time=now, source="scheduler/cluster-a"))

    publish_events([event], "kafka-1:9092")    # the same, from synchronous code

    EventPublisher("kafka-1:9092", mode="binary")  # CloudEvents binary content mode

Two content modes (CloudEvents Kafka binding), the same fact either way: "structured"
(the default: the value is the whole event as JSON) and "binary" (the attributes are
`ce_*` headers, the `datacontenttype` is the `content-type` header, the value is `data`).

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
from typing import Any, Literal, Self

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from events.binary import ATTRIBUTE_PREFIX
from events.binary import CONTENT_TYPE as CONTENT_TYPE_HEADER
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

Mode = Literal["structured", "binary"]
"""The CloudEvents content mode of the records sent."""
MODES: tuple[Mode, ...] = ("structured", "binary")

Header = tuple[str, bytes]


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


HEARTBEAT = "infinite.training.heartbeat"


def heartbeat_event(
    user_pack_id: int,
    train_id: int,
    *,
    time: datetime | str | None = None,
    source: str = DEFAULT_SOURCE,
    id: str | None = None,
) -> dict[str, Any]:
    """An `infinite.training.heartbeat`: the training is still running at `time` (now
    when none), which renews its session's lease (docs/events.md, "Leases and
    heartbeats"). Its default `id` is derived from the source, the training and the time,
    so a retried heartbeat is the same fact."""
    when = _time_text(time)
    return build_event(
        HEARTBEAT,
        {"userPackId": user_pack_id, "trainId": train_id},
        id=id if id is not None else f"{source}/train/{train_id}/heartbeat/{when}",
        source=source,
        time=when,
    )


def encode(event: EventLike) -> tuple[bytes, bytes]:
    """Validate `event` against the contract -> (record key, record value).

    Raises `InvalidEvent` with the consumer's reason when the event would be refused.
    JSON text is sent exactly as given; dicts are serialised to compact UTF-8 JSON.
    """
    key, value, _, _ = _encode(event)
    return key, value


def encode_record(event: EventLike, mode: Mode = "structured") -> tuple[bytes, bytes, list[Header]]:
    """Validate `event` against the contract -> (record key, value, headers) in `mode`.

    Raises `InvalidEvent` with the consumer's reason when the event would be refused.
    """
    key, value, headers, _ = _encode(event, mode)
    return key, value, headers


def check_value(value: bytes | str, mode: Mode = "structured") -> AnyPackEvent | Refusal:
    """A record value as the consumer will judge it: the event, or why it is refused (or
    cannot be sent in `mode`)."""
    parsed = parse_event(value)
    if mode == "binary" and not isinstance(parsed, Refusal):
        try:
            _in_mode(value.encode("utf-8") if isinstance(value, str) else value, mode)
        except InvalidEvent as error:
            return Refusal(error.reason)
    return parsed


def validate(event: EventLike) -> AnyPackEvent:
    """The event as the consumer will read it; raises `InvalidEvent` if it is refused."""
    return _encode(event)[3]


class EventPublisher:
    """An async Kafka producer of pack events (aiokafka), as an async context manager."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = DEFAULT_TOPIC,
        *,
        client_id: str = "pack-event-publisher",
        linger_ms: int = 5,
        mode: Mode = "structured",
        **producer_options: Any,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        self.topic = topic
        self.mode = mode
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
        key, value, headers, parsed = _encode(event, self.mode)
        future = await self._send(key, value, headers)
        return self._published(parsed.id, key, await future)

    async def publish_many(self, events: Iterable[EventLike]) -> list[Published]:
        """Validate every event first (all or nothing: one bad event sends none), then
        send them in the given order and wait for every acknowledgement."""
        encoded = _encode_all(events, self.mode)
        futures = [await self._send(key, value, headers) for key, value, headers, _ in encoded]
        metadata = await asyncio.gather(*futures)
        return [
            self._published(parsed.id, key, meta)
            for (key, _, _, parsed), meta in zip(encoded, metadata, strict=True)
        ]

    async def _send(self, key: bytes, value: bytes, headers: list[Header]) -> Any:
        if self._producer is None:
            raise RuntimeError("EventPublisher is not started: use `async with` or start()")
        return await self._producer.send(self.topic, value=value, key=key, headers=headers)

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
    mode: Mode = "structured",
    **producer_options: Any,
) -> list[Published]:
    """Synchronous `publish_many` (runs its own event loop: not for use inside one).
    Every event is validated before connecting: one bad event sends none."""
    batch = list(events)
    _encode_all(batch, mode)

    async def run() -> list[Published]:
        async with EventPublisher(
            bootstrap_servers, topic, mode=mode, **producer_options
        ) as publisher:
            return await publisher.publish_many(batch)

    return asyncio.run(run())


Encoded = tuple[bytes, bytes, list[Header], AnyPackEvent]
"""(record key, value, headers, the event as the consumer will read it)."""


def _encode_all(events: Iterable[EventLike], mode: Mode = "structured") -> list[Encoded]:
    encoded = []
    for position, event in enumerate(events, start=1):
        try:
            encoded.append(_encode(event, mode))
        except InvalidEvent as error:
            raise InvalidEvent(error.reason, position=position) from None
    return encoded


def _encode(event: EventLike, mode: Mode = "structured") -> Encoded:
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
    key = str(parsed.data.userPackId).encode("ascii")
    return (key, *_in_mode(value, mode), parsed)


_STRUCTURED_HEADERS = [(CONTENT_TYPE_HEADER, CONTENT_TYPE.encode())]


def _in_mode(structured: bytes, mode: Mode) -> tuple[bytes, list[Header]]:
    """A validated event's structured JSON -> the record's (value, headers) in `mode`."""
    if mode == "structured":
        return structured, _STRUCTURED_HEADERS
    event = orjson.loads(structured)
    headers: list[Header] = []
    for name, attribute in event.items():
        if name == "data":
            continue
        text = _header_text(name, attribute)
        if name == "datacontenttype":
            headers.append((CONTENT_TYPE_HEADER, text))
        else:
            headers.append((ATTRIBUTE_PREFIX + name, text))
    return orjson.dumps(event["data"]), headers


def _header_text(name: str, attribute: Any) -> bytes:
    """An attribute's value as a binary-mode header: CloudEvents' canonical string."""
    if isinstance(attribute, str):
        return attribute.encode("utf-8")
    if isinstance(attribute, bool):
        return b"true" if attribute else b"false"
    if isinstance(attribute, int):
        return str(attribute).encode("ascii")
    raise InvalidEvent(
        f"attribute {name!r} is {type(attribute).__name__}: binary content mode carries only "
        "strings, integers and booleans"
    )


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
