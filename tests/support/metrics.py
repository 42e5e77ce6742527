"""A process's Prometheus metrics, scraped over HTTP, as {sample: value}."""

from __future__ import annotations

import httpx


def scrape(port: int) -> dict[str, float]:
    """Every sample of `http://127.0.0.1:PORT/metrics`, keyed as exposed: `name` or
    `name{label="value"}`."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values
