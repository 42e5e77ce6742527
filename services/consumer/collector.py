"""The consumer's cyclic garbage collector: off on the hot path, a full pass now and then.

A batch keeps hundreds of thousands of objects alive while it is parsed, planned and
written (events, entries, rows, the states it moves), and every automatic collection
traverses the young ones among them: with thresholds of (50,000, 50, 1,000) the collector
took 15-20% of the consumer's CPU and paused it up to ~0.5 s in its generation-1 passes
(docs/consumer.md, "Against 99f3acd in one run, after the garbage collector"). Reference
counting frees what the hot path makes (nothing there forms cycles), so the automatic
collector is off and a full pass every `LEDGER_GC_PASS_SECONDS` (ten minutes) frees what
cycles there are (an exception with its traceback, asyncio and client-library internals).
Passes every 5 s during the consumer benchmark found none after the first. A pass
traverses every object alive, the cached pack states above all, so it pauses the
consumer for a time that grows with the cache (0.28-0.79 s with 20,000 packs cached):
rare passes keep those pauses out of the delay's p99. Each is logged and measured
(`ledger_gc_pass_seconds`, `ledger_gc_collected_total`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

from services.consumer import metrics

log = logging.getLogger("ledger.consumer")


def take_over() -> None:
    """Freeze what start-up built (modules, settings, the app: never garbage, never
    traversed again) and switch the automatic collector off."""
    gc.freeze()
    gc.disable()


def collect() -> int:
    """One full pass over what is not frozen; the objects found unreachable."""
    started = time.perf_counter()
    found = gc.collect()
    seconds = time.perf_counter() - started
    metrics.observe_collection(seconds, found)
    log.info("garbage collector: a full pass took %.3f s, %d unreachable objects", seconds, found)
    return found


async def collect_every(seconds: float) -> None:
    """`collect` every `seconds`, until cancelled."""
    while True:
        await asyncio.sleep(seconds)
        collect()
