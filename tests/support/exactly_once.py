"""Shared by the crash, rebalance and database-outage tests: a paced background producer,
the catch-up wait and the exactly-once assertions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.infra.testing import run_coroutine
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import actual_rows, query, scalar
from tests.support.streams import expected_rows
from tests.support.waiting import wait_until


class PacedProducer:
    """Produces `events` (keyed by userPackId) from a background thread, `chunk` records
    every `pause` seconds, never beyond what the test has allowed so far: the test decides
    which records exist before and after each disruption it causes."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        events: list[dict[str, Any]],
        *,
        allowed: int,
        chunk: int = 500,
        pause: float = 0.2,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._events = events
        self._allowed = min(allowed, len(events))
        self._chunk = chunk
        self._pause = pause
        self._abort = False
        self.sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="paced-producer", daemon=True)

    def __enter__(self) -> PacedProducer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._abort = True
        self._thread.join(timeout=30)

    def allow(self, more: int | None = None) -> None:
        """Let `more` further records go (all of them when None)."""
        total = len(self._events)
        self._allowed = total if more is None else min(total, self._allowed + more)

    @property
    def done(self) -> bool:
        return self.sent == len(self._events)

    def finish(self, timeout: float = 60) -> None:
        """Send everything that is left and wait until the broker has acknowledged it."""
        self.allow()
        self._thread.join(timeout=timeout)
        if self.error is not None:
            raise AssertionError("the producer failed") from self.error
        assert self.done, f"the producer sent only {self.sent} of {len(self._events)} records"

    def _run(self) -> None:
        try:
            asyncio.run(self._produce())
        except BaseException as error:
            self.error = error

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, linger_ms=5, acks="all")
        await producer.start()
        try:
            while self.sent < len(self._events) and not self._abort:
                if self.sent >= self._allowed:
                    await asyncio.sleep(0.05)
                    continue
                batch = self._events[self.sent : min(self.sent + self._chunk, self._allowed)]
                futures = [
                    await producer.send(
                        self._topic,
                        json.dumps(item).encode(),
                        key=str(item["data"]["userPackId"]).encode(),
                    )
                    for item in batch
                ]
                await asyncio.gather(*futures)
                self.sent += len(batch)
                await asyncio.sleep(self._pause)
        finally:
            await producer.stop()


def since_last_start(process: ConsumerProcess) -> str:
    """The process's log since its latest start."""
    text = process.log.read_text(errors="replace") if process.log.exists() else ""
    return text.rsplit(f"--- start #{process.starts} ---", 1)[-1]


def assignments(text: str) -> list[str]:
    """The `ledger.consumer assigned [...]` lines of a log, in order."""
    return [line for line in text.splitlines() if "ledger.consumer assigned [" in line]


def assigned_partitions(line: str) -> set[int]:
    listed = line.split("assigned [", 1)[1].split("]", 1)[0]
    return {int(item.strip(" '\"").rsplit("/", 1)[1]) for item in listed.split(",") if item.strip()}


def stored_offsets(url: str, topic: str) -> dict[int, int]:
    return {
        int(p): int(o)
        for p, o in query(
            url,
            "SELECT kafka_partition, next_offset FROM consumer_offsets WHERE kafka_topic = %s",
            (topic,),
        )
    }


def applied(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM ledger_events"))


async def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    # Subscribed (without a group) so that it fetches the topic's metadata on start.
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        # aiokafka 0.14 may re-raise the CancelledError of its own group-less coordinator
        # task on stop (as `tests.support.kafka.end_offsets` sometimes does): not ours.
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


def topic_ends(bootstrap: str, topic: str) -> dict[int, int]:
    return run_coroutine(lambda: _end_offsets(bootstrap, topic))


def wait_caught_up(
    url: str, bootstrap: str, topic: str, timeout: float, logs: Callable[[], str]
) -> dict[int, int]:
    """Wait until the stored offset of every partition is its end offset; returns them."""
    ends = {p: o for p, o in topic_ends(bootstrap, topic).items() if o > 0}
    assert len(ends) == 4, f"every partition should hold records: {ends}"
    wait_until(
        lambda: stored_offsets(url, topic) == ends,
        timeout,
        f"stored offsets {ends}; have {stored_offsets(url, topic)}\n{logs()}",
    )
    return ends


def assert_applied_exactly_once(
    url: str, topic: str, events: list[dict[str, Any]], ends: dict[int, int]
) -> None:
    ids = {item["id"] for item in events}
    assert len(events) > len(ids), "the stream should carry duplicate deliveries"
    assert scalar(url, "SELECT count(*) FROM ledger_events") == len(ids)
    assert scalar(url, "SELECT count(DISTINCT event_id) FROM ledger_events") == len(ids)
    assert {r[0] for r in query(url, "SELECT event_id FROM ledger_events")} == ids
    assert query(url, "SELECT kafka_partition, kafka_offset, reason FROM refused_records") == []

    want_packs, want_usage = expected_rows(events)
    got_packs, got_usage = actual_rows(url)
    assert len(got_packs) == len(want_packs)
    assert got_packs == want_packs
    assert len(got_usage) == len(want_usage)
    assert got_usage == want_usage

    assert stored_offsets(url, topic) == ends
    assert query(url, "SELECT DISTINCT kafka_topic FROM consumer_offsets") == [(topic,)]


def open_transactions(url: str) -> int:
    """How many of the consumer's database sessions are inside a transaction right now."""
    return int(
        scalar(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'ledger-consume' AND xact_start IS NOT NULL",
        )
    )
