"""COPY data sent by a thread of its own, so the server loads rows while the caller folds."""

from __future__ import annotations

import queue
import threading
from typing import Any

import psycopg


class CopyWriter:
    """Runs `COPY ... FROM STDIN` statements on `conn`, one per chunk, in order.

    `put` hands a chunk over (waiting while `depth` chunks are queued); `close` waits for
    every chunk to be written and raises the first error the thread met.
    """

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]], depth: int = 4) -> None:
        self._conn = conn
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._aborted = False
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def put(self, statement: str, data: bytes) -> None:
        self._raise_if_failed()
        self._queue.put((statement, data))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop without writing what is still queued (the caller is failing anyway)."""
        self._aborted = True
        self._queue.put(None)
        self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None or self._aborted:
                continue  # drain: the caller raises at its next put or at close
            statement, data = item
            try:
                with self._conn.cursor() as cur, cur.copy(statement) as copy:
                    copy.write(data)
            except BaseException as error:
                self._error = error
