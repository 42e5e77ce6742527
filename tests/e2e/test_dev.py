"""`ledger dev --demo`: the whole platform from one command, as a newcomer runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.db import scalar
from tests.support.waiting import wait_until


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_dev_runs_consumer_api_and_demo_then_stops_everything(
    kafka_bootstrap: str, fresh_database: str, tmp_path: Path
) -> None:
    api_port = _free_port()
    run = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LEDGER_DATABASE_URL": fresh_database,
        "LEDGER_EVENTS_TOPIC": f"dev-{run}",
        "LEDGER_CONSUMER_GROUP": f"dev-{run}",
        "LEDGER_API_PORT": str(api_port),
        "LEDGER_CONSUMER_METRICS_PORT": str(_free_port()),
        "LEDGER_DEV_PAGE_PORT": str(_free_port()),
    }
    env.pop("LEDGER_JWT_SECRET", None)  # dev makes one up and prints tokens for it
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "dev", "--demo"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "demo user 1001 token" in log.read_text(), 90, "dev to be ready")
        text = log.read_text()
        user_token = re.search(r"demo user 1001 token:\s+Authorization: Bearer (\S+)", text)
        assert user_token, text

        def packs() -> list[dict[str, object]]:
            answer = httpx.post(
                f"http://127.0.0.1:{api_port}/api/userPack/getUserPackList",
                json={"pageNum": 1, "pageSize": 10},
                headers={"Authorization": f"Bearer {user_token.group(1)}"},
                timeout=5,
            ).json()
            assert answer["code"] == "General.Success", answer
            return list(answer["data"]["userPackList"])

        wait_until(lambda: len(packs()) == 4, 30, "the demo user's four packs")
        mine = {"9001", "9002", "9003", "9006"}
        assert {p["userPackId"] for p in packs()} == mine  # not 9004/9005

        def status(pack: str) -> object:
            return next(p["userPackStatus"] for p in packs() if p["userPackId"] == pack)

        # The 40-second pack runs out under two trainings and is announced, once.
        wait_until(
            lambda: (
                scalar(
                    fresh_database,
                    "SELECT count(*) FROM exhaustion_notices WHERE user_pack_id = 9003"
                    " AND published_at IS NOT NULL",
                )
                == 1
            ),
            60,
            f"the exhaustion notice of pack 9003\n{log.read_text()[-3000:]}",
        )

        # The training on pack 9006 crashes 12 s in (its last heartbeat at 10 s): it
        # lapses 10 s later, is announced once, and the pack is free again.
        wait_until(
            lambda: (
                scalar(
                    fresh_database,
                    "SELECT count(*) FROM lapse_notices WHERE user_pack_id = 9006"
                    " AND published_at IS NOT NULL",
                )
                == 1
            ),
            60,
            f"the lapse notice of pack 9006\n{log.read_text()[-3000:]}",
        )
        assert status("9006") == "status.free"
        wait_until(
            lambda: "the ledger announces: training" in log.read_text(), 10, "the demo's log"
        )
        assert "crashed: no heartbeat, no stop" in log.read_text()
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(timeout=60)
    assert code == 0
    time.sleep(1)
    # Ctrl-C stopped the children too: nothing answers on the API port any more.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=2)
