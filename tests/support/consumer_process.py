"""Runs `ledger consume` as a real child process, to start, kill and restart it in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class ConsumerProcess:
    def __init__(self, *, bootstrap: str, database_url: str, topic: str, group: str, log: Path):
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_EVENTS_TOPIC": topic,
            "LEDGER_CONSUMER_GROUP": group,
            # The tests read the log lines; JSON logs are checked in tests/unit/test_logs.py.
            "LEDGER_LOG_FORMAT": "text",
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n--- start #{self.starts} ---\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "consume"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye, like a machine losing power."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
