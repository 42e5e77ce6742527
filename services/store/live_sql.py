"""Live updates through PostgreSQL: the writers NOTIFY the packs they changed, each API
process LISTENs once and fans the changes out to its stream clients (`api.live`).

A notification is delivered when its transaction commits, and only then: issued inside
the consumer's batch transaction, it never announces a change that was rolled back, and
the API's read after it sees the change. The payload is the changed pack ids as decimal
digits joined by commas, in chunks under PostgreSQL's 8000-byte payload limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from services.store.connection import Conn

CHANNEL = "ledger_packs"
LISTEN = "LISTEN ledger_packs"
PAYLOAD_LIMIT = 7900  # bytes; PostgreSQL refuses a payload of 8000 or more

# One statement for every chunk: one round trip per batch, whatever its size.
_NOTIFY = "SELECT pg_notify('ledger_packs', chunk) FROM unnest(%s::text[]) AS chunk"


def payload_chunks(pack_ids: Iterable[int], limit: int = PAYLOAD_LIMIT) -> Iterator[str]:
    """The ids as comma-joined chunks of at most `limit` bytes (digits are ASCII)."""
    chunk: list[str] = []
    size = 0
    for pack_id in pack_ids:
        text = str(pack_id)
        if chunk and size + 1 + len(text) > limit:
            yield ",".join(chunk)
            chunk, size = [], 0
        size += len(text) + (1 if chunk else 0)
        chunk.append(text)
    if chunk:
        yield ",".join(chunk)


def parse_payload(payload: str) -> list[int]:
    """The pack ids of a notification (a malformed part is skipped: not ours to fail on)."""
    return [int(part) for part in payload.split(",") if part.isdigit()]


async def notify_changed(conn: Conn, pack_ids: Iterable[int]) -> None:
    """Announce, when the transaction commits, that these packs changed."""
    chunks = list(payload_chunks(pack_ids))
    if chunks:
        await conn.execute(_NOTIFY, (chunks,))
