"""`Database.fetch_slices`: the stream hub's read, a slice of rows per turn of the loop."""

from __future__ import annotations

import asyncio
import contextlib

from psycopg.rows import tuple_row

from api.db import Database

NUMBERS = "SELECT n FROM generate_series(1, %(last)s) AS n ORDER BY n"


def test_every_row_in_slices_of_the_size_asked(db_url: str) -> None:
    async def main() -> list[list[tuple[int]]]:
        db = Database(db_url, min_size=1, max_size=1, timeout=3.0, timezone="UTC")
        await db.open()
        try:
            return [taken async for taken in db.fetch_slices(NUMBERS, {"last": 7}, tuple_row, 3)]
        finally:
            await db.close()

    assert asyncio.run(main()) == [[(1,), (2,), (3,)], [(4,), (5,), (6,)], [(7,)]]


def test_a_reader_that_stops_early_gives_the_connection_back(db_url: str) -> None:
    async def main() -> list[tuple[int]]:
        # One connection in the pool: the next read waits for it (3 s, then fails).
        db = Database(db_url, min_size=1, max_size=1, timeout=3.0, timezone="UTC")
        await db.open()
        try:
            slices = db.fetch_slices(NUMBERS, {"last": 100}, tuple_row, 10)
            with contextlib.suppress(RuntimeError):
                async with contextlib.aclosing(slices):
                    async for _ in slices:
                        raise RuntimeError("a fan-out's failure")
            return await db.fetch_all(NUMBERS, {"last": 2}, tuple_row)
        finally:
            await db.close()

    assert asyncio.run(main()) == [(1,), (2,)]
