"""`ledger consume`: run the consumer until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging

from prometheus_client import start_http_server

from services.consumer.app import build_app
from services.logs import configure_logging
from services.settings import get_settings

log = logging.getLogger("ledger.consumer")


def run_consume(args: argparse.Namespace) -> int:
    configure_logging()
    settings = get_settings()
    port = settings.consumer_metrics_port
    if port:
        try:
            start_http_server(port, addr="127.0.0.1")
            log.info("metrics on http://127.0.0.1:%d/metrics", port)
        except OSError as error:  # e.g. a second consumer on this host
            log.warning("metrics port %d unavailable (%s): no metrics endpoint", port, error)
    app = build_app(settings)
    tune_garbage_collector()
    asyncio.run(app.run())
    return 0


def tune_garbage_collector() -> None:
    """Fewer cyclic collections: a batch allocates hundreds of thousands of short-lived
    objects, and with the default thresholds the collector ran thousands of times per
    batch, traversing the cached pack states each time (a third of the consumer's time,
    docs/consumer.md). Almost nothing here forms cycles; reference counting frees it."""
    gc.freeze()  # what start-up built (modules, settings, the app) is never garbage
    gc.set_threshold(50_000, 50, 1000)
