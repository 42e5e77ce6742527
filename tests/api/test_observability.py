"""The API's operator surface: Prometheus latency per endpoint, JSON logs with request ids."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from api.middleware import RequestIdFilter, request_id
from api.serve import configure_logging
from tests.api.support import PACK_DETAIL, PACK_LIST, bearer


def _count(text: str, endpoint: str) -> float:
    prefix = f'ledger_api_request_seconds_count{{endpoint="{endpoint}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


async def test_metrics_count_requests_per_endpoint(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    for _ in range(3):
        await client.post(PACK_LIST, json={}, headers=bearer(5))
    await client.post(PACK_DETAIL, json={"userPackId": 1}, headers=bearer(5))
    await client.post("/api/nowhere", json={})
    after = (await client.get("/metrics")).text
    assert _count(after, PACK_LIST) - _count(before, PACK_LIST) == 3
    assert _count(after, PACK_DETAIL) - _count(before, PACK_DETAIL) == 1
    assert _count(after, "other") - _count(before, "other") == 1
    assert "ledger_api_request_seconds_bucket" in after


def test_api_logs_are_json_lines_naming_the_request(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LEDGER_LOG_FORMAT", raising=False)
    configure_logging()
    token = request_id.set("req-42")
    try:
        logging.getLogger("api.errors").error("database unreachable")
    finally:
        request_id.reset(token)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    doc = json.loads(line)
    assert doc["msg"] == "database unreachable"
    assert doc["request_id"] == "req-42"
    assert doc["logger"] == "api.errors"
    assert any(
        isinstance(f, RequestIdFilter) for h in logging.getLogger("api").handlers for f in h.filters
    )
