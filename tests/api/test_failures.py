"""What the client gets when things go wrong: always the envelope, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg.rows import tuple_row

from api import reads
from api.app import create_app
from api.db import Database
from tests.api.support import (
    ENDPOINTS,
    PACK_DETAIL,
    PACK_LIST,
    VALID_BODY,
    assert_envelope,
    bearer,
    call,
    insert_pack,
    ok,
    settings_for,
)

USER = 51
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nothing"


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_an_unreachable_database_is_rpc_server_error() -> None:
    app = create_app(settings_for(UNREACHABLE), pool_timeout=0.3)
    async with app.router.lifespan_context(app), _client(app) as http:
        for path in ENDPOINTS:
            answer = await call(http, path, VALID_BODY[path], bearer(USER))
            assert answer == {"code": "General.RpcServerError", "data": {}, "msg": "Rpc服务异常"}
        # Authentication and validation do not need the database.
        assert (await call(http, PACK_LIST, {}))["code"] == "General.Unauthorized"
        answer = await call(http, PACK_DETAIL, {}, bearer(USER))
        assert answer["code"] == "General.ParameterInvalid"
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["code"] == "General.RpcServerError"
        alive = await http.get("/healthz")
        assert alive.status_code == 200
        assert alive.json()["code"] == "General.Success"


async def test_connections_killed_under_the_pool_are_replaced(
    client: httpx.AsyncClient, db: psycopg.Connection
) -> None:
    insert_pack(db, user_pack_id=1, user_id=USER)
    for _ in range(3):  # warm the pool
        await ok(client, PACK_DETAIL, {"userPackId": 1}, bearer(USER))
    killed = db.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = 'ledger-api' AND datname = current_database()"
    ).fetchone()
    assert killed is not None and killed[0] >= 1
    for _ in range(5):
        await ok(client, PACK_DETAIL, {"userPackId": 1}, bearer(USER))


async def test_an_unexpected_error_is_logged_with_the_request_id_and_hidden(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(reads, "pack_list", explode)
    with caplog.at_level(logging.ERROR, logger="api"):
        response = await client.post(PACK_LIST, json={}, headers=bearer(USER))
    answer = assert_envelope(response)
    assert answer == {"code": "General.InternalServerError", "data": {}, "msg": "服务器异常"}
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    request_id = response.headers["x-request-id"]
    logged = [record for record in caplog.records if request_id in record.getMessage()]
    assert logged, caplog.text
    assert logged[0].exc_info is not None
    assert "secret internal detail" in caplog.text


async def test_request_ids_are_echoed_when_well_formed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123_x.y"})
    assert response.headers["x-request-id"] == "abc-123_x.y"
    response = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32
    first = (await client.get("/healthz")).headers["x-request-id"]
    second = (await client.get("/healthz")).headers["x-request-id"]
    assert first != second


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("POST", "/api/userPack/nothingHere", "General.NotFound"),
        ("POST", "/elsewhere", "General.NotFound"),
        ("GET", "/api/userPack/getUserPackList", "General.Failure"),
        ("PUT", "/api/pack/getTrainPackLogDetail", "General.Failure"),
        ("DELETE", "/api/pack/getTrainPackLogList", "General.Failure"),
        ("POST", "/healthz", "General.Failure"),
    ],
)
async def test_unknown_paths_and_methods_answer_the_envelope(
    client: httpx.AsyncClient, method: str, path: str, code: str
) -> None:
    response = await client.request(method, path, headers=bearer(USER))
    answer = assert_envelope(response)
    assert answer["code"] == code
    assert answer["data"] == {}


async def test_the_api_sessions_are_read_only(db_url: str) -> None:
    database = Database(db_url)
    await database.open()
    try:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await database.fetch_all(
                "INSERT INTO usage_records (log_id) VALUES (1) RETURNING log_id", {}, tuple_row
            )
    finally:
        await database.close()


async def test_readiness_needs_a_migrated_database(
    api_server_url: str, make_app: Callable[..., FastAPI]
) -> None:
    app = make_app()
    async with app.router.lifespan_context(app), _client(app) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"code": "General.Success", "data": {}, "msg": "接口调用成功"}
    bare = create_app(settings_for(api_server_url.rsplit("/", 1)[0] + "/postgres"))
    async with bare.router.lifespan_context(bare), _client(bare) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 503
