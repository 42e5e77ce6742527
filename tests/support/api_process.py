"""`ledger api` as a real child process on a free port, stopped when the block ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.waiting import wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def api_process(*, database_url: str, log: Path, **settings: str) -> Iterator[str]:
    """The API's base URL; `settings` are more environment variables (LEDGER_...)."""
    with running_api(database_url=database_url, log=log, **settings) as (_, base):
        yield base


@contextmanager
def running_api(
    *, database_url: str, log: Path, **settings: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`api_process`, with the process too (to signal it); stopped at the end if running."""
    port = free_port()
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_API_HOST": "127.0.0.1",
        "LEDGER_API_PORT": str(port),
        "LEDGER_LOG_FORMAT": "text",
        **settings,
    }
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "api", "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: process.poll() is not None or _answers(f"{base}/readyz"), 30, "ledger api"
        )
        assert process.poll() is None, log.read_text(errors="replace")
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
