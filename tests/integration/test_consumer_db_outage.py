"""A database outage is not a refused record: `ledger consume` reaches PostgreSQL through a
TCP proxy that the test cuts for a few seconds mid-stream. The consumer waits it out and
then goes on: nothing refused, nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support.consumer_process import ConsumerProcess
from tests.support.db import scalar
from tests.support.exactly_once import (
    PacedProducer,
    applied,
    assert_applied_exactly_once,
    wait_caught_up,
)
from tests.support.streams import stream
from tests.support.waiting import wait_until


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`, on an event loop in a background thread.
    `cut()` drops every connection and refuses new ones until `restore()`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy")
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.accepted = 0

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()  # new connections are refused from now on
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _serve(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        self.accepted += 1
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self._target)
        except OSError:
            client.transport.abort()
            return
        self._open |= {client, upstream}
        await asyncio.gather(
            self._pipe(client_reader, upstream),
            self._pipe(upstream_reader, client),
            return_exceptions=True,
        )
        for writer in (client, upstream):
            self._open.discard(writer)
            writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


def through(url: str, port: int) -> str:
    """`url` with its host and port replaced by 127.0.0.1:`port`."""
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{port}"))


OUTAGE_SECONDS = 5.0


@pytest.mark.slow
def test_a_database_outage_is_waited_out_not_refused(
    kafka_bootstrap: str, ledger_database: str, unique_topic: str, tmp_path: Path
) -> None:
    events = stream(packs=200, events_per_pack=60, seed=5150, tag="outage-")
    third = len(events) // 3
    target = urlsplit(ledger_database)

    with (
        TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy,
        PacedProducer(kafka_bootstrap, unique_topic, events, allowed=third) as producer,
    ):
        consumer = ConsumerProcess(
            bootstrap=kafka_bootstrap,
            database_url=through(ledger_database, proxy.port),
            topic=unique_topic,
            group=f"ledger-test-{uuid.uuid4().hex[:8]}",
            log=tmp_path / "consumer.log",
        )
        try:
            consumer.start()
            wait_until(lambda: applied(ledger_database) > 0, 30, f"progress\n{consumer.tail()}")

            # The stream goes on while the database is out of reach.
            producer.allow(third)
            proxy.cut()
            cut_at = time.monotonic()
            wait_until(
                lambda: "WARNING ledger.consumer database unavailable" in consumer.tail(400),
                OUTAGE_SECONDS,
                f"the consumer noticing the outage\n{consumer.tail()}",
            )
            during = applied(ledger_database)
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - cut_at)))
            assert applied(ledger_database) == during, "the proxy let the consumer through"
            assert consumer.process is not None and consumer.process.poll() is None, (
                f"the consumer died of the outage\n{consumer.tail()}"
            )
            reconnects_before = proxy.accepted
            proxy.restore()
            producer.finish()

            ends = wait_caught_up(ledger_database, kafka_bootstrap, unique_topic, 90, consumer.tail)
            assert proxy.accepted > reconnects_before, "the consumer never came back"
            assert consumer.process.poll() is None, consumer.tail()
        finally:
            consumer.stop()

    log = consumer.log.read_text(errors="replace")
    waits = [line for line in log.splitlines() if "ledger.consumer database unavailable" in line]
    # The broken connection, then at least one refused reconnection while cut.
    assert len(waits) >= 2, log[-3000:]
    assert " ledger.consumer refused " not in log, log[-3000:]
    assert " failed; rewinding and backing off" not in log, log[-3000:]
    assert scalar(ledger_database, "SELECT count(*) FROM refused_records") == 0
    assert_applied_exactly_once(ledger_database, unique_topic, events, ends)
