"""`ledger refused list | show ID | redrive ID... | --all`: what operators see of the
refused records, and how they apply them again (`redrive.py`)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import shutil
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from services.refused.redrive import Outcome, redrive
from services.settings import get_settings
from services.store import refused_sql
from services.store.connection import Conn, connect

T = TypeVar("T")


def run_refused(args: argparse.Namespace) -> int:
    handlers: dict[str, Callable[[Conn, argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "list": _list,
        "show": _show,
        "redrive": _redrive,
    }
    return asyncio.run(_with_connection(handlers[args.refused_command], args))


async def _with_connection(
    work: Callable[[Conn, argparse.Namespace], Coroutine[Any, Any, int]], args: argparse.Namespace
) -> int:
    conn = await connect(get_settings().psycopg_url, application_name="ledger-refused")
    try:
        await conn.execute("SET TimeZone = 'UTC'")
        return await work(conn, args)
    finally:
        await conn.close()


def instant(text: str) -> datetime:
    """An ISO 8601 time for --since/--until; without an offset, UTC."""
    at = datetime.fromisoformat(text)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def status(row: refused_sql.Refused) -> str:
    if row.latest is None:
        return "refused"
    if row.applied:  # then a duplicate, or refused (a later attempt that found it changed)
        return "redriven (applied)"
    if row.latest.outcome == "refused":
        return "refused again"
    return f"redriven ({row.latest.outcome})"


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()


def _listed(row: refused_sql.Refused) -> dict[str, Any]:
    latest = row.latest
    return {
        "id": row.id,
        "refusedAt": _time(row.refused_at),
        "topic": row.topic,
        "partition": row.partition,
        "offset": row.offset,
        "key": _text(row.key),
        "reason": row.reason,
        "status": status(row),
        "redrives": row.redrives,
        "lastRedrive": None
        if latest is None
        else {
            "at": _time(latest.at),
            "outcome": latest.outcome,
            "reason": latest.reason,
            "eventId": latest.event_id,
        },
    }


async def _list(conn: Conn, args: argparse.Namespace) -> int:
    filters = refused_sql.Filters(
        reason=args.reason,
        since=args.since,
        until=args.until,
        topic=args.topic,
        partition=args.partition,
        limit=args.limit,
    )
    rows = await refused_sql.select_refused(conn, filters)
    if args.json:
        for row in rows:
            print(orjson.dumps(_listed(row)).decode())
        return 0
    table = [
        [
            str(row.id),
            row.refused_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            f"{row.topic}/{row.partition}@{row.offset}",
            status(row),
            # The reason a re-drive refused it with, when it did: the one that matters now.
            row.latest.reason if row.latest is not None and row.latest.reason else row.reason,
        ]
        for row in rows
    ]
    header = ["ID", "REFUSED AT (UTC)", "RECORD", "STATUS", "REASON"]
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(4)]
    room = shutil.get_terminal_size((200, 24)).columns - sum(widths) - 8
    for line in [header, *table]:
        reason = line[4]
        if sys.stdout.isatty() and len(reason) > max(room, 30):
            reason = reason[: max(room, 30) - 1] + "…"
        cells = "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        print(f"{cells}  {reason}")
    print(f"{len(rows)} refused record{'s' if len(rows) != 1 else ''}")
    return 0


async def _show(conn: Conn, args: argparse.Namespace) -> int:
    rows = await refused_sql.select_refused(conn, refused_sql.Filters(ids=[args.id]))
    raw = await refused_sql.load_record(conn, args.id)
    if not rows or raw is None:
        print(f"ledger refused show: no refused record {args.id}", file=sys.stderr)
        return 1
    row = rows[0]
    redrives = await refused_sql.load_redrives(conn, args.id)
    shown = {
        **_listed(row),
        "keyBase64": None if raw.key is None else base64.b64encode(raw.key).decode(),
        "headers": None
        if raw.headers is None
        else [
            {"name": n, "value": _text(v), "valueBase64": base64.b64encode(v).decode()}
            for n, v in raw.headers
        ],
        "value": _text(raw.value),
        "valueBase64": None if raw.value is None else base64.b64encode(raw.value).decode(),
        "redriveHistory": [
            {"at": _time(d.at), "outcome": d.outcome, "reason": d.reason, "eventId": d.event_id}
            for d in redrives
        ],
    }
    if args.json:
        print(orjson.dumps(shown).decode())
        return 0
    print(f"refused record {row.id}: {row.topic}/{row.partition}@{row.offset}")
    print(f"  refused at: {shown['refusedAt']}")
    print(f"  reason:     {row.reason}")
    print(f"  status:     {status(row)}")
    print(f"  key:        {_shown_bytes(raw.key)}")
    if raw.headers is None:
        print("  headers:    (not kept)")  # refused before migration 0005
    elif not raw.headers:
        print("  headers:    (none)")
    else:
        print(f"  headers:    {len(raw.headers)}")
        for name, value in raw.headers:
            print(f"    {name}: {_shown_bytes(value)}")
    size = 0 if raw.value is None else len(raw.value)
    print(f"  value ({size} bytes):")
    print(f"    {_shown_bytes(raw.value)}")
    for d in redrives:
        what = d.outcome + (f" (event {d.event_id})" if d.event_id else "")
        print(f"  redriven at {_time(d.at)}: {what}{': ' + d.reason if d.reason else ''}")
    return 0


def _shown_bytes(value: bytes | None) -> str:
    if value is None:
        return "(none)"
    text = _text(value)
    return text if text is not None else f"base64:{base64.b64encode(value).decode()}"


async def _redrive(conn: Conn, args: argparse.Namespace) -> int:
    if args.all == bool(args.ids):
        print("ledger refused redrive: give IDs or --all", file=sys.stderr)
        return 2
    if args.all:
        pending = refused_sql.Filters(reason=args.reason, pending=True)
        ids = [row.id for row in await refused_sql.select_refused(conn, pending)]
    else:
        ids = list(args.ids)
    outcomes: list[Outcome] = []
    terms = get_settings().terms  # the fold's settings: the consumer's
    for refused_id in ids:  # one transaction each: one record's failure is its own
        outcome = await redrive(conn, refused_id, terms=terms)
        outcomes.append(outcome)
        event = f" (event {outcome.event_id})" if outcome.event_id else ""
        why = f": {outcome.reason}" if outcome.outcome in ("refused", "unknown") else ""
        print(f"{refused_id}: {outcome.outcome}{event}{why}")
    counts = {kind: sum(o.outcome == kind for o in outcomes) for kind in _KINDS}
    print(
        f"redrove {len(outcomes)} record{'s' if len(outcomes) != 1 else ''}: "
        + ", ".join(f"{n} {kind}" for kind, n in counts.items())
    )
    if counts["unknown"]:
        return 2
    return 1 if counts["refused"] else 0


_KINDS = ("applied", "duplicate", "refused", "unknown")
