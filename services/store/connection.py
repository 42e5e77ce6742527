"""Opening database connections (psycopg 3, async), and the connection type used around."""

from __future__ import annotations

from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.types.json import set_json_dumps, set_json_loads

Conn = AsyncConnection[tuple[Any, ...]]


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def configure_json(conn: Conn) -> None:
    """jsonb in and out through orjson: the snapshots make this a hot path."""
    set_json_dumps(_dumps, conn)
    set_json_loads(orjson.loads, conn)


async def connect(url: str, *, application_name: str = "ledger") -> Conn:
    """An autocommit connection: every unit of work is an explicit `conn.transaction()`."""
    conn = await AsyncConnection.connect(url, application_name=application_name, autocommit=True)
    configure_json(conn)
    return conn
