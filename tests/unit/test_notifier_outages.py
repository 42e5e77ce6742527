"""The exhaustion notifier through outages of its database and broker (fakes): it backs off
(0.25 s doubling to 10 s) and logs each outage twice, when it starts and when it ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from aiokafka.errors import KafkaTimeoutError

from services.consumer import notices
from services.consumer.notices import ExhaustionNotifier
from services.consumer.outages import Outages
from services.settings import Settings


class FakeConn:
    closed = False


class Script:
    """What the notifier meets: `connects` failed connections, then passes that raise the
    given errors in turn (None: the pass succeeds), and its sleeps, until `sleeps` of them
    (then the loop is cancelled)."""

    def __init__(self, connects: int, passes: list[BaseException | None], sleeps: int) -> None:
        self.connects = connects
        self.passes: Iterator[BaseException | None] = iter(passes)
        self.sleeps = sleeps
        self.waits: list[float] = []

    async def connect(self, *args: Any, **kwargs: Any) -> FakeConn:
        if self.connects > 0:
            self.connects -= 1
            raise psycopg.OperationalError("connection refused")
        return FakeConn()

    async def run_pass(self, conn: FakeConn) -> int:
        error = next(self.passes, None)
        if error is not None:
            raise error
        return 0

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if len(self.waits) >= self.sleeps:
            raise asyncio.CancelledError


async def run(script: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notices, "connect", script.connect)
    notifier = ExhaustionNotifier(Settings(), broker=None, sleep=script.sleep)  # type: ignore[arg-type]
    monkeypatch.setattr(notifier, "_pass", script.run_pass)
    with pytest.raises(asyncio.CancelledError):
        await notifier._run()


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "ledger.notices"]


async def test_a_database_outage_then_a_broker_outage_log_twice_each(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ledger.notices")
    broker_down = KafkaTimeoutError("no broker")
    script = Script(connects=3, passes=[broker_down, broker_down, None, None], sleeps=7)
    await run(script, monkeypatch)

    # Five failures back off, doubling, across both outages; then the normal interval.
    assert script.waits == [0.25, 0.5, 1.0, 2.0, 4.0, 0.25, 0.25]
    logged = lines(caplog)
    assert [level for level, _ in logged] == [
        logging.WARNING,
        logging.INFO,
        logging.WARNING,
        logging.INFO,
    ]
    assert "database outage started (connection refused)" in logged[0][1]
    assert "database outage ended after" in logged[1][1]
    assert "broker outage started" in logged[2][1] and "no broker" in logged[2][1]
    assert "broker outage ended after" in logged[3][1]


async def test_a_long_outage_is_one_line_and_the_backoff_is_capped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ledger.notices")
    script = Script(connects=1000, passes=[], sleeps=12)
    await run(script, monkeypatch)

    assert script.waits == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0]
    assert [level for level, _ in lines(caplog)] == [logging.WARNING]


async def test_a_success_resets_the_backoff(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ledger.notices")
    down = psycopg.OperationalError("server closed the connection")
    script = Script(connects=0, passes=[down, down, None, down, None], sleeps=5)
    await run(script, monkeypatch)

    assert script.waits == [0.25, 0.5, 0.25, 0.25, 0.25]
    assert [level for level, _ in lines(caplog)] == [logging.WARNING, logging.INFO] * 2


async def test_any_other_failure_backs_off_too(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    script = Script(connects=0, passes=[ValueError("a bug")] * 3, sleeps=4)
    await run(script, monkeypatch)

    assert script.waits == [0.25, 0.5, 1.0, 0.25]
    assert len([r for r in caplog.records if r.exc_info]) == 3  # the traceback, each time


def test_an_outage_ends_with_its_duration(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test.outages")
    now = [100.0]
    outages = Outages(logging.getLogger("test.outages"), "worker", clock=lambda: now[0])
    outages.ended()  # nothing in progress: nothing to say
    outages.failed("database", OSError("refused"))
    now[0] = 107.5
    outages.failed("database", OSError("refused again"))  # the same outage
    assert "database" in outages
    outages.ended()
    assert "database" not in outages
    assert [r.getMessage() for r in caplog.records] == [
        "worker: database outage started (refused); retrying with backoff",
        "worker: database outage ended after 7.5 s",
    ]
