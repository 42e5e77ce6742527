"""What the consumer needs of a Kafka record, independent of the client library."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourceRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def next_offsets(records: list[SourceRecord]) -> dict[tuple[str, int], int]:
    """Per partition, the offset to resume from once these records are committed."""
    offsets: dict[tuple[str, int], int] = {}
    for record in records:
        place = (record.topic, record.partition)
        offsets[place] = max(offsets.get(place, 0), record.offset + 1)
    return offsets
