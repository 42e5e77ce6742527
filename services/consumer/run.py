"""`ledger consume`: run the consumer until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging

from services.consumer.app import build_app
from services.settings import get_settings


def run_consume(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = build_app(get_settings())
    asyncio.run(app.run())
    return 0
