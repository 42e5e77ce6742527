"""An outage of a dependency in two log lines: when it starts and when it ends.

A loop that retries through an outage would otherwise log every attempt (the exhaustion
notifier tried four times a second). `Outages` logs a warning with the error when an
outage of the database or the broker starts, nothing for the retries, and an info line
with its duration when the dependency answers again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Outages:
    """The outages in progress, by dependency (e.g. "database", "broker")."""

    def __init__(
        self, log: logging.Logger, who: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = log
        self._who = who
        self._clock = clock
        self._since: dict[str, float] = {}

    def __contains__(self, what: str) -> bool:
        return what in self._since

    def failed(self, what: str, error: BaseException) -> None:
        """`what` failed with `error`: logged only if no outage of it is in progress."""
        if what not in self._since:
            self._since[what] = self._clock()
            self._log.warning(
                "%s: %s outage started (%s); retrying with backoff", self._who, what, error
            )

    def ended(self, *whats: str) -> None:
        """`whats` (all, if none is given) answered again: their outages end."""
        for what in whats or tuple(self._since):
            since = self._since.pop(what, None)
            if since is not None:
                self._log.info(
                    "%s: %s outage ended after %.1f s", self._who, what, self._clock() - since
                )
