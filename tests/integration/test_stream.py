"""`GET /api/userPack/stream` end to end: real broker, real consumer process, two real API
processes, SSE clients over HTTP.

A change reaches a client through PostgreSQL (the consumer's NOTIFY in its batch
transaction, one LISTEN per API process): every API process serves its own clients the
same change. A pack runs out with no event arriving (the notifier's NOTIFY), and the
stream shows it. Each client sees its own packs only; an admin sees all.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.api.support import SECRET, bearer, shanghai, token
from tests.support.api_process import api_process, running_api
from tests.support.consumer_process import ConsumerProcess
from tests.support.db import scalar
from tests.support.kafka import produce
from tests.support.sse import SseClient, sse
from tests.support.streams import envelope, purchase

OWNER = 4101
OTHER = 4102
STREAM = "/api/userPack/stream"


def start(pack: int, train: int, at: datetime) -> dict[str, Any]:
    data = {
        "userPackId": pack,
        "trainId": train,
        "trainName": f"train {train}",
        "userId": OWNER,
        "userName": "owner",
    }
    return envelope(f"start-{pack}-{train}", "infinite.training.started", at, data)


def of_pack(pack: int, status: str) -> Callable[[str, Any], bool]:
    return lambda event, data: (
        event == "pack" and data["userPackId"] == str(pack) and data["userPackStatus"] == status
    )


@dataclass(frozen=True)
class Live:
    """A consumer running from the test's topic into its database."""

    database: str
    bootstrap: str
    topic: str


@pytest.fixture
def live(
    consumer_factory: Callable[[], ConsumerProcess],
    ledger_database: str,
    kafka_bootstrap: str,
    unique_topic: str,
) -> Live:
    consumer_factory().start()
    return Live(ledger_database, kafka_bootstrap, unique_topic)


async def _ready(*clients: SseClient) -> None:
    for client in clients:
        assert await client.next(10) == ("ready", {})


async def test_changes_reach_owner_and_admin_on_every_api_process(
    live: Live, tmp_path: Path
) -> None:
    env = {"LEDGER_JWT_SECRET": SECRET}
    with (
        api_process(database_url=live.database, log=tmp_path / "api-1.log", **env) as one,
        api_process(database_url=live.database, log=tmp_path / "api-2.log", **env) as two,
    ):
        async with (
            sse(one + STREAM, bearer(OWNER)) as owner,
            sse(f"{two}{STREAM}?access_token={token(OWNER)}") as owner_elsewhere,
            sse(two + STREAM, {"token": token(1, admin=True)}) as admin,
            sse(one + STREAM, bearer(OTHER)) as other,
        ):
            await _ready(owner, owner_elsewhere, admin, other)
            now = datetime.now(UTC)
            # The consumer may still be joining its group: the first change may take a while.
            await produce(live.bootstrap, live.topic, [purchase(1, OWNER, now, 3600)])
            for client in (owner, owner_elsewhere, admin):
                await client.until(of_pack(1, "status.free"), 60)

            started_at = datetime.now(UTC)
            sent = time.monotonic()
            await produce(live.bootstrap, live.topic, [start(1, 7, started_at)])
            _, data = await owner.until(of_pack(1, "status.training"), 2)
            assert time.monotonic() - sent < 2
            assert data["burnRate"] == 1
            assert data["exhaustsAt"] == shanghai(started_at + timedelta(seconds=3600))
            await owner_elsewhere.until(of_pack(1, "status.training"), 2)
            await admin.until(of_pack(1, "status.training"), 2)

            # Three seconds of budget: the pack runs out with no event arriving.
            await produce(
                live.bootstrap,
                live.topic,
                [purchase(2, OWNER, now, 3), start(2, 8, datetime.now(UTC))],
            )
            await owner.until(of_pack(2, "status.training"), 5)
            _, data = await owner.until(of_pack(2, "status.outOfTime"), 6)
            exhausted = datetime.strptime(data["exhaustsAt"], "%Y-%m-%d %H:%M:%S")
            assert data["duration"] == "0" and data["burnRate"] == 0
            seen = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=8)
            assert seen - exhausted < timedelta(seconds=2.5)  # shown to the second

            # Someone else's packs never reach a client.
            await asyncio.sleep(0.5)
            assert other.events.empty()


async def test_a_bad_or_missing_token_ends_the_stream_with_its_code(
    ledger_database: str, tmp_path: Path
) -> None:
    cases = {
        "General.Unauthorized": {},
        "General.TokenInvalid": bearer(OWNER, secret="another-secret-" + "x" * 32),
        "General.TokenExpired": bearer(OWNER, expires_in=-5),
    }
    with api_process(
        database_url=ledger_database, log=tmp_path / "api.log", LEDGER_JWT_SECRET=SECRET
    ) as base:
        for code, headers in cases.items():
            async with sse(base + STREAM, headers) as client:
                event, data = await client.next(5)
                assert event == "error"
                assert data["code"] == code and data["data"] == {} and data["msg"]
                await asyncio.wait_for(client.ended.wait(), 5)
        # A token that expires while the stream is open ends it then, with its code.
        async with sse(f"{base}{STREAM}?access_token={token(OWNER, expires_in=2)}") as client:
            assert await client.next(5) == ("ready", {})
            event, data = await client.next(5)
            assert (event, data["code"]) == ("error", "General.TokenExpired")
            await asyncio.wait_for(client.ended.wait(), 5)


async def test_a_shutdown_ends_the_open_streams_after_its_grace(
    ledger_database: str, tmp_path: Path
) -> None:
    log = tmp_path / "api.log"
    settings = {"LEDGER_JWT_SECRET": SECRET, "LEDGER_API_SHUTDOWN_GRACE_SECONDS": "1"}
    with running_api(database_url=ledger_database, log=log, **settings) as (process, base):
        async with sse(base + STREAM, bearer(OWNER)) as client:
            assert await client.next(5) == ("ready", {})
            stopping = time.monotonic()
            process.send_signal(signal.SIGTERM)
            # Without a grace uvicorn would wait for the client to leave, for ever.
            await asyncio.wait_for(client.ended.wait(), 10)
            assert client.complete  # ended as a stream ends: its EventSource reconnects
            # uvicorn re-raises the signal once it has shut down.
            assert await asyncio.to_thread(process.wait, 10) == -signal.SIGTERM
            assert 0.9 < time.monotonic() - stopping < 8
    text = log.read_text(errors="replace")
    assert "Application shutdown complete" in text, text  # the lifespan's end ran
    assert "Exception in ASGI application" not in text and "Traceback" not in text, text


async def test_a_lost_listen_connection_tells_the_clients_to_read_afresh(
    live: Live, tmp_path: Path
) -> None:
    with api_process(
        database_url=live.database, log=tmp_path / "api.log", LEDGER_JWT_SECRET=SECRET
    ) as base:
        async with sse(base + STREAM, bearer(OWNER)) as client:
            await _ready(client)
            # What a database restart or a network cut does to the API's LISTEN session.
            cut = scalar(
                live.database,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'ledger-api-live' AND datname = current_database()",
            )
            assert cut == 1
            # Notifications sent while it was down are lost: the client must read afresh.
            assert await client.next(10) == ("resync", {})
            # Listening again (resync comes once the LISTEN is back): changes still arrive.
            await produce(live.bootstrap, live.topic, [purchase(1, OWNER, datetime.now(UTC), 3600)])
            await client.until(of_pack(1, "status.free"), 60)
