"""Headless Chromium (Debian's `chromium`) loading a page and printing its DOM.

`--dump-dom` prints the page once its scripts ran; with `--virtual-time-budget` the page's
timers run on virtual time, which does not advance while a network fetch is pending, so
a page that awaits its `fetch()` calls is printed after their answers arrived (checked on
Chromium 156 with an answer 2 s late).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any

import httpx
import pytest
import websockets.sync.client

FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container has no user namespace to sandbox with
    "--disable-gpu",
    "--no-first-run",
    # Without these Chromium calls home (updates, sync, safe browsing) over a closed network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str:
    """The browser's path; fails the test when it is missing (scripts/test.sh installs it)."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: bash scripts/chromium.sh installs it")
    return path


def remove_profile(profile: str) -> None:
    """Remove a profile folder. Chromium's helpers (the crash handler, a renderer being
    reaped) may still write into it for a moment after the browser exited, and one
    `rmtree` then fails with "Directory not empty": try again a few times first."""
    for _ in range(20):
        try:
            shutil.rmtree(profile)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.25)
    shutil.rmtree(profile)  # still failing after 5 s: say why


def dump_dom(url: str, *, budget_ms: int = 20_000, timeout: float = 90) -> str:
    """The DOM of `url` after its scripts ran, from a fresh profile removed afterwards."""
    profile = tempfile.mkdtemp(prefix="ledger-chromium-")
    try:
        result = subprocess.run(
            [
                chromium(),
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        remove_profile(profile)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class LivePage:
    """A page kept open in headless Chromium, its DOM read while it runs (DevTools
    protocol over a WebSocket): for pages that never finish loading (an EventSource)."""

    def __init__(self, url: str) -> None:
        self._profile = tempfile.mkdtemp(prefix="ledger-chromium-")
        self._browser = subprocess.Popen(
            [
                chromium(),
                *FLAGS,
                f"--user-data-dir={self._profile}",
                "--remote-debugging-port=0",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._socket: Any = None
        self._calls = 0
        try:
            self._socket = websockets.sync.client.connect(
                self._page_socket(), max_size=None, legacy=True
            )
        except BaseException:
            self.close()
            raise

    def _page_socket(self) -> str:
        assert self._browser.stderr is not None
        for line in self._browser.stderr:  # "DevTools listening on ws://127.0.0.1:PORT/..."
            found = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                port = found.group(1)
                break
        else:
            raise AssertionError("chromium did not open its DevTools port")
        # Keep reading its log, or a full pipe would stall the browser.
        threading.Thread(target=self._browser.stderr.read, daemon=True).start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.1)
        raise AssertionError("chromium shows no page")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serializable)."""
        self._calls += 1
        request = {
            "id": self._calls,
            "method": "Runtime.evaluate",
            "params": {"expression": expression, "returnByValue": True},
        }
        self._socket.send(json.dumps(request))
        while True:
            answer = json.loads(self._socket.recv(timeout=10))
            if answer.get("id") == self._calls:
                return answer["result"]["result"].get("value")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
        if self._browser.poll() is None:
            self._browser.terminate()
            try:
                self._browser.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._browser.kill()
                self._browser.wait(timeout=5)
        remove_profile(self._profile)
