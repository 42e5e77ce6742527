"""Test data and calls for the API tests: rows inserted directly, tokens, envelope checks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt
import orjson
import psycopg
from fastapi import FastAPI
from psycopg.types.json import Jsonb

from services.settings import Settings

SECRET = "test-secret-for-the-ledger-api-" + "0123456789abcdef" * 2
SHANGHAI = timedelta(hours=8)

PACK_LIST = "/api/userPack/getUserPackList"
PACK_DETAIL = "/api/userPack/getUserPackDetail"
LOG_LIST = "/api/pack/getTrainPackLogList"
LOG_DETAIL = "/api/pack/getTrainPackLogDetail"
ENDPOINTS = (PACK_LIST, PACK_DETAIL, LOG_LIST, LOG_DETAIL)
# A body each endpoint accepts, for tests about everything but the body.
VALID_BODY: dict[str, dict[str, Any]] = {
    PACK_LIST: {},
    PACK_DETAIL: {"userPackId": 1},
    LOG_LIST: {"order": [], "pageNum": 1, "pageSize": 10},
    LOG_DETAIL: {"logId": 1},
}


def settings_for(db_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": db_url,
        "jwt_secret": SECRET,
        "jwt_public_key_file": None,
        "timezone": "Asia/Shanghai",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def with_database(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@asynccontextmanager
async def asgi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the app, its lifespan (the pool) running."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ledger.test"
        ) as http,
    ):
        yield http


class FixedClock:
    """Real time until `set`; then the set instant, moved by `advance`."""

    def __init__(self) -> None:
        self.instant: datetime | None = None

    def __call__(self) -> datetime:
        return self.instant if self.instant is not None else datetime.now(UTC)

    def set(self, instant: datetime) -> None:
        self.instant = instant

    def advance(self, seconds: float) -> None:
        assert self.instant is not None, "set the clock first"
        self.instant += timedelta(seconds=seconds)


def token(
    user_id: int | str,
    *,
    admin: bool = False,
    expires_in: float = 600,
    secret: str = SECRET,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    payload: dict[str, Any] = {"sub": str(user_id), "exp": int(time.time() + expires_in)}
    if admin:
        payload["roles"] = ["admin"]
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm=algorithm)


def bearer(user_id: int | str, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id, **kwargs)}"}


def node(
    node_id: int = 123,
    *,
    name: str = "节点名称",
    node_type: str = "nodeType.master",
    cpu: int = 1,
    gpu: int = 2,
    memory: int = 10,
) -> dict[str, Any]:
    return {
        "nodeId": node_id,
        "nodeName": name,
        "nodeType": node_type,
        "cpuCount": cpu,
        "gpuCount": gpu,
        "memorySize": memory,
    }


def insert_pack(
    db: psycopg.Connection,
    *,
    user_pack_id: int,
    user_id: int,
    pack_name: str = "pack",
    duration_type: str = "type.timing",
    buy_datetime: datetime = datetime(2020, 5, 8, 6, 15, 38, tzinfo=UTC),
    activity_end_time: datetime | None = None,
    nodes: Sequence[dict[str, Any]] | None = None,
    granted: int = 3600,
    charged: int = 0,
    open_starts: Iterable[datetime] = (),
    user_name: str | None = None,
) -> None:
    db.execute(
        """
        INSERT INTO packs (user_pack_id, user_id, user_name, pack_name, duration_type,
            buy_datetime, activity_end_time, node_list, granted, charged, open_starts,
            snapshot, event_count)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '{}'::jsonb, 1)
        """,
        (
            user_pack_id,
            user_id,
            user_name,
            pack_name,
            duration_type,
            buy_datetime,
            activity_end_time,
            Jsonb(list(nodes) if nodes is not None else [node()]),
            granted,
            charged,
            list(open_starts),
        ),
    )


def insert_record(
    db: psycopg.Connection,
    *,
    log_id: int,
    user_pack_id: int,
    owner_user_id: int,
    start_time: datetime,
    end_time: datetime | None = None,
    train_id: int = 5488464634,
    train_name: str = "训练名称",
    user_id: int | None = None,
    user_name: str = "张三",
) -> None:
    db.execute(
        """
        INSERT INTO usage_records (log_id, user_pack_id, owner_user_id, train_id, train_name,
            user_id, user_name, start_time, end_time, start_event_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            log_id,
            user_pack_id,
            owner_user_id,
            train_id,
            train_name,
            user_id if user_id is not None else owner_user_id,
            user_name,
            start_time,
            end_time,
            f"start-{log_id}",
        ),
    )


def assert_envelope(response: httpx.Response) -> dict[str, Any]:
    """HTTP 200, JSON, exactly code/data/msg, `data` = {} unless Success/ParameterInvalid."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id")
    answer = orjson.loads(response.content)
    assert isinstance(answer, dict)
    assert set(answer) == {"code", "data", "msg"}, answer
    assert isinstance(answer["code"], str) and answer["code"].startswith("General.")
    assert isinstance(answer["msg"], str) and answer["msg"]
    assert isinstance(answer["data"], dict)
    if answer["code"] not in ("General.Success", "General.ParameterInvalid"):
        assert answer["data"] == {}, answer
    return answer


async def call(
    client: httpx.AsyncClient,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST `body` as JSON (bytes are sent as they are) and check the envelope."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    response = await client.post(
        path, content=content, headers={"content-type": "application/json", **(headers or {})}
    )
    return assert_envelope(response)


async def ok(
    client: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str]
) -> dict[str, Any]:
    """A call that must succeed: its `data`."""
    answer = await call(client, path, body, headers)
    assert answer["code"] == "General.Success", answer
    assert answer["msg"] == "接口调用成功"
    data: dict[str, Any] = answer["data"]
    return data


def shanghai(moment: datetime) -> str:
    return (moment.astimezone(UTC) + SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
