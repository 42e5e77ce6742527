"""CORS: `LEDGER_CORS_ORIGINS` makes the API answer preflights and add the CORS headers.

A preflight is answered by the middleware itself (never the `{code,data,msg}` envelope);
a real request keeps its envelope, byte for byte, and gains the headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.auth import ConfigurationError
from api.cors import CorsPolicy, cors_policy
from services.settings import Settings
from tests.api.support import PACK_LIST, asgi_client, assert_envelope, bearer, insert_pack

FRONTEND = "http://localhost:3000"
OTHER = "http://evil.example"
REQUESTED_HEADERS = "authorization, content-type, token"
Serve = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


def preflight(origin: str, headers: str = REQUESTED_HEADERS) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers,
    }


@pytest.fixture
def serve(make_app: Callable[..., FastAPI]) -> Serve:
    """A client of an app built with LEDGER_CORS_ORIGINS = the given text."""

    def client(origins: str) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return asgi_client(make_app(cors_origins=origins))

    return client


@pytest.fixture
async def listed(serve: Serve) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(f"{FRONTEND}, http://127.0.0.1:5173/") as http:
        yield http


@pytest.fixture
async def anyone(serve: Serve) -> AsyncIterator[httpx.AsyncClient]:
    async with serve("*") as http:
        yield http


@pytest.fixture
def a_pack(db: psycopg.Connection) -> None:
    insert_pack(db, user_pack_id=7, user_id=1001, buy_datetime=datetime(2026, 1, 2, tzinfo=UTC))


async def test_a_listed_origin_gets_its_preflight_answered(listed: httpx.AsyncClient) -> None:
    for origin in (FRONTEND, "http://127.0.0.1:5173"):  # the setting's trailing `/` dropped
        response = await listed.options(PACK_LIST, headers=preflight(origin))
        assert response.status_code == 200, response.text
        assert response.text == "OK"  # the middleware's own answer, not the envelope
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["access-control-allow-credentials"] == "true"
        methods = response.headers["access-control-allow-methods"].split(", ")
        assert set(methods) == {"GET", "POST", "OPTIONS"}
        allowed = {h.lower() for h in response.headers["access-control-allow-headers"].split(", ")}
        assert {"authorization", "token", "content-type"} <= allowed
        assert "x-request-id" not in response.headers  # answered outside RequestContext


async def test_an_unlisted_origin_or_header_is_refused(listed: httpx.AsyncClient) -> None:
    response = await listed.options(PACK_LIST, headers=preflight(OTHER))
    assert response.status_code == 400
    assert response.text == "Disallowed CORS origin"
    assert "access-control-allow-origin" not in response.headers

    response = await listed.options(PACK_LIST, headers=preflight(FRONTEND, "x-secret"))
    assert response.status_code == 400
    assert response.text == "Disallowed CORS headers"


async def test_without_the_setting_no_origin_is_allowed(client: httpx.AsyncClient) -> None:
    response = await client.options(PACK_LIST, headers=preflight(FRONTEND))
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers

    response = await client.post(PACK_LIST, json={}, headers={"Origin": FRONTEND, **bearer(1)})
    assert assert_envelope(response)["code"] == "General.Success"
    assert "access-control-allow-origin" not in response.headers


async def test_any_origin_is_allowed_without_credentials(anyone: httpx.AsyncClient) -> None:
    response = await anyone.options(PACK_LIST, headers=preflight(OTHER))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers

    response = await anyone.post(PACK_LIST, json={}, headers={"Origin": OTHER, **bearer(1)})
    assert assert_envelope(response)["code"] == "General.Success"
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.usefixtures("a_pack")
async def test_a_real_request_keeps_its_envelope_and_gains_the_headers(
    listed: httpx.AsyncClient,
) -> None:
    plain = await listed.post(PACK_LIST, json={}, headers=bearer(1001))
    cross = await listed.post(PACK_LIST, json={}, headers={"Origin": FRONTEND, **bearer(1001)})
    answer = assert_envelope(cross)
    assert answer["code"] == "General.Success"
    assert [pack["userPackId"] for pack in answer["data"]["userPackList"]] == ["7"]
    assert cross.content == plain.content
    assert "access-control-allow-origin" not in plain.headers
    assert cross.headers["access-control-allow-origin"] == FRONTEND
    assert cross.headers["access-control-allow-credentials"] == "true"
    assert cross.headers["access-control-expose-headers"] == "X-Request-ID"
    assert "Origin" in cross.headers["vary"]


async def test_a_failure_envelope_carries_the_headers_too(listed: httpx.AsyncClient) -> None:
    """A page must be able to read `General.Unauthorized` to send its user to log in."""
    response = await listed.post(PACK_LIST, json={}, headers={"Origin": FRONTEND})
    assert assert_envelope(response)["code"] == "General.Unauthorized"
    assert response.headers["access-control-allow-origin"] == FRONTEND

    response = await listed.post(PACK_LIST, json={}, headers={"Origin": OTHER})
    assert assert_envelope(response)["code"] == "General.Unauthorized"
    assert "access-control-allow-origin" not in response.headers


async def test_options_without_a_preflight_is_still_the_envelope(
    listed: httpx.AsyncClient,
) -> None:
    """An OPTIONS that is no preflight (no Origin) goes to the app, as before."""
    response = await listed.options(PACK_LIST)
    assert assert_envelope(response)["code"] == "General.Failure"


@pytest.mark.parametrize(
    ("setting", "policy"),
    [
        ("", CorsPolicy()),
        (" , ", CorsPolicy()),
        ("*", CorsPolicy(any_origin=True)),
        (" * ", CorsPolicy(any_origin=True)),
        (
            "https://app.example, HTTP://LocalHost:3000/,https://app.example",
            CorsPolicy(origins=("https://app.example", "http://localhost:3000")),
        ),
    ],
)
def test_the_setting_is_read_as_origins(setting: str, policy: CorsPolicy) -> None:
    assert cors_policy(setting) == policy


@pytest.mark.parametrize(
    "setting",
    ["localhost:3000", "http://localhost:3000/app", "ftp://files.example", "*, https://a.example"],
)
def test_a_malformed_setting_stops_the_api(setting: str, make_app: Callable[..., FastAPI]) -> None:
    with pytest.raises(ConfigurationError, match="LEDGER_CORS_ORIGINS"):
        make_app(cors_origins=setting)


def test_the_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_CORS_ORIGINS", raising=False)
    assert Settings().cors_origins == ""
    monkeypatch.setenv("LEDGER_CORS_ORIGINS", "http://localhost:3000,http://localhost:3001")
    assert cors_policy(Settings().cors_origins).origins == (
        "http://localhost:3000",
        "http://localhost:3001",
    )
