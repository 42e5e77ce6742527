"""`ledger api`: serve the read-only API with uvicorn."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.auth import ConfigurationError
from api.middleware import RequestIdFilter
from services.logs import JsonFormatter
from services.settings import get_settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [request %(request_id)s] %(message)s"


def configure_logging() -> None:
    """JSON lines with a `request_id` field (LEDGER_LOG_FORMAT=text for the plain form)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if os.environ.get("LEDGER_LOG_FORMAT", "json").lower() == "text":
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    else:
        handler.setFormatter(JsonFormatter())
    api_log = logging.getLogger("api")
    api_log.handlers[:] = [handler]
    api_log.setLevel(logging.INFO)
    api_log.propagate = False


def app_from_environment() -> FastAPI:
    """The factory each uvicorn worker calls."""
    configure_logging()
    app = create_app(get_settings())
    # What start-up built (modules, the app, its OpenAPI models) is never garbage: frozen,
    # the collector's full passes skip it. Unfrozen, a full pass over it took up to 90 ms
    # with 1,000 stream clients connected (benchmarks/stream_bench.py): the list's tail.
    # The full pass also comes ten times more rarely than by default; the young
    # generations keep their default thresholds (short pauses).
    gc.freeze()
    gc.set_threshold(700, 10, 100)
    return app


def run_api(args: argparse.Namespace) -> int:
    settings = get_settings()
    workers = max(1, int(getattr(args, "workers", 1)))
    try:
        create_app(settings)  # fail fast, before any worker starts, on a missing key
    except ConfigurationError as error:
        print(f"ledger api: {error}", file=sys.stderr)
        return 2
    uvicorn.run(
        "api.serve:app_from_environment",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=settings.api_shutdown_grace_seconds,
    )
    return 0
