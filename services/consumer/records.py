"""What the consumer needs of a Kafka record, independent of the client library."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Place = tuple[str, int]
"""A partition: (topic, partition number)."""


@dataclass(slots=True)  # not frozen: one per record, built ~2x faster
class SourceRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    # (name, value) as the client gives them; a binary-mode CloudEvent's attributes.
    headers: Sequence[tuple[str, bytes]] = ()


def next_offsets(records: Iterable[SourceRecord]) -> dict[Place, int]:
    """Per partition, the offset to resume from once these records are committed."""
    offsets: dict[Place, int] = {}
    for record in records:
        place = (record.topic, record.partition)
        offsets[place] = max(offsets.get(place, 0), record.offset + 1)
    return offsets


def first_offsets(records: Iterable[SourceRecord]) -> dict[Place, int]:
    """Per partition, the offset of its first record among these."""
    first: dict[Place, int] = {}
    for record in records:
        place = (record.topic, record.partition)
        if record.offset < first.get(place, record.offset + 1):
            first[place] = record.offset
    return first
