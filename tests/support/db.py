"""Reading what the consumer wrote, for assertions."""

from __future__ import annotations

from typing import Any

import psycopg


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(url: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    rows = query(url, sql, params)
    return rows[0][0] if rows else None


def actual_rows(url: str) -> tuple[dict[int, Any], dict[int, Any]]:
    packs = {
        int(r[0]): (int(r[1]), int(r[2]), sorted(r[3]))
        for r in query(url, "SELECT user_pack_id, granted, charged, open_train_ids FROM packs")
    }
    usage = {
        int(r[0]): tuple(r[1:])
        for r in query(
            url,
            "SELECT log_id, user_pack_id, train_id, start_time, end_time, charged_seconds,"
            " overrun_seconds, stop_reason, lease_seconds, lease_ends_at FROM usage_records",
        )
    }
    return packs, usage
