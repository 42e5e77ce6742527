"""`ledger consume`: run the consumer until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging

from faststream import FastStream
from prometheus_client import start_http_server

from services.consumer import collector
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
    collector.take_over()
    asyncio.run(_run(app, settings.gc_pass_seconds))
    return 0


async def _run(app: FastStream, gc_pass_seconds: float) -> None:
    passes = asyncio.create_task(collector.collect_every(gc_pass_seconds), name="gc-passes")
    try:
        await app.run()
    finally:
        passes.cancel()
