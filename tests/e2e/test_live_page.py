"""`ledger dev`'s live page in real headless Chromium: a real broker, `ledger consume` and
`ledger api` as real processes (started by `ledger dev`), the page's EventSource on the
API's stream. A start published to Kafka must show on the page within 2 seconds.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.api_process import free_port
from tests.support.browser import LivePage
from tests.support.kafka import produce
from tests.support.streams import envelope, purchase
from tests.support.waiting import wait_until

USER = 1001  # the demo user, whose token `ledger dev` puts in the page's address


def _status(page: LivePage, pack: int) -> Any:
    return page.evaluate(f"document.querySelector('tr[data-pack-id=\"{pack}\"]')?.dataset.status")


def _start(pack: int, train: int, at: datetime) -> dict[str, Any]:
    data = {"userPackId": pack, "trainId": train, "trainName": "page test", "userId": USER}
    data["userName"] = "张三"
    return envelope(f"page-start-{uuid.uuid4().hex}", "infinite.training.started", at, data)


def test_the_page_shows_a_start_within_two_seconds(
    kafka_bootstrap: str, fresh_database: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"page-{run}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LEDGER_DATABASE_URL": fresh_database,
        "LEDGER_EVENTS_TOPIC": topic,
        "LEDGER_CONSUMER_GROUP": f"page-{run}",
        "LEDGER_API_PORT": str(free_port()),
        "LEDGER_DEV_PAGE_PORT": str(free_port()),
        "LEDGER_CONSUMER_METRICS_PORT": str(free_port()),
    }
    env.pop("LEDGER_JWT_SECRET", None)
    env.pop("LEDGER_CORS_ORIGINS", None)
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "dev"], env=env, stdout=out, stderr=out
        )
    page: LivePage | None = None
    try:
        wait_until(lambda: "live page: " in log.read_text(), 90, "ledger dev to be ready")
        found = re.search(r"live page: (\S+)", log.read_text())
        assert found, log.read_text()
        bought = datetime.now(UTC) - timedelta(minutes=5)
        asyncio.run(
            produce(
                kafka_bootstrap,
                topic,
                [purchase(9001, USER, bought, 3600), purchase(9004, 1002, bought, 3600)],
            )
        )
        page = LivePage(found.group(1))
        # The consumer joins its group first: the pack may take a while to show.
        wait_until(lambda: _status(page, 9001) == "status.free", 60, "the pack on the page")
        assert page.evaluate("document.body.dataset.live") == "1"

        asyncio.run(produce(kafka_bootstrap, topic, [_start(9001, 77, datetime.now(UTC))]))
        published = time.monotonic()
        while _status(page, 9001) != "status.training":
            assert time.monotonic() - published < 2, "the page did not flip within 2 s"
            time.sleep(0.05)
        row = page.evaluate(
            "[...document.querySelector('tr[data-pack-id=\"9001\"]').cells].map(c => c.textContent)"
        )
        assert row[3].endswith("秒") and row[4] == "1" and row[5] != "—", row
        assert _status(page, 9004) is None  # another user's pack
    finally:
        try:
            if page is not None:
                page.close()
        finally:  # `ledger dev` and its processes stop even when the page's close failed
            dev.send_signal(signal.SIGINT)
            assert dev.wait(timeout=60) == 0
