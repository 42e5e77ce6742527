"""One batch commits in the background while the consumer parses the next one.

The subscriber parses a batch, waits for the batch in flight (`settle`), hands the new
one to `start` and returns: FastStream fetches the next batch and the handler parses it
while the database works on this one. At most one batch is in flight, and batches
commit in the order they were fetched.

A batch that fails rewinds its own partitions (`rewind`, in its task). A batch
fetched before that rewind and sharing a partition with it must not commit: its records
follow the failed ones (`fetched_behind`); `rewind` sends its other partitions back to
its first records, and the next fetch starts again from the failed batch. A batch
fetched after the rewind (it starts again at the failed records) goes ahead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, Protocol

from aiokafka import TopicPartition

from services.consumer.ahead import Handoff
from services.consumer.records import Place, SourceRecord, first_offsets


class Seeker(Protocol):
    def assignment(self) -> set[TopicPartition]: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


class CommitPipeline:
    def __init__(self) -> None:
        self._pending: asyncio.Task[bool] | None = None
        self._next_offsets: Mapping[Place, int] = {}
        self._handoff: Handoff | None = None

    def start(
        self,
        commit: Coroutine[Any, Any, bool],
        next_offsets: Mapping[Place, int],
        handoff: Handoff | None = None,
    ) -> None:
        """Run `commit` of a batch (True when it committed; `next_offsets`: past its last
        record per partition; `handoff`: its plan, for the next batch to plan ahead on)
        in the background; `settle` first."""
        if self._pending is not None:
            raise RuntimeError("a batch is still in flight: settle() before start()")
        self._next_offsets = next_offsets
        self._handoff = handoff
        self._pending = asyncio.create_task(commit, name="ledger-commit")

    @property
    def handoff(self) -> Handoff | None:
        """The handoff of the batch in flight (None when none is, or it has none)."""
        return self._handoff if self._pending is not None else None

    async def settle(self) -> Mapping[Place, int]:
        """Wait for the batch in flight. If it failed, its next offset per partition
        (reported once); empty when it committed, or when none was in flight."""
        task = self._pending
        if task is None:
            return {}
        try:
            committed = await task
        finally:  # whatever happened to it, it is no longer in flight
            self._pending = None
            self._handoff = None
        return {} if committed else self._next_offsets

    async def drain(self) -> None:
        """Wait for the batch in flight, if any (before a rebalance moves partitions);
        its outcome stays for `settle`."""
        task = self._pending
        if task is not None:
            await asyncio.wait([task])

    async def stop(self, grace: float = 15.0) -> None:
        """At shutdown: let the batch in flight commit for up to `grace` seconds (it
        may be waiting out a database outage), then cancel it. A cancelled batch commits
        nothing; its records come again from the stored offsets at the next start."""
        task = self._pending
        if task is None:
            return
        await asyncio.wait([task], timeout=grace)
        if not task.done():
            task.cancel()
            await asyncio.wait([task])


def fetched_behind(records: Iterable[SourceRecord], failed: Mapping[Place, int]) -> bool:
    """Whether `records` were fetched behind a failed batch (`failed`: its next offset
    per partition): on a partition they share, they start after the failed records."""
    return any(
        place in failed and first >= failed[place]
        for place, first in first_offsets(records).items()
    )


def rewind(
    consumer: Seeker, records: Iterable[SourceRecord], rewound: Mapping[Place, int] | None = None
) -> dict[Place, int]:
    """Seek each partition of `records` back to its first record among them, except the
    `rewound` ones (already sent back further, to the failed batch's records) and those
    a rebalance took away meanwhile (their new owner starts from the stored offsets).
    Returns the offsets sought."""
    assigned = consumer.assignment()
    sought: dict[Place, int] = {}
    for (topic, partition), offset in first_offsets(records).items():
        place = TopicPartition(topic, partition)
        if (topic, partition) not in (rewound or {}) and place in assigned:
            consumer.seek(place, offset)
            sought[(topic, partition)] = offset
    return sought
